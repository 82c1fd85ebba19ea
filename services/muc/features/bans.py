"""Banned users (XEP-0045 §9.1): an outcast, or anyone of a banned server, may not enter."""

from __future__ import annotations

from component.errors import StanzaError
from services.muc.context import RoomContext
from services.muc.feature import Feature, Join

__all__ = ["Bans"]


class Bans(Feature):
    """Outcasts stay out (the ban itself is an affiliation change: see :mod:`services.muc.features.admin`)."""

    name = "bans"

    def check_entry(self, room: RoomContext, join: Join) -> None:
        if join.affiliation == "outcast":
            raise StanzaError("forbidden", text="you are banned from this room")
