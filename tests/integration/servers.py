"""Real XMPP servers and component processes, run sandboxed on loopback for tests.

`ProsodyServer` and `EjabberdServer` share one interface: each is built with a
scratch directory and the component domains (with their secrets) that the
server must accept, writes its own configuration there, listens on free
loopback ports, and is started and stopped by PID. `ComponentProcess` runs
the project's twistd entry point against such a server.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self
from xml.sax.saxutils import quoteattr

__all__ = [
    "SERVER_CLASSES",
    "ComponentProcess",
    "EjabberdServer",
    "ProsodyServer",
    "ServerError",
    "XMPPServer",
    "descendant_pids",
    "free_port",
    "process_alive",
    "to_toml",
]

REPO_ROOT = Path(__file__).resolve().parents[2]

#: When set, every PID this module starts is appended to that file, so that a
#: CI run can kill whatever a crashed test session left behind.
PID_LOG_ENV = "NETHERFIELD_TEST_PID_LOG"

_handed_out_ports: set[int] = set()


class ServerError(RuntimeError):
    """A server or component process did not start, stop or answer in time."""


def free_port() -> int:
    """Return a loopback TCP port that is free now and not handed out before."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out_ports:
            _handed_out_ports.add(port)
            return port
    raise ServerError("no free loopback port found")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3 onwards of /proc/PID/stat (state first), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _record_pid(pid: int) -> None:
    # The start time goes with the PID so that a reused PID is never mistaken
    # for ours (PIDs wrap quickly on a busy machine).
    path = os.environ.get(PID_LOG_ENV)
    fields = _stat_fields(pid)
    if path and fields:
        with open(path, "a", encoding="ascii") as log:
            log.write(f"{pid} {fields[19]}\n")


def process_alive(pid: int) -> bool:
    """Whether `pid` is a running process (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is gone for our purposes.
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def descendant_pids(pid: int) -> list[int]:
    """PIDs of all live descendants of `pid`, parents before children."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children", encoding="ascii") as f:
                    children = [int(c) for c in f.read().split()]
            except OSError:
                continue
            found.extend(children)
            pending.extend(children)
    return found


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_gone(pids: Sequence[int], deadline: float) -> bool:
    while time.monotonic() < deadline:
        if not any(process_alive(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return not any(process_alive(pid) for pid in pids)


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class XMPPServer:
    """A server process run from a scratch directory, with its own free ports.

    Subclasses write the configuration and name the command; this class
    starts the process, waits for both ports, and stops it by PID.
    """

    name: ClassVar[str]
    domain = "localhost"
    host = "127.0.0.1"
    start_timeout: ClassVar[float] = 30.0

    def __init__(self, directory: Path | str, components: Mapping[str, str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.secrets: dict[str, str] = dict(components)
        self.c2s_port = free_port()
        self.component_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._stdout_path = self.directory / "stdout.log"
        self.write_config()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} c2s={self.host}:{self.c2s_port}"
            f" component={self.host}:{self.component_port}>"
        )

    # -- to be provided by each server -------------------------------------

    def write_config(self) -> None:
        """Write the configuration files into the scratch directory."""
        raise NotImplementedError

    def command(self) -> list[str]:
        """The command line that runs the server in the foreground."""
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        """The environment the server and its control tool run in."""
        return dict(os.environ)

    def log_files(self) -> list[Path]:
        """The server's own log files, most useful first."""
        return []

    def server_pids(self) -> list[int]:
        """The PIDs that must get SIGTERM for a clean shutdown."""
        assert self.process is not None
        return [self.process.pid]

    def register(self, user: str, password: str) -> None:
        """Create the account `user@domain` with `password`."""
        raise NotImplementedError

    # -- shared behaviour ---------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the process this object started is still alive."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the server; return once it accepts connections on both ports."""
        if self.running:
            raise ServerError(f"{self.name} is already running")
        with open(self._stdout_path, "ab") as out:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.directory,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _record_pid(self.process.pid)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise ServerError(
                    f"{self.name} exited with status {code} while starting:\n" + self.log_tail()
                )
            if _port_open(self.host, self.c2s_port) and _port_open(self.host, self.component_port):
                self._record_descendants()
                return
            time.sleep(0.1)
        self.stop()
        raise ServerError(
            f"{self.name} did not listen on {self.host}:{self.c2s_port} and"
            f" :{self.component_port} within {self.start_timeout:.0f} s:\n" + self.log_tail()
        )

    def _record_descendants(self) -> None:
        assert self.process is not None
        for pid in descendant_pids(self.process.pid):
            _record_pid(pid)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the server, wait for it, and SIGKILL whatever is left."""
        process = self.process
        if process is None:
            return
        family = [process.pid, *descendant_pids(process.pid)]
        if process.poll() is None:
            for pid in self.server_pids():
                _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        if not _wait_gone(family, deadline):
            for pid in family:
                if process_alive(pid):
                    _signal(pid, signal.SIGKILL)
            _wait_gone(family, time.monotonic() + 5)
        if process.poll() is None:
            process.wait(timeout=5)
        self.process = None

    def restart(self) -> None:
        """Stop the server and start it again on the same ports and data."""
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's logs and of its console output."""
        parts = []
        for path in [*self.log_files(), self._stdout_path]:
            text = _tail(path, lines)
            if text:
                parts.append(f"--- {path}\n{text}")
        return "\n".join(parts) or "(no log output)"

    def _run_tool(self, args: list[str], timeout: float = 60.0) -> None:
        result = subprocess.run(
            args,
            cwd=self.directory,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise ServerError(
                f"{' '.join(args)} failed with status {result.returncode}:\n{result.stdout}{result.stderr}"
            )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def loopback_listeners(c2s_port: int, component_port: int) -> list[str]:
    """Prosody's listeners for a sandbox: clients and components on loopback, plain
    authentication without TLS, nothing else listening."""
    return [
        'interfaces = { "127.0.0.1" }',
        'local_interfaces = { "127.0.0.1" }',
        'c2s_interfaces = { "127.0.0.1" }',
        f"c2s_ports = {{ {c2s_port} }}",
        'component_interfaces = { "127.0.0.1" }',
        f"component_ports = {{ {component_port} }}",
        "c2s_direct_tls_ports = { }",
        "s2s_ports = { }",
        "http_ports = { }",
        "https_ports = { }",
        "c2s_require_encryption = false",
        "allow_unencrypted_plain_auth = true",
        'authentication = "internal_plain"',
    ]


def _lua_string(value: str) -> str:
    if any(ord(c) < 32 for c in value):
        raise ValueError(f"control character in {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ProsodyServer(XMPPServer):
    """Prosody, run with `prosody -F` from a config file in the scratch dir."""

    name = "prosody"
    start_timeout = 20.0

    @property
    def config_path(self) -> Path:
        """The generated `prosody.cfg.lua`."""
        return self.directory / "prosody.cfg.lua"

    def write_config(self) -> None:
        """Write `prosody.cfg.lua`: loopback only, plain c2s, no s2s."""
        d = self.directory
        for sub in ("data", "certs"):
            (d / sub).mkdir(exist_ok=True)
        log_file = _lua_string(str(d / "prosody.log"))
        lines = [
            "-- Generated for an integration test run.",
            "run_as_root = true",
            f"pidfile = {_lua_string(str(d / 'prosody.pid'))}",
            f"data_path = {_lua_string(str(d / 'data'))}",
            f"certificates = {_lua_string(str(d / 'certs'))}",
            "log = {",
            f'  {{ levels = {{ min = "debug" }}, to = "file", filename = {log_file} }};',
            "}",
            *loopback_listeners(self.c2s_port, self.component_port),
            "modules_enabled = {",
            '  "roster", "saslauth", "disco", "ping", "version", "time", "uptime",',
            "}",
            'modules_disabled = { "s2s" }',
            "",
            f"VirtualHost {_lua_string(self.domain)}",
            "",
        ]
        for domain, secret in self.secrets.items():
            lines.append(f"Component {_lua_string(domain)}")
            lines.append(f"  component_secret = {_lua_string(secret)}")
            lines.append("")
        self.config_path.write_text("\n".join(lines), encoding="utf-8")

    def command(self) -> list[str]:
        """`prosody -F --config DIR/prosody.cfg.lua`."""
        return ["prosody", "-F", "--config", str(self.config_path)]

    def log_files(self) -> list[Path]:
        """Prosody's debug log."""
        return [self.directory / "prosody.log"]

    def register(self, user: str, password: str) -> None:
        """Add the account with prosodyctl, which works whether or not Prosody runs."""
        self._run_tool(
            [
                "prosodyctl",
                "--config",
                str(self.config_path),
                "register",
                user,
                self.domain,
                password,
            ]
        )


def _yaml_string(value: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar.
    return json.dumps(value)


class EjabberdServer(XMPPServer):
    """ejabberd, run with `ejabberdctl ... foreground` with HOME in the scratch dir."""

    name = "ejabberd"
    start_timeout = 60.0

    def __init__(self, directory: Path | str, components: Mapping[str, str]) -> None:
        self.dist_port = free_port()
        # The Erlang node name must be unique among instances on this machine.
        self.node = f"netherfield{self.dist_port}@localhost"
        super().__init__(directory, components)

    def write_config(self) -> None:
        """Write `ejabberd.yml`, `ejabberdctl.cfg`, `inetrc` and the cookie."""
        d = self.directory
        for sub in ("log", "db"):
            (d / sub).mkdir(exist_ok=True)
        (d / "ejabberdctl.cfg").write_text(
            "\n".join(
                [
                    "# Generated for an integration test run.",
                    f"ERLANG_NODE={self.node}",
                    f"ERL_DIST_PORT={self.dist_port}",
                    "ERL_EPMD_ADDRESS=127.0.0.1",
                    "EXEC_CMD=as_current_user",
                    f"EJABBERD_PID_PATH={d / 'ejabberd.pid'}",
                    'ERL_OPTIONS="-kernel inet_dist_use_interface {127,0,0,1}"',
                    "EJABBERD_BYPASS_WARNINGS=true",
                    "",
                ]
            ),
            encoding="utf-8",
        )
        (d / "inetrc").write_text(
            '{lookup,["file","native"]}.\n{host,{127,0,0,1}, ["localhost"]}.\n',
            encoding="utf-8",
        )
        cookie = d / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16).upper(), encoding="ascii")
            cookie.chmod(0o400)
        services = "\n".join(
            f"      {_yaml_string(domain)}:\n        password: {_yaml_string(secret)}"
            for domain, secret in self.secrets.items()
        )
        config = f"""\
# Generated for an integration test run.
hosts:
  - {_yaml_string(self.domain)}
loglevel: info
log_rotate_count: 0
certfiles: []
acme:
  auto: false
auth_method: internal
auth_password_format: plain
listen:
  - port: {self.c2s_port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls_required: false
    max_stanza_size: 262144
  - port: {self.component_port}
    ip: "127.0.0.1"
    module: ejabberd_service
    hosts:
{services or "      {}"}
modules:
  mod_disco: {{}}
  mod_roster: {{}}
  mod_ping: {{}}
  mod_version:
    show_os: false
  mod_offline: {{}}
  mod_multicast: {{}}
"""
        (d / "ejabberd.yml").write_text(config, encoding="utf-8")

    def _ctl(self) -> list[str]:
        d = self.directory
        return [
            "ejabberdctl",
            "--config-dir",
            str(d),
            "--logs",
            str(d / "log"),
            "--spool",
            str(d / "db"),
        ]

    def command(self) -> list[str]:
        """`ejabberdctl --config-dir DIR ... foreground`."""
        return [*self._ctl(), "foreground"]

    def environment(self) -> dict[str, str]:
        """HOME in the scratch dir, so Erlang uses the cookie written there."""
        env = dict(os.environ)
        env["HOME"] = str(self.directory)
        return env

    def log_files(self) -> list[Path]:
        """ejabberd's main log and its error log."""
        return [self.directory / "log" / "ejabberd.log", self.directory / "log" / "error.log"]

    def server_pids(self) -> list[int]:
        """The Erlang VM: ejabberdctl runs it as a child and does not forward signals."""
        pids: list[int] = []
        try:
            pids.append(int((self.directory / "ejabberd.pid").read_text().strip()))
        except (OSError, ValueError):
            pass
        assert self.process is not None
        for pid in descendant_pids(self.process.pid):
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                continue
            if exe.endswith("beam.smp") and pid not in pids:
                pids.append(pid)
        return pids or [self.process.pid]

    def register(self, user: str, password: str) -> None:
        """Add the account with `ejabberdctl register`; ejabberd must be running."""
        if not self.running:
            raise ServerError("ejabberd must be running to register users")
        self.run_account_tool(["register", user, self.domain, password])

    def add_users(self, users: list[str], password: str) -> None:
        """All accounts in one ``import_piefxis`` (XEP-0227): one ``register`` each takes 0.6 CPU s."""
        rows = "".join(f"<user name={quoteattr(user)} password={quoteattr(password)}/>" for user in users)
        path = Path(self.directory) / "users.xml"
        path.write_text(
            "<?xml version='1.0' encoding='UTF-8'?>"
            f"<server-data xmlns='urn:xmpp:pie:0'><host jid={quoteattr(self.domain)}>{rows}</host></server-data>",
            encoding="utf-8",
        )
        self.run_account_tool(["import_piefxis", str(path)], timeout=300)

    def run_account_tool(self, args: list[str], timeout: float = 60.0) -> None:
        """Run an ``ejabberdctl`` command that writes accounts, once ejabberd's account table exists.

        ejabberd listens before Mnesia has created its tables: a command that
        soon after the start fails with ``no_exists`` for ``passwd`` (or, on a
        busy machine, ``cannot_register`` with "Database failure", or an
        unhandled ``badmatch`` in its caches not yet made), and is tried again
        for up to 30 s.
        """
        deadline = time.monotonic() + 30
        while True:
            try:
                self._run_tool([*self._ctl(), *args], timeout=timeout)
                return
            except ServerError as error:
                starting = any(
                    sign in str(error) for sign in ("no_exists", "Database failure", "Unhandled exception")
                )
                if not starting or time.monotonic() >= deadline:
                    raise
            time.sleep(0.5)


SERVER_CLASSES: dict[str, type[XMPPServer]] = {
    ProsodyServer.name: ProsodyServer,
    EjabberdServer.name: EjabberdServer,
}


# -- component processes -----------------------------------------------------


def _toml_key(key: str) -> str:
    if key and all(c.isalnum() or c in "-_" for c in key):
        return key
    return json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def to_toml(data: Mapping[str, Any]) -> str:
    """Serialise nested dicts of strings, numbers, booleans and lists as TOML."""
    out: list[str] = []

    def table(prefix: list[str], mapping: Mapping[str, Any]) -> None:
        scalars = {k: v for k, v in mapping.items() if not isinstance(v, Mapping)}
        tables = {k: v for k, v in mapping.items() if isinstance(v, Mapping)}
        if prefix and (scalars or not tables):
            out.append("[" + ".".join(_toml_key(k) for k in prefix) + "]")
        for key, value in scalars.items():
            out.append(f"{_toml_key(key)} = {_toml_value(value)}")
        if scalars:
            out.append("")
        for key, value in tables.items():
            table([*prefix, key], value)

    table([], data)
    return "\n".join(out).rstrip() + "\n"


def component_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a component run from this checkout.

    Twisted finds plugins in every `twisted/plugins` directory on sys.path,
    so `twistd-plugins/` on PYTHONPATH makes `netherfield` a twistd command.
    """
    env = dict(os.environ)
    paths = [str(REPO_ROOT), str(REPO_ROOT / "twistd-plugins")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


class ComponentProcess:
    """The project's component, run as `twistd -n netherfield --config FILE`.

    Its stdout and stderr go to `log_path`; `wait_for_log` polls that file.
    """

    #: Exit statuses of a process that shut down cleanly on SIGTERM.
    CLEAN_EXITS = (0, -signal.SIGTERM)

    def __init__(
        self,
        config_path: Path,
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        argv: Sequence[str] | None = None,
    ) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.config: dict[str, Any] = tomllib.loads(config_path.read_text("utf-8"))
        self.returncode: int | None = None
        command = list(argv) if argv is not None else self.default_command(config_path)
        with open(log_path, "ab") as out:
            self.process = subprocess.Popen(
                command,
                cwd=config_path.parent,
                env=component_environment(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _record_pid(self.process.pid)

    @staticmethod
    def default_command(config_path: Path) -> list[str]:
        """`twistd -n netherfield --config FILE`: the operator's command, logging to stdout."""
        twistd = Path(sys.executable).parent / "twistd"
        runner = [str(twistd)] if twistd.exists() else [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
        return [*runner, "-n", "--pidfile=", "--logfile=-", "netherfield", "--config", str(config_path)]

    @property
    def pid(self) -> int:
        """The component's process id."""
        return self.process.pid

    @property
    def domains(self) -> list[str]:
        """The component domains named in the config."""
        return list(self.config.get("components", {}))

    @property
    def running(self) -> bool:
        """Whether the process is still alive."""
        return self.process.poll() is None

    def log_text(self) -> str:
        """Everything the process has written so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def wait_for_log(self, substring: str, timeout: float = 15.0, *, after: int = 0) -> int:
        """Wait until `substring` appears in the output at or past offset `after`.

        Returns the offset just past the match, to chain waits for later
        lines. Fails early, with the output, if the process exits first.
        """
        return self.wait_for(lambda text: _find_end(text, substring, after), substring, timeout)

    def wait_for(self, finder: Callable[[str], int | None], what: str, timeout: float = 15.0) -> int:
        """Wait until `finder(output)` returns an offset rather than None."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text()
            found = finder(text)
            if found is not None:
                return found
            if not self.running and finder(self.log_text()) is None:
                raise ServerError(
                    f"component exited with status {self.process.returncode} before"
                    f" printing {what!r}:\n{self.log_text()[-4000:]}"
                )
            if time.monotonic() >= deadline:
                raise ServerError(f"component did not print {what!r} within {timeout:.0f} s:\n{text[-4000:]}")
            time.sleep(0.05)

    def attached_line(self, domain: str, host: str, port: int) -> str:
        """The line the component prints once `domain`'s handshake succeeded."""
        return f"{domain} is attached to the server at {host}:{port}"

    def wait_attached(
        self, domains: Sequence[str] | None = None, timeout: float = 20.0, *, after: int = 0
    ) -> None:
        """Wait until every domain (default: all in the config) has attached."""
        server = self.config.get("server", {})
        host, port = server.get("host", "127.0.0.1"), server.get("port", 5347)
        for domain in self.domains if domains is None else domains:
            self.wait_for_log(self.attached_line(domain, host, port), timeout, after=after)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM the component and return its exit status (SIGKILL if it hangs).

        Twisted re-raises the signal that stopped it after a clean shutdown,
        so a clean stop may report -SIGTERM as well as 0 (see `CLEAN_EXITS`).
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.returncode = self.process.returncode
        return self.returncode

    def kill9(self) -> int:
        """SIGKILL the component, as a crash would, and return its status."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)
        self.returncode = self.process.returncode
        return self.returncode


def _find_end(text: str, substring: str, after: int) -> int | None:
    index = text.find(substring, after)
    return None if index < 0 else index + len(substring)
