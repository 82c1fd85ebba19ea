"""Leases with fencing epochs, two instances on one real PostgreSQL.

Each instance is a `LeaseManager` with its own `task.Clock`: renewals run when
a test advances that clock, and an instance whose clock stands still is a
paused one (SIGSTOP). The database's own time decides expiry, so a test ages a
lease by moving its expiry into the past rather than by waiting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import psycopg
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import Clock, deferLater
from twisted.internet.threads import deferToThread

from component.leases import SWEEP_BATCH, SWEEP_LIVES, Lease, LeaseLost, LeaseManager
from component.storage import Storage, Transaction, open_storage
from component.storage.leases import LEASE_MIGRATIONS, acquire, fence, holder, renew
from services.muc.store import MUC_MIGRATIONS, HistoryRecord, MucStore
from tests.storage.postgres import (  # noqa: F401  (fixtures)
    Database,
    postgres_database_fixture,
    postgres_server_fixture,
)

SECONDS = 30.0
ROOM = "coven@chat.shakespeare.lit"

WRITES = (
    "CREATE TABLE said (room TEXT NOT NULL, epoch BIGINT NOT NULL, body TEXT NOT NULL)",
)


@attrs.define
class Holder:
    """What a service would be: records every key it was told to drop."""

    lost: list[Lease] = attrs.Factory(list)
    waiting: list[Deferred[Lease]] = attrs.Factory(list)

    def lease_lost(self, lease: Lease) -> None:
        self.lost.append(lease)
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            d.callback(lease)

    def next_loss(self) -> Deferred[Lease]:
        d: Deferred[Lease] = Deferred()
        self.waiting.append(d)
        return d.addTimeout(10, reactor)


@attrs.define
class Instance:
    manager: LeaseManager
    holder: Holder
    clock: Clock


@pytest_twisted.async_yield_fixture
async def storage(postgres_database: Database) -> AsyncIterator[Storage]:
    opened = await open_storage(postgres_database.url, migrations=[LEASE_MIGRATIONS], password=postgres_database.password)
    await opened.transaction(lambda txn: [txn.execute(s) for s in WRITES])
    yield opened
    await opened.close()


@pytest_twisted.async_yield_fixture
async def pair(storage: Storage) -> AsyncIterator[tuple[Instance, Instance]]:
    """Two instances, muc-1 and muc-2, sharing the database."""
    instances = []
    for name in ("muc-1", "muc-2"):
        clock, held = Clock(), Holder()
        manager = LeaseManager(storage, name, SECONDS, held, clock)  # type: ignore[arg-type]
        await manager.start()
        instances.append(Instance(manager, held, clock))
    yield instances[0], instances[1]
    for instance in instances:
        await instance.manager.stop()


def _say(txn: Transaction, room: str, epoch: int, body: str) -> None:
    txn.execute("INSERT INTO said (room, epoch, body) VALUES (?, ?, ?)", (room, epoch, body))


async def _said(storage: Storage) -> list[tuple[int, str]]:
    return [(int(e), str(b)) for e, b in await storage.fetchall("SELECT epoch, body FROM said ORDER BY body")]


async def _age(storage: Storage, key: str) -> None:
    """Let the database's time run past the lease on *key*."""
    await storage.execute(
        "UPDATE leases SET expires_at = clock_timestamp() - interval '1 second' WHERE key = ?", (key,)
    )


async def _tick(instance: Instance, seconds: float) -> None:
    instance.clock.advance(seconds)
    await instance.manager.renewed()


@pytest_twisted.ensureDeferred
async def test_one_holder_at_a_time(pair: tuple[Instance, Instance], storage: Storage) -> None:
    first, second = pair
    lease = await first.manager.acquire(ROOM)
    assert lease == Lease(ROOM, first.manager.owner, 1)
    assert await second.manager.acquire(ROOM) is None
    assert second.manager.held(ROOM) is None
    await first.manager.release(ROOM)
    assert await second.manager.acquire(ROOM) == Lease(ROOM, second.manager.owner, 2)
    assert first.holder.lost == [] and second.holder.lost == []


@pytest_twisted.ensureDeferred
async def test_racing_acquisitions_give_each_key_one_holder(pair: tuple[Instance, Instance]) -> None:
    first, second = pair
    keys = [f"room{n}@chat.shakespeare.lit" for n in range(12)]
    results = await gatherResults(
        [m.acquire(k) for k in keys for m in (first.manager, second.manager)]
    )
    for n, key in enumerate(keys):
        got = [lease for lease in results[2 * n : 2 * n + 2] if lease is not None]
        assert len(got) == 1 and got[0].epoch == 1
        holders = [m for m in (first.manager, second.manager) if m.held(key) is not None]
        assert [m.owner for m in holders] == [got[0].owner]


@pytest_twisted.ensureDeferred
async def test_renewals_keep_a_lease_past_its_first_life(pair: tuple[Instance, Instance], storage: Storage) -> None:
    first, second = pair
    lease = await first.manager.acquire(ROOM)
    for _ in range(6):  # two lease lives of local time, renewed every third of one
        await _tick(first, SECONDS / 3)
    assert first.manager.held(ROOM) == lease
    assert await second.manager.acquire(ROOM) is None
    await first.manager.fenced(lease, _say, ROOM, 1, "still mine")
    assert await _said(storage) == [(1, "still mine")]


@pytest_twisted.ensureDeferred
async def test_an_expired_holders_fenced_write_fails_and_writes_nothing(
    pair: tuple[Instance, Instance], storage: Storage
) -> None:
    first, second = pair
    old = await first.manager.acquire(ROOM)
    assert old is not None
    await _age(storage, ROOM)
    new = await second.manager.acquire(ROOM)
    assert new == Lease(ROOM, second.manager.owner, 2)

    # The database refuses the old owner inside the write's own transaction,
    # even when the write came first in it.
    def say_then_fence(txn: Transaction) -> None:
        _say(txn, ROOM, old.epoch, "stale")
        fence(txn, old)

    with pytest.raises(LeaseLost):
        await storage.transaction(say_then_fence)
    await second.manager.fenced(new, _say, ROOM, new.epoch, "fresh")
    assert await _said(storage) == [(2, "fresh")]
    assert await storage.transaction(holder, ROOM) == (new, True)


@pytest_twisted.ensureDeferred
async def test_the_database_fences_on_epoch_and_expiry_alone(pair: tuple[Instance, Instance], storage: Storage) -> None:
    first, _ = pair
    old = await first.manager.acquire(ROOM)
    await first.manager.release(ROOM)
    again = await first.manager.acquire(ROOM)
    assert old is not None and again == Lease(ROOM, first.manager.owner, 2)
    # Same owner, older epoch: refused.
    with pytest.raises(LeaseLost):
        await storage.transaction(lambda txn: (fence(txn, old), _say(txn, ROOM, old.epoch, "old epoch")))
    # Right owner and epoch, but expired and not yet taken by anyone: refused too.
    await _age(storage, ROOM)
    with pytest.raises(LeaseLost):
        await storage.transaction(lambda txn: (fence(txn, again), _say(txn, ROOM, again.epoch, "expired")))
    assert await _said(storage) == []


@pytest_twisted.ensureDeferred
async def test_the_previous_owner_is_notified_and_drops_the_key(
    pair: tuple[Instance, Instance], storage: Storage
) -> None:
    first, second = pair
    old = await first.manager.acquire(ROOM)
    loss = first.holder.next_loss()
    new = await second.manager.acquire(ROOM, take=True)
    assert new == Lease(ROOM, second.manager.owner, 2)
    assert await loss == old
    assert first.manager.held(ROOM) is None
    assert first.holder.lost == [old] and second.holder.lost == []
    with pytest.raises(LeaseLost):
        await first.manager.fenced(old, _say, ROOM, old.epoch, "stale")
    assert await _said(storage) == []


@pytest_twisted.ensureDeferred
async def test_a_lease_that_lapsed_unnoticed_is_given_up_at_the_next_renewal(
    pair: tuple[Instance, Instance], storage: Storage
) -> None:
    first, _ = pair
    lease = await first.manager.acquire(ROOM)
    assert lease is not None
    await _age(storage, ROOM)  # nobody took it, so no notice comes
    await _tick(first, SECONDS / 3)
    assert first.manager.held(ROOM) is None
    assert first.holder.lost == [lease]
    with pytest.raises(LeaseLost):
        await first.manager.fenced(lease, _say, ROOM, lease.epoch, "stale")
    assert await _said(storage) == []


@pytest_twisted.ensureDeferred
async def test_a_paused_instance_gives_its_keys_up_before_anyone_may_take_them(
    pair: tuple[Instance, Instance], storage: Storage
) -> None:
    first, second = pair
    lease = await first.manager.acquire(ROOM)
    assert lease is not None
    # SIGSTOP: no renewal runs; on SIGCONT its time is past the deadline, which
    # comes one renewal interval before the database lets others in. A write
    # that runs before the renewal timer is refused here already.
    first.clock.rightNow += SECONDS - first.manager.interval
    with pytest.raises(LeaseLost):
        await first.manager.fenced(lease, _say, ROOM, lease.epoch, "woke up")
    first.clock.advance(0)
    await first.manager.renewed()
    assert first.manager.held(ROOM) is None
    assert first.holder.lost == [lease]
    with pytest.raises(LeaseLost):
        await first.manager.fenced(lease, _say, ROOM, lease.epoch, "stale")
    # It also gave the lease back, so another instance need not wait for the expiry.
    taken = await _eventually(lambda: second.manager.acquire(ROOM))
    assert taken == Lease(ROOM, second.manager.owner, 2)


@pytest_twisted.ensureDeferred
async def test_a_woken_instance_asking_what_it_holds_lets_a_lapsed_lease_go_before_any_timer(
    pair: tuple[Instance, Instance], storage: Storage
) -> None:
    first, _ = pair
    lease = await first.manager.acquire(ROOM)
    assert lease is not None
    # SIGCONT, and a stanza is read before the renewal timer runs: the room
    # asks whether it may still serve, and must hear no.
    first.clock.rightNow += SECONDS - first.manager.interval
    assert first.manager.held(ROOM) is None
    assert first.holder.lost == [lease]


@pytest_twisted.ensureDeferred
async def test_a_paused_owner_that_was_overtaken_cannot_write_when_it_wakes(
    pair: tuple[Instance, Instance], storage: Storage
) -> None:
    first, second = pair
    old = await first.manager.acquire(ROOM)
    assert old is not None
    await _age(storage, ROOM)
    new = await second.manager.acquire(ROOM)
    assert new is not None and new.epoch == 2
    # Before any notice or renewal reaches it, the woken instance tries to write:
    # the database refuses the old epoch.
    with pytest.raises(LeaseLost):
        await storage.transaction(lambda txn: (fence(txn, old), _say(txn, ROOM, old.epoch, "stale")))
    await _tick(first, SECONDS / 3)
    assert first.manager.held(ROOM) is None
    assert await _said(storage) == []
    assert second.manager.held(ROOM) == new and second.holder.lost == []


async def _eventually(attempt: Callable[[], Deferred[Lease | None]], tries: int = 50) -> Lease | None:
    for _ in range(tries):
        result = await attempt()
        if result is not None:
            return result
        await deferLater(reactor, 0.02, lambda: None)
    return None


# -- lock order: a renewal beside a write fenced by several leases --------------------------------

OWNER = "muc-1/run"


def _record(node: str) -> HistoryRecord:
    return HistoryRecord(
        stanza_id=f"id-{node}", nick="thirdwitch", sender_jid="hag66@shakespeare.lit/pda",
        stanza=f"<message type='groupchat'><body>in {node}</body></message>", timestamp=1000.0,
    )


@pytest_twisted.async_yield_fixture
async def rooms(postgres_database: Database) -> AsyncIterator[tuple[MucStore, dict[str, Lease]]]:
    """Rooms b and a, stored, each under a lease of OWNER; b's row was written first."""
    opened = await open_storage(
        postgres_database.url, migrations=[LEASE_MIGRATIONS, MUC_MIGRATIONS], password=postgres_database.password
    )
    store = MucStore(opened)
    leases: dict[str, Lease] = {}
    for node in ("b", "a"):
        await store.save_config(node, {})
        lease = await opened.transaction(acquire, f"muc:{node}@chat.shakespeare.lit", OWNER, SECONDS, False)
        assert lease is not None
        leases[node] = lease
    yield store, leases
    await opened.close()


def _locker(database: Database) -> psycopg.Connection[Any]:
    """A connection of its own, that gives up on a lock after 3 s (PostgreSQL finds a deadlock after 1 s)."""
    conn = psycopg.connect(database.url, password=database.password)
    conn.execute("SET lock_timeout = '3s'")
    return conn


@pytest_twisted.ensureDeferred
async def test_a_history_batch_fences_its_rooms_in_the_order_a_renewal_locks_them(
    rooms: tuple[MucStore, dict[str, Lease]], postgres_database: Database
) -> None:
    store, leases = rooms
    # A renewal under way (another connection, as it would be): it holds a's lease row, b's comes next.
    renewal = _locker(postgres_database)
    renewal.execute("SELECT 1 FROM leases WHERE key = %s FOR UPDATE", (leases["a"].key,))
    # The batch names b first; it waits for a without having taken b ...
    written = store.append_rooms_histories([("b", [_record("b")]), ("a", [_record("a")])], leases)
    await deferLater(reactor, 0.5, lambda: None)
    assert not written.called
    # ... so the renewal gets b at once and ends, and then the batch goes through.
    await deferToThread(renewal.execute, "SELECT 1 FROM leases WHERE key = %s FOR UPDATE", (leases["b"].key,))
    renewal.commit()
    renewal.close()
    assert await written == [None, None]
    assert [r.stanza_id for r in await store.recent_history("a", 5)] == ["id-a"]


@pytest_twisted.ensureDeferred
async def test_a_renewal_locks_its_leases_in_the_order_of_their_keys(
    rooms: tuple[MucStore, dict[str, Lease]], postgres_database: Database
) -> None:
    store, leases = rooms
    # A write fenced by both leases, in key order, has fenced a and will fence b next.
    write = _locker(postgres_database)
    write.execute("SELECT 1 FROM leases WHERE key = %s FOR SHARE", (leases["a"].key,))
    # The renewal waits for a without having taken b (whose row comes first in the table) ...
    renewed = store.storage.transaction(renew, OWNER, SECONDS)
    await deferLater(reactor, 0.5, lambda: None)
    assert not renewed.called
    # ... so the write gets b at once and ends, and then the renewal goes through.
    await deferToThread(write.execute, "SELECT 1 FROM leases WHERE key = %s FOR SHARE", (leases["b"].key,))
    write.commit()
    write.close()
    assert await renewed == {lease.key: lease.epoch for lease in leases.values()}


async def _expired_long_ago(storage: Storage, key: str) -> None:
    """Let the database's time run far past the lease on *key*: more lease lives than a sweep waits."""
    await storage.execute(
        "UPDATE leases SET expires_at = clock_timestamp() - interval '1 day' WHERE key = ?", (key,)
    )


async def _keys(storage: Storage) -> list[str]:
    return [str(key) for (key,) in await storage.fetchall("SELECT key FROM leases ORDER BY key")]


@pytest_twisted.ensureDeferred
async def test_a_sweep_deletes_keys_expired_long_ago_and_leaves_the_rest(
    pair: tuple[Instance, Instance], storage: Storage
) -> None:
    first, second = pair
    # Rooms asked for once (a stanza to a made-up name), then let go.
    made_up = [f"nobody{n}@chat.shakespeare.lit" for n in range(2500)]
    for key in made_up[:3]:
        await first.manager.acquire(key)
        await first.manager.release(key)
    await storage.transaction(
        lambda txn: [
            txn.execute("INSERT INTO leases (key, owner, epoch, expires_at) VALUES (?, 'gone/1', 7, clock_timestamp())", (key,))
            for key in made_up[3:]
        ]
    )
    for key in made_up:
        await _expired_long_ago(storage, key)
    held = await first.manager.acquire(ROOM)
    recent = "recent@chat.shakespeare.lit"
    await second.manager.acquire(recent)
    await second.manager.release(recent)
    # More than one batch of rows: the sweep goes on until none is left.
    assert await second.manager.sweep() == len(made_up)
    assert await _keys(storage) == [ROOM, recent]
    assert first.manager.held(ROOM) == held
    await first.manager.fenced(held, _say, ROOM, held.epoch, "still mine")


@pytest_twisted.ensureDeferred
async def test_a_key_taken_again_after_a_sweep_starts_above_every_epoch_it_had(
    pair: tuple[Instance, Instance], storage: Storage
) -> None:
    first, second = pair
    old = await first.manager.acquire(ROOM)
    await first.manager.release(ROOM)
    again = await second.manager.acquire(ROOM)
    assert old is not None and again is not None and again.epoch == old.epoch + 1
    await second.manager.release(ROOM)
    await _expired_long_ago(storage, ROOM)
    assert await first.manager.sweep() == 1 and await _keys(storage) == []
    new = await first.manager.acquire(ROOM)
    assert new is not None and new.epoch > again.epoch
    # A write of any earlier tenure of the key is refused by the database, whoever holds it now.
    for stale in (old, again):
        with pytest.raises(LeaseLost):
            await storage.transaction(lambda txn, stale=stale: (fence(txn, stale), _say(txn, ROOM, stale.epoch, "stale")))
    assert await _said(storage) == []


@pytest_twisted.ensureDeferred
async def test_each_instance_sweeps_on_its_timer(pair: tuple[Instance, Instance], storage: Storage) -> None:
    first, _ = pair
    key = "nobody@chat.shakespeare.lit"
    await first.manager.acquire(key)
    await first.manager.release(key)
    await _expired_long_ago(storage, key)
    first.clock.advance(SECONDS * SWEEP_LIVES)
    for _ in range(50):
        if not await _keys(storage):
            break
        await deferLater(reactor, 0.05, lambda: None)
    assert await _keys(storage) == []


@pytest_twisted.ensureDeferred
async def test_stopping_waits_for_a_sweep_under_way_which_ends_after_its_batch(
    pair: tuple[Instance, Instance], storage: Storage
) -> None:
    first, _ = pair
    made_up = [f"nobody{n}@chat.shakespeare.lit" for n in range(2 * SWEEP_BATCH + 500)]
    await storage.transaction(
        lambda txn: [
            txn.execute(
                "INSERT INTO leases (key, owner, epoch, expires_at) VALUES (?, 'gone/1', 7, clock_timestamp() - interval '1 day')",
                (key,),
            )
            for key in made_up
        ]
    )
    swept = first.manager.sweep()
    await first.manager.stop()
    # The storage may close now: the sweep is over, one batch done and none begun after.
    assert swept.called and await swept == SWEEP_BATCH
    assert len(await _keys(storage)) == len(made_up) - SWEEP_BATCH
