"""End to end, behind real Prosody and ejabberd with real clients: one user cannot drop the link.

Before per-stanza limits, one 200,000-quote message every 2 s for 20 s
dropped the component's link 9 times behind Prosody, and a bystander lost 59
of 199 groupchat messages.
"""

from __future__ import annotations

import asyncio
from typing import Any
from xml.etree import ElementTree

from slixmpp import JID

from tests.integration.clients import client, new_user, run
from tests.integration.conftest import ComponentLauncher
from tests.integration.servers import XMPPServer
from tests.integration.test_muc import create, join, muc, new_room

SERVICE = "conference.localhost"
QUOTES = '"' * 200_000


def quiet_link(log: str) -> bool:
    """The component's log shows no stream it closed and no link it lost."""
    return "closing the stream" not in log and "lost its connection" not in log


def test_messages_the_server_inflates_do_not_drop_the_link(
    xmpp_server: XMPPServer, component_process: ComponentLauncher
) -> None:
    # The bystander talks faster than the default rate limit lets anyone.
    settings = {"services": ["muc"], "muc": {"groupchat_burst": 100}}
    component = component_process(xmpp_server, {"components": {SERVICE: settings}})
    attacker, attacker_pw = new_user(xmpp_server, "loud")
    bystander, bystander_pw = new_user(xmpp_server, "calm")
    room = new_room("abuse")

    async def scenario() -> None:
        async with client(xmpp_server, attacker, attacker_pw) as a, client(xmpp_server, bystander, bystander_pw) as b:
            await create(a, room, "loud", persistentroom=False)
            await join(b, room, "calm")
            a.drop_received()
            b.drop_received()
            for round_ in range(5):
                # Written raw: 200,000 quotes fit the client limit, and the
                # server forwards each as "&quot;" (six bytes).
                a.send_raw(f"<message to='{room}' type='groupchat' id='q{round_}'><body>{QUOTES}</body></message>")
                for index in range(10):
                    b.send_message(mto=JID(room), mbody=f"{round_}-{index}", mtype="groupchat")
            received = []
            for round_ in range(5):
                loud = await b.next_message(lambda m, r=round_: m["id"] == f"q{r}" and m["type"] == "groupchat", timeout=20)
                assert loud["body"] == QUOTES
                for index in range(10):
                    mine = await b.next_message(
                        lambda m, t=f"{round_}-{index}": m["body"] == t and m["type"] == "groupchat", timeout=20
                    )
                    received.append(mine["body"])
            assert len(received) == 50

    run(scenario(), timeout=120)
    assert quiet_link(component.log_text())


ITEMS = "http://jabber.org/protocol/disco#items"
RSM = "http://jabber.org/protocol/rsm"


async def items_page(c: Any, rsm: str) -> list[str]:
    """One page of the service's disco#items, asked for with this ``<set/>`` content."""
    iq = c.make_iq_get(ito=JID(SERVICE))
    query = f"<query xmlns='{ITEMS}'>" + (f"<set xmlns='{RSM}'>{rsm}</set>" if rsm else "") + "</query>"
    iq.xml.append(ElementTree.fromstring(query))
    answer = await iq.send(timeout=20)
    found = answer.xml.find(f"{{{ITEMS}}}query")
    count = found.findtext(f"{{{RSM}}}set/{{{RSM}}}count")
    assert count is not None and int(count) >= 150
    return [item.get("jid") for item in found.findall(f"{{{ITEMS}}}item")]


def test_a_long_room_list_does_not_drop_the_link(
    xmpp_server: XMPPServer, component_process: ComponentLauncher
) -> None:
    # 150 public rooms with names of 3,500 characters: one disco#items
    # answer would pass Prosody's 512 KiB component limit. One user makes
    # them all, past the default quota of rooms per user.
    settings = {"services": ["muc"], "muc": {"max_rooms_per_user": 1000}}
    component = component_process(xmpp_server, {"components": {SERVICE: settings}})
    user, password = new_user(xmpp_server, "lister")

    async def scenario() -> None:
        async with client(xmpp_server, user, password) as c:
            rooms = [new_room(f"r{index:03d}") for index in range(150)]

            async def make(room: str) -> None:
                await create(c, room, "owner", roomname="n" * 3500, persistentroom=False)

            for start in range(0, len(rooms), 25):
                await asyncio.gather(*(make(room) for room in rooms[start : start + 25]))
            first = await items_page(c, "")
            assert len(first) == 100
            # The answer says how many there are, and the rest can be fetched.
            rest = await items_page(c, f"<after>{first[-1]}</after>")
            assert set(first).isdisjoint(rest)
            assert len(first) + len(rest) >= 150
            await muc(c).get_room_config(JID(rooms[0]), timeout=10)  # the link is still up

    run(scenario(), timeout=180)
    assert quiet_link(component.log_text())
