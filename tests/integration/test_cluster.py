"""Several Netherfield instances serve one MUC domain behind ejabberd's ``domain_balancing``, on one PostgreSQL.

Real ejabberd balances ``muc.localhost`` over one slot per instance
(``bare_destination``: every stanza for a room, or for one of its occupants,
reaches one connection); real Netherfield processes with ``[cluster]``
instance names share one database; real clients (slixmpp) sit in the rooms.
The cluster and the clients are kept from test to test in this file, which
runs in order: each test leaves every instance running.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from slixmpp import JID
from slixmpp.exceptions import PresenceError

from tests.integration.clients import client, run
from tests.integration.cluster import (
    MUC,
    Cluster,
    Crowd,
    Seat,
)
from tests.storage.postgres import PostgresServer, postgres_server_fixture  # noqa: F401

INSTANCES = 3
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
        slots=INSTANCES,
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
    loaded = {instance.name: instance.rooms_loaded() for instance in cluster.instances}
    assert sum(loaded.values()) == ROOMS, loaded
    assert all(count > 0 for count in loaded.values()), loaded







def test_with_a_fourth_slot_and_three_instances_a_quarter_of_the_rooms_is_silent(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    small = Cluster(tmp_path, postgres_server, slots=4, cluster={"lease_seconds": LEASE_SECONDS})
    rooms = [f"quarter{n}@{MUC}" for n in range(16)]
    try:
        small.start(3)
        small.add_users(["q0"], PASSWORD)

        async def attempt(names: list[str]) -> tuple[dict[str, str], list[int]]:
            """Join each room; the outcomes, and each instance's rooms in memory while still in them."""
            async with client(small.ejabberd, "q0", PASSWORD) as xmpp:

                async def one(room: str) -> str:
                    try:
                        await xmpp.plugin["xep_0045"].join_muc_wait(JID(room), "q", timeout=4, maxstanzas=0)
                    except TimeoutError:
                        return "silent"
                    except PresenceError as error:
                        return str(error.presence["error"]["condition"])
                    return "joined"

                outcomes = await asyncio.gather(*(one(room) for room in names))
                loaded = [instance.rooms_loaded() for instance in small.instances]
            return dict(zip(names, outcomes, strict=True)), loaded

        first, loaded = run(attempt(rooms))
        # The empty slot's rooms get no answer at all: no error, nothing.
        silent = {room for room, outcome in first.items() if outcome == "silent"}
        assert set(first.values()) == {"joined", "silent"}, first
        assert sum(loaded) == len(rooms) - len(silent) and all(loaded), loaded

        # The fourth instance fills the slot: exactly those rooms come to it.
        small.add_instance()
        second, loaded = run(attempt(sorted(silent)))
        assert set(second.values()) == {"joined"}, second
        assert loaded == [0, 0, 0, len(silent)]
    finally:
        small.stop()
