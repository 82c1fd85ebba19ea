"""A real PostgreSQL server for tests, sandboxed in a scratch directory on loopback.

`PostgresServer` runs initdb and pg_ctl from the installed PostgreSQL into a
temporary directory and listens on a free port of 127.0.0.1 only, with its
socket inside that directory. PostgreSQL refuses to run as root, so as root
the server runs as the system user `OS_USER`, created when missing. TCP
connections need the generated password, which lets tests check that it
travels apart from the URL.

The `postgres_server` fixture starts one server per test session; where
PostgreSQL cannot start, tests that need it are skipped with a warning in the
pytest summary, or fail when `REQUIRE_ENV` is set. `postgres_database` gives
each test a database of its own. A test module gets both by importing
`postgres_server_fixture` and `postgres_database_fixture`.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from tests.integration.servers import PID_LOG_ENV, free_port

__all__ = [
    "OS_USER",
    "REQUIRE_ENV",
    "Database",
    "PostgresServer",
    "PostgresSkipped",
    "PostgresUnavailable",
    "find_bindir",
    "postgres_database_fixture",
    "postgres_server_fixture",
    "start_server",
]

OS_USER = "netherfield-pg"
"""The system user that runs the server when the tests run as root."""

REQUIRE_ENV = "NETHERFIELD_REQUIRE_POSTGRES"
"""When set to a non-empty value, a PostgreSQL that cannot start fails the tests."""

BINDIR_ENV = "NETHERFIELD_PG_BINDIR"
"""Where initdb and pg_ctl are, when they are neither on PATH nor in the usual place."""


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be run here; the message says why."""


class PostgresSkipped(UserWarning):
    """Shown in the pytest summary when the PostgreSQL half of the tests is skipped."""


@attrs.frozen
class Database:
    """A database on the test server: connect to *url* with *password*."""

    name: str
    url: str
    password: str = attrs.field(repr=False)


def find_bindir() -> Path:
    """The directory that holds initdb, pg_ctl and postgres."""
    candidates: list[str] = []
    if os.environ.get(BINDIR_ENV):
        candidates.append(os.environ[BINDIR_ENV])
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(os.path.dirname(on_path))

    def version(path: str) -> float:
        try:
            return float(Path(path).parent.name)
        except ValueError:
            return 0.0

    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    for candidate in candidates:
        bindir = Path(candidate)
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise PostgresUnavailable("initdb, pg_ctl and postgres were not found (is postgresql installed?)")


def _ensure_os_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(OS_USER)
    except KeyError:
        pass
    result = subprocess.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            OS_USER,
        ],
        capture_output=True,
        text=True,
    )
    try:
        # Another test session may have created it meanwhile.
        return pwd.getpwnam(OS_USER)
    except KeyError:
        raise PostgresUnavailable(
            f"cannot create the system user {OS_USER}: {result.stderr.strip()}"
        ) from None


def _record_pid(pid: int) -> None:
    path = os.environ.get(PID_LOG_ENV)
    if path:
        with open(path, "a", encoding="ascii") as log:
            log.write(f"{pid}\n")


class PostgresServer:
    """One PostgreSQL cluster in a scratch directory, on a loopback port."""

    host = "127.0.0.1"
    superuser = "netherfield"

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_bindir()
        self.password = secrets.token_urlsafe(16)
        self.port = free_port()
        self._owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self._owner = _ensure_os_user()
        # Not under pytest's tmp_path: that is private to the user running the
        # tests, and the server's user must be able to reach its directory.
        self.directory = Path(tempfile.mkdtemp(prefix="netherfield-pg-", dir="/tmp"))
        if self._owner is not None:
            os.chown(self.directory, self._owner.pw_uid, self._owner.pw_gid)
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"
        self.pid: int | None = None

    def __repr__(self) -> str:
        return f"<PostgresServer {self.host}:{self.port} in {self.directory}>"

    def _command(self, *args: str) -> list[str]:
        if self._owner is None:
            return list(args)
        return ["runuser", "-u", OS_USER, "--", *args]

    def _run(self, *args: str, timeout: float = 120.0) -> None:
        try:
            result = subprocess.run(
                self._command(*args),
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise PostgresUnavailable(f"{args[0]} failed: {e}") from e
        if result.returncode != 0:
            raise PostgresUnavailable(
                f"{' '.join(args)} exited with {result.returncode}:\n"
                f"{result.stdout}{result.stderr}{self.log_tail()}"
            )

    def init(self) -> None:
        """Create the cluster: trust on the socket, a password over TCP."""
        pwfile = self.directory / "pwfile"
        pwfile.write_text(self.password + "\n", encoding="utf-8")
        if self._owner is not None:
            os.chown(pwfile, self._owner.pw_uid, self._owner.pw_gid)
        os.chmod(pwfile, 0o600)
        self._run(
            str(self.bindir / "initdb"),
            "--pgdata",
            str(self.data),
            "--username",
            self.superuser,
            "--pwfile",
            str(pwfile),
            "--auth-local",
            "trust",
            "--auth-host",
            "scram-sha-256",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        )
        pwfile.unlink()

    def start(self) -> None:
        """Start the server; return once it accepts connections."""
        options = (
            f"-c listen_addresses={self.host} -p {self.port}"
            f" -c unix_socket_directories={self.directory}"
            " -c fsync=on -c synchronous_commit=on -c max_connections=60"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "--pgdata",
            str(self.data),
            "--log",
            str(self.log),
            "--options",
            options,
            "--wait",
            "--timeout",
            "60",
            "start",
        )
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])
        _record_pid(self.pid)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; its data stays for a later `start`."""
        if self.pid is None:
            return
        self._run(
            str(self.bindir / "pg_ctl"),
            "--pgdata",
            str(self.data),
            "--mode",
            mode,
            "--wait",
            "--timeout",
            "60",
            "stop",
        )
        self.pid = None

    def destroy(self) -> None:
        """Stop the server if it runs and remove its directory."""
        try:
            self.stop()
        except PostgresUnavailable:
            if self.pid is not None:
                # pg_ctl failed us; the postmaster is ours to end.
                os.kill(self.pid, 9)
                time.sleep(0.5)
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def url(self, dbname: str = "postgres") -> str:
        """A URL for *dbname*, without the password."""
        return f"postgresql://{self.superuser}@{self.host}:{self.port}/{dbname}"

    def sql(self, statement: str) -> None:
        """Run one statement as the superuser, outside a transaction."""
        import psycopg

        with psycopg.connect(self.url(), password=self.password, autocommit=True) as conn:
            conn.execute(statement)

    def create_database(self) -> Database:
        """A new, empty database."""
        name = "test_" + secrets.token_hex(6)
        self.sql(f"CREATE DATABASE {name}")
        return Database(name=name, url=self.url(name), password=self.password)

    def drop_database(self, name: str) -> None:
        """Drop *name*, ending any connection still open to it."""
        self.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's log."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n--- " + str(self.log) + "\n" + "\n".join(text.splitlines()[-lines:])


def start_server() -> PostgresServer:
    """A freshly initialised, running server; `PostgresUnavailable` if there can be none."""
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError as e:
        raise PostgresUnavailable(f"psycopg is not installed ({e})") from e
    server = PostgresServer()
    try:
        server.init()
        server.start()
    except BaseException:
        server.destroy()
        raise
    return server


@pytest.fixture(scope="session", name="postgres_server")
def postgres_server_fixture() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server, started on first use."""
    try:
        server = start_server()
    except PostgresUnavailable as e:
        message = f"PostgreSQL could not start; the PostgreSQL storage tests are SKIPPED: {e}"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(message)
        warnings.warn(PostgresSkipped(message), stacklevel=1)
        pytest.skip(message)
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(name="postgres_database")
def postgres_database_fixture(postgres_server: PostgresServer) -> Iterator[Database]:
    """An empty database of its own for one test, dropped afterwards."""
    database = postgres_server.create_database()
    try:
        yield database
    finally:
        if postgres_server.pid is None:
            # A test that stopped the server must not leave it stopped.
            postgres_server.start()
        postgres_server.drop_database(database.name)
