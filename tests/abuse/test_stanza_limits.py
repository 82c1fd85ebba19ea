"""One stanza never drops the link for everybody: limits apply per stanza, in and out.

Measured on the wire before these limits: a 200,078-byte message of quotes,
inside Prosody's client limit, reached the component as 1.2 MB (Prosody
writes '"' as "&quot;") and closed the whole stream; disco#items of 300
public rooms with long names was a reply over Prosody's 512 KiB component
limit, and Prosody dropped the component.
"""

from lxml import etree

from component import namespaces as ns
from component.component import DomainSettings
from component.testing import assert_xml_equal
from services.muc.service import MucService
from services.muc.testing import CRONE, ERR, HAG, ROOM, WICCA, immediate_storage
from tests.abuse.wire import SERVER_HEADER, ServerWire, parse_output

DOMAIN = "chat.shakespeare.lit"
MUC = "<x xmlns='http://jabber.org/protocol/muc'/>"


def muc_wire(**kwargs) -> ServerWire:
    # One owner makes every room here: past the default quota of rooms per user.
    return ServerWire(DOMAIN, (MucService, {"max_rooms_per_user": 1000}), storage=immediate_storage(), **kwargs)


def enter(wire: ServerWire, jid: str, nick: str, room: str = ROOM) -> None:
    wire.feed(f"<presence from='{jid}' to='{room}/{nick}'>{MUC}</presence>")
    wire.stanzas()


def room_with_three(**kwargs) -> ServerWire:
    wire = muc_wire(**kwargs)
    enter(wire, CRONE, "firstwitch")
    wire.feed(
        f"<iq from='{CRONE}' to='{ROOM}' type='set' id='create'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        "<x xmlns='jabber:x:data' type='submit'/></query></iq>"
    )
    wire.stanzas()
    enter(wire, WICCA, "secondwitch")
    enter(wire, HAG, "thirdwitch")
    return wire


def groupchat(sender: str, body: bytes, stanza_id: bytes = b"lh2bs617") -> bytes:
    return (
        b"<message from='" + sender.encode() + b"' id='" + stanza_id + b"' to='" + ROOM.encode() + b"' "
        b"type='groupchat'><body>" + body + b"</body></message>"
    )


def bodies(stanzas: list[etree._Element]) -> list[tuple[str, str | None]]:
    return [(s.get("to"), s.findtext(f"{{{ns.COMPONENT}}}body")) for s in stanzas]


def test_a_message_of_quotes_as_prosody_forwards_it_reaches_every_occupant():
    wire = room_with_three()
    wire.feed(groupchat(HAG, b"&quot;" * 200_013), chunk=65536)
    assert sorted(bodies(wire.stanzas())) == sorted((jid, '"' * 200_013) for jid in (CRONE, WICCA, HAG))
    assert wire.up


def test_an_oversized_groupchat_is_refused_alone_and_the_others_keep_talking():
    wire = room_with_three()
    wire.feed(groupchat(HAG, b"x" * (3 << 20), b"big"), chunk=65536)
    [error] = wire.stanzas()
    assert_xml_equal(
        error,
        f"""<message from='{ROOM}' to='{HAG}' id='big' type='error'>
              <error type='modify'><policy-violation {ERR}/>
              <text {ERR}>stanza larger than 2097152 bytes</text></error></message>""",
    )
    wire.feed(groupchat(WICCA, b"still here"))
    assert sorted(bodies(wire.stanzas())) == sorted((jid, "still here") for jid in (CRONE, WICCA, HAG))
    assert wire.component.refused["oversized-in"] == 1


def test_a_reflection_over_the_outgoing_limit_is_refused_to_its_sender():
    wire = room_with_three(settings=DomainSettings(max_outgoing_bytes=10_000))
    wire.feed(groupchat(HAG, b"x" * 20_000))
    [error] = wire.stanzas()
    assert_xml_equal(
        error,
        f"""<message from='{ROOM}' to='{HAG}' id='lh2bs617' type='error'>
              <error type='modify'><policy-violation {ERR}/>
              <text {ERR}>the message is too large to reflect (limit 10000 bytes)</text></error></message>""",
    )
    assert wire.up


def many_public_rooms(wire: ServerWire, count: int, name_length: int) -> list[str]:
    rooms = [f"room{index:03d}@{DOMAIN}" for index in range(count)]
    for room in rooms:
        enter(wire, CRONE, "owner", room)
        wire.feed(
            f"<iq from='{CRONE}' to='{room}' type='set' id='cfg'><query xmlns='http://jabber.org/protocol/muc#owner'>"
            "<x xmlns='jabber:x:data' type='submit'>"
            f"<field var='muc#roomconfig_roomname'><value>{'n' * name_length}</value></field>"
            "</x></query></iq>"
        )
        wire.stanzas()
    return rooms


def items_query(set_element: str = "") -> str:
    return (
        f"<iq from='{HAG}' id='zb8q41f4' to='{DOMAIN}' type='get'>"
        f"<query xmlns='http://jabber.org/protocol/disco#items'>{set_element}</query></iq>"
    )


RSM = "http://jabber.org/protocol/rsm"


def page_of(reply: etree._Element) -> tuple[list[str], etree._Element | None]:
    query = reply.find(f"{{{ns.DISCO_ITEMS}}}query")
    return [item.get("jid") for item in query], query.find(f"{{{RSM}}}set")


def test_disco_items_of_the_service_comes_in_pages_under_the_server_limit():
    wire = muc_wire()
    rooms = many_public_rooms(wire, 300, 2000)
    wire.feed(items_query())
    data = wire.take()
    assert len(data) < 512 * 1024
    [reply] = parse_output(data)
    items, rsm = page_of(reply)
    assert [jid for jid in items if jid] == rooms[:100]
    assert_xml_equal(
        rsm,
        f"<set xmlns='{RSM}'><first index='0'>{rooms[0]}</first><last>{rooms[99]}</last><count>300</count></set>",
    )

    wire.feed(items_query(f"<set xmlns='{RSM}'><max>10</max><after>{rooms[99]}</after></set>"))
    [reply] = wire.stanzas()
    items, rsm = page_of(reply)
    assert [jid for jid in items if jid] == rooms[100:110]
    assert rsm.find(f"{{{RSM}}}first").get("index") == "100"

    wire.feed(items_query(f"<set xmlns='{RSM}'><max>10</max><before/></set>"))
    [reply] = wire.stanzas()
    assert [jid for jid in page_of(reply)[0] if jid] == rooms[290:]

    wire.feed(items_query(f"<set xmlns='{RSM}'><max>0</max></set>"))
    [reply] = wire.stanzas()
    assert_xml_equal(page_of(reply)[1], f"<set xmlns='{RSM}'><count>300</count></set>")

    wire.feed(items_query(f"<set xmlns='{RSM}'><after>nowhere@{DOMAIN}</after></set>"))
    [error] = wire.stanzas()
    assert error.get("type") == "error"
    assert error.find(f".//{{{ns.STANZAS}}}item-not-found") is not None


def test_a_short_room_list_is_answered_without_paging():
    wire = muc_wire()
    rooms = many_public_rooms(wire, 3, 5)
    wire.feed(items_query())
    [reply] = wire.stanzas()
    assert_xml_equal(
        reply,
        f"<iq from='{DOMAIN}' id='zb8q41f4' to='{HAG}' type='result'>"
        "<query xmlns='http://jabber.org/protocol/disco#items'>"
        + "".join(f"<item jid='{room}' name='nnnnn'/>" for room in rooms)
        + "</query></iq>",
    )


def test_an_answer_over_the_outgoing_limit_is_an_error_not_a_dropped_link():
    wire = muc_wire(settings=DomainSettings(max_outgoing_bytes=20_000))
    many_public_rooms(wire, 30, 2000)
    wire.feed(items_query())
    [error] = wire.stanzas()
    assert_xml_equal(
        error,
        f"""<iq from='{DOMAIN}' id='zb8q41f4' to='{HAG}' type='error'>
              <query xmlns='http://jabber.org/protocol/disco#items'/>
              <error type='wait'><resource-constraint {ERR}/>
              <text {ERR}>the answer would be larger than 20000 bytes</text></error></iq>""",
    )
    assert wire.component.refused["oversized-out"] == 1


def test_stanzas_from_our_own_domain_are_dropped_and_never_answered():
    # A stanza the server routes back to us: answering it would loop.
    wire = room_with_three()
    for stanza in (
        f"<message from='{ROOM}/firstwitch' to='{ROOM}' type='groupchat'><body>loop</body></message>",
        f"<message from='{ROOM}' to='nowhere@{DOMAIN}' type='chat'><body>loop</body></message>",
        f"<iq from='{DOMAIN}' to='{DOMAIN}' type='get' id='x'><query xmlns='jabber:iq:version'/></iq>",
        f"<presence from='{ROOM}/x' to='{ROOM}/y'/>",
    ):
        wire.feed(stanza)
        assert wire.stanzas() == []
    assert wire.component.refused["own-domain"] == 4
    assert wire.up


def test_declarations_on_the_server_header_do_not_reach_reflections():
    padding = b"".join(b" xmlns:p%d='urn:padding:%d'" % (index, index) for index in range(500))
    wire = room_with_three(header=SERVER_HEADER.replace(b" id=", padding + b" id=", 1))
    wire.feed(groupchat(HAG, b"hi"))
    data = wire.take()
    assert b"padding" not in data
    assert len(data) < 3 * 400


def test_a_second_stream_header_is_a_stream_error():
    wire = room_with_three()
    wire.feed(SERVER_HEADER.partition(b"?>")[2] + groupchat(HAG, b"swallowed"))
    data = wire.take()
    assert b"<bad-format" in data and data.endswith(b"</stream:stream>")
    assert b"swallowed" not in data
