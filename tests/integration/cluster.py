"""Several Netherfield instances behind one ejabberd that balances their MUC domain, on one PostgreSQL.

`Cluster` starts a real ejabberd whose ``domain_balancing`` spreads each MUC
domain over its ``slots`` connections (``type: bare_destination``,
``global_routes: false``), a database of its own on the session's sandboxed
PostgreSQL, and real Netherfield processes, each run as an operator would
(``twistd -n netherfield --config FILE``) with its own ``[cluster]`` instance
name, all on that database. Each `Instance` keeps its process so that a test
can ``kill -9`` it, stop and continue it (SIGSTOP, SIGCONT) and start it
again; its output, across restarts, is one log file of its own. The lease
table is read with `Cluster.leases`, and each instance's rooms in memory with
`Instance.rooms_loaded` (its Prometheus endpoint).
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import signal
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import attrs
import psycopg
from slixmpp import JID
from slixmpp.exceptions import IqError, IqTimeout

from tests.integration.clients import client
from tests.integration.servers import ComponentProcess, EjabberdServer, ServerError, free_port, to_toml
from tests.integration.test_muc import create, join
from tests.storage.postgres import Database, PostgresServer

__all__ = [
    "MUC",
    "BalancingEjabberd",
    "Cluster",
    "Crowd",
    "Instance",
    "LeaseEvent",
    "LeaseRecorder",
    "LeaseRow",
    "Receipt",
    "Seat",
    "Traffic",
    "balance",
    "lease_events",
    "lease_key",
]

#: The balanced MUC domain.
MUC = "muc.localhost"
#: The environment variable that hands each instance the database password.
PASSWORD_ENV = "NETHERFIELD_CLUSTER_DB_PASSWORD"


def lease_key(room: str) -> str:
    """The lease key of the room with bare JID *room*."""
    return f"muc:{room}"


class BalancingEjabberd(EjabberdServer):
    """ejabberd with each domain of *balanced* spread over that many slots, and no global routes.

    Without ``global_routes: false`` every component on the listener would
    take a slot of the balanced domain too (see README "Running several
    instances").
    """

    def __init__(self, directory: Path | str, components: Mapping[str, str], balanced: Mapping[str, int]) -> None:
        self.balanced = dict(balanced)
        super().__init__(directory, components)

    def write_config(self) -> None:
        """ejabberd's configuration with ``domain_balancing`` for each balanced domain."""
        super().write_config()
        balance(self.directory / "ejabberd.yml", self.balanced)


def balance(path: Path, balanced: Mapping[str, int]) -> None:
    """Make the ejabberd configuration at *path* spread each domain of *balanced* over that many slots.

    Every component listener gets ``global_routes: false``, so that a
    connection registers only the domain it authenticated for.
    """
    text = path.read_text(encoding="utf-8").replace(
        "module: ejabberd_service\n", "module: ejabberd_service\n    global_routes: false\n"
    )
    if balanced:
        text += "domain_balancing:\n" + "".join(
            f"  {domain}:\n    type: bare_destination\n    component_number: {slots}\n"
            for domain, slots in balanced.items()
        )
    path.write_text(text, encoding="utf-8")


@attrs.frozen
class LeaseRow:
    """One row of the lease table, read at *at* (``time.monotonic()``)."""

    key: str
    owner: str
    epoch: int
    live: bool
    at: float

    @property
    def instance(self) -> str:
        """The instance name in the owner (an owner is ``instance/run``)."""
        return self.owner.split("/", 1)[0]


class Instance:
    """One Netherfield process of the cluster, under the name *name*; started again on the same config."""

    def __init__(
        self, name: str, domain: str, config_path: Path, log_path: Path, metrics_port: int, env: Mapping[str, str]
    ) -> None:
        self.name = name
        #: The MUC domain it serves.
        self.domain = domain
        self.config_path = config_path
        self.log_path = log_path
        self.metrics_port = metrics_port
        self._env = dict(env)
        self.process: ComponentProcess | None = None
        #: Every PID this instance has run as, oldest first.
        self.pids: list[int] = []

    def __repr__(self) -> str:
        return f"<Instance {self.name} pid={self.pid}>"

    @property
    def pid(self) -> int | None:
        """The running process's id, if one was started."""
        return None if self.process is None else self.process.pid

    @property
    def running(self) -> bool:
        """Whether the process is alive (a stopped one is alive)."""
        return self.process is not None and self.process.running

    def log_text(self) -> str:
        """Everything every run of this instance has written."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def start(self, *, wait: bool = True, timeout: float = 60.0) -> float:
        """Start the process; with *wait*, return once its domain attached. Returns the start time."""
        if self.running:
            raise ServerError(f"{self.name} is already running")
        offset = len(self.log_text())
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(f"=== {self.name} starts\n")
        began = time.monotonic()
        self.process = ComponentProcess(self.config_path, self.log_path, env=self._env)
        self.pids.append(self.process.pid)
        if wait:
            self.process.wait_attached(timeout=timeout, after=offset)
        return began

    def kill9(self) -> float:
        """SIGKILL the process, as a crash would; returns when it died (``time.monotonic()``)."""
        assert self.process is not None
        at = time.monotonic()
        self.process.kill9()
        return at

    def pause(self) -> None:
        """SIGSTOP the process: it keeps its sockets and does nothing, as if partitioned."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused process."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM the process (continuing it first, if paused) and wait for it."""
        if self.process is None:
            return
        if self.process.running:
            os.kill(self.process.pid, signal.SIGCONT)
        self.process.stop()

    def metrics(self) -> str:
        """The Prometheus page of the running process."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as page:
            text: str = page.read().decode("utf-8")
        return text

    def gauge(self, name: str) -> float:
        """The value of its domain's sample *name* (without the ``netherfield_`` prefix)."""
        pattern = rf'^netherfield_{re.escape(name)}\{{domain="{re.escape(self.domain)}"\}} (\S+)$'
        found = re.search(pattern, self.metrics(), re.MULTILINE)
        if found is None:
            raise ServerError(f"{self.name} reports no {name} for {self.domain}")
        return float(found.group(1))

    def rooms_loaded(self) -> int:
        """The rooms this instance has in memory."""
        return int(self.gauge("muc_rooms_loaded"))


class Cluster:
    """ejabberd balancing MUC domains, a fresh database, and Netherfield instances for each domain.

    *slots* gives each balanced domain its ``component_number``; *muc* holds
    the MUC's settings, *cluster* the ``[cluster]`` settings besides the
    instance name (``lease_seconds`` above all; short in tests). Every
    instance, whatever its domain, is on the one database.
    """

    def __init__(
        self,
        directory: Path,
        postgres: PostgresServer,
        *,
        slots: Mapping[str, int],
        muc: Mapping[str, Any] | None = None,
        cluster: Mapping[str, Any] | None = None,
    ) -> None:
        self.directory = directory
        self.postgres = postgres
        self.secret = "secret-cluster"
        self.slots = dict(slots)
        self.ejabberd = BalancingEjabberd(
            directory / "ejabberd", {domain: self.secret for domain in self.slots}, self.slots
        )
        self.muc = dict(muc or {})
        self.cluster = dict(cluster or {})
        self.database: Database | None = None
        self.instances: list[Instance] = []

    def start(self, instances: int) -> None:
        """Start ejabberd, create the database, and start *instances* instances of `MUC` one after another."""
        self.ejabberd.start()
        self.database = self.postgres.create_database()
        for _ in range(instances):
            self.add_instance()

    def add_instance(self, domain: str = MUC, *, wait: bool = True) -> Instance:
        """Start one more instance of *domain*, named after its first label: ``muc-N`` for `MUC`."""
        assert self.database is not None
        name = f"{domain.split('.')[0]}-{len(self.instances_of(domain)) + 1}"
        metrics_port = free_port()
        config = {
            "server": {"host": self.ejabberd.host, "port": self.ejabberd.component_port},
            "storage": {"url": self.database.url, "password_env": PASSWORD_ENV},
            "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
            "cluster": {"instance": name, **self.cluster},
            "components": {domain: {"secret": self.secret, "services": ["muc"], "muc": self.muc}},
        }
        config_path = self.directory / f"{name}.toml"
        config_path.write_text(to_toml(config), encoding="utf-8")
        instance = Instance(
            name, domain, config_path, self.directory / f"{name}.log", metrics_port, {PASSWORD_ENV: self.database.password}
        )
        self.instances.append(instance)
        instance.start(wait=wait)
        return instance

    def instances_of(self, domain: str) -> list[Instance]:
        """The instances of *domain*, in the order they were added."""
        return [instance for instance in self.instances if instance.domain == domain]

    def instance(self, name: str) -> Instance:
        """The instance called *name*."""
        return next(i for i in self.instances if i.name == name)

    def add_users(self, users: Sequence[str], password: str) -> None:
        """Create the accounts on ejabberd, all in one import."""
        self.ejabberd.add_users(list(users), password)

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one statement on the cluster's database (none for one that returns none)."""
        assert self.database is not None
        with psycopg.connect(self.database.url, password=self.database.password, autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return list(cursor.fetchall()) if cursor.description is not None else []

    def leases(self) -> dict[str, LeaseRow]:
        """The lease table now, by key (empty while no instance has taken one)."""
        at = time.monotonic()
        try:
            rows = self.query("SELECT key, owner, epoch, expires_at > clock_timestamp() FROM leases")
        except Exception as error:  # the table is created by the first instance with leases
            if "leases" in str(error) and "does not exist" in str(error):
                return {}
            raise
        return {key: LeaseRow(key, owner, int(epoch), bool(live), at) for key, owner, epoch, live in rows}

    def logs(self) -> str:
        """Every instance's log, each under its name."""
        return "\n".join(f"--- {i.name}\n{i.log_text()[-3000:]}" for i in self.instances)

    def stop(self) -> None:
        """Stop every instance and ejabberd, and drop the database."""
        for instance in self.instances:
            instance.stop()
        self.ejabberd.stop()
        if self.database is not None:
            self.postgres.drop_database(self.database.name)


@attrs.frozen
class Seat:
    """One occupant: user number *user* in *room* (a bare JID) under *nick*; *creator* made the room."""

    user: int
    room: str
    nick: str
    creator: bool


@attrs.define
class Receipt:
    """One groupchat with a body as one client received it."""

    room: str
    body: str
    user: int
    at: float


class Crowd:
    """Real clients (slixmpp) kept logged in across tests, on an event loop of their own in a thread.

    Each user sits in several rooms (``seats``); every groupchat with a body
    that any of them receives is recorded as a `Receipt`. `run` hands the
    loop a coroutine and waits for its result.
    """

    def __init__(self, server: EjabberdServer, users: Sequence[str], password: str, seats: Sequence[Seat]) -> None:
        self.server = server
        self.users = list(users)
        self.password = password
        self.seats = list(seats)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="crowd", daemon=True)
        self._thread.start()
        self._stack = AsyncExitStack()
        self.clients: list[Any] = []
        self.receipts: list[Receipt] = []
        #: The users each body reached.
        self.reached: dict[str, set[int]] = {}

    def run(self, coro: Any, timeout: float = 120.0) -> Any:
        """Run *coro* on the crowd's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, timeout), self.loop).result()

    def rooms(self) -> list[str]:
        """Every room, in the order of the seats."""
        return list(dict.fromkeys(seat.room for seat in self.seats))

    def seats_in(self, room: str) -> list[Seat]:
        """The occupants of *room*."""
        return [seat for seat in self.seats if seat.room == room]

    def _record(self, user: int, message: Any) -> None:
        body = message["body"]
        if body:
            self.receipts.append(Receipt(str(message["from"].bare), body, user, time.monotonic()))
            self.reached.setdefault(body, set()).add(user)

    async def login(self) -> None:
        """Log every user in, then create each room (its creator joins, an instant persistent room), then fill it."""
        self.clients = await asyncio.gather(
            *(self._stack.enter_async_context(client(self.server, user, self.password)) for user in self.users)
        )
        for n, xmpp in enumerate(self.clients):
            xmpp.add_event_handler("groupchat_message", lambda message, n=n: self._record(n, message))

        async def seat_all(seats: list[Seat]) -> None:
            for seat in seats:
                xmpp = self.clients[seat.user]
                if seat.creator:
                    await create(xmpp, seat.room, seat.nick, persistentroom=True)
                else:
                    await join(xmpp, seat.room, seat.nick, maxstanzas=0)

        creators = [seat for seat in self.seats if seat.creator]
        others = [seat for seat in self.seats if not seat.creator]
        for group in (creators, others):
            await asyncio.gather(*(seat_all([s for s in group if s.user == n]) for n in range(len(self.users))))

    def send(self, seat: Seat, body: str) -> None:
        """*seat*'s user sends a groupchat with *body* to its room (from the loop's thread)."""
        self.loop.call_soon_threadsafe(
            lambda: self.clients[seat.user].send_message(mto=JID(seat.room), mbody=body, mtype="groupchat")
        )

    def receivers(self, body: str) -> set[int]:
        """The users that received *body* so far."""
        return set(self.reached.get(body, ()))

    def exchange(self, tag: str, timeout: float = 30.0) -> dict[str, set[int]]:
        """Each occupant sends one groupchat; wait until each reached every occupant of its room.

        Returns, for each body that did not reach everyone in time, the users
        it did not reach (empty when all arrived).
        """
        wanted = {f"{tag} {seat.room} {seat.nick}": {s.user for s in self.seats_in(seat.room)} for seat in self.seats}
        for seat in self.seats:
            self.send(seat, f"{tag} {seat.room} {seat.nick}")
        deadline = time.monotonic() + timeout
        while True:
            missing = {body: users - self.receivers(body) for body, users in wanted.items()}
            missing = {body: users for body, users in missing.items() if users}
            if not missing or time.monotonic() >= deadline:
                return missing
            time.sleep(0.1)

    async def _self_ping(self, seat: Seat) -> str:
        try:
            await self.clients[seat.user].plugin["xep_0199"].send_ping(JID(f"{seat.room}/{seat.nick}"), timeout=10)
        except IqError as error:
            return str(error.iq["error"]["condition"])
        except IqTimeout:
            return "timeout"
        return "ok"

    def self_pings(self) -> dict[Seat, str]:
        """Each occupant's XEP-0410 self-ping: "ok", the error condition, or "timeout"."""

        async def everyone() -> list[str]:
            return list(await asyncio.gather(*(self._self_ping(seat) for seat in self.seats)))

        return dict(zip(self.seats, self.run(everyone()), strict=True))

    def close(self) -> None:
        """Log everyone out and stop the loop."""
        try:
            self.run(self._stack.aclose(), timeout=60)
        finally:
            self.clients = []
            # What slixmpp leaves running after a disconnect (its filters), and
            # the clients' finalizers, need their loop: end them while it runs.
            future = asyncio.run_coroutine_threadsafe(self._cancel_the_rest(), self.loop)
            future.result(10)
            gc.collect()
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()

    @staticmethod
    async def _cancel_the_rest() -> None:
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class LeaseRecorder:
    """Reads the lease table every *interval* seconds in a thread, keeping every change it sees."""

    def __init__(self, cluster: Cluster, interval: float = 0.1) -> None:
        self.cluster = cluster
        self.interval = interval
        #: Each key's rows, a new one whenever its owner, epoch or liveness changed.
        self.history: dict[str, list[LeaseRow]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="leases", daemon=True)

    def __enter__(self) -> LeaseRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _poll(self) -> None:
        while not self._stop.is_set():
            for key, row in self.cluster.leases().items():
                rows = self.history.setdefault(key, [])
                if not rows or (rows[-1].owner, rows[-1].epoch, rows[-1].live) != (row.owner, row.epoch, row.live):
                    rows.append(row)
            self._stop.wait(self.interval)

    def tenures(self, key: str) -> list[tuple[int, str]]:
        """The (epoch, owner) pairs *key* went through, in the order seen."""
        return list(dict.fromkeys((row.epoch, row.owner) for row in self.history.get(key, [])))


#: What `component.leases` logs when an instance takes, loses or releases a key.
_LEASE_LINE = re.compile(r"leases: (?P<owner>\S+) (?P<what>took|lost|released) (?P<key>\S+)(?: at epoch (?P<epoch>\d+))?")


@attrs.frozen
class LeaseEvent:
    """One lease line of an instance's log, in the order of that log."""

    instance: str
    owner: str
    what: str
    key: str
    epoch: int | None


def lease_events(instance: Instance) -> list[LeaseEvent]:
    """The lease lines of every run of *instance*."""
    return [
        LeaseEvent(
            instance.name, m["owner"], m["what"], m["key"], None if m["epoch"] is None else int(m["epoch"])
        )
        for m in _LEASE_LINE.finditer(instance.log_text())
    ]


class Traffic:
    """Groupchats into every room in rounds, one a room each *period* seconds, from its occupants in turn."""

    def __init__(self, crowd: Crowd, tag: str, period: float = 0.2) -> None:
        self.crowd = crowd
        self.tag = tag
        self.period = period
        #: Each body sent, with its room and when it was sent.
        self.sent: dict[str, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, name="traffic", daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _send(self) -> None:
        rooms = {room: self.crowd.seats_in(room) for room in self.crowd.rooms()}
        turn = 0
        while not self._stop.is_set():
            began = time.monotonic()
            for room, seats in rooms.items():
                seat = seats[turn % len(seats)]
                body = f"{self.tag}{turn} {room} {seat.nick}"
                self.sent[body] = (room, time.monotonic())
                self.crowd.send(seat, body)
            turn += 1
            self._stop.wait(max(0.0, self.period - (time.monotonic() - began)))
