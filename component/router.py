"""The router: finds the entity a stanza's ``to`` names, by dict lookup.

Three kinds of address: the component domain itself, an exact ``node@domain``
registered up front (a bot), and any other ``node@domain`` through a node
factory that looks the entity up or creates it on demand (rooms). A full JID
reaches the entity of its bare JID.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from component.entity import Entity
from component.jid import JID

__all__ = ["Router", "NodeFactory"]

#: Looks up or creates the entity at ``node@domain``; None when there is none.
NodeFactory = Callable[[str], "Entity | defer.Deferred[Entity | None] | None"]

log = Logger()


class Router:
    """Addresses to entities for one component domain."""

    def __init__(self, domain: JID, domain_entity: Entity) -> None:
        self.domain = domain
        self.domain_entity = domain_entity
        self._fixed: dict[str, Entity] = {}
        self._loaded: dict[str, Entity] = {}
        self._loading: dict[str, list[defer.Deferred[Entity | None]]] = {}
        self._factory: NodeFactory | None = None

    def register(self, entity: Entity) -> None:
        """Serve ``entity`` at its own bare address, ahead of any node factory."""
        jid = entity.jid
        if jid.domain != self.domain.domain or jid.node is None or jid.resource is not None:
            raise ValueError(f"{jid} is not a node@{self.domain} address")
        if jid.node in self._fixed:
            raise ValueError(f"{jid} is already registered")
        self._fixed[jid.node] = entity

    def set_node_factory(self, factory: NodeFactory) -> None:
        """Route every other ``node@domain`` through ``factory``."""
        if self._factory is not None:
            raise ValueError(f"{self.domain} already has a node factory")
        self._factory = factory

    def unload(self, node: str) -> Entity | None:
        """Forget an entity the factory made (an idle or destroyed room)."""
        return self._loaded.pop(node, None)

    def entities(self) -> Iterator[Entity]:
        """Every entity in memory: the domain, the registered ones and the loaded ones."""
        yield self.domain_entity
        yield from self._fixed.values()
        yield from list(self._loaded.values())

    def loaded(self, node: str) -> Entity | None:
        """The entity at ``node`` if it is in memory."""
        return self._fixed.get(node) or self._loaded.get(node)

    def locate(self, recipient: JID) -> Entity | defer.Deferred[Entity | None] | None:
        """The entity for ``recipient``; a Deferred while the factory loads it.

        Stanzas for a node that is still loading get their Deferreds fired in
        arrival order, so an entity sees its stanzas in the order they came.
        """
        if recipient.domain != self.domain.domain:
            return None
        node = recipient.node
        if node is None:
            return self.domain_entity
        entity = self._fixed.get(node) or self._loaded.get(node)
        if entity is not None or self._factory is None:
            return entity
        waiters = self._loading.get(node)
        if waiters is not None:
            waiter: defer.Deferred[Entity | None] = defer.Deferred()
            waiters.append(waiter)
            return waiter
        made = self._factory(node)
        if not isinstance(made, defer.Deferred):
            if made is not None:
                self._loaded[node] = made
            return made
        waiter = defer.Deferred()
        self._loading[node] = [waiter]
        made.addBoth(self._loaded_node, node)
        return waiter

    def _loaded_node(self, result: Any, node: str) -> None:
        waiters = self._loading.pop(node, [])
        if isinstance(result, Entity):
            self._loaded[node] = result
        elif result is not None:
            log.failure("loading {node} failed", result, node=node)
            for waiter in waiters:
                waiter.errback(result)
            return
        for index, waiter in enumerate(waiters):
            if isinstance(result, Entity) and self._loaded.get(node) is not result:
                # Handling an earlier stanza let the entity go (a room that
                # does not exist, asked about just before someone created
                # it): the rest must not reach the entity that is gone, or
                # what they do is lost with it. They are located afresh, in order.
                self._locate_again(node, waiters[index:])
                return
            waiter.callback(result)

    def _locate_again(self, node: str, waiters: list[defer.Deferred[Entity | None]]) -> None:
        pending = self._loading.get(node)
        if pending is not None:
            pending[:0] = waiters  # they came before the stanzas already waiting for that load
            return
        self._loading[node] = waiters
        made: Entity | defer.Deferred[Entity | None] | None = self._loaded.get(node)
        if made is None and self._factory is not None:
            made = self._factory(node)
        if isinstance(made, defer.Deferred):
            made.addBoth(self._loaded_node, node)
        else:
            self._loaded_node(made, node)
