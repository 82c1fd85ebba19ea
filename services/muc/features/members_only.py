"""Members-only rooms (XEP-0045 §7.2.5, §9.4): only those with an affiliation may enter.

When a room becomes members-only, the occupants without an affiliation
leave it (status 322).
"""

from __future__ import annotations

from collections.abc import Iterable

from component.errors import StanzaError
from services.muc.config import RoomConfig
from services.muc.context import RoomContext
from services.muc.feature import Join
from services.muc.switch import Switch

__all__ = ["MembersOnly"]


class MembersOnly(Switch):
    """Entering takes an affiliation."""

    name = "members-only"
    setting = "members_only"
    var = "muc#roomconfig_membersonly"
    position = 60
    label = "Only members may enter"
    disco = ("muc_membersonly", "muc_open")

    def check_entry(self, room: RoomContext, join: Join) -> None:
        # Moderated or not, only members-only gives someone unaffiliated no role.
        if room.role_for(join.affiliation) == "none":
            raise StanzaError("registration-required", text="the room is members-only")

    def on_config_change(self, room: RoomContext, old: RoomConfig, new: RoomConfig) -> Iterable[int]:
        if new.members_only and not old.members_only:
            for occupant in room.occupants:
                if room.role_for(room.affiliation_of(occupant.bare)) == "none":
                    room.remove(occupant, [322], affiliation="none")
        return ()
