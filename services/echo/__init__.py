"""The echo bot: ``echo@DOMAIN`` sends every chat or normal message back to its sender."""

from __future__ import annotations

from typing import Any, ClassVar

from component import namespaces as ns
from component.component import Component
from component.config import ConfigError
from component.disco import Identity, Item
from component.entity import Entity
from component.errors import StanzaError
from component.jid import InvalidJID, parse_jid
from component.service import Service
from component.stanza import Stanza, message

__all__ = ["SERVICE", "EchoBot", "EchoService"]

_BODY = f"{{{ns.COMPONENT}}}body"
_THREAD = f"{{{ns.COMPONENT}}}thread"


class EchoBot(Entity):
    """Echoes the body and thread of chat and normal messages."""

    identities = (Identity("client", "bot", "Echo"),)
    disco_info_is_static = True

    def handle_message(self, stanza: Stanza) -> None:
        kind = stanza.type or "normal"
        if kind not in ("chat", "normal"):
            if kind not in ("groupchat", "headline", "error"):
                raise StanzaError("bad-request", text=f"unknown message type {kind}")
            return
        body = thread = None
        for child in stanza.element:
            if child.tag == _BODY:
                body = child.text or ""
            elif child.tag == _THREAD:
                thread = child.text or ""
        if body is None:
            return  # chat states and receipts alone carry nothing to echo
        self.send(message(stanza.recipient, stanza.sender, body, type=stanza.type or None, id=stanza.id, thread=thread))


class EchoService(Service):
    """Hosts one :class:`EchoBot`, at ``echo@DOMAIN`` unless the config names another node."""

    name = "echo"
    option_keys: ClassVar[frozenset[str]] = frozenset({"node"})

    def __init__(self, component: Component, options: dict[str, Any]) -> None:
        super().__init__(component, options)
        node = options.get("node", "echo")
        try:
            jid = parse_jid(f"{node}@{component.jid.domain}")
        except (InvalidJID, TypeError):
            raise ConfigError(f'components."{component.jid}".echo.node must be a valid localpart') from None
        self.bot = EchoBot(component, jid)

    def start(self) -> None:
        self.component.router.register(self.bot)

    def domain_items(self, stanza: Stanza) -> list[Item]:
        return [Item(str(self.bot.jid), "Echo")]


SERVICE = EchoService
