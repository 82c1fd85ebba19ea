"""Step 3 of the guide: dice tables, room-like entities that a node factory makes on demand.

Every other address of the domain, ``NAME@DOMAIN``, is a dice table. A user
sits at one by sending it presence and leaves with ``unavailable``; what a
player rolls there, everyone at the table sees. An empty table is
forgotten, so stanzas to made-up addresses leave nothing behind.
"""

from __future__ import annotations

from typing import Any, ClassVar

from dice1 import USAGE, DiceSettings, parse_dice
from dice2 import READY, PresentDiceBot

from component.disco import Identity, Item
from component.entity import Entity, IQResult
from component.errors import StanzaError
from component.host import Host
from component.jid import JID
from component.service import Service
from component.stanza import Stanza, message, presence, text_of
from component.storage import Storage


class Table(Entity):
    """One dice table: who sits at it, and their rolls for all to see."""

    identities = (Identity("client", "bot", "Dice table"),)

    def __init__(self, service: DiceService, jid: JID) -> None:
        super().__init__(service.component, jid)
        self.service = service
        #: The players' full JIDs, in the order they sat down.
        self.players: dict[JID, None] = {}

    def handle_presence(self, stanza: Stanza) -> None:
        try:
            if stanza.type is None:
                self.sit(stanza.sender)
            elif stanza.type == "unavailable":
                self.leave(stanza.sender)
        finally:
            self.service.forget_if_empty(self)

    def sit(self, player: JID) -> None:
        """``player`` sits down: the table shows itself to them, and tells the others."""
        if player in self.players:
            return
        self.players[player] = None
        # Directed presence: the component remembers it, and says unavailable on shutdown.
        self.component.send_presence(presence(self.jid, player))
        self.tell(f"{player.bare} sits down.")

    def leave(self, player: JID) -> None:
        """``player`` leaves the table."""
        if player not in self.players:
            return
        del self.players[player]
        self.component.send_presence(presence(self.jid, player, type="unavailable"))
        self.tell(f"{player.bare} leaves.")

    def handle_message(self, stanza: Stanza) -> Any:
        try:
            if stanza.type in ("error", "headline", "groupchat"):
                return None
            if stanza.sender not in self.players:
                raise StanzaError("not-acceptable", text="Sit at the table first: send it your presence.")
            body = text_of(stanza.element, "body")
            # What rolled returns (nothing here; a coroutine in step 4) is the handler's result.
            return None if body is None else self.rolled(stanza.sender, body)
        finally:
            self.service.forget_if_empty(self)

    def rolled(self, player: JID, text: str) -> None:
        """``player`` asked for a roll: everyone at the table sees it."""
        try:
            count, sides = parse_dice(text, self.service.bot.most_dice)
        except ValueError:
            raise StanzaError("bad-request", text=USAGE) from None
        rolls = self.service.bot.roll(count, sides)
        self.tell(f"{player.bare} rolls {count}d{sides}: {' + '.join(map(str, rolls))} = {sum(rolls)}")

    def handle_iq(self, stanza: Stanza) -> IQResult:
        try:
            return super().handle_iq(stanza)
        finally:
            self.service.forget_if_empty(self)

    def tell(self, text: str) -> None:
        """Send ``text`` to everyone at the table."""
        for player in self.players:
            self.send(message(self.jid, player, text, type="chat"))


class DiceService(Service):
    """The dice bot of step 2 at ``dice@DOMAIN``, and a table at every other address."""

    name = "dice"
    settings_class: ClassVar[type[Any]] = DiceSettings
    settings: DiceSettings

    def __init__(self, component: Host, options: dict[str, Any]) -> None:
        super().__init__(component, options)
        self.bot = PresentDiceBot(component, JID(self.settings.node, component.jid.domain), self.settings.most_dice)

    def start(self, storage: Storage | None = None) -> None:
        self.bot.set_presence(status=READY)
        self.component.router.register(self.bot)
        self.component.router.set_node_factory(self.table_at)

    def table_at(self, node: str) -> Table:
        """The node factory: a new, empty table at ``node@DOMAIN``."""
        return Table(self, JID(node, self.component.jid.domain))

    def forget_if_empty(self, table: Table) -> None:
        """Unload ``table`` once nobody sits at it."""
        if not table.players and table.jid.node is not None:
            self.component.router.unload(table.jid.node)

    def tables(self) -> list[Table]:
        """The tables with players."""
        return [entity for entity in self.component.router.entities() if isinstance(entity, Table)]

    def domain_items(self, stanza: Stanza) -> list[Item]:
        items = [Item(str(self.bot.jid), "Dice")]
        items.extend(Item(str(table.jid), f"Table {table.jid.node} ({len(table.players)})") for table in self.tables())
        return items
