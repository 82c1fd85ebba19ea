"""Discussion history (XEP-0045 §7.2.15): how many messages a room keeps for newcomers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from services.muc.config import RoomConfig
from services.muc.context import RoomContext
from services.muc.feature import ConfigSubmission, Feature, FieldsAt

__all__ = ["HistoryLength"]

FIELD = "muc#roomconfig_historylength"


class HistoryLength(Feature):
    """The number of messages kept, at most the service's ``max_history``."""

    name = "history"

    def config_fields(self, room: RoomContext, fields: FieldsAt) -> None:
        most = room.service.max_history
        fields.add(
            150, FIELD, str(room.config.history_length), type="text-single",
            label=f"Messages of history to keep (at most {most})",
        )

    def configure(self, room: RoomContext, submission: ConfigSubmission, config: RoomConfig) -> Mapping[str, Any]:
        return {"history_length": min(submission.number(FIELD, config.history_length), room.service.max_history)}

    def on_config_change(self, room: RoomContext, old: RoomConfig, new: RoomConfig) -> Iterable[int]:
        if new.history_length != room.history.length:
            room.history.resize(new.history_length)
        return ()
