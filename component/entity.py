"""Entities: the addressable things a component hosts (its domain, bots, rooms, users).

An entity is plain code. IQ requests reach the method registered for their
(type, payload tag) through a per-class dict built once at class creation;
messages and presences reach :meth:`Entity.handle_message` and
:meth:`Entity.handle_presence`. A handler returns a result (or a Deferred of
one, or is an ``async def``) or raises :class:`StanzaError`; the framework
sends the reply.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias, TypeVar, cast

from lxml import etree
from twisted.internet import defer

from component import __version__, rsm
from component import namespaces as ns
from component.disco import Identity, Item, info_element, items_element
from component.errors import StanzaError
from component.jid import JID
from component.stanza import Stanza

if TYPE_CHECKING:
    from component.host import Host

__all__ = ["AnswerFirst", "Entity", "iq_handler", "IQResult", "VERSION"]

VERSION = __version__
"""What software version answers (XEP-0092) say."""



class AnswerFirst:
    """An IQ answer (a payload, or None) and what to do right after it is sent.

    For a change the requester must hear of before anyone else does: an
    owner's configuration is answered, then the room announces it (XEP-0045
    §10.2, as Prosody). ``then`` runs once the reply is on its way, before
    the entity's next stanza.
    """

    __slots__ = ("payload", "then")

    def __init__(self, payload: etree._Element | bytes | None, then: Callable[[], None]) -> None:
        self.payload = payload
        self.then = then


#: What an IQ handler may return: a payload element, an already serialised
#: payload, nothing, an :class:`AnswerFirst`, or a Deferred of one of those (an
#: ``async def`` handler's coroutine is run as one). Anything else is answered
#: with internal-server-error.
IQResult: TypeAlias = etree._Element | bytes | AnswerFirst | defer.Deferred[Any] | None
_Handler = Callable[[Any, Stanza], IQResult]
_F = TypeVar("_F", bound=_Handler)


def iq_handler(type: str, tag: str) -> Callable[[_F], _F]:
    """Mark a method as the handler of IQs of ``type`` ('get' or 'set') whose payload is ``tag``.

    To answer a request a base class already handles (ping, software
    version, disco), either override its method by name, with no decorator
    (``def _version(self, stanza): ...``), or decorate a method of your own
    for the same ``type`` and ``tag``: the subclass's answer wins either way.
    """
    if type not in ("get", "set"):
        raise ValueError("IQ handlers answer 'get' or 'set' requests")

    def mark(function: _F) -> _F:
        keys = getattr(function, "_iq_keys", [])
        keys.append((type, tag))
        function._iq_keys = keys  # type: ignore[attr-defined]
        return function

    return mark


class Entity:
    """Base class of everything a router can hand a stanza to.

    Subclasses declare ``identities`` and ``features`` for disco, and
    override the handlers they need. IQ handlers are methods marked with
    :func:`iq_handler`; each is called through the instance by its name, so
    a subclass's method of the same name replaces it, decorated or not, and
    for one (type, tag) the class first in the MRO to mark a method wins.
    """

    identities: ClassVar[tuple[Identity, ...]] = ()
    features: ClassVar[frozenset[str]] = frozenset()
    #: The name of the method that answers each (type, payload tag), found once per class.
    iq_handlers: ClassVar[dict[tuple[str, str], str]] = {}
    #: True when disco#info changes only on :meth:`forget_disco_info`: the answer is built once and kept.
    disco_info_is_static: ClassVar[bool] = False
    #: The most items one disco#items answer lists; the rest are paged (XEP-0059).
    disco_items_per_page: ClassVar[int] = 100

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _collect_iq_handlers(cls)

    def __init__(self, component: Host, jid: JID) -> None:
        #: The domain that hosts the entity (see :class:`~component.host.Host`).
        self.component = component
        self.jid = jid
        self._disco_info_cache: dict[str | None, bytes] = {}

    # -- sending ---------------------------------------------------------

    def send(self, element: etree._Element) -> None:
        """Send a stanza; it waits in the queue while the link is down."""
        self.component.send(element)

    def request(self, element: etree._Element, timeout: float | None = None) -> defer.Deferred[Any]:
        """Send an IQ request; the Deferred fires with the reply (see :class:`IQTracker`)."""
        return self.component.request(element, timeout)

    # -- receiving -------------------------------------------------------

    def handle_iq(self, stanza: Stanza) -> IQResult:
        """Dispatch an iq get/set to its handler; none → ``service-unavailable``."""
        payload = stanza.payload()
        if payload is None or payload.getnext() is not None:
            # RFC 6120 §8.2.3: exactly one child element.
            raise StanzaError("bad-request", text="an iq request needs one payload element")
        name = self.iq_handlers.get((stanza.element.get("type", ""), cast(str, payload.tag)))
        if name is None:
            raise StanzaError("service-unavailable")
        handler: Callable[[Stanza], IQResult] = getattr(self, name)
        return handler(stanza)

    def handle_message(self, stanza: Stanza) -> defer.Deferred[Any] | None:
        """A message for this entity. By default nobody reads it (RFC 6121 §8.5.2)."""
        if stanza.type not in ("error", "groupchat", "headline"):
            raise StanzaError("service-unavailable")
        return None

    def handle_presence(self, stanza: Stanza) -> defer.Deferred[Any] | None:
        """A presence for this entity; ignored by default."""
        return None

    def handle_error(self, stanza: Stanza) -> None:
        """A stanza of type error bounced to this entity; ignored by default."""

    # -- lifecycle -------------------------------------------------------

    def on_connected(self) -> None:
        """Called after each successful handshake (the server keeps no state for us)."""

    def on_shutdown(self) -> None:
        """Called before the component closes its stream on a clean shutdown."""

    # -- discovery -------------------------------------------------------

    def disco_identities(self, node: str | None) -> tuple[Identity, ...]:
        """The identities disco#info reports."""
        return self.identities

    def disco_features(self, node: str | None) -> frozenset[str]:
        """The features disco#info reports: those declared plus every handled IQ namespace."""
        handled = {etree.QName(tag).namespace or "" for _, tag in self.iq_handlers}
        return self.features | handled

    def disco_forms(self, node: str | None) -> list[etree._Element]:
        """Extended info forms (XEP-0128) for disco#info."""
        return []

    def disco_items(self, stanza: Stanza, node: str | None) -> list[Item]:
        """The items disco#items reports."""
        return []

    def forget_disco_info(self) -> None:
        """Build the next disco#info answer anew: what it is built from changed (a configuration reload)."""
        self._disco_info_cache.clear()

    @iq_handler("get", f"{{{ns.DISCO_INFO}}}query")
    def _disco_info(self, stanza: Stanza) -> IQResult:
        node = stanza.element[0].get("node")
        # Only the answer without a node is kept: the node comes from the
        # wire, and keeping one answer per node asked for would grow forever.
        if self.disco_info_is_static and node is None:
            cached = self._disco_info_cache.get(node)
            if cached is None:
                cached = self._disco_info_cache[node] = etree.tostring(self._build_disco_info(node), encoding="utf-8")
            return cached
        return self._build_disco_info(node)

    def _build_disco_info(self, node: str | None) -> etree._Element:
        identities = self.disco_identities(node)
        if node is not None and not identities:
            raise StanzaError("item-not-found")
        return info_element(identities, self.disco_features(node), self.disco_forms(node), node)

    @iq_handler("get", f"{{{ns.DISCO_ITEMS}}}query")
    def _disco_items(self, stanza: Stanza) -> IQResult:
        query = stanza.element[0]
        node = query.get("node")
        request = rsm.parse_request(query)
        items = self.disco_items(stanza, node)
        if request is None and len(items) <= self.disco_items_per_page:
            return items_element(items, node)
        # A long list in one answer could pass what the server takes from us.
        found = rsm.page(items, _item_key, request, self.disco_items_per_page)
        answer = items_element(found.items, node)
        answer.append(found.set_element())
        return answer

    @iq_handler("get", f"{{{ns.PING}}}ping")
    def _ping(self, stanza: Stanza) -> IQResult:
        return None

    @iq_handler("get", f"{{{ns.VERSION}}}query")
    def _version(self, stanza: Stanza) -> IQResult:
        query = etree.Element(f"{{{ns.VERSION}}}query", nsmap={None: ns.VERSION})
        etree.SubElement(query, f"{{{ns.VERSION}}}name").text = "Netherfield"
        etree.SubElement(query, f"{{{ns.VERSION}}}version").text = VERSION
        etree.SubElement(query, f"{{{ns.VERSION}}}os").text = platform.system()
        return query


def _item_key(item: Item) -> str:
    """A disco item's id for paging: its address, and its node when it has one."""
    return item.jid if item.node is None else f"{item.jid} {item.node}"


def _collect_iq_handlers(cls: type[Entity]) -> None:
    # By name, so that an override without the decorator still answers what
    # the method it replaces answered; the first class in the MRO to mark a
    # method for a key wins, as in Python's own attribute lookup.
    handlers: dict[tuple[str, str], str] = {}
    for klass in cls.__mro__:
        for name, value in vars(klass).items():
            for key in getattr(value, "_iq_keys", ()):
                handlers.setdefault(key, name)
    cls.iq_handlers = handlers


_collect_iq_handlers(Entity)
