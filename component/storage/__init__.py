"""Persistent storage: SQLite by default, PostgreSQL for several processes.

Services open one `Storage` with `open_storage`, passing the `Migrations` of
every table set they use; the database is brought up to date before the
Deferred fires::

    storage = await open_storage(
        "sqlite:////var/lib/netherfield/netherfield.db",
        migrations=[ROSTER_MIGRATIONS, MUC_MIGRATIONS],
    )
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

from twisted.internet.defer import Deferred

from component.storage.base import (
    Param,
    Row,
    Sql,
    Statement,
    Storage,
    StorageError,
    StorageUnavailable,
    Transaction,
    redact_url,
)
from component.storage.migrations import Migrations, apply_migrations, schema_version
from component.storage.sqlite import DEFAULT_PATH

DEFAULT_URL = "sqlite:///" + DEFAULT_PATH
"""A file in the working directory (`component.config` puts it beside the config file)."""

__all__ = [
    "DEFAULT_URL",
    "Migrations",
    "Param",
    "Row",
    "Sql",
    "Statement",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "Transaction",
    "check_storage",
    "open_storage",
    "redact_url",
    "schema_version",
]


async def _open(
    url: str,
    migrations: Sequence[Migrations],
    password: str | None,
    reactor: Any,
) -> Storage:
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    scheme = url.partition(":")[0].lower()
    storage: Storage
    if scheme == "sqlite":
        if password is not None:
            raise StorageError("a SQLite database takes no password")
        from component.storage.sqlite import open_sqlite

        storage = await open_sqlite(url, reactor)
    elif scheme in ("postgresql", "postgres"):
        storage = await _postgres().open_postgres(url, reactor, password)
    else:
        raise _unknown_scheme(url)
    try:
        await apply_migrations(storage, migrations)
    except BaseException:
        await storage.close()
        raise
    return storage


def _postgres() -> ModuleType:
    try:
        from component.storage import postgres
    except ImportError as e:
        raise StorageError(
            f"PostgreSQL storage needs psycopg and psycopg-pool, which do not import ({e}):"
            " install them with pip install 'netherfield[postgres]'"
        ) from e
    return postgres


def _unknown_scheme(url: str) -> StorageError:
    return StorageError(f"unknown storage URL {redact_url(url)}: it must start with sqlite:/// or postgresql://")


def check_storage(url: str, password: str | None = None) -> None:
    """Raise `StorageError` saying why the database at *url* could not be opened; change nothing.

    Blocking, unlike `open_storage`: for ``netherfield check``, before any reactor runs.
    """
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        if password is not None:
            raise StorageError("a SQLite database takes no password")
        from component.storage.sqlite import check_sqlite

        check_sqlite(url)
    elif scheme in ("postgresql", "postgres"):
        _postgres().check_postgres(url, password)
    else:
        raise _unknown_scheme(url)


def open_storage(
    url: str = DEFAULT_URL,
    *,
    migrations: Sequence[Migrations] = (),
    password: str | None = None,
    reactor: Any = None,
) -> Deferred[Storage]:
    """Open the database at *url* and apply every missing migration step.

    *url* is ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``
    or ``postgresql://user@host:port/dbname``; *password*, for PostgreSQL, is
    kept out of the URL so that it never reaches a log. Fails with
    `StorageError` when the database cannot be opened or holds a newer schema
    than this code.
    """
    return Deferred.fromCoroutine(_open(url, migrations, password, reactor))
