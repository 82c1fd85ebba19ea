"""Leases on keys, with a fencing epoch, as rows in PostgreSQL.

One row per key: its owner, the epoch of the owner's tenure and when the
lease runs out, on the database's clock (``clock_timestamp()``) so that the
clocks of the instances never matter. A release only expires the row; a row
expired for long is deleted (`sweep`), else every key ever asked for, a room
name anyone made up, would stay. A key's epoch still only ever grows, so a
write carrying an old epoch can always be told apart: a sweep raises the
floor (`lease_floor`) above every epoch it deleted, and a new row starts
above the floor. A takeover notifies the channel
`LEASE_CHANNEL` with the key, the previous owner and the new epoch, in the
same transaction, so the notice goes out exactly when the takeover commits.

These functions run inside a `Transaction`; `component.leases` schedules them.
"""

from __future__ import annotations

import json

import attrs

from component.storage.base import StorageError, Transaction
from component.storage.migrations import Migrations

LEASE_CHANNEL = "netherfield_leases"
"""The LISTEN/NOTIFY channel that tells an owner its lease was taken."""

LEASE_MIGRATIONS = Migrations(
    "leases",
    steps=[
        [
            "CREATE TABLE leases ("
            " key TEXT PRIMARY KEY,"
            " owner TEXT NOT NULL,"
            " epoch BIGINT NOT NULL,"
            " expires_at TIMESTAMPTZ NOT NULL)",
            "CREATE INDEX leases_owner ON leases (owner)",
        ],
        [
            # The highest epoch of a deleted row: a new row starts above it.
            "CREATE TABLE lease_floor (epoch BIGINT NOT NULL)",
            "INSERT INTO lease_floor (epoch) VALUES (0)",
            "CREATE INDEX leases_expires_at ON leases (expires_at)",
        ],
    ],
)


class LeaseLost(StorageError):
    """A fenced write found that its lease is no longer held with its epoch; nothing was written."""


@attrs.frozen
class Lease:
    """One tenure of one key: the *epoch* grows by one at every change of hands."""

    key: str
    owner: str
    epoch: int


@attrs.frozen
class Taken:
    """The notice an owner gets when *key* is taken from it (the payload on `LEASE_CHANNEL`)."""

    key: str
    previous: str
    epoch: int
    by: str

    def payload(self) -> str:
        """This notice as the NOTIFY payload."""
        return json.dumps(attrs.asdict(self), separators=(",", ":"))

    @classmethod
    def from_payload(cls, payload: str) -> Taken | None:
        """The notice in *payload*, or None when it is not one of ours."""
        try:
            data = json.loads(payload)
            return cls(str(data["key"]), str(data["previous"]), int(data["epoch"]), str(data["by"]))
        except (ValueError, KeyError, TypeError):
            return None


_EXPIRES = "clock_timestamp() + make_interval(secs => ?)"


def acquire(txn: Transaction, key: str, owner: str, seconds: float, take: bool) -> Lease | None:
    """Take *key* for *owner* for *seconds* if it is free or expired (or always, with *take*).

    Every acquisition, even of a lease the owner still held, starts a new
    epoch. Returns None when another owner holds an unexpired lease and
    *take* is false.
    """
    row = txn.fetchone(
        "SELECT owner, epoch, expires_at <= clock_timestamp() FROM leases WHERE key = ? FOR UPDATE", (key,)
    )
    if row is None:
        inserted = txn.fetchone(
            f"INSERT INTO leases (key, owner, epoch, expires_at) VALUES (?, ?, (SELECT epoch + 1 FROM lease_floor), {_EXPIRES})"
            " ON CONFLICT (key) DO NOTHING RETURNING epoch",
            (key, owner, seconds),
        )
        if inserted is None:
            # Another owner inserted the row since our SELECT; its lease is fresh.
            return acquire(txn, key, owner, seconds, take)
        return Lease(key, owner, int(inserted[0]))
    previous, epoch, expired = str(row[0]), int(row[1]), bool(row[2])
    if not (expired or take or previous == owner):
        return None
    txn.execute(
        f"UPDATE leases SET owner = ?, epoch = ?, expires_at = {_EXPIRES} WHERE key = ?",
        (owner, epoch + 1, seconds, key),
    )
    if previous != owner:
        # An expired owner is told too: it may be paused and not have noticed yet.
        notice = Taken(key, previous, epoch + 1, owner)
        txn.fetchone("SELECT pg_notify(?, ?)", (LEASE_CHANNEL, notice.payload()))
    return Lease(key, owner, epoch + 1)


def sweep(txn: Transaction, seconds: float, limit: int = 1000) -> int:
    """Delete up to *limit* rows expired for more than *seconds*, raising the floor above their epochs; how many.

    Nobody holds such a key: its last holder let it go at its local
    deadline, long before. Taken again, it starts above every epoch it had.
    """
    rows = txn.fetchall(
        "DELETE FROM leases WHERE key IN (SELECT key FROM leases"
        " WHERE expires_at < clock_timestamp() - make_interval(secs => ?) ORDER BY key LIMIT ? FOR UPDATE SKIP LOCKED)"
        " AND expires_at < clock_timestamp() - make_interval(secs => ?) RETURNING epoch",
        (seconds, limit, seconds),
    )
    if rows:
        txn.execute("UPDATE lease_floor SET epoch = GREATEST(epoch, ?)", (max(int(epoch) for (epoch,) in rows),))
    return len(rows)


def renew(txn: Transaction, owner: str, seconds: float) -> dict[str, int]:
    """Extend every unexpired lease of *owner* by *seconds*; return the keys still held, with their epochs."""
    # The rows are locked in the order of their keys, as a write that fences several keys locks
    # them: in any other order, a renewal and such a write could each wait for the other.
    rows = txn.fetchall(
        f"UPDATE leases SET expires_at = {_EXPIRES}"
        " WHERE key IN (SELECT key FROM leases WHERE owner = ? AND expires_at > clock_timestamp()"
        " ORDER BY key FOR UPDATE)"
        " AND owner = ? AND expires_at > clock_timestamp() RETURNING key, epoch",
        (seconds, owner, owner),
    )
    return {str(key): int(epoch) for key, epoch in rows}


def release(txn: Transaction, lease: Lease) -> bool:
    """Expire *lease* now, keeping its epoch; False if it was no longer held."""
    return (
        txn.execute(
            "UPDATE leases SET expires_at = clock_timestamp() WHERE key = ? AND owner = ? AND epoch = ?",
            (lease.key, lease.owner, lease.epoch),
        )
        == 1
    )


def fence(txn: Transaction, lease: Lease) -> None:
    """Raise `LeaseLost` unless *lease* is still held with its epoch and unexpired.

    Call it first in a write transaction: the row stays share-locked until
    that transaction ends, so a takeover waits for the write to commit and
    never runs beside it, and a write that raises here leaves nothing behind.
    A write under several leases fences them in the order of their keys,
    as `renew` locks them, or the two could deadlock.
    """
    row = txn.fetchone(
        "SELECT 1 FROM leases WHERE key = ? AND owner = ? AND epoch = ? AND expires_at > clock_timestamp()"
        " FOR SHARE",
        (lease.key, lease.owner, lease.epoch),
    )
    if row is None:
        raise LeaseLost(f"the lease on {lease.key!r} at epoch {lease.epoch} is no longer held by {lease.owner}")


def holder(txn: Transaction, key: str) -> tuple[Lease, bool] | None:
    """The latest lease on *key* and whether it is still unexpired; None for a key never leased."""
    row = txn.fetchone(
        "SELECT owner, epoch, expires_at > clock_timestamp() FROM leases WHERE key = ?", (key,)
    )
    if row is None:
        return None
    return Lease(key, str(row[0]), int(row[1])), bool(row[2])
