"""Room configuration (XEP-0045 §10.2): the settings of one room, as one value.

Each setting's form field, and how a submitted form changes it, belong to
the feature that uses it (:mod:`services.muc.features`); the room core
assembles the form and applies a submission (:meth:`Room.configure`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

__all__ = ["BROADCAST_ROLES", "RoomConfig"]

#: The roles an occupant's presence can be broadcast for (``muc#roomconfig_presencebroadcast``),
#: in Prosody's order; "none" is the role of those not in the room.
BROADCAST_ROLES = ("none", "visitor", "participant", "moderator")


def _roles(roles: Iterable[str]) -> tuple[str, ...]:
    """Roles as one value whatever the order they came in (a form, or JSON read back)."""
    given = set(roles)
    return tuple(role for role in BROADCAST_ROLES if role in given)


@attrs.define(slots=True)
class RoomConfig:
    """The settings of one room; the defaults are those of a new room."""

    name: str = ""
    description: str = ""
    language: str = ""
    persistent: bool = False
    public: bool = True
    members_only: bool = False
    moderated: bool = False
    password_protected: bool = False
    password: str = ""
    whois: str = "moderators"
    change_subject: bool = False
    allow_pm: str = "anyone"
    allow_invites: bool = False
    max_users: int = 0
    history_length: int = 20
    logging: bool = False
    #: The room's vCard (XEP-0054), serialised; "" for none.
    vcard: str = ""
    #: The SHA-1 of the vCard's photo (XEP-0153); "" for none.
    avatar_hash: str = ""
    #: XEP-0313: the room keeps an archive of its messages (when persistent; the service sets the default).
    archiving: bool = True
    #: The roles whose occupants' presence the others are sent (§10.2 ``presencebroadcast``).
    presence_broadcast: tuple[str, ...] = attrs.field(default=("visitor", "participant", "moderator"), converter=_roles)
    #: The roles whose occupants may read the member list besides admins and owners (§10.2 ``getmemberlist``).
    member_list_roles: tuple[str, ...] = attrs.field(default=(), converter=_roles)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-able dict, for storage."""
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoomConfig:
        """Settings read back from storage; unknown keys (from a newer version) are ignored."""
        known = {field.name for field in attrs.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    @property
    def anonymous(self) -> bool:
        """True in semi-anonymous rooms, where only moderators see real JIDs."""
        return self.whois != "anyone"

    @property
    def needs_password(self) -> bool:
        """True when entering takes a password: whenever the room has a secret.

        Clients written for Prosody set only ``muc#roomconfig_roomsecret``
        (Prosody has no other switch); a secret that did not protect the
        room would leave it open to anyone while its owner thinks it closed.
        """
        return bool(self.password)
