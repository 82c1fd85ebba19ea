"""Step 2 of the guide: the dice bot keeps a roster and shows its presence.

Anyone may add ``dice@DOMAIN`` to their contacts: the bot approves and
subscribes back, shows itself available to its subscribers, and puts the
last roll in its status, so every subscriber sees it change.
"""

from __future__ import annotations

from typing import Any, ClassVar

from dice1 import DICE_NS, DiceBot, DiceSettings

from component.disco import Identity, Item
from component.host import Host
from component.jid import JID
from component.presence import Policy, PresenceEntity
from component.service import Service
from component.stanza import Stanza
from component.storage import Storage
from component.subscription import Subscription

READY = "Ready to roll"


class PresentDiceBot(DiceBot, PresenceEntity):
    """The dice bot of step 1, with a roster and a presence of its own."""

    identities = (Identity("client", "bot", "Dice"),)
    features = frozenset({DICE_NS})
    policy: Policy = "approve"

    def on_subscription_changed(self, jid: JID, old: Subscription, new: Subscription) -> None:
        # Follow back whoever subscribed to us, once.
        if new.has_from and not new.has_to and not new.pending_out:
            self.subscribe(jid)

    def on_roll(self, dice: str, rolls: list[int]) -> None:
        # Every subscriber sees the new status.
        self.set_presence(status=f"Last roll: {dice} = {sum(rolls)}")


class DiceService(Service):
    """Hosts one :class:`PresentDiceBot` at ``dice@DOMAIN``, available from the start."""

    name = "dice"
    settings_class: ClassVar[type[Any]] = DiceSettings
    settings: DiceSettings

    def __init__(self, component: Host, options: dict[str, Any]) -> None:
        super().__init__(component, options)
        self.bot = PresentDiceBot(component, JID(self.settings.node, component.jid.domain), self.settings.most_dice)

    def start(self, storage: Storage | None = None) -> None:
        self.bot.set_presence(status=READY)
        self.component.router.register(self.bot)

    def domain_items(self, stanza: Stanza) -> list[Item]:
        return [Item(str(self.bot.jid), "Dice")]
