"""A persistent room's messages on their way into its history: one transaction for all that wait.

A message in a persistent room is reflected only once its history row is
stored. Written one at a time, each message would wait for a commit of its
own (an fsync on SQLite, a round trip on PostgreSQL) and a busy room would
go no faster than its database commits. Here the messages that arrive while
the room's write is in flight are written together, in one transaction,
as soon as it completes (group commit), at most ``batch`` rows at a time.

Every message still keeps its place in the room's line: each is reflected
only after its own row is stored, in arrival order, and what the room
decided meanwhile about other groupchat messages (an error, a reflection
that needs no row) is held in line behind the messages before it. A
transaction the database refuses refuses every message in it: each sender
gets the error, nobody sees any of them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from component.errors import StanzaError
from component.storage import StorageError
from services.muc.store import HistoryRecord

__all__ = ["Archive", "InLine"]


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

    *write* stores rows in one transaction; *refused* turns a refusal into
    the error for one sender (and counts it); *emptied* is called when the
    line empties, so that the room takes its other stanzas again.
    """

    __slots__ = ("_batch", "_emptied", "_line", "_refused", "_unwritten", "_write", "_writing")

    def __init__(
        self,
        write: Callable[[Sequence[HistoryRecord]], defer.Deferred[Any]],
        refused: Callable[[StorageError], StanzaError],
        emptied: Callable[[], None],
        *,
        batch: int,
    ) -> None:
        self._write = write
        self._refused = refused
        self._emptied = emptied
        self._batch = batch
        self._line: deque[_Turn] = deque()
        self._unwritten: deque[_Turn] = deque()
        self._writing = False

    def __len__(self) -> int:
        """How many stanzas wait in line."""
        return len(self._line)

    def add(self, record: HistoryRecord, reflect: Callable[[], Any]) -> InLine:
        """Store *record*, then *reflect* once it and everything before it are done."""
        turn = _Turn(reflect, record)
        self._line.append(turn)
        self._unwritten.append(turn)
        if not self._writing:
            self._flush()
        return turn.out

    def after(self, run: Callable[[], Any]) -> InLine:
        """*run* (which needs no row) once everything already in line is done; its result is the outcome."""
        turn = _Turn(run, None)
        self._line.append(turn)
        return turn.out

    def _flush(self) -> None:
        count = min(self._batch, len(self._unwritten))
        batch = [self._unwritten.popleft() for _ in range(count)]
        self._writing = True
        self._write([turn.record for turn in batch if turn.record is not None]).addBoth(self._written, batch)

    def _written(self, result: object, batch: list[_Turn]) -> None:
        self._writing = False
        if isinstance(result, Failure):
            error = result.value
            for turn in batch:
                # Each sender is told, and each refusal counted, as if written alone.
                turn.failure = Failure(self._refused(error)) if isinstance(error, StorageError) else result
        for turn in batch:
            turn.ready = True
        # The next transaction starts before the reflections of this one are built.
        if self._unwritten:
            self._flush()
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
