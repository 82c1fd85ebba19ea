"""The MUC namespaces and the small elements every part of the room builds."""

from __future__ import annotations

from collections.abc import Iterable

import attrs
from lxml import etree

from component.stanza import stamp

#: The parser for XML the service itself serialised (stored history, kept presences).
PARSER = etree.XMLParser(resolve_entities=False, no_network=True)

__all__ = [
    "PARSER",
    "MUC", "MUC_USER", "MUC_ADMIN", "MUC_OWNER", "ROOMCONFIG", "ROOMINFO", "STABLE_ID", "SELF_PING",
    "user_x", "item", "X_MUC", "X_USER", "stamp", "PresenceNews", "NO_NEWS",
]

MUC = "http://jabber.org/protocol/muc"
MUC_USER = MUC + "#user"
MUC_ADMIN = MUC + "#admin"
MUC_OWNER = MUC + "#owner"
ROOMCONFIG = MUC + "#roomconfig"
ROOMINFO = MUC + "#roominfo"
STABLE_ID = MUC + "#stable_id"
SELF_PING = MUC + "#self-ping-optimization"

X_MUC = f"{{{MUC}}}x"
X_USER = f"{{{MUC_USER}}}x"


def item(
    affiliation: str,
    role: str | None = None,
    *,
    jid: str | None = None,
    nick: str | None = None,
    actor_nick: str | None = None,
    reason: str | None = None,
    namespace: str = MUC_USER,
) -> etree._Element:
    """An ``<item/>`` of a muc#user (or muc#admin) element, attributes in the XEP's order."""
    element = etree.Element(f"{{{namespace}}}item", nsmap={None: namespace})
    element.set("affiliation", affiliation)
    if jid is not None:
        element.set("jid", jid)
    if nick is not None:
        element.set("nick", nick)
    if role is not None:
        element.set("role", role)
    if actor_nick is not None:
        etree.SubElement(element, f"{{{namespace}}}actor", nick=actor_nick)
    if reason is not None:
        etree.SubElement(element, f"{{{namespace}}}reason").text = reason
    return element


def _codes(codes: Iterable[int]) -> frozenset[int]:
    # A converter of its own: the attrs plugin of mypy cannot tell what a bare frozenset makes.
    return frozenset(codes)


@attrs.frozen
class PresenceNews:
    """What an occupant's presence tells besides the presence itself (§7-§10).

    Status codes for everyone (``codes``) and for the occupant's own
    sessions besides 110 (``self_codes``); in the item, an affiliation other
    than the standing one (a ban's outcast), the new nick of a nick change
    (303), who made the change (``actor``, a nick) and why.
    """

    codes: frozenset[int] = attrs.field(default=frozenset(), converter=_codes)
    self_codes: frozenset[int] = attrs.field(default=frozenset(), converter=_codes)
    affiliation: str | None = None
    nick: str | None = None
    actor: str | None = None
    reason: str | None = None


#: A presence with nothing to tell but itself.
NO_NEWS = PresenceNews()


def user_x(items: Iterable[etree._Element] = (), codes: Iterable[int] = ()) -> etree._Element:
    """``<x xmlns='…muc#user'/>`` with items, then status codes in ascending order."""
    x = etree.Element(X_USER, nsmap={None: MUC_USER})
    for element in items:
        x.append(element)
    for code in sorted(set(codes)):
        etree.SubElement(x, f"{{{MUC_USER}}}status", code=str(code))
    return x
