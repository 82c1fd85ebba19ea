"""Helpers for testing the MUC service: its harness on immediate SQLite, and the cast of XEP-0045.

:func:`immediate_storage` is a :class:`component.testing.ImmediateStorage`
with the tables of :class:`~services.muc.service.MucService` in place, so that tests written with
:class:`component.testing.Harness` stay synchronous while exercising the same
statements as production.
"""

from __future__ import annotations

from typing import Any

from component.component import DomainSettings
from component.testing import FailingStorage, Harness, HeldStorage, ImmediateStorage, migrated
from services.muc.service import MucService

__all__ = [
    "CRONE", "ERR", "HAG", "MUC_X", "ROOM", "WICCA",
    "FailingStorage", "HeldStorage", "ImmediateStorage", "configure", "enter", "immediate_storage", "instant_room", "muc_harness",
]

# The cast of XEP-0045's examples, which the tests replay.
ROOM = "coven@chat.shakespeare.lit"
CRONE = "crone1@shakespeare.lit/desktop"
WICCA = "wiccarocks@shakespeare.lit/laptop"
HAG = "hag66@shakespeare.lit/pda"
MUC_X = "<x xmlns='http://jabber.org/protocol/muc'/>"
ERR = "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'"


def immediate_storage(storage: ImmediateStorage | None = None) -> Any:
    """*storage* (a new in-memory :class:`ImmediateStorage` by default) with the MUC tables in place."""
    return migrated(storage if storage is not None else ImmediateStorage(), *MucService.migrations)


def muc_harness(
    options: dict[str, Any] | None = None,
    *,
    storage: Any = "immediate",
    domain: str = "chat.shakespeare.lit",
    settings: DomainSettings = DomainSettings(),
) -> Harness:
    """A :class:`Harness` running the MUC service; storage is immediate SQLite unless given (None for none).

    *settings* are the component's (the MUC's own are *options*).

    Occupant ids (XEP-0421) are off unless *options* turn them on, so that
    the tests replaying XEP-0045's examples read as the XEP prints them; the
    occupant-id tests turn them on.
    """
    if storage == "immediate":
        storage = immediate_storage()
    return Harness(domain, (MucService, {"occupant_id": False, **(options or {})}), storage=storage, settings=settings)


def enter(harness: Any, room: str, nick: str, jid: str, *, x: str = "<x xmlns='http://jabber.org/protocol/muc'/>") -> None:
    """Have ``jid`` enter ``room`` as ``nick`` and forget what the room sent."""
    harness.receive(f"<presence from='{jid}' to='{room}/{nick}'>{x}</presence>")
    harness.sent()


def instant_room(harness: Any, room: str, owner: str, nick: str = "owner") -> None:
    """Create an unlocked room with default settings, owned by ``owner``."""
    enter(harness, room, nick, owner)
    harness.receive(
        f"<iq from='{owner}' to='{room}' type='set' id='create'>"
        "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>"
    )
    harness.sent()


def configure(harness: Any, fields: str, *, owner: str = CRONE, room: str = ROOM) -> None:
    """Submit the owner's configuration form with these ``<field/>`` elements, and forget the replies."""
    harness.receive(
        f"<iq from='{owner}' id='cfg' to='{room}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        f"<x xmlns='jabber:x:data' type='submit'>{fields}</x></query></iq>"
    )
    harness.sent()
