"""End to end: clients behind a real server, the server's own MUC against Netherfield's, in one run.

For each server (Prosody, ejabberd): the server and the component run pinned to one
core, the load workers and this process to the other. Every user logs in once and
joins its room in both MUCs; then, at each offered rate, a run against the built-in
MUC and one against ours, their order alternating from rate to rate, so that a
drift in the machine's load falls on both. Each run's CPU comes from
``/proc/PID/stat`` of the server and of the component; the other load on each core
from ``/proc/stat`` less what our own processes used there.
"""

from __future__ import annotations

import argparse
import array
import contextlib
import json
import multiprocessing
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.e2e.load import Muc, Plan, worker
from bench.e2e.servers import BUILTIN_MAM_MUC, BUILTIN_MUC, SERVERS, LoadEjabberd, LoadProsody, pinned
from tests.integration.servers import ComponentProcess, ServerError, to_toml

COMPONENT = "comp.localhost"
#: Where the component of ``--baseline`` lives, beside ours.
BASELINE = "base.localhost"
PASSWORD = "load-pass"
TICKS = os.sysconf("SC_CLK_TCK")
RESULTS = Path(__file__).resolve().parents[1] / "results"
#: What the creator of an archived room of ours submits: a persistent room, which is what archives
#: (``muc#roomconfig_enablearchiving`` is on by default).
PERSISTENT_FORM = (
    "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"
    "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"
)
#: Every target: where its rooms are. ``builtin-mam`` is the server's MUC archiving every room
#: (Prosody's mod_muc_mam, ejabberd's mod_mam), which adds a stanza-id to each message as ours does;
#: ``ours-mam`` our MUC's persistent rooms, which archive each message before it is reflected.
TARGETS = {
    "builtin": Muc(BUILTIN_MUC),
    "builtin-mam": Muc(BUILTIN_MAM_MUC),
    "ours": Muc(COMPONENT),
    "ours-mam": Muc(COMPONENT, prefix="arch-", form=PERSISTENT_FORM),
    "base": Muc(BASELINE),
}
#: Cores' worth of CPU that other processes may use on a core before a run counts as disturbed.
DISTURBED = 0.15
#: Cores' worth of CPU under which the server and our components count as idle between runs.
IDLE = 0.1
#: A process that kept this share of its core busy bounded the run.
BOUND = 0.9


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) from ``/proc/PID/stat``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def run_queue_wait(pid: int) -> float:
    """Seconds the threads of ``pid`` spent runnable but not running (``/proc/PID/task/*/schedstat``)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for task in tasks:
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[1])
    return total / 1e9


def core_times() -> dict[int, tuple[float, float]]:
    """Per core: (busy seconds, stolen seconds) from ``/proc/stat``."""
    cores = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *values = line.split()
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in values[:8])
            cores[int(name[3:])] = ((user + nice + system + irq + softirq + steal) / TICKS, steal / TICKS)
    return cores


def prioritise(pid: int, nice: int) -> None:
    """Give ``pid`` (all its threads) and its session's autogroup the niceness ``nice``.

    With autogroups (Linux's default on desktops and here), CPU is shared between sessions
    first, and a process's own niceness only counts within its session: every server
    and component started here has a session of its own.
    """
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, int(task), nice)


def percentile(values: list[int], share: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(share * len(values)))] / 1e6


class Bench:
    """One server, our component behind it, the load workers: started and stopped here, by PID."""

    def __init__(self, args: argparse.Namespace, name: str, directory: Path) -> None:
        self.args = args
        self.name = name
        self.directory = directory
        self.secret = "secret-" + secrets.token_hex(4)
        cls = SERVERS[name]
        cls.core = args.server_core
        if cls is LoadProsody:
            LoadProsody.extra = tuple(args.prosody_setting)
            LoadProsody.lua_profile = args.lua_profile
        #: The rooms of each target: the server's MUC, ours, and the baseline's (``--baseline``).
        self.mucs = {target: TARGETS[target] for target in args.targets}
        if args.baseline:
            self.mucs["base"] = TARGETS["base"]
        #: Our component domains (ours and the baseline's), by the target that runs it.
        self.domains = {target: muc.domain for target, muc in self.mucs.items() if muc.domain in (COMPONENT, BASELINE)}
        components = {domain: self.secret for domain in self.domains.values()}
        if cls is LoadEjabberd:
            LoadEjabberd.perf_map = args.perf
            LoadEjabberd.erl_options = tuple(args.erl_option)
            LoadEjabberd.separate = {domain: secret for domain, secret in components.items() if domain != COMPONENT}
            components = {COMPONENT: self.secret}
        self.server: LoadProsody | LoadEjabberd = cls(directory / name, components)
        #: Our component processes, by domain.
        self.components: dict[str, ComponentProcess] = {}
        self.workers: list[tuple[Any, Connection]] = []
        self.worker_pids: list[int] = []
        total = args.rooms * args.occupants
        self.users = [f"u{i}" for i in range(total)]

    def start(self) -> None:
        if isinstance(self.server, LoadProsody):
            self.server.add_users(self.users, PASSWORD)
            self.server.start()
        else:
            self.server.start()
            self.server.add_users(self.users, PASSWORD)
        for domain in self.domains.values():
            if domain not in self.components:
                self.components[domain] = self._start_component("base" if domain == BASELINE else "ours", domain)
        for process in self.components.values():
            process.wait_attached(timeout=60)
        if self.args.nice:
            for pid in [*self.server.cpu_pids(), *(process.pid for process in self.components.values())]:
                prioritise(pid, self.args.nice)
        self._start_workers()

    def _start_component(self, target: str, domain: str) -> ComponentProcess:
        args = self.args
        config = {
            "server": {"host": self.server.host, "port": self.server.port_of(domain)},
            "storage": {"url": f"sqlite:///{self.directory / f'{self.name}-{target}-muc.db'}"},
            "components": {
                domain: {
                    "secret": self.secret,
                    "services": ["muc"],
                    # No rate limits: the load sends several messages a second per user.
                    "muc": {"groupchat_burst": 0, "presence_burst": 0, **(args.muc_setting if target == "ours" else {})},
                    **(args.component_setting if target == "ours" else {}),
                }
            },
        }
        config_path = self.directory / f"{self.name}-{target}.toml"
        config_path.write_text(to_toml(config), encoding="utf-8")
        argv = pinned(args.server_core, ComponentProcess.default_command(config_path))
        env = None
        if target == "base":
            # The baseline's code first on the path: its component and services packages win.
            tree = self.args.baseline_tree
            env = {"PYTHONPATH": os.pathsep.join([str(tree), str(tree / "twistd-plugins")])}
        return ComponentProcess(config_path, self.directory / f"{self.name}-{target}.log", argv=argv, env=env)

    def _start_workers(self) -> None:
        args = self.args
        context = multiprocessing.get_context("fork")
        pause = 0.1 if self.name == "ejabberd" else 0.0
        shares: list[list[int]] = [[] for _ in range(args.workers)]
        for room in range(args.rooms):
            # A room's users share a worker, so that its creator enters before the others.
            shares[room % args.workers].extend(range(room * args.occupants, (room + 1) * args.occupants))
        for share in shares:
            plan = Plan(
                users=[self.users[i] for i in share],
                password=PASSWORD,
                host=self.server.host,
                port=self.server.c2s_port,
                domain=self.server.domain,
                rooms=[f"load{i // args.occupants}" for i in share],
                creators=[i % args.occupants == 0 for i in share],
                mucs=list(self.mucs.values()),
                core=args.load_core,
                login_pause=pause,
            )
            parent, child = context.Pipe()
            process = context.Process(target=worker, args=(child, plan), daemon=True)
            process.start()
            self.workers.append((process, parent))
        deadline = time.monotonic() + args.login_timeout
        for _process, conn in self.workers:
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                raise ServerError(f"a load worker did not log its users in within {args.login_timeout:g} s")
            message = conn.recv()
            if message[0] != "ready":
                raise ServerError(f"a load worker failed: {message[1]}")
            self.worker_pids.append(message[1])

    def stop(self) -> None:
        for process, conn in self.workers:
            if process.is_alive():
                try:
                    conn.send(("stop",))
                except OSError:
                    pass
        for process, _conn in self.workers:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(5)
        for process in self.components.values():
            process.stop()
        self.server.stop()

    # -- one measured run -------------------------------------------------

    def measure(self, target: str, rate: float) -> dict[str, Any]:
        """Offer ``rate`` deliveries a second to the MUC of ``target``: ``builtin``, ``ours`` or ``base``."""
        args = self.args
        muc = self.mucs[target]
        messages = rate / args.occupants
        total_users = len(self.users)
        settled = self._settle()
        start = time.monotonic_ns() + int((0.3 + args.warmup) * 1e9)
        end = start + int(args.seconds * 1e9)
        for (_process, conn), share in zip(self.workers, self._shares(), strict=True):
            conn.send(("run", muc, messages * share / total_users, start, end, args.warmup, args.drain, 0.5))
        server_pids = self.server.cpu_pids()
        ours = self.component_pids(target)
        load = [*self.worker_pids, os.getpid()]
        # The cost of a run is measured over all of it, warm-up and drain included, against every
        # reflection of what it sent: exact however late a starved server delivers. The rates and
        # the other load are measured over the window alone.
        begin = start - int(args.warmup * 1e9)
        time.sleep(max(0.0, (begin - time.monotonic_ns()) / 1e9))
        first = self._sample(server_pids, ours, load)
        lua_before = self._lua_counts()
        profile = self._profile_start(target, rate, server_pids)
        time.sleep(max(0.0, (start - time.monotonic_ns()) / 1e9))
        before = self._sample(server_pids, ours, load)
        time.sleep(max(0.0, (end - time.monotonic_ns()) / 1e9))
        after = self._sample(server_pids, ours, load)
        self._profile_stop(profile)
        results = []
        for _process, conn in self.workers:
            if not conn.poll(args.drain + args.seconds + 60):
                raise ServerError("a load worker did not report")
            kind, result = conn.recv()
            assert kind == "result", kind
            results.append(result)
        if self.args.lua_profile:
            time.sleep(0.6)  # the next dump of the counts
        last = self._sample(server_pids, ours, load)
        lua_after = self._lua_counts()
        figures = self._figures(target, rate, before, after, results)
        total = sum(r["total"] for r in results)
        per_k = max(total, 1) / 1000
        figures.update(
            settled_s=settled,
            all_delivered=total,
            bytes_per_delivered=sum(r["octets"] for r in results) / max(total, 1),
            stanza_id_share=sum(r["stanza_ids"] for r in results) / max(total, 1),
            all_offered=sum(r["sent_total"] for r in results) * args.occupants,
            server_cpu_per_1000=(last["server"] - first["server"]) / per_k,
            ours_cpu_per_1000=(last["ours"] - first["ours"]) / per_k,
            total_cpu_per_1000=(last["server"] - first["server"] + last["ours"] - first["ours"]) / per_k,
        )
        if settled >= 2:
            figures["flags"].append(f"{settled:.0f} s for the last backlog")
        missing = figures["all_offered"] - total
        if missing > 0.002 * figures["all_offered"]:
            figures["flags"].append(f"{missing} never delivered")
        if lua_after:
            self._print_lua_profile(figures, lua_before, lua_after)
        return figures

    def component_pids(self, target: str) -> list[int]:
        """Our processes whose CPU a run of *target* counts: for the built-in MUC, our idle component's."""
        component = self.components.get(self.domains.get(target, COMPONENT))
        return [component.pid] if component is not None else []

    def _settle(self) -> float:
        """Wait until the server and our components are idle (a run that fell behind may still be
        delivering its backlog, which the next run would pay for); the seconds waited, at most ``--settle``."""
        pids = [*self.server.cpu_pids(), *(process.pid for process in self.components.values())]
        began = time.monotonic()
        while True:
            before = sum(map(process_cpu, pids))
            time.sleep(0.5)
            waited = time.monotonic() - began
            if sum(map(process_cpu, pids)) - before < IDLE * 0.5 or waited >= self.args.settle:
                return waited

    def _lua_counts(self) -> dict[str, int]:
        if not isinstance(self.server, LoadProsody) or not self.args.lua_profile:
            return {}
        return self.server.lua_profile_counts()

    def _print_lua_profile(self, figures: dict[str, Any], before: dict[str, int], after: dict[str, int]) -> None:
        diff = {key: after[key] - before.get(key, 0) for key in after}
        total = sum(diff.values()) or 1
        per_k = max(figures["all_delivered"], 1) / 1000
        top = sorted(diff.items(), key=lambda item: -item[1])[:30]
        name = f"lua-{self.name}-{figures['target']}-{int(figures['rate'])}"
        (RESULTS / f"e2e-{name}.tsv").write_text(
            "".join(f"{n}\t{n / per_k:.1f}\t{key}\n" for key, n in sorted(diff.items(), key=lambda item: -item[1]))
        )
        print(f"\n{name}: {total} samples of 1,000 Lua instructions, {total / per_k:.0f} per 1,000 delivered", flush=True)
        for key, n in top:
            print(f"  {100 * n / total:5.1f}%  {n / per_k:7.1f}/1000  {key}")

    def _shares(self) -> list[int]:
        args = self.args
        counts = [0] * args.workers
        for room in range(args.rooms):
            counts[room % args.workers] += args.occupants
        return counts

    def _sample(self, server: list[int], ours: list[int], load: list[int]) -> dict[str, Any]:
        return {
            "at": time.monotonic(),
            "server": sum(map(process_cpu, server)),
            "ours": sum(map(process_cpu, ours)),
            "load": sum(map(process_cpu, load)),
            "server_wait": sum(map(run_queue_wait, [*server, *ours])),
            "load_wait": sum(map(run_queue_wait, load)),
            "cores": core_times(),
        }

    def _figures(
        self, target: str, rate: float, before: dict[str, Any], after: dict[str, Any], results: list[dict[str, Any]]
    ) -> dict[str, Any]:
        args = self.args
        seconds = after["at"] - before["at"]
        received = sum(r["received"] for r in results)
        sent = sum(r["sent"] for r in results)
        latencies: list[int] = []
        for r in results:
            values = array.array("q")
            values.frombytes(r["latencies"])
            latencies.extend(values)
        latencies.sort()
        server = after["server"] - before["server"]
        ours = after["ours"] - before["ours"]
        load = after["load"] - before["load"]
        cores = {
            core: (after["cores"][core][0] - busy, after["cores"][core][1] - steal)
            for core, (busy, steal) in before["cores"].items()
        }
        server_core = args.server_core
        load_core = args.load_core
        other: dict[str, float] = {}
        if server_core is not None and load_core is not None:
            other["server core"] = (cores[server_core][0] - server - ours) / seconds
            other["load core"] = (cores[load_core][0] - load) / seconds
        else:
            other["machine"] = (sum(busy for busy, _ in cores.values()) - server - ours - load) / seconds
        steal = sum(s for _, s in cores.values()) / seconds
        waits = {
            "server": (after["server_wait"] - before["server_wait"]) / seconds,
            "load": (after["load_wait"] - before["load_wait"]) / seconds,
        }
        flags = []
        if any(value > DISTURBED for value in waits.values()) or steal > 0.05:
            flags.append("disturbed")
        if (server + ours) / seconds >= BOUND:
            flags.append("server core full")
        if load / seconds >= BOUND:
            flags.append("load core full")
        offered = sent * args.occupants
        return {
            "server": self.name,
            "target": target,
            "rate": rate,
            "seconds": seconds,
            "sent": sent,
            "offered_per_s": offered / seconds,
            "delivered": received,
            "delivered_per_s": received / seconds,
            "fraction": received / offered if offered else float("nan"),
            "server_core_busy": (server + ours) / seconds,
            "server_busy": server / seconds,
            "ours_busy": ours / seconds,
            "load_core_busy": load / seconds,
            "p50_ms": percentile(latencies, 0.5),
            "p99_ms": percentile(latencies, 0.99),
            "latency_samples": len(latencies),
            "missing": offered - len(latencies),
            "late": sum(r["late"] for r in results),
            "drained_s": max(r["drained_ns"] for r in results) / 1e9,
            "other_cores": other,
            "run_queue_wait": waits,
            "steal": steal,
            "flags": flags,
        }

    # -- perf, on request ---------------------------------------------------

    def _profile_start(self, target: str, rate: float, pids: list[int]) -> tuple[subprocess.Popen[bytes], Path] | None:
        if not self.args.perf:
            return None
        out = self.directory / f"perf-{self.name}-{target}-{int(rate)}.data"
        command = ["perf", "record", "-q", "-F", str(self.args.perf_frequency), "-p", ",".join(map(str, pids)), "-o", str(out)]
        if self.args.perf_calls:
            command.insert(2, "-g")
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return process, out

    def _profile_stop(self, profile: tuple[subprocess.Popen[bytes], Path] | None) -> None:
        if profile is None:
            return
        process, out = profile
        process.send_signal(2)
        process.wait(30)
        report = subprocess.run(
            ["perf", "report", "-i", str(out), "--stdio", "--no-children", "--sort", "dso,sym"],
            capture_output=True, text=True, check=False,
        ).stdout
        lines = [line for line in report.splitlines() if line.strip() and not line.startswith("#")]
        text = "\n".join(lines[:40])
        keep = RESULTS / f"e2e-{out.stem}.txt"
        keep.write_text(report)
        print(f"\n{out.stem} (perf, server process, self time; whole report in {keep}):\n{text}\n", flush=True)
        modules = _by_module(lines)
        if modules:
            print("by shared object, and JIT code by Erlang module:")
            for name, share in modules[:25]:
                print(f"  {share:5.1f}%  {name}")


def _by_module(lines: list[str]) -> list[tuple[str, float]]:
    """Shares of a ``perf report --sort dso,sym`` summed by shared object, Erlang JIT code by module."""
    shares: dict[str, float] = {}
    for line in lines:
        fields = line.split()
        if not fields or not fields[0].endswith("%"):
            continue
        share = float(fields[0].rstrip("%"))
        if fields[1] == "[JIT]":
            symbol = fields[-1]
            module = symbol.lstrip("$").split(":")[0] if ":" in symbol else symbol
            name = "erlang " + module
        else:
            name = fields[1]
        shares[name] = shares.get(name, 0.0) + share
    return sorted(shares.items(), key=lambda item: -item[1])


def _number(value: float, digits: int = 0) -> str:
    if value != value:  # NaN
        return "-"
    return f"{value:,.{digits}f}"


def print_table(rows: list[dict[str, Any]], *, header: bool = True) -> None:
    head = [
        "server", "MUC", "offered/s", "delivered/s", "fraction", "CPU/1000 server", "CPU/1000 ours",
        "CPU/1000 total", "p50 ms", "p99 ms", "bytes", "stanza-id", "other cores", "waited", "flags",
    ]
    if header:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
    for row in rows:
        other = ", ".join(f"{value:.2f}" for value in row["other_cores"].values())
        waited = ", ".join(f"{value:.2f}" for value in row["run_queue_wait"].values())
        cells = [
            row["server"], row["target"], _number(row["offered_per_s"]), _number(row["delivered_per_s"]),
            _number(row["fraction"], 3), _number(row["server_cpu_per_1000"], 3), _number(row["ours_cpu_per_1000"], 3),
            _number(row["total_cpu_per_1000"], 3), _number(row["p50_ms"], 1), _number(row["p99_ms"], 1),
            _number(row["bytes_per_delivered"]), _number(row["stanza_id_share"], 2), other, waited,
            ", ".join(row["flags"]),
        ]
        print("| " + " | ".join(cells) + " |", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="prosody,ejabberd", help="comma-separated: prosody, ejabberd")
    parser.add_argument("--targets", default="builtin,builtin-mam,ours,ours-mam",
                        help="comma-separated, of: " + ", ".join(t for t in TARGETS if t != "base")
                             + " (the -mam ones archive every message)")
    parser.add_argument("--rates", default="4200,8400,12600,16800", help="offered deliveries a second, comma-separated")
    parser.add_argument("--rooms", type=int, default=10, help="rooms in each MUC (R)")
    parser.add_argument("--occupants", type=int, default=20, help="occupants of each room (K, 20 to 200)")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds of each run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load before each measurement")
    parser.add_argument("--drain", type=float, default=30.0, help="most seconds to wait for a run's backlog")
    parser.add_argument("--settle", type=float, default=30.0,
                        help="most seconds to wait before each run for the server and our components to be idle")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each MUC at each rate (alternating)")
    parser.add_argument("--workers", type=int, default=1, help="load processes, all on the load core")
    parser.add_argument("--server-core", type=int, default=0, help="core of the server and the component")
    parser.add_argument("--load-core", type=int, default=1, help="core of the load workers")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness of the server, the component and the load, and of their sessions' autogroups"
                             " (negative needs root): on a busy shared machine, keeps other work from taking"
                             " most of the measured cores")
    parser.add_argument("--no-pin", action="store_true", help="pin nothing")
    parser.add_argument("--login-timeout", type=float, default=300.0)
    parser.add_argument("--perf", action="store_true", help="perf record the server process during each run")
    parser.add_argument("--lua-profile", action="store_true",
                        help="count Prosody's Lua instructions by function during each run (mod_lua_profile)")
    parser.add_argument("--perf-frequency", type=int, default=499, help="with --perf, samples a second")
    parser.add_argument("--perf-calls", action="store_true", help="with --perf, record call graphs")
    parser.add_argument("--prosody-setting", action="append", default=[],
                        help="a line for Prosody's global section, e.g. 'network_settings = { read_size = 65536 }'")
    parser.add_argument("--erl-option", action="append", default=[],
                        help="a flag for ejabberd's Erlang VM (ERL_OPTIONS), e.g."
                             " '-kernel inet_default_listen_options [{buffer,65536}]'")
    parser.add_argument("--muc-setting", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting of our MUC (a TOML value, e.g. occupant_id=false), not the baseline's:"
                             " with --baseline HEAD, measures what the setting changes")
    parser.add_argument("--component-setting", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting of our component's domain (a TOML value, e.g."
                             " multicast=\"multicast.localhost\", ejabberd's mod_multicast), not the baseline's")
    parser.add_argument("--baseline", metavar="REV",
                        help="also run the MUC of this git revision (as target 'base'), alternating with the others")
    parser.add_argument("--short", action="store_true",
                        help="two rates, 4 s runs, targets builtin and ours: under five minutes for both servers")
    args = parser.parse_args(argv)
    if args.short:
        args.rates = "4200,12600" if args.rates == parser.get_default("rates") else args.rates
        args.targets = "builtin,ours" if args.targets == parser.get_default("targets") else args.targets
        args.seconds = 4.0
    args.targets = args.targets.split(",")
    try:
        args.muc_setting = tomllib.loads("\n".join(args.muc_setting))
    except tomllib.TOMLDecodeError as error:
        parser.error(f"--muc-setting: {error}")
    try:
        args.component_setting = tomllib.loads("\n".join(args.component_setting))
    except tomllib.TOMLDecodeError as error:
        parser.error(f"--component-setting: {error}")
    unknown = set(args.targets) - set(TARGETS) | ({"base"} & set(args.targets))
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))} (--baseline adds base)")
    if args.no_pin:
        args.server_core = args.load_core = None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("taskset") is None and args.server_core is not None:
        print("taskset not found; run with --no-pin", file=sys.stderr)
        return 2
    rates = [float(rate) for rate in args.rates.split(",")]
    with contextlib.ExitStack() as stack:
        if args.baseline:
            # The revision's files, exported: no worktree to clean up afterwards.
            tree = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nf-e2e-base-")))
            root = Path(__file__).resolve().parents[2]
            archive = subprocess.run(["git", "-C", str(root), "archive", args.baseline], capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
            args.baseline_tree = tree
        return _run(args, rates)


def _run(args: argparse.Namespace, rates: list[float]) -> int:
    rows: list[dict[str, Any]] = []
    if args.load_core is not None:
        os.sched_setaffinity(0, {args.load_core})
    if args.nice:
        prioritise(os.getpid(), args.nice)  # the load workers are forked from here
    RESULTS.mkdir(exist_ok=True)
    began = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"e2e-{stamp}.json"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    for name in args.servers.split(","):
        with tempfile.TemporaryDirectory(prefix=f"nf-e2e-{name}-") as scratch:
            bench = Bench(args, name, Path(scratch))
            try:
                setup = time.monotonic()
                bench.start()
                print(f"# {name}: {len(bench.users)} users in {args.rooms} rooms of {args.occupants}, in each MUC;"
                      f" ready in {time.monotonic() - setup:.0f} s", flush=True)
                for index, rate in enumerate(rates):
                    for repeat in range(args.repeat):
                        turn = (index + repeat) % len(bench.mucs)
                        targets = list(bench.mucs)
                        order = targets[turn:] + targets[:turn]
                        for target in order:
                            row = bench.measure(target, rate)
                            rows.append(row)
                            print_table([row], header=not rows[:-1])
            except ServerError as error:
                # The other server's figures are still worth having.
                print(f"# {name} failed: {error}", file=sys.stderr, flush=True)
                for target, process in bench.components.items():
                    print(f"# {target}'s log ends:\n{process.log_text()[-3000:]}", file=sys.stderr, flush=True)
                print(f"# {name}'s log ends:\n{bench.server.log_tail(30)}", file=sys.stderr, flush=True)
            finally:
                bench.stop()
                settings = {key: str(value) for key, value in vars(args).items()}
                out.write_text(json.dumps({"args": settings, "commit": commit, "machine": platform.node(),
                                           "cpus": os.cpu_count(), "rows": rows}, indent=1))
    print(f"\n## End to end: rooms of {args.occupants}, {args.rooms} rooms, {args.seconds:g} s runs"
          f" ({time.monotonic() - began:.0f} s in all)\n")
    print_table(rows)
    print("\nCPU/1000: CPU seconds per 1,000 delivered stanzas, from /proc/PID/stat, over the whole run. other"
          " cores: cores' worth of CPU that other processes used on the server core and on the load core. waited:"
          " seconds a second that the server and the component, and the load, were runnable but not running"
          f" (disturbed above {DISTURBED}). p50/p99: send to receipt, for messages sent in the measured window.")
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
