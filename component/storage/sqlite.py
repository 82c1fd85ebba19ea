"""The embedded SQLite backend: one file, one writer thread, durable commits.

The connection lives in a thread pool of one thread, so every statement runs
off the reactor thread and writes never contend with each other inside the
process. WAL journaling lets readers of the file (backups, a second tool) work
beside the writer; ``synchronous=FULL`` syncs the WAL at every commit, so a
Deferred that fired means the write survives a crash of the process or of the
machine.
"""

from __future__ import annotations

import os
import pwd
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate

from twisted.logger import Logger

from component.storage.base import (
    P,
    StorageError,
    StorageUnavailable,
    T,
    ThreadedStorage,
    Transaction,
    assert_worker_thread,
)

log = Logger()

DEFAULT_PATH = "netherfield.db"
"""The database file when the URL names none, in the working directory."""

_BUSY_TIMEOUT_MS = 10_000
# Result codes of a condition that passes (another process holds the file, the disk
# is full or failing, the file cannot be opened now): worth a retry, unlike a
# statement the database refuses as it stands (a missing column, a constraint).
_TRANSIENT = frozenset(
    {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN}
)


def storage_error(where: str, error: sqlite3.Error) -> StorageError:
    """The storage error for an SQLite error: :class:`StorageUnavailable` when it is one that passes."""
    code = getattr(error, "sqlite_errorcode", None)
    # Extended result codes (SQLITE_IOERR_WRITE, say) keep the primary code in their low byte.
    kind = StorageUnavailable if code is not None and code & 0xFF in _TRANSIENT else StorageError
    return kind(f"SQLite error on {where}: {error}")
_WAL_ATTEMPTS = 100  # 5 s


def path_from_url(url: str) -> str:
    """The file named by a ``sqlite:`` URL, read the way SQLAlchemy reads it.

    ``sqlite:///data/n.db`` is relative to the working directory,
    ``sqlite:////var/lib/netherfield/n.db`` is absolute, ``sqlite:///`` is
    `DEFAULT_PATH`, and ``sqlite:///:memory:`` is a database that lives as
    long as the process.
    """
    scheme, _, rest = url.partition(":")
    if scheme.lower() != "sqlite":
        raise ValueError(f"not a sqlite URL: {url}")
    if rest in ("", "//", "///"):
        return DEFAULT_PATH
    if rest.startswith("///"):
        return rest[3:]
    if rest.startswith("//"):
        raise StorageError(
            "a SQLite URL names no host: write sqlite:///relative/path.db"
            f" or sqlite:////absolute/path.db, not {url}"
        )
    return rest


def _same(sql: str) -> str:
    return sql


class SqliteStorage(ThreadedStorage):
    """A `Storage` on a SQLite file; build it with `open_sqlite`."""

    dialect = "sqlite"

    def __init__(self, reactor: Any, url: str) -> None:
        self.path = path_from_url(url)
        super().__init__(reactor, url, threads=1, name="netherfield-sqlite")
        self._connection: sqlite3.Connection | None = None

    def connect(self) -> None:
        """Open the file and set it up; called in the worker thread."""
        assert_worker_thread()
        try:
            # isolation_level=None: we issue BEGIN and COMMIT ourselves.
            connection = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as e:
            raise StorageError(
                f"cannot open the SQLite database at {self.path}: {_why_unopenable(self.path, e)}"
            ) from e
        try:
            mode = _enable_wal(connection)
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        except sqlite3.Error as e:
            connection.close()
            raise StorageError(
                f"cannot open the SQLite database at {self.path}: {_why_unopenable(self.path, e)}"
            ) from e
        if mode != "wal" and self.path != ":memory:":
            connection.close()
            raise StorageError(
                f"the SQLite database at {self.path} refuses WAL mode ({mode})"
            )
        self._connection = connection

    def run_transaction(
        self,
        fn: Callable[Concatenate[Transaction, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        assert_worker_thread()
        connection = self._connection
        if connection is None:
            raise StorageError(f"the database at {self.url} is closed")
        try:
            # IMMEDIATE takes the write lock up front, so a transaction never
            # fails half-way on a lock held by another process on the file.
            connection.execute("BEGIN IMMEDIATE")
            result = fn(Transaction(connection.cursor(), "sqlite", _same), *args, **kwargs)
            connection.execute("COMMIT")
            return result
        except sqlite3.Error as e:
            self._rollback(connection)
            raise storage_error(str(self.path), e) from e
        except BaseException:
            self._rollback(connection)
            raise

    @staticmethod
    def _rollback(connection: sqlite3.Connection) -> None:
        if connection.in_transaction:
            connection.execute("ROLLBACK")

    def close_in_thread(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


async def open_sqlite(url: str, reactor: Any) -> SqliteStorage:
    """Open the SQLite database named by *url*."""
    storage = SqliteStorage(reactor, url)
    await storage.connect_with(storage.connect)
    log.info("storage: opened SQLite database {path}", path=storage.path)
    return storage


def _why_unopenable(path: str, error: sqlite3.Error) -> str:
    """What the file system says against opening *path*, else SQLite's own words."""
    return _file_system_problem(path) or str(error)


def _file_system_problem(path: str) -> str | None:
    """Why the file system will not let SQLite open *path* in WAL mode, if it will not.

    SQLite says "unable to open database file" for a missing directory, a
    read-only file system and a permission problem alike. WAL mode also
    creates ``-wal`` and ``-shm`` files beside the database, so the
    directory must be writable even when the file is.
    """
    if path == ":memory:":
        return None
    file = Path(path).absolute()
    directory = file.parent
    if not directory.is_dir():
        return f"the directory {directory} does not exist"
    if os.statvfs(directory).f_flag & os.ST_RDONLY:
        return f"{directory} is on a read-only file system"
    user = pwd.getpwuid(os.geteuid()).pw_name
    if file.exists() and not os.access(file, os.R_OK | os.W_OK):
        return f"the user {user} may not read and write {file}"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"the user {user} may not create files in {directory}"
    return None


def check_sqlite(url: str) -> None:
    """Raise `StorageError` if the database named by *url* could not be opened; change nothing.

    Blocking; for ``netherfield check``. A file that does not exist yet is
    fine where it could be created.
    """
    path = path_from_url(url)
    problem = _file_system_problem(path)
    if problem is None and path != ":memory:" and Path(path).exists():
        try:
            # Read-only, so that checking never creates or converts anything.
            connection = sqlite3.connect(f"file:{Path(path).absolute()}?mode=ro", uri=True)
            try:
                connection.execute("PRAGMA schema_version").fetchone()
            finally:
                connection.close()
        except sqlite3.Error as e:
            problem = str(e)
    if problem is not None:
        raise StorageError(f"cannot open the SQLite database at {path}: {problem}")


def _enable_wal(connection: sqlite3.Connection) -> str:
    """Switch to WAL; retried, since SQLite answers "locked" at once (without its busy
    handler) while another connection switches the same new file."""
    for _ in range(_WAL_ATTEMPTS - 1):
        try:
            return str(connection.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            time.sleep(0.05)
    return str(connection.execute("PRAGMA journal_mode=WAL").fetchone()[0])
