"""Prosody and ejabberd set up for load: a built-in MUC, our component's domain, quiet logs, one core.

The test fixtures' servers (``tests/integration/servers.py``) log at debug level and
carry no MUC; these subclasses keep their start, stop and port handling and write a
configuration fit for measuring: warnings only in the log, the server's own MUC on
``conference.localhost``, no shapers or rate limits, and the process started under
``taskset`` on the server's core.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.integration.servers import (
    EjabberdServer,
    ProsodyServer,
    ServerError,
    _lua_string,
    _yaml_string,
    free_port,
    loopback_listeners,
)

__all__ = ["BUILTIN_MAM_MUC", "BUILTIN_MUC", "LoadEjabberd", "LoadProsody", "SERVERS"]

#: Where each server's own MUC lives.
BUILTIN_MUC = "conference.localhost"
#: The server's own MUC again, archiving every room (XEP-0313) and stamping each message with a stanza-id.
BUILTIN_MAM_MUC = "mam.localhost"
#: Messages a room's archive may hold on Prosody's default (file) storage; past its default (10,000)
#: every message would first delete the oldest, which no steady-state archive does.
ARCHIVE_ITEM_LIMIT = 10_000_000


def pinned(core: int | None, command: list[str]) -> list[str]:
    """``command`` run on ``core`` (any when None)."""
    return command if core is None else ["taskset", "-c", str(core), *command]


class LoadProsody(ProsodyServer):
    """Prosody 0.12 with ``mod_muc`` on ``conference.localhost`` and a component port."""

    core: int | None = None
    #: Lines added to the global section (an operator's tuning, such as ``network_settings``).
    extra: tuple[str, ...] = ()
    #: Load ``mod_lua_profile`` (next to this file): counts of Lua instructions by function.
    lua_profile = False

    def write_config(self) -> None:
        d = self.directory
        for sub in ("data", "certs"):
            (d / sub).mkdir(exist_ok=True)
        lines = [
            "-- Generated for a load test.",
            "run_as_root = true",
            f"pidfile = {_lua_string(str(d / 'prosody.pid'))}",
            f"data_path = {_lua_string(str(d / 'data'))}",
            f"certificates = {_lua_string(str(d / 'certs'))}",
            f'log = {{ {{ levels = {{ min = "warn" }}, to = "file", filename = {_lua_string(str(d / "prosody.log"))} }} }}',
            *loopback_listeners(self.c2s_port, self.component_port),
            'modules_enabled = { "saslauth", "disco", "ping"%s }' % (', "lua_profile"' if self.lua_profile else ""),
            f"plugin_paths = {{ {_lua_string(str(Path(__file__).parent))} }}",
            'modules_disabled = { "s2s" }',
            f"storage_archive_item_limit = {ARCHIVE_ITEM_LIMIT}",
            *self.extra,
            "",
            f"VirtualHost {_lua_string(self.domain)}",
            "",
            f"Component {_lua_string(BUILTIN_MUC)} \"muc\"",
            "  max_history_messages = 20",
            "",
            # mod_muc_mam archives every room (muc_log_by_default) in the default (internal, file) storage.
            f"Component {_lua_string(BUILTIN_MAM_MUC)} \"muc\"",
            '  modules_enabled = { "muc_mam" }',
            "  max_history_messages = 20",
            "",
        ]
        for domain, secret in self.secrets.items():
            lines += [f"Component {_lua_string(domain)}", f"  component_secret = {_lua_string(secret)}", ""]
        self.config_path.write_text("\n".join(lines), encoding="utf-8")

    def command(self) -> list[str]:
        return pinned(self.core, super().command())

    def add_users(self, users: list[str], password: str) -> None:
        """Write the accounts into the data directory, as ``internal_plain`` stores them.

        ``prosodyctl register`` starts Lua once per user, a third of a second each.
        """
        accounts = self.directory / "data" / self.domain / "accounts"
        accounts.mkdir(parents=True, exist_ok=True)
        for user in users:
            (accounts / f"{user}.dat").write_text(f'return {{\n\t["password"] = {_lua_string(password)};\n}};\n')

    def cpu_pids(self) -> list[int]:
        assert self.process is not None
        return [self.process.pid]

    def port_of(self, domain: str) -> int:
        """The component port ``domain`` attaches to."""
        return self.component_port

    def lua_profile_counts(self) -> dict[str, int]:
        """The cumulative counts ``mod_lua_profile`` last wrote, by function and caller."""
        counts: dict[str, int] = {}
        try:
            text = (self.directory / "data" / "lua-profile.txt").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return counts
        for line in text.splitlines():
            number, _, key = line.partition("\t")
            if number.isdigit():
                counts[key] = int(number)
        return counts


#: ejabberd's virtual host for its archiving MUC.
MAM_HOST = "mam.host"


class LoadEjabberd(EjabberdServer):
    """ejabberd 23.01 with ``mod_muc`` on ``conference.localhost`` and a component port.

    The archiving MUC (``mam.localhost``, every room with ``mam`` on, ``mod_mam`` on
    its default Mnesia storage) belongs to a second virtual host, ``mam.host``: a
    virtual host has one ``mod_muc``, and ``host_config`` gives that one its own.

    Each domain of ``separate`` gets a listener of its own: ejabberd routes every host
    of a listener to each component attached to it, picking one at random per stanza.
    """

    core: int | None = None
    #: Component domains, and their secrets, each on its own listener (see ``ports``).
    separate: dict[str, str] = {}
    #: Have the JIT write /tmp/perf-PID.map, so that ``perf`` names Erlang functions.
    perf_map = False
    #: Flags added to the Erlang VM's command line (an operator's tuning, in ``ejabberdctl.cfg``'s ``ERL_OPTIONS``).
    erl_options: tuple[str, ...] = ()

    def __init__(self, directory: Path | str, components: dict[str, str]) -> None:
        self.ports = {domain: free_port() for domain in self.separate}
        super().__init__(directory, components)
        self.ports.update((domain, self.component_port) for domain in components)

    def write_config(self) -> None:
        super().write_config()
        flags = [*(["+JPperf true"] if self.perf_map else []), *self.erl_options]
        if flags:
            ctl = self.directory / "ejabberdctl.cfg"
            ctl.write_text(ctl.read_text().replace('ERL_OPTIONS="', 'ERL_OPTIONS="' + " ".join(flags) + " "), encoding="utf-8")
        path = self.directory / "ejabberd.yml"
        config = path.read_text(encoding="utf-8")
        config = config.replace("loglevel: info", "loglevel: warning")
        config = config.replace(f"hosts:\n  - {_yaml_string(self.domain)}\n",
                                f"hosts:\n  - {_yaml_string(self.domain)}\n  - {_yaml_string(MAM_HOST)}\n", 1)
        listeners = "".join(
            f"  - port: {self.ports[domain]}\n    ip: \"127.0.0.1\"\n    module: ejabberd_service\n    hosts:\n"
            f"      {_yaml_string(domain)}:\n        password: {_yaml_string(secret)}\n"
            for domain, secret in self.separate.items()
        )
        config = config.replace("\nmodules:\n", "\n" + listeners + "modules:\n", 1)
        config += (
            "  mod_muc:\n"
            f"    host: {_yaml_string(BUILTIN_MUC)}\n"
            "    access_create: all\n"
            "    max_users: 200\n"
            "    history_size: 20\n"
            "host_config:\n"
            f"  {_yaml_string(MAM_HOST)}:\n"
            "    modules:\n"
            "      mod_mam: {}\n"
            "      mod_muc:\n"
            f"        host: {_yaml_string(BUILTIN_MAM_MUC)}\n"
            "        access_create: all\n"
            "        max_users: 200\n"
            "        history_size: 20\n"
            "        default_room_options:\n"
            "          mam: true\n"
        )
        path.write_text(config, encoding="utf-8")

    def command(self) -> list[str]:
        return pinned(self.core, super().command())

    def port_of(self, domain: str) -> int:
        """The component port ``domain`` attaches to."""
        return self.ports[domain]

    def add_users(self, users: list[str], password: str) -> None:
        """As the fixture does, and again for the accounts still missing when the import fails.

        An import run while ejabberd is still starting (its listeners open before all
        of its modules, ``mod_mam``'s tables among them, are up) can stop at one account
        with ``import_failed``; the accounts before it exist, so only the rest are imported again.
        """
        for attempt in range(3):
            try:
                super().add_users(users, password)
                return
            except ServerError as error:
                if "import_failed" not in str(error) or attempt == 2:
                    raise
            time.sleep(2)
            listed = subprocess.run(
                [*self._ctl(), "registered_users", self.domain], cwd=self.directory, env=self.environment(),
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False,
            )
            existing = set(listed.stdout.split())
            users = [user for user in users if user not in existing]

    def cpu_pids(self) -> list[int]:
        return [pid for pid in self.server_pids() if Path(f"/proc/{pid}/exe").resolve().name == "beam.smp"]


SERVERS: dict[str, type[LoadProsody] | type[LoadEjabberd]] = {"prosody": LoadProsody, "ejabberd": LoadEjabberd}
