"""A room's archive in storage: keyset pages, selections, counts, tombstones and trims, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_twisted

from component.storage import Migrations, Storage, open_storage, schema_version
from services.muc.archive_store import ArchiveEnds, ArchiveStore, NotInArchive, Selection
from services.muc.store import MESSAGE, MUC_MIGRATIONS, SUBJECT, TOMBSTONE, HistoryRecord, MucStore
from tests.storage.postgres import postgres_database_fixture, postgres_server_fixture  # noqa: F401  (fixtures)
from tests.unit.test_storage import Backend, backend  # noqa: F401  (fixtures)


@pytest_twisted.async_yield_fixture
async def db(backend: Backend) -> AsyncIterator[Storage]:  # noqa: F811
    """The backend with the MUC tables."""
    opened = await backend.open([MUC_MIGRATIONS])
    yield opened
    await opened.close()


NICKS = ("firstwitch", "secondwitch", "thirdwitch")


def _record(n: int, *, kind: int = MESSAGE) -> HistoryRecord:
    nick = NICKS[n % 3]
    return HistoryRecord(
        stanza_id=f"id-{n}",
        nick=nick,
        sender_jid=f"{nick}@shakespeare.lit",
        stanza=f'<message xmlns="jabber:component:accept" from="coven@chat.shakespeare.lit/{nick}"'
        f' type="groupchat"><body>{n}</body></message>',
        timestamp=1000.0 + n,
        kind=kind,
    )


async def _archive(storage: Storage, count: int = 30) -> tuple[MucStore, ArchiveStore]:
    rooms = MucStore(storage)
    await rooms.save_config("coven", {})
    await rooms.save_config("other", {})
    await rooms.append_rooms_histories([("coven", [_record(n) for n in range(count)]), ("other", [_record(0)])])
    return rooms, ArchiveStore(storage)


def _ids(page) -> list[str]:
    return [row.stanza_id for row in page.rows]


@pytest_twisted.ensureDeferred
async def test_pages_forward_and_back(db: Storage) -> None:
    _, archive = await _archive(db)
    everything = Selection()
    first = await archive.page("coven", everything, limit=10)
    assert _ids(first) == [f"id-{n}" for n in range(10)]
    assert (first.complete, first.count) == (False, 30)
    second = await archive.page("coven", everything, after="id-9", limit=10)
    assert _ids(second) == [f"id-{n}" for n in range(10, 20)]
    last = await archive.page("coven", everything, after="id-19", limit=10)
    assert _ids(last) == [f"id-{n}" for n in range(20, 30)] and last.complete
    # XEP-0059 §2.5: an empty <before/> is the last page, oldest first within it.
    tail = await archive.page("coven", everything, before="", limit=10)
    assert _ids(tail) == [f"id-{n}" for n in range(20, 30)] and not tail.complete
    earlier = await archive.page("coven", everything, before="id-5", limit=10)
    assert _ids(earlier) == [f"id-{n}" for n in range(5)] and earlier.complete
    assert (await archive.page("coven", everything, after="id-29", limit=10)).rows == ()
    # Only the room's own rows; ids are the room's own.
    other = await archive.page("other", everything, limit=10)
    assert _ids(other) == ["id-0"] and other.count == 1
    with pytest.raises(NotInArchive):
        await archive.page("coven", everything, after="nowhere", limit=10)
    with pytest.raises(NotInArchive):
        await archive.page("other", everything, before="id-5", limit=10)


@pytest_twisted.ensureDeferred
async def test_a_selection_filters_and_counts(db: Storage) -> None:
    _, archive = await _archive(db)
    window = await archive.page("coven", Selection(start=1005.0, end=1014.0), limit=50)
    assert _ids(window) == [f"id-{n}" for n in range(5, 15)] and (window.complete, window.count) == (True, 10)
    paged = await archive.page("coven", Selection(start=1005.0, end=1014.0), after="id-9", limit=3)
    assert _ids(paged) == ["id-10", "id-11", "id-12"] and (paged.complete, paged.count) == (False, 10)
    thirds = await archive.page("coven", Selection(nick="thirdwitch"), before="", limit=3)
    assert _ids(thirds) == ["id-23", "id-26", "id-29"] and thirds.count == 10
    by_jid = await archive.page("coven", Selection(jid="firstwitch@shakespeare.lit", end=1006.0), limit=50)
    assert _ids(by_jid) == ["id-0", "id-3", "id-6"]
    between = await archive.page("coven", Selection(after_id="id-3", before_id="id-7"), limit=50)
    assert _ids(between) == ["id-4", "id-5", "id-6"] and between.count == 3
    chosen = await archive.page("coven", Selection(ids=("id-17", "id-2", "missing")), limit=50)
    assert _ids(chosen) == ["id-2", "id-17"] and chosen.count == 2
    assert (await archive.page("coven", Selection(start=2000.0), limit=50)).count == 0
    assert (await archive.page("coven", Selection(end=999.0), limit=50)).rows == ()
    with pytest.raises(NotInArchive):
        await archive.page("coven", Selection(after_id="missing"), limit=50)


@pytest_twisted.ensureDeferred
async def test_ends_of_the_archive(db: Storage) -> None:
    _, archive = await _archive(db)
    assert await archive.ends("coven") == ArchiveEnds(("id-0", 1000.0), ("id-29", 1029.0))
    await MucStore(db).save_config("empty", {})
    assert await archive.ends("empty") == ArchiveEnds(None, None)


@pytest_twisted.ensureDeferred
async def test_a_tombstone_replaces_a_message_in_place(db: Storage) -> None:
    rooms, archive = await _archive(db, 5)
    found = await archive.find("coven", "id-3")
    assert found is not None and found.kind == MESSAGE and found.sender_jid == "firstwitch@shakespeare.lit"
    tombstone = '<message xmlns="jabber:component:accept" type="groupchat"><retracted/></message>'
    assert await archive.replace("coven", "id-3", tombstone) is True
    assert await archive.replace("coven", "missing", tombstone) is False
    assert await archive.replace("other", "id-3", tombstone) is False
    replaced = await archive.find("coven", "id-3")
    assert replaced is not None
    assert (replaced.kind, replaced.stanza, replaced.timestamp, replaced.nick) == (TOMBSTONE, tombstone, 1003.0, "firstwitch")
    # The archive keeps its place; the join history no longer replays it.
    assert _ids(await archive.page("coven", Selection(), limit=50)) == [f"id-{n}" for n in range(5)]
    assert [r.stanza_id for r in await rooms.recent_history("coven", 10)] == ["id-0", "id-1", "id-2", "id-4"]
    assert await archive.find("other", "id-3") is None


@pytest_twisted.ensureDeferred
async def test_subject_changes_are_archived_not_replayed(db: Storage) -> None:
    rooms, archive = await _archive(db, 2)
    assert await rooms.set_subject("coven", "Fire Burn", "firstwitch", 1002.0, _record(2, kind=SUBJECT)) is True
    assert (await rooms.load_room("coven")).subject == "Fire Burn"
    page = await archive.page("coven", Selection(), limit=50)
    assert [(r.stanza_id, r.kind) for r in page.rows] == [("id-0", MESSAGE), ("id-1", MESSAGE), ("id-2", SUBJECT)]
    assert page.count == 3
    assert [r.stanza_id for r in await rooms.recent_history("coven", 10)] == ["id-0", "id-1"]


@pytest_twisted.ensureDeferred
async def test_trims_go_in_bounded_batches(db: Storage) -> None:
    _, archive = await _archive(db, 30)
    assert await archive.rooms() == [("coven", 30, {}), ("other", 1, {})]
    # Keep the newest 12: 18 go, at most 7 a transaction.
    assert [await archive.delete_oldest("coven", 12, 7) for _ in range(4)] == [7, 7, 4, 0]
    page = await archive.page("coven", Selection(), limit=50)
    assert _ids(page) == [f"id-{n}" for n in range(18, 30)] and page.count == 12
    # Older than 1025: 18..24 go, 5 at a time.
    assert [await archive.delete_older("coven", 1025.0, 5) for _ in range(3)] == [5, 2, 0]
    page = await archive.page("coven", Selection(), limit=50)
    assert _ids(page) == [f"id-{n}" for n in range(25, 30)] and page.count == 5
    assert _ids(await archive.page("other", Selection(), limit=50)) == ["id-0"]


@pytest_twisted.ensureDeferred
async def test_rows_from_before_the_archive_are_counted_at_migration(backend: Backend) -> None:  # noqa: F811
    first = MUC_MIGRATIONS.steps[:1]
    older = await open_storage(backend.url, migrations=[Migrations("muc", first)], password=backend.password)
    try:
        await older.execute("INSERT INTO muc_rooms (node, created_at) VALUES ('coven', 1)")
        for n in range(3):
            await older.execute(
                "INSERT INTO muc_history (room, stanza_id, nick, sender_jid, stanza, timestamp) VALUES (?, ?, ?, ?, ?, ?)",
                ("coven", f"id-{n}", "firstwitch", None, "<message/>", 1000.0 + n),
            )
    finally:
        await older.close()
    current = await open_storage(backend.url, migrations=[MUC_MIGRATIONS], password=backend.password)
    try:
        assert await schema_version(current, "muc") == MUC_MIGRATIONS.version
        page = await ArchiveStore(current).page("coven", Selection(), before="", limit=2)
        assert _ids(page) == ["id-1", "id-2"] and page.count == 3
        assert all(row.kind == MESSAGE and row.occupant_id is None for row in page.rows)
    finally:
        await current.close()
