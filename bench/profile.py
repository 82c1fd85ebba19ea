"""Profile a target under one scenario's load with py-spy, and print where its time goes.

    python -m bench.profile --target netherfield --scenario echo [--seconds 5]

py-spy samples the component's process from outside during the measured interval only
(setup excluded); the collapsed stacks are kept in ``bench/results/`` and summarised as
the functions with the largest share of samples, by self time and including callees.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import attrs

from bench.driver import BenchError, Session
from bench.run import RESULTS, Case, plan, time_limit
from bench.scenarios import Settings
from bench.targets import ROOT, Launch, Target, all_targets
from bench.wire import DEFAULT_DOMAIN, DEFAULT_SECRET


def summarise(collapsed: str, top: int = 25) -> str:
    """Return the top functions by self and by inclusive share of the samples in collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "no samples"
    lines = [f"{total} samples"]
    for title, counter in (("self", own), ("including callees", inclusive)):
        lines.append(f"\nTop {top} by {title}:")
        for frame, count in counter.most_common(top):
            lines.append(f"{100 * count / total:6.1f} %  {frame}")
    return "\n".join(lines)


async def profile(target: Target, case: Case, settings: Settings, workdir: Path, output: Path,
                  rate: int, lines: bool = False) -> str:
    """Drive the case against the target with py-spy attached; return the collapsed stacks."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    recorders: list[subprocess.Popen[bytes]] = []
    session = Session(
        lambda port: target.argv(Launch(port, workdir, rooms=case.rooms)),
        domain=DEFAULT_DOMAIN, secret=DEFAULT_SECRET, cwd=ROOT, env=target.env(),
        log_path=workdir / "component.log",
    )

    def attach() -> None:
        if not recorders:
            recorders.append(subprocess.Popen(
                [py_spy, "record", "--pid", str(session.process.pid), "--duration", str(max(1, int(settings.seconds))),
                 "--rate", str(rate), "--format", "raw", *(() if lines else ("--function",)), "--output", str(output)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            ))

    session.on_measure.append(attach)
    if target.prepare is not None:
        await asyncio.to_thread(target.prepare, Launch(0, workdir, rooms=case.rooms))
    async with session:
        await asyncio.wait_for(case.run(session, settings), time_limit(case, settings))
        if not recorders:
            raise BenchError(f"the {case.name} scenario has no measured interval to profile")
        try:
            _out, errors = await asyncio.to_thread(recorders[0].communicate, None, settings.seconds + 30)
        except subprocess.TimeoutExpired:
            recorders[0].kill()
            raise BenchError("py-spy did not finish") from None
    if recorders[0].returncode != 0 or not output.exists():
        raise BenchError(f"py-spy failed: {errors.decode(errors='replace').strip()}")
    return output.read_text()


def main(argv: list[str] | None = None) -> None:
    """Profile one target in one scenario and print the summary."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="netherfield")
    parser.add_argument("--scenario", default="echo", help="echo, iq, fanout-K, join or rooms")
    parser.add_argument("--seconds", type=float, default=5.0, help="profiled seconds (default %(default)s)")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second (default %(default)s)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--lines", action="store_true",
                        help="frames by line rather than by function (lxml's C time then counts to the calling line)")
    args = parser.parse_args(argv)
    kind, _, size = args.scenario.partition("-")
    settings = Settings(seconds=args.seconds, runs=1, paced=False,
                        fanout_sizes=(int(size),) if size else Settings().fanout_sizes)
    cases = [case for case in plan([kind], settings) if case.name == args.scenario or not size]
    targets = {target.name: target for target in all_targets()}
    target = targets.get(args.target)
    if target is None or target.unavailable or not cases or cases[0].kind not in target.scenarios:
        raise SystemExit(f"{args.target} cannot run {args.scenario}"
                         + (f": {target.unavailable}" if target and target.unavailable else ""))
    settings = attrs.evolve(settings, runs=1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = RESULTS / time.strftime(f"profile-{target.name}-{cases[0].name}-%Y%m%d-%H%M%S.txt")
    with tempfile.TemporaryDirectory(prefix="netherfield-profile-") as workdir:
        collapsed = asyncio.run(profile(target, cases[0], settings, Path(workdir), output, args.rate, args.lines))
    print(summarise(collapsed, args.top))
    print(f"\ncollapsed stacks: {output}")


if __name__ == "__main__":
    main()
