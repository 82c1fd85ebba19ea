"""Mediated invitations and declines (XEP-0045 §7.8.2).

An occupant asks the room to invite someone; the room sends the invitation
from its own address, with the room's password when it has one. In a
members-only room only admins and owners may invite, or any occupant when
the room allows invitations (``muc#roomconfig_allowinvites``), and the
invitee becomes a member. Direct invitations (XEP-0249) go from client to
client and never reach the room. A decline is relayed only from an occupant
or from someone the one it is addressed to invited (see
:mod:`services.muc.limits`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lxml import etree
from twisted.internet import defer

from component import namespaces as ns
from component.errors import StanzaError
from component.jid import JID, InvalidJID, parse_jid
from component.stanza import Stanza, text_of
from services.muc.affiliations import AFFILIATION_RANK, ROLE_RANK
from services.muc.context import RoomContext
from services.muc.feature import FieldsAt, MessageHandler
from services.muc.features import admin
from services.muc.protocol import MUC_USER, X_USER
from services.muc.switch import Switch

__all__ = ["MAX_INVITATIONS", "Invitations"]

class Invitations(Switch):
    """Invitations and declines relayed by the room; the setting that lets members invite."""

    name = "invitations"
    setting = "allow_invites"
    var = "muc#roomconfig_allowinvites"
    position = 130
    label = "Occupants may invite others"

    def roominfo_fields(self, room: RoomContext, fields: FieldsAt) -> None:
        # Whether an occupant (with voice) may invite: always in an open room (as Prosody says it).
        may = room.config.allow_invites or not room.config.members_only
        fields.add(70, self.var, may, type="boolean", label=self.label)

    def message_handlers(self) -> Mapping[str, MessageHandler]:
        return {X_USER: _invite_or_decline}


_INVITE = f"{{{MUC_USER}}}invite"
_DECLINE = f"{{{MUC_USER}}}decline"
#: XEP-0249's element, which clients that predate mediated invitations understand.
CONFERENCE = "jabber:x:conference"


def _address(element: etree._Element) -> JID:
    try:
        return parse_jid(element.get("to") or "")
    except InvalidJID:
        raise StanzaError("jid-malformed", text="the invitation's 'to' is not a JID") from None


MAX_INVITATIONS = 10


def _invite_or_decline(room: RoomContext, stanza: Stanza, x: etree._Element) -> Any:
    """A message to the room carrying ``<x xmlns='…muc#user'/>``: invitations or a decline."""
    invitations = [e for e in x.iterchildren(_INVITE) if e.get("to")]
    if len(invitations) > MAX_INVITATIONS:
        # Each invitation is a message from the room: cap what one stanza can make it send.
        raise StanzaError("policy-violation", text=f"at most {MAX_INVITATIONS} invitations in one message")
    if invitations:
        return defer.ensureDeferred(_invite(room, stanza, invitations))
    decline = x.find(_DECLINE)
    if decline is not None and decline.get("to"):
        _decline(room, stanza, decline)
        return None
    raise StanzaError("bad-request", text="expected an invitation or a decline")


def _may_invite(room: RoomContext, sender: JID) -> bool:
    occupant = room.occupants.by_real(sender)
    if occupant is None:
        return False  # invitations come from occupants (§7.8.2); else anyone could fetch the password
    affiliation = room.affiliation_of(sender)
    if ROLE_RANK[occupant.role] <= ROLE_RANK["visitor"]:
        return False
    if room.config.members_only:
        wanted = "member" if room.config.allow_invites else "admin"
        return AFFILIATION_RANK[affiliation] >= AFFILIATION_RANK[wanted]
    return True


async def _invite(room: RoomContext, stanza: Stanza, invitations: list[etree._Element]) -> None:
    if not _may_invite(room, stanza.sender):
        raise StanzaError("forbidden", text="you may not invite anyone to this room")
    room.service.limits.check_invitations(stanza.sender, len(invitations))
    invitees = [(_address(invitation), invitation) for invitation in invitations]
    if room.config.members_only:
        # The invitees become members, all in one write, before any invitation goes.
        joining = {invitee.bare for invitee, _ in invitees if room.affiliations.get(invitee) == "none"}
        reason = f"Invited by {stanza.sender.bare}"
        joins: list[tuple[JID, str, str | None]] = [(jid, "member", reason) for jid in sorted(joining, key=str)]
        await admin.set_affiliations(room, joins, None, by=stanza.sender)
    for invitee, invitation in invitees:
        room.send(_invitation(room, stanza, invitee, text_of(invitation, "reason", MUC_USER)))
        room.service.limits.invited(room.jid.node or "", invitee, stanza.sender)


def _invitation(room: RoomContext, stanza: Stanza, invitee: JID, reason: str | None) -> etree._Element:
    """The invitation the room sends (§7.8.2), under the id the inviter gave.

    The inviter is named by occupant JID unless the room is non-anonymous:
    the invitee could otherwise learn a real JID the room keeps from its
    own occupants. It always carries a ``<reason/>`` (empty if none), a
    readable body and, for older clients, a ``jabber:x:conference``
    element (XEP-0249's, as Prosody adds).
    """
    element = etree.Element(
        f"{{{ns.COMPONENT}}}message", {"from": str(room.jid), "to": str(invitee)}, nsmap={None: ns.COMPONENT}
    )
    if stanza.id is not None:
        element.set("id", stanza.id)
    occupant = room.occupants.by_real(stanza.sender)
    inviter = str(stanza.sender)
    if room.config.anonymous and occupant is not None:
        inviter = room.occupant_jid(occupant.nick)
    x = etree.SubElement(element, f"{{{MUC_USER}}}x", nsmap={None: MUC_USER})
    invite = etree.SubElement(x, _INVITE, {"from": inviter})
    etree.SubElement(invite, f"{{{MUC_USER}}}reason").text = reason
    if room.config.needs_password:
        etree.SubElement(x, f"{{{MUC_USER}}}password").text = room.config.password
    conference = etree.SubElement(element, f"{{{CONFERENCE}}}x", {"jid": str(room.jid)}, nsmap={None: CONFERENCE})
    conference.text = reason
    if room.config.needs_password:
        conference.set("password", room.config.password)
    body = etree.SubElement(element, f"{{{ns.COMPONENT}}}body")
    body.text = f"{inviter} invited you to the room {room.jid}" + (f" ({reason})" if reason else "")
    return element


def _decline(room: RoomContext, stanza: Stanza, decline: etree._Element) -> None:
    """Relay a decline to the inviter; one addressed to an occupant JID goes to that occupant's client."""
    inviter = _address(decline)
    occupant = room.occupants.by_real(stanza.sender) is not None
    if inviter.bare == room.jid:
        addressed = room.occupants.by_nick(inviter.resource or "")
        if addressed is None:
            raise StanzaError("item-not-found", text="no occupant has that nick")
        inviter = addressed.main
    room.service.limits.check_decline(room.jid.node or "", stanza.sender, inviter, occupant=occupant)
    element = etree.Element(
        f"{{{ns.COMPONENT}}}message", {"from": str(room.jid), "to": str(inviter)}, nsmap={None: ns.COMPONENT}
    )
    if stanza.id is not None:
        element.set("id", stanza.id)
    x = etree.SubElement(element, f"{{{MUC_USER}}}x", nsmap={None: MUC_USER})
    declined = etree.SubElement(x, _DECLINE, {"from": str(stanza.sender.bare)})
    reason = text_of(decline, "reason", MUC_USER)
    if reason is not None:
        etree.SubElement(declined, f"{{{MUC_USER}}}reason").text = reason
    body = etree.SubElement(element, f"{{{ns.COMPONENT}}}body")
    body.text = f"{stanza.sender.bare} declined your invitation to the room {room.jid}" + (f" ({reason})" if reason else "")
    room.send(element)
