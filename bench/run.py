"""Run the bench: every target through every scenario in one run, as tables and as JSON.

    python -m bench.run [--scenarios echo,iq,fanout,join,rooms] [--targets ceiling,...]
                        [--seconds 5] [--runs 3] [--quick] [--baseline REV] [--repeat N]

Each (scenario, target) pair gets a fresh component process, bounded in time; the
ceiling goes first so that every other figure is also a ratio to it. The JSON file
(``bench/results/<time>.json``) holds every run, the settings and the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import attrs

from bench import report, scenarios
from bench.driver import BenchError, Session
from bench.scenarios import Settings
from bench.targets import ROOT, Launch, Target, all_targets, baseline_target
from bench.wire import DEFAULT_DOMAIN, DEFAULT_SECRET

SCENARIOS = ("echo", "iq", "fanout", "join", "rooms")
RESULTS = Path(__file__).resolve().parent / "results"
QUICK = Settings(seconds=1.5, warmup=0.5, runs=1, fanout_sizes=(20, 200), join_size=300, rooms=2000,
                 occupant_sample=500, timeout=20.0)

Scenario = Callable[[Session, Settings], Awaitable[dict[str, Any]]]


@attrs.frozen
class Case:
    """One scenario with its parameters: what every target is asked to do."""

    name: str
    kind: str
    run: Scenario
    rooms: int = 0


def plan(kinds: list[str], settings: Settings) -> list[Case]:
    """Return the cases for the chosen scenarios, in the order given."""
    cases = []
    for kind in kinds:
        if kind == "echo":
            cases.append(Case("echo", kind, scenarios.echo))
        elif kind == "iq":
            cases.append(Case("iq", kind, scenarios.iq))
        elif kind == "fanout":
            for size in settings.fanout_sizes:
                cases.append(Case(f"fanout-{size}", kind, _fanout(size)))
        elif kind == "join":
            cases.append(Case("join", kind, scenarios.join))
        elif kind == "rooms":
            cases.append(Case("rooms", kind, scenarios.rooms, rooms=settings.rooms))
        else:
            raise SystemExit(f"unknown scenario {kind!r}; choose among {', '.join(SCENARIOS)}")
    return cases


def _fanout(size: int) -> Scenario:
    async def run(session: Session, settings: Settings) -> dict[str, Any]:
        return await scenarios.fanout(session, settings, size)

    return run


def time_limit(case: Case, settings: Settings) -> float:
    """Return the most a case may take, setup and every run included."""
    measured = settings.runs * (settings.warmup + settings.seconds) + settings.warmup + settings.seconds
    return 2 * settings.timeout + 2 * measured + (4 * settings.timeout if case.kind in ("join", "rooms") else 0)


async def run_case(target: Target, case: Case, settings: Settings, workdir: Path) -> dict[str, Any]:
    """Run one case against one target in a fresh process; never raise."""
    if target.unavailable:
        return {"status": "n/a", "reason": target.unavailable}
    if case.kind not in target.scenarios:
        return {"status": "n/a"}
    workdir = workdir / f"{case.name}-{target.name}"
    workdir.mkdir()
    session = Session(
        lambda port: target.argv(Launch(port, workdir, rooms=case.rooms)),
        domain=DEFAULT_DOMAIN, secret=DEFAULT_SECRET, cwd=ROOT, env=target.env(),
        log_path=workdir / "component.log",
    )
    started = time.perf_counter()
    if target.prepare is not None:
        try:
            await asyncio.to_thread(target.prepare, Launch(0, workdir, rooms=case.rooms))
        except (OSError, subprocess.SubprocessError) as error:
            return {"status": "failed", "reason": f"preparing the target failed: {error}"}
    gc.collect()
    gc.disable()  # the driver's objects are acyclic: keep collector pauses out of its timings
    try:
        async with session:
            result = await asyncio.wait_for(case.run(session, settings), time_limit(case, settings))
            result["peak_rss_kb"] = session.process.memory_kb("VmHWM")
            result["status"] = "ok"
    except (BenchError, TimeoutError, OSError) as error:
        reason = str(error) or type(error).__name__
        result = {"status": "failed", "reason": reason, "log_tail": session.log_tail()}
    finally:
        gc.enable()
    result["wall_seconds"] = time.perf_counter() - started
    return result


def _progress(case: Case, target: Target, result: dict[str, Any]) -> str:
    if result["status"] != "ok":
        return f"{case.name:12} {target.name:14} {result['status']}" + (
            f": {result['reason']}" if result.get("reason") else "")
    figures = []
    if "rate" in result:
        figures.append(f"{result['rate']:,.0f}/s")
    if result.get("p99_ms") is not None:
        figures.append(f"p99 {result['p99_ms']:.2f} ms")
    if "component_cpu_s" in result and case.kind == "join":
        figures.append(f"CPU {result['component_cpu_s']:.2f} s")
    if "kb_per_room" in result:
        figures.append(f"{result['kb_per_room']:.2f} KB/room, {result['kb_per_occupant']:.2f} KB/occupant")
    return f"{case.name:12} {target.name:14} " + ", ".join(figures) + f" ({result['wall_seconds']:.0f} s)"


def machine() -> dict[str, Any]:
    """Describe the machine and the libraries the figures depend on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for name in ("lxml", "Twisted", "slixmpp", "attrs"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def revision() -> dict[str, Any]:
    """Return the checkout's commit and whether it has local changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "changed": bool(git("status", "--porcelain", "--", "component",
                                                                      "services", "bench"))}


async def bench(cases: list[Case], targets: list[Target], settings: Settings,
                workdir: Path, rounds: int = 1) -> list[report.Results]:
    """Run every case against every target, the ceiling first, ``rounds`` times over; one result set a round.

    A round runs each target once in turn, so that a change in the machine's load
    between rounds touches every target of a round alike.
    """
    sets: list[report.Results] = [{} for _ in range(rounds)]
    for case in cases:
        for number, results in enumerate(sets):
            results[case.name] = {}
            for target in targets:
                result = await run_case(target, case, settings, workdir / f"round-{number}")
                results[case.name][target.name] = result
                if result["status"] != "n/a" or result.get("reason"):
                    print(_progress(case, target, result), file=sys.stderr, flush=True)
    return sets


def arguments(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated (default: all)")
    parser.add_argument("--targets", default=None, help="comma-separated (default: all; the ceiling always runs)")
    parser.add_argument("--quick", action="store_true", help="about a minute: 1 short run each, smaller rooms")
    parser.add_argument("--seconds", type=float, help="measured seconds per run (default 5)")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds before each run (default 1)")
    parser.add_argument("--runs", type=int, help="runs per scenario; medians are reported (default 3)")
    parser.add_argument("--window", type=int, help="requests in flight for echo and iq (default 100)")
    parser.add_argument("--fanout-sizes", help="room sizes for fanout, comma-separated (default 20,1000)")
    parser.add_argument("--join-size", type=int, help="occupants joining in the join scenario (default 1000)")
    parser.add_argument("--rooms", type=int, help="stored rooms in the rooms scenario (default 10000)")
    parser.add_argument("--room-occupants", type=int,
                        help="occupants spread over the stored rooms in the rooms scenario (default 100)")
    parser.add_argument("--no-paced", action="store_true", help="skip the latency runs at half the maximum rate")
    parser.add_argument("--baseline", metavar="REV", action="append", default=[],
                        help="also run Netherfield as of this git revision (target 'base', or 'base-REV' when"
                             " given more than once), e.g. main")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of every case over every target; the ratios' medians are printed (default 1)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="directory for the JSON (default %(default)s)")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    """Return the settings: the defaults or the quick ones, with the options given applied."""
    settings = QUICK if args.quick else Settings()
    changes: dict[str, Any] = {}
    for option in ("seconds", "warmup", "runs", "window", "join_size", "rooms", "room_occupants"):
        if getattr(args, option) is not None:
            changes[option] = getattr(args, option)
    if args.fanout_sizes:
        changes["fanout_sizes"] = tuple(int(size) for size in args.fanout_sizes.split(","))
    if args.no_paced:
        changes["paced"] = False
    return attrs.evolve(settings, **changes)


@contextlib.contextmanager
def exported(revision: str) -> Iterator[Path]:
    """The files of a git revision of this repository, in a temporary directory, for as long as the block runs."""
    with tempfile.TemporaryDirectory(prefix="netherfield-bench-base-") as tree:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tree], input=archive.stdout, check=True)
        yield Path(tree)


def rounds_table(sets: list[report.Results], targets: list[str]) -> str:
    """Each round's rate and CPU per stanza as ratios to the ceiling, and their medians."""
    headers = ["scenario", "target", "x ceiling, each round", "median", "CPU x ceiling, each round", "median"]
    rows = []
    for case in sets[0]:
        if report.kind_of(case) not in report.THROUGHPUT_KINDS:
            continue
        for target in targets:
            if target == report.CEILING:
                continue
            outcomes = [results[case].get(target, {}) for results in sets]
            rates = [o["rate_ratio"] for o in outcomes if "rate_ratio" in o]
            cpus = [o["cpu_per_stanza_ratio"] for o in outcomes if "cpu_per_stanza_ratio" in o]
            if not rates:
                continue
            rows.append([case, target, " ".join(f"{r:.2f}" for r in rates), f"{statistics.median(rates):.2f}",
                         " ".join(f"{c:.2f}" for c in cpus), f"{statistics.median(cpus):.2f}" if cpus else "-"])
    return report.table(headers, rows)


def main(argv: list[str] | None = None) -> None:
    """Run the bench and print the report."""
    args = arguments(argv)
    settings = settings_from(args)
    cases = plan([kind.strip() for kind in args.scenarios.split(",") if kind.strip()], settings)
    targets = all_targets()
    if args.targets:
        chosen = {name.strip() for name in args.targets.split(",")} | {report.CEILING}
        unknown = chosen - {target.name for target in targets}
        if unknown:
            raise SystemExit(f"unknown target(s): {', '.join(sorted(unknown))}")
        targets = [target for target in targets if target.name in chosen]
    started = time.time()
    before = machine()
    with tempfile.TemporaryDirectory(prefix="netherfield-bench-") as workdir, contextlib.ExitStack() as stack:
        for rev in args.baseline:
            name = "base" if len(args.baseline) == 1 else f"base-{rev}"
            targets.append(baseline_target(stack.enter_context(exported(rev)), rev, name))
        for number in range(args.repeat):
            (Path(workdir) / f"round-{number}").mkdir()
        sets = asyncio.run(bench(cases, targets, settings, Path(workdir), args.repeat))
    names = [target.name for target in targets]
    for results in sets:
        report.add_ratios(results)
    results = sets[-1]
    verdicts = report.checks(results, names)
    print()
    print(report.render(results, names, verdicts))
    if len(sets) > 1:
        print("\nEvery round (the tables above are the last one's)\n")
        print(rounds_table(sets, names))
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / time.strftime("%Y%m%d-%H%M%S.json", time.localtime(started))
    document = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": time.time() - started,
        "command": ["python", "-m", "bench.run", *(argv if argv is not None else sys.argv[1:])],
        "settings": attrs.asdict(settings),
        "machine": before,
        "load_average_after": os.getloadavg(),
        "revision": revision(),
        "targets": [{"name": t.name, "description": t.description, "unavailable": t.unavailable} for t in targets],
        "results": results,
        "rounds": sets,
        "targets_met": verdicts,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nJSON: {path}  ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
