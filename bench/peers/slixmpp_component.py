"""An echo and disco#info component on slixmpp's ``ComponentXMPP``, as its examples write one.

``message`` events are echoed with ``Message.reply``; the ``xep_0030`` plugin answers
disco#info with the identity and features registered on it.
"""

from __future__ import annotations

import asyncio

from slixmpp import ComponentXMPP
from slixmpp.stanza import Message

from bench.wire import MUC_NS, component_arguments


class EchoComponent(ComponentXMPP):
    """Echo chat messages to ``echo@domain``; describe the domain over disco#info."""

    def __init__(self, domain: str, secret: str, host: str, port: int) -> None:
        super().__init__(domain, secret, host, port)
        self.echo_jid = f"echo@{domain}"
        self.register_plugin("xep_0030")
        self.add_event_handler("session_start", self.on_session_start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("disconnected", self.on_disconnected)
        self.done: asyncio.Future[None] = asyncio.get_event_loop().create_future()

    def on_session_start(self, _event: object) -> None:
        """Publish the domain's identity and features."""
        disco = self.plugin["xep_0030"]
        disco.add_identity(category="component", itype="generic", name="Bench", jid=self.boundjid)
        disco.add_feature(MUC_NS, jid=self.boundjid)

    def on_message(self, message: Message) -> None:
        """Send the body back to its sender."""
        if message["type"] in ("chat", "normal") and message["to"].bare == self.echo_jid:
            message.reply(message["body"]).send()

    def on_disconnected(self, _event: object) -> None:
        """Stop once the driver has closed the stream."""
        if not self.done.done():
            self.done.set_result(None)


def main(argv: list[str] | None = None) -> None:
    """Connect to the driver and serve until it closes the stream."""
    args = component_arguments("Echo and disco#info on slixmpp.").parse_args(argv)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    component = EchoComponent(args.domain, args.secret, args.host, args.port)
    component.connect()
    loop.run_until_complete(component.done)


if __name__ == "__main__":
    main()
