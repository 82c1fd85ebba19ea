"""scripts/demo.py, what scripts/quickstart runs: it stops everything it started on SIGINT or SIGTERM.

Started from a script, a shell runs a background job with SIGINT ignored; the
demo must still stop on Ctrl-C (SIGINT), and on SIGTERM, leave no Prosody or
component behind, and keep its logs.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.servers import descendant_pids, process_alive

ROOT = Path(__file__).resolve().parents[2]
RUN_DIRECTORY = ROOT / ".quickstart"


def _ignore_sigint() -> None:
    # What `cmd &` in a non-interactive shell does to the job.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.skipif(shutil.which("prosody") is None, reason="prosody is not installed")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_demo_stops_everything_it_started_and_keeps_its_logs(signum: int) -> None:
    demo = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--user", "tester"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_ignore_sigint,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    try:
        assert demo.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Ctrl-C stops both"):
                break
        assert any("Log in as:   tester@localhost" in line for line in lines), "".join(lines)
        started = descendant_pids(demo.pid)
        assert started, "the demo runs Prosody and the component as its children"
        demo.send_signal(signum)
        rest, _ = demo.communicate(timeout=30)
        lines.append(rest)
        assert demo.returncode == 0, "".join(lines)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert not [pid for pid in started if process_alive(pid)]
    assert f"Stopped; the logs are in {RUN_DIRECTORY}" in "".join(lines)
    assert (RUN_DIRECTORY / "netherfield.log").read_text().strip()
