"""The load generator: XMPP clients on raw sockets, many to a process, driven over a pipe.

Each worker process logs its share of the users in over c2s (SASL PLAIN, resource
binding), joins each user's room in every MUC it is given, then waits for
commands. A run sends groupchat messages at a fixed rate to one MUC's rooms, each
body the send time (``CLOCK_MONOTONIC`` in nanoseconds, the same clock in every
process), and counts what comes back: a reflection is found by ``<body>`` and its
digits, never parsed as XML, so the driver's cost per delivered stanza stays small.
"""

from __future__ import annotations

import array
import asyncio
import base64
import os
import re
import resource
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import attrs

STREAM = (
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client'"
    " xmlns:stream='http://etherx.jabber.org/streams' to='{domain}' version='1.0'>"
)
_BODY = re.compile(rb"<body>(\d{6,20})</body>")
_SELF_PRESENCE = re.compile(rb"""code=['"]110['"]""")
_ERROR = re.compile(rb"""<(presence|iq)[^>]*type=['"]error['"]""")
#: A message's tail can be cut by a read; what follows its last complete message is kept.
_END = b"</message>"


class LoginFailed(Exception):
    """A client could not log in or join its room."""


@attrs.define
class Counts:
    """What one run saw in one worker: receipts in the window, and the latency of each."""

    window: tuple[int, int] = (0, 0)
    #: When the run began sending (its warm-up included).
    begin: int = 0
    received: int = 0
    #: Every reflection of a message the run sent, whenever it came: the work the run's CPU paid for.
    total: int = 0
    late: int = 0
    #: Bytes of the complete messages received, and how many of them carried a stanza-id (XEP-0359).
    octets: int = 0
    stanza_ids: int = 0
    last_receipt: int = 0
    latencies: array.array[int] = attrs.field(factory=lambda: array.array("q"))


class Client(asyncio.Protocol):
    """One user's c2s session."""

    def __init__(self, user: str, password: str, domain: str) -> None:
        self.user = user
        self.password = password
        self.domain = domain
        self.transport: asyncio.Transport | None = None
        self._buffer = b""
        self._waiter: tuple[re.Pattern[bytes], asyncio.Future[bytes]] | None = None
        self.counts: Counts | None = None
        self.closed = asyncio.get_running_loop().create_future()

    # -- asyncio.Protocol -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        counts = self.counts
        if counts is not None:
            now = time.monotonic_ns()
            data = self._buffer + data
            cut = data.rfind(_END)
            if cut < 0:
                self._buffer = data
                return
            cut += len(_END)
            self._buffer = data[cut:]
            start, end = counts.window
            counts.octets += cut
            counts.stanza_ids += data.count(b"<stanza-id ", 0, cut)
            for match in _BODY.finditer(data, 0, cut):
                sent = int(match.group(1))
                if sent >= counts.begin:
                    counts.total += 1
                if start <= now < end:
                    counts.received += 1
                if start <= sent < end:
                    counts.latencies.append(now - sent)
                    if now >= end:
                        counts.late += 1
            counts.last_receipt = now
            return
        self._buffer += data
        if self._waiter is not None:
            pattern, future = self._waiter
            found = pattern.search(self._buffer)
            if found is not None or _ERROR.search(self._buffer):
                self._waiter = None
                text, self._buffer = self._buffer, b""
                if found is None:
                    future.set_exception(LoginFailed(f"{self.user}: error: {text[-600:]!r}"))
                else:
                    future.set_result(text)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None:
            self._waiter[1].set_exception(LoginFailed(f"{self.user}: connection lost: {self._buffer[-600:]!r}"))
            self._waiter = None
        if not self.closed.done():
            self.closed.set_result(None)

    # -- login and joins --------------------------------------------------

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def expect(self, pattern: bytes, timeout: float = 60.0) -> bytes:
        """Wait until what arrived since the last wait matches ``pattern``; return it."""
        compiled = re.compile(pattern)
        found = compiled.search(self._buffer)
        if found is not None:
            text, self._buffer = self._buffer, b""
            return text
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiter = (compiled, future)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise LoginFailed(f"{self.user}: waited {timeout:g} s for {pattern!r}; got {self._buffer[-600:]!r}") from None

    async def login(self, host: str, port: int, pause: float) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: self, host, port)
        header = STREAM.format(domain=self.domain).encode()
        self.send(header)
        await self.expect(rb"</stream:features>")
        token = base64.b64encode(f"\0{self.user}\0{self.password}".encode()).decode()
        self.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>".encode())
        text = await self.expect(rb"<success|<failure")
        if b"<failure" in text:
            raise LoginFailed(f"{self.user}: authentication failed: {text!r}")
        if pause:
            # ejabberd sends its features in a packet of their own after the header.
            await asyncio.sleep(pause)
        self.send(header)
        await self.expect(rb"</stream:features>")
        self.send(
            b"<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
            b"<resource>load</resource></bind></iq>"
        )
        await self.expect(rb"</iq>")

    async def join(self, room: str, *, create: bool, form: str = "") -> None:
        """Enter ``room`` as this user; as its creator, submit ``form``'s fields (none: an instant room, §10.1.2)."""
        self.send(
            f"<presence to='{room}/{self.user}'><x xmlns='http://jabber.org/protocol/muc'>"
            "<history maxstanzas='0'/></x></presence>".encode()
        )
        await self.expect(_SELF_PRESENCE.pattern)
        if create:
            self.send(
                f"<iq type='set' id='create' to='{room}'><query xmlns='http://jabber.org/protocol/muc#owner'>"
                f"<x xmlns='jabber:x:data' type='submit'>{form}</x></query></iq>".encode()
            )
            await self.expect(rb"""id=['"]create['"]""")


@attrs.frozen
class Muc:
    """Where one target's rooms are: a MUC's domain, and a prefix when two targets share one MUC."""

    domain: str
    prefix: str = ""
    #: The fields of the form each room's creator submits (none: an instant room).
    form: str = ""

    def room(self, node: str) -> str:
        return f"{self.prefix}{node}@{self.domain}"


@attrs.define
class Plan:
    """What a worker is told at start: who its users are, where they log in, what they join."""

    users: list[str]
    password: str
    host: str
    port: int
    domain: str
    #: The room each user joins (its node); the first user of each room in the whole load creates it.
    rooms: list[str]
    creators: list[bool]
    #: The MUCs to join the rooms in.
    mucs: list[Muc]
    core: int | None
    login_pause: float = 0.0
    concurrency: int = 50


async def _login_all(plan: Plan) -> list[Client]:
    clients = [Client(user, plan.password, plan.domain) for user in plan.users]
    gate = asyncio.Semaphore(plan.concurrency)

    async def one(client: Client) -> None:
        async with gate:
            await client.login(plan.host, plan.port, plan.login_pause)

    await asyncio.gather(*(one(client) for client in clients))
    for muc in plan.mucs:
        # Creators first, each alone, then everyone else at once.
        for client, room, creator in zip(clients, plan.rooms, plan.creators, strict=True):
            if creator:
                await client.join(muc.room(room), create=True, form=muc.form)
        await asyncio.gather(
            *(
                _joined(gate, client, muc.room(room))
                for client, room, creator in zip(clients, plan.rooms, plan.creators, strict=True)
                if not creator
            )
        )
    return clients


async def _joined(gate: asyncio.Semaphore, client: Client, room: str) -> None:
    async with gate:
        await client.join(room, create=False)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _run(
    clients: Sequence[Client], rooms: Sequence[str], muc: Muc, rate: float, start: int, end: int, warmup: float,
    drain: float, settle: float,
) -> dict[str, Any]:
    """Send ``rate`` messages a second from ``start - warmup`` to ``end``, then wait for the rest."""
    begin = start - int(warmup * 1e9)
    counts = Counts(window=(start, end), begin=begin)
    for client in clients:
        client._buffer = b""
        client.counts = counts
    messages = [
        f"<message to='{muc.room(room)}' type='groupchat'><body>".encode() for room in rooms
    ]
    tail = b"</body></message>"
    await asyncio.sleep(max(0.0, (begin - time.monotonic_ns()) / 1e9))
    sent = sent_in_window = 0
    turn = 0
    n = len(clients)
    tick = 0.002
    first = time.monotonic_ns()
    while True:
        now = time.monotonic_ns()
        if now >= end:
            break
        due = int(rate * (now - first) / 1e9) - sent
        for _ in range(due):
            stamp = time.monotonic_ns()
            clients[turn].send(messages[turn] + str(stamp).encode() + tail)
            if stamp >= start:
                sent_in_window += 1
            turn = turn + 1 if turn + 1 < n else 0
        sent += max(due, 0)
        await asyncio.sleep(tick)
    # Wait until nothing came for `settle` seconds (or `drain` is over): the backlog drained.
    deadline = time.monotonic_ns() + int(drain * 1e9)
    while True:
        await asyncio.sleep(settle / 4)
        now = time.monotonic_ns()
        if now - max(counts.last_receipt, end) >= settle * 1e9 or now >= deadline:
            break
    for client in clients:
        client.counts = None
    return {
        "sent": sent_in_window,
        "received": counts.received,
        "total": counts.total,
        "sent_total": sent,
        "late": counts.late,
        "octets": counts.octets,
        "stanza_ids": counts.stanza_ids,
        "latencies": counts.latencies.tobytes(),
        "drained_ns": max(0, counts.last_receipt - end),
    }


def worker(conn: Connection, plan: Plan) -> None:
    """A worker process's main: log in, report, then run what the pipe says until told to stop."""
    if plan.core is not None:
        os.sched_setaffinity(0, {plan.core})
    asyncio.run(_serve(conn, plan))


async def _serve(conn: Connection, plan: Plan) -> None:
    loop = asyncio.get_running_loop()
    try:
        clients = await _login_all(plan)
    except Exception as error:  # reported to the parent, which stops the run
        conn.send(("failed", f"{type(error).__name__}: {error}"))
        return
    conn.send(("ready", os.getpid()))
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    loop.add_reader(conn.fileno(), lambda: inbox.put_nowait(conn.recv()))
    while True:
        command, *args = await inbox.get()
        if command == "stop":
            break
        if command == "run":
            muc, rate, start, end, warmup, drain, settle = args
            result = await _run(clients, plan.rooms, muc, rate, start, end, warmup, drain, settle)
            result["cpu"] = cpu_seconds()
            conn.send(("result", result))
    loop.remove_reader(conn.fileno())
    for client in clients:
        if client.transport is not None:
            client.send(b"</stream:stream>")
            client.transport.close()
    conn.send(("stopped",))
