"""The XEP-0114 connection: stream open, handshake, stream errors, reconnects.

:class:`ComponentProtocol` speaks the accept protocol over one TCP
connection; :class:`ComponentConnector` keeps one attached through a
Twisted ``ClientService`` with exponential backoff and jitter. A failed
handshake counts as a failed attempt, so a wrong secret backs off instead
of spinning. (``ClientService`` only counts refused TCP connections, and its
``prepareConnection`` cannot be used for the handshake: a connection lost
while it is pending has no transition in its state machine.)
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from typing import Any

import attrs
from lxml import etree
from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet import defer, endpoints
from twisted.internet import error as net_error
from twisted.internet.interfaces import (
    IProtocolFactory,
    IPushProducer,
    IReactorTCP,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger, LogPublisher
from twisted.python.failure import Failure
from zope.interface import implementer

from component import namespaces as ns
from component.component import Component
from component.errors import StreamError
from component.options import setting
from component.output import Output, Piece
from component.sendnow import Sender, sender_for
from component.stream import StreamLimits, StreamParser

__all__ = ["Backoff", "ComponentConnector", "ComponentProtocol", "HandshakeFailed", "handshake_digest"]

log = Logger()

_HANDSHAKE = f"{{{ns.COMPONENT}}}handshake"
_STREAM_ERROR = f"{{{ns.STREAMS}}}error"
_CLOSE = b"</stream:stream>"
#: The most the connection builds and writes at once: what the transport's own
#: buffer (64 KiB before it asks us to pause) can take in one go.
CHUNK = 64 * 1024

# What each stream error a server sends a component means to an operator, and
# what to do about it. {server} is "the server at HOST:PORT", {domain} the
# component domain, {reason} the condition with the server's text, if any.
# Prosody 0.12 (mod_component) and ejabberd 23.01 (ejabberd_service,
# xmpp_stream_in) send these; see /work/shared/XMPP-SERVERS.md.
_EXPLANATIONS = {
    # Both: a wrong secret. ejabberd also answers so for a domain it does not
    # know (after opening the stream), and cannot be told apart.
    "not-authorized": (
        "{server} refused the secret for {domain} ({reason}): wrong secret, or the server does not know {domain};"
        " the secret must be the one the server's config gives {domain}"
    ),
    # Prosody: the domain is not a Component in its config.
    "host-unknown": (
        "{server} does not know the component domain {domain} ({reason});"
        ' add Component "{domain}" to the server\'s config'
    ),
    # Prosody: another connection holds the domain; ejabberd: the domain is
    # one of the server's own hosts.
    "conflict": (
        "{server} refused {domain} ({reason}): another connection is already attached as {domain},"
        " or {domain} is a host of the server itself rather than a component"
    ),
    "invalid-from": (
        "{server} closed the stream for {domain} because a stanza's from was outside {domain} ({reason});"
        " a service sent it, and that is a bug to report"
    ),
    "improper-addressing": (
        "{server} closed the stream for {domain} because the stream or a stanza lacked a to or from ({reason});"
        " a service sent it, and that is a bug to report"
    ),
    # Prosody: what we sent did not parse, or was over component_stanza_size_limit.
    "not-well-formed": (
        "{server} closed the stream for {domain}: it could not parse what we sent, or a stanza was over its size"
        " limit ({reason}); Prosody's component_stanza_size_limit is 512 KiB unless set"
    ),
    # ejabberd: a stanza over the ejabberd_service listener's max_stanza_size.
    "policy-violation": (
        "{server} closed the stream for {domain} on a policy, such as a stanza over the listener's"
        " max_stanza_size ({reason})"
    ),
    # Both servers' client ports answer a component stream so.
    "invalid-namespace": (
        "{server} refused the component stream of {domain} ({reason}); is that the server's component port"
        " (component_ports, ejabberd_service) rather than its client port?"
    ),
    "invalid-xml": "{server} refused what {domain} sent as invalid XML ({reason})",
    # ejabberd: no handshake within its negotiation timeout (30 s).
    "connection-timeout": "{server} timed out the connection of {domain} ({reason}); reconnecting",
    "system-shutdown": "{server} is shutting down and closed the stream for {domain} ({reason}); reconnecting",
    "reset": "{server} reset the stream for {domain} ({reason}); reconnecting",
    "resource-constraint": "{server} is short of resources and closed the stream for {domain} ({reason})",
    "internal-server-error": "{server} failed internally and closed the stream for {domain} ({reason})",
    "see-other-host": "{server} sent {domain} to another host ({reason}); point host and port there",
}
_UNEXPLAINED = "{server} closed the stream for {domain} ({reason})"


def handshake_digest(stream_id: str, secret: str) -> str:
    """hex(SHA-1(stream id + secret)), XEP-0114 §3."""
    return hashlib.sha1((stream_id + secret).encode("utf-8")).hexdigest()


class HandshakeFailed(Exception):
    """The server ended the stream before accepting our handshake."""


@attrs.frozen(slots=False)  # a second base of ServerConfig beside the slotted Keepalive
class Backoff:
    """How soon a :class:`ComponentConnector` tries again; server settings, inherited by ServerConfig, which reads them."""

    reconnect_initial: float = setting(
        0.5, "seconds before the first reconnect attempt (and the most jitter added)", minimum=0.01
    )
    reconnect_max: float = setting(
        30.0, "the most seconds between reconnect attempts, which double until then", minimum=0.01
    )


@implementer(IPushProducer)
class ComponentProtocol(Protocol):
    """One connection to the server, attached as ``component``'s domain once the handshake succeeds.

    What it reads is bounded by ``limits``; once what waits to be written
    owes the component's ``output_limit`` bytes, it stops reading.
    """

    def __init__(
        self, component: Component, secret: str, *, limits: StreamLimits = StreamLimits(), address: str = ""
    ) -> None:
        self.component = component
        self._secret = secret
        self.address = address
        self.authenticated = False
        self.handshake: defer.Deferred[ComponentProtocol] = defer.Deferred()
        self.disconnected: defer.Deferred[None] = defer.Deferred()
        #: What waits for the transport to take it, in order.
        self.output = Output()
        self.output_limit = component.settings.output_limit
        # While a read is handled, writes wait for its end: one write per read.
        self._reading = False
        # The transport's buffer is full; it says when it has drained.
        self._transport_full = False
        self._reads_paused = False
        self._closing = False
        self._header_without_id = False
        #: Why the connection ended (or is ending), in a few words for the reconnect line.
        self.ended_by: str | None = None
        self._closed = False
        #: Hands bytes to the socket at once when the transport holds none (see ``component.sendnow``).
        self._send_now: Sender = sender_for(None)
        self._parser = StreamParser(
            self._stream_opened, self._element_received, self._stream_closed, on_refused=self._element_refused,
            limits=limits,
        )

    @property
    def domain(self) -> str:
        """The component domain this connection authenticates as."""
        return str(self.component.jid)

    # -- Protocol --------------------------------------------------------

    def connectionMade(self) -> None:
        assert self.transport is not None
        # Flow control: the transport pauses us when its buffer fills and
        # resumes us once it drained; meanwhile what we send waits in
        # ``output``, fan-outs unbuilt, and once that owes output_limit bytes
        # we stop reading the server's input until it has drained to half.
        self.transport.registerProducer(self, True)  # type: ignore[attr-defined]
        # Nagle's algorithm would hold a write back until the server acknowledges
        # the one before, and a server that has nothing to send back acknowledges
        # late (Linux: up to 40 ms): what we write is already batched, one write a read.
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        self._send_now = sender_for(self.transport)
        self.transport.write(
            (
                "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
                f"xmlns:stream='{ns.STREAMS}' to='{self.domain}'>"
            ).encode()
        )

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        # Everything sent while this read is handled goes out in one write.
        self._reading = True
        try:
            self._parser.feed(data)
        except StreamError as error:
            self.ended_by = f"we closed the stream with {error.condition}"
            self.component.stream_errors["netherfield", error.condition] += 1
            log.warn(
                "{domain}: closing the stream to the server at {address} with {condition}: {text}",
                domain=self.domain,
                address=self.address,
                condition=error.condition,
                text=error.text or "",
            )
            self._close(error.to_bytes())
        finally:
            self._reading = False
            self._pump()

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self.ended_by is None:
            self.ended_by = reason.getErrorMessage() if reason is not None else "the connection closed"
        self.disconnected.callback(None)
        self._transport_full = True  # nothing more to write
        if self.authenticated:
            self.authenticated = False
            # What was never written goes out on the next link (without our closing tag).
            unsent = self.output.pop_all()
            if self._closing and unsent:
                unsent.pop()
            self.component.link_down(self, unsent)
            if not self._closing:
                log.warn(
                    "{domain} lost its connection to the server at {address} ({reason}); reconnecting",
                    domain=self.domain,
                    address=self.address,
                    reason=self.ended_by,
                )
        elif not self.handshake.called:
            sentence = f"the server at {self.address} closed the connection of {self.domain} before the handshake"
            log.warn("{sentence}", sentence=sentence, domain=self.domain, address=self.address)
            self.handshake.errback(HandshakeFailed(sentence))

    # -- IPushProducer, for the transport's flow control ---------------

    def pauseProducing(self) -> None:
        """The transport's buffer is full: write nothing more until it drains."""
        self._transport_full = True

    def resumeProducing(self) -> None:
        """The transport's buffer drained: write what waits."""
        self._transport_full = False
        self._pump()

    def stopProducing(self) -> None:
        """The transport is going away; nothing to release."""

    # -- Link ------------------------------------------------------------

    def write(self, data: Piece) -> None:
        """Send serialised stanzas, or a fan-out to build as the transport drains, after all else sent."""
        self.output.append(data)
        if not self._reading:
            self._pump()

    def _pump(self) -> None:
        """Write what waits while the transport has room, then pause or resume reading."""
        output = self.output
        transport = self.transport
        if transport is None:
            return
        while output and not self._transport_full:
            # Sent in this turn of the reactor when nothing waits in the transport; the rest waits there.
            rest = self._send_now(output.take(CHUNK))
            if rest:
                transport.write(rest)
        if self._closing:
            if not output and not self._closed:
                self._closed = True
                transport.loseConnection()
            return
        if output.size >= self.output_limit:
            if not self._reads_paused:
                self._reads_paused = True
                transport.pauseProducing()  # type: ignore[attr-defined]
        elif self._reads_paused and output.size <= self.output_limit // 2:
            self._reads_paused = False
            transport.resumeProducing()  # type: ignore[attr-defined]

    def abort(self) -> None:
        """Drop the TCP connection at once."""
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def close_stream(self) -> None:
        """End the stream cleanly: ``</stream:stream>``, then close once written."""
        self._close(b"")

    # -- stream events ---------------------------------------------------

    def _stream_opened(self, header: etree._Element) -> None:
        if header.nsmap.get(None) != ns.COMPONENT:
            # RFC 6120 §4.9.3.10: a content namespace we do not speak; sending
            # the handshake would only get every stanza refused after it.
            raise StreamError("invalid-namespace", f"the stream's default namespace is not {ns.COMPONENT}")
        stream_id = header.get("id")
        if not stream_id:
            # Prosody refuses a domain it does not know with an id-less header
            # and then the stream error that says so: wait for that.
            self._header_without_id = True
            return
        assert self.transport is not None
        digest = handshake_digest(stream_id, self._secret)
        self.transport.write(f"<handshake>{digest}</handshake>".encode())

    def _element_received(self, element: etree._Element) -> None:
        if self.authenticated:
            if element.tag == _STREAM_ERROR:
                self._server_error(element)
                return
            self.component.receive(element)
        elif element.tag == _STREAM_ERROR:
            self._server_error(element)
        elif self._header_without_id:
            # We sent no handshake, so nothing but a stream error makes sense.
            raise StreamError("invalid-xml", "the stream header has no id")
        elif element.tag == _HANDSHAKE:
            self.authenticated = True
            log.info(
                "{domain} is attached to the server at {address}",
                domain=self.domain,
                address=self.address,
            )
            self.component.link_up(self)
            self.handshake.callback(self)
        else:
            raise StreamError("not-authorized", "stanza before the handshake completed")

    def _element_refused(self, element: etree._Element, reason: str) -> None:
        if not self.authenticated:
            raise StreamError("policy-violation", f"{reason} before the handshake completed")
        self.component.refuse(element, reason)

    def _server_error(self, element: etree._Element) -> None:
        error = StreamError.from_element(element)
        self.component.stream_errors["server", error.condition] += 1
        reason = f"{error.condition}: {error.text}" if error.text else error.condition
        self.ended_by = f"stream error {reason}"
        sentence = _EXPLANATIONS.get(error.condition, _UNEXPLAINED).format(
            server=f"the server at {self.address}", domain=self.domain, reason=reason
        )
        log.error("{sentence}", sentence=sentence, condition=error.condition, domain=self.domain)
        if not self.handshake.called:
            self.handshake.errback(HandshakeFailed(sentence))
        self._close(b"")

    def _stream_closed(self) -> None:
        if self.ended_by is None:
            self.ended_by = "the server closed the stream"
        self._close(b"")

    def _close(self, before: bytes) -> None:
        if self._closing or self.transport is None:
            return
        # What was sent before goes out first; the connection closes once all is written.
        self.output.append(before + _CLOSE)
        self._closing = True
        if not self._reading:
            self._pump()


class _QuietClientService(ClientService):
    # Its own "Scheduling retry 1 to connect <TCP4ClientEndpoint object at
    # 0x...>" names neither the domain nor the address nor the reason, and
    # counts a refused handshake as a success: ComponentConnector logs its own.
    _log = Logger(observer=LogPublisher())  # a publisher with no observers


@implementer(IStreamClientEndpoint)
class _Endpoint:
    """A TCP endpoint that reports why a connection attempt failed."""

    def __init__(self, endpoint: IStreamClientEndpoint, failed: Callable[[Failure], None]) -> None:
        self._endpoint = endpoint
        self._failed = failed

    def connect(self, factory: IProtocolFactory) -> defer.Deferred[Any]:
        def failed(failure: Failure) -> Failure:
            self._failed(failure)
            return failure

        return self._endpoint.connect(factory).addErrback(failed)


def _connect_reason(failure: Failure) -> str:
    """A TCP connection failure in a few words."""
    if failure.check(net_error.ConnectionRefusedError):
        return "connection refused"
    if failure.check(net_error.TimeoutError, net_error.TCPTimedOutError):
        return "no answer within 10 s"
    if failure.check(net_error.DNSLookupError):
        return "cannot resolve the host"
    return failure.getErrorMessage()


class _ComponentFactory(Factory):
    noisy = False

    def __init__(self, connector: ComponentConnector) -> None:
        self.connector = connector

    def buildProtocol(self, addr: Any) -> ComponentProtocol:
        return self.connector.build_protocol()


class ComponentConnector(Service):
    """Keeps ``component`` attached to the server at host:port, reconnecting with backoff.

    On stop it says goodbye (entities' unavailable presence), closes the
    stream with ``</stream:stream>`` and waits for the socket to close.
    """

    def __init__(
        self,
        component: Component,
        host: str,
        port: int,
        secret: str,
        *,
        reactor: Any = None,
        backoff: Backoff = Backoff(),
        limits: StreamLimits = StreamLimits(),
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.component = component
        #: host:port of the server.
        self.address = f"{host}:{port}"
        self._secret = secret
        self._reactor: IReactorTCP | IReactorTime = reactor
        self._limits = limits
        self.protocol: ComponentProtocol | None = None
        #: Attempts in a row that did not end attached (a lost link counts as one).
        self.failed_attempts = 0
        self._connect_failure: str | None = None
        initial = backoff.reconnect_initial
        self._policy = backoffPolicy(initial, backoff.reconnect_max, 2.0, jitter=lambda: random.uniform(0, initial))
        endpoint = _Endpoint(endpoints.TCP4ClientEndpoint(reactor, host, port, timeout=10), self._connect_failed)
        self._client = _QuietClientService(
            endpoint, _ComponentFactory(self), retryPolicy=self._retry_delay, clock=reactor
        )

    def __repr__(self) -> str:
        # The secret stays out of every repr and log line.
        return f"<ComponentConnector {self.component.jid} -> {self.address}>"

    def build_protocol(self) -> ComponentProtocol:
        """A protocol for one connection attempt."""
        protocol = ComponentProtocol(self.component, self._secret, limits=self._limits, address=self.address)
        protocol.handshake.addCallbacks(self._accepted, lambda _: None)
        self.protocol = protocol
        self._connect_failure = None
        return protocol

    def _accepted(self, protocol: ComponentProtocol) -> None:
        self.failed_attempts = 0

    def _connect_failed(self, failure: Failure) -> None:
        self._connect_failure = _connect_reason(failure)

    def _retry_delay(self, _client_count: int) -> float:
        # ClientService counts refused TCP connections only, and starts again
        # at 1 whenever TCP got through, so a refused handshake would never
        # back off: count every attempt that did not end attached ourselves.
        # The first retry waits the initial delay; each further one doubles it.
        self.failed_attempts += 1
        self.component.reconnects += 1
        delay = float(self._policy(self.failed_attempts - 1))
        if self._connect_failure is not None:
            reason = self._connect_failure
        elif self.protocol is not None and self.protocol.ended_by:
            reason = self.protocol.ended_by
        else:
            reason = "the connection ended"
        log.warn(
            "{domain}: reconnecting to the server at {address} in {delay:.1f} s, retry {retry} ({reason})",
            domain=str(self.component.jid),
            address=self.address,
            delay=delay,
            retry=self.failed_attempts,
            reason=reason,
        )
        return delay

    def startService(self) -> None:
        Service.startService(self)
        self._client.startService()

    def stopService(self) -> defer.Deferred[None]:
        Service.stopService(self)
        return defer.ensureDeferred(self._stop())

    async def _stop(self) -> None:
        protocol = self.protocol
        if protocol is not None and protocol.authenticated and protocol.transport is not None:
            self.component.say_goodbye()
            protocol.close_stream()
            # The server answers with its own </stream:stream>; don't wait forever for it.
            closed = protocol.disconnected
            closed.addTimeout(3.0, self._reactor, onTimeoutCancel=lambda *_: None)  # type: ignore[arg-type]
            await closed
        await self._client.stopService()
