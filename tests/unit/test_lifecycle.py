"""Starting and stopping services: a stop during a slow start waits for it, then stops what started."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock

from component.app import Netherfield
from component.config import load_config
from component.service import Service
from component.storage import Migrations
from component.testing import Harness, LogCapture

DOMAIN = "comp.example.org"

#: What the services below did, in order, across one test.
EVENTS: list[str] = []
#: The start the slow service is waiting on, fired by the test.
GATE: list[defer.Deferred[None]] = []


class Slow(Service):
    name = "slow"

    def start(self):
        EVENTS.append("slow started")
        GATE.append(defer.Deferred())
        return GATE[-1].addCallback(lambda _: EVENTS.append("slow ready"))

    def stop(self):
        EVENTS.append("slow stopped")


class After(Service):
    name = "after"

    def start(self):
        EVENTS.append("after started")

    def stop(self):
        EVENTS.append("after stopped")


def setup_function():
    EVENTS.clear()
    GATE.clear()


def fired(deferred):
    outcome = []
    deferred.addBoth(outcome.append)
    return outcome


def test_stopping_the_services_during_a_slow_start_waits_for_it_then_stops_what_started():
    harness = Harness(DOMAIN, Slow, After)
    started = fired(harness.started)
    stopped = fired(harness.component.stop_services())
    assert (EVENTS, stopped) == (["slow started"], [])
    GATE[0].callback(None)
    # The start in progress ends after its current service: the next one never starts.
    assert EVENTS == ["slow started", "slow ready", "slow stopped"]
    assert started == [None] and stopped == [None]


def test_stopping_after_the_start_stops_every_service_last_first():
    harness = Harness(DOMAIN, Slow, After)
    GATE[0].callback(None)
    assert fired(harness.component.stop_services()) == [None]
    assert EVENTS == ["slow started", "slow ready", "after started", "after stopped", "slow stopped"]


def test_stopping_netherfield_during_a_slow_start_waits_then_stops_with_no_error(tmp_path):
    path = tmp_path / "netherfield.toml"
    path.write_text(
        f'[components."{DOMAIN}"]\nsecret = "s"\n'
        'services = ["tests.unit.test_lifecycle:Slow", "tests.unit.test_lifecycle:After"]\n'
    )
    reactor = MemoryReactorClock()
    app = Netherfield(load_config(path), reactor=reactor)
    with LogCapture() as logs:
        app.startService()
        stopped = fired(app.stopService())
        assert (EVENTS, stopped) == (["slow started"], [])
        GATE[0].callback(None)
        reactor.advance(1)
    assert EVENTS == ["slow started", "slow ready", "slow stopped"]
    assert stopped == [None]
    # Nothing connected, nothing failed, and the reactor was not told to stop.
    assert reactor.tcpClients == []
    assert app.failure is None
    assert [e for e in logs.events if e.get("log_level") is not None and e["log_level"].name in ("error", "critical")] == []


NOTES = Migrations("notes", steps=["CREATE TABLE notes (text TEXT NOT NULL)"])
#: What each service below was started with.
GIVEN: dict[str, object] = {}


class Stored(Service):
    """Declares tables of its own: it is given the storage when it starts."""

    name = "stored"
    migrations = (NOTES,)

    def start(self, storage=None):
        GIVEN["stored"] = storage


class Plain(Service):
    """Declares no tables: it is started without the storage, as services always were."""

    name = "plain"

    def start(self):
        GIVEN["plain"] = "started"


def test_a_service_that_declares_migrations_is_given_the_storage_when_it_starts():
    GIVEN.clear()
    storage = object()
    harness = Harness(DOMAIN, Stored, Plain, storage=storage)
    assert fired(harness.started) == [None]
    assert GIVEN == {"stored": storage, "plain": "started"}
    assert not hasattr(harness.component, "storage")


@pytest_twisted.ensureDeferred
async def test_netherfield_opens_the_storage_with_the_services_migrations_and_hands_it_to_them(tmp_path):
    GIVEN.clear()
    path = tmp_path / "netherfield.toml"
    path.write_text(
        f'[storage]\nurl = "sqlite:///{tmp_path / "n.db"}"\n'
        f'[components."{DOMAIN}"]\nsecret = "s"\nport = 1\n'
        'services = ["tests.unit.test_lifecycle:Stored", "tests.unit.test_lifecycle:Plain"]\n'
    )
    app = Netherfield(load_config(path))
    app.startService()
    await app._starting
    try:
        storage = GIVEN["stored"]
        assert storage is app.storage and GIVEN["plain"] == "started"
        assert await storage.fetchall("SELECT text FROM notes") == []
    finally:
        await app.stopService()
