"""Private messages between occupants (XEP-0045 §7.5): who may send them.

The room core passes a private message on (readdressed, with an empty
``muc#user`` element); this feature says whether it may.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from component.errors import StanzaError
from services.muc.affiliations import ROLE_RANK
from services.muc.config import RoomConfig
from services.muc.context import RoomContext
from services.muc.feature import ConfigSubmission, Feature, FieldsAt
from services.muc.occupants import Occupant

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

    def roominfo_fields(self, room: RoomContext, fields: FieldsAt) -> None:
        # Who may send private messages, under the configuration form's name, before anyone enters.
        fields.add(80, FIELD, room.config.allow_pm, type="list-single", label="Who may send private messages")

    def check_private_message(self, room: RoomContext, sender: Occupant, target: Occupant) -> None:
        if not _may_send(room.config.allow_pm, sender):
            raise StanzaError("policy-violation", "cancel", text="private messages are restricted in this room")


def _may_send(allowed: str, sender: Occupant) -> bool:
    if allowed == "anyone":
        return True
    if allowed == "participants":
        return ROLE_RANK[sender.role] >= ROLE_RANK["participant"]
    if allowed == "moderators":
        return sender.role == "moderator"
    return False
