"""The PostgreSQL backend, for several Netherfield processes on one database.

psycopg 3 with a `psycopg_pool.ConnectionPool`; the blocking pool runs in a
Twisted thread pool as large as the connection pool. A restart of the server
is ridden out: the call that meets the outage fails with
`StorageUnavailable`, and the next call builds a fresh pool as soon as the
server answers again. The password comes from the caller and is never logged;
the URL shown in logs and errors has any password masked.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any, Concatenate

import psycopg
from psycopg import errors, sql
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from component.storage.base import (
    P,
    StorageError,
    StorageUnavailable,
    T,
    ThreadedStorage,
    Transaction,
    assert_worker_thread,
    redact_url,
)

log = Logger()

Connection = psycopg.Connection[tuple[Any, ...]]

# Serialization failures and deadlocks leave nothing committed, and the same
# transaction usually goes through on a second try.
_CONFLICT_RETRIES = 3


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """Turn our ``?`` placeholders into psycopg's ``%s``, escaping literal ``%``."""
    out: list[str] = []
    quote = ""
    for ch in sql:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        out.append("%%" if ch == "%" else ch)
    return "".join(out)


# Errors of a database that is busy rather than refusing the statement: worth a retry later.
_PASSING = (errors.TransactionRollback, errors.QueryCanceled, errors.LockNotAvailable)


def _unreachable(url: str, e: Exception) -> StorageUnavailable:
    # psycopg adds a second line of advice ("Is the server running ...?");
    # the first line says what happened.
    reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return StorageUnavailable(f"the PostgreSQL database {url} is unreachable: {reason}")


class PostgresStorage(ThreadedStorage):
    """A `Storage` on a PostgreSQL database; build it with `open_postgres`."""

    dialect = "postgresql"

    def __init__(
        self,
        reactor: Any,
        url: str,
        password: str | None,
        *,
        pool_size: int = 4,
        timeout: float = 5.0,
    ) -> None:
        super().__init__(
            reactor, redact_url(url), threads=pool_size, name="netherfield-postgres"
        )
        self._conninfo = url
        self._kwargs: dict[str, Any] = {
            "application_name": "netherfield",
            "connect_timeout": max(1, round(timeout)),
        }
        if password is not None:
            self._kwargs["password"] = password
        self._pool_size = pool_size
        self._timeout = timeout
        self._lock = threading.Lock()
        self._pool: ConnectionPool[Connection] | None = None
        self._closing = False

    def current_pool(self) -> ConnectionPool[Connection]:
        """The pool in use, built anew if the last one lost the server."""
        assert_worker_thread()
        with self._lock:
            if self._closing:
                raise StorageError(f"the database at {self.url} is closed")
            if self._pool is not None:
                return self._pool
            # Probe with one connection first: while the server is down, a
            # refused connection fails this call at once, where a pool would
            # keep retrying in the background until its timeout.
            try:
                psycopg.connect(self._conninfo, **self._kwargs).close()
            except psycopg.OperationalError as e:
                raise _unreachable(self.url, e) from e
            except psycopg.Error as e:
                raise StorageError(f"cannot connect to {self.url}: {e}") from e
            pool: ConnectionPool[Connection] = ConnectionPool(
                self._conninfo,
                kwargs=self._kwargs,
                min_size=1,
                max_size=self._pool_size,
                open=False,
                timeout=self._timeout,
                name="netherfield",
            )
            try:
                pool.open(wait=True, timeout=self._timeout)
            except PoolTimeout as e:
                pool.close()
                raise _unreachable(self.url, e) from e
            self._pool = pool
            return pool

    def _discard(self, pool: ConnectionPool[Connection]) -> None:
        with self._lock:
            if self._pool is not pool:
                return
            self._pool = None
        log.warn("storage: lost the connection to {url}", url=self.url)
        # Connections still out in other threads close when they come back.
        pool.close(timeout=1.0)

    def run_transaction(
        self,
        fn: Callable[Concatenate[Transaction, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        reconnected = False
        conflicts = 0
        while True:
            pool = self.current_pool()
            try:
                conn = pool.getconn()
            except PoolClosed:
                # Another thread discarded this pool a moment ago.
                continue
            except PoolTimeout as e:
                raise _unreachable(self.url, e) from e
            committing = False
            try:
                with conn.cursor() as cursor:
                    txn = Transaction(cursor, "postgresql", translate)
                    result = fn(txn, *args, **kwargs)
                committing = True
                conn.commit()
                return result
            except psycopg.Error as e:
                if conn.broken or conn.closed:
                    self._discard(pool)
                    if committing:
                        raise StorageUnavailable(
                            "the database became unreachable during the commit;"
                            f" the transaction may or may not have been applied: {e}"
                        ) from e
                    if not reconnected:
                        # Nothing was committed: after a server restart the
                        # first call meets a dead connection, and a new one
                        # gets through.
                        reconnected = True
                        continue
                    raise _unreachable(self.url, e) from e
                self._rollback(conn)
                if (
                    isinstance(e, errors.TransactionRollback)
                    and conflicts < _CONFLICT_RETRIES
                ):
                    conflicts += 1
                    continue
                if isinstance(e, _PASSING):
                    # Contention that outlasted the retries, or a statement or lock timeout: it may pass.
                    raise StorageUnavailable(f"PostgreSQL is busy: {e}") from e
                raise StorageError(f"PostgreSQL error: {e}") from e
            except BaseException:
                self._rollback(conn)
                raise
            finally:
                pool.putconn(conn)

    @staticmethod
    def _rollback(conn: Connection) -> None:
        with suppress(psycopg.Error):
            conn.rollback()

    def listen(self, channel: str, deliver: Callable[[str], None]) -> Listener:
        """Hand every NOTIFY payload on *channel* to *deliver*, in the reactor thread.

        The listener holds a connection of its own, outside the pool, and
        connects again after losing the server; notices sent while it was
        away are lost, so what it tells must also be found another way.
        """
        return Listener(self._reactor, self._conninfo, self._kwargs, channel, deliver)

    def close_in_thread(self) -> None:
        with self._lock:
            self._closing = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


class Listener:
    """One LISTEN on its own connection and thread; see `PostgresStorage.listen`."""

    # How often the thread looks up from waiting to see whether it must stop.
    _POLL_SECONDS = 0.1
    _RETRY_SECONDS = 1.0

    def __init__(
        self, reactor: Any, conninfo: str, kwargs: dict[str, Any], channel: str, deliver: Callable[[str], None]
    ) -> None:
        self._reactor = reactor
        self._conninfo = conninfo
        self._kwargs = kwargs
        self._channel = channel
        self._deliver = deliver
        self._stopping = threading.Event()
        self.ready: Deferred[None] = Deferred()
        """Fires once the first LISTEN is in place."""
        self._thread = threading.Thread(target=self._run, name=f"netherfield-listen-{channel}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        first = True
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, **self._kwargs) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    if first:
                        first = False
                        self._reactor.callFromThread(self.ready.callback, None)
                    while not self._stopping.is_set():
                        for notice in conn.notifies(timeout=self._POLL_SECONDS):
                            self._reactor.callFromThread(self._deliver, notice.payload)
            except psycopg.Error as e:
                log.warn("storage: lost the LISTEN on {channel}: {error}", channel=self._channel, error=str(e))
                self._stopping.wait(self._RETRY_SECONDS)

    def stop(self) -> Deferred[None]:
        """End the LISTEN; fires once its thread has ended."""
        self._stopping.set()
        return deferToThreadPool(self._reactor, self._reactor.getThreadPool(), self._thread.join)


def check_postgres(url: str, password: str | None = None, *, timeout: float = 5.0) -> None:
    """Raise `StorageError` if the database at *url* does not accept a connection; change nothing.

    Blocking; for ``netherfield check``.
    """
    kwargs: dict[str, Any] = {"application_name": "netherfield check", "connect_timeout": max(1, round(timeout))}
    if password is not None:
        kwargs["password"] = password
    try:
        psycopg.connect(url, **kwargs).close()
    except psycopg.OperationalError as e:
        raise _unreachable(redact_url(url), e) from e
    except psycopg.Error as e:
        raise StorageError(f"cannot connect to {redact_url(url)}: {e}") from e


async def open_postgres(
    url: str,
    reactor: Any,
    password: str | None = None,
    *,
    pool_size: int = 4,
    timeout: float = 5.0,
) -> PostgresStorage:
    """Open the PostgreSQL database named by *url*.

    *timeout* bounds how long a call waits for a connection before it fails
    with `StorageUnavailable`.
    """
    storage = PostgresStorage(
        reactor, url, password, pool_size=pool_size, timeout=timeout
    )
    await storage.connect_with(storage.current_pool)
    log.info("storage: opened PostgreSQL database {url}", url=storage.url)
    return storage
