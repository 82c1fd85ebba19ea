"""The bench's scenarios: the requests each one sends, and how each is measured.

Every function here takes an open ``Session`` and returns plain data (dicts of numbers),
ready for the report and the JSON file. The driver plays the clients' side too: users
are ``u<N>@localhost/r``, nicknames ``n<N>``, the room owner is ``owner@localhost/r``.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable, Sequence

import attrs

from bench.driver import BenchError, Session, Snapshot, Workload, opening
from bench.wire import DISCO_INFO_NS, MUC_NS, MUC_OWNER_NS

OWNER = "owner@localhost/r"
DRIVER_BOUND = 0.85
COMPONENT_BOUND = 0.85
BUSY_MACHINE = 0.5


@attrs.frozen
class Settings:
    """How long and how hard to drive each scenario."""

    seconds: float = 5.0
    warmup: float = 1.0
    runs: int = 3
    window: int = 100
    fanout_window: int = 2000
    senders: int = 1000
    fanout_sizes: tuple[int, ...] = (20, 1000)
    join_size: int = 1000
    join_window: int = 10
    rooms: int = 10_000
    room_occupants: int = 100
    occupant_sample: int = 2000
    timeout: float = 60.0
    paced: bool = True


# Workloads.


def _repeat(template: bytes, args: Callable[[int], tuple[object, ...]]) -> Callable[[int, int], bytes]:
    def make(start: int, count: int) -> bytes:
        return b"".join([template % args(i) for i in range(start, start + count)])

    return make


def _once(request: str) -> Callable[[int, int], bytes]:
    data = request.encode()
    return lambda _start, _count: data


def echo_workload(domain: str, senders: int) -> Workload:
    """Chat messages to ``echo@domain`` from ``senders`` users in turn; one reply each."""
    template = (
        f"<message from='u%d@localhost/r' to='echo@{domain}' type='chat' id='e%d'>"
        "<body>Hello, echo. This is message %d.</body></message>"
    ).encode()
    return Workload(_repeat(template, lambda i: (i % senders, i, i)), opening("message"))


def iq_workload(domain: str, senders: int) -> Workload:
    """disco#info requests to the domain; one result each."""
    template = (
        f"<iq from='u%d@localhost/r' to='{domain}' type='get' id='i%d'>"
        f"<query xmlns='{DISCO_INFO_NS}'/></iq>"
    ).encode()
    return Workload(_repeat(template, lambda i: (i % senders, i)), opening("iq"))


def groupchat_workload(room: str, sender: str, occupants: int) -> Workload:
    """Groupchat messages from ``sender`` to ``room``; one reflection per occupant each."""
    template = (
        f"<message from='{sender}' to='{room}' type='groupchat' id='g%d'>"
        "<body>Hello, room. This is message %d.</body></message>"
    ).encode()
    return Workload(_repeat(template, lambda i: (i, i)), opening("message"), per_request=occupants)


def join_workload(joins: Sequence[tuple[str, str]], present: dict[str, int]) -> Workload:
    """Join presences, ``(user, room/nick)`` each, counting the presences each must cause.

    A join into a room of p occupants sends the newcomer p presences and its own, and
    each of the p occupants the newcomer's: 2p + 1. ``present`` counts the occupants
    already in each room; it is updated as if the joins had happened.
    """
    requests = [
        f"<presence from='{user}' to='{occupant}'><x xmlns='{MUC_NS}'/></presence>".encode()
        for user, occupant in joins
    ]
    cumulative = []
    total = 0
    for _user, occupant in joins:
        room = occupant.partition("/")[0]
        p = present.get(room, 0)
        total += 2 * p + 1
        present[room] = p + 1
        cumulative.append(total)

    def make(start: int, count: int) -> bytes:
        return b"".join(requests[start:start + count])

    return Workload(make, opening("presence"), cumulative=cumulative, total=len(requests))


def disco_rooms_workload(rooms: Sequence[str]) -> Workload:
    """One disco#info request to each room, which makes the component load it."""
    requests = [
        f"<iq from='u0@localhost/r' to='{room}' type='get' id='r{i}'><query xmlns='{DISCO_INFO_NS}'/></iq>".encode()
        for i, room in enumerate(rooms)
    ]
    return Workload(lambda start, count: b"".join(requests[start:start + count]), opening("iq"), total=len(requests))


# Measurement.


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Return the nearest-rank percentile of values, or None if there are none."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def bottleneck(driver_share: float, component_share: float, other_share: float) -> str:
    """Name what limited the rate, from each side's share of a core over the interval.

    ``component`` or ``driver`` when that process kept a core busy; ``busy machine`` when
    neither did but other processes took a core's worth or more (the figures are then
    suspect); ``window`` otherwise: the round trip, not the CPU, bounded the rate.
    """
    if component_share >= COMPONENT_BOUND and component_share >= driver_share:
        return "component"
    if driver_share >= DRIVER_BOUND:
        return "driver"
    if other_share >= BUSY_MACHINE:
        return "busy machine"
    return "window"


def measure(before: Snapshot, after: Snapshot, latencies: Sequence[float], per_request: int,
            unit: str) -> dict[str, object]:
    """Summarise a measured interval; ``unit`` is what the rate counts: requests or replies."""
    wall = after.time - before.time
    requests = after.done - before.done
    replies = after.replies - before.replies
    stanzas = requests if unit == "requests" else replies
    component_cpu = after.component_cpu - before.component_cpu
    driver_share = (after.driver_cpu - before.driver_cpu) / wall
    component_share = component_cpu / wall
    # What the rest of the machine used meanwhile: other work competing for the cores.
    other_share = max(0.0, (after.machine_cpu - before.machine_cpu) / wall - driver_share - component_share)
    return {
        "seconds": wall,
        "requests": requests,
        "replies": replies,
        "errors": after.errors - before.errors,
        "rate": stanzas / wall,
        "requests_per_s": requests / wall,
        "replies_per_s": replies / wall,
        "p50_ms": _ms(percentile(latencies, 0.50)),
        "p99_ms": _ms(percentile(latencies, 0.99)),
        "latency_samples": len(latencies),
        "component_cpu_s": component_cpu,
        "cpu_s_per_10k": component_cpu / stanzas * 10_000 if stanzas else None,
        "driver_cpu_share": driver_share,
        # The driver's own cost per stanza it wrote or counted: it must stay well below the component's.
        "driver_us_per_stanza": (after.driver_cpu - before.driver_cpu) / (requests + replies) * 1e6
        if requests + replies else None,
        "component_cpu_share": component_share,
        "other_cpu_share": other_share,
        "bottleneck": bottleneck(driver_share, component_share, other_share),
    }


def median_run(runs: Sequence[dict[str, object]]) -> dict[str, object]:
    """Return the medians of numeric fields across runs; other fields from the median-rate run."""
    by_rate = sorted(runs, key=lambda run: float(run["rate"]))  # type: ignore[arg-type]
    summary = dict(by_rate[len(by_rate) // 2])
    for key, value in summary.items():
        if isinstance(value, float):
            values = [float(run[key]) for run in runs if run.get(key) is not None]  # type: ignore[arg-type]
            summary[key] = statistics.median(values) if values else None
    return summary


async def timed_runs(session: Session, workload: Workload, window: int, settings: Settings,
                     unit: str = "requests", paced_runs: int | None = None) -> dict[str, object]:
    """Measure ``settings.runs`` closed-loop runs, then paced runs at half the median rate."""
    if paced_runs is None:
        paced_runs = settings.runs
    runs = []
    for _ in range(settings.runs):
        load = session.load(workload, window)
        load.start()
        await asyncio.sleep(settings.warmup)
        session.measuring()
        before = load.snapshot()
        load.recording = True
        await asyncio.sleep(settings.seconds)
        after = load.snapshot()
        load.recording = False
        await load.stop(settings.timeout)
        runs.append(measure(before, after, load.latencies, workload.per_request, unit))
        if after.done == before.done:
            raise BenchError("no request completed during the measurement")
    result: dict[str, object] = {"runs": runs, **median_run(runs)}
    if settings.paced and paced_runs > 0:
        rate = float(result["requests_per_s"]) / 2  # type: ignore[arg-type]
        paced = []
        for _ in range(paced_runs):
            load = session.load(workload, window, sample_every=1)
            # The cap only matters if the component stalls: then queueing shows as latency, and
            # the backlog it can build stays bounded.
            load.start(rate=rate, max_in_flight=10 * window)
            await asyncio.sleep(min(settings.warmup, 0.5))
            before = load.snapshot()
            load.recording = True
            await asyncio.sleep(settings.seconds)
            after = load.snapshot()
            load.recording = False
            await load.stop(settings.timeout)
            paced.append(measure(before, after, load.latencies, workload.per_request, unit))
        # The median run by p99: one run disturbed by other work on the machine does not decide.
        paced.sort(key=lambda run: float(run["p99_ms"] or 0.0))  # type: ignore[arg-type]
        result["half_rate"] = {**paced[len(paced) // 2], "target_requests_per_s": rate, "runs": paced}
    return result


async def smoke(session: Session, workload: Workload, timeout: float = 10.0) -> None:
    """Check that a few requests of the workload are answered, and without errors."""
    probe = attrs.evolve(workload, total=5)
    load, _before, _after = await session.send_all(probe, 5, timeout)
    if load.errors:
        raise BenchError(f"{load.errors} error replies to the first requests")


async def _setup(session: Session, workload: Workload, window: int, timeout: float, what: str) -> None:
    load, _before, _after = await session.send_all(workload, window, timeout)
    if load.errors:
        raise BenchError(f"{load.errors} error replies while {what}")


async def create_room(session: Session, room: str, settings: Settings, fields: str = "") -> None:
    """Create a room as its owner and submit the configuration form with ``fields`` (none: an instant room)."""
    await _setup(session, join_workload([(OWNER, f"{room}/owner")], {}), 1, settings.timeout,
                 f"creating {room}")
    form = (
        f"<iq from='{OWNER}' to='{room}' type='set' id='create-{room}'><query xmlns='{MUC_OWNER_NS}'>"
        f"<x xmlns='jabber:x:data' type='submit'>{fields}</x></query></iq>"
    )
    await _setup(session, Workload(_once(form), opening("iq"), total=1), 1, settings.timeout, f"configuring {room}")


# Scenarios.


async def echo(session: Session, settings: Settings) -> dict[str, object]:
    """Chat messages to the echo bot, one reply each."""
    workload = echo_workload(session.domain, settings.senders)
    await smoke(session, workload)
    return await timed_runs(session, workload, settings.window, settings)


async def iq(session: Session, settings: Settings) -> dict[str, object]:
    """disco#info requests to the domain, one result each."""
    workload = iq_workload(session.domain, settings.senders)
    await smoke(session, workload)
    return await timed_runs(session, workload, settings.window, settings)


async def fanout(session: Session, settings: Settings, occupants: int) -> dict[str, object]:
    """Groupchat messages to a room of ``occupants``, measured in reflections per second."""
    room = f"fanout@{session.domain}"
    await create_room(session, room, settings)
    joins = [(f"u{i}@localhost/r", f"{room}/n{i}") for i in range(1, occupants)]
    await _setup(session, join_workload(joins, {room: 1}), settings.join_window, settings.timeout * 5,
                 f"filling {room}")
    await session.barrier()
    workload = groupchat_workload(room, OWNER, occupants)
    window = max(2, settings.fanout_window // occupants)
    result = await timed_runs(session, workload, window, settings, unit="replies", paced_runs=1)
    result["occupants"] = occupants
    return result


async def join(session: Session, settings: Settings) -> dict[str, object]:
    """``join_size`` occupants join one room; measured as the cost of the presences sent."""
    runs = []
    for run in range(settings.runs):
        room = f"join{run}@{session.domain}"
        await create_room(session, room, settings)
        await session.barrier()
        joins = [(f"u{i}@localhost/r", f"{room}/n{i}") for i in range(1, settings.join_size + 1)]
        workload = join_workload(joins, {room: 1})
        session.measuring()
        load, before, after = await session.send_all(workload, settings.join_window, settings.timeout * 5)
        await session.barrier()
        result = measure(before, after, load.latencies, 1, "replies")
        result["joins"] = settings.join_size
        result["expected_presences"] = workload.replies_for(settings.join_size)
        runs.append(result)
        if load.errors:
            raise BenchError(f"{load.errors} error replies to joins")
    return {"runs": runs, **median_run(runs)}


async def rooms(session: Session, settings: Settings) -> dict[str, object]:
    """Load ``rooms`` stored rooms, then spread ``room_occupants`` occupants among them.

    A hundred occupants grow the resident set by less than the allocator keeps in reserve
    after loading the rooms, so their figure can read near zero; more occupants follow,
    up to ``occupant_sample``, and the figure over all of them is the one to trust.
    """
    names = [f"room{i}@{session.domain}" for i in range(settings.rooms)]
    await session.barrier()
    rss_start = session.process.memory_kb()
    load, before, after = await session.send_all(disco_rooms_workload(names), settings.window,
                                                 settings.timeout * 5)
    if load.errors:
        raise BenchError(f"{load.errors} error replies to disco#info on stored rooms")
    await session.barrier()
    rss_loaded = session.process.memory_kb()
    present: dict[str, int] = {}
    rss_joined: list[int] = []
    for first, count in ((0, settings.room_occupants),
                         (settings.room_occupants, settings.occupant_sample - settings.room_occupants)):
        if count <= 0:
            rss_joined.append(rss_joined[-1])
            continue
        step = max(1, settings.rooms // count)
        joins = [
            (f"u{first + i}@localhost/r", f"{names[(i * step + first) % len(names)]}/n{first + i}")
            for i in range(count)
        ]
        await _setup(session, join_workload(joins, present), settings.join_window, settings.timeout,
                     "joining rooms")
        await session.barrier()
        rss_joined.append(session.process.memory_kb())
    sample = max(settings.room_occupants, settings.occupant_sample)
    return {
        "rooms": settings.rooms,
        "load_seconds": after.time - before.time,
        "load_cpu_s": after.component_cpu - before.component_cpu,
        "rss_start_kb": rss_start,
        "rss_loaded_kb": rss_loaded,
        "rss_joined_kb": rss_joined[0],
        "rss_sample_kb": rss_joined[1],
        "kb_per_room": (rss_loaded - rss_start) / settings.rooms,
        "occupants": settings.room_occupants,
        "kb_per_occupant": (rss_joined[0] - rss_loaded) / settings.room_occupants,
        "occupant_sample": sample,
        "kb_per_occupant_sample": (rss_joined[1] - rss_loaded) / sample,
    }
