"""Presence broadcast (XEP-0045 §7.2.3, §10.2 ``muc#roomconfig_presencebroadcast``), as Prosody 0.12 does it.

Written as the XEP's examples, with its cast: the stanzas in, the exact stanzas out.
"""

from __future__ import annotations

import pytest

from services.muc.testing import (
    CRONE,
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

USER = "http://jabber.org/protocol/muc#user"
BROADCAST = "muc#roomconfig_presencebroadcast"


def roles(*names: str) -> str:
    return f"<field var='{BROADCAST}'>" + "".join(f"<value>{name}</value>" for name in names) + "</field>"


MODERATED = "<field var='muc#roomconfig_moderatedroom'><value>1</value></field>"


@pytest.fixture
def harness():
    """A moderated room where visitors' presence is not broadcast; the second witch is a participant in it."""
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    configure(h, MODERATED + roles("moderator", "participant"))
    h.receive(
        f"<iq from='{CRONE}' id='m' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#admin'>"
        "<item affiliation='member' jid='wiccarocks@shakespeare.lit'/></query></iq>"
    )
    enter(h, ROOM, "secondwitch", WICCA)
    return h


def admin(h, items: str, id: str = "a") -> None:
    h.receive(
        f"<iq from='{CRONE}' id='{id}' to='{ROOM}' type='set'>"
        f"<query xmlns='http://jabber.org/protocol/muc#admin'>{items}</query></iq>"
    )


def test_the_form_offers_every_role_and_lists_those_broadcast() -> None:
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    h.receive(f"<iq from='{CRONE}' id='f' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>")
    (reply,) = h.sent()
    (field,) = [f for f in reply.iter("{jabber:x:data}field") if f.get("var") == BROADCAST]
    assert field.get("type") == "list-multi"
    assert [v.text for v in field.findall("{jabber:x:data}value")] == ["visitor", "participant", "moderator"]
    assert [o.findtext("{jabber:x:data}value") for o in field.findall("{jabber:x:data}option")] == [
        "none", "visitor", "participant", "moderator",
    ]


def test_a_visitor_whose_role_is_not_broadcast_enters_unseen(harness) -> None:
    h = harness
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    # §7.2.3: the occupant list and its own presence, as ever; the others hear nothing.
    h.expect(
        f"""<presence from='{ROOM}/firstwitch' to='{HAG}'>
          <x xmlns='{USER}'><item affiliation='owner' role='moderator'/></x></presence>""",
        f"""<presence from='{ROOM}/secondwitch' to='{HAG}'>
          <x xmlns='{USER}'><item affiliation='member' role='participant'/></x></presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{HAG}'>
          <x xmlns='{USER}'><item affiliation='none' jid='{HAG}' role='visitor'/><status code='110'/></x></presence>""",
        f"<message from='{ROOM}' to='{HAG}' type='groupchat'><subject/></message>",
    )
    # A presence update and leaving are its own business too.
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'><show>away</show></presence>")
    h.expect(
        f"""<presence from='{ROOM}/thirdwitch' to='{HAG}'><show>away</show>
          <x xmlns='{USER}'><item affiliation='none' jid='{HAG}' role='visitor'/><status code='110'/></x></presence>"""
    )
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch' type='unavailable'/>")
    h.expect(
        f"""<presence from='{ROOM}/thirdwitch' to='{HAG}' type='unavailable'>
          <x xmlns='{USER}'><item affiliation='none' jid='{HAG}' role='none'/><status code='110'/></x></presence>"""
    )


def test_an_unseen_visitor_is_left_out_of_a_newcomers_occupant_list_and_of_disco_items(harness) -> None:
    h = harness
    enter(h, ROOM, "thirdwitch", HAG)
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/secondwitch' type='unavailable'/>")
    h.sent()
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/secondwitch'>{MUC_X}</presence>")
    h.expect(
        f"""<presence from='{ROOM}/firstwitch' to='{WICCA}'>
          <x xmlns='{USER}'><item affiliation='owner' role='moderator'/></x></presence>""",
        f"""<presence from='{ROOM}/secondwitch' to='{CRONE}'>
          <x xmlns='{USER}'><item affiliation='member' jid='{WICCA}' role='participant'/></x></presence>""",
        f"""<presence from='{ROOM}/secondwitch' to='{HAG}'>
          <x xmlns='{USER}'><item affiliation='member' role='participant'/></x></presence>""",
        f"""<presence from='{ROOM}/secondwitch' to='{WICCA}'>
          <x xmlns='{USER}'><item affiliation='member' jid='{WICCA}' role='participant'/><status code='110'/></x></presence>""",
        f"<message from='{ROOM}' to='{WICCA}' type='groupchat'><subject/></message>",
    )
    h.receive(f"<iq from='{WICCA}' id='i' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
    h.expect(
        f"""<iq from='{ROOM}' id='i' to='{WICCA}' type='result'><query xmlns='http://jabber.org/protocol/disco#items'>
          <item jid='{ROOM}/firstwitch'/><item jid='{ROOM}/secondwitch'/></query></iq>"""
    )


def test_voice_shows_the_visitor_arriving_and_revoking_it_shows_it_leaving(harness) -> None:
    h = harness
    enter(h, ROOM, "thirdwitch", HAG)
    admin(h, "<item nick='thirdwitch' role='participant'/>", "voice")
    h.expect(
        f"""<presence from='{ROOM}/thirdwitch' to='{CRONE}'>
          <x xmlns='{USER}'><item affiliation='none' jid='{HAG}' role='participant'><actor nick='firstwitch'/></item></x></presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{WICCA}'>
          <x xmlns='{USER}'><item affiliation='none' role='participant'><actor nick='firstwitch'/></item></x></presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{HAG}'>
          <x xmlns='{USER}'><item affiliation='none' jid='{HAG}' role='participant'><actor nick='firstwitch'/></item><status code='110'/></x></presence>""",
        f"<iq from='{ROOM}' id='voice' to='{CRONE}' type='result'/>",
    )
    admin(h, "<item nick='thirdwitch' role='visitor'/>", "mute")
    # Out of a broadcast role: the others see the occupant go; it sees itself stay, a visitor.
    h.expect(
        f"""<presence from='{ROOM}/thirdwitch' to='{CRONE}' type='unavailable'>
          <x xmlns='{USER}'><item affiliation='none' jid='{HAG}' role='visitor'><actor nick='firstwitch'/></item></x></presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{WICCA}' type='unavailable'>
          <x xmlns='{USER}'><item affiliation='none' role='visitor'><actor nick='firstwitch'/></item></x></presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{HAG}'>
          <x xmlns='{USER}'><item affiliation='none' jid='{HAG}' role='visitor'><actor nick='firstwitch'/></item><status code='110'/></x></presence>""",
        f"<iq from='{ROOM}' id='mute' to='{CRONE}' type='result'/>",
    )
    # Kicked while unseen: only the visitor hears of it.
    admin(h, "<item nick='thirdwitch' role='none'/>", "kick")
    h.expect(
        f"""<presence from='{ROOM}/thirdwitch' to='{HAG}' type='unavailable'>
          <x xmlns='{USER}'><item affiliation='none' jid='{HAG}' role='none'><actor nick='firstwitch'/></item>
          <status code='110'/><status code='307'/></x></presence>""",
        f"<iq from='{ROOM}' id='kick' to='{CRONE}' type='result'/>",
    )


def test_changing_the_roles_announces_and_unannounces_the_occupants_it_concerns(harness) -> None:
    h = harness
    enter(h, ROOM, "thirdwitch", HAG)
    configure(h, roles("moderator", "participant", "visitor"))
    # (configure() forgot the replies; submit again to see them.)
    h.receive(
        f"<iq from='{CRONE}' id='hide' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        f"<x xmlns='jabber:x:data' type='submit'>{roles('moderator', 'participant')}</x></query></iq>"
    )
    # As Prosody: the others get an unavailable presence, the visitor its own presence, then the owner's result and 104.
    h.expect(
        f"""<presence from='{ROOM}/thirdwitch' to='{CRONE}' type='unavailable'>
          <x xmlns='{USER}'><item affiliation='none' jid='{HAG}' role='visitor'/></x></presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{WICCA}' type='unavailable'>
          <x xmlns='{USER}'><item affiliation='none' role='visitor'/></x></presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{HAG}'>
          <x xmlns='{USER}'><item affiliation='none' jid='{HAG}' role='visitor'/><status code='110'/></x></presence>""",
        f"<iq from='{ROOM}' id='hide' to='{CRONE}' type='result'/>",
        *(
            f"<message from='{ROOM}' to='{to}' type='groupchat'><x xmlns='{USER}'><status code='104'/></x></message>"
            for to in (CRONE, WICCA, HAG)
        ),
    )
    h.receive(
        f"<iq from='{CRONE}' id='show' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        f"<x xmlns='jabber:x:data' type='submit'>{roles('visitor', 'participant', 'moderator')}</x></query></iq>"
    )
    h.expect(
        f"""<presence from='{ROOM}/thirdwitch' to='{CRONE}'>
          <x xmlns='{USER}'><item affiliation='none' jid='{HAG}' role='visitor'/></x></presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{WICCA}'>
          <x xmlns='{USER}'><item affiliation='none' role='visitor'/></x></presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{HAG}'>
          <x xmlns='{USER}'><item affiliation='none' jid='{HAG}' role='visitor'/><status code='110'/></x></presence>""",
        f"<iq from='{ROOM}' id='show' to='{CRONE}' type='result'/>",
        *(
            f"<message from='{ROOM}' to='{to}' type='groupchat'><x xmlns='{USER}'><status code='104'/></x></message>"
            for to in (CRONE, WICCA, HAG)
        ),
    )


def test_an_occupant_in_from_two_clients_is_told_with_one_item(harness) -> None:
    h = harness
    configure(h, roles("moderator", "participant", "visitor"))
    laptop = "hag66@shakespeare.lit/laptop"
    enter(h, ROOM, "thirdwitch", HAG)
    enter(h, ROOM, "thirdwitch", laptop)
    h.receive(
        f"<iq from='{CRONE}' id='hide' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        f"<x xmlns='jabber:x:data' type='submit'>{roles('moderator', 'participant')}</x></query></iq>"
    )
    # One item, the client whose presence the room shows (the latest): Prosody 0.12 puts one per client
    # wherever the real JID is shown; XEP-0045 leaves multi-session nicks undefined (§3).
    h.expect(
        f"""<presence from='{ROOM}/thirdwitch' to='{CRONE}' type='unavailable'>
          <x xmlns='{USER}'><item affiliation='none' jid='{laptop}' role='visitor'/></x></presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{WICCA}' type='unavailable'>
          <x xmlns='{USER}'><item affiliation='none' role='visitor'/></x></presence>""",
        *(
            f"""<presence from='{ROOM}/thirdwitch' to='{to}'>
              <x xmlns='{USER}'><item affiliation='none' jid='{laptop}' role='visitor'/><status code='110'/></x></presence>"""
            for to in (HAG, laptop)
        ),
        f"<iq from='{ROOM}' id='hide' to='{CRONE}' type='result'/>",
        *(
            f"<message from='{ROOM}' to='{to}' type='groupchat'><x xmlns='{USER}'><status code='104'/></x></message>"
            for to in (CRONE, WICCA, HAG, laptop)
        ),
    )


def test_with_none_listed_absent_users_with_an_affiliation_are_in_the_occupant_list() -> None:
    """As Prosody: under their registered nick; those without one only to whoever sees real JIDs, from the room."""
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    configure(h, roles("none", "visitor", "participant", "moderator"))
    admin(h, "<item affiliation='member' jid='wiccarocks@shakespeare.lit' nick='secondwitch'/>", "m1")
    admin(h, "<item affiliation='admin' jid='hecate@shakespeare.lit'/>", "m2")
    admin(h, "<item affiliation='outcast' jid='macbeth@shakespeare.lit'/>", "m3")
    h.sent()
    # The newcomer is no admin: the banned user is not shown to it (§9.2).
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    h.expect(
        f"""<presence from='{ROOM}/firstwitch' to='{HAG}'>
          <x xmlns='{USER}'><item affiliation='owner' role='moderator'/></x></presence>""",
        f"""<presence from='{ROOM}/secondwitch' to='{HAG}' type='unavailable'>
          <x xmlns='{USER}'><item affiliation='member' nick='secondwitch' role='none'/></x></presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{CRONE}'>
          <x xmlns='{USER}'><item affiliation='none' jid='{HAG}' role='participant'/></x></presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{HAG}'>
          <x xmlns='{USER}'><item affiliation='none' jid='{HAG}' role='participant'/><status code='110'/></x></presence>""",
        f"<message from='{ROOM}' to='{HAG}' type='groupchat'><subject/></message>",
    )
    # The owner's second client sees real JIDs: the admin without a nick too, from the room itself.
    h.receive(f"<presence from='crone1@shakespeare.lit/laptop' to='{ROOM}/firstwitch'>{MUC_X}</presence>")
    sent = h.sent()
    assert [(p.get("from"), p.get("type"), p[0][0].attrib) for p in sent[:4]] == [
        (f"{ROOM}/thirdwitch", None, {"affiliation": "none", "jid": HAG, "role": "participant"}),
        (ROOM, "unavailable", {"affiliation": "admin", "jid": "hecate@shakespeare.lit", "role": "none"}),
        (ROOM, "unavailable", {"affiliation": "outcast", "jid": "macbeth@shakespeare.lit", "role": "none"}),
        (f"{ROOM}/secondwitch", "unavailable",
         {"affiliation": "member", "jid": "wiccarocks@shakespeare.lit", "nick": "secondwitch", "role": "none"}),
    ]


def test_with_none_listed_the_banned_are_shown_to_admins_and_owners_only() -> None:
    """§9.2 keeps the ban list to admins and owners, also in a non-anonymous room where everyone sees real JIDs."""
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    configure(h, roles("none", "visitor", "participant", "moderator")
              + "<field var='muc#roomconfig_whois'><value>anyone</value></field>")
    admin(h, "<item affiliation='outcast' jid='macbeth@shakespeare.lit'/>", "ban")
    admin(h, "<item affiliation='admin' jid='hecate@shakespeare.lit'/>", "admin")
    h.sent()
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    absent = [p[0][0].attrib for p in h.sent() if p.get("type") == "unavailable"]
    assert absent == [{"affiliation": "admin", "jid": "hecate@shakespeare.lit", "role": "none"}]
    h.receive(f"<presence from='hecate@shakespeare.lit/broom' to='{ROOM}/hecate'>{MUC_X}</presence>")
    absent = [p[0][0].attrib for p in h.sent() if p.get("type") == "unavailable"]
    assert absent == [{"affiliation": "outcast", "jid": "macbeth@shakespeare.lit", "role": "none"}]


def test_a_role_that_is_none_of_the_four_is_refused(harness) -> None:
    h = harness
    h.receive(
        f"<iq from='{CRONE}' id='bad' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        f"<x xmlns='jabber:x:data' type='submit'>{roles('moderator', 'owner')}</x></query></iq>"
    )
    (reply,) = h.sent()
    assert reply.get("type") == "error"
    assert reply.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}not-acceptable") is not None


def test_the_roles_are_stored_with_the_room() -> None:
    storage = immediate_storage()
    first = muc_harness(storage=storage)
    instant_room(first, ROOM, CRONE, "firstwitch")
    configure(first, "<field var='muc#roomconfig_persistentroom'><value>1</value></field>" + roles("moderator"))
    second = muc_harness(storage=storage)
    second.receive(f"<iq from='{CRONE}' id='f' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>")
    (reply,) = second.sent()
    (field,) = [f for f in reply.iter("{jabber:x:data}field") if f.get("var") == BROADCAST]
    assert [v.text for v in field.findall("{jabber:x:data}value")] == ["moderator"]
