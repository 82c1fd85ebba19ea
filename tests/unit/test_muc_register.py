"""Registering with a room and reserved nicks (XEP-0045 §7.10, §7.12)."""

from __future__ import annotations

import pytest

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


def register(h, who: str, nick: str, id: str = "reg2") -> None:
    h.receive(
        f"""<iq from='{who}' id='{id}' to='{ROOM}' type='set'><query xmlns='jabber:iq:register'>
          <x xmlns='jabber:x:data' type='submit'>
            <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>
            <field var='muc#register_roomnick'><value>{nick}</value></field>
          </x></query></iq>"""
    )


#: A service where anyone may register, as Prosody's allow_unaffiliated_register.
OPEN = {"allow_unaffiliated_register": True}


@pytest.fixture
def harness():
    h = muc_harness(OPEN)
    instant_room(h, ROOM, CRONE, "firstwitch")
    return h


def test_an_unaffiliated_user_may_not_register_by_default() -> None:
    """Like Prosody: registering would make anybody a member (and give a visitor voice)."""
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    h.receive(f"<iq from='{HAG}' id='reg1' to='{ROOM}' type='get'><query xmlns='jabber:iq:register'/></iq>")
    h.expect(
        f"""<iq from='{ROOM}' id='reg1' to='{HAG}' type='error'><query xmlns='jabber:iq:register'/>
          <error type='auth'><registration-required {ERR}/><text {ERR}>*</text></error></iq>"""
    )
    register(h, HAG, "thirdwitch")
    h.expect(
        f"""<iq from='{ROOM}' id='reg2' to='{HAG}' type='error'><query xmlns='jabber:iq:register'>
          <x xmlns='jabber:x:data' type='submit'>
            <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>
            <field var='muc#register_roomnick'><value>thirdwitch</value></field>
          </x></query>
          <error type='auth'><registration-required {ERR}/><text {ERR}>*</text></error></iq>"""
    )
    # Once a member, the same user may.
    h.receive(
        f"<iq from='{CRONE}' id='m' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#admin'>"
        "<item affiliation='member' jid='hag66@shakespeare.lit'/></query></iq>"
    )
    h.sent()
    register(h, HAG, "thirdwitch", "reg3")
    h.expect(f"<iq from='{ROOM}' id='reg3' to='{HAG}' type='result'/>")


def test_registration_form(harness) -> None:
    h = harness
    h.receive(f"<iq from='{HAG}' id='reg1' to='{ROOM}' type='get'><query xmlns='jabber:iq:register'/></iq>")
    h.expect(
        f"""<iq from='{ROOM}' id='reg1' to='{HAG}' type='result'>
          <query xmlns='jabber:iq:register'>
            <instructions>*</instructions>
            <x xmlns='jabber:x:data' type='form'>
              <title>Registration with {ROOM}</title>
              <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/muc#register</value></field>
              <field var='muc#register_roomnick' type='text-single' label='Desired Nickname'><required/></field>
            </x></query></iq>"""
    )


def test_registering_makes_a_member_and_reserves_the_nick(harness) -> None:
    h = harness
    register(h, HAG, "thirdwitch")
    h.expect(
        # The owner learns of the new member, who is not in the room (XEP-0045 1.34 example 195).
        f"""<message from='{ROOM}' to='{CRONE}'><x xmlns='http://jabber.org/protocol/muc#user'>
          <item affiliation='member' jid='hag66@shakespeare.lit'/></x></message>""",
        f"<iq from='{ROOM}' id='reg2' to='{HAG}' type='result'/>",
    )
    h.receive(f"<iq from='{HAG}' id='reg3' to='{ROOM}' type='get'><query xmlns='jabber:iq:register'/></iq>")
    h.expect(
        f"""<iq from='{ROOM}' id='reg3' to='{HAG}' type='result'><query xmlns='jabber:iq:register'>
          <registered/><username>thirdwitch</username></query></iq>"""
    )
    h.receive(
        f"<iq from='{HAG}' id='getnick1' to='{ROOM}' type='get'>"
        "<query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/></iq>"
    )
    h.expect(
        f"""<iq from='{ROOM}' id='getnick1' to='{HAG}' type='result'>
          <query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'>
            <identity category='conference' name='thirdwitch' type='text'/></query></iq>"""
    )
    # Someone else may not take the nick.
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    h.expect(
        f"""<presence from='{ROOM}/thirdwitch' to='{WICCA}' type='error'>{MUC_X}
          <error type='cancel'><conflict {ERR}/><text {ERR}>*</text></error></presence>"""
    )
    register(h, WICCA, "thirdwitch", "reg4")
    assert h.sent()[0].find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}conflict") is not None
    # Its owner enters as a member.
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    own = h.sent()[-2]
    assert own.find(".//{http://jabber.org/protocol/muc#user}item").get("affiliation") == "member"
    h.receive(
        f"<iq from='{CRONE}' id='m' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/muc#admin'>"
        "<item affiliation='member'/></query></iq>"
    )
    h.expect(
        f"""<iq from='{ROOM}' id='m' to='{CRONE}' type='result'><query xmlns='http://jabber.org/protocol/muc#admin'>
          <item affiliation='member' jid='hag66@shakespeare.lit' nick='thirdwitch'/></query></iq>"""
    )


def test_no_reserved_nick_gives_an_empty_answer(harness) -> None:
    h = harness
    h.receive(
        f"<iq from='{HAG}' id='getnick1' to='{ROOM}' type='get'>"
        "<query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/></iq>"
    )
    h.expect(
        f"""<iq from='{ROOM}' id='getnick1' to='{HAG}' type='result'>
          <query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/></iq>"""
    )


def test_members_only_rooms_take_registrations_from_members_only(harness) -> None:
    h = harness
    h.receive(
        f"<iq from='{CRONE}' id='c' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        "<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_membersonly'><value>1</value></field></x></query></iq>"
    )
    h.sent()
    register(h, HAG, "thirdwitch")
    assert h.sent()[0].find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}registration-required") is not None


def test_cancelling_a_registration_frees_the_nick(harness) -> None:
    h = harness
    register(h, HAG, "thirdwitch")
    h.receive(f"<iq from='{HAG}' id='u' to='{ROOM}' type='set'><query xmlns='jabber:iq:register'><remove/></query></iq>")
    h.sent()
    enter(h, ROOM, "thirdwitch", WICCA)
    assert h.component.router.loaded("coven").occupants.by_nick("thirdwitch") is not None


def test_a_registered_nick_survives_a_restart() -> None:
    storage = immediate_storage()
    first = muc_harness(OPEN, storage=storage)
    instant_room(first, ROOM, CRONE, "firstwitch")
    first.receive(
        f"<iq from='{CRONE}' id='c' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        "<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query></iq>"
    )
    register(first, HAG, "thirdwitch")
    second = muc_harness(OPEN, storage=storage)
    second.receive(f"<presence from='{WICCA}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    assert second.sent()[0].get("type") == "error"


def test_an_admins_item_with_a_nick_reserves_it_and_a_ban_frees_it(harness) -> None:
    """§9.3: an admin may give the member's nick with the item; §9.1: a banned user keeps no nick."""
    h = harness
    h.receive(
        f"<iq from='{CRONE}' id='m' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#admin'>"
        "<item affiliation='member' jid='hag66@shakespeare.lit' nick='thirdwitch'/></query></iq>"
    )
    h.sent()
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    assert h.sent()[0].find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}conflict") is not None
    # A nick that someone else holds is refused.
    h.receive(
        f"<iq from='{CRONE}' id='m2' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#admin'>"
        "<item affiliation='member' jid='wiccarocks@shakespeare.lit' nick='ThirdWitch'/></query></iq>"
    )
    h.expect(
        f"""<iq from='{ROOM}' id='m2' to='{CRONE}' type='error'><query xmlns='http://jabber.org/protocol/muc#admin'>
          <item affiliation='member' jid='wiccarocks@shakespeare.lit' nick='ThirdWitch'/></query>
          <error type='cancel'><conflict {ERR}/><text {ERR}>*</text></error></iq>"""
    )
    h.receive(
        f"<iq from='{CRONE}' id='b' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#admin'>"
        "<item affiliation='outcast' jid='hag66@shakespeare.lit'/></query></iq>"
    )
    h.sent()
    enter(h, ROOM, "thirdwitch", WICCA)
    assert h.component.router.loaded("coven").occupants.by_nick("thirdwitch") is not None
