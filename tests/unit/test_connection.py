"""The XEP-0114 connection: handshake, stream errors in both directions, reconnects, shutdown."""

import hashlib
import re

import pytest
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from component.component import Component
from component.connection import Backoff, ComponentConnector, ComponentProtocol, handshake_digest
from component.stanza import message
from component.testing import NO_PINGS, LogCapture

DOMAIN = "comp.example.org"
SERVER_HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' "
    b"xmlns='jabber:component:accept' from='comp.example.org' id='3BF96D32'>"
)


def connect(component=None, secret="s3cret"):
    component = component or Component(DOMAIN, keepalive=NO_PINGS, clock=MemoryReactorClock())
    protocol = ComponentProtocol(component, secret, address="127.0.0.1:5347")
    transport = StringTransport()
    protocol.makeConnection(transport)
    return component, protocol, transport


def take(transport):
    data = transport.value()
    transport.clear()
    return data


def test_handshake_is_sha1_of_stream_id_and_secret():
    # XEP-0114 §3, Example 3
    assert handshake_digest("3BF96D32", "s3cret") == hashlib.sha1(b"3BF96D32s3cret").hexdigest()


def test_opens_the_stream_sends_the_handshake_and_attaches():
    component, protocol, transport = connect()
    assert take(transport) == (
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
        b"xmlns:stream='http://etherx.jabber.org/streams' to='comp.example.org'>"
    )
    protocol.dataReceived(SERVER_HEADER)
    assert take(transport) == f"<handshake>{handshake_digest('3BF96D32', 's3cret')}</handshake>".encode()
    with LogCapture() as logs:
        protocol.dataReceived(b"<handshake/>")
    assert protocol.handshake.called
    assert component.link is protocol
    assert "comp.example.org is attached to the server at 127.0.0.1:5347" in logs.messages()


def test_the_connection_turns_nagle_off():
    # Writes are already one a read: held back for an acknowledgement, they would wait up to 40 ms.
    class TCPTransport(StringTransport):
        no_delay = False

        def setTcpNoDelay(self, enabled):
            self.no_delay = enabled

    transport = TCPTransport()
    ComponentProtocol(Component(DOMAIN, keepalive=NO_PINGS, clock=MemoryReactorClock()), "s3cret").makeConnection(transport)
    assert transport.no_delay is True


def test_queued_stanzas_go_out_right_after_the_handshake():
    component = Component(DOMAIN, keepalive=NO_PINGS, clock=MemoryReactorClock())
    component.send(message(f"bot@{DOMAIN}", "juliet@example.com", "while down"))
    _, protocol, transport = connect(component)
    protocol.dataReceived(SERVER_HEADER)
    take(transport)
    protocol.dataReceived(b"<handshake/>")
    assert b"<body>while down</body>" in take(transport)


def test_wrong_secret_is_one_clear_sentence():
    component, protocol, transport = connect()
    protocol.dataReceived(SERVER_HEADER)
    failures = []
    protocol.handshake.addErrback(failures.append)
    with LogCapture() as logs:
        protocol.dataReceived(
            b"<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
        )
    assert (
        "the server at 127.0.0.1:5347 refused the secret for comp.example.org (not-authorized): wrong secret,"
        " or the server does not know comp.example.org; the secret must be the one the server's config gives"
        " comp.example.org"
    ) in logs.messages()
    assert failures and component.link is None
    assert transport.value().endswith(b"</stream:stream>")
    assert transport.disconnecting
    assert "s3cret" not in " ".join(logs.messages())


# What Prosody 0.12 sends for a component domain it does not know: a header
# with an empty id, the stream error, and the end of the stream.
PROSODY_HOST_UNKNOWN = (
    b"<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' "
    b"xmlns='jabber:component:accept' version='1.0' id=''>"
    b"<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
    b"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>comp.example.org does not match any configured"
    b" external components</text></stream:error></stream:stream>"
)


def test_an_unknown_domain_is_reported_as_host_unknown_not_as_a_missing_id():
    component, protocol, transport = connect()
    take(transport)
    failures = []
    protocol.handshake.addErrback(failures.append)
    with LogCapture() as logs:
        protocol.dataReceived(PROSODY_HOST_UNKNOWN)
    sentence = (
        "the server at 127.0.0.1:5347 does not know the component domain comp.example.org (host-unknown:"
        " comp.example.org does not match any configured external components);"
        ' add Component "comp.example.org" to the server\'s config'
    )
    assert logs.messages() == [sentence]
    assert str(failures[0].value) == sentence
    # No handshake went out, and nothing of ours complains about the header.
    assert take(transport) == b"</stream:stream>"
    assert component.link is None


def test_a_header_without_id_followed_by_a_stanza_is_invalid_xml():
    _, protocol, transport = connect()
    take(transport)
    protocol.dataReceived(SERVER_HEADER.replace(b" id='3BF96D32'", b"") + b"<message/>")
    assert take(transport).startswith(
        b"<stream:error><invalid-xml xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        b"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>the stream header has no id</text>"
    )


@pytest.mark.parametrize(
    ("condition", "text", "sentence"),
    [
        # ejabberd: a wrong secret, and also a domain it does not know.
        ("not-authorized", None,
         "the server at 127.0.0.1:5347 refused the secret for comp.example.org (not-authorized): wrong secret,"
         " or the server does not know comp.example.org; the secret must be the one the server's config gives"
         " comp.example.org"),
        ("not-authorized", "Given token does not match calculated token",
         "the server at 127.0.0.1:5347 refused the secret for comp.example.org (not-authorized: Given token does"
         " not match calculated token): wrong secret, or the server does not know comp.example.org; the secret"
         " must be the one the server's config gives comp.example.org"),
        ("conflict", "Component already connected",
         "the server at 127.0.0.1:5347 refused comp.example.org (conflict: Component already connected): another"
         " connection is already attached as comp.example.org, or comp.example.org is a host of the server"
         " itself rather than a component"),
        ("invalid-from", "Improper domain part of 'from' attribute",
         "the server at 127.0.0.1:5347 closed the stream for comp.example.org because a stanza's from was outside"
         " comp.example.org (invalid-from: Improper domain part of 'from' attribute); a service sent it, and that"
         " is a bug to report"),
        ("improper-addressing", "Missing 'to' attribute",
         "the server at 127.0.0.1:5347 closed the stream for comp.example.org because the stream or a stanza"
         " lacked a to or from (improper-addressing: Missing 'to' attribute); a service sent it, and that is a"
         " bug to report"),
        ("not-well-formed", None,
         "the server at 127.0.0.1:5347 closed the stream for comp.example.org: it could not parse what we sent,"
         " or a stanza was over its size limit (not-well-formed); Prosody's component_stanza_size_limit is"
         " 512 KiB unless set"),
        ("policy-violation", "XML stanza is too big",
         "the server at 127.0.0.1:5347 closed the stream for comp.example.org on a policy, such as a stanza over"
         " the listener's max_stanza_size (policy-violation: XML stanza is too big)"),
        ("invalid-namespace", None,
         "the server at 127.0.0.1:5347 refused the component stream of comp.example.org (invalid-namespace); is"
         " that the server's component port (component_ports, ejabberd_service) rather than its client port?"),
        ("invalid-xml", None,
         "the server at 127.0.0.1:5347 refused what comp.example.org sent as invalid XML (invalid-xml)"),
        ("connection-timeout", None,
         "the server at 127.0.0.1:5347 timed out the connection of comp.example.org (connection-timeout);"
         " reconnecting"),
        ("system-shutdown", None,
         "the server at 127.0.0.1:5347 is shutting down and closed the stream for comp.example.org"
         " (system-shutdown); reconnecting"),
        ("reset", None, "the server at 127.0.0.1:5347 reset the stream for comp.example.org (reset); reconnecting"),
        ("resource-constraint", None,
         "the server at 127.0.0.1:5347 is short of resources and closed the stream for comp.example.org"
         " (resource-constraint)"),
        ("internal-server-error", None,
         "the server at 127.0.0.1:5347 failed internally and closed the stream for comp.example.org"
         " (internal-server-error)"),
        ("see-other-host", "xmpp.example.org",
         "the server at 127.0.0.1:5347 sent comp.example.org to another host (see-other-host: xmpp.example.org);"
         " point host and port there"),
        ("undefined-condition", None,
         "the server at 127.0.0.1:5347 closed the stream for comp.example.org (undefined-condition)"),
    ],
)
def test_every_stream_error_is_one_sentence_saying_what_to_do(condition, text, sentence):
    _, protocol, _transport = connect()
    protocol.dataReceived(SERVER_HEADER)
    failures = []
    protocol.handshake.addErrback(failures.append)
    body = f"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>{text}</text>" if text else ""
    with LogCapture() as logs:
        protocol.dataReceived(
            f"<stream:error><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>{body}</stream:error>".encode()
        )
    assert logs.messages() == [sentence]
    assert str(failures[0].value) == sentence


def test_malformed_input_gets_a_stream_error_and_the_stream_closes():
    _, protocol, transport = connect()
    protocol.dataReceived(SERVER_HEADER + b"<handshake/>")
    take(transport)
    protocol.dataReceived(b"<message><!-- no --></message>")
    assert take(transport) == (
        b"<stream:error><restricted-xml xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        b"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>comments and processing instructions are not allowed"
        b"</text></stream:error></stream:stream>"
    )
    assert transport.disconnecting
    protocol.dataReceived(b"<message/>")  # ignored once closing
    assert transport.value() == b""


def test_unknown_top_level_element_is_unsupported_stanza_type():
    _, protocol, transport = connect()
    protocol.dataReceived(SERVER_HEADER + b"<handshake/>")
    take(transport)
    protocol.dataReceived(b"<foo/>")
    assert take(transport).startswith(b"<stream:error><unsupported-stanza-type ")


def test_stanza_before_handshake_is_refused():
    _, protocol, transport = connect()
    protocol.dataReceived(SERVER_HEADER)
    take(transport)
    protocol.dataReceived(b"<message from='a@b' to='c@comp.example.org'/>")
    assert take(transport).startswith(b"<stream:error><not-authorized ")


def test_server_closing_the_stream_is_answered_and_the_link_goes_down():
    component, protocol, transport = connect()
    protocol.dataReceived(SERVER_HEADER + b"<handshake/>")
    take(transport)
    protocol.dataReceived(b"</stream:stream>")
    assert take(transport) == b"</stream:stream>"
    protocol.connectionLost(None)
    assert component.link is None
    component.send(message(f"bot@{DOMAIN}", "juliet@example.com", "queued"))
    assert component.queued == 1


def attempt(reactor, connector, index):
    _host, _port, factory, _timeout, _bind = reactor.tcpClients[index]
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def test_reconnects_with_backoff_after_a_refused_handshake():
    reactor = MemoryReactorClock()
    component = Component(DOMAIN, keepalive=NO_PINGS, clock=reactor)
    connector = ComponentConnector(component, "127.0.0.1", 5347, "wrong", reactor=reactor, backoff=Backoff(reconnect_initial=1.0, reconnect_max=8.0))
    connector.startService()
    assert len(reactor.tcpClients) == 1
    delays = []
    for index in range(4):
        protocol, _transport = attempt(reactor, connector, index)
        protocol.dataReceived(SERVER_HEADER)
        protocol.dataReceived(b"<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>")
        protocol.connectionLost(None)
        before = len(reactor.tcpClients)
        waited = 0.0
        while len(reactor.tcpClients) == before and waited < 60:
            reactor.advance(0.05)
            waited += 0.05
        delays.append(waited)
    # Exponential, plus a jitter of up to the initial delay: 1-2, 2-3, 4-5, 8-9 seconds
    # (measured in 50 ms steps).
    for base, waited in zip([1, 2, 4, 8], delays, strict=True):
        assert base <= waited <= base + 1.0 + 0.051, delays


RETRY = re.compile(
    r"comp\.example\.org: reconnecting to the server at 127\.0\.0\.1:5347 in \d+\.\d s, retry (\d+) \((.*)\)"
)


def retries(logs):
    """(retry count, reason) of each reconnect line; every line names the domain and the address."""
    lines = [m for m in logs.messages() if "reconnecting" in m and "lost its connection" not in m]
    return [(int(RETRY.fullmatch(line)[1]), RETRY.fullmatch(line)[2]) for line in lines]


def test_refused_connections_are_our_own_lines_with_the_real_count_and_reason():
    reactor = MemoryReactorClock()
    component = Component(DOMAIN, keepalive=NO_PINGS, clock=reactor)
    connector = ComponentConnector(component, "127.0.0.1", 5347, "s3cret", reactor=reactor, backoff=Backoff(reconnect_initial=0.5))
    with LogCapture() as logs:
        connector.startService()
        for index in range(3):
            _host, _port, factory, _timeout, _bind = reactor.tcpClients[index]
            factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
            reactor.advance(60)
    assert retries(logs) == [(1, "connection refused"), (2, "connection refused"), (3, "connection refused")]
    assert not any("Scheduling retry" in line or "object at 0x" in line for line in logs.messages())


def test_refused_handshakes_count_up_and_a_lost_link_starts_again_at_one():
    reactor = MemoryReactorClock()
    component = Component(DOMAIN, keepalive=NO_PINGS, clock=reactor)
    connector = ComponentConnector(component, "127.0.0.1", 5347, "s3cret", reactor=reactor, backoff=Backoff(reconnect_initial=0.5))
    with LogCapture() as logs:
        connector.startService()
        for index in range(2):
            protocol, _ = attempt(reactor, connector, index)
            protocol.dataReceived(SERVER_HEADER)
            protocol.dataReceived(b"<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                                  b"</stream:error>")
            protocol.connectionLost(Failure(ConnectionDone()))
            reactor.advance(60)
        protocol, _ = attempt(reactor, connector, 2)
        protocol.dataReceived(SERVER_HEADER + b"<handshake/>")
        protocol.connectionLost(Failure(ConnectionLost()))
    assert retries(logs) == [
        (1, "stream error not-authorized"),
        (2, "stream error not-authorized"),
        (1, "Connection to the other side was lost in a non-clean fashion."),
    ]
    assert (
        "comp.example.org lost its connection to the server at 127.0.0.1:5347 (Connection to the other side was"
        " lost in a non-clean fashion.); reconnecting"
    ) in logs.messages()


def test_a_server_closing_before_the_handshake_is_said_with_its_address():
    reactor = MemoryReactorClock()
    component = Component(DOMAIN, keepalive=NO_PINGS, clock=reactor)
    connector = ComponentConnector(component, "127.0.0.1", 5347, "s3cret", reactor=reactor, backoff=Backoff(reconnect_initial=0.5))
    with LogCapture() as logs:
        connector.startService()
        protocol, _ = attempt(reactor, connector, 0)
        protocol.connectionLost(Failure(ConnectionDone()))
    assert logs.messages()[0] == (
        "the server at 127.0.0.1:5347 closed the connection of comp.example.org before the handshake"
    )
    assert retries(logs) == [(1, "Connection was closed cleanly.")]


def test_reconnects_after_losing_an_established_link_and_flushes_the_queue():
    reactor = MemoryReactorClock()
    component = Component(DOMAIN, keepalive=NO_PINGS, clock=reactor)
    connector = ComponentConnector(component, "127.0.0.1", 5347, "s3cret", reactor=reactor, backoff=Backoff(reconnect_initial=0.5))
    connector.startService()
    protocol, transport = attempt(reactor, connector, 0)
    protocol.dataReceived(SERVER_HEADER + b"<handshake/>")
    protocol.connectionLost(None)
    component.send(message(f"bot@{DOMAIN}", "juliet@example.com", "sent while down"))
    reactor.advance(1.5)
    assert len(reactor.tcpClients) == 2
    protocol, transport = attempt(reactor, connector, 1)
    protocol.dataReceived(SERVER_HEADER + b"<handshake/>")
    assert b"<body>sent while down</body>" in transport.value()


def test_stop_says_goodbye_then_closes_the_stream():
    reactor = MemoryReactorClock()
    component = Component(DOMAIN, keepalive=NO_PINGS, clock=reactor)
    connector = ComponentConnector(component, "127.0.0.1", 5347, "s3cret", reactor=reactor)
    connector.startService()
    protocol, transport = attempt(reactor, connector, 0)
    protocol.dataReceived(SERVER_HEADER + b"<handshake/>")
    from component.stanza import presence

    component.send_presence(presence(f"bot@{DOMAIN}", "juliet@example.com"))
    take(transport)
    stopped = connector.stopService()
    assert take(transport) == (
        b'<presence from="bot@comp.example.org" to="juliet@example.com" '
        b'type="unavailable"/></stream:stream>'
    )
    assert not stopped.called
    protocol.connectionLost(None)
    assert stopped.called


def test_stanzas_handled_after_a_deferred_load_still_serialise_without_invented_prefixes():
    from twisted.internet import defer

    from component.entity import Entity
    from component.jid import parse_jid

    component, protocol, transport = connect()
    protocol.dataReceived(SERVER_HEADER + b"<handshake/>")
    take(transport)
    loading = defer.Deferred()

    class Mirror(Entity):
        def handle_message(self, stanza):
            element = stanza.element
            element.set("from", str(stanza.recipient))
            element.set("to", str(stanza.sender))
            self.send(element)

    component.router.set_node_factory(lambda node: loading)
    protocol.dataReceived(
        b"<message from='juliet@example.com/balcony' to='room@comp.example.org' id='m1'>"
        b"<body>hi</body><status>x</status></message>"
    )
    loading.callback(Mirror(component, parse_jid("room@comp.example.org")))
    assert take(transport) == (
        b'<message '
        b'from="room@comp.example.org" to="juliet@example.com/balcony" id="m1">'
        b"<body>hi</body><status>x</status></message>"
    )


def test_replies_to_one_read_and_a_close_in_the_same_read_go_out_in_one_write():
    _, protocol, transport = connect()
    protocol.dataReceived(SERVER_HEADER + b"<handshake/>")
    take(transport)
    writes = []
    transport.write = writes.append  # type: ignore[method-assign]
    protocol.dataReceived(
        b"<message from='a@example.com/r' to='nobody@comp.example.org' id='1'/>"
        b"<message from='a@example.com/r' to='nobody@comp.example.org' id='2'/>"
        b"</stream:stream>"
    )
    assert len(writes) == 1
    assert writes[0].count(b"<service-unavailable ") == 2 and b'id="1"' in writes[0] and b'id="2"' in writes[0]
    assert writes[0].endswith(b"</message></stream:stream>")
