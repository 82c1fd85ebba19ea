"""Registering with a room (XEP-0045 §7.10) and discovering one's reserved nick (§7.12).

Registering makes the user a member (when it was not affiliated) and
reserves its nick: nobody else may enter or change to it, nor to a nick that
looks like it (see :mod:`services.muc.nicks`). Only those already affiliated
may register, as in Prosody, unless the service's
``allow_unaffiliated_register`` lets anyone: registering made a member of
anybody who asked, and so gave voice to any visitor of a moderated room.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from lxml import etree

from component import namespaces as ns
from component.errors import StanzaError
from component.forms import Form, parse_form
from component.jid import JID
from component.stanza import Stanza
from services.muc.context import RoomContext
from services.muc.feature import Feature, IQHandler
from services.muc.features import admin
from services.muc.store import AffiliationChange

__all__ = ["MUC_REGISTER", "REGISTER", "RESERVED_NICK_NODE", "Registration"]

REGISTER = "jabber:iq:register"
MUC_REGISTER = "http://jabber.org/protocol/muc#register"
RESERVED_NICK_NODE = "x-roomuser-item"


_QUERY = f"{{{REGISTER}}}query"


class Registration(Feature):
    """Registering a nick with the room, and asking which nick one registered."""

    name = "registration"

    def disco_features(self, room: RoomContext) -> Iterable[str]:
        return (MUC_REGISTER,)

    def iq_handlers(self) -> Mapping[tuple[str, str], IQHandler]:
        return {("get", _QUERY): _registration_form, ("set", _QUERY): _register}

    def info_nodes(self) -> Mapping[str, IQHandler]:
        return {RESERVED_NICK_NODE: _reserved_nick}

    def check_nick(self, room: RoomContext, user: JID, nick: str) -> None:
        holder = room.affiliations.holder_of(nick)
        if holder is not None and holder != user.bare:
            raise StanzaError("conflict", text="that nick, or one that looks like it, is registered by someone else")


def _query() -> etree._Element:
    return etree.Element(f"{{{REGISTER}}}query", nsmap={None: REGISTER})


def _check_may_register(room: RoomContext, affiliation: str) -> None:
    if affiliation == "outcast":
        raise StanzaError("forbidden", text="you are banned from this room")
    if affiliation == "none" and not room.service.settings.allow_unaffiliated_register:
        raise StanzaError("registration-required", "auth", text="only members of this room may register with it")


def _registration_form(room: RoomContext, stanza: Stanza) -> etree._Element:
    """The registration form, or the nick already registered."""
    _check_may_register(room, room.affiliations.get(stanza.sender))
    query = _query()
    entry = room.affiliations.entry(stanza.sender)
    if entry is not None and entry.nick is not None:
        etree.SubElement(query, f"{{{REGISTER}}}registered")
        etree.SubElement(query, f"{{{REGISTER}}}username").text = entry.nick
        return query
    etree.SubElement(query, f"{{{REGISTER}}}instructions").text = "Choose the nick to reserve in this room."
    form = Form("form", MUC_REGISTER, title=f"Registration with {room.jid}")
    field = form.add("muc#register_roomnick", type="text-single", label="Desired Nickname")
    field.required = True
    query.append(form.to_element())
    return query


async def _register(room: RoomContext, stanza: Stanza) -> None:
    """Register a nick (a submitted form), or cancel the registration (``<remove/>``)."""
    query = stanza.element[0]
    sender = stanza.sender.bare
    current = room.affiliations.get(sender)
    _check_may_register(room, current)
    room.service.limits.check_registration(stanza.sender)
    if query.find(f"{{{REGISTER}}}remove") is not None:
        entry = room.affiliations.entry(sender)
        if entry is None or entry.nick is None:
            raise StanzaError("item-not-found", text="you are not registered with this room")
        if entry.affiliation == "member":
            await admin.set_affiliation(room, sender, "none", None, None, by=stanza.sender)
        else:
            await room.store_affiliations(
                [AffiliationChange(str(sender), entry.affiliation, entry.reason, None)], by=stanza.sender
            )
            room.affiliations.forget_nick(sender)
        return
    x = query.find(f"{{{ns.DATA_FORMS}}}x")
    if x is None:
        raise StanzaError("bad-request", text="submit the registration form")
    form = parse_form(x)
    if form.type == "cancel":
        return
    if form.type != "submit" or form.form_type not in (None, MUC_REGISTER):
        raise StanzaError("bad-request", text="not a submitted registration form")
    field = form.get("muc#register_roomnick")
    nick = admin.reservable_nick(room, sender, (field.value if field is not None else None) or "")
    if current == "none" and room.config.members_only:
        raise StanzaError("registration-required", text="only members may register with this room")
    affiliation = "member" if current == "none" else current
    entry = room.affiliations.entry(sender)
    reason = entry.reason if entry is not None else None
    await admin.set_affiliation(room, sender, affiliation, None, reason, nick=nick, by=stanza.sender)


def _reserved_nick(room: RoomContext, stanza: Stanza) -> etree._Element:
    """The disco#info answer on node ``x-roomuser-item``: the asker's reserved nick, if any (§7.12)."""
    query = etree.Element(f"{{{ns.DISCO_INFO}}}query", node=RESERVED_NICK_NODE, nsmap={None: ns.DISCO_INFO})
    entry = room.affiliations.entry(stanza.sender)
    if entry is not None and entry.nick:
        etree.SubElement(query, f"{{{ns.DISCO_INFO}}}identity", category="conference", name=entry.nick, type="text")
    return query
