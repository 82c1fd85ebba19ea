"""Message moderation (XEP-0425) and retraction by the author (XEP-0424) in a room.

A moderator asks the room to retract a message by its stanza-id, with an
optional reason: in XEP-0425 0.3's form (``<moderate id='…'
xmlns='urn:xmpp:message-moderate:1'>`` with ``<retract
xmlns='urn:xmpp:message-retract:1'/>``) or in the 0.2 form deployed clients
still send (``<apply-to xmlns='urn:xmpp:fasten:0'>`` around ``<moderate
xmlns='urn:xmpp:message-moderate:0'>``). The room finds the message (in the
archive of a stored room, else in the join history), stores a tombstone in
its place (the message's addresses, ids and occupant-id, and a
``<retracted/>`` that names the moderator, instead of its body), drops it
from the join history, and only then tells every occupant, with one
message that both forms of client read: a ``<retract/>`` of
``message-retract:1`` holding ``<moderated/>`` of ``message-moderate:1``,
and the ``<apply-to/>`` of the 0.2 form.

An occupant that retracts its own message (a groupchat message carrying
``<retract id='…' xmlns='urn:xmpp:message-retract:1'/>``) has the same
tombstone stored, then the retraction is reflected and archived like any
message. A retraction of someone else's message is ``forbidden``; one of a
message the room no longer has is reflected all the same, for the clients
that still show it.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from typing import Any

import attrs
from lxml import etree
from twisted.internet import defer

from component import namespaces as ns
from component.errors import StanzaError
from component.stanza import Stanza, new_id, stamp
from services.muc.context import RoomContext
from services.muc.feature import Feature, GroupchatHandler, IQHandler
from services.muc.features.archive import archives, find, tombstone
from services.muc.occupant_id import OCCUPANT_ID_TAG
from services.muc.protocol import PARSER
from services.muc.store import NOTICE, TOMBSTONE, HistoryRecord

__all__ = ["MODERATE", "MODERATE_0", "RETRACT", "RETRACT_0", "Moderation"]

MODERATE = "urn:xmpp:message-moderate:1"
MODERATE_0 = "urn:xmpp:message-moderate:0"
RETRACT = "urn:xmpp:message-retract:1"
RETRACT_0 = "urn:xmpp:message-retract:0"
FASTEN = "urn:xmpp:fasten:0"
_STANZA_ID = f"{{{ns.STANZA_ID}}}stanza-id"
_ORIGIN_ID = f"{{{ns.STANZA_ID}}}origin-id"
#: What a tombstone keeps of the message it replaces: who said it and its ids, nothing of what was said.
_KEPT = frozenset({_STANZA_ID, _ORIGIN_ID, OCCUPANT_ID_TAG})


@attrs.frozen
class _Request:
    """A moderator's request, in either form: the stanza-id of the message and the reason."""

    stanza_id: str
    reason: str | None


class Moderation(Feature):
    """Moderators retract messages; authors retract their own."""

    name = "moderation"
    # The 0.2 form comes wrapped in <apply-to/>: the room answers it, but supports no other fastening.
    announces_iq_namespaces = False

    def disco_features(self, room: RoomContext) -> tuple[str, ...]:
        features = (MODERATE, MODERATE_0, RETRACT)
        # XEP-0424 §5: the archive keeps a tombstone in place of a retracted message.
        return (*features, f"{RETRACT}#tombstone") if archives(room) else features

    def iq_handlers(self) -> Mapping[tuple[str, str], IQHandler]:
        return {("set", f"{{{MODERATE}}}moderate"): _moderate, ("set", f"{{{FASTEN}}}apply-to"): _moderate_legacy}

    def groupchat_handlers(self) -> Mapping[str, GroupchatHandler]:
        return {f"{{{RETRACT}}}retract": _retract}


def _moderate(room: RoomContext, stanza: Stanza) -> Any:
    moderate = stanza.element[0]
    return _apply(room, stanza, _request(moderate, RETRACT, moderate))


def _moderate_legacy(room: RoomContext, stanza: Stanza) -> Any:
    apply_to = stanza.element[0]
    moderate = apply_to.find(f"{{{MODERATE_0}}}moderate")
    if moderate is None:
        raise StanzaError("feature-not-implemented", text="the room applies only moderation to messages")
    return _apply(room, stanza, _request(moderate, RETRACT_0, apply_to))


def _request(moderate: etree._Element, retract: str, target: etree._Element) -> _Request:
    """What ``<moderate/>`` of either form asks: the ``retract`` namespace's retraction of the message ``target`` names."""
    if moderate.find(f"{{{retract}}}retract") is None:
        raise StanzaError("feature-not-implemented", text="a moderator may only retract a message")
    stanza_id = target.get("id")
    if not stanza_id:
        holder = etree.QName(target).localname
        raise StanzaError("bad-request", text=f"which message? <{holder}/> needs the message's stanza-id")
    reason = moderate.findtext(f"{{{etree.QName(moderate).namespace}}}reason")
    return _Request(stanza_id, reason.strip() or None if reason is not None else None)


async def _apply(room: RoomContext, stanza: Stanza, request: _Request) -> None:
    stanza.keep()  # an error reply, after the archive is read, echoes the request
    moderator = room.occupants.by_real(stanza.sender)
    affiliation = room.affiliation_of(stanza.sender)
    role = moderator.role if moderator is not None else room.role_for(affiliation)
    if role != "moderator":
        raise StanzaError("forbidden", "auth", text="only moderators may moderate messages")
    original = await _original(room, request.stanza_id)
    if original is None:
        raise StanzaError("item-not-found", "modify", text="the room has no message with that stanza-id")
    if moderator is not None:
        by = room.occupant_jid(moderator.nick)
    else:
        # Not in the room (an owner or admin): named by the nick they registered, as Prosody does.
        entry = room.affiliations.entry(stanza.sender.bare)
        by = room.occupant_jid(entry.nick) if entry is not None and entry.nick else str(room.jid)
    moderated = etree.Element(f"{{{MODERATE}}}moderated", {"by": by}, nsmap={None: MODERATE})
    if room.service.settings.occupant_id:
        moderated.append(room.service.occupant_ids.element(room.jid, stanza.sender))
    retracted = _tombstone_marker(room)
    retracted.append(moderated)
    if request.reason is not None:
        etree.SubElement(retracted, f"{{{RETRACT}}}reason").text = request.reason
    notice = _notice(room, request, by, moderated)
    # Archived with the tombstone, so that a client that was away learns of it when it catches up.
    notice_id = uuid.uuid4().hex
    marker = etree.SubElement(notice, _STANZA_ID, nsmap={None: ns.STANZA_ID})
    marker.set("by", str(room.jid))
    marker.set("id", notice_id)
    now = room.component.clock.seconds()
    record = HistoryRecord(notice_id, "", None, etree.tostring(notice, encoding="unicode"), now, kind=NOTICE)
    await tombstone(room, request.stanza_id, _tombstone(original, retracted), record)
    room.broadcast(notice)


def _notice(room: RoomContext, request: _Request, by: str, moderated: etree._Element) -> etree._Element:
    """The message that tells the occupants, read by clients of XEP-0425 0.3 and of 0.2 alike."""
    notice = etree.Element(
        f"{{{ns.COMPONENT}}}message", {"from": str(room.jid), "type": "groupchat", "id": new_id("mod")},
        nsmap={None: ns.COMPONENT},
    )
    retract = etree.SubElement(notice, f"{{{RETRACT}}}retract", {"id": request.stanza_id}, nsmap={None: RETRACT})
    retract.append(copy.deepcopy(moderated))
    if request.reason is not None:
        etree.SubElement(retract, f"{{{RETRACT}}}reason").text = request.reason
    apply_to = etree.SubElement(notice, f"{{{FASTEN}}}apply-to", {"id": request.stanza_id}, nsmap={None: FASTEN})
    legacy = etree.SubElement(apply_to, f"{{{MODERATE_0}}}moderated", {"by": by}, nsmap={None: MODERATE_0})
    etree.SubElement(legacy, f"{{{RETRACT_0}}}retract", nsmap={None: RETRACT_0})
    if request.reason is not None:
        etree.SubElement(legacy, f"{{{MODERATE_0}}}reason").text = request.reason
    return notice


# -- retraction by the author (XEP-0424) ------------------------------------------------------


async def _retract(room: RoomContext, stanza: Stanza, retract: etree._Element) -> Any:
    stanza.keep()  # reflected, or answered with an error, after the archive is read
    author = room.occupants.by_real(stanza.sender)
    if author is None:
        raise StanzaError("not-acceptable", text="only occupants may speak in the room")
    stanza_id = retract.get("id")
    if not stanza_id:
        raise StanzaError("bad-request", text="which message? <retract/> needs the message's stanza-id")
    original = await _original(room, stanza_id)
    if original is not None:
        if not _said_by(room, original, stanza):
            raise StanzaError("forbidden", "auth", text="only its author may retract a message")
        marker = _tombstone_marker(room)
        if stanza.element.get("id"):
            marker.set("id", stanza.element.get("id", ""))
        await tombstone(room, stanza_id, _tombstone(original, marker))
    reflected = room.reflect_groupchat(stanza)
    if isinstance(reflected, defer.Deferred):
        await reflected  # archived, then reflected



# -- the message and its tombstone ---------------------------------------------------------


@attrs.frozen
class _Original:
    """An archived (or kept) message: as the room reflected it, and whose it is when the room knows."""

    element: etree._Element
    #: The author's real bare JID, as the archive keeps it; None from the join history.
    author: str | None


async def _original(room: RoomContext, stanza_id: str) -> _Original | None:
    record = await find(room, stanza_id)
    if record is not None:
        if record.kind == TOMBSTONE:
            return None  # retracted already: nothing is left to retract
        return _Original(etree.fromstring(record.stanza.encode("utf-8"), PARSER), record.sender_jid)
    kept = next((entry for entry in room.history if entry.stanza_id == stanza_id), None)
    if kept is None:
        return None
    return _Original(etree.fromstring(kept.message.untargeted(), PARSER), None)


def _said_by(room: RoomContext, original: _Original, stanza: Stanza) -> bool:
    """Whether the sender of *stanza* wrote *original*: by its archived JID, else by its occupant-id."""
    if original.author is not None:
        return original.author == str(stanza.sender.bare)
    found = original.element.find(OCCUPANT_ID_TAG)
    return found is not None and found.get("id") == room.service.occupant_ids.of(room.jid, stanza.sender)


def _tombstone_marker(room: RoomContext) -> etree._Element:
    return etree.Element(f"{{{RETRACT}}}retracted", {"stamp": stamp(room.component.clock.seconds())}, nsmap={None: RETRACT})


def _tombstone(original: _Original, retracted: etree._Element) -> str:
    """The message as the archive keeps it once retracted: its addresses and ids, the marker, nothing it said."""
    message = original.element
    tomb = etree.Element(message.tag, nsmap={None: ns.COMPONENT})
    for name in ("from", "type", "id"):
        value = message.get(name)
        if value is not None:
            tomb.set(name, value)
    tomb.append(retracted)
    for child in message:
        if child.tag in _KEPT:
            tomb.append(child)
    return etree.tostring(tomb, encoding="unicode")

