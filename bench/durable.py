"""Groupchat throughput into persistent rooms, as a ratio to the same run's temporary rooms.

    python -m bench.durable                          # SQLite in a temporary file, one room of 20
    python -m bench.durable --postgres               # the same on a sandboxed PostgreSQL too
    python -m bench.durable --rooms 10 --seconds 3   # the load spread over 10 rooms of 20

A message in a persistent room is reflected only once its history row is stored, so the
database's commits bound the room's rate; a temporary room's rate is what the component
does without them. Both kinds run in one Netherfield process, one after the other, with
the same window of messages in flight (2,000 reflections, as in ``bench.run``'s fan-out),
and the report is each kind's rate and the persistent rooms' share of the temporary ones'.
Everything is bounded in time; the component (and PostgreSQL, if started) stops at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.driver import BenchError, Session, Workload, opening
from bench.scenarios import OWNER, Settings, _setup, create_room, join_workload, timed_runs
from bench.targets import ROOT, Launch, all_targets, netherfield_config, netherfield_services
from bench.wire import DEFAULT_DOMAIN, DEFAULT_SECRET

RESULTS = Path(__file__).resolve().parent / "results"
PERSISTENT = "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"
#: The environment variable that hands the component PostgreSQL's password.
PASSWORD_ENV = "NETHERFIELD_BENCH_PG_PASSWORD"
KINDS = {"temporary": "", "persistent": PERSISTENT}


def spread_workload(rooms: list[str], occupants: int) -> Workload:
    """Groupchat messages from the owner to each room in turn; a reflection per occupant each."""
    templates = [
        (f"<message from='{OWNER}' to='{room}' type='groupchat' id='g%d'>"
         "<body>Hello, room. This is message %d.</body></message>").encode()
        for room in rooms
    ]

    def make(start: int, count: int) -> bytes:
        return b"".join([templates[i % len(templates)] % (i, i) for i in range(start, start + count)])

    return Workload(make, opening("message"), per_request=occupants)


async def fill(session: Session, kind: str, count: int, occupants: int, settings: Settings) -> list[str]:
    """Create ``count`` rooms of ``kind`` with ``occupants`` each (the owner and the users)."""
    rooms = [f"{kind}{n}@{session.domain}" for n in range(count)]
    for room in rooms:
        await create_room(session, room, settings, KINDS[kind])
        joins = [(f"u{i}@localhost/r", f"{room}/n{i}") for i in range(1, occupants)]
        await _setup(session, join_workload(joins, {room: 1}), 10, settings.timeout, f"filling {room}")
    await session.barrier()
    return rooms


async def measure(args: argparse.Namespace, workdir: Path, storage: str, env: dict[str, str]) -> dict[str, Any]:
    """Both kinds of rooms in one process on ``storage``; the figures of each."""
    target = next(t for t in all_targets() if t.name == "netherfield")
    if target.unavailable:
        raise BenchError(target.unavailable)

    def argv(port: int) -> list[str]:
        config = workdir / "netherfield.toml"
        config.write_text(netherfield_config(Launch(port, workdir), netherfield_services(), storage=storage))
        return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                "-n", "--pidfile=", "--logfile=-", "netherfield", "--config", str(config)]

    settings = Settings(seconds=args.seconds, warmup=args.warmup, runs=args.runs, timeout=args.timeout, paced=False)
    session = Session(argv, domain=DEFAULT_DOMAIN, secret=DEFAULT_SECRET, cwd=ROOT, env=target.env() | env,
                      log_path=workdir / "component.log")
    figures: dict[str, Any] = {}
    async with session:
        for kind in KINDS:
            rooms = await fill(session, kind, args.rooms, args.occupants, settings)
            window = max(2, args.window // args.occupants)
            result = await timed_runs(session, spread_workload(rooms, args.occupants), window, settings,
                                      unit="replies", paced_runs=0)
            if result["errors"]:
                raise BenchError(f"{result['errors']} error replies to groupchats in the {kind} rooms")
            figures[kind] = result
    figures["ratio"] = float(figures["persistent"]["rate"]) / float(figures["temporary"]["rate"])
    return figures


def sqlite_storage(workdir: Path) -> tuple[str, dict[str, str], Callable[[], None]]:
    """A SQLite file in the working directory."""
    return f'url = "sqlite:///{workdir / "durable.db"}"\n', {}, lambda: None


def postgres_storage(_workdir: Path) -> tuple[str, dict[str, str], Callable[[], None]]:
    """A database on a PostgreSQL server of its own (the test suite's sandbox)."""
    from tests.storage.postgres import start_server

    server = start_server()
    database = server.create_database()
    lines = f'url = "{database.url}"\npassword_env = "{PASSWORD_ENV}"\n'
    return lines, {PASSWORD_ENV: database.password}, server.destroy


def render(results: dict[str, dict[str, Any]], rooms: int, occupants: int) -> str:
    """The figures as a Markdown table."""
    lines = [f"{rooms} room(s) of {occupants}, reflections per second (messages per second = / {occupants})", "",
             "| storage | temporary/s | persistent/s | persistent msg/s | persistent x temporary | p50 ms | bottleneck |",
             "|---|---|---|---|---|---|---|"]
    for name, figures in results.items():
        kept = figures["persistent"]
        lines.append(
            f"| {name} | {figures['temporary']['rate']:,.0f} | {kept['rate']:,.0f} | "
            f"{kept['rate'] / occupants:,.0f} | {figures['ratio']:.2f} | "
            f"{kept['p50_ms']:.1f} | {kept['bottleneck']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the bench and print its report."""
    parser = argparse.ArgumentParser(prog="python -m bench.durable", description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", action="store_true", help="also run on a sandboxed PostgreSQL")
    parser.add_argument("--rooms", type=int, default=1, help="rooms of each kind, the load spread over them")
    parser.add_argument("--occupants", type=int, default=20, help="occupants of each room (default %(default)s)")
    parser.add_argument("--window", type=int, default=2000, help="reflections in flight (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before each run (default 1)")
    parser.add_argument("--runs", type=int, default=3, help="runs per kind, medians reported (default 3)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds any one phase may take (default 60)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="directory for the JSON (default %(default)s)")
    args = parser.parse_args(argv)
    started = time.time()
    backends = {"sqlite": sqlite_storage, **({"postgresql": postgres_storage} if args.postgres else {})}
    limit = args.timeout * 4 + 2 * args.runs * (args.seconds + args.warmup) * 2
    results: dict[str, dict[str, Any]] = {}
    for name, backend in backends.items():
        with tempfile.TemporaryDirectory(prefix="netherfield-durable-") as workdir:
            storage, env, stop = backend(Path(workdir))
            try:
                results[name] = asyncio.run(asyncio.wait_for(measure(args, Path(workdir), storage, env), limit))
            finally:
                stop()
    print(render(results, args.rooms, args.occupants))
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / time.strftime("durable-%Y%m%d-%H%M%S.json", time.localtime(started))
    document = {"command": ["python", "-m", "bench.durable", *(argv if argv is not None else sys.argv[1:])],
                "settings": vars(args) | {"output": str(args.output)}, "results": results}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"\nJSON: {path}  ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
