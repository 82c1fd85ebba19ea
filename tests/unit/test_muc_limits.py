"""Quotas and rate limits: what one user may make the MUC hold or send.

Each test shows the refusal, exactly as it goes out, and that someone under
the limit is not affected.
"""

from __future__ import annotations

import pytest

from component.config import ConfigError
from services.muc.testing import (
    CRONE,
    ERR,
    HAG,
    MUC_X,
    ROOM,
    WICCA,
    configure,
    enter,
    immediate_storage,
    instant_room,
    muc_harness,
)

SERVICE = "chat.shakespeare.lit"
ADMIN = "hecate@shakespeare.lit/broom"
PERSISTENT = "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"


def room(n: int) -> str:
    return f"room{n}@{SERVICE}"


# -- rooms per user ----------------------------------------------------------------


def test_a_user_may_create_only_so_many_rooms() -> None:
    h = muc_harness({"max_rooms_per_user": 2, "admins": ["hecate@shakespeare.lit"]})
    instant_room(h, room(1), CRONE)
    instant_room(h, room(2), CRONE)
    h.receive(f"<presence from='{CRONE}' to='{room(3)}/owner'>{MUC_X}</presence>")
    h.expect(
        f"""<presence from='{room(3)}/owner' to='{CRONE}' type='error'>{MUC_X}
          <error type='cancel'><not-allowed {ERR}/><text {ERR}>you may have at most 2 rooms</text></error></presence>"""
    )
    # The room was not made: someone else creates it.
    instant_room(h, room(3), HAG, "hag")
    h.receive(f"<presence from='{CRONE}' to='{room(3)}/owner'>{MUC_X}</presence>")
    own = next(p for p in h.sent() if p.get("to") == CRONE and p.get("from") == f"{room(3)}/owner")
    assert own.find(".//{http://jabber.org/protocol/muc#user}item").get("affiliation") == "none"
    # Service admins are not counted.
    for n in (4, 5, 6):
        instant_room(h, room(n), ADMIN)
        assert h.component.router.loaded(f"room{n}") is not None


def test_a_room_that_is_gone_no_longer_counts() -> None:
    h = muc_harness({"max_rooms_per_user": 1})
    instant_room(h, room(1), CRONE)
    h.receive(f"<presence from='{CRONE}' to='{room(1)}/owner' type='unavailable'/>")
    h.sent()  # the temporary room vanished with its last occupant
    instant_room(h, room(2), CRONE)
    h.receive(
        f"<iq from='{CRONE}' id='d' to='{room(2)}' type='set'>"
        "<query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query></iq>"
    )
    h.sent()
    enter(h, room(3), "owner", CRONE)
    assert h.component.router.loaded("room3") is not None


def test_stored_rooms_count_against_their_owners_after_a_restart() -> None:
    storage = immediate_storage()
    first = muc_harness({"max_rooms_per_user": 1}, storage=storage)
    instant_room(first, ROOM, CRONE, "firstwitch")
    configure(first, PERSISTENT)
    second = muc_harness({"max_rooms_per_user": 1}, storage=storage)
    second.receive(f"<presence from='{CRONE}' to='{room(2)}/owner'>{MUC_X}</presence>")
    second.expect(
        f"""<presence from='{room(2)}/owner' to='{CRONE}' type='error'>{MUC_X}
          <error type='cancel'><not-allowed {ERR}/><text {ERR}>you may have at most 1 rooms</text></error></presence>"""
    )
    instant_room(second, room(2), WICCA)
    assert second.component.router.loaded("room2") is not None


@pytest.mark.parametrize("value", [-1, 1.5, "10", True])
def test_limits_are_whole_numbers(value: object) -> None:
    with pytest.raises(ConfigError, match=r"components\.\"chat\.shakespeare\.lit\"\.muc\.max_rooms_per_user"):
        muc_harness({"max_rooms_per_user": value})


# -- IQs waiting for another occupant ------------------------------------------------


def version_query(h, id: str, sender: str = WICCA) -> None:
    h.receive(f"<iq from='{sender}' id='{id}' to='{ROOM}/firstwitch' type='get'><query xmlns='jabber:iq:version'/></iq>")


def test_an_occupant_may_have_only_so_many_iqs_waiting_for_answers() -> None:
    h = muc_harness({"max_pending_iqs": 2})
    instant_room(h, ROOM, CRONE, "firstwitch")
    enter(h, ROOM, "secondwitch", WICCA)
    enter(h, ROOM, "thirdwitch", HAG)
    version_query(h, "v1")
    version_query(h, "v2")
    first, _ = h.expect(
        f"<iq from='{ROOM}/secondwitch' id='*' to='{CRONE}' type='get'><query xmlns='jabber:iq:version'/></iq>",
        f"<iq from='{ROOM}/secondwitch' id='*' to='{CRONE}' type='get'><query xmlns='jabber:iq:version'/></iq>",
    )
    version_query(h, "v3")
    h.expect(
        f"""<iq from='{ROOM}/firstwitch' id='v3' to='{WICCA}' type='error'><query xmlns='jabber:iq:version'/>
          <error type='wait'><resource-constraint {ERR}/>
            <text {ERR}>too many of your queries are waiting for an answer</text></error></iq>"""
    )
    # Someone else's queries are their own.
    version_query(h, "h1", HAG)
    h.expect(f"<iq from='{ROOM}/thirdwitch' id='*' to='{CRONE}' type='get'><query xmlns='jabber:iq:version'/></iq>")
    # An answer frees a place.
    h.receive(f"<iq from='{CRONE}' id='{first.get('id')}' to='{ROOM}/secondwitch' type='result'/>")
    h.expect(f"<iq from='{ROOM}/firstwitch' id='v1' to='{WICCA}' type='result'/>")
    version_query(h, "v4")
    h.expect(f"<iq from='{ROOM}/secondwitch' id='*' to='{CRONE}' type='get'><query xmlns='jabber:iq:version'/></iq>")
    # So does the timeout of those never answered.
    h.clock.advance(30)
    h.sent()
    version_query(h, "v5")
    h.expect(f"<iq from='{ROOM}/secondwitch' id='*' to='{CRONE}' type='get'><query xmlns='jabber:iq:version'/></iq>")
