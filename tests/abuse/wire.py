"""The component as a server sees it: bytes in through its socket, bytes out, parsed strictly.

Abuse tests drive a real :class:`ComponentProtocol` (with the MUC, or any
service) on a ``StringTransport``, the way bench's driver does over TCP, and
check what the component wrote back with a parser as strict as its own.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from lxml import etree
from twisted.internet import task
from twisted.internet.testing import StringTransport

from component import namespaces as ns
from component.component import Component, DomainSettings
from component.connection import ComponentProtocol
from component.errors import StreamError
from component.stream import StreamLimits, StreamParser
from component.testing import NO_PINGS

__all__ = ["ServerWire", "SERVER_HEADER"]

SERVER_HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' "
    b"xmlns='jabber:component:accept' from='chat.shakespeare.lit' id='3BF96D32'>"
)
_OUTPUT_HEADER = f"<stream:stream xmlns='{ns.COMPONENT}' xmlns:stream='{ns.STREAMS}'>".encode()


class ServerWire:
    """One component attached through a handshake; ``feed`` what the server sends, ``stanzas`` what came back."""

    def __init__(
        self,
        domain: str,
        service: tuple[type, dict[str, Any]],
        *,
        storage: Any = None,
        header: bytes = SERVER_HEADER,
        settings: DomainSettings = DomainSettings(),
        limits: StreamLimits = StreamLimits(),
    ) -> None:
        self.clock = task.Clock()
        self.component = Component(domain, settings, NO_PINGS, clock=self.clock)
        service_class, options = service
        self.component.add_service(service_class(self.component, options))
        self.component.start_services(storage)
        self.protocol = ComponentProtocol(self.component, "s3cret", limits=limits, address="127.0.0.1:5347")
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self.feed(header + b"<handshake/>")
        assert self.protocol.authenticated
        self.transport.clear()

    def feed(self, data: bytes | str, chunk: int | None = None) -> None:
        """What the server sends, at once or in reads of ``chunk`` bytes."""
        raw = data.encode() if isinstance(data, str) else data
        step = chunk or max(len(raw), 1)
        for start in range(0, len(raw), step):
            self.protocol.dataReceived(raw[start : start + step])

    def take(self) -> bytes:
        """The bytes written since the last call."""
        data = self.transport.value()
        self.transport.clear()
        return data

    def stanzas(self) -> list[etree._Element]:
        """The stanzas written since the last call; the stream must still be up."""
        data = self.take()
        assert not self.transport.disconnecting, data[-300:]
        return parse_output(data)

    @property
    def up(self) -> bool:
        return self.protocol.authenticated and not self.transport.disconnecting


def parse_output(data: bytes) -> list[etree._Element]:
    """Parse what the component wrote as the server would, and refuse what it would refuse."""
    elements: list[etree._Element] = []

    def refused(element: etree._Element, reason: str) -> None:
        raise AssertionError(f"the component wrote a stanza the server would refuse: {reason}")

    checker = StreamParser(lambda header: None, _copy_into(elements), lambda: None, on_refused=refused, limits=StreamLimits(max_stanza_bytes=1 << 24))
    try:
        checker.feed(_OUTPUT_HEADER + data)
    except StreamError as error:
        raise AssertionError(f"the component wrote XML a server would refuse ({error})") from None
    return elements


def _copy_into(elements: list[etree._Element]) -> Callable[[etree._Element], None]:
    # Copied while still in the stream: once detached, an element shows
    # invented prefixes (ns0:), which the harness's comparison refuses.
    return lambda element: elements.append(copy.deepcopy(element))
