"""The servers the differential scenarios run on, started once per module.

One Prosody carries both Prosody's own MUC (``muc.localhost``) and our MUC as
an external component (``conference.localhost``); one ejabberd carries our
MUC too. The same users (``alice`` to ``erin``) exist on both servers.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.integration.conftest import complete_config
from tests.integration.servers import ComponentProcess, EjabberdServer, ProsodyServer, XMPPServer, to_toml

#: Prosody's own MUC, the oracle.
ORACLE = "muc.localhost"
#: Our MUC, behind either server.
OURS = "conference.localhost"
USERS = ("alice", "bob", "carol", "dave", "erin")


class ProsodyWithMuc(ProsodyServer):
    """Prosody with its built-in MUC enabled as a component of its own, at its defaults."""

    def write_config(self) -> None:
        super().write_config()
        with open(self.config_path, "a", encoding="utf-8") as config:
            config.write(f'\nComponent "{ORACLE}" "muc"\n')


@attrs.frozen
class Servers:
    """The running servers and the password of every user (the same on both)."""

    prosody: XMPPServer
    ejabberd: XMPPServer | None
    passwords: dict[str, str]


def _start_component(server: XMPPServer, directory: Path) -> ComponentProcess:
    directory.mkdir()
    config: dict[str, Any] = {"components": {OURS: {"services": ["muc"], "muc": {}}}}
    path = directory / "netherfield.toml"
    path.write_text(to_toml(complete_config(server, config, directory)), encoding="utf-8")
    process = ComponentProcess(path, directory / "output.log")
    return process


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """Prosody (with both MUCs) and, when installed, ejabberd (with ours), users registered on both."""
    if shutil.which("prosody") is None:
        pytest.skip("prosody is not installed")
    base = tmp_path_factory.mktemp("interop")
    passwords = {user: secrets.token_urlsafe(9) for user in USERS}
    prosody = ProsodyWithMuc(base / "prosody", {OURS: "secret-" + OURS})
    ejabberd = None
    if shutil.which("ejabberdctl") is not None and shutil.which("erl") is not None:
        ejabberd = EjabberdServer(base / "ejabberd", {OURS: "secret-" + OURS})
    started: list[XMPPServer] = []
    components: list[ComponentProcess] = []
    try:
        with ThreadPoolExecutor(8) as pool:
            runs = [pool.submit(server.start) for server in (prosody, ejabberd) if server is not None]
            for run in runs:
                run.result()
            started = [server for server in (prosody, ejabberd) if server is not None]
            jobs = [pool.submit(server.register, user, pw) for server in started for user, pw in passwords.items()]
            for job in jobs:
                job.result()
        for index, server in enumerate(started):
            components.append(_start_component(server, base / f"component-{index}"))
        for process in components:
            process.wait_attached()
        yield Servers(prosody, ejabberd, passwords)
    finally:
        for process in components:
            process.stop()
        for server in started:
            server.stop()
