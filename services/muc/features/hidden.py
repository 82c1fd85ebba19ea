"""Public and hidden rooms (XEP-0045 §6.3, §10.2): whether the service's disco#items lists a room."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from services.muc.config import RoomConfig
from services.muc.context import RoomContext
from services.muc.feature import ConfigSubmission, Feature, FieldsAt

__all__ = ["Hidden"]

FIELD = "muc#roomconfig_publicroom"


class Hidden(Feature):
    """Listed in the directory of rooms, or not (the service keeps the directory)."""

    name = "hidden"

    def disco_features(self, room: RoomContext) -> Iterable[str]:
        return ("muc_public" if room.config.public else "muc_hidden",)

    def config_fields(self, room: RoomContext, fields: FieldsAt) -> None:
        fields.add(50, FIELD, room.config.public, type="boolean", label="Listed in the directory of rooms")

    def configure(self, room: RoomContext, submission: ConfigSubmission, config: RoomConfig) -> Mapping[str, Any]:
        return {"public": submission.flag(FIELD, config.public)}
