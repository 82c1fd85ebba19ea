"""A room's changes are stored before they are announced; a refused write announces nothing.

The database refuses statements on demand (:class:`FailingStorage`, on a
SQLite file); what survived is checked by building a new service on the
same file, as a restart would.
"""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.logger import formatEvent, globalLogPublisher

from component.config import ConfigError
from component.jid import parse_jid
from component.stanza import Stanza
from component.testing import Harness, parse_stanzas
from services.muc.store import MucStore
from services.muc.testing import (
    CRONE,
    ERR,
    HAG,
    MUC_X,
    ROOM,
    WICCA,
    FailingStorage,
    HeldStorage,
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


@pytest.fixture(autouse=True)
def no_tracebacks() -> Iterator[None]:
    """No test here may log a failure: no "Unhandled error in Deferred", no handler crash."""
    failures: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        if "log_failure" in event:
            failures.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    yield
    gc.collect()  # a Deferred dropped with an unhandled failure logs it when collected
    globalLogPublisher.removeObserver(observe)
    assert failures == []


@pytest.fixture
def logged() -> Iterator[list[str]]:
    """The lines the MUC logs about refused writes."""
    lines: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_namespace") == "services.muc.writes":
            lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)


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
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' jid='{CRONE}' role='none'/>
            <destroy><reason>Macbeth doth come.</reason></destroy><status code='110'/></x></presence>""",
        f"""<presence from='{ROOM}/secondwitch' to='{WICCA}' type='unavailable'>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' jid='{WICCA}' role='none'/>
            <destroy><reason>Macbeth doth come.</reason></destroy><status code='110'/></x></presence>""",
        f"<iq from='{ROOM}' id='begone' to='{CRONE}' type='result'/>",
    )
    again = restarted(path)
    # The name is a tombstone for a while (Prosody's 31 days), across the restart.
    again.receive(f"<presence from='{WICCA}' to='{ROOM}/secondwitch'>{MUC_X}</presence>")
    assert again.sent()[0].find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}gone") is not None
    again.clock.advance(31 * 86400 + 1)
    again.receive(f"<presence from='{WICCA}' to='{ROOM}/secondwitch'>{MUC_X}</presence>")
    own = again.sent()[0]
    # A new room, created by whoever enters first.
    assert own.find(".//{http://jabber.org/protocol/muc#user}status[@code='201']") is not None


@pytest.mark.parametrize("refused", ["DELETE FROM muc_rooms", "INSERT INTO muc_tombstones"])
def test_a_refused_delete_destroys_nothing(path: str, refused: str) -> None:
    """The delete and the tombstone left in the room's place are one transaction: neither, or both."""
    h, storage = persistent_room(path)
    storage.refuse(refused)
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


# -- history -----------------------------------------------------------------------


def say(h: Harness, text: str, id: str = "m", sender: str = WICCA) -> None:
    h.receive(f"<message from='{sender}' id='{id}' to='{ROOM}' type='groupchat'><body>{text}</body></message>")


def reflections(text: str, id: str = "m") -> list[str]:
    return [
        f"""<message from='{ROOM}/secondwitch' id='{id}' to='{to}' type='groupchat'><body>{text}</body>
          <stanza-id xmlns='urn:xmpp:sid:0' id='*' by='{ROOM}'/></message>"""
        for to in (CRONE, WICCA)
    ]


def test_a_message_is_reflected_once_archived(path: str) -> None:
    storage = immediate_storage(HeldStorage(path))
    h = muc_harness(storage=storage)
    instant_room(h, ROOM, CRONE, "firstwitch")
    configure(h, PERSISTENT)
    enter(h, ROOM, "secondwitch", WICCA)
    storage.held = []
    say(h, "Thrice the brinded cat hath mewed.")
    h.expect_nothing()
    storage.release()
    h.expect(*reflections("Thrice the brinded cat hath mewed."))
    again = restarted(path)
    again.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    bodies = [m.findtext("{jabber:component:accept}body") for m in again.sent()]
    assert "Thrice the brinded cat hath mewed." in bodies


def test_a_message_the_archive_refuses_is_not_reflected(path: str, logged: list[str]) -> None:
    h, storage = persistent_room(path)
    say(h, "Thrice", "m1")
    h.sent()
    storage.refuse("INSERT INTO muc_history")
    say(h, "Fillet of a fenny snake", "m2")
    # Nobody sees it, not even the sender: only the error.
    h.expect(
        f"""<message from='{ROOM}' id='m2' to='{WICCA}' type='error'><body>Fillet of a fenny snake</body>
          <error type='wait'><resource-constraint {ERR}/>
            <text {ERR}>the message could not be archived, so it was not sent</text></error></message>"""
    )
    say(h, "In the cauldron boil and bake", "m3")
    assert [m.get("type") for m in h.sent()] == ["error"]
    assert failures(h) == {"history": 2}
    # One line for the room in a minute, however many messages fail.
    assert len(logged) == 1 and "coven@chat.shakespeare.lit" in logged[0] and "history" in logged[0]
    h.clock.advance(61)
    say(h, "Eye of newt", "m4")
    h.sent()
    assert len(logged) == 2 and "1 more failed" in logged[1]
    # The database takes writes again: so does the room.
    storage.accept()
    say(h, "and toe of frog", "m5")
    h.expect(*reflections("and toe of frog", "m5"))
    # Who enters now gets the messages that were archived, and only those.
    enter_bodies = ["Thrice", "and toe of frog"]
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    assert [m.findtext("{jabber:component:accept}body") for m in h.sent() if m.tag.endswith("message")][:2] == enter_bodies
    again = restarted(path)
    again.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    bodies = [m.findtext("{jabber:component:accept}body") for m in again.sent() if m.tag.endswith("message")]
    assert bodies[:2] == enter_bodies


def test_a_refused_subject_is_not_announced(path: str) -> None:
    h, storage = persistent_room(path)
    storage.refuse("UPDATE muc_rooms SET subject")
    h.receive(f"<message from='{CRONE}' id='s' to='{ROOM}' type='groupchat'><subject>Fire Burn</subject></message>")
    h.expect(
        f"""<message from='{ROOM}' id='s' to='{CRONE}' type='error'><subject>Fire Burn</subject>
          <error type='cancel'><internal-server-error {ERR}/>
            <text {ERR}>the subject could not be stored; nothing changed</text></error></message>"""
    )
    assert h.component.router.loaded("coven").subject.text == ""
    assert failures(h) == {"subject": 1}


# -- configuration -------------------------------------------------------------------

ADMIN = "http://jabber.org/protocol/muc#admin"


def submit(h: Harness, fields: str, id: str = "cfg") -> None:
    h.receive(
        f"<iq from='{CRONE}' id='{id}' to='{ROOM}' type='set'><query xmlns='{OWNER}'>"
        f"<x xmlns='jabber:x:data' type='submit'>{fields}</x></query></iq>"
    )


def stored_rooms(path: str) -> list[str]:
    found: list[Any] = []
    MucStore(immediate_storage(ImmediateStorage(path))).list_rooms().addBoth(found.append)
    return [record.node for record in found[0]]


def test_a_room_that_cannot_be_stored_whole_stays_temporary(path: str) -> None:
    storage = immediate_storage(FailingStorage(path))
    h = muc_harness(storage=storage)
    instant_room(h, ROOM, CRONE, "firstwitch")
    enter(h, ROOM, "secondwitch", WICCA)
    # The room's row goes in; its owner's, in the same transaction, is refused.
    storage.refuse("INSERT INTO muc_affiliations")
    name = "<field var='muc#roomconfig_roomname'><value>A Dark Cave</value></field>"
    submit(h, PERSISTENT + name)
    h.expect(
        f"""<iq from='{ROOM}' id='cfg' to='{CRONE}' type='error'><query xmlns='{OWNER}'>
          <x xmlns='jabber:x:data' type='submit'>{PERSISTENT}{name}</x></query>
          <error type='cancel'><internal-server-error {ERR}/>
            <text {ERR}>the configuration could not be stored; nothing changed</text></error></iq>"""
    )
    room = h.component.router.loaded("coven")
    assert (room.config.persistent, room.config.name, room.stored) == (False, "", False)
    assert failures(h) == {"config": 1}
    # No ownerless room waits in the database for the next start.
    assert stored_rooms(path) == []
    again = restarted(path)
    again.receive(f"<presence from='{WICCA}' to='{ROOM}/secondwitch'>{MUC_X}</presence>")
    assert again.sent()[0].find(".//{http://jabber.org/protocol/muc#user}status[@code='201']") is not None
    # Accepted, the same change is stored whole and told as usual.
    storage.accept()
    submit(h, PERSISTENT + name)
    h.expect(
        f"<iq from='{ROOM}' id='cfg' to='{CRONE}' type='result'/>",
        *[
            f"""<message from='{ROOM}' to='{to}' type='groupchat'>
              <x xmlns='http://jabber.org/protocol/muc#user'><status code='104'/></x></message>"""
            for to in (CRONE, WICCA)
        ],
    )
    assert stored_rooms(path) == ["coven"]
    owners: list[Any] = []
    MucStore(immediate_storage(ImmediateStorage(path))).affiliations("coven").addBoth(owners.append)
    assert {jid: a.affiliation for jid, a in owners[0].items()} == {"crone1@shakespeare.lit": "owner"}


def test_a_refused_configuration_of_a_stored_room_changes_nothing(path: str) -> None:
    h, storage = persistent_room(path)
    storage.refuse("DELETE FROM muc_rooms")
    submit(h, "<field var='muc#roomconfig_persistentroom'><value>0</value></field>")
    (reply,) = h.sent()
    assert reply.get("type") == "error"
    room = h.component.router.loaded("coven")
    assert room.config.persistent and room.stored
    assert stored_rooms(path) == ["coven"]


# -- affiliations ---------------------------------------------------------------------


def admin_set(h: Harness, items: str, id: str = "a") -> None:
    h.receive(f"<iq from='{CRONE}' id='{id}' to='{ROOM}' type='set'><query xmlns='{ADMIN}'>{items}</query></iq>")


def stored_affiliations(path: str) -> dict[str, tuple[str, str]]:
    found: list[Any] = []
    MucStore(immediate_storage(ImmediateStorage(path))).affiliations("coven").addBoth(found.append)
    return {jid: (a.affiliation, a.reason) for jid, a in found[0].items()}


HANDOVER = (
    "<item affiliation='owner' jid='wiccarocks@shakespeare.lit'/>"
    "<item affiliation='admin' jid='crone1@shakespeare.lit'/>"
    "<item nick='thirdwitch' role='visitor'/>"
    "<item affiliation='outcast' jid='hecate@shakespeare.lit'><reason>Beldam</reason></item>"
)


def test_an_admin_set_refused_half_way_changes_nothing(path: str) -> None:
    h, storage = persistent_room(path)
    enter(h, ROOM, "thirdwitch", HAG)
    before = stored_affiliations(path)
    # The first row goes in; the second, in the same transaction, is refused.
    storage.refuse("INSERT INTO muc_affiliations", after=1)
    admin_set(h, HANDOVER)
    h.expect(
        f"""<iq from='{ROOM}' id='a' to='{CRONE}' type='error'><query xmlns='{ADMIN}'>{HANDOVER}</query>
          <error type='cancel'><internal-server-error {ERR}/>
            <text {ERR}>the affiliation change could not be stored; nothing changed</text></error></iq>"""
    )
    assert storage.refused == 1 and failures(h) == {"affiliations": 1}
    room = h.component.router.loaded("coven")
    assert [(str(jid), entry.affiliation) for jid, entry in room.affiliations.items()] == [
        ("crone1@shakespeare.lit", "owner")
    ]
    assert room.occupants.by_nick("thirdwitch").role == "participant"
    assert stored_affiliations(path) == before == {"crone1@shakespeare.lit": ("owner", "")}
    # Accepted, the whole set is stored and applied.
    storage.accept()
    admin_set(h, HANDOVER, "b")
    assert h.sent()[-1].get("type") == "result"
    assert stored_affiliations(path) == {
        "crone1@shakespeare.lit": ("admin", ""),
        "hecate@shakespeare.lit": ("outcast", "Beldam"),
        "wiccarocks@shakespeare.lit": ("owner", ""),
    }


def test_a_ban_and_a_membership_in_a_stored_room(path: str) -> None:
    h, _ = persistent_room(path)
    enter(h, ROOM, "thirdwitch", HAG)
    admin_set(
        h,
        "<item affiliation='outcast' jid='hag66@shakespeare.lit'><reason>Treason</reason></item>"
        "<item affiliation='member' jid='hecate@shakespeare.lit'/>",
    )
    user = "http://jabber.org/protocol/muc#user"
    h.expect(
        f"""<presence from='{ROOM}/thirdwitch' to='{CRONE}' type='unavailable'><x xmlns='{user}'>
          <item affiliation='outcast' jid='{HAG}' role='none'><actor nick='firstwitch'/><reason>Treason</reason></item>
          <status code='301'/></x></presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{WICCA}' type='unavailable'><x xmlns='{user}'>
          <item affiliation='outcast' role='none'><actor nick='firstwitch'/><reason>Treason</reason></item>
          <status code='301'/></x></presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{HAG}' type='unavailable'><x xmlns='{user}'>
          <item affiliation='outcast' jid='{HAG}' role='none'><actor nick='firstwitch'/><reason>Treason</reason></item>
          <status code='110'/><status code='301'/></x></presence>""",
        # Hecate is not in the room: the moderator is told with a message (XEP-0045 1.34 example 195).
        f"""<message from='{ROOM}' to='{CRONE}'><x xmlns='{user}'>
              <item affiliation='member' jid='hecate@shakespeare.lit'/></x></message>""",
        f"<iq from='{ROOM}' id='a' to='{CRONE}' type='result'/>",
    )
    again = restarted(path)
    again.receive(f"<iq from='{CRONE}' id='l' to='{ROOM}' type='get'><query xmlns='{ADMIN}'><item affiliation='outcast'/></query></iq>")
    again.expect(
        f"""<iq from='{ROOM}' id='l' to='{CRONE}' type='result'><query xmlns='{ADMIN}'>
          <item affiliation='outcast' jid='hag66@shakespeare.lit'><reason>Treason</reason></item></query></iq>"""
    )
    assert stored_affiliations(path)["hecate@shakespeare.lit"] == ("member", "")


def test_invitations_whose_memberships_are_refused_are_not_sent(path: str) -> None:
    h, storage = persistent_room(path)
    configure(h, "<field var='muc#roomconfig_membersonly'><value>1</value></field>")
    storage.refuse("INSERT INTO muc_affiliations", after=1)
    invitations = (
        "<x xmlns='http://jabber.org/protocol/muc#user'>"
        "<invite to='hecate@shakespeare.lit'/><invite to='hag66@shakespeare.lit'/></x>"
    )
    h.receive(f"<message from='{CRONE}' id='inv' to='{ROOM}'>{invitations}</message>")
    h.expect(
        f"""<message from='{ROOM}' id='inv' to='{CRONE}' type='error'>{invitations}
          <error type='cancel'><internal-server-error {ERR}/>
            <text {ERR}>the affiliation change could not be stored; nothing changed</text></error></message>"""
    )
    assert stored_affiliations(path) == {"crone1@shakespeare.lit": ("owner", "")}
    storage.accept()
    h.receive(f"<message from='{CRONE}' id='inv' to='{ROOM}'>{invitations}</message>")
    # The owner hears of both new members, then both invitations go.
    assert [m.get("to") for m in h.sent()] == [CRONE, CRONE, "hecate@shakespeare.lit", "hag66@shakespeare.lit"]
    assert stored_affiliations(path) == {
        "crone1@shakespeare.lit": ("owner", ""),
        "hag66@shakespeare.lit": ("member", "Invited by crone1@shakespeare.lit"),
        "hecate@shakespeare.lit": ("member", "Invited by crone1@shakespeare.lit"),
    }


def test_the_lock_does_not_expire_under_a_configuration_on_its_way_to_the_database(path: str) -> None:
    storage = immediate_storage(HeldStorage(path))
    h = muc_harness({"lock_seconds": 60}, storage=storage)
    enter(h, ROOM, "firstwitch", CRONE)  # a new room, locked until configured
    storage.held = []
    submit(h, PERSISTENT)
    h.clock.advance(61)
    h.expect_nothing()
    storage.release()
    assert [m.get("type") for m in h.sent()] == ["result", "groupchat"]  # the reply, then the announcement
    h.clock.advance(61)
    h.expect_nothing()
    room = h.component.router.loaded("coven")
    assert room.exists and not room.locked and room.stored
    assert stored_rooms(path) == ["coven"]


# -- group commit: the messages that come during a write go in the next one ------------


class HeldFailingStorage(HeldStorage, FailingStorage):
    """A slow database that also refuses statements on demand."""


def held_room(path: str, options: dict[str, Any] | None = None) -> tuple[Harness, HeldFailingStorage]:
    """A persistent room of two whose database answers only when released."""
    storage = immediate_storage(HeldFailingStorage(path))
    h = muc_harness(options, storage=storage)
    instant_room(h, ROOM, CRONE, "firstwitch")
    configure(h, PERSISTENT)
    enter(h, ROOM, "secondwitch", WICCA)
    storage.held = []
    return h, storage


LINES = ["Thrice the brinded cat hath mewed.", "Thrice and once the hedge-pig whined.",
         "Harpier cries", "'Tis time, 'tis time."]


def archived_bodies(path: str) -> list[str]:
    found: list[Any] = []
    MucStore(immediate_storage(ImmediateStorage(path))).recent_history("coven", 50).addBoth(found.append)
    return [record.stanza.partition("<body>")[2].partition("</body>")[0] for record in found[0]]


def test_messages_that_come_during_a_write_are_stored_in_one_transaction(path: str) -> None:
    h, storage = held_room(path)
    before = storage.transactions
    for n, line in enumerate(LINES):
        say(h, line, f"m{n}")
    # The first message's write is in flight; the others wait for it, and nobody sees anything yet.
    assert storage.transactions == before + 1
    h.expect_nothing()
    storage.release()
    # One more transaction for the three that waited; then every reflection, in order.
    assert storage.transactions == before + 2
    h.expect(*[stanza for n, line in enumerate(LINES) for stanza in reflections(line, f"m{n}")])
    assert archived_bodies(path) == LINES
    assert h.component.services[0].store.history_writes == len(LINES)
    # The history of who enters is in the same order, here and after a restart.
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    assert [m.findtext("{jabber:component:accept}body") for m in h.sent() if m.get("type") == "groupchat"][:4] == LINES


def test_a_batch_holds_at_most_history_batch_rows(path: str) -> None:
    h, storage = held_room(path, {"history_batch": 2})
    before = storage.transactions
    for n in range(7):
        say(h, f"line {n}", f"m{n}")
    storage.release()
    # The first alone, then the six that waited, two at a time.
    assert storage.transactions == before + 4
    assert [m.findtext("{jabber:component:accept}body") for m in h.sent()] == [
        f"line {n}" for n in range(7) for _ in (CRONE, WICCA)
    ]
    assert archived_bodies(path) == [f"line {n}" for n in range(7)]


def test_a_reloaded_history_batch_applies_to_the_next_transaction(path: str) -> None:
    h, storage = held_room(path)
    [service] = h.component.services
    assert service.reconfigure(type(service)(h.component, {"history_batch": 2}))
    before = storage.transactions
    for n in range(5):
        say(h, f"line {n}", f"m{n}")
    storage.release()
    assert storage.transactions == before + 3
    assert archived_bodies(path) == [f"line {n}" for n in range(5)]


def test_a_refused_batch_refuses_each_of_its_messages(path: str, logged: list[str]) -> None:
    h, storage = held_room(path)
    say(h, LINES[0], "m0")  # stored; its answer held
    storage.refuse("INSERT INTO muc_history")
    for n in (1, 2, 3):
        say(h, LINES[n], f"m{n}")
    storage.release()
    # The first is reflected; each of the three in the refused transaction gets its error, in order.
    h.expect(
        *reflections(LINES[0], "m0"),
        *[
            f"""<message from='{ROOM}' id='m{n}' to='{WICCA}' type='error'><body>{LINES[n]}</body>
              <error type='wait'><resource-constraint {ERR}/>
                <text {ERR}>the message could not be archived, so it was not sent</text></error></message>"""
            for n in (1, 2, 3)
        ],
    )
    assert storage.refused == 1
    assert failures(h) == {"history": 3}
    assert len(logged) == 1
    assert archived_bodies(path) == LINES[:1]
    # The room goes on.
    storage.accept()
    say(h, "Round about the cauldron go", "m4")
    h.expect(*reflections("Round about the cauldron go", "m4"))
    assert archived_bodies(path) == [LINES[0], "Round about the cauldron go"]


def test_other_stanzas_keep_their_place_among_the_messages(path: str) -> None:
    h, storage = held_room(path)
    say(h, LINES[0], "m0")
    # A chat state (reflected, not archived), a stranger's message, a newcomer, then another
    # message, all while the first is being written.
    h.receive(
        f"<message from='{WICCA}' id='cs' to='{ROOM}' type='groupchat'>"
        "<active xmlns='http://jabber.org/protocol/chatstates'/></message>"
    )
    say(h, "Double, double", "x", sender=HAG)
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    say(h, LINES[1], "m1")
    h.expect_nothing()
    storage.release()
    sent = h.sent()
    described = [(m.tag.rpartition("}")[2], m.get("type"), m.get("to"), m.get("id")) for m in sent]
    first = described.index(("message", "groupchat", WICCA, "m0"))
    state = described.index(("message", "groupchat", CRONE, "cs"))
    refused = described.index(("message", "error", HAG, "x"))
    entered = next(i for i, d in enumerate(described) if d[0] == "presence")
    last = described.index(("message", "groupchat", CRONE, "m1"))
    assert first < state < refused < entered < last
    # The newcomer was in the room when the second message came, and hears it.
    assert ("message", "groupchat", HAG, "m1") in described[last:]
    # ... and finds the first in the history it was sent on entering.
    assert sent[entered:last][-2].findtext("{jabber:component:accept}body") == LINES[0]


def test_past_max_waiting_messages_a_message_is_refused_at_once(path: str) -> None:
    h, storage = held_room(path, {"max_waiting_messages": 3})
    for n in range(3):
        say(h, f"line {n}", f"m{n}")
    say(h, "one too many", "over")
    h.expect(
        f"""<message from='{ROOM}' id='over' to='{WICCA}' type='error'><body>one too many</body>
          <error type='wait'><resource-constraint {ERR}/>
            <text {ERR}>too many messages are waiting to be stored; try again shortly</text></error></message>"""
    )
    storage.release()
    assert [m.findtext("{jabber:component:accept}body") for m in h.sent()] == [
        f"line {n}" for n in range(3) for _ in (CRONE, WICCA)
    ]
    assert failures(h) == {}
    # Once written, the room takes as many again.
    storage.held = []
    for n in range(3, 6):
        say(h, f"line {n}", f"m{n}")
    h.expect_nothing()
    storage.release()
    assert len(h.sent()) == 6


@pytest.mark.parametrize(
    ("key", "value"), [("history_batch", 0), ("max_waiting_messages", 0), ("history_batch", "many")]
)
def test_the_group_commit_settings_are_checked(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=key):
        muc_harness({key: value})


def test_a_temporary_room_reflects_at_once(path: str) -> None:
    storage = immediate_storage(HeldStorage(path))
    h = muc_harness(storage=storage)
    instant_room(h, ROOM, CRONE, "firstwitch")
    enter(h, ROOM, "secondwitch", WICCA)
    storage.held = []
    before = storage.transactions
    room = h.component.router.loaded("coven")
    (element,) = parse_stanzas(
        f"<message from='{WICCA}' id='m' to='{ROOM}' type='groupchat'><body>{LINES[0]}</body></message>"
    )
    # No Deferred, no write: the reflections are out when the handler returns.
    assert room.handle_message(Stanza(element, "message", parse_jid(WICCA), parse_jid(ROOM))) is None
    h.expect(*reflections(LINES[0]))
    assert storage.transactions == before


HEATH = "heath@chat.shakespeare.lit"


def two_held_rooms(path: str) -> tuple[Harness, HeldFailingStorage]:
    """The coven and the heath, both persistent, the two witches in each; the database answers when released."""
    h, storage = held_room(path)
    storage.release()
    instant_room(h, HEATH, CRONE, "firstwitch")
    configure(h, PERSISTENT, room=HEATH)
    enter(h, HEATH, "secondwitch", WICCA)
    storage.held = []
    return h, storage


def say_in(h: Harness, room: str, text: str, id: str) -> None:
    h.receive(f"<message from='{WICCA}' id='{id}' to='{room}' type='groupchat'><body>{text}</body></message>")


def test_the_rooms_messages_share_the_next_transaction(path: str) -> None:
    h, storage = two_held_rooms(path)
    before = storage.transactions
    say_in(h, ROOM, LINES[0], "c0")
    say_in(h, HEATH, LINES[1], "h1")
    say_in(h, ROOM, LINES[2], "c2")
    say_in(h, HEATH, LINES[3], "h3")
    assert storage.transactions == before + 1
    storage.release()
    # The coven's second message and both of the heath's: one transaction.
    assert storage.transactions == before + 2
    sent = [(m.get("from").partition("/")[0], m.findtext("{jabber:component:accept}body")) for m in h.sent()]
    assert [body for room, body in sent if room == ROOM] == [LINES[0]] * 2 + [LINES[2]] * 2
    assert [body for room, body in sent if room == HEATH] == [LINES[1]] * 2 + [LINES[3]] * 2


def test_a_room_whose_rows_are_refused_fails_alone(path: str) -> None:
    h, storage = two_held_rooms(path)
    # Another process deletes the coven from the database.
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("DELETE FROM muc_rooms WHERE node = 'coven'")
    other.close()
    say_in(h, HEATH, LINES[0], "h0")
    say_in(h, ROOM, LINES[1], "c1")
    say_in(h, HEATH, LINES[2], "h2")
    storage.release()
    sent = h.sent()
    assert [(m.get("from"), m.get("type"), m.get("id")) for m in sent if m.get("type") == "error"] == [
        (ROOM, "error", "c1")
    ]
    assert [m.findtext("{jabber:component:accept}body") for m in sent if m.get("type") == "groupchat"] == [
        LINES[0], LINES[0], LINES[2], LINES[2]
    ]
    assert failures(h) == {"history": 1}


def test_a_room_created_while_an_earlier_stanza_loads_it_is_kept(path: str) -> None:
    """Someone asks about a room that does not exist while someone else creates it: both wait for one load.

    The question is answered (item-not-found) and lets that room go; the
    creation goes to a new one, which stays, so the creator may configure it.
    """
    storage = immediate_storage(HeldStorage(path))
    h = muc_harness(storage=storage)
    storage.held = []
    h.receive(
        f"<iq from='{HAG}' id='info' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
    )
    h.receive(f"<presence from='{CRONE}' to='{ROOM}/firstwitch'>{MUC_X}</presence>")
    storage.release()
    sent = h.sent()
    assert [(s.get("id"), s.get("type")) for s in sent if s.tag.endswith("}iq")] == [("info", "error")]
    codes = {s.get("code") for s in sent[1].iter("{http://jabber.org/protocol/muc#user}status")}
    assert {"110", "201"} <= codes
    h.receive(
        f"<iq from='{CRONE}' id='create' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        "<x xmlns='jabber:x:data' type='submit'/></query></iq>"
    )
    assert h.sent()[-1].get("type") == "result"
    assert h.component.router.loaded("coven").occupants.by_nick("firstwitch") is not None
