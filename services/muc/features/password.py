"""Password-protected rooms (XEP-0045 §7.2.6, §10.2): the room secret and the check on entering.

A room with a non-empty secret asks it of everyone who enters, whatever
``passwordprotectedroom`` says (clients written for Prosody set only the
secret); the flag is kept for the form, and setting it without a secret is
refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from component.errors import StanzaError
from services.muc.config import RoomConfig
from services.muc.context import RoomContext
from services.muc.feature import ConfigSubmission, Feature, FieldsAt, Join

__all__ = ["Password"]

PROTECTED = "muc#roomconfig_passwordprotectedroom"
SECRET = "muc#roomconfig_roomsecret"


class Password(Feature):
    """The room secret."""

    name = "password"

    def disco_features(self, room: RoomContext) -> Iterable[str]:
        return ("muc_passwordprotected" if room.config.needs_password else "muc_unsecured",)

    def config_fields(self, room: RoomContext, fields: FieldsAt) -> None:
        fields.add(80, PROTECTED, room.config.needs_password, type="boolean", label="Entering needs a password")
        fields.add(90, SECRET, room.config.password, type="text-private", label="Password")

    def configure(self, room: RoomContext, submission: ConfigSubmission, config: RoomConfig) -> Mapping[str, Any]:
        return {
            "password_protected": submission.flag(PROTECTED, config.password_protected),
            "password": submission.text(SECRET, config.password),
        }

    def check_config(self, room: RoomContext, config: RoomConfig) -> None:
        if config.password_protected and not config.password:
            raise StanzaError("not-acceptable", text="a password-protected room needs a password")

    def check_entry(self, room: RoomContext, join: Join) -> None:
        if room.config.needs_password and join.password != room.config.password:
            raise StanzaError("not-authorized", text="the room needs a password")
