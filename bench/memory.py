"""Netherfield's peak memory under fan-out, with a server that reads slowly or stops reading.

    python -m bench.memory                      # 5,000 occupants, 2,000 messages, a 60 s stall
    python -m bench.memory --occupants 1000 --messages 200 --stall 5 --read-rate 20

The driver plays the server: it fills one room with ``--occupants`` (all joins sent at
once, the worst case: every join sends the newcomer everyone's presence and everyone the
newcomer's), then sends ``--messages`` groupchats at once into it. Then it stops reading
for ``--stall`` seconds while it sends as many groupchats again, and reads everything
once the stall ends. ``--read-rate`` (MB/s) makes it read slowly throughout.

It reports the component's resident memory after each phase and its peak (``VmHWM``,
reset before the stall so that the stall's own peak is seen), and checks the targets:
the peak stays under 200 MB, and the stall costs at most ``output_limit`` plus a constant.
Everything is bounded in time; the component is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs

from bench.driver import BenchError, Session
from bench.scenarios import OWNER, Settings, create_room, groupchat_workload, join_workload
from bench.targets import ROOT, Launch, all_targets, netherfield_config, netherfield_services
from bench.wire import DEFAULT_DOMAIN, DEFAULT_SECRET

RESULTS = Path(__file__).resolve().parent / "results"
MB = 1024 * 1024
#: The peak the whole run must stay under.
PEAK_TARGET_MB = 200
#: What a stall may cost beyond the configured bound: the transport's buffer, a read's worth
#: of input, allocator slack.
STALL_CONSTANT_MB = 32
#: The component's default ``output_limit``, when the run does not set one.
DEFAULT_OUTPUT_LIMIT = 8 * MB


def reset_peak(pid: int) -> bool:
    """Reset the process's ``VmHWM`` to its current RSS (Linux ``clear_refs``); False if refused."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _config(args: argparse.Namespace) -> Any:
    def argv(launch: Launch) -> list[str]:
        config = launch.workdir / "netherfield.toml"
        component = f"output_limit = {args.output_limit}\n" if args.output_limit else ""
        # No keepalive: the driver does not answer pings, and a stall is not a dead link here.
        config.write_text(netherfield_config(launch, netherfield_services(), "ping_interval = 0\n", component))
        return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                "-n", "--pidfile=", "--logfile=-", "netherfield", "--config", str(config)]

    return argv


async def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Run the phases against one Netherfield process; return the figures in KiB and seconds."""
    target = next(t for t in all_targets() if t.name == "netherfield")
    if target.unavailable:
        raise BenchError(target.unavailable)
    argv = _config(args)
    session = Session(lambda port: argv(Launch(port, workdir)), domain=DEFAULT_DOMAIN, secret=DEFAULT_SECRET,
                      cwd=ROOT, env=target.env(), log_path=workdir / "component.log")
    settings = Settings(timeout=args.timeout)
    figures: dict[str, Any] = {}
    async with session:
        process = session.process
        if args.read_rate:
            session.link.limit_reading(args.read_rate * MB)
        room = f"big@{session.domain}"
        await create_room(session, room, settings)
        await session.barrier()
        figures["rss_start_kb"] = process.memory_kb()

        started = time.monotonic()
        joins = [(f"u{i}@localhost/r", f"{room}/n{i}") for i in range(1, args.occupants)]
        load, _, _ = await session.send_all(join_workload(joins, {room: 1}), len(joins), args.timeout)
        await session.barrier(args.timeout)
        figures["join_seconds"] = time.monotonic() - started
        figures["join_presences"] = load.replies
        figures["rss_joined_kb"] = process.memory_kb()
        figures["peak_joined_kb"] = process.memory_kb("VmHWM")

        started = time.monotonic()
        chats = attrs.evolve(groupchat_workload(room, OWNER, args.occupants), total=args.messages)
        load, _, _ = await session.send_all(chats, args.messages, args.timeout)
        await session.barrier(args.timeout)
        figures["groupchat_seconds"] = time.monotonic() - started
        figures["groupchat_reflections"] = load.replies
        figures["rss_groupchats_kb"] = process.memory_kb()
        figures["peak_groupchats_kb"] = process.memory_kb("VmHWM")

        figures["peak_reset"] = reset_peak(process.pid)
        figures["rss_before_stall_kb"] = before = process.memory_kb()
        started = time.monotonic()
        session.link.stop_reading(args.stall)
        load = session.load(chats, args.messages)
        load.start()
        highest = before
        while time.monotonic() - started < args.stall:
            await asyncio.sleep(0.2)
            if not process.alive():
                raise BenchError("the component exited during the stall")
            highest = max(highest, process.memory_kb())
        figures["rss_stalled_kb"] = process.memory_kb()
        await load.finished(args.timeout)
        await load.stop(args.timeout)
        await session.barrier(args.timeout)
        figures["stall_seconds"] = args.stall
        figures["drain_seconds"] = time.monotonic() - started - args.stall
        figures["stall_reflections"] = load.replies
        figures["peak_stall_kb"] = max(highest, process.memory_kb("VmHWM")) if figures["peak_reset"] else highest
        figures["peak_kb"] = max(figures["peak_joined_kb"], figures["peak_groupchats_kb"], figures["peak_stall_kb"])
    return figures


def verdicts(figures: dict[str, Any], output_limit: int) -> dict[str, str]:
    """The targets, PASS or FAIL with the figure."""
    peak = figures["peak_kb"] / 1024
    stall = (figures["peak_stall_kb"] - figures["rss_before_stall_kb"]) / 1024
    allowed = output_limit / MB + STALL_CONSTANT_MB
    return {
        f"peak RSS < {PEAK_TARGET_MB} MB": f"{'PASS' if peak < PEAK_TARGET_MB else 'FAIL'} ({peak:.0f} MB)",
        "stall costs <= output_limit + constant": f"{'PASS' if stall <= allowed else 'FAIL'}"
        f" ({stall:.0f} MB, allowed {allowed:.0f} MB)",
    }


def render(figures: dict[str, Any]) -> str:
    """The figures as a Markdown table."""
    rows = [
        ("start (room created)", figures["rss_start_kb"], None, ""),
        ("after the joins", figures["rss_joined_kb"], figures["peak_joined_kb"],
         f"{figures['join_presences']:,} presences in {figures['join_seconds']:.1f} s"),
        ("after the groupchats", figures["rss_groupchats_kb"], figures["peak_groupchats_kb"],
         f"{figures['groupchat_reflections']:,} reflections in {figures['groupchat_seconds']:.1f} s"),
        (f"end of a {figures['stall_seconds']:g} s stall", figures["rss_stalled_kb"], figures["peak_stall_kb"],
         f"{figures['stall_reflections']:,} reflections, drained {figures['drain_seconds']:.1f} s after"),
    ]
    lines = ["| phase | RSS MB | peak MB | |", "|---|---|---|---|"]
    for name, rss, peak, note in rows:
        shown = f"{peak / 1024:.0f}" if peak is not None else ""
        lines.append(f"| {name} | {rss / 1024:.0f} | {shown} | {note} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the memory bench and print its report."""
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--occupants", type=int, default=5000, help="occupants of the room (default %(default)s)")
    parser.add_argument("--messages", type=int, default=2000,
                        help="groupchats sent at once, before and during the stall (default %(default)s)")
    parser.add_argument("--stall", type=float, default=60.0, help="seconds the driver stops reading (default 60)")
    parser.add_argument("--read-rate", type=float, help="MB/s the driver reads at (default: as fast as it can)")
    parser.add_argument("--output-limit", type=int, help="the component's output_limit in bytes (default: its own)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds any one phase may take (default 600)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="directory for the JSON (default %(default)s)")
    args = parser.parse_args(argv)
    started = time.time()
    limit = args.timeout * 4 + args.stall
    with tempfile.TemporaryDirectory(prefix="netherfield-memory-") as workdir:
        figures = asyncio.run(asyncio.wait_for(measure(args, Path(workdir)), limit))
    checked = verdicts(figures, args.output_limit or DEFAULT_OUTPUT_LIMIT)
    print(render(figures))
    print()
    for name, verdict in checked.items():
        print(f"- {name}: {verdict}")
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / time.strftime("memory-%Y%m%d-%H%M%S.json", time.localtime(started))
    document = {"command": ["python", "-m", "bench.memory", *(argv if argv is not None else sys.argv[1:])],
                "settings": vars(args) | {"output": str(args.output)}, "figures": figures, "targets_met": checked}
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nJSON: {path}  ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
