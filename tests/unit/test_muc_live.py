"""A room's live state as rows (services.muc.live): written change by change, read back whole, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_twisted

from component.jid import parse_jid
from component.storage import Storage
from services.muc.live import (
    LIVE_MIGRATIONS,
    LiveRoom,
    LiveState,
    LiveTracker,
    live_occupant,
    restore_occupant,
)
from services.muc.occupants import Occupant, Occupants
from services.muc.store import MUC_MIGRATIONS, MucStore
from tests.storage.postgres import postgres_database_fixture, postgres_server_fixture  # noqa: F401  (fixtures)
from tests.unit.test_storage import Backend, backend  # noqa: F401  (fixtures)

CRONE = parse_jid("crone1@shakespeare.lit/desktop")
CRONE_PHONE = parse_jid("crone1@shakespeare.lit/phone")
WICCA = parse_jid("wiccarocks@shakespeare.lit/laptop")
HAG = parse_jid("hag66@shakespeare.lit/pda")
AWAY = b'<presence xmlns="jabber:component:accept"><show>away</show></presence>'
HERE = b'<presence xmlns="jabber:component:accept"/>'


@pytest_twisted.async_yield_fixture
async def store(backend: Backend) -> AsyncIterator[MucStore]:  # noqa: F811
    opened: Storage = await backend.open([MUC_MIGRATIONS, LIVE_MIGRATIONS])
    yield MucStore(opened)
    await opened.close()


class Room:
    """What a room does with its live state: occupants noting their changes, a tracker, the store."""

    def __init__(self, store: MucStore, state: LiveState | None = None) -> None:
        self.store = store
        self.occupants = Occupants()
        self.occupants.record_changes()
        self.tracker = LiveTracker(state)
        self.row: LiveRoom | None = LiveRoom()

    async def commit(self) -> None:
        changed = [(nick, None if o is None else live_occupant(o)) for nick, o in self.occupants.take_changes()]
        changes = self.tracker.changes(changed, self.row)
        if changes:
            await self.store.write_live("coven", changes)
            self.tracker.written(changes)


def _shown(occupants: Occupants) -> list[tuple[str, str, list[tuple[str, bytes]], str]]:
    return [(o.nick, o.role, [(str(j), t) for j, t in o.sessions.items()], str(o.main)) for o in occupants]


async def _reloaded(store: MucStore) -> tuple[LiveState, Occupants]:
    state = await store.live_state("coven")
    occupants = Occupants()
    for stored in state.occupants:
        occupant = restore_occupant(stored, "coven@chat.shakespeare.lit")
        assert occupant is not None
        occupants.add(occupant)
    return state, occupants


@pytest_twisted.ensureDeferred
async def test_occupants_sessions_roles_and_presences_read_back_as_they_were(store: MucStore) -> None:
    room = Room(store)
    crone = Occupant("firstwitch", CRONE, "moderator", HERE)
    room.occupants.add(crone)
    room.occupants.add(Occupant("secondwitch", WICCA, "participant", HERE))
    room.occupants.add(Occupant("thirdwitch", HAG, "visitor", AWAY))
    room.row = LiveRoom(subject="Fire Burn and Cauldron Bubble!", subject_from="secondwitch", subject_at=1000.5)
    await room.commit()
    # A second client of the crone, her first one shown again, a change of role, a nick change.
    room.occupants.add_session(crone, CRONE_PHONE, AWAY)
    crone.main = CRONE
    room.occupants.note(crone)
    hag = room.occupants.by_nick("thirdwitch")
    assert hag is not None
    hag.role = "participant"
    wicca = room.occupants.by_nick("secondwitch")
    assert wicca is not None
    room.occupants.rename(wicca, "oldhag")
    await room.commit()

    state, occupants = await _reloaded(store)
    assert _shown(occupants) == _shown(room.occupants) == [
        ("firstwitch", "moderator", [(str(CRONE), HERE), (str(CRONE_PHONE), AWAY)], str(CRONE)),
        ("thirdwitch", "participant", [(str(HAG), AWAY)], str(HAG)),
        ("oldhag", "participant", [(str(WICCA), HERE)], str(WICCA)),
    ]
    assert state.room == LiveRoom(subject="Fire Burn and Cauldron Bubble!", subject_from="secondwitch", subject_at=1000.5)


@pytest_twisted.ensureDeferred
async def test_leaving_deletes_the_rows_and_a_second_tracker_goes_on_where_the_first_stopped(store: MucStore) -> None:
    room = Room(store)
    crone = Occupant("firstwitch", CRONE, "moderator", HERE)
    room.occupants.add(crone)
    room.occupants.add(Occupant("secondwitch", WICCA, "participant", HERE))
    room.row = LiveRoom(locked_until=2000.0, config={"persistent": False}, affiliations=(("crone1@shakespeare.lit", "owner", "", None),))
    await room.commit()

    # Another instance loads the room and carries on.
    state, occupants = await _reloaded(store)
    assert state.room == room.row
    other = Room(store, state)
    other.occupants = occupants
    other.occupants.record_changes()
    other.row = state.room
    wicca = occupants.by_nick("secondwitch")
    assert wicca is not None
    assert occupants.remove_session(wicca, WICCA)
    other.occupants.add(Occupant("thirdwitch", HAG, "participant", HERE))
    await other.commit()
    _, again = await _reloaded(store)
    assert [o.nick for o in again] == ["firstwitch", "thirdwitch"]

    # The last one leaves and the room's row goes with it.
    first = occupants.by_nick("firstwitch")
    third = occupants.by_nick("thirdwitch")
    assert first is not None and third is not None
    occupants.remove(first)
    occupants.remove(third)
    other.row = None
    await other.commit()
    assert await store.live_state("coven") == LiveState(None, ())


@pytest_twisted.ensureDeferred
async def test_nothing_changed_writes_nothing(store: MucStore) -> None:
    room = Room(store)
    room.occupants.add(Occupant("firstwitch", CRONE, "moderator", HERE))
    await room.commit()
    assert not room.tracker.changes([(n, None if o is None else live_occupant(o)) for n, o in room.occupants.take_changes()], room.row)


@pytest_twisted.ensureDeferred
async def test_forgetting_a_room_deletes_its_rows_only(store: MucStore) -> None:
    room = Room(store)
    room.occupants.add(Occupant("firstwitch", CRONE, "moderator", HERE))
    await room.commit()
    other = LiveTracker()
    changes = other.changes([("hecate", live_occupant(Occupant("hecate", HAG, "moderator", HERE)))], LiveRoom())
    await store.write_live("heath", changes)
    await store.forget_live("coven")
    assert await store.live_state("coven") == LiveState(None, ())
    assert [o.nick for o in (await store.live_state("heath")).occupants] == ["hecate"]
    await store.forget_all_live()
    assert await store.live_state("heath") == LiveState(None, ())
