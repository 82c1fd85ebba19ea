"""A persistent room's messages on their way into its history: one transaction for all that wait.

A message in a persistent room is reflected only once its history row is
stored. Written one at a time, each message would wait for a commit of its
own (an fsync on SQLite, a round trip on PostgreSQL) and a busy room would
go no faster than its database commits. Here the messages that arrive while
the room's write is in flight are written together, in one transaction,
as soon as it completes (group commit), at most the service's
``history_batch`` rows a transaction. Rooms share the commits too: the service's :class:`HistoryWriter` puts
the rows of every room that waits into one transaction, each room's under
a savepoint of its own, so that a room whose rows are refused (another
process deleted it) fails alone.

Every message still keeps its place in the room's line: each is reflected
only after its own row is stored, in arrival order, and what the room
decided meanwhile about other groupchat messages (an error, a reflection
that needs no row) is held in line behind the messages before it. A
transaction the database refuses refuses every message in it: each sender
gets the error, nobody sees any of them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from component.errors import StanzaError
from component.storage import StorageError
from component.storage.leases import Lease
from services.muc.store import HistoryRecord

__all__ = ["Archive", "HistoryWriter", "InLine"]


class InLine(defer.Deferred[Any]):
    """The outcome of a stanza that waits in a room's line: it fires once everything before it did."""


class _Turn:
    """One place in the line: what to do in turn, and whether its row (if any) is stored."""

    __slots__ = ("failure", "out", "ready", "record", "run")

    def __init__(self, run: Callable[[], Any], record: HistoryRecord | None) -> None:
        self.run = run
        self.record = record
        self.ready = record is None
        self.failure: Failure | None = None
        self.out = InLine()


class Archive:
    """The line of one room's messages waiting for their history rows.

    The service's *writer* stores the rows; *refused* turns a refusal into
    the error for one sender (and counts it); *emptied* is called when the
    line empties, so that the room takes its other stanzas again. With a
    *lease* (``[cluster]``), the rows are stored only while it is held.
    """

    __slots__ = ("_emptied", "_line", "_refused", "_unwritten", "_writer", "lease", "room")

    def __init__(
        self,
        room: str,
        writer: HistoryWriter,
        refused: Callable[[StorageError], StanzaError],
        emptied: Callable[[], None],
        lease: Lease | None = None,
    ) -> None:
        #: The room's node, as the store names it.
        self.room = room
        #: The lease the room's rows are written under, if any.
        self.lease = lease
        self._writer = writer
        self._refused = refused
        self._emptied = emptied
        self._line: deque[_Turn] = deque()
        self._unwritten: deque[_Turn] = deque()

    def __len__(self) -> int:
        """How many stanzas wait in line."""
        return len(self._line)

    def add(self, record: HistoryRecord, reflect: Callable[[], Any]) -> InLine:
        """Store *record*, then *reflect* once it and everything before it are done."""
        turn = _Turn(reflect, record)
        self._line.append(turn)
        self._unwritten.append(turn)
        self._writer.wants(self)
        return turn.out

    def after(self, run: Callable[[], Any]) -> InLine:
        """*run* (which needs no row) once everything already in line is done; its result is the outcome."""
        turn = _Turn(run, None)
        self._line.append(turn)
        return turn.out

    def take(self, rows: int) -> list[_Turn]:
        """Up to *rows* of the rows not yet written, oldest first, for the writer's next transaction."""
        unwritten = self._unwritten
        return [unwritten.popleft() for _ in range(min(rows, len(unwritten)))]

    @property
    def unwritten(self) -> bool:
        """Whether rows wait for a transaction."""
        return bool(self._unwritten)

    def written(self, turns: list[_Turn], outcome: Failure | StorageError | None) -> None:
        """The transaction that carried *turns* ended: stored (None), or refused."""
        error = outcome.value if isinstance(outcome, Failure) else outcome
        for turn in turns:
            if isinstance(error, StorageError):
                # Each sender is told, and each refusal counted, as if written alone.
                turn.failure = Failure(self._refused(error))
            elif isinstance(outcome, Failure):
                turn.failure = outcome
            turn.ready = True
        self._deliver()

    def _deliver(self) -> None:
        line = self._line
        while line and line[0].ready:
            turn = line.popleft()
            if turn.failure is not None:
                turn.out.errback(turn.failure)
                continue
            try:
                result = turn.run()
            except Exception:
                turn.out.errback(Failure())
            else:
                turn.out.callback(result)
        if not line:
            self._emptied()


class HistoryWriter:
    """The history writes of one service: one transaction at a time, carrying every room's rows that wait.

    *write* stores ``(room, records)`` pairs in one transaction, each room's
    under its lease if it has one (the second argument: room → lease), and
    fires with each room's refusal (None when stored), as
    :meth:`MucStore.append_rooms_histories` does. A transaction holds at
    most *rows* records; a room with more waits for the next one, behind
    the other rooms.
    """

    __slots__ = ("_rooms", "_write", "_writing", "rows")

    def __init__(
        self,
        write: Callable[
            [Sequence[tuple[str, Sequence[HistoryRecord]]], Mapping[str, Lease]],
            defer.Deferred[list[StorageError | None]],
        ],
        *,
        rows: int,
    ) -> None:
        self._write = write
        #: Records one transaction holds at most (a reloaded configuration may change it).
        self.rows = rows
        # Rooms with rows to write, in the order they came; each at most once.
        self._rooms: dict[Archive, None] = {}
        self._writing = False

    def wants(self, archive: Archive) -> None:
        """*archive* has rows to write: now if no transaction is in flight, else in the next one."""
        self._rooms[archive] = None
        if not self._writing:
            self._flush()

    def _flush(self) -> None:
        batch: list[tuple[Archive, list[_Turn]]] = []
        taken = 0
        while self._rooms and taken < self.rows:
            archive = next(iter(self._rooms))
            turns = archive.take(self.rows - taken)
            taken += len(turns)
            batch.append((archive, turns))
            del self._rooms[archive]
            if archive.unwritten:
                self._rooms[archive] = None  # to the back: the other rooms go first next time
        self._writing = True
        records = [(archive.room, [turn.record for turn in turns if turn.record is not None]) for archive, turns in batch]
        leases = {archive.room: archive.lease for archive, _ in batch if archive.lease is not None}
        self._write(records, leases).addBoth(self._written, batch)

    def _written(self, result: list[StorageError | None] | Failure, batch: list[tuple[Archive, list[_Turn]]]) -> None:
        # Still writing while the rooms hear back: what they write meanwhile
        # goes in the next transaction, all of it together.
        for index, (archive, turns) in enumerate(batch):
            archive.written(turns, result if isinstance(result, Failure) else result[index])
        self._writing = False
        if self._rooms:
            self._flush()
