"""A room's archive in storage (XEP-0313): pages of it, its ends, its tombstones and its trims.

The rows are ``muc_history``'s (see :mod:`services.muc.store`), written as
the room reflects its messages. Every read here is a keyset read on an
index: a page is the rows after or before a ``seq`` on ``(room, seq)``,
never an OFFSET, so a page a million rows back costs what the first does;
an archive id (the XEP-0359 stanza-id) becomes its ``seq`` through the
``(room, stanza_id)`` unique index, a time through ``(room, timestamp,
seq)``. The count of a query that filters nothing is the room's row count
kept in ``muc_rooms.archived``; only a filtered query counts its rows.

Deletions for retention go in bounded batches, one transaction each, so
that trimming a large archive never holds the database for long.

For moderation and retraction (XEP-0425, XEP-0424), :meth:`ArchiveStore.find`
finds a message by its stanza-id and :meth:`ArchiveStore.replace` puts a
tombstone in its place: the row keeps its id, time and sender, its kind
becomes :data:`~services.muc.store.TOMBSTONE` and the join history no
longer replays it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet.defer import Deferred

from component.storage import Param, Storage, Transaction
from component.storage.leases import Lease
from services.muc.store import (
    HISTORY_COLUMNS,
    TOMBSTONE,
    HistoryRecord,
    append_history_row,
    count_archived,
    history_record,
)

if TYPE_CHECKING:
    from component.leases import Leases

__all__ = ["ArchiveEnds", "ArchivePage", "ArchiveStore", "NotInArchive", "Selection"]


class NotInArchive(LookupError):
    """An archive id that a query pages from (after, before) is not in the room's archive."""


@attrs.frozen
class Selection:
    """Which of a room's archived rows a query asks for (the XEP-0313 form), before paging.

    Times are POSIX seconds, both ends included; *after_id* and *before_id*
    exclude the row they name. *nick* keeps one occupant's messages, *jid*
    one real bare JID's; *ids* (when not empty) only those archive ids.
    """

    start: float | None = None
    end: float | None = None
    nick: str | None = None
    jid: str | None = None
    after_id: str | None = None
    before_id: str | None = None
    ids: tuple[str, ...] = ()

    @property
    def everything(self) -> bool:
        """Whether the selection is the whole archive (its count is kept, not counted)."""
        return self == _EVERYTHING


_EVERYTHING = Selection()


@attrs.frozen
class ArchivePage:
    """Rows of one page in archive order (oldest first); *complete* when the selection has no more beyond them."""

    rows: tuple[HistoryRecord, ...]
    complete: bool
    #: How many rows the whole selection holds.
    count: int


@attrs.frozen
class ArchiveEnds:
    """The oldest and newest row of a room's archive (XEP-0313 metadata): (archive id, time)."""

    first: tuple[str, float] | None
    last: tuple[str, float] | None


def _seq_of(txn: Transaction, node: str, stanza_id: str) -> int:
    row = txn.fetchone("SELECT seq FROM muc_history WHERE room = ? AND stanza_id = ?", (node, stanza_id))
    if row is None:
        raise NotInArchive(stanza_id)
    return int(row[0])


#: Past every seq: the upper end of a range open above.
_BEYOND = 2**62
#: The first message at or after a time, and the last at or before one (on the time index).
_FIRST_FROM = "SELECT seq FROM muc_history WHERE room = ? AND timestamp >= ? ORDER BY timestamp, seq LIMIT 1"
_LAST_UNTIL = "SELECT seq FROM muc_history WHERE room = ? AND timestamp <= ? ORDER BY timestamp DESC, seq DESC LIMIT 1"


def _bounds(txn: Transaction, node: str, selection: Selection) -> tuple[int, int] | None:
    """The selection's range of seq, both ends excluded; None when it holds nothing."""
    low, high = 0, _BEYOND
    if selection.after_id is not None:
        low = max(low, _seq_of(txn, node, selection.after_id))
    if selection.before_id is not None:
        high = min(high, _seq_of(txn, node, selection.before_id))
    # Times become seqs on the time index: the rest of the query is a range of seq. No message
    # from the start on, or none until the end, leaves the range empty.
    if selection.start is not None:
        low = max(low, _seq_at(txn, _FIRST_FROM, node, selection.start, none=_BEYOND) - 1)
    if selection.end is not None:
        high = min(high, _seq_at(txn, _LAST_UNTIL, node, selection.end, none=0) + 1)
    return (low, high) if low + 1 < high else None


def _seq_at(txn: Transaction, query: str, node: str, timestamp: float, none: int) -> int:
    """The seq of the message a time query finds, ``none`` when it finds none."""
    row = txn.fetchone(query, (node, timestamp))
    return none if row is None else int(row[0])


def _where(node: str, selection: Selection, low: int, high: int) -> tuple[str, list[Param]]:
    where = "room = ? AND seq > ? AND seq < ?"
    params: list[Param] = [node, low, high]
    if selection.nick is not None:
        where += " AND nick = ?"
        params.append(selection.nick)
    if selection.jid is not None:
        where += " AND sender_jid = ?"
        params.append(selection.jid)
    if selection.ids:
        where += " AND stanza_id IN (" + ", ".join("?" * len(selection.ids)) + ")"
        params.extend(selection.ids)
    return where, params


def _page(
    txn: Transaction,
    node: str,
    selection: Selection,
    after: str | None,
    before: str | None,
    limit: int,
) -> ArchivePage:
    # Both paging ids are looked up first: an unknown one is an error even when nothing matches.
    after_seq = None if after is None else _seq_of(txn, node, after)
    before_seq = None if not before else _seq_of(txn, node, before)
    bounds = _bounds(txn, node, selection)
    if bounds is None:
        return ArchivePage((), True, 0)
    low, high = bounds
    count = _count(txn, node, selection, low, high)
    if after_seq is not None:
        low = max(low, after_seq)
    if before_seq is not None:
        high = min(high, before_seq)
    # Paging backwards (RSM <before/>) reads from the newest end of the range.
    backwards = before is not None
    where, params = _where(node, selection, low, high)
    rows = txn.fetchall(
        f"SELECT {HISTORY_COLUMNS} FROM muc_history WHERE {where}"
        f" ORDER BY seq {'DESC' if backwards else 'ASC'} LIMIT ?",
        (*params, limit + 1),
    )
    complete = len(rows) <= limit
    records = [history_record(row) for row in rows[:limit]]
    if backwards:
        records.reverse()
    return ArchivePage(tuple(records), complete, count)


def _count(txn: Transaction, node: str, selection: Selection, low: int, high: int) -> int:
    if selection.everything:
        row = txn.fetchone("SELECT archived FROM muc_rooms WHERE node = ?", (node,))
        return 0 if row is None else int(row[0])
    where, params = _where(node, selection, low, high)
    row = txn.fetchone(f"SELECT count(*) FROM muc_history WHERE {where}", params)
    return 0 if row is None else int(row[0])


def _ends(txn: Transaction, node: str) -> ArchiveEnds:
    ends: list[tuple[str, float] | None] = []
    for order in ("ASC", "DESC"):
        row = txn.fetchone(
            f"SELECT stanza_id, timestamp FROM muc_history WHERE room = ? ORDER BY seq {order} LIMIT 1", (node,)
        )
        ends.append(None if row is None else (str(row[0]), float(row[1])))
    return ArchiveEnds(*ends)


def _find(txn: Transaction, node: str, stanza_id: str) -> HistoryRecord | None:
    row = txn.fetchone(f"SELECT {HISTORY_COLUMNS} FROM muc_history WHERE room = ? AND stanza_id = ?", (node, stanza_id))
    return None if row is None else history_record(row)


def _replace(txn: Transaction, node: str, stanza_id: str, stanza: str, notice: HistoryRecord | None) -> bool:
    changed = txn.execute(
        "UPDATE muc_history SET stanza = ?, kind = ? WHERE room = ? AND stanza_id = ?",
        (stanza, TOMBSTONE, node, stanza_id),
    )
    if notice is not None:
        append_history_row(txn, node, notice)
    return changed > 0


def _delete_oldest(txn: Transaction, node: str, keep: int, batch: int) -> int:
    row = txn.fetchone("SELECT archived FROM muc_rooms WHERE node = ?", (node,))
    excess = 0 if row is None else int(row[0]) - keep
    if excess <= 0:
        return 0
    deleted = txn.execute(
        "DELETE FROM muc_history WHERE seq IN"
        " (SELECT seq FROM muc_history WHERE room = ? ORDER BY seq LIMIT ?)",
        (node, min(excess, batch)),
    )
    count_archived(txn, node, -deleted)
    return deleted


def _delete_older(txn: Transaction, node: str, before: float, batch: int) -> int:
    deleted = txn.execute(
        "DELETE FROM muc_history WHERE seq IN"
        " (SELECT seq FROM muc_history WHERE room = ? AND timestamp < ? ORDER BY timestamp, seq LIMIT ?)",
        (node, before, batch),
    )
    count_archived(txn, node, -deleted)
    return deleted


def _rooms(txn: Transaction) -> list[tuple[str, int, dict[str, Any]]]:
    rows = txn.fetchall("SELECT node, archived, config FROM muc_rooms WHERE archived > 0 ORDER BY node")
    return [(str(node), int(archived), json.loads(config)) for node, archived, config in rows]


@attrs.define
class ArchiveStore:
    """The archives of one MUC service's rooms, on a `Storage` opened with ``MUC_MIGRATIONS``.

    A change of one room's archive by the room (a tombstone) takes the room's
    lease with ``[cluster]``, as :class:`~services.muc.store.MucStore`'s writes do.
    """

    storage: Storage
    leases: Leases | None = None

    def page(
        self,
        node: str,
        selection: Selection,
        *,
        after: str | None = None,
        before: str | None = None,
        limit: int,
    ) -> Deferred[ArchivePage]:
        """At most *limit* rows of *selection*: the first ones, those after the archive id *after*,
        or the last ones before *before* (``""``: the very last ones, XEP-0059 §2.5).

        Fails with :class:`NotInArchive` when an id it pages from is not in the room's archive.
        """
        return self.storage.transaction(_page, node, selection, after, before, limit)

    def ends(self, node: str) -> Deferred[ArchiveEnds]:
        """The room's oldest and newest archived rows."""
        return self.storage.transaction(_ends, node)

    def find(self, node: str, stanza_id: str) -> Deferred[HistoryRecord | None]:
        """The archived row whose stanza-id (archive id) is *stanza_id*, or None."""
        return self.storage.transaction(_find, node, stanza_id)

    def replace(
        self, node: str, stanza_id: str, stanza: str, notice: HistoryRecord | None = None, *, lease: Lease | None = None
    ) -> Deferred[bool]:
        """Replace the archived message *stanza_id* by the tombstone *stanza* (a serialised message without ``to``).

        The row keeps its archive id, time, sender and place; the join history
        skips it from now on. *notice*, the room's announcement of the change,
        is archived in the same transaction. Fires with whether the room had
        that message.
        """
        if lease is not None:
            assert self.leases is not None, "a lease without the leases it came from"
            return self.leases.fenced(lease, _replace, node, stanza_id, stanza, notice)
        return self.storage.transaction(_replace, node, stanza_id, stanza, notice)

    def rooms(self) -> Deferred[list[tuple[str, int, dict[str, Any]]]]:
        """Every stored room with archived rows: its node, how many rows, its configuration."""
        return self.storage.transaction(_rooms)

    def delete_oldest(self, node: str, keep: int, batch: int) -> Deferred[int]:
        """Delete the room's oldest rows beyond the newest *keep*, at most *batch* of them; fire with how many went."""
        return self.storage.transaction(_delete_oldest, node, keep, batch)

    def delete_older(self, node: str, before: float, batch: int) -> Deferred[int]:
        """Delete at most *batch* of the room's rows older than *before*; fire with how many went."""
        return self.storage.transaction(_delete_older, node, before, batch)

