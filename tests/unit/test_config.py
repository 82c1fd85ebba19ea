"""The TOML configuration: what it accepts, and one sentence naming the key for each mistake."""

import sys
from pathlib import Path

import pytest

from component.app import Netherfield
from component.config import ClusterConfig, ConfigError, load_config
from tests.unit.twistd_process import last_line, run_twistd

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path, text):
    path = tmp_path / "netherfield.toml"
    path.write_text(text)
    return path


GOOD = """
[server]
host = "127.0.0.1"
port = 5347

[components."echo.localhost"]
secret = "s3cret"
services = ["echo"]

[components."bots.localhost"]
secret_env = "BOTS_SECRET"
services = ["echo"]
port = 5348

[components."bots.localhost".echo]
node = "parrot"
"""


def test_reads_a_good_file(tmp_path):
    config = load_config(write(tmp_path, GOOD), environ={"BOTS_SECRET": "from-env"})
    echo, bots = config.components
    assert (echo.domain, echo.secret, echo.services, echo.port) == ("echo.localhost", "s3cret", ("echo",), 5347)
    assert (bots.secret, bots.port, bots.options) == ("from-env", 5348, {"echo": {"node": "parrot"}})
    assert "s3cret" not in repr(config)
    assert config.storage.url == f"sqlite:///{tmp_path / 'netherfield.db'}"


def test_output_limit_reaches_the_component_and_its_connection(tmp_path):
    path = write(tmp_path, '[components."c.localhost"]\nsecret = "s"\nservices = ["echo"]\noutput_limit = 1048576\n')
    app = Netherfield(load_config(path))
    assert app.components[0].settings.output_limit == 1048576
    assert app.connectors[0].build_protocol().output_limit == 1048576
    default = Netherfield(load_config(write(tmp_path, GOOD), environ={"BOTS_SECRET": "x"}))
    assert default.components[0].settings.output_limit == 8 * 1024 * 1024


def test_secret_from_a_file(tmp_path):
    (tmp_path / "secret.txt").write_text("filed\n")
    path = write(tmp_path, '[components."c.localhost"]\nsecret_file = "secret.txt"\nservices = ["echo"]\n')
    assert load_config(path).components[0].secret == "filed"


@pytest.mark.parametrize(
    ("url", "resolved"),
    [
        ("sqlite:///data/n.db", "sqlite:///{dir}/data/n.db"),
        ("sqlite:///", "sqlite:///{dir}/netherfield.db"),
        ("sqlite:////var/lib/netherfield/n.db", "sqlite:////var/lib/netherfield/n.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql://u@db.example.org/n", "postgresql://u@db.example.org/n"),
    ],
)
def test_relative_paths_are_relative_to_the_config_file_not_the_working_directory(
    tmp_path, monkeypatch, url, resolved
):
    directory = tmp_path / "etc"
    directory.mkdir()
    (directory / "echo.secret").write_text("filed\n")
    (directory / "db.password").write_text("pw\n")
    password = 'password_file = "db.password"\n' if url.startswith("postgresql") else ""
    write(directory, f'[storage]\nurl = "{url}"\n{password}\n'
                     '[components."c.localhost"]\nsecret_file = "echo.secret"\nservices = ["echo"]\n')
    monkeypatch.chdir(tmp_path)
    config = load_config("etc/netherfield.toml")
    assert config.storage.url == resolved.format(dir=directory)
    assert config.components[0].secret == "filed"
    assert config.storage.password == ("pw" if password else None)


def test_a_sqlite_url_with_a_host_names_the_key(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, '[storage]\nurl = "sqlite://host/n.db"\n[components."c.localhost"]\n'
                                    'secret = "s"\nservices = ["echo"]\n'))
    assert str(caught.value) == (
        "storage.url: a SQLite URL names no host: write sqlite:///relative/path.db or sqlite:////absolute/path.db,"
        " not sqlite://host/n.db"
    )


ECHO = '[components."c.localhost"]\nsecret = "s"\nservices = ["echo"]\n'
POSTGRES = "[storage]\nurl = 'postgresql://netherfield@db.example.org/netherfield'\n"


def test_a_single_instance_has_no_cluster(tmp_path):
    config = load_config(write(tmp_path, ECHO), environ={})
    assert config.cluster == ClusterConfig(instance=None, lease_seconds=15.0)
    assert not config.cluster.enabled


def test_a_cluster_instance_on_postgresql(tmp_path):
    text = ECHO + POSTGRES + "[cluster]\ninstance = 'muc-2'\nlease_seconds = 6\n"
    config = load_config(write(tmp_path, text), environ={})
    assert config.cluster == ClusterConfig(instance="muc-2", lease_seconds=6.0)
    assert config.cluster.enabled


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        ("[server]\nport = 'x'\n", "server.port must be a TCP port number, not 'x'"),
        ("[server]\nport = 99999\n", "server.port must be a TCP port number, not 99999"),
        ('[components."c.localhost"]\nsecret = "s"\nservices = ["echo"]\nport = 0\n',
         'components."c.localhost".port must be a TCP port number, not 0'),
        ("[server]\nhots = 'x'\n", "server.hots is not a setting Netherfield knows"),
        ("", 'components must name at least one component domain'),
        ('[components."c.localhost"]\nservices = ["echo"]\n', 'components."c.localhost" needs a secret'),
        ('[components."c.localhost"]\nsecret = "s"\nsecret_env = "X"\nservices = ["echo"]\n',
         'components."c.localhost" sets secret and secret_env; give only one of them'),
        ('[components."c.localhost"]\nsecret_env = "NOPE"\nservices = ["echo"]\n',
         'components."c.localhost".secret_env names the environment variable NOPE, which is not set'),
        ('[components."c.localhost"]\nsecret_file = "missing"\nservices = ["echo"]\n',
         'components."c.localhost".secret_file: cannot read'),
        ('[components."c.localhost"]\nsecret = "s"\n', 'components."c.localhost".services must be a non-empty list'),
        ('[components."c.localhost"]\nsecret = "s"\nservices = ["echo"]\ncolour = 1\n',
         'components."c.localhost".colour is not a setting Netherfield knows'),
        ('[components."not a domain"]\nsecret = "s"\nservices = ["echo"]\n',
         'components."not a domain" is not a valid component domain'),
        ('[components."c.localhost"]\nsecret = "s"\nservices = ["echo"]\noutput_limit = 1000\n',
         'components."c.localhost".output_limit must be at least 65536, not 1000'),
        ("[storage]\nurl = 'mysql://x'\n", "storage.url must start with sqlite:/// or postgresql://"),
        ("[server\n", "is not valid TOML"),
        (ECHO + "[cluster]\ninstance = 'muc-1'\n",
         "cluster.instance is set but storage.url is a SQLite database, which one process only can use;"
         " several instances share their rooms through PostgreSQL, so set storage.url to a postgresql:// URL"),
        (ECHO + POSTGRES + "[cluster]\ninstance = ' '\n", "cluster.instance is empty"),
        (ECHO + POSTGRES + "[cluster]\ninstance = 'muc-1'\nlease_seconds = 0.5\n",
         "cluster.lease_seconds must be at least 1, not 0.5"),
        (ECHO + POSTGRES + "[cluster]\nname = 'muc-1'\n", "cluster.name is not a setting Netherfield knows"),
    ],
)
def test_mistakes_are_one_sentence_naming_the_key(tmp_path, text, sentence):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), environ={})
    assert sentence in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("services", "sentence"),
    [
        ('["nosuch"]', "there is no service called 'nosuch': the built-in ones are echo, muc, notices,"
                       " and others are named package.module:Class"),
        ('["echo"]\n[components."c.localhost".echo]\nvolume = 11\n',
         'components."c.localhost".echo.volume is not a setting of the echo service'),
    ],
)
def test_service_mistakes_surface_before_connecting(tmp_path, services, sentence):
    path = write(tmp_path, f'[components."c.localhost"]\nsecret = "s"\nservices = {services}\n')
    with pytest.raises(ConfigError) as caught:
        Netherfield(load_config(path))
    assert sentence in str(caught.value)


def test_twistd_prints_one_sentence_and_exits_non_zero(tmp_path):
    done = run_twistd(write(tmp_path, '[components."c.localhost"]\nservices = ["echo"]\n'))
    assert done.returncode == 2
    assert last_line(done) == (
        'netherfield: components."c.localhost" needs a secret: set secret, secret_file or secret_env'
    )
    assert "Traceback" not in done.stderr


def _readme_block(after: str) -> str:
    """The literal block that follows the paragraph ending with *after* in README.rst."""
    text = (ROOT / "README.rst").read_text()
    lines = text[text.index(after) + len(after):].splitlines()[1:]
    block = []
    for line in lines:
        if line and not line.startswith("    "):
            break
        block.append(line[4:])
    return "\n".join(block).strip() + "\n"


def test_the_readme_service_runs_as_written_from_beside_the_config(tmp_path, monkeypatch):
    (tmp_path / "shout.py").write_text(_readme_block("the framework sends the reply::"))
    path = write(tmp_path, '[components."shout.example.org"]\nsecret = "s"\nservices = ["shout:ShoutService"]\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setattr(sys, "path", list(sys.path))
    app = Netherfield(load_config(path))
    (service,) = app.components[0].services
    assert type(service).__module__ == "shout"
    # The README's own test of it passes too.
    exec(_readme_block("a stanza in, the exact stanzas out::"), {"ShoutService": type(service)})


@pytest.mark.parametrize(
    ("module", "sentence"),
    [
        ("raise ValueError('no widget configured')\n",
         "the service 'widget:Widget' failed while importing widget: ValueError: no widget configured"),
        ("import not_installed_anywhere\n",
         "the service 'widget:Widget' failed while importing widget: ModuleNotFoundError:"
         " No module named 'not_installed_anywhere'"),
    ],
    ids=["raises", "imports-a-missing-module"],
)
def test_a_service_module_that_fails_while_importing_shows_its_traceback(tmp_path, module, sentence):
    (tmp_path / "widget.py").write_text(module)
    done = run_twistd(write(tmp_path, '[components."c.localhost"]\nsecret = "s"\nservices = ["widget:Widget"]\n'))
    assert (done.returncode, last_line(done)) == (2, f"netherfield: {sentence}")
    assert "Traceback (most recent call last):" in done.stderr
    assert f'File "{tmp_path / "widget.py"}", line 1' in done.stderr


def test_a_service_module_that_does_not_exist_is_not_a_traceback(tmp_path):
    done = run_twistd(write(tmp_path, '[components."c.localhost"]\nsecret = "s"\nservices = ["gone.away:Widget"]\n'))
    assert (done.returncode, last_line(done)) == (
        2, f"netherfield: there is no service called 'gone.away:Widget': no module gone.away on the Python path"
           f" or in {tmp_path}",
    )
    assert "Traceback" not in done.stderr


def test_a_service_module_without_the_class(tmp_path):
    (tmp_path / "empty_module.py").write_text("")
    path = write(tmp_path, '[components."c.localhost"]\nsecret = "s"\nservices = ["empty_module:Widget"]\n')
    with pytest.raises(ConfigError) as caught:
        Netherfield(load_config(path))
    assert str(caught.value) == "there is no service called 'empty_module:Widget': the module empty_module has no Widget"


def test_twistd_prints_each_mistake_of_the_file_as_its_own_sentence(tmp_path):
    done = run_twistd(write(tmp_path, '[server]\nping_interval = -1\n[components."c.localhost"]\nservices = ["echo"]\n'))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-2:] == [
        "netherfield: server.ping_interval must be at least 0, not -1",
        'netherfield: components."c.localhost" needs a secret: set secret, secret_file or secret_env',
    ]
