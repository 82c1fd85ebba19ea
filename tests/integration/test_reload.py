"""SIGHUP reloads the configuration of a running component, behind a real Prosody.

Only Prosody: ejabberd routes every domain of one ``ejabberd_service``
listener over each of its connections, so two domains in one process would
see each other's stanzas there.
"""

from __future__ import annotations

import signal

import pytest

from tests.integration.clients import client, new_user, run
from tests.integration.conftest import ComponentLauncher, complete_config
from tests.integration.servers import XMPPServer, to_toml


async def echoed(server: XMPPServer, user: str, password: str, bot: str) -> str | None:
    """What the bot answers a chat message with: its body, or the error condition."""
    async with client(server, user, password) as c:
        c.send_message(mto=bot, mbody="ping", mtype="chat")
        reply = await c.next_message(lambda m: m["from"].bare == bot, timeout=15)
        return reply["body"] if reply["type"] != "error" else reply["error"]["condition"]


def test_sighup_adds_refuses_and_removes_components(
    xmpp_server: XMPPServer, component_process: ComponentLauncher
) -> None:
    if xmpp_server.name != "prosody":
        pytest.skip("ejabberd routes every domain of a listener over each connection")
    one = {"components": {"echo.localhost": {"services": ["echo"]}}}
    component = component_process(xmpp_server, one)
    config_path = component.config_path
    directory = config_path.parent
    user, password = new_user(xmpp_server, "reloader")
    assert run(echoed(xmpp_server, user, password, "echo@echo.localhost")) == "ping"

    both = {"components": {"echo.localhost": {"services": ["echo"]}, "comp.localhost": {"services": ["echo"]}}}
    config_path.write_text(to_toml(complete_config(xmpp_server, both, directory)))
    seen = len(component.log_text())
    # Twice, quickly: a second reload (unless the two signals arrive as one) follows the first.
    added = seen
    component.process.send_signal(signal.SIGHUP)
    component.process.send_signal(signal.SIGHUP)
    component.wait_for_log("comp.localhost is attached", after=seen)
    assert "reload: comp.localhost added" in component.log_text()[seen:]
    assert run(echoed(xmpp_server, user, password, "echo@comp.localhost")) == "ping"

    config_path.write_text(config_path.read_text() + "\n[nonsense]\n")
    seen = len(component.log_text())
    component.process.send_signal(signal.SIGHUP)
    component.wait_for_log(
        "reload: the new configuration is refused, the running one stays: nonsense is not a setting Netherfield knows",
        after=seen,
    )
    assert run(echoed(xmpp_server, user, password, "echo@echo.localhost")) == "ping"
    assert run(echoed(xmpp_server, user, password, "echo@comp.localhost")) == "ping"
    # Reloads run one at a time, so the quick second one is over: comp.localhost attached once.
    since_added = component.log_text()[added:]
    assert since_added.count("comp.localhost is attached") == since_added.count("reload: comp.localhost added") == 1

    config_path.write_text(
        to_toml(complete_config(xmpp_server, {"components": {"comp.localhost": {"services": ["echo"]}}}, directory))
    )
    seen = len(component.log_text())
    component.process.send_signal(signal.SIGHUP)
    component.wait_for_log("reload: echo.localhost detached", after=seen)
    # Prosody bounces what is sent to a component no connection holds (see XMPP-SERVERS.md).
    assert run(echoed(xmpp_server, user, password, "echo@echo.localhost")) == "remote-server-timeout"
    assert run(echoed(xmpp_server, user, password, "echo@comp.localhost")) == "ping"
    assert component.running
