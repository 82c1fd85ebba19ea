"""An echo and disco#info component on Twisted Words, written the way its documentation shows.

``componentFactory`` does the handshake; xpath observers on the authenticated
``XmlStream`` pick the stanzas; ``toResponse`` and ``domish`` build the replies.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.words.protocols.jabber import component, xmlstream
from twisted.words.xish import domish

from bench.wire import DISCO_INFO_NS, MUC_NS, component_arguments

CHAT = "/message[@type='chat']"
DISCO_INFO = f"/iq[@type='get']/query[@xmlns='{DISCO_INFO_NS}']"


class EchoDisco:
    """Answers chat messages to ``echo@domain`` and disco#info requests to the domain."""

    def __init__(self, domain: str) -> None:
        self.domain = domain
        self.echo_jid = f"echo@{domain}"
        self.stream: xmlstream.XmlStream | None = None

    def authenticated(self, stream: xmlstream.XmlStream) -> None:
        """Register the observers once the handshake has succeeded."""
        self.stream = stream
        stream.addObserver(CHAT, self.on_chat)
        stream.addObserver(DISCO_INFO, self.on_disco_info)

    def on_chat(self, message: domish.Element) -> None:
        """Send the body back to its sender."""
        if message.getAttribute("to") != self.echo_jid or self.stream is None:
            return
        reply = xmlstream.toResponse(message, "chat")
        reply.addElement("body", content=str(message.body or ""))
        self.stream.send(reply)

    def on_disco_info(self, iq: domish.Element) -> None:
        """Describe the component."""
        if iq.getAttribute("to") != self.domain or self.stream is None:
            return
        reply = xmlstream.toResponse(iq, "result")
        query = reply.addElement((DISCO_INFO_NS, "query"))
        identity = query.addElement("identity")
        identity["category"] = "component"
        identity["type"] = "generic"
        identity["name"] = "Bench"
        for var in (DISCO_INFO_NS, MUC_NS):
            query.addElement("feature")["var"] = var
        self.stream.send(reply)


def main(argv: list[str] | None = None) -> None:
    """Connect to the driver and serve until it closes the stream."""
    args = component_arguments("Echo and disco#info on Twisted Words.").parse_args(argv)
    handler = EchoDisco(args.domain)
    factory = component.componentFactory(args.domain, args.secret)
    factory.addBootstrap(xmlstream.STREAM_AUTHD_EVENT, handler.authenticated)
    factory.addBootstrap(xmlstream.STREAM_END_EVENT, lambda _reason: reactor.stop())  # type: ignore[attr-defined]
    reactor.connectTCP(args.host, args.port, factory)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
