"""Run the echo service against a sandboxed Prosody on loopback until Ctrl-C or SIGTERM.

Prosody runs from ``.quickstart/`` in the checkout with its own ports; a demo
account is created; the component is launched with ``twistd -n netherfield``.
Both stop on Ctrl-C (SIGINT) or SIGTERM, also when started from a script,
where a shell starts background jobs with SIGINT ignored. Their logs stay in
``.quickstart/`` until the next start.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import signal
import sys
import time
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.servers import ComponentProcess, ProsodyServer, to_toml

RUN_DIRECTORY = Path(__file__).resolve().parents[1] / ".quickstart"


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--user", default="newcomer", help="the demo account's name")
    args = parser.parse_args()
    # Installed explicitly: a non-interactive shell starts a background job
    # with SIGINT ignored, and Python then leaves it ignored.
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    shutil.rmtree(RUN_DIRECTORY, ignore_errors=True)
    RUN_DIRECTORY.mkdir()
    root = RUN_DIRECTORY
    print(f"Logs: {root} (kept after exit, until the next start)", flush=True)
    component_secret = secrets.token_urlsafe(16)
    server = ProsodyServer(root / "prosody", {"echo.localhost": component_secret})
    password = secrets.token_urlsafe(9)
    server.register(args.user, password)
    component: ComponentProcess | None = None
    try:
        server.start()
        config = root / "netherfield.toml"
        config.write_text(
            to_toml(
                {
                    "server": {"host": server.host, "port": server.component_port},
                    "storage": {"url": f"sqlite:///{root / 'netherfield.db'}"},
                    "components": {"echo.localhost": {"secret": component_secret, "services": ["echo"]}},
                }
            )
        )
        component = ComponentProcess(config, root / "netherfield.log")
        component.wait_attached()
        print(
            "\nNetherfield's echo bot is attached to a sandboxed Prosody.\n"
            f"  Log in as:   {args.user}@{server.domain}\n"
            f"  Password:    {password}\n"
            f"  Server:      {server.host} port {server.c2s_port} (plain, no TLS: loopback only)\n"
            f"  Then chat with echo@echo.localhost; service discovery on echo.localhost.\n"
            f"  Component log: {component.log_path}\n"
            f"  Prosody log:   {root / 'prosody'}\n"
            "Ctrl-C stops both.\n",
            flush=True,
        )
        while component.running and server.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        # A second signal while stopping must not leave either running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if component is not None:
            component.stop()
        server.stop()
        print(f"Stopped; the logs are in {root}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
