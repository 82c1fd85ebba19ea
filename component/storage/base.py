"""The storage interface that services use, whatever the backend.

Services call a `Storage` from the reactor thread and get Deferreds back; the
backend runs the SQL in worker threads. There is one SQL dialect in our code:
``?`` placeholders, ``INSERT ... ON CONFLICT ... DO UPDATE`` upserts,
``RETURNING``, types TEXT / INTEGER / BIGINT / REAL, JSON kept as TEXT.
Where the dialects must differ (only in migrations), a `Sql` value carries
both spellings. Storage knows nothing of stanzas: it deals in strings, numbers
and JSON-able dicts.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorCore, IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from component.stats import Latency

P = ParamSpec("P")
T = TypeVar("T")

Dialect = Literal["sqlite", "postgresql"]
Param = str | int | float | bytes | None
Row = tuple[Any, ...]


class StorageError(Exception):
    """A storage operation failed; the message says why in one sentence."""


class StorageUnavailable(StorageError):
    """The database cannot be reached; a later call may succeed."""


@attrs.frozen
class Sql:
    """One statement spelled for each dialect, where the two must differ."""

    sqlite: str
    postgresql: str

    def for_dialect(self, dialect: Dialect) -> str:
        """The spelling for *dialect*."""
        return self.sqlite if dialect == "sqlite" else self.postgresql


Statement = str | Sql


def _adapt(params: Sequence[Param]) -> tuple[Param, ...]:
    # PostgreSQL refuses a boolean for an INTEGER column; SQLite stores 0/1.
    # Sending ints to both keeps one schema and one set of queries.
    return tuple(int(p) if isinstance(p, bool) else p for p in params)


class Transaction:
    """The cursor a transaction function gets, in a worker thread.

    Every call runs inside the one transaction that `Storage.transaction`
    opened; it commits when the function returns and rolls back when it
    raises.
    """

    def __init__(
        self, cursor: Any, dialect: Dialect, translate: Callable[[str], str]
    ) -> None:
        self._cursor = cursor
        self.dialect: Dialect = dialect
        self._translate = translate

    def execute(self, sql: Statement, params: Sequence[Param] = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        self._run(sql, params)
        return max(int(self._cursor.rowcount), 0)

    def fetchall(self, sql: Statement, params: Sequence[Param] = ()) -> list[Row]:
        """Run a query; return all its rows."""
        self._run(sql, params)
        return [tuple(row) for row in self._cursor.fetchall()]

    def fetchone(self, sql: Statement, params: Sequence[Param] = ()) -> Row | None:
        """Run a query; return its first row, or None when there is none."""
        self._run(sql, params)
        row = self._cursor.fetchone()
        return None if row is None else tuple(row)

    def _run(self, sql: Statement, params: Sequence[Param]) -> None:
        if isinstance(sql, Sql):
            sql = sql.for_dialect(self.dialect)
        self._cursor.execute(self._translate(sql), _adapt(params))


def _execute(txn: Transaction, sql: Statement, params: Sequence[Param]) -> int:
    return txn.execute(sql, params)


def _fetchall(txn: Transaction, sql: Statement, params: Sequence[Param]) -> list[Row]:
    return txn.fetchall(sql, params)


def _fetchone(txn: Transaction, sql: Statement, params: Sequence[Param]) -> Row | None:
    return txn.fetchone(sql, params)


class Storage(ABC):
    """An open database: every method returns a Deferred.

    Call it from the reactor thread. A Deferred that fires with a result means
    the work is committed (for a write: durable), so the caller may
    acknowledge it to the XMPP side.
    """

    dialect: Dialect
    url: str
    """The database URL with any password masked, fit for logs."""
    latency: Latency
    """How long transactions took, from the call to the result, and how many failed."""

    @abstractmethod
    def transaction(
        self,
        fn: Callable[Concatenate[Transaction, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Deferred[T]:
        """Run ``fn(txn, *args, **kwargs)`` in one transaction in a worker thread.

        The function must touch nothing but the database and its arguments:
        a backend may run it again after a failure that left nothing
        committed (a dropped connection, a serialization conflict).
        """

    @abstractmethod
    def close(self) -> Deferred[None]:
        """Close the database and stop the worker threads."""

    def execute(self, sql: Statement, params: Sequence[Param] = ()) -> Deferred[int]:
        """Run one statement in its own transaction; fire with its rowcount."""
        return self.transaction(_execute, sql, params)

    def fetchall(
        self, sql: Statement, params: Sequence[Param] = ()
    ) -> Deferred[list[Row]]:
        """Run a query; fire with all its rows."""
        return self.transaction(_fetchall, sql, params)

    def fetchone(
        self, sql: Statement, params: Sequence[Param] = ()
    ) -> Deferred[Row | None]:
        """Run a query; fire with its first row, or None."""
        return self.transaction(_fetchone, sql, params)


class ThreadedStorage(Storage):
    """A `Storage` whose blocking work runs in a Twisted thread pool of its own."""

    def __init__(self, reactor: Any, url: str, threads: int, name: str) -> None:
        self.url = url
        self._reactor = cast(IReactorFromThreads, reactor)
        self._threads = ThreadPool(minthreads=0, maxthreads=threads, name=name)
        self._threads.start()
        # Like twisted.enterprise.adbapi: a pool left open must not keep the
        # process alive after the reactor stops.
        self._shutdown_trigger = cast(IReactorCore, reactor).addSystemEventTrigger(
            "during", "shutdown", self._stop_threads
        )
        self._closed = False
        self.latency = Latency()

    async def connect_with(self, connect: Callable[[], object]) -> None:
        """Run ``connect`` in this storage's threads; if it fails, the storage is closed and the error raised."""
        try:
            await self.in_thread(connect)
        except BaseException:
            await self.close()
            raise

    def in_thread(
        self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> Deferred[T]:
        """Run ``fn`` in this storage's threads; fire with its result."""
        if self._closed:
            return fail(StorageError(f"the database at {self.url} is closed"))
        return deferToThreadPool(self._reactor, self._threads, fn, *args, **kwargs)

    def transaction(
        self,
        fn: Callable[Concatenate[Transaction, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Deferred[T]:
        def run() -> T:
            return self.run_transaction(fn, *args, **kwargs)

        # Timed here, the one way into the database, from the reactor
        # thread's view: waiting for a worker thread counts too.
        return self.in_thread(run).addBoth(self._timed, time.perf_counter())

    def _timed(self, result: T | Failure, started: float) -> T | Failure:
        self.latency.observe(time.perf_counter() - started, failed=isinstance(result, Failure))
        return result

    @abstractmethod
    def run_transaction(
        self,
        fn: Callable[Concatenate[Transaction, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run one transaction; called in a worker thread."""

    @abstractmethod
    def close_in_thread(self) -> None:
        """Release the connections; called in a worker thread."""

    def close(self) -> Deferred[None]:
        if self._closed:
            return succeed(None)
        d = self.in_thread(self.close_in_thread)
        self._closed = True

        def stop(result: object) -> object:
            cast(IReactorCore, self._reactor).removeSystemEventTrigger(
                self._shutdown_trigger
            )
            self._stop_threads()
            return result

        d.addBoth(stop)
        return d

    def _stop_threads(self) -> None:
        if self._threads.started:
            self._threads.stop()


def assert_worker_thread() -> None:
    """Fail loudly if blocking database work is about to run on the main thread."""
    if threading.current_thread() is threading.main_thread():
        raise RuntimeError("blocking database work on the reactor thread")


def redact_url(url: str) -> str:
    """*url* with its password, if any, replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
