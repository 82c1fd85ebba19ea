"""Room configuration and discovery (XEP-0045 §6, §10.1, §10.2)."""

from __future__ import annotations

import pytest

from services.muc.testing import CRONE, ERR, HAG, ROOM, WICCA, enter, instant_room, muc_harness

XDATA = "{jabber:x:data}"


def submit(h, fields: str, who: str = CRONE, id: str = "cfg") -> None:
    h.receive(
        f"<iq from='{who}' id='{id}' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        f"<x xmlns='jabber:x:data' type='submit'>"
        "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"
        f"{fields}</x></query></iq>"
    )


@pytest.fixture
def harness():
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    return h


def test_owner_gets_the_configuration_form(harness) -> None:
    h = harness
    h.receive(f"<iq from='{CRONE}' id='config1' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>")
    (reply,) = h.sent()
    assert reply.get("type") == "result"
    form = reply[0][0]
    assert form.get("type") == "form"
    fields = {f.get("var"): (f.get("type"), [v.text or "" for v in f.findall(f"{XDATA}value")]) for f in form.iter(f"{XDATA}field")}
    assert fields["FORM_TYPE"] == ("hidden", ["http://jabber.org/protocol/muc#roomconfig"])
    assert fields["muc#roomconfig_roomname"] == ("text-single", [""])
    assert fields["muc#roomconfig_persistentroom"] == ("boolean", ["0"])
    assert fields["muc#roomconfig_publicroom"] == ("boolean", ["1"])
    assert fields["muc#roomconfig_membersonly"] == ("boolean", ["0"])
    assert fields["muc#roomconfig_moderatedroom"] == ("boolean", ["0"])
    assert fields["muc#roomconfig_passwordprotectedroom"] == ("boolean", ["0"])
    assert fields["muc#roomconfig_roomsecret"] == ("text-private", [""])
    assert fields["muc#roomconfig_whois"] == ("list-single", ["moderators"])
    assert fields["muc#roomconfig_changesubject"] == ("boolean", ["0"])
    assert fields["muc#roomconfig_allowpm"] == ("list-single", ["anyone"])
    assert fields["muc#roomconfig_allowinvites"] == ("boolean", ["0"])
    assert fields["muc#roomconfig_maxusers"] == ("list-single", ["none"])
    assert fields["muc#roomconfig_historylength"] == ("text-single", ["20"])
    assert fields["muc#roomconfig_roomdesc"] == ("text-single", [""])
    assert fields["muc#roomconfig_lang"] == ("text-single", [""])
    assert fields["muc#roomconfig_enablelogging"] == ("boolean", ["0"])


def test_only_owners_configure(harness) -> None:
    h = harness
    enter(h, ROOM, "secondwitch", WICCA)
    h.receive(f"<iq from='{WICCA}' id='c1' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>")
    h.expect(
        f"""<iq from='{ROOM}' to='{WICCA}' id='c1' type='error'><query xmlns='http://jabber.org/protocol/muc#owner'/>
          <error type='auth'><forbidden {ERR}/><text {ERR}>*</text></error></iq>"""
    )
    submit(h, "<field var='muc#roomconfig_roomname'><value>Mine</value></field>", who=WICCA, id="c2")
    assert h.sent()[0].get("type") == "error"


def test_configuration_change_is_announced_with_104(harness) -> None:
    h = harness
    enter(h, ROOM, "secondwitch", WICCA)
    submit(h, "<field var='muc#roomconfig_roomname'><value>A Dark Cave</value></field>")
    # §10.2 Examples 166 and 167: the owner's result, then the room's notice (as Prosody).
    h.expect(
        f"<iq from='{ROOM}' to='{CRONE}' type='result' id='cfg'/>",
        f"""<message from='{ROOM}' to='{CRONE}' type='groupchat'>
          <x xmlns='http://jabber.org/protocol/muc#user'><status code='104'/></x></message>""",
        f"""<message from='{ROOM}' to='{WICCA}' type='groupchat'>
          <x xmlns='http://jabber.org/protocol/muc#user'><status code='104'/></x></message>""",
    )
    # Submitting the same settings again changes nothing and announces nothing.
    submit(h, "<field var='muc#roomconfig_roomname'><value>A Dark Cave</value></field>", id="again")
    h.expect(f"<iq from='{ROOM}' to='{CRONE}' type='result' id='again'/>")


@pytest.mark.parametrize(
    ("fields", "codes"),
    [
        ("<field var='muc#roomconfig_whois'><value>anyone</value></field>", ["172"]),
        ("<field var='muc#roomconfig_enablelogging'><value>1</value></field>", ["170"]),
    ],
)
def test_privacy_changes_have_their_status_codes(harness, fields, codes) -> None:
    """§10.2.1 (Table 6): a privacy-related change has its own code, and no 104 (as Prosody)."""
    h = harness
    submit(h, fields)
    announce = h.sent()[1]  # after the owner's result
    assert [s.get("code") for s in announce.iter("{http://jabber.org/protocol/muc#user}status")] == codes
    back = fields.replace(">anyone<", ">moderators<").replace("<value>1</value>", "<value>0</value>")
    submit(h, back)
    announce = h.sent()[1]
    assert [s.get("code") for s in announce.iter("{http://jabber.org/protocol/muc#user}status")] == [
        str(int(codes[0]) + 1)
    ]
    # With another change, 104 too.
    submit(h, fields + "<field var='muc#roomconfig_roomname'><value>A Dark Cave</value></field>")
    announce = h.sent()[1]
    assert [s.get("code") for s in announce.iter("{http://jabber.org/protocol/muc#user}status")] == ["104", codes[0]]


@pytest.mark.parametrize(
    ("fields", "condition"),
    [
        ("<field var='muc#roomconfig_whois'><value>nobody</value></field>", "not-acceptable"),
        ("<field var='muc#roomconfig_persistentroom'><value>maybe</value></field>", "not-acceptable"),
        ("<field var='muc#roomconfig_maxusers'><value>many</value></field>", "not-acceptable"),
        ("<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>", "not-acceptable"),
    ],
)
def test_unreadable_settings_are_refused(harness, fields, condition) -> None:
    h = harness
    submit(h, fields)
    (reply,) = h.sent()
    assert reply.get("type") == "error"
    assert reply.find(f".//{{urn:ietf:params:xml:ns:xmpp-stanzas}}{condition}") is not None


def test_form_of_another_type_is_a_bad_request(harness) -> None:
    h = harness
    h.receive(
        f"<iq from='{CRONE}' id='o' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:other</value></field></x></query></iq>"
    )
    (reply,) = h.sent()
    assert reply.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}bad-request") is not None


def test_history_length_is_capped_by_the_service() -> None:
    h = muc_harness({"max_history": 5})
    instant_room(h, ROOM, CRONE, "firstwitch")
    submit(h, "<field var='muc#roomconfig_historylength'><value>100</value></field>")
    h.sent()
    assert h.component.router.loaded("coven").config.history_length == 5


def test_becoming_members_only_removes_non_members_with_322(harness) -> None:
    h = harness
    enter(h, ROOM, "secondwitch", WICCA)
    submit(h, "<field var='muc#roomconfig_membersonly'><value>1</value></field>")
    h.expect(
        f"""<presence from='{ROOM}/secondwitch' to='{CRONE}' type='unavailable'>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' jid='{WICCA}' role='none'/>
          <status code='322'/></x></presence>""",
        f"""<presence from='{ROOM}/secondwitch' to='{WICCA}' type='unavailable'>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' jid='{WICCA}' role='none'/>
          <status code='110'/><status code='322'/></x></presence>""",
        f"<iq from='{ROOM}' to='{CRONE}' type='result' id='cfg'/>",
        f"""<message from='{ROOM}' to='{CRONE}' type='groupchat'>
          <x xmlns='http://jabber.org/protocol/muc#user'><status code='104'/></x></message>""",
    )


def test_cancelling_the_first_configuration_destroys_the_room() -> None:
    h = muc_harness()
    enter(h, ROOM, "firstwitch", CRONE)
    h.receive(
        f"<iq from='{CRONE}' id='cancel' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        "<x xmlns='jabber:x:data' type='cancel'/></query></iq>"
    )
    h.expect(
        f"""<presence from='{ROOM}/firstwitch' to='{CRONE}' type='unavailable'>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' jid='{CRONE}' role='none'/><destroy/><status code='110'/></x></presence>""",
        f"<iq from='{ROOM}' to='{CRONE}' type='result' id='cancel'/>",
    )
    assert h.component.router.loaded("coven") is None


def test_locked_room_is_destroyed_when_not_configured_in_time() -> None:
    h = muc_harness({"lock_seconds": 60})
    enter(h, ROOM, "firstwitch", CRONE)
    h.clock.advance(61)
    assert h.sent()[0].get("type") == "unavailable"
    assert h.component.router.loaded("coven") is None


def test_room_disco_info_shows_features_and_roominfo(harness) -> None:
    h = harness
    submit(
        h,
        "<field var='muc#roomconfig_roomname'><value>A Dark Cave</value></field>"
        "<field var='muc#roomconfig_roomdesc'><value>The place for all good witches!</value></field>"
        "<field var='muc#roomconfig_membersonly'><value>1</value></field>"
        "<field var='muc#roomconfig_publicroom'><value>0</value></field>"
        "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"
        "<field var='muc#roomconfig_moderatedroom'><value>1</value></field>"
        "<field var='muc#roomconfig_whois'><value>anyone</value></field>"
        "<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>"
        "<field var='muc#roomconfig_roomsecret'><value>cauldronburn</value></field>"
        "<field var='muc#roomconfig_lang'><value>en</value></field>",
    )
    h.sent()
    h.receive(f"<iq from='{HAG}' id='ik3vs715' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    h.expect(
        f"""<iq from='{ROOM}' id='ik3vs715' to='{HAG}' type='result'>
          <query xmlns='http://jabber.org/protocol/disco#info'>
            <identity category='conference' name='A Dark Cave' type='text'/>
            <feature var='http://jabber.org/protocol/disco#info'/>
            <feature var='http://jabber.org/protocol/disco#items'/>
            <feature var='http://jabber.org/protocol/muc'/>
            <feature var='http://jabber.org/protocol/muc#admin'/>
            <feature var='http://jabber.org/protocol/muc#owner'/>
            <feature var='http://jabber.org/protocol/muc#register'/>
            <feature var='http://jabber.org/protocol/muc#request'/>
            <feature var='http://jabber.org/protocol/muc#self-ping-optimization'/>
            <feature var='http://jabber.org/protocol/muc#stable_id'/>
            <feature var='jabber:iq:register'/>
            <feature var='jabber:iq:version'/>
            <feature var='muc_hidden'/>
            <feature var='muc_membersonly'/>
            <feature var='muc_moderated'/>
            <feature var='muc_nonanonymous'/>
            <feature var='muc_passwordprotected'/>
            <feature var='muc_persistent'/>
            <feature var='urn:xmpp:mam:2'/>
            <feature var='urn:xmpp:mam:2#extended'/>
            <feature var='urn:xmpp:message-moderate:0'/>
            <feature var='urn:xmpp:message-moderate:1'/>
            <feature var='urn:xmpp:message-retract:1'/>
            <feature var='urn:xmpp:message-retract:1#tombstone'/>
            <feature var='urn:xmpp:ping'/>
            <feature var='urn:xmpp:sid:0'/>
            <feature var='vcard-temp'/>
            <x xmlns='jabber:x:data' type='result'>
              <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/muc#roominfo</value></field>
              <field var='muc#roomconfig_roomname' label='Title'><value>A Dark Cave</value></field>
              <field var='muc#roominfo_description' label='Description'><value>The place for all good witches!</value></field>
              <field var='muc#roominfo_occupants' label='Number of occupants'><value>1</value></field>
              <field var='muc#roominfo_subject' label='Current subject'><value/></field>
              <field var='muc#roominfo_changesubject' type='boolean' label='Occupants may change the subject'><value>0</value></field>
              <field var='muc#roomconfig_changesubject' type='boolean' label='Occupants may change the subject'><value>0</value></field>
              <field var='muc#roominfo_lang' label='Language of discussion'><value>en</value></field>
              <field var='muc#roomconfig_allowinvites' type='boolean' label='Occupants may invite others'><value>0</value></field>
              <field var='muc#roomconfig_allowpm' type='list-single' label='Who may send private messages'><value>anyone</value></field>
            </x>
          </query></iq>"""
    )


def test_service_disco_and_public_rooms(harness) -> None:
    h = harness
    instant_room(h, "hidden@chat.shakespeare.lit", CRONE, "x")
    h.receive(
        f"<iq from='{CRONE}' id='h' to='hidden@chat.shakespeare.lit' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        "<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_publicroom'><value>0</value></field></x></query></iq>"
    )
    submit(h, "<field var='muc#roomconfig_roomname'><value>A Dark Cave</value></field>")
    h.sent()
    h.receive(f"<iq from='{HAG}' id='i1' to='chat.shakespeare.lit' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    h.expect(
        f"""<iq from='chat.shakespeare.lit' id='i1' to='{HAG}' type='result'>
          <query xmlns='http://jabber.org/protocol/disco#info'>
            <identity category='conference' name='Chatrooms' type='text'/>
            <feature var='http://jabber.org/protocol/commands'/>
            <feature var='http://jabber.org/protocol/disco#info'/>
            <feature var='http://jabber.org/protocol/disco#items'/>
            <feature var='http://jabber.org/protocol/muc'/>
            <feature var='http://jabber.org/protocol/muc#unique'/>
            <feature var='jabber:iq:version'/>
            <feature var='urn:xmpp:ping'/>
          </query></iq>"""
    )
    h.receive(f"<iq from='{HAG}' id='i2' to='chat.shakespeare.lit' type='get'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
    h.expect(
        f"""<iq from='chat.shakespeare.lit' id='i2' to='{HAG}' type='result'>
          <query xmlns='http://jabber.org/protocol/disco#items'>
            <item jid='{ROOM}' name='A Dark Cave'/>
          </query></iq>"""
    )


def test_locked_rooms_are_not_listed() -> None:
    h = muc_harness()
    enter(h, ROOM, "firstwitch", CRONE)
    h.receive(f"<iq from='{HAG}' id='i2' to='chat.shakespeare.lit' type='get'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
    h.expect(f"<iq from='chat.shakespeare.lit' id='i2' to='{HAG}' type='result'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")


def test_room_disco_items_list_occupants_to_occupants_only(harness) -> None:
    h = harness
    h.receive(f"<iq from='{HAG}' id='n' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
    h.expect(f"<iq from='{ROOM}' id='n' to='{HAG}' type='result'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
    h.receive(f"<iq from='{CRONE}' id='o' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
    h.expect(
        f"""<iq from='{ROOM}' id='o' to='{CRONE}' type='result'><query xmlns='http://jabber.org/protocol/disco#items'>
          <item jid='{ROOM}/firstwitch'/></query></iq>"""
    )
