"""Reloading the configuration: what a new file changes, and what the MUC takes without reconnecting."""

from __future__ import annotations

from pathlib import Path

from component.config import load_config
from component.reload import ReloadPlan, plan
from services.muc.testing import CRONE, ROOM, enter, instant_room, muc_harness

BASE = """
[server]
port = 5347
[storage]
url = "sqlite:///nf.db"
[components."echo.localhost"]
secret = "one"
services = ["echo"]
[components."conference.localhost"]
secret = "two"
services = ["muc"]
[components."conference.localhost".muc]
max_history = 20
"""


def config_of(tmp_path: Path, text: str, name: str = "nf.toml"):
    path = tmp_path / name
    path.write_text(text)
    return load_config(path)


def test_an_unchanged_file_changes_nothing(tmp_path) -> None:
    assert plan(config_of(tmp_path, BASE), config_of(tmp_path, BASE, "again.toml")) == ReloadPlan()


def test_components_added_removed_reconnected_and_reconfigured(tmp_path) -> None:
    old = config_of(tmp_path, BASE)
    new = config_of(
        tmp_path,
        BASE.replace('secret = "one"', 'secret = "changed"')
        .replace("max_history = 20", "max_history = 5")
        .replace('[components."echo.localhost"]', '[components."notices.localhost"]\nsecret = "n"\nservices = ["echo"]\n[components."echo.localhost"]'),
        "new.toml",
    )
    changes = plan(old, new)
    assert [c.domain for c in changes.added] == ["notices.localhost"]
    assert changes.removed == ()
    # Keys are named, never their values: a secret could be one.
    assert [(c.domain, names) for c, names in changes.reconnected] == [("echo.localhost", ("secret",))]
    assert [(c.domain, names) for c, names in changes.reconfigured] == [("conference.localhost", ("muc",))]
    assert "changed" not in repr(changes)

    gone = config_of(tmp_path, BASE.split('[components."conference.localhost"]')[0], "gone.toml")
    assert plan(old, gone).removed == ("conference.localhost",)


def test_server_settings_reconnect_every_component_and_storage_waits_for_a_restart(tmp_path) -> None:
    old = config_of(tmp_path, BASE)
    new = config_of(tmp_path, BASE.replace("port = 5347", "port = 5348").replace("nf.db", "other.db"), "new.toml")
    changes = plan(old, new)
    # A component's own port follows [server] unless it sets one.
    assert [(c.domain, names) for c, names in changes.reconnected] == [
        ("echo.localhost", ("server.port", "port")),
        ("conference.localhost", ("server.port", "port")),
    ]
    assert changes.not_applied == ("storage changed; restart Netherfield to apply it",)


def test_the_muc_takes_new_settings_and_keeps_its_rooms_and_counts() -> None:
    h = muc_harness({"max_rooms_per_user": 1, "max_history": 20})
    instant_room(h, ROOM, CRONE)
    [service] = h.component.services
    replacement = type(service)(h.component, {"max_rooms_per_user": 1, "max_history": 5, "admins": ["a@b"]})
    assert service.reconfigure(replacement)
    assert service.max_history == 5
    assert {str(jid) for jid in service.admins} == {"a@b"}
    assert service.limits.settings.max_rooms_per_user == 1
    # The room is still there, and it still counts against its creator.
    assert h.component.router.loaded("coven") is not None
    enter(h, "other@chat.shakespeare.lit", "owner", CRONE)
    assert h.component.router.loaded("other") is None
