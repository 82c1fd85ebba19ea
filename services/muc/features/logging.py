"""Public logging of a room's discussion (XEP-0045 §10.2): announced with 170 and 171."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from services.muc.config import RoomConfig
from services.muc.context import RoomContext
from services.muc.feature import ConfigSubmission, Feature, FieldsAt, Join

__all__ = ["Logging"]

FIELD = "muc#roomconfig_enablelogging"


class Logging(Feature):
    """Whether the room says its discussion is publicly logged."""

    name = "logging"
    privacy_settings = ("logging",)

    def config_fields(self, room: RoomContext, fields: FieldsAt) -> None:
        fields.add(160, FIELD, room.config.logging, type="boolean", label="Keep a public log of the discussion")

    def configure(self, room: RoomContext, submission: ConfigSubmission, config: RoomConfig) -> Mapping[str, Any]:
        return {"logging": submission.flag(FIELD, config.logging)}

    def on_config_change(self, room: RoomContext, old: RoomConfig, new: RoomConfig) -> Iterable[int]:
        if new.logging != old.logging:
            return (170 if new.logging else 171,)
        return ()

    def entry_codes(self, room: RoomContext, join: Join) -> Iterable[int]:
        return (170,) if room.config.logging and join.new_occupant else ()
