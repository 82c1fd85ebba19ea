"""The service author's guide (docs/guide/): each step's code, loaded the way the application loads it.

Every step of docs/tutorial/ is resolved by its config name, as
``services = ["dice1:DiceService"]`` beside the config file would be, and
run in a :class:`~component.testing.Harness`: a stanza in, the exact
stanzas out. The guide's testing chapter quotes these tests.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from component.app import resolve_service
from component.cli import main
from component.config import ConfigError
from component.jid import parse_jid
from component.roster import Subscription
from component.testing import FailingStorage, Harness, HeldStorage, ImmediateStorage, migrated

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "tutorial"
DOMAIN = "dice.example.org"
DICE = f"dice@{DOMAIN}"
POKER = f"poker@{DOMAIN}"
JULIET = "juliet@example.com/balcony"
ROMEO = "romeo@example.net/orchard"
JULIET_BARE = parse_jid("juliet@example.com")


def dice(step: int, settings: dict[str, Any] | None = None, storage: Any = None) -> Harness:
    """A harness running step ``step``'s service, its dice seeded so the rolls are known."""
    service = resolve_service(f"dice{step}:DiceService", TUTORIAL)
    harness = Harness(DOMAIN, (service, settings or {}), storage=storage)
    harness.component.services[0].bot.rng = random.Random(1)  # rolls 2d6 as 2, 5, then 1, 3
    return harness


# -- step 1: a dice bot --------------------------------------------------------------------


def test_the_bot_answers_a_roll():
    harness = dice(1)
    harness.receive(f"<message from='{JULIET}' to='{DICE}' type='chat'><body>2d6</body></message>")
    harness.expect(f"<message from='{DICE}' to='{JULIET}' type='chat'><body>2d6: 2 + 5 = 7</body></message>")


def test_the_bot_says_what_it_takes():
    harness = dice(1)
    harness.receive(f"<message from='{JULIET}' to='{DICE}' type='chat'><body>hello</body></message>")
    harness.expect(f"<message from='{DICE}' to='{JULIET}' type='chat'>"
                   "<body>Send me dice to roll, like 2d6.</body></message>")


def test_the_bot_answers_no_error_and_no_chat_state():
    harness = dice(1)
    harness.receive(f"<message from='{JULIET}' to='{DICE}' type='error'><body>2d6</body></message>"
                    f"<message from='{JULIET}' to='{DICE}' type='chat'>"
                    "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
    harness.expect_nothing()


def test_the_most_dice_a_roll_throws_is_a_setting():
    harness = dice(1, {"most_dice": 3})
    harness.receive(f"<message from='{JULIET}' to='{DICE}' type='chat'><body>4d6</body></message>"
                    f"<message from='{JULIET}' to='{DICE}' type='chat'><body>3d6</body></message>")
    harness.expect(
        f"<message from='{DICE}' to='{JULIET}' type='chat'><body>Send me dice to roll, like 2d6.</body></message>",
        f"<message from='{DICE}' to='{JULIET}' type='chat'><body>3d6: 2 + 5 + 1 = 8</body></message>",
    )


@pytest.mark.parametrize(
    ("settings", "sentence"),
    [
        ({"most_dice": 0}, 'components."dice.example.org".dice.most_dice must be at least 1, not 0'),
        ({"node": "a b"}, 'components."dice.example.org".dice.node'),
        ({"most": 3}, 'components."dice.example.org".dice.most is not a setting of the dice service'),
    ],
)
def test_a_mistaken_setting_is_one_sentence(settings, sentence):
    with pytest.raises(ConfigError) as caught:
        dice(1, settings)
    assert str(caught.value).startswith(sentence)


def test_a_roll_by_iq():
    harness = dice(1)
    harness.receive(f"<iq from='{JULIET}' to='{DICE}' type='get' id='r1'>"
                    "<roll xmlns='urn:example:dice' dice='2d6'/></iq>")
    harness.expect(f"""<iq from='{DICE}' to='{JULIET}' type='result' id='r1'>
        <roll xmlns='urn:example:dice' dice='2d6' total='7'><die>2</die><die>5</die></roll></iq>""")


def test_a_roll_by_iq_of_no_dice_is_a_bad_request():
    harness = dice(1)
    harness.receive(f"<iq from='{JULIET}' to='{DICE}' type='get' id='r1'>"
                    "<roll xmlns='urn:example:dice' dice='2d1'/></iq>")
    harness.expect(f"""<iq from='{DICE}' to='{JULIET}' type='error' id='r1'>
        <roll xmlns='urn:example:dice' dice='2d1'/>
        <error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
          <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Send me dice to roll, like 2d6.</text></error></iq>""")


def test_the_bot_describes_itself_and_the_domain_lists_it():
    harness = dice(1)
    harness.receive(f"<iq from='{JULIET}' to='{DICE}' type='get' id='i1'>"
                    "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
                    f"<iq from='{JULIET}' to='{DOMAIN}' type='get' id='i2'>"
                    "<query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
    harness.expect(
        f"""<iq from='{DICE}' to='{JULIET}' type='result' id='i1'>
          <query xmlns='http://jabber.org/protocol/disco#info'>
            <identity category='client' type='bot' name='Dice'/>
            <feature var='http://jabber.org/protocol/disco#info'/>
            <feature var='http://jabber.org/protocol/disco#items'/>
            <feature var='jabber:iq:version'/>
            <feature var='urn:example:dice'/>
            <feature var='urn:xmpp:ping'/>
          </query></iq>""",
        f"""<iq from='{DOMAIN}' to='{JULIET}' type='result' id='i2'>
          <query xmlns='http://jabber.org/protocol/disco#items'><item jid='{DICE}' name='Dice'/></query></iq>""",
    )


# -- step 2: presence and a roster ---------------------------------------------------------


def test_a_user_subscribes_and_the_bot_follows_back():
    harness = dice(2)
    harness.receive(f"<presence from='juliet@example.com' to='{DICE}' type='subscribe'/>")
    harness.expect(
        f"<presence from='{DICE}' to='juliet@example.com' type='subscribed'/>",
        f"<presence from='{DICE}' to='juliet@example.com'><status>Ready to roll</status></presence>",
        f"<presence from='{DICE}' to='juliet@example.com' type='subscribe'/>",
    )
    harness.receive(f"<presence from='juliet@example.com' to='{DICE}' type='subscribed'/>")
    harness.expect_nothing()
    assert harness.component.services[0].bot.roster.state(JULIET_BARE) == Subscription("both")


def test_subscribers_see_the_last_roll():
    harness = subscribed(dice(2))
    harness.receive(f"<message from='{JULIET}' to='{DICE}' type='chat'><body>2d6</body></message>")
    harness.expect(
        f"<presence from='{DICE}' to='juliet@example.com'><status>Last roll: 2d6 = 7</status></presence>",
        f"<message from='{DICE}' to='{JULIET}' type='chat'><body>2d6: 2 + 5 = 7</body></message>",
    )


def test_after_a_reconnection_the_bot_shows_itself_and_asks_who_is_online():
    harness = subscribed(dice(2))
    harness.disconnect()
    harness.connect()
    # The server keeps no presence for a component's entities, and pushes nothing.
    harness.expect(
        f"<presence from='{DICE}' to='juliet@example.com'><status>Ready to roll</status></presence>",
        f"<presence from='{DICE}' to='juliet@example.com' type='probe'/>",
    )


# -- step 3: tables made by a node factory -------------------------------------------------


def test_players_sit_roll_and_leave():
    harness = dice(3)
    harness.receive(f"<presence from='{JULIET}' to='{POKER}'/>")
    harness.expect(
        f"<presence from='{POKER}' to='{JULIET}'/>",
        f"<message from='{POKER}' to='{JULIET}' type='chat'><body>juliet@example.com sits down.</body></message>",
    )
    harness.receive(f"<presence from='{ROMEO}' to='{POKER}'/>")
    harness.expect(
        f"<presence from='{POKER}' to='{ROMEO}'/>",
        f"<message from='{POKER}' to='{JULIET}' type='chat'><body>romeo@example.net sits down.</body></message>",
        f"<message from='{POKER}' to='{ROMEO}' type='chat'><body>romeo@example.net sits down.</body></message>",
    )
    harness.receive(f"<message from='{ROMEO}' to='{POKER}' type='chat'><body>2d6</body></message>")
    harness.expect(
        f"<message from='{POKER}' to='{JULIET}' type='chat'><body>romeo@example.net rolls 2d6: 2 + 5 = 7</body></message>",
        f"<message from='{POKER}' to='{ROMEO}' type='chat'><body>romeo@example.net rolls 2d6: 2 + 5 = 7</body></message>",
    )
    harness.receive(f"<presence from='{ROMEO}' to='{POKER}' type='unavailable'/>")
    harness.expect(
        f"<presence from='{POKER}' to='{ROMEO}' type='unavailable'/>",
        f"<message from='{POKER}' to='{JULIET}' type='chat'><body>romeo@example.net leaves.</body></message>",
    )


def test_only_players_roll_at_a_table():
    harness = dice(3)
    harness.receive(f"<message from='{JULIET}' to='{POKER}' type='chat' id='m1'><body>2d6</body></message>")
    harness.expect(f"""<message from='{POKER}' to='{JULIET}' type='error' id='m1'><body>2d6</body>
        <error type='modify'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
          <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Sit at the table first: send it your presence.</text>
        </error></message>""")


def test_an_empty_table_is_forgotten():
    harness = dice(3)
    router = harness.component.router
    harness.receive(f"<message from='{JULIET}' to='made-up@{DOMAIN}' type='chat'><body>2d6</body></message>")
    harness.sent()
    assert router.loaded("made-up") is None
    harness.receive(f"<presence from='{JULIET}' to='{POKER}'/>")
    assert router.loaded("poker") is not None
    harness.receive(f"<presence from='{JULIET}' to='{POKER}' type='unavailable'/>")
    assert router.loaded("poker") is None


def test_the_domain_lists_the_tables_in_play():
    harness = dice(3)
    harness.receive(f"<presence from='{JULIET}' to='{POKER}'/>")
    harness.sent()
    harness.receive(f"<iq from='{JULIET}' to='{DOMAIN}' type='get' id='i1'>"
                    "<query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
    harness.expect(f"""<iq from='{DOMAIN}' to='{JULIET}' type='result' id='i1'>
        <query xmlns='http://jabber.org/protocol/disco#items'>
          <item jid='{DICE}' name='Dice'/><item jid='{POKER}' name='Table poker (1)'/></query></iq>""")


def test_a_clean_shutdown_tells_the_players_the_table_is_gone():
    harness = dice(3)
    harness.receive(f"<presence from='{JULIET}' to='{POKER}'/>")
    harness.sent()
    harness.component.say_goodbye()
    harness.expect(f"<presence from='{POKER}' to='{JULIET}' type='unavailable'/>")


# -- step 4: scores in storage -------------------------------------------------------------


def scored(storage: ImmediateStorage | None = None) -> Harness:
    """Step 4 on ``storage`` (in memory by default), its tables in place."""
    migrations = resolve_service("dice4:DiceService", TUTORIAL).migrations
    return dice(4, storage=migrated(storage or ImmediateStorage(), *migrations))


def test_scores_add_up_and_survive_a_restart(tmp_path):
    harness = seated(scored(ImmediateStorage(str(tmp_path / "dice.db"))))
    harness.receive(f"<message from='{JULIET}' to='{POKER}' type='chat'><body>2d6</body></message>"
                    f"<message from='{JULIET}' to='{POKER}' type='chat'><body>2d6</body></message>")
    harness.expect(
        f"<message from='{POKER}' to='{JULIET}' type='chat'>"
        "<body>juliet@example.com rolls 2d6: 2 + 5 = 7, 7 in all</body></message>",
        f"<message from='{POKER}' to='{JULIET}' type='chat'>"
        "<body>juliet@example.com rolls 2d6: 1 + 3 = 4, 11 in all</body></message>",
    )
    restarted = seated(scored(ImmediateStorage(str(tmp_path / "dice.db"))), ROMEO)
    restarted.receive(f"<message from='{ROMEO}' to='{POKER}' type='chat'><body>scores</body></message>")
    restarted.expect(f"<message from='{POKER}' to='{ROMEO}' type='chat'><body>juliet@example.com: 11</body></message>")


def test_a_roll_is_told_once_it_is_stored():
    storage = HeldStorage()
    harness = seated(scored(storage))
    storage.held = []
    harness.receive(f"<message from='{JULIET}' to='{POKER}' type='chat'><body>2d6</body></message>")
    harness.expect_nothing()
    storage.release()
    harness.expect(f"<message from='{POKER}' to='{JULIET}' type='chat'>"
                   "<body>juliet@example.com rolls 2d6: 2 + 5 = 7, 7 in all</body></message>")


def test_a_roll_the_storage_refuses_is_told_to_nobody():
    storage = FailingStorage()
    harness = seated(scored(storage))
    storage.refuse("INSERT INTO dice_scores")
    harness.receive(f"<message from='{JULIET}' to='{POKER}' type='chat' id='m1'><body>2d6</body></message>")
    harness.expect(f"""<message from='{POKER}' to='{JULIET}' type='error' id='m1'><body>2d6</body>
        <error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
          <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>the roll could not be recorded</text></error></message>""")
    storage.accept()
    harness.receive(f"<message from='{JULIET}' to='{POKER}' type='chat'><body>scores</body></message>")
    harness.expect(f"<message from='{POKER}' to='{JULIET}' type='chat'><body>Nobody has rolled here yet.</body></message>")


# -- each step runs as the guide says ------------------------------------------------------


@pytest.mark.parametrize("step", [1, 2, 3, 4])
def test_each_step_passes_the_check_beside_its_config(step, tmp_path, capsys):
    # As the guide says: the step's files beside netherfield.toml, the step named in services.
    for source in TUTORIAL.glob("dice*.py"):
        (tmp_path / source.name).write_text(source.read_text())
    config = (TUTORIAL / "netherfield.toml").read_text().replace("dice4:DiceService", f"dice{step}:DiceService")
    (tmp_path / "netherfield.toml").write_text(config)
    assert main(["check", str(tmp_path / "netherfield.toml")]) == 0
    assert capsys.readouterr() == (f"{tmp_path}/netherfield.toml: no problems found\n", "")


# -- helpers -------------------------------------------------------------------------------

def subscribed(harness: Harness) -> Harness:
    """Juliet and the bot subscribed both ways, and Juliet online; what was sent is dropped."""
    harness.receive(f"<presence from='juliet@example.com' to='{DICE}' type='subscribe'/>"
                    f"<presence from='juliet@example.com' to='{DICE}' type='subscribed'/>"
                    f"<presence from='{JULIET}' to='{DICE}'/>")
    harness.sent()
    return harness


def seated(harness: Harness, player: str = JULIET) -> Harness:
    """``player`` sits at poker@; what was sent is dropped."""
    harness.receive(f"<presence from='{player}' to='{POKER}'/>")
    harness.sent()
    return harness
