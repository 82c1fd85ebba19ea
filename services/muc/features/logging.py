"""Public logging of a room's discussion (XEP-0045 §10.2): announced with 170 and 171."""

from __future__ import annotations

from collections.abc import Iterable

from services.muc.context import RoomContext
from services.muc.feature import Join
from services.muc.switch import Switch

__all__ = ["Logging"]


class Logging(Switch):
    """Whether the room says its discussion is publicly logged."""

    name = "logging"
    setting = "logging"
    var = "muc#roomconfig_enablelogging"
    position = 160
    label = "Keep a public log of the discussion"
    codes = (170, 171)

    def entry_codes(self, room: RoomContext, join: Join) -> Iterable[int]:
        return (170,) if room.config.logging and join.new_occupant else ()
