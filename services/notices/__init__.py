"""The notices service: bots that keep their own rosters and presence, and push headlines.

Each bot named in the config is a ``node@DOMAIN`` entity with its own roster
(persisted in ``component.storage``) and its own presence. Anyone may
subscribe to a bot; the bot approves and subscribes back, shows its
configured availability to its subscribers, and sends them ``headline``
messages when an admin tells it to with ``!notice TEXT`` (see
:mod:`services.notices.bot` for the commands)::

    [components."notices.example.org"]
    services = ["notices"]

    [components."notices.example.org".notices]
    admins = ["editor@example.org"]

    [components."notices.example.org".notices.bots.news]
    name = "News"
    status = "Headlines as they happen"

    [components."notices.example.org".notices.bots.weather]
    name = "Weather"
    show = "away"
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
from twisted.internet import defer

from component.config import ConfigError
from component.disco import Identity, Item
from component.host import Host
from component.jid import JID, InvalidJID, parse_jid
from component.options import BARE_JIDS, key_path, setting, tables_of
from component.presence import SHOW_VALUES
from component.roster import Roster
from component.service import Service
from component.stanza import Stanza
from component.storage import Storage
from component.storage.rosters import ROSTER_MIGRATIONS, RosterStore
from services.notices.bot import NoticesBot

__all__ = ["SERVICE", "BotOptions", "BotSettings", "NoticesBot", "NoticesService", "NoticesSettings"]


@attrs.frozen
class BotOptions:
    """One bot's table in the config (``[components."DOMAIN".notices.bots.NODE]``)."""

    name: str | None = setting(None, "the bot's name, in disco and rosters", shown="its node")
    status: str | None = setting(None, "the status text of its presence", shown="none")
    show: str | None = setting(None, "its availability", choices=sorted(SHOW_VALUES), shown="available")


_BOTS = tables_of(BotOptions, "a notices bot")


@attrs.frozen
class NoticesSettings:
    """The notices service's settings (``[components."DOMAIN".notices]``)."""

    bots: Mapping[str, BotOptions] = setting(doc="the bots, a table each, named by node", kind=_BOTS)
    admins: frozenset[JID] = setting(frozenset(), "who may tell the bots to send notices", kind=BARE_JIDS)


@attrs.frozen
class BotSettings:
    """One bot as the service runs it."""

    jid: JID
    name: str
    status: str | None = None
    show: str | None = None


class NoticesService(Service):
    """Hosts the configured :class:`NoticesBot` entities."""

    name = "notices"
    settings_class: ClassVar[type[Any]] = NoticesSettings
    settings: NoticesSettings
    migrations: ClassVar[tuple[Any, ...]] = (ROSTER_MIGRATIONS,)

    def __init__(self, component: Host, options: dict[str, Any]) -> None:
        super().__init__(component, options)
        bots = key_path(self.table(component), "bots")
        self.bot_settings = [
            BotSettings(_bot_jid(node, component.jid.domain, bots), bot.name or node, bot.status, bot.show)
            for node, bot in self.settings.bots.items()
        ]
        self.admins = self.settings.admins
        self.bots: list[NoticesBot] = []

    def start(self, storage: Storage | None = None) -> defer.Deferred[None]:
        """Load each bot's roster from ``storage`` (in memory without one) and bring the bots online."""
        return defer.Deferred.fromCoroutine(self._start(storage))

    async def _start(self, storage: Storage | None) -> None:
        store = RosterStore(storage) if storage is not None else None
        for settings in self.bot_settings:
            roster = await Roster.load(settings.jid, store)
            bot = NoticesBot(self.component, settings.jid, roster, name=settings.name, admins=self.admins)
            bot.set_presence(show=settings.show, status=settings.status)
            self.component.router.register(bot)
            self.bots.append(bot)

    def stop(self) -> defer.Deferred[Any]:
        """Wait for the bots' roster writes, so that storage closes after them."""
        return defer.gatherResults([bot.drain() for bot in self.bots])

    def domain_identities(self) -> tuple[Identity, ...]:
        return (Identity("component", "generic", "Notices"),)

    def domain_items(self, stanza: Stanza) -> list[Item]:
        return [Item(str(bot.jid), bot.name) for bot in self.bots]


def _bot_jid(node: str, domain: str, bots: str) -> JID:
    try:
        return parse_jid(f"{node}@{domain}")
    except InvalidJID:
        raise ConfigError(f"{key_path(bots, node)}: {node!r} is not a valid localpart") from None


SERVICE = NoticesService
