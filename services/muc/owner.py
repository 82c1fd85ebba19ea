"""The owner protocol (``muc#owner``, XEP-0045 §10): the configuration form and destroying a room."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lxml import etree

from component import namespaces as ns
from component.errors import StanzaError
from component.jid import InvalidJID, parse_jid
from component.stanza import Stanza, text_of
from services.muc.config import apply_submission, config_form
from services.muc.protocol import MUC_OWNER, user_x

if TYPE_CHECKING:
    from services.muc.room import Room

__all__ = ["configure", "get", "set"]


def _owner_only(room: Room, stanza: Stanza) -> None:
    if room.affiliation_of(stanza.sender) != "owner":
        raise StanzaError("forbidden", text="only owners can configure the room")


def get(room: Room, stanza: Stanza) -> etree._Element:
    """The configuration form, for owners."""
    _owner_only(room, stanza)
    query = etree.Element(f"{{{MUC_OWNER}}}query", nsmap={None: MUC_OWNER})
    query.append(config_form(room.config, str(room.jid), room.service.max_history).to_element())
    return query


async def set(room: Room, stanza: Stanza) -> None:
    """A submitted or cancelled form, or a request to destroy the room."""
    _owner_only(room, stanza)
    query = stanza.element[0]
    children = [c for c in query if isinstance(c.tag, str)]
    if not children:
        raise StanzaError("bad-request", text="submit a form or destroy the room")
    child = children[0]
    if child.tag == f"{{{MUC_OWNER}}}destroy":
        alternate = child.get("jid")
        if alternate is not None:
            try:
                alternate = str(parse_jid(alternate))
            except InvalidJID:
                raise StanzaError("jid-malformed", text="the alternate venue is not a JID") from None
        reason = text_of(child, "reason", MUC_OWNER)
        password = text_of(child, "password", MUC_OWNER)
        await room.destroy(alternate, reason, password)
        return
    if child.tag != f"{{{ns.DATA_FORMS}}}x":
        raise StanzaError("bad-request", text="submit a form or destroy the room")
    if child.get("type") == "cancel":
        if room.locked:
            # The creator gave up configuring a new room (§10.1.3): it goes away.
            await room.destroy(None, None)
        return
    await configure(room, child)


async def configure(room: Room, x: etree._Element) -> None:
    """Apply a submitted configuration form: store it, then announce it."""
    old = room.config
    new, codes = apply_submission(old, x, room.service.max_history)
    # Stored first: should the database refuse, the room goes on with the
    # configuration it had, as the owner's error reply says.
    if new.persistent and not room.stored:
        await room.store_everything(new)
    elif not new.persistent and room.stored:
        await room.forget_stored()
    elif room.stored and new != old:
        await room.save_config(new)
    room.config = new
    if new.history_length != room.history.length:
        room.history.resize(new.history_length)
    was_locked = room.locked
    room.locked = False
    if was_locked:
        room.cancel_lock()
    if new.members_only and not old.members_only:
        # Non-members leave a room that became members-only (§9.4, status 322).
        for occupant in room.occupants:
            if room.role_for(room.affiliation_of(occupant.bare)) == "none":
                room.remove(occupant, [322], affiliation="none")
    room.service.room_configured(room)
    if codes:
        announce = etree.Element(
            f"{{{ns.COMPONENT}}}message", {"from": str(room.jid), "type": "groupchat"}, nsmap={None: ns.COMPONENT}
        )
        announce.append(user_x(codes=codes))
        room.broadcast(announce)

