"""Settings declared once: the checks, the sentences, the defaults and the README's lists all come from them."""

import sys
from pathlib import Path

import attrs
import pytest

from component import options
from component.app import Netherfield, resolve_service
from component.component import DomainSettings, Keepalive
from component.config import (
    ClusterConfig,
    ComponentConfig,
    ConfigError,
    LogConfig,
    MetricsConfig,
    ServerConfig,
    StorageConfig,
    load_config,
)
from component.connection import Backoff
from component.stream import StreamLimits
from tests.unit.test_config import _readme_block

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.rst"
BUILT_IN = ("echo", "muc", "notices")


def write(tmp_path, text):
    path = tmp_path / "netherfield.toml"
    path.write_text(text)
    return path


def component(services, table=""):
    return f'[components."c.localhost"]\nsecret = "s"\nservices = {services}\n{table}'


# -- the README -------------------------------------------------------------------


def test_the_readme_lists_are_what_the_declarations_say():
    text = README.read_text()
    assert options.rewrite(text) == text, "README.rst is stale: run .venv/bin/python -m component.options README.rst"


def test_the_readme_lists_every_built_in_service_and_table():
    listed = set(options.listed(README.read_text()))
    wanted = {
        f"{cls.__module__}:{cls.__name__}" for cls in (ServerConfig, StorageConfig, ComponentConfig, LogConfig, MetricsConfig, ClusterConfig)
    }
    for name in BUILT_IN:
        cls = resolve_service(name).settings_class
        wanted.add(f"{cls.__module__}:{cls.__name__}")
    assert wanted <= listed


@pytest.mark.parametrize(
    ("declared", "stale"),
    [
        # A default, a doc and a name the declarations no longer have.
        ("messages a room keeps (a whole number, at least 0;\n      default ``50``)",
         "messages a room keeps (a whole number, at least 0;\n      default ``51``)"),
        ("messages a room keeps", "messages the room keeps"),
        ("* ``max_history``:", "* ``history_max``:"),
    ],
)
def test_a_readme_that_disagrees_with_the_declarations_is_stale(tmp_path, declared, stale):
    text = README.read_text()
    assert declared in text
    copy = tmp_path / "README.rst"
    copy.write_text(text.replace(declared, stale, 1))
    assert options.main(["--check", str(copy)]) == 1
    assert options.main([str(copy)]) == 0
    assert copy.read_text() == text
    assert options.main(["--check", str(copy)]) == 0


def test_a_setting_without_a_list_entry_is_stale():
    text = README.read_text()
    entry = "* ``lock_seconds``:"
    start = text.index(entry)
    end = text.index("\n    * ", start + 1)
    assert options.rewrite(text[:start] + text[end + 5:]) == text


# -- the sentences --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        # Wrong types.
        (component('["muc"]', '[components."c.localhost".muc]\nmax_history = "many"\n'),
         'components."c.localhost".muc.max_history must be a whole number, not \'many\''),
        (component('["muc"]', '[components."c.localhost".muc]\nmax_history = 2.5\n'),
         'components."c.localhost".muc.max_history must be a whole number, not 2.5'),
        (component('["muc"]', '[components."c.localhost".muc]\nlock_seconds = true\n'),
         'components."c.localhost".muc.lock_seconds must be a number, not True'),
        (component('["muc"]', '[components."c.localhost".muc]\nidle_unload_seconds = inf\n'),
         'components."c.localhost".muc.idle_unload_seconds must be a number, not inf'),
        ("[server]\nping_timeout = nan\n" + component('["echo"]'), "server.ping_timeout must be a number, not nan"),
        (component('["muc"]', '[components."c.localhost".muc]\nlocal_domains = "localhost"\n'),
         'components."c.localhost".muc.local_domains must be a list of domains, e.g. ["example.org"], not \'localhost\''),
        (component('["echo"]', '[components."c.localhost".echo]\nnode = "a b"\n'),
         'components."c.localhost".echo.node must be a valid localpart, not \'a b\''),
        (component('["notices"]', '[components."c.localhost".notices.bots.news]\nname = 3\n'),
         'components."c.localhost".notices.bots.news.name must be a string, not 3'),
        ('[log]\nlevel = 3\n' + component('["echo"]'),
         "log.level must be a string, not 3"),
        # Out of range.
        (component('["muc"]', '[components."c.localhost".muc]\ngroupchat_rate = -0.5\n'),
         'components."c.localhost".muc.groupchat_rate must be at least 0, not -0.5'),
        (component('["muc"]', '[components."c.localhost".muc]\nmax_nick_length = 0\n'),
         'components."c.localhost".muc.max_nick_length must be at least 1, not 0'),
        (component('["echo"]', "iq_timeout = 0\n"), 'components."c.localhost".iq_timeout must be at least 0.1, not 0'),
        (component('["muc"]', '[components."c.localhost".muc]\ncreation = "nobody"\n'),
         'components."c.localhost".muc.creation must be one of anyone, local, admins, not \'nobody\''),
        (component('["notices"]', '[components."c.localhost".notices.bots.news]\nshow = "busy"\n'),
         'components."c.localhost".notices.bots.news.show must be one of away, chat, dnd, xa, not \'busy\''),
        # Unknown keys.
        (component('["muc"]', '[components."c.localhost".muc]\nmax_histroy = 5\n'),
         'components."c.localhost".muc.max_histroy is not a setting of the muc service'),
        (component('["notices"]', '[components."c.localhost".notices.bots.news]\ncolour = "red"\n'),
         'components."c.localhost".notices.bots.news.colour is not a setting of a notices bot'),
        (component('["echo"]', "queue_limt = 5\n"), 'components."c.localhost".queue_limt is not a setting Netherfield knows'),
        ("[log]\nlevels = 'info'\n" + component('["echo"]'), "log.levels is not a setting Netherfield knows"),
        # A required table.
        (component('["notices"]'),
         'components."c.localhost".notices.bots must be set: the bots, a table each, named by node'),
    ],
)
def test_each_mistake_is_one_sentence_with_the_full_path_of_its_key(tmp_path, text, sentence):
    with pytest.raises(ConfigError) as caught:
        Netherfield(load_config(write(tmp_path, text), environ={}))
    assert str(caught.value) == sentence


def test_a_service_named_by_its_module_has_its_table_quoted_in_sentences(tmp_path, monkeypatch):
    (tmp_path / "shout.py").write_text(_readme_block("the framework sends the reply::"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    table = '[components."c.localhost"."shout:ShoutService"]\n'
    path = write(tmp_path, component('["shout:ShoutService"]', table + 'node = "loud"\n'))
    app = Netherfield(load_config(path))
    assert [str(entity.jid) for entity in _started(app)] == ["loud@c.localhost"]
    with pytest.raises(ConfigError) as caught:
        Netherfield(load_config(write(tmp_path, component('["shout:ShoutService"]', table + "volume = 11\n"))))
    assert str(caught.value) == (
        'components."c.localhost"."shout:ShoutService".volume is not a setting of the shout:ShoutService service'
    )


def _started(app):
    for service in app.components[0].services:
        service.start()
    return [entity for entity in app.components[0].router.entities() if entity.jid.node is not None]


# -- the defaults --------------------------------------------------------------------


def test_what_the_file_leaves_out_is_the_declared_default(tmp_path):
    app = Netherfield(load_config(write(tmp_path, component('["muc"]'))))
    settings = app.config.components[0]
    declared = {item.name: item.default for item in options.declared(ComponentConfig)}
    built = app.components[0]
    assert (built.settings.queue_limit, built.settings.output_limit, built.max_outgoing_bytes) == (
        declared["queue_limit"], declared["output_limit"], declared["max_outgoing_bytes"]
    )
    assert built.iq.timeout == declared["iq_timeout"] == settings.iq_timeout
    server = {item.name: item.default for item in options.declared(ServerConfig)}
    assert (built.keepalive.ping_interval, built.keepalive.ping_timeout) == (
        server["ping_interval"], server["ping_timeout"]
    )
    assert app.connectors[0].build_protocol()._parser.max_depth == declared["max_depth"]
    [muc] = built.services
    muc_declared = {item.name: item.default for item in options.declared(type(muc.settings))}
    assert (muc.settings.max_history, muc.limits.settings.max_rooms_per_user) == (
        muc_declared["max_history"], muc_declared["max_rooms_per_user"]
    )


@pytest.mark.parametrize(
    ("values", "table"), [(DomainSettings, "components"), (StreamLimits, "components"), (Keepalive, "server"),
                          (Backoff, "server")],
)
def test_the_framework_unless_told_applies_what_a_file_leaves_out(tmp_path, values, table):
    # Component, ComponentProtocol and ComponentConnector take these values; the file's tables are made of them.
    config = load_config(write(tmp_path, component('["echo"]')))
    read = config.server if table == "server" else config.components[0]
    assert isinstance(read, values)
    default = values()
    assert [getattr(read, field.name) for field in attrs.fields(values)] == [
        getattr(default, field.name) for field in attrs.fields(values)
    ]


def test_a_setting_needs_a_one_line_doc():
    with pytest.raises(ValueError):
        options.setting(1, "")
    with pytest.raises(ValueError):
        options.setting(1, "two\nlines")


@pytest.mark.parametrize(
    ("annotation", "field", "mistake"),
    [
        (int, {"default": -1, "doc": "a count", "minimum": 0}, "Broken.value defaults to -1, outside its own bounds"),
        (int, {"default": 11, "doc": "a count", "maximum": 10}, "Broken.value defaults to 11, outside its own bounds"),
        (str, {"default": "x", "doc": "a mode", "choices": ("a", "b")}, "Broken.value defaults to 'x', which is none"),
        (str | None, {"default": None, "doc": "a mode"}, "Broken.value defaults to None: say what"),
        (list, {"default": (), "doc": "some things"}, "Broken.value needs a kind"),
    ],
)
def test_a_declaration_that_contradicts_itself_is_refused_when_first_read(annotation, field, mistake):
    import attrs

    broken = attrs.frozen(type("Broken", (), {"__annotations__": {"value": annotation}, "value": options.setting(**field)}))
    with pytest.raises(TypeError, match=mistake):
        options.declared(broken)
