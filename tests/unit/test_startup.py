"""Startup failures: ``twistd -n netherfield`` exits non-zero with one sentence saying what is wrong.

systemd's ``Restart=on-failure`` counts only a non-zero exit status as a
failure, so each case runs the real twistd command in a subprocess.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.unit.twistd_process import last_line, run_twistd


def config(tmp_path, storage_url, services='["muc"]'):
    path = tmp_path / "netherfield.toml"
    path.write_text(
        f'[storage]\nurl = "{storage_url}"\n\n'
        f'[components."c.localhost"]\nsecret = "s"\nservices = {services}\n'
    )
    return path


def assert_fails_with(done, sentence):
    assert (done.returncode, last_line(done)) == (1, f"netherfield: {sentence}"), done.stdout + done.stderr


def test_sqlite_file_in_a_missing_directory(tmp_path):
    # Relative to the config file's directory, whatever the working directory.
    database = tmp_path / "missing" / "n.db"
    done = run_twistd(config(tmp_path, "sqlite:///missing/n.db"), cwd=Path("/"))
    assert_fails_with(done, f"cannot open the SQLite database at {database}: the directory {database.parent} does not exist")
    assert "Traceback" not in done.stdout + done.stderr


def _can_mount_read_only():
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_mount_read_only(), reason="needs unshare -m to mount a read-only directory")
def test_sqlite_file_on_a_read_only_file_system(tmp_path):
    directory = tmp_path / "ro"
    directory.mkdir()
    # A private mount namespace, in which the directory is bound read-only.
    read_only = ["unshare", "-m", "sh", "-c",
                 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"', str(directory)]
    done = run_twistd(config(tmp_path, f"sqlite:///{directory / 'n.db'}"), prefix=read_only)
    assert_fails_with(done, f"cannot open the SQLite database at {directory / 'n.db'}: {directory} is on a read-only file system")


def _without_root_powers():
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("as root, needs setpriv to drop the power to write anywhere")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def test_sqlite_file_in_a_directory_the_user_may_not_write(tmp_path):
    prefix = _without_root_powers()
    directory = tmp_path / "locked"
    directory.mkdir(mode=0o555)
    user = pwd.getpwuid(os.geteuid()).pw_name
    done = run_twistd(config(tmp_path, f"sqlite:///{directory / 'n.db'}"), prefix=prefix)
    assert_fails_with(done, f"cannot open the SQLite database at {directory / 'n.db'}: the user {user} may not create files in {directory}")


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_postgresql_unreachable(tmp_path):
    port = _closed_port()
    url = f"postgresql://netherfield@127.0.0.1:{port}/netherfield"
    done = run_twistd(config(tmp_path, url))
    assert_fails_with(
        done,
        f'the PostgreSQL database {url} is unreachable: connection failed: connection to server at "127.0.0.1",'
        f" port {port} failed: Connection refused",
    )


def test_postgresql_url_without_psycopg(tmp_path):
    # A psycopg that does not import stands for one that is not installed.
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "psycopg.py").write_text("raise ModuleNotFoundError(\"No module named 'psycopg'\", name='psycopg')\n")
    done = run_twistd(config(tmp_path, "postgresql://netherfield@127.0.0.1/netherfield"), path=[hidden])
    assert_fails_with(
        done,
        "PostgreSQL storage needs psycopg and psycopg-pool, which do not import (No module named 'psycopg'):"
        " install them with pip install 'netherfield[postgres]'",
    )


BROKEN = '''
from component.service import Service


class Broken(Service):
    name = "broken"

    def start(self):
        raise RuntimeError("the widget is missing")
'''


def test_a_service_that_fails_to_start(tmp_path):
    (tmp_path / "broken_service.py").write_text(BROKEN)
    path = config(tmp_path, f"sqlite:///{tmp_path / 'n.db'}", services='["echo", "broken_service:Broken"]')
    done = run_twistd(path)
    assert_fails_with(
        done,
        "the broken service of c.localhost failed to start with RuntimeError: the widget is missing"
        " (the traceback is in the log)",
    )
    assert 'raise RuntimeError("the widget is missing")' in done.stdout
