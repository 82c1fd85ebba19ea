"""The multi-user chat service against real Prosody and real ejabberd, driven by slixmpp's XEP-0045 plugin.

Every test runs once per server: users log in on the server, the server
routes their stanzas to the component at ``conference.localhost``.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import pytest
from slixmpp import JID
from slixmpp.exceptions import IqError, PresenceError

from tests.integration.clients import TestClient, client, new_user, run, user_jid
from tests.integration.conftest import ComponentLauncher
from tests.integration.servers import XMPPServer

SERVICE = "conference.localhost"
ROOMCONFIG = "http://jabber.org/protocol/muc#roomconfig"
MUC_USER = "http://jabber.org/protocol/muc#user"
DELAY = "urn:xmpp:delay"
SID = "urn:xmpp:sid:0"


def muc_config(storage: Path | None = None, **options: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"components": {SERVICE: {"services": ["muc"], "muc": options}}}
    if storage is not None:
        config["storage"] = {"url": f"sqlite:///{storage}"}
    return config


def new_room(prefix: str = "room") -> str:
    return f"{prefix}-{secrets.token_hex(3)}@{SERVICE}"


def muc(c: TestClient) -> Any:
    return c.plugin["xep_0045"]


async def join(c: TestClient, room: str, nick: str, **options: Any) -> tuple[Any, Any, list[Any], list[Any]]:
    """Enter a room; return (own presence, subject message, occupants, history)."""
    result = await muc(c).join_muc_wait(JID(room), nick, timeout=15, **options)
    return result


def codes(presence: Any) -> set[int]:
    return {int(code) for code in presence["muc"]["status_codes"]}


async def configure(c: TestClient, room: str, **fields: Any) -> None:
    """Submit a configuration form with the given ``muc#roomconfig_*`` fields."""
    form = c.plugin["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value=ROOMCONFIG)
    for name, value in fields.items():
        form.add_field(var=f"muc#roomconfig_{name}", value=value)
    await muc(c).set_room_config(JID(room), form, timeout=10)


async def create(c: TestClient, room: str, nick: str, **fields: Any) -> None:
    """Create a room, check it is new and locked, then configure it."""
    own, _subject, _occupants, _history = await join(c, room, nick)
    assert {110, 201} <= codes(own)
    assert own["muc"]["affiliation"] == "owner" and own["muc"]["role"] == "moderator"
    await configure(c, room, **fields)
    c.drop_received()


def from_room(room: str, nick: str | None = None):
    def match(stanza: Any) -> bool:
        if nick is None:
            return stanza["from"].bare == room
        return stanza["from"].full == f"{room}/{nick}"

    return match


def muc_config_for(server: XMPPServer) -> dict[str, Any]:
    return muc_config()


def test_create_configure_join_history_subject_messages(
    xmpp_server: XMPPServer, component_process: ComponentLauncher
) -> None:
    component_process(xmpp_server, muc_config())
    crone, crone_pw = new_user(xmpp_server, "crone")
    wicca, wicca_pw = new_user(xmpp_server, "wicca")
    room = new_room("coven")

    async def scenario() -> None:
        async with client(xmpp_server, crone, crone_pw) as a, client(xmpp_server, wicca, wicca_pw) as b:
            await create(a, room, "firstwitch", roomname="The Coven", persistentroom=False)
            form = await muc(a).get_room_config(JID(room), timeout=10)
            assert form.get_values()["muc#roomconfig_roomname"] == "The Coven"
            muc(a).set_subject(JID(room), "Fire Burn and Cauldron Bubble!")
            await a.next_message(lambda m: m["subject"] == "Fire Burn and Cauldron Bubble!")
            for text in ("Thrice the brinded cat hath mew'd.", "Thrice and once the hedge-pig whined."):
                a.send_message(mto=JID(room), mbody=text, mtype="groupchat")
                await a.next_message(lambda m, text=text: m["body"] == text)
            own, subject, occupants, history = await join(b, room, "secondwitch", maxstanzas=1)
            assert 110 in codes(own) and own["muc"]["role"] == "participant"
            others = [p for p in occupants if 110 not in codes(p)]
            assert [p["from"].full for p in others] == [f"{room}/firstwitch"]
            assert not others[0]["muc"]["jid"]  # semi-anonymous: participants see no real JIDs
            assert [m["body"] for m in history] == ["Thrice and once the hedge-pig whined."]
            assert history[0]["delay"]["from"] == JID(room)
            assert subject["subject"] == "Fire Burn and Cauldron Bubble!"
            assert subject["from"].full == f"{room}/firstwitch"
            # The moderator sees the newcomer's real JID.
            seen = await a.next_presence(from_room(room, "secondwitch"))
            assert seen["muc"]["jid"].bare == user_jid(xmpp_server, wicca)
            b.drop_received()

            # Groupchat: reflected to everyone, sender included, with a stanza-id.
            msg = b.make_message(mto=JID(room), mbody="Harpier cries", mtype="groupchat")
            msg["id"] = "hysf1v37"
            msg.send()
            mine = await b.next_message(lambda m: m["body"] == "Harpier cries")
            theirs = await a.next_message(lambda m: m["body"] == "Harpier cries")
            assert mine["id"] == theirs["id"] == "hysf1v37"
            assert mine["from"].full == f"{room}/secondwitch"
            ids = [m.xml.find(f"{{{SID}}}stanza-id") for m in (mine, theirs)]
            assert ids[0] is not None and ids[0].get("id") == ids[1].get("id") and ids[0].get("by") == room

            # Private messages between occupants carry the muc#user element.
            b.send_message(mto=JID(f"{room}/firstwitch"), mbody="psst", mtype="chat")
            pm = await a.next_message(lambda m: m["body"] == "psst")
            assert pm["from"].full == f"{room}/secondwitch" and pm["type"] == "chat"
            assert pm.xml.find(f"{{{MUC_USER}}}x") is not None

            # A nick change: 303 with the new nick, then the new presence.
            await muc(b).set_self_nick(JID(room), "oldhag", timeout=10)
            gone = await a.next_presence(lambda p: p["from"].full == f"{room}/secondwitch" and p["type"] == "unavailable")
            assert 303 in codes(gone) and gone["muc"]["item_nick"] == "oldhag"
            await a.next_presence(lambda p: p["from"].full == f"{room}/oldhag" and p["type"] != "unavailable")

            # The subject: participants may not change it by default.
            muc(b).set_subject(JID(room), "Mine now")
            refused = await b.next_message(lambda m: m["type"] == "error")
            assert refused["error"]["condition"] == "forbidden"

            # Leaving: everyone is told.
            muc(b).leave_muc(JID(room), "oldhag")
            left = await a.next_presence(lambda p: p["from"].full == f"{room}/oldhag" and p["type"] == "unavailable")
            assert left["muc"]["role"] == "none"

            info = (await a.plugin["xep_0030"].get_info(jid=JID(room), timeout=10))["disco_info"]
            assert ("conference", "text", None, "The Coven") in info["identities"]
            assert {"http://jabber.org/protocol/muc", "muc_semianonymous", "muc_temporary"} <= set(info["features"])

    run(scenario())


def test_kick_ban_and_refused_rejoin(xmpp_server: XMPPServer, component_process: ComponentLauncher) -> None:
    component_process(xmpp_server, muc_config())
    owner, owner_pw = new_user(xmpp_server, "fluellen")
    victim, victim_pw = new_user(xmpp_server, "pistol")
    room = new_room("harfleur")

    async def scenario() -> None:
        async with client(xmpp_server, owner, owner_pw) as a, client(xmpp_server, victim, victim_pw) as b:
            await create(a, room, "Fluellen")
            await join(b, room, "pistol")
            b.drop_received()
            await muc(a).set_role(JID(room), "pistol", "none", reason="Avaunt, you cullion!", timeout=10)
            kicked = await b.next_presence(lambda p: p["type"] == "unavailable" and p["from"].bare == room)
            assert {110, 307} <= codes(kicked)
            assert kicked.xml.find(f".//{{{MUC_USER}}}reason").text == "Avaunt, you cullion!"
            await join(b, room, "pistol")
            b.drop_received()
            await muc(a).set_affiliation(JID(room), "outcast", jid=JID(user_jid(xmpp_server, victim)), reason="Treason", timeout=10)
            banned = await b.next_presence(lambda p: p["type"] == "unavailable" and p["from"].bare == room)
            assert {110, 301} <= codes(banned)
            with pytest.raises(PresenceError) as refused:
                await join(b, room, "pistol")
            assert refused.value.condition == "forbidden"
            outcasts = await muc(a).get_affiliation_list(JID(room), "outcast", timeout=10)
            assert outcasts == [JID(user_jid(xmpp_server, victim))]

    run(scenario())


def test_members_only_room_with_invitation(xmpp_server: XMPPServer, component_process: ComponentLauncher) -> None:
    component_process(xmpp_server, muc_config())
    owner, owner_pw = new_user(xmpp_server, "crone")
    guest, guest_pw = new_user(xmpp_server, "hecate")
    room = new_room("darkcave")

    async def scenario() -> None:
        async with client(xmpp_server, owner, owner_pw) as a, client(xmpp_server, guest, guest_pw) as b:
            await create(a, room, "firstwitch", membersonly=True)
            with pytest.raises(PresenceError) as refused:
                await join(b, room, "hecate")
            assert refused.value.condition == "registration-required"
            muc(a).invite(JID(room), JID(user_jid(xmpp_server, guest)), reason="This is the place for all good witches!")
            invitation = await b.next_message(lambda m: m.xml.find(f"{{{MUC_USER}}}x/{{{MUC_USER}}}invite") is not None)
            assert invitation["from"].bare == room
            invite = invitation.xml.find(f"{{{MUC_USER}}}x/{{{MUC_USER}}}invite")
            # A semi-anonymous room names the inviter by occupant JID, never by real JID.
            assert invite.get("from") == f"{room}/firstwitch"
            own, _subject, _occupants, _history = await join(b, room, "hecate")
            assert own["muc"]["affiliation"] == "member"
            members = await muc(a).get_affiliation_list(JID(room), "member", timeout=10)
            assert members == [JID(user_jid(xmpp_server, guest))]

    run(scenario())


def test_password_protected_room(xmpp_server: XMPPServer, component_process: ComponentLauncher) -> None:
    component_process(xmpp_server, muc_config())
    owner, owner_pw = new_user(xmpp_server, "crone")
    guest, guest_pw = new_user(xmpp_server, "wicca")
    room = new_room("secret")

    async def scenario() -> None:
        async with client(xmpp_server, owner, owner_pw) as a, client(xmpp_server, guest, guest_pw) as b:
            await create(a, room, "firstwitch", passwordprotectedroom=True, roomsecret="cauldronburn")
            for password in (None, "wrong"):
                with pytest.raises(PresenceError) as refused:
                    await join(b, room, "secondwitch", password=password)
                assert refused.value.condition == "not-authorized"
            own, _subject, _occupants, _history = await join(b, room, "secondwitch", password="cauldronburn")
            assert 110 in codes(own)
            info = (await b.plugin["xep_0030"].get_info(jid=JID(room), timeout=10))["disco_info"]
            assert "muc_passwordprotected" in info["features"]

    run(scenario())


def test_moderated_room_with_voice_grant(xmpp_server: XMPPServer, component_process: ComponentLauncher) -> None:
    component_process(xmpp_server, muc_config())
    owner, owner_pw = new_user(xmpp_server, "crone")
    guest, guest_pw = new_user(xmpp_server, "wicca")
    room = new_room("hall")

    async def scenario() -> None:
        async with client(xmpp_server, owner, owner_pw) as a, client(xmpp_server, guest, guest_pw) as b:
            await create(a, room, "firstwitch", moderatedroom=True)
            own, _subject, _occupants, _history = await join(b, room, "secondwitch")
            assert own["muc"]["role"] == "visitor"
            b.drop_received()
            b.send_message(mto=JID(room), mbody="May I?", mtype="groupchat")
            refused = await b.next_message(lambda m: m["type"] == "error")
            assert refused["error"]["condition"] == "forbidden"
            await muc(a).set_role(JID(room), "secondwitch", "participant", timeout=10)
            voiced = await b.next_presence(lambda p: p["from"].full == f"{room}/secondwitch")
            assert voiced["muc"]["role"] == "participant"
            b.send_message(mto=JID(room), mbody="Now I may", mtype="groupchat")
            heard = await a.next_message(lambda m: m["body"] == "Now I may")
            assert heard["from"].full == f"{room}/secondwitch"

    run(scenario())


def test_destroy_tells_every_occupant(xmpp_server: XMPPServer, component_process: ComponentLauncher) -> None:
    component_process(xmpp_server, muc_config())
    owner, owner_pw = new_user(xmpp_server, "crone")
    guest, guest_pw = new_user(xmpp_server, "wicca")
    room = new_room("doomed")
    venue = new_room("newcoven")

    async def scenario() -> None:
        async with client(xmpp_server, owner, owner_pw) as a, client(xmpp_server, guest, guest_pw) as b:
            await create(a, room, "firstwitch")
            await join(b, room, "secondwitch")
            b.drop_received()
            await muc(a).destroy(JID(room), reason="Macbeth doth come.", altroom=JID(venue), timeout=10)
            gone = await b.next_presence(lambda p: p["type"] == "unavailable" and p["from"].bare == room)
            destroy = gone.xml.find(f"{{{MUC_USER}}}x/{{{MUC_USER}}}destroy")
            assert destroy is not None and destroy.get("jid") == venue
            assert destroy.find(f"{{{MUC_USER}}}reason").text == "Macbeth doth come."
            with pytest.raises(IqError) as missing:
                await a.plugin["xep_0030"].get_info(jid=JID(room), timeout=10)
            assert missing.value.condition == "item-not-found"

    run(scenario())


@pytest.mark.parametrize("stop", ["restart", "crash"])
def test_persistent_room_survives_a_component_restart(
    xmpp_server: XMPPServer, component_process: ComponentLauncher, tmp_path: Path, stop: str
) -> None:
    database = tmp_path / "muc.db"
    process = component_process(xmpp_server, muc_config(database))
    owner, owner_pw = new_user(xmpp_server, "crone")
    member, member_pw = new_user(xmpp_server, "wicca")
    outcast, outcast_pw = new_user(xmpp_server, "pistol")
    room = new_room("lasting")

    async def before() -> None:
        async with client(xmpp_server, owner, owner_pw) as a:
            await create(a, room, "firstwitch", persistentroom=True, roomname="Lasting", membersonly=True)
            await muc(a).set_affiliation(JID(room), "member", jid=JID(user_jid(xmpp_server, member)), timeout=10)
            await muc(a).set_affiliation(JID(room), "outcast", jid=JID(user_jid(xmpp_server, outcast)), timeout=10)
            muc(a).set_subject(JID(room), "Still here")
            await a.next_message(lambda m: m["subject"] == "Still here")
            a.send_message(mto=JID(room), mbody="Remember me", mtype="groupchat")
            await a.next_message(lambda m: m["body"] == "Remember me")

    run(before())
    if stop == "restart":
        process.stop()
    else:
        process.kill9()
    component_process(xmpp_server, muc_config(database))

    async def after() -> None:
        async with client(xmpp_server, member, member_pw) as b, client(xmpp_server, outcast, outcast_pw) as c:
            own, subject, _occupants, history = await join(b, room, "secondwitch")
            assert own["muc"]["affiliation"] == "member"
            assert subject["subject"] == "Still here"
            assert [m["body"] for m in history] == ["Remember me"]
            with pytest.raises(PresenceError) as refused:
                await join(c, room, "pistol")
            assert refused.value.condition == "forbidden"
            info = (await b.plugin["xep_0030"].get_info(jid=JID(room), timeout=10))["disco_info"]
            assert ("conference", "text", None, "Lasting") in info["identities"]
            assert {"muc_persistent", "muc_membersonly"} <= set(info["features"])

    run(after())


def test_service_disco_lists_public_rooms(xmpp_server: XMPPServer, component_process: ComponentLauncher) -> None:
    component_process(xmpp_server, muc_config())
    owner, owner_pw = new_user(xmpp_server, "crone")
    room = new_room("listed")
    hidden = new_room("hidden")

    async def scenario() -> None:
        async with client(xmpp_server, owner, owner_pw) as a:
            await create(a, room, "firstwitch", roomname="Listed")
            await create(a, hidden, "firstwitch", publicroom=False)
            disco = a.plugin["xep_0030"]
            info = (await disco.get_info(jid=JID(SERVICE), timeout=10))["disco_info"]
            assert ("conference", "text") in {(i[0], i[1]) for i in info["identities"]}
            assert "http://jabber.org/protocol/muc" in info["features"]
            items = (await disco.get_items(jid=JID(SERVICE), timeout=10))["disco_items"]
            assert [(item[0], item[2]) for item in items["items"]] == [(JID(room), "Listed")]
            await asyncio.sleep(0)

    run(scenario())
