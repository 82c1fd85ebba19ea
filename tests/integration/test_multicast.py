"""A room's fan-out through the server's multicast service (XEP-0033), behind real ejabberd and Prosody.

ejabberd runs ``mod_multicast`` (``multicast.localhost``): with ``multicast``
set, a groupchat and a presence broadcast go to it once, and every occupant
still gets exactly the stanza it would have got alone. Prosody has no
multicast service: the component says so and sends one stanza per recipient.
"""

from __future__ import annotations

import asyncio
from typing import Any

from slixmpp import JID

from tests.integration.clients import client, new_user, run
from tests.integration.conftest import ComponentLauncher
from tests.integration.servers import XMPPServer
from tests.integration.test_metrics import free_port, scrape
from tests.integration.test_muc import SERVICE, create, join, new_room

MULTICAST = "multicast.localhost"
ADDRESSES = "{http://jabber.org/protocol/address}addresses"
SID = "{urn:xmpp:sid:0}stanza-id"


def test_a_room_reaches_every_occupant_once_through_the_multicast_service(
    xmpp_server: XMPPServer, component_process: ComponentLauncher
) -> None:
    # A limit of 2 makes the room of three need two stanzas to the service.
    port = free_port()
    config = {
        "components": {SERVICE: {"services": ["muc"], "multicast": MULTICAST, "multicast_limit": 2}},
        "metrics": {"listen": f"127.0.0.1:{port}"},
    }
    process = component_process(xmpp_server, config)
    if xmpp_server.name == "ejabberd":
        process.wait_for_log(f"fanning out through the multicast service {MULTICAST}")
    else:
        process.wait_for_log("every recipient gets a stanza of its own")
    users = [new_user(xmpp_server, name) for name in ("crone", "wicca", "hag")]
    room = new_room("coven")

    async def scenario() -> None:
        async with (
            client(xmpp_server, *users[0]) as a,
            client(xmpp_server, *users[1]) as b,
            client(xmpp_server, *users[2]) as c,
        ):
            await create(a, room, "firstwitch", persistentroom=False)
            await join(b, room, "secondwitch")
            await join(c, room, "thirdwitch")
            # The newcomer's presence reached the others (one each of the two kinds, so a stanza each).
            for other in (a, b):
                seen = await other.next_presence(lambda p: p["from"].full == f"{room}/thirdwitch")
                assert seen.xml.find(ADDRESSES) is None

            a.send_message(mto=JID(room), mbody="Thrice the brinded cat hath mew'd.", mtype="groupchat")
            reflected: list[Any] = []
            for occupant in (a, b, c):
                reflected.append(
                    await occupant.next_message(lambda m: m["body"] == "Thrice the brinded cat hath mew'd.")
                )
            await asyncio.sleep(1)
            for occupant, message in zip((a, b, c), reflected, strict=True):
                assert message["from"].full == f"{room}/firstwitch"
                assert message["to"].bare == occupant.boundjid.bare
                assert message["type"] == "groupchat"
                assert message.xml.find(ADDRESSES) is None
                # One copy each, however the server fanned it out.
                assert occupant.messages.take(lambda m: m["body"] == "Thrice the brinded cat hath mew'd.") is None
            ids = {message.xml.find(SID).get("id") for message in reflected}
            assert len(ids) == 1

    run(scenario())
    assert "Traceback" not in process.log_text()
    reached = scrape(port).get(("netherfield_multicast_recipients_total", frozenset({("domain", SERVICE)})))
    # Behind ejabberd, the groupchat to three went through the service (as two stanzas, at a limit of 2).
    assert reached == (3 if xmpp_server.name == "ejabberd" else 0)
