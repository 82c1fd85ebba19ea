"""Semi-anonymous and non-anonymous rooms (XEP-0045 §7.2.3, §10.2): who sees occupants' real JIDs.

A change is announced with 172 (now non-anonymous) or 173 (now semi-anonymous).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from services.muc.config import RoomConfig
from services.muc.context import RoomContext
from services.muc.feature import ConfigSubmission, Feature, FieldsAt, Join

__all__ = ["Anonymity"]

FIELD = "muc#roomconfig_whois"
WHOIS = ("moderators", "anyone")


class Anonymity(Feature):
    """Moderators only, or anyone, see real JIDs."""

    name = "anonymity"
    privacy_settings = ("whois",)

    def disco_features(self, room: RoomContext) -> Iterable[str]:
        return ("muc_semianonymous" if room.config.anonymous else "muc_nonanonymous",)

    def config_fields(self, room: RoomContext, fields: FieldsAt) -> None:
        fields.add(
            100, FIELD, room.config.whois, type="list-single", label="Who may see real JIDs",
            options=[("Moderators only", "moderators"), ("Anyone", "anyone")],
        )

    def configure(self, room: RoomContext, submission: ConfigSubmission, config: RoomConfig) -> Mapping[str, Any]:
        return {"whois": submission.choice(FIELD, config.whois, WHOIS)}

    def on_config_change(self, room: RoomContext, old: RoomConfig, new: RoomConfig) -> Iterable[int]:
        if new.whois != old.whois:
            return (172 if new.whois == "anyone" else 173,)
        return ()

    def entry_codes(self, room: RoomContext, join: Join) -> Iterable[int]:
        # §7.2.2: a newcomer is warned that everyone sees its real JID.
        return () if room.config.anonymous else (100,)
