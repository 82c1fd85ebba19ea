"""A room's archive (XEP-0313, XEP-0359) through real Prosody and real ejabberd, read with slixmpp's plugins.

A client that joins after 200 messages gets the join history (the archive's
tail), then pages back through the whole archive with slixmpp's
``xep_0313`` and RSM, and forward again from an id in the middle.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from slixmpp import JID

from tests.integration.clients import DEFAULT_PLUGINS, client, new_user, run
from tests.integration.conftest import ComponentLauncher
from tests.integration.servers import XMPPServer
from tests.integration.test_muc import SID, create, join, muc_config, new_room

PLUGINS = (*DEFAULT_PLUGINS, "xep_0059", "xep_0297", "xep_0313", "xep_0359")
MESSAGES = 200


def test_a_late_joiner_pages_through_the_archive(
    xmpp_server: XMPPServer, component_process: ComponentLauncher, tmp_path: Path
) -> None:
    # No groupchat rate limit: the owner sends its 200 messages at once.
    component_process(xmpp_server, muc_config(tmp_path / "muc.db", groupchat_burst=0))
    crone, crone_pw = new_user(xmpp_server, "crone")
    hag, hag_pw = new_user(xmpp_server, "hag")
    room = new_room("coven")

    async def scenario() -> None:
        async with client(xmpp_server, crone, crone_pw, plugins=PLUGINS) as a, \
                client(xmpp_server, hag, hag_pw, plugins=PLUGINS) as b:
            await create(a, room, "firstwitch", persistentroom=True)
            reflected: dict[str, str] = {}
            done = asyncio.get_running_loop().create_future()

            def seen(message: Any) -> None:
                if message["from"].bare == room and message["body"].startswith("line "):
                    reflected[message["body"]] = message.xml.find(f"{{{SID}}}stanza-id").get("id")
                    if len(reflected) == MESSAGES and not done.done():
                        done.set_result(None)

            a.add_event_handler("groupchat_message", seen)
            for n in range(MESSAGES):
                a.send_message(mto=JID(room), mbody=f"line {n}", mtype="groupchat")
            await asyncio.wait_for(done, 30)
            bodies = [f"line {n}" for n in range(MESSAGES)]

            _own, _subject, _occupants, history = await join(b, room, "thirdwitch")
            assert [m["body"] for m in history] == bodies[-20:]  # the archive's tail
            assert [m["stanza_id"]["id"] for m in history] == [reflected[body] for body in bodies[-20:]]

            info = (await b.plugin["xep_0030"].get_info(jid=JID(room), timeout=10))["disco_info"]
            assert {"urn:xmpp:sid:0", "urn:xmpp:mam:2"} <= set(info["features"])

            # Backwards from the end, 50 a page, as clients catch up.
            back = [m async for m in b.plugin["xep_0313"].iterate(jid=JID(room), reverse=True, rsm={"max": 50})]
            got = [m["mam_result"]["forwarded"]["stanza"] for m in back]
            assert [m["body"] for m in reversed(got)] == bodies
            assert [m["mam_result"]["id"] for m in reversed(back)] == [reflected[body] for body in bodies]
            assert all(m["from"].full.startswith(f"{room}/firstwitch") for m in got)
            assert all(m["mam_result"]["forwarded"]["delay"]["stamp"] is not None for m in back)

            # Forwards from the 120th message, one page.
            middle = reflected["line 119"]
            page = await b.plugin["xep_0313"].retrieve(jid=JID(room), rsm={"max": 30, "after": middle}, timeout=15)
            assert [m["mam_result"]["forwarded"]["stanza"]["body"] for m in page["mam"]["results"]] == bodies[120:150]
            assert page["mam_fin"]["rsm"]["count"] == str(MESSAGES)
            assert page.xml.find("{urn:xmpp:mam:2}fin").get("complete") is None  # 50 more follow

    run(scenario(), timeout=120)
