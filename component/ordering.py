"""Ordered work: one entity's changes applied in arrival order, each waiting for the storage before it.

An entity that writes before it announces (a roster, a room) must not let
a later stanza overtake an earlier one whose write is still in flight.
:class:`Turns` runs work one piece at a time: a piece that finds nothing
ahead of it runs at once, in the caller's call (its result, or its
exception, is the caller's); one that returns a Deferred holds the turn
until it fires; a piece that arrives meanwhile waits and gets a Deferred
of its outcome. :meth:`Turns.drain` is for shutdown.

:class:`InFlight` remembers writes in flight, in no order, so that a
service's stop waits for them. :func:`settled` is a Deferred that fires
when another does, whichever way, without taking its result.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

__all__ = ["InFlight", "Turns", "settled"]

log = Logger()

T = TypeVar("T")
_Waiting = tuple[Callable[[], Any], object, defer.Deferred[Any]]


def settled(deferred: defer.Deferred[Any]) -> defer.Deferred[None]:
    """A Deferred that fires with None once ``deferred`` has fired, with a result or a failure.

    ``deferred`` keeps its own result for its other callbacks: waiting on it
    neither consumes a failure nor leaves one unhandled.
    """
    done: defer.Deferred[None] = defer.Deferred()

    def fire(result: T) -> T:
        done.callback(None)
        return result

    deferred.addBoth(fire)
    return done


class Turns:
    """Work for one entity, one piece at a time, in the order it arrived.

    ``blocked(tag)``, when given, tells whether a piece tagged ``tag`` must
    wait although no piece runs (for something outside that it must not
    overtake); call :meth:`resume` once that has cleared. ``holds(result)``
    tells whether a Deferred a piece returned holds the turn until it fires
    (by default every Deferred does).
    """

    __slots__ = ("_blocked", "_busy", "_drains", "_holds", "_resuming", "_waiting")

    def __init__(
        self,
        blocked: Callable[[object], bool] | None = None,
        holds: Callable[[defer.Deferred[Any]], bool] | None = None,
    ) -> None:
        self._blocked = blocked
        self._holds = holds
        self._busy = False
        # Created when a piece first has to wait: most entities never need it.
        self._waiting: deque[_Waiting] | None = None
        self._resuming = False
        self._drains: list[defer.Deferred[None]] | None = None

    @property
    def busy(self) -> bool:
        """Whether a piece holds the turn, waiting for its Deferred."""
        return self._busy

    @property
    def waiting(self) -> int:
        """How many pieces wait for their turn."""
        return len(self._waiting) if self._waiting else 0

    @property
    def idle(self) -> bool:
        """Whether nothing runs and nothing waits."""
        return not self._busy and not self._waiting

    def run(self, work: Callable[[], Any], tag: object = None) -> Any:
        """Run ``work`` in its turn.

        At once when nothing is ahead of it: its result, a Deferred that
        fires after it when the result was one that holds the turn, or its
        exception, raised here. Otherwise a Deferred of its outcome, fired
        once its turn came and it ran.
        """
        if self._busy or self._waiting or (self._blocked is not None and self._blocked(tag)):
            waiter: defer.Deferred[Any] = defer.Deferred()
            if self._waiting is None:
                self._waiting = deque()
            self._waiting.append((work, tag, waiter))
            return waiter
        return self._start(work, None)

    def submit(
        self,
        work: Callable[[], Any],
        what: str,
        tag: object = None,
        outcome: Callable[[bool], None] | None = None,
    ) -> None:
        """Run ``work`` in its turn for what it does alone: a failure is logged, naming ``what``, never raised.

        ``outcome``, when given, is told whether ``work`` (or the Deferred it returned) succeeded.
        """

        def failed(failure: Failure) -> None:
            log.failure("{what} failed", failure, what=what)
            if outcome is not None:
                outcome(False)

        def succeeded(_: object) -> None:
            if outcome is not None:
                outcome(True)

        def guarded() -> Any:
            try:
                result = work()
            except Exception:
                failed(Failure())
                return None
            if isinstance(result, defer.Deferred):
                return result.addCallbacks(succeeded, failed)
            succeeded(result)
            return None

        self.run(guarded, tag)

    def resume(self) -> None:
        """Start the pieces that wait, in order, as far as nothing holds them back."""
        if self._resuming:
            return  # called from a piece that completed at once, within the loop below: the loop goes on
        self._resuming = True
        try:
            waiting = self._waiting
            while waiting and not self._busy and (self._blocked is None or not self._blocked(waiting[0][1])):
                work, _, waiter = waiting.popleft()
                self._start(work, waiter)
        finally:
            self._resuming = False
        if not self._waiting:
            self._waiting = None
            if not self._busy and self._drains:
                drains, self._drains = self._drains, None
                for drain in drains:
                    drain.callback(None)

    def drain(self) -> defer.Deferred[None]:
        """Fires once nothing runs or waits (at once if so); it never fails."""
        if self.idle:
            return defer.succeed(None)
        done: defer.Deferred[None] = defer.Deferred()
        if self._drains is None:
            self._drains = []
        self._drains.append(done)
        return done

    def _start(self, work: Callable[[], Any], waiter: defer.Deferred[Any] | None) -> Any:
        try:
            result = work()
        except Exception:
            if waiter is None:
                raise
            waiter.errback(Failure())
            return None
        if result is None and waiter is None:
            return None  # most pieces: asking whether None is a Deferred (an ABC) costs more than the rest
        if isinstance(result, defer.Deferred) and (self._holds is None or self._holds(result)):
            self._busy = True
            out: defer.Deferred[Any] = waiter if waiter is not None else defer.Deferred()
            result.addBoth(self._finished, out)
            return out
        if waiter is not None:
            if isinstance(result, defer.Deferred):
                result.chainDeferred(waiter)
            else:
                waiter.callback(result)
            return None
        return result

    def _finished(self, outcome: Any, out: defer.Deferred[Any]) -> None:
        self._busy = False
        # This piece's outcome is told before anything the next one causes.
        if isinstance(outcome, Failure):
            out.errback(outcome)
        else:
            out.callback(outcome)
        self.resume()


class InFlight:
    """Writes in flight, in no particular order: :meth:`drain` waits for them all."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: set[defer.Deferred[Any]] = set()

    def __len__(self) -> int:
        """How many writes are in flight."""
        return len(self._pending)

    def track(self, deferred: defer.Deferred[T]) -> defer.Deferred[T]:
        """Remember ``deferred`` until it fires; it is returned with its result unchanged."""
        self._pending.add(deferred)

        def done(result: Any) -> Any:
            self._pending.discard(deferred)
            return result

        return deferred.addBoth(done)

    def drain(self) -> defer.Deferred[None]:
        """Fires once every write in flight, and every one tracked meanwhile, has fired; it never fails."""
        if not self._pending:
            return defer.succeed(None)
        waits = [settled(deferred) for deferred in list(self._pending)]
        return defer.DeferredList(waits).addCallback(lambda _: self.drain())
