"""Moderated rooms (XEP-0045 §7.2.4, §8.3) and voice requests (§7.13, §8.6).

In a moderated room newcomers without an affiliation enter as visitors,
without voice (the role they get is the core's ``role_for``). A visitor
asks for voice with a ``muc#request`` form sent to the room; it goes to
every moderator, and a moderator who submits it with
``muc#request_allow`` set grants the visitor voice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lxml import etree

from component import namespaces as ns
from component.errors import StanzaError
from component.forms import Form, as_bool, parse_form
from component.stanza import Broadcast, Stanza, new_id
from services.muc.affiliations import check_role_change
from services.muc.context import RoomContext
from services.muc.feature import NOT_MINE, MessageHandler
from services.muc.features import admin
from services.muc.switch import Switch

__all__ = ["REQUEST", "Moderated"]

REQUEST = "http://jabber.org/protocol/muc#request"


class Moderated(Switch):
    """Visitors need voice to speak, and may ask the moderators for it."""

    name = "moderated"
    setting = "moderated"
    var = "muc#roomconfig_moderatedroom"
    position = 70
    label = "Moderated (visitors need voice)"
    disco = ("muc_moderated", "muc_unmoderated")

    def disco_features(self, room: RoomContext) -> Iterable[str]:
        return (REQUEST, *super().disco_features(room))

    def message_handlers(self) -> Mapping[str, MessageHandler]:
        return {f"{{{ns.DATA_FORMS}}}x": _voice_request}


def _voice_request(room: RoomContext, stanza: Stanza, x: etree._Element) -> Any:
    """A muc#request form sent to the room: a request, or a moderator's answer to one."""
    if x.findtext(f"{{{ns.DATA_FORMS}}}field[@var='FORM_TYPE']/{{{ns.DATA_FORMS}}}value") != REQUEST:
        return NOT_MINE
    form = parse_form(x)
    occupant = room.occupants.by_real(stanza.sender)
    if occupant is None:
        raise StanzaError("not-acceptable", text="only occupants may ask for voice")
    values = form.values()
    if "muc#request_allow" in values:
        _answer(room, stanza, form)
        return None
    if occupant.role != "visitor":
        return None  # already has voice: nothing to ask
    room.service.limits.check_voice_request(stanza.sender)
    request = Form("form", REQUEST, title="Voice request",
                   instructions="To approve this request for voice, select the "
                   "\"Grant voice to this person?\" checkbox and submit the form.")
    request.add("muc#role", "participant", type="list-single", label="Requested role")
    request.add("muc#jid", str(stanza.sender), type="jid-single", label="User ID")
    request.add("muc#roomnick", occupant.nick, type="text-single", label="Room Nickname")
    request.add("muc#request_allow", False, type="boolean", label="Grant voice to this person?")
    element = etree.Element(f"{{{ns.COMPONENT}}}message", {"from": str(room.jid), "id": new_id("voice")},
                            nsmap={None: ns.COMPONENT})
    element.append(request.to_element())
    data = Broadcast(element)
    for moderator in room.occupants:
        if moderator.role == "moderator":
            room.send_to_occupant(moderator, data)
    return None


def _answer(room: RoomContext, stanza: Stanza, form: Form) -> None:
    if not as_bool(form.get("muc#request_allow"), False):
        return
    field = form.get("muc#roomnick")
    nick = field.value if field is not None else None
    target = room.occupants.by_nick(nick or "")
    if target is None:
        raise StanzaError("item-not-found", text="no occupant has that nick")
    actor = room.occupants.by_real(stanza.sender)
    assert actor is not None
    check_role_change(room.affiliation_of(stanza.sender), actor.role, room.affiliation_of(target.bare), target.role,
                      "participant")
    admin.set_role(room, target.nick, "participant", actor.nick, None)
