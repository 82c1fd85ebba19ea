"""Room avatars: the vCard of the room's bare JID (XEP-0054) and its hash (XEP-0153), as Prosody's mod_vcard_muc.

Written as the XEPs' examples, with XEP-0045's cast: the owner (crone1)
sets the room's vCard, anyone gets it, the occupants are told of the new
hash, and everyone who enters later is too.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from services.muc.testing import (
    CRONE,
    ERR,
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

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489")
PHOTO = base64.b64encode(PNG).decode()
HASH = hashlib.sha1(PNG).hexdigest()
VCARD = f"<vCard xmlns='vcard-temp'><FN>The Coven</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>{PHOTO}</BINVAL></PHOTO></vCard>"
PERSISTENT = "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"


@pytest.fixture
def harness():
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    enter(h, ROOM, "secondwitch", WICCA)
    return h


def set_vcard(h, vcard: str = VCARD, sender: str = CRONE) -> None:
    h.receive(f"<iq from='{sender}' id='v1' to='{ROOM}' type='set'>{vcard}</iq>")


def test_a_room_without_vcard(harness) -> None:
    h = harness
    h.receive(f"<iq from='{HAG}' id='v0' to='{ROOM}' type='get'><vCard xmlns='vcard-temp'/></iq>")
    h.expect(
        f"""<iq from='{ROOM}' id='v0' to='{HAG}' type='error'><vCard xmlns='vcard-temp'/>
          <error type='cancel'><item-not-found {ERR}/><text {ERR}>*</text></error></iq>"""
    )


def test_the_owner_sets_the_vcard_and_the_occupants_are_told(harness) -> None:
    h = harness
    set_vcard(h)
    # Stored, then announced (as a configuration change is: 104), then answered.
    h.expect(
        *[
            f"""<presence from='{ROOM}' to='{to}'><x xmlns='vcard-temp:x:update'><photo>{HASH}</photo></x></presence>"""
            for to in (CRONE, WICCA)
        ],
        *[
            f"""<message from='{ROOM}' to='{to}' type='groupchat'>
              <x xmlns='http://jabber.org/protocol/muc#user'><status code='104'/></x></message>"""
            for to in (CRONE, WICCA)
        ],
        f"<iq from='{ROOM}' id='v1' to='{CRONE}' type='result'/>",
    )
    # Anyone may get it (XEP-0054 §3.3), in or out of the room.
    h.receive(f"<iq from='{HAG}' id='v2' to='{ROOM}' type='get'><vCard xmlns='vcard-temp'/></iq>")
    h.expect(f"<iq from='{ROOM}' id='v2' to='{HAG}' type='result'>{VCARD}</iq>")


def test_newcomers_get_the_avatar_after_the_subject(harness) -> None:
    h = harness
    set_vcard(h)
    h.sent()
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    *_, subject, avatar = h.sent()
    assert subject.find("{jabber:component:accept}subject") is not None
    assert avatar.tag == "{jabber:component:accept}presence"
    assert (avatar.get("from"), avatar.get("to")) == (ROOM, HAG)
    assert avatar.findtext("{vcard-temp:x:update}x/{vcard-temp:x:update}photo") == HASH


def test_the_hash_is_in_the_room_info(harness) -> None:
    h = harness
    set_vcard(h)
    h.sent()
    h.receive(f"<iq from='{HAG}' id='i' to='{ROOM}' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    (reply,) = h.sent()
    fields = {f.get("var"): f for f in reply.iter("{jabber:x:data}field")}
    field = fields["muc#roominfo_avatarhash"]
    assert field.get("type") == "text-multi"
    assert [v.text for v in field.findall("{jabber:x:data}value")] == [HASH]
    features = {f.get("var") for f in reply.iter("{http://jabber.org/protocol/disco#info}feature")}
    assert "vcard-temp" in features


def test_only_owners_set_it(harness) -> None:
    h = harness
    set_vcard(h, sender=WICCA)
    h.expect(
        f"""<iq from='{ROOM}' id='v1' to='{WICCA}' type='error'>{VCARD}
          <error type='auth'><forbidden {ERR}/><text {ERR}>*</text></error></iq>"""
    )


def test_too_large_a_vcard_is_refused() -> None:
    h = muc_harness({"max_vcard_bytes": 200})
    instant_room(h, ROOM, CRONE, "firstwitch")
    big = f"<vCard xmlns='vcard-temp'><PHOTO><BINVAL>{base64.b64encode(PNG * 8).decode()}</BINVAL></PHOTO></vCard>"
    set_vcard(h, big)
    h.expect(
        f"""<iq from='{ROOM}' id='v1' to='{CRONE}' type='error'>{big}
          <error type='modify'><policy-violation {ERR}/><text {ERR}>the vCard is too large (limit 200 bytes)</text></error></iq>"""
    )


def test_an_empty_vcard_removes_the_avatar(harness) -> None:
    h = harness
    set_vcard(h)
    h.sent()
    set_vcard(h, "<vCard xmlns='vcard-temp'/>")
    presences = [s for s in h.sent() if s.tag.endswith("presence")]
    assert [p.findtext("{vcard-temp:x:update}x/{vcard-temp:x:update}photo") for p in presences] == ["", ""]  # <photo/>: none (XEP-0153 §3.1)
    h.receive(f"<iq from='{HAG}' id='v3' to='{ROOM}' type='get'><vCard xmlns='vcard-temp'/></iq>")
    (reply,) = h.sent()
    assert reply.get("type") == "error"


def test_a_persistent_rooms_vcard_survives_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "muc.db")
    h = muc_harness(storage=immediate_storage(ImmediateStorage(path)))
    instant_room(h, ROOM, CRONE, "firstwitch")
    set_vcard(h)  # set while the room is temporary: stored with it when it becomes persistent
    configure(h, PERSISTENT)
    h.sent()
    second = muc_harness(storage=immediate_storage(ImmediateStorage(path)))
    second.receive(f"<iq from='{HAG}' id='v2' to='{ROOM}' type='get'><vCard xmlns='vcard-temp'/></iq>")
    second.expect(f"<iq from='{ROOM}' id='v2' to='{HAG}' type='result'>{VCARD}</iq>")
    second.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    avatar = second.sent()[-1]
    assert avatar.findtext("{vcard-temp:x:update}x/{vcard-temp:x:update}photo") == HASH
