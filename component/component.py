"""One component domain: its router, its IQ requests, its link to the server.

The :class:`Component` is what entities talk to. It turns received elements
into :class:`Stanza` values and hands them to the router, builds the replies
and error replies, and sends what entities send through the current link,
or queues it while the link is down.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

import attrs
from lxml import etree
from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from component import namespaces as ns
from component.adhoc import Commands
from component.directed import DirectedPresence
from component.disco import Identity, Item
from component.entity import AnswerFirst, Entity, IQResult, iq_handler
from component.errors import StanzaError, StreamError
from component.iq import IQTimeout, IQTracker
from component.jid import JID, InvalidJID, parse_jid
from component.multicast import Multicast
from component.options import BARE_JIDS, DOMAIN, setting
from component.ordering import settled
from component.output import Output, Piece
from component.router import Router
from component.service import Service, start_service
from component.stanza import (
    KINDS,
    Broadcast,
    Stanza,
    error_reply,
    in_stream,
    iq,
    presence,
    result_reply,
    result_reply_bytes,
)
from component.status import status_command
from component.storage.base import StorageUnavailable
from component.storage.leases import LeaseLost

if TYPE_CHECKING:
    from component.config import ClusterConfig
    from component.storage.base import Storage

__all__ = ["Component", "DomainEntity", "DomainSettings", "Keepalive", "Link"]

log = Logger()


@attrs.frozen
class DomainSettings:
    """What a :class:`Component` applies of its domain's settings; inherited by ComponentConfig, which reads them."""

    # Below what the server takes from a component in one stanza (Prosody's
    # component_stanza_size_limit is 512 KiB; ejabberd's is unlimited unless
    # set): a stanza over the server's limit would make it close the stream.
    max_outgoing_bytes: int = setting(
        480 * 1024, "bytes of a stanza sent, below the server's own limit; a bigger one is not sent", minimum=1024
    )
    iq_timeout: float = setting(30.0, "seconds an entity's IQ request waits for its reply", minimum=0.1)
    queue_limit: int = setting(10_000, "stanzas kept while the link is down, the oldest dropped first", minimum=1)
    admins: frozenset[JID] = setting(
        frozenset(), "the domain's service admins, who run its admin commands", kind=BARE_JIDS
    )
    output_limit: int = setting(
        8 * 1024 * 1024, "bytes that may wait for the server; past them the component stops reading", minimum=65536
    )
    multicast: str = setting(
        "",
        "the server's multicast service (XEP-0033, ejabberd's mod_multicast), which fans stanzas out for us; none if empty",
        kind=DOMAIN,
    )
    multicast_limit: int = setting(
        20, "recipients in one stanza to the multicast service when it advertises no limit", minimum=2
    )


@attrs.frozen
class Keepalive:
    """How a :class:`Component` keeps its link alive; server settings, inherited by ServerConfig, which reads them."""

    domain: str | None = setting(
        None, "the server's domain, which the keepalive pings", shown="the component's domain minus its first label"
    )
    ping_interval: float = setting(60.0, "seconds between keepalive pings to the server (0: none)", minimum=0)
    ping_timeout: float = setting(20.0, "seconds before an unanswered ping drops the link", minimum=0.1)


class Link(Protocol):
    """What the component needs of a connection that completed its handshake."""

    def write(self, data: Piece) -> None:
        """Send serialised stanzas, or a fan-out to build as the connection drains."""

    def abort(self) -> None:
        """Drop the connection at once (a dead link)."""


class DomainEntity(Entity):
    """The component domain itself: disco built from what its services declare."""

    disco_info_is_static = True

    def __init__(self, component: Component, jid: JID) -> None:
        super().__init__(component, jid)
        # The domain's answers are built from its services, which only the component knows.
        self.domain = component
        self._service_handlers: dict[tuple[str, str], Callable[[Stanza], IQResult]] = {}
        self._gathered_from: tuple[Service, ...] = ()

    def service_handlers(self) -> dict[tuple[str, str], Callable[[Stanza], IQResult]]:
        """The services' domain IQ handlers, by (type, payload tag), gathered again when the services change."""
        services = tuple(self.domain.services)
        if services != self._gathered_from:
            handlers: dict[tuple[str, str], Callable[[Stanza], IQResult]] = {}
            for service in services:
                handlers.update(service.domain_iq_handlers())
            self._service_handlers, self._gathered_from = handlers, services
        return self._service_handlers

    def handle_iq(self, stanza: Stanza) -> IQResult:
        payload = stanza.payload()
        if payload is not None and payload.getnext() is None:
            key = (stanza.element.get("type", ""), cast(str, payload.tag))
            if key not in self.iq_handlers:
                handler = self.service_handlers().get(key)
                if handler is not None:
                    return handler(stanza)
        return super().handle_iq(stanza)

    def disco_identities(self, node: str | None) -> tuple[Identity, ...]:
        if node is not None:
            return ()
        found: list[Identity] = []
        for service in self.domain.services:
            found.extend(service.domain_identities())
        return tuple(found) or (Identity("component", "generic", "Netherfield"),)

    def disco_features(self, node: str | None) -> frozenset[str]:
        features = set(super().disco_features(node))
        features.update(etree.QName(tag).namespace or "" for _, tag in self.service_handlers())
        for service in self.domain.services:
            features |= service.domain_features()
        return frozenset(features)

    def disco_items(self, stanza: Stanza, node: str | None) -> list[Item]:
        if node == ns.COMMANDS:
            return self.component.commands.disco_items(self.jid, stanza.sender)
        if node is not None:
            return []
        items: list[Item] = []
        for service in self.domain.services:
            items.extend(service.domain_items(stanza))
        return items

    @iq_handler("get", f"{{{ns.DISCO_INFO}}}query")
    def _disco_info(self, stanza: Stanza) -> IQResult:
        node = stanza.element[0].get("node")
        if node is not None and self.component.commands.answers_disco(node):
            # Who asks matters: a command is described only to those who may run it.
            return self.component.commands.disco_info(node, stanza.sender)
        return super()._disco_info(stanza)

    @iq_handler("set", f"{{{ns.COMMANDS}}}command")
    def _command(self, stanza: Stanza) -> IQResult:
        return defer.ensureDeferred(self.component.commands.execute(stanza.sender, stanza.element[0]))


class Component:
    """A component domain attached (or waiting to attach) to one XMPP server."""

    def __init__(
        self,
        domain: str,
        settings: DomainSettings = DomainSettings(),
        keepalive: Keepalive = Keepalive(),
        *,
        clock: IReactorTime | None = None,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = cast(IReactorTime, reactor)
        self.jid = parse_jid(domain)
        if self.jid.node is not None or self.jid.resource is not None:
            raise ValueError(f"{domain} is not a domain")
        self._domain_text = self.jid.domain
        self.clock = clock
        self.services: list[Service] = []
        self._started: list[Service] = []
        self._starting: defer.Deferred[Any] | None = None
        self._stopping = False
        self.router = Router(self.jid, DomainEntity(self, self.jid))
        #: What the component applies of its domain's settings (limits, IQ timeout, admins).
        self.settings = settings
        #: How it keeps the link alive (pings to the server).
        self.keepalive = keepalive
        self.iq = IQTracker(clock, settings.iq_timeout)
        self.link: Link | None = None
        self._queue = Output()
        #: Sends dropped from the full queue (a fan-out counts the stanzas it had left).
        self.dropped = 0
        #: The largest stanza sent: a larger one is not sent (see :meth:`fits`).
        self.max_outgoing_bytes = settings.max_outgoing_bytes
        #: Stanzas refused or dropped, by why: "oversized-in", "oversized-out", "own-domain".
        self.refused: Counter[str] = Counter()
        #: Stanzas received, by kind: "message", "presence", "iq".
        self.received: Counter[str] = Counter()
        #: Stanzas sent (or queued for the link), by kind.
        self.sent: Counter[str] = Counter()
        #: Stanza errors sent, by condition.
        self.errors_sent: Counter[str] = Counter()
        #: Stream errors that ended this domain's links, by (who sent it: "netherfield" or "server", condition).
        self.stream_errors: Counter[tuple[str, str]] = Counter()
        #: Connection attempts after a failed one or a lost link.
        self.reconnects = 0
        self.server_domain = keepalive.domain or _parent_domain(self.jid.domain)
        self._pinging: task.LoopingCall | None = None
        self._ping_pending = False
        #: Where each hosted address sent available presence, so that its
        #: unavailable reaches everyone who was told available (RFC 6121 §4.6).
        self.directed = DirectedPresence()
        self.on_link_up: list[Callable[[], None]] = []
        #: The domain's service admins (bare JIDs); each service's own admins count too.
        self.admins = frozenset(jid.bare for jid in settings.admins)
        #: When the component was made, and when the link last went up or down.
        self.started_at = clock.seconds()
        self.link_changed_at = self.started_at
        #: The ad-hoc commands (XEP-0050) the domain offers; the status command first.
        self.commands = Commands(clock)
        self.commands.add(status_command(self))
        #: The server's multicast service, when the settings name one (see :mod:`component.multicast`).
        self.multicast = (
            Multicast(settings.multicast, settings.multicast_limit, settings.max_outgoing_bytes)
            if settings.multicast
            else None
        )

    def is_admin(self, jid: JID) -> bool:
        """Whether ``jid`` is an admin of this domain: named by it, or by one of its services."""
        bare = jid.bare
        return bare in self.admins or any(bare in service.admins for service in self.services)

    # -- sending ---------------------------------------------------------

    def send(self, element: etree._Element) -> None:
        """Send a stanza now, or queue it until the next handshake.

        A stanza without ``to``, or whose ``from`` is outside this domain, is
        dropped with an error in the log: either would make the server close
        the whole stream (ejabberd: missing address; both: invalid-from).
        """
        data = self._serialise(element)
        if data is not None and self.fits(len(data), element):
            self.send_bytes(data)

    def _serialise(self, element: etree._Element) -> bytes | None:
        """``element`` as it goes out, or None (logged) when its addresses would make the server close the stream."""
        sender = element.get("from")
        if not element.get("to") or sender is None or not self._is_ours(sender):
            log.error(
                "{domain}: refused to send a {tag} from {sender!r} to {to!r}; it needs a to and a from in {domain}",
                domain=str(self.jid),
                tag=etree.QName(element).localname,
                sender=sender,
                to=element.get("to"),
            )
            return None
        # UTF-8, not lxml's default ASCII: ASCII writes a non-ASCII name as a
        # character reference, which no XML parser accepts in a name.
        return in_stream(etree.tostring(element, encoding="utf-8"))

    def fits(self, size: int, element: etree._Element | None = None, *, to: str | None = None) -> bool:
        """Whether a stanza of ``size`` bytes may be sent; if not, it is counted and logged.

        The log names the stanza's kind from ``element`` and its recipient
        from ``to`` if given, else from ``element`` (several recipients if neither).

        The server closes the whole stream on a stanza over its limit, so
        one reply too large (a listing, a relayed message) would drop the
        link for everybody.
        """
        if size <= self.max_outgoing_bytes:
            return True
        self.refused["oversized-out"] += 1
        log.warn(
            "{domain}: did not send a {tag} of {size} bytes to {to}; the limit is {limit}",
            domain=str(self.jid),
            tag=etree.QName(element).localname if element is not None else "stanza",
            size=size,
            to=to or (element.get("to") if element is not None else "several recipients"),
            limit=self.max_outgoing_bytes,
        )
        return False

    def _is_ours(self, sender: str) -> bool:
        address = sender.partition("/")[0]
        return address.rpartition("@")[2] == self._domain_text

    def send_bytes(self, data: Piece, count: int = 1) -> None:
        """Send already serialised stanzas, or a fan-out (:meth:`Broadcast.to_each`) built as the link drains.

        Bytes may hold ``count`` stanzas of one kind (a room's fan-out), which
        is what :attr:`sent` counts; a fan-out knows its own count.
        """
        if isinstance(data, bytes):
            if data:
                # Its first tag names the kind: a byte lookup, not a parse.
                self.sent[_KIND_BY_INITIAL.get(data[1], "other")] += count
        else:
            self.sent[_KIND_BY_INITIAL.get(data.start[1], "other")] += data.stanzas
        if self.link is not None:
            self.link.write(data)
            return
        self._queue.append(data)
        self._trim_queue()

    def addressed(self, broadcast: Broadcast, recipients: Sequence[bytes]) -> tuple[Piece, int]:
        """``broadcast`` for each of ``recipients`` (from :func:`address`), and how many stanzas that is.

        One stanza through the server's multicast service when it has one,
        else one stanza each; either goes to :meth:`send_bytes`.
        """
        if self.multicast is None:
            return broadcast.to_each(recipients), len(recipients)
        return self.multicast.addressed(broadcast, recipients)

    def _trim_queue(self) -> None:
        # The oldest go first: at most queue_limit sends and output_limit bytes wait
        # (a fan-out counts what it will build).
        queue, settings = self._queue, self.settings
        before = self.dropped
        while queue and (len(queue) > settings.queue_limit or queue.size > settings.output_limit):
            self.dropped += queue.drop_oldest()
        if self.dropped != before and (before == 0 or before // 1000 != self.dropped // 1000):
            log.warn(
                "{domain}: the send queue is full; {dropped} stanzas dropped so far",
                domain=str(self.jid),
                dropped=self.dropped,
            )

    def send_presence(self, element: etree._Element) -> None:
        """Send a presence and remember where available presence went."""
        self.directed.sent(parse_jid(element.get("from", "")), parse_jid(element.get("to", "")), element.get("type"))
        self.send(element)

    def request(self, element: etree._Element, timeout: float | None = None) -> defer.Deferred[Any]:
        """Send an IQ get/set; see :meth:`IQTracker.track` for what the Deferred fires with."""
        recipient = parse_jid(element.get("to", ""))
        deferred = self.iq.track(element, recipient, timeout)
        self.send(element)
        return deferred

    @property
    def online(self) -> bool:
        """Whether the link to the server is up."""
        return self.link is not None

    @property
    def queued(self) -> int:
        """Sends waiting for the link."""
        return len(self._queue)

    @property
    def queued_bytes(self) -> int:
        """The bytes waiting for the link, counting what queued fan-outs will build."""
        return self._queue.size

    # -- receiving -------------------------------------------------------

    def receive(self, element: etree._Element) -> None:
        """Handle one top-level element from the server."""
        # lxml gives a str for every element it parsed or built (its stubs allow QName and bytes);
        # said with an annotation, not typing.cast, which is a call on every stanza.
        tag: str = element.tag  # type: ignore[assignment]
        kind = KINDS.get(tag)
        if kind is None:
            raise StreamError("unsupported-stanza-type", f"unexpected element {tag}")
        self.received[kind] += 1
        stanza_type = element.get("type")
        sender = self._sender(element, kind)
        if sender is None:
            return
        try:
            recipient = parse_jid(element.get("to") or "")
        except InvalidJID:
            if stanza_type != "error":
                stanza = Stanza(element, kind, sender, self.jid)
                self._send_error(stanza, StanzaError("jid-malformed", text="invalid 'to' address"))
            return
        if stanza_type == "error" and kind != "iq" and self.multicast is not None and sender == self.multicast.jid:
            self.multicast.refused(self.jid, element.find(f"{{{ns.COMPONENT}}}error"))
            return
        stanza = Stanza(element, kind, sender, recipient)
        if kind == "iq":
            if stanza_type in ("result", "error"):
                if self.iq.resolve(stanza) or stanza_type == "result":
                    return
            elif stanza_type not in ("get", "set") or not element.get("id"):
                self._send_error(stanza, StanzaError("bad-request", text="invalid iq type or id"))
                return
        target = self.router.locate(recipient)
        if target is None or isinstance(target, Entity):
            self._deliver(target, stanza)
        else:
            stanza.keep()  # it is handled once the entity has loaded
            target.addCallbacks(self._deliver, self._load_failed, callbackArgs=(stanza,), errbackArgs=(stanza,))

    def refuse(self, element: etree._Element, reason: str) -> None:
        """A stanza the stream would not take in whole (``reason``: too large, too deep).

        ``element`` is its start tag alone. Its sender gets a
        ``policy-violation`` error; the stream, and everyone else's
        traffic on it, goes on.
        """
        # lxml gives a str for every element it parsed or built (its stubs allow QName and bytes).
        tag = cast(str, element.tag)
        kind = KINDS.get(tag)
        if kind is None:
            raise StreamError("unsupported-stanza-type", f"unexpected element {tag}")
        self.refused["oversized-in"] += 1
        log.warn(
            "{domain}: refused a {kind} from {sender!r} to {to!r}: {reason}",
            domain=str(self.jid),
            kind=kind,
            sender=element.get("from", "")[:100],
            to=element.get("to", "")[:100],
            reason=reason,
        )
        sender = self._sender(element, kind)
        if sender is None or element.get("type") == "error":
            return
        try:
            recipient = parse_jid(element.get("to") or "")
        except InvalidJID:
            recipient = self.jid
        self._send_error(Stanza(element, kind, sender, recipient), StanzaError("policy-violation", text=reason))

    def _sender(self, element: etree._Element, kind: str) -> JID | None:
        """The stanza's ``from``, or None (logged) when it cannot be answered."""
        try:
            sender = parse_jid(element.get("from") or "")
        except InvalidJID:
            log.warn("{domain}: dropped a {kind} without a valid from", domain=str(self.jid), kind=kind)
            return None
        if sender.domain == self._domain_text:
            # Only we send from our domain: the server routed our own stanza
            # back (or forged one), and answering it would loop.
            self.refused["own-domain"] += 1
            if self.refused["own-domain"] % 1000 == 1:
                log.warn(
                    "{domain}: dropped a {kind} from our own domain ({sender}); {count} so far",
                    domain=str(self.jid),
                    kind=kind,
                    sender=str(sender),
                    count=self.refused["own-domain"],
                )
            return None
        return sender

    def _load_failed(self, failure: Failure, stanza: Stanza) -> None:
        if failure.check(StorageUnavailable, LeaseLost):
            # The database is down, or busy with a takeover: the sender may retry (RFC 6120 §8.3.2).
            # Any other database error (a statement it refuses as it stands) is no better on a retry.
            error = StanzaError("internal-server-error", "wait", text="the database cannot be read now; try again shortly")
        else:
            error = StanzaError("internal-server-error")
        self._send_error(stanza, error)

    def _deliver(self, entity: Entity | None, stanza: Stanza) -> None:
        stanza_type = stanza.element.get("type")
        if entity is None:
            # Nobody lives at that address (RFC 6121 §8.5.2): presence is
            # dropped, anything else gets service-unavailable.
            if stanza.kind != "presence":
                self._send_error(stanza, StanzaError("service-unavailable"))
            return
        try:
            result: Any = getattr(entity, _HANDLERS["error" if stanza_type == "error" else stanza.kind])(stanza)
        except StanzaError as error:
            self._send_error(stanza, error)
            return
        except Exception:
            self._handler_crashed(Failure(), stanza)
            return
        # Most handlers answer at once; test for a Deferred (an ABC, slow to
        # isinstance) only when the result is none of the immediate kinds.
        if result is None or isinstance(result, (bytes, etree._Element)):
            if stanza.kind == "iq" and stanza_type != "error":
                self._handled(result, stanza)
        elif isinstance(result, AnswerFirst):
            self._answered_first(result, stanza)
        else:
            self._handled_later(result, entity, stanza)

    def _handled_later(self, result: object, entity: Entity, stanza: Stanza) -> None:
        """Wait for a Deferred or a coroutine; anything else a handler returns is a bug, answered here.

        Whatever a handler returns, nothing raises out of here: an exception
        would reach the connection and drop the link for every entity.
        """
        if isinstance(result, defer.Deferred):
            deferred: defer.Deferred[Any] = result
        elif inspect.iscoroutine(result):
            deferred = defer.ensureDeferred(result)
        else:
            self._not_an_answer(entity, stanza, f"a value of type {_type_name(result)}")
            return
        deferred.addCallbacks(
            self._fired, self._handler_failed, callbackArgs=(entity, stanza), errbackArgs=(stanza,)
        ).addErrback(self._handler_crashed, stanza)

    def _fired(self, result: object, entity: Entity, stanza: Stanza) -> None:
        # What a message or presence handler's Deferred fires with means nothing.
        if stanza.kind != "iq" or stanza.element.get("type") == "error":
            return
        if result is None or isinstance(result, (bytes, etree._Element)):
            self._handled(result, stanza)
        elif isinstance(result, AnswerFirst):
            self._answered_first(result, stanza)
        else:
            self._not_an_answer(entity, stanza, f"a Deferred that fired with a value of type {_type_name(result)}")

    def _answered_first(self, answer: AnswerFirst, stanza: Stanza) -> None:
        if stanza.kind == "iq" and stanza.element.get("type") != "error":
            self._handled(answer.payload, stanza)
        try:
            answer.then()
        except Exception:
            log.failure("{domain}: what follows the answer to an iq to {to} raised", domain=str(self.jid), to=str(stanza.recipient))

    def _not_an_answer(self, entity: Entity, stanza: Stanza, what: str) -> None:
        log.error(
            "{domain}: {handler} returned {what}, which is no answer to {article} {kind} to {to}"
            " (a handler returns None, an element, bytes, a Deferred or a coroutine)",
            domain=str(self.jid),
            handler=_handler_name(entity, stanza),
            what=what,
            article="an" if stanza.kind == "iq" else "a",
            kind=stanza.kind,
            to=str(stanza.recipient),
        )
        self._send_error(stanza, StanzaError("internal-server-error"))

    def _handled(self, result: IQResult, stanza: Stanza) -> None:
        if isinstance(result, bytes):
            reply = result_reply_bytes(stanza, result)
        else:
            reply = in_stream(etree.tostring(result_reply(stanza, result), encoding="utf-8"))  # type: ignore[arg-type]
        # The request is named for the kind; the answer goes to its sender.
        if self.fits(len(reply), stanza.element, to=str(stanza.sender)):
            self.send_bytes(reply)
        else:
            text = f"the answer would be larger than {self.max_outgoing_bytes} bytes"
            self._send_error(stanza, StanzaError("resource-constraint", text=text))

    def _handler_failed(self, failure: Failure, stanza: Stanza) -> None:
        if failure.check(StanzaError):
            self._send_error(stanza, failure.value)  # type: ignore[arg-type]
        else:
            self._handler_crashed(failure, stanza)

    def _handler_crashed(self, failure: Failure, stanza: Stanza) -> None:
        log.failure(
            "{domain}: the handler of a {kind} to {to} raised",
            failure,
            domain=str(self.jid),
            kind=stanza.kind,
            to=str(stanza.recipient),
        )
        self._send_error(stanza, StanzaError("internal-server-error"))

    def _send_error(self, stanza: Stanza, error: StanzaError) -> None:
        if stanza.element.get("type") == "error":
            return  # never answer an error (RFC 6120 §8.3.1)
        self.errors_sent[error.condition] += 1
        reply = error_reply(stanza, error)
        data = self._serialise(reply)
        if data is not None and len(data) > self.max_outgoing_bytes:
            # The original payload is a courtesy; the error must get through.
            reply = error_reply(stanza, error, payload=False)
            data = self._serialise(reply)
        if data is not None and self.fits(len(data), reply):
            self.send_bytes(data)

    # -- the link --------------------------------------------------------

    def link_up(self, link: Link) -> None:
        """The handshake succeeded: flush the queue, then let entities re-announce themselves."""
        self.link = link
        self.link_changed_at = self.clock.seconds()
        for piece in self._queue.pop_all():
            link.write(piece)
        for entity in list(self.router.entities()):
            try:
                entity.on_connected()
            except Exception:
                log.failure("{domain}: on_connected of {jid} raised", domain=str(self.jid), jid=str(entity.jid))
        if self.multicast is not None:
            self.multicast.check(self.jid, self.request)
        for callback in list(self.on_link_up):
            try:
                callback()
            except Exception:
                log.failure("{domain}: a link-up callback raised", domain=str(self.jid))
        if self.keepalive.ping_interval > 0:
            self._pinging = task.LoopingCall(self._ping, link)
            self._pinging.clock = self.clock
            self._pinging.start(self.keepalive.ping_interval, now=False)

    def link_down(self, link: Link, unsent: Iterable[Piece] = ()) -> None:
        """The link is gone; sends queue until the next handshake, after ``unsent``, what it never wrote."""
        if self.link is not link:
            return
        self.link = None
        self.link_changed_at = self.clock.seconds()
        for piece in unsent:
            self._queue.append(piece)
        self._trim_queue()
        self._ping_pending = False
        if self.multicast is not None:
            self.multicast.lost()
        if self._pinging is not None and self._pinging.running:
            self._pinging.stop()
        self._pinging = None

    def _ping(self, link: Link) -> None:
        if self._ping_pending or self.link is not link:
            return
        self._ping_pending = True
        ping = iq(self.jid, self.server_domain, "get", etree.Element(f"{{{ns.PING}}}ping", nsmap={None: ns.PING}))
        deferred = self.request(ping, self.keepalive.ping_timeout)

        def answered(_: Any) -> None:
            self._ping_pending = False

        def failed(failure: Failure) -> None:
            self._ping_pending = False
            if failure.check(IQTimeout) and self.link is link:
                log.warn(
                    "{domain}: no answer to the keepalive ping within {timeout} s; dropping the link",
                    domain=str(self.jid),
                    timeout=self.keepalive.ping_timeout,
                )
                link.abort()

        deferred.addCallbacks(answered, failed)

    # -- shutdown --------------------------------------------------------

    def say_goodbye(self) -> None:
        """Tell everyone who saw an entity available that it is not any more."""
        for entity in list(self.router.entities()):
            try:
                entity.on_shutdown()
            except Exception:
                log.failure("{domain}: on_shutdown of {jid} raised", domain=str(self.jid), jid=str(entity.jid))
        for sender, recipient in list(self.directed):
            self.send(presence(sender, recipient, type="unavailable"))
        self.directed.clear()

    def add_service(self, service: Service) -> None:
        """Attach a service; it starts with :meth:`start_services`."""
        self.services.append(service)

    def start_services(
        self, storage: Storage | None = None, cluster: ClusterConfig | None = None
    ) -> defer.Deferred[Any]:
        """Start every service in order, those that declare migrations with ``storage``, clustered
        ones with ``cluster`` too; a :meth:`stop_services` meanwhile ends it after the current one."""
        self._stopping = False
        self._starting = defer.ensureDeferred(self._start_services(storage, cluster))
        return self._starting

    async def _start_services(self, storage: Storage | None, cluster: ClusterConfig | None) -> None:
        for service in self.services:
            if self._stopping:
                return
            await start_service(service, storage, cluster)
            self._started.append(service)

    def stop_services(self) -> defer.Deferred[Any]:
        """Stop every service that started, last started first, once a start in progress is over."""
        self._stopping = True
        return defer.ensureDeferred(self._stop_services())

    async def _stop_services(self) -> None:
        starting = self._starting
        if starting is not None and not starting.called:
            # Stopping a service under its own start would close what the
            # start still uses; the start's own caller sees how it ended.
            await settled(starting)
        while self._started:
            await defer.maybeDeferred(self._started.pop().stop)

# The byte after "<" of a serialised stanza, for counting what goes out.
_KIND_BY_INITIAL = {ord("m"): "message", ord("p"): "presence", ord("i"): "iq"}

# The entity's method for each stanza kind ("error" for any stanza of type
# error), looked up on the instance so that subclasses' overrides apply.
_HANDLERS: dict[str, str] = {
    "message": "handle_message",
    "presence": "handle_presence",
    "iq": "handle_iq",
    "error": "handle_error",
}


def _handler_name(entity: Entity, stanza: Stanza) -> str:
    """The method a stanza reached, as ``Class.method``, for the log."""
    kind = "error" if stanza.element.get("type") == "error" else stanza.kind
    method: Any = getattr(entity, f"handle_{kind}")
    payload = stanza.payload() if kind == "iq" else None
    if payload is not None:
        name = entity.iq_handlers.get((stanza.element.get("type", ""), cast(str, payload.tag)))
        if name is not None:
            method = getattr(entity, name, method)
    return str(getattr(method, "__qualname__", method))


def _type_name(value: object) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _parent_domain(domain: str) -> str:
    """The server's domain guessed from the component's: ``conference.example.org`` → ``example.org``."""
    _, dot, rest = domain.partition(".")
    return rest if dot and rest else domain
