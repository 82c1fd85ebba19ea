"""The metrics endpoint of a component behind real Prosody and real ejabberd, used by real clients.

A user talks to the echo bot and in a room; a scrape of ``/metrics`` over
HTTP then shows exactly that traffic. The bot and the rooms share one
domain: ejabberd routes every domain of an ``ejabberd_service`` listener
over each of its connections, so two domains in one process would see each
other's stanzas there.
"""

from __future__ import annotations

import asyncio
import socket
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from slixmpp import JID

from tests.integration.clients import client, new_user, run
from tests.integration.conftest import ComponentLauncher
from tests.integration.servers import XMPPServer
from tests.integration.test_muc import create, muc, new_room

DOMAIN = "conference.localhost"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


def test_counters_move_with_echo_and_room_traffic(xmpp_server: XMPPServer, component_process: ComponentLauncher) -> None:
    port = free_port()
    component_process(
        xmpp_server,
        {
            "components": {DOMAIN: {"services": ["echo", "muc"]}},
            "metrics": {"listen": f"127.0.0.1:{port}"},
        },
    )
    user, password = new_user(xmpp_server, "benedick")
    room = new_room("messina")

    async def scenario() -> None:
        async with client(xmpp_server, user, password) as benedick:
            before = await asyncio.to_thread(scrape, port)
            assert value(before, "netherfield_link_up", domain=DOMAIN) == 1
            assert value(before, "netherfield_stanzas_received_total", domain=DOMAIN, kind="message") == 0

            for n in range(3):
                benedick.send_message(mto=f"echo@{DOMAIN}", mbody=f"note {n}", mtype="chat")
                await benedick.next_message(lambda m, n=n: m["body"] == f"note {n}")
            await create(benedick, room, "benedick")
            for text in ("I will live a bachelor.", "Nothing certainer."):
                benedick.send_message(mto=JID(room), mbody=text, mtype="groupchat")
                await benedick.next_message(lambda m, text=text: m["body"] == text)

            after = await asyncio.to_thread(scrape, port)
            assert value(after, "netherfield_stanzas_received_total", domain=DOMAIN, kind="message") == 5
            assert value(after, "netherfield_stanzas_received_total", domain=DOMAIN, kind="presence") == 1
            # Three echoes, the join's subject and the two reflections, at least (a server may ask more).
            assert value(after, "netherfield_stanzas_sent_total", domain=DOMAIN, kind="message") >= 6
            assert value(after, "netherfield_stanzas_sent_total", domain=DOMAIN, kind="presence") >= 1
            assert value(after, "netherfield_stanzas_sent_total", domain=DOMAIN, kind="iq") >= 1  # the configuration
            assert [key for key in after if key[0] == "netherfield_stanza_errors_sent_total"] == []
            assert value(after, "netherfield_muc_rooms_loaded", domain=DOMAIN) == 1
            assert value(after, "netherfield_muc_occupants", domain=DOMAIN) == 1
            assert value(after, "netherfield_muc_messages_archived_total", domain=DOMAIN) == 2
            # The MUC read its stored rooms at startup: the database was used and timed.
            assert value(after, "netherfield_storage_transaction_seconds_count") > 0
            assert value(after, "netherfield_storage_transaction_failures_total") == 0
            assert value(after, "process_resident_memory_bytes") > 0

            muc(benedick).leave_muc(JID(room), "benedick")
            await benedick.next_presence(lambda p: p["from"].bare == room and p["type"] == "unavailable")
            left = await asyncio.to_thread(scrape, port)
            # A temporary room goes once its last occupant has left.
            assert value(left, "netherfield_muc_rooms_loaded", domain=DOMAIN) == 0
            assert value(left, "netherfield_muc_occupants", domain=DOMAIN) == 0

    run(scenario())
