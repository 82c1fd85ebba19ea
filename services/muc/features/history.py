"""Discussion history (XEP-0045 §7.2.15): how many messages a room keeps, and what a newcomer is sent of them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from services.muc.config import RoomConfig
from services.muc.context import RoomContext
from services.muc.feature import ConfigSubmission, Feature, FieldsAt, Join
from services.muc.history import parse_request
from services.muc.protocol import MUC

__all__ = ["DiscussionHistory"]

FIELD = "muc#roomconfig_historylength"
_HISTORY = f"{{{MUC}}}history"


class DiscussionHistory(Feature):
    """The number of messages kept, at most the service's ``max_history``; the newcomer gets those it asks for."""

    name = "history"
    greets_at = 10

    def config_fields(self, room: RoomContext, fields: FieldsAt) -> None:
        most = room.service.settings.max_history
        fields.add(
            150, FIELD, str(room.config.history_length), type="text-single",
            label=f"Messages of history to keep (at most {most})",
        )

    def configure(self, room: RoomContext, submission: ConfigSubmission, config: RoomConfig) -> Mapping[str, Any]:
        most = room.service.settings.max_history
        return {"history_length": min(submission.number(FIELD, config.history_length), most)}

    def on_config_change(self, room: RoomContext, old: RoomConfig, new: RoomConfig) -> Iterable[int]:
        if new.history_length != room.history.length:
            room.history.resize(new.history_length)
        return ()

    def greeting(self, room: RoomContext, join: Join) -> Callable[[], None]:
        # Read before anything is sent: a <history/> the room cannot read refuses the entry (bad-request).
        history = join.x.find(_HISTORY) if join.x is not None else None
        request = parse_request(history, room.component.clock.seconds())
        to = join.sender

        def replay() -> None:
            entries = room.history.select(request, to)
            if entries:
                room.send_bytes(room.history.replay(entries, to), len(entries))

        return replay
