"""Entering, creating and leaving rooms, and presence in a room (XEP-0045 §7.1 to §7.2, §7.6, §10.1).

Written as the XEP's examples: the stanzas in, the exact stanzas out.
"""

from __future__ import annotations

import pytest

from services.muc.testing import CRONE, HAG, MUC_X, ROOM, WICCA, enter, instant_room, muc_harness


@pytest.fixture
def harness():
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    return h


def test_creating_a_room_makes_the_creator_owner_and_locks_it() -> None:
    h = muc_harness()
    h.receive(f"<presence from='{CRONE}' to='{ROOM}/firstwitch'>{MUC_X}</presence>")
    h.expect(
        f"""<presence from='{ROOM}/firstwitch' to='{CRONE}'>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <item affiliation='owner' jid='{CRONE}' role='moderator'/>
            <status code='110'/><status code='201'/>
          </x></presence>""",
        f"<message from='{ROOM}' to='{CRONE}' type='groupchat'><subject/></message>",
    )
    # Locked: nobody else may enter until the owner configures the room (§10.1.1).
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    h.expect(
        f"""<presence from='{ROOM}/thirdwitch' to='{HAG}' type='error'>{MUC_X}
          <error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
          <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>*</text></error></presence>"""
    )
    # The instant room: an empty submit accepts the defaults and unlocks it.
    h.receive(
        f"""<iq from='{CRONE}' id='create1' to='{ROOM}' type='set'>
          <query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>"""
    )
    h.expect(f"<iq from='{ROOM}' to='{CRONE}' type='result' id='create1'/>")
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    assert len(h.sent()) == 4


def test_a_client_without_muc_support_gets_an_instant_room() -> None:
    h = muc_harness()
    h.receive(f"<presence from='{CRONE}' to='{ROOM}/firstwitch'/>")
    h.sent()
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    assert len(h.sent()) == 4


def test_entering_sends_occupants_then_self_then_history_then_subject(harness) -> None:
    h = harness
    enter(h, ROOM, "secondwitch", WICCA)
    h.receive(f"<message from='{WICCA}' to='{ROOM}' type='groupchat' id='m1'><body>Thrice the brinded cat hath mew'd.</body></message>")
    h.sent()
    h.clock.advance(60)
    h.receive(
        f"""<presence from='{HAG}' to='{ROOM}/thirdwitch' id='n13mt3l'>
          <show>away</show><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/>{MUC_X}</presence>"""
    )
    h.expect(
        f"""<presence from='{ROOM}/firstwitch' to='{HAG}'>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' role='moderator'/></x></presence>""",
        f"""<presence from='{ROOM}/secondwitch' to='{HAG}'>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/></x></presence>""",
        # The moderator sees the real JID, the participant does not (semi-anonymous room).
        f"""<presence from='{ROOM}/thirdwitch' to='{CRONE}' id='n13mt3l'>
          <show>away</show><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' jid='{HAG}' role='participant'/></x>
        </presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{WICCA}' id='n13mt3l'>
          <show>away</show><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/></x>
        </presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{HAG}' id='n13mt3l'>
          <show>away</show><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <item affiliation='none' jid='{HAG}' role='participant'/><status code='110'/></x>
        </presence>""",
        f"""<message from='{ROOM}/secondwitch' to='{HAG}' type='groupchat' id='m1'>
          <body>Thrice the brinded cat hath mew'd.</body>
          <stanza-id xmlns='urn:xmpp:sid:0' id='*' by='{ROOM}'/>
          <delay xmlns='urn:xmpp:delay' from='{ROOM}' stamp='1970-01-01T00:00:00Z'/>
        </message>""",
        f"<message from='{ROOM}' to='{HAG}' type='groupchat'><subject/></message>",
    )


def test_non_anonymous_room_says_100_and_shows_jids_to_all(harness) -> None:
    h = harness
    h.receive(
        f"""<iq from='{CRONE}' id='c2' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>
          <x xmlns='jabber:x:data' type='submit'>
            <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>
            <field var='muc#roomconfig_whois'><value>anyone</value></field></x></query></iq>"""
    )
    h.expect(
        f"<iq from='{ROOM}' to='{CRONE}' type='result' id='c2'/>",
        f"""<message from='{ROOM}' to='{CRONE}' type='groupchat'>
          <x xmlns='http://jabber.org/protocol/muc#user'><status code='172'/></x></message>""",
    )
    enter(h, ROOM, "secondwitch", WICCA)
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    sent = h.expect(
        f"""<presence from='{ROOM}/firstwitch' to='{HAG}'><x xmlns='http://jabber.org/protocol/muc#user'>
          <item affiliation='owner' jid='{CRONE}' role='moderator'/></x></presence>""",
        f"""<presence from='{ROOM}/secondwitch' to='{HAG}'><x xmlns='http://jabber.org/protocol/muc#user'>
          <item affiliation='none' jid='{WICCA}' role='participant'/></x></presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{CRONE}'><x xmlns='http://jabber.org/protocol/muc#user'>
          <item affiliation='none' jid='{HAG}' role='participant'/></x></presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{WICCA}'><x xmlns='http://jabber.org/protocol/muc#user'>
          <item affiliation='none' jid='{HAG}' role='participant'/></x></presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{HAG}'><x xmlns='http://jabber.org/protocol/muc#user'>
          <item affiliation='none' jid='{HAG}' role='participant'/>
          <status code='100'/><status code='110'/></x></presence>""",
        f"<message from='{ROOM}' to='{HAG}' type='groupchat'><subject/></message>",
    )
    assert sent


def test_nick_normalised_by_the_service_says_210(harness) -> None:
    h = harness
    h.receive(f"<presence from='{HAG}' to='{ROOM}/ThirdWitch&#x2126;'>{MUC_X}</presence>")
    sent = h.sent()
    own = sent[-2]
    assert own.get("from") == f"{ROOM}/ThirdWitch\u03a9"
    codes = [s.get("code") for s in own.iter("{http://jabber.org/protocol/muc#user}status")]
    assert codes == ["110", "210"]


@pytest.mark.parametrize(
    ("setup", "joiner", "x", "condition", "kind"),
    [
        ("", HAG, MUC_X, "conflict", "cancel"),
        ("members", HAG, MUC_X, "registration-required", "auth"),
        ("password", HAG, MUC_X, "not-authorized", "auth"),
        (
            "password",
            HAG,
            "<x xmlns='http://jabber.org/protocol/muc'><password>wrong</password></x>",
            "not-authorized",
            "auth",
        ),
        ("secret only", HAG, MUC_X, "not-authorized", "auth"),
        ("ban", HAG, MUC_X, "forbidden", "auth"),
        ("full", HAG, MUC_X, "service-unavailable", "wait"),
    ],
)
def test_entering_is_refused_with_the_xeps_errors(harness, setup, joiner, x, condition, kind) -> None:
    h = harness
    nick = "firstwitch" if setup == "" else "thirdwitch"
    fields = {
        "members": "<field var='muc#roomconfig_membersonly'><value>1</value></field>",
        "password": "<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>"
        "<field var='muc#roomconfig_roomsecret'><value>cauldronburn</value></field>",
        # As clients written for Prosody configure a password: the secret alone.
        "secret only": "<field var='muc#roomconfig_roomsecret'><value>cauldronburn</value></field>",
        "full": "<field var='muc#roomconfig_maxusers'><value>1</value></field>",
    }.get(setup)
    if fields:
        h.receive(
            f"<iq from='{CRONE}' id='c' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
            f"<x xmlns='jabber:x:data' type='submit'>{fields}</x></query></iq>"
        )
    if setup == "ban":
        h.receive(
            f"<iq from='{CRONE}' id='b' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#admin'>"
            "<item affiliation='outcast' jid='hag66@shakespeare.lit'/></query></iq>"
        )
    h.sent()
    h.receive(f"<presence from='{joiner}' to='{ROOM}/{nick}'>{x}</presence>")
    h.expect(
        f"""<presence from='{ROOM}/{nick}' to='{joiner}' type='error'>{x}
          <error type='{kind}'><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
          <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>*</text></error></presence>"""
    )


def test_right_password_enters(harness) -> None:
    h = harness
    h.receive(
        f"<iq from='{CRONE}' id='c' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        "<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>"
        "<field var='muc#roomconfig_roomsecret'><value>cauldronburn</value></field></x></query></iq>"
    )
    h.sent()
    enter(h, ROOM, "thirdwitch", HAG, x="<x xmlns='http://jabber.org/protocol/muc'><password>cauldronburn</password></x>")
    assert h.component.router.loaded("coven").occupants.by_nick("thirdwitch") is not None


def test_presence_without_nick_is_jid_malformed() -> None:
    h = muc_harness()
    h.receive(f"<presence from='{HAG}' to='{ROOM}'>{MUC_X}</presence>")
    h.expect(
        f"""<presence from='{ROOM}' to='{HAG}' type='error'>{MUC_X}
          <error type='modify'><jid-malformed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
          <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>*</text></error></presence>"""
    )


def test_presence_change_is_broadcast_with_payloads(harness) -> None:
    h = harness
    enter(h, ROOM, "secondwitch", WICCA)
    h.receive(
        f"""<presence from='{WICCA}' to='{ROOM}/secondwitch'><show>xa</show><status>gone where the goblins go</status>
          <x xmlns='vcard-temp:x:update'><photo/></x></presence>"""
    )
    h.expect(
        f"""<presence from='{ROOM}/secondwitch' to='{CRONE}'><show>xa</show><status>gone where the goblins go</status>
          <x xmlns='vcard-temp:x:update'><photo/></x>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' jid='{WICCA}' role='participant'/></x>
        </presence>""",
        f"""<presence from='{ROOM}/secondwitch' to='{WICCA}'><show>xa</show><status>gone where the goblins go</status>
          <x xmlns='vcard-temp:x:update'><photo/></x>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <item affiliation='none' jid='{WICCA}' role='participant'/><status code='110'/></x>
        </presence>""",
    )


def test_leaving(harness) -> None:
    h = harness
    enter(h, ROOM, "secondwitch", WICCA)
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/secondwitch' type='unavailable'><status>gone</status></presence>")
    h.expect(
        f"""<presence from='{ROOM}/secondwitch' to='{CRONE}' type='unavailable'><status>gone</status>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' jid='{WICCA}' role='none'/></x>
        </presence>""",
        f"""<presence from='{ROOM}/secondwitch' to='{WICCA}' type='unavailable'><status>gone</status>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <item affiliation='none' jid='{WICCA}' role='none'/><status code='110'/></x>
        </presence>""",
    )


def test_nick_change(harness) -> None:
    h = harness
    enter(h, ROOM, "thirdwitch", HAG)
    h.receive(f"<presence from='{HAG}' to='{ROOM}/oldhag'/>")
    h.expect(
        f"""<presence from='{ROOM}/thirdwitch' to='{CRONE}' type='unavailable'>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <item affiliation='none' jid='{HAG}' nick='oldhag' role='participant'/><status code='303'/></x>
        </presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{HAG}' type='unavailable'>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <item affiliation='none' jid='{HAG}' nick='oldhag' role='participant'/>
            <status code='110'/><status code='303'/></x>
        </presence>""",
        f"""<presence from='{ROOM}/oldhag' to='{CRONE}'>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' jid='{HAG}' role='participant'/></x>
        </presence>""",
        f"""<presence from='{ROOM}/oldhag' to='{HAG}'>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <item affiliation='none' jid='{HAG}' role='participant'/><status code='110'/></x>
        </presence>""",
    )


def test_nick_change_to_a_nick_in_use_is_a_conflict(harness) -> None:
    h = harness
    enter(h, ROOM, "thirdwitch", HAG)
    h.receive(f"<presence from='{HAG}' to='{ROOM}/firstwitch'/>")
    h.expect(
        f"""<presence from='{ROOM}/firstwitch' to='{HAG}' type='error'>
          <error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
          <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>*</text></error></presence>"""
    )


def test_second_client_of_the_same_user_joins_as_the_same_occupant(harness) -> None:
    h = harness
    enter(h, ROOM, "thirdwitch", HAG)
    other = "hag66@shakespeare.lit/cauldron"
    h.receive(f"<presence from='{other}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    h.expect(
        f"""<presence from='{ROOM}/firstwitch' to='{other}'>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' role='moderator'/></x></presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{CRONE}'>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' jid='{other}' role='participant'/></x>
        </presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{HAG}'>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <item affiliation='none' jid='{other}' role='participant'/><status code='110'/></x></presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{other}'>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <item affiliation='none' jid='{other}' role='participant'/><status code='110'/></x></presence>""",
        f"<message from='{ROOM}' to='{other}' type='groupchat'><subject/></message>",
    )
    room = h.component.router.loaded("coven")
    assert len(room.occupants) == 2
    # One client leaving leaves the occupant in the room.
    h.receive(f"<presence from='{other}' to='{ROOM}/thirdwitch' type='unavailable'/>")
    h.expect(
        f"""<presence from='{ROOM}/thirdwitch' to='{other}' type='unavailable'>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <item affiliation='none' jid='{other}' role='none'/><status code='110'/></x></presence>"""
    )
    assert room.occupants.by_nick("thirdwitch") is not None


def test_temporary_room_vanishes_when_the_last_occupant_leaves(harness) -> None:
    h = harness
    h.receive(f"<presence from='{CRONE}' to='{ROOM}/firstwitch' type='unavailable'/>")
    h.sent()
    assert h.component.router.loaded("coven") is None
    h.receive(f"<iq from='{HAG}' to='{ROOM}' type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    h.expect(
        f"""<iq from='{ROOM}' to='{HAG}' type='error' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/>
          <error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
          <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>*</text></error></iq>"""
    )
    assert h.component.router.loaded("coven") is None


@pytest.mark.parametrize(
    ("creation", "creator", "allowed"),
    [
        ("anyone", "someone@elsewhere.example/x", True),
        ("local", "someone@elsewhere.example/x", False),
        ("local", HAG, True),
        ("admins", HAG, False),
        ("admins", "boss@shakespeare.lit/x", True),
    ],
)
def test_room_creation_policy(creation, creator, allowed) -> None:
    h = muc_harness({"creation": creation, "admins": ["boss@shakespeare.lit"]})
    h.receive(f"<presence from='{creator}' to='{ROOM}/me'>{MUC_X}</presence>")
    sent = h.sent()
    if allowed:
        assert sent[0].get("type") is None
    else:
        assert len(sent) == 1 and sent[0].get("type") == "error"
        assert sent[0].find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}not-allowed") is not None
        assert h.component.router.loaded("coven") is None


def test_service_admin_is_owner_everywhere(harness) -> None:
    h = muc_harness({"admins": ["boss@shakespeare.lit"]})
    instant_room(h, ROOM, CRONE, "firstwitch")
    h.receive(f"<iq from='boss@shakespeare.lit/x' to='{ROOM}' type='get' id='f'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>")
    assert h.sent()[0].get("type") == "result"


def test_entering_again_from_the_same_client_replays_the_entry(harness) -> None:
    h = harness
    enter(h, ROOM, "thirdwitch", HAG)
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    h.expect(
        f"""<presence from='{ROOM}/firstwitch' to='{HAG}'>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' role='moderator'/></x></presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{CRONE}'>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' jid='{HAG}' role='participant'/></x>
        </presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{HAG}'>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <item affiliation='none' jid='{HAG}' role='participant'/><status code='110'/></x></presence>""",
        f"<message from='{ROOM}' to='{HAG}' type='groupchat'><subject/></message>",
    )
    assert len(h.component.router.loaded("coven").occupants) == 2


def test_a_probe_to_an_occupant_is_answered_with_its_presence(harness) -> None:
    """As Prosody: an occupant probing another occupant JID gets that occupant's current presence."""
    h = harness
    enter(h, ROOM, "secondwitch", WICCA)
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/secondwitch'><show>away</show></presence>")
    h.sent()
    h.receive(f"<presence from='{CRONE}' to='{ROOM}/secondwitch' type='probe'/>")
    # The owner is a moderator: it sees the real JID.
    h.expect(
        f"""<presence from='{ROOM}/secondwitch' to='{CRONE}'><show>away</show>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <item affiliation='none' jid='{WICCA}' role='participant'/></x></presence>"""
    )
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/firstwitch' type='probe'/>")
    h.expect(
        f"""<presence from='{ROOM}/firstwitch' to='{WICCA}'>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' role='moderator'/></x></presence>"""
    )
    # Nobody by that nick: it is unavailable.
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/thirdwitch' type='probe'/>")
    h.expect(
        f"""<presence from='{ROOM}/thirdwitch' to='{WICCA}' type='unavailable'>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/></x></presence>"""
    )


def test_a_probe_from_outside_the_room_is_not_acceptable(harness) -> None:
    h = harness
    h.receive(f"<presence from='{HAG}' to='{ROOM}/firstwitch' type='probe'/>")
    h.expect(
        f"""<presence from='{ROOM}/firstwitch' to='{HAG}' type='error'>
          <error type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
          <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>*</text></error></presence>"""
    )
