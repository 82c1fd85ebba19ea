"""Ordered work (component.ordering): arrival order, waiting for storage, draining, no unhandled errors."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet import defer
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure

from component.ordering import InFlight, Turns, settled


@pytest.fixture
def failures() -> Iterator[list[str]]:
    """Every failure logged while the test runs, "Unhandled error in Deferred" included."""
    logged: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        if "log_failure" in event or event.get("isError"):
            logged.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    yield logged
    globalLogPublisher.removeObserver(observe)


def test_work_with_nothing_ahead_runs_in_the_callers_call() -> None:
    turns = Turns()
    assert turns.run(lambda: 42) == 42
    with pytest.raises(KeyError):
        turns.run(lambda: {}["missing"])
    assert turns.idle


def test_work_waits_for_a_write_ahead_of_it_and_runs_in_arrival_order() -> None:
    turns = Turns()
    done: list[str] = []
    write: defer.Deferred[str] = defer.Deferred()
    first = turns.run(lambda: write)
    second = turns.run(lambda: done.append("second") or "two")
    third = turns.run(lambda: done.append("third"))
    assert done == [] and turns.busy and turns.waiting == 2
    outcomes: list[Any] = []
    first.addCallback(lambda result: outcomes.append(("first", result, list(done))))
    second.addCallback(lambda result: outcomes.append(("second", result)))
    write.callback("stored")
    # The first outcome is told before the next piece runs.
    assert outcomes == [("first", "stored", []), ("second", "two")]
    assert done == ["second", "third"]
    assert third.called and turns.idle


def test_a_failing_piece_fails_only_its_own_outcome() -> None:
    turns = Turns()
    write: defer.Deferred[None] = defer.Deferred()
    turns.run(lambda: write)
    failing = turns.run(lambda: 1 / 0)
    after = turns.run(lambda: "after")
    write.callback(None)
    errors: list[Failure] = []
    failing.addErrback(errors.append)
    assert errors and errors[0].check(ZeroDivisionError)
    assert after.result == "after"


def test_blocked_work_waits_until_resumed() -> None:
    outside = ["writing"]
    turns = Turns(blocked=lambda tag: bool(outside) and tag != "may-pass")
    assert turns.run(lambda: "passes", "may-pass") == "passes"
    waiting = turns.run(lambda: "held", "other")
    assert not waiting.called
    outside.clear()
    turns.resume()
    assert waiting.result == "held"


def test_a_deferred_that_does_not_hold_the_turn_lets_the_next_piece_run() -> None:
    class Passing(defer.Deferred[Any]):
        pass

    turns = Turns(holds=lambda result: not isinstance(result, Passing))
    later = Passing()
    assert turns.run(lambda: later) is later
    assert turns.run(lambda: "next") == "next"


def test_drain_waits_for_everything_queued_and_never_fails() -> None:
    turns = Turns()
    assert turns.drain().called
    write: defer.Deferred[None] = defer.Deferred()
    turns.run(lambda: write)
    turns.submit(lambda: 1 / 0, "a step that fails")
    drained = turns.drain()
    assert not drained.called
    write.errback(Failure(RuntimeError("disk full")))
    assert drained.called and drained.result is None


def test_submit_logs_failures_and_leaves_none_unhandled(failures: list[str]) -> None:
    turns = Turns()
    turns.submit(lambda: 1 / 0, "a step that raises")
    turns.submit(lambda: defer.fail(RuntimeError("refused")), "a write that fails")
    write: defer.Deferred[None] = defer.Deferred()
    turns.submit(lambda: write, "a later write")
    turns.submit(lambda: 1 / 0, "a queued step that raises")
    write.errback(Failure(RuntimeError("refused")))
    assert turns.idle
    gc.collect()  # a Deferred dropped with an unhandled failure logs it when collected
    assert failures == [
        "a step that raises failed",
        "a write that fails failed",
        "a later write failed",
        "a queued step that raises failed",
    ]


def test_in_flight_drain_waits_for_writes_tracked_meanwhile() -> None:
    writes = InFlight()
    first: defer.Deferred[int] = defer.Deferred()
    assert writes.track(first) is first
    drained: list[None] = []
    writes.drain().addCallback(drained.append)
    second: defer.Deferred[int] = defer.Deferred()
    writes.track(second)
    first.callback(1)
    assert drained == [] and len(writes) == 1
    second.errback(Failure(RuntimeError("refused")))
    assert drained == [None] and len(writes) == 0
    # The write's own failure stays its caller's.
    errors: list[Failure] = []
    second.addErrback(errors.append)
    assert first.result == 1 and errors


def test_settled_keeps_the_result_for_the_deferreds_own_callbacks() -> None:
    deferred: defer.Deferred[str] = defer.Deferred()
    done = settled(deferred)
    deferred.errback(Failure(ValueError("no")))
    assert done.called and done.result is None
    errors: list[Failure] = []
    deferred.addErrback(errors.append)
    assert errors[0].check(ValueError)
