"""The ceiling: the cheapest honest lxml component, the yardstick for every other target.

It parses with lxml's pull parser and a tag filter, builds replies as elements serialised
by ``etree.tostring``, writes once per read with all replies joined, and removes each
handled stanza from the stream root so that memory stays flat. Replies start as copies of
an empty template (half the cost of building an element with its namespace map), and an
answer that never changes, the domain's disco#info, is serialised once. It runs on the Twisted
reactor, like Netherfield, so that the event loop is the same on both sides of a ratio.

Its room is the least XEP-0045 needs for the bench's scenarios: join, leave, groupchat
reflection, disco#info, and an owner form that is accepted without being read (rooms are
never locked). A reflected message, and an occupant's presence, is serialised once: only
the ``to`` address changes from one recipient to the next. ``--rooms R`` fills an
in-memory store with R persistent rooms that are loaded on first use.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import TypeAlias

from lxml import etree
from twisted.internet import protocol
from twisted.internet.interfaces import ITCPTransport
from twisted.python.failure import Failure

from bench.wire import (
    COMPONENT_NS,
    DISCO_INFO_NS,
    MUC_NS,
    MUC_OWNER_NS,
    MUC_USER_NS,
    component_arguments,
    handshake_digest,
)

MESSAGE = f"{{{COMPONENT_NS}}}message"
PRESENCE = f"{{{COMPONENT_NS}}}presence"
IQ = f"{{{COMPONENT_NS}}}iq"
HANDSHAKE = f"{{{COMPONENT_NS}}}handshake"
BODY = f"{{{COMPONENT_NS}}}body"
DISCO_INFO = f"{{{DISCO_INFO_NS}}}query"
MUC_OWNER = f"{{{MUC_OWNER_NS}}}query"
STANZAS_NS = "urn:ietf:params:xml:ns:xmpp-stanzas"

STREAM_ID = re.compile(rb"<stream:stream\b[^>]*?\bid=['\"]([^'\"]+)['\"][^>]*>")
NSMAP = {None: COMPONENT_NS}
TEMPLATES = {tag: etree.Element(tag, nsmap=NSMAP) for tag in (f"{{{COMPONENT_NS}}}{name}" for name in (
    "message", "presence", "iq"))}

Element: TypeAlias = etree._Element
Replies = list[bytes]


def _quoted(value: str) -> bytes:
    """Return value as a double-quoted XML attribute value."""
    escaped = value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
    return b'"' + escaped.encode("utf-8") + b'"'


def _stanza(tag: str, sender: str, recipient: str, kind: str, stanza_id: str | None) -> Element:
    """Return an empty stanza, copied from its template, with its addresses, type and id."""
    stanza = copy.copy(TEMPLATES[tag])
    stanza.set("from", sender)
    stanza.set("to", recipient)
    stanza.set("type", kind)
    if stanza_id is not None:
        stanza.set("id", stanza_id)
    return stanza


def _domain_info() -> Element:
    query = etree.Element(DISCO_INFO, nsmap={None: DISCO_INFO_NS})
    etree.SubElement(query, f"{{{DISCO_INFO_NS}}}identity", category="conference", type="text", name="Bench")
    for feature in (DISCO_INFO_NS, MUC_NS):
        etree.SubElement(query, f"{{{DISCO_INFO_NS}}}feature", var=feature)
    return query


class Occupant:
    """A room occupant, with its presence serialised once and addressed per recipient."""

    __slots__ = ("jid", "nick", "presence", "to")

    def __init__(self, nick: str, jid: str, presence: bytes) -> None:
        self.nick = nick
        self.jid = jid
        #: ``to="jid"``, ready to follow ``<presence`` or ``<message``.
        self.to = b" to=" + _quoted(jid)
        #: This occupant's presence to others, without its leading ``<presence``.
        self.presence = presence


class Room:
    """A room: its occupants by nickname, and the serialised addresses of all of them."""

    __slots__ = ("_addresses", "by_jid", "config", "jid", "occupants")

    def __init__(self, jid: str, config: dict[str, str]) -> None:
        self.jid = jid
        self.config = config
        self.occupants: dict[str, Occupant] = {}
        self.by_jid: dict[str, Occupant] = {}
        self._addresses: list[bytes] | None = None

    def addresses(self) -> list[bytes]:
        """Return every occupant's ``to`` attribute, cached until the occupants change."""
        if self._addresses is None:
            self._addresses = [occupant.to for occupant in self.occupants.values()]
        return self._addresses

    def add(self, occupant: Occupant) -> None:
        """Add an occupant."""
        self.occupants[occupant.nick] = occupant
        self.by_jid[occupant.jid] = occupant
        self._addresses = None

    def remove(self, occupant: Occupant) -> None:
        """Remove an occupant."""
        del self.occupants[occupant.nick]
        del self.by_jid[occupant.jid]
        self._addresses = None


def _broadcast(tag: bytes, rest: bytes, addresses: list[bytes]) -> bytes:
    """Return one stanza per address: ``tag`` + address + ``rest``, in one join."""
    if not addresses:
        return b""
    return tag + (rest + tag).join(addresses) + rest


def _occupant_presence(room_jid: str, nick: str, affiliation: str, role: str,
                       codes: tuple[str, ...] = (), unavailable: bool = False) -> bytes:
    """Return an occupant's presence without its leading ``<presence`` and ``to``."""
    attrib = {"from": f"{room_jid}/{nick}"}
    if unavailable:
        attrib["type"] = "unavailable"
    presence = etree.Element(PRESENCE, attrib, nsmap=NSMAP)
    x = etree.SubElement(presence, f"{{{MUC_USER_NS}}}x", nsmap={None: MUC_USER_NS})
    etree.SubElement(x, f"{{{MUC_USER_NS}}}item", affiliation=affiliation, role=role)
    for code in codes:
        etree.SubElement(x, f"{{{MUC_USER_NS}}}status", code=code)
    return etree.tostring(presence)[len(b"<presence"):]


class CeilingComponent(protocol.Protocol):
    """One component connection: handshake, then the bench's stanzas, answered in batches."""

    def __init__(self, domain: str, secret: str, storage: dict[str, dict[str, str]]) -> None:
        self.domain = domain
        self.secret = secret
        self.storage = storage
        self.echo_jid = f"echo@{domain}"
        self.rooms: dict[str, Room] = {}
        self.parser = etree.XMLPullParser(events=("end",), tag=(MESSAGE, PRESENCE, IQ, HANDSHAKE))
        self.root: Element | None = None
        self.header = b""
        self.authenticated = False
        self.domain_info = etree.tostring(_domain_info())
        self.handlers: dict[str, Callable[[Element, Replies], None]] = {
            MESSAGE: self.on_message,
            PRESENCE: self.on_presence,
            IQ: self.on_iq,
            HANDSHAKE: self.on_handshake,
        }

    def connectionMade(self) -> None:
        ITCPTransport(self.transport).setTcpNoDelay(True)
        self._write(
            b"<stream:stream xmlns='jabber:component:accept'"
            b" xmlns:stream='http://etherx.jabber.org/streams' to='%s'>" % self.domain.encode()
        )

    def dataReceived(self, data: bytes) -> None:
        if self.header is not None:
            self._read_header(data)
        self.parser.feed(data)
        out: Replies = []
        handlers = self.handlers
        for _event, element in self.parser.read_events():
            parent = element.getparent()
            if self.root is None:
                self.root = parent
            if parent is not self.root or parent is None:
                continue
            handlers[element.tag](element, out)
            parent.remove(element)
        if out:
            self._write(b"".join(out))

    def _read_header(self, data: bytes) -> None:
        self.header += data
        match = STREAM_ID.search(self.header)
        if match is None:
            return
        self.header = None  # type: ignore[assignment]
        digest = handshake_digest(match.group(1).decode(), self.secret)
        self._write(b"<handshake>%s</handshake>" % digest.encode())

    def _write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def on_handshake(self, element: Element, out: Replies) -> None:
        """The server accepted the handshake."""
        self.authenticated = True

    # Messages.

    def on_message(self, element: Element, out: Replies) -> None:
        """Echo chat messages to the echo bot; reflect groupchat messages to a room."""
        to = element.get("to")
        if element.get("type") == "groupchat":
            room = self.rooms.get(to or "")
            if room is not None:
                self.reflect(room, element, out)
            return
        if to == self.echo_jid:
            reply = _stanza(MESSAGE, to, element.get("from", ""), "chat", element.get("id"))
            etree.SubElement(reply, BODY).text = element.findtext(BODY)
            out.append(etree.tostring(reply))

    def reflect(self, room: Room, element: Element, out: Replies) -> None:
        """Send a groupchat message to every occupant, serialised once."""
        sender = room.by_jid.get(element.get("from", ""))
        if sender is None:
            out.append(self.error(element, "not-acceptable", "modify"))
            return
        del element.attrib["to"]
        element.set("from", f"{room.jid}/{sender.nick}")
        rest = etree.tostring(element)[len(b"<message"):]
        out.append(_broadcast(b"<message", rest, room.addresses()))

    # Presence.

    def on_presence(self, element: Element, out: Replies) -> None:
        """Join or leave a room."""
        room_jid, _, nick = element.get("to", "").partition("/")
        jid = element.get("from", "")
        if not nick or "@" not in room_jid:
            return
        kind = element.get("type")
        if kind is None:
            self.join(room_jid, nick, jid, element, out)
        elif kind == "unavailable":
            self.leave(room_jid, nick, jid, out)

    def join(self, room_jid: str, nick: str, jid: str, element: Element, out: Replies) -> None:
        """Add an occupant; send it the room's presences, then tell the others."""
        room = self.room(room_jid)
        created = room is None
        if room is None:
            room = self.rooms[room_jid] = Room(room_jid, {})
        if nick in room.occupants:
            if room.occupants[nick].jid != jid:
                out.append(self.error(element, "conflict"))
            return
        affiliation, role = ("owner", "moderator") if created else ("none", "participant")
        occupant = Occupant(nick, jid, _occupant_presence(room_jid, nick, affiliation, role))
        codes = ("110", "201") if created else ("110",)
        own = _occupant_presence(room_jid, nick, affiliation, role, codes)
        to_new = b"<presence" + occupant.to
        others = [other.presence for other in room.occupants.values()]
        if others:
            out.append(to_new + to_new.join(others))
        out.append(_broadcast(b"<presence", occupant.presence, room.addresses()))
        out.append(to_new + own)
        room.add(occupant)

    def leave(self, room_jid: str, nick: str, jid: str, out: Replies) -> None:
        """Remove an occupant and tell everyone, itself included."""
        room = self.rooms.get(room_jid)
        occupant = room.occupants.get(nick) if room is not None else None
        if room is None or occupant is None or occupant.jid != jid:
            return
        room.remove(occupant)
        gone = _occupant_presence(room_jid, nick, "none", "none", unavailable=True)
        out.append(_broadcast(b"<presence", gone, room.addresses()))
        own = _occupant_presence(room_jid, nick, "none", "none", ("110",), unavailable=True)
        out.append(b"<presence" + occupant.to + own)
        if not room.occupants and room_jid not in self.storage:
            del self.rooms[room_jid]

    def room(self, room_jid: str) -> Room | None:
        """Return a live room, loading it from storage if it is stored but not loaded."""
        room = self.rooms.get(room_jid)
        if room is None:
            config = self.storage.get(room_jid)
            if config is not None:
                room = self.rooms[room_jid] = Room(room_jid, dict(config))
        return room

    # IQ.

    def on_iq(self, element: Element, out: Replies) -> None:
        """Answer disco#info on the domain and on rooms, and a room owner's form."""
        kind = element.get("type")
        if kind not in ("get", "set"):
            return
        query = element[0] if len(element) else None
        tag = query.tag if query is not None else None
        to = element.get("to", "")
        if kind == "get" and tag == DISCO_INFO:
            if to == self.domain:
                # The empty result serialises as "<iq .../>": open it around the cached payload.
                out.append(self.result(element, None)[:-2] + b">" + self.domain_info + b"</iq>")
                return
            room = self.room(to)
            if room is not None:
                out.append(self.result(element, self.room_info(room)))
                return
            out.append(self.error(element, "item-not-found"))
        elif kind == "set" and tag == MUC_OWNER and self.room(to) is not None:
            out.append(self.result(element, None))
        else:
            out.append(self.error(element, "service-unavailable"))

    def room_info(self, room: Room) -> Element:
        """Return a room's disco#info query."""
        query = etree.Element(DISCO_INFO, nsmap={None: DISCO_INFO_NS})
        name = room.config.get("name", room.jid.partition("@")[0])
        etree.SubElement(query, f"{{{DISCO_INFO_NS}}}identity", category="conference", type="text", name=name)
        for feature in (MUC_NS, "muc_persistent" if room.jid in self.storage else "muc_temporary"):
            etree.SubElement(query, f"{{{DISCO_INFO_NS}}}feature", var=feature)
        return query

    def result(self, element: Element, payload: Element | None) -> bytes:
        """Return an IQ result to element, carrying payload."""
        reply = _stanza(IQ, element.get("to", ""), element.get("from", ""), "result", element.get("id", ""))
        if payload is not None:
            reply.append(payload)
        return etree.tostring(reply)

    def error(self, element: Element, condition: str, kind: str = "cancel") -> bytes:
        """Return a stanza error in reply to element."""
        reply = _stanza(element.tag, element.get("to", ""), element.get("from", ""), "error", element.get("id"))
        error = etree.SubElement(reply, f"{{{COMPONENT_NS}}}error", type=kind)
        etree.SubElement(error, f"{{{STANZAS_NS}}}{condition}", nsmap={None: STANZAS_NS})
        return etree.tostring(reply)


class CeilingFactory(protocol.ClientFactory):
    """Connect once; stop the reactor when the connection ends or fails."""

    def __init__(self, domain: str, secret: str, storage: dict[str, dict[str, str]]) -> None:
        self.domain = domain
        self.secret = secret
        self.storage = storage

    def buildProtocol(self, addr: object) -> CeilingComponent:
        return CeilingComponent(self.domain, self.secret, self.storage)

    def clientConnectionLost(self, connector: object, reason: Failure) -> None:
        _stop()

    def clientConnectionFailed(self, connector: object, reason: Failure) -> None:
        _stop()


def _stop() -> None:
    from twisted.internet import reactor

    if reactor.running:  # type: ignore[attr-defined]
        reactor.stop()  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> None:
    """Run the ceiling component until the driver closes the connection."""
    parser = component_arguments("The bench's bare lxml component.")
    parser.add_argument("--rooms", type=int, default=0, help="persistent rooms to put in storage")
    args = parser.parse_args(argv)
    storage = {f"room{i}@{args.domain}": {"name": f"Room {i}"} for i in range(args.rooms)}
    from twisted.internet import reactor

    reactor.connectTCP(args.host, args.port, CeilingFactory(args.domain, args.secret, storage))  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
