"""What the multi-user chat service keeps across restarts, as rows.

Rooms with their configuration and subject, affiliations, and the message
history that doubles as the room's archive (XEP-0313; its reads, trims and
tombstones are :mod:`services.muc.archive_store`). Configuration is a JSON-able dict
the room code owns; the store only keeps it. Affiliations are one row per
(room, jid), written by upserts, so two processes changing different users'
affiliations both win, and two changing the same user's end with exactly one
of the two. A change of several rows (a room becoming persistent, a set of
affiliations) is one transaction: stored whole or not at all. Deleting a
room deletes its affiliations and history with it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import attrs
from twisted.internet.defer import Deferred

from component.storage import Migrations, Param, Row, Sql, Storage, StorageError, Transaction
from component.storage.leases import Lease, LeaseLost, fence
from services.muc.live import LiveChanges, LiveState, forget_all_live, forget_live, load_live, write_changes

if TYPE_CHECKING:
    from component.leases import Leases
    from services.muc.tombstones import Tombstone

T = TypeVar("T")
P = ParamSpec("P")

AFFILIATIONS = ("owner", "admin", "member", "outcast")
"""The affiliations that are stored; 'none' is the absence of a row."""

MUC_MIGRATIONS = Migrations(
    "muc",
    steps=[
        [
            "CREATE TABLE muc_rooms ("
            " node TEXT PRIMARY KEY,"
            " config TEXT NOT NULL DEFAULT '{}',"
            " public INTEGER NOT NULL DEFAULT 1,"
            " subject TEXT NOT NULL DEFAULT '',"
            " subject_from TEXT NOT NULL DEFAULT '',"
            " created_at REAL NOT NULL)",
            "CREATE TABLE muc_affiliations ("
            " room TEXT NOT NULL REFERENCES muc_rooms (node) ON DELETE CASCADE,"
            " jid TEXT NOT NULL,"
            " affiliation TEXT NOT NULL"
            "  CHECK (affiliation IN ('owner', 'admin', 'member', 'outcast')),"
            " nick TEXT,"
            " reason TEXT NOT NULL DEFAULT '',"
            " PRIMARY KEY (room, jid))",
            Sql(
                sqlite="CREATE TABLE muc_history ("
                " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " room TEXT NOT NULL REFERENCES muc_rooms (node) ON DELETE CASCADE,"
                " stanza_id TEXT NOT NULL,"
                " nick TEXT NOT NULL,"
                " sender_jid TEXT,"
                " stanza TEXT NOT NULL,"
                " timestamp REAL NOT NULL,"
                " UNIQUE (room, stanza_id))",
                postgresql="CREATE TABLE muc_history ("
                " seq BIGSERIAL PRIMARY KEY,"
                " room TEXT NOT NULL REFERENCES muc_rooms (node) ON DELETE CASCADE,"
                " stanza_id TEXT NOT NULL,"
                " nick TEXT NOT NULL,"
                " sender_jid TEXT,"
                " stanza TEXT NOT NULL,"
                " timestamp DOUBLE PRECISION NOT NULL,"
                " UNIQUE (room, stanza_id))",
            ),
            "CREATE INDEX muc_history_room_seq ON muc_history (room, seq)",
        ],
        [
            # What a row is (a message, a subject change, a tombstone) and what
            # the archive tells about its sender; each room's row count, so that
            # an archive query's RSM count needs no scan of a million rows.
            "ALTER TABLE muc_history ADD COLUMN kind INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE muc_history ADD COLUMN occupant_id TEXT",
            "ALTER TABLE muc_history ADD COLUMN jid_public INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE muc_rooms ADD COLUMN archived BIGINT NOT NULL DEFAULT 0",
            "UPDATE muc_rooms SET archived = (SELECT count(*) FROM muc_history h WHERE h.room = muc_rooms.node)",
            # Start and end of archive queries, and expiry, find their rows here.
            "CREATE INDEX muc_history_room_time ON muc_history (room, timestamp, seq)",
        ],
        [
            # The names of destroyed persistent rooms, reserved until a time.
            Sql(
                sqlite="CREATE TABLE muc_tombstones ("
                " node TEXT PRIMARY KEY, until REAL NOT NULL, reason TEXT, alternate TEXT)",
                postgresql="CREATE TABLE muc_tombstones ("
                " node TEXT PRIMARY KEY, until DOUBLE PRECISION NOT NULL, reason TEXT, alternate TEXT)",
            ),
        ],
        [
            # When the subject was set, for its <delay/> on entering; NULL for
            # subjects set before the column (and for none).
            Sql(
                sqlite="ALTER TABLE muc_rooms ADD COLUMN subject_at REAL",
                postgresql="ALTER TABLE muc_rooms ADD COLUMN subject_at DOUBLE PRECISION",
            ),
        ],
    ],
)

MESSAGE = 0
"""A groupchat message with a body: in the join history and the archive."""
SUBJECT = 1
"""A subject change: in the archive only (the subject itself is the room's)."""
TOMBSTONE = 2
"""A message retracted or moderated away: in the archive as what replaced it, never replayed."""
NOTICE = 3
"""A message from the room itself that clients catching up need (a moderation): in the archive only."""
KINDS = (MESSAGE, SUBJECT, TOMBSTONE, NOTICE)


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@attrs.frozen
class RoomRecord:
    """A stored room, without its affiliations and history."""

    node: str
    config: dict[str, Any]
    public: bool
    subject: str
    subject_from: str
    created_at: float
    #: When the subject was set (None: set before the store kept it, or never).
    subject_at: float | None = None


@attrs.frozen
class Affiliation:
    """One user's standing affiliation with a room."""

    jid: str
    affiliation: str = attrs.field(validator=attrs.validators.in_(AFFILIATIONS))
    nick: str | None = None
    reason: str = ""


@attrs.frozen
class AffiliationChange:
    """A new affiliation for one user; 'none' removes the user's row."""

    jid: str
    affiliation: str = attrs.field(validator=attrs.validators.in_((*AFFILIATIONS, "none")))
    reason: str = ""
    nick: str | None = None


@attrs.frozen
class HistoryRecord:
    """One archived message of a room.

    *stanza* is the message as the service reflected it, without ``to``;
    *stanza_id* is its XEP-0359 id (the archive id); *nick* makes the
    sender's occupant JID and *sender_jid* is its real bare JID, for the
    room's own use and for those allowed to see it; *jid_public* says the
    room was non-anonymous when it was sent. *seq* is given by the store
    and orders the archive.
    """

    stanza_id: str
    nick: str
    sender_jid: str | None
    stanza: str
    timestamp: float
    seq: int | None = None
    kind: int = attrs.field(default=MESSAGE, validator=attrs.validators.in_(KINDS))
    #: The sender's XEP-0421 occupant-id, where the room gives them.
    occupant_id: str | None = None
    jid_public: bool = False


_ROOM_COLUMNS = "node, config, public, subject, subject_from, created_at, subject_at"


def _room(row: Row) -> RoomRecord:
    node, config, public, subject, subject_from, created_at, subject_at = row
    return RoomRecord(
        node=node,
        config=json.loads(config),
        public=bool(public),
        subject=subject,
        subject_from=subject_from,
        created_at=float(created_at),
        subject_at=None if subject_at is None else float(subject_at),
    )


def _maybe_room(row: Row | None) -> RoomRecord | None:
    return None if row is None else _room(row)


def _affiliations(rows: list[Row]) -> dict[str, Affiliation]:
    return {
        jid: Affiliation(jid=jid, affiliation=affiliation, nick=nick, reason=reason)
        for jid, affiliation, nick, reason in rows
    }


HISTORY_COLUMNS = "seq, stanza_id, nick, sender_jid, stanza, timestamp, kind, occupant_id, jid_public"
"""The columns :func:`history_record` reads, in its order."""


def history_record(row: Row) -> HistoryRecord:
    """A row of ``SELECT HISTORY_COLUMNS FROM muc_history``."""
    seq, stanza_id, nick, sender_jid, stanza, timestamp, kind, occupant_id, jid_public = row
    return HistoryRecord(
        seq=int(seq),
        stanza_id=stanza_id,
        nick=nick,
        sender_jid=sender_jid,
        stanza=stanza,
        timestamp=float(timestamp),
        kind=int(kind),
        occupant_id=occupant_id,
        jid_public=bool(jid_public),
    )


def _history(rows: list[Row]) -> list[HistoryRecord]:
    records = [history_record(row) for row in rows]
    records.reverse()
    return records


def count_archived(txn: Transaction, node: str, change: int) -> None:
    """Keep the room's row count right after *change* rows came or went."""
    if change:
        txn.execute("UPDATE muc_rooms SET archived = archived + ? WHERE node = ?", (change, node))


def _changed(rowcount: int) -> bool:
    return rowcount > 0


# The statements, each a function of a transaction, so that a change of
# several rows runs them in one.


def _save_config(txn: Transaction, node: str, config: dict[str, Any], public: bool, now: float) -> None:
    txn.execute(
        f"INSERT INTO muc_rooms ({_ROOM_COLUMNS}) VALUES (?, ?, ?, '', '', ?, NULL)"
        " ON CONFLICT (node) DO UPDATE SET"
        " config = excluded.config, public = excluded.public",
        (node, _json(config), public, now),
    )


def _configure(
    txn: Transaction, node: str, config: dict[str, Any], public: bool, now: float, affiliations: Iterable[AffiliationChange]
) -> None:
    _save_config(txn, node, config, public, now)
    _set_affiliations(txn, node, affiliations)


def _set_subject(
    txn: Transaction, node: str, subject: str, by_nick: str, at: float | None, record: HistoryRecord | None = None
) -> bool:
    exists = _changed(txn.execute(
        "UPDATE muc_rooms SET subject = ?, subject_from = ?, subject_at = ? WHERE node = ?",
        (subject, by_nick, at, node),
    ))
    if exists and record is not None:
        _append_histories(txn, node, (record,))
    return exists


def _delete_room(txn: Transaction, node: str, tombstone: Tombstone | None) -> bool:
    existed = _changed(txn.execute("DELETE FROM muc_rooms WHERE node = ?", (node,)))
    if tombstone is not None:
        txn.execute(
            "INSERT INTO muc_tombstones (node, until, reason, alternate) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (node) DO UPDATE SET until = excluded.until, reason = excluded.reason,"
            " alternate = excluded.alternate",
            (node, tombstone.until, tombstone.reason, tombstone.alternate),
        )
    return existed


def _set_affiliations(txn: Transaction, node: str, changes: Iterable[AffiliationChange]) -> None:
    for change in changes:
        if change.affiliation == "none":
            txn.execute("DELETE FROM muc_affiliations WHERE room = ? AND jid = ?", (node, change.jid))
            continue
        txn.execute(
            "INSERT INTO muc_affiliations (room, jid, affiliation, nick, reason)"
            " VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (room, jid) DO UPDATE SET"
            " affiliation = excluded.affiliation, nick = excluded.nick,"
            " reason = excluded.reason",
            (node, change.jid, change.affiliation, change.nick, change.reason),
        )


_INSERT_COLUMNS = "room, stanza_id, nick, sender_jid, stanza, timestamp, kind, occupant_id, jid_public"


def _values(node: str, r: HistoryRecord) -> tuple[Param, ...]:
    return (node, r.stanza_id, r.nick, r.sender_jid, r.stanza, r.timestamp, r.kind, r.occupant_id, r.jid_public)


def append_history_row(txn: Transaction, node: str, record: HistoryRecord) -> int | None:
    """Archive *record* in the room within *txn*: its seq, None when the room already has its stanza-id."""
    return _append_history(txn, node, record)


def _append_history(txn: Transaction, node: str, record: HistoryRecord) -> int | None:
    row = txn.fetchone(
        f"INSERT INTO muc_history ({_INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (room, stanza_id) DO NOTHING RETURNING seq",
        _values(node, record),
    )
    if row is None:
        return None
    count_archived(txn, node, 1)
    return int(row[0])


# Rows one INSERT carries: at 9 parameters a row, far below either database's limit on parameters.
_ROWS_PER_INSERT = 500


def _append_histories(txn: Transaction, node: str, records: Sequence[HistoryRecord]) -> None:
    # One statement for many rows: one round trip to PostgreSQL, not one per message.
    added = 0
    for start in range(0, len(records), _ROWS_PER_INSERT):
        chunk = records[start:start + _ROWS_PER_INSERT]
        added += txn.execute(
            f"INSERT INTO muc_history ({_INSERT_COLUMNS}) VALUES "
            + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
            + " ON CONFLICT (room, stanza_id) DO NOTHING",
            [value for r in chunk for value in _values(node, r)],
        )
    count_archived(txn, node, added)


def _append_rooms_histories(
    txn: Transaction, batches: Sequence[tuple[str, Sequence[HistoryRecord]]], leases: Mapping[str, Lease]
) -> list[str | LeaseLost | None]:
    # Every lease first, in the order of their keys, as a renewal locks them (see `fence`).
    refused: dict[str, LeaseLost] = {}
    for node in sorted({node for node, _ in batches if node in leases}, key=lambda node: leases[node].key):
        txn.execute("SAVEPOINT room_lease")
        try:
            fence(txn, leases[node])
        except LeaseLost as lost:
            txn.execute("ROLLBACK TO SAVEPOINT room_lease")
            refused[node] = lost
        else:
            txn.execute("RELEASE SAVEPOINT room_lease")
    refusals: list[str | LeaseLost | None] = []
    for node, records in batches:
        if node in refused:
            refusals.append(refused[node])
            continue
        txn.execute("SAVEPOINT room_history")
        try:
            _append_histories(txn, node, records)
        except Exception as error:  # the driver's own error, whichever the database
            # Only this room's rows are undone; should the connection be gone,
            # this fails too and so does the whole transaction.
            txn.execute("ROLLBACK TO SAVEPOINT room_history")
            refusals.append(str(error) or type(error).__name__)
        else:
            txn.execute("RELEASE SAVEPOINT room_history")
            refusals.append(None)
    return refusals


def _store_room(
    txn: Transaction,
    node: str,
    config: dict[str, Any],
    public: bool,
    now: float,
    affiliations: Iterable[AffiliationChange],
    subject: tuple[str, str, float | None],
    history: Iterable[HistoryRecord],
) -> None:
    _save_config(txn, node, config, public, now)
    _set_affiliations(txn, node, affiliations)
    _set_subject(txn, node, *subject)
    for record in history:
        _append_history(txn, node, record)


@attrs.define
class MucStore:
    """The rooms of one MUC service, on a `Storage` opened with `MUC_MIGRATIONS`.

    Every write to one room takes the room's *lease* (None without
    ``[cluster]``): with one, it runs through *leases* and commits only while
    this instance holds the room (see :mod:`component.leases`); else it fails
    with `LeaseLost` and writes nothing.
    """

    storage: Storage
    clock: Callable[[], float] = time.time
    leases: Leases | None = None
    #: Messages written to the archive (its failures are the service's ``write_failures``).
    history_writes: int = attrs.field(default=0, init=False)

    def _write(
        self, lease: Lease | None, fn: Callable[Concatenate[Transaction, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> Deferred[T]:
        if lease is None:
            return self.storage.transaction(fn, *args, **kwargs)
        assert self.leases is not None, "a lease without the leases it came from"
        return self.leases.fenced(lease, fn, *args, **kwargs)

    def load_room(self, node: str) -> Deferred[RoomRecord | None]:
        """The room *node*, or None if it is not stored."""
        d = self.storage.fetchone(
            f"SELECT {_ROOM_COLUMNS} FROM muc_rooms WHERE node = ?", (node,)
        )
        return d.addCallback(_maybe_room)

    def list_rooms(self, public_only: bool = False) -> Deferred[list[RoomRecord]]:
        """Every stored room, or only the public ones, sorted by node."""
        where = " WHERE public = 1" if public_only else ""
        d = self.storage.fetchall(
            f"SELECT {_ROOM_COLUMNS} FROM muc_rooms{where} ORDER BY node"
        )
        return d.addCallback(lambda rows: [_room(row) for row in rows])

    def last_messages(self) -> Deferred[dict[str, float | None]]:
        """Every stored room's node → the time of its last archived message, None if it has none."""
        # One index look-up per room (muc_history_room_seq), not a scan of the archive.
        d = self.storage.fetchall(
            "SELECT r.node, (SELECT h.timestamp FROM muc_history h WHERE h.room = r.node"
            " ORDER BY h.seq DESC LIMIT 1) FROM muc_rooms r"
        )
        return d.addCallback(lambda rows: {node: None if stamp is None else float(stamp) for node, stamp in rows})

    def room_owners(self) -> Deferred[list[tuple[str, str]]]:
        """(room, owner's bare JID) for every owner of every stored room."""
        d = self.storage.fetchall(
            "SELECT room, jid FROM muc_affiliations WHERE affiliation = 'owner' ORDER BY room, jid"
        )
        return d.addCallback(lambda rows: [(room, jid) for room, jid in rows])

    def save_config(
        self, node: str, config: dict[str, Any], *, public: bool = True, lease: Lease | None = None,
        affiliations: Sequence[AffiliationChange] = (),
    ) -> Deferred[None]:
        """Create the room *node* or replace its configuration, and apply *affiliations* in the same transaction.

        *public* is kept beside the configuration so that listing public rooms
        needs no look inside the JSON.
        """
        return self._write(lease, _configure, node, config, public, self.clock(), tuple(affiliations))

    def store_room(
        self,
        node: str,
        config: dict[str, Any],
        *,
        public: bool = True,
        affiliations: Sequence[AffiliationChange] = (),
        subject: tuple[str, str, float | None] = ("", "", None),
        history: Sequence[HistoryRecord] = (),
        lease: Lease | None = None,
    ) -> Deferred[None]:
        """Store a room whole, in one transaction: its configuration, affiliations, subject and history.

        A room that becomes persistent is stored this way, so that the
        database never holds part of it (a room without its owners).
        *subject* is the subject, the nick that set it and when.
        """
        history = tuple(history)
        d = self._write(lease, _store_room, node, config, public, self.clock(), tuple(affiliations), subject, history)
        return d.addCallback(self._written, len(history))

    def set_subject(
        self, node: str, subject: str, by_nick: str, at: float | None, record: HistoryRecord | None = None, *,
        lease: Lease | None = None,
    ) -> Deferred[bool]:
        """Set the room's subject, set by *by_nick* at *at*, archiving the message that changed it as *record*;
        fire with whether the room exists."""
        d = self._write(lease, _set_subject, node, subject, by_nick, at, record)
        return d if record is None else d.addCallback(self._written, 1)

    def delete_room(
        self, node: str, tombstone: Tombstone | None = None, *, lease: Lease | None = None
    ) -> Deferred[bool]:
        """Forget the room, its affiliations and its history, and leave *tombstone* in its place,
        in one transaction; fire with whether it existed."""
        return self._write(lease, _delete_room, node, tombstone)

    def tombstones(self) -> Deferred[list[tuple[str, float, str | None, str | None]]]:
        """Every stored tombstone: (node, until, reason, alternate)."""
        d = self.storage.fetchall("SELECT node, until, reason, alternate FROM muc_tombstones")
        return d.addCallback(lambda rows: [(str(r[0]), float(r[1]), r[2], r[3]) for r in rows])

    def lift(self, node: str) -> Deferred[int]:
        """Free the name *node* again."""
        return self.storage.execute("DELETE FROM muc_tombstones WHERE node = ?", (node,))

    def set_affiliation(
        self,
        node: str,
        jid: str,
        affiliation: str,
        reason: str = "",
        nick: str | None = None,
    ) -> Deferred[None]:
        """Set *jid*'s affiliation with the stored room *node*; 'none' removes it."""
        return self.set_affiliations(node, [AffiliationChange(jid, affiliation, reason, nick)])

    def set_affiliations(
        self, node: str, changes: Sequence[AffiliationChange], *, lease: Lease | None = None
    ) -> Deferred[None]:
        """Set several affiliations with the stored room *node* in one transaction: all or none.

        Changes are applied in order: of two for one user, the last wins.
        """
        return self._write(lease, _set_affiliations, node, tuple(changes))

    def affiliations(self, node: str) -> Deferred[dict[str, Affiliation]]:
        """The room's affiliations other than 'none', keyed by bare JID."""
        d = self.storage.fetchall(
            "SELECT jid, affiliation, nick, reason FROM muc_affiliations"
            " WHERE room = ? ORDER BY jid",
            (node,),
        )
        return d.addCallback(_affiliations)

    def append_history(self, node: str, record: HistoryRecord) -> Deferred[int | None]:
        """Archive *record* in the room; fire with its seq.

        A record whose stanza_id the room already has is not stored again,
        and the Deferred fires with None.
        """
        d = self.storage.transaction(_append_history, node, record)
        return d.addCallback(self._written, 1)

    def append_rooms_histories(
        self, batches: Sequence[tuple[str, Sequence[HistoryRecord]]], leases: Mapping[str, Lease] | None = None
    ) -> Deferred[list[StorageError | None]]:
        """Archive the records of several rooms in one transaction: one commit for all.

        One commit for many messages is what lets busy persistent rooms go
        faster than their database commits (see :mod:`services.muc.archive`).

        Each room's records are stored all or none, in their order, and apart
        from the other rooms': the rows of a room the database refuses (one
        another process deleted) fail alone. Fire with each room's refusal,
        None where its records are stored; the whole transaction failing (the
        database gone) fails the Deferred. The rows of a room named in
        *leases* (node → lease) are stored only while that lease is held;
        else that room's refusal is a `LeaseLost`.
        """
        batches = tuple((node, tuple(records)) for node, records in batches)
        d = self.storage.transaction(_append_rooms_histories, batches, dict(leases or {}))
        return d.addCallback(self._rooms_written, batches)

    def _rooms_written(
        self, refusals: list[str | LeaseLost | None], batches: Sequence[tuple[str, Sequence[HistoryRecord]]]
    ) -> list[StorageError | None]:
        outcomes: list[StorageError | None] = []
        for (node, records), refusal in zip(batches, refusals, strict=True):
            if refusal is None:
                self.history_writes += len(records)
                outcomes.append(None)
            elif isinstance(refusal, LeaseLost):
                outcomes.append(refusal)
            else:
                outcomes.append(StorageError(f"the history of {node} was refused: {refusal}"))
        return outcomes

    def _written(self, result: T, count: int) -> T:
        self.history_writes += count
        return result

    def recent_history(
        self, node: str, limit: int, since: float | None = None
    ) -> Deferred[list[HistoryRecord]]:
        """The room's last *limit* messages (none older than *since*), oldest first: the archive's tail.

        Subject changes and tombstones are archived but never replayed.
        """
        where = f"room = ? AND kind = {MESSAGE}"
        params: list[Param] = [node]
        if since is not None:
            where += " AND timestamp >= ?"
            params.append(since)
        d = self.storage.fetchall(
            f"SELECT {HISTORY_COLUMNS}"
            f" FROM muc_history WHERE {where} ORDER BY seq DESC LIMIT ?",
            (*params, limit),
        )
        return d.addCallback(_history)

    # -- live state (services.muc.live) -----------------------------------------

    def live_state(self, node: str) -> Deferred[LiveState]:
        """The room's occupants, subject and lock as last stored."""
        return self.storage.transaction(load_live, node)

    def write_live(self, node: str, changes: LiveChanges, *, lease: Lease | None = None) -> Deferred[None]:
        """Store what one stanza changed of the room's live state, in one transaction."""
        return self._write(lease, write_changes, node, changes)

    def forget_live(self, node: str, *, lease: Lease | None = None) -> Deferred[None]:
        """Delete the room's live state."""
        return self._write(lease, forget_live, node)

    def forget_all_live(self) -> Deferred[None]:
        """Delete the live state of every room (a single instance that told every occupant it stops)."""
        return self.storage.transaction(forget_all_live)
