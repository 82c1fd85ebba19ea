"""Invitations, declines, destroying a room, ghosts and IQs to occupants (XEP-0045 §7.8, §10.9; XEP-0410)."""

from __future__ import annotations

import pytest

from services.muc.testing import CRONE, ERR, ROOM, WICCA, configure, enter, instant_room, muc_harness

HECATE = "hecate@shakespeare.lit"


@pytest.fixture
def harness():
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    enter(h, ROOM, "secondwitch", WICCA)
    return h


def invite(h, who: str = CRONE, id: str = "nzd143v8") -> None:
    h.receive(
        f"""<message from='{who}' id='{id}' to='{ROOM}'>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <invite to='{HECATE}'><reason>Hey Hecate, this is the place for all good witches!</reason></invite>
          </x></message>"""
    )


def test_mediated_invitation(harness) -> None:
    """§7.8.2: from the room, naming the inviter by occupant JID in a semi-anonymous room, under the inviter's id."""
    h = harness
    invite(h)
    h.expect(
        f"""<message from='{ROOM}' id='nzd143v8' to='{HECATE}'>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <invite from='{ROOM}/firstwitch'><reason>Hey Hecate, this is the place for all good witches!</reason></invite>
          </x>
          <x xmlns='jabber:x:conference' jid='{ROOM}'>Hey Hecate, this is the place for all good witches!</x>
          <body>{ROOM}/firstwitch invited you to the room {ROOM} (Hey Hecate, this is the place for all good witches!)</body>
        </message>"""
    )
    h.receive(
        f"""<message from='{HECATE}/broom' id='jk2vs61v' to='{ROOM}'>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <decline to='crone1@shakespeare.lit'><reason>Sorry, I'm too busy right now.</reason></decline>
          </x></message>"""
    )
    h.expect(
        f"""<message from='{ROOM}' id='jk2vs61v' to='crone1@shakespeare.lit'>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <decline from='{HECATE}'><reason>Sorry, I'm too busy right now.</reason></decline>
          </x>
          <body>{HECATE} declined your invitation to the room {ROOM} (Sorry, I'm too busy right now.)</body></message>"""
    )


def test_an_invitation_without_reason_carries_an_empty_one(harness) -> None:
    h = harness
    h.receive(
        f"<message from='{CRONE}' id='i0' to='{ROOM}'><x xmlns='http://jabber.org/protocol/muc#user'>"
        f"<invite to='{HECATE}'/></x></message>"
    )
    h.expect(
        f"""<message from='{ROOM}' id='i0' to='{HECATE}'>
          <x xmlns='http://jabber.org/protocol/muc#user'><invite from='{ROOM}/firstwitch'><reason/></invite></x>
          <x xmlns='jabber:x:conference' jid='{ROOM}'/>
          <body>{ROOM}/firstwitch invited you to the room {ROOM}</body></message>"""
    )


def test_a_non_anonymous_room_names_the_inviter_by_real_jid(harness) -> None:
    h = harness
    configure(h, "<field var='muc#roomconfig_whois'><value>anyone</value></field>")
    invite(h)
    (sent,) = h.sent()
    assert sent.find("{http://jabber.org/protocol/muc#user}x/{http://jabber.org/protocol/muc#user}invite").get("from") == CRONE


def test_a_decline_to_the_inviters_occupant_jid_reaches_its_client(harness) -> None:
    """The invitation named the inviter by occupant JID: the invitee declines to that."""
    h = harness
    invite(h)
    h.sent()
    h.receive(
        f"""<message from='{HECATE}/broom' id='jk2vs61v' to='{ROOM}'>
          <x xmlns='http://jabber.org/protocol/muc#user'><decline to='{ROOM}/firstwitch'/></x></message>"""
    )
    h.expect(
        f"""<message from='{ROOM}' id='jk2vs61v' to='{CRONE}'>
          <x xmlns='http://jabber.org/protocol/muc#user'><decline from='{HECATE}'/></x>
          <body>{HECATE} declined your invitation to the room {ROOM}</body></message>"""
    )


def test_destroy(harness) -> None:
    h = harness
    h.receive(
        f"""<iq from='{CRONE}' id='begone' to='{ROOM}' type='set'>
          <query xmlns='http://jabber.org/protocol/muc#owner'>
            <destroy jid='coven@chat.shakespeare.lit'><reason>Macbeth doth come.</reason></destroy>
          </query></iq>"""
    )
    h.expect(
        f"""<presence from='{ROOM}/firstwitch' to='{CRONE}' type='unavailable'>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' jid='{CRONE}' role='none'/>
            <destroy jid='coven@chat.shakespeare.lit'><reason>Macbeth doth come.</reason></destroy><status code='110'/></x></presence>""",
        f"""<presence from='{ROOM}/secondwitch' to='{WICCA}' type='unavailable'>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' jid='{WICCA}' role='none'/>
            <destroy jid='coven@chat.shakespeare.lit'><reason>Macbeth doth come.</reason></destroy><status code='110'/></x></presence>""",
        f"<iq from='{ROOM}' id='begone' to='{CRONE}' type='result'/>",
    )
    assert h.component.router.loaded("coven") is None


def test_only_owners_destroy(harness) -> None:
    h = harness
    h.receive(
        f"<iq from='{WICCA}' id='no' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query></iq>"
    )
    assert h.sent()[0].get("type") == "error"


@pytest.mark.parametrize("kind", ["message", "presence"])
def test_a_ghost_is_removed_and_everyone_is_told(harness, kind) -> None:
    h = harness
    h.receive(
        f"""<{kind} from='{WICCA}' to='{ROOM}/firstwitch' type='error'>
          <error type='cancel'><service-unavailable {ERR}/></error></{kind}>"""
    )
    h.expect(
        f"""<presence from='{ROOM}/secondwitch' to='{CRONE}' type='unavailable'><status>Kicked: service unavailable</status>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' jid='{WICCA}' role='none'/>
          <status code='307'/><status code='333'/></x></presence>"""
    )
    assert h.component.router.loaded("coven").occupants.by_nick("secondwitch") is None


def test_an_error_that_does_not_mean_gone_keeps_the_occupant(harness) -> None:
    h = harness
    h.receive(
        f"""<message from='{WICCA}' to='{ROOM}/firstwitch' type='error'>
          <error type='modify'><not-acceptable {ERR}/></error></message>"""
    )
    h.expect_nothing()


def test_self_ping_is_answered_by_the_room(harness) -> None:
    # XEP-0410 §3.2 and §3.3: the room answers a joined client itself, from the occupant JID.
    h = harness
    h.receive(f"<iq from='{WICCA}' id='s2c1' to='{ROOM}/secondwitch' type='get'><ping xmlns='urn:xmpp:ping'/></iq>")
    h.expect(f"<iq from='{ROOM}/secondwitch' id='s2c1' to='{WICCA}' type='result'/>")
    # Example 2: a client that is not joined gets not-acceptable (cancel), by the room; so
    # does a client of an occupant's user that did not join itself.
    for sender in (f"{HECATE}/broom", "wiccarocks@shakespeare.lit/phone"):
        h.receive(f"<iq from='{sender}' id='q' to='{ROOM}/secondwitch' type='get'><ping xmlns='urn:xmpp:ping'/></iq>")
        h.expect(
            f"""<iq from='{ROOM}/secondwitch' id='q' to='{sender}' type='error'><ping xmlns='urn:xmpp:ping'/>
              <error type='cancel' by='{ROOM}'><not-acceptable {ERR}/><text {ERR}>*</text></error></iq>"""
        )


def test_self_ping_after_a_nick_change_is_not_answered_as_joined(harness) -> None:
    # The client pings the nick it had: that nick is nobody's now (XEP-0410 §3.2, item-not-found).
    h = harness
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/oldhag'/>")
    h.sent()
    h.receive(f"<iq from='{WICCA}' id='s2c2' to='{ROOM}/secondwitch' type='get'><ping xmlns='urn:xmpp:ping'/></iq>")
    h.expect(
        f"""<iq from='{ROOM}/secondwitch' id='s2c2' to='{WICCA}' type='error'><ping xmlns='urn:xmpp:ping'/>
          <error type='cancel'><item-not-found {ERR}/><text {ERR}>*</text></error></iq>"""
    )
    h.receive(f"<iq from='{WICCA}' id='s2c3' to='{ROOM}/oldhag' type='get'><ping xmlns='urn:xmpp:ping'/></iq>")
    h.expect(f"<iq from='{ROOM}/oldhag' id='s2c3' to='{WICCA}' type='result'/>")


def test_iq_to_an_occupant_is_forwarded_and_answered(harness) -> None:
    h = harness
    h.receive(f"<iq from='{WICCA}' id='v1' to='{ROOM}/firstwitch' type='get'><query xmlns='jabber:iq:version'/></iq>")
    (forwarded,) = h.expect(
        f"<iq from='{ROOM}/secondwitch' id='*' to='{CRONE}' type='get'><query xmlns='jabber:iq:version'/></iq>"
    )
    h.receive(
        f"<iq from='{CRONE}' id='{forwarded.get('id')}' to='{ROOM}/secondwitch' type='result'>"
        "<query xmlns='jabber:iq:version'><name>Broom</name></query></iq>"
    )
    h.expect(
        f"""<iq from='{ROOM}/firstwitch' id='v1' to='{WICCA}' type='result'>
          <query xmlns='jabber:iq:version'><name>Broom</name></query></iq>"""
    )


def test_an_occupant_error_reaches_the_asker_without_the_real_address(harness) -> None:
    h = harness
    h.receive(f"<iq from='{WICCA}' id='v2' to='{ROOM}/firstwitch' type='get'><query xmlns='jabber:iq:version'/></iq>")
    (forwarded,) = h.sent()
    h.receive(
        f"<iq from='{CRONE}' id='{forwarded.get('id')}' to='{ROOM}/secondwitch' type='error'>"
        f"<error type='cancel' by='{CRONE}'><service-unavailable {ERR}/><text {ERR}>{CRONE} says no</text>"
        "<leak xmlns='urn:example'>crone1@shakespeare.lit</leak></error></iq>"
    )
    h.expect(
        f"""<iq from='{ROOM}/firstwitch' id='v2' to='{WICCA}' type='error'><query xmlns='jabber:iq:version'/>
          <error type='cancel'><service-unavailable {ERR}/></error></iq>"""
    )


def test_an_occupant_that_never_answers_is_recipient_unavailable(harness) -> None:
    h = harness
    h.receive(f"<iq from='{WICCA}' id='v3' to='{ROOM}/firstwitch' type='get'><query xmlns='jabber:iq:version'/></iq>")
    h.sent()
    h.clock.advance(31)
    (error,) = h.sent()
    assert error.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}recipient-unavailable") is not None


def test_iq_to_an_occupant_of_a_room_that_does_not_exist() -> None:
    h = muc_harness()
    h.receive(f"<iq from='{WICCA}' id='v' to='nowhere@chat.shakespeare.lit/x' type='get'><query xmlns='jabber:iq:version'/></iq>")
    assert h.sent()[0].find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}item-not-found") is not None
    assert h.component.router.loaded("nowhere") is None


def test_a_non_occupant_cannot_make_the_room_send_its_password(harness) -> None:
    h = harness
    configure(
        h,
        "<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>"
        "<field var='muc#roomconfig_roomsecret'><value>hunter2</value></field>",
    )
    invite(h, who="evil@evil.example/x", id="i1")
    h.expect(
        f"""<message from='{ROOM}' id='i1' to='evil@evil.example/x' type='error'>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <invite to='{HECATE}'><reason>Hey Hecate, this is the place for all good witches!</reason></invite></x>
          <error type='auth'><forbidden {ERR}/><text {ERR}>you may not invite anyone to this room</text></error></message>"""
    )


def test_one_message_cannot_carry_more_than_ten_invitations(harness) -> None:
    h = harness
    invitations = "".join(f"<invite to='witch{n}@shakespeare.lit'/>" for n in range(11))
    h.receive(f"<message from='{CRONE}' id='many' to='{ROOM}'><x xmlns='http://jabber.org/protocol/muc#user'>{invitations}</x></message>")
    sent = h.sent()
    assert len(sent) == 1 and sent[0].get("type") == "error"
    assert sent[0].find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}policy-violation") is not None


@pytest.mark.parametrize(
    "payload",
    [
        "<vCard xmlns='vcard-temp'/>",
        "<vcard xmlns='urn:ietf:params:xml:ns:vcard-4.0'/>",
        "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:avatar:metadata'/></pubsub>",
    ],
)
def test_an_iq_about_an_occupants_account_goes_to_its_bare_jid(harness, payload) -> None:
    """XEP-0045 §7.5 and XEP-0054: a vCard or PEP request is the account's, answered by its server (as Prosody)."""
    h = harness
    h.receive(f"<iq from='{WICCA}' id='v' to='{ROOM}/firstwitch' type='get'>{payload}</iq>")
    h.expect(f"<iq from='{ROOM}/secondwitch' id='*' to='crone1@shakespeare.lit' type='get'>{payload}</iq>")
