"""The storage suite, run once against SQLite and once against a real PostgreSQL.

Every test that takes the `backend` fixture runs on both; the PostgreSQL half
needs the sandboxed server of `tests.storage.postgres` and is skipped, with a
warning in the summary, only where that server cannot start.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, cast

import attrs
import psycopg
import pytest
import pytest_twisted
from twisted.internet.defer import DeferredList, gatherResults
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher

from component.storage import (
    Migrations,
    Sql,
    Storage,
    StorageError,
    StorageUnavailable,
    Transaction,
    open_storage,
    schema_version,
)
from component.storage import sqlite as sqlite_backend
from component.storage.rosters import ROSTER_MIGRATIONS, RosterRow, RosterStore
from services.muc.store import MUC_MIGRATIONS, AffiliationChange, HistoryRecord, MucStore
from tests.storage.postgres import (  # noqa: F401  (fixtures)
    Database,
    PostgresServer,
    postgres_database_fixture,
    postgres_server_fixture,
)
from tests.storage.writer import PASSWORD_ENV

REPO_ROOT = Path(__file__).resolve().parents[2]
ALL_MIGRATIONS = (ROSTER_MIGRATIONS, MUC_MIGRATIONS)


@attrs.frozen
class Backend:
    """Where one run of the suite keeps its data."""

    name: str
    url: str
    password: str | None = attrs.field(default=None, repr=False)
    server: PostgresServer | None = None

    def open(self, migrations: Sequence[Migrations] = ALL_MIGRATIONS) -> Any:
        return open_storage(self.url, migrations=migrations, password=self.password)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The database of one test, on each backend in turn."""
    if request.param == "sqlite":
        return Backend("sqlite", f"sqlite:///{tmp_path / 'netherfield.db'}")
    database: Database = request.getfixturevalue("postgres_database")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return Backend("postgresql", database.url, database.password, server)


@pytest.fixture
def postgres(backend: Backend) -> Backend:
    """The PostgreSQL run only, for what only PostgreSQL can show."""
    if backend.name != "postgresql":
        pytest.skip("PostgreSQL only")
    return backend


@pytest_twisted.async_yield_fixture
async def storage(backend: Backend) -> AsyncIterator[Storage]:
    """The backend opened with the roster and MUC migrations."""
    opened = await backend.open()
    yield opened
    await opened.close()


async def _raises(exception: type[Exception], awaitable: Any) -> Exception:
    with pytest.raises(exception) as info:
        await awaitable
    return info.value


# -- migrations ---------------------------------------------------------------


def _demo(steps: int) -> Migrations:
    all_steps: list[Any] = [
        "CREATE TABLE demo_items (id INTEGER PRIMARY KEY, label TEXT NOT NULL)",
        ["ALTER TABLE demo_items ADD COLUMN note TEXT", "CREATE INDEX demo_label ON demo_items (label)"],
        Sql(
            sqlite="CREATE TABLE demo_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, line TEXT)",
            postgresql="CREATE TABLE demo_log (seq BIGSERIAL PRIMARY KEY, line TEXT)",
        ),
    ]
    return Migrations("demo", all_steps[:steps])


@pytest_twisted.ensureDeferred
async def test_migrations_are_applied_at_open(storage: Storage) -> None:
    assert await schema_version(storage, "rosters") == ROSTER_MIGRATIONS.version == 2
    assert await schema_version(storage, "muc") == MUC_MIGRATIONS.version == 4
    assert await schema_version(storage, "unknown") == 0


@pytest_twisted.ensureDeferred
async def test_migrations_step_forward_and_keep_data(backend: Backend) -> None:
    storage = await backend.open([_demo(1)])
    await storage.execute("INSERT INTO demo_items (id, label) VALUES (?, ?)", (1, "one"))
    await storage.close()

    storage = await backend.open([_demo(3)])
    try:
        assert await schema_version(storage, "demo") == 3
        await storage.execute("UPDATE demo_items SET note = ? WHERE id = ?", ("kept", 1))
        assert await storage.fetchall("SELECT id, label, note FROM demo_items") == [(1, "one", "kept")]
        await storage.execute("INSERT INTO demo_log (line) VALUES (?)", ("a",))
        await storage.execute("INSERT INTO demo_log (line) VALUES (?)", ("b",))
        assert await storage.fetchall("SELECT seq, line FROM demo_log ORDER BY seq") == [(1, "a"), (2, "b")]
    finally:
        await storage.close()


@pytest_twisted.ensureDeferred
async def test_newer_database_is_refused(backend: Backend) -> None:
    storage = await backend.open([_demo(2)])
    await storage.close()
    error = await _raises(StorageError, backend.open([ROSTER_MIGRATIONS, _demo(1)]))
    assert str(error) == (
        f"the database at {backend.url} has schema demo version 2, newer than this"
        " Netherfield (1); upgrade Netherfield or use another database"
    )
    # Refused before anything was touched: the roster tables were not created.
    storage = await backend.open([])
    try:
        assert await schema_version(storage, "rosters") == 0
    finally:
        await storage.close()


@pytest_twisted.ensureDeferred
async def test_failed_step_leaves_the_previous_version(backend: Backend) -> None:
    broken = Migrations(
        "demo",
        [
            "CREATE TABLE demo_items (id INTEGER PRIMARY KEY)",
            ["CREATE TABLE demo_half (id INTEGER)", "THIS IS NOT SQL"],
        ],
    )
    await _raises(StorageError, backend.open([broken]))
    storage = await backend.open([])
    try:
        assert await schema_version(storage, "demo") == 1
        # The half-done step was rolled back with its version.
        await _raises(StorageError, storage.fetchall("SELECT id FROM demo_half"))
        assert await storage.fetchall("SELECT id FROM demo_items") == []
    finally:
        await storage.close()


@pytest_twisted.ensureDeferred
async def test_processes_starting_together_migrate_once(backend: Backend) -> None:
    results = await DeferredList([backend.open() for _ in range(3)], consumeErrors=True)
    storages = [value for ok, value in results if ok]
    try:
        assert [ok for ok, _ in results] == [True, True, True], results
        assert await schema_version(storages[0], "muc") == MUC_MIGRATIONS.version
    finally:
        for opened in storages:
            await opened.close()


def test_migrations_take_a_lone_statement_as_a_step() -> None:
    migrations = Migrations("x", ["CREATE TABLE a (b TEXT)", ["S1", "S2"]])
    assert migrations.steps == (("CREATE TABLE a (b TEXT)",), ("S1", "S2"))
    assert migrations.version == 2


@pytest_twisted.ensureDeferred
async def test_a_namespace_given_twice_is_an_error(backend: Backend) -> None:
    await _raises(ValueError, backend.open([_demo(1), _demo(2)]))


# -- the interface ------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_execute_and_fetch(storage: Storage) -> None:
    await storage.execute("CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER, x REAL, b BIGINT)")
    assert await storage.execute("INSERT INTO t VALUES (?, ?, ?, ?)", ("a", 1, 0.5, 2**40)) == 1
    assert await storage.execute("INSERT INTO t VALUES (?, ?, ?, ?)", ("b%", True, None, 0)) == 1
    assert await storage.fetchone("SELECT k, n, x, b FROM t WHERE k = ?", ("a",)) == ("a", 1, 0.5, 2**40)
    assert await storage.fetchone("SELECT k FROM t WHERE k = ?", ("zz",)) is None
    # A literal '?' and '%' stay literal; True was stored as 1.
    assert await storage.fetchall("SELECT k, n, '?%' FROM t WHERE k LIKE 'b%' AND n = ?", (1,)) == [
        ("b%", 1, "?%")
    ]
    assert await storage.execute("UPDATE t SET n = n + 1") == 2


@pytest_twisted.ensureDeferred
async def test_transaction_commits_or_rolls_back_whole(storage: Storage) -> None:
    await storage.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")

    def two_then_fail(txn: Transaction) -> None:
        txn.execute("INSERT INTO t VALUES (?)", ("one",))
        txn.execute("INSERT INTO t VALUES (?)", ("two",))
        raise ValueError("changed my mind")

    await _raises(ValueError, storage.transaction(two_then_fail))
    assert await storage.fetchall("SELECT k FROM t") == []

    def two(txn: Transaction, first: str, *, second: str) -> int:
        txn.execute("INSERT INTO t VALUES (?)", (first,))
        txn.execute("INSERT INTO t VALUES (?)", (second,))
        row = txn.fetchone("SELECT COUNT(*) FROM t")
        assert row is not None
        return int(row[0])

    assert await storage.transaction(two, "one", second="two") == 2
    # A constraint violation rolls back the whole transaction too.
    await _raises(StorageError, storage.transaction(two, "three", second="one"))
    assert await storage.fetchall("SELECT k FROM t ORDER BY k") == [("one",), ("two",)]


@pytest_twisted.ensureDeferred
async def test_work_runs_off_the_reactor_thread(storage: Storage) -> None:
    def where(txn: Transaction) -> bool:
        return threading.current_thread() is threading.main_thread()

    assert await storage.transaction(where) is False


@pytest_twisted.ensureDeferred
async def test_bad_sql_errs_and_storage_goes_on(storage: Storage) -> None:
    error = await _raises(StorageError, storage.execute("SELEKT 1"))
    assert "SELEKT" in str(error) or "syntax" in str(error)
    assert await storage.fetchone("SELECT 1 + 1") == (2,)


@pytest_twisted.ensureDeferred
async def test_closed_storage_refuses_calls(backend: Backend) -> None:
    storage = await backend.open()
    await storage.close()
    await storage.close()  # closing twice is harmless
    error = await _raises(StorageError, storage.fetchone("SELECT 1"))
    assert "closed" in str(error)


# -- rosters ------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_roster_rows(storage: Storage) -> None:
    rosters = RosterStore(storage)
    juliet = RosterRow("juliet@example.com", "both", name="Juliet", groups=["Friends", "Capulets"])
    nurse = RosterRow("nurse@example.com", ask_out=True)
    await rosters.write("romeo@example.net", juliet.contact, juliet, None)
    await rosters.write("romeo@example.net", nurse.contact, nurse, None)
    await rosters.write("tybalt@example.net", "juliet@example.com", RosterRow("juliet@example.com", "from"), None)

    assert await rosters.load("romeo@example.net") == {juliet.contact: juliet, nurse.contact: nurse}
    assert await rosters.load("tybalt@example.net") == {"juliet@example.com": RosterRow("juliet@example.com", "from")}

    # write() replaces the row: no field of the old one survives.
    renamed = RosterRow("juliet@example.com", "to", name=None, groups=[])
    await rosters.write("romeo@example.net", renamed.contact, renamed, None)
    assert (await rosters.load("romeo@example.net"))["juliet@example.com"] == renamed

    await rosters.write("romeo@example.net", "nurse@example.com", None, None)
    assert list(await rosters.load("romeo@example.net")) == ["juliet@example.com"]
    assert await rosters.load("nobody@example.net") == {}


@pytest_twisted.ensureDeferred
async def test_pending_subscription_requests(storage: Storage) -> None:
    rosters = RosterStore(storage)
    await rosters.write("juliet@example.com", "romeo@example.net", None, "<presence type='subscribe'/>")
    await rosters.write("juliet@example.com", "paris@example.net", None, "first")
    await rosters.write("juliet@example.com", "paris@example.net", None, "second")
    assert await rosters.requests("juliet@example.com") == {
        "paris@example.net": "second",
        "romeo@example.net": "<presence type='subscribe'/>",
    }
    await rosters.write("juliet@example.com", "paris@example.net", None, None)
    assert list(await rosters.requests("juliet@example.com")) == ["romeo@example.net"]
    # A request is kept even though the contact is on no roster.
    assert await rosters.load("juliet@example.com") == {}


def test_roster_row_refuses_an_unknown_subscription() -> None:
    with pytest.raises(ValueError):
        RosterRow("a@b", "sometimes")


# -- MUC ----------------------------------------------------------------------


def _clock(start: float = 1000.0) -> Callable[[], float]:
    now = [start]

    def clock() -> float:
        now[0] += 1
        return now[0]

    return clock


@pytest_twisted.ensureDeferred
async def test_rooms(storage: Storage) -> None:
    muc = MucStore(storage, clock=_clock())
    assert await muc.load_room("coven") is None
    await muc.save_config("coven", {"name": "The Coven", "max_users": 30, "roles": ["moderator"]})
    await muc.save_config("darkcave", {"name": "Dark Cave"}, public=False)

    room = await muc.load_room("coven")
    assert room is not None
    assert room.config == {"name": "The Coven", "max_users": 30, "roles": ["moderator"]}
    assert (room.public, room.subject, room.subject_from, room.created_at, room.subject_at) == (
        True, "", "", 1001.0, None
    )

    assert await muc.set_subject("coven", "Fire Burn and Cauldron Bubble!", "secondwitch", 1500.25) is True
    assert await muc.set_subject("nowhere", "x", "y", 1501.0) is False
    await muc.save_config("coven", {"name": "The New Coven"})
    room = await muc.load_room("coven")
    assert room is not None
    # A new configuration keeps the subject and the creation time.
    assert room.config == {"name": "The New Coven"}
    assert (room.subject, room.subject_from, room.subject_at, room.created_at) == (
        "Fire Burn and Cauldron Bubble!",
        "secondwitch",
        1500.25,
        1001.0,
    )

    assert [r.node for r in await muc.list_rooms()] == ["coven", "darkcave"]
    assert [r.node for r in await muc.list_rooms(public_only=True)] == ["coven"]


@pytest_twisted.ensureDeferred
async def test_affiliations(storage: Storage) -> None:
    muc = MucStore(storage)
    await muc.save_config("coven", {})
    await muc.set_affiliation("coven", "crone1@shakespeare.lit", "owner")
    await muc.set_affiliation("coven", "hag66@shakespeare.lit", "member", nick="thirdwitch")
    await muc.set_affiliation("coven", "earlofcambridge@shakespeare.lit", "outcast", "Treason")
    await muc.set_affiliation("coven", "hag66@shakespeare.lit", "admin", "promoted")
    affiliations = await muc.affiliations("coven")
    assert {jid: a.affiliation for jid, a in affiliations.items()} == {
        "crone1@shakespeare.lit": "owner",
        "earlofcambridge@shakespeare.lit": "outcast",
        "hag66@shakespeare.lit": "admin",
    }
    assert affiliations["earlofcambridge@shakespeare.lit"].reason == "Treason"
    # The upsert replaced the whole row, nick included.
    hag = affiliations["hag66@shakespeare.lit"]
    assert (hag.nick, hag.reason) == (None, "promoted")

    await muc.set_affiliation("coven", "earlofcambridge@shakespeare.lit", "none")
    await muc.set_affiliation("coven", "never@shakespeare.lit", "none")
    assert sorted(await muc.affiliations("coven")) == ["crone1@shakespeare.lit", "hag66@shakespeare.lit"]
    assert await muc.affiliations("elsewhere") == {}

    with pytest.raises(ValueError):
        muc.set_affiliation("coven", "x@y", "visitor")
    # Affiliations belong to a stored room.
    await _raises(StorageError, muc.set_affiliation("nowhere", "x@y", "member"))


def _message(n: int, timestamp: float | None = None) -> HistoryRecord:
    return HistoryRecord(
        stanza_id=f"id-{n}",
        nick="thirdwitch",
        sender_jid="hag66@shakespeare.lit/pda",
        stanza=f"<message type='groupchat'><body>{n}</body></message>",
        timestamp=1000.0 + n if timestamp is None else timestamp,
    )


@pytest_twisted.ensureDeferred
async def test_history(storage: Storage) -> None:
    muc = MucStore(storage)
    await muc.save_config("coven", {})
    await muc.save_config("other", {})
    seqs = [await muc.append_history("coven", _message(n)) for n in range(5)]
    assert all(isinstance(s, int) for s in seqs)
    assert seqs == sorted(s for s in seqs if s is not None)
    await muc.append_history("other", _message(99))
    # The same stanza-id is archived once.
    assert await muc.append_history("coven", _message(4)) is None
    # ... per room: stanza-ids are the room's own.
    assert await muc.append_history("other", _message(4)) is not None

    recent = await muc.recent_history("coven", 3)
    assert [r.stanza_id for r in recent] == ["id-2", "id-3", "id-4"]
    assert recent[-1] == attrs.evolve(_message(4), seq=seqs[4])
    assert [r.stanza_id for r in await muc.recent_history("coven", 10, since=1003.0)] == ["id-3", "id-4"]
    assert await muc.recent_history("coven", 0) == []
    assert await muc.recent_history("nowhere", 5) == []
    await _raises(StorageError, muc.append_history("nowhere", _message(1)))


@pytest_twisted.ensureDeferred
async def test_history_rows_of_rooms_stored_together(storage: Storage) -> None:
    muc = MucStore(storage)
    await muc.save_config("coven", {})
    await muc.save_config("other", {})
    await muc.append_history("coven", _message(0))
    # In one transaction, each room's in its order; a stanza-id the room has (0, or twice in one batch) once.
    outcomes = await muc.append_rooms_histories(
        [("coven", [_message(n) for n in (1, 2, 0, 3, 3, 4)]), ("other", [_message(0)])]
    )
    assert outcomes == [None, None]
    assert [r.stanza_id for r in await muc.recent_history("coven", 10)] == [f"id-{n}" for n in range(5)]
    assert [r.stanza_id for r in await muc.recent_history("other", 10)] == ["id-0"]
    assert muc.history_writes == 8
    # More rows than one statement carries.
    assert await muc.append_rooms_histories([("coven", [_message(n) for n in range(5, 1205)])]) == [None]
    assert [r.stanza_id for r in await muc.recent_history("coven", 1205)] == [f"id-{n}" for n in range(1205)]
    # The rows of a room that is not stored are refused, all of them, and only them.
    outcomes = await muc.append_rooms_histories(
        [("other", [_message(1)]), ("nowhere", [_message(1), _message(2)]), ("other", [_message(2)])]
    )
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], StorageError) and "nowhere" in str(outcomes[1])
    assert await muc.recent_history("nowhere", 5) == []
    assert [r.stanza_id for r in await muc.recent_history("other", 10)] == ["id-0", "id-1", "id-2"]
    assert muc.history_writes == 1208 + 2


@pytest_twisted.ensureDeferred
async def test_deleting_a_room_deletes_what_it_had(storage: Storage) -> None:
    muc = MucStore(storage)
    await muc.save_config("coven", {})
    await muc.set_affiliation("coven", "crone1@shakespeare.lit", "owner")
    await muc.append_history("coven", _message(1))
    assert await muc.delete_room("coven") is True
    assert await muc.delete_room("coven") is False
    assert await muc.load_room("coven") is None
    await muc.save_config("coven", {})
    assert await muc.affiliations("coven") == {}
    assert await muc.recent_history("coven", 10) == []


@pytest_twisted.ensureDeferred
async def test_several_affiliations_are_one_transaction(storage: Storage) -> None:
    muc = MucStore(storage)
    await muc.save_config("coven", {})
    await muc.set_affiliation("coven", "crone1@shakespeare.lit", "owner")
    await muc.set_affiliations("coven", [
        AffiliationChange("hag66@shakespeare.lit", "member", nick="thirdwitch"),
        AffiliationChange("crone1@shakespeare.lit", "none"),
        AffiliationChange("wiccarocks@shakespeare.lit", "admin"),
        AffiliationChange("hag66@shakespeare.lit", "outcast", "Treason"),  # the last for one user wins
    ])
    expected = {"hag66@shakespeare.lit": ("outcast", "Treason"), "wiccarocks@shakespeare.lit": ("admin", "")}
    assert {j: (a.affiliation, a.reason) for j, a in (await muc.affiliations("coven")).items()} == expected
    # A row the database refuses in the middle (jid is NOT NULL) leaves all of them undone.
    refused = AffiliationChange(None, "member")  # type: ignore[arg-type]
    await _raises(StorageError, muc.set_affiliations("coven", [
        AffiliationChange("earlofcambridge@shakespeare.lit", "member"),
        AffiliationChange("hag66@shakespeare.lit", "none"),
        refused,
        AffiliationChange("wiccarocks@shakespeare.lit", "owner"),
    ]))
    assert {j: (a.affiliation, a.reason) for j, a in (await muc.affiliations("coven")).items()} == expected
    with pytest.raises(ValueError):
        AffiliationChange("x@y", "visitor")


@pytest_twisted.ensureDeferred
async def test_a_room_is_stored_whole_or_not_at_all(storage: Storage) -> None:
    muc = MucStore(storage, clock=_clock())
    owner = AffiliationChange("crone1@shakespeare.lit", "owner")
    member = AffiliationChange("hag66@shakespeare.lit", "member", nick="thirdwitch")
    broken = attrs.evolve(_message(2), stanza_id=None)  # stanza_id is NOT NULL
    await _raises(StorageError, muc.store_room(
        "coven", {"name": "The Coven"}, affiliations=[owner, member], subject=("Fire Burn", "firstwitch", 900.0),
        history=[_message(1), broken],
    ))
    assert await muc.load_room("coven") is None
    assert await muc.affiliations("coven") == {}
    assert await muc.recent_history("coven", 10) == []

    await muc.store_room(
        "coven", {"name": "The Coven"}, public=False, affiliations=[owner, member],
        subject=("Fire Burn", "firstwitch", 900.0), history=[_message(1), _message(2)],
    )
    room = await muc.load_room("coven")
    assert room is not None
    assert (room.config, room.public, room.subject, room.subject_from, room.subject_at) == (
        {"name": "The Coven"}, False, "Fire Burn", "firstwitch", 900.0
    )
    affiliations = await muc.affiliations("coven")
    assert {j: (a.affiliation, a.nick) for j, a in affiliations.items()} == {
        "crone1@shakespeare.lit": ("owner", None), "hag66@shakespeare.lit": ("member", "thirdwitch"),
    }
    assert [r.stanza_id for r in await muc.recent_history("coven", 10)] == ["id-1", "id-2"]


# -- several writers ------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_two_writers_on_one_room_end_consistent(backend: Backend) -> None:
    first, second = await gatherResults([backend.open(), backend.open()])
    try:
        a, b = MucStore(first), MucStore(second)
        await a.save_config("coven", {"by": "a"})
        await b.save_config("coven", {"by": "b"})
        # a makes users 0-29 members, b makes users 20-49 admins, all at once.
        writes = []
        for n in range(50):
            if n < 30:
                writes.append(a.set_affiliation("coven", f"user{n}@x", "member", "from a"))
            if n >= 20:
                writes.append(b.set_affiliation("coven", f"user{n}@x", "admin", "from b"))
        await gatherResults(writes, consumeErrors=True)
        affiliations = await a.affiliations("coven")
        assert affiliations == await b.affiliations("coven")
        assert len(affiliations) == 50
        for n in range(50):
            row = affiliations[f"user{n}@x"]
            expected = {("member", "from a"), ("admin", "from b")}
            if n < 20:
                expected = {("member", "from a")}
            elif n >= 30:
                expected = {("admin", "from b")}
            # Each row is wholly one writer's: never one's affiliation with the other's reason.
            assert (row.affiliation, row.reason) in expected
        room = await a.load_room("coven")
        assert room is not None and room.config == {"by": "b"}
    finally:
        await first.close()
        await second.close()


# -- crash safety ---------------------------------------------------------------


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        raise AssertionError(f"the writer said nothing within {timeout} s")
    line = process.stdout.readline()
    if not line:
        raise AssertionError(f"the writer exited with {process.wait()}: {process.stderr and process.stderr.read()}")
    return line.strip()


@pytest_twisted.ensureDeferred
async def test_acknowledged_writes_survive_kill_9(backend: Backend) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    if backend.password is not None:
        env[PASSWORD_ENV] = backend.password
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.storage.writer", backend.url, "crash@test"],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    try:
        assert _read_line(writer, 60) == "ready"
        for n in range(20):
            assert _read_line(writer, 30) == f"acknowledged {n}"
        # Killed right after the 20th acknowledgement, in the middle of the 21st write.
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        if writer.poll() is None:
            os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        assert writer.stdout is not None and writer.stderr is not None
        writer.stdout.close()
        writer.stderr.close()
    assert writer.returncode == -signal.SIGKILL

    storage = await backend.open()
    try:
        roster = await RosterStore(storage).load("crash@test")
    finally:
        await storage.close()
    for n in range(20):
        assert roster[f"contact-{n}"] == RosterRow(f"contact-{n}", "both", name=f"Contact {n}")


# -- SQLite only ----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_sqlite_file_is_wal_and_fully_synchronous(tmp_path: Path) -> None:
    storage = await open_storage(f"sqlite:///{tmp_path / 'n.db'}")
    try:
        assert await storage.fetchone("PRAGMA journal_mode") == ("wal",)
        assert await storage.fetchone("PRAGMA synchronous") == (2,)  # FULL
        assert await storage.fetchone("PRAGMA foreign_keys") == (1,)
    finally:
        await storage.close()
    assert (tmp_path / "n.db").exists()


@pytest_twisted.ensureDeferred
async def test_sqlite_default_file_is_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    storage = await open_storage()
    await storage.close()
    assert (tmp_path / "netherfield.db").exists()


@pytest_twisted.ensureDeferred
async def test_sqlite_unopenable_file_errs_clearly(tmp_path: Path) -> None:
    error = await _raises(StorageError, open_storage(f"sqlite:///{tmp_path / 'missing' / 'n.db'}"))
    assert str(error).startswith(f"cannot open the SQLite database at {tmp_path / 'missing' / 'n.db'}")


@pytest_twisted.ensureDeferred
async def test_sqlite_locked_by_another_process_is_unavailable_and_a_bad_statement_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file another process holds is worth a retry (StorageUnavailable); a statement refused as it stands is not."""
    monkeypatch.setattr(sqlite_backend, "_BUSY_TIMEOUT_MS", 50)
    path = tmp_path / "n.db"
    storage = await open_storage(f"sqlite:///{path}")
    other = sqlite3.connect(path)
    try:
        await storage.execute("CREATE TABLE t (x INTEGER)")
        other.execute("BEGIN EXCLUSIVE")
        locked = await _raises(StorageUnavailable, storage.execute("INSERT INTO t VALUES (1)"))
        assert "database is locked" in str(locked)
        other.rollback()
        refused = await _raises(StorageError, storage.execute("INSERT INTO t (y) VALUES (1)"))
        assert not isinstance(refused, StorageUnavailable)
        assert await storage.execute("INSERT INTO t VALUES (1)") == 1
    finally:
        other.close()
        await storage.close()


@pytest_twisted.ensureDeferred
async def test_unknown_url_scheme_is_refused() -> None:
    error = await _raises(StorageError, open_storage("mysql://u:secret@h/db"))
    assert "secret" not in str(error)
    assert "sqlite://" in str(error) and "postgresql://" in str(error)


# -- PostgreSQL only --------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_lock_another_client_holds_past_the_timeout_is_unavailable_and_a_bad_statement_is_not(
    postgres: Backend,
) -> None:
    """Busy is worth a retry (StorageUnavailable); a statement refused as it stands is not."""
    storage = await postgres.open()
    other = psycopg.connect(postgres.url, password=postgres.password)
    try:
        await storage.execute("CREATE TABLE t (x INTEGER)")
        other.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")

        def insert(txn: Transaction) -> None:
            txn.execute("SET LOCAL lock_timeout = '50ms'")
            txn.execute("INSERT INTO t VALUES (1)")

        busy = await _raises(StorageUnavailable, storage.transaction(insert))
        assert str(busy).startswith("PostgreSQL is busy: ")
        other.rollback()
        refused = await _raises(StorageError, storage.execute("INSERT INTO t (y) VALUES (1)"))
        assert not isinstance(refused, StorageUnavailable)
        await storage.transaction(insert)
        assert await storage.fetchone("SELECT count(*) FROM t") == (1,)
    finally:
        other.close()
        await storage.close()


@pytest_twisted.ensureDeferred
async def test_database_restart_under_a_running_client(postgres: Backend) -> None:
    server = postgres.server
    assert server is not None
    storage = await postgres.open()
    rosters = RosterStore(storage)
    try:
        await rosters.write("romeo@example.net", "juliet@example.com", RosterRow("juliet@example.com", "both"), None)
        server.stop()
        # During the outage, every call fails promptly and says why.
        for _ in range(3):
            error = await _raises(StorageUnavailable, rosters.load("romeo@example.net"))
            assert str(error).startswith(f"the PostgreSQL database {storage.url} is unreachable: ")
        await _raises(StorageUnavailable, rosters.write("romeo@example.net", "nurse@example.com", RosterRow("nurse@example.com"), None))
        server.start()
        # Once it is back, calls succeed again.
        assert list(await rosters.load("romeo@example.net")) == ["juliet@example.com"]
        await rosters.write("romeo@example.net", "nurse@example.com", RosterRow("nurse@example.com"), None)
        assert list(await rosters.load("romeo@example.net")) == ["juliet@example.com", "nurse@example.com"]

        # A restart that no call noticed: the first call after it gets through.
        server.stop()
        server.start()
        assert len(await rosters.load("romeo@example.net")) == 2
    finally:
        await storage.close()


@pytest_twisted.ensureDeferred
async def test_password_is_needed_and_never_shown(
    postgres: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    assert postgres.password is not None and postgres.server is not None
    caplog.set_level(logging.DEBUG)
    events: list[str] = []

    def record(event: dict[str, Any]) -> None:
        events.append(formatEvent(event))

    observe = cast(ILogObserver, record)
    globalLogPublisher.addObserver(observe)
    try:
        await _raises(StorageUnavailable, open_storage(postgres.url, password="wrong-" + postgres.password))
        with_password = postgres.url.replace("netherfield@", f"netherfield:{postgres.password}@")
        storage = await open_storage(with_password)
        try:
            assert postgres.password not in storage.url
            assert storage.url == postgres.url.replace("netherfield@", "netherfield:***@")
            postgres.server.stop()
            error = await _raises(StorageUnavailable, storage.fetchone("SELECT 1"))
            assert postgres.password not in str(error)
            postgres.server.start()
            assert await storage.fetchone("SELECT 1") == (1,)
        finally:
            await storage.close()
    finally:
        globalLogPublisher.removeObserver(observe)
    assert any("opened PostgreSQL" in e for e in events)
    assert not [e for e in events if postgres.password in e]
    assert postgres.password not in caplog.text
