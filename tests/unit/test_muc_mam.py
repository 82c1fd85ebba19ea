"""XEP-0313 queries read into values and archived rows written as results, as the XEP's examples show them."""

from __future__ import annotations

import attrs
import pytest
from lxml import etree

from component.errors import StanzaError
from component.jid import JID
from component.stanza import parse_sent
from component.testing import assert_xml_equal
from services.muc.archive_store import ArchiveEnds, ArchivePage, Selection
from services.muc.mam import ArchiveQuery, fin, metadata, parse_query, query_form, result
from services.muc.store import HistoryRecord

ROOM = JID("coven", "chat.shakespeare.lit")


def query(xml: str) -> ArchiveQuery:
    return parse_query(etree.fromstring(xml), ROOM, 50)


def form(fields: str, namespace: str = "urn:xmpp:mam:2") -> str:
    return (
        f"<query xmlns='{namespace}'><x xmlns='jabber:x:data' type='submit'>"
        f"<field var='FORM_TYPE' type='hidden'><value>{namespace}</value></field>{fields}</x></query>"
    )


def test_an_empty_query_asks_for_the_first_page() -> None:
    # XEP-0313 Example 1 (to a MUC, §6.2): the whole archive, the server's default page.
    q = query("<query xmlns='urn:xmpp:mam:2' queryid='f27'/>")
    assert q == ArchiveQuery("urn:xmpp:mam:2", "f27", Selection(), None, None, 20, False)


def test_filtering_by_occupant_and_by_time() -> None:
    # Example 6 and 8: with, start and end; in a room, with is an occupant JID.
    q = query(form(
        "<field var='with'><value>coven@chat.shakespeare.lit/firstwitch</value></field>"
        "<field var='start'><value>2010-06-07T00:00:00Z</value></field>"
        "<field var='end'><value>2010-07-07T13:23:54Z</value></field>"
    ))
    assert q.selection == Selection(start=1275868800.0, end=1278509034.0, nick="firstwitch")
    # A JID outside the room is a real JID; the room's own JID filters nothing.
    assert query(form("<field var='with'><value>hag66@shakespeare.lit/pda</value></field>")).selection.jid == "hag66@shakespeare.lit"
    assert query(form("<field var='with'><value>coven@chat.shakespeare.lit</value></field>")).selection == Selection()
    # A time without zone is taken as UTC; fractions are kept.
    assert query(form("<field var='start'><value>2010-06-07T00:00:00.5</value></field>")).selection.start == 1275868800.5


def test_extended_fields_and_paging() -> None:
    # §4.1.2 (before-id, after-id, ids), Example 10 (max), 12 (after), 14 (before, empty: the last page), flip-page.
    q = query(
        form(
            "<field var='after-id'><value>09af3-cc343-b409f</value></field>"
            "<field var='before-id'><value>28482-98726-73623</value></field>"
            "<field var='ids'><value>a</value><value>b</value></field>"
        ).replace(
            "</query>",
            "<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before/></set><flip-page/></query>",
        )
    )
    assert q.selection == Selection(after_id="09af3-cc343-b409f", before_id="28482-98726-73623", ids=("a", "b"))
    assert (q.max, q.before, q.after, q.flip) == (10, "", None, True)
    paged = query("<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'>"
                  "<max>500</max><after>09af3-cc343-b409f</after></set></query>")
    assert (paged.max, paged.after, paged.before) == (50, "09af3-cc343-b409f", None)  # never more than the service allows
    # mam:1 is read the same way, in its own namespace.
    assert query(form("", "urn:xmpp:mam:1")).namespace == "urn:xmpp:mam:1"


@pytest.mark.parametrize(
    ("xml", "condition"),
    [
        (form("<field var='start'><value>yesterday</value></field>"), "bad-request"),
        (form("<field var='with'><value>@nobody</value></field>"), "jid-malformed"),
        (form("", "urn:xmpp:mam:1").replace("urn:xmpp:mam:1", "urn:xmpp:mam:2", 1), "bad-request"),
        ("<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>-1</max></set></query>", "bad-request"),
    ],
)
def test_malformed_queries_are_refused(xml: str, condition: str) -> None:
    with pytest.raises(StanzaError) as info:
        query(xml)
    assert info.value.condition == condition


RECORD = HistoryRecord(
    stanza_id="34482-21985-73620",
    nick="firstwitch",
    sender_jid="crone1@shakespeare.lit",
    # As the room sends it: the stream declares jabber:component:accept.
    stanza='<message from="coven@chat.shakespeare.lit/firstwitch"'
    ' type="groupchat" id="162BEBB1-F6DB-4D9A-9BD8-CFDCC801A0B2"><body>Thrice the brinded cat hath mew\'d.</body></message>',
    timestamp=1034553517.0,
)


def test_a_result_forwards_the_message_with_its_delay() -> None:
    # XEP-0313 Example 4 (a MUC archive's result, §6.2.1).
    q = query("<query xmlns='urn:xmpp:mam:2' queryid='g27'/>")
    data = result(RECORD, q, room=b"coven@chat.shakespeare.lit", to=b"hag66@shakespeare.lit/pda")
    # A row stored before stanzas went out without the declaration gives the same result.
    declared = attrs.evolve(RECORD, stanza=RECORD.stanza.replace("<message ", '<message xmlns="jabber:component:accept" ', 1))
    assert result(declared, q, room=b"coven@chat.shakespeare.lit", to=b"hag66@shakespeare.lit/pda") == data
    assert_xml_equal(
        parse_sent(data),
        "<message xmlns='jabber:component:accept' from='coven@chat.shakespeare.lit' to='hag66@shakespeare.lit/pda'>"
        "<result xmlns='urn:xmpp:mam:2' queryid='g27' id='34482-21985-73620'>"
        "<forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2002-10-13T23:58:37Z'/>"
        "<message xmlns='jabber:client' from='coven@chat.shakespeare.lit/firstwitch' type='groupchat'"
        " id='162BEBB1-F6DB-4D9A-9BD8-CFDCC801A0B2'><body>Thrice the brinded cat hath mew'd.</body></message>"
        "</forwarded></result></message>",
    )


def test_a_result_shows_the_real_jid_to_who_may_see_it() -> None:
    q = query("<query xmlns='urn:xmpp:mam:1'/>")
    data = result(RECORD, q, room=b"coven@chat.shakespeare.lit", to=b"crone1@shakespeare.lit/desktop", real_jid="crone1@shakespeare.lit")
    forwarded = parse_sent(data).find(".//{jabber:client}message")
    assert forwarded.find("{http://jabber.org/protocol/muc#user}x/{http://jabber.org/protocol/muc#user}item").get("jid") == "crone1@shakespeare.lit"
    assert parse_sent(data).find("{urn:xmpp:mam:1}result").get("queryid") is None


def test_fin_gives_first_last_and_count() -> None:
    # Example 11: the page's first and last ids and the count; complete only at the end.
    q = query("<query xmlns='urn:xmpp:mam:2'/>")
    other = HistoryRecord("09af3-cc343-b409f", "secondwitch", None, "<message/>", 1034553518.0)
    assert_xml_equal(
        (fin(q, ArchivePage((RECORD, other), False, 16))),
        "<fin xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'>"
        "<first>34482-21985-73620</first><last>09af3-cc343-b409f</last><count>16</count></set></fin>",
    )
    assert_xml_equal(
        (fin(q, ArchivePage((), True, 0))),
        "<fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'><count>0</count></set></fin>",
    )


def test_metadata_and_form() -> None:
    # §5.1 (metadata): the first and last archived ids and times; nothing for an empty archive.
    assert_xml_equal(
        metadata(ArchiveEnds(("YWxwaGEg", 1229176230.0), ("b21lZ2Eg", 1602835800.0))),
        "<metadata xmlns='urn:xmpp:mam:2'><start id='YWxwaGEg' timestamp='2008-12-13T13:50:30Z'/>"
        "<end id='b21lZ2Eg' timestamp='2020-10-16T08:10:00Z'/></metadata>",
    )
    assert_xml_equal(metadata(ArchiveEnds(None, None)), "<metadata xmlns='urn:xmpp:mam:2'/>")
    fields = [f.get("var") for f in query_form("urn:xmpp:mam:2").iter("{jabber:x:data}field")]
    assert fields == ["FORM_TYPE", "with", "start", "end", "before-id", "after-id", "ids"]
