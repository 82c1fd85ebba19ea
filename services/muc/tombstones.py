"""Tombstones: a destroyed persistent room's name stays reserved for a while.

As Prosody's ``mod_muc`` does (its ``muc_tombstones``), every stanza to the
name of a persistent room destroyed less than ``tombstone_seconds`` ago is
answered with ``<gone/>`` (type cancel, by the service), whose text is the
alternate venue's ``xmpp:ROOM?join`` URI and whose ``<text/>`` is the
destroy's reason. A service admin's available presence lifts the tombstone
and creates the room again; once the while is over anyone may. Tombstones
are stored (with a store) before the destruction is announced, and loaded at
start, so a restart does not free the name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from component.errors import StanzaError
from component.jid import JID
from component.stanza import Stanza
from services.muc.store import MucStore

__all__ = ["Tombstone", "Tombstones"]

log = Logger()


@attrs.frozen
class Tombstone:
    """What is left of a destroyed room: until when, why, and where its occupants went."""

    until: float
    reason: str | None = None
    alternate: str | None = None

    def error(self, domain: str) -> StanzaError:
        """The ``gone`` error every stanza to the room's name gets."""
        detail = f"xmpp:{self.alternate}?join" if self.alternate else None
        return StanzaError("gone", "cancel", self.reason or None, by=domain, detail=detail)


@attrs.define
class Tombstones:
    """The tombstones of one service, in memory and (with a store) stored."""

    clock: Callable[[], float]
    is_admin: Callable[[JID], bool]
    #: Keeps a write in flight until it completes (the service's ``track``).
    track: Callable[[defer.Deferred[Any]], defer.Deferred[Any]]
    store: MucStore | None = None
    _by_node: dict[str, Tombstone] = attrs.field(factory=dict, init=False)

    async def load(self, store: MucStore) -> None:
        """Take over the stored tombstones that are still in force."""
        self.store = store
        now = self.clock()
        for node, until, reason, alternate in await store.tombstones():
            if until > now:
                self._by_node[node] = Tombstone(until, reason, alternate)
            else:
                await store.lift(node)

    def stone(self, seconds: float, reason: str | None, alternate: str | None) -> Tombstone | None:
        """The tombstone a room destroyed now leaves for *seconds*, if any; stored with the room's delete."""
        if seconds <= 0:
            return None
        return Tombstone(self.clock() + seconds, reason, alternate)

    def place(self, node: str, tombstone: Tombstone) -> None:
        """Reserve *node*, once its tombstone is stored."""
        self._by_node[node] = tombstone

    def check(self, node: str, stanza: Stanza) -> None:
        """Raise ``gone`` if *node* is a tombstone this stanza may not pass; lift one whose while is over."""
        tombstone = self._by_node.get(node)
        if tombstone is None:
            return
        admin_join = stanza.kind == "presence" and stanza.type is None and self.is_admin(stanza.sender)
        if tombstone.until > self.clock() and not admin_join:
            raise tombstone.error(stanza.recipient.domain)
        del self._by_node[node]
        if self.store is not None:
            # The name is free from now on; a row the database kept is lifted at the next start.
            self.track(self.store.lift(node)).addErrback(
                lambda failure: log.failure("{node}: lifting a tombstone failed", failure, node=node)
            )
