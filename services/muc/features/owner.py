"""The owner protocol (``muc#owner``, XEP-0045 §10): the configuration form and destroying a room."""

from __future__ import annotations

from collections.abc import Mapping

from lxml import etree

from component import namespaces as ns
from component.entity import AnswerFirst
from component.errors import StanzaError
from component.jid import InvalidJID, parse_jid
from component.stanza import Stanza, text_of
from services.muc.context import RoomContext
from services.muc.feature import Feature, IQHandler
from services.muc.protocol import MUC_OWNER

__all__ = ["Owner"]


_QUERY = f"{{{MUC_OWNER}}}query"


class Owner(Feature):
    """The ``muc#owner`` protocol: the configuration form, its submission, destroying the room."""

    name = "owner"

    def iq_handlers(self) -> Mapping[tuple[str, str], IQHandler]:
        return {("get", _QUERY): _config_form, ("set", _QUERY): _configure_or_destroy}


def _owner_only(room: RoomContext, stanza: Stanza) -> None:
    if room.affiliation_of(stanza.sender) != "owner":
        raise StanzaError("forbidden", text="only owners can configure the room")


def _config_form(room: RoomContext, stanza: Stanza) -> etree._Element:
    """The configuration form, for owners."""
    _owner_only(room, stanza)
    query = etree.Element(f"{{{MUC_OWNER}}}query", nsmap={None: MUC_OWNER})
    query.append(room.config_form().to_element())
    return query


async def _configure_or_destroy(room: RoomContext, stanza: Stanza) -> AnswerFirst | None:
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
        return None
    if child.tag != f"{{{ns.DATA_FORMS}}}x":
        raise StanzaError("bad-request", text="submit a form or destroy the room")
    if child.get("type") == "cancel":
        if room.locked:
            # The creator gave up configuring a new room (§10.1.3): it goes away.
            await room.destroy(None, None)
        return None
    return await room.configure(child, by=stanza.sender)
