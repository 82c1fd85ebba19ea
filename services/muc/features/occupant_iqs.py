"""IQs from one occupant to another (XEP-0045 §7.2.4's occupant JIDs; XEP-0410 self-ping), relayed by the room.

The room passes an IQ to the occupant's client under a new id, from the
sender's room JID, and the answer back. vCards and PEP belong to the
account rather than to one client: those go to the occupant's bare JID, as
in Prosody. A client that pings its own occupant JID is answered by the
room itself (XEP-0410), which is how it learns it is still in. An error
comes back with its condition only: its text or payload may carry the
occupant's real address.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

from lxml import etree
from twisted.python.failure import Failure

from component import namespaces as ns
from component.entity import IQResult
from component.errors import StanzaError
from component.iq import IQTimeout
from component.stanza import Stanza, new_id
from services.muc.context import RoomContext
from services.muc.feature import Feature
from services.muc.protocol import SELF_PING

__all__ = ["OccupantIQs"]

# IQs an occupant sends another about the other's account (vCard-temp, vCard4, PEP).
_ACCOUNT_NAMESPACES = frozenset({"vcard-temp", "urn:ietf:params:xml:ns:vcard-4.0", "http://jabber.org/protocol/pubsub"})


class OccupantIQs(Feature):
    """IQs to occupant JIDs, relayed to the occupant; a self-ping answered by the room."""

    name = "occupant-iqs"

    def disco_features(self, room: RoomContext) -> Iterable[str]:
        return (SELF_PING,)

    def iq_to_occupant(self, room: RoomContext, stanza: Stanza) -> IQResult:
        sender = room.occupants.by_real(stanza.sender)
        if sender is None:
            # XEP-0410 §3.2: what tells a client that pings itself it is no longer joined.
            raise StanzaError("not-acceptable", "cancel", text="only occupants may query other occupants", by=str(room.jid))
        target = room.occupants.by_nick(stanza.recipient.resource or "")
        if target is None:
            raise StanzaError("item-not-found", text="no such occupant")
        payload = stanza.payload()
        if payload is None:
            raise StanzaError("bad-request", text="an iq request needs one payload element")
        if target is sender and payload.tag == f"{{{ns.PING}}}ping" and stanza.type == "get":
            return None  # XEP-0410: the client is still in the room
        to = target.bare if etree.QName(payload).namespace in _ACCOUNT_NAMESPACES else target.main
        forwarded = etree.Element(
            stanza.element.tag,
            {"from": room.occupant_jid(sender.nick), "to": str(to), "type": stanza.type or "get", "id": new_id("muc")},
            nsmap={None: ns.COMPONENT},
        )
        forwarded.append(copy.deepcopy(payload))
        limits = room.service.limits
        pending = limits.start_iq(room.node, stanza.sender)
        reply = room.request(forwarded).addBoth(limits.end_iq, pending)
        return reply.addCallbacks(_answered, _failed)


def _answered(element: etree._Element) -> etree._Element | None:
    return next((c for c in element if isinstance(c.tag, str)), None)


def _failed(failure: Failure) -> None:
    # Pass on only the condition: an error's "by", text or payload may carry the occupant's real address.
    if failure.check(IQTimeout):
        raise StanzaError("recipient-unavailable", text="the occupant did not answer")
    error = failure.check(StanzaError) and failure.value
    if isinstance(error, StanzaError):
        raise StanzaError(error.condition, error.type)
    failure.raiseException()
