"""A room's name, description and language (XEP-0045 §10.2, §15.5.4)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.muc.config import RoomConfig
from services.muc.context import RoomContext
from services.muc.feature import ConfigSubmission, Feature, FieldsAt

__all__ = ["Naming"]

NAME = "muc#roomconfig_roomname"
DESCRIPTION = "muc#roomconfig_roomdesc"
LANGUAGE = "muc#roomconfig_lang"


class Naming(Feature):
    """What the room is called and about, in which language; the name is its disco identity's."""

    name = "naming"

    def config_fields(self, room: RoomContext, fields: FieldsAt) -> None:
        config = room.config
        fields.add(10, NAME, config.name, type="text-single", label="Title")
        fields.add(20, DESCRIPTION, config.description, type="text-single", label="Description")
        fields.add(30, LANGUAGE, config.language, type="text-single", label="Language of discussion")

    def configure(self, room: RoomContext, submission: ConfigSubmission, config: RoomConfig) -> Mapping[str, Any]:
        return {
            "name": submission.text(NAME, config.name),
            "description": submission.text(DESCRIPTION, config.description),
            "language": submission.text(LANGUAGE, config.language),
        }

    def roominfo_fields(self, room: RoomContext, fields: FieldsAt) -> None:
        config = room.config
        # The title under the configuration form's name, as Prosody gives it (clients show it before entering).
        fields.add(5, NAME, config.name, label="Title")
        fields.add(10, "muc#roominfo_description", config.description, label="Description")
        if config.language:
            fields.add(50, "muc#roominfo_lang", config.language, label="Language of discussion")
