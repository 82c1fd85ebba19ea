"""The echo bot: ``echo@DOMAIN`` sends every chat or normal message back to its sender."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from component import namespaces as ns
from component.disco import Identity, Item
from component.entity import Entity
from component.errors import StanzaError
from component.host import Host
from component.jid import JID
from component.options import LOCALPART, setting
from component.service import Service
from component.stanza import Stanza, message_bytes

if TYPE_CHECKING:
    from component.storage import Storage

__all__ = ["SERVICE", "EchoBot", "EchoService", "EchoSettings"]

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
        reply = message_bytes(stanza.recipient, stanza.sender, body, type=stanza.type or None, id=stanza.id, thread=thread)
        if self.component.fits(len(reply), to=str(stanza.sender)):
            self.component.send_bytes(reply)


@attrs.frozen
class EchoSettings:
    """The echo service's settings (``[components."DOMAIN".echo]``)."""

    node: str = setting("echo", "the bot's localpart: it answers at NODE@DOMAIN", kind=LOCALPART)


class EchoService(Service):
    """Hosts one :class:`EchoBot`, at ``echo@DOMAIN`` unless the config names another node."""

    name = "echo"
    settings_class: ClassVar[type[Any]] = EchoSettings
    settings: EchoSettings

    def __init__(self, component: Host, options: dict[str, Any]) -> None:
        super().__init__(component, options)
        self.bot = EchoBot(component, JID(self.settings.node, component.jid.domain))

    def start(self, storage: Storage | None = None) -> None:
        self.component.router.register(self.bot)

    def domain_items(self, stanza: Stanza) -> list[Item]:
        return [Item(str(self.bot.jid), "Echo")]


SERVICE = EchoService
