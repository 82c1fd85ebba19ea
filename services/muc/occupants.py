"""Occupants: who is in a room, under which nick, from which clients, in which role.

An occupant is one nick held by one bare JID; each client of that user that
joined under the nick is a session. What we keep per session is the
client's last presence, serialised without addresses and without the MUC
elements, so that a room of thousands stays small in memory.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator

from lxml import etree

from component import namespaces as ns
from component.jid import JID
from component.stanza import PRESENCE, Broadcast, address
from services.muc.claims import ROOM_OWNED
from services.muc.nicks import nick_key
from services.muc.protocol import MUC, PARSER

__all__ = ["KEEP_LISTS_FROM", "Occupant", "Occupants", "presence_template"]

#: Rooms this crowded keep what every newcomer is sent serialised (the occupant
#: lists, the subject); smaller ones build it for each newcomer, which costs
#: little and keeps them small.
KEEP_LISTS_FROM = 16

# The client's MUC elements, and what only the room may add (see claims.py).
_DROPPED = ROOM_OWNED | {f"{{{MUC}}}x", f"{{{ns.STANZA_ID}}}stanza-id"}
# What a presence is for (RFC 6121 §4.7.2, and XEP-0115 caps): kept before any extension.
_FIRST = ("show", "status", "priority", "{http://jabber.org/protocol/caps}c")


def presence_template(presence: etree._Element, max_bytes: int = 0) -> bytes:
    """The client's presence minus addresses, type and MUC elements, serialised.

    With ``max_bytes``, children that would take it past that many bytes are
    left out: show, status, priority and caps go in first, then the
    extensions in their order while they fit. Everyone who enters the room is
    sent this copy, so one client cannot make each entry cost megabytes.
    """
    template = etree.Element(PRESENCE, nsmap=presence.nsmap)
    stanza_id = presence.get("id")
    if stanza_id is not None:
        template.set("id", stanza_id)
    children = [
        child for child in presence
        if isinstance(child.tag, str) and child.tag not in _DROPPED and not child.tag.endswith("}error")
    ]
    for child in children:
        template.append(copy.deepcopy(child))
    data = etree.tostring(template, encoding="utf-8")
    if not max_bytes or len(data) <= max_bytes:
        return data
    return _within(template, max_bytes)


def _within(template: etree._Element, max_bytes: int) -> bytes:
    children = list(template)
    for child in children:
        template.remove(child)
    if len(etree.tostring(template)) > max_bytes:
        template.attrib.pop("id", None)
    room = max_bytes - len(etree.tostring(template))
    namespace = etree.QName(template).namespace
    first = {f"{{{namespace}}}{name}" if name[0] != "{" else name for name in _FIRST}
    kept: set[int] = set()
    for index in sorted(range(len(children)), key=lambda i: children[i].tag not in first):
        size = len(etree.tostring(children[index], encoding="utf-8"))
        if size <= room:
            room -= size
            kept.add(index)
    for index, child in enumerate(children):
        if index in kept:
            template.append(child)
    return etree.tostring(template, encoding="utf-8")


class Occupant:
    """One nick in a room, held by one bare JID, with one or more sessions."""

    __slots__ = ("_addresses", "_role", "bare", "key", "main", "nick", "room", "sessions", "shown")

    def __init__(self, nick: str, real: JID, role: str, template: bytes) -> None:
        self.nick = nick
        #: What the nick looks like (:func:`~services.muc.nicks.nick_key`): no two occupants share one.
        self.key = nick_key(nick)
        self.bare = real.bare
        self._role = role
        #: Real full JID → that client's presence template.
        self.sessions: dict[JID, bytes] = {real: template}
        #: The session whose presence the room shows.
        self.main = real
        #: This occupant's presence as others see it, serialised once: with and
        #: without the real JID. Dropped whenever anything in it changes.
        self.shown: list[Broadcast | None] = [None, None]
        self._addresses: list[bytes] | None = None
        #: The occupants of the room this occupant is in, told when its role changes.
        self.room: Occupants | None = None

    @property
    def addresses(self) -> list[bytes]:
        """The sessions' JIDs, escaped once for the ``to`` of a :class:`Broadcast`."""
        if self._addresses is None:
            self._addresses = [address(real) for real in self.sessions]
        return self._addresses

    @property
    def role(self) -> str:
        """The occupant's role: moderator, participant, visitor (or none once gone)."""
        return self._role

    @role.setter
    def role(self, role: str) -> None:
        self._role = role
        self.changed()
        if self.room is not None:
            self.room.forget_addresses()
            self.room.note(self)

    def changed(self) -> None:
        """Something others see of this occupant changed: forget the serialised presence."""
        self.shown[0] = self.shown[1] = None
        if self.room is not None:
            self.room.lists[0] = self.room.lists[1] = None

    def presence(self, session: JID | None = None) -> etree._Element:
        """A fresh copy of a session's presence (the main one by default), without addresses."""
        return etree.fromstring(self.sessions[session or self.main], PARSER)

    def set_session(self, real: JID, template: bytes) -> None:
        """Add or update a session; the latest one becomes the one shown."""
        if real not in self.sessions:
            self._addresses = None
        self.sessions[real] = template
        self.main = real
        self.changed()

    def remove_session(self, real: JID) -> bool:
        """Drop a session; True when it was the last."""
        self.sessions.pop(real, None)
        self._addresses = None
        if not self.sessions:
            return True
        if self.main == real:
            self.main = next(reversed(self.sessions))
            self.changed()
        return False


class Occupants:
    """The occupants of a room, by nick, by what the nick looks like, and by the real JID of each session."""

    __slots__ = ("_addresses", "_by_key", "_by_nick", "_by_real", "_by_role", "_changed", "lists")

    def __init__(self) -> None:
        self._by_nick: dict[str, Occupant] = {}
        self._by_key: dict[str, Occupant] = {}
        self._by_real: dict[JID, Occupant] = {}
        self._addresses: list[bytes] | None = None
        self._by_role: tuple[list[bytes], list[bytes]] | None = None
        #: Everyone's presence, with and without real JIDs, cut where the
        #: newcomer's address goes (see ``Room.send_occupant_list``); the room fills it.
        self.lists: list[list[bytes] | None] = [None, None]
        # Nick → the occupant holding it now (None: nobody), since taken last; None when nobody asks.
        self._changed: dict[str, Occupant | None] | None = None

    def record_changes(self) -> None:
        """From now on, note every occupant who comes, goes or changes (for rooms whose live state is stored)."""
        if self._changed is None:
            self._changed = {}

    def note(self, occupant: Occupant) -> None:
        """Something stored of ``occupant`` changed (its role, its sessions)."""
        if self._changed is not None:
            self._changed[occupant.nick] = occupant

    def take_changes(self) -> list[tuple[str, Occupant | None]]:
        """Each nick whose occupant came, went or changed since the last call: who holds it now, or None."""
        changed = self._changed
        if not changed:
            return []
        self._changed = {}
        return [(nick, occupant if self._by_nick.get(nick) is occupant else None) for nick, occupant in changed.items()]

    def _gone(self, nick: str) -> None:
        if self._changed is not None:
            self._changed[nick] = None

    def __len__(self) -> int:
        return len(self._by_nick)

    def __iter__(self) -> Iterator[Occupant]:
        """Every occupant, in the order they entered; safe to change the room meanwhile."""
        return iter(list(self._by_nick.values()))

    def values(self) -> Iterable[Occupant]:
        """Every occupant, for loops that do not change who is in the room."""
        return self._by_nick.values()

    def addresses(self) -> list[bytes]:
        """Every session of every occupant, escaped for a :class:`Broadcast`; kept until someone comes or goes."""
        if self._addresses is None:
            self._addresses = [a for occupant in self._by_nick.values() for a in occupant.addresses]
        return self._addresses

    def addresses_by_role(self) -> tuple[list[bytes], list[bytes]]:
        """The addresses of the moderators' sessions, and of everyone else's."""
        if self._by_role is None:
            moderators: list[bytes] = []
            others: list[bytes] = []
            for occupant in self._by_nick.values():
                (moderators if occupant.role == "moderator" else others).extend(occupant.addresses)
            self._by_role = (moderators, others)
        return self._by_role

    def forget_addresses(self) -> None:
        """Someone came, went, or changed role: the address lists are built again when next needed."""
        self._addresses = None
        self._by_role = None
        self.lists[0] = self.lists[1] = None

    def by_nick(self, nick: str) -> Occupant | None:
        """The occupant using ``nick``."""
        return self._by_nick.get(nick)

    def by_key(self, key: str) -> Occupant | None:
        """The occupant whose nick looks like a nick with this :func:`~services.muc.nicks.nick_key`."""
        return self._by_key.get(key)

    def by_real(self, real: JID) -> Occupant | None:
        """The occupant one of whose sessions is ``real``."""
        return self._by_real.get(real)

    def by_bare(self, bare: JID) -> list[Occupant]:
        """The occupants held by a bare JID (normally at most one)."""
        return [o for o in self._by_nick.values() if o.bare == bare.bare]

    def add(self, occupant: Occupant) -> None:
        """Seat a new occupant."""
        self._by_nick[occupant.nick] = occupant
        self._by_key[occupant.key] = occupant
        for real in occupant.sessions:
            self._by_real[real] = occupant
        occupant.room = self
        self.note(occupant)
        # A newcomer goes last: the lists grow instead of being built again.
        if self._addresses is not None:
            self._addresses.extend(occupant.addresses)
        if self._by_role is not None:
            self._by_role[0 if occupant.role == "moderator" else 1].extend(occupant.addresses)

    def add_session(self, occupant: Occupant, real: JID, template: bytes) -> None:
        """Attach another client to an occupant."""
        if real not in occupant.sessions:
            self.forget_addresses()
        occupant.set_session(real, template)
        self._by_real[real] = occupant
        self.note(occupant)

    def remove_session(self, occupant: Occupant, real: JID) -> bool:
        """Detach a client; True (and the occupant is gone) when it was the last."""
        self._by_real.pop(real, None)
        self.forget_addresses()
        if occupant.remove_session(real):
            self._by_nick.pop(occupant.nick, None)
            self._by_key.pop(occupant.key, None)
            occupant.room = None
            self._gone(occupant.nick)
            return True
        self.note(occupant)
        return False

    def remove(self, occupant: Occupant) -> None:
        """Remove an occupant with all its sessions."""
        self._by_nick.pop(occupant.nick, None)
        self._by_key.pop(occupant.key, None)
        for real in occupant.sessions:
            self._by_real.pop(real, None)
        occupant.room = None
        self._gone(occupant.nick)
        self.forget_addresses()

    def rename(self, occupant: Occupant, nick: str) -> None:
        """Move an occupant to a new nick."""
        self._by_nick.pop(occupant.nick, None)
        self._by_key.pop(occupant.key, None)
        self._gone(occupant.nick)
        occupant.nick = nick
        occupant.key = nick_key(nick)
        occupant.changed()
        self._by_nick[nick] = occupant
        self._by_key[occupant.key] = occupant
        self.note(occupant)
        self.forget_addresses()  # the order of the room changed
