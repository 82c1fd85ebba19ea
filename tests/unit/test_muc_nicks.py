"""Nicks that look alike are one nick (XEP-0045 §7.2.9, §7.6, §7.10, §17.1).

A nick is taken when an occupant holds it, or registered it, in another case,
a compatibility form or made of confusable characters: the same UTS #39
skeleton of the NFKC case fold. Written as the XEP's examples: the stanzas
in, the exact stanzas out.
"""

from __future__ import annotations

import pytest

from component.jid import parse_jid
from services.muc.nicks import check_nick, nick_key
from services.muc.testing import CRONE, ERR, HAG, MUC_X, ROOM, WICCA, enter, instant_room, muc_harness

#: Nicks that look like 'firstwitch', which the crone holds.
LOOK_ALIKES = [
    "Firstwitch",
    "FIRSTWITCH",
    "FirstWitch",
    "\uff46irstwitch",  # FULLWIDTH LATIN SMALL LETTER F: Resourceprep's NFKC makes it 'firstwitch' itself
    "f\u0456rstwitch",  # CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I
    "firstwit\u0441h",  # CYRILLIC SMALL LETTER ES
    "fir\u0455twitch",  # CYRILLIC SMALL LETTER DZE
    "f\u0131rstwitch",  # LATIN SMALL LETTER DOTLESS I
    "firstw\u0131tch",
]


@pytest.fixture
def harness():
    h = muc_harness({"allow_unaffiliated_register": True})
    instant_room(h, ROOM, CRONE, "firstwitch")
    return h


def registration(nick: str) -> str:
    """The submitted registration form (§7.10) for a nick."""
    return f"""<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>
      <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>
      <field var='muc#register_roomnick'><value>{nick}</value></field></x></query>"""


def register(h, who: str, nick: str, id: str = "reg") -> None:
    h.receive(f"<iq from='{who}' id='{id}' to='{ROOM}' type='set'>{registration(nick)}</iq>")


def registration_refused(who: str, nick: str, id: str, condition: str, kind: str) -> str:
    """The error a room answers a registration with."""
    return f"""<iq from='{ROOM}' id='{id}' to='{who}' type='error'>{registration(nick)}
      <error type='{kind}'><{condition} {ERR}/><text {ERR}>*</text></error></iq>"""


def refused(nick: str, condition: str, kind: str, joiner: str = HAG, x: str = MUC_X) -> str:
    """The presence error a room answers an entry (or nick change, with ``x=''``) with."""
    shown = parse_jid(f"{ROOM}/{nick}").resource
    return f"""<presence from='{ROOM}/{shown}' to='{joiner}' type='error'>{x}
      <error type='{kind}'><{condition} {ERR}/><text {ERR}>*</text></error></presence>"""


def test_the_key_is_the_skeleton_of_the_case_fold() -> None:
    assert {nick_key(nick) for nick in ["firstwitch", *LOOK_ALIKES]} == {nick_key("firstwitch")}
    # Compatibility forms: ligatures, fullwidth, Roman numerals.
    assert nick_key("\ufb01rst") == nick_key("first")
    assert nick_key("Henry \u216b") == nick_key("henry xii")
    # Skeletons, not only script checks: 'rn' looks like 'm' in one script.
    assert nick_key("rnacbeth") == nick_key("macbeth")
    # Different nicks stay different.
    assert len({nick_key(n) for n in ["firstwitch", "secondwitch", "thirdwitch", "first witch", "firstwitch2"]}) == 5


@pytest.mark.parametrize("nick", LOOK_ALIKES)
def test_entering_as_a_look_alike_of_an_occupant_is_a_conflict(harness, nick) -> None:
    h = harness
    h.receive(f"<presence from='{HAG}' id='n13mt3l' to='{ROOM}/{nick}'>{MUC_X}</presence>")
    h.expect(refused(nick, "conflict", "cancel").replace("type='error'", "id='n13mt3l' type='error'"))
    assert len(h.component.router.loaded("coven").occupants) == 1


@pytest.mark.parametrize("nick", ["firstwitch ", " firstwitch", "third witch ", " thirdwitch"])
def test_whitespace_at_either_end_is_not_acceptable(harness, nick) -> None:
    h = harness
    h.receive(f"<presence from='{HAG}' to='{ROOM}/{nick}'>{MUC_X}</presence>")
    h.expect(refused(nick, "not-acceptable", "modify"))


@pytest.mark.parametrize("nick", ["   ", "\u3164"])  # spaces; HANGUL FILLER, which is invisible
def test_an_invisible_nick_is_jid_malformed(harness, nick) -> None:
    h = harness
    h.receive(f"<presence from='{HAG}' to='{ROOM}/{nick}'>{MUC_X}</presence>")
    h.expect(refused(nick, "jid-malformed", "modify"))


def test_nicks_longer_than_max_nick_length_are_not_acceptable() -> None:
    h = muc_harness({"max_nick_length": 10})
    instant_room(h, ROOM, CRONE, "firstwitch")
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch2'>{MUC_X}</presence>")
    h.expect(refused("thirdwitch2", "not-acceptable", "modify"))
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    assert h.sent()[-2].get("from") == f"{ROOM}/thirdwitch"


def test_the_default_length_is_64_characters(harness) -> None:
    h = harness
    h.receive(f"<presence from='{HAG}' to='{ROOM}/{'h' * 65}'>{MUC_X}</presence>")
    h.expect(refused("h" * 65, "not-acceptable", "modify"))
    h.receive(f"<presence from='{HAG}' to='{ROOM}/{'h' * 64}'>{MUC_X}</presence>")
    assert h.sent()[-2].get("from") == f"{ROOM}/{'h' * 64}"


def test_other_nicks_enter(harness) -> None:
    h = harness
    for joiner, nick in [(WICCA, "secondwitch"), (HAG, "firstwitch2")]:
        h.receive(f"<presence from='{joiner}' to='{ROOM}/{nick}'>{MUC_X}</presence>")
        assert h.sent()[-2].get("from") == f"{ROOM}/{nick}"
    assert len(h.component.router.loaded("coven").occupants) == 3


def test_another_client_of_the_occupant_under_a_look_alike_joins_the_occupant_with_210(harness) -> None:
    h = harness
    other = "crone1@shakespeare.lit/laptop"
    h.receive(f"<presence from='{other}' to='{ROOM}/FirstWitch'>{MUC_X}</presence>")
    h.expect(
        f"""<presence from='{ROOM}/firstwitch' to='{CRONE}'>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <item affiliation='owner' jid='{other}' role='moderator'/><status code='110'/><status code='210'/></x>
        </presence>""",
        f"""<presence from='{ROOM}/firstwitch' to='{other}'>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <item affiliation='owner' jid='{other}' role='moderator'/><status code='110'/><status code='210'/></x>
        </presence>""",
        f"<message from='{ROOM}' to='{other}' type='groupchat'><subject/></message>",
    )
    room = h.component.router.loaded("coven")
    assert len(room.occupants) == 1
    assert room.occupants.by_nick("firstwitch").sessions.keys() == {parse_jid(CRONE), parse_jid(other)}


def test_the_same_client_entering_again_is_no_conflict(harness) -> None:
    h = harness
    h.receive(f"<presence from='{CRONE}' to='{ROOM}/firstwitch'>{MUC_X}</presence>")
    own = h.sent()[-2]
    assert own.get("from") == f"{ROOM}/firstwitch" and own.get("type") is None


@pytest.mark.parametrize("nick", ["FirstWitch", "f\u0456rstwitch"])
def test_changing_to_a_look_alike_of_another_occupant_is_a_conflict(harness, nick) -> None:
    h = harness
    enter(h, ROOM, "thirdwitch", HAG)
    h.receive(f"<presence from='{HAG}' id='c1' to='{ROOM}/{nick}'/>")
    h.expect(refused(nick, "conflict", "cancel", x="").replace("type='error'", "id='c1' type='error'"))
    assert h.component.router.loaded("coven").occupants.by_nick("thirdwitch") is not None


def test_changing_to_a_look_alike_of_ones_own_nick_is_a_nick_change(harness) -> None:
    h = harness
    enter(h, ROOM, "thirdwitch", HAG)
    h.receive(f"<presence from='{HAG}' to='{ROOM}/ThirdWitch'/>")
    h.expect(
        f"""<presence from='{ROOM}/thirdwitch' to='{CRONE}' type='unavailable'>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <item affiliation='none' jid='{HAG}' nick='ThirdWitch' role='participant'/><status code='303'/></x>
        </presence>""",
        f"""<presence from='{ROOM}/thirdwitch' to='{HAG}' type='unavailable'>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <item affiliation='none' jid='{HAG}' nick='ThirdWitch' role='participant'/>
            <status code='110'/><status code='303'/></x>
        </presence>""",
        f"""<presence from='{ROOM}/ThirdWitch' to='{CRONE}'>
          <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' jid='{HAG}' role='participant'/></x>
        </presence>""",
        f"""<presence from='{ROOM}/ThirdWitch' to='{HAG}'>
          <x xmlns='http://jabber.org/protocol/muc#user'>
            <item affiliation='none' jid='{HAG}' role='participant'/><status code='110'/></x>
        </presence>""",
    )
    # The old form is free for nobody: the new one looks the same.
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/thirdwitch'>{MUC_X}</presence>")
    h.expect(refused("thirdwitch", "conflict", "cancel", joiner=WICCA))


@pytest.mark.parametrize("nick", ["firstwitch ", " firstwitch", "h" * 65])
def test_changing_to_an_unusable_nick_is_not_acceptable(harness, nick) -> None:
    h = harness
    enter(h, ROOM, "thirdwitch", HAG)
    h.receive(f"<presence from='{HAG}' to='{ROOM}/{nick}'/>")
    h.expect(refused(nick, "not-acceptable", "modify", x=""))


def test_a_look_alike_of_a_nick_left_behind_is_free(harness) -> None:
    h = harness
    enter(h, ROOM, "thirdwitch", HAG)
    h.receive(f"<presence from='{HAG}' to='{ROOM}/thirdwitch' type='unavailable'/>")
    h.sent()
    enter(h, ROOM, "ThirdWitch", WICCA)
    assert h.component.router.loaded("coven").occupants.by_nick("ThirdWitch") is not None


@pytest.mark.parametrize("nick", ["ThirdWitch", "THIRDWITCH", "th\u0456rdwitch", "\uff54hirdwitch"])
def test_a_look_alike_of_a_registered_nick_is_a_conflict(harness, nick) -> None:
    h = harness
    register(h, HAG, "thirdwitch")
    h.expect(
        # The owner learns of the new member, who is not in the room (XEP-0045 1.34 example 195).
        f"""<message from='{ROOM}' to='{CRONE}'><x xmlns='http://jabber.org/protocol/muc#user'>
          <item affiliation='member' jid='hag66@shakespeare.lit'/></x></message>""",
        f"<iq from='{ROOM}' id='reg' to='{HAG}' type='result'/>",
    )
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/{nick}'>{MUC_X}</presence>")
    h.expect(refused(nick, "conflict", "cancel", joiner=WICCA))
    # Nor may anyone change to it, or register it.
    enter(h, ROOM, "secondwitch", WICCA)
    h.receive(f"<presence from='{WICCA}' to='{ROOM}/{nick}'/>")
    h.expect(refused(nick, "conflict", "cancel", joiner=WICCA, x=""))
    register(h, WICCA, nick, "reg2")
    h.expect(registration_refused(WICCA, nick, "reg2", "conflict", "cancel"))
    # Its owner enters under any of its forms.
    h.receive(f"<presence from='{HAG}' to='{ROOM}/{nick}'>{MUC_X}</presence>")
    assert h.sent()[-2].get("from") == f"{ROOM}/{parse_jid(f'{ROOM}/{nick}').resource}"


def test_registering_a_look_alike_of_an_occupants_nick_is_a_conflict(harness) -> None:
    h = harness
    register(h, HAG, "FIRSTWITCH")
    h.expect(registration_refused(HAG, "FIRSTWITCH", "reg", "conflict", "cancel"))
    # The occupant itself may register its nick in another case.
    register(h, CRONE, "FirstWitch", "reg2")
    h.expect(f"<iq from='{ROOM}' id='reg2' to='{CRONE}' type='result'/>")


def test_registering_a_nick_with_whitespace_at_an_end_is_not_acceptable(harness) -> None:
    h = harness
    register(h, HAG, "thirdwitch ")
    h.expect(registration_refused(HAG, "thirdwitch ", "reg", "not-acceptable", "modify"))


def test_a_cancelled_registration_frees_the_look_alikes(harness) -> None:
    h = harness
    register(h, HAG, "thirdwitch")
    h.receive(f"<iq from='{HAG}' id='u' to='{ROOM}' type='set'><query xmlns='jabber:iq:register'><remove/></query></iq>")
    h.sent()
    enter(h, ROOM, "ThirdWitch", WICCA)
    assert h.component.router.loaded("coven").occupants.by_nick("ThirdWitch") is not None


def test_check_nick_returns_the_key() -> None:
    assert check_nick("FirstWitch", 64) == nick_key("firstwitch")
