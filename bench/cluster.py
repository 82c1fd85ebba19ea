"""Groupchat through one ejabberd to 1, 2 and 3 Netherfield instances sharing one PostgreSQL, at one offered load.

One ejabberd 23.01 carries four MUC domains side by side, each served by its
own Netherfield processes, each domain on a database of its own on one
sandboxed PostgreSQL:

- ``solo.localhost``: one instance without ``[cluster]``: no leases, no live state stored;
- ``live.localhost``: one instance without ``[cluster]`` but with the MUC's ``live_state``: each room's
  occupants, roles, presences and subject stored before they are announced, no leases;
- ``one.localhost``: one instance with ``[cluster]``: live state, and every room under a lease that
  fences its writes;
- ``two.localhost`` and ``three.localhost``: 2 and 3 instances behind ``domain_balancing``
  (``bare_destination``, ``component_number`` the number of instances).

The load is bench/e2e's (``bench/e2e/load.py``): the same users join their room
in every domain, then each target gets the same offered load in turn, the order
rotating from rate to rate. Each run's CPU is read from ``/proc/PID/stat``:
ejabberd's, and each instance's, per 1,000 groupchats delivered.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from bench.e2e.load import Muc
from bench.e2e.run import PASSWORD, PERSISTENT_FORM, RESULTS, Bench, _number, prioritise, process_cpu
from bench.e2e.servers import LoadEjabberd, pinned
from tests.integration.cluster import balance
from tests.integration.servers import ComponentProcess, ServerError, to_toml
from tests.storage.postgres import Database, PostgresServer, PostgresUnavailable, start_server

#: The environment variable that hands each instance its database password.
PASSWORD_ENV = "NETHERFIELD_BENCH_DB_PASSWORD"


@attrs.frozen
class Target:
    """One way of serving a MUC domain: *instances* processes, with ``[cluster]`` or without, live state or not."""

    domain: str
    instances: int
    cluster: bool
    #: The MUC's ``live_state`` (always on with ``[cluster]``).
    live_state: bool = False


TARGETS = {
    "1 solo": Target("solo.localhost", 1, cluster=False),
    "1 live": Target("live.localhost", 1, cluster=False, live_state=True),
    "1": Target("one.localhost", 1, cluster=True),
    "2": Target("two.localhost", 2, cluster=True),
    "3": Target("three.localhost", 3, cluster=True),
}


class ClusterEjabberd(LoadEjabberd):
    """The load ejabberd, with the domains of several instances balanced over one slot per instance."""

    balanced: dict[str, int] = {}

    def write_config(self) -> None:
        super().write_config()
        balance(self.directory / "ejabberd.yml", self.balanced)


class ClusterBench(Bench):
    """bench/e2e's bench with each target a MUC domain of our own, served by one or several instances."""

    def __init__(self, args: argparse.Namespace, directory: Path, postgres: PostgresServer) -> None:
        self.args = args
        self.name = "ejabberd"
        self.directory = directory
        self.secret = "secret-" + secrets.token_hex(4)
        self.postgres = postgres
        self.targets = {name: TARGETS[name] for name in args.targets}
        form = PERSISTENT_FORM if args.persistent else ""
        self.mucs = {name: Muc(target.domain, form=form) for name, target in self.targets.items()}
        self.domains = {name: target.domain for name, target in self.targets.items()}
        ClusterEjabberd.core = args.server_core
        ClusterEjabberd.separate = {}
        ClusterEjabberd.perf_map = False
        ClusterEjabberd.erl_options = ()
        ClusterEjabberd.balanced = {t.domain: t.instances for t in self.targets.values() if t.instances > 1}
        self.server = ClusterEjabberd(directory / "ejabberd", {t.domain: self.secret for t in self.targets.values()})
        #: Every instance, by its domain and number (what `Bench` waits on to be idle), and by target.
        self.components: dict[str, ComponentProcess] = {}
        self.instances: dict[str, list[ComponentProcess]] = {}
        self.databases: list[Database] = []
        self.workers = []
        self.worker_pids = []
        self.users = [f"u{i}" for i in range(args.rooms * args.occupants)]

    def start(self) -> None:
        self.server.start()
        self.server.add_users(self.users, PASSWORD)
        for name, target in self.targets.items():
            database = self.postgres.create_database()
            self.databases.append(database)
            # One after another: the first creates the tables.
            started = []
            for n in range(target.instances):
                process = self._start_instance(name, target, n, database)
                process.wait_attached(timeout=120)
                started.append(process)
                self.components[f"{target.domain}/{n + 1}"] = process
            self.instances[name] = started
        if self.args.nice:
            for pid in [*self.server.cpu_pids(), *(p.pid for ps in self.instances.values() for p in ps)]:
                prioritise(pid, self.args.nice)
        self._start_workers()

    def _start_instance(self, name: str, target: Target, n: int, database: Database) -> ComponentProcess:
        config: dict[str, Any] = {
            "server": {"host": self.server.host, "port": self.server.component_port},
            "storage": {"url": database.url, "password_env": PASSWORD_ENV},
            "components": {
                target.domain: {
                    "secret": self.secret,
                    "services": ["muc"],
                    # No rate limits: the load sends several messages a second per user.
                    "muc": {"groupchat_burst": 0, "presence_burst": 0, **({"live_state": True} if target.live_state else {})},
                }
            },
        }
        if target.cluster:
            config["cluster"] = {"instance": f"{target.domain.split('.')[0]}-{n + 1}"}
        stem = f"{target.domain.split('.')[0]}-{n + 1}"
        config_path = self.directory / f"{stem}.toml"
        config_path.write_text(to_toml(config), encoding="utf-8")
        argv = pinned(self.args.server_core, ComponentProcess.default_command(config_path))
        return ComponentProcess(
            config_path, self.directory / f"{stem}.log", argv=argv, env={PASSWORD_ENV: database.password}
        )

    def component_pids(self, target: str) -> list[int]:
        return [process.pid for process in self.instances[target]]

    def measure_instances(self, target: str, rate: float) -> dict[str, Any]:
        """`Bench.measure`, and each instance's CPU over the same run, per 1,000 delivered."""
        pids = self.component_pids(target)
        before = [process_cpu(pid) for pid in pids]
        row = self.measure(target, rate)
        after = [process_cpu(pid) for pid in pids]
        per_k = max(row["all_delivered"], 1) / 1000
        row["instances"] = len(pids)
        row["instance_cpu_per_1000"] = [(b - a) / per_k for a, b in zip(before, after, strict=True)]
        return row

    def stop(self) -> None:
        for process, conn in self.workers:
            if process.is_alive():
                with contextlib.suppress(OSError):
                    conn.send(("stop",))
        for process, _conn in self.workers:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(5)
        for processes in self.instances.values():
            for instance in processes:
                instance.stop()
        self.server.stop()
        for database in self.databases:
            with contextlib.suppress(Exception):
                self.postgres.drop_database(database.name)


def print_table(rows: list[dict[str, Any]], baseline: dict[float, dict[str, Any]]) -> None:
    head = [
        "instances", "offered/s", "delivered/s", "x solo", "fraction", "CPU/1000 ejabberd", "CPU/1000 ours (sum)",
        "x solo", "CPU/1000 each instance", "ejabberd cores", "ours cores", "p50 ms", "p99 ms", "flags",
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        base = baseline.get(row["rate"])
        cells = [
            row["target"], _number(row["offered_per_s"]), _number(row["delivered_per_s"]),
            _number(row["delivered_per_s"] / base["delivered_per_s"], 2) if base else "-",
            _number(row["fraction"], 3), _number(row["server_cpu_per_1000"], 3), _number(row["ours_cpu_per_1000"], 3),
            _number(row["ours_cpu_per_1000"] / base["ours_cpu_per_1000"], 2) if base else "-",
            ", ".join(_number(v, 3) for v in row["instance_cpu_per_1000"]),
            _number(row["server_busy"], 2), _number(row["ours_busy"], 2), _number(row["p50_ms"], 1), _number(row["p99_ms"], 1),
            ", ".join(row["flags"]),
        ]
        print("| " + " | ".join(cells) + " |", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated, of: " + ", ".join(TARGETS))
    parser.add_argument("--rates", default="3000,12000,24000", help="offered deliveries a second, comma-separated")
    parser.add_argument("--rooms", type=int, default=30, help="rooms in each domain")
    parser.add_argument("--occupants", type=int, default=10, help="occupants of each room")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds of each run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load before each measurement")
    parser.add_argument("--drain", type=float, default=30.0, help="most seconds to wait for a run's backlog")
    parser.add_argument("--settle", type=float, default=30.0, help="most seconds to wait for idle before a run")
    parser.add_argument("--persistent", action="store_true",
                        help="persistent rooms, whose every message is archived (under the room's lease with [cluster])")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each target at each rate")
    parser.add_argument("--workers", type=int, default=1, help="load processes, all on the load core")
    parser.add_argument("--server-core", type=int, default=0, help="core of ejabberd and every instance")
    parser.add_argument("--load-core", type=int, default=1, help="core of the load workers")
    parser.add_argument("--nice", type=int, default=0, help="niceness of everything measured (see bench.e2e)")
    parser.add_argument("--no-pin", action="store_true", help="pin nothing")
    parser.add_argument("--login-timeout", type=float, default=300.0)
    parser.add_argument("--short", action="store_true", help="two rates, 4 s runs, 12 rooms: a few minutes")
    args = parser.parse_args(argv)
    args.targets = args.targets.split(",")
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    if args.short:
        args.rates = "6000,24000" if args.rates == parser.get_default("rates") else args.rates
        args.seconds = 4.0
        args.rooms = 12 if args.rooms == parser.get_default("rooms") else args.rooms
    if args.no_pin:
        args.server_core = args.load_core = None
    # What bench/e2e's Bench reads besides.
    args.perf = args.perf_calls = args.lua_profile = False
    args.baseline = None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("ejabberdctl") is None:
        print("ejabberd is not installed", file=sys.stderr)
        return 2
    if shutil.which("taskset") is None and args.server_core is not None:
        print("taskset not found; run with --no-pin", file=sys.stderr)
        return 2
    try:
        postgres = start_server()
    except PostgresUnavailable as error:
        print(f"PostgreSQL cannot run here: {error}", file=sys.stderr)
        return 2
    try:
        return _run(args, postgres)
    finally:
        postgres.destroy()


def _run(args: argparse.Namespace, postgres: PostgresServer) -> int:
    rates = [float(rate) for rate in args.rates.split(",")]
    if args.load_core is not None:
        os.sched_setaffinity(0, {args.load_core})
    if args.nice:
        prioritise(os.getpid(), args.nice)
    RESULTS.mkdir(exist_ok=True)
    began = time.monotonic()
    out = RESULTS / f"cluster-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}.json"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nf-cluster-") as scratch:
        bench = ClusterBench(args, Path(scratch), postgres)
        try:
            setup = time.monotonic()
            bench.start()
            print(f"# {len(bench.users)} users in {args.rooms} rooms of {args.occupants} in each of"
                  f" {len(bench.targets)} domains; ready in {time.monotonic() - setup:.0f} s", flush=True)
            names = list(bench.targets)
            for index, rate in enumerate(rates):
                for repeat in range(args.repeat):
                    turn = (index + repeat) % len(names)
                    for name in names[turn:] + names[:turn]:
                        row = bench.measure_instances(name, rate)
                        rows.append(row)
                        print(f"# {name}: {row['delivered_per_s']:,.0f} delivered/s,"
                              f" ejabberd {row['server_cpu_per_1000']:.3f} and ours {row['ours_cpu_per_1000']:.3f}"
                              f" CPU s per 1,000", flush=True)
        except ServerError as error:
            print(f"# failed: {error}", file=sys.stderr, flush=True)
            for name, processes in bench.instances.items():
                for process in processes:
                    print(f"# {name}'s log ends:\n{process.log_text()[-3000:]}", file=sys.stderr, flush=True)
            print(f"# ejabberd's log ends:\n{bench.server.log_tail(30)}", file=sys.stderr, flush=True)
        finally:
            bench.stop()
            settings = {key: str(value) for key, value in vars(args).items()}
            out.write_text(json.dumps({"args": settings, "commit": commit, "machine": platform.node(),
                                       "cpus": os.cpu_count(), "rows": rows}, indent=1))
    solo = {row["rate"]: row for row in rows if row["target"] == "1 solo"}
    print(f"\n## Cluster: rooms of {args.occupants}, {args.rooms} rooms a domain, {args.seconds:g} s runs"
          f" ({time.monotonic() - began:.0f} s in all)\n")
    print_table(rows, solo)
    print("\n1 solo: one instance without [cluster] (no leases, no live state stored); 1 live: the same with the"
          " MUC's live_state; 1, 2, 3: that many instances with [cluster] (live state and leases), behind"
          " domain_balancing for 2 and 3. "
          + ("Rooms are persistent: each groupchat is archived before it is reflected." if args.persistent
             else "Rooms are temporary (instant) rooms: a groupchat is not archived.")
          + " CPU/1000: CPU seconds per 1,000 delivered groupchats over the whole run (warm-up and drain included); x solo: the ratio to 1 solo at the same rate. ejabberd"
          " cores, ours cores: the CPU of ejabberd and of the target's instances in the measured window, in cores"
          " (together near 1.0 with everything pinned to one core: that core was the bound).")
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
