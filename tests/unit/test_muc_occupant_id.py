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
from services.muc.testing import (
    CRONE,
    HAG,
    MUC_X,
    ROOM,
    WICCA,
    ImmediateStorage,
    configure,
    enter,
    immediate_storage,
    instant_room,
    muc_harness,
)

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


# -- in the room: XEP-0421 §3, with XEP-0045's cast -------------------------------------------

OCCUPANT_ID = "urn:xmpp:occupant-id:0"


@pytest.fixture
def harness():
    h = muc_harness({"occupant_id": True})
    enter(h, ROOM, "firstwitch", CRONE)
    configure(h, "")
    enter(h, ROOM, "secondwitch", WICCA)
    return h


def oid(h, jid: str, room: str = ROOM) -> str:
    service = h.component.services[0]
    return service.occupant_ids.of(parse_jid(room), parse_jid(jid))


def tag(h, jid: str) -> str:
    return f"<occupant-id xmlns='{OCCUPANT_ID}' id='{oid(h, jid)}'/>"


def test_the_room_and_the_service_advertise_occupant_ids(harness) -> None:
    h = harness
    for to in (ROOM, "chat.shakespeare.lit"):
        h.receive(f"<iq from='{HAG}' id='info1' to='{to}' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        (reply,) = h.sent()
        assert OCCUPANT_ID in {f.get("var") for f in reply.iter("{http://jabber.org/protocol/disco#info}feature")}


def test_off_nothing_is_advertised_or_added() -> None:
    h = muc_harness({"occupant_id": False})
    instant_room(h, ROOM, CRONE, "firstwitch")
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    assert not [e for stanza in h.sent() for e in stanza.iter(f"{{{OCCUPANT_ID}}}occupant-id")]
    for to in (ROOM, "chat.shakespeare.lit"):
        h.receive(f"<iq from='{HAG}' id='info1' to='{to}' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        (reply,) = h.sent()
        assert OCCUPANT_ID not in {f.get("var") for f in reply.iter("{http://jabber.org/protocol/disco#info}feature")}


def test_entering_a_room(harness) -> None:
    # XEP-0421 Examples 3 and 4: the newcomer's presence to every occupant carries its id.
    h = harness
    h.receive(f"<presence from='{HAG}' id='n13mt3l' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    h.expect(
        f"""<presence from='{ROOM}/firstwitch' to='{HAG}'>{tag(h, CRONE)}
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' role='moderator'/></x></presence>""",
        f"""<presence from='{ROOM}/secondwitch' to='{HAG}'>{tag(h, WICCA)}
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/></x></presence>""",
        f"""<presence from='{ROOM}/thirdwitch' id='n13mt3l' to='{CRONE}'>{tag(h, HAG)}
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' jid='{HAG}' role='participant'/></x>
          </presence>""",
        f"""<presence from='{ROOM}/thirdwitch' id='n13mt3l' to='{WICCA}'>{tag(h, HAG)}
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/></x></presence>""",
        f"""<presence from='{ROOM}/thirdwitch' id='n13mt3l' to='{HAG}'>{tag(h, HAG)}
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' jid='{HAG}' role='participant'/>
          <status code='110'/></x></presence>""",
        f"<message from='{ROOM}' to='{HAG}' type='groupchat'><subject/></message>",
    )


def test_a_message_to_all_occupants(harness) -> None:
    # XEP-0421 Examples 5 and 6; a client's own occupant-id is replaced by the room's.
    h = harness
    h.receive(
        f"""<message from='{WICCA}' id='hysf1v37' to='{ROOM}' type='groupchat'>
          <body>Harpier cries: 'tis time, 'tis time.</body>
          <occupant-id xmlns='{OCCUPANT_ID}' id='forged'/></message>"""
    )
    h.expect(*[
        f"""<message from='{ROOM}/secondwitch' id='hysf1v37' to='{to}' type='groupchat'>
          <body>Harpier cries: 'tis time, 'tis time.</body>{tag(h, WICCA)}
          <stanza-id xmlns='urn:xmpp:sid:0' id='*' by='{ROOM}'/></message>"""
        for to in (CRONE, WICCA)
    ])
    # The history a newcomer gets carries it too (XEP-0421 §4).
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    replayed = [s for s in h.sent() if s.tag.endswith("message") and s.find("{jabber:component:accept}body") is not None]
    assert [s.find(f"{{{OCCUPANT_ID}}}occupant-id").get("id") for s in replayed] == [oid(h, WICCA)]


def test_a_forged_occupant_id_in_presence_is_replaced(harness) -> None:
    h = harness
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/secondwitch'><show>away</show><occupant-id xmlns='{OCCUPANT_ID}' id='forged'/></presence>")
    sent = h.sent()
    assert [e.get("id") for s in sent for e in s.iter(f"{{{OCCUPANT_ID}}}occupant-id")] == [oid(h, WICCA)] * len(sent)


def test_the_same_id_across_nick_changes_rejoins_and_clients(harness) -> None:
    h = harness
    first = oid(h, WICCA)
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/oldhag'/>")
    assert {e.get("id") for s in h.sent() for e in s.iter(f"{{{OCCUPANT_ID}}}occupant-id")} == {first}
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/oldhag' type='unavailable'/>")
    assert {e.get("id") for s in h.sent() for e in s.iter(f"{{{OCCUPANT_ID}}}occupant-id")} == {first}
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/secondwitch'>{MUC_X}</presence>")
    h.sent()
    # A second client of the same user: the same occupant, the same id.
    h.receive(f"<presence from='wiccarocks@shakespeare.lit/phone' to='{ROOM}/secondwitch'>{MUC_X}</presence>")
    own = [s for s in h.sent() if s.get("from") == f"{ROOM}/secondwitch"]
    assert own and {s.find(f"{{{OCCUPANT_ID}}}occupant-id").get("id") for s in own} == {first}
    # Another user in the room, and the same user in another room, get other ids.
    assert oid(h, HAG) != first != oid(h, WICCA, "chamber@chat.shakespeare.lit")


def test_private_messages_and_subject_changes_carry_the_senders_id(harness) -> None:
    h = harness
    h.receive(f"<message from='{WICCA}' id='pm' to='{ROOM}/firstwitch' type='chat'><body>psst</body><occupant-id xmlns='{OCCUPANT_ID}' id='forged'/></message>")
    h.expect(
        f"""<message from='{ROOM}/secondwitch' id='pm' to='{CRONE}' type='chat'><body>psst</body>{tag(h, WICCA)}
          <x xmlns='http://jabber.org/protocol/muc#user'/></message>"""
    )
    h.receive(f"<message from='{CRONE}' id='s' to='{ROOM}' type='groupchat'><subject>Fire Burn</subject></message>")
    h.expect(*[
        f"<message from='{ROOM}/firstwitch' id='s' to='{to}' type='groupchat'><subject>Fire Burn</subject>{tag(h, CRONE)}"
        f"<stanza-id xmlns='urn:xmpp:sid:0' by='{ROOM}' id='*'/></message>"
        for to in (CRONE, WICCA)
    ])


def test_turned_on_by_a_reload_the_kept_presences_gain_it(harness) -> None:
    h = harness
    [service] = h.component.services
    assert service.reconfigure(MucService(h.component, {"occupant_id": False}))
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    assert not [e for s in h.sent() for e in s.iter(f"{{{OCCUPANT_ID}}}occupant-id")]
    assert service.reconfigure(MucService(h.component, {"occupant_id": True}))
    h.receive(f"<presence from='crone2@shakespeare.lit/x' to='{ROOM}/fourthwitch'>{MUC_X}</presence>")
    shown = [s for s in h.sent() if s.get("from") in (f"{ROOM}/firstwitch", f"{ROOM}/secondwitch", f"{ROOM}/thirdwitch")]
    assert len(shown) == 3
    assert all(s.find(f"{{{OCCUPANT_ID}}}occupant-id") is not None for s in shown)


DISCO_INFO = "http://jabber.org/protocol/disco#info"
ROOM_FEATURES = [
    DISCO_INFO, "http://jabber.org/protocol/disco#items", "http://jabber.org/protocol/muc",
    "http://jabber.org/protocol/muc#admin", "http://jabber.org/protocol/muc#owner",
    "http://jabber.org/protocol/muc#register", "http://jabber.org/protocol/muc#request",
    "http://jabber.org/protocol/muc#self-ping-optimization", "http://jabber.org/protocol/muc#stable_id",
    "jabber:iq:register", "jabber:iq:version", "muc_open", "muc_public", "muc_semianonymous", "muc_temporary",
    "muc_unmoderated", "muc_unsecured", "urn:xmpp:message-moderate:0", "urn:xmpp:message-moderate:1",
    "urn:xmpp:message-retract:1", OCCUPANT_ID, "urn:xmpp:ping", "urn:xmpp:sid:0", "vcard-temp",
]


def _service_info(features: list[str]) -> str:
    listed = "".join(f"<feature var='{var}'/>" for var in features)
    return (
        f"<iq from='chat.shakespeare.lit' id='info2' to='{HAG}' type='result'><query xmlns='{DISCO_INFO}'>"
        f"<identity category='conference' type='text' name='Chatrooms'/>{listed}</query></iq>"
    )


SERVICE_FEATURES = [
    "http://jabber.org/protocol/commands", DISCO_INFO, "http://jabber.org/protocol/disco#items",
    "http://jabber.org/protocol/muc", "http://jabber.org/protocol/muc#unique", "jabber:iq:version", OCCUPANT_ID,
    "urn:xmpp:ping",
]


def _room_features(h) -> list[str]:
    h.receive(f"<iq from='{HAG}' id='info1' to='{ROOM}' type='get'><query xmlns='{DISCO_INFO}'/></iq>")
    (reply,) = h.sent()
    return [f.get("var") for f in reply.iter(f"{{{DISCO_INFO}}}feature")]


def _ask_service(h) -> None:
    h.receive(f"<iq from='{HAG}' id='info2' to='chat.shakespeare.lit' type='get'><query xmlns='{DISCO_INFO}'/></iq>")


def test_a_reload_that_turns_them_off_and_on_changes_what_disco_says(harness) -> None:
    # The answers the room and the domain kept serialised follow the settings in force.
    h = harness
    [service] = h.component.services
    without = [var for var in SERVICE_FEATURES if var != OCCUPANT_ID]
    assert _room_features(h) == ROOM_FEATURES
    _ask_service(h)
    h.expect(_service_info(SERVICE_FEATURES))
    assert service.reconfigure(MucService(h.component, {"occupant_id": False}))
    assert _room_features(h) == [var for var in ROOM_FEATURES if var != OCCUPANT_ID]
    _ask_service(h)
    h.expect(_service_info(without))
    assert service.reconfigure(MucService(h.component, {"occupant_id": True}))
    assert _room_features(h) == ROOM_FEATURES
    _ask_service(h)
    h.expect(_service_info(SERVICE_FEATURES))
