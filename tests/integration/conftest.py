"""Fixtures for tests against real servers: Prosody and ejabberd, and our component.

`xmpp_server` runs each server once per test session (tests that use it run
once per server); `component_process` launches the project's twistd entry
point with a TOML config and stops it after the test.
"""

from __future__ import annotations

import itertools
import shutil
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.integration.servers import (
    SERVER_CLASSES,
    ComponentProcess,
    XMPPServer,
    to_toml,
)

#: The component domains every test server accepts.
COMPONENT_DOMAINS = (
    "echo.localhost",
    "conference.localhost",
    "notices.localhost",
    "comp.localhost",
)


def component_secret(domain: str) -> str:
    """The secret the test servers expect from `domain`."""
    return "secret-" + domain


def _missing(name: str) -> str | None:
    commands = {"prosody": ["prosody", "prosodyctl"], "ejabberd": ["ejabberdctl", "erl"]}
    for command in commands[name]:
        if shutil.which(command) is None:
            return command
    return None


@pytest.fixture(scope="session", params=list(SERVER_CLASSES), ids=list(SERVER_CLASSES))
def xmpp_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[XMPPServer]:
    """A running Prosody or ejabberd on loopback, with the test component domains.

    `xmpp_server.secrets[domain]` is each domain's component secret.
    """
    name: str = request.param
    missing = _missing(name)
    if missing:
        pytest.skip(f"{name} is not installed ({missing} not found)")
    server = SERVER_CLASSES[name](
        tmp_path_factory.mktemp(name),
        {domain: component_secret(domain) for domain in COMPONENT_DOMAINS},
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


class ComponentLauncher(Protocol):
    """Starts a component; see the `component_process` fixture."""

    def __call__(
        self,
        server: XMPPServer,
        config: str | Mapping[str, Any],
        *,
        wait: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> ComponentProcess:
        """Write `config`, launch the component, and wait until it attached."""


def complete_config(server: XMPPServer, config: Mapping[str, Any], directory: Path) -> dict[str, Any]:
    """Fill in what a dict config leaves out.

    `[server]` defaults to the server's component port, `[storage]` to a
    SQLite file in `directory`, and a component with no secret setting
    gets the server's secret for its domain.
    """
    full: dict[str, Any] = {key: value for key, value in config.items()}
    full.setdefault("server", {"host": server.host, "port": server.component_port})
    full.setdefault("storage", {"url": f"sqlite:///{directory / 'netherfield.db'}"})
    components: dict[str, Any] = {}
    for domain, settings in full.get("components", {}).items():
        settings = dict(settings)
        if not {"secret", "secret_file", "secret_env"} & settings.keys():
            settings["secret"] = server.secrets[domain]
        components[domain] = settings
    full["components"] = components
    return full


@pytest.fixture
def component_process(tmp_path: Path) -> Iterator[ComponentLauncher]:
    """A launcher for the project's component: `component_process(server, config)`.

    `config` is TOML text (written as given) or a dict (completed by
    `complete_config`, then written as TOML). The launcher waits until every
    configured domain printed its "attached" line unless `wait=False`.
    Every launched process is stopped after the test.
    """
    started: list[ComponentProcess] = []
    counter = itertools.count(1)

    def launch(
        server: XMPPServer,
        config: str | Mapping[str, Any],
        *,
        wait: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> ComponentProcess:
        n = next(counter)
        directory = tmp_path / f"component-{n}"
        directory.mkdir()
        if isinstance(config, str):
            text = config
            tomllib.loads(text)  # fail here, not in the child, on a broken config
        else:
            text = to_toml(complete_config(server, config, directory))
        config_path = directory / "netherfield.toml"
        config_path.write_text(text, encoding="utf-8")
        process = ComponentProcess(config_path, directory / "output.log", env=env)
        started.append(process)
        if wait:
            process.wait_attached()
        return process

    yield launch
    for process in started:
        process.stop()
