"""Private messages between occupants (XEP-0045 §7.5): who may send them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.muc.config import RoomConfig
from services.muc.context import RoomContext
from services.muc.feature import ConfigSubmission, Feature, FieldsAt

__all__ = ["PrivateMessages"]

FIELD = "muc#roomconfig_allowpm"
ALLOW_PM = ("anyone", "participants", "moderators", "none")


class PrivateMessages(Feature):
    """Anyone, participants, moderators or nobody may send private messages."""

    name = "private-messages"

    def config_fields(self, room: RoomContext, fields: FieldsAt) -> None:
        fields.add(
            120, FIELD, room.config.allow_pm, type="list-single", label="Who may send private messages",
            options=[("Anyone", "anyone"), ("Participants", "participants"), ("Moderators", "moderators"), ("Nobody", "none")],
        )

    def configure(self, room: RoomContext, submission: ConfigSubmission, config: RoomConfig) -> Mapping[str, Any]:
        return {"allow_pm": submission.choice(FIELD, config.allow_pm, ALLOW_PM)}
