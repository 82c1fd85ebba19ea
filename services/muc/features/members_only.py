"""Members-only rooms (XEP-0045 §7.2.5, §9.4): only those with an affiliation may enter.

When a room becomes members-only, the occupants without an affiliation
leave it (status 322).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from component.errors import StanzaError
from services.muc.config import RoomConfig
from services.muc.context import RoomContext
from services.muc.feature import ConfigSubmission, Feature, FieldsAt, Join

__all__ = ["MembersOnly"]

FIELD = "muc#roomconfig_membersonly"


class MembersOnly(Feature):
    """Entering takes an affiliation."""

    name = "members-only"

    def disco_features(self, room: RoomContext) -> Iterable[str]:
        return ("muc_membersonly" if room.config.members_only else "muc_open",)

    def config_fields(self, room: RoomContext, fields: FieldsAt) -> None:
        fields.add(60, FIELD, room.config.members_only, type="boolean", label="Only members may enter")

    def configure(self, room: RoomContext, submission: ConfigSubmission, config: RoomConfig) -> Mapping[str, Any]:
        return {"members_only": submission.flag(FIELD, config.members_only)}

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
