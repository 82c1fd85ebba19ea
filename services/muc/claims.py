"""What only the room may say about a stanza it relays, removed from what clients send.

A client that puts a ``<stanza-id by='room'/>``, an ``<occupant-id/>``, a
``<delay/>`` or a ``muc#user`` ``<x/>`` (status codes, items with real JIDs)
into a groupchat, a private message or a presence would have the room relay
it as if the room had added it: a forged archive id, a forged sender, a
message dated in the past, a fake "this room is now non-anonymous" (104).
An ``<addresses/>`` (XEP-0033) would, through the server's multicast
service, send the stanza where the client says instead of to the room. The
room removes every such element before it adds its own. A stanza-id is
the room's when its ``by`` is the room's address compared as JIDs (so other
cases, a trailing dot and the room's occupant JIDs count), or when ``by`` is
missing or no JID at all.
"""

from __future__ import annotations

from collections.abc import Set

from lxml import etree

from component import namespaces as ns
from component.jid import JID, InvalidJID, parse_jid
from services.muc.protocol import X_USER

__all__ = ["ROOM_OWNED", "strip_claims"]

_STANZA_ID = f"{{{ns.STANZA_ID}}}stanza-id"
#: Removed wherever they are found: only the room adds these.
ROOM_OWNED = frozenset(
    {
        "{urn:xmpp:occupant-id:0}occupant-id",
        f"{{{ns.DELAY}}}delay",
        "{jabber:x:delay}x",
        X_USER,
        f"{{{ns.ADDRESS}}}addresses",
    }
)
_CLAIMS = ROOM_OWNED | {_STANZA_ID}


def strip_claims(element: etree._Element, tags: Set[object], room: JID) -> None:
    """Remove from ``element`` what only ``room`` may add; ``tags`` are its children's tags."""
    if tags.isdisjoint(_CLAIMS):
        return  # the common case, at the cost of one set operation
    for child in list(element):
        tag = child.tag
        if tag in ROOM_OWNED or (tag == _STANZA_ID and _names(child.get("by"), room)):
            element.remove(child)


def _names(by: str | None, room: JID) -> bool:
    """Whether a stanza-id's ``by`` is, or could pass for, the room."""
    if not by:
        return True
    try:
        # An occupant JID names the room too, for a client that compares bare JIDs.
        return parse_jid(by).bare == room
    except InvalidJID:
        return True
