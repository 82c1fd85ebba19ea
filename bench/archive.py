"""The MUC archive (XEP-0313): what archiving adds to a groupchat, query latency on a big archive, bytes on disk.

    python -m bench.archive            # about 3 minutes: SQLite and a sandboxed PostgreSQL, 1,000,000 messages
    python -m bench.archive --quick    # about 30 seconds: 100,000 messages, shorter runs
    python -m bench.archive --parts queries --no-postgres
    python -m bench.archive --no-postgres

Three parts, every figure also a ratio against a baseline of the same run:

1. Groupchat into a persistent room of 20 on SQLite with archiving on and off
   (``muc#roomconfig_enablearchiving``), and into a temporary room for reference,
   in one Netherfield process driven as ``bench.durable`` drives it: reflections
   per second and the component's CPU per 10,000 reflections, archiving on as a
   share of off (target: the cost per message at most 1.3x).
2. A room with N archived messages (1,000,000; filled with bulk inserts, not through
   the service), queried through the storage the service uses (its thread pool)
   and :class:`~services.muc.archive_store.ArchiveStore`, each query's 50 results
   also written as the stanzas that carry them: the last page (RSM ``<before/>``),
   the page after an id 500,000 messages back, and the first page; p50 and p99
   (target: p99 under 20 ms, the deep page as fast as the last one).
3. Bytes on disk per archived message of 100 characters: the SQLite file's used
   pages, PostgreSQL's ``pg_total_relation_size`` of ``muc_history`` (indexes
   included), divided by the rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lxml import etree

from bench.driver import BenchError, Session
from bench.durable import spread_workload
from bench.scenarios import Settings, _setup, create_room, join_workload, timed_runs
from bench.targets import ROOT, Launch, all_targets, netherfield_config, netherfield_services
from bench.wire import DEFAULT_DOMAIN, DEFAULT_SECRET

RESULTS = Path(__file__).resolve().parent / "results"
PERSISTENT = "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"
ARCHIVING = "<field var='muc#roomconfig_enablearchiving'><value>{}</value></field>"
KINDS = {
    "temporary": "",
    "archiving-off": PERSISTENT + ARCHIVING.format(0),
    "archiving-on": PERSISTENT + ARCHIVING.format(1),
}
ROOM = "bench"
#: 100 characters (As You Like It, II.7).
BODY = ("All the world's a stage, and all the men and women merely players; they have their exits and their"
        " entrances")[:100]


# -- 1. the groupchat path ------------------------------------------------------------


async def groupchat(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Each kind of room in turn in one Netherfield process on a SQLite file."""
    target = next(t for t in all_targets() if t.name == "netherfield")
    if target.unavailable:
        raise BenchError(target.unavailable)

    def argv(port: int) -> list[str]:
        config = workdir / "netherfield.toml"
        storage = f'url = "sqlite:///{workdir / "groupchat.db"}"\n'
        config.write_text(netherfield_config(Launch(port, workdir), netherfield_services(), storage=storage))
        return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                "-n", "--pidfile=", "--logfile=-", "netherfield", "--config", str(config)]

    settings = Settings(seconds=args.seconds, warmup=args.warmup, runs=args.runs, timeout=args.timeout, paced=False)
    session = Session(argv, domain=DEFAULT_DOMAIN, secret=DEFAULT_SECRET, cwd=ROOT, env=target.env(),
                      log_path=workdir / "component.log")
    figures: dict[str, Any] = {}
    async with session:
        for kind, fields in KINDS.items():
            room = f"{kind}@{session.domain}"
            await create_room(session, room, settings, fields)
            joins = [(f"u{i}@localhost/r", f"{room}/n{i}") for i in range(1, args.occupants)]
            await _setup(session, join_workload(joins, {room: 1}), 10, settings.timeout, f"filling {room}")
            await session.barrier()
            window = max(2, args.window // args.occupants)
            result = await timed_runs(session, spread_workload([room], args.occupants), window, settings,
                                      unit="replies", paced_runs=0)
            if result["errors"]:
                raise BenchError(f"{result['errors']} error replies to groupchats in the {kind} room")
            figures[kind] = {key: result[key] for key in ("rate", "cpu_s_per_10k", "p50_ms", "bottleneck", "other_cpu_share")}
    on, off = figures["archiving-on"], figures["archiving-off"]
    figures["cpu_on_x_off"] = float(on["cpu_s_per_10k"]) / float(off["cpu_s_per_10k"])
    figures["rate_on_x_off"] = float(on["rate"]) / float(off["rate"])
    return figures


# -- 2 and 3. a big archive --------------------------------------------------------------


def _template() -> str:
    """A message as the room archives it, made by the room's own code: the reflection without ``to``."""
    from component.stanza import Broadcast
    from services.muc.history import HistoryEntry

    element = etree.fromstring(
        f"<message xmlns='jabber:component:accept' from='{ROOM}@muc.bench.localhost/player%(nick)d'"
        f" type='groupchat' id='%(id)s'><body>{BODY}</body></message>"
    )
    mark = b'<stanza-id xmlns="urn:xmpp:sid:0" by="' + f"{ROOM}@muc.bench.localhost".encode() + b'" id="%(sid)s"/>'
    return HistoryEntry(Broadcast(element, mark), 0.0, f"{ROOM}@muc.bench.localhost").text()


def _rows(count: int, start: float) -> Iterator[tuple[Any, ...]]:
    template = _template()
    prefix = "5f3a9c1e07b2-"
    for n in range(count):
        nick = n % 20
        sid = f"{prefix}{n + 1:x}"
        stanza = template % {"nick": nick, "id": f"m{n}", "sid": sid}
        yield (ROOM, sid, f"player{nick}", f"player{nick}@localhost", stanza, start + n * 0.01, 0, None, 0)


_COLUMNS = "room, stanza_id, nick, sender_jid, stanza, timestamp, kind, occupant_id, jid_public"


def fill_sqlite(path: str, count: int) -> None:
    """Bulk-insert *count* messages into the room, in one transaction."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("BEGIN")
        connection.execute(f"INSERT INTO muc_rooms (node, config, created_at) VALUES ('{ROOM}', '{{}}', 0)")
        connection.executemany(f"INSERT INTO muc_history ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               _rows(count, 1.7e9))
        connection.execute("UPDATE muc_rooms SET archived = ? WHERE node = ?", (count, ROOM))
        connection.execute("COMMIT")
        connection.execute("ANALYZE")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def sqlite_bytes(path: str, count: int) -> float:
    """Used bytes of the file per archived message."""
    connection = sqlite3.connect(path)
    try:
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        free = connection.execute("PRAGMA freelist_count").fetchone()[0]
        size = connection.execute("PRAGMA page_size").fetchone()[0]
    finally:
        connection.close()
    return (pages - free) * size / count


def fill_postgres(url: str, password: str, count: int) -> None:
    """COPY *count* messages into the room."""
    import psycopg

    with psycopg.connect(url, password=password, autocommit=False) as conn:
        with conn.cursor() as cursor:
            cursor.execute(f"INSERT INTO muc_rooms (node, config, created_at) VALUES ('{ROOM}', '{{}}', 0)")
            with cursor.copy(f"COPY muc_history ({_COLUMNS}) FROM STDIN") as copy:
                for row in _rows(count, 1.7e9):
                    copy.write_row(row)
            cursor.execute("UPDATE muc_rooms SET archived = %s WHERE node = %s", (count, ROOM))
        conn.commit()
    with psycopg.connect(url, password=password, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE muc_history")


def postgres_bytes(url: str, password: str, count: int) -> float:
    """Bytes of ``muc_history`` with its indexes and TOAST per archived message."""
    import psycopg

    with psycopg.connect(url, password=password) as conn:
        row = conn.execute("SELECT pg_total_relation_size('muc_history')").fetchone()
    assert row is not None
    return int(row[0]) / count


def _ms(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


async def _queries(url: str, password: str | None, count: int, iterations: int) -> dict[str, Any]:
    """Time each kind of page through the service's storage; each page's results serialised too."""
    from component.storage import open_storage
    from services.muc.archive_store import ArchiveStore, Selection
    from services.muc.mam import ArchiveQuery, result
    from services.muc.store import MUC_MIGRATIONS

    storage = await open_storage(url, migrations=[MUC_MIGRATIONS], password=password)
    archive = ArchiveStore(storage)
    query = ArchiveQuery("urn:xmpp:mam:2", "q", Selection(), None, "", 50, False)
    back = 500_000 if count > 500_000 else count // 2
    deep = f"5f3a9c1e07b2-{count - back:x}"
    pages: dict[str, dict[str, Any]] = {"last": {"before": ""}, "deep": {"after": deep}, "first": {}}
    figures: dict[str, Any] = {"load_before": os.getloadavg()[0]}
    try:
        for name, paging in pages.items():
            times: list[float] = []
            for _ in range(iterations):
                started = time.perf_counter()
                page = await archive.page(ROOM, Selection(), limit=50, **paging)
                data = b"".join([result(row, query, room=b"bench@muc.bench.localhost", to=b"u1@localhost/r")
                                 for row in page.rows])
                times.append(time.perf_counter() - started)
                if len(page.rows) != 50 or page.count != count or not data:
                    raise BenchError(f"the {name} page has {len(page.rows)} rows of {page.count}")
            figures[name] = {"p50_ms": _ms(times, 0.5), "p99_ms": _ms(times, 0.99), "mean_ms": statistics.mean(times) * 1000}
    finally:
        await storage.close()
    figures["load_after"] = os.getloadavg()[0]
    figures["deep_x_last"] = figures["deep"]["p50_ms"] / figures["last"]["p50_ms"]
    figures["deep_back"] = back
    return figures


async def big_archive(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Fill a room with ``args.messages`` on *backend*, then time the queries; bytes per message."""
    from component.storage import open_storage
    from services.muc.store import MUC_MIGRATIONS

    count = args.messages
    stop: Callable[[], None] = lambda: None  # noqa: E731
    path = str(workdir / "archive.db")
    url, password = f"sqlite:///{path}", None
    if backend == "postgresql":
        from tests.storage.postgres import start_server

        server = start_server()
        stop = server.destroy
        database = server.create_database()
        url, password = database.url, database.password
    try:
        outcome: dict[str, Any] = {}
        # The schema from the migrations, then the rows in bulk, off the service.
        await (await open_storage(url, migrations=[MUC_MIGRATIONS], password=password)).close()
        started = time.perf_counter()
        if password is None:
            fill_sqlite(path, count)
            outcome["bytes_per_message"] = sqlite_bytes(path, count)
        else:
            fill_postgres(url, password, count)
            outcome["bytes_per_message"] = postgres_bytes(url, password, count)
        outcome["fill_s"] = time.perf_counter() - started
        outcome.update(await _queries(url, password, count, args.iterations))
        return outcome
    finally:
        stop()


def big_archives(backends: list[str], args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """:func:`big_archive` on each backend, on the Twisted reactor (run once for all of them)."""
    from twisted.internet import defer

    results: dict[str, Any] = {}

    async def each() -> None:
        for backend in backends:
            results[backend] = await big_archive(backend, args, workdir)

    _react(lambda: defer.ensureDeferred(each()))
    return results


def _react(run: Callable[[], Any]) -> None:
    """Run *run* on the reactor and return when it is done (the reactor runs once per process)."""
    from twisted.internet import reactor

    failures: list[Any] = []

    def start() -> None:
        d = run()
        d.addErrback(failures.append)
        d.addBoth(lambda _: reactor.stop())  # type: ignore[attr-defined]

    reactor.callWhenRunning(start)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    if failures:
        failures[0].raiseException()


# -- the report ---------------------------------------------------------------------------


def render(results: dict[str, Any], args: argparse.Namespace) -> str:
    """The figures as Markdown tables."""
    lines: list[str] = []
    chat = results.get("groupchat")
    if chat:
        lines += [f"Groupchat into a room of {args.occupants} on SQLite (reflections per second)", "",
                  "| room | reflections/s | CPU s/10k | p50 ms | bottleneck |", "|---|---|---|---|---|"]
        for kind in KINDS:
            f = chat[kind]
            lines.append(f"| {kind} | {f['rate']:,.0f} | {f['cpu_s_per_10k']:.3f} | {f['p50_ms']:.1f} | {f['bottleneck']} |")
        lines += ["", f"archiving on x off: CPU per reflection {chat['cpu_on_x_off']:.2f}, rate {chat['rate_on_x_off']:.2f}"
                  " (target: cost at most 1.30)", ""]
    back = next((results[b]["deep_back"] for b in ("sqlite", "postgresql") if b in results), 0)
    lines += [f"MAM queries of 50 in a room of {args.messages:,} archived messages ({args.iterations} each):"
              f" the last page, the page after an id {back:,} back, the first page", "",
              "| storage | fill s | last p50 / p99 ms | deep p50 / p99 ms | first p50 / p99 ms | deep x last | bytes/message | load |",
              "|---|---|---|---|---|---|---|---|"]
    for backend in ("sqlite", "postgresql"):
        f = results.get(backend)
        if not f:
            continue
        lines.append(
            f"| {backend} | {f['fill_s']:.0f} | {f['last']['p50_ms']:.2f} / {f['last']['p99_ms']:.2f} | "
            f"{f['deep']['p50_ms']:.2f} / {f['deep']['p99_ms']:.2f} | {f['first']['p50_ms']:.2f} / {f['first']['p99_ms']:.2f} | "
            f"{f['deep_x_last']:.2f} | {f['bytes_per_message']:.0f} | {f['load_before']:.1f}-{f['load_after']:.1f} |"
        )
    lines += ["", "Targets: p99 under 20 ms; the deep page about as fast as the last (x last near 1)."
              " Load: the machine's 1-minute load average before and after the queries."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the bench and print its report."""
    parser = argparse.ArgumentParser(prog="python -m bench.archive", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 messages, one short run per room")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--parts", default="groupchat,queries", help="which parts run (default %(default)s)")
    parser.add_argument("--messages", type=int, default=None, help="archived messages (default 1,000,000)")
    parser.add_argument("--iterations", type=int, default=None, help="queries of each kind (default 500)")
    parser.add_argument("--occupants", type=int, default=20, help="occupants of the groupchat rooms (default 20)")
    parser.add_argument("--window", type=int, default=2000, help="reflections in flight (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per run (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before each run (default 1)")
    parser.add_argument("--runs", type=int, default=None, help="runs per room, medians reported (default 3)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds any one phase may take (default 60)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="directory for the JSON (default %(default)s)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.messages = args.messages or (100_000 if quick else 1_000_000)
    args.iterations = args.iterations or (200 if quick else 500)
    args.seconds = args.seconds or (2.0 if quick else 5.0)
    args.runs = args.runs or (1 if quick else 3)
    started = time.time()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="netherfield-archive-") as workdir:
        limit = args.timeout * 6 + 3 * args.runs * (args.seconds + args.warmup) * 2
        parts = args.parts.split(",")
        if "groupchat" in parts:
            results["groupchat"] = asyncio.run(asyncio.wait_for(groupchat(args, Path(workdir)), limit))
        if "queries" in parts:
            backends = ["sqlite"] + ([] if args.no_postgres else ["postgresql"])
            results.update(big_archives(backends, args, Path(workdir)))
    print(render(results, args))
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / time.strftime("archive-%Y%m%d-%H%M%S.json", time.localtime(started))
    document = {"command": ["python", "-m", "bench.archive", *(argv if argv is not None else sys.argv[1:])],
                "settings": vars(args) | {"output": str(args.output)}, "results": results}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"\nJSON: {path}  ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
