"""Schema versions and the forward migrations that bring a database up to date.

Each service owns a namespace ("rosters", "muc", ...) and an ordered list of
steps; step *n* takes its namespace from version *n - 1* to *n*. The
``schema_versions`` table records the version of each namespace. At open, every
missing step is applied in a transaction of its own, the same steps on SQLite
and PostgreSQL; a database that is ahead of the code is refused, because the
code cannot know what the newer schema means.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from component.storage.base import Sql, Statement, Storage, StorageError, Transaction

log = Logger()

Step = tuple[Statement, ...]

# Any constant will do, as long as every Netherfield process uses the same:
# it serialises migrations between processes sharing one PostgreSQL.
_ADVISORY_LOCK = 0x4E46_5354  # "NFST"

_CREATE_VERSIONS = (
    "CREATE TABLE IF NOT EXISTS schema_versions ("
    " namespace TEXT PRIMARY KEY,"
    " version INTEGER NOT NULL)"
)


def _steps(value: Iterable[Statement | Iterable[Statement]]) -> tuple[Step, ...]:
    # A step written as a lone statement is a step of one statement; without
    # this, a string would be taken for a sequence of one-letter statements.
    steps: list[Step] = []
    for step in value:
        if isinstance(step, (str, Sql)):
            steps.append((step,))
        else:
            steps.append(tuple(step))
    return tuple(steps)


@attrs.frozen
class Migrations:
    """The schema history of one namespace: ``steps[n]`` makes version n + 1."""

    namespace: str
    steps: tuple[Step, ...] = attrs.field(converter=_steps)

    @property
    def version(self) -> int:
        """The version these steps lead to."""
        return len(self.steps)


def _lock(txn: Transaction) -> None:
    # On SQLite, BEGIN IMMEDIATE already holds the only write lock.
    if txn.dialect == "postgresql":
        txn.fetchone("SELECT pg_advisory_xact_lock(?)", (_ADVISORY_LOCK,))


def _version(txn: Transaction, namespace: str) -> int:
    row = txn.fetchone(
        "SELECT version FROM schema_versions WHERE namespace = ?", (namespace,)
    )
    return 0 if row is None else int(row[0])


def _newer(url: str, migrations: Migrations, found: int) -> StorageError:
    return StorageError(
        f"the database at {url} has schema {migrations.namespace} version {found},"
        f" newer than this Netherfield ({migrations.version});"
        " upgrade Netherfield or use another database"
    )


def _check(txn: Transaction, url: str, all_migrations: Sequence[Migrations]) -> None:
    _lock(txn)
    txn.execute(_CREATE_VERSIONS)
    for migrations in all_migrations:
        found = _version(txn, migrations.namespace)
        if found > migrations.version:
            raise _newer(url, migrations, found)


def _apply_next(txn: Transaction, url: str, migrations: Migrations) -> int | None:
    """Apply the next missing step; return the version reached, or None if current."""
    _lock(txn)
    txn.execute(_CREATE_VERSIONS)
    # Read under the lock: another process may have migrated meanwhile.
    found = _version(txn, migrations.namespace)
    if found > migrations.version:
        raise _newer(url, migrations, found)
    if found == migrations.version:
        return None
    for statement in migrations.steps[found]:
        txn.execute(statement)
    txn.execute(
        "INSERT INTO schema_versions (namespace, version) VALUES (?, ?)"
        " ON CONFLICT (namespace) DO UPDATE SET version = excluded.version",
        (migrations.namespace, found + 1),
    )
    return found + 1


async def _migrate(storage: Storage, all_migrations: Sequence[Migrations]) -> None:
    names = [m.namespace for m in all_migrations]
    if len(set(names)) != len(names):
        raise ValueError(f"schema namespaces given more than once: {names}")
    # Refuse a newer database before touching any namespace.
    await storage.transaction(_check, storage.url, all_migrations)
    for migrations in all_migrations:
        while True:
            reached = await storage.transaction(_apply_next, storage.url, migrations)
            if reached is None:
                break
            log.info(
                "storage: {url} schema {namespace} migrated to version {version}",
                url=storage.url,
                namespace=migrations.namespace,
                version=reached,
            )


def apply_migrations(
    storage: Storage, all_migrations: Sequence[Migrations]
) -> Deferred[None]:
    """Bring every namespace in *all_migrations* up to date, step by step.

    Fails with `StorageError` if the database holds a newer version of any of
    them than the code knows.
    """
    return Deferred.fromCoroutine(_migrate(storage, all_migrations))


def schema_version(storage: Storage, namespace: str) -> Deferred[int]:
    """The version of *namespace* in an opened database; 0 when it has none."""
    return storage.transaction(_version, namespace)
