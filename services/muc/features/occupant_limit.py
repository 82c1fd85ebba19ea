"""The largest number of occupants a room takes (XEP-0045 §7.2.10); admins and owners always enter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from component.errors import StanzaError
from services.muc.config import RoomConfig
from services.muc.context import RoomContext
from services.muc.feature import ConfigSubmission, Feature, FieldsAt, Join

__all__ = ["OccupantLimit"]

FIELD = "muc#roomconfig_maxusers"
MAX_USERS_OPTIONS = ("10", "20", "30", "50", "100", "200", "500", "1000", "none")


class OccupantLimit(Feature):
    """A full room turns newcomers away with ``service-unavailable`` (wait)."""

    name = "occupant-limit"

    def config_fields(self, room: RoomContext, fields: FieldsAt) -> None:
        limit = room.config.max_users
        fields.add(
            140, FIELD, str(limit) if limit else "none", type="list-single", label="Maximum number of occupants",
            options=[(None if value != "none" else "No limit", value) for value in MAX_USERS_OPTIONS],
        )

    def configure(self, room: RoomContext, submission: ConfigSubmission, config: RoomConfig) -> Mapping[str, Any]:
        return {"max_users": submission.number(FIELD, config.max_users, none_value=0)}

    def roominfo_fields(self, room: RoomContext, fields: FieldsAt) -> None:
        if room.config.max_users:
            fields.add(60, FIELD, room.config.max_users, label="Maximum number of occupants")

    def check_seat(self, room: RoomContext, join: Join) -> None:
        limit = room.config.max_users
        if limit and len(room.occupants) >= limit and join.affiliation not in ("owner", "admin"):
            raise StanzaError("service-unavailable", "wait", text="the room is full")
