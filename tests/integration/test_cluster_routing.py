"""How ejabberd's ``domain_balancing`` spreads one component domain over several connections.

The README's "Running several instances" rests on these: with ``type:
bare_destination`` and ``component_number: 2`` each room's stanzas reach one
slot, a room stays with its slot whatever connects or goes, a stanza for an
empty slot is dropped without an error, a connection that finds every slot
taken gets nothing even after a slot frees, and the next connection to
register fills the empty slot and gets exactly its rooms; a
``component_number`` changed by ``reload_config`` is not used, not even once
every connection has gone. Raw XEP-0114
connections stand for the instances; a plain component sends the stanzas.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster import BalancingEjabberd

BALANCED = "muc.localhost"
SENDER = "src.localhost"
ROOMS = 40


class Link:
    """One raw component connection that records everything it receives."""

    def __init__(self, port: int, domain: str, secret: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(
            f"<stream:stream xmlns='jabber:component:accept'"
            f" xmlns:stream='http://etherx.jabber.org/streams' to='{domain}'>".encode()
        )
        head = self._until(rb"<stream:stream[^>]*>")
        stream_id = re.search(rb"id=['\"]([^'\"]+)", head)
        assert stream_id is not None, head
        digest = hashlib.sha1(stream_id.group(1) + secret.encode()).hexdigest()
        self.sock.sendall(f"<handshake>{digest}</handshake>".encode())
        self._until(rb"<handshake/>|<handshake></handshake>")
        self.received = ""
        self._lock = threading.Lock()
        self.sock.settimeout(None)
        threading.Thread(target=self._read, daemon=True).start()

    def _until(self, pattern: bytes) -> bytes:
        data = b""
        while not re.search(pattern, data):
            chunk = self.sock.recv(4096)
            assert chunk, f"the server closed the stream: {data!r}"
            data += chunk
        return data

    def _read(self) -> None:
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                self.received += chunk.decode(errors="replace")

    def rooms(self, tag: str) -> set[int]:
        """The rooms whose message *tag* reached this connection."""
        with self._lock:
            text = self.received
        pattern = rf"to=['\"]room(\d+)@{re.escape(BALANCED)}/nick['\"][^>]*><body>{tag}</body>"
        return {int(n) for n in re.findall(pattern, text)}

    def send(self, xml: str) -> None:
        self.sock.sendall(xml.encode())

    def close(self) -> None:
        self.send("</stream:stream>")
        self.sock.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BalancingEjabberd]:
    if shutil.which("ejabberdctl") is None or shutil.which("erl") is None:
        pytest.skip("ejabberd is not installed")
    directory: Path = tmp_path_factory.mktemp("ejabberd-balancing")
    started = BalancingEjabberd(directory, {BALANCED: "secret-muc", SENDER: "secret-src"}, {BALANCED: 2})
    started.start()
    try:
        yield started
    finally:
        started.stop()


def _to_every_room(sender: Link, tag: str, *expect: tuple[Link, set[int] | None]) -> None:
    """Send *tag* to each room; wait until each link in *expect* got its rooms (None: any, once all arrived)."""
    for n in range(ROOMS):
        sender.send(
            f"<message from='bot@{SENDER}' to='room{n}@{BALANCED}/nick' type='groupchat'><body>{tag}</body></message>"
        )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if all(wanted is None or link.rooms(tag) >= wanted for link, wanted in expect):
            break
        time.sleep(0.05)
    # Let stragglers arrive, if any were wrongly sent.
    time.sleep(0.3)


def _until_every_room_reached(tag: str, *links: Link) -> None:
    """Wait until *tag* reached every room on one of *links*, then for stragglers."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and set().union(*(link.rooms(tag) for link in links)) != set(range(ROOMS)):
        time.sleep(0.05)
    time.sleep(0.3)


def test_rooms_keep_their_slot_and_an_empty_slot_drops_silently(server: BalancingEjabberd) -> None:
    port = server.component_port
    sender = Link(port, SENDER, "secret-src")
    first = Link(port, BALANCED, "secret-muc")

    # One slot filled: its rooms arrive, the others' stanzas vanish without an error.
    deadline = time.monotonic() + 10
    _to_every_room(sender, "one")
    while not first.rooms("one") and time.monotonic() < deadline:
        time.sleep(0.05)
    slot_a = first.rooms("one")
    assert 0 < len(slot_a) < ROOMS
    slot_b = set(range(ROOMS)) - slot_a
    assert "error" not in sender.received

    # The second connection fills the other slot; nobody's rooms move.
    second = Link(port, BALANCED, "secret-muc")
    _to_every_room(sender, "two", (first, slot_a), (second, slot_b))
    assert (first.rooms("two"), second.rooms("two")) == (slot_a, slot_b)

    # A third finds both slots taken: it is accepted and gets nothing.
    third = Link(port, BALANCED, "secret-muc")
    _to_every_room(sender, "three", (first, slot_a), (second, slot_b))
    assert (first.rooms("three"), second.rooms("three"), third.rooms("three")) == (slot_a, slot_b, set())

    # The first goes: its rooms' stanzas are dropped, without an error, and the
    # connection already waiting does not take the freed slot.
    first.close()
    time.sleep(0.5)
    _to_every_room(sender, "four", (second, slot_b))
    assert (second.rooms("four"), third.rooms("four")) == (slot_b, set())
    assert "error" not in sender.received

    # The next connection to register takes the empty slot, with exactly its rooms.
    fourth = Link(port, BALANCED, "secret-muc")
    _to_every_room(sender, "five", (second, slot_b), (fourth, slot_a))
    assert (second.rooms("five"), fourth.rooms("five"), third.rooms("five")) == (slot_b, slot_a, set())
    for link in (sender, second, third, fourth):
        link.close()


def test_a_component_number_changed_by_a_reload_is_not_used(tmp_path: Path) -> None:
    if shutil.which("ejabberdctl") is None or shutil.which("erl") is None:
        pytest.skip("ejabberd is not installed")
    server = BalancingEjabberd(tmp_path, {BALANCED: "secret-muc", SENDER: "secret-src"}, {BALANCED: 2})
    server.start()
    try:
        port = server.component_port
        sender = Link(port, SENDER, "secret-src")
        first, second = Link(port, BALANCED, "secret-muc"), Link(port, BALANCED, "secret-muc")
        _to_every_room(sender, "two")
        _until_every_room_reached("two", first, second)
        slots = (first.rooms("two"), second.rooms("two"))
        assert slots[0] | slots[1] == set(range(ROOMS)) and all(slots)

        # Three slots from now on, says the configuration, reloaded: the table of slots stays as it
        # was, with two, and a third connection gets nothing.
        server.balanced = {BALANCED: 3}
        server.write_config()
        server.run_account_tool(["reload_config"])
        third = Link(port, BALANCED, "secret-muc")
        _to_every_room(sender, "three", (first, slots[0]), (second, slots[1]))
        assert (first.rooms("three"), second.rooms("three"), third.rooms("three")) == (*slots, set())

        # Not even once every connection has gone: the two empty slots stay, and only an
        # ejabberd restart reads component_number again.
        for link in (first, second, third):
            link.close()
        time.sleep(0.5)
        links = [Link(port, BALANCED, "secret-muc") for _ in range(3)]
        _to_every_room(sender, "again")
        _until_every_room_reached("again", *links)
        assert {frozenset(links[0].rooms("again")), frozenset(links[1].rooms("again"))} == set(map(frozenset, slots))
        assert links[2].rooms("again") == set()
        for link in (sender, *links):
            link.close()
    finally:
        server.stop()
