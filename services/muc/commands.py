"""The MUC's admin commands (XEP-0050), for the domain's service admins.

* list rooms (:data:`LIST_NODE`): every room, in memory or stored, with its
  occupants and its last activity, most recently active first;
* room info (:data:`INFO_NODE`): one room's settings, affiliations and
  occupants with their roles;
* destroy rooms (:data:`DESTROY_NODE`, Prosody's ``mod_muc`` node and form
  field ``rooms``), with a reason and an alternate venue: the room's own
  destroy (§10.9), so the occupants get the same presence as when an owner
  destroys it;
* announce (:data:`ANNOUNCE_NODE`, XEP-0133 §4.23's node and form): a
  groupchat message from each room's bare JID to its occupants, in every room
  in memory, as ejabberd's mod_muc sends a service message (Prosody's
  mod_muc has no announcement; its mod_announce sends headlines to a host's
  users, whom a component cannot list). It is not kept in the rooms' history.

A command that acts on a room runs in the room's turn (:meth:`Room.in_turn`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs
from lxml import etree
from twisted.internet import defer
from twisted.logger import Logger

from component import namespaces as ns
from component.adhoc import Command, Note, Outcome, condition
from component.forms import Field, Form
from component.jid import JID, InvalidJID, parse_jid
from component.stanza import stamp
from services.muc.room import Room

if TYPE_CHECKING:
    from services.muc.service import MucService

__all__ = ["ANNOUNCE_NODE", "DESTROY_NODE", "INFO_NODE", "LIST_NODE", "MAX_LISTED", "muc_commands"]

LIST_NODE = "urn:netherfield:muc#list-rooms"
INFO_NODE = "urn:netherfield:muc#room-info"
DESTROY_NODE = "http://prosody.im/protocol/muc#destroy"
ANNOUNCE_NODE = "http://jabber.org/protocol/admin#announce"
#: XEP-0133's FORM_TYPE for its forms.
ADMIN_FORM = "http://jabber.org/protocol/admin"
#: Rooms one answer lists (or offers to destroy): an answer must stay below
#: what the server takes in one stanza.
MAX_LISTED = 200
log = Logger()

# RFC 7622 §3.1: an address is at most 3071 bytes; an announcement must fit beside the longest.
_LONGEST_ADDRESS = 3071


@attrs.frozen
class _Summary:
    jid: JID
    name: str
    occupants: int
    last_activity: float | None
    persistent: bool


def muc_commands(service: MucService) -> list[Command]:
    """The service's commands, for its admins."""
    commands = _Commands(service)
    may_run = service.is_admin
    return [
        Command(LIST_NODE, "List rooms", may_run, commands.list_rooms),
        Command(INFO_NODE, "Show a room", may_run, commands.room_info, commands.ask_room),
        Command(DESTROY_NODE, "Destroy rooms", may_run, commands.destroy, commands.ask_destroy),
        Command(ANNOUNCE_NODE, "Send an announcement to every room", may_run, commands.announce, commands.ask_announce),
    ]


class _Commands:
    """The steps of the commands, over one service."""

    def __init__(self, service: MucService) -> None:
        self.service = service
        self.domain = service.component.jid

    # -- rooms ---------------------------------------------------------------

    def _loaded(self) -> list[Room]:
        return [e for e in self.service.component.router.entities() if isinstance(e, Room) and e.exists]

    async def _rooms(self) -> list[_Summary]:
        """Every room, most recently active first: those in memory, then those only stored."""
        found = {
            room.jid.node or "": _Summary(
                room.jid, room.config.name, len(room.occupants), room.last_activity, room.config.persistent
            )
            for room in self._loaded()
        }
        store = self.service.store
        if store is not None:
            last = await store.last_messages()
            for record in await store.list_rooms():
                if record.node not in found:
                    when = last.get(record.node) or record.created_at
                    name = str(record.config.get("name") or "")
                    found[record.node] = _Summary(JID(record.node, self.domain.domain), name, 0, when, True)
        return sorted(found.values(), key=lambda s: (-(s.last_activity or 0.0), str(s.jid)))

    async def _room(self, jid: JID) -> Room | None:
        """The room at ``jid``, loaded if it is stored; None if there is no such room."""
        located: Any = self.service.component.router.locate(jid)
        if isinstance(located, defer.Deferred):
            located = await located
        return located if isinstance(located, Room) else None

    def _room_jid(self, value: str | None) -> JID:
        """A room address from a form: ``room@domain``, or the node alone."""
        text = (value or "").strip()
        if text and "@" not in text:
            text = f"{text}@{self.domain.domain}"
        try:
            jid = parse_jid(text)
        except InvalidJID:
            raise condition("bad-payload", "bad-request", f"{value!r} is not a room address") from None
        if jid.node is None or jid.domain != self.domain.domain:
            raise condition("bad-payload", "bad-request", f"{value!r} is not a room of {self.domain}")
        return jid.bare

    # -- list rooms ------------------------------------------------------------

    async def list_rooms(self, sender: JID, form: Form | None) -> Outcome:
        rooms = await self._rooms()
        result = Form("result", LIST_NODE, title=f"Rooms of {self.domain}")
        result.add("rooms", len(rooms), type="text-single", label="Rooms")
        result.reported = [
            Field("jid", "jid-single", "Room"),
            Field("name", "text-single", "Name"),
            Field("occupants", "text-single", "Occupants"),
            Field("last-activity", "text-single", "Last activity"),
            Field("persistent", "boolean", "Persistent"),
        ]
        for room in rooms[:MAX_LISTED]:
            when = "" if room.last_activity is None else stamp(room.last_activity)
            result.items.append([
                Field("jid", values=[str(room.jid)]),
                Field("name", values=[room.name]),
                Field("occupants", values=[str(room.occupants)]),
                Field("last-activity", values=[when]),
                Field("persistent", values=["1" if room.persistent else "0"]),
            ])
        notes: tuple[Note, ...] = ()
        if len(rooms) > MAX_LISTED:
            notes = (Note(f"Only the {MAX_LISTED} most recently active of {len(rooms)} rooms are listed.", "warn"),)
        return Outcome(result, notes)

    # -- room info ---------------------------------------------------------------

    async def ask_room(self, sender: JID) -> Form:
        form = Form("form", INFO_NODE, title="Show a room", instructions="Give the address of the room.")
        form.add("room", type="jid-single", label="Room", required=True)
        return form

    async def room_info(self, sender: JID, form: Form | None) -> Outcome:
        assert form is not None
        jid = self._room_jid(_value(form, "room"))
        room = await self._room(jid)
        if room is None:
            return _no_such_room(jid)
        result: list[Form] = []

        def describe() -> None:
            if room.exists:
                result.append(_room_form(room))

        await defer.maybeDeferred(room.in_turn, describe)
        return Outcome(result[0]) if result else _no_such_room(jid)

    # -- destroy -------------------------------------------------------------------

    async def ask_destroy(self, sender: JID) -> Form:
        rooms = sorted(str(room.jid) for room in (await self._rooms())[:MAX_LISTED])
        form = Form("form", DESTROY_NODE, title="Destroy rooms", instructions="Select the rooms to destroy.")
        form.add("rooms", type="list-multi", label="Rooms to destroy", options=[(None, r) for r in rooms], required=True)
        form.add("reason", type="text-single", label="Reason, told to the occupants")
        form.add("alternate", type="jid-single", label="Where the occupants may go instead (a room's address)")
        return form

    async def destroy(self, sender: JID, form: Form | None) -> Outcome:
        assert form is not None
        field = form.get("rooms")
        wanted = [self._room_jid(value) for value in (field.values if field else []) if value.strip()]
        if not wanted:
            raise condition("bad-payload", "bad-request", "choose at least one room")
        reason = _value(form, "reason") or None
        alternate = _value(form, "alternate") or None
        if alternate is not None:
            try:
                alternate = str(parse_jid(alternate))
            except InvalidJID:
                raise condition("bad-payload", "bad-request", "the alternate venue is not a JID") from None
        destroyed: list[str] = []
        missing: list[str] = []
        failed: list[str] = []
        for jid in dict.fromkeys(wanted):
            room = await self._room(jid)
            done = False
            if room is not None:
                try:
                    done = await defer.maybeDeferred(room.in_turn, functools.partial(_destroy, room, alternate, reason))
                except Exception:
                    # The room goes on as it was (see Room.destroy); the others are still destroyed.
                    log.failure("{room}: an admin's destroy failed", room=str(jid))
                    failed.append(str(jid))
                    continue
            (destroyed if done else missing).append(str(jid))
        notes = []
        if destroyed:
            notes.append(Note("The following rooms were destroyed:\n" + "\n".join(destroyed)))
        if missing:
            notes.append(Note("There are no such rooms:\n" + "\n".join(missing), "error"))
        if failed:
            notes.append(Note("These rooms could not be destroyed (see the log):\n" + "\n".join(failed), "error"))
        return Outcome(notes=tuple(notes))

    # -- announce ---------------------------------------------------------------------

    async def ask_announce(self, sender: JID) -> Form:
        form = Form(
            "form", ADMIN_FORM, title="Making an Announcement",
            instructions="Fill out this form to make an announcement to the occupants of every room.",
        )
        form.add("announcement", type="text-multi", label="Announcement", required=True)
        return form

    async def announce(self, sender: JID, form: Form | None) -> Outcome:
        assert form is not None
        field = form.get("announcement")
        text = "\n".join(field.values).strip("\n") if field else ""
        if not text.strip():
            raise condition("bad-payload", "bad-request", "the announcement is empty")
        component = self.service.component
        probe = _announcement(self.domain, text)
        if len(etree.tostring(probe, encoding="utf-8")) + _LONGEST_ADDRESS > component.max_outgoing_bytes:
            raise condition("bad-payload", "bad-request", "the announcement is too long to send")
        told = [0, 0]

        def tell(room: Room) -> None:
            if room.exists and not room.destroyed and len(room.occupants):
                room.broadcast(_announcement(room.jid, text))
                told[0] += 1
                told[1] += len(room.occupants)

        for room in self._loaded():
            await defer.maybeDeferred(room.in_turn, functools.partial(tell, room))
        return Outcome(notes=(Note(f"Announcement sent to {told[1]} occupants in {told[0]} rooms."),))


def _value(form: Form, var: str) -> str:
    field = form.get(var)
    return (field.value or "").strip() if field is not None else ""


def _no_such_room(jid: JID) -> Outcome:
    return Outcome(notes=(Note(f"There is no room {jid}.", "error"),))


def _destroy(room: Room, alternate: str | None, reason: str | None) -> Any:
    """Destroy ``room`` if it exists: a Deferred firing with True, or False."""
    if not room.exists or room.destroyed:
        return False
    return defer.ensureDeferred(room.destroy(alternate, reason)).addCallback(lambda _: True)


def _announcement(sender: JID, text: str) -> etree._Element:
    element = etree.Element(f"{{{ns.COMPONENT}}}message", {"from": str(sender), "type": "groupchat"},
                            nsmap={None: ns.COMPONENT})
    etree.SubElement(element, f"{{{ns.COMPONENT}}}body").text = text
    return element


def _room_form(room: Room) -> Form:
    """What an admin sees of a room: its settings, affiliations and occupants."""
    config = room.config
    form = Form("result", INFO_NODE, title=f"Room {room.jid}")

    def add(var: str, label: str, value: str | bool | int | Iterable[str], type: str = "text-single") -> None:
        form.add(var, value, type=type, label=label)

    add("jid", "Room", str(room.jid), "jid-single")
    add("name", "Name", config.name)
    add("description", "Description", config.description)
    add("subject", "Subject", room.subject.text)
    add("persistent", "Persistent", config.persistent, "boolean")
    add("public", "Listed in the directory", config.public, "boolean")
    add("members-only", "Members only", config.members_only, "boolean")
    add("moderated", "Moderated", config.moderated, "boolean")
    add("password-protected", "Entering needs a password", config.needs_password, "boolean")
    add("whois", "Who sees real JIDs", config.whois)
    add("max-users", "Most occupants (0: no limit)", config.max_users)
    add("locked", "Locked until its owner configures it", room.locked, "boolean")
    for affiliation in ("owner", "admin", "member", "outcast"):
        holders = sorted(str(jid) for jid, _ in room.affiliations.with_affiliation(affiliation))
        add(f"{affiliation}s", f"{affiliation.capitalize()}s", holders, "jid-multi")
    add("occupants", "Occupants", len(room.occupants))
    form.reported = [
        Field("nick", "text-single", "Nick"),
        Field("jids", "jid-multi", "Real JIDs"),
        Field("role", "text-single", "Role"),
        Field("affiliation", "text-single", "Affiliation"),
    ]
    for occupant in sorted(room.occupants, key=lambda o: o.nick):
        form.items.append([
            Field("nick", values=[occupant.nick]),
            Field("jids", values=sorted(str(session) for session in occupant.sessions)),
            Field("role", values=[occupant.role]),
            Field("affiliation", values=[room.affiliation_of(occupant.bare)]),
        ])
    return form
