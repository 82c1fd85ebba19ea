"""A room's archive (XEP-0313) and stanza-ids (XEP-0359), stanza in, stanzas out, as the XEPs' examples.

The cast is XEP-0045's: the crone owns the coven, the wiccarocks witch and
hag66 talk in it. Every test runs the real SQL on in-memory SQLite.
"""

from __future__ import annotations

from typing import Any

import pytest
from lxml import etree
from twisted.internet import defer

from services.muc.features.archive import find, tombstone
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

MAM = "urn:xmpp:mam:2"
RSM = "http://jabber.org/protocol/rsm"
PERSISTENT = "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"
C = "{jabber:client}"


def persistent_room(h: Any, fields: str = "") -> None:
    instant_room(h, ROOM, CRONE, "firstwitch")
    configure(h, PERSISTENT + fields)
    enter(h, ROOM, "secondwitch", WICCA)


def say(h: Any, sender: str, body: str, id: str) -> str:
    """A groupchat from *sender*; returns the stanza-id the room gave it."""
    h.receive(f"<message from='{sender}' to='{ROOM}' type='groupchat' id='{id}'><body>{body}</body></message>")
    reflected = h.sent()[0]
    found = reflected.find("{urn:xmpp:sid:0}stanza-id")
    assert found is not None and found.get("by") == ROOM
    return found.get("id")


def ask(h: Any, sender: str, query: str, id: str = "q") -> tuple[list[etree._Element], etree._Element]:
    """Send an iq set with *query*; the result messages and the iq that ends them."""
    h.receive(f"<iq from='{sender}' to='{ROOM}' type='set' id='{id}'>{query}</iq>")
    sent = h.sent()
    *messages, reply = sent
    assert reply.tag.endswith("}iq"), etree.tostring(reply)
    return messages, reply


def bodies(messages: list[etree._Element]) -> list[str]:
    return [m.findtext(f"{{{MAM}}}result/{{urn:xmpp:forward:0}}forwarded/{C}message/{C}body") for m in messages]


@pytest.fixture
def harness() -> Any:
    h = muc_harness()
    persistent_room(h)
    return h


def test_the_room_says_it_archives(harness: Any) -> None:
    h = harness
    h.receive(f"<iq from='{HAG}' to='{ROOM}' type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    features = {f.get("var") for f in h.sent()[0].iter("{http://jabber.org/protocol/disco#info}feature")}
    assert {"urn:xmpp:sid:0", MAM, MAM + "#extended"} <= features
    assert "urn:xmpp:mam:1" not in features  # answered, not announced (as Prosody)


def test_a_query_gets_every_message_forwarded_then_fin(harness: Any) -> None:
    # XEP-0313 §4.2 and §6.2: each result from the room, forwarded with its delay, then the iq result.
    h = harness
    first = say(h, CRONE, "Thrice the brinded cat hath mew'd.", "162BEBB1")
    second = say(h, WICCA, "Thrice and once the hedge-pig whined.", "162BEBB2")
    enter(h, ROOM, "thirdwitch", HAG)
    h.receive(f"<iq from='{HAG}' to='{ROOM}' type='set' id='juliet1'><query xmlns='{MAM}' queryid='f27'/></iq>")
    h.expect(
        f"""<message from='{ROOM}' to='{HAG}'>
          <result xmlns='{MAM}' queryid='f27' id='{first}'>
            <forwarded xmlns='urn:xmpp:forward:0'>
              <delay xmlns='urn:xmpp:delay' stamp='*'/>
              <message xmlns='jabber:client' from='{ROOM}/firstwitch' id='162BEBB1' type='groupchat'>
                <body>Thrice the brinded cat hath mew'd.</body>
                <stanza-id xmlns='urn:xmpp:sid:0' by='{ROOM}' id='{first}'/>
              </message>
            </forwarded>
          </result>
        </message>""",
        f"""<message from='{ROOM}' to='{HAG}'>
          <result xmlns='{MAM}' queryid='f27' id='{second}'>
            <forwarded xmlns='urn:xmpp:forward:0'>
              <delay xmlns='urn:xmpp:delay' stamp='*'/>
              <message xmlns='jabber:client' from='{ROOM}/secondwitch' id='162BEBB2' type='groupchat'>
                <body>Thrice and once the hedge-pig whined.</body>
                <stanza-id xmlns='urn:xmpp:sid:0' by='{ROOM}' id='{second}'/>
              </message>
            </forwarded>
          </result>
        </message>""",
        f"""<iq from='{ROOM}' to='{HAG}' type='result' id='juliet1'>
          <fin xmlns='{MAM}' complete='true'>
            <set xmlns='{RSM}'><first>{first}</first><last>{second}</last><count>2</count></set>
          </fin>
        </iq>""",
    )


def test_paging_back_from_the_end_with_rsm(harness: Any) -> None:
    # §4.1.3 and XEP-0059 §2.5: the last page with an empty <before/>, then the page before its first.
    h = harness
    ids = [say(h, CRONE, f"line {n}", f"m{n}") for n in range(5)]
    page = f"<query xmlns='{MAM}'><set xmlns='{RSM}'><max>2</max><before>%s</before></set></query>"
    messages, reply = ask(h, WICCA, page % "")
    assert bodies(messages) == ["line 3", "line 4"]
    fin = reply.find(f"{{{MAM}}}fin")
    assert fin.get("complete") is None
    assert [fin.findtext(f"{{{RSM}}}set/{{{RSM}}}{name}") for name in ("first", "last", "count")] == [ids[3], ids[4], "5"]
    messages, reply = ask(h, WICCA, page % ids[3])
    assert bodies(messages) == ["line 1", "line 2"]
    messages, reply = ask(h, WICCA, page % ids[1])
    assert bodies(messages) == ["line 0"] and reply.find(f"{{{MAM}}}fin").get("complete") == "true"
    # Forward from an id, and a flipped page: newest first, first and last still in archive order.
    messages, reply = ask(h, WICCA, f"<query xmlns='{MAM}'><set xmlns='{RSM}'><max>2</max><after>{ids[0]}</after></set><flip-page/></query>")
    assert bodies(messages) == ["line 2", "line 1"]
    assert reply.findtext(f"{{{MAM}}}fin/{{{RSM}}}set/{{{RSM}}}first") == ids[1]


def test_filters_by_occupant_time_and_ids(harness: Any) -> None:
    h = harness
    ids = [say(h, CRONE if n % 2 else WICCA, f"line {n}", f"m{n}") for n in range(4)]

    def form(fields: str) -> str:
        return (f"<query xmlns='{MAM}'><x xmlns='jabber:x:data' type='submit'>"
                f"<field var='FORM_TYPE' type='hidden'><value>{MAM}</value></field>{fields}</x></query>")

    messages, reply = ask(h, WICCA, form(f"<field var='with'><value>{ROOM}/firstwitch</value></field>"))
    assert bodies(messages) == ["line 1", "line 3"]
    assert reply.findtext(f"{{{MAM}}}fin/{{{RSM}}}set/{{{RSM}}}count") == "2"
    messages, _ = ask(h, WICCA, form(f"<field var='ids'><value>{ids[2]}</value><value>{ids[0]}</value></field>"))
    assert bodies(messages) == ["line 0", "line 2"]
    messages, _ = ask(h, WICCA, form(f"<field var='after-id'><value>{ids[0]}</value></field>"
                                      f"<field var='before-id'><value>{ids[3]}</value></field>"))
    assert bodies(messages) == ["line 1", "line 2"]
    messages, reply = ask(h, WICCA, form("<field var='start'><value>2100-01-01T00:00:00Z</value></field>"))
    assert messages == [] and reply.find(f"{{{MAM}}}fin").get("complete") == "true"
    # Filtering by a real JID in a semi-anonymous room: a participant learns nothing.
    messages, _ = ask(h, WICCA, form("<field var='with'><value>crone1@shakespeare.lit</value></field>"))
    assert messages == []
    messages, _ = ask(h, CRONE, form("<field var='with'><value>crone1@shakespeare.lit</value></field>"))
    assert bodies(messages) == ["line 1", "line 3"]


def test_bad_queries_get_errors(harness: Any) -> None:
    h = harness
    say(h, CRONE, "line", "m")
    h.receive(f"<iq from='{WICCA}' to='{ROOM}' type='set' id='e1'><query xmlns='{MAM}'>"
              f"<set xmlns='{RSM}'><after>no-such-id</after></set></query></iq>")
    h.expect(f"""<iq from='{ROOM}' to='{WICCA}' type='error' id='e1'><query xmlns='{MAM}'>
        <set xmlns='{RSM}'><after>no-such-id</after></set></query>
        <error type='modify'><item-not-found {ERR}/><text {ERR}>*</text></error></iq>""")
    h.receive(f"<iq from='{WICCA}' to='{ROOM}' type='set' id='e2'><query xmlns='{MAM}'><x xmlns='jabber:x:data' type='submit'>"
              f"<field var='FORM_TYPE'><value>{MAM}</value></field><field var='start'><value>soon</value></field></x></query></iq>")
    assert h.sent()[0].find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}bad-request") is not None


def test_who_may_read_the_archive() -> None:
    h = muc_harness()
    persistent_room(h, "<field var='muc#roomconfig_membersonly'><value>1</value></field>")
    say(h, CRONE, "members only", "m")
    # §4.1 (MUC): in a members-only room, only members; an outcast never.
    h.receive(f"<iq from='{HAG}' to='{ROOM}' type='set' id='f1'><query xmlns='{MAM}'/></iq>")
    h.expect(f"""<iq from='{ROOM}' to='{HAG}' type='error' id='f1'><query xmlns='{MAM}'/>
        <error type='auth'><forbidden {ERR}/><text {ERR}>*</text></error></iq>""")
    h.receive(f"<iq from='{CRONE}' to='{ROOM}' type='set' id='member'><query xmlns='http://jabber.org/protocol/muc#admin'>"
              "<item affiliation='member' jid='wiccarocks@shakespeare.lit'/></query></iq>")
    h.sent()
    messages, _ = ask(h, WICCA, f"<query xmlns='{MAM}'/>")  # a member, in the room or not
    assert bodies(messages) == ["members only"]
    configure(h, "<field var='muc#roomconfig_membersonly'><value>0</value></field>")
    messages, _ = ask(h, HAG, f"<query xmlns='{MAM}'/>")  # an open room: anyone, as Prosody
    assert bodies(messages) == ["members only"]
    h.receive(f"<iq from='{CRONE}' to='{ROOM}' type='set' id='ban'><query xmlns='http://jabber.org/protocol/muc#admin'>"
              "<item affiliation='outcast' jid='hag66@shakespeare.lit'/></query></iq>")
    h.sent()
    h.receive(f"<iq from='{HAG}' to='{ROOM}' type='set' id='f2'><query xmlns='{MAM}'/></iq>")
    assert h.sent()[0].find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}forbidden") is not None
    configure(h, "<field var='muc#roomconfig_roomsecret'><value>cauldron</value></field>")
    h.receive(f"<iq from='earlofcambridge@shakespeare.lit/stage' to='{ROOM}' type='set' id='f3'><query xmlns='{MAM}'/></iq>")
    assert h.sent()[0].find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}forbidden") is not None


def test_real_jids_only_to_who_may_see_them() -> None:
    h = muc_harness()
    persistent_room(h)
    say(h, WICCA, "semi-anonymous", "m1")
    configure(h, "<field var='muc#roomconfig_whois'><value>anyone</value></field>")
    say(h, WICCA, "non-anonymous", "m2")
    item = f"{C}message/{{http://jabber.org/protocol/muc#user}}x/{{http://jabber.org/protocol/muc#user}}item"

    def jids(sender: str) -> list[str | None]:
        messages, _ = ask(h, sender, f"<query xmlns='{MAM}'/>")
        found = [m.find(f"{{{MAM}}}result/{{urn:xmpp:forward:0}}forwarded/{item}") for m in messages]
        return [None if f is None else f.get("jid") for f in found]

    # A participant of the now non-anonymous room sees the JID of what was said non-anonymously only.
    enter(h, ROOM, "thirdwitch", HAG)
    assert jids(HAG) == [None, "wiccarocks@shakespeare.lit"]
    assert jids(CRONE) == ["wiccarocks@shakespeare.lit", "wiccarocks@shakespeare.lit"]  # the owner, a moderator
    configure(h, "<field var='muc#roomconfig_whois'><value>moderators</value></field>")
    assert jids(HAG) == [None, None]


def test_metadata_and_the_form() -> None:
    h = muc_harness()
    persistent_room(h)
    h.receive(f"<iq from='{WICCA}' to='{ROOM}' type='get' id='md0'><metadata xmlns='{MAM}'/></iq>")
    h.expect(f"<iq from='{ROOM}' to='{WICCA}' type='result' id='md0'><metadata xmlns='{MAM}'/></iq>")
    first = say(h, CRONE, "first", "m1")
    last = say(h, CRONE, "last", "m2")
    h.receive(f"<iq from='{WICCA}' to='{ROOM}' type='get' id='md'><metadata xmlns='{MAM}'/></iq>")
    h.expect(f"""<iq from='{ROOM}' to='{WICCA}' type='result' id='md'><metadata xmlns='{MAM}'>
        <start id='{first}' timestamp='*'/><end id='{last}' timestamp='*'/></metadata></iq>""")
    h.receive(f"<iq from='{WICCA}' to='{ROOM}' type='get' id='form'><query xmlns='{MAM}'/></iq>")
    (reply,) = h.sent()
    assert [f.get("var") for f in reply.iter("{jabber:x:data}field")] == [
        "FORM_TYPE", "with", "start", "end", "before-id", "after-id", "ids"]
    # mam:1 queries are answered in their namespace.
    messages, reply = ask(h, WICCA, "<query xmlns='urn:xmpp:mam:1' queryid='old'/>")
    assert [m.find("{urn:xmpp:mam:1}result").get("id") for m in messages] == [first, last]
    assert reply.find("{urn:xmpp:mam:1}fin").get("complete") == "true"


def test_subject_changes_are_archived_with_their_stanza_id(harness: Any) -> None:
    h = harness
    say(h, CRONE, "before", "m")
    h.receive(f"<message from='{CRONE}' to='{ROOM}' type='groupchat' id='s'><subject>Fire Burn</subject></message>")
    subject_id = h.sent()[0].find("{urn:xmpp:sid:0}stanza-id").get("id")
    messages, _ = ask(h, WICCA, f"<query xmlns='{MAM}'/>")
    assert [m.find(f"{{{MAM}}}result").get("id") for m in messages][-1] == subject_id
    forwarded = messages[-1].find(f"{{{MAM}}}result/{{urn:xmpp:forward:0}}forwarded/{C}message")
    assert forwarded.findtext(f"{C}subject") == "Fire Burn"
    # The join history replays messages only; the subject comes last, on its own.
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    *_, replayed, subject = h.sent()
    assert replayed.findtext("{jabber:component:accept}body") == "before"
    assert subject.findtext("{jabber:component:accept}subject") == "Fire Burn"


def test_a_restarted_room_replays_the_archive_tail_and_keeps_its_archive() -> None:
    storage = immediate_storage()
    h = muc_harness(storage=storage)
    persistent_room(h, "<field var='muc#roomconfig_historylength'><value>2</value></field>")
    ids = [say(h, CRONE, f"line {n}", f"m{n}") for n in range(4)]
    again = muc_harness(storage=storage)
    again.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    replayed = [m for m in again.sent() if m.findtext("{jabber:component:accept}body")]
    assert [m.findtext("{jabber:component:accept}body") for m in replayed] == ["line 2", "line 3"]
    assert [m.find("{urn:xmpp:sid:0}stanza-id").get("id") for m in replayed] == ids[2:]
    messages, _ = ask(again, HAG, f"<query xmlns='{MAM}'/>")
    assert bodies(messages) == [f"line {n}" for n in range(4)]


def test_archiving_off_keeps_only_the_join_history_and_stops_announcing_it(harness: Any) -> None:
    h = harness
    h.receive(f"<iq from='{CRONE}' id='cfg' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
              "<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_enablearchiving'><value>0</value></field>"
              "</x></query></iq>")
    sent = h.sent()
    # The owner's result, then the notice: 171 alone, as Prosody's mod_muc_mam (archiving is
    # logging, a privacy-related change: no 104).
    codes = {s.get("code") for s in sent[1].iter("{http://jabber.org/protocol/muc#user}status")}
    assert codes == {"171"}
    h.receive(f"<iq from='{HAG}' to='{ROOM}' type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    features = {f.get("var") for f in h.sent()[0].iter("{http://jabber.org/protocol/disco#info}feature")}
    assert "urn:xmpp:sid:0" in features and MAM not in features
    h.receive(f"<iq from='{CRONE}' id='g' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>")
    field = h.sent()[0].find(".//{jabber:x:data}field[@var='muc#roomconfig_enablearchiving']")
    assert field.get("type") == "boolean" and field.findtext("{jabber:x:data}value") == "0"


def test_a_temporary_room_has_an_empty_archive() -> None:
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    say(h, CRONE, "not kept", "m")
    messages, reply = ask(h, CRONE, f"<query xmlns='{MAM}'/>")
    assert messages == [] and reply.find(f"{{{MAM}}}fin").get("complete") == "true"
    h.receive(f"<iq from='{CRONE}' to='{ROOM}' type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    features = {f.get("var") for f in h.sent()[0].iter("{http://jabber.org/protocol/disco#info}feature")}
    assert "urn:xmpp:sid:0" in features and MAM not in features


def test_a_tombstone_replaces_a_message_for_moderation() -> None:
    h = muc_harness({"occupant_id": True})
    persistent_room(h)
    keep = say(h, CRONE, "keep", "m1")
    h.receive(f"<message from='{WICCA}' to='{ROOM}' type='groupchat' id='m2'><body>spam</body></message>")
    reflected = h.sent()[0]
    spam = reflected.find("{urn:xmpp:sid:0}stanza-id").get("id")
    room = h.component.router.loaded("coven")
    record = _result(find(room, spam))
    assert (record.nick, record.sender_jid) == ("secondwitch", "wiccarocks@shakespeare.lit")
    assert record.occupant_id == reflected.find("{urn:xmpp:occupant-id:0}occupant-id").get("id")  # XEP-0421
    stone = f'<message xmlns="jabber:component:accept" from="{ROOM}/secondwitch" type="groupchat"><retracted xmlns="urn:xmpp:message-retract:1"/></message>'
    assert _result(defer.ensureDeferred(tombstone(room, spam, stone))) is True
    assert _result(defer.ensureDeferred(tombstone(room, "no-such-id", stone))) is False
    messages, _ = ask(h, CRONE, f"<query xmlns='{MAM}'/>")
    assert [m.find(f"{{{MAM}}}result").get("id") for m in messages] == [keep, spam]
    assert messages[1].find(f".//{C}message/{{urn:xmpp:message-retract:1}}retracted") is not None
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    assert [m.findtext("{jabber:component:accept}body") for m in h.sent() if m.findtext("{jabber:component:accept}body")] == ["keep"]


def _result(d: Any) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "not answered at once"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]
