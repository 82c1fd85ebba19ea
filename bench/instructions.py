"""Instructions per stanza, counted by callgrind: Netherfield in process against the ceiling, in one run.

    python -m bench.instructions [--scenarios echo,fanout-20,fanout-200] [--baseline REV] [--reads N]

On a shared machine the time bench (``bench.run``) moves by more than most changes do;
an instruction count does not: valgrind's callgrind counts every instruction a process
runs, the same from one run to the next within about 2 %. Each target handles the
scenario's stanzas in process, fed as the server's reads would bring them (a hundred
stanzas a read, ten into a room of 200) through its own protocol code, its writes kept
in memory: no socket and no reactor turn, so that what is counted is the component's
own work. The writes are kept as a list of the bytes written, as a socket would take
them, not in the test transport's growing buffer: that buffer copies all it holds
each time it grows, so its cost rises with the number of writes per read (one for
the ceiling, one per 64 KiB for Netherfield) and is nobody's work but its own. Each
case runs twice, with N and 2N reads; the difference over N reads' stanzas is the
cost of one, without the interpreter's start and the setup.

``x ceiling`` is the ceiling's count divided by the target's, comparable to the time
bench's column of that name (a target at 0.5 runs twice the ceiling's instructions).
Netherfield runs with the MUC's defaults (occupant ids on) and the rate limits the
time bench sets (a bucket the load never empties, so that the limiter's cost counts).
Needs valgrind. JSON in ``bench/results/instructions-<date>-<time>.json``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

# Run by path in the measured process, with the target's packages first on the path:
# only the standard library is imported at the top.
ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("echo", "fanout-20", "fanout-200")
DOMAIN = "chat.shakespeare.lit"
ROOM = f"bench@{DOMAIN}"
OWNER = "owner@shakespeare.lit/r"
_COLLECTED = re.compile(rb"Collected : (\d+)")


def _workload(scenario: str) -> tuple[bytes, int, int]:
    """One read's stanzas, how many it holds, and the replies each must produce."""
    if scenario == "echo":
        stanzas = [
            f"<message from='u{i}@shakespeare.lit/r' to='echo@{DOMAIN}' type='chat' id='e{i}'>"
            f"<body>Hello world {i}</body></message>"
            for i in range(100)
        ]
        return "".join(stanzas).encode(), 100, 1
    occupants = int(scenario.split("-")[1])
    per_read = 100 if occupants <= 20 else 10
    stanzas = [
        f"<message from='{OWNER}' to='{ROOM}' type='groupchat' id='m{i}'><body>Hello world, message {i}</body></message>"
        for i in range(per_read)
    ]
    return "".join(stanzas).encode(), per_read, occupants


# -- in the measured process ------------------------------------------------------


def _netherfield(scenario: str) -> tuple[Any, Any]:
    """Netherfield's protocol and transport, with the scenario's room made and filled."""
    from component.testing import Harness

    if scenario == "echo":
        from services.echo import EchoService

        harness = Harness(f"{DOMAIN}", EchoService)
    else:
        from services.muc.testing import enter, instant_room, muc_harness

        harness = muc_harness({"groupchat_burst": 10**9, "groupchat_rate": 1e9, "occupant_id": True}, storage=None)
        instant_room(harness, ROOM, OWNER, "owner")
        for i in range(1, int(scenario.split("-")[1])):
            enter(harness, ROOM, f"n{i}", f"u{i}@shakespeare.lit/r")
    return harness.protocol, harness.transport


def _ceiling(scenario: str) -> tuple[Any, Any]:
    """The ceiling's protocol and transport, with the scenario's room filled."""
    from twisted.internet.testing import StringTransport

    from bench.ceiling import CeilingComponent

    protocol = CeilingComponent(DOMAIN, "secret", {})
    transport = StringTransport()
    protocol.transport = transport
    protocol.dataReceived(
        b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'"
        b" id='bench' from='" + DOMAIN.encode() + b"'><handshake/>"
    )
    if scenario != "echo":
        joins = [(OWNER, "owner")] + [(f"u{i}@shakespeare.lit/r", f"n{i}") for i in range(1, int(scenario.split("-")[1]))]
        for jid, nick in joins:
            protocol.dataReceived(
                f"<presence from='{jid}' to='{ROOM}/{nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>".encode()
            )
    transport.clear()
    return protocol, transport


def _keep_writes(transport: Any) -> None:
    """Make a test transport keep what is written as a list, taken whole by ``value()``."""
    written: list[bytes] = []
    transport.write = written.append
    transport.writeSequence = written.extend
    transport.value = lambda: b"".join(written)
    transport.clear = written.clear


def child(target: str, scenario: str, reads: int) -> None:
    """Set the target up, check one read's replies, then handle ``reads`` reads."""
    protocol, transport = (_ceiling if target == "ceiling" else _netherfield)(scenario)
    _keep_writes(transport)
    import component

    # The parent checks that the target's own code was measured.
    print(f"component from {Path(component.__file__).resolve().parent.parent}", file=sys.stderr)
    chunk, count, replies = _workload(scenario)
    protocol.dataReceived(chunk)
    written = transport.value()
    transport.clear()
    marker = b"<message "
    if written.count(marker) != count * replies or b'type="error"' in written:
        raise SystemExit(f"{target} {scenario}: {written.count(marker)} replies to a read, not {count * replies}")
    for _ in range(reads):
        protocol.dataReceived(chunk)
        transport.clear()


# -- the parent ------------------------------------------------------------------------


def _count(target: str, scenario: str, reads: int, tree: Path) -> int:
    # The target's packages first (the ceiling is this checkout's); this file is run by path, so
    # that no directory before them on the path holds another component or services package.
    path = [str(ROOT)] if target == "ceiling" else [str(tree), str(tree / "twistd-plugins")]
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=os.pathsep.join(path))
    command = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, str(Path(__file__).resolve()), "--child", target, scenario, str(reads),
    ]
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, timeout=1800, check=False)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        tail = (done.stdout + done.stderr).decode(errors="replace").strip().splitlines()[-5:]
        raise SystemExit(f"{target} {scenario} failed: " + " / ".join(tail))
    if f"component from {tree.resolve()}".encode() not in done.stderr:
        raise SystemExit(f"{target} {scenario} did not run the code of {tree}")
    return int(found.group(1))


def _reads(scenario: str, reads: int) -> int:
    # A read into a room of 200 holds ten stanzas, and costs about a quarter of one into a room of 20.
    return reads if scenario in ("echo", "fanout-20") else 4 * reads


def measure(targets: dict[str, Path], scenarios: list[str], reads: int) -> list[dict[str, Any]]:
    """Instructions per stanza of every target in every scenario."""
    jobs = {
        (target, scenario, n): (target, scenario, n * _reads(scenario, reads), tree)
        for target, tree in targets.items()
        for scenario in scenarios
        for n in (1, 2)
    }
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        futures = {key: pool.submit(_count, *job) for key, job in jobs.items()}
        counts = {key: future.result() for key, future in futures.items()}
    rows = []
    for scenario in scenarios:
        _chunk, per_read, _replies = _workload(scenario)
        per_stanza = {
            target: (counts[target, scenario, 2] - counts[target, scenario, 1]) / (_reads(scenario, reads) * per_read)
            for target in targets
        }
        for target in targets:
            rows.append({
                "scenario": scenario,
                "target": target,
                "instructions": per_stanza[target],
                "x_ceiling": per_stanza["ceiling"] / per_stanza[target] if per_stanza[target] else None,
            })
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated, of: " + ", ".join(SCENARIOS))
    parser.add_argument("--baseline", action="append", default=[], metavar="REV",
                        help="also count Netherfield as of this git revision (target base, or base-REV when several)")
    parser.add_argument("--reads", type=int, default=15,
                        help="reads of the shorter run of each case (four times as many into a room of 200)")
    parser.add_argument("--child", nargs=3, metavar=("TARGET", "SCENARIO", "READS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    from bench.report import table
    from bench.run import RESULTS, exported

    if shutil.which("valgrind") is None:
        raise SystemExit("bench.instructions needs valgrind (apt install valgrind)")
    scenarios = args.scenarios.split(",")
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios: {', '.join(sorted(unknown))}")
    started = time.monotonic()
    with ExitStack() as stack:
        targets = {"ceiling": ROOT, "netherfield": ROOT}
        for revision in args.baseline:
            name = "base" if len(args.baseline) == 1 else f"base-{revision}"
            targets[name] = stack.enter_context(exported(revision))
        rows = measure(targets, scenarios, args.reads)
    print(table(
        ["scenario", "target", "instructions/stanza", "x ceiling"],
        [[r["scenario"], r["target"], f"{r['instructions']:,.0f}", f"{r['x_ceiling']:.2f}"] for r in rows],
    ))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"instructions-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"rows": rows, "reads": args.reads, "baselines": args.baseline}, indent=1))
    print(f"\nJSON: {out}  ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
