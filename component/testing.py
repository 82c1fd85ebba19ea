"""A harness for testing entities and services over the real wire, the way the XEPs show them.

Feed a stanza written as in a XEP example, then assert the exact stanzas that
went out::

    harness = Harness("echo.example.org", EchoService)
    harness.receive("<message from='juliet@example.com/balcony' to='echo@echo.example.org' type='chat'>"
                    "<body>Hi</body></message>")
    harness.expect("<message from='echo@echo.example.org' to='juliet@example.com/balcony' type='chat'>"
                   "<body>Hi</body></message>")

The component runs behind its real :class:`~component.connection.ComponentProtocol`
on a Twisted ``StringTransport``: what a test feeds goes in as bytes through the
hardened stream parser, one read per :meth:`Harness.receive`, and what the
component wrote is parsed from the transport's bytes again, as the server would
(:class:`ServerView`). So a stanza used after the stream let go of it, which
serialises with invented prefixes (``<ns0:message>``), or one without a ``to``,
fails the test that sends it.

Expected XML may use ``*`` for an attribute value or text that varies (ids,
timestamps). Whitespace-only text is ignored on both sides, so examples can
be indented; prefixes must match (none, unless the example writes one). Time is
a ``task.Clock``: ``harness.clock.advance(seconds)``.

:class:`ImmediateStorage` runs a service's real SQL on SQLite (in memory, or
a file to restart on) on the calling thread, with Deferreds that have already
fired, so tests stay synchronous; :func:`migrated` puts a service's tables in
place. :class:`HeldStorage` holds its answers until released, as a slow
database would, and :class:`FailingStorage` refuses statements on demand.
"""

from __future__ import annotations

import copy
import re
import sqlite3
from collections.abc import Callable
from typing import Any, Concatenate, cast

from lxml import etree
from twisted.internet import defer, task
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher
from twisted.python.failure import Failure

from component import namespaces as ns
from component.component import Component, DomainSettings, Keepalive
from component.config import ClusterConfig
from component.connection import ComponentProtocol
from component.errors import StreamError
from component.output import Piece, whole
from component.service import Service
from component.storage import Migrations, Storage, StorageError, Transaction
from component.storage.base import P, T
from component.storage.migrations import apply_migrations
from component.storage.sqlite import storage_error
from component.stream import StreamLimits, StreamParser

__all__ = [
    "NO_PINGS", "FailingStorage", "Harness", "HeldStorage", "ImmediateStorage", "LogCapture", "RecordingLink", "ServerView",
    "StreamClosed", "assert_xml_equal", "migrated", "parse_stanzas",
]

_WRAP_OPEN = f"<stream:stream xmlns='{ns.COMPONENT}' xmlns:stream='{ns.STREAMS}'>"
_WRAP_CLOSE = "</stream:stream>"
_HANDSHAKE = f"{{{ns.COMPONENT}}}handshake"
_STREAM_ERROR = f"{{{ns.STREAMS}}}error"
_SECRET = "s3cret"
_INVENTED_PREFIX = re.compile(r"ns\d+")
_STREAM_ID = "3BF96D32"
# Prosody and ejabberd take deeper stanzas than the component does.
_SERVER_DEPTH = 256
#: A component that pings nobody, so that a test's clock runs no keepalive: the harness's, unless told.
NO_PINGS = Keepalive(ping_interval=0)
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True)


def parse_stanzas(xml: str | bytes) -> list[etree._Element]:
    """Parse stanzas written without a namespace as ``jabber:component:accept`` elements."""
    text = xml.decode() if isinstance(xml, bytes) else xml
    root = etree.fromstring(_WRAP_OPEN + text + _WRAP_CLOSE, _PARSER)
    return [element for element in root if isinstance(element.tag, str)]


def _text(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    return value


def _describe(element: etree._Element) -> str:
    return etree.tostring(element, with_tail=False).decode()


def _mismatch(actual: etree._Element, expected: etree._Element, path: str) -> str | None:
    if actual.tag != expected.tag:
        return f"{path}: tag {cast(str, actual.tag)} != {cast(str, expected.tag)}"
    if actual.prefix != expected.prefix:
        # Same name to a namespace-aware parser, but an invented prefix
        # ("ns0:") is what a stanza the stream let go of serialises to.
        return f"{path}: prefix {actual.prefix!r} != {expected.prefix!r}"
    if set(actual.attrib) != set(expected.attrib):
        return f"{path}: attributes {sorted(actual.attrib)} != {sorted(expected.attrib)}"
    for name, wanted in expected.attrib.items():
        if wanted != "*" and actual.get(name) != wanted:
            return f"{path}: @{name} {actual.get(name)!r} != {wanted!r}"
    wanted_text = _text(expected.text)
    if wanted_text != "*" and _text(actual.text) != wanted_text:
        return f"{path}: text {actual.text!r} != {expected.text!r}"
    actual_children = [c for c in actual if isinstance(c.tag, str)]
    expected_children = [c for c in expected if isinstance(c.tag, str)]
    if len(actual_children) != len(expected_children):
        return (
            f"{path}: {len(actual_children)} children "
            f"{[etree.QName(c).localname for c in actual_children]} != {len(expected_children)} "
            f"{[etree.QName(c).localname for c in expected_children]}"
        )
    for index, (got, want) in enumerate(zip(actual_children, expected_children, strict=True)):
        found = _mismatch(got, want, f"{path}/{etree.QName(want).localname}[{index}]")
        if found:
            return found
    return None


def assert_xml_equal(actual: etree._Element, expected: etree._Element | str) -> None:
    """Assert two stanzas are the same XML: tags, attributes, text and child order."""
    wanted = parse_stanzas(expected)[0] if isinstance(expected, str) else expected
    problem = _mismatch(actual, wanted, etree.QName(wanted).localname)
    if problem:
        raise AssertionError(f"{problem}\n  sent:     {_describe(actual)}\n  expected: {_describe(wanted)}")


class LogCapture:
    """Collect the log events emitted inside a ``with`` block."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        # Twisted takes any callable as an observer.
        self._observer = cast(ILogObserver, self.events.append)

    def __enter__(self) -> LogCapture:
        globalLogPublisher.addObserver(self._observer)
        return self

    def __exit__(self, *exc: object) -> None:
        globalLogPublisher.removeObserver(self._observer)

    def messages(self) -> list[str]:
        """Each event as the log would show it."""
        return [formatEvent(event) for event in self.events]


class RecordingLink:
    """A link that keeps what the component writes."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: Piece) -> None:
        self.written.append(whole(data))

    def abort(self) -> None:
        self.aborted = True


class StreamClosed(AssertionError):
    """The component ended the stream while reading what a test fed it: a stanza must never do that."""

    def __init__(self, condition: str, text: str | None) -> None:
        super().__init__(f"the component closed the stream with {condition}" + (f": {text}" if text else ""))
        #: The stream error's condition ("not-well-formed", ...).
        self.condition = condition
        #: The stream error's text, if any.
        self.text = text


class ServerView:
    """What the component wrote, read as the server reads it: with the hardened stream parser.

    A fresh view reads one connection: the component's stream header, its
    handshake, then stanzas. Each stanza must carry a ``to`` and a ``from``
    in the component's domain and fit in ``max_stanza_bytes``, or the view
    raises :class:`AssertionError`, as either server would close the stream.
    An element with a prefix lxml invents (``ns0``) fails too: it is what a
    received element serialises to once the stream let go of it. Stanzas are
    kept as parsed, prefixes included, in :attr:`stanzas`.
    """

    def __init__(self, domain: str, max_stanza_bytes: int) -> None:
        self.domain = domain
        self.max_stanza_bytes = max_stanza_bytes
        #: The stanzas read and not yet taken.
        self.stanzas: list[etree._Element] = []
        #: Whether the component sent ``<handshake>``.
        self.handshake = False
        #: The stream error the component sent, if it sent one.
        self.error: StreamError | None = None
        #: Whether the component closed its stream.
        self.closed = False
        # The server refuses what is over its limit; its depth limit is its own.
        limits = StreamLimits(max_stanza_bytes=max_stanza_bytes, max_depth=_SERVER_DEPTH)
        self._parser = StreamParser(self._header, self._element, self._close, on_refused=self._refused, limits=limits)

    def read(self, data: bytes) -> None:
        """Read more of what the component wrote."""
        try:
            self._parser.feed(data)
        except StreamError as error:
            raise AssertionError(f"the component wrote what a server would refuse ({error}):\n  {data[-400:]!r}") from None

    def _header(self, header: etree._Element) -> None:
        if header.get("to") != self.domain or header.nsmap.get(None) != ns.COMPONENT:
            raise AssertionError(f"the component opened a stream for {header.get('to')!r} in {header.nsmap.get(None)!r}")

    def _element(self, element: etree._Element) -> None:
        if element.tag == _HANDSHAKE:
            self.handshake = True
            return
        if element.tag == _STREAM_ERROR:
            self.error = StreamError.from_element(element)
            return
        if self.closed or not self.handshake:
            raise AssertionError(f"the component wrote a stanza outside an authenticated stream: {_describe(element)}")
        sender, recipient = element.get("from"), element.get("to")
        if not recipient or sender is None or sender.partition("/")[0].rpartition("@")[2] != self.domain:
            # ejabberd closes the stream on a missing address, both servers on a from outside the domain.
            raise AssertionError(f"the server would close the stream on this stanza's addresses: {_describe(element)}")
        for node in element.iter():
            if isinstance(node.tag, str) and node.prefix is not None and _INVENTED_PREFIX.fullmatch(node.prefix):
                # lxml's own prefixes: an element serialised after the stream let go of it
                # (call stanza.keep() first), or one built without its nsmap.
                raise AssertionError(f"the component wrote an invented prefix {node.prefix}: {_describe(element)}")
        # A copy made while the element is in the stream keeps its prefixes as they were written.
        self.stanzas.append(copy.deepcopy(element))

    def _refused(self, element: etree._Element, reason: str) -> None:
        raise AssertionError(f"the component wrote a stanza the server would refuse ({reason}): {_describe(element)}")

    def _close(self) -> None:
        self.closed = True


class Harness:
    """A component with its services, connected through its real protocol to an in-memory transport.

    What a test feeds goes in as bytes through :class:`ComponentProtocol` and
    the hardened stream parser, as the server's socket would deliver it; what
    the component wrote is parsed from the transport's bytes again, as the
    server would parse it. A stanza that would serialise badly on the wire
    (an invented prefix, a missing address) fails the test that sends it.
    ``settings`` and ``keepalive`` are the component's; it pings nobody unless
    ``keepalive`` says so.
    With *cluster*, clustered services start as one of several instances.
    """

    def __init__(
        self,
        domain: str = "component.example.org",
        *services: type[Service] | tuple[type[Service], dict[str, Any]],
        storage: Any = None,
        connected: bool = True,
        settings: DomainSettings = DomainSettings(),
        keepalive: Keepalive = NO_PINGS,
        cluster: ClusterConfig | None = None,
    ) -> None:
        self.clock = task.Clock()
        self.component = Component(domain, settings, keepalive, clock=self.clock)
        for entry in services:
            service_class, options = entry if isinstance(entry, tuple) else (entry, {})
            self.component.add_service(service_class(self.component, options))
        #: The storage the services that declare migrations were given.
        self.storage = storage
        self.started = self.component.start_services(storage, cluster)
        #: The connection of the current (or last) link, and its transport.
        self.protocol: ComponentProtocol | None = None
        self.transport = StringTransport()
        self.server = ServerView(domain, self.component.max_outgoing_bytes)
        if connected:
            self.connect()

    def connect(self) -> None:
        """Open a new connection and complete the handshake; what waited in the queue goes out on it."""
        self._read()
        self.transport = StringTransport()
        self.server = ServerView(str(self.component.jid), self.component.max_outgoing_bytes)
        self.protocol = ComponentProtocol(self.component, _SECRET, address="harness")
        # Twisted's own method, which it leaves unannotated.
        Protocol.makeConnection(self.protocol, self.transport)
        self.protocol.dataReceived(
            f"<?xml version='1.0'?><stream:stream xmlns:stream='{ns.STREAMS}' xmlns='{ns.COMPONENT}' "
            f"from='{self.component.jid}' id='{_STREAM_ID}'><handshake/>".encode()
        )
        if not self.protocol.authenticated:
            raise AssertionError("the handshake did not complete")
        self._read()

    def disconnect(self) -> None:
        """The connection drops (the server went away); sends queue from now on."""
        self._read()
        if self.protocol is not None:
            self.protocol.connectionLost(Failure(ConnectionDone("the harness closed the connection")))

    @property
    def aborted(self) -> bool:
        """Whether the component dropped the connection (a dead link)."""
        return bool(self.transport.disconnected)

    def receive(self, xml: str | bytes | etree._Element) -> None:
        """What the server sends: stanzas written as in the XEP's examples, in one read.

        Raises :class:`StreamClosed` if the component ended the stream over it.
        """
        if self.protocol is None or not self.protocol.authenticated:
            raise AssertionError("the component is not connected")
        if isinstance(xml, str):
            data = xml.encode("utf-8")
        elif isinstance(xml, bytes):
            data = xml
        else:
            data = etree.tostring(xml, encoding="utf-8")
        self.protocol.dataReceived(data)
        self._read()
        error = self.server.error
        if error is not None or self.server.closed:
            raise StreamClosed(error.condition if error else "a closing tag", error.text if error else None)

    def _read(self) -> None:
        data = self.transport.value()
        if data:
            self.transport.clear()
            self.server.read(data)

    def sent(self) -> list[etree._Element]:
        """Every stanza written on the wire since the last call, parsed again from the bytes."""
        self._read()
        stanzas, self.server.stanzas = self.server.stanzas, []
        return stanzas

    def _sent_and_wanted(self, expected: tuple[str, ...]) -> tuple[list[etree._Element], list[etree._Element]]:
        sent = self.sent()
        wanted = [element for xml in expected for element in parse_stanzas(xml)]
        if len(sent) != len(wanted):
            shown = "\n    ".join(_describe(element) for element in sent) or "(nothing)"
            raise AssertionError(f"{len(sent)} stanzas sent, {len(wanted)} expected:\n    {shown}")
        return sent, wanted

    def expect(self, *expected: str) -> list[etree._Element]:
        """Assert that exactly these stanzas went out, in this order."""
        sent, wanted = self._sent_and_wanted(expected)
        for got, want in zip(sent, wanted, strict=True):
            assert_xml_equal(got, want)
        return sent

    def expect_unordered(self, *expected: str) -> list[etree._Element]:
        """Assert that exactly these stanzas went out, in any order."""
        sent, remaining = self._sent_and_wanted(expected)
        for got in sent:
            for index, want in enumerate(remaining):
                if _mismatch(got, want, "") is None:
                    del remaining[index]
                    break
            else:
                raise AssertionError(f"unexpected stanza: {_describe(got)}")
        return sent

    def expect_nothing(self) -> None:
        """Assert that nothing went out."""
        self.expect()

    def result_of(self, deferred: defer.Deferred[Any]) -> Any:
        """The result of a Deferred that has already fired (re-raising its failure)."""
        outcome: list[Any] = []
        deferred.addBoth(outcome.append)
        if not outcome:
            raise AssertionError("the Deferred has not fired")
        value = outcome[0]
        if hasattr(value, "raiseException"):
            value.raiseException()
        return value


# -- storage that answers at once ---------------------------------------------


class ImmediateStorage(Storage):
    """A :class:`~component.storage.Storage` on an in-memory SQLite database (or the file *path*), without threads."""

    dialect = "sqlite"

    def __init__(self, path: str = ":memory:") -> None:
        self.url = f"sqlite:///{path}"
        self._connection: sqlite3.Connection | None = sqlite3.connect(path, isolation_level=None)
        self._connection.execute("PRAGMA foreign_keys=ON")
        self.transactions = 0

    def transaction(
        self, fn: Callable[Concatenate[Transaction, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> defer.Deferred[T]:
        connection = self._connection
        if connection is None:
            return defer.fail(StorageError("the database is closed"))
        self.transactions += 1
        try:
            connection.execute("BEGIN IMMEDIATE")
            result = fn(Transaction(connection.cursor(), "sqlite", self.statement), *args, **kwargs)
            connection.execute("COMMIT")
        except Exception as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                return defer.fail(storage_error(self.url, exc))
            return defer.fail(exc)
        return defer.succeed(result)

    def statement(self, sql: str) -> str:
        """The SQL to run for *sql*: itself (``?`` is SQLite's own placeholder)."""
        return sql

    def close(self) -> defer.Deferred[None]:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        return defer.succeed(None)


class FailingStorage(ImmediateStorage):
    """Immediate storage that refuses statements on demand, as a damaged file or a busy database would.

    A refused statement fails its whole transaction, which SQLite rolls back:
    what the service stored before and what it tries after are real.
    """

    def __init__(self, path: str = ":memory:") -> None:
        super().__init__(path)
        self._matching: str | None = None
        self._passes = 0
        self._busy = False
        #: How many statements were refused so far.
        self.refused = 0

    def refuse(self, matching: str = "", *, after: int = 0, busy: bool = False) -> None:
        """Refuse every statement containing *matching*, once *after* of them have gone through.

        As a damaged database file would by default (SQLite's CORRUPT: not worth
        a retry), or with *busy* as a database another process holds locked (a
        :class:`~component.storage.StorageUnavailable`: worth one).
        """
        self._matching = matching
        self._passes = after
        self._busy = busy

    def accept(self) -> None:
        """Run every statement again."""
        self._matching = None

    def statement(self, sql: str) -> str:
        if self._matching is not None and self._matching in sql:
            if self._passes:
                self._passes -= 1
            else:
                self.refused += 1
                if self._busy:
                    locked = sqlite3.OperationalError("database is locked")
                    locked.sqlite_errorcode = sqlite3.SQLITE_BUSY
                    raise locked
                damaged = sqlite3.DatabaseError("database disk image is malformed")
                damaged.sqlite_errorcode = sqlite3.SQLITE_CORRUPT
                raise damaged
        return sql


class HeldStorage(ImmediateStorage):
    """Immediate storage whose answers wait until released, as a slow database's would."""

    def __init__(self, path: str = ":memory:") -> None:
        super().__init__(path)
        #: The answers waiting for `release`; None while answers are immediate.
        self.held: list[tuple[defer.Deferred[Any], defer.Deferred[Any]]] | None = None

    def transaction(
        self, fn: Callable[Concatenate[Transaction, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> defer.Deferred[T]:
        done = super().transaction(fn, *args, **kwargs)
        if self.held is None:
            return done
        waiting: defer.Deferred[T] = defer.Deferred()
        self.held.append((done, waiting))
        return waiting

    def release(self) -> None:
        """Give every held answer, in order; answers are immediate again."""
        held, self.held = self.held or [], None
        for done, waiting in held:
            done.chainDeferred(waiting)


def migrated(storage: ImmediateStorage, *migrations: Migrations) -> ImmediateStorage:
    """``storage`` with the tables of ``migrations`` in place (run at once, as a service's start would find them)."""
    outcome: list[Any] = []
    apply_migrations(storage, list(migrations)).addBoth(outcome.append)
    if outcome and hasattr(outcome[0], "raiseException"):
        outcome[0].raiseException()
    return storage
