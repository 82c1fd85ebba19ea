"""The room's subject (XEP-0045 §8.1): who may change it, and what disco says of it.

The room core keeps the subject (it is stored with the room), sends it last
to every newcomer, and stores then broadcasts a change this feature allows.
"""

from __future__ import annotations

from component.errors import StanzaError
from services.muc.context import RoomContext
from services.muc.feature import FieldsAt
from services.muc.occupants import Occupant
from services.muc.switch import Switch

__all__ = ["Subject"]

class Subject(Switch):
    """Moderators, and participants when the room allows it, change the subject."""

    name = "subject"
    setting = "change_subject"
    var = "muc#roomconfig_changesubject"
    position = 110
    label = "Participants may change the subject"

    def roominfo_fields(self, room: RoomContext, fields: FieldsAt) -> None:
        fields.add(30, "muc#roominfo_subject", room.subject, label="Current subject")
        fields.add(
            40, "muc#roominfo_changesubject", room.config.change_subject, type="boolean",
            label="Occupants may change the subject",
        )
        # Prosody's name for the same (its clients read that one).
        fields.add(41, self.var, room.config.change_subject, type="boolean", label="Occupants may change the subject")

    def check_subject_change(self, room: RoomContext, occupant: Occupant, subject: str) -> None:
        if not (occupant.role == "moderator" or (occupant.role == "participant" and room.config.change_subject)):
            raise StanzaError("forbidden", text="you are not allowed to change the subject")
