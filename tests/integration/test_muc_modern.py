"""What modern clients rely on in a room, behind real Prosody and real ejabberd, driven by slixmpp's plugins.

Occupant ids (XEP-0421, slixmpp's ``xep_0421``), room avatars (XEP-0054
and XEP-0153, ``xep_0054``), self-ping (XEP-0410) and unique room names
(XEP-0307). Every test runs once per server.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from slixmpp import JID
from slixmpp.exceptions import IqError

from tests.integration.clients import client, new_user, run
from tests.integration.conftest import ComponentLauncher
from tests.integration.servers import XMPPServer
from tests.integration.test_muc import SERVICE, create, join, muc, muc_config, new_room

PLUGINS = ("xep_0030", "xep_0045", "xep_0004", "xep_0199", "xep_0359", "xep_0421", "xep_0054")
OCCUPANT_ID = "urn:xmpp:occupant-id:0"
SID = "urn:xmpp:sid:0"
MAM = "urn:xmpp:mam:2"
FORWARD = "urn:xmpp:forward:0"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489")


def occupant_id(stanza: Any) -> str:
    return stanza["occupant-id"]["id"]


def test_every_client_of_a_user_shows_the_same_occupant_id(
    xmpp_server: XMPPServer, component_process: ComponentLauncher
) -> None:
    component_process(xmpp_server, muc_config())
    crone, crone_pw = new_user(xmpp_server, "crone")
    wicca, wicca_pw = new_user(xmpp_server, "wicca")
    room = new_room("coven")

    async def scenario() -> None:
        async with (
            client(xmpp_server, crone, crone_pw, plugins=PLUGINS) as a,
            client(xmpp_server, wicca, wicca_pw, resource="laptop", plugins=PLUGINS) as b1,
            client(xmpp_server, wicca, wicca_pw, resource="phone", plugins=PLUGINS) as b2,
        ):
            await create(a, room, "firstwitch")
            # (xep_0421's own has_feature reads the reply wrongly in this slixmpp.)
            info = (await a.plugin["xep_0030"].get_info(jid=JID(room), timeout=10))["disco_info"]
            assert OCCUPANT_ID in info["features"]
            own1, _subject, _occupants, _history = await join(b1, room, "secondwitch")
            seen1 = await a.next_presence(lambda p: p["from"].full == f"{room}/secondwitch")
            # The second client of the same user joins the same occupant: the same id.
            own2, _subject, _occupants, _history = await join(b2, room, "secondwitch")
            seen2 = await a.next_presence(lambda p: p["from"].full == f"{room}/secondwitch")
            ids = {occupant_id(p) for p in (own1, own2, seen1, seen2)}
            assert len(ids) == 1 and "" not in ids
            first = ids.pop()

            # A message from either client carries it too, and a forged one is replaced.
            msg = b2.make_message(mto=JID(room), mbody="Harpier cries", mtype="groupchat")
            msg["occupant-id"]["id"] = "forged"
            msg.send()
            reflected = await a.next_message(lambda m: m["body"] == "Harpier cries")
            assert occupant_id(reflected) == first

            # A nick change keeps one's own id; another user has another.
            await muc(b1).set_self_nick(JID(room), "oldhag", timeout=10)
            renamed = await a.next_presence(lambda p: p["from"].full == f"{room}/oldhag" and p["type"] != "unavailable")
            assert occupant_id(renamed) == first
            others = await b1.next_presence(lambda p: p["from"].full == f"{room}/firstwitch")
            assert occupant_id(others) not in ("", first)

    run(scenario())


def test_room_avatar_is_set_by_the_owner_and_announced(
    xmpp_server: XMPPServer, component_process: ComponentLauncher
) -> None:
    component_process(xmpp_server, muc_config())
    crone, crone_pw = new_user(xmpp_server, "crone")
    hag, hag_pw = new_user(xmpp_server, "hag")
    room = new_room("cave")

    async def scenario() -> None:
        async with (
            client(xmpp_server, crone, crone_pw, plugins=PLUGINS) as a,
            client(xmpp_server, hag, hag_pw, plugins=PLUGINS) as b,
        ):
            await create(a, room, "firstwitch")
            vcards = a.plugin["xep_0054"]
            card = vcards.make_vcard()
            card["FN"] = "The Dark Cave"
            card["PHOTO"]["TYPE"] = "image/png"
            card["PHOTO"]["BINVAL"] = PNG
            await vcards.publish_vcard(card, jid=JID(room), timeout=10)
            announced = await a.next_presence(lambda p: p["from"].full == room)
            photo = announced.xml.find("{vcard-temp:x:update}x/{vcard-temp:x:update}photo")
            assert photo is not None and photo.text == hashlib.sha1(PNG).hexdigest()

            # Anyone gets it back, in the room or not.
            got = await b.plugin["xep_0054"].get_vcard(JID(room), cached=False, timeout=10)
            assert got["vcard_temp"]["FN"] == "The Dark Cave"
            assert got["vcard_temp"]["PHOTO"]["BINVAL"] == PNG
            info = (await b.plugin["xep_0030"].get_info(jid=JID(room), timeout=10))["disco_info"]
            assert "vcard-temp" in info["features"]
            assert info.get_plugin("form")["values"]["muc#roominfo_avatarhash"] == [hashlib.sha1(PNG).hexdigest()]

            # A newcomer is told the hash; a non-owner may not change it.
            await join(b, room, "thirdwitch")
            told = await b.next_presence(lambda p: p["from"].full == room)
            assert told.xml.findtext("{vcard-temp:x:update}x/{vcard-temp:x:update}photo") == hashlib.sha1(PNG).hexdigest()
            with pytest.raises(IqError) as refused:
                await b.plugin["xep_0054"].publish_vcard(b.plugin["xep_0054"].make_vcard(), jid=JID(room), timeout=10)
            assert refused.value.condition == "forbidden"

    run(scenario())


def test_self_ping_and_unique_room_names(xmpp_server: XMPPServer, component_process: ComponentLauncher) -> None:
    component_process(xmpp_server, muc_config())
    crone, crone_pw = new_user(xmpp_server, "crone")
    hag, hag_pw = new_user(xmpp_server, "hag")

    async def scenario() -> None:
        async with (
            client(xmpp_server, crone, crone_pw, plugins=PLUGINS) as a,
            client(xmpp_server, hag, hag_pw, plugins=PLUGINS) as b,
        ):
            info = (await a.plugin["xep_0030"].get_info(jid=JID(SERVICE), timeout=10))["disco_info"]
            assert {"http://jabber.org/protocol/muc#unique", OCCUPANT_ID} <= set(info["features"])
            iq = a.make_iq_get(ito=JID(SERVICE))
            iq.append(_element("<unique xmlns='http://jabber.org/protocol/muc#unique'/>"))
            reply = await iq.send(timeout=10)
            name = reply.xml.findtext("{http://jabber.org/protocol/muc#unique}unique")
            assert name and name == name.lower()
            room = f"{name}@{SERVICE}"
            await create(a, room, "firstwitch")
            answer = await a.plugin["xep_0199"].send_ping(JID(f"{room}/firstwitch"), timeout=10)
            assert answer["type"] == "result" and answer["from"].full == f"{room}/firstwitch"
            # Not joined: not-acceptable, so the client knows to join (XEP-0410 §3.2).
            with pytest.raises(IqError) as refused:
                await b.plugin["xep_0199"].send_ping(JID(f"{room}/thirdwitch"), timeout=10)
            assert refused.value.condition == "not-acceptable"
            assert refused.value.iq["error"]["type"] == "cancel"
            await join(b, room, "thirdwitch")
            answer = await b.plugin["xep_0199"].send_ping(JID(f"{room}/thirdwitch"), timeout=10)
            assert answer["type"] == "result" and answer["from"].full == f"{room}/thirdwitch"

    run(scenario())


def _element(xml: str) -> Any:
    import xml.etree.ElementTree as ET

    return ET.fromstring(xml)


def test_a_moderator_removes_a_message_and_the_archive_keeps_a_tombstone(
    xmpp_server: XMPPServer, component_process: ComponentLauncher, tmp_path: Path
) -> None:
    component_process(xmpp_server, muc_config(tmp_path / "muc.db"))
    crone, crone_pw = new_user(xmpp_server, "crone")
    wicca, wicca_pw = new_user(xmpp_server, "wicca")
    hag, hag_pw = new_user(xmpp_server, "hag")
    room = new_room("coven")
    plugins = (*PLUGINS, "xep_0059", "xep_0313", "xep_0424", "xep_0425")

    async def scenario() -> None:
        async with (
            client(xmpp_server, crone, crone_pw, plugins=plugins) as a,
            client(xmpp_server, wicca, wicca_pw, plugins=plugins) as b,
        ):
            await create(a, room, "firstwitch", persistentroom=True)
            info = (await a.plugin["xep_0030"].get_info(jid=JID(room), timeout=10))["disco_info"]
            assert {"urn:xmpp:message-moderate:1", "urn:xmpp:message-moderate:0"} <= set(info["features"])
            await join(b, room, "secondwitch")
            b.send_message(mto=JID(room), mbody="DM me for free magic potions!", mtype="groupchat")
            spam = await a.next_message(lambda m: m["body"] == "DM me for free magic potions!")
            stanza_id = spam.xml.find(f"{{{SID}}}stanza-id").get("id")
            b.send_message(mto=JID(room), mbody="Fair is foul", mtype="groupchat")
            fair = await a.next_message(lambda m: m["body"] == "Fair is foul")
            b.send_message(mto=JID(room), mbody="and foul is fair", mtype="groupchat")
            mine = await a.next_message(lambda m: m["body"] == "and foul is fair")
            mine_id = mine.xml.find(f"{{{SID}}}stanza-id").get("id")
            assert fair.xml.find(f"{{{SID}}}stanza-id").get("id") != mine_id

            # The author retracts her own message (XEP-0424): everyone gets the retraction.
            b.plugin["xep_0424"].send_retraction(JID(room), mine_id, mtype="groupchat")
            retraction = await a.next_message(lambda m: m["retract"]["id"] == mine_id)
            assert retraction["from"].full == f"{room}/secondwitch"

            await a.plugin["xep_0425"].moderate(JID(room), stanza_id, "spam", timeout=10)
            notice = await b.next_message(lambda m: m["retract"]["id"] == stanza_id)
            assert notice["from"].full == room
            assert notice["retract"]["moderated"]["by"] == f"{room}/firstwitch"
            assert notice["retract"]["reason"] == "spam"

        # Someone who queries the archive afterwards sees the tombstone, not the message.
        async with client(xmpp_server, hag, hag_pw, plugins=plugins) as c:
            await join(c, room, "thirdwitch")
            reply = await c.plugin["xep_0313"].retrieve(jid=JID(room), timeout=10)
            forwarded = {
                result.xml.find(f"{{{MAM}}}result").get("id"): result.xml.find(f"{{{MAM}}}result/{{{FORWARD}}}forwarded/{{jabber:client}}message")
                for result in reply["mam"]["results"]
            }
            tomb = forwarded[stanza_id]
            assert tomb.find("{jabber:client}body") is None
            retracted = tomb.find("{urn:xmpp:message-retract:1}retracted")
            assert retracted is not None and retracted.get("stamp")
            assert retracted.find("{urn:xmpp:message-moderate:1}moderated").get("by") == f"{room}/firstwitch"
            assert tomb.get("from") == f"{room}/secondwitch"
            bodies = [m.findtext("{jabber:client}body") for m in forwarded.values()]
            assert "Fair is foul" in bodies and "DM me for free magic potions!" not in bodies
            assert "and foul is fair" not in bodies
            retracted = forwarded[mine_id].find("{urn:xmpp:message-retract:1}retracted")
            assert retracted is not None and forwarded[mine_id].find("{jabber:client}body") is None

    run(scenario())
