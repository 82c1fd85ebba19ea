"""The integration harness itself: servers start and stop, users log in and talk.

These tests prove the fixtures that the service tests build on, against both
Prosody and ejabberd.
"""

from __future__ import annotations

import socket
import sys
import textwrap
import time
from pathlib import Path

import pytest
from slixmpp import JID

from tests.integration.clients import ClientError, client, new_user, run, user_jid
from tests.integration.conftest import COMPONENT_DOMAINS, ComponentLauncher, component_secret
from tests.integration.servers import (
    REPO_ROOT,
    SERVER_CLASSES,
    ComponentProcess,
    ServerError,
    XMPPServer,
    descendant_pids,
    process_alive,
    to_toml,
)


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def test_server_listens_on_loopback(xmpp_server: XMPPServer) -> None:
    assert xmpp_server.running
    assert xmpp_server.host == "127.0.0.1"
    assert xmpp_server.domain == "localhost"
    assert xmpp_server.c2s_port != xmpp_server.component_port
    assert _listening(xmpp_server.host, xmpp_server.c2s_port)
    assert _listening(xmpp_server.host, xmpp_server.component_port)
    assert set(xmpp_server.secrets) == set(COMPONENT_DOMAINS)


def test_user_logs_in_and_gets_server_disco_info(xmpp_server: XMPPServer) -> None:
    user, password = new_user(xmpp_server, "alice")

    async def scenario() -> None:
        async with client(xmpp_server, user, password) as alice:
            assert alice.boundjid.bare == user_jid(xmpp_server, user)
            iq = await alice.plugin["xep_0030"].get_info(jid=JID(xmpp_server.domain), timeout=10)
            info = iq["disco_info"]
            assert ("server", "im") in {(i[0], i[1]) for i in info["identities"]}
            assert "urn:xmpp:ping" in info["features"]

    run(scenario())


def test_message_between_two_users_arrives_exactly(xmpp_server: XMPPServer) -> None:
    alice, alice_pw = new_user(xmpp_server, "alice")
    bob, bob_pw = new_user(xmpp_server, "bob")

    async def scenario() -> None:
        async with (
            client(xmpp_server, alice, alice_pw, resource="desk") as a,
            client(xmpp_server, bob, bob_pw, resource="phone") as b,
        ):
            a.send_message(mto=b.boundjid, mbody="Hello, Bob <&> ünïcode", mtype="chat")
            got = await b.next_message(lambda m: m["type"] == "chat", timeout=10)
            assert got["from"].full == f"{alice}@localhost/desk"
            assert got["to"].full == f"{bob}@localhost/phone"
            assert got["body"] == "Hello, Bob <&> ünïcode"

    run(scenario())


def test_wrong_password_is_refused(xmpp_server: XMPPServer) -> None:
    user, _ = new_user(xmpp_server, "carol")

    async def scenario() -> None:
        async with client(xmpp_server, user, "not-the-password", timeout=10):
            pass

    with pytest.raises(ClientError, match="could not log in"):
        run(scenario())


@pytest.mark.parametrize("name", list(SERVER_CLASSES))
def test_start_restart_stop_leaves_nothing_running(name: str, tmp_path: Path) -> None:
    server = SERVER_CLASSES[name](tmp_path, {"comp.localhost": "s3cret"})
    if name == "prosody":
        server.register("early", "pw")  # prosodyctl works while Prosody is stopped
    server.start()
    try:
        family = [server.process.pid, *descendant_pids(server.process.pid)]  # type: ignore[union-attr]
        server.register("dave", "pw")
        server.restart()
        family += [server.process.pid, *descendant_pids(server.process.pid)]  # type: ignore[union-attr]

        async def login() -> None:
            async with client(server, "dave", "pw", available=False) as dave:
                assert dave.boundjid.bare == "dave@localhost"

        run(login())
    finally:
        server.stop()
    assert not server.running
    time.sleep(0.2)
    # Exited helpers may linger briefly as zombies until init reaps them.
    assert [pid for pid in family if process_alive(pid)] == []
    assert not _listening(server.host, server.c2s_port)
    assert not _listening(server.host, server.component_port)


def test_start_failure_reports_the_log(tmp_path: Path) -> None:
    server = SERVER_CLASSES["prosody"](tmp_path, {"comp.localhost": "s3cret"})
    server.config_path.write_text("this is not lua {", encoding="utf-8")  # type: ignore[attr-defined]
    with pytest.raises(ServerError, match="prosody"):
        server.start()
    assert not server.running


# A minimal XEP-0114 handshake, enough to prove ComponentProcess against both
# servers before and independently of the project's own component.
HANDSHAKE_SCRIPT = textwrap.dedent(
    """
    import hashlib, re, signal, socket, sys, time, tomllib
    config = tomllib.load(open(sys.argv[1], "rb"))
    host, port = config["server"]["host"], config["server"]["port"]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    socks = []
    for domain, settings in config["components"].items():
        s = socket.create_connection((host, port))
        s.sendall(("<stream:stream xmlns='jabber:component:accept' xmlns:stream="
                   "'http://etherx.jabber.org/streams' to='%s'>" % domain).encode())
        data = b""
        while not re.search(rb"<stream:stream[^>]*>", data):
            data += s.recv(4096)
        sid = re.search(rb"\\bid=['\\"]([^'\\"]+)", data).group(1).decode()
        digest = hashlib.sha1((sid + settings["secret"]).encode()).hexdigest()
        s.sendall(("<handshake>%s</handshake>" % digest).encode())
        reply = s.recv(4096)
        if b"<handshake" not in reply:
            print("handshake refused:", reply.decode(), flush=True)
            sys.exit(3)
        print("%s is attached to the server at %s:%d" % (domain, host, port), flush=True)
        socks.append(s)
    while True:
        time.sleep(1)
    """
)


def _handshake_process(server: XMPPServer, tmp_path: Path, secret: str) -> ComponentProcess:
    config = {
        "server": {"host": server.host, "port": server.component_port},
        "components": {"comp.localhost": {"secret": secret}},
    }
    path = tmp_path / "netherfield.toml"
    path.write_text(to_toml(config), encoding="utf-8")
    return ComponentProcess(
        path, tmp_path / "output.log", argv=[sys.executable, "-c", HANDSHAKE_SCRIPT, str(path)]
    )


def test_component_process_waits_for_attachment_and_stops(xmpp_server: XMPPServer, tmp_path: Path) -> None:
    process = _handshake_process(xmpp_server, tmp_path, component_secret("comp.localhost"))
    try:
        process.wait_attached(timeout=15)
        assert process.domains == ["comp.localhost"]
        assert f"at 127.0.0.1:{xmpp_server.component_port}" in process.log_text()
    finally:
        assert process.stop() in ComponentProcess.CLEAN_EXITS
    assert not process.running


def test_component_process_reports_early_exit_and_kill9(xmpp_server: XMPPServer, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    refused = _handshake_process(xmpp_server, tmp_path / "a", "wrong secret")
    with pytest.raises(ServerError, match="handshake refused"):
        refused.wait_attached(timeout=15)
    assert refused.stop() == 3

    (tmp_path / "b").mkdir()
    crashing = _handshake_process(xmpp_server, tmp_path / "b", component_secret("comp.localhost"))
    crashing.wait_attached(timeout=15)
    assert crashing.kill9() == -9


PLUGIN = REPO_ROOT / "twistd-plugins" / "twisted" / "plugins" / "netherfield_plugin.py"


@pytest.mark.skipif(not PLUGIN.exists(), reason="the twistd plugin is not in this checkout")
def test_project_component_attaches_through_twistd(
    xmpp_server: XMPPServer, component_process: ComponentLauncher
) -> None:
    process = component_process(xmpp_server, {"components": {"echo.localhost": {"services": ["echo"]}}})
    assert process.running
    assert process.stop() in ComponentProcess.CLEAN_EXITS
