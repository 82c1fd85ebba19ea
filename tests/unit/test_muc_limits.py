"""Quotas and rate limits: what one user may make the MUC hold or send.

Each test shows the refusal, exactly as it goes out, and that someone under
the limit is not affected.
"""

from __future__ import annotations

import pytest

from component.config import ConfigError
from component.testing import assert_xml_equal
from services.muc.testing import (
    CRONE,
    ERR,
    HAG,
    MUC_X,
    ROOM,
    WICCA,
    configure,
    enter,
    immediate_storage,
    instant_room,
    muc_harness,
)

SERVICE = "chat.shakespeare.lit"
ADMIN = "hecate@shakespeare.lit/broom"
PERSISTENT = "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"


def room(n: int) -> str:
    return f"room{n}@{SERVICE}"


# -- rooms per user ----------------------------------------------------------------


def test_a_user_may_create_only_so_many_rooms() -> None:
    h = muc_harness({"max_rooms_per_user": 2, "admins": ["hecate@shakespeare.lit"]})
    instant_room(h, room(1), CRONE)
    instant_room(h, room(2), CRONE)
    h.receive(f"<presence from='{CRONE}' to='{room(3)}/owner'>{MUC_X}</presence>")
    h.expect(
        f"""<presence from='{room(3)}/owner' to='{CRONE}' type='error'>{MUC_X}
          <error type='cancel'><not-allowed {ERR}/><text {ERR}>you may have at most 2 rooms</text></error></presence>"""
    )
    # The room was not made: someone else creates it.
    instant_room(h, room(3), HAG, "hag")
    h.receive(f"<presence from='{CRONE}' to='{room(3)}/owner'>{MUC_X}</presence>")
    own = next(p for p in h.sent() if p.get("to") == CRONE and p.get("from") == f"{room(3)}/owner")
    assert own.find(".//{http://jabber.org/protocol/muc#user}item").get("affiliation") == "none"
    # Service admins are not counted.
    for n in (4, 5, 6):
        instant_room(h, room(n), ADMIN)
        assert h.component.router.loaded(f"room{n}") is not None


def test_a_room_that_is_gone_no_longer_counts() -> None:
    h = muc_harness({"max_rooms_per_user": 1})
    instant_room(h, room(1), CRONE)
    h.receive(f"<presence from='{CRONE}' to='{room(1)}/owner' type='unavailable'/>")
    h.sent()  # the temporary room vanished with its last occupant
    instant_room(h, room(2), CRONE)
    h.receive(
        f"<iq from='{CRONE}' id='d' to='{room(2)}' type='set'>"
        "<query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query></iq>"
    )
    h.sent()
    enter(h, room(3), "owner", CRONE)
    assert h.component.router.loaded("room3") is not None


def test_stored_rooms_count_against_their_owners_after_a_restart() -> None:
    storage = immediate_storage()
    first = muc_harness({"max_rooms_per_user": 1}, storage=storage)
    instant_room(first, ROOM, CRONE, "firstwitch")
    configure(first, PERSISTENT)
    second = muc_harness({"max_rooms_per_user": 1}, storage=storage)
    second.receive(f"<presence from='{CRONE}' to='{room(2)}/owner'>{MUC_X}</presence>")
    second.expect(
        f"""<presence from='{room(2)}/owner' to='{CRONE}' type='error'>{MUC_X}
          <error type='cancel'><not-allowed {ERR}/><text {ERR}>you may have at most 1 rooms</text></error></presence>"""
    )
    instant_room(second, room(2), WICCA)
    assert second.component.router.loaded("room2") is not None


@pytest.mark.parametrize("value", [-1, 1.5, "10", True])
def test_limits_are_whole_numbers(value: object) -> None:
    with pytest.raises(ConfigError, match=r"components\.\"chat\.shakespeare\.lit\"\.muc\.max_rooms_per_user"):
        muc_harness({"max_rooms_per_user": value})


# -- affiliations per room ------------------------------------------------------------

MUC_ADMIN = "http://jabber.org/protocol/muc#admin"
MUC_USER = "http://jabber.org/protocol/muc#user"
#: The room may hold three affiliations: crone1's ownership and two more.
THREE = {"max_affiliations": 3}


def admin_set(h, items: str, id: str, sender: str = CRONE) -> None:
    h.receive(f"<iq from='{sender}' id='{id}' to='{ROOM}' type='set'><query xmlns='{MUC_ADMIN}'>{items}</query></iq>")


def members(*jids: str) -> str:
    return "".join(f"<item affiliation='member' jid='{jid}'/>" for jid in jids)


def too_many(id: str, payload: str, to: str = CRONE) -> str:
    return f"""<iq from='{ROOM}' id='{id}' to='{to}' type='error'>{payload}
      <error type='modify'><policy-violation {ERR}/><text {ERR}>a room may hold at most 3 affiliations</text></error></iq>"""


def told(affiliation: str, jid: str, status: str = "") -> str:
    """The message telling the room's moderator that someone absent has a new affiliation (example 195)."""
    return f"""<message from='{ROOM}' to='{CRONE}'>
      <x xmlns='{MUC_USER}'><item affiliation='{affiliation}' jid='{jid}'/>{status}</x></message>"""


def affiliation_list(h, affiliation: str, id: str = "list") -> list[str]:
    h.receive(f"<iq from='{CRONE}' id='{id}' to='{ROOM}' type='get'><query xmlns='{MUC_ADMIN}'>"
              f"<item affiliation='{affiliation}'/></query></iq>")
    (reply,) = h.sent()
    assert reply.get("type") == "result"
    return [item.get("jid") for item in reply.iter(f"{{{MUC_ADMIN}}}item")]


def test_a_room_holds_only_so_many_affiliations() -> None:
    h = muc_harness(THREE)
    instant_room(h, ROOM, CRONE, "firstwitch")
    # Three members and the owner would be four: the whole set is refused, and nothing is told.
    three = members("hag66@shakespeare.lit", "hecate@shakespeare.lit", "wiccarocks@shakespeare.lit")
    admin_set(h, three, "over")
    h.expect(too_many("over", f"<query xmlns='{MUC_ADMIN}'>{three}</query>"))
    assert affiliation_list(h, "member") == []
    # Two fit.
    admin_set(h, members("hag66@shakespeare.lit", "wiccarocks@shakespeare.lit"), "two")
    h.expect(
        told("member", "hag66@shakespeare.lit"),
        told("member", "wiccarocks@shakespeare.lit"),
        f"<iq from='{ROOM}' id='two' to='{CRONE}' type='result'/>",
    )
    # At the limit, a change of someone's affiliation adds nothing: it is made.
    admin_set(h, "<item affiliation='admin' jid='wiccarocks@shakespeare.lit'/>", "promote")
    h.expect(told("admin", "wiccarocks@shakespeare.lit"), f"<iq from='{ROOM}' id='promote' to='{CRONE}' type='result'/>")
    # A ban is an affiliation too.
    ban = "<item affiliation='outcast' jid='hecate@shakespeare.lit'/>"
    admin_set(h, ban, "ban")
    h.expect(too_many("ban", f"<query xmlns='{MUC_ADMIN}'>{ban}</query>"))
    # Taking one away makes room, in the same set as the one that takes its place.
    admin_set(h, "<item affiliation='none' jid='hag66@shakespeare.lit'/>" + ban, "swap")
    h.expect(
        told("none", "hag66@shakespeare.lit"),
        told("outcast", "hecate@shakespeare.lit", "<status code='301'/>"),
        f"<iq from='{ROOM}' id='swap' to='{CRONE}' type='result'/>",
    )
    assert affiliation_list(h, "member") == []
    assert affiliation_list(h, "outcast") == ["hecate@shakespeare.lit"]


def test_a_form_whose_lists_would_hold_too_many_is_refused_whole() -> None:
    h = muc_harness(THREE)
    instant_room(h, ROOM, CRONE, "firstwitch")
    form = (
        "<x xmlns='jabber:x:data' type='submit'>"
        "<field var='muc#roomconfig_roomname'><value>A Dark Cave</value></field>"
        "<field var='muc#roomconfig_roomadmins'><value>hag66@shakespeare.lit</value>"
        "<value>hecate@shakespeare.lit</value><value>wiccarocks@shakespeare.lit</value></field></x>"
    )
    payload = f"<query xmlns='http://jabber.org/protocol/muc#owner'>{form}</query>"
    h.receive(f"<iq from='{CRONE}' id='cfg' to='{ROOM}' type='set'>{payload}</iq>")
    h.expect(too_many("cfg", payload))
    assert affiliation_list(h, "admin") == []
    assert h.component.router.loaded("coven").config.name == ""


def test_a_refused_change_leaves_the_stored_list_as_it_was() -> None:
    storage = immediate_storage()
    first = muc_harness(THREE, storage=storage)
    instant_room(first, ROOM, CRONE, "firstwitch")
    configure(first, PERSISTENT)
    admin_set(first, members("hag66@shakespeare.lit"), "one")
    first.sent()
    three = members("hecate@shakespeare.lit", "wiccarocks@shakespeare.lit", "witch@shakespeare.lit")
    admin_set(first, three, "over")
    first.expect(too_many("over", f"<query xmlns='{MUC_ADMIN}'>{three}</query>"))
    second = muc_harness(THREE, storage=storage)
    assert affiliation_list(second, "member") == ["hag66@shakespeare.lit"]
    assert affiliation_list(second, "owner") == ["crone1@shakespeare.lit"]


def test_every_way_to_an_affiliation_is_held_to_the_limit() -> None:
    h = muc_harness({**THREE, "allow_unaffiliated_register": True, "admins": ["hecate@shakespeare.lit"]})
    instant_room(h, ROOM, CRONE, "firstwitch")
    admin_set(h, members("hag66@shakespeare.lit", "witch@shakespeare.lit"), "two")
    h.sent()
    # Registering would make wiccarocks a fourth.
    register(h, WICCA, "secondwitch", "reg")
    (reply,) = h.sent()
    assert reply.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}policy-violation") is not None
    # So would an invitation into a members-only room.
    configure(h, "<field var='muc#roomconfig_membersonly'><value>1</value></field>")
    invite(h, ["wiccarocks@shakespeare.lit"])
    (reply,) = h.sent()
    assert reply.get("type") == "error"
    assert reply.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}policy-violation") is not None
    assert affiliation_list(h, "member") == ["hag66@shakespeare.lit", "witch@shakespeare.lit"]
    # A service admin is held to no quota (as elsewhere).
    admin_set(h, members("wiccarocks@shakespeare.lit"), "admin", sender=ADMIN)
    assert h.sent()[-1].get("type") == "result"
    assert len(affiliation_list(h, "member")) == 3


def test_the_limit_is_a_whole_number() -> None:
    with pytest.raises(ConfigError, match=r"muc\.max_affiliations"):
        muc_harness({"max_affiliations": -1})


# -- IQs waiting for another occupant ------------------------------------------------


def version_query(h, id: str, sender: str = WICCA) -> None:
    h.receive(f"<iq from='{sender}' id='{id}' to='{ROOM}/firstwitch' type='get'><query xmlns='jabber:iq:version'/></iq>")


def test_an_occupant_may_have_only_so_many_iqs_waiting_for_answers() -> None:
    h = muc_harness({"max_pending_iqs": 2})
    instant_room(h, ROOM, CRONE, "firstwitch")
    enter(h, ROOM, "secondwitch", WICCA)
    enter(h, ROOM, "thirdwitch", HAG)
    version_query(h, "v1")
    version_query(h, "v2")
    first, _ = h.expect(
        f"<iq from='{ROOM}/secondwitch' id='*' to='{CRONE}' type='get'><query xmlns='jabber:iq:version'/></iq>",
        f"<iq from='{ROOM}/secondwitch' id='*' to='{CRONE}' type='get'><query xmlns='jabber:iq:version'/></iq>",
    )
    version_query(h, "v3")
    h.expect(
        f"""<iq from='{ROOM}/firstwitch' id='v3' to='{WICCA}' type='error'><query xmlns='jabber:iq:version'/>
          <error type='wait'><resource-constraint {ERR}/>
            <text {ERR}>too many of your queries are waiting for an answer</text></error></iq>"""
    )
    # Someone else's queries are their own.
    version_query(h, "h1", HAG)
    h.expect(f"<iq from='{ROOM}/thirdwitch' id='*' to='{CRONE}' type='get'><query xmlns='jabber:iq:version'/></iq>")
    # An answer frees a place.
    h.receive(f"<iq from='{CRONE}' id='{first.get('id')}' to='{ROOM}/secondwitch' type='result'/>")
    h.expect(f"<iq from='{ROOM}/firstwitch' id='v1' to='{WICCA}' type='result'/>")
    version_query(h, "v4")
    h.expect(f"<iq from='{ROOM}/secondwitch' id='*' to='{CRONE}' type='get'><query xmlns='jabber:iq:version'/></iq>")
    # So does the timeout of those never answered.
    h.clock.advance(30)
    h.sent()
    version_query(h, "v5")
    h.expect(f"<iq from='{ROOM}/secondwitch' id='*' to='{CRONE}' type='get'><query xmlns='jabber:iq:version'/></iq>")


# -- invitations, voice requests and registrations a minute ---------------------------------


def invite(h, invitees: list[str], sender: str = CRONE, id: str = "inv") -> None:
    invites = "".join(f"<invite to='{jid}'/>" for jid in invitees)
    h.receive(f"<message from='{sender}' id='{id}' to='{ROOM}'><x xmlns='http://jabber.org/protocol/muc#user'>{invites}</x></message>")


def invitation(to: str, sender: str = "firstwitch", id: str = "inv") -> str:
    """The invitation from the occupant ``sender`` (a nick: the room is semi-anonymous)."""
    return f"""<message from='{ROOM}' id='{id}' to='{to}'><x xmlns='http://jabber.org/protocol/muc#user'>
      <invite from='{ROOM}/{sender}'><reason/></invite></x><x xmlns='jabber:x:conference' jid='{ROOM}'/>
      <body>{ROOM}/{sender} invited you to the room {ROOM}</body></message>"""


def test_a_user_may_send_only_so_many_invitations_a_minute() -> None:
    h = muc_harness({"invitations_per_minute": 3})
    instant_room(h, ROOM, CRONE, "firstwitch")
    enter(h, ROOM, "secondwitch", WICCA)
    invite(h, ["a@shakespeare.lit", "b@shakespeare.lit"])
    invite(h, ["c@shakespeare.lit"])
    h.expect(invitation("a@shakespeare.lit"), invitation("b@shakespeare.lit"), invitation("c@shakespeare.lit"))
    invite(h, ["d@shakespeare.lit"], id="over")
    h.expect(
        f"""<message from='{ROOM}' id='over' to='{CRONE}' type='error'>
          <x xmlns='http://jabber.org/protocol/muc#user'><invite to='d@shakespeare.lit'/></x>
          <error type='wait'><resource-constraint {ERR}/><text {ERR}>too many invitations; try again in a minute</text></error>
        </message>"""
    )
    invite(h, ["w@shakespeare.lit"], WICCA)
    h.expect(invitation("w@shakespeare.lit", "secondwitch"))
    h.clock.advance(20)  # a third of a minute: one more
    invite(h, ["d@shakespeare.lit"])
    h.expect(invitation("d@shakespeare.lit"))
    invite(h, ["e@shakespeare.lit"])
    assert h.sent()[0].get("type") == "error"


def voice_request(h, id: str) -> None:
    h.receive(
        f"""<message from='{HAG}' id='{id}' to='{ROOM}'><x xmlns='jabber:x:data' type='submit'>
          <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>
          <field var='muc#role' type='list-single' label='Requested role'><value>participant</value></field></x></message>"""
    )


def test_a_visitor_may_ask_for_voice_only_so_often() -> None:
    h = muc_harness({"voice_requests_per_minute": 2})
    instant_room(h, ROOM, CRONE, "firstwitch")
    configure(h, "<field var='muc#roomconfig_moderatedroom'><value>1</value></field>")
    enter(h, ROOM, "thirdwitch", HAG)
    voice_request(h, "r1")
    voice_request(h, "r2")
    assert [m.get("to") for m in h.sent()] == [CRONE, CRONE]
    voice_request(h, "r3")
    h.expect(
        f"""<message from='{ROOM}' id='r3' to='{HAG}' type='error'><x xmlns='jabber:x:data' type='submit'>
          <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>
          <field var='muc#role' type='list-single' label='Requested role'><value>participant</value></field></x>
          <error type='wait'><resource-constraint {ERR}/><text {ERR}>too many voice requests; try again in a minute</text></error>
        </message>"""
    )
    h.clock.advance(30)
    voice_request(h, "r4")
    assert [m.get("to") for m in h.sent()] == [CRONE]


def register(h, sender: str, nick: str, id: str, target: str = ROOM) -> None:
    h.receive(
        f"""<iq from='{sender}' id='{id}' to='{target}' type='set'><query xmlns='jabber:iq:register'>
          <x xmlns='jabber:x:data' type='submit'>
            <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>
            <field var='muc#register_roomnick'><value>{nick}</value></field></x></query></iq>"""
    )


def test_a_user_may_register_only_so_often() -> None:
    h = muc_harness({"registrations_per_minute": 2, "allow_unaffiliated_register": True})
    for n in (1, 2, 3):
        instant_room(h, room(n), CRONE)

    def answers() -> list[tuple[str | None, str | None]]:
        # Each room also tells its owner of the new member (see test_muc_register).
        return [(s.get("id"), s.get("type")) for s in h.sent() if s.tag.endswith("}iq")]

    register(h, HAG, "hag", "g1", room(1))
    register(h, HAG, "hag", "g2", room(2))
    assert answers() == [("g1", "result"), ("g2", "result")]
    register(h, HAG, "hag", "g3", room(3))
    h.expect(
        f"""<iq from='{room(3)}' id='g3' to='{HAG}' type='error'><query xmlns='jabber:iq:register'>
          <x xmlns='jabber:x:data' type='submit'>
            <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>
            <field var='muc#register_roomnick'><value>hag</value></field></x></query>
          <error type='wait'><resource-constraint {ERR}/><text {ERR}>too many registrations; try again in a minute</text></error>
        </iq>"""
    )
    register(h, WICCA, "wicca", "w1", room(3))
    assert answers() == [("w1", "result")]
    h.clock.advance(30)
    register(h, HAG, "hag", "g4", room(3))
    assert answers() == [("g4", "result")]


# -- groupchat and presence floods ------------------------------------------------


OVERACTIVE = f"<error type='wait'><policy-violation {ERR}/><text {ERR}>The room is currently overactive, please try again later</text></error>"


def say(h, text: str, sender: str = WICCA) -> None:
    h.receive(f"<message from='{sender}' id='{text}' to='{ROOM}' type='groupchat'><body>{text}</body></message>")


def test_groupchat_has_a_burst_then_a_rate() -> None:
    h = muc_harness({"groupchat_burst": 2, "groupchat_rate": 0.5})
    instant_room(h, ROOM, CRONE, "firstwitch")
    enter(h, ROOM, "secondwitch", WICCA)
    say(h, "one")
    say(h, "two")
    assert len(h.sent()) == 4  # each reflected to both
    say(h, "three")
    h.expect(f"<message from='{ROOM}' id='three' to='{WICCA}' type='error'><body>three</body>{OVERACTIVE}</message>")
    say(h, "mine", CRONE)  # the others speak on
    assert len(h.sent()) == 2
    h.clock.advance(1.9)
    say(h, "four")
    assert h.sent()[0].get("type") == "error"
    h.clock.advance(0.1)  # two seconds: one message
    say(h, "five")
    assert [m.get("type") for m in h.sent()] == ["groupchat", "groupchat"]
    say(h, "six")
    assert h.sent()[0].get("type") == "error"


def test_presence_has_a_burst_then_a_rate_and_leaving_is_never_refused() -> None:
    h = muc_harness({"presence_burst": 2, "presence_rate": 0.1})
    instant_room(h, ROOM, CRONE, "firstwitch")  # one presence
    enter(h, ROOM, "secondwitch", WICCA)
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/secondwitch'><show>away</show></presence>")
    assert len(h.sent()) == 2
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/secondwitch'><show>xa</show></presence>")
    h.expect(
        f"<presence from='{ROOM}/secondwitch' to='{WICCA}' type='error'><show>xa</show>{OVERACTIVE}</presence>"
    )
    h.receive(f"<presence from='{CRONE}' to='{ROOM}/firstwitch'><show>dnd</show></presence>")
    assert len(h.sent()) == 2
    h.clock.advance(10)
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/secondwitch'><show>xa</show></presence>")
    assert len(h.sent()) == 2
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/secondwitch' type='unavailable'/>")
    assert [p.get("type") for p in h.sent()] == ["unavailable", "unavailable"]


def test_service_admins_are_not_limited() -> None:
    h = muc_harness({"groupchat_burst": 1, "admins": ["hecate@shakespeare.lit"]})
    instant_room(h, ROOM, ADMIN)
    for n in range(5):
        say(h, f"m{n}", ADMIN)
    assert [m.get("type") for m in h.sent()] == ["groupchat"] * 5


@pytest.mark.parametrize("value", [-0.5, "fast", None])
def test_rates_are_numbers(value: object) -> None:
    with pytest.raises(ConfigError, match=r"muc\.groupchat_rate"):
        muc_harness({"groupchat_rate": value})


# -- the presence kept for newcomers ------------------------------------------------


def test_a_big_presence_is_kept_without_the_extensions_that_do_not_fit() -> None:
    h = muc_harness({"max_presence_bytes": 2048})
    instant_room(h, ROOM, CRONE, "firstwitch")
    big = "<big xmlns='urn:example:big'>" + "x" * 100_000 + "</big>"
    caps = "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://gajim.org' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/>"
    small = "<x xmlns='vcard-temp:x:update'><photo>01b87fcd030b72895ff8e88db57ec525450f000d</photo></x>"
    h.receive(
        f"<presence from='{WICCA}' to='{ROOM}/secondwitch'>{big}<show>away</show><status>brewing</status>"
        f"{caps}{small}<priority>5</priority>{MUC_X}</presence>"
    )
    h.sent()
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    sent = h.sent()
    wicca = next(p for p in sent if p.get("from") == f"{ROOM}/secondwitch")
    assert_xml_equal(
        wicca,
        f"""<presence from='{ROOM}/secondwitch' to='{HAG}'><show>away</show><status>brewing</status>
          {caps}{small}<priority>5</priority>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/></x></presence>""",
    )
    occupant = h.component.router.loaded("coven").occupants.by_nick("secondwitch")
    assert all(len(template) <= 2048 for template in occupant.sessions.values())


# -- declines ----------------------------------------------------------------------------


def decline(h, sender: str, to: str = "crone1@shakespeare.lit", id: str = "dec") -> None:
    h.receive(
        f"""<message from='{sender}' id='{id}' to='{ROOM}'><x xmlns='http://jabber.org/protocol/muc#user'>
          <decline to='{to}'><reason>Sorry, I'm too busy right now.</reason></decline></x></message>"""
    )


def declined(sender: str, to: str = "crone1@shakespeare.lit", id: str = "dec") -> str:
    return f"""<message from='{ROOM}' id='{id}' to='{to}'><x xmlns='http://jabber.org/protocol/muc#user'>
      <decline from='{sender}'><reason>Sorry, I'm too busy right now.</reason></decline></x>
      <body>{sender} declined your invitation to the room {ROOM} (Sorry, I'm too busy right now.)</body></message>"""


def refused_decline(sender: str, to: str = "crone1@shakespeare.lit", id: str = "dec") -> str:
    return f"""<message from='{ROOM}' id='{id}' to='{sender}' type='error'><x xmlns='http://jabber.org/protocol/muc#user'>
      <decline to='{to}'><reason>Sorry, I'm too busy right now.</reason></decline></x>
      <error type='modify'><not-acceptable {ERR}/><text {ERR}>only someone invited may decline an invitation</text></error>
    </message>"""


def test_only_the_invited_decline_and_only_to_their_inviter_once() -> None:
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    stranger = "macbeth@shakespeare.lit/castle"
    decline(h, stranger, to="duncan@shakespeare.lit")
    h.expect(refused_decline(stranger, to="duncan@shakespeare.lit"))
    invite(h, ["hecate@shakespeare.lit"])
    h.sent()
    decline(h, ADMIN, to="duncan@shakespeare.lit")  # not the one who invited
    h.expect(refused_decline(ADMIN, to="duncan@shakespeare.lit"))
    decline(h, ADMIN)
    h.expect(declined("hecate@shakespeare.lit"))
    decline(h, ADMIN)
    h.expect(refused_decline(ADMIN))


def test_an_invitation_may_be_declined_for_a_day() -> None:
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    invite(h, ["hecate@shakespeare.lit", "macbeth@shakespeare.lit"])
    h.sent()
    h.clock.advance(24 * 3600 - 1)
    decline(h, ADMIN)
    h.expect(declined("hecate@shakespeare.lit"))
    h.clock.advance(1)
    decline(h, "macbeth@shakespeare.lit/castle")
    h.expect(refused_decline("macbeth@shakespeare.lit/castle"))


def test_occupants_may_decline() -> None:
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    enter(h, ROOM, "secondwitch", WICCA)
    decline(h, WICCA)
    h.expect(declined("wiccarocks@shakespeare.lit"))


# -- rooms that do not exist --------------------------------------------------------------


def disco(h, target: str, id: str = "d") -> None:
    h.receive(f"<iq from='{HAG}' id='{id}' to='{target}' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")


def test_a_room_that_does_not_exist_is_read_from_the_database_once_a_while() -> None:
    h = muc_harness()
    storage = h.storage
    before = storage.transactions
    for n in range(50):
        disco(h, f"nosuch@{SERVICE}", id=f"d{n}")
    assert [e.get("type") for e in h.sent()] == ["error"] * 50
    assert storage.transactions - before == 1
    h.clock.advance(60)
    disco(h, f"nosuch@{SERVICE}")
    h.sent()
    assert storage.transactions - before == 2


def test_a_room_remembered_as_absent_can_be_created_and_then_found() -> None:
    h = muc_harness({"absent_rooms_seconds": 3600})
    disco(h, f"nosuch@{SERVICE}")
    h.sent()
    instant_room(h, f"nosuch@{SERVICE}", CRONE)
    configure(h, PERSISTENT, room=f"nosuch@{SERVICE}")
    h.receive(f"<presence from='{CRONE}' to='nosuch@{SERVICE}/owner' type='unavailable'/>")
    h.clock.advance(300)  # it leaves memory, stays in the database
    h.sent()
    assert h.component.router.loaded("nosuch") is None
    disco(h, f"nosuch@{SERVICE}", id="found")
    (reply,) = h.sent()
    assert reply.get("type") == "result"
