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
    assert service.settings.max_nick_length == 64


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


def test_occupant_id_is_a_boolean() -> None:
    assert build({}).settings.occupant_id is True
    assert build({"occupant_id": False}).settings.occupant_id is False
    with pytest.raises(ConfigError) as error:
        build({"occupant_id": "yes"})
    assert 'components."conference.localhost".muc.occupant_id' in str(error.value)


def test_unique_room_names() -> None:
    # XEP-0307 §2: the service hands out a room name nobody holds.
    from services.muc.testing import HAG, muc_harness

    h = muc_harness()
    names = set()
    for n in range(3):
        h.receive(
            f"<iq from='{HAG}' id='unique{n}' to='chat.shakespeare.lit' type='get'>"
            "<unique xmlns='http://jabber.org/protocol/muc#unique'/></iq>"
        )
        (reply,) = h.expect(
            f"<iq from='chat.shakespeare.lit' id='unique{n}' to='{HAG}' type='result'>"
            "<unique xmlns='http://jabber.org/protocol/muc#unique'>*</unique></iq>"
        )
        name = reply[0].text
        assert len(name) == 24 and name == name.lower() and "@" not in name
        names.add(name)
    assert len(names) == 3
    # It is a get: a set of it is no request the service knows.
    h.receive(
        f"<iq from='{HAG}' id='u' to='chat.shakespeare.lit' type='set'>"
        "<unique xmlns='http://jabber.org/protocol/muc#unique'/></iq>"
    )
    h.expect(
        f"<iq from='chat.shakespeare.lit' id='u' to='{HAG}' type='error'><unique xmlns='http://jabber.org/protocol/muc#unique'/>"
        "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    )
