"""Occupants: who is in a room, under which nick, from which clients, in which role.

An occupant is one nick held by one bare JID; each client of that user that
joined under the nick is a session. What we keep per session is the
client's last presence, serialised without addresses and without the MUC
elements, so that a room of thousands stays small in memory.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

from lxml import etree

from component.jid import JID
from component.stanza import PRESENCE, Broadcast
from services.muc.protocol import MUC, MUC_USER

__all__ = ["Occupant", "Occupants", "presence_template"]

_DROPPED = frozenset({f"{{{MUC}}}x", f"{{{MUC_USER}}}x"})
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True)


def presence_template(presence: etree._Element) -> bytes:
    """The client's presence minus addresses, type and MUC elements, serialised."""
    template = etree.Element(PRESENCE, nsmap=presence.nsmap)
    stanza_id = presence.get("id")
    if stanza_id is not None:
        template.set("id", stanza_id)
    for child in presence:
        if isinstance(child.tag, str) and child.tag not in _DROPPED and not child.tag.endswith("}error"):
            template.append(copy.deepcopy(child))
    return etree.tostring(template)


class Occupant:
    """One nick in a room, held by one bare JID, with one or more sessions."""

    __slots__ = ("_role", "bare", "main", "nick", "sessions", "shown")

    def __init__(self, nick: str, real: JID, role: str, template: bytes) -> None:
        self.nick = nick
        self.bare = real.bare
        self._role = role
        #: Real full JID → that client's presence template.
        self.sessions: dict[JID, bytes] = {real: template}
        #: The session whose presence the room shows.
        self.main = real
        #: This occupant's presence as others see it, serialised once: with and
        #: without the real JID. Dropped whenever anything in it changes.
        self.shown: list[Broadcast | None] = [None, None]

    @property
    def role(self) -> str:
        """The occupant's role: moderator, participant, visitor (or none once gone)."""
        return self._role

    @role.setter
    def role(self, role: str) -> None:
        self._role = role
        self.changed()

    def changed(self) -> None:
        """Something others see of this occupant changed: forget the serialised presence."""
        self.shown[0] = self.shown[1] = None

    def presence(self, session: JID | None = None) -> etree._Element:
        """A fresh copy of a session's presence (the main one by default), without addresses."""
        return etree.fromstring(self.sessions[session or self.main], _PARSER)

    def set_session(self, real: JID, template: bytes) -> None:
        """Add or update a session; the latest one becomes the one shown."""
        self.sessions[real] = template
        self.main = real
        self.changed()

    def remove_session(self, real: JID) -> bool:
        """Drop a session; True when it was the last."""
        self.sessions.pop(real, None)
        if not self.sessions:
            return True
        if self.main == real:
            self.main = next(reversed(self.sessions))
            self.changed()
        return False


class Occupants:
    """The occupants of a room, by nick and by the real JID of each session."""

    __slots__ = ("_by_nick", "_by_real")

    def __init__(self) -> None:
        self._by_nick: dict[str, Occupant] = {}
        self._by_real: dict[JID, Occupant] = {}

    def __len__(self) -> int:
        return len(self._by_nick)

    def __iter__(self) -> Iterator[Occupant]:
        return iter(list(self._by_nick.values()))

    def by_nick(self, nick: str) -> Occupant | None:
        """The occupant using ``nick``."""
        return self._by_nick.get(nick)

    def by_real(self, real: JID) -> Occupant | None:
        """The occupant one of whose sessions is ``real``."""
        return self._by_real.get(real)

    def by_bare(self, bare: JID) -> list[Occupant]:
        """The occupants held by a bare JID (normally at most one)."""
        return [o for o in self._by_nick.values() if o.bare == bare.bare]

    def add(self, occupant: Occupant) -> None:
        """Seat a new occupant."""
        self._by_nick[occupant.nick] = occupant
        for real in occupant.sessions:
            self._by_real[real] = occupant

    def add_session(self, occupant: Occupant, real: JID, template: bytes) -> None:
        """Attach another client to an occupant."""
        occupant.set_session(real, template)
        self._by_real[real] = occupant

    def remove_session(self, occupant: Occupant, real: JID) -> bool:
        """Detach a client; True (and the occupant is gone) when it was the last."""
        self._by_real.pop(real, None)
        if occupant.remove_session(real):
            self._by_nick.pop(occupant.nick, None)
            return True
        return False

    def remove(self, occupant: Occupant) -> None:
        """Remove an occupant with all its sessions."""
        self._by_nick.pop(occupant.nick, None)
        for real in occupant.sessions:
            self._by_real.pop(real, None)

    def rename(self, occupant: Occupant, nick: str) -> None:
        """Move an occupant to a new nick."""
        self._by_nick.pop(occupant.nick, None)
        occupant.nick = nick
        occupant.changed()
        self._by_nick[nick] = occupant
