"""Roles and affiliations through ``muc#admin`` (XEP-0045 §8, §9, §10): kick, ban, voice, lists."""

from __future__ import annotations

import pytest

from services.muc.testing import MUC_X, enter, instant_room, muc_harness

ROOM = "harfleur@chat.shakespeare.lit"
FLUELLEN = "fluellen@shakespeare.lit/pda"
PISTOL = "pistol@shakespeare.lit/harfleur"
GOWER = "gower@shakespeare.lit/tent"
ADMIN = "http://jabber.org/protocol/muc#admin"


def admin_set(h, items: str, who: str = FLUELLEN, id: str = "a") -> None:
    h.receive(f"<iq from='{who}' id='{id}' to='{ROOM}' type='set'><query xmlns='{ADMIN}'>{items}</query></iq>")


def admin_get(h, item: str, who: str = FLUELLEN, id: str = "g") -> None:
    h.receive(f"<iq from='{who}' id='{id}' to='{ROOM}' type='get'><query xmlns='{ADMIN}'>{item}</query></iq>")


def error_of(stanza) -> str:
    error = stanza.find("{jabber:component:accept}error")
    return next(c.tag.split("}")[1] for c in error if not c.tag.endswith("}text"))


@pytest.fixture
def harness():
    h = muc_harness()
    instant_room(h, ROOM, FLUELLEN, "Fluellen")
    enter(h, ROOM, "pistol", PISTOL)
    return h


def test_kick(harness) -> None:
    h = harness
    admin_set(h, "<item nick='pistol' role='none'><reason>Avaunt, you cullion!</reason></item>", id="kick1")
    h.expect(
        f"""<presence from='{ROOM}/pistol' to='{FLUELLEN}' type='unavailable'>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <item affiliation='none' jid='{PISTOL}' role='none'><actor nick='Fluellen'/><reason>Avaunt, you cullion!</reason></item>
            <status code='307'/></x></presence>""",
        f"""<presence from='{ROOM}/pistol' to='{PISTOL}' type='unavailable'>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <item affiliation='none' jid='{PISTOL}' role='none'><actor nick='Fluellen'/><reason>Avaunt, you cullion!</reason></item>
            <status code='110'/><status code='307'/></x></presence>""",
        f"<iq from='{ROOM}' id='kick1' to='{FLUELLEN}' type='result'/>",
    )
    # A kicked user may come back.
    h.receive(f"<presence from='{PISTOL}' to='{ROOM}/pistol'>{MUC_X}</presence>")
    assert h.sent()[-1].get("type") == "groupchat"


def test_kick_refused(harness) -> None:
    h = harness
    enter(h, ROOM, "gower", GOWER)
    admin_set(h, "<item nick='gower' role='none'/>", who=PISTOL, id="k1")
    (reply,) = h.sent()
    assert error_of(reply) == "forbidden"  # participants do not kick
    admin_set(h, "<item nick='Fluellen' role='none'/>", id="k2")
    (reply,) = h.sent()
    assert error_of(reply) == "not-allowed"  # owners stay
    admin_set(h, "<item nick='nobody' role='none'/>", id="k3")
    (reply,) = h.sent()
    assert error_of(reply) == "not-acceptable"


def test_ban_and_refused_rejoin(harness) -> None:
    h = harness
    admin_set(h, "<item affiliation='outcast' jid='pistol@shakespeare.lit'><reason>Treason</reason></item>", id="ban1")
    h.expect(
        f"""<presence from='{ROOM}/pistol' to='{FLUELLEN}' type='unavailable'>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <item affiliation='outcast' jid='{PISTOL}' role='none'><actor nick='Fluellen'/><reason>Treason</reason></item>
            <status code='301'/></x></presence>""",
        f"""<presence from='{ROOM}/pistol' to='{PISTOL}' type='unavailable'>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <item affiliation='outcast' jid='{PISTOL}' role='none'><actor nick='Fluellen'/><reason>Treason</reason></item>
            <status code='110'/><status code='301'/></x></presence>""",
        f"<iq from='{ROOM}' id='ban1' to='{FLUELLEN}' type='result'/>",
    )
    h.receive(f"<presence from='pistol@shakespeare.lit/other' to='{ROOM}/pistol2'>{MUC_X}</presence>")
    (reply,) = h.sent()
    assert error_of(reply) == "forbidden"
    admin_get(h, "<item affiliation='outcast'/>", id="ban2")
    h.expect(
        f"""<iq from='{ROOM}' id='ban2' to='{FLUELLEN}' type='result'><query xmlns='{ADMIN}'>
          <item affiliation='outcast' jid='pistol@shakespeare.lit'><reason>Treason</reason></item></query></iq>"""
    )


def test_banning_a_whole_server(harness) -> None:
    h = harness
    admin_set(h, "<item affiliation='outcast' jid='shakespeare.lit'/>")
    h.sent()
    h.receive(f"<presence from='{GOWER}' to='{ROOM}/gower'>{MUC_X}</presence>")
    (reply,) = h.sent()
    assert error_of(reply) == "forbidden"


def test_voice_in_a_moderated_room(harness) -> None:
    h = harness
    h.receive(
        f"<iq from='{FLUELLEN}' id='m' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        "<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_moderatedroom'><value>1</value></field></x></query></iq>"
    )
    enter(h, ROOM, "gower", GOWER)
    admin_get(h, "<item role='visitor'/>", id="voice0")
    h.expect(
        f"""<iq from='{ROOM}' id='voice0' to='{FLUELLEN}' type='result'><query xmlns='{ADMIN}'>
          <item affiliation='none' jid='{GOWER}' nick='gower' role='visitor'/></query></iq>"""
    )
    admin_set(h, "<item nick='gower' role='participant'><reason>A worthy man</reason></item>", id="voice1")
    h.expect(
        f"""<presence from='{ROOM}/gower' to='{FLUELLEN}'><x xmlns='http://jabber.org/protocol/muc#user'>
          <item affiliation='none' jid='{GOWER}' role='participant'><actor nick='Fluellen'/><reason>A worthy man</reason></item></x></presence>""",
        f"""<presence from='{ROOM}/gower' to='{PISTOL}'><x xmlns='http://jabber.org/protocol/muc#user'>
          <item affiliation='none' role='participant'><actor nick='Fluellen'/><reason>A worthy man</reason></item></x></presence>""",
        f"""<presence from='{ROOM}/gower' to='{GOWER}'><x xmlns='http://jabber.org/protocol/muc#user'>
          <item affiliation='none' jid='{GOWER}' role='participant'><actor nick='Fluellen'/><reason>A worthy man</reason></item>
          <status code='110'/></x></presence>""",
        f"<iq from='{ROOM}' id='voice1' to='{FLUELLEN}' type='result'/>",
    )
    h.receive(f"<message from='{GOWER}' to='{ROOM}' type='groupchat' id='g'><body>Now may I speak</body></message>")
    assert len(h.sent()) == 3
    admin_set(h, "<item nick='gower' role='visitor'/>", id="voice2")
    h.sent()
    h.receive(f"<message from='{GOWER}' to='{ROOM}' type='groupchat' id='g2'><body>And now?</body></message>")
    (reply,) = h.sent()
    assert error_of(reply) == "forbidden"


def test_membership_in_a_members_only_room(harness) -> None:
    h = harness
    admin_set(h, "<item affiliation='member' jid='pistol@shakespeare.lit' nick='pistol'/>", id="m1")
    h.expect(
        f"""<presence from='{ROOM}/pistol' to='{FLUELLEN}'><x xmlns='http://jabber.org/protocol/muc#user'>
          <item affiliation='member' jid='{PISTOL}' role='participant'><actor nick='Fluellen'/></item></x></presence>""",
        f"""<presence from='{ROOM}/pistol' to='{PISTOL}'><x xmlns='http://jabber.org/protocol/muc#user'>
          <item affiliation='member' jid='{PISTOL}' role='participant'><actor nick='Fluellen'/></item>
          <status code='110'/></x></presence>""",
        f"<iq from='{ROOM}' id='m1' to='{FLUELLEN}' type='result'/>",
    )
    h.receive(
        f"<iq from='{FLUELLEN}' id='mo' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        "<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_membersonly'><value>1</value></field></x></query></iq>"
    )
    h.sent()  # a member stays
    admin_get(h, "<item affiliation='member'/>", id="m2")
    # The nick of the item is the member's reserved nick (§9.3).
    h.expect(
        f"""<iq from='{ROOM}' id='m2' to='{FLUELLEN}' type='result'><query xmlns='{ADMIN}'>
          <item affiliation='member' jid='pistol@shakespeare.lit' nick='pistol'/></query></iq>"""
    )
    admin_set(h, "<item affiliation='none' jid='pistol@shakespeare.lit'/>", id="m3")
    h.expect(
        f"""<presence from='{ROOM}/pistol' to='{FLUELLEN}' type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'>
          <item affiliation='none' jid='{PISTOL}' role='none'><actor nick='Fluellen'/></item><status code='321'/></x></presence>""",
        f"""<presence from='{ROOM}/pistol' to='{PISTOL}' type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'>
          <item affiliation='none' jid='{PISTOL}' role='none'><actor nick='Fluellen'/></item>
          <status code='110'/><status code='321'/></x></presence>""",
        f"<iq from='{ROOM}' id='m3' to='{FLUELLEN}' type='result'/>",
    )


@pytest.mark.parametrize("whois", ["moderators", "anyone"])
def test_members_see_the_member_list_only_where_real_jids_are_public(harness, whois) -> None:
    h = harness
    h.receive(
        f"<iq from='{FLUELLEN}' id='mo' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        "<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_membersonly'><value>1</value></field>"
        f"<field var='muc#roomconfig_whois'><value>{whois}</value></field></x></query></iq>"
    )
    admin_set(h, "<item affiliation='member' jid='pistol@shakespeare.lit'/>", id="m1")
    admin_set(h, "<item affiliation='member' jid='gower@shakespeare.lit'/>", id="m2")
    h.sent()
    admin_get(h, "<item affiliation='member'/>", who=PISTOL, id="list")
    if whois == "anyone":
        h.expect(
            f"""<iq from='{ROOM}' id='list' to='{PISTOL}' type='result'><query xmlns='{ADMIN}'>
              <item affiliation='member' jid='gower@shakespeare.lit'/>
              <item affiliation='member' jid='pistol@shakespeare.lit'/></query></iq>"""
        )
    else:
        h.expect(
            f"""<iq from='{ROOM}' id='list' to='{PISTOL}' type='error'><query xmlns='{ADMIN}'>
              <item affiliation='member'/></query>
              <error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"""
        )


def test_admins_and_owners(harness) -> None:
    h = harness
    admin_set(h, "<item affiliation='admin' jid='pistol@shakespeare.lit'/>", id="a1")
    sent = h.sent()
    assert sent[-1].get("type") == "result"
    assert sent[0].find(".//{http://jabber.org/protocol/muc#user}item").get("role") == "moderator"
    # An admin manages members, not other admins or owners.
    enter(h, ROOM, "gower", GOWER)
    admin_set(h, "<item affiliation='admin' jid='gower@shakespeare.lit'/>", who=PISTOL, id="a2")
    assert error_of(h.sent()[0]) == "forbidden"
    admin_set(h, "<item affiliation='outcast' jid='fluellen@shakespeare.lit'/>", who=PISTOL, id="a3")
    assert error_of(h.sent()[0]) == "not-allowed"
    admin_set(h, "<item affiliation='member' jid='gower@shakespeare.lit'/>", who=PISTOL, id="a4")
    assert h.sent()[-1].get("type") == "result"
    admin_get(h, "<item affiliation='owner'/>", who=PISTOL, id="a5")
    assert error_of(h.sent()[0]) == "forbidden"
    # An admin reads the admin list, as Prosody lets it (§10.8 leaves reading open).
    admin_get(h, "<item affiliation='admin'/>", who=PISTOL, id="a5b")
    h.expect(
        f"""<iq from='{ROOM}' id='a5b' to='{PISTOL}' type='result'><query xmlns='{ADMIN}'>
          <item affiliation='admin' jid='pistol@shakespeare.lit'/></query></iq>"""
    )
    admin_get(h, "<item affiliation='admin'/>", id="a6")
    h.expect(
        f"""<iq from='{ROOM}' id='a6' to='{FLUELLEN}' type='result'><query xmlns='{ADMIN}'>
          <item affiliation='admin' jid='pistol@shakespeare.lit'/></query></iq>"""
    )
    # Revoking admin rights takes the moderator role away.
    admin_set(h, "<item affiliation='member' jid='pistol@shakespeare.lit'/>", id="a7")
    sent = h.sent()
    assert sent[0].find(".//{http://jabber.org/protocol/muc#user}item").get("role") == "participant"


def test_the_last_owner_cannot_give_up_ownership(harness) -> None:
    h = harness
    admin_set(h, "<item affiliation='admin' jid='fluellen@shakespeare.lit'/>", id="o1")
    assert error_of(h.sent()[0]) == "conflict"
    admin_set(h, "<item affiliation='owner' jid='pistol@shakespeare.lit'/>", id="o2")
    assert h.sent()[-1].get("type") == "result"
    admin_get(h, "<item affiliation='owner'/>", id="o3")
    h.expect(
        f"""<iq from='{ROOM}' id='o3' to='{FLUELLEN}' type='result'><query xmlns='{ADMIN}'>
          <item affiliation='owner' jid='fluellen@shakespeare.lit'/>
          <item affiliation='owner' jid='pistol@shakespeare.lit'/></query></iq>"""
    )
    admin_set(h, "<item affiliation='admin' jid='fluellen@shakespeare.lit'/>", id="o4")
    assert h.sent()[-1].get("type") == "result"


def test_role_lists_are_for_moderators(harness) -> None:
    h = harness
    admin_get(h, "<item role='participant'/>", who=PISTOL, id="r1")
    assert error_of(h.sent()[0]) == "forbidden"
    admin_get(h, "<item role='moderator'/>", id="r2")
    h.expect(
        f"""<iq from='{ROOM}' id='r2' to='{FLUELLEN}' type='result'><query xmlns='{ADMIN}'>
          <item affiliation='owner' jid='{FLUELLEN}' nick='Fluellen' role='moderator'/></query></iq>"""
    )


def test_bad_admin_requests(harness) -> None:
    h = harness
    admin_set(h, "<item affiliation='member' role='participant' nick='pistol'/>", id="b1")
    assert error_of(h.sent()[0]) == "bad-request"
    admin_set(h, "<item affiliation='member' jid='not a jid@@'/>", id="b2")
    assert error_of(h.sent()[0]) == "jid-malformed"
    admin_get(h, "<item affiliation='none'/>", id="b3")
    assert error_of(h.sent()[0]) == "bad-request"


def test_a_request_names_each_user_once(harness) -> None:
    # Applied in turn, owner then member would have made pistol a moderator
    # for a moment, and sent it Gower's real JID.
    h = harness
    enter(h, ROOM, "gower", GOWER)
    admin_set(h, "<item affiliation='owner' jid='pistol@shakespeare.lit'/>"
                 "<item affiliation='member' jid='pistol@shakespeare.lit'/>", id="twice")
    h.expect(
        f"""<iq from='{ROOM}' id='twice' to='{FLUELLEN}' type='error'><query xmlns='{ADMIN}'>
              <item affiliation='owner' jid='pistol@shakespeare.lit'/><item affiliation='member' jid='pistol@shakespeare.lit'/>
            </query><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
            <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>one item per user in a request</text></error></iq>"""
    )
    # By nick and by JID is the same user too.
    admin_set(h, "<item affiliation='admin' jid='pistol@shakespeare.lit'/><item nick='pistol' role='participant'/>",
              id="both")
    assert error_of(h.sent()[0]) == "bad-request"
    admin_get(h, "<item affiliation='owner'/>", id="o")
    h.expect(
        f"""<iq from='{ROOM}' id='o' to='{FLUELLEN}' type='result'><query xmlns='{ADMIN}'>
          <item affiliation='owner' jid='fluellen@shakespeare.lit'/></query></iq>"""
    )


def test_new_moderator_in_a_semi_anonymous_room_learns_real_jids(harness) -> None:
    h = harness
    enter(h, ROOM, "gower", GOWER)
    admin_set(h, "<item affiliation='admin' jid='pistol@shakespeare.lit'/>", id="v")
    sent = h.sent()
    to_pistol = [p for p in sent if p.get("to") == PISTOL and p.get("from") == f"{ROOM}/gower"]
    assert to_pistol and to_pistol[0].find(".//{http://jabber.org/protocol/muc#user}item").get("jid") == GOWER


def test_voice_request_goes_to_moderators_and_their_approval_grants_voice(harness) -> None:
    h = harness
    h.receive(
        f"<iq from='{FLUELLEN}' id='m' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        "<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_moderatedroom'><value>1</value></field></x></query></iq>"
    )
    enter(h, ROOM, "gower", GOWER)
    h.receive(
        f"""<message from='{GOWER}' id='yd53c486' to='{ROOM}'>
          <x xmlns='jabber:x:data' type='submit'>
            <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>
            <field var='muc#role' type='list-single' label='Requested role'><value>participant</value></field>
          </x></message>"""
    )
    h.expect(
        f"""<message from='{ROOM}' id='*' to='{FLUELLEN}'>
          <x xmlns='jabber:x:data' type='form'>
            <title>Voice request</title><instructions>*</instructions>
            <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/muc#request</value></field>
            <field var='muc#role' type='list-single' label='Requested role'><value>participant</value></field>
            <field var='muc#jid' type='jid-single' label='User ID'><value>{GOWER}</value></field>
            <field var='muc#roomnick' type='text-single' label='Room Nickname'><value>gower</value></field>
            <field var='muc#request_allow' type='boolean' label='Grant voice to this person?'><value>0</value></field>
          </x></message>"""
    )
    h.receive(
        f"""<message from='{FLUELLEN}' id='approve' to='{ROOM}'>
          <x xmlns='jabber:x:data' type='submit'>
            <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>
            <field var='muc#role'><value>participant</value></field>
            <field var='muc#jid'><value>{GOWER}</value></field>
            <field var='muc#roomnick'><value>gower</value></field>
            <field var='muc#request_allow'><value>true</value></field>
          </x></message>"""
    )
    sent = h.sent()
    assert len(sent) == 3
    assert all(p.find(".//{http://jabber.org/protocol/muc#user}item").get("role") == "participant" for p in sent)


def test_a_moderator_cannot_silence_someone_of_the_same_affiliation(harness) -> None:
    h = harness
    enter(h, ROOM, "gower", GOWER)
    admin_set(h, "<item nick='pistol' role='moderator'/>", id="p1")
    assert h.sent()[-1].get("type") == "result"
    admin_set(h, "<item nick='gower' role='visitor'/>", who=PISTOL, id="p2")
    assert error_of(h.sent()[0]) == "not-allowed"
    admin_set(h, "<item nick='gower' role='none'/>", who=PISTOL, id="p3")
    assert h.sent()[-1].get("type") == "result"  # kicking someone of the same level is allowed (§8.2)


def announcement(to: str, item: str, codes: str = "") -> str:
    return f"""<message from='{ROOM}' to='{to}'><x xmlns='http://jabber.org/protocol/muc#user'>{item}{codes}</x></message>"""


def test_an_absent_users_new_affiliation_is_told_to_those_who_see_real_jids(harness) -> None:
    """XEP-0045 1.34 example 195, as Prosody and ejabberd: a message from the room carrying the item."""
    h = harness
    admin_set(h, "<item affiliation='member' jid='gower@shakespeare.lit'><reason>A good captain</reason></item>")
    # Semi-anonymous: only the moderator (Pistol is a participant).
    h.expect(
        announcement(FLUELLEN, "<item affiliation='member' jid='gower@shakespeare.lit'><reason>A good captain</reason></item>"),
        f"<iq from='{ROOM}' id='a' to='{FLUELLEN}' type='result'/>",
    )
    h.receive(
        f"<iq from='{FLUELLEN}' id='c' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        "<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_whois'><value>anyone</value></field>"
        "</x></query></iq>"
    )
    h.sent()
    # Non-anonymous: everyone. A ban says 301.
    admin_set(h, "<item affiliation='outcast' jid='bardolph@shakespeare.lit'/>", id="b")
    h.expect(
        announcement(FLUELLEN, "<item affiliation='outcast' jid='bardolph@shakespeare.lit'/>", "<status code='301'/>"),
        announcement(PISTOL, "<item affiliation='outcast' jid='bardolph@shakespeare.lit'/>", "<status code='301'/>"),
        f"<iq from='{ROOM}' id='b' to='{FLUELLEN}' type='result'/>",
    )
    admin_set(h, "<item affiliation='none' jid='gower@shakespeare.lit'/>", id="n")
    h.expect(
        announcement(FLUELLEN, "<item affiliation='none' jid='gower@shakespeare.lit'/>"),
        announcement(PISTOL, "<item affiliation='none' jid='gower@shakespeare.lit'/>"),
        f"<iq from='{ROOM}' id='n' to='{FLUELLEN}' type='result'/>",
    )
