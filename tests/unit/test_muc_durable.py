"""A room's changes are stored before they are announced; a refused write announces nothing.

The database refuses statements on demand (:class:`FailingStorage`, on a
SQLite file); what survived is checked by building a new service on the
same file, as a restart would.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from component.testing import Harness
from services.muc.testing import (
    CRONE,
    ERR,
    MUC_X,
    ROOM,
    WICCA,
    FailingStorage,
    ImmediateStorage,
    configure,
    enter,
    immediate_storage,
    instant_room,
    muc_harness,
)

PERSISTENT = "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"
OWNER = "http://jabber.org/protocol/muc#owner"


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "muc.db")


def persistent_room(path: str) -> tuple[Harness, FailingStorage]:
    """A persistent room owned by the crone, the second witch in it too."""
    storage = immediate_storage(FailingStorage(path))
    h = muc_harness(storage=storage)
    instant_room(h, ROOM, CRONE, "firstwitch")
    configure(h, PERSISTENT)
    enter(h, ROOM, "secondwitch", WICCA)
    return h, storage


def restarted(path: str) -> Harness:
    """A new service on the same database file."""
    return muc_harness(storage=immediate_storage(ImmediateStorage(path)))


def failures(h: Harness) -> dict[str, int]:
    return dict(h.component.services[0].write_failures.counts)


# -- destroy ----------------------------------------------------------------------


def destroy(h: Harness) -> None:
    h.receive(
        f"""<iq from='{CRONE}' id='begone' to='{ROOM}' type='set'><query xmlns='{OWNER}'>
          <destroy><reason>Macbeth doth come.</reason></destroy></query></iq>"""
    )


def test_a_stored_room_is_deleted_then_destroyed(path: str) -> None:
    h, _ = persistent_room(path)
    destroy(h)
    h.expect(
        f"""<presence from='{ROOM}/firstwitch' to='{CRONE}' type='unavailable'>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/>
            <destroy><reason>Macbeth doth come.</reason></destroy></x></presence>""",
        f"""<presence from='{ROOM}/secondwitch' to='{WICCA}' type='unavailable'>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/>
            <destroy><reason>Macbeth doth come.</reason></destroy></x></presence>""",
        f"<iq from='{ROOM}' id='begone' to='{CRONE}' type='result'/>",
    )
    again = restarted(path)
    again.receive(f"<presence from='{WICCA}' to='{ROOM}/secondwitch'>{MUC_X}</presence>")
    own = again.sent()[0]
    # A new room, created by whoever enters first.
    assert own.find(".//{http://jabber.org/protocol/muc#user}status[@code='201']") is not None


def test_a_refused_delete_destroys_nothing(path: str) -> None:
    h, storage = persistent_room(path)
    storage.refuse("DELETE FROM muc_rooms")
    destroy(h)
    # The occupants hear nothing; the owner hears why.
    h.expect(
        f"""<iq from='{ROOM}' id='begone' to='{CRONE}' type='error'><query xmlns='{OWNER}'>
          <destroy><reason>Macbeth doth come.</reason></destroy></query>
          <error type='cancel'><internal-server-error {ERR}/>
            <text {ERR}>the room could not be destroyed; nothing changed</text></error></iq>"""
    )
    assert failures(h) == {"destroy": 1}
    # The room goes on.
    h.receive(f"<message from='{WICCA}' id='m' to='{ROOM}' type='groupchat'><body>Still here?</body></message>")
    assert [m.get("to") for m in h.sent()] == [CRONE, WICCA]
    # ... and is still stored.
    again = restarted(path)
    again.receive(f"<presence from='{WICCA}' to='{ROOM}/secondwitch'>{MUC_X}</presence>")
    own, history, _subject = again.sent()
    assert own.find(".//{http://jabber.org/protocol/muc#user}status[@code='201']") is None
    assert history.findtext("{jabber:component:accept}body") == "Still here?"
    assert again.component.router.loaded("coven").config.persistent
