"""Several Netherfield instances serve one MUC domain behind ejabberd's ``domain_balancing``, on one PostgreSQL.

Real ejabberd balances ``muc.localhost`` over one slot per instance
(``bare_destination``: every stanza for a room, or for one of its occupants,
reaches one connection); real Netherfield processes with ``[cluster]``
instance names share one database and short leases; real clients (slixmpp)
sit in the rooms. The cluster and the clients are kept from test to test in
this file, which runs in order: each test leaves every room served, to the
same occupants. ``quarter.localhost``, on the same ejabberd, has four slots.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from slixmpp import JID
from slixmpp.exceptions import PresenceError

from tests.integration.clients import client, run
from tests.integration.cluster import (
    MUC,
    Cluster,
    Crowd,
    Instance,
    LeaseRecorder,
    Seat,
    Traffic,
    lease_events,
    lease_key,
)
from tests.storage.postgres import PostgresServer, postgres_server_fixture  # noqa: F401

INSTANCES = 3
#: A domain with four slots, for three instances and then a fourth.
QUARTER = "quarter.localhost"
ROOMS = 30
USERS = 9
PASSWORD = "cluster-pass"
#: A room's lease in these tests: short, so that a paused instance loses its rooms quickly.
LEASE_SECONDS = 3.0

pytestmark = pytest.mark.skipif(
    shutil.which("ejabberdctl") is None or shutil.which("erl") is None, reason="ejabberd is not installed"
)


def seats() -> list[Seat]:
    """Three occupants in each room; each user in ten rooms, with different neighbours in each.

    Room *r* holds users r, r + 1 and r + 3 (mod 9): the differences 1, 2 and 3
    are all distinct, so no two users share more than a few rooms.
    """
    found = []
    for r in range(ROOMS):
        room = f"room{r}@{MUC}"
        for k, offset in enumerate((0, 1, 3)):
            user = (r + offset) % USERS
            found.append(Seat(user, room, f"n{user}", creator=k == 0))
    return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer) -> Iterator[Cluster]:
    started = Cluster(
        tmp_path_factory.mktemp("cluster"),
        postgres_server,
        slots={MUC: INSTANCES, QUARTER: 4},
        # The tests send several messages a second per occupant.
        muc={"groupchat_burst": 0, "presence_burst": 0},
        cluster={"lease_seconds": LEASE_SECONDS},
    )
    try:
        started.start(INSTANCES)
        yield started
    except BaseException:
        print(started.logs())
        raise
    finally:
        started.stop()


@pytest.fixture(scope="module")
def crowd(cluster: Cluster) -> Iterator[Crowd]:
    users = [f"c{n}" for n in range(USERS)]
    cluster.add_users(users, PASSWORD)
    people = Crowd(cluster.ejabberd, users, PASSWORD, seats())
    try:
        people.run(people.login(), timeout=180)
        yield people
    finally:
        people.close()


def test_thirty_rooms_work_and_are_spread_over_three_instances(cluster: Cluster, crowd: Crowd) -> None:
    missing = crowd.exchange("a")
    assert missing == {}, cluster.logs()

    # Each room lives on exactly one instance: the rooms in memory add up to 30, on all three.
    loaded = {instance.name: instance.rooms_loaded() for instance in cluster.instances_of(MUC)}
    assert sum(loaded.values()) == ROOMS, loaded
    assert all(count > 0 for count in loaded.values()), loaded
    # Where each room lives: its lease names the instance, and each instance holds as many leases
    # as it has rooms in memory.
    leases = cluster.leases()
    assert all(leases[lease_key(room)].live for room in crowd.rooms())
    assert Counter(leases[lease_key(room)].instance for room in crowd.rooms()) == loaded


def rooms_of(cluster: Cluster, instance: Instance) -> set[str]:
    """The rooms whose live lease *instance* holds now."""
    return {
        row.key.removeprefix("muc:") for row in cluster.leases().values() if row.live and row.instance == instance.name
    }


def archived(cluster: Cluster) -> str:
    """Every stored groupchat stanza, one a line."""
    return "\n".join(stanza for (stanza,) in cluster.query("SELECT stanza FROM muc_history"))


def test_a_killed_instance_restarted_serves_its_rooms_again_to_the_same_occupants(
    cluster: Cluster, crowd: Crowd
) -> None:
    victim = cluster.instance("muc-2")
    theirs = rooms_of(cluster, victim)
    assert theirs, cluster.leases()
    before = cluster.leases()

    with LeaseRecorder(cluster) as recorder, Traffic(crowd, "b") as traffic:
        time.sleep(1.0)
        killed = victim.kill9()
        victim.start()
        attached = time.monotonic()
        # Served again: a message sent after the kill reached someone in each of its rooms.
        restored: dict[str, float] = {}
        deadline = time.monotonic() + 30
        while len(restored) < len(theirs) and time.monotonic() < deadline:
            for receipt in list(crowd.receipts):
                if receipt.room in theirs and receipt.room not in restored and receipt.body.startswith("b"):
                    sent = traffic.sent.get(receipt.body)
                    if sent is not None and sent[1] > killed:
                        restored[receipt.room] = receipt.at
            time.sleep(0.05)
        time.sleep(1.0)
    time.sleep(1.5)  # the last reflections
    assert set(restored) == theirs, cluster.logs()

    # Every occupant is still one, without rejoining: each one's groupchat reaches the other two,
    # and each one's self-ping succeeds.
    assert crowd.exchange("b-after") == {}, cluster.logs()
    assert set(crowd.self_pings().values()) == {"ok"}

    # What was lost, and where: only messages sent to the dead instance's rooms before they were
    # served again; every other room lost nothing.
    occupants = {room: {s.user for s in crowd.seats_in(room)} for room in crowd.rooms()}
    lost = [body for body, (room, _at) in traffic.sent.items() if not crowd.receivers(body)]
    partial = [
        body for body, (room, _at) in traffic.sent.items()
        if crowd.receivers(body) and crowd.receivers(body) != occupants[room]
    ]
    for body in lost + partial:
        room, at = traffic.sent[body]
        assert room in theirs and killed - 0.5 <= at <= restored[room], (body, at - killed)
    victim_sent = [body for body, (room, at) in traffic.sent.items() if room in theirs and at >= killed]
    in_flight = [body for body in lost if traffic.sent[body][1] < killed]
    print(
        f"\ncluster failover: {len(theirs)} rooms of {victim.name}; attached again {attached - killed:.2f} s"
        f" after kill -9, every room served {max(restored.values()) - killed:.2f} s after it"
        f" (first room {min(restored.values()) - killed:.2f} s); {len(lost) - len(in_flight)} of the"
        f" {len(victim_sent)} groupchats sent to its rooms since the kill reached nobody, and {len(in_flight)}"
        f" sent in the 0.5 s before it; {len(partial)} reached some occupants only; {len(traffic.sent)} sent in all"
    )

    # Nothing acknowledged is lost: each message some occupant received is in the archive.
    stored = archived(cluster)
    received = {r.body for r in crowd.receipts if r.body.startswith("b")}
    assert [body for body in received if f">{body}<" not in stored] == []

    # No room had two owners: the dead instance's rooms went to its restarted run in one new
    # epoch each, and no other room changed hands.
    for room in crowd.rooms():
        key = lease_key(room)
        tenures = recorder.tenures(key)
        old = before[key]
        if room in theirs:
            (epoch, owner), *later = tenures
            assert (epoch, owner) == (old.epoch, old.owner)
            assert [e for e, _ in later] == [old.epoch + 1], tenures
            assert later[0][1].startswith(f"{victim.name}/") and later[0][1] != old.owner
        else:
            assert tenures == [(old.epoch, old.owner)], (room, tenures)
    takes = [event for instance in cluster.instances_of(MUC) for event in lease_events(instance) if event.what == "took"]
    by_epoch = Counter((event.key, event.epoch) for event in takes)
    assert [pair for pair, n in by_epoch.items() if n > 1] == []
    assert {event.instance for event in takes if event.key.removeprefix("muc:") in theirs} == {victim.name}


def test_a_fourth_instance_gets_no_slot_until_one_frees_and_it_connects_again(cluster: Cluster, crowd: Crowd) -> None:
    before = {key: (row.owner, row.epoch) for key, row in cluster.leases().items()}

    # Every slot is taken: ejabberd accepts the fourth and routes nothing to it; no room moves.
    fourth = cluster.add_instance()
    assert crowd.exchange("c1") == {}, cluster.logs()
    assert fourth.rooms_loaded() == 0
    assert {key: (row.owner, row.epoch) for key, row in cluster.leases().items()} == before

    # One of the three stops: its slot empties, and the fourth, already connected, does not get it.
    # Its rooms' groupchats vanish, with no error to their senders.
    leaving = cluster.instance("muc-3")
    theirs = rooms_of(cluster, leaving)
    leaving.stop()
    missing = crowd.exchange("c2", timeout=4)
    assert {body.split()[1] for body in missing} == theirs
    assert all(users == {s.user for s in crowd.seats_in(body.split()[1])} for body, users in missing.items())
    assert fourth.rooms_loaded() == 0

    # The fourth connects again: it registers anew, takes the empty slot, and serves exactly those
    # rooms to the same occupants.
    fourth.stop()
    fourth.start()
    assert crowd.exchange("c3") == {}, cluster.logs()
    assert rooms_of(cluster, fourth) == theirs
    assert set(crowd.self_pings().values()) == {"ok"}


def test_a_paused_instance_gives_its_rooms_up_and_writes_nothing_with_its_old_epoch(
    cluster: Cluster, crowd: Crowd
) -> None:
    paused = cluster.instance("muc-1")
    theirs = rooms_of(cluster, paused)
    assert theirs
    before = cluster.leases()
    renamed = min(theirs)

    paused.pause()
    try:
        # ejabberd still routes its rooms to it: their stanzas wait in its socket.
        for seat in crowd.seats:
            if seat.room in theirs:
                crowd.send(seat, f"d {seat.room} {seat.nick}")
        time.sleep(LEASE_SECONDS + 1.0)
        assert not any(row.live for key, row in cluster.leases().items() if key.removeprefix("muc:") in theirs)
        # Meanwhile another owner takes one of its rooms and renames it, under the next epoch.
        cluster.query(
            "UPDATE leases SET owner = 'intruder/0', epoch = epoch + 1, expires_at = clock_timestamp()"
            " WHERE key = %s",
            (lease_key(renamed),),
        )
        cluster.query(
            "UPDATE muc_rooms SET config = jsonb_set(config::jsonb, '{name}', '\"Renamed meanwhile\"')::text"
            " WHERE node = %s",
            (renamed.split("@")[0],),
        )
    finally:
        paused.resume()

    # Woken, it gives every room up (its leases ran out) and serves them again in new epochs,
    # to the same occupants, with the room state as the database has it.
    assert crowd.exchange("d-after") == {}, cluster.logs()
    after = cluster.leases()
    for room in theirs:
        row, old = after[lease_key(room)], before[lease_key(room)]
        assert row.instance == paused.name and row.owner == old.owner
        assert row.epoch > old.epoch + (1 if room == renamed else 0)
    events = [e for e in lease_events(paused) if e.key.removeprefix("muc:") in theirs]
    for room in theirs:
        mine = [(e.what, e.epoch) for e in events if e.key == lease_key(room)]
        old = before[lease_key(room)].epoch
        # It let go of the old epoch before it took the next one.
        assert ("lost", old) in mine and mine.index(("lost", old)) < mine.index(("took", after[lease_key(room)].epoch))
    assert set(crowd.self_pings().values()) == {"ok"}

    # Nothing it held in memory from before the pause overwrote what the database got meanwhile:
    # it serves the room as stored, and the row is as the other owner left it.
    info = crowd.run(crowd.clients[0].plugin["xep_0030"].get_info(jid=JID(renamed), timeout=10))
    assert [identity[3] for identity in info["disco_info"]["identities"]] == ["Renamed meanwhile"]
    (config,) = cluster.query("SELECT config FROM muc_rooms WHERE node = %s", (renamed.split("@")[0],))[0]
    assert '"name": "Renamed meanwhile"' in config or '"name":"Renamed meanwhile"' in config
    stored = archived(cluster)
    received = {r.body for r in crowd.receipts if r.body.startswith("d ")}
    assert [body for body in received if f">{body}<" not in stored] == []


def test_with_four_slots_and_three_instances_a_quarter_of_the_rooms_is_silent(cluster: Cluster) -> None:
    quarter = [cluster.add_instance(QUARTER) for _ in range(3)]
    rooms = [f"quarter{n}@{QUARTER}" for n in range(16)]
    cluster.add_users(["q0"], PASSWORD)

    async def attempt(names: list[str]) -> tuple[dict[str, str], list[int]]:
        """Join each room; the outcomes, and each instance's rooms in memory while still in them."""
        async with client(cluster.ejabberd, "q0", PASSWORD) as xmpp:

            async def one(room: str) -> str:
                try:
                    await xmpp.plugin["xep_0045"].join_muc_wait(JID(room), "q", timeout=4, maxstanzas=0)
                except TimeoutError:
                    return "silent"
                except PresenceError as error:
                    return str(error.presence["error"]["condition"])
                return "joined"

            outcomes = await asyncio.gather(*(one(room) for room in names))
            loaded = [instance.rooms_loaded() for instance in cluster.instances_of(QUARTER)]
        return dict(zip(names, outcomes, strict=True)), loaded

    try:
        first, loaded = run(attempt(rooms))
        # The empty slot's rooms get no answer at all: no error, nothing.
        silent = {room for room, outcome in first.items() if outcome == "silent"}
        assert set(first.values()) == {"joined", "silent"}, first
        assert sum(loaded) == len(rooms) - len(silent) and all(loaded), loaded

        # A fourth instance fills the slot: exactly those rooms come to it.
        quarter.append(cluster.add_instance(QUARTER))
        second, loaded = run(attempt(sorted(silent)))
        assert set(second.values()) == {"joined"}, second
        assert loaded == [0, 0, 0, len(silent)]
    finally:
        for instance in quarter:
            instance.stop()
