"""Who may read the member list (XEP-0045 §9.5, §10.2 ``muc#roomconfig_getmemberlist``).

Written as the XEP's examples, with its cast: the stanzas in, the exact stanzas out.
"""

from __future__ import annotations

import pytest

from services.muc.testing import CRONE, ERR, HAG, ROOM, WICCA, configure, enter, instant_room, muc_harness

ADMIN = "http://jabber.org/protocol/muc#admin"
FIELD = "muc#roomconfig_getmemberlist"
NON_ANONYMOUS = "<field var='muc#roomconfig_whois'><value>anyone</value></field>"


def roles(*names: str) -> str:
    return f"<field var='{FIELD}'>" + "".join(f"<value>{name}</value>" for name in names) + "</field>"


@pytest.fixture
def harness():
    """The room of §9.5's example: wiccarocks is a member; thirdwitch is in the room without an affiliation."""
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    h.receive(
        f"<iq from='{CRONE}' id='m' to='{ROOM}' type='set'><query xmlns='{ADMIN}'>"
        "<item affiliation='member' jid='wiccarocks@shakespeare.lit' nick='secondwitch'/></query></iq>"
    )
    enter(h, ROOM, "thirdwitch", HAG)
    return h


def ask(h, id: str = "member3") -> None:
    h.receive(f"<iq from='{HAG}' id='{id}' to='{ROOM}' type='get'><query xmlns='{ADMIN}'><item affiliation='member'/></query></iq>")


FORBIDDEN = (
    f"<iq from='{ROOM}' id='member3' to='{HAG}' type='error'><query xmlns='{ADMIN}'><item affiliation='member'/></query>"
    f"<error type='auth'><forbidden {ERR}/></error></iq>"
)
LIST = (
    f"""<iq from='{ROOM}' id='member3' to='{HAG}' type='result'><query xmlns='{ADMIN}'>
      <item affiliation='member' jid='wiccarocks@shakespeare.lit' nick='secondwitch'/></query></iq>"""
)


def test_by_default_no_role_opens_the_member_list(harness) -> None:
    h = harness
    ask(h)
    h.expect(FORBIDDEN)


def test_the_roles_listed_may_read_it_where_anyone_sees_real_jids(harness) -> None:
    h = harness
    configure(h, NON_ANONYMOUS + roles("participant", "visitor"))
    ask(h)
    h.expect(LIST)
    # Not in the room: no role, no list.
    h.receive(
        f"<iq from='{WICCA}' id='out' to='{ROOM}' type='get'><query xmlns='{ADMIN}'><item affiliation='owner'/></query></iq>"
    )
    assert h.sent()[0].get("type") == "error"


def test_in_a_semi_anonymous_room_only_a_moderators_role_opens_it(harness) -> None:
    """The list names members by real JID, which §9.5 keeps from non-moderators of a semi-anonymous room."""
    h = harness
    configure(h, roles("moderator", "participant"))
    ask(h)
    h.expect(FORBIDDEN)
    h.receive(
        f"<iq from='{CRONE}' id='mod' to='{ROOM}' type='set'><query xmlns='{ADMIN}'>"
        "<item nick='thirdwitch' role='moderator'/></query></iq>"
    )
    h.sent()
    ask(h)
    h.expect(LIST)


def test_the_field_offers_the_three_roles_and_refuses_others(harness) -> None:
    h = harness
    h.receive(f"<iq from='{CRONE}' id='f' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>")
    (reply,) = h.sent()
    (field,) = [f for f in reply.iter("{jabber:x:data}field") if f.get("var") == FIELD]
    assert field.get("type") == "list-multi"
    assert field.findall("{jabber:x:data}value") == []
    assert [o.findtext("{jabber:x:data}value") for o in field.findall("{jabber:x:data}option")] == [
        "moderator", "participant", "visitor",
    ]
    h.receive(
        f"<iq from='{CRONE}' id='bad' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        f"<x xmlns='jabber:x:data' type='submit'>{roles('member')}</x></query></iq>"
    )
    assert h.sent()[0].find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}not-acceptable") is not None
