"""The room's archive (XEP-0313) and its stanza-ids (XEP-0359): queries, metadata, the setting, tombstones.

Every groupchat message the room reflects carries a ``<stanza-id by='room'/>``
(the room core adds it, after dropping any a client claimed in the room's
name); in a stored room that id is the message's archive id. A stored
(persistent) room writes each message with a body, and each subject change,
to ``muc_history`` before reflecting it (see :mod:`services.muc.archive`);
with ``muc#roomconfig_enablearchiving`` off (Prosody's name for it) it keeps
only what its join history replays, trimmed by :mod:`services.muc.retention`.
The join history after a restart is the archive's tail.

Who may query (Prosody's rules, and XEP-0045's for real JIDs): anyone but
an outcast; in a members-only room only those with an affiliation; in a
password-protected room only occupants, owners and admins. A real JID goes
with a result only to a moderator (or an owner or admin), or, in a
non-anonymous room, for a message sent while the room was non-anonymous.

For moderation and retraction (XEP-0425, XEP-0424), :func:`find` gives
the archived message of a stanza-id and :func:`tombstone` stores a tombstone
in its place and drops it from the join history: await it before
announcing the moderation, so that nobody is told of a change that was
not stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from lxml import etree
from twisted.internet import defer

from component import namespaces as ns
from component.errors import StanzaError
from component.jid import JID
from component.stanza import Stanza, address
from component.storage import StorageError
from component.storage.leases import LeaseLost
from services.muc.archive_store import ArchiveEnds, ArchivePage, NotInArchive
from services.muc.context import RoomContext
from services.muc.feature import IQHandler
from services.muc.mam import (
    MAM1,
    MAM2,
    MAM_EXTENDED,
    ArchiveQuery,
    fin,
    metadata,
    parse_query,
    query_form,
    result,
)
from services.muc.store import HistoryRecord
from services.muc.switch import Switch
from services.muc.tenure import moved

__all__ = ["Archiving", "archives", "find", "tombstone"]

_EMPTY = ArchivePage((), True, 0)


def archives(room: RoomContext) -> bool:
    """Whether the room archives its messages now: stored, with archiving on."""
    return room.stored and room.config.archiving and room.service.archive is not None


def find(room: RoomContext, stanza_id: str) -> defer.Deferred[HistoryRecord | None]:
    """The room's archived message whose stanza-id is *stanza_id*, or None (always None for a room not stored)."""
    archive = room.service.archive
    if archive is None or not room.stored:
        return defer.succeed(None)
    return archive.find(room.node, stanza_id)


async def tombstone(room: RoomContext, stanza_id: str, stanza: str, notice: HistoryRecord | None = None) -> bool:
    """Put the tombstone *stanza* (a serialised message, without ``to``) in place of the message *stanza_id*.

    Stored first (a refusal raises the requester's error), then the message
    leaves the join history. *notice* (the room's announcement of it) is
    archived with the tombstone, where the room archives. Returns whether
    the room had the message.
    """
    archive = room.service.archive
    found = False
    if archive is not None and room.stored:
        kept = notice if archives(room) else None
        try:
            found = await room.service.track(archive.replace(room.node, stanza_id, stanza, kept, lease=room.lease))
        except LeaseLost:
            raise moved(str(room.jid)) from None  # another instance serves the room now: retried, it reaches it
        except StorageError as error:
            room.service.write_failures.failed(str(room.jid), "tombstone", error)
            raise StanzaError("resource-constraint", "wait", text="the archive could not be changed; try again shortly") from None
    return room.history.drop(stanza_id) or found


class _Viewer:
    """What one querier may read of the archive."""

    __slots__ = ("moderator", "non_anonymous")

    def __init__(self, room: RoomContext, sender: JID) -> None:
        affiliation = room.affiliation_of(sender)
        occupant = room.occupants.by_real(sender)
        if affiliation == "outcast":
            raise StanzaError("forbidden", "auth", text="you are banned from this room")
        if room.config.members_only and affiliation == "none":
            raise StanzaError("forbidden", "auth", text="the archive of a members-only room is for its members")
        manages = affiliation in ("owner", "admin")
        if room.config.needs_password and occupant is None and not manages:
            raise StanzaError("forbidden", "auth", text="the archive of a password-protected room is for its occupants")
        self.moderator = manages or (occupant is not None and occupant.role == "moderator")
        self.non_anonymous = not room.config.anonymous

    def real_jid(self, record: HistoryRecord) -> str | None:
        """The sender's real JID, where this querier may see it."""
        if record.sender_jid and (self.moderator or (self.non_anonymous and record.jid_public)):
            return record.sender_jid
        return None

    def may_filter_by_jid(self) -> bool:
        return self.moderator or self.non_anonymous


class Archiving(Switch):
    """The room's archive, its queries and its setting."""

    name = "archive"
    setting = "archiving"
    var = "muc#roomconfig_enablearchiving"
    position = 170
    label = "Archive the discussion (persistent rooms)"
    # As Prosody's mod_muc_mam: archiving is logging (170, 171).
    codes = (170, 171)
    # Every room answers a query (a room that keeps no archive with an empty one);
    # only those that archive say they do.
    announces_iq_namespaces = False

    def disco_features(self, room: RoomContext) -> Iterable[str]:
        if archives(room):
            return (ns.STANZA_ID, MAM2, MAM_EXTENDED)
        return (ns.STANZA_ID,)

    def iq_handlers(self) -> Mapping[tuple[str, str], IQHandler]:
        handlers: dict[tuple[str, str], IQHandler] = {}
        for namespace in (MAM2, MAM1):
            handlers["get", f"{{{namespace}}}query"] = _fields
            handlers["set", f"{{{namespace}}}query"] = _query
        handlers["get", f"{{{MAM2}}}metadata"] = _metadata
        return handlers


def _fields(room: RoomContext, stanza: Stanza) -> etree._Element:
    _Viewer(room, stanza.sender)
    return query_form(etree.QName(stanza.element[0]).namespace or MAM2)


def _read_refused() -> StanzaError:
    return StanzaError("resource-constraint", "wait", text="the archive cannot be read now; try again shortly")


async def _page(room: RoomContext, query: ArchiveQuery, viewer: _Viewer) -> ArchivePage:
    archive = room.service.archive
    if archive is None or not room.stored:
        return _EMPTY  # a room that is not stored keeps no archive
    if query.selection.jid is not None and not viewer.may_filter_by_jid():
        return _EMPTY  # who sent what is not this querier's to know
    try:
        return await archive.page(room.node, query.selection, after=query.after, before=query.before, limit=query.max)
    except NotInArchive:
        raise StanzaError("item-not-found", "modify", text="no message with that id in the archive") from None
    except StorageError:
        raise _read_refused() from None


async def _query(room: RoomContext, stanza: Stanza) -> etree._Element:
    viewer = _Viewer(room, stanza.sender)
    stanza.keep()  # the reply is built after the read
    query = parse_query(stanza.element[0], room.jid, room.service.settings.archive_max_results)
    page = await _page(room, query, viewer)
    rows = reversed(page.rows) if query.flip else page.rows
    here, to = address(room.jid), address(stanza.sender)
    data = b"".join([result(row, query, room=here, to=to, real_jid=viewer.real_jid(row)) for row in rows])
    if data:
        # The results, then the iq result that ends them (XEP-0313 §4.2).
        room.send_bytes(data, len(page.rows))
    return fin(query, page)


async def _metadata(room: RoomContext, stanza: Stanza) -> etree._Element:
    _Viewer(room, stanza.sender)
    archive = room.service.archive
    if archive is None or not room.stored:
        return metadata(ArchiveEnds(None, None))
    try:
        return metadata(await archive.ends(room.node))
    except StorageError:
        raise _read_refused() from None

