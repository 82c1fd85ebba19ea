"""contrib/netherfield.service: the unit the README tells operators to install.

``systemd-analyze verify`` checks every directive (it needs no running
systemd); the unit's ExecStart names /opt/netherfield, which is not on this
machine, so a copy pointing at this checkout's twistd is verified. The keys
that make the service safe are checked by reading the file itself.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "contrib" / "netherfield.service"
EXEC = "/opt/netherfield/.venv/bin/twistd"


def directives() -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value given, in order (systemd allows a key more than once)."""
    found: dict[str, dict[str, list[str]]] = {}
    section = None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = found.setdefault(line[1:-1], {})
            continue
        assert section is not None, f"a directive before any section: {line}"
        key, equals, value = line.partition("=")
        assert equals, f"not a directive: {line}"
        section.setdefault(key.strip(), []).append(value.strip())
    return found


def test_the_unit_runs_twistd_in_the_foreground_as_its_own_user_and_restarts_on_failure():
    service = directives()["Service"]
    assert service["User"] == ["netherfield"]
    assert service["ExecStart"] == [f"{EXEC} -n --pidfile= netherfield --config /etc/netherfield/netherfield.toml"]
    assert service["Restart"] == ["on-failure"]
    assert service["RestartPreventExitStatus"] == ["2"]  # a configuration mistake
    assert directives()["Install"]["WantedBy"] == ["multi-user.target"]


def test_the_unit_writes_nowhere_but_its_state_directory():
    service = directives()["Service"]
    for key, value in {
        "ProtectSystem": "strict",
        "ReadWritePaths": "/var/lib/netherfield",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service.get(key) == [value], key
    assert "ProcSubset" not in service  # the process metrics read /proc/stat


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (scripts/setup installs systemd)")
def test_systemd_analyze_verifies_the_unit_without_a_warning(tmp_path):
    twistd = Path(sys.executable).parent / "twistd"
    copy = tmp_path / "netherfield.service"
    copy.write_text(UNIT.read_text().replace(f"ExecStart={EXEC} ", f"ExecStart={twistd} "))
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)], capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (scripts/setup installs systemd)")
def test_systemd_rates_the_unit_s_exposure_low(tmp_path):
    # systemd's own score: 0 is fully confined, 10 not at all; 1.8 when this test was written.
    done = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=25", str(UNIT)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
