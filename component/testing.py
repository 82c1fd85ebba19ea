"""A harness for testing entities and services in memory, the way the XEPs show them.

Feed a stanza written as in a XEP example, then assert the exact stanzas that
went out::

    harness = Harness("echo.example.org", EchoService)
    harness.receive("<message from='juliet@example.com/balcony' to='echo@echo.example.org' type='chat'>"
                    "<body>Hi</body></message>")
    harness.expect("<message from='echo@echo.example.org' to='juliet@example.com/balcony' type='chat'>"
                   "<body>Hi</body></message>")

Expected XML may use ``*`` for an attribute value or text that varies (ids,
timestamps). Whitespace-only text is ignored on both sides, so examples can
be indented. Time is a ``task.Clock``: ``harness.clock.advance(seconds)``.
"""

from __future__ import annotations

from typing import Any, cast

from lxml import etree
from twisted.internet import defer, task
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher

from component import namespaces as ns
from component.component import Component
from component.output import Piece, whole
from component.service import Service

__all__ = ["Harness", "LogCapture", "RecordingLink", "assert_xml_equal", "parse_stanzas"]

_WRAP_OPEN = f"<stream:stream xmlns='{ns.COMPONENT}' xmlns:stream='{ns.STREAMS}'>"
_WRAP_CLOSE = "</stream:stream>"
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
        return f"{path}: tag {actual.tag} != {expected.tag}"
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


class Harness:
    """A component with its services, attached to an in-memory link."""

    def __init__(
        self,
        domain: str = "component.example.org",
        *services: type[Service] | tuple[type[Service], dict[str, Any]],
        storage: Any = None,
        connected: bool = True,
        **component_options: Any,
    ) -> None:
        self.clock = task.Clock()
        component_options.setdefault("ping_interval", 0)
        self.component = Component(domain, clock=self.clock, **component_options)
        for entry in services:
            service_class, options = entry if isinstance(entry, tuple) else (entry, {})
            self.component.add_service(service_class(self.component, options))
        #: The storage the services that declare migrations were given.
        self.storage = storage
        self.started = self.component.start_services(storage)
        self.link = RecordingLink()
        if connected:
            self.connect()

    def connect(self) -> None:
        """Bring the link up (as after a handshake)."""
        self.link = RecordingLink()
        self.component.link_up(self.link)

    def disconnect(self) -> None:
        """Take the link down; sends queue from now on."""
        self.component.link_down(self.link)

    def receive(self, xml: str | etree._Element) -> None:
        """Hand stanzas to the component as if the server had sent them."""
        elements = parse_stanzas(xml) if isinstance(xml, str) else [xml]
        for element in elements:
            self.component.receive(element)

    def sent(self) -> list[etree._Element]:
        """Every stanza sent since the last call, parsed."""
        data = b"".join(self.link.written)
        self.link.written.clear()
        return parse_stanzas(data) if data else []

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
