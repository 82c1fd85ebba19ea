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

from typing import Any, ClassVar

import attrs
from twisted.internet import defer

from component.component import Component
from component.config import ConfigError
from component.disco import Identity, Item
from component.jid import JID, InvalidJID, parse_jid
from component.presence import SHOW_VALUES
from component.roster import Roster
from component.service import Service
from component.stanza import Stanza
from component.storage.rosters import ROSTER_MIGRATIONS, RosterStore
from services.notices.bot import NoticesBot

__all__ = ["SERVICE", "BotSettings", "NoticesBot", "NoticesService"]

_BOT_KEYS = frozenset({"name", "status", "show"})


@attrs.frozen
class BotSettings:
    """One bot as the config describes it."""

    jid: JID
    name: str
    status: str | None = None
    show: str | None = None


class NoticesService(Service):
    """Hosts the configured :class:`NoticesBot` entities."""

    name = "notices"
    option_keys: ClassVar[frozenset[str]] = frozenset({"bots", "admins"})
    migrations: ClassVar[tuple[Any, ...]] = (ROSTER_MIGRATIONS,)

    def __init__(self, component: Component, options: dict[str, Any]) -> None:
        super().__init__(component, options)
        where = f'components."{component.jid}".notices'
        self.settings = _bots(options.get("bots"), component.jid.domain, where)
        self.admins = _admins(options.get("admins", []), where)
        self.bots: list[NoticesBot] = []

    def start(self) -> defer.Deferred[None]:
        return defer.Deferred.fromCoroutine(self._start())

    async def _start(self) -> None:
        storage = self.component.storage
        store = RosterStore(storage) if storage is not None else None
        for settings in self.settings:
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


def _bots(value: Any, domain: str, where: str) -> list[BotSettings]:
    if not isinstance(value, dict) or not value:
        raise ConfigError(f'{where}.bots must be a table with one table per bot, e.g. [{where}.bots.news]')
    found = []
    for node, table in value.items():
        key = f"{where}.bots.{node}"
        if not isinstance(table, dict):
            raise ConfigError(f"{key} must be a table (name, status, show)")
        unknown = set(table) - _BOT_KEYS
        if unknown:
            raise ConfigError(f"{key}.{min(unknown)} is not a setting of a notices bot")
        try:
            jid = parse_jid(f"{node}@{domain}")
        except InvalidJID:
            raise ConfigError(f"{key}: {node!r} is not a valid localpart") from None
        for name in ("name", "status", "show"):
            if name in table and not isinstance(table[name], str):
                raise ConfigError(f"{key}.{name} must be a string")
        show = table.get("show")
        if show is not None and show not in SHOW_VALUES:
            raise ConfigError(f"{key}.show must be one of {', '.join(sorted(SHOW_VALUES))}")
        found.append(BotSettings(jid, str(table.get("name", node)), table.get("status"), show))
    return found


def _admins(value: Any, where: str) -> frozenset[JID]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where}.admins must be a list of JIDs")
    try:
        return frozenset(parse_jid(item).bare for item in value)
    except InvalidJID as error:
        raise ConfigError(f"{where}.admins: {error}") from None


SERVICE = NoticesService
