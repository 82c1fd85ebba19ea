"""Persistent and temporary rooms (XEP-0045 §10.2): whether a room outlives its last occupant.

The setting only; what becoming persistent stores (the room whole, in one
transaction) is the room core's part of a configuration change.
"""

from __future__ import annotations

from services.muc.switch import Switch

__all__ = ["Persistent"]


class Persistent(Switch):
    """The room stays when empty, and in storage."""

    name = "persistent"
    setting = "persistent"
    var = "muc#roomconfig_persistentroom"
    position = 40
    label = "Persistent (stays when empty)"
    disco = ("muc_persistent", "muc_temporary")
