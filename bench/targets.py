"""The components under test: how to start each one, and which scenarios it can answer.

Each target is started as its own process with the driver's port; the ceiling and the
peers are modules of this package, Netherfield is started by its twistd plugin from
this checkout with a TOML configuration written for the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import attrs

from bench.wire import DEFAULT_DOMAIN, DEFAULT_SECRET, HOST

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "twistd-plugins"
PLUGIN_FILE = PLUGINS / "twisted" / "plugins" / "netherfield_plugin.py"

MUC_SCENARIOS = frozenset({"fanout", "join", "rooms"})
ECHO_SCENARIOS = frozenset({"echo", "iq"})


@attrs.frozen
class Launch:
    """What a scenario asks of the process it starts."""

    port: int
    #: A directory of the case's own, for configuration and database files.
    workdir: Path
    rooms: int = 0
    domain: str = DEFAULT_DOMAIN
    secret: str = DEFAULT_SECRET


@attrs.frozen
class Target:
    """A component under test."""

    name: str
    description: str
    scenarios: frozenset[str]
    argv: Callable[[Launch], list[str]]
    python_path: tuple[Path, ...] = (ROOT,)
    #: Why the target cannot run right now, if it cannot.
    unavailable: str | None = None
    #: Run before the process starts, e.g. to put the ``rooms`` scenario's rooms in storage.
    prepare: Callable[[Launch], None] | None = None

    def env(self) -> dict[str, str]:
        """Return the environment of the target's process."""
        return environment(self.python_path)


def environment(python_path: tuple[Path, ...]) -> dict[str, str]:
    """Return this process's environment with ``PYTHONPATH`` set to python_path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(path) for path in python_path)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _module(name: str) -> Callable[[Launch], list[str]]:
    def argv(launch: Launch) -> list[str]:
        command = [sys.executable, "-m", name, "--host", HOST, "--port", str(launch.port),
                   "--domain", launch.domain, "--secret", launch.secret]
        if launch.rooms:
            command += ["--rooms", str(launch.rooms)]
        return command

    return argv


def netherfield_config(launch: Launch, services: tuple[str, ...], server: str = "", component: str = "",
                       storage: str = "") -> str:
    """Return the TOML configuration that points Netherfield at the driver.

    ``server`` and ``component`` are further TOML lines for those tables; ``storage`` replaces
    the ``[storage]`` table's lines (by default a SQLite file in the case's directory).
    """
    listed = ", ".join(f'"{service}"' for service in services)
    # The fanout scenario floods one room from one user on purpose: a bucket
    # it never empties keeps the limiter's cost in the measurement.
    muc = (
        f'[components."{launch.domain}".muc]\n'
        "groupchat_burst = 1000000000\n"
        "groupchat_rate = 1000000000.0\n"
    ) if "muc" in services else ""
    return (
        "[server]\n"
        f'host = "{HOST}"\n'
        f"port = {launch.port}\n"
        f"{server}"
        f'[components."{launch.domain}"]\n'
        f'secret = "{launch.secret}"\n'
        f"services = [{listed}]\n"
        f"{component}"
        f"{muc}"
        "[storage]\n"
        f"{storage or _sqlite(launch)}"
    )


def _sqlite(launch: Launch) -> str:
    # sqlite:/// then an absolute path: four slashes, an absolute file.
    return f'url = "sqlite:///{_database(launch)}"\n'


def _netherfield_rooms(launch: Launch) -> None:
    """Store the scenario's rooms through the MUC service's store, in a process of its own."""
    if not launch.rooms:
        return
    subprocess.run(
        [sys.executable, "-m", "bench.netherfield_rooms", "--url", f"sqlite:///{_database(launch)}",
         "--rooms", str(launch.rooms), "--domain", launch.domain],
        cwd=ROOT, env=environment((ROOT,)), check=True, timeout=300, stdin=subprocess.DEVNULL, capture_output=True,
    )


def netherfield_services(root: Path = ROOT) -> tuple[str, ...]:
    """Return the services of the checkout at ``root`` that the bench uses: echo, and muc once it exists."""
    services = ["echo"]
    muc = root / "services" / "muc" / "__init__.py"
    if muc.exists() and "\nSERVICE = " in muc.read_text():
        services.append("muc")
    return tuple(services)


def _database(launch: Launch) -> Path:
    return launch.workdir / "netherfield.db"


def _netherfield(launch: Launch, root: Path = ROOT) -> list[str]:
    config = launch.workdir / "netherfield.toml"
    config.write_text(netherfield_config(launch, netherfield_services(root)))
    # The operator's command, ``twistd -n netherfield``: in the foreground, no pidfile, log to stdout.
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
            "-n", "--pidfile=", "--logfile=-", "netherfield", "--config", str(config)]


def _netherfield_unavailable() -> str | None:
    if not PLUGIN_FILE.exists():
        return f"{PLUGIN_FILE.relative_to(ROOT)} is not in this checkout yet"
    if not (ROOT / "services" / "echo" / "__init__.py").exists():
        return "services/echo is not in this checkout yet"
    return None


def baseline_target(tree: Path, revision: str, name: str = "base") -> Target:
    """Netherfield as exported from another revision into ``tree``, as target ``name``.

    Its packages come first on the path, so its ``component`` and ``services`` win
    over this checkout's; the bench's own modules (the rooms it stores beforehand) are
    this checkout's, which the revision's store must still read.
    """
    muc = "muc" in netherfield_services(tree)
    return Target(
        name, f"Netherfield at {revision}", ECHO_SCENARIOS | (MUC_SCENARIOS if muc else frozenset()),
        lambda launch: _netherfield(launch, tree), python_path=(tree, tree / "twistd-plugins", ROOT),
        prepare=_netherfield_rooms,
    )


def all_targets() -> list[Target]:
    """Return every target, the ceiling first."""
    muc = "muc" in netherfield_services()
    return [
        Target("ceiling", "bare lxml pull parser + etree.tostring, Twisted reactor",
               ECHO_SCENARIOS | MUC_SCENARIOS, _module("bench.ceiling")),
        Target("netherfield", "Netherfield (twistd plugin, echo" + (" + muc)" if muc else ")"),
               ECHO_SCENARIOS | (MUC_SCENARIOS if muc else frozenset()), _netherfield,
               python_path=(ROOT, PLUGINS), unavailable=_netherfield_unavailable(), prepare=_netherfield_rooms),
        Target("twisted-words", "Twisted Words component, domish + xpath observers",
               ECHO_SCENARIOS, _module("bench.peers.twisted_words")),
        Target("slixmpp", "slixmpp ComponentXMPP + xep_0030",
               ECHO_SCENARIOS, _module("bench.peers.slixmpp_component")),
    ]


