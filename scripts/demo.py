"""Run the echo service against a sandboxed Prosody on loopback until Ctrl-C.

Prosody runs from a temporary directory with its own ports; a demo account is
created; the component is launched with ``twistd -n netherfield``. Both stop
on Ctrl-C.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.servers import ComponentProcess, ProsodyServer, to_toml  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--user", default="newcomer", help="the demo account's name")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="netherfield-demo-") as scratch:
        root = Path(scratch)
        component_secret = secrets.token_urlsafe(16)
        server = ProsodyServer(root / "prosody", {"echo.localhost": component_secret})
        password = secrets.token_urlsafe(9)
        server.register(args.user, password)
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
        try:
            component.wait_attached()
            print(
                "\nNetherfield's echo bot is attached to a sandboxed Prosody.\n"
                f"  Log in as:   {args.user}@{server.domain}\n"
                f"  Password:    {password}\n"
                f"  Server:      {server.host} port {server.c2s_port} (plain, no TLS: loopback only)\n"
                f"  Then chat with echo@echo.localhost; service discovery on echo.localhost.\n"
                f"  Component log: {component.log_path}\n"
                "Ctrl-C stops both.\n",
                flush=True,
            )
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            while component.running and server.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            component.stop()
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
