"""Rooms carried on by another instance: live state in the database, one owner per room by lease (issue 15).

The SQLite tests are one instance that crashes and starts again on the same
file with ``live_state``. The PostgreSQL tests are two MUC services, A and B,
on one real database with ``[cluster]``, each in a `Harness` of its own (its
own connection, its own `task.Clock`): A serves a room, then ejabberd sends
the room's stanzas to B (here: the test feeds them to B), which takes the
room's lease, loads its live state and carries on, while A lets the room go
without a word.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from component.config import ClusterConfig, ConfigError, load_config
from component.stanza import stamp
from component.storage import Storage, open_storage
from component.storage.leases import LEASE_MIGRATIONS, holder
from component.testing import Harness, ImmediateStorage, assert_xml_equal
from services.muc.room import Room
from services.muc.service import MucService
from services.muc.tenure import room_key
from services.muc.testing import (
    CRONE,
    ERR,
    HAG,
    MUC_X,
    ROOM,
    WICCA,
    enter,
    immediate_storage,
    instant_room,
    muc_harness,
)
from tests.storage.postgres import (  # noqa: F401  (fixtures)
    Database,
    postgres_database_fixture,
    postgres_server_fixture,
)

PING = "<ping xmlns='urn:xmpp:ping'/>"
ERROR_NS = "jabber:component:accept"


def _groupchat(sender: str, body: str, msg_id: str) -> str:
    return f"<message from='{sender}' id='{msg_id}' to='{ROOM}' type='groupchat'><body>{body}</body></message>"


def _reflections(nick: str, body: str, msg_id: str, *recipients: str) -> list[str]:
    return [
        f"""<message from='{ROOM}/{nick}' id='{msg_id}' to='{to}' type='groupchat'><body>{body}</body>
          <stanza-id xmlns='urn:xmpp:sid:0' id='*' by='{ROOM}'/></message>"""
        for to in recipients
    ]


def _self_ping_answered(h: Harness, sender: str, nick: str) -> None:
    h.receive(f"<iq from='{sender}' id='sp' to='{ROOM}/{nick}' type='get'>{PING}</iq>")
    h.expect(f"<iq from='{ROOM}/{nick}' id='sp' to='{sender}' type='result'/>")


def _not_joined(nick: str, sender: str) -> str:
    # XEP-0410 §3.2: a client the room does not know learns it must join again.
    return (
        f"""<iq from='{ROOM}/{nick}' id='sp' to='{sender}' type='error'>{PING}
          <error type='cancel' by='{ROOM}'><not-acceptable {ERR}/><text {ERR}>*</text></error></iq>"""
    )


# -- one instance, live state on SQLite -------------------------------------------


def test_occupants_of_a_crashed_instance_are_still_in_after_its_restart(tmp_path) -> None:
    path = str(tmp_path / "rooms.sqlite")
    first = muc_harness({"live_state": True}, storage=immediate_storage(ImmediateStorage(path)))
    instant_room(first, ROOM, CRONE, "firstwitch")
    enter(first, ROOM, "secondwitch", WICCA)
    # The process dies (kill -9): nothing is said to anyone. A new one starts on the same file.
    second = muc_harness({"live_state": True}, storage=immediate_storage(ImmediateStorage(path)))
    _self_ping_answered(second, WICCA, "secondwitch")
    second.receive(_groupchat(CRONE, "Thrice the brinded cat hath mew'd.", "m1"))
    second.expect(*_reflections("firstwitch", "Thrice the brinded cat hath mew'd.", "m1", CRONE, WICCA))
    second.receive(f"<iq from='{HAG}' id='sp' to='{ROOM}/secondwitch' type='get'>{PING}</iq>")
    second.expect(_not_joined("secondwitch", HAG))
    # A newcomer sees both, the crone still owner and moderator.
    second.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    sent = second.sent()
    assert [s.get("from") for s in sent[:2]] == [f"{ROOM}/firstwitch", f"{ROOM}/secondwitch"]
    item = sent[0].find("{http://jabber.org/protocol/muc#user}x/{http://jabber.org/protocol/muc#user}item")
    assert (item.get("affiliation"), item.get("role")) == ("owner", "moderator")


def test_a_leave_is_stored_before_the_restart(tmp_path) -> None:
    path = str(tmp_path / "rooms.sqlite")
    first = muc_harness({"live_state": True}, storage=immediate_storage(ImmediateStorage(path)))
    instant_room(first, ROOM, CRONE, "firstwitch")
    enter(first, ROOM, "secondwitch", WICCA)
    first.receive(f"<presence from='{WICCA}' to='{ROOM}/secondwitch' type='unavailable'/>")
    first.sent()
    second = muc_harness({"live_state": True}, storage=immediate_storage(ImmediateStorage(path)))
    second.receive(f"<iq from='{WICCA}' id='sp' to='{ROOM}/secondwitch' type='get'>{PING}</iq>")
    second.expect(_not_joined("secondwitch", WICCA))
    second.receive(_groupchat(CRONE, "Fair is foul.", "m2"))
    second.expect(*_reflections("firstwitch", "Fair is foul.", "m2", CRONE))


def test_the_subject_and_the_lock_of_a_new_room_survive_the_restart(tmp_path) -> None:
    path = str(tmp_path / "rooms.sqlite")
    first = muc_harness({"live_state": True, "lock_seconds": 300}, storage=immediate_storage(ImmediateStorage(path)))
    instant_room(first, ROOM, CRONE, "firstwitch")
    first.receive(f"<message from='{CRONE}' id='s1' to='{ROOM}' type='groupchat'><subject>Fire Burn</subject></message>")
    first.clock.advance(100)
    enter(first, "darkcave@chat.shakespeare.lit", "crone", CRONE)  # created, locked until configured
    second = muc_harness({"live_state": True, "lock_seconds": 300}, storage=immediate_storage(ImmediateStorage(path)))
    second.clock.advance(250)  # both clocks tell the same time: 150 seconds after the crash
    second.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    last = second.sent()[-1]
    assert_xml_equal(
        last,
        f"""<message from='{ROOM}/firstwitch' to='{HAG}' type='groupchat'><subject>Fire Burn</subject>
          <delay xmlns='urn:xmpp:delay' from='{ROOM}' stamp='{stamp(0)}'/></message>""",
    )
    # The new room is still locked to anyone but its owner (§7.2.6)...
    second.receive(f"<presence from='{HAG}' to='darkcave@chat.shakespeare.lit/hag'>{MUC_X}</presence>")
    assert second.sent()[0].find(f"{{{ERROR_NS}}}error/{{urn:ietf:params:xml:ns:xmpp-stanzas}}item-not-found") is not None
    # ...and destroyed when the 300 seconds from its creation (at 100) run out, at 400.
    second.clock.advance(149)
    second.receive(f"<iq from='{WICCA}' id='sp' to='darkcave@chat.shakespeare.lit/crone' type='get'>{PING}</iq>")
    second.expect(f"<iq from='darkcave@chat.shakespeare.lit/crone' id='sp' to='{WICCA}' type='error'>{PING}"
                  f"<error type='cancel' by='darkcave@chat.shakespeare.lit'><not-acceptable {ERR}/><text {ERR}>*</text>"
                  "</error></iq>")
    second.clock.advance(2)
    (gone,) = second.sent()
    assert (gone.get("to"), gone.get("type")) == (CRONE, "unavailable")


def test_without_live_state_a_restart_forgets_the_occupants(tmp_path) -> None:
    path = str(tmp_path / "rooms.sqlite")
    first = muc_harness(storage=immediate_storage(ImmediateStorage(path)))
    instant_room(first, ROOM, CRONE, "firstwitch")
    second = muc_harness(storage=immediate_storage(ImmediateStorage(path)))
    second.receive(f"<iq from='{CRONE}' id='sp' to='{ROOM}/firstwitch' type='get'>{PING}</iq>")
    second.expect(
        f"""<iq from='{ROOM}/firstwitch' id='sp' to='{CRONE}' type='error'>{PING}
          <error type='cancel'><item-not-found {ERR}/><text {ERR}>*</text></error></iq>"""
    )


def test_cluster_with_sqlite_is_refused(tmp_path) -> None:
    config = tmp_path / "netherfield.toml"
    config.write_text(
        "[storage]\nurl = 'sqlite:///rooms.sqlite'\n[cluster]\ninstance = 'muc-1'\n"
        "[components.'chat.shakespeare.lit']\nsecret = 's'\nservices = ['muc']\n"
    )
    with pytest.raises(ConfigError, match="SQLite database, which one process only can use"):
        load_config(str(config))


# -- two instances on PostgreSQL ----------------------------------------------------


@pytest_twisted.async_yield_fixture
async def storage(postgres_database: Database) -> AsyncIterator[Storage]:
    opened = await open_storage(
        postgres_database.url, migrations=[*MucService.migrations, LEASE_MIGRATIONS], password=postgres_database.password
    )
    yield opened
    await opened.close()


async def _instance(storage: Storage, name: str) -> Harness:
    h = Harness(
        "chat.shakespeare.lit", (MucService, {"occupant_id": False}), storage=storage,
        cluster=ClusterConfig(instance=name),
    )
    await h.started
    return h


def _muc(h: Harness) -> MucService:
    service = h.component.services[0]
    assert isinstance(service, MucService)
    return service


async def _settle(h: Harness) -> None:
    """Let the instance's database round trips finish (they run in threads)."""
    await _muc(h).drained()
    await deferLater(reactor, 0, lambda: None)
    await _muc(h).drained()


async def _receive(h: Harness, xml: str) -> None:
    h.receive(xml)
    await _settle(h)


async def _until(condition, what: str) -> None:
    for _ in range(200):
        if condition():
            return
        await deferLater(reactor, 0.02, lambda: None)
    raise AssertionError(f"timed out waiting until {what}")


@pytest_twisted.async_yield_fixture
async def pair(storage: Storage) -> AsyncIterator[tuple[Harness, Harness]]:
    """Instance A serving the coven with the crone (owner) and wiccarocks; instance B idle."""
    a = await _instance(storage, "muc-a")
    b = await _instance(storage, "muc-b")
    await _receive(a, f"<presence from='{CRONE}' to='{ROOM}/firstwitch'>{MUC_X}</presence>")
    await _receive(
        a,
        f"<iq from='{CRONE}' to='{ROOM}' type='set' id='create'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        "<x xmlns='jabber:x:data' type='submit'/></query></iq>",
    )
    await _receive(a, f"<presence from='{WICCA}' to='{ROOM}/secondwitch'>{MUC_X}</presence>")
    a.sent()
    yield a, b
    for h in (a, b):
        leases = _muc(h).leases
        if leases is not None:
            await leases.stop()


@pytest_twisted.ensureDeferred
async def test_a_room_taken_over_keeps_its_occupants_and_the_old_instance_says_nothing(
    pair: tuple[Harness, Harness], storage: Storage
) -> None:
    a, b = pair
    key = room_key(ROOM)
    # ejabberd sends the room to B now: B takes it over with the occupants A left.
    await _receive(b, _groupchat(WICCA, "Round about the cauldron go.", "m1"))
    b.expect(*_reflections("secondwitch", "Round about the cauldron go.", "m1", CRONE, WICCA))
    await _receive(b, _groupchat(CRONE, "In the poison'd entrails throw.", "m2"))
    b.expect(*_reflections("firstwitch", "In the poison'd entrails throw.", "m2", CRONE, WICCA))
    _self_ping_answered(b, CRONE, "firstwitch")
    b.receive(f"<iq from='{HAG}' id='sp' to='{ROOM}/firstwitch' type='get'>{PING}</iq>")
    b.expect(_not_joined("firstwitch", HAG))
    found = await storage.transaction(holder, key)
    assert found is not None
    lease, live = found
    assert (lease.owner, lease.epoch, live) == (_muc(b).leases.owner, 2, True)  # type: ignore[union-attr]

    # A hears of it (NOTIFY) and lets the room go without a word to anyone.
    await _until(lambda: a.component.router.loaded("coven") is None, "A let the room go")
    a.expect_nothing()
    assert _muc(a).leases.held(key) is None  # type: ignore[union-attr]


@pytest_twisted.ensureDeferred
async def test_a_stale_instance_cannot_write_and_announces_nothing(pair: tuple[Harness, Harness]) -> None:
    a, b = pair
    room = a.component.router.loaded("coven")
    assert isinstance(room, Room)
    # A is paused (its LISTEN never delivers) while B takes the room.
    assert _muc(a).leases is not None
    a_leases = _muc(a).leases
    await a_leases._listening.stop()  # type: ignore[union-attr]  # the notice of the takeover never comes
    await _receive(b, _groupchat(WICCA, "Double, double toil and trouble.", "m1"))
    b.sent()
    # A, woken, still thinks it serves the room: a newcomer's join is a write, fenced, and fails.
    await _receive(a, f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    a.expect(
        f"""<presence from='{ROOM}/thirdwitch' to='{HAG}' type='error'>{MUC_X}
          <error type='wait' by='{ROOM}'><remote-server-timeout {ERR}/><text {ERR}>*</text></error></presence>"""
    )
    assert room.dropped and a.component.router.loaded("coven") is None
    # The hag tries again and reaches B, where nothing of A's attempt is stored.
    await _receive(b, f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    sent = b.sent()
    # Entering anew: the two others' presences, hers to each, her own (110), B's history, the subject.
    assert [(s.get("from"), s.get("to")) for s in sent[:2]] == [(f"{ROOM}/firstwitch", HAG), (f"{ROOM}/secondwitch", HAG)]
    assert [s.findtext("{jabber:component:accept}body") for s in sent[5:]] == ["Double, double toil and trouble.", None]


@pytest_twisted.ensureDeferred
async def test_presence_changes_and_leaves_on_one_instance_are_what_the_next_one_loads(
    pair: tuple[Harness, Harness],
) -> None:
    a, b = pair
    await _receive(a, f"<presence from='{WICCA}' to='{ROOM}/secondwitch'><show>away</show></presence>")
    await _receive(a, f"<presence from='{CRONE}' to='{ROOM}/hecate'/>")  # a nick change
    a.sent()
    await _receive(b, f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    sent = b.sent()
    assert [s.get("from") for s in sent[:2]] == [f"{ROOM}/secondwitch", f"{ROOM}/hecate"]
    assert sent[0].findtext("{jabber:component:accept}show") == "away"
    await _until(lambda: a.component.router.loaded("coven") is None, "A let the room go")
    await _receive(b, f"<presence from='{WICCA}' to='{ROOM}/secondwitch' type='unavailable'/>")
    b.sent()
    # And back to A (ejabberd's slot came back to it): it takes the room again.
    await _receive(a, _groupchat(HAG, "Eye of newt.", "m3"))
    a.expect(*_reflections("thirdwitch", "Eye of newt.", "m3", CRONE, HAG))


@pytest_twisted.ensureDeferred
async def test_stopping_an_instance_keeps_the_occupants_and_releases_the_leases(
    pair: tuple[Harness, Harness], storage: Storage
) -> None:
    a, b = pair
    a.component.say_goodbye()
    a.expect_nothing()  # nobody is told the room goes: they stay in it for the next instance
    await a.component.stop_services()
    found = await storage.transaction(holder, room_key(ROOM))
    assert found is not None and found[1] is False  # released: free for anyone at once
    await _receive(b, _groupchat(WICCA, "Fillet of a fenny snake.", "m4"))
    b.expect(*_reflections("secondwitch", "Fillet of a fenny snake.", "m4", CRONE, WICCA))


@pytest_twisted.ensureDeferred
async def test_a_stale_instance_archives_nothing_and_reflects_nothing(pair: tuple[Harness, Harness], storage: Storage) -> None:
    a, b = pair
    # The room becomes persistent: its messages are archived before they are reflected.
    await _receive(
        a,
        f"<iq from='{CRONE}' to='{ROOM}' type='set' id='p'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig"
        "</value></field><field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query></iq>",
    )
    a.sent()
    await _muc(a).leases._listening.stop()  # type: ignore[union-attr]  # A hears nothing of what follows
    await _receive(b, _groupchat(CRONE, "By the pricking of my thumbs,", "m1"))
    b.expect(*_reflections("firstwitch", "By the pricking of my thumbs,", "m1", CRONE, WICCA))
    await _receive(a, _groupchat(WICCA, "Something wicked this way comes.", "m2"))
    a.expect(
        f"""<message from='{ROOM}' to='{WICCA}' id='m2' type='error'><body>Something wicked this way comes.</body>
          <error type='wait' by='{ROOM}'><remote-server-timeout {ERR}/><text {ERR}>*</text></error></message>"""
    )
    assert a.component.router.loaded("coven") is None
    bodies = await storage.fetchall("SELECT stanza FROM muc_history WHERE room = 'coven' ORDER BY seq")
    assert [b"wicked" in row[0].encode() for row in bodies] == [False]


@pytest_twisted.ensureDeferred
async def test_the_application_starts_the_leases_before_the_link_and_gives_them_back_at_shutdown(
    tmp_path, postgres_database: Database
) -> None:
    from component.app import Netherfield
    from tests.integration.servers import free_port

    path = tmp_path / "netherfield.toml"
    path.write_text(
        f"[storage]\nurl = '{postgres_database.url}'\npassword = '{postgres_database.password}'\n"
        "[cluster]\ninstance = 'muc-1'\nlease_seconds = 30\n"
        f"[components.'chat.shakespeare.lit']\nport = {free_port()}\nsecret = 's'\nservices = ['muc']\n"
    )
    app = Netherfield(load_config(str(path)))
    app.startService()
    await _until(lambda: app.connectors[0].running, "the connection is being made")
    muc = app.components[0].services[0]
    assert isinstance(muc, MucService) and muc.leases is not None
    assert muc.leases.owner.startswith("muc-1/") and muc.leases.seconds == 30
    # A room is taken under its lease as soon as a stanza for it arrives.
    lease = await muc.leases.acquire(room_key(ROOM), take=True)
    leases = muc.leases
    await app.stopService()
    assert muc.leases is None and leases.held(room_key(ROOM)) is None
    check = await open_storage(postgres_database.url, password=postgres_database.password)
    try:
        found = await check.transaction(holder, room_key(ROOM))
    finally:
        await check.close()
    assert found == (lease, False)


@pytest_twisted.ensureDeferred
async def test_a_stale_instance_cannot_retract_an_archived_message(pair: tuple[Harness, Harness], storage: Storage) -> None:
    a, b = pair
    await _receive(
        a,
        f"<iq from='{CRONE}' to='{ROOM}' type='set' id='p'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        "<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_persistentroom'><value>1</value></field>"
        "</x></query></iq>",
    )
    await _receive(a, _groupchat(WICCA, "DM me for free magic potions!", "m1"))
    stanza_id = a.sent()[-1].find("{urn:xmpp:sid:0}stanza-id").get("id")
    await _muc(a).leases._listening.stop()  # type: ignore[union-attr]  # A hears nothing of the takeover
    await _receive(b, _groupchat(CRONE, "Hover through the fog.", "m2"))
    b.sent()
    # XEP-0425: the crone asks A, which still thinks it serves the room, to retract the message.
    await _receive(
        a,
        f"""<iq type='set' from='{CRONE}' to='{ROOM}' id='retract-1'>
          <moderate id='{stanza_id}' xmlns='urn:xmpp:message-moderate:1'><retract xmlns='urn:xmpp:message-retract:1'/>
          </moderate></iq>""",
    )
    sent: list = []
    await _until(lambda: bool(sent.extend(a.sent()) or sent), "A answers")  # its archive look-up is not a write
    (reply,) = sent
    assert reply.get("type") == "error"
    assert reply.find(f"{{{ERROR_NS}}}error/{{urn:ietf:params:xml:ns:xmpp-stanzas}}remote-server-timeout") is not None
    assert a.component.router.loaded("coven") is None
    rows = await storage.fetchall("SELECT stanza FROM muc_history WHERE room = 'coven' AND stanza_id = ?", (stanza_id,))
    assert [b"potions" in row[0].encode() for row in rows] == [True]
