"""Who may read the member list (XEP-0045 §9.5, §10.2 ``muc#roomconfig_getmemberlist``).

Admins and owners always may, and, as in Prosody, members of a members-only
room where anyone sees real JIDs (the admin feature's rule). The field
lists the roles whose occupants may too. Prosody 0.12 has no such field, so
this follows XEP-0045, with one limit of our own: the list names each
member by real JID, so in a semi-anonymous room only a moderator's role
opens it (§9.5 keeps real JIDs from non-moderators there). No role is
listed by default, which keeps Prosody's behaviour.
"""

from __future__ import annotations

from component.jid import JID
from services.muc.context import RoomContext
from services.muc.switch import Roles

__all__ = ["MemberList", "may_read"]


class MemberList(Roles):
    """The roles whose occupants may read the member list besides admins and owners."""

    name = "member-list"
    setting = "member_list_roles"
    var = "muc#roomconfig_getmemberlist"
    position = 154
    label = "Roles that may read the member list"
    roles = ("moderator", "participant", "visitor")


def may_read(room: RoomContext, requester: JID) -> bool:
    """Whether an occupant's role lets it read the member list (a client not in the room has no role)."""
    occupant = room.occupants.by_real(requester)
    if occupant is None or occupant.role not in room.config.member_list_roles:
        return False
    return occupant.role == "moderator" or not room.config.anonymous
