"""Step 1 of the guide: a dice bot at ``dice@DOMAIN``.

Send it ``2d6`` in a chat message and it answers with the roll; ask it with
an IQ (``<roll xmlns='urn:example:dice' dice='2d6'/>``) and the roll comes
back as the result's payload.
"""

from __future__ import annotations

import random
import re
from typing import Any, ClassVar

import attrs
from lxml import etree

from component.disco import Identity, Item
from component.entity import Entity, IQResult, iq_handler
from component.errors import StanzaError
from component.host import Host
from component.jid import JID
from component.options import LOCALPART, setting
from component.service import Service
from component.stanza import Stanza, message, text_of
from component.storage import Storage

DICE_NS = "urn:example:dice"
_DICE = re.compile(r"\s*(\d{0,2})d(\d{1,3})\s*")
USAGE = "Send me dice to roll, like 2d6."


def parse_dice(text: str, most: int = 20) -> tuple[int, int]:
    """``"2d6"`` → ``(2, 6)``; ValueError for anything but 1 to ``most`` dice of 2 to 100 sides."""
    found = _DICE.fullmatch(text)
    if found is None:
        raise ValueError(text)
    count, sides = int(found.group(1) or 1), int(found.group(2))
    if not (1 <= count <= most and 2 <= sides <= 100):
        raise ValueError(text)
    return count, sides


@attrs.frozen
class DiceSettings:
    """The dice service's settings (``[components."DOMAIN".dice]``)."""

    node: str = setting("dice", "the bot's localpart: it answers at NODE@DOMAIN", kind=LOCALPART)
    most_dice: int = setting(20, "the most dice one roll may throw", minimum=1, maximum=99)


class DiceBot(Entity):
    """Rolls the dice it is sent, by message or by IQ."""

    identities = (Identity("client", "bot", "Dice"),)
    features = frozenset({DICE_NS})

    def __init__(self, component: Host, jid: JID, most_dice: int = 20, rng: random.Random | None = None) -> None:
        super().__init__(component, jid)
        #: The most dice one roll may throw.
        self.most_dice = most_dice
        #: Where the rolls come from; tests give a seeded ``random.Random``.
        self.rng = rng or random.SystemRandom()

    def roll(self, count: int, sides: int) -> list[int]:
        """``count`` dice of ``sides`` sides."""
        return [self.rng.randint(1, sides) for _ in range(count)]

    def handle_message(self, stanza: Stanza) -> None:
        if stanza.type not in (None, "chat", "normal"):
            return None  # never answer an error, a headline or a groupchat message
        body = text_of(stanza.element, "body")
        if body is None:
            return None  # a chat state or a receipt: nothing to answer
        self.send(message(stanza.recipient, stanza.sender, self.answer(body), type=stanza.type))
        return None

    def answer(self, text: str) -> str:
        """The reply to a chat message."""
        try:
            count, sides = parse_dice(text, self.most_dice)
        except ValueError:
            return USAGE
        rolls = self.roll(count, sides)
        self.on_roll(f"{count}d{sides}", rolls)
        return f"{count}d{sides}: {' + '.join(map(str, rolls))} = {sum(rolls)}"

    def on_roll(self, dice: str, rolls: list[int]) -> None:
        """Called after each roll a chat message asked for; nothing by default."""

    @iq_handler("get", f"{{{DICE_NS}}}roll")
    def roll_iq(self, stanza: Stanza) -> IQResult:
        request = stanza.element[0]
        try:
            count, sides = parse_dice(request.get("dice", ""), self.most_dice)
        except ValueError:
            raise StanzaError("bad-request", text=USAGE) from None
        rolls = self.roll(count, sides)
        result = etree.Element(f"{{{DICE_NS}}}roll", nsmap={None: DICE_NS}, dice=f"{count}d{sides}")
        result.set("total", str(sum(rolls)))
        for value in rolls:
            etree.SubElement(result, f"{{{DICE_NS}}}die").text = str(value)
        return result


class DiceService(Service):
    """Hosts one :class:`DiceBot`, at ``dice@DOMAIN`` unless the config names another node."""

    name = "dice"
    settings_class: ClassVar[type[Any]] = DiceSettings
    settings: DiceSettings

    def __init__(self, component: Host, options: dict[str, Any]) -> None:
        super().__init__(component, options)
        self.bot = DiceBot(component, JID(self.settings.node, component.jid.domain), self.settings.most_dice)

    def start(self, storage: Storage | None = None) -> None:
        self.component.router.register(self.bot)

    def domain_items(self, stanza: Stanza) -> list[Item]:
        return [Item(str(self.bot.jid), "Dice")]
