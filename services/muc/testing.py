"""Helpers for testing the MUC service: a SQLite storage that answers at once.

:class:`ImmediateStorage` runs the real SQL of :class:`MucStore` on an
in-memory SQLite database, on the calling thread, and returns Deferreds that
have already fired, so that tests written with :class:`component.testing.Harness`
stay synchronous while exercising the same statements as production.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, Concatenate

from twisted.internet import defer

from component.storage import Storage, StorageError, Transaction
from component.storage.base import P, T
from component.storage.migrations import apply_migrations
from component.testing import Harness
from services.muc.service import MucService
from services.muc.store import MUC_MIGRATIONS

__all__ = [
    "CRONE", "ERR", "HAG", "MUC_X", "ROOM", "WICCA",
    "ImmediateStorage", "configure", "enter", "immediate_storage", "instant_room", "muc_harness",
]

# The cast of XEP-0045's examples, which the tests replay.
ROOM = "coven@chat.shakespeare.lit"
CRONE = "crone1@shakespeare.lit/desktop"
WICCA = "wiccarocks@shakespeare.lit/laptop"
HAG = "hag66@shakespeare.lit/pda"
MUC_X = "<x xmlns='http://jabber.org/protocol/muc'/>"
ERR = "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'"


class ImmediateStorage(Storage):
    """A :class:`Storage` on an in-memory SQLite database, without threads."""

    dialect = "sqlite"
    url = "sqlite://:memory:"

    def __init__(self) -> None:
        self._connection: sqlite3.Connection | None = sqlite3.connect(":memory:", isolation_level=None)
        self._connection.execute("PRAGMA foreign_keys=ON")
        self.transactions = 0

    def transaction(
        self, fn: Callable[Concatenate[Transaction, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> defer.Deferred[T]:
        connection = self._connection
        if connection is None:
            return defer.fail(StorageError("the database is closed"))
        self.transactions += 1
        try:
            connection.execute("BEGIN IMMEDIATE")
            result = fn(Transaction(connection.cursor(), "sqlite", lambda sql: sql), *args, **kwargs)
            connection.execute("COMMIT")
        except Exception as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                return defer.fail(StorageError(f"SQLite error: {exc}"))
            return defer.fail(exc)
        return defer.succeed(result)

    def close(self) -> defer.Deferred[None]:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        return defer.succeed(None)


def immediate_storage() -> Any:
    """An :class:`ImmediateStorage` with the MUC tables in place."""
    storage = ImmediateStorage()
    outcome: list[Any] = []
    apply_migrations(storage, [MUC_MIGRATIONS]).addBoth(outcome.append)
    if outcome and hasattr(outcome[0], "raiseException"):
        outcome[0].raiseException()
    return storage


def muc_harness(
    options: dict[str, Any] | None = None, *, storage: Any = "immediate", domain: str = "chat.shakespeare.lit"
) -> Harness:
    """A :class:`Harness` running the MUC service; storage is immediate SQLite unless given (None for none)."""
    if storage == "immediate":
        storage = immediate_storage()
    return Harness(domain, (MucService, dict(options or {})), storage=storage)


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
