"""What a room sends from a received stanza once a slow database answers, written as the XEPs' examples.

The database holds its answers until released (:class:`HeldStorage`), and
refuses statements on demand (:class:`FailingStorage`), so every reply
and reflection here is built after the handler of the stanza it comes
from has returned, when the stream has let go of that stanza: what is
sent from it must still be whole and carry no invented prefix.

The cast is XEP-0045's: the crone (firstwitch) owns the coven, the
wiccarocks witch (secondwitch) talks in it, hag66 is not in it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from component.testing import Harness
from services.muc.testing import (
    CRONE,
    ERR,
    HAG,
    ROOM,
    WICCA,
    FailingStorage,
    HeldStorage,
    configure,
    enter,
    immediate_storage,
    instant_room,
    muc_harness,
)

PERSISTENT = "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"
MAM = "urn:xmpp:mam:2"
RSM = "http://jabber.org/protocol/rsm"
SID = "{urn:xmpp:sid:0}stanza-id"
REASON = "This message contains inappropriate content for this forum"


class SlowStorage(HeldStorage, FailingStorage):
    """A database that answers when released, and refuses statements on demand."""


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "muc.db")


def slow_room(path: str) -> tuple[Harness, SlowStorage]:
    """A persistent room of two; its database answers only when released."""
    storage = immediate_storage(SlowStorage(path))
    h = muc_harness(storage=storage)
    instant_room(h, ROOM, CRONE, "firstwitch")
    configure(h, PERSISTENT)
    enter(h, ROOM, "secondwitch", WICCA)
    storage.held = []
    return h, storage


def say(h: Harness, text: str, id: str, sender: str = WICCA) -> None:
    h.receive(f"<message from='{sender}' id='{id}' to='{ROOM}' type='groupchat'><body>{text}</body></message>")


def said(h: Harness, storage: SlowStorage, text: str, id: str, sender: str = WICCA) -> str:
    """A message, archived and reflected; the stanza-id the room gave it. The database is held again after."""
    storage.release()
    say(h, text, id, sender)
    stanza_id = h.sent()[0].find(SID).get("id")
    storage.held = []
    return stanza_id


def test_a_message_whose_write_fails_gets_its_error_after_the_write(path: str) -> None:
    h, storage = slow_room(path)
    storage.refuse("INSERT INTO muc_history")
    say(h, "Thrice the brinded cat hath mewed.", "m0")
    h.expect_nothing()
    storage.release()
    # The message back to its sender, with the error (RFC 6120 §8.3.1), once the write failed.
    h.expect(
        f"""<message from='{ROOM}' id='m0' to='{WICCA}' type='error'>
          <body>Thrice the brinded cat hath mewed.</body>
          <error type='wait'><resource-constraint {ERR}/>
            <text {ERR}>the message could not be archived, so it was not sent</text></error></message>"""
    )


def test_a_subject_change_is_reflected_after_its_write(path: str) -> None:
    h, storage = slow_room(path)
    # XEP-0045 Example 166, in a room whose database is slow.
    h.receive(
        f"<message from='{CRONE}' id='lh2bs617' to='{ROOM}' type='groupchat'>"
        "<subject>Fire Burn and Cauldron Bubble!</subject></message>"
    )
    h.expect_nothing()
    storage.release()
    # Example 167, to every occupant, once stored.
    h.expect(
        *[
            f"""<message from='{ROOM}/firstwitch' id='lh2bs617' to='{to}' type='groupchat'>
              <subject>Fire Burn and Cauldron Bubble!</subject>
              <stanza-id xmlns='urn:xmpp:sid:0' id='*' by='{ROOM}'/></message>"""
            for to in (CRONE, WICCA)
        ]
    )


def test_a_refused_stanza_behind_a_message_being_written_gets_its_error_in_its_turn(path: str) -> None:
    h, storage = slow_room(path)
    say(h, "Thrice the brinded cat hath mewed.", "m0")
    # Someone not in the room speaks while the first message is being written.
    say(h, "Double, double toil and trouble", "x", sender=HAG)
    h.expect_nothing()
    storage.release()
    # XEP-0045 Example 72's error, after the reflections of the message before it.
    h.expect(
        *[
            f"""<message from='{ROOM}/secondwitch' id='m0' to='{to}' type='groupchat'>
              <body>Thrice the brinded cat hath mewed.</body>
              <stanza-id xmlns='urn:xmpp:sid:0' id='*' by='{ROOM}'/></message>"""
            for to in (CRONE, WICCA)
        ],
        f"""<message from='{ROOM}' id='x' to='{HAG}' type='error'>
          <body>Double, double toil and trouble</body>
          <error type='modify'><not-acceptable {ERR}/>
            <text {ERR}>only occupants may speak in the room</text></error></message>""",
    )


def test_an_archive_query_is_answered_after_the_read(path: str) -> None:
    h, storage = slow_room(path)
    first = said(h, storage, "Thrice the brinded cat hath mew'd.", "162BEBB1", sender=CRONE)
    # XEP-0313 Example 2, the archive read held.
    h.receive(f"<iq from='{WICCA}' to='{ROOM}' type='set' id='juliet1'><query xmlns='{MAM}' queryid='f27'/></iq>")
    h.expect_nothing()
    storage.release()
    # Examples 3 and 4 (the room's form, §6.2), once read.
    h.expect(
        f"""<message from='{ROOM}' to='{WICCA}'>
          <result xmlns='{MAM}' queryid='f27' id='{first}'>
            <forwarded xmlns='urn:xmpp:forward:0'>
              <delay xmlns='urn:xmpp:delay' stamp='*'/>
              <message xmlns='jabber:client' from='{ROOM}/firstwitch' id='162BEBB1' type='groupchat'>
                <body>Thrice the brinded cat hath mew'd.</body>
                <stanza-id xmlns='urn:xmpp:sid:0' by='{ROOM}' id='{first}'/>
              </message>
            </forwarded>
          </result>
        </message>""",
        f"""<iq from='{ROOM}' to='{WICCA}' type='result' id='juliet1'>
          <fin xmlns='{MAM}' complete='true'>
            <set xmlns='{RSM}'><first>{first}</first><last>{first}</last><count>1</count></set>
          </fin>
        </iq>""",
    )


def test_moderating_an_unknown_message_is_refused_after_the_read(path: str) -> None:
    h, storage = slow_room(path)
    # XEP-0425 Example 3, naming a message the archive does not have.
    h.receive(
        f"""<iq type='set' from='{CRONE}' to='{ROOM}' id='retract-request-1'>
          <moderate id='no-such-id' xmlns='urn:xmpp:message-moderate:1'>
            <retract xmlns='urn:xmpp:message-retract:1'/>
            <reason>{REASON}</reason>
          </moderate></iq>"""
    )
    h.expect_nothing()
    storage.release()
    # The error echoes the request (RFC 6120 §8.3.1).
    h.expect(
        f"""<iq type='error' from='{ROOM}' to='{CRONE}' id='retract-request-1'>
          <moderate id='no-such-id' xmlns='urn:xmpp:message-moderate:1'>
            <retract xmlns='urn:xmpp:message-retract:1'/><reason>{REASON}</reason></moderate>
          <error type='modify'><item-not-found {ERR}/>
            <text {ERR}>the room has no message with that stanza-id</text></error></iq>"""
    )


def test_a_retraction_is_reflected_after_the_read_and_the_write(path: str) -> None:
    h, storage = slow_room(path)
    stanza_id = said(h, storage, "Have not saints lips?", "saints")
    # XEP-0424 Example 4, in the room.
    h.receive(
        f"""<message type='groupchat' from='{WICCA}' to='{ROOM}' id='retract-message-1'>
          <retract id='{stanza_id}' xmlns='urn:xmpp:message-retract:1'/>
          <body>This person attempted to retract a previous message, but it's unsupported by your client.</body>
          </message>"""
    )
    h.expect_nothing()
    storage.release()
    # Example 5's retraction, to every occupant, from her occupant JID and with its stanza-id.
    h.expect(
        *[
            f"""<message type='groupchat' from='{ROOM}/secondwitch' to='{to}' id='retract-message-1'>
              <retract id='{stanza_id}' xmlns='urn:xmpp:message-retract:1'/>
              <body>This person attempted to retract a previous message, but it's unsupported by your client.</body>
              <stanza-id xmlns='urn:xmpp:sid:0' id='*' by='{ROOM}'/></message>"""
            for to in (CRONE, WICCA)
        ]
    )


def test_retracting_someone_elses_message_is_refused_after_the_read(path: str) -> None:
    h, storage = slow_room(path)
    stanza_id = said(h, storage, "Have not saints lips?", "saints", sender=CRONE)
    h.receive(
        f"""<message type='groupchat' from='{WICCA}' to='{ROOM}' id='retract-message-1'>
          <retract id='{stanza_id}' xmlns='urn:xmpp:message-retract:1'/><body>retracted</body></message>"""
    )
    h.expect_nothing()
    storage.release()
    h.expect(
        f"""<message type='error' from='{ROOM}' to='{WICCA}' id='retract-message-1'>
          <retract id='{stanza_id}' xmlns='urn:xmpp:message-retract:1'/><body>retracted</body>
          <error type='auth'><forbidden {ERR}/>
            <text {ERR}>only its author may retract a message</text></error></message>"""
    )


def test_a_subject_change_behind_a_message_being_written_is_reflected_in_its_turn(path: str) -> None:
    h, storage = slow_room(path)
    say(h, "Thrice the brinded cat hath mewed.", "m0")
    # XEP-0045 Example 166 while the message before it is being written: a write of its own, it waits.
    h.receive(
        f"<message from='{CRONE}' id='lh2bs617' to='{ROOM}' type='groupchat'>"
        "<subject>Fire Burn and Cauldron Bubble!</subject></message>"
    )
    h.expect_nothing()
    storage.release()
    # The message's reflections, then Example 167's, in the order they came.
    h.expect(
        *[
            f"""<message from='{ROOM}/secondwitch' id='m0' to='{to}' type='groupchat'>
              <body>Thrice the brinded cat hath mewed.</body>
              <stanza-id xmlns='urn:xmpp:sid:0' id='*' by='{ROOM}'/></message>"""
            for to in (CRONE, WICCA)
        ],
        *[
            f"""<message from='{ROOM}/firstwitch' id='lh2bs617' to='{to}' type='groupchat'>
              <subject>Fire Burn and Cauldron Bubble!</subject>
              <stanza-id xmlns='urn:xmpp:sid:0' id='*' by='{ROOM}'/></message>"""
            for to in (CRONE, WICCA)
        ],
    )
