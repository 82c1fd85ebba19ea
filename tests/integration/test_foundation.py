"""The foundation against real Prosody and real ejabberd: the component attaches through
``twistd -n netherfield``, real clients talk to it, and it survives server restarts.
"""

from __future__ import annotations

import time

from slixmpp import JID

from tests.integration.clients import client, new_user, run
from tests.integration.conftest import ComponentLauncher
from tests.integration.servers import XMPPServer

WATCHER = "tests.integration.link_watcher:LinkWatcher"


def echo_config(**server_settings: object) -> dict:
    return {"components": {"echo.localhost": {"services": ["echo"]}}, **server_settings}


def test_echo_round_trip_is_exact(xmpp_server: XMPPServer, component_process: ComponentLauncher) -> None:
    component_process(xmpp_server, echo_config())
    user, password = new_user(xmpp_server, "juliet")

    async def scenario() -> None:
        async with client(xmpp_server, user, password, resource="balcony") as juliet:
            juliet.send_message(mto="echo@echo.localhost", mbody="Wherefore art thou? <&> ünïcode", mtype="chat")
            reply = await juliet.next_message(lambda m: m["from"].bare == "echo@echo.localhost")
            assert reply["from"].full == "echo@echo.localhost"
            assert reply["to"].full == f"{user}@localhost/balcony"
            assert reply["type"] == "chat"
            assert reply["body"] == "Wherefore art thou? <&> ünïcode"

    run(scenario())


def test_disco_of_the_domain_and_the_bot(xmpp_server: XMPPServer, component_process: ComponentLauncher) -> None:
    component_process(xmpp_server, echo_config())
    user, password = new_user(xmpp_server, "romeo")

    async def scenario() -> None:
        async with client(xmpp_server, user, password) as romeo:
            disco = romeo.plugin["xep_0030"]
            info = (await disco.get_info(jid=JID("echo.localhost"), timeout=10))["disco_info"]
            assert {(i[0], i[1]) for i in info["identities"]} == {("component", "generic")}
            assert {"http://jabber.org/protocol/disco#info", "urn:xmpp:ping", "jabber:iq:version"} <= set(
                info["features"]
            )
            items = (await disco.get_items(jid=JID("echo.localhost"), timeout=10))["disco_items"]
            assert [item[0] for item in items["items"]] == [JID("echo@echo.localhost")]
            bot = (await disco.get_info(jid=JID("echo@echo.localhost"), timeout=10))["disco_info"]
            assert ("client", "bot") in {(i[0], i[1]) for i in bot["identities"]}
            version = await romeo.plugin["xep_0092"].get_version(JID("echo.localhost"), timeout=10)
            assert version["software_version"]["name"] == "Netherfield"

    run(scenario())


def test_unknown_iq_gets_service_unavailable(xmpp_server: XMPPServer, component_process: ComponentLauncher) -> None:
    component_process(xmpp_server, echo_config())
    user, password = new_user(xmpp_server, "mercutio")

    async def scenario() -> None:
        from slixmpp.exceptions import IqError

        async with client(xmpp_server, user, password) as mercutio:
            request = mercutio.make_iq_get(queryxmlns="urn:example:nothing", ito="nobody@echo.localhost")
            try:
                await request.send(timeout=10)
            except IqError as caught:
                assert caught.iq["error"]["condition"] == "service-unavailable"
                assert caught.iq["from"].full == "nobody@echo.localhost"
            else:
                raise AssertionError("an IQ nobody handles must fail")

    run(scenario())


def test_reconnects_after_a_server_restart_and_delivers_what_was_sent_meanwhile(
    xmpp_server: XMPPServer, component_process: ComponentLauncher
) -> None:
    user, password = new_user(xmpp_server, "nurse")
    config = {
        "server": {"host": xmpp_server.host, "port": xmpp_server.component_port, "reconnect_initial": 1.0},
        "components": {
            "echo.localhost": {"services": ["echo", WATCHER], WATCHER: {"notify": f"{user}@localhost"}},
        },
    }
    component = component_process(xmpp_server, config)
    offset = len(component.log_text())
    xmpp_server.stop()
    component.wait_for_log("echo.localhost lost its connection to the server", after=offset)
    time.sleep(0.3)  # the watcher sends while the link is down
    xmpp_server.start()
    restarted = time.monotonic()
    component.wait_attached(after=offset, timeout=60)
    reattach = time.monotonic() - restarted
    print(f"{xmpp_server.name}: attached again {reattach:.2f} s after the server was back")

    async def scenario() -> None:
        async with client(xmpp_server, user, password) as nurse:
            got = await nurse.next_message(lambda m: m["from"].bare == "watcher@echo.localhost", timeout=20)
            assert got["body"] == "sent while the link was down"
            nurse.send_message(mto="echo@echo.localhost", mbody="still there?", mtype="chat")
            echoed = await nurse.next_message(lambda m: m["from"].bare == "echo@echo.localhost")
            assert echoed["body"] == "still there?"

    run(scenario())


def test_reattaches_quickly_with_default_backoff(xmpp_server: XMPPServer, component_process: ComponentLauncher) -> None:
    component = component_process(xmpp_server, echo_config())
    offset = len(component.log_text())
    xmpp_server.restart()
    restarted = time.monotonic()
    component.wait_attached(after=offset, timeout=60)
    reattach = time.monotonic() - restarted
    print(f"{xmpp_server.name}: attached again {reattach:.2f} s after the server was back")
    assert reattach < 5.0


def _refused_secret(server: XMPPServer, domain: str, text: str) -> str:
    return (
        f"the server at {server.host}:{server.component_port} refused the secret for {domain} ({text}): wrong"
        f" secret, or the server does not know {domain}; the secret must be the one the server's config gives"
        f" {domain}"
    )


def test_wrong_secret_is_one_clear_sentence(xmpp_server: XMPPServer, component_process: ComponentLauncher) -> None:
    config = {"components": {"echo.localhost": {"secret": "not-the-secret", "services": ["echo"]}}}
    component = component_process(xmpp_server, config, wait=False)
    text = {
        "prosody": "not-authorized: Given token does not match calculated token",
        "ejabberd": "not-authorized",
    }[xmpp_server.name]
    component.wait_for_log(_refused_secret(xmpp_server, "echo.localhost", text), timeout=20)
    assert "not-the-secret" not in component.log_text()
    assert "Traceback" not in component.log_text()


def test_a_domain_the_server_does_not_know_says_what_to_add(
    xmpp_server: XMPPServer, component_process: ComponentLauncher
) -> None:
    # Prosody says host-unknown before any stream id; ejabberd opens the
    # stream and refuses the handshake.
    config = {"components": {"unknown.localhost": {"secret": "whatever", "services": ["echo"]}}}
    component = component_process(xmpp_server, config, wait=False)
    sentence = {
        "prosody": (
            f"the server at {xmpp_server.host}:{xmpp_server.component_port} does not know the component domain"
            " unknown.localhost (host-unknown: unknown.localhost does not match any configured external"
            ' components); add Component "unknown.localhost" to the server\'s config'
        ),
        "ejabberd": _refused_secret(xmpp_server, "unknown.localhost", "not-authorized"),
    }[xmpp_server.name]
    component.wait_for_log(sentence, timeout=20)
    assert "has no id" not in component.log_text()
    assert "Traceback" not in component.log_text()


def test_sigterm_closes_the_stream_and_exits_cleanly(
    xmpp_server: XMPPServer, component_process: ComponentLauncher
) -> None:
    component = component_process(xmpp_server, echo_config())
    assert component.stop() in component.CLEAN_EXITS  # twistd re-raises SIGTERM once shut down
    assert "Traceback" not in component.log_text()
    assert "Server Shut Down." in component.log_text()
