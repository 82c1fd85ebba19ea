"""Step 4 of the guide: the tables keep their players' scores in storage, across restarts.

The service declares its tables as :class:`~component.storage.Migrations`;
the application opens the storage, brings it up to date, and hands it to
the service's ``start``. A table is read from storage when a stanza first reaches
it (the node factory returns a Deferred), and a roll is stored before
anyone hears of it. Send a table ``scores`` to see them.
"""

from __future__ import annotations

from typing import Any, ClassVar

import dice3
from dice1 import USAGE, parse_dice
from twisted.internet import defer

from component.errors import StanzaError
from component.jid import JID
from component.ordering import InFlight
from component.stanza import message
from component.storage import Migrations, Storage, StorageError

DICE_MIGRATIONS = Migrations(
    "dice",
    steps=[
        "CREATE TABLE dice_scores ("
        " tbl TEXT NOT NULL,"
        " player TEXT NOT NULL,"
        " total INTEGER NOT NULL,"
        " PRIMARY KEY (tbl, player))",
    ],
)
# Adding to the stored total, rather than writing the new one, gives the
# same result whatever order two writes in flight commit in.
_ADD = (
    "INSERT INTO dice_scores (tbl, player, total) VALUES (?, ?, ?)"
    " ON CONFLICT (tbl, player) DO UPDATE SET total = dice_scores.total + excluded.total"
)


class ScoredTable(dice3.Table):
    """A table of step 3 that keeps each player's total."""

    def __init__(self, service: DiceService, jid: JID, scores: dict[str, int]) -> None:
        super().__init__(service, jid)
        self.service: DiceService = service
        #: Each player's total, by bare JID, as stored.
        self.scores = scores

    async def rolled(self, player: JID, text: str) -> None:  # type: ignore[override]
        if text.strip() == "scores":
            self.send(message(self.jid, player, self.score_list(), type="chat"))
            return
        try:
            count, sides = parse_dice(text, self.service.bot.most_dice)
        except ValueError:
            raise StanzaError("bad-request", text=USAGE) from None
        rolls = self.service.bot.roll(count, sides)
        who = str(player.bare)
        try:
            await self.service.store(self.jid.node or "", who, sum(rolls))
        except StorageError:
            # Nobody was told of the roll: the player may roll again.
            raise StanzaError("resource-constraint", "wait", text="the roll could not be recorded") from None
        self.scores[who] = self.scores.get(who, 0) + sum(rolls)
        self.tell(f"{who} rolls {count}d{sides}: {' + '.join(map(str, rolls))} = {sum(rolls)}, {self.scores[who]} in all")

    def score_list(self) -> str:
        """Everyone's total, best first."""
        if not self.scores:
            return "Nobody has rolled here yet."
        ranked = sorted(self.scores.items(), key=lambda item: (-item[1], item[0]))
        return "\n".join(f"{who}: {total}" for who, total in ranked)


class DiceService(dice3.DiceService):
    """Step 3's service with scores in storage."""

    migrations: ClassVar[tuple[Migrations, ...]] = (DICE_MIGRATIONS,)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.storage: Storage | None = None
        self._writes = InFlight()

    def start(self, storage: Storage | None = None) -> None:
        if storage is None:
            raise ValueError("the dice service keeps its scores in storage: give it some")
        self.storage = storage
        super().start()

    def table_at(self, node: str) -> defer.Deferred[ScoredTable]:  # type: ignore[override]
        """The node factory: the table at ``node@DOMAIN`` with its scores, once read."""
        return defer.ensureDeferred(self._load(node))

    async def _load(self, node: str) -> ScoredTable:
        assert self.storage is not None
        rows = await self.storage.fetchall("SELECT player, total FROM dice_scores WHERE tbl = ?", (node,))
        scores = {str(player): int(total) for player, total in rows}
        return ScoredTable(self, JID(node, self.component.jid.domain), scores)

    def store(self, table: str, player: str, points: int) -> defer.Deferred[int]:
        """Add ``points`` to ``player``'s stored total at ``table``."""
        assert self.storage is not None
        return self._writes.track(self.storage.execute(_ADD, (table, player, points)))

    def stop(self) -> defer.Deferred[None]:
        """Wait for the writes in flight, so that storage closes after them."""
        return self._writes.drain()
