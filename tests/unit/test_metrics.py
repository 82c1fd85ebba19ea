"""The metrics endpoint: what goes through the component shows up in a scrape, with exact counts.

The scrape tests make a real HTTP GET to the port the endpoint listens on,
on the reactor; the counting tests read the same collector without HTTP.
"""

from __future__ import annotations

import socket

import pytest
import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.client import Agent, readBody

from component.component import Component, DomainSettings
from component.config import ConfigError, LogConfig, MetricsConfig, load_config
from component.connection import Backoff, ComponentConnector, ComponentProtocol
from component.metrics import METRIC_NAMES, NetherfieldCollector, listen, registry_for
from component.stanza import iq, message
from component.storage import StorageError, open_storage
from component.testing import NO_PINGS, Harness
from services.echo import EchoService
from services.muc.testing import (
    CRONE,
    HAG,
    ROOM,
    WICCA,
    FailingStorage,
    configure,
    enter,
    immediate_storage,
    instant_room,
    muc_harness,
)
from tests.unit.twistd_process import last_line, run_twistd

ECHO = "echo.example.org"
JULIET = "juliet@example.com/balcony"
SERVER_HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' "
    b"xmlns='jabber:component:accept' from='echo.example.org' id='3BF96D32'>"
)


def values(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape: (name, labels) -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


def value(samples, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


def collected(*components, storage=None):
    """A scrape of ``components`` without HTTP, as parsed samples."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(NetherfieldCollector(list(components), lambda: storage))
    return values(generate_latest(registry).decode())


def chat(text: str, sender: str = JULIET) -> str:
    return f"<message from='{sender}' to='echo@{ECHO}' type='chat' id='m'><body>{text}</body></message>"


@pytest_twisted.ensureDeferred
async def test_a_scrape_over_http_shows_the_stanzas_fed_since_the_last_one():
    echo = Harness(ECHO, EchoService)
    muc = muc_harness()
    registry = registry_for([echo.component, muc.component], lambda: None)
    port = await listen(reactor, "127.0.0.1", 0, registry)
    url = f"http://127.0.0.1:{port.getHost().port}/metrics".encode()
    agent = Agent(reactor)

    async def scrape():
        response = await agent.request(b"GET", url)
        assert response.code == 200
        assert response.headers.getRawHeaders(b"content-type")[0].startswith(b"text/plain; version=")
        return values((await readBody(response)).decode())

    try:
        for text in ("one", "two", "three"):
            echo.receive(chat(text))
        echo.receive(f"<message from='{JULIET}' to='nobody@{ECHO}' type='chat'><body>?</body></message>")
        echo.receive(f"<iq from='{JULIET}' to='{ECHO}' type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        echo.sent()
        instant_room(muc, ROOM, CRONE, "firstwitch")
        before = await scrape()
        domain = {"domain": ECHO}
        assert value(before, "netherfield_stanzas_received_total", kind="message", **domain) == 4
        assert value(before, "netherfield_stanzas_received_total", kind="iq", **domain) == 1
        assert value(before, "netherfield_stanzas_received_total", kind="presence", **domain) == 0
        # Three echoes and the error to nobody@; the disco#info result.
        assert value(before, "netherfield_stanzas_sent_total", kind="message", **domain) == 4
        assert value(before, "netherfield_stanzas_sent_total", kind="iq", **domain) == 1
        assert value(before, "netherfield_stanza_errors_sent_total", condition="service-unavailable", **domain) == 1
        assert value(before, "netherfield_link_up", **domain) == 1
        assert value(before, "netherfield_muc_rooms_loaded", domain="chat.shakespeare.lit") == 1
        assert value(before, "netherfield_muc_occupants", domain="chat.shakespeare.lit") == 1
        # The library's own process metrics come with ours.
        assert ("process_open_fds", frozenset()) in before

        echo.receive(chat("four"))
        echo.disconnect()
        echo.component.send(message(f"echo@{ECHO}", JULIET, body="five"))  # it waits in the queue
        after = await scrape()
        assert value(after, "netherfield_stanzas_received_total", kind="message", **domain) == 5
        assert value(after, "netherfield_stanzas_sent_total", kind="message", **domain) == 6
        assert value(after, "netherfield_link_up", **domain) == 0
        assert value(after, "netherfield_send_queue_length", **domain) == 1

        response = await agent.request(b"GET", url.replace(b"/metrics", b"/other"))
        assert response.code == 404
        await readBody(response)
    finally:
        await port.stopListening()


def test_every_listed_metric_is_exposed_and_nothing_else_of_ours():
    h = muc_harness()
    collector = NetherfieldCollector([h.component], lambda: _FakeStorage())
    names = {family.name + ("_total" if family.type == "counter" else "") for family in collector.collect()}
    assert names == set(METRIC_NAMES)


class _FakeStorage:
    """Just what the collector reads of a storage."""

    def __init__(self):
        from component.stats import Latency

        self.latency = Latency()


def test_a_room_counts_every_stanza_of_its_fan_out():
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    enter(h, ROOM, "wiccarocks", WICCA)
    enter(h, ROOM, "hag", HAG)
    component = h.component
    sent = dict(component.sent)
    h.receive(f"<message from='{HAG}' to='{ROOM}' type='groupchat' id='g'><body>Thrice</body></message>")
    assert len(h.sent()) == 3
    assert component.sent["message"] - sent["message"] == 3
    assert h.component.services[0].messages_archived == 1
    # A newcomer: the three occupants' presences, its own to itself, and to the three; history and subject.
    sent = dict(component.sent)
    h.receive(f"<presence from='newt@shakespeare.lit/a' to='{ROOM}/newt'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
    out = h.sent()
    presences = sum(1 for e in out if e.tag.endswith("presence"))
    messages = sum(1 for e in out if e.tag.endswith("message"))
    assert (presences, messages) == (7, 2)
    assert (component.sent["presence"] - sent["presence"], component.sent["message"] - sent["message"]) == (7, 2)
    samples = collected(component)
    assert value(samples, "netherfield_muc_occupants", domain="chat.shakespeare.lit") == 4
    assert value(samples, "netherfield_muc_messages_archived_total", domain="chat.shakespeare.lit") == 1


def test_a_persistent_room_counts_history_writes_and_refused_ones():
    storage = immediate_storage(FailingStorage())
    h = muc_harness(storage=storage)
    instant_room(h, ROOM, CRONE, "firstwitch")
    configure(h, "<field var='muc#roomconfig_persistentroom'><value>1</value></field>")
    for n in range(2):
        h.receive(f"<message from='{CRONE}' to='{ROOM}' type='groupchat' id='k{n}'><body>Kept {n}</body></message>")
    storage.refuse("INSERT INTO muc_history")
    h.receive(f"<message from='{CRONE}' to='{ROOM}' type='groupchat' id='lost'><body>Lost</body></message>")
    samples = collected(h.component)
    muc = {"domain": "chat.shakespeare.lit"}
    assert value(samples, "netherfield_muc_history_writes_total", **muc) == 2
    assert value(samples, "netherfield_muc_messages_archived_total", **muc) == 2
    assert value(samples, "netherfield_muc_write_failures_total", kind="history", **muc) == 1


def test_refused_stanzas_are_counted_by_reason():
    h = Harness(ECHO, EchoService, settings=DomainSettings(max_outgoing_bytes=1024))
    h.receive(f"<message from='x@{ECHO}' to='echo@{ECHO}'><body>loop</body></message>")
    h.receive(chat("x" * 2000))
    samples = collected(h.component)
    assert value(samples, "netherfield_stanzas_refused_total", domain=ECHO, reason="own-domain") == 1
    assert value(samples, "netherfield_stanzas_refused_total", domain=ECHO, reason="oversized-out") == 1
    assert value(samples, "netherfield_stanzas_refused_total", domain=ECHO, reason="oversized-in") == 0


def test_iq_requests_in_flight_and_timeouts():
    h = Harness(ECHO, EchoService, settings=DomainSettings(iq_timeout=5))
    component = h.component
    for n in range(3):
        component.request(iq(f"echo@{ECHO}", JULIET, "get", id=f"q{n}")).addErrback(lambda _: None)
    h.receive(f"<iq from='{JULIET}' to='echo@{ECHO}' type='result' id='q0'/>")
    samples = collected(component)
    assert value(samples, "netherfield_iq_requests_in_flight", domain=ECHO) == 2
    assert value(samples, "netherfield_iq_timeouts_total", domain=ECHO) == 0
    h.clock.advance(5)
    samples = collected(component)
    assert value(samples, "netherfield_iq_requests_in_flight", domain=ECHO) == 0
    assert value(samples, "netherfield_iq_timeouts_total", domain=ECHO) == 2


def test_stream_errors_are_counted_by_who_sent_them_and_reconnects_by_attempt():
    clock = MemoryReactorClock()
    component = Component(ECHO, keepalive=NO_PINGS, clock=clock)
    connector = ComponentConnector(component, "127.0.0.1", 5347, "s", reactor=clock, backoff=Backoff(reconnect_initial=1.0))
    connector.startService()
    for _ in range(2):
        _host, _port, factory, _timeout, _bind = clock.tcpClients[-1]
        protocol = factory.buildProtocol(None)
        protocol.makeConnection(StringTransport())
        protocol.dataReceived(SERVER_HEADER)
        protocol.dataReceived(b"<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>")
        protocol.connectionLost(None)
        clock.advance(5)
    ours = ComponentProtocol(component, "s", address="127.0.0.1:5347")
    ours.makeConnection(StringTransport())
    ours.dataReceived(SERVER_HEADER + b"<handshake/><message><!-- no --></message>")
    samples = collected(component)
    assert value(samples, "netherfield_stream_errors_total", domain=ECHO, sent_by="server", condition="not-authorized") == 2
    assert value(samples, "netherfield_stream_errors_total", domain=ECHO, sent_by="netherfield", condition="restricted-xml") == 1
    assert value(samples, "netherfield_reconnects_total", domain=ECHO) == 2
    connector.stopService()


@pytest_twisted.ensureDeferred
async def test_storage_transactions_are_timed_and_failures_counted():
    storage = await open_storage("sqlite:///:memory:", reactor=reactor)
    try:
        before = storage.latency.count
        await storage.execute("CREATE TABLE t (x INTEGER)")
        await storage.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(StorageError):
            await storage.execute("INSERT INTO nowhere VALUES (1)")
        samples = collected(storage=storage)
        assert value(samples, "netherfield_storage_transaction_seconds_count") == before + 3
        assert value(samples, "netherfield_storage_transaction_seconds_bucket", le="+Inf") == before + 3
        assert value(samples, "netherfield_storage_transaction_failures_total") == 1
        assert value(samples, "netherfield_storage_transaction_seconds_sum") > 0
    finally:
        await storage.close()


# -- the settings ------------------------------------------------------------------------


def load(tmp_path, extra: str):
    path = tmp_path / "netherfield.toml"
    path.write_text(f'[components."{ECHO}"]\nsecret = "s"\nservices = ["echo"]\n{extra}')
    return load_config(path)


def test_metrics_are_off_and_the_log_at_info_by_default(tmp_path):
    config = load(tmp_path, "")
    assert config.metrics == MetricsConfig()
    assert config.metrics.host is None
    assert config.log == LogConfig(level="info")


@pytest.mark.parametrize(
    ("listen_at", "host", "port"),
    [("127.0.0.1:9300", "127.0.0.1", 9300), ("localhost:9301", "127.0.0.1", 9301), ("[::1]:9302", "::1", 9302)],
)
def test_metrics_listen_on_loopback(tmp_path, listen_at, host, port):
    config = load(tmp_path, f'[metrics]\nlisten = "{listen_at}"\n')
    assert (config.metrics.host, config.metrics.port) == (host, port)


@pytest.mark.parametrize(
    ("extra", "sentence"),
    [
        ('[metrics]\nlisten = "0.0.0.0:9300"\n',
         "metrics.listen is '0.0.0.0:9300', not a loopback address: the endpoint has no authentication,"
         " so set metrics.allow_remote = true to serve it beyond this machine"),
        ('[metrics]\nlisten = "9300"\n',
         "metrics.listen must be an address and a TCP port, e.g. \"127.0.0.1:9300\", not '9300'"),
        ('[metrics]\nlisten = "127.0.0.1:99999"\n',
         "metrics.listen must be an address and a TCP port, e.g. \"127.0.0.1:9300\", not '127.0.0.1:99999'"),
        ('[metrics]\nlisten = "metrics.example.org:9300"\n',
         "metrics.listen must name an IP address or localhost, not 'metrics.example.org'"),
        ('[metrics]\nlisten = 9300\n',
         "metrics.listen must be an address and a TCP port, e.g. \"127.0.0.1:9300\", not 9300"),
        ('[metrics]\nport = 9300\n', "metrics.port is not a setting Netherfield knows"),
        ('[log]\nlevel = "verbose"\n', "log.level must be one of debug, info, warn, error, critical, not 'verbose'"),
    ],
)
def test_a_metrics_or_log_mistake_is_one_sentence_naming_the_key(tmp_path, extra, sentence):
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, extra)
    assert str(raised.value) == sentence


def test_a_remote_address_when_allowed(tmp_path):
    config = load(tmp_path, '[metrics]\nlisten = "0.0.0.0:9300"\nallow_remote = true\n')
    assert (config.metrics.host, config.metrics.port, config.metrics.allow_remote) == ("0.0.0.0", 9300, True)


def test_a_taken_metrics_port_fails_startup_with_one_sentence(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        number = taken.getsockname()[1]
        (tmp_path / "netherfield.toml").write_text(
            f'[metrics]\nlisten = "127.0.0.1:{number}"\n[components."{ECHO}"]\nsecret = "s"\nservices = ["echo"]\n'
        )
        done = run_twistd(tmp_path / "netherfield.toml")
    assert (done.returncode, last_line(done)) == (
        1, f"netherfield: cannot serve metrics at 127.0.0.1:{number} (metrics.listen): Address already in use"
    ), done.stdout + done.stderr


def test_message_counts_by_kind_use_the_stanza_sent():
    h = Harness(ECHO, EchoService)
    h.component.send(message(f"echo@{ECHO}", JULIET, "hi"))
    h.component.send_bytes(b"<presence from='echo@echo.example.org' to='a@b'/>")
    assert (h.component.sent["message"], h.component.sent["presence"]) == (1, 1)
