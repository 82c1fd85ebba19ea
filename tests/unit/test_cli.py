"""The commands an operator types, as README.rst gives them, after ``scripts/setup``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import component
from component.cli import main

BIN = Path(sys.executable).parent
CLEAN_ENV = {"PATH": "/usr/bin:/bin"}  # no PYTHONPATH: what the venv itself provides


def test_netherfield_version(capsys):
    try:
        main(["--version"])
    except SystemExit as stopped:
        assert stopped.code == 0
    assert capsys.readouterr().out == f"Netherfield {component.__version__}\n"


def test_the_console_script_and_twistd_print_the_version(tmp_path):
    if not (BIN / "netherfield").exists():
        # A .venv built before the entry point existed; CI builds a fresh one.
        pytest.skip("no netherfield console script: run scripts/setup again")
    for command in ([str(BIN / "netherfield"), "--version"], [str(BIN / "twistd"), "netherfield", "--version"]):
        done = subprocess.run(command, capture_output=True, text=True, env=CLEAN_ENV, cwd=tmp_path, timeout=60)
        assert (done.returncode, done.stdout) == (0, f"Netherfield {component.__version__}\n"), done.stderr


def test_the_readme_twistd_command_runs_from_the_venv(tmp_path):
    # `.venv/bin/twistd -n netherfield --config FILE` finds the plugin without
    # PYTHONPATH: scripts/setup's .pth line puts twistd-plugins/ on sys.path.
    path = tmp_path / "netherfield.toml"
    path.write_text('[components."c.localhost"]\nservices = ["echo"]\n')
    done = subprocess.run(
        [str(BIN / "twistd"), "-n", "--pidfile=", "netherfield", "--config", str(path)],
        capture_output=True, text=True, env=CLEAN_ENV, cwd=tmp_path, timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        'netherfield: components."c.localhost" needs a secret: set secret, secret_file or secret_env'
    )
