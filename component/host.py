"""The host: what entities and services may use of the component domain that runs them.

:class:`Host` is a typing Protocol, the seam between :mod:`component.entity`,
:mod:`component.service`, :mod:`component.presence` (and the services built
on them) and :class:`component.component.Component`, which satisfies it, as
``Link`` is the seam between the component and its connection. Code written
against it never reaches into the component, and a test may host an entity
on anything that provides these members.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from lxml import etree
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime

from component.jid import JID

if TYPE_CHECKING:
    from component.adhoc import Commands
    from component.directed import DirectedPresence
    from component.output import Piece
    from component.router import Router

__all__ = ["Host"]


@runtime_checkable
class Host(Protocol):
    """A component domain, as the entities and services it hosts see it."""

    #: The domain's own address.
    jid: JID
    #: The domain of the server the component attaches to (its local users' domain).
    server_domain: str
    #: The time and timers (a ``task.Clock`` in tests).
    clock: IReactorTime
    #: Addresses to entities: services register theirs here.
    router: Router
    #: The ad-hoc commands (XEP-0050) the domain offers.
    commands: Commands
    #: Whom each hosted address told it is available (kept by :meth:`send_presence`).
    directed: DirectedPresence
    #: The largest stanza the domain sends.
    max_outgoing_bytes: int

    @property
    def online(self) -> bool:
        """Whether the link to the server is up (what is sent meanwhile waits in a queue)."""

    def send(self, element: etree._Element) -> None:
        """Send a stanza, or queue it while the link is down."""

    def send_bytes(self, data: Piece, count: int = 1) -> None:
        """Send serialised stanzas (``count`` of them), or a fan-out built as the link drains."""

    def send_presence(self, element: etree._Element) -> None:
        """Send a presence and remember where available presence went (:attr:`directed`)."""

    def request(self, element: etree._Element, timeout: float | None = None) -> defer.Deferred[Any]:
        """Send an IQ get or set; the Deferred fires with the reply."""

    def fits(self, size: int, element: etree._Element | None = None, *, to: str | None = None) -> bool:
        """Whether a stanza of ``size`` bytes may be sent; if not, it is counted and logged."""

    def is_admin(self, jid: JID) -> bool:
        """Whether ``jid`` is an admin of the domain."""
