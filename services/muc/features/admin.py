"""The admin protocol (``muc#admin``, XEP-0045 §8, §9): roles, affiliations and their lists.

Moderators change roles by nick (kick, voice); admins and owners change
affiliations by JID (ban, membership, admin and owner rights). Every change
is checked before any is applied; the affiliations of one request are
written to storage in one transaction before any change is applied or
acknowledged, then told to the room with the status codes of §15.2.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
from lxml import etree

from component import namespaces as ns
from component.errors import StanzaError
from component.jid import JID, InvalidJID, parse_jid
from component.stanza import Broadcast, Stanza, text_of
from services.muc.affiliations import (
    AFFILIATION_RANK,
    ROLE_RANK,
    check_affiliation_change,
    check_role_change,
)
from services.muc.context import RoomContext
from services.muc.feature import Feature, IQHandler
from services.muc.features import member_list
from services.muc.nicks import check_nick
from services.muc.occupants import Occupant
from services.muc.protocol import MUC_ADMIN, PresenceNews, item, user_x
from services.muc.store import AffiliationChange

__all__ = [
    "AdminItem", "AdminLists", "apply_affiliation", "reservable_nick", "set_affiliation", "set_affiliations", "set_role",
    "stored_change",
]

_ITEM = f"{{{MUC_ADMIN}}}item"
_QUERY = f"{{{MUC_ADMIN}}}query"


class AdminLists(Feature):
    """The ``muc#admin`` protocol: role and affiliation lists, and changes to them."""

    name = "admin"

    def iq_handlers(self) -> Mapping[tuple[str, str], IQHandler]:
        return {("get", _QUERY): read_list, ("set", _QUERY): change}


def _query() -> etree._Element:
    return etree.Element(f"{{{MUC_ADMIN}}}query", nsmap={None: MUC_ADMIN})


def read_list(room: RoomContext, stanza: Stanza) -> etree._Element:
    """A list of affiliations (for admins and owners) or of roles (for moderators)."""
    query = stanza.element[0]
    wanted = query.find(_ITEM)
    if wanted is None:
        raise StanzaError("bad-request", text="say which list: an item with an affiliation or a role")
    affiliation, role = wanted.get("affiliation"), wanted.get("role")
    actor = room.affiliation_of(stanza.sender)
    reply = _query()
    if affiliation is not None and role is None:
        if affiliation not in AFFILIATION_RANK or affiliation == "none":
            raise StanzaError("bad-request", text=f"no list of affiliation {affiliation!r}")
        # An admin reads the lists up to its own (as Prosody): the owners' is for owners.
        may = actor == "owner" or (actor == "admin" and affiliation in ("admin", "member", "outcast"))
        # Members of a members-only room may see who else is a member (§9.5),
        # but only where everyone may see real JIDs anyway (as in Prosody):
        # in a semi-anonymous room the list would reveal them to non-moderators.
        members_see = room.config.members_only and not room.config.anonymous
        may = may or (affiliation == "member" and actor == "member" and members_see)
        # The roles the owner opened it to (muc#roomconfig_getmemberlist).
        may = may or (affiliation == "member" and member_list.may_read(room, stanza.sender))
        if not may:
            raise StanzaError("forbidden")
        for jid, entry in room.affiliations.with_affiliation(affiliation):
            element = item(affiliation, jid=str(jid), nick=entry.nick, namespace=MUC_ADMIN, reason=entry.reason or None)
            reply.append(element)
        return reply
    if role is not None and affiliation is None:
        if role not in ROLE_RANK or role == "none":
            raise StanzaError("bad-request", text=f"no list of role {role!r}")
        occupant = room.occupants.by_real(stanza.sender)
        if occupant is None or occupant.role != "moderator":
            raise StanzaError("forbidden")
        for other in room.occupants:
            if other.role == role:
                reply.append(item(room.affiliation_of(other.bare), role, jid=str(other.main), nick=other.nick,
                                  namespace=MUC_ADMIN))
        return reply
    raise StanzaError("bad-request", text="an item names an affiliation or a role, not both")


@attrs.frozen
class AdminItem:
    """One ``<item/>`` of a muc#admin set, parsed once: a role change by nick or an affiliation change by JID."""

    #: "role" or "affiliation".
    kind: str
    #: The role or affiliation asked for.
    value: str
    #: The bare JID whose affiliation changes (None for a role change).
    jid: JID | None
    #: The nick whose role changes (None for an affiliation change).
    nick: str | None
    reason: str | None

    @classmethod
    def parse(cls, room: RoomContext, element: etree._Element) -> AdminItem:
        """Read an item; an affiliation change naming only a nick is for that occupant's JID."""
        affiliation, role = element.get("affiliation"), element.get("role")
        reason = text_of(element, "reason", MUC_ADMIN)
        nick = element.get("nick")
        jid: JID | None = None
        if element.get("jid") is not None:
            try:
                jid = parse_jid(element.get("jid") or "").bare
            except InvalidJID:
                raise StanzaError("jid-malformed", text="the item's jid is not a JID") from None
        if affiliation is not None and role is None:
            if jid is None and nick is not None:
                occupant = room.occupants.by_nick(nick)
                jid = occupant.bare if occupant is not None else None
            if jid is None:
                raise StanzaError("bad-request", text="an affiliation change needs a jid")
            # With a jid, a nick is the one reserved for that user (§9.3, §10.6).
            reserved = nick if element.get("jid") is not None and affiliation not in ("none", "outcast") else None
            if reserved is not None:
                reserved = reservable_nick(room, jid, reserved)
            return cls("affiliation", affiliation, jid, reserved, reason)
        if role is not None and affiliation is None:
            if nick is None:
                raise StanzaError("bad-request", text="a role change needs a nick")
            return cls("role", role, None, nick, reason)
        raise StanzaError("bad-request", text="an item changes an affiliation or a role, not both")


def reservable_nick(room: RoomContext, jid: JID, nick: str) -> str:
    """``nick`` as ``jid``'s reserved nick, unless it is no nick or another user holds it (or a look-alike)."""
    try:
        nick = room.jid.with_resource(nick).resource or ""
    except InvalidJID:
        raise StanzaError("jid-malformed", text="that nick is not valid") from None
    if not nick.strip():
        raise StanzaError("not-acceptable", text="a nick is required")
    key = check_nick(nick, room.service.settings.max_nick_length)
    holder = room.affiliations.holder_of(nick)
    occupant = room.occupants.by_key(key)
    if (holder is not None and holder != jid) or (occupant is not None and occupant.bare != jid):
        raise StanzaError("conflict", text="that nick is another user's")
    return nick


async def change(room: RoomContext, stanza: Stanza) -> None:
    """Apply every item of a muc#admin set, after checking them all."""
    query = stanza.element[0]
    changes = [AdminItem.parse(room, element) for element in query.iterchildren(_ITEM)]
    if not changes:
        raise StanzaError("bad-request", text="nothing to change")
    actor_affiliation = room.affiliation_of(stanza.sender)
    actor = room.occupants.by_real(stanza.sender)
    actor_role = actor.role if actor is not None else "none"
    owners = room.affiliations.owners()
    # One item per user: two would be applied and told one after the other,
    # so a user granted and then refused moderation in one request would
    # have been sent the real JIDs in between.
    concerned: list[JID] = []
    for change in changes:
        if change.jid is None:
            target = room.occupants.by_nick(change.nick or "")
            if target is None:
                raise StanzaError("not-acceptable", text="no occupant has that nick")
            if target.bare in concerned:
                raise StanzaError("bad-request", text="one item per user in a request")
            concerned.append(target.bare)
            check_role_change(actor_affiliation, actor_role, room.affiliation_of(target.bare), target.role, change.value)
        else:
            if change.jid in concerned:
                raise StanzaError("bad-request", text="one item per user in a request")
            concerned.append(change.jid)
            check_affiliation_change(
                actor_affiliation, stanza.sender, change.jid, room.affiliations.get(change.jid), change.value, owners
            )
            if change.value == "owner":
                owners = [*owners, change.jid]
            elif change.jid in owners:
                owners = [o for o in owners if o != change.jid]
    actor_nick = actor.nick if actor is not None else None
    # Every affiliation of the set is stored in one transaction before any
    # change is applied or told: refused, the set changes nothing at all.
    # (Role changes name a nick and no jid.)
    rows = [
        stored_change(room, change.jid, change.value, change.reason, change.nick)
        for change in changes
        if change.jid is not None
    ]
    await room.store_affiliations(rows, by=stanza.sender)
    stored = iter(rows)
    for change in changes:
        if change.jid is None:
            set_role(room, change.nick or "", change.value, actor_nick, change.reason)
        else:
            apply_affiliation(room, change.jid, change.value, actor_nick, change.reason, next(stored).nick)


def set_role(room: RoomContext, nick: str, role: str, actor: str | None, reason: str | None) -> None:
    """Give an occupant a role; 'none' kicks it (status 307)."""
    target = room.occupants.by_nick(nick)
    if target is None or target.role == role:
        return
    if role == "none":
        room.remove(target, [307], actor=actor, reason=reason)
        return
    was_moderator = target.role == "moderator"
    shown = room.presence_shown(target.role)
    target.role = role
    room.publish(target, target.presence(), PresenceNews(actor=actor, reason=reason), shown_before=shown)
    _refresh_view(room, target, was_moderator)


def _refresh_view(room: RoomContext, target: Occupant, was_moderator: bool) -> None:
    """A new moderator in a semi-anonymous room now sees real JIDs: resend the occupant list."""
    if room.config.anonymous and not was_moderator and target.role == "moderator":
        for session in target.sessions:
            room.send_occupant_list(session, target)


def stored_change(room: RoomContext, jid: JID, affiliation: str, reason: str | None, nick: str | None = None) -> AffiliationChange:
    """The row that gives ``jid`` an affiliation.

    A registered nick stays with the user while it keeps an affiliation
    (a ban takes it away, §9.1); ``nick`` registers a new one.
    """
    standing = room.affiliations.entry(jid)
    if nick is None and standing is not None and affiliation not in ("none", "outcast"):
        nick = standing.nick
    return AffiliationChange(str(jid), affiliation, reason or "", nick)


async def set_affiliation(
    room: RoomContext, jid: JID, affiliation: str, actor: str | None, reason: str | None, *, nick: str | None = None,
    by: JID | None = None,
) -> None:
    """Change a user's affiliation, asked ``by`` someone: store it, then tell the room (see :func:`apply_affiliation`)."""
    row = stored_change(room, jid, affiliation, reason, nick)
    await room.store_affiliations([row], by=by)
    apply_affiliation(room, jid, affiliation, actor, reason, row.nick)


async def set_affiliations(
    room: RoomContext, changes: list[tuple[JID, str, str | None]], actor: str | None, *, by: JID | None = None
) -> None:
    """Change several users' affiliations (jid, affiliation, reason), asked ``by`` someone: stored in one
    transaction, then told in order."""
    rows = [stored_change(room, jid, affiliation, reason) for jid, affiliation, reason in changes]
    await room.store_affiliations(rows, by=by)
    for (jid, affiliation, reason), row in zip(changes, rows, strict=True):
        apply_affiliation(room, jid, affiliation, actor, reason, row.nick)


def apply_affiliation(room: RoomContext, jid: JID, affiliation: str, actor: str | None, reason: str | None, nick: str | None) -> None:
    """Give a user a stored affiliation in memory and tell the room (301, 321 when it loses its place)."""
    previous = room.affiliation_of(jid)
    room.affiliations.set(jid, affiliation, reason or "", nick)
    if affiliation == previous:
        return
    new_role = room.role_for(room.affiliation_of(jid))
    downgrade = AFFILIATION_RANK[affiliation] < AFFILIATION_RANK[previous]
    present = room.occupants.by_bare(jid)
    if not present:
        _announce_absent(room, jid, affiliation, new_role, reason)
    for occupant in present:
        if affiliation == "outcast":
            room.remove(occupant, [301], affiliation="outcast", actor=actor, reason=reason)
            continue
        if new_role == "none":
            room.remove(occupant, [321], affiliation=affiliation, actor=actor, reason=reason)
            continue
        occupant.changed()
        was_moderator = occupant.role == "moderator"
        shown = room.presence_shown(occupant.role)
        if occupant.role != new_role and (downgrade or ROLE_RANK[occupant.role] < ROLE_RANK[new_role]):
            occupant.role = new_role
        room.publish(occupant, occupant.presence(), PresenceNews(actor=actor, reason=reason), shown_before=shown)
        _refresh_view(room, occupant, was_moderator)


def _announce_absent(room: RoomContext, jid: JID, affiliation: str, role: str, reason: str | None) -> None:
    """Tell the room that someone not in it has a new affiliation (XEP-0045 1.34 example 195).

    A message from the room with the item, to those who may see real JIDs:
    clients of members-only rooms (and OMEMO, which encrypts to every
    member) keep their member list by it, as with Prosody and ejabberd.
    """
    codes = [] if role != "none" else [301 if affiliation == "outcast" else 321]
    x = user_x([item(affiliation, jid=str(jid), reason=reason or None)], codes)
    announce = etree.Element(f"{{{ns.COMPONENT}}}message", {"from": str(room.jid)}, nsmap={None: ns.COMPONENT})
    announce.append(x)
    if room.config.anonymous:
        addresses, _ = room.occupants.addresses_by_role()
    else:
        addresses = room.occupants.addresses()
    if addresses:
        room.send_to_each(Broadcast(announce), addresses)
