"""Occupant identifiers (XEP-0421): how they are derived, and the service secret they are derived from.

The stanzas that carry them are in the room's own tests, written as XEP-0421 §3's examples.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest

from component.jid import parse_jid
from services.muc.occupant_id import OccupantIds, load_secret
from services.muc.service import MucService
from services.muc.testing import HAG, ROOM, ImmediateStorage, immediate_storage, muc_harness

SECRET = bytes(range(32))


def ids() -> OccupantIds:
    return OccupantIds(SECRET)


def test_the_id_is_an_hmac_of_the_room_and_the_users_bare_jid() -> None:
    # XEP-0421 §4.1, the service secret construction: HMAC(secret, room || NUL || user).
    expected = base64.b64encode(
        hmac.new(SECRET, b"coven@chat.shakespeare.lit\x00hag66@shakespeare.lit", hashlib.sha256).digest()
    ).decode()
    assert ids().of(parse_jid(ROOM), parse_jid(HAG)) == expected
    assert len(expected) <= 128


def test_every_client_of_a_user_has_the_same_id() -> None:
    room = parse_jid(ROOM)
    assert ids().of(room, parse_jid("hag66@shakespeare.lit/pda")) == ids().of(room, parse_jid("hag66@shakespeare.lit/laptop"))
    assert ids().of(room, parse_jid("hag66@shakespeare.lit/pda")) == ids().of(room, parse_jid("hag66@shakespeare.lit"))


def test_users_rooms_and_secrets_each_change_the_id() -> None:
    room, hag = parse_jid(ROOM), parse_jid(HAG)
    one = ids().of(room, hag)
    assert ids().of(room, parse_jid("crone1@shakespeare.lit/desktop")) != one
    assert ids().of(parse_jid("chamber@chat.shakespeare.lit"), hag) != one
    assert OccupantIds(bytes(32)).of(room, hag) != one
    # Not a plain hash of the JID, which anyone could compute (XEP-0421 §5).
    assert one != base64.b64encode(hashlib.sha256(b"hag66@shakespeare.lit").digest()).decode()


def test_the_element() -> None:
    element = ids().element(parse_jid(ROOM), parse_jid(HAG))
    assert element.tag == "{urn:xmpp:occupant-id:0}occupant-id"
    assert element.get("id") == ids().of(parse_jid(ROOM), parse_jid(HAG))
    assert list(element.attrib) == ["id"]


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        OccupantIds(b"short")


def _secret(storage: ImmediateStorage) -> bytes:
    outcome: list[bytes] = []
    load_secret(storage).addCallback(outcome.append)
    return outcome[0]


def test_the_secret_is_created_once_and_read_back(tmp_path: Path) -> None:
    path = str(tmp_path / "muc.db")
    first = immediate_storage(ImmediateStorage(path))
    secret = _secret(first)
    assert len(secret) == 32
    assert _secret(first) == secret
    first.close()
    # Another process on the same database (or this one after a restart) reads the same secret.
    assert _secret(immediate_storage(ImmediateStorage(path))) == secret
    assert _secret(immediate_storage()) != secret


def test_the_service_derives_ids_from_the_stored_secret_across_restarts(tmp_path: Path) -> None:
    path = str(tmp_path / "muc.db")
    first = muc_harness({"occupant_id": True}, storage=immediate_storage(ImmediateStorage(path)))
    service = first.component.services[0]
    assert isinstance(service, MucService)
    before = service.occupant_ids.of(parse_jid(ROOM), parse_jid(HAG))
    second = muc_harness({"occupant_id": True}, storage=immediate_storage(ImmediateStorage(path)))
    after = second.component.services[0]
    assert isinstance(after, MucService)
    assert after.occupant_ids.of(parse_jid(ROOM), parse_jid(HAG)) == before
