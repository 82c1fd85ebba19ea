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


def check_output(capsys, tmp_path, text):
    path = tmp_path / "netherfield.toml"
    path.write_text(text)
    status = main(["check", str(path)])
    out, err = capsys.readouterr()
    return status, out, err


MUC = '[components."c.localhost"]\nsecret = "s"\nservices = ["muc"]\n'


def test_check_passes_a_good_file_and_changes_nothing(capsys, tmp_path):
    status, out, err = check_output(capsys, tmp_path, f'[storage]\nurl = "sqlite:///data/n.db"\n{MUC}')
    assert (status, out, err) == (1, "", f"netherfield: cannot open the SQLite database at {tmp_path}/data/n.db:"
                                         f" the directory {tmp_path}/data does not exist\n")
    (tmp_path / "data").mkdir()
    status, out, err = check_output(capsys, tmp_path, f'[storage]\nurl = "sqlite:///data/n.db"\n{MUC}')
    assert (status, out, err) == (0, f"{tmp_path}/netherfield.toml: no problems found\n", "")
    assert list((tmp_path / "data").iterdir()) == []  # checking created no database


def test_check_opens_an_existing_database_read_only(capsys, tmp_path):
    (tmp_path / "n.db").write_bytes(b"this is not SQLite, but something else entirely, long enough")
    status, _, err = check_output(capsys, tmp_path, f'[storage]\nurl = "sqlite:///n.db"\n{MUC}')
    assert (status, err) == (1, f"netherfield: cannot open the SQLite database at {tmp_path}/n.db:"
                                " file is not a database\n")


def test_check_reports_a_config_mistake_in_one_sentence(capsys, tmp_path):
    status, _, err = check_output(capsys, tmp_path, '[components."c.localhost"]\nsecret_file = "nope"\n'
                                                    'services = ["echo"]\n')
    assert (status, err) == (1, f'netherfield: components."c.localhost".secret_file: cannot read {tmp_path}/nope:'
                                " No such file or directory\n")


def test_check_reports_a_service_and_the_storage_together(capsys, tmp_path):
    (tmp_path / "broken_module.py").write_text("raise RuntimeError('half-written')\n")
    status, _, err = check_output(
        capsys, tmp_path,
        '[storage]\nurl = "sqlite:///gone/n.db"\n'
        '[components."c.localhost"]\nsecret = "s"\nservices = ["muc", "broken_module:Thing"]\n',
    )
    lines = err.splitlines()
    assert status == 1
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-2:] == [
        "netherfield: the service 'broken_module:Thing' failed while importing broken_module: RuntimeError:"
        " half-written",
        f"netherfield: cannot open the SQLite database at {tmp_path}/gone/n.db: the directory {tmp_path}/gone"
        " does not exist",
    ]


def test_check_reports_an_unreachable_postgresql(capsys, tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://netherfield@127.0.0.1:{port}/netherfield"
    status, _, err = check_output(capsys, tmp_path, f'[storage]\nurl = "{url}"\n{MUC}')
    assert (status, err) == (
        1, f'netherfield: the PostgreSQL database {url} is unreachable: connection failed: connection to server at'
           f' "127.0.0.1", port {port} failed: Connection refused\n',
    )


def test_check_skips_storage_no_service_uses(capsys, tmp_path):
    status, out, _ = check_output(capsys, tmp_path, '[storage]\nurl = "sqlite:///gone/n.db"\n'
                                                    '[components."c.localhost"]\nsecret = "s"\nservices = ["echo"]\n')
    assert (status, out) == (0, f"{tmp_path}/netherfield.toml: no problems found\n")


def test_check_reports_every_service_problem_not_only_the_first(capsys, tmp_path):
    status, _, err = check_output(
        capsys, tmp_path,
        '[components."c.localhost"]\nsecret = "s"\nservices = ["muc", "nosuchservice"]\n'
        '[components."c.localhost".muc]\nmax_history = -1\n'
        '[components."d.localhost"]\nsecret = "s"\nservices = ["echo", "alsomissing"]\n',
    )
    assert status == 1
    assert err.splitlines() == [
        'netherfield: components."c.localhost".muc.max_history must be at least 0, not -1',
        "netherfield: there is no service called 'nosuchservice': the built-in ones are echo, muc, notices,"
        " and others are named package.module:Class",
        "netherfield: there is no service called 'alsomissing': the built-in ones are echo, muc, notices,"
        " and others are named package.module:Class",
    ]


def test_check_tells_every_mistake_in_every_table_not_only_the_first(capsys, tmp_path):
    status, _, err = check_output(
        capsys, tmp_path,
        '[server]\nport = 0\nping_timeout = "soon"\n'
        '[components."c.localhost"]\nsecret = "s"\nservices = ["echo"]\nqueue_limit = 0\ncolour = "red"\n'
        '[components."d.localhost"]\nservices = ["echo"]\n'
        '[components."e.localhost"]\nsecret = "s"\nservices = ["muc"]\n[components."e.localhost".muc]\nlock_seconds = "x"\n'
        '[log]\nlevel = "loud"\n',
    )
    assert status == 1
    assert err.splitlines() == [
        "netherfield: server.port must be a TCP port number, not 0",
        "netherfield: server.ping_timeout must be a number, not 'soon'",
        'netherfield: components."c.localhost".colour is not a setting Netherfield knows',
        'netherfield: components."c.localhost".queue_limit must be at least 1, not 0',
        'netherfield: components."d.localhost" needs a secret: set secret, secret_file or secret_env',
        "netherfield: log.level must be one of debug, info, warn, error, critical, not 'loud'",
        # The services of the components that read are checked too.
        'netherfield: components."e.localhost".muc.lock_seconds must be a number, not \'x\'',
    ]


def test_settings_lists_each_key_with_its_default_from_the_declarations(capsys):
    assert main(["settings", "echo"]) == 0
    assert capsys.readouterr().out == (
        '[components."DOMAIN".echo]\n'
        '* node: the bot\'s localpart: it answers at NODE@DOMAIN (a valid\n'
        '  localpart; default "echo")\n'
    )
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    headings = [line for line in out.splitlines() if line.startswith("[")]
    assert headings == [
        "[server]", "[storage]", '[components."DOMAIN"]', "[metrics]", "[log]", "[cluster]",
        '[components."DOMAIN".echo]', '[components."DOMAIN".muc]', '[components."DOMAIN".notices]',
    ]
    assert "* max_history: messages a room keeps (a whole number, at least 0;\n  default 50)" in out


def test_settings_of_a_service_of_ones_own_and_of_none(capsys, tmp_path, monkeypatch):
    (tmp_path / "quiet.py").write_text(
        "from component.service import Service\n\nclass Quiet(Service):\n    name = 'quiet'\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert main(["settings", "quiet:Quiet"]) == 0
    assert capsys.readouterr().out == '[components."DOMAIN"."quiet:Quiet"]\n(no settings)\n'
    assert main(["settings", "nosuch"]) == 1
    assert capsys.readouterr().err.startswith("netherfield: there is no service called 'nosuch'")
