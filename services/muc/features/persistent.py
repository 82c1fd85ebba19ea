"""Persistent and temporary rooms (XEP-0045 §10.2): whether a room outlives its last occupant.

The setting only; what becoming persistent stores (the room whole, in one
transaction) is the room core's part of a configuration change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from services.muc.config import RoomConfig
from services.muc.context import RoomContext
from services.muc.feature import ConfigSubmission, Feature, FieldsAt

__all__ = ["Persistent"]

FIELD = "muc#roomconfig_persistentroom"


class Persistent(Feature):
    """The room stays when empty, and in storage."""

    name = "persistent"

    def disco_features(self, room: RoomContext) -> Iterable[str]:
        return ("muc_persistent" if room.config.persistent else "muc_temporary",)

    def config_fields(self, room: RoomContext, fields: FieldsAt) -> None:
        fields.add(40, FIELD, room.config.persistent, type="boolean", label="Persistent (stays when empty)")

    def configure(self, room: RoomContext, submission: ConfigSubmission, config: RoomConfig) -> Mapping[str, Any]:
        return {"persistent": submission.flag(FIELD, config.persistent)}
