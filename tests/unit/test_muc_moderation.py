"""Message moderation (XEP-0425) and retraction (XEP-0424) in a room, written as the XEPs' examples.

The cast is XEP-0045's: crone1 (firstwitch) owns the room and moderates,
wiccarocks (secondwitch) says something she should not, hag66
(thirdwitch) comes later and queries the archive.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from services.muc.testing import (
    CRONE,
    ERR,
    HAG,
    MUC_X,
    ROOM,
    WICCA,
    ImmediateStorage,
    configure,
    enter,
    immediate_storage,
    instant_room,
    muc_harness,
)

PERSISTENT = "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"
REASON = "This message contains inappropriate content for this forum"
SID = "{urn:xmpp:sid:0}stanza-id"
OCCUPANT_ID = "urn:xmpp:occupant-id:0"


def say(h, text: str, sender: str = WICCA, id: str = "inappropriate-1") -> str:
    """Send a groupchat message; the stanza-id the room gave it."""
    h.receive(f"<message from='{sender}' id='{id}' to='{ROOM}' type='groupchat'><body>{text}</body></message>")
    sent = h.sent()
    return sent[0].find(SID).get("id")


def oid(h, jid: str) -> str:
    from component.jid import parse_jid

    return h.component.services[0].occupant_ids.of(parse_jid(ROOM), parse_jid(jid))


def room(path: Path | None = None, persistent: bool = True):
    storage = immediate_storage(ImmediateStorage(str(path))) if path is not None else immediate_storage()
    h = muc_harness({"occupant_id": True}, storage=storage)
    instant_room(h, ROOM, CRONE, "firstwitch")
    if persistent:
        configure(h, PERSISTENT)
    enter(h, ROOM, "secondwitch", WICCA)
    return h


@pytest.fixture(params=["persistent", "temporary"])
def harness(request):
    return room(persistent=request.param == "persistent")


def moderate(h, stanza_id: str, sender: str = CRONE, reason: str = REASON) -> None:
    # XEP-0425 Example 3.
    h.receive(
        f"""<iq type='set' from='{sender}' to='{ROOM}' id='retract-request-1'>
          <moderate id='{stanza_id}' xmlns='urn:xmpp:message-moderate:1'>
            <retract xmlns='urn:xmpp:message-retract:1'/>
            <reason>{reason}</reason>
          </moderate></iq>"""
    )


def test_the_room_advertises_moderation(harness) -> None:
    h = harness
    h.receive(f"<iq from='{HAG}' id='info1' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    (reply,) = h.sent()
    features = {f.get("var") for f in reply.iter("{http://jabber.org/protocol/disco#info}feature")}
    assert {"urn:xmpp:message-moderate:1", "urn:xmpp:message-moderate:0", "urn:xmpp:message-retract:1"} <= features


def test_a_moderator_retracts_a_message(harness) -> None:
    h = harness
    stanza_id = say(h, "DM me for free magic potions!")
    moderate(h, stanza_id)
    # XEP-0425 Example 4 (with the 0.2 form beside it), to every occupant, then the result (Example 5).
    h.expect(
        *[
            f"""<message type='groupchat' from='{ROOM}' id='*' to='{to}'>
              <retract id='{stanza_id}' xmlns='urn:xmpp:message-retract:1'>
                <moderated by='{ROOM}/firstwitch' xmlns='urn:xmpp:message-moderate:1'>
                  <occupant-id xmlns='{OCCUPANT_ID}' id='{oid(h, CRONE)}'/>
                </moderated>
                <reason>{REASON}</reason>
              </retract>
              <apply-to id='{stanza_id}' xmlns='urn:xmpp:fasten:0'>
                <moderated by='{ROOM}/firstwitch' xmlns='urn:xmpp:message-moderate:0'>
                  <retract xmlns='urn:xmpp:message-retract:0'/>
                  <reason>{REASON}</reason>
                </moderated>
              </apply-to>
              <stanza-id xmlns='urn:xmpp:sid:0' by='{ROOM}' id='*'/></message>"""
            for to in (CRONE, WICCA)
        ],
        f"<iq type='result' from='{ROOM}' to='{CRONE}' id='retract-request-1'/>",
    )
    # Whoever comes later is not replayed the message (XEP-0424 §5).
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    assert not [s for s in h.sent() if s.find("{jabber:component:accept}body") is not None]
    # Nor may it be moderated twice.
    moderate(h, stanza_id)
    (again,) = h.sent()
    assert again.get("type") == "error"
    assert again.find("{jabber:component:accept}error/{urn:ietf:params:xml:ns:xmpp-stanzas}item-not-found") is not None


def test_the_legacy_form_is_understood(harness) -> None:
    h = harness
    stanza_id = say(h, "DM me for free magic potions!")
    # XEP-0425 0.2.1 Example 3.
    h.receive(
        f"""<iq type='set' from='{CRONE}' to='{ROOM}' id='retract-request-1'>
          <apply-to id="{stanza_id}" xmlns="urn:xmpp:fasten:0">
            <moderate xmlns='urn:xmpp:message-moderate:0'>
              <retract xmlns='urn:xmpp:message-retract:0'/>
              <reason>{REASON}</reason>
            </moderate>
          </apply-to></iq>"""
    )
    *notices, result = h.sent()
    assert result.get("type") == "result"
    assert [n.get("to") for n in notices] == [CRONE, WICCA]
    assert notices[0].find("{urn:xmpp:fasten:0}apply-to").get("id") == stanza_id
    assert notices[0].findtext(".//{urn:xmpp:message-moderate:0}reason") == REASON


def test_only_moderators_may_moderate(harness) -> None:
    h = harness
    stanza_id = say(h, "DM me for free magic potions!", sender=CRONE)
    moderate(h, stanza_id, sender=WICCA)
    h.expect(
        f"""<iq type='error' from='{ROOM}' to='{WICCA}' id='retract-request-1'>
          <moderate id='{stanza_id}' xmlns='urn:xmpp:message-moderate:1'>
            <retract xmlns='urn:xmpp:message-retract:1'/><reason>{REASON}</reason></moderate>
          <error type='auth'><forbidden {ERR}/><text {ERR}>only moderators may moderate messages</text></error></iq>"""
    )


def test_an_unknown_message_is_not_found(harness) -> None:
    h = harness
    moderate(h, "no-such-id")
    (reply,) = h.sent()
    assert reply.get("type") == "error"
    error = reply.find("{jabber:component:accept}error")
    assert error.get("type") == "modify"
    assert error.find("{urn:ietf:params:xml:ns:xmpp-stanzas}item-not-found") is not None


def test_the_archive_keeps_a_tombstone(tmp_path: Path) -> None:
    h = room(tmp_path / "muc.db")
    stanza_id = say(h, "DM me for free magic potions!")
    moderate(h, stanza_id)
    h.sent()
    # XEP-0425 §5: the archive has the tombstone, not the body.
    enter(h, ROOM, "thirdwitch", HAG)
    h.receive(f"<iq from='{HAG}' id='q' to='{ROOM}' type='set'><query xmlns='urn:xmpp:mam:2' queryid='f28'/></iq>")
    results = [s for s in h.sent() if s.find("{urn:xmpp:mam:2}result") is not None]
    # The tombstone, in the message's place, then the room's notice of the moderation.
    assert len(results) == 2
    notice = results[1].find("{urn:xmpp:mam:2}result/{urn:xmpp:forward:0}forwarded/{jabber:client}message")
    assert notice.get("from") == ROOM
    assert notice.find("{urn:xmpp:message-retract:1}retract").get("id") == stanza_id
    assert results[1].find("{urn:xmpp:mam:2}result").get("id") == notice.find(SID).get("id")
    # Forwarded messages are in jabber:client (XEP-0297).
    forwarded = results[0].find("{urn:xmpp:mam:2}result/{urn:xmpp:forward:0}forwarded/{jabber:client}message")
    assert forwarded.get("from") == f"{ROOM}/secondwitch" and forwarded.get("id") == "inappropriate-1"
    assert results[0].find("{urn:xmpp:mam:2}result").get("id") == stanza_id
    assert forwarded.find("{jabber:client}body") is None
    assert forwarded.find(f"{{{OCCUPANT_ID}}}occupant-id").get("id") == oid(h, WICCA)
    retracted = forwarded.find("{urn:xmpp:message-retract:1}retracted")
    assert retracted.get("stamp")
    moderated = retracted.find("{urn:xmpp:message-moderate:1}moderated")
    assert moderated.get("by") == f"{ROOM}/firstwitch"
    assert moderated.find(f"{{{OCCUPANT_ID}}}occupant-id").get("id") == oid(h, CRONE)
    assert retracted.findtext("{urn:xmpp:message-retract:1}reason") == REASON
    assert b"potions" not in etree.tostring(results[0])


def test_the_author_retracts_her_own_message(harness) -> None:
    h = harness
    stanza_id = say(h, "Have not saints lips?")
    # XEP-0424 Example 4, in the room: the retraction names the room's stanza-id.
    h.receive(
        f"""<message type='groupchat' from='{WICCA}' to='{ROOM}' id='retract-message-1'>
          <retract id='{stanza_id}' xmlns='urn:xmpp:message-retract:1'/>
          <fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:message-retract:1'/>
          <body>This person attempted to retract a previous message, but it's unsupported by your client.</body>
          <store xmlns='urn:xmpp:hints'/></message>"""
    )
    reflected = h.sent()
    assert [m.get("to") for m in reflected] == [CRONE, WICCA]
    assert reflected[0].find("{urn:xmpp:message-retract:1}retract").get("id") == stanza_id
    assert reflected[0].find(SID) is not None
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    replayed = [s.findtext("{jabber:component:accept}body") for s in h.sent() if s.find("{jabber:component:accept}body") is not None]
    assert "Have not saints lips?" not in replayed


def test_nobody_retracts_someone_elses_message(harness) -> None:
    h = harness
    stanza_id = say(h, "Have not saints lips?", sender=CRONE)
    h.receive(
        f"""<message type='groupchat' from='{WICCA}' to='{ROOM}' id='retract-message-1'>
          <retract id='{stanza_id}' xmlns='urn:xmpp:message-retract:1'/><body>retracted</body></message>"""
    )
    (refused,) = h.sent()
    assert refused.get("type") == "error" and refused.get("to") == WICCA
    assert refused.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}forbidden") is not None
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    replayed = [s.findtext("{jabber:component:accept}body") for s in h.sent() if s.find("{jabber:component:accept}body") is not None]
    assert replayed == ["Have not saints lips?"]


def test_an_authors_retraction_leaves_a_tombstone_in_the_archive(tmp_path: Path) -> None:
    h = room(tmp_path / "muc.db")
    stanza_id = say(h, "Have not saints lips?")
    h.receive(
        f"""<message type='groupchat' from='{WICCA}' to='{ROOM}' id='retract-message-1'>
          <retract id='{stanza_id}' xmlns='urn:xmpp:message-retract:1'/>
          <fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:message-retract:1'/>
          <body>This person attempted to retract a previous message, but it's unsupported by your client.</body></message>"""
    )
    h.sent()
    h.receive(f"<iq from='{CRONE}' id='q' to='{ROOM}' type='set'><query xmlns='urn:xmpp:mam:2' queryid='f27'/></iq>")
    results = [s.find("{urn:xmpp:mam:2}result") for s in h.sent() if s.find("{urn:xmpp:mam:2}result") is not None]
    # XEP-0424 §5: the tombstone in the message's place, then the retraction itself.
    assert len(results) == 2 and results[0].get("id") == stanza_id
    tomb, retraction = (r.find("{urn:xmpp:forward:0}forwarded/{jabber:client}message") for r in results)
    assert tomb.find("{jabber:client}body") is None
    retracted = tomb.find("{urn:xmpp:message-retract:1}retracted")
    assert retracted.get("id") == "retract-message-1" and retracted.get("stamp")
    assert retraction.find("{urn:xmpp:message-retract:1}retract").get("id") == stanza_id
    assert b"saints" not in etree.tostring(results[0])


@pytest.mark.parametrize(
    ("request_xml", "condition", "text"),
    [
        (
            "<moderate xmlns='urn:xmpp:message-moderate:1'><retract xmlns='urn:xmpp:message-retract:1'/></moderate>",
            "bad-request",
            "which message? &lt;moderate/&gt; needs the message's stanza-id",
        ),
        (
            "<moderate id='m1' xmlns='urn:xmpp:message-moderate:1'><reason>spam</reason></moderate>",
            "feature-not-implemented",
            "a moderator may only retract a message",
        ),
        (
            "<apply-to xmlns='urn:xmpp:fasten:0'><moderate xmlns='urn:xmpp:message-moderate:0'>"
            "<retract xmlns='urn:xmpp:message-retract:0'/></moderate></apply-to>",
            "bad-request",
            "which message? &lt;apply-to/&gt; needs the message's stanza-id",
        ),
        (
            "<apply-to id='m1' xmlns='urn:xmpp:fasten:0'><moderate xmlns='urn:xmpp:message-moderate:0'/></apply-to>",
            "feature-not-implemented",
            "a moderator may only retract a message",
        ),
        (
            "<apply-to id='m1' xmlns='urn:xmpp:fasten:0'><retract xmlns='urn:xmpp:message-retract:0'/></apply-to>",
            "feature-not-implemented",
            "the room applies only moderation to messages",
        ),
    ],
)
def test_a_request_of_either_form_that_asks_no_retraction_is_refused(harness, request_xml, condition, text) -> None:
    h = harness
    h.receive(f"<iq type='set' from='{CRONE}' to='{ROOM}' id='retract-request-1'>{request_xml}</iq>")
    error_type = "modify" if condition == "bad-request" else "cancel"
    h.expect(
        f"""<iq type='error' from='{ROOM}' to='{CRONE}' id='retract-request-1'>{request_xml}
          <error type='{error_type}'><{condition} {ERR}/><text {ERR}>{text}</text></error></iq>"""
    )
