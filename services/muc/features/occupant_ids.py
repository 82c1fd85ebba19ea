"""Occupant identifiers in a room (XEP-0421): on every presence and message the room sends from an occupant.

The id comes from :class:`services.muc.occupant_id.OccupantIds` (the
service's secret, the room and the user's bare JID). A client's own
``<occupant-id/>`` never gets through: :mod:`services.muc.claims` removes it
from messages and the kept presences leave it out, so the room's is the only
one. The service's ``occupant_id`` setting (on by default, as Prosody's
``muc_occupant_id``) turns them off in every room.
"""

from __future__ import annotations

from collections.abc import Iterable

from lxml import etree

from services.muc.context import RoomContext
from services.muc.feature import Feature
from services.muc.occupant_id import OCCUPANT_ID
from services.muc.occupants import Occupant

__all__ = ["OccupantIdentifiers"]


class OccupantIdentifiers(Feature):
    """The ``<occupant-id/>`` of each occupant."""

    name = "occupant-id"

    def disco_features(self, room: RoomContext) -> Iterable[str]:
        return (OCCUPANT_ID,) if room.service.settings.occupant_id else ()

    def decorate_presence(self, room: RoomContext, occupant: Occupant, presence: etree._Element) -> None:
        _add(room, occupant, presence)

    def message_children(self, room: RoomContext, occupant: Occupant) -> bytes:
        service = room.service
        return service.occupant_ids.serialised(room.jid, occupant.bare) if service.settings.occupant_id else b""

    def decorate_private(self, room: RoomContext, sender: Occupant, message: etree._Element) -> None:
        _add(room, sender, message)


def _add(room: RoomContext, occupant: Occupant, stanza: etree._Element) -> None:
    service = room.service
    if service.settings.occupant_id:
        stanza.append(service.occupant_ids.element(room.jid, occupant.bare))
