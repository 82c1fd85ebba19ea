"""Helpers for testing the MUC service: a SQLite storage that answers at once.

:class:`ImmediateStorage` runs the real SQL of :class:`MucStore` on an
in-memory SQLite database (or a file, to restart on), on the calling thread,
and returns Deferreds that have already fired, so that tests written with
:class:`component.testing.Harness` stay synchronous while exercising the same
statements as production. :class:`FailingStorage` refuses statements on
demand, as a full disk would.
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


class ImmediateStorage(Storage):
    """A :class:`Storage` on an in-memory SQLite database (or the file *path*), without threads."""

    dialect = "sqlite"

    def __init__(self, path: str = ":memory:") -> None:
        self.url = f"sqlite:///{path}"
        self._connection: sqlite3.Connection | None = sqlite3.connect(path, isolation_level=None)
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
            result = fn(Transaction(connection.cursor(), "sqlite", self.statement), *args, **kwargs)
            connection.execute("COMMIT")
        except Exception as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                return defer.fail(StorageError(f"SQLite error: {exc}"))
            return defer.fail(exc)
        return defer.succeed(result)

    def statement(self, sql: str) -> str:
        """The SQL to run for *sql*: itself (``?`` is SQLite's own placeholder)."""
        return sql

    def close(self) -> defer.Deferred[None]:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        return defer.succeed(None)


class FailingStorage(ImmediateStorage):
    """Immediate storage that refuses statements on demand, as a full disk or a lost server would.

    A refused statement fails its whole transaction, which SQLite rolls back:
    what the service stored before and what it tries after are real.
    """

    def __init__(self, path: str = ":memory:") -> None:
        super().__init__(path)
        self._matching: str | None = None
        self._passes = 0
        #: How many statements were refused so far.
        self.refused = 0

    def refuse(self, matching: str = "", *, after: int = 0) -> None:
        """Refuse every statement containing *matching*, once *after* of them have gone through."""
        self._matching = matching
        self._passes = after

    def accept(self) -> None:
        """Run every statement again."""
        self._matching = None

    def statement(self, sql: str) -> str:
        if self._matching is not None and self._matching in sql:
            if self._passes:
                self._passes -= 1
            else:
                self.refused += 1
                raise sqlite3.OperationalError("database or disk is full")
        return sql


class HeldStorage(ImmediateStorage):
    """Immediate storage whose answers wait until released, as a slow database's would."""

    def __init__(self, path: str = ":memory:") -> None:
        super().__init__(path)
        #: The answers waiting for `release`; None while answers are immediate.
        self.held: list[tuple[defer.Deferred[Any], defer.Deferred[Any]]] | None = None

    def transaction(
        self, fn: Callable[Concatenate[Transaction, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> defer.Deferred[T]:
        done = super().transaction(fn, *args, **kwargs)
        if self.held is None:
            return done
        waiting: defer.Deferred[T] = defer.Deferred()
        self.held.append((done, waiting))
        return waiting

    def release(self) -> None:
        """Give every held answer, in order; answers are immediate again."""
        held, self.held = self.held or [], None
        for done, waiting in held:
            done.chainDeferred(waiting)


def immediate_storage(storage: ImmediateStorage | None = None) -> Any:
    """*storage* (a new in-memory :class:`ImmediateStorage` by default) with the MUC tables in place."""
    storage = storage if storage is not None else ImmediateStorage()
    outcome: list[Any] = []
    apply_migrations(storage, list(MucService.migrations)).addBoth(outcome.append)
    if outcome and hasattr(outcome[0], "raiseException"):
        outcome[0].raiseException()
    return storage


def muc_harness(
    options: dict[str, Any] | None = None, *, storage: Any = "immediate", domain: str = "chat.shakespeare.lit"
) -> Harness:
    """A :class:`Harness` running the MUC service; storage is immediate SQLite unless given (None for none).

    Occupant ids (XEP-0421) are off unless *options* turn them on, so that
    the tests replaying XEP-0045's examples read as the XEP prints them; the
    occupant-id tests turn them on.
    """
    if storage == "immediate":
        storage = immediate_storage()
    return Harness(domain, (MucService, {"occupant_id": False, **(options or {})}), storage=storage)


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
