"""Runs ``twistd -n netherfield`` in a subprocess, as an operator or systemd would."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_twistd(
    config: Path,
    *,
    path: Sequence[Path] = (),
    prefix: Sequence[str] = (),
    cwd: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run the component on *config* until it exits.

    *path* goes first on ``PYTHONPATH``; *prefix* wraps the command (``setpriv ...``);
    it runs in *cwd*, by default the config file's directory.
    """
    python_path = ":".join(str(p) for p in [*path, ROOT, ROOT / "twistd-plugins"])
    environment = {"PYTHONPATH": python_path, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [*prefix, sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=",
         "netherfield", "--config", str(config)],
        capture_output=True, text=True, env=environment, cwd=cwd or config.parent, timeout=timeout,
    )


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    """The last line the process wrote on stderr: the sentence saying why it stopped."""
    lines = done.stderr.strip().splitlines()
    return lines[-1] if lines else ""
