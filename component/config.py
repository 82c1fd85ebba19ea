"""The TOML configuration: read, validated, and turned into typed values.

Every mistake is one :class:`ConfigError` sentence that names the key, raised
before anything connects. Secrets come from the file itself, from a file, or
from the environment, and never appear in a repr.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any

import attrs

from component.component import DomainSettings, Keepalive
from component.connection import Backoff
from component.jid import InvalidJID, parse_jid
from component.options import (
    ADDRESS,
    PORT,
    STORAGE_URL,
    ConfigError,
    Mistakes,
    key_path,
    read,
    setting,
)
from component.storage import DEFAULT_URL, StorageError
from component.storage.sqlite import DEFAULT_PATH, path_from_url
from component.stream import StreamLimits

__all__ = [
    "ClusterConfig", "ComponentConfig", "Config", "ConfigError", "LogConfig", "MetricsConfig", "ServerConfig", "StorageConfig",
    "load_config", "read_config",
]

#: Where the XMPP server listens for components, unless the config says otherwise.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5347


@attrs.frozen
class ServerConfig(Backoff, Keepalive):
    """Where the XMPP server listens for components, and how to keep the link alive (``[server]``).

    The keepalive's settings are declared by :class:`component.component.Keepalive`,
    the reconnects' by :class:`component.connection.Backoff`, and inherited.
    """

    host: str = setting(DEFAULT_HOST, "the address where the XMPP server listens for components")
    port: int = setting(DEFAULT_PORT, "its port for components", kind=PORT)


@attrs.frozen
class StorageConfig:
    """The database (``[storage]``): its URL and its password, if any."""

    url: str = setting(
        DEFAULT_URL, "the database: sqlite:///relative/path.db, sqlite:////absolute/path.db or postgresql://user@host:port/db",
        kind=STORAGE_URL, shown=f"``{DEFAULT_PATH}`` beside the config file",
    )
    password: str | None = attrs.field(default=None, repr=False)


@attrs.frozen
class ComponentConfig(DomainSettings, StreamLimits):
    """One component domain (``[components."DOMAIN"]``): its secret, its services and their options.

    The limits of what it reads are declared by :class:`component.stream.StreamLimits`,
    what its :class:`~component.component.Component` applies by
    :class:`component.component.DomainSettings`, and inherited.
    """

    domain: str = attrs.field(kw_only=True)
    secret: str = attrs.field(kw_only=True, repr=False)
    services: tuple[str, ...] = attrs.field(kw_only=True)
    #: Each service's own table, as the file has it (its service reads it).
    options: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    host: str = setting(DEFAULT_HOST, "the server's address for this domain", shown="``server.host``")
    port: int = setting(DEFAULT_PORT, "the server's port for this domain", kind=PORT, shown="``server.port``")


@attrs.frozen
class MetricsConfig:
    """Where the Prometheus endpoint listens (``[metrics]``); off unless ``listen`` is set."""

    listen: tuple[str, int] | None = setting(
        None, "the address of the Prometheus endpoint", kind=ADDRESS, shown="none, and there is no endpoint"
    )
    allow_remote: bool = setting(
        False, "whether the endpoint may listen beyond loopback (it has no authentication)"
    )

    @property
    def host(self) -> str | None:
        """The address the endpoint listens on, or None for no endpoint."""
        return None if self.listen is None else self.listen[0]

    @property
    def port(self) -> int | None:
        """Its TCP port, or None for no endpoint."""
        return None if self.listen is None else self.listen[1]


#: How long a room's lease lasts unrenewed, unless ``[cluster] lease_seconds`` says otherwise.
DEFAULT_LEASE_SECONDS = 15.0


@attrs.frozen
class ClusterConfig:
    """Several instances serving the same domains through one PostgreSQL (``[cluster]``); off unless ``instance`` is set."""

    instance: str | None = setting(
        None, "this instance's name, unique among the instances on the database", shown="none: a single instance"
    )
    lease_seconds: float = setting(
        DEFAULT_LEASE_SECONDS, "seconds a room's lease lasts unrenewed; it is renewed every third of that", minimum=1
    )

    @property
    def enabled(self) -> bool:
        """Whether this process is one of several instances."""
        return self.instance is not None


#: The levels ``[log] level`` takes, least to most severe (twisted.logger's names).
LOG_LEVELS = ("debug", "info", "warn", "error", "critical")


@attrs.frozen
class LogConfig:
    """What the log shows (``[log]``)."""

    level: str = setting("info", "events below this level are left out", choices=LOG_LEVELS)


@attrs.frozen
class Config:
    """The whole configuration file."""

    server: ServerConfig
    storage: StorageConfig
    components: tuple[ComponentConfig, ...]
    #: The directory of the file, where relative paths and service modules are found.
    directory: Path | None = None
    metrics: MetricsConfig = MetricsConfig()
    log: LogConfig = LogConfig()
    cluster: ClusterConfig = ClusterConfig()


class _Table:
    """A TOML table being read: typed getters that know the key's dotted name."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{path or 'the file'} must be a table")
        self.data = data
        self.path = path
        self.used: set[str] = set()

    def name(self, key: str) -> str:
        return key_path(self.path, key)

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        self.used.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            wanted = " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)
            raise ConfigError(f"{self.name(key)} must be {wanted}, not {value!r}")
        return value

    def table(self, key: str) -> _Table:
        self.used.add(key)
        return _Table(self.data.get(key, {}), self.name(key))

    def reject_unknown(self, extra: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        for key in self.data:
            if key not in self.used and key not in extra:
                raise ConfigError(f"{self.name(key)} is not a setting Netherfield knows")


_KIND_NAMES = {str: "a string", list: "a list", dict: "a table", bool: "true or false"}


def load_config(path: str | os.PathLike[str], environ: dict[str, str] | None = None) -> Config:
    """Read and validate the configuration file at ``path``.

    A mistake raises a :class:`ConfigError`: the first one, carrying the others.
    """
    config, mistakes = read_config(path, environ)
    mistakes.raise_any()
    assert config is not None
    return config


def read_config(
    path: str | os.PathLike[str], environ: dict[str, str] | None = None
) -> tuple[Config | None, Mistakes]:
    """The configuration file at ``path`` as far as it reads, and its mistakes.

    Each table is read even after a mistake in another, so that every
    mistake is told: the defaults stand in for a table with one, and a
    component with one is left out. None when the file itself does not read.
    """
    environ = dict(os.environ) if environ is None else environ
    mistakes = Mistakes()
    try:
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
    except OSError as exc:
        mistakes.add(f"cannot read the configuration file {path}: {exc.strerror}")
        return None, mistakes
    except tomllib.TOMLDecodeError as exc:
        mistakes.add(f"the configuration file {path} is not valid TOML: {exc}")
        return None, mistakes
    base = Path(path).resolve().parent
    top = _Table(raw, "")
    top.used.update({"server", "storage", "components", "metrics", "log", "cluster"})
    server = mistakes.attempt(lambda: read(ServerConfig, raw.get("server", {}), "server"), ServerConfig())
    storage = mistakes.attempt(lambda: _storage(top.table("storage"), environ, base), StorageConfig())
    components_table = mistakes.attempt(lambda: top.table("components"), _Table({}, "components"))
    if not components_table.data:
        mistakes.add("components must name at least one component domain, e.g. [components.\"echo.localhost\"]")
    read_components = [
        mistakes.attempt(functools.partial(_component, domain, components_table, server, environ, base), None)
        for domain in components_table.data
    ]
    metrics = mistakes.attempt(lambda: _metrics(raw.get("metrics", {})), MetricsConfig())
    log = mistakes.attempt(lambda: read(LogConfig, raw.get("log", {}), "log"), LogConfig())
    cluster = mistakes.attempt(lambda: _cluster(raw.get("cluster", {}), storage), ClusterConfig())
    mistakes.attempt(top.reject_unknown, None)
    components = tuple(component for component in read_components if component is not None)
    return Config(server, storage, components, base, metrics, log, cluster), mistakes


def _cluster(table: Any, storage: StorageConfig) -> ClusterConfig:
    config = read(ClusterConfig, table, "cluster")
    if config.instance is None:
        return config
    if not config.instance.strip():
        raise ConfigError("cluster.instance is empty; name this instance, e.g. \"muc-1\"")
    if storage.url.startswith("sqlite:"):
        raise ConfigError(
            "cluster.instance is set but storage.url is a SQLite database, which one process only can use;"
            " several instances share their rooms through PostgreSQL, so set storage.url to a postgresql:// URL"
        )
    return config


def _metrics(table: Any) -> MetricsConfig:
    config = read(MetricsConfig, table, "metrics")
    if config.host is not None and not config.allow_remote and not ipaddress.ip_address(config.host).is_loopback:
        raise ConfigError(
            f"metrics.listen is {table['listen']!r}, not a loopback address: the endpoint has no authentication,"
            " so set metrics.allow_remote = true to serve it beyond this machine"
        )
    return config


def _secret(table: _Table, environ: dict[str, str], base: Path, what: str) -> str | None:
    given = [key for key in (what, f"{what}_file", f"{what}_env") if key in table.data]
    if len(given) > 1:
        raise ConfigError(f"{table.path} sets {' and '.join(given)}; give only one of them")
    secret: str | None = table.get(what, str)
    file_name = table.get(f"{what}_file", str)
    env_name = table.get(f"{what}_env", str)
    if file_name is not None:
        secret_path = base / file_name
        try:
            secret = secret_path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{table.name(what + '_file')}: cannot read {secret_path}: {exc.strerror}") from None
    elif env_name is not None:
        secret = environ.get(env_name)
        if secret is None:
            raise ConfigError(f"{table.name(what + '_env')} names the environment variable {env_name}, which is not set")
    if secret == "":
        raise ConfigError(f"{table.path}.{what} is empty")
    return secret


def _storage(table: _Table, environ: dict[str, str], base: Path) -> StorageConfig:
    config = read(
        StorageConfig, table.data, table.path, values={"password": _secret(table, environ, base, "password")},
        other_keys={"password", "password_file", "password_env"},
    )
    if config.url.startswith("sqlite:"):
        return attrs.evolve(config, url=_sqlite_from(config.url, base, table.name("url")))
    return config


def _sqlite_from(url: str, base: Path, key: str) -> str:
    """The SQLite URL with a relative file made absolute from the config file's directory.

    The working directory of a service is wherever the supervisor started
    it (``/`` under systemd); the config file's directory is where its author
    was looking when writing the relative path.
    """
    try:
        path = path_from_url(url)
    except StorageError as error:
        raise ConfigError(f"{key}: {error}") from None
    if path == ":memory:" or Path(path).is_absolute():
        return url
    return "sqlite:///" + str(base / path)


def _component(
    domain: str, components: _Table, server: ServerConfig, environ: dict[str, str], base: Path
) -> ComponentConfig:
    table = components.table(domain)
    try:
        jid = parse_jid(domain)
    except InvalidJID:
        jid = None
    if jid is None or jid.node is not None or jid.resource is not None:
        raise ConfigError(f"{table.path} is not a valid component domain")
    secret = _secret(table, environ, base, "secret")
    if secret is None:
        raise ConfigError(f"{table.path} needs a secret: set secret, secret_file or secret_env")
    services = table.get("services", list)
    if not services or not all(isinstance(name, str) and name for name in services):
        raise ConfigError(f"{table.name('services')} must be a non-empty list of service names, e.g. [\"echo\"]")
    options: dict[str, dict[str, Any]] = {}
    for name in services:
        value = table.data.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{table.name(name)} must be a table of options for the {name} service")
        options[name] = value
    return read(
        ComponentConfig, table.data, table.path,
        values={"domain": jid.domain, "secret": secret, "services": tuple(services), "options": options},
        defaults={"host": server.host, "port": server.port},
        other_keys={"secret", "secret_file", "secret_env", "services", *services},
    )

