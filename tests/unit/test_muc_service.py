"""The MUC service's settings: every mistake is a ConfigError that names its key."""

from __future__ import annotations

from typing import Any

import pytest

from component.component import Component
from component.config import ConfigError
from services.muc import SERVICE, MucService
from services.muc.settings import MucSettings


def build(options: dict[str, Any]) -> MucService:
    return MucService(Component("conference.localhost"), options)


def test_the_module_names_its_service() -> None:
    assert SERVICE is MucService
    assert MucService.name == "muc"
    assert MucService.settings_class is MucSettings


def test_defaults() -> None:
    service = build({})
    assert service.settings.creation == "anyone"
    assert service.local_domains == frozenset({"localhost"})
    assert service.admins == frozenset()
    assert service.max_nick_length == 64


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"admins": "admin@localhost"}, "admins"),
        ({"admins": ["not a jid@@"]}, "admins"),
        ({"creation": "everybody"}, "creation"),
        ({"local_domains": "localhost"}, "local_domains"),
        ({"max_history": -1}, "max_history"),
        ({"max_history": 2.5}, "max_history"),
        ({"idle_unload_seconds": "soon"}, "idle_unload_seconds"),
        ({"lock_seconds": True}, "lock_seconds"),
        ({"max_nick_length": 0}, "max_nick_length"),
        ({"max_nick_length": "64"}, "max_nick_length"),
    ],
)
def test_bad_settings_name_their_key(options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        build(options)
    assert f'components."conference.localhost".muc.{key}' in str(error.value)


def test_admins_are_bare_jids() -> None:
    service = build({"admins": ["Admin@LocalHost/desk"]})
    assert [str(jid) for jid in service.admins] == ["admin@localhost"]
