"""Bounded output: fan-outs built as the server reads, reading paused at output_limit, order kept."""

from __future__ import annotations

import re

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from component.component import Component, DomainSettings
from component.connection import CHUNK, ComponentProtocol
from component.output import EAGER_BYTES, Output, Rendered
from component.stanza import Broadcast, Fanout, Spliced, address, message, splice
from component.testing import NO_PINGS, RecordingLink, parse_stanzas
from services.muc.testing import CRONE, MUC_X, ROOM, instant_room, muc_harness

SERVER_HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' "
    b"xmlns='jabber:component:accept' from='chat.shakespeare.lit' id='3BF96D32'>"
)
LIMIT = 256 * 1024
#: What may wait for the server in these tests, where a room's fan-out is larger.
BOUNDED = DomainSettings(output_limit=LIMIT)


class TCPLikeTransport(StringTransport):
    """A StringTransport whose buffer pauses its producer the way a TCP transport's does.

    Past ``bufferSize`` bytes it calls the producer's ``pauseProducing``; once
    the server has read everything (``read``), its ``resumeProducing``.
    """

    bufferSize = 64 * 1024

    def __init__(self) -> None:
        super().__init__()
        self.full = False

    def write(self, data: bytes) -> None:
        super().write(data)
        if not self.full and self.producer is not None and len(self.value()) > self.bufferSize:
            self.full = True
            self.producer.pauseProducing()

    def read(self, most: int | None = None) -> bytes:
        """What the server reads: everything buffered, or its first ``most`` bytes."""
        data = self.value()
        taken, rest = (data, b"") if most is None else (data[:most], data[most:])
        self.clear()
        self.io.write(rest)
        if self.full and not rest:
            self.full = False
            self.producer.resumeProducing()  # type: ignore[union-attr]
        return taken


def recipients(count: int) -> list[bytes]:
    return [address(f"user{i}@example.net/r{i % 7}") for i in range(count)]


def drain_in_chunks(piece, budget: int) -> list[bytes]:
    chunks = []
    while piece.stanzas:
        chunks.append(piece.take(budget))
    assert piece.size == 0
    return chunks


@pytest.mark.parametrize("budget", [1, 500, 4096, 65536, 10**9])
def test_a_fanout_in_chunks_is_the_whole_fanout_cut_between_stanzas(budget) -> None:
    broadcast = Broadcast(message(f"{ROOM}/firstwitch", "x@y", "Thrice the brinded cat hath mew'd.", type="groupchat"))
    addresses = recipients(2000)
    piece = broadcast.to_each(addresses)
    assert isinstance(piece, Fanout) and piece.stanzas == 2000
    assert piece.size == len(broadcast.to_all(addresses))
    chunks = drain_in_chunks(piece, budget)
    assert b"".join(chunks) == broadcast.to_all(addresses)
    assert sum(len(parse_stanzas(chunk)) for chunk in chunks) == 2000


def test_a_small_fanout_is_built_at_once() -> None:
    broadcast = Broadcast(message(f"{ROOM}/firstwitch", "x@y", "hi", type="groupchat"))
    addresses = recipients(20)
    assert broadcast.to_each(addresses) == broadcast.to_all(addresses)


@pytest.mark.parametrize("budget", [1, 700, 65536, 10**9])
def test_a_spliced_list_in_chunks_is_the_whole_list_cut_between_stanzas(budget) -> None:
    gap = b"\x00"
    segments = [b""]
    for i in range(1500):
        shown = Broadcast(message(f"{ROOM}/n{i}", "x@y", f"<status {i}> & more", type="groupchat"))
        head, _, tail = shown.to_address(gap).partition(gap)
        segments[-1] += head
        segments.append(tail)
    to = address("hag66@shakespeare.lit/pda")
    piece = splice(segments, to)
    assert isinstance(piece, Spliced) and piece.stanzas == 1500
    segments.append(b"grown later")  # a newcomer after the send is not in it
    chunks = drain_in_chunks(piece, budget)
    assert b"".join(chunks) == to.join(segments[:-1])
    assert sum(len(parse_stanzas(chunk)) for chunk in chunks) == 1500


def test_rendered_items_in_chunks() -> None:
    items = [f"<message to='a@b' id='{i}'/>".encode() for i in range(100)]
    piece = Rendered(items, lambda item: item, sum(map(len, items)), b"<message")
    assert b"".join(drain_in_chunks(piece, 100)) == b"".join(items)


def test_the_output_queue_counts_what_it_owes_and_what_it_holds() -> None:
    broadcast = Broadcast(message(f"{ROOM}/firstwitch", "x@y", "hi", type="groupchat"))
    fanout = broadcast.to_each(recipients(3000))
    output = Output()
    output.append(b"<iq/>")
    output.append(fanout)
    output.append(b"<presence/>")
    assert output.held == len(b"<iq/><presence/>")
    assert output.size == output.held + fanout.size
    first = output.take(CHUNK)
    assert first.startswith(b"<iq/><message ") and len(first) <= CHUNK + 300
    rest = b""
    while output:
        rest += output.take(CHUNK)
    assert rest.endswith(b"</message><presence/>") and output.size == output.held == 0


# -- through the connection ---------------------------------------------------


def crowded_room(occupants: int):
    """A MUC harness with a room of ``occupants``; what the room sent is forgotten unparsed."""
    h = muc_harness(storage=None, settings=BOUNDED)
    instant_room(h, ROOM, CRONE, "firstwitch")
    for i in range(1, occupants):
        h.receive(f"<presence from='u{i}@shakespeare.lit/r' to='{ROOM}/n{i}'>{MUC_X}</presence>")
    h.transport.clear()
    return h


def attach(component: Component) -> tuple[ComponentProtocol, TCPLikeTransport]:
    protocol = ComponentProtocol(component, "s3cret")
    transport = TCPLikeTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(SERVER_HEADER)
    transport.clear()  # our stream header and handshake
    protocol.dataReceived(b"<handshake/>")
    return protocol, transport


def held(protocol: ComponentProtocol, transport: TCPLikeTransport) -> int:
    """Bytes built and not yet read by the server: in our queue and in the transport."""
    return protocol.output.held + len(transport.value())


def groupchat(i: int, body: str = "") -> bytes:
    return (
        f"<message from='u{i}@shakespeare.lit/r' to='{ROOM}' type='groupchat' id='g{i}'>"
        f"<body>line {i}{body}</body></message>"
    ).encode()


def test_a_fanout_to_a_server_that_does_not_read_holds_at_most_the_bound() -> None:
    h = crowded_room(300)
    protocol, transport = attach(h.component)
    protocol.dataReceived(b"".join(groupchat(i % 299 + 1, " with some words to make it longer") for i in range(40)))
    owed = protocol.output.size
    assert owed > 10 * LIMIT  # 40 reflections to 300 occupants wait
    assert held(protocol, transport) <= LIMIT
    assert transport.producerState == "paused"  # we stopped reading
    received = []
    while protocol.output or transport.value():
        received.append(transport.read(CHUNK // 2))
        assert held(protocol, transport) <= LIMIT
    stanzas = parse_stanzas(b"".join(received))
    assert len(stanzas) == 40 * 300
    bodies = [s.findtext("{jabber:component:accept}body").split()[1] for s in stanzas[::300]]
    assert bodies == [str(i % 299 + 1) for i in range(40)]


def test_reading_pauses_at_the_bound_and_resumes_once_half_is_written() -> None:
    h = crowded_room(300)
    protocol, transport = attach(h.component)
    count = 0
    owed = 0
    while transport.producerState == "producing":
        assert owed < LIMIT  # below the bound, reading goes on
        count += 1
        protocol.dataReceived(groupchat(count))
        owed = protocol.output.size
        assert count < 100
    assert owed >= LIMIT
    while protocol.output.size > LIMIT // 2:
        assert transport.producerState == "paused"
        transport.read()
    assert transport.producerState == "producing"


def _normalised(data: bytes) -> bytes:
    # Stanza ids come from one counter per process: the two runs number them differently.
    return re.sub(rb'(<stanza-id xmlns="urn:xmpp:sid:0" by="[^"]*" id=")[^"]*"', rb'\1"', data)


def script() -> list[bytes]:
    """Reads from the server: a crowd of joins, long messages, a latecomer, an IQ and a message after."""
    reads = [b"".join(
        f"<presence from='u{i}@shakespeare.lit/r' to='{ROOM}/n{i}'>{MUC_X}</presence>".encode()
        for i in range(start, start + 30)) for start in range(1, 301, 30)]
    reads.append(b"".join(groupchat(i, " " + "x" * 8000) for i in range(1, 11)))
    reads.append(
        f"<presence from='late@shakespeare.lit/r' to='{ROOM}/late'>{MUC_X}</presence>"
        f"<iq from='late@shakespeare.lit/r' to='{ROOM}' type='get' id='info'>"
        "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>".encode()
        + groupchat(5, " after all that")
    )
    return reads


def test_stanzas_go_out_in_the_order_they_were_sent_across_lazy_fanouts_and_nothing_is_lost() -> None:
    reference = muc_harness(storage=None)
    instant_room(reference, ROOM, CRONE, "firstwitch")
    reference.transport.clear()
    for read in script():
        reference.protocol.dataReceived(read)
    expected = reference.transport.value()

    h = muc_harness(storage=None, settings=BOUNDED)
    instant_room(h, ROOM, CRONE, "firstwitch")
    protocol, transport = attach(h.component)
    received = []
    reads = script()
    reads_while_paused = 0
    while reads or protocol.output or transport.value():
        if reads and transport.producerState == "producing":
            protocol.dataReceived(reads.pop(0))
        else:
            reads_while_paused += bool(reads)
            received.append(transport.read(20_000))
        # Beyond the bound, at most what one read's sends built at once: 30 joins, each a few small sends.
        assert held(protocol, transport) <= LIMIT + 30 * 3 * EAGER_BYTES
    assert reads_while_paused  # the bound was reached: the lazy path ran
    data = b"".join(received)
    assert _normalised(data) == _normalised(expected)
    assert b"<body>line 5 after all that</body>" in data.rpartition(b"<message ")[2]  # the last send, last


def test_a_link_lost_with_a_fanout_pending_queues_the_rest_bounded_in_bytes() -> None:
    h = crowded_room(300)
    protocol, transport = attach(h.component)
    protocol.dataReceived(b"".join(groupchat(i) for i in range(1, 9)))
    read = len(parse_stanzas(transport.read()))
    unread = len(parse_stanzas(transport.value()))  # refilled once read; lost with the connection
    protocol.connectionLost(None)
    assert h.component.link is None
    # What the transport had taken is gone with the connection; the rest waits, whole stanzas, the oldest
    # dropped past output_limit.
    assert h.component.dropped > 0
    assert h.component.queued and h.component.queued_bytes <= LIMIT
    protocol, transport = attach(h.component)
    resent = []
    while protocol.output or transport.value():
        resent.append(transport.read())
    stanzas = parse_stanzas(b"".join(resent))
    assert len(stanzas) == 8 * 300 - read - unread - h.component.dropped
    assert stanzas[-1].findtext("{jabber:component:accept}body") == "line 8"


def test_what_waits_is_written_before_the_stream_closes() -> None:
    h = crowded_room(300)
    protocol, transport = attach(h.component)
    protocol.dataReceived(groupchat(1) + groupchat(2) + b"</stream:stream>")
    assert not transport.disconnecting
    chunks = []
    while not transport.disconnecting:
        chunks.append(transport.read())
    received = b"".join(chunks) + transport.read()
    assert received.endswith(b"</message></stream:stream>")
    assert len(parse_stanzas(received[: -len(b"</stream:stream>")])) == 600


def test_the_queue_while_down_is_bounded_in_bytes_and_drops_the_oldest() -> None:
    broadcast = Broadcast(message(f"{ROOM}/firstwitch", "x@y", "hi", type="groupchat"))
    big = broadcast.to_each(recipients(600))
    assert isinstance(big, Fanout)
    component = Component("chat.shakespeare.lit", DomainSettings(output_limit=big.size + 1000), NO_PINGS, clock=Clock())
    component.send_bytes(b"<message to='a@b' from='c@chat.shakespeare.lit'/>")
    component.send_bytes(big)
    assert component.dropped == 0
    component.send_bytes(broadcast.to_each(recipients(600)))
    assert component.dropped == 1 + 600
    assert component.queued == 1 and component.queued_bytes == big.size
    link = RecordingLink()
    component.link_up(link)
    assert b"".join(link.written).count(b"<message ") == 600
