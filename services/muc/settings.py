"""The MUC service's settings (``[components."DOMAIN".muc]``), declared once.

Its own settings are here; those of its features are declared by the
feature's module and inherited (the quotas and rates of
:class:`services.muc.limits.LimitSettings`, the archive's of
:class:`services.muc.retention.ArchiveSettings`). Everything here but ``live_state`` applies on a
configuration reload without reconnecting (see ``MucService.reconfigure``).
"""

from __future__ import annotations

import attrs

from component.jid import JID
from component.options import BARE_JIDS, DOMAINS, setting
from services.muc.limits import LimitSettings
from services.muc.nicks import DEFAULT_MAX_LENGTH
from services.muc.retention import ArchiveSettings
from services.muc.vcard import DEFAULT_MAX_VCARD_BYTES

__all__ = ["CREATION_POLICIES", "MucSettings"]

#: Who may create rooms: anyone, users of the local domains, or service admins only.
CREATION_POLICIES = ("anyone", "local", "admins")


@attrs.frozen
class MucSettings(LimitSettings, ArchiveSettings):
    """Every setting of the MUC service; each name is its key in the service's table."""

    admins: frozenset[JID] = setting(
        frozenset(), "JIDs with owner rights in every room, who run the admin commands", kind=BARE_JIDS
    )
    creation: str = setting(
        "anyone", "who may create rooms: anyone, users of local_domains, or admins", choices=CREATION_POLICIES
    )
    local_domains: frozenset[str] | None = setting(
        None, "the domains whose users are local", kind=DOMAINS, shown="the server's domain"
    )
    max_history: int = setting(50, "messages a room keeps", minimum=0)
    idle_unload_seconds: float = setting(300.0, "seconds an empty persistent room stays in memory", minimum=0)
    lock_seconds: float = setting(300.0, "seconds before a new room nobody configured is destroyed", minimum=0)
    max_nick_length: int = setting(DEFAULT_MAX_LENGTH, "characters in a nick", minimum=1)
    history_batch: int = setting(
        100, "history rows one transaction stores at most (messages that came during a write)", minimum=1
    )
    allow_unaffiliated_register: bool = setting(
        False, "whether users with no affiliation may register with a room, and so become members"
    )
    max_waiting_messages: int = setting(
        1000, "stanzas a room holds waiting for its writes; past them a groupchat message is refused", minimum=1
    )
    occupant_id: bool = setting(True, "rooms give each occupant a stable, opaque occupant-id (XEP-0421)")
    max_vcard_bytes: int = setting(
        DEFAULT_MAX_VCARD_BYTES, "bytes of a room's vCard (its avatar) at most, serialised (0: no limit)", minimum=0
    )
    live_state: bool = setting(
        False, "store who is in each room (and its subject and lock) before announcing it, so that a restart"
        " or another instance carries the rooms on; always on with [cluster]"
    )
    tombstone_seconds: float = setting(
        86400.0 * 31, "seconds a destroyed persistent room's name stays reserved (0: not at all)", minimum=0
    )
