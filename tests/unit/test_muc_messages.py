"""Messages in a room: groupchat, private messages, the subject and the history (XEP-0045 §7.2.15 to §7.5, §8.1)."""

from __future__ import annotations

import pytest

from component.jid import parse_jid
from component.stanza import address, stamp
from component.testing import assert_xml_equal
from services.muc.history import HistoryRequest
from services.muc.testing import (
    CRONE,
    ERR,
    HAG,
    MUC_X,
    ROOM,
    WICCA,
    configure,
    enter,
    instant_room,
    muc_harness,
)


@pytest.fixture
def harness():
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    enter(h, ROOM, "secondwitch", WICCA)
    return h


def test_groupchat_is_reflected_to_everyone_with_a_stanza_id(harness) -> None:
    h = harness
    h.receive(
        f"""<message from='{WICCA}' id='hysf1v37' to='{ROOM}' type='groupchat'>
          <body>Harpier cries: 'tis time, 'tis time.</body>
          <stanza-id xmlns='urn:xmpp:sid:0' id='forged' by='{ROOM}'/>
          <origin-id xmlns='urn:xmpp:sid:0' id='client-1'/></message>"""
    )
    first, second = h.expect(
        f"""<message from='{ROOM}/secondwitch' id='hysf1v37' to='{CRONE}' type='groupchat'>
          <body>Harpier cries: 'tis time, 'tis time.</body>
          <origin-id xmlns='urn:xmpp:sid:0' id='client-1'/>
          <stanza-id xmlns='urn:xmpp:sid:0' id='*' by='{ROOM}'/></message>""",
        f"""<message from='{ROOM}/secondwitch' id='hysf1v37' to='{WICCA}' type='groupchat'>
          <body>Harpier cries: 'tis time, 'tis time.</body>
          <origin-id xmlns='urn:xmpp:sid:0' id='client-1'/>
          <stanza-id xmlns='urn:xmpp:sid:0' id='*' by='{ROOM}'/></message>""",
    )
    sid = "{urn:xmpp:sid:0}stanza-id"
    assert first.find(sid).get("id") == second.find(sid).get("id") != "forged"


def test_groupchat_from_a_non_occupant_is_not_acceptable(harness) -> None:
    h = harness
    h.receive(f"<message from='{HAG}' id='x1' to='{ROOM}' type='groupchat'><body>hi</body></message>")
    h.expect(
        f"""<message from='{ROOM}' to='{HAG}' id='x1' type='error'><body>hi</body>
          <error type='modify'><not-acceptable {ERR}/><text {ERR}>*</text></error></message>"""
    )


def test_visitor_in_a_moderated_room_is_forbidden(harness) -> None:
    h = harness
    configure(h, "<field var='muc#roomconfig_moderatedroom'><value>1</value></field>")
    enter(h, ROOM, "thirdwitch", HAG)
    h.receive(f"<message from='{HAG}' id='x2' to='{ROOM}' type='groupchat'><body>hi</body></message>")
    h.expect(
        f"""<message from='{ROOM}' to='{HAG}' id='x2' type='error'><body>hi</body>
          <error type='auth'><forbidden {ERR}/><text {ERR}>*</text></error></message>"""
    )


def test_private_message_carries_the_muc_user_element(harness) -> None:
    h = harness
    h.receive(
        f"""<message from='{WICCA}' id='hgn27af1' to='{ROOM}/firstwitch' type='chat'>
          <body>I'll give thee a wind.</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>"""
    )
    h.expect(
        f"""<message from='{ROOM}/secondwitch' id='hgn27af1' to='{CRONE}' type='chat'>
          <body>I'll give thee a wind.</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>"""
    )
    h.receive(f"<message from='{CRONE}' id='p2' to='{ROOM}/secondwitch' type='chat'><body>Thou art kind.</body></message>")
    h.expect(
        f"""<message from='{ROOM}/firstwitch' id='p2' to='{WICCA}' type='chat'>
          <body>Thou art kind.</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>"""
    )


def test_private_message_errors(harness) -> None:
    h = harness
    h.receive(f"<message from='{HAG}' id='e1' to='{ROOM}/firstwitch' type='chat'><body>psst</body></message>")
    h.expect(
        f"""<message from='{ROOM}/firstwitch' to='{HAG}' id='e1' type='error'><body>psst</body>
          <error type='modify'><not-acceptable {ERR}/><text {ERR}>*</text></error></message>"""
    )
    h.receive(f"<message from='{WICCA}' id='e2' to='{ROOM}/nobody' type='chat'><body>psst</body></message>")
    h.expect(
        f"""<message from='{ROOM}/nobody' to='{WICCA}' id='e2' type='error'><body>psst</body>
          <error type='cancel'><item-not-found {ERR}/><text {ERR}>*</text></error></message>"""
    )
    h.receive(f"<message from='{WICCA}' id='e3' to='{ROOM}/firstwitch' type='groupchat'><body>psst</body></message>")
    h.expect(
        f"""<message from='{ROOM}/firstwitch' to='{WICCA}' id='e3' type='error'><body>psst</body>
          <error type='modify'><bad-request {ERR}/><text {ERR}>*</text></error></message>"""
    )


def test_private_messages_can_be_restricted(harness) -> None:
    h = harness
    configure(h, "<field var='muc#roomconfig_allowpm'><value>moderators</value></field>")
    h.receive(f"<message from='{WICCA}' id='r1' to='{ROOM}/firstwitch' type='chat'><body>psst</body></message>")
    h.expect(
        f"""<message from='{ROOM}/firstwitch' to='{WICCA}' id='r1' type='error'><body>psst</body>
          <error type='cancel'><policy-violation {ERR}/><text {ERR}>*</text></error></message>"""
    )
    h.receive(f"<message from='{CRONE}' id='r2' to='{ROOM}/secondwitch' type='chat'><body>psst</body></message>")
    assert len(h.sent()) == 1


def test_direct_invitation_passes_through_a_private_message_untouched(harness) -> None:
    h = harness
    h.receive(
        f"""<message from='{WICCA}' id='d1' to='{ROOM}/firstwitch'>
          <x xmlns='jabber:x:conference' jid='darkcave@chat.shakespeare.lit' reason='come'/></message>"""
    )
    h.expect(
        f"""<message from='{ROOM}/secondwitch' id='d1' to='{CRONE}'>
          <x xmlns='jabber:x:conference' jid='darkcave@chat.shakespeare.lit' reason='come'/>
          <x xmlns='http://jabber.org/protocol/muc#user'/></message>"""
    )


def test_subject_change_by_a_moderator(harness) -> None:
    h = harness
    h.receive(f"<message from='{CRONE}' id='lh2bs617' to='{ROOM}' type='groupchat'><subject>Fire Burn and Cauldron Bubble!</subject></message>")
    # Like every groupchat the room reflects, it carries the room's XEP-0359 stanza-id.
    h.expect(
        f"""<message from='{ROOM}/firstwitch' id='lh2bs617' to='{CRONE}' type='groupchat'>
          <subject>Fire Burn and Cauldron Bubble!</subject><stanza-id xmlns='urn:xmpp:sid:0' by='{ROOM}' id='*'/></message>""",
        f"""<message from='{ROOM}/firstwitch' id='lh2bs617' to='{WICCA}' type='groupchat'>
          <subject>Fire Burn and Cauldron Bubble!</subject><stanza-id xmlns='urn:xmpp:sid:0' by='{ROOM}' id='*'/></message>""",
    )
    h.clock.advance(90)
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    # XEP-0045 §7.2.15 Example 28, with the <delay/> saying when it was set (as Prosody).
    last = h.sent()[-1]
    assert_xml_equal(
        last,
        f"""<message from='{ROOM}/firstwitch' to='{HAG}' type='groupchat'>
          <subject>Fire Burn and Cauldron Bubble!</subject>
          <delay xmlns='urn:xmpp:delay' from='{ROOM}' stamp='{stamp(0)}'/></message>""",
    )


def test_a_cleared_subject_is_sent_empty_from_who_cleared_it_and_when(harness) -> None:
    h = harness
    h.receive(f"<message from='{CRONE}' id='s0' to='{ROOM}' type='groupchat'><subject>Fire Burn</subject></message>")
    h.clock.advance(30)
    h.receive(f"<message from='{CRONE}' id='s1' to='{ROOM}' type='groupchat'><subject/></message>")
    h.sent()
    h.clock.advance(60)
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    # As Prosody 0.12 (muc/subject.lib.lua): from the occupant who cleared it, dated when.
    assert_xml_equal(
        h.sent()[-1],
        f"""<message from='{ROOM}/firstwitch' to='{HAG}' type='groupchat'><subject/>
          <delay xmlns='urn:xmpp:delay' from='{ROOM}' stamp='{stamp(30)}'/></message>""",
    )


def test_the_same_subject_set_again_is_reflected_and_keeps_its_time(harness) -> None:
    h = harness
    configure(h, "<field var='muc#roomconfig_changesubject'><value>1</value></field>")
    h.receive(f"<message from='{CRONE}' id='s0' to='{ROOM}' type='groupchat'><subject>Fire Burn</subject></message>")
    h.sent()
    h.clock.advance(30)
    # Prosody 0.12 sends nothing at all for it (muc/subject.lib.lua); §8.1: the service MUST reflect it.
    h.receive(f"<message from='{CRONE}' id='s1' to='{ROOM}' type='groupchat'><subject>Fire Burn</subject></message>")
    h.expect(
        f"""<message from='{ROOM}/firstwitch' id='s1' to='{CRONE}' type='groupchat'>
          <subject>Fire Burn</subject><stanza-id xmlns='urn:xmpp:sid:0' by='{ROOM}' id='*'/></message>""",
        f"""<message from='{ROOM}/firstwitch' id='s1' to='{WICCA}' type='groupchat'>
          <subject>Fire Burn</subject><stanza-id xmlns='urn:xmpp:sid:0' by='{ROOM}' id='*'/></message>""",
    )
    h.clock.advance(30)
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    # Not modified (§7.2.16): still dated when it was first set, as in Prosody.
    assert_xml_equal(
        h.sent()[-1],
        f"""<message from='{ROOM}/firstwitch' to='{HAG}' type='groupchat'><subject>Fire Burn</subject>
          <delay xmlns='urn:xmpp:delay' from='{ROOM}' stamp='{stamp(0)}'/></message>""",
    )
    # The same text from another nick is a change: from that nick, dated now.
    h.receive(f"<message from='{WICCA}' id='s2' to='{ROOM}' type='groupchat'><subject>Fire Burn</subject></message>")
    assert [(m.get("from"), m.get("id")) for m in h.sent()] == [(f"{ROOM}/secondwitch", "s2")] * 3
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch' type='unavailable'/>")
    h.sent()
    h.clock.advance(30)
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    assert_xml_equal(
        h.sent()[-1],
        f"""<message from='{ROOM}/secondwitch' to='{HAG}' type='groupchat'><subject>Fire Burn</subject>
          <delay xmlns='urn:xmpp:delay' from='{ROOM}' stamp='{stamp(60)}'/></message>""",
    )


def test_subject_change_by_a_participant_is_forbidden_unless_allowed(harness) -> None:
    h = harness
    h.receive(f"<message from='{WICCA}' id='s1' to='{ROOM}' type='groupchat'><subject>Mine</subject></message>")
    h.expect(
        f"""<message from='{ROOM}' to='{WICCA}' id='s1' type='error'><subject>Mine</subject>
          <error type='auth'><forbidden {ERR}/><text {ERR}>*</text></error></message>"""
    )
    configure(h, "<field var='muc#roomconfig_changesubject'><value>1</value></field>")
    h.receive(f"<message from='{WICCA}' id='s2' to='{ROOM}' type='groupchat'><subject>Mine</subject></message>")
    assert [m.get("type") for m in h.sent()] == ["groupchat", "groupchat"]


def test_subject_with_a_body_is_a_plain_message(harness) -> None:
    h = harness
    h.receive(f"<message from='{WICCA}' id='s3' to='{ROOM}' type='groupchat'><subject>Re</subject><body>hi</body></message>")
    sent = h.sent()
    assert len(sent) == 2 and sent[0].find("{urn:xmpp:sid:0}stanza-id") is not None


def _say(h, n: int) -> None:
    for i in range(n):
        h.receive(f"<message from='{WICCA}' id='h{i}' to='{ROOM}' type='groupchat'><body>line {i}</body></message>")
        h.clock.advance(10)
    h.sent()


def _history_bodies(h, history: str) -> list[str]:
    h.receive(
        f"<presence from='{HAG}' to='{ROOM}/thirdwitch'><x xmlns='http://jabber.org/protocol/muc'>{history}</x></presence>"
    )
    sent = h.sent()
    return [m.findtext("{jabber:component:accept}body") for m in sent if m.findtext("{jabber:component:accept}body")]


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ("", [f"line {i}" for i in range(5)]),
        ("<history maxstanzas='2'/>", ["line 3", "line 4"]),
        ("<history maxstanzas='0'/>", []),
        ("<history maxchars='0'/>", []),
        ("<history seconds='25'/>", ["line 3", "line 4"]),
        ("<history since='1970-01-01T00:00:30Z'/>", ["line 3", "line 4"]),
        ("<history since='1970-01-01T00:00:10Z' maxstanzas='1'/>", ["line 4"]),
    ],
)
def test_history_limits(harness, history, expected) -> None:
    h = harness
    _say(h, 5)  # at 0, 10, 20, 30, 40; now 50
    assert _history_bodies(h, history) == expected


def test_history_maxchars_counts_whole_stanzas(harness) -> None:
    h = harness
    _say(h, 3)
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    history = h.component.router.loaded("coven").history
    sizes = [len(entry.to(address(HAG))) for entry in history.select(HistoryRequest(), parse_jid(HAG))]
    h.sent()
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch' type='unavailable'/>")
    h.sent()
    assert _history_bodies(h, f"<history maxchars='{sizes[-1] + sizes[-2] + 20}'/>") == ["line 1", "line 2"]


def test_history_keeps_the_configured_length(harness) -> None:
    h = harness
    configure(h, "<field var='muc#roomconfig_historylength'><value>2</value></field>")
    _say(h, 4)
    assert _history_bodies(h, "") == ["line 2", "line 3"]


@pytest.mark.parametrize("hint", ["no-store", "no-permanent-store"])
def test_a_message_hinted_not_to_be_stored_is_reflected_but_not_kept(harness, hint) -> None:
    """XEP-0334: the room reflects it as any other, and leaves it out of the history (as Prosody)."""
    h = harness
    h.receive(
        f"<message from='{CRONE}' id='h1' to='{ROOM}' type='groupchat'><body>Double, double toil and trouble</body>"
        f"<{hint} xmlns='urn:xmpp:hints'/></message>"
    )
    h.expect(
        f"""<message from='{ROOM}/firstwitch' id='h1' to='{CRONE}' type='groupchat'><body>Double, double toil and trouble</body>
          <{hint} xmlns='urn:xmpp:hints'/><stanza-id xmlns='urn:xmpp:sid:0' by='{ROOM}' id='*'/></message>""",
        f"""<message from='{ROOM}/firstwitch' id='h1' to='{WICCA}' type='groupchat'><body>Double, double toil and trouble</body>
          <{hint} xmlns='urn:xmpp:hints'/><stanza-id xmlns='urn:xmpp:sid:0' by='{ROOM}' id='*'/></message>""",
    )
    assert _history_bodies(h, "") == []


def test_message_to_a_room_that_does_not_exist(harness) -> None:
    h = harness
    h.receive(f"<message from='{HAG}' id='n1' to='nowhere@chat.shakespeare.lit' type='groupchat'><body>hi</body></message>")
    h.expect(
        f"""<message from='nowhere@chat.shakespeare.lit' to='{HAG}' id='n1' type='error'><body>hi</body>
          <error type='cancel'><item-not-found {ERR}/><text {ERR}>*</text></error></message>"""
    )
    assert h.component.router.loaded("nowhere") is None
