"""The TOML configuration: what it accepts, and one sentence naming the key for each mistake."""

import pytest

from component.app import Netherfield
from component.config import ConfigError, load_config
from tests.unit.twistd_process import last_line, run_twistd


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
    assert config.storage.url == "sqlite:///netherfield.db"


def test_secret_from_a_file(tmp_path):
    (tmp_path / "secret.txt").write_text("filed\n")
    path = write(tmp_path, '[components."c.localhost"]\nsecret_file = "secret.txt"\nservices = ["echo"]\n')
    assert load_config(path).components[0].secret == "filed"


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        ("[server]\nport = 'x'\n", "server.port must be an integer, not 'x'"),
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
        ("[storage]\nurl = 'mysql://x'\n", "storage.url must start with sqlite:/// or postgresql://"),
        ("[server\n", "is not valid TOML"),
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
        ('["nosuch"]', "there is no service called 'nosuch'"),
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
