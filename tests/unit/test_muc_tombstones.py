"""Tombstones: a destroyed persistent room's name stays reserved (Prosody's ``muc_tombstones``).

The flow is XEP-0045 §10.9's (Example 201): the owner destroys a persistent
room naming an alternate venue and a reason; within ``tombstone_seconds``
any stanza to the old name gets ``<gone/>`` carrying both, afterwards the
name can be created again.
"""

from __future__ import annotations

from services.muc.testing import CRONE, HAG, MUC_X, ROOM, WICCA, immediate_storage, instant_room, muc_harness

PERSISTENT = "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"
DAY = 86400.0


def make_persistent(h) -> None:
    instant_room(h, ROOM, CRONE, "firstwitch")
    h.receive(
        f"<iq from='{CRONE}' id='c' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        f"<x xmlns='jabber:x:data' type='submit'>{PERSISTENT}</x></query></iq>"
    )
    h.sent()


def destroy(h, persistent: bool = True) -> None:
    """Example 201: the owner destroys the room, naming where to go and why."""
    h.receive(
        f"<iq from='{CRONE}' id='begone' to='{ROOM}' type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        "<destroy jid='heath@chat.shakespeare.lit'><reason>Macbeth doth come.</reason></destroy></query></iq>"
    )
    sent = h.sent()
    assert sent[-1].get("type") == "result" and sent[-1].get("id") == "begone"


def join_gone(h, sender: str = WICCA) -> None:
    h.receive(f"<presence from='{sender}' id='j' to='{ROOM}/secondwitch'>{MUC_X}</presence>")
    h.expect(
        f"""<presence from='{ROOM}/secondwitch' id='j' to='{sender}' type='error'>{MUC_X}
          <error by='chat.shakespeare.lit' type='cancel'>
            <gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>xmpp:heath@chat.shakespeare.lit?join</gone>
            <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Macbeth doth come.</text>
          </error></presence>"""
    )


def creates(h, sender: str = WICCA) -> None:
    h.receive(f"<presence from='{sender}' to='{ROOM}/secondwitch'>{MUC_X}</presence>")
    own = h.sent()[0]
    assert own.get("type") is None and own.get("from") == f"{ROOM}/secondwitch"
    codes = {s.get("code") for s in own.iter("{http://jabber.org/protocol/muc#user}status")}
    assert "201" in codes  # a new room, created by this join


def test_a_join_within_the_while_gets_gone_with_the_venue_and_reason_and_after_it_creates() -> None:
    h = muc_harness()
    make_persistent(h)
    destroy(h)
    h.clock.advance(31 * DAY - 1)  # Prosody's default: 31 days
    join_gone(h)
    h.receive(f"<message from='{HAG}' id='m' to='{ROOM}' type='groupchat'><body>Hail</body></message>")
    assert h.sent()[0].find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}gone") is not None
    h.clock.advance(2)
    creates(h)


def test_the_while_is_a_setting_and_zero_leaves_no_tombstone() -> None:
    h = muc_harness({"tombstone_seconds": 60})
    make_persistent(h)
    destroy(h)
    join_gone(h)
    h.clock.advance(61)
    creates(h)
    h = muc_harness({"tombstone_seconds": 0})
    make_persistent(h)
    destroy(h)
    creates(h)


def test_a_temporary_room_leaves_no_tombstone() -> None:
    h = muc_harness()
    instant_room(h, ROOM, CRONE, "firstwitch")
    destroy(h)
    creates(h)


def test_a_service_admin_may_create_the_room_again_at_once() -> None:
    h = muc_harness({"admins": ["hag66@shakespeare.lit"]})
    make_persistent(h)
    destroy(h)
    creates(h, HAG)


def test_the_tombstone_survives_a_restart_and_expires_after_it() -> None:
    storage = immediate_storage()
    first = muc_harness(storage=storage)
    make_persistent(first)
    destroy(first)
    second = muc_harness(storage=storage)
    join_gone(second)
    second.clock.advance(31 * DAY + 1)
    creates(second)
