"""A soak of the MUC behind a real Prosody, with faults on a schedule.

::

    .venv/bin/python -m bench.soak --minutes 30
    .venv/bin/python -m bench.soak --minutes 2      # the short run

It starts a sandboxed Prosody on free loopback ports, the component
(``twistd -n netherfield``) with the MUC on a SQLite file, and slixmpp
clients that each sit in two of the rooms (persistent ones) and talk at a
steady rate: groupchat with numbered bodies, private messages, presence
updates, and one client that leaves and comes back. On a schedule it
restarts Prosody, kills the component with SIGKILL (and starts it again on
the same database), and stalls storage (another process holds an exclusive
SQLite lock for some seconds). Clients reconnect and re-enter rooms the way
a careful client does: after a lost session, and when the room says they
are not in it.

At the end it prints, and writes to ``bench/results/soak-<date>-<time>.json``:
the component's RSS over time (from /proc/PID/status), groupchat and private
messages sent and received per client (a message is lost when its sender
never saw it reflected), losses by the fault window they fell in (from 2 s
before the fault, for what was in flight, until the first round trip after
it), the time
from each fault to the first groupchat round trip after it, and the errors
clients received by condition. Everything listens on 127.0.0.1, every wait
is bounded, and every process it started is stopped by PID at the end, on
Ctrl-C too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import attrs
import slixmpp

from tests.integration.servers import ComponentProcess, ProsodyServer, ServerError, to_toml

DOMAIN = "conference.localhost"
MUC = "http://jabber.org/protocol/muc"
MUC_USER = MUC + "#user"
MUC_OWNER = MUC + "#owner"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
RESULTS = Path(__file__).resolve().parent / "results"
#: Seconds after the last message for stragglers to arrive.
GRACE = 8.0
#: A fault's window opens this long before it: messages then are still in flight when it hits.
LEAD = 2.0


def now() -> float:
    return time.monotonic()


# -- what is measured -------------------------------------------------------------


@attrs.define
class Sent:
    """One groupchat message, and who should see it."""

    sender: str
    room: str
    seq: int
    at: float
    expected: set[str]
    seen_by: set[str] = attrs.field(factory=set)
    reflected_at: float | None = None
    #: The error the room (or the server) answered it with, if any.
    refused: str | None = None


@attrs.define
class Fault:
    """One fault: when it began, when its action was done, when a round trip worked again."""

    kind: str
    start: float
    done: float | None = None
    recovered: float | None = None
    detail: str = ""


class Ledger:
    """Everything the clients saw, keyed so that losses can be counted."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.messages: dict[tuple[str, str, int], Sent] = {}
        self.pm_sent: Counter[str] = Counter()
        self.pm_expected: Counter[str] = Counter()
        self.pm_received: Counter[str] = Counter()
        self.presences_sent: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.errors_by_client: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.faults: list[Fault] = []
        self.rss: list[tuple[float, int, int]] = []
        self.reconnects: Counter[str] = Counter()
        self.rejoins: Counter[str] = Counter()

    def round_trip(self, at: float) -> None:
        """A groupchat sent at ``at`` came back: it ends any fault before it that had not recovered."""
        for fault in self.faults:
            if fault.recovered is None and fault.done is not None and at >= fault.start:
                fault.recovered = now()

    def window_of(self, at: float) -> str:
        """The fault window a moment falls in (from just before a fault until it recovered), or 'steady'."""
        for index, fault in enumerate(self.faults):
            end = fault.recovered if fault.recovered is not None else float("inf")
            if fault.start - LEAD <= at <= end:
                return f"{index + 1}:{fault.kind}"
        return "steady"


# -- a client -----------------------------------------------------------------------


class Client(slixmpp.ClientXMPP):
    """A loopback client (plain TCP) that keeps its rooms and counts what it receives."""

    def __init__(self, soak: Soak, name: str, jid: str, password: str, rooms: list[str]) -> None:
        super().__init__(jid, password, plugin_config={"feature_mechanisms": {"unencrypted_plain": True}})
        self.enable_starttls = False
        self.enable_direct_tls = False
        self.enable_plaintext = True
        self.register_plugin("xep_0199")
        self.soak = soak
        self.name = name
        self.rooms = rooms
        self.joined: dict[str, bool] = dict.fromkeys(rooms, False)
        self.joining: dict[str, float] = {}
        #: Rooms this client left on purpose, and does not re-enter by itself.
        self.away: set[str] = set()
        self.session = asyncio.Event()
        self.add_event_handler("session_start", self._started)
        self.add_event_handler("disconnected", self._lost)
        self.add_event_handler("message", self._message)
        self.add_event_handler("presence", self._presence)

    @property
    def nick(self) -> str:
        return self.name

    async def _started(self, _event: Any) -> None:
        self.send_presence()
        self.session.set()
        for room in self.rooms:
            if room not in self.away:
                self.join(room)

    def _lost(self, _event: Any) -> None:
        self.session.clear()
        self.joined = dict.fromkeys(self.rooms, False)
        self.joining.clear()

    def join(self, room: str) -> None:
        """Enter ``room`` (without history), at most once every two seconds."""
        if not self.session.is_set() or now() - self.joining.get(room, -10.0) < 2.0:
            return
        self.joining[room] = now()
        presence = self.make_presence(pto=f"{room}/{self.nick}")
        x = ET.Element(f"{{{MUC}}}x")
        ET.SubElement(x, f"{{{MUC}}}history", maxstanzas="0")
        presence.append(x)
        presence.send()

    def leave(self, room: str) -> None:
        self.joined[room] = False
        self.send_presence(pto=f"{room}/{self.nick}", ptype="unavailable")

    def _presence(self, presence: Any) -> None:
        room = presence["from"].bare
        if room not in self.joined or presence["from"].resource != self.nick:
            return
        if presence["type"] == "error":
            self._error(presence)
            self.joined[room] = False
            return
        x = presence.xml.find(f"{{{MUC_USER}}}x")
        codes = {status.get("code") for status in x.iterfind(f"{{{MUC_USER}}}status")} if x is not None else set()
        if "110" not in codes:
            return
        if presence["type"] == "unavailable":
            self.joined[room] = False
            return
        self.joined[room] = True
        if "201" in codes:
            self.soak.background.add(asyncio.ensure_future(self.soak.configure(self, room)))

    def _error(self, stanza: Any) -> str:
        error = stanza.xml.find("{jabber:client}error")
        condition = "no-condition"
        if error is not None:
            for child in error:
                if child.tag.startswith(f"{{{STANZAS}}}") and not child.tag.endswith("}text"):
                    condition = child.tag.split("}")[1]
                    break
        self.soak.ledger.errors[f"{stanza.name} {condition}"] += 1
        self.soak.ledger.errors_by_client[self.name][condition] += 1
        return condition

    def _message(self, message: Any) -> None:
        sender = message["from"]
        room = sender.bare
        if message["type"] == "error":
            condition = self._error(message)
            parts = (message["id"] or "").split("|")
            if len(parts) == 3 and parts[0] == self.name:
                refused = self.soak.ledger.messages.get((parts[0], parts[1], int(parts[2])))
                if refused is not None:
                    refused.refused = condition
            if room in self.joined and condition in ("not-acceptable", "item-not-found"):
                # The room does not have us (a restart forgot us): enter again.
                self.joined[room] = False
                self.soak.ledger.rejoins[self.name] += 1
                self.join(room)
            return
        body = message["body"] or ""
        parts = body.split()
        if message["type"] == "groupchat" and len(parts) == 4 and parts[0] == "soak":
            key = (parts[1], parts[2], int(parts[3]))
            sent = self.soak.ledger.messages.get(key)
            if sent is None:
                return
            sent.seen_by.add(self.name)
            if parts[1] == self.name and sent.reflected_at is None:
                sent.reflected_at = now()
                self.soak.ledger.round_trip(sent.at)
        elif message["type"] == "chat" and len(parts) == 3 and parts[0] == "pm":
            self.soak.ledger.pm_received[self.name] += 1


# -- processes -------------------------------------------------------------------------


class Processes:
    """Prosody, the component and storage stalls: started here, stopped here, by PID."""

    def __init__(self, directory: Path, users: list[str], password: str) -> None:
        self.directory = directory
        self.secret = "secret-" + secrets.token_hex(4)
        self.server = ProsodyServer(directory / "prosody", {DOMAIN: self.secret})
        self.users = users
        self.password = password
        self.database = directory / "muc.db"
        self.config_path = directory / "netherfield.toml"
        self.component: ComponentProcess | None = None
        self.stalls: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        self.server.start()
        for user in self.users:
            self.server.register(user, self.password)
        config = {
            "server": {"host": self.server.host, "port": self.server.component_port},
            "storage": {"url": f"sqlite:///{self.database}"},
            "components": {DOMAIN: {"secret": self.secret, "services": ["muc"], "muc": {}}},
        }
        self.config_path.write_text(to_toml(config), encoding="utf-8")
        self.start_component()

    def start_component(self) -> None:
        log = self.directory / "component.log"
        offset = log.stat().st_size if log.exists() else 0
        self.component = ComponentProcess(self.config_path, log)
        self.component.wait_for_log(
            self.component.attached_line(DOMAIN, self.server.host, self.server.component_port), 30, after=offset
        )

    def kill_component(self) -> None:
        assert self.component is not None
        self.component.kill9()

    def stall_storage(self, seconds: float) -> str:
        """Another process takes SQLite's exclusive lock on the database and holds it."""
        sqlite = shutil.which("sqlite3")
        if sqlite is not None:
            command = [sqlite, str(self.database)]
        else:
            command = [sys.executable, "-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                       "for line in sys.stdin: c.execute(line)", str(self.database)]
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        self.stalls.append(process)
        assert process.stdin is not None
        if sqlite is not None:
            process.stdin.write(b".timeout 10000\n")
        process.stdin.write(b"BEGIN EXCLUSIVE;\n")
        process.stdin.flush()
        time.sleep(seconds)
        process.stdin.write(b"COMMIT;\n")
        process.stdin.close()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        return f"{' '.join(Path(command[0]).name.split())} held BEGIN EXCLUSIVE for {seconds:g} s"

    def component_pid(self) -> int | None:
        if self.component is None or not self.component.running:
            return None
        return self.component.pid

    def stop(self) -> None:
        for process in self.stalls:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=5)
        if self.component is not None:
            self.component.stop()
        self.server.stop()


def rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# -- the run -------------------------------------------------------------------------


FAULT_KINDS = ("prosody-restart", "component-kill", "storage-stall")


def schedule(seconds: float) -> list[tuple[float, str]]:
    """Faults from 15% of the run to its last 25%, at least 30 s apart, cycling through the kinds."""
    first, last = seconds * 0.15, seconds * 0.75
    count = max(1, min(len(FAULT_KINDS) * 20, int((last - first) // 30) + 1))
    step = (last - first) / max(count - 1, 1)
    return [(first + index * step, FAULT_KINDS[index % len(FAULT_KINDS)]) for index in range(count)]


class Soak:
    """The clients, the load, the faults and the report."""

    def __init__(self, args: argparse.Namespace, directory: Path) -> None:
        self.args = args
        self.seconds = args.minutes * 60
        self.t0 = now()
        self.ledger = Ledger(self.t0)
        self.rooms = [f"soak{index}@{DOMAIN}" for index in range(args.rooms)]
        self.users = [f"soak{index}-{secrets.token_hex(2)}" for index in range(args.clients)]
        self.password = secrets.token_urlsafe(10)
        self.processes = Processes(directory, self.users, self.password)
        self.clients: list[Client] = []
        self.configured: set[str] = set()
        #: Tasks started from stanza handlers, kept until the end so that none is collected mid-way.
        self.background: set[asyncio.Future[Any]] = set()
        self.sequence: Counter[tuple[str, str]] = Counter()
        self.random = random.Random(args.seed)

    def elapsed(self, at: float | None = None) -> float:
        return (at if at is not None else now()) - self.t0

    async def configure(self, client: Client, room: str) -> None:
        """The first to enter a new room makes it persistent, so it outlives a component restart."""
        iq = client.make_iq_set(ito=room)
        query = ET.SubElement(iq.xml, f"{{{MUC_OWNER}}}query")
        form = ET.SubElement(query, "{jabber:x:data}x", type="submit")
        for var, value in (("FORM_TYPE", MUC + "#roomconfig"), ("muc#roomconfig_persistentroom", "1")):
            field = ET.SubElement(form, "{jabber:x:data}field", var=var)
            ET.SubElement(field, "{jabber:x:data}value").text = value
        with contextlib.suppress(Exception):
            await iq.send(timeout=10)
            self.configured.add(room)

    async def keep_connected(self, client: Client) -> None:
        """Connect, and connect again whenever the session is lost (Prosody restarts)."""
        first = True
        while not self.stopping.is_set():
            if not client.session.is_set():
                if not first:
                    self.ledger.reconnects[client.name] += 1
                first = False
                client.connect(self.processes.server.host, self.processes.server.c2s_port)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(client.session.wait(), 5)
                if not client.session.is_set():
                    client.cancel_connection_attempt()
                    client.abort()
                    await asyncio.sleep(1.0)
                    continue
            await asyncio.sleep(0.5)
            for room, joined in client.joined.items():
                if not joined and room not in client.away:
                    client.join(room)

    async def talk(self, client: Client, index: int) -> None:
        """Groupchat at a steady rate in each room, a private message and a presence now and then."""
        period = 1.0 / self.args.rate
        await asyncio.sleep(period * index / len(self.clients))
        tick = 0
        while now() < self.talk_until:
            tick += 1
            for room in client.rooms:
                if client.joined.get(room) and client.session.is_set():
                    self.sequence[(client.name, room)] += 1
                    seq = self.sequence[(client.name, room)]
                    expected = {c.name for c in self.clients if c.joined.get(room) and c.session.is_set()}
                    self.ledger.messages[(client.name, room, seq)] = Sent(client.name, room, seq, now(), expected)
                    message = client.make_message(mto=room, mbody=f"soak {client.name} {room} {seq}", mtype="groupchat")
                    message["id"] = f"{client.name}|{room}|{seq}"
                    message.send()
            if tick % 5 == 0:
                self._private(client)
            if tick % 15 == 0 and client.session.is_set():
                for room in client.rooms:
                    if client.joined.get(room):
                        self.ledger.presences_sent[client.name] += 1
                        status = self.random.choice(("away", "chat", "dnd", "xa"))
                        client.send_presence(pto=f"{room}/{client.nick}", pshow=status, pstatus=f"tick {tick}")
            await asyncio.sleep(period)

    def _private(self, client: Client) -> None:
        rooms = [room for room in client.rooms if client.joined.get(room)]
        if not rooms or not client.session.is_set():
            return
        room = self.random.choice(rooms)
        others = [c for c in self.clients if c is not client and c.joined.get(room) and c.session.is_set()]
        if not others:
            return
        target = self.random.choice(others)
        self.ledger.pm_sent[client.name] += 1
        self.ledger.pm_expected[target.name] += 1
        client.send_message(mto=f"{room}/{target.nick}", mbody=f"pm {client.name} {self.ledger.pm_sent[client.name]}",
                            mtype="chat")

    async def churn(self, client: Client) -> None:
        """One client leaves a room and comes back, over and over."""
        room = client.rooms[0]
        while now() < self.talk_until:
            await asyncio.sleep(10)
            if client.joined.get(room):
                client.away.add(room)
                client.leave(room)
                await asyncio.sleep(3)
            client.away.discard(room)
            client.join(room)

    async def sample_rss(self) -> None:
        while not self.stopping.is_set():
            pid = self.processes.component_pid()
            if pid is not None:
                rss = rss_kb(pid)
                if rss is not None:
                    self.ledger.rss.append((round(self.elapsed(), 1), pid, rss))
            await asyncio.sleep(self.args.rss_every)

    async def faults(self) -> None:
        for at, kind in schedule(self.seconds):
            delay = self.t0 + at - now()
            if delay > 0:
                await asyncio.sleep(delay)
            fault = Fault(kind, now())
            self.ledger.faults.append(fault)
            print(f"[{self.elapsed():6.1f} s] fault {len(self.ledger.faults)}: {kind}", flush=True)
            if kind == "prosody-restart":
                await asyncio.to_thread(self.processes.server.restart)
                fault.detail = "prosody stopped (SIGTERM) and started on the same ports"
            elif kind == "component-kill":
                await asyncio.to_thread(self.processes.kill_component)
                await asyncio.to_thread(self.processes.start_component)
                fault.detail = "component killed with SIGKILL, started again on the same database"
            else:
                fault.detail = await asyncio.to_thread(self.processes.stall_storage, self.args.stall_seconds)
            fault.done = now()

    async def run(self) -> None:
        self.stopping = asyncio.Event()
        self.talk_until = self.t0 + self.seconds - GRACE
        await asyncio.to_thread(self.processes.start)
        self.t0 = self.ledger.t0 = now()
        self.talk_until = self.t0 + self.seconds - GRACE
        for index, user in enumerate(self.users):
            rooms = [self.rooms[index % len(self.rooms)], self.rooms[(index + 1) % len(self.rooms)]]
            client = Client(self, f"c{index}", f"{user}@localhost/soak", self.password, rooms)
            self.clients.append(client)
        self.churner = self.clients[-1]
        tasks = [asyncio.ensure_future(self.keep_connected(client)) for client in self.clients]
        tasks.append(asyncio.ensure_future(self.sample_rss()))
        faults = asyncio.ensure_future(self.faults())
        await asyncio.sleep(3)  # everyone in, rooms created
        talkers = [asyncio.ensure_future(self.talk(client, index)) for index, client in enumerate(self.clients)]
        talkers.append(asyncio.ensure_future(self.churn(self.churner)))
        try:
            await asyncio.gather(*talkers)
            await asyncio.sleep(max(0.0, self.t0 + self.seconds - now()))
            await asyncio.wait_for(faults, timeout=60)
        finally:
            self.stopping.set()
            for task in [*tasks, *talkers, faults]:
                task.cancel()
            for client in self.clients:
                with contextlib.suppress(Exception):
                    client.abort()

    # -- the report --------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        ledger = self.ledger
        per_client: dict[str, dict[str, int]] = {}
        for client in self.clients:
            mine = [m for m in ledger.messages.values() if m.sender == client.name]
            expected = sum(1 for m in ledger.messages.values() if client.name in m.expected)
            received = sum(1 for m in ledger.messages.values() if client.name in m.expected and client.name in m.seen_by)
            per_client[client.name] = {
                "groupchat_sent": len(mine),
                "reflected": sum(1 for m in mine if m.reflected_at is not None),
                "lost": sum(1 for m in mine if m.reflected_at is None),
                "lost_with_error": sum(1 for m in mine if m.reflected_at is None and m.refused is not None),
                "fanout_expected": expected,
                "fanout_received": received,
                "pm_sent": ledger.pm_sent[client.name],
                "pm_expected": ledger.pm_expected[client.name],
                "pm_received": ledger.pm_received[client.name],
                "presences_sent": ledger.presences_sent[client.name],
                "reconnects": ledger.reconnects[client.name],
                "rejoins": ledger.rejoins[client.name],
                "errors": sum(ledger.errors_by_client[client.name].values()),
            }
        windows: dict[str, dict[str, int]] = defaultdict(lambda: {"sent": 0, "lost": 0, "lost_with_error": 0})
        for message in ledger.messages.values():
            window = windows[ledger.window_of(message.at)]
            window["sent"] += 1
            window["lost"] += message.reflected_at is None
            window["lost_with_error"] += message.reflected_at is None and message.refused is not None
        faults = []
        for index, fault in enumerate(ledger.faults):
            name = f"{index + 1}:{fault.kind}"
            faults.append({
                "fault": name,
                "at_s": round(self.elapsed(fault.start), 1),
                "action_s": round(fault.done - fault.start, 1) if fault.done else None,
                "recovered_after_s": round(fault.recovered - fault.start, 1) if fault.recovered else None,
                "recovered_after_action_s": round(fault.recovered - fault.done, 1) if fault.recovered and fault.done else None,
                "sent_in_window": windows[name]["sent"],
                "lost_in_window": windows[name]["lost"],
                "lost_with_error": windows[name]["lost_with_error"],
                "detail": fault.detail,
            })
        rss = [kb for _, _, kb in ledger.rss]
        processes: dict[int, list[int]] = defaultdict(list)
        for _, pid, kb in ledger.rss:
            processes[pid].append(kb)
        return {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "settings": {key: value for key, value in vars(self.args).items() if key != "output"},
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
            "clients": per_client,
            "faults": faults,
            "steady": windows["steady"],
            "lost": [
                {"sender": m.sender, "room": m.room, "seq": m.seq, "t_s": round(self.elapsed(m.at), 1),
                 "window": ledger.window_of(m.at), "error": m.refused}
                for m in ledger.messages.values() if m.reflected_at is None
            ],
            "errors": dict(ledger.errors.most_common()),
            "rss": {
                "samples": [{"t_s": t, "pid": pid, "rss_kb": kb} for t, pid, kb in ledger.rss],
                "min_kb": min(rss, default=None),
                "max_kb": max(rss, default=None),
                "first_kb": rss[0] if rss else None,
                "last_kb": rss[-1] if rss else None,
                # Each component process apart: a sample just after a restart is a process still loading.
                "processes": [
                    {"pid": pid, "samples": len(kbs), "first_kb": kbs[0], "max_kb": max(kbs), "last_kb": kbs[-1]}
                    for pid, kbs in processes.items()
                ],
            },
        }


def print_report(result: dict[str, Any]) -> None:
    def table(headers: list[str], rows: list[list[Any]]) -> None:
        cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in row] for row in rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
        for number, row in enumerate(cells):
            print("| " + " | ".join(cell.rjust(widths[i]) for i, cell in enumerate(row)) + " |")
            if number == 0:
                print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        print()

    print("\n## Clients\n")
    keys = ["groupchat_sent", "reflected", "lost", "lost_with_error", "fanout_expected", "fanout_received",
            "pm_sent", "pm_expected", "pm_received", "presences_sent", "reconnects", "rejoins", "errors"]
    table(["client", *keys], [[name, *(row[k] for k in keys)] for name, row in result["clients"].items()])
    print("## Faults\n")
    fkeys = ["at_s", "action_s", "recovered_after_s", "recovered_after_action_s", "sent_in_window", "lost_in_window",
             "lost_with_error"]
    table(["fault", *fkeys], [[f["fault"], *(f[k] for k in fkeys)] for f in result["faults"]])
    steady = result["steady"]
    print(f"Outside fault windows: {steady['sent']} groupchat sent, {steady['lost']} lost.\n")
    print("## Errors received, by condition\n")
    table(["stanza condition", "count"], [[k, v] for k, v in result["errors"].items()] or [["(none)", 0]])
    rss = result["rss"]
    print("## Component RSS (KiB)\n")
    samples = rss["samples"]
    shown = samples[:: max(1, len(samples) // 12)] + samples[-1:] if samples else []
    table(["t (s)", "pid", "RSS KiB"], [[s["t_s"], s["pid"], s["rss_kb"]] for s in shown])
    table(["process", "samples", "first KiB", "max KiB", "last KiB"],
          [[p["pid"], p["samples"], p["first_kb"], p["max_kb"], p["last_kb"]] for p in rss["processes"]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the soak runs (default 30; 2 is the short run)")
    parser.add_argument("--clients", type=int, default=6, help="slixmpp clients, each in two rooms (default 6)")
    parser.add_argument("--rooms", type=int, default=3, help="rooms (default 3)")
    parser.add_argument("--rate", type=float, default=0.5, help="groupchat messages a second per client per room (default 0.5)")
    parser.add_argument("--stall-seconds", type=float, default=8.0, help="how long a storage stall holds the lock (default 8)")
    parser.add_argument("--rss-every", type=float, default=2.0, help="seconds between RSS samples (default 2)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the private-message and presence choices")
    parser.add_argument("--output", type=Path, default=None, help="where to write the JSON (default bench/results/)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs, database)")
    args = parser.parse_args(argv)
    if args.minutes < 1 or args.clients < 2 or args.rooms < 1 or args.rate <= 0:
        parser.error("--minutes must be at least 1, --clients at least 2, --rooms at least 1, --rate above 0")
    directory = Path(tempfile.mkdtemp(prefix="netherfield-soak-"))
    soak = Soak(args, directory)

    def terminate(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    status = 0
    try:
        # The whole run is bounded: its length, the start, and a minute for the last fault.
        asyncio.run(asyncio.wait_for(soak.run(), timeout=soak.seconds + 180))
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything", file=sys.stderr)
        status = 130
    except (TimeoutError, ServerError) as error:
        print(f"soak failed: {error}", file=sys.stderr)
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
        soak.processes.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
    result = soak.report()
    result["scratch"] = str(directory) if args.keep else None
    print_report(result)
    output = args.output or RESULTS / f"soak-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"written to {output}")
    if not args.keep:
        shutil.rmtree(directory, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
