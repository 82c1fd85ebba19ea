"""The load driver: the server side of XEP-0114 on loopback, at a small cost per stanza.

A ``Session`` listens on 127.0.0.1, starts the component under test as a subprocess,
checks its handshake, and hands the authenticated ``Link`` to ``Load`` objects one after
the other. A ``Load`` sends pre-serialised requests (a counter in each) with a bounded
window in flight, or at a fixed rate, and counts replies by scanning bytes for the
opening of a stanza, such as ``<message `` or ``:message `` (a prefixed
``<ns1:message xmlns:ns1=...>`` is the same stanza), without parsing XML. Components answer in order, so the n-th
request is complete once the reply count reaches the n-th entry of the expected
cumulative count: latency is timed that way, on a sample of requests, with no id lookup.

The component's CPU seconds and resident memory come from ``/proc/<pid>``; the driver's
own CPU use is read beside them, so that a run can say which side was the bottleneck.
"""

from __future__ import annotations

import asyncio
import bisect
import ctypes
import ctypes.util
import os
import re
import secrets
import subprocess
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import attrs

from bench.wire import COMPONENT_NS, HOST, STREAM_NS, handshake_digest

ERROR_MARKERS = (b"type='error'", b'type="error"')
STREAM_HEADER = re.compile(rb"<stream:stream\b[^>]*>")
STREAM_TO = re.compile(rb"\bto=['\"]([^'\"]*)['\"]")
HANDSHAKE = re.compile(rb"<handshake\b[^>]*>\s*([0-9a-fA-F]+)\s*</handshake>")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def opening(name: str) -> tuple[bytes, bytes]:
    """Return the markers of a stanza's start tag, unprefixed or prefixed: ``<name `` and ``:name ``."""
    return (f"<{name} ".encode(), f":{name} ".encode())


class BenchError(Exception):
    """A component did not behave as a scenario needs: no connection, no reply, a crash."""


@attrs.frozen
class Workload:
    """A sequence of requests and the replies they must produce.

    ``make(start, count)`` returns the bytes of requests ``start`` to ``start + count - 1``.
    Replies are counted by ``markers`` (see ``opening``); each request expects ``per_request`` of them, or,
    for uneven workloads, ``cumulative[i]`` is the reply count once request ``i`` is done.
    """

    make: Callable[[int, int], bytes]
    markers: tuple[bytes, ...]
    per_request: int = 1
    cumulative: Sequence[int] | None = None
    total: int | None = None

    def completed(self, replies: int) -> int:
        """Return how many requests are complete once ``replies`` replies have arrived."""
        if self.cumulative is None:
            return replies // self.per_request
        return bisect.bisect_right(self.cumulative, replies)

    def replies_for(self, requests: int) -> int:
        """Return the replies that the first ``requests`` requests produce."""
        if self.cumulative is None:
            return requests * self.per_request
        return self.cumulative[requests - 1] if requests else 0


@attrs.frozen
class Snapshot:
    """Counters of a load at one instant, with both processes' CPU seconds."""

    time: float
    sent: int
    done: int
    replies: int
    errors: int
    driver_cpu: float
    component_cpu: float
    machine_cpu: float


def machine_cpu_seconds() -> float:
    """Return the CPU seconds all processes on the machine have used (busy time of every core)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(field) for field in fields)
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def _cpu_clock(pid: int) -> int | None:
    """Return the CPU-time clock of another process, to the nanosecond, or None.

    ``/proc/<pid>/stat`` counts in ticks of 10 ms: too coarse for a join that takes
    0.2 s of CPU. ``clock_getcpuclockid`` reads the kernel's exact figure.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        clock = ctypes.c_int()
        if libc.clock_getcpuclockid(pid, ctypes.byref(clock)) != 0:
            return None
        time.clock_gettime(clock.value)
    except (OSError, AttributeError):
        return None
    return clock.value


class ComponentProcess:
    """The component under test, started as a subprocess and read through ``/proc``."""

    def __init__(self, argv: Sequence[str], cwd: Path, env: dict[str, str], log: IO[bytes]) -> None:
        self.argv = list(argv)
        self.popen = subprocess.Popen(
            self.argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        self.pid = self.popen.pid
        self._clock = _cpu_clock(self.pid)

    def alive(self) -> bool:
        """Return whether the process is still running."""
        return self.popen.poll() is None

    def cpu_seconds(self) -> float:
        """Return the CPU seconds (user and system, all threads) the process has used so far."""
        if self._clock is not None:
            try:
                return time.clock_gettime(self._clock)
            except OSError:
                self._clock = None
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return 0.0
        fields = stat.rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def memory_kb(self, field: str = "VmRSS") -> int:
        """Return a memory figure from ``/proc/<pid>/status`` in KiB (``VmRSS``, ``VmHWM``)."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return 0
        for line in status.splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return 0

    def stop(self, grace: float = 3.0) -> int | None:
        """Wait for the process to exit, then terminate it, then kill it; return its code."""
        for signal_it in (None, self.popen.terminate, self.popen.kill):
            if signal_it is not None and self.popen.poll() is None:
                signal_it()
            try:
                return self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                continue
        return self.popen.poll()


class Link(asyncio.Protocol):
    """The server end of one component connection: stream header, handshake, then a sink."""

    def __init__(self, domain: str, secret: str) -> None:
        loop = asyncio.get_running_loop()
        self.domain = domain
        self.secret = secret
        self.stream_id = secrets.token_hex(8)
        self.authenticated: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.sink: Callable[[bytes], None] | None = None
        self.stray = 0
        self._buffer = b""
        self._header_seen = False
        self._loop = loop
        # A read-rate limit (bytes per second) and what was read since it was set.
        self._rate: float | None = None
        self._rate_since = 0.0
        self._rate_read = 0
        self._held: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.sink is not None:
            self.sink(data)
        elif self.authenticated.done():
            self.stray += len(data)
        else:
            self._handshake(data)
        if self._rate is not None:
            self._rate_read += len(data)
            ahead = self._rate_read / self._rate - (time.monotonic() - self._rate_since)
            if ahead > 0:
                self._hold(ahead)

    # Reading slowly, like a busy server: the component's writes back up behind it.

    def limit_reading(self, rate: float | None) -> None:
        """Read at most ``rate`` bytes a second from now on; None reads as fast as the data comes."""
        self._rate = rate
        self._rate_since = time.monotonic()
        self._rate_read = 0

    def stop_reading(self, seconds: float) -> None:
        """Read nothing for ``seconds`` (a server that stops reading), then read again."""
        self._hold(seconds)

    def _hold(self, seconds: float) -> None:
        assert self.transport is not None
        if self._held is not None:
            if self._held.when() >= self._loop.time() + seconds:
                return
            self._held.cancel()
        self.transport.pause_reading()
        self._held = self._loop.call_later(seconds, self._release)

    def _release(self) -> None:
        self._held = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if not self.authenticated.done():
            self.authenticated.set_exception(BenchError("connection closed before the handshake"))

    def write(self, data: bytes) -> None:
        """Send bytes to the component."""
        assert self.transport is not None
        self.transport.write(data)

    def _handshake(self, data: bytes) -> None:
        self._buffer += data
        if not self._header_seen:
            header = STREAM_HEADER.search(self._buffer)
            if header is None:
                return
            self._header_seen = True
            to = STREAM_TO.search(header.group(0))
            if to is None or to.group(1).decode() != self.domain:
                self._fail(b"host-unknown", f"stream header for another domain: {header.group(0)!r}")
                return
            self.write(
                f"<?xml version='1.0'?><stream:stream xmlns='{COMPONENT_NS}' xmlns:stream='{STREAM_NS}'"
                f" from='{self.domain}' id='{self.stream_id}'>".encode()
            )
        handshake = HANDSHAKE.search(self._buffer)
        if handshake is None:
            return
        if handshake.group(1).decode().lower() != handshake_digest(self.stream_id, self.secret):
            self._fail(b"not-authorized", "wrong handshake digest")
            return
        self._buffer = b""
        self.write(b"<handshake/>")
        self.authenticated.set_result(None)

    def _fail(self, condition: bytes, reason: str) -> None:
        self.write(
            b"<stream:error><%s xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>"
            % condition
        )
        assert self.transport is not None
        self.transport.close()
        if not self.authenticated.done():
            self.authenticated.set_exception(BenchError(reason))


class Load:
    """Drive one workload over a link: a bounded window in flight, or a fixed rate.

    Per chunk received, the cost is a few ``bytes.count`` calls; per request sent, one
    ``%`` format inside ``workload.make``. Latency is sampled on every ``sample_every``-th
    request while ``recording`` is set.
    """

    def __init__(self, link: Link, process: ComponentProcess, workload: Workload, window: int,
                 sample_every: int = 8) -> None:
        self.link = link
        self.process = process
        self.workload = workload
        self.window = window
        self.sample_every = sample_every
        self.sent = 0
        self.done = 0
        self.replies = 0
        self.errors = 0
        self.recording = False
        self.sending = True
        self.latencies: list[float] = []
        self._pending: deque[tuple[int, float]] = deque()
        self._tail = b""
        self._edge = max(len(m) for m in (*workload.markers, *ERROR_MARKERS)) - 1
        self._rate: float | None = None
        self._paced_from = 0.0
        self._ticker: asyncio.TimerHandle | None = None
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._finished: asyncio.Future[None] = loop.create_future()
        self._drained: asyncio.Future[None] | None = None

    # Control.

    def start(self, rate: float | None = None, max_in_flight: int = 100_000) -> None:
        """Start sending: keep ``window`` requests in flight, or send ``rate`` per second."""
        self.link.sink = self.feed
        if rate is None:
            self._fill()
            return
        self._rate = rate
        self.window = max_in_flight
        self._paced_from = time.perf_counter()
        self._tick()

    def snapshot(self) -> Snapshot:
        """Return the counters now."""
        return Snapshot(time.perf_counter(), self.sent, self.done, self.replies, self.errors,
                        time.process_time(), self.process.cpu_seconds(), machine_cpu_seconds())

    async def finished(self, timeout: float) -> None:
        """Wait until a finite workload is complete."""
        if self.workload.total is not None and self.done >= self.workload.total:
            return
        await self._wait(self._finished, timeout, "the workload to complete")

    async def stop(self, timeout: float) -> None:
        """Stop sending, wait for the replies still due, and detach from the link."""
        self.sending = False
        if self._ticker is not None:
            self._ticker.cancel()
        if self.done < self.sent:
            self._drained = self._loop.create_future()
            await self._wait(self._drained, timeout, "replies in flight")
        self.link.sink = None

    async def _wait(self, future: asyncio.Future[None], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not future.done():
            if not self.process.alive():
                raise BenchError(f"the component exited while the driver waited for {what}")
            if self.link.closed.done():
                raise BenchError(f"the connection closed while the driver waited for {what}")
            if time.monotonic() > deadline:
                raise BenchError(
                    f"timed out after {timeout:g} s waiting for {what}: {self.done} of {self.sent} requests"
                    f" complete, {self.replies} replies counted"
                )
            await asyncio.wait([future], timeout=0.05)

    # Sending.

    def _fill(self) -> None:
        count = self.done + self.window - self.sent
        total = self.workload.total
        if total is not None:
            count = min(count, total - self.sent)
        if count > 0:
            self._send(count)

    def _tick(self) -> None:
        if not self.sending:
            return
        assert self._rate is not None
        now = time.perf_counter()
        due = int((now - self._paced_from) * self._rate) - self.sent
        count = min(due, self.done + self.window - self.sent)
        if count > 0:
            self._send(count)
        self._ticker = self._loop.call_at(self._loop.time() + 0.0005, self._tick)

    def _send(self, count: int) -> None:
        start = self.sent
        data = self.workload.make(start, count)
        now = time.perf_counter()
        self.link.write(data)
        every = self.sample_every
        pending = self._pending
        for seq in range(-(-start // every) * every, start + count, every):
            pending.append((seq, now))
        self.sent = start + count

    # Receiving.

    def feed(self, data: bytes) -> None:
        """Count the replies in a chunk; complete, time and refill requests."""
        tail = self._tail
        found = 0
        for marker in self.workload.markers:
            edge = len(marker) - 1
            found += data.count(marker) + (tail[len(tail) - edge:] + data[:edge]).count(marker)
        for error in ERROR_MARKERS:
            edge = len(error) - 1
            self.errors += data.count(error) + (tail[len(tail) - edge:] + data[:edge]).count(error)
        self._tail = (tail + data[-self._edge:])[-self._edge:] if len(data) < self._edge else data[-self._edge:]
        if not found:
            return
        self.replies += found
        done = self.workload.completed(self.replies)
        if done == self.done:
            return
        self.done = done
        pending = self._pending
        if pending and pending[0][0] < done:
            now = time.perf_counter()
            latencies = self.latencies if self.recording else None
            while pending and pending[0][0] < done:
                _seq, sent_at = pending.popleft()
                if latencies is not None:
                    latencies.append(now - sent_at)
        if self.sending and self._rate is None:
            self._fill()
        total = self.workload.total
        if total is not None and done >= total and not self._finished.done():
            self._finished.set_result(None)
        if self._drained is not None and done >= self.sent and not self._drained.done():
            self._drained.set_result(None)


class Session:
    """One component under test: a listening socket, the subprocess, its authenticated link."""

    def __init__(self, argv_for_port: Callable[[int], Sequence[str]], *, domain: str, secret: str,
                 cwd: Path, env: dict[str, str], log_path: Path, connect_timeout: float = 30.0) -> None:
        self.argv_for_port = argv_for_port
        self.domain = domain
        self.secret = secret
        self.cwd = cwd
        self.env = env
        self.log_path = log_path
        self.connect_timeout = connect_timeout
        self._log: IO[bytes] | None = None
        self._server: asyncio.Server | None = None
        self._link: Link | None = None
        self._process: ComponentProcess | None = None
        self._barriers = 0
        #: Called each time a scenario starts a measured interval (a profiler can attach then).
        self.on_measure: list[Callable[[], None]] = []

    @property
    def link(self) -> Link:
        """The authenticated link."""
        assert self._link is not None
        return self._link

    @property
    def process(self) -> ComponentProcess:
        """The component's process."""
        assert self._process is not None
        return self._process

    async def __aenter__(self) -> Session:
        loop = asyncio.get_running_loop()
        link = self._link = Link(self.domain, self.secret)

        def accept() -> asyncio.Protocol:
            if link.transport is not None:
                raise BenchError("a second connection from the component")
            return link

        self._server = await loop.create_server(accept, HOST, 0)
        port = self._server.sockets[0].getsockname()[1]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        try:
            self._process = ComponentProcess(self.argv_for_port(port), self.cwd, self.env, self._log)
            deadline = time.monotonic() + self.connect_timeout
            while not link.authenticated.done():
                if not self._process.alive():
                    raise BenchError(f"the component exited with code {self._process.popen.returncode}")
                if time.monotonic() > deadline:
                    raise BenchError(f"no handshake within {self.connect_timeout:g} s")
                await asyncio.wait([link.authenticated], timeout=0.05)
            link.authenticated.result()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        self._server.close()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.close()
        link = self._link
        if link is not None and link.transport is not None and not link.transport.is_closing():
            link.transport.write(b"</stream:stream>")
            link.transport.close()
        if self._process is not None:
            await asyncio.to_thread(self._process.stop)
        if self._log is not None:
            self._log.close()

    def measuring(self) -> None:
        """Tell the ``on_measure`` callbacks that a measured interval starts."""
        for callback in self.on_measure:
            callback()

    def load(self, workload: Workload, window: int, sample_every: int = 8) -> Load:
        """Return a load over this session's link."""
        return Load(self.link, self.process, workload, window, sample_every)

    async def send_all(self, workload: Workload, window: int, timeout: float,
                       sample_every: int = 1) -> tuple[Load, Snapshot, Snapshot]:
        """Run a finite workload to completion; return it with snapshots before and after."""
        load = self.load(workload, window, sample_every)
        load.recording = True
        before = load.snapshot()
        load.start()
        await load.finished(timeout)
        after = load.snapshot()
        await load.stop(timeout)
        return load, before, after

    async def barrier(self, timeout: float = 60.0) -> None:
        """Wait until the component has answered everything sent before: one disco#info round trip."""
        self._barriers += 1
        request = (
            f"<iq type='get' from='barrier@localhost/bench' to='{self.domain}' id='barrier-{self._barriers}'>"
            "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        ).encode()
        await self.send_all(Workload(lambda _start, _count: request, opening("iq"), total=1), 1, timeout)

    def log_tail(self, lines: int = 15) -> str:
        """Return the end of the component's output."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
