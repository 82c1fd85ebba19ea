"""Admin commands (XEP-0050) behind real Prosody and real ejabberd: users log in with slixmpp.

An admin named in ``[components."DOMAIN"] admins`` lists the commands, the
rooms and the status, and destroys a room whose occupant sees the destroy;
a user who is no admin sees no commands and is forbidden.
"""

from __future__ import annotations

import secrets
from typing import Any

from lxml import etree
from slixmpp import JID
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

from tests.integration.clients import TestClient, client, new_user, run, user_jid
from tests.integration.conftest import ComponentLauncher
from tests.integration.servers import XMPPServer

SERVICE = "conference.localhost"
COMMANDS = "http://jabber.org/protocol/commands"
XDATA = "jabber:x:data"
MUC_USER = "http://jabber.org/protocol/muc#user"
LIST = "urn:netherfield:muc#list-rooms"
DESTROY = "http://prosody.im/protocol/muc#destroy"
STATUS = "urn:netherfield:component#status"


async def command(c: TestClient, node: str, *, sessionid: str | None = None, form: str = "") -> Any:
    """Send one ``<command/>`` request; the ``<command/>`` of the result, as lxml."""
    iq = c.make_iq_set(ito=JID(SERVICE))
    attrs = f" sessionid='{sessionid}' action='complete'" if sessionid else " action='execute'"
    iq.append(ET.fromstring(f"<command xmlns='{COMMANDS}' node='{node}'{attrs}>{form}</command>"))
    reply = await iq.send(timeout=15)
    return etree.fromstring(ET.tostring(reply.xml)).find(f"{{{COMMANDS}}}command")


def values(command_element: Any) -> dict[str, list[str]]:
    x = command_element.find(f"{{{XDATA}}}x")
    return {f.get("var"): [v.text or "" for v in f.findall(f"{{{XDATA}}}value")] for f in x.findall(f"{{{XDATA}}}field")}


def rows(command_element: Any) -> list[dict[str, str]]:
    x = command_element.find(f"{{{XDATA}}}x")
    return [
        {f.get("var"): f.findtext(f"{{{XDATA}}}value") or "" for f in item.findall(f"{{{XDATA}}}field")}
        for item in x.findall(f"{{{XDATA}}}item")
    ]


async def command_nodes(c: TestClient) -> list[str]:
    found = await c.plugin["xep_0030"].get_items(jid=JID(SERVICE), node=COMMANDS, timeout=15)
    return sorted(item[1] for item in found["disco_items"]["items"])


def test_an_admin_lists_destroys_and_reads_the_status_and_others_are_forbidden(
    xmpp_server: XMPPServer, component_process: ComponentLauncher
) -> None:
    admin, admin_pw = new_user(xmpp_server, "admin")
    crone, crone_pw = new_user(xmpp_server, "crone")
    stranger, stranger_pw = new_user(xmpp_server, "stranger")
    component_process(xmpp_server, {"components": {SERVICE: {
        "services": ["muc"], "admins": [user_jid(xmpp_server, admin)], "muc": {},
    }}})
    room = f"coven-{secrets.token_hex(3)}@{SERVICE}"

    async def scenario() -> None:
        async with (
            client(xmpp_server, admin, admin_pw) as boss,
            client(xmpp_server, crone, crone_pw) as owner,
            client(xmpp_server, stranger, stranger_pw) as other,
        ):
            await owner.plugin["xep_0045"].join_muc_wait(JID(room), "firstwitch", timeout=15)
            form = owner.plugin["xep_0004"].make_form(ftype="submit")
            await owner.plugin["xep_0045"].set_room_config(JID(room), form, timeout=15)
            owner.drop_received()

            info = await boss.plugin["xep_0030"].get_info(jid=JID(SERVICE), timeout=15)
            assert COMMANDS in info["disco_info"]["features"]
            assert await command_nodes(boss) == sorted([
                DESTROY, LIST, STATUS, "http://jabber.org/protocol/admin#announce", "urn:netherfield:muc#room-info",
            ])
            assert await command_nodes(other) == []

            listed = await command(boss, LIST)
            assert listed.get("status") == "completed"
            assert [(r["jid"], r["occupants"]) for r in rows(listed)] == [(room, "1")]

            status = values(await command(boss, STATUS))
            assert status["link"] == ["up"]
            assert status["muc_rooms_loaded"] == ["1"] and status["muc_occupants"] == ["1"]

            for node in (LIST, STATUS, DESTROY):
                try:
                    await command(other, node)
                except IqError as error:
                    assert error.iq["error"]["condition"] == "forbidden"
                else:
                    raise AssertionError(f"a stranger ran {node}")

            asked = await command(boss, DESTROY)
            assert asked.get("status") == "executing"
            assert room in [o.findtext(f"{{{XDATA}}}value") for o in asked.iter(f"{{{XDATA}}}option")]
            done = await command(boss, DESTROY, sessionid=asked.get("sessionid"), form=(
                f"<x xmlns='{XDATA}' type='submit'><field var='rooms'><value>{room}</value></field>"
                "<field var='reason'><value>Macbeth doth come.</value></field></x>"))
            assert done.get("status") == "completed"
            assert room in done.findtext(f"{{{COMMANDS}}}note")

            gone = await owner.next_presence(lambda p: p["from"].bare == room and p["type"] == "unavailable")
            destroy = gone.xml.find(f"{{{MUC_USER}}}x/{{{MUC_USER}}}destroy")
            assert destroy is not None
            assert destroy.findtext(f"{{{MUC_USER}}}reason") == "Macbeth doth come."
            assert rows(await command(boss, LIST)) == []

    run(scenario(), timeout=120)
