"""Persistent rooms survive restarts; temporary rooms vanish; rooms load lazily and unload when idle.

Most tests run the real SQL of the MUC store on an in-memory SQLite database
that answers at once; the last ones run it on a SQLite file through the
threaded storage the application uses.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted

from component.storage import Migrations, open_storage, schema_version
from component.testing import NO_PINGS, Harness, LogCapture
from services.muc.service import MucService
from services.muc.store import MUC_MIGRATIONS, MucStore
from services.muc.testing import (
    CRONE,
    HAG,
    MUC_X,
    ROOM,
    WICCA,
    FailingStorage,
    HeldStorage,
    enter,
    immediate_storage,
    instant_room,
    muc_harness,
)
from tests.storage.postgres import postgres_database_fixture, postgres_server_fixture  # noqa: F401  (fixtures)
from tests.unit.test_storage import Backend, backend  # noqa: F401  (fixtures)

PERSISTENT = "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"


def owner_set(h, body: str, id: str = "o") -> None:
    h.receive(
        f"<iq from='{CRONE}' id='{id}' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>{body}</query></iq>"
    )


def admin_set(h, items: str, id: str = "a") -> None:
    h.receive(
        f"<iq from='{CRONE}' id='{id}' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#admin'>{items}</query></iq>"
    )


def build_persistent_room(h) -> None:
    instant_room(h, ROOM, CRONE, "firstwitch")
    owner_set(
        h,
        "<x xmlns='jabber:x:data' type='submit'>"
        f"{PERSISTENT}<field var='muc#roomconfig_roomname'><value>A Dark Cave</value></field>"
        "<field var='muc#roomconfig_membersonly'><value>1</value></field></x>",
    )
    admin_set(h, "<item affiliation='member' jid='wiccarocks@shakespeare.lit'/>")
    admin_set(h, "<item affiliation='outcast' jid='hag66@shakespeare.lit'><reason>Treason</reason></item>", "b")
    h.receive(f"<message from='{CRONE}' to='{ROOM}' type='groupchat' id='s'><subject>Fire Burn</subject></message>")
    h.receive(f"<message from='{CRONE}' to='{ROOM}' type='groupchat' id='m1'><body>Double, double</body></message>")
    h.receive(f"<message from='{CRONE}' to='{ROOM}' type='groupchat' id='m2'><body>toil and trouble</body></message>")
    h.sent()


def check_restored(h) -> None:
    assert h.component.router.loaded("coven") is None  # nothing loads before it is addressed
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/secondwitch'>{MUC_X}</presence>")
    sent = h.sent()
    own, first, second, subject = sent
    assert own.get("from") == f"{ROOM}/secondwitch"
    item = own.find(".//{http://jabber.org/protocol/muc#user}item")
    assert (item.get("affiliation"), item.get("role")) == ("member", "participant")
    assert [m.findtext("{jabber:component:accept}body") for m in (first, second)] == ["Double, double", "toil and trouble"]
    assert first.find("{urn:xmpp:delay}delay") is not None
    assert first.get("from") == f"{ROOM}/firstwitch"
    assert subject.findtext("{jabber:component:accept}subject") == "Fire Burn"
    assert subject.get("from") == f"{ROOM}/firstwitch"
    room = h.component.router.loaded("coven")
    assert room.config.name == "A Dark Cave" and room.config.members_only and room.config.persistent
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    assert h.sent()[0].find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}forbidden") is not None
    h.receive(
        f"<iq from='{CRONE}' id='l' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/muc#admin'>"
        "<item affiliation='outcast'/></query></iq>"
    )
    h.expect(
        f"""<iq from='{ROOM}' id='l' to='{CRONE}' type='result'><query xmlns='http://jabber.org/protocol/muc#admin'>
          <item affiliation='outcast' jid='hag66@shakespeare.lit'><reason>Treason</reason></item></query></iq>"""
    )


def test_persistent_room_survives_a_restart() -> None:
    storage = immediate_storage()
    first = muc_harness(storage=storage)
    build_persistent_room(first)
    # The process dies: nothing is said, nothing else is written.
    second = muc_harness(storage=storage)
    check_restored(second)


def test_an_affiliation_row_that_is_not_a_jid_is_skipped_with_a_warning_naming_it() -> None:
    storage = immediate_storage()
    first = muc_harness(storage=storage)
    build_persistent_room(first)
    # Rows another version (or a hand-made import) left behind: an owner and a member.
    store = MucStore(storage)
    store.set_affiliation("coven", "hecate@@shakespeare.lit", "owner")
    store.set_affiliation("coven", "witch@shake speare.lit", "member")
    with LogCapture() as logs:
        second = muc_harness(storage=storage)
        second.result_of(second.started)  # the service starts: the bad owner is not counted
        check_restored(second)
    assert [line for line in logs.messages() if "skipped" in line] == [
        "muc_affiliations: skipped the row (room='coven', jid='hecate@@shakespeare.lit'): "
        "'hecate@@shakespeare.lit' is not a valid JID: Invalid character '@'",
        "muc_affiliations: skipped the row (room='coven', jid='hecate@@shakespeare.lit'): "
        "'hecate@@shakespeare.lit' is not a valid JID: Invalid character '@'",
        "muc_affiliations: skipped the row (room='coven', jid='witch@shake speare.lit'): "
        "'witch@shake speare.lit' is not a valid JID: Invalid character ' '",
    ]


ERR = "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'"
DISCO_INFO = "<query xmlns='http://jabber.org/protocol/disco#info'/>"


def ask_to_enter_and_about(h) -> None:
    h.receive(f"<presence from='{HAG}' id='p1' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    h.receive(f"<iq from='{HAG}' id='i1' to='{ROOM}' type='get'>{DISCO_INFO}</iq>")


def test_a_room_the_database_cannot_load_says_try_again() -> None:
    """A load the database cannot serve now (locked, down) is a temporary condition (RFC 6120 §8.3.2): type wait; the next try loads the room."""
    storage = immediate_storage(FailingStorage())
    build_persistent_room(muc_harness(storage=storage))
    h = muc_harness(storage=storage)
    storage.refuse("SELECT", busy=True)
    with LogCapture() as logs:
        ask_to_enter_and_about(h)
    wait = (f"<error type='wait'><internal-server-error {ERR}/>"
            f"<text {ERR}>the database cannot be read now; try again shortly</text></error>")
    h.expect(
        f"<presence from='{ROOM}/thirdwitch' id='p1' to='{HAG}' type='error'>{MUC_X}{wait}</presence>",
        f"<iq from='{ROOM}' id='i1' to='{HAG}' type='error'>{DISCO_INFO}{wait}</iq>",
    )
    assert [line for line in logs.messages() if "loading" in line] == ["loading coven failed"] * 2
    storage.accept()
    check_restored(h)


def test_a_load_the_database_refuses_as_it_stands_is_no_temporary_failure() -> None:
    """A statement the database refuses for what it is (here a column renamed under the service) fails again on a retry: type cancel."""
    storage = immediate_storage()
    build_persistent_room(muc_harness(storage=storage))
    h = muc_harness(storage=storage)
    storage.execute("ALTER TABLE muc_rooms RENAME COLUMN config TO settings")
    with LogCapture():
        ask_to_enter_and_about(h)
    cancel = f"<error type='cancel'><internal-server-error {ERR}/></error>"
    h.expect(
        f"<presence from='{ROOM}/thirdwitch' id='p1' to='{HAG}' type='error'>{MUC_X}{cancel}</presence>",
        f"<iq from='{ROOM}' id='i1' to='{HAG}' type='error'>{DISCO_INFO}{cancel}</iq>",
    )


def test_a_room_that_cannot_be_read_back_is_no_temporary_failure() -> None:
    """A stored room its own code cannot read (a bug, a row edited by hand) is not worth a retry: type cancel."""
    storage = immediate_storage()
    build_persistent_room(muc_harness(storage=storage))
    h = muc_harness(storage=storage)
    storage.execute("UPDATE muc_rooms SET config = 'not json' WHERE node = 'coven'")
    with LogCapture():
        ask_to_enter_and_about(h)
    cancel = f"<error type='cancel'><internal-server-error {ERR}/></error>"
    h.expect(
        f"<presence from='{ROOM}/thirdwitch' id='p1' to='{HAG}' type='error'>{MUC_X}{cancel}</presence>",
        f"<iq from='{ROOM}' id='i1' to='{HAG}' type='error'>{DISCO_INFO}{cancel}</iq>",
    )


def test_public_persistent_rooms_are_listed_before_they_load() -> None:
    storage = immediate_storage()
    first = muc_harness(storage=storage)
    instant_room(first, ROOM, CRONE, "firstwitch")
    owner_set(first, f"<x xmlns='jabber:x:data' type='submit'>{PERSISTENT}</x>")
    second = muc_harness(storage=storage)
    second.receive(f"<iq from='{HAG}' id='i' to='chat.shakespeare.lit' type='get'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
    second.expect(
        f"""<iq from='chat.shakespeare.lit' id='i' to='{HAG}' type='result'><query xmlns='http://jabber.org/protocol/disco#items'>
          <item jid='{ROOM}' name='coven'/></query></iq>"""
    )


def test_an_empty_persistent_room_unloads_when_idle_and_loads_again() -> None:
    h = muc_harness({"idle_unload_seconds": 30})
    instant_room(h, ROOM, CRONE, "firstwitch")
    owner_set(h, f"<x xmlns='jabber:x:data' type='submit'>{PERSISTENT}</x>")
    h.receive(f"<presence from='{CRONE}' to='{ROOM}/firstwitch' type='unavailable'/>")
    h.sent()
    assert h.component.router.loaded("coven") is not None
    h.clock.advance(31)
    assert h.component.router.loaded("coven") is None
    enter(h, ROOM, "secondwitch", WICCA)
    assert h.component.router.loaded("coven").occupants.by_nick("secondwitch") is not None


def test_history_from_before_a_room_became_persistent_is_kept() -> None:
    storage = immediate_storage()
    first = muc_harness(storage=storage)
    instant_room(first, ROOM, CRONE, "firstwitch")
    first.receive(f"<message from='{CRONE}' to='{ROOM}' type='groupchat' id='m0'><body>Before</body></message>")
    owner_set(first, f"<x xmlns='jabber:x:data' type='submit'>{PERSISTENT}</x>")
    second = muc_harness(storage=storage)
    second.receive(f"<presence from='{WICCA}' to='{ROOM}/secondwitch'>{MUC_X}</presence>")
    history = second.sent()[-2]
    assert history.findtext("{jabber:component:accept}body") == "Before"
    assert history.get("from") == f"{ROOM}/firstwitch"
    assert history.find("{urn:xmpp:delay}delay") is not None


def test_a_room_made_temporary_is_forgotten_by_storage() -> None:
    storage = immediate_storage()
    h = muc_harness(storage=storage)
    instant_room(h, ROOM, CRONE, "firstwitch")
    owner_set(h, f"<x xmlns='jabber:x:data' type='submit'>{PERSISTENT}</x>")
    owner_set(h, "<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_persistentroom'><value>0</value></field></x>")
    h.sent()
    found = []
    MucStore(storage).load_room("coven").addCallback(found.append)
    assert found == [None]


def test_destroyed_room_is_gone_from_storage() -> None:
    storage = immediate_storage()
    h = muc_harness(storage=storage)
    build_persistent_room(h)
    owner_set(h, "<destroy/>", "d")
    h.sent()
    found = []
    MucStore(storage).load_room("coven").addCallback(found.append)
    assert found == [None]


def test_temporary_rooms_never_touch_storage() -> None:
    storage = immediate_storage()
    h = muc_harness(storage=storage)
    before = storage.transactions
    instant_room(h, ROOM, CRONE, "firstwitch")
    h.receive(f"<message from='{CRONE}' to='{ROOM}' type='groupchat' id='m'><body>hi</body></message>")
    h.receive(f"<message from='{CRONE}' to='{ROOM}' type='groupchat' id='s'><subject>s</subject></message>")
    # One read: the lookup of the room when it was first addressed.
    assert storage.transactions == before + 1


def test_shutdown_tells_occupants_with_332() -> None:
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    h.component.say_goodbye()
    h.expect(
        f"""<presence from='{ROOM}/firstwitch' to='{CRONE}' type='unavailable'>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' jid='{CRONE}' role='none'/><status code='110'/><status code='332'/></x>
        </presence>"""
    )


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'muc.db'}"


@pytest_twisted.ensureDeferred
async def test_restart_on_a_sqlite_file(database: str) -> None:
    storage = await open_storage(database, migrations=list(MucService.migrations))
    try:
        first = Harness("chat.shakespeare.lit", MucService, storage=storage)
        await first.started
        service = first.component.services[0]

        async def step(xml: str) -> None:
            first.receive(xml)
            await service.drained()

        # Every step waits for its writes, as the stanzas that acknowledge them do.
        for xml in _build_steps():
            await step(xml)
        first.sent()
        await service.drained()
    finally:
        await storage.close()
    storage = await open_storage(database, migrations=list(MucService.migrations))
    try:
        second = Harness("chat.shakespeare.lit", MucService, storage=storage)
        await second.started
        service = second.component.services[0]
        second.receive(f"<presence from='{WICCA}' to='{ROOM}/secondwitch'>{MUC_X}</presence>")
        await service.drained()
        own, message, subject = second.sent()
        assert own.find(".//{http://jabber.org/protocol/muc#user}item").get("affiliation") == "member"
        assert message.findtext("{jabber:component:accept}body") == "Double, double"
        assert subject.findtext("{jabber:component:accept}subject") == "Fire Burn"
    finally:
        await storage.close()


@pytest_twisted.ensureDeferred
async def test_acknowledged_writes_are_durable_before_the_acknowledgement(database: str) -> None:
    storage = await open_storage(database, migrations=list(MucService.migrations))
    try:
        h = Harness("chat.shakespeare.lit", MucService, storage=storage)
        await h.started
        service = h.component.services[0]
        for xml in _build_steps()[:2]:
            h.receive(xml)
            await service.drained()
        h.sent()
        h.receive(f"<message from='{CRONE}' to='{ROOM}' type='groupchat' id='s2'><subject>Now</subject></message>")
        assert h.sent() == []  # nothing is said before the write completes
        await service.drained()
        assert [m.get("to") for m in h.sent()] == [CRONE]
        record = await MucStore(storage).load_room("coven")
        assert record is not None and record.subject == "Now"
    finally:
        await storage.close()


def _build_steps() -> list[str]:
    return [
        f"<presence from='{CRONE}' to='{ROOM}/firstwitch'>{MUC_X}</presence>",
        f"<iq from='{CRONE}' id='o' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        f"<x xmlns='jabber:x:data' type='submit'>{PERSISTENT}</x></query></iq>",
        f"<iq from='{CRONE}' id='a' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#admin'>"
        "<item affiliation='member' jid='wiccarocks@shakespeare.lit'/></query></iq>",
        f"<message from='{CRONE}' to='{ROOM}' type='groupchat' id='s'><subject>Fire Burn</subject></message>",
        f"<message from='{CRONE}' to='{ROOM}' type='groupchat' id='m1'><body>Double, double</body></message>",
    ]


def test_payloads_with_non_ascii_names_survive_storage_and_presence_templates() -> None:
    storage = immediate_storage()
    first = muc_harness(storage=storage)
    instant_room(first, ROOM, CRONE, "firstwitch")
    owner_set(first, f"<x xmlns='jabber:x:data' type='submit'>{PERSISTENT}</x>")
    first.receive(
        f"<message from='{CRONE}' to='{ROOM}' type='groupchat' id='u1'>"
        "<body>x</body><café xmlns='urn:example:cafe'>crème</café></message>"
    )
    second = muc_harness(storage=storage)
    second.receive(
        f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}<thé xmlns='urn:example:cafe'>vert</thé></presence>"
    )
    history = second.sent()[-2]
    assert history.find("{urn:example:cafe}café").text == "crème"
    second.receive(f"<presence from='{WICCA}' to='{ROOM}/secondwitch'>{MUC_X}</presence>")
    hag = next(s for s in second.sent() if s.get("from") == f"{ROOM}/thirdwitch")
    assert hag.find("{urn:example:cafe}thé").text == "vert"


def test_stanzas_that_wait_for_the_database_are_sent_as_well_formed_xml() -> None:
    from lxml import etree
    from twisted.internet.testing import MemoryReactorClock, StringTransport

    from component.component import Component
    from component.connection import ComponentProtocol
    from component.storage.migrations import apply_migrations

    storage = HeldStorage()
    apply_migrations(storage, list(MucService.migrations))
    component = Component("chat.shakespeare.lit", keepalive=NO_PINGS, clock=MemoryReactorClock())
    component.add_service(MucService(component, {}))
    component.start_services(storage)
    protocol = ComponentProtocol(component, "s3cret")
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(
        b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' id='1'>"
        b"<handshake/>"
    )
    feed = protocol.dataReceived
    feed(f"<presence from='{CRONE}' to='{ROOM}/firstwitch'>{MUC_X}</presence>".encode())
    feed(
        f"<iq from='{CRONE}' to='{ROOM}' type='set' id='c'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        f"<x xmlns='jabber:x:data' type='submit'>{PERSISTENT}</x></query></iq>".encode()
    )
    feed(f"<presence from='{WICCA}' to='{ROOM}/secondwitch'>{MUC_X}</presence>".encode())
    transport.clear()
    storage.held = []
    feed(f"<message from='{CRONE}' to='{ROOM}' type='groupchat' id='s'><subject>Fire Burn</subject></message>".encode())
    feed(f"<message from='{WICCA}' to='{ROOM}' type='groupchat' id='g'><body>Double</body></message>".encode())
    storage.release()
    feed(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>".encode())
    written = transport.value()
    assert b"ns0:" not in written and b"<ns" not in written
    wrapped = b"<s xmlns='jabber:component:accept'>" + written + b"</s>"
    stanzas = list(etree.fromstring(wrapped))
    bodies = [s.findtext("{jabber:component:accept}body") for s in stanzas if s.get("to") == HAG]
    assert "Double" in bodies
    subject = "{jabber:component:accept}subject"
    subjects = [s.findtext(subject) for s in stanzas if s.get("to") == WICCA and s.find(subject) is not None]
    assert subjects == ["Fire Burn"]


def test_a_configuration_the_database_refused_does_not_take_effect() -> None:
    storage = immediate_storage(FailingStorage())
    h = muc_harness(storage=storage)
    instant_room(h, ROOM, CRONE, "firstwitch")
    owner_set(h, f"<x xmlns='jabber:x:data' type='submit'>{PERSISTENT}</x>")
    h.sent()
    storage.refuse()
    owner_set(
        h,
        "<x xmlns='jabber:x:data' type='submit'>"
        "<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>"
        "<field var='muc#roomconfig_roomsecret'><value>hunter2</value></field></x>",
        "p",
    )
    (reply,) = h.sent()
    assert reply.get("type") == "error"
    room = h.component.router.loaded("coven")
    assert not room.config.password_protected
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/secondwitch'>{MUC_X}</presence>")
    assert h.sent()[0].get("type") is None  # entered without a password


# -- the subject's time --------------------------------------------------------------------

#: 2023-11-14T22:13:20Z, when the subject was set.
SET_AT = 1_700_000_000.0
ENTER_SECONDWITCH = f"<presence from='{WICCA}' to='{ROOM}/secondwitch'>{MUC_X}</presence>"
SECONDWITCH_IS_IN = f"""<presence from='{ROOM}/secondwitch' to='{WICCA}'>
      <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' jid='{WICCA}' role='participant'/>
      <status code='110'/></x></presence>"""


async def _harness(storage) -> tuple[Harness, MucService]:
    h = Harness("chat.shakespeare.lit", (MucService, {"occupant_id": False}), storage=storage)
    await h.started
    return h, h.component.services[0]


async def _subject_set_at(storage, when: float) -> tuple[Harness, MucService]:
    """The firstwitch makes the room persistent and sets its subject, at ``when``."""
    first, service = await _harness(storage)
    first.clock.advance(when)
    for xml in [
        f"<presence from='{CRONE}' to='{ROOM}/firstwitch'/>",
        f"<iq from='{CRONE}' id='o' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        f"<x xmlns='jabber:x:data' type='submit'>{PERSISTENT}</x></query></iq>",
        f"<message from='{CRONE}' to='{ROOM}' type='groupchat' id='s'><subject>Fire Burn</subject></message>",
    ]:
        first.receive(xml)
        await service.drained()
    first.sent()
    return first, service


async def _newcomer_gets_the_subject_set_at_first(backend: Backend) -> None:  # noqa: F811
    """The process died; another starts an hour later on the same database, and a newcomer enters."""
    storage = await backend.open(MucService.migrations)
    try:
        second, service = await _harness(storage)
        second.clock.advance(SET_AT + 3600)
        second.receive(ENTER_SECONDWITCH)
        await service.drained()
        second.expect(
            SECONDWITCH_IS_IN,
            f"""<message from='{ROOM}/firstwitch' to='{WICCA}' type='groupchat'><subject>Fire Burn</subject>
                  <delay xmlns='urn:xmpp:delay' from='{ROOM}' stamp='2023-11-14T22:13:20Z'/></message>""",
        )
    finally:
        await storage.close()


@pytest_twisted.ensureDeferred
async def test_the_subject_says_when_it_was_set_after_a_restart(backend: Backend) -> None:  # noqa: F811
    """§7.2.16 with XEP-0203: the subject a newcomer gets is dated when it was set, by the room, as in Prosody."""
    storage = await backend.open(MucService.migrations)
    try:
        await _subject_set_at(storage, SET_AT)
    finally:
        await storage.close()
    await _newcomer_gets_the_subject_set_at_first(backend)


@pytest_twisted.ensureDeferred
async def test_the_same_subject_set_again_keeps_its_time_after_a_restart(backend: Backend) -> None:  # noqa: F811
    """§7.2.16: set again as it is by the same nick, the subject is not modified; stored, it keeps its first time."""
    storage = await backend.open(MucService.migrations)
    try:
        first, service = await _subject_set_at(storage, SET_AT)
        first.clock.advance(600)
        first.receive(f"<message from='{CRONE}' to='{ROOM}' type='groupchat' id='s2'><subject>Fire Burn</subject></message>")
        await service.drained()
        first.expect(
            f"""<message from='{ROOM}/firstwitch' id='s2' to='{CRONE}' type='groupchat'><subject>Fire Burn</subject>
                  <stanza-id xmlns='urn:xmpp:sid:0' by='{ROOM}' id='*'/></message>"""
        )
    finally:
        await storage.close()
    await _newcomer_gets_the_subject_set_at_first(backend)


@pytest_twisted.ensureDeferred
async def test_a_subject_stored_before_its_time_was_comes_back_undated(backend: Backend) -> None:  # noqa: F811
    older = await open_storage(
        backend.url, migrations=[Migrations("muc", MUC_MIGRATIONS.steps[:3])], password=backend.password
    )
    try:
        await older.execute(
            "INSERT INTO muc_rooms (node, config, subject, subject_from, created_at)"
            " VALUES ('coven', '{\"persistent\": true}', 'Fire Burn', 'firstwitch', 1)"
        )
    finally:
        await older.close()
    storage = await backend.open(MucService.migrations)
    try:
        assert await schema_version(storage, "muc") == MUC_MIGRATIONS.version
        h, service = await _harness(storage)
        h.receive(ENTER_SECONDWITCH)
        await service.drained()
        h.expect(
            SECONDWITCH_IS_IN,
            f"<message from='{ROOM}/firstwitch' to='{WICCA}' type='groupchat'><subject>Fire Burn</subject></message>",
        )
    finally:
        await storage.close()
