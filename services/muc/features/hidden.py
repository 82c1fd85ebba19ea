"""Public and hidden rooms (XEP-0045 §6.3, §10.2): whether the service's disco#items lists a room."""

from __future__ import annotations

from services.muc.switch import Switch

__all__ = ["Hidden"]


class Hidden(Switch):
    """Listed in the directory of rooms, or not (the service keeps the directory)."""

    name = "hidden"
    setting = "public"
    var = "muc#roomconfig_publicroom"
    position = 50
    label = "Listed in the directory of rooms"
    disco = ("muc_public", "muc_hidden")
