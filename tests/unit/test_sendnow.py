"""Immediate sends: bytes reach the socket in the turn that wrote them, never ahead of what the transport holds."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from twisted.internet import tcp
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport

from component.component import Component
from component.connection import ComponentProtocol
from component.sendnow import sender_for


class IdleReactor:
    """A reactor that is never run: what the connection asks to be watched is not watched."""

    def addReader(self, reader: object) -> None: ...
    def removeReader(self, reader: object) -> None: ...
    def addWriter(self, writer: object) -> None: ...
    def removeWriter(self, writer: object) -> None: ...


@pytest.fixture
def pair() -> Iterator[tuple[tcp.Connection, socket.socket]]:
    """Twisted's TCP connection over one end of a loopback TCP connection (no reactor turns), and the other end."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        ours = socket.create_connection(listener.getsockname())
        peer, _ = listener.accept()
    ours.setblocking(False)
    peer.setblocking(False)
    connection = tcp.Connection(ours, Protocol(), IdleReactor())
    connection.connected = 1
    yield connection, peer
    ours.close()
    peer.close()


def received(peer: socket.socket) -> bytes:
    try:
        return peer.recv(1 << 20)
    except BlockingIOError:
        return b""


def test_with_nothing_buffered_the_bytes_go_out_at_once(pair) -> None:
    connection, peer = pair
    send = sender_for(connection)
    assert send(b"<message/>") == b""
    assert received(peer) == b"<message/>"
    # Nothing was left for the reactor to write.
    assert not connection.dataBuffer and not connection._tempDataLen


def test_bytes_never_overtake_what_the_transport_holds(pair) -> None:
    connection, peer = pair
    connection.write(b"<first/>")  # buffered until the reactor's next turn, which never comes here
    assert sender_for(connection)(b"<second/>") == b"<second/>"
    assert received(peer) == b""


def test_what_a_full_socket_does_not_take_is_returned_in_order(pair) -> None:
    connection, peer = pair
    data = bytes(range(256)) * 40_000  # 10 MB: more than any socket buffer holds
    rest = sender_for(connection)(data)
    assert 0 < len(rest) < len(data)
    taken = len(data) - len(rest)
    got = b""
    while len(got) < taken:
        got += received(peer)
    assert got == data[:taken] and rest == data[taken:]


def test_a_closing_connection_is_left_to_the_transport(pair) -> None:
    connection, peer = pair
    connection.disconnecting = True
    assert sender_for(connection)(b"<message/>") == b"<message/>"
    assert received(peer) == b""


def test_other_transports_get_everything_back() -> None:
    assert sender_for(StringTransport())(b"<message/>") == b"<message/>"


def test_the_component_writes_a_reads_replies_before_the_reactor_turns(pair) -> None:
    connection, peer = pair
    protocol = ComponentProtocol(Component("comp.localhost"), "secret")
    connection.protocol = protocol
    protocol.makeConnection(connection)
    protocol.dataReceived(
        b"<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams'"
        b" xmlns='jabber:component:accept' from='comp.localhost' id='1'>"
    )
    connection.doWrite()  # the stream header and the handshake, written through the transport
    assert received(peer).endswith(b"</handshake>")
    protocol.dataReceived(
        b"<handshake/><iq type='get' id='info1' from='crone1@shakespeare.lit/desktop' to='comp.localhost'>"
        b"<query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
    )
    # The reply is on the socket with no turn of the reactor in between.
    reply = received(peer)
    assert reply.startswith(b"<iq ") and b'id="info1"' in reply and b'type="result"' in reply
