"""One entity's roster: its contacts and pending inbound requests, persisted.

The server keeps rosters for its own accounts only; for a ``node@component``
entity the component is the server, so it applies RFC 6121 §3 itself.

A :class:`Roster` holds one entity's contacts and pending inbound requests,
moves them through the state machine of :mod:`component.subscription`, and
writes every change through a :class:`~component.storage.rosters.RosterStore`.
Writes, and whatever the caller queues behind them with
:meth:`Roster.after_writes`, run in order (:class:`~component.ordering.Turns`):
a stanza that announces a change leaves only once the change is durable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from component.jid import JID, parse_stored_jid
from component.ordering import Turns
from component.storage import StorageError
from component.storage.rosters import RosterRow, RosterStore
from component.subscription import NONE, Change, Subscription, inbound, outbound

__all__ = ["Roster", "RosterItem", "RosterView"]

log = Logger()


def _groups(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class RosterItem:
    """A contact on an entity's roster: its subscription state and how it is shown."""

    jid: JID
    state: Subscription = NONE
    name: str | None = None
    groups: tuple[str, ...] = attrs.field(default=(), converter=_groups)

    @property
    def subscription(self) -> str:
        """``none``, ``to``, ``from`` or ``both``."""
        return self.state.subscription


class Roster(Mapping[JID, RosterItem]):
    """One entity's roster: contacts by bare JID, and inbound requests still waiting.

    A request from a JID that is not on the roster is kept apart, without
    creating an item (RFC 6121 Appendix A.1, "None + Pending In"). Build one
    with :meth:`load` (persisted) or :meth:`in_memory`.
    """

    def __init__(
        self,
        owner: JID,
        store: RosterStore | None = None,
        items: Mapping[JID, RosterItem] | None = None,
        requests: Mapping[JID, str] | None = None,
    ) -> None:
        self.owner = owner.bare
        self._store = store
        self._items: dict[JID, RosterItem] = dict(items or {})
        self._requests: dict[JID, str] = dict(requests or {})
        # Writes and what waits for them run one after the other, in order.
        self._turns = Turns()
        # Set when a write fails, cleared by the next one that succeeds: what
        # would announce an unstored change is not sent meanwhile.
        self._unstored = False

    @classmethod
    def in_memory(cls, owner: JID) -> Roster:
        """A roster that is not persisted (tests, throw-away entities)."""
        return cls(owner)

    @classmethod
    def load(cls, owner: JID, store: RosterStore | None) -> defer.Deferred[Roster]:
        """``owner``'s roster as stored; an empty one in memory when ``store`` is None."""
        if store is None:
            return defer.succeed(cls(owner))
        return defer.Deferred.fromCoroutine(cls._load(owner.bare, store))

    @classmethod
    async def _load(cls, owner: JID, store: RosterStore) -> Roster:
        rows = await store.load(str(owner))
        stored_requests = await store.requests(str(owner))
        items: dict[JID, RosterItem] = {}
        for contact, row in rows.items():
            jid = _contact("roster_items", owner, contact)
            if jid is None:
                continue
            state = Subscription.of(row.subscription, row.ask_out, contact in stored_requests)
            items[jid] = RosterItem(jid, state, row.name, row.groups)
        requests: dict[JID, str] = {}
        for contact, text in stored_requests.items():
            jid = _contact("roster_requests", owner, contact)
            # A request from a contact who is already subscribed waits for nothing.
            if jid is not None and not (jid in items and items[jid].state.has_from):
                requests[jid] = text
        return cls(owner, store, items, requests)

    # -- reading ---------------------------------------------------------

    def __getitem__(self, contact: JID) -> RosterItem:
        return self._items[contact.bare]

    def __iter__(self) -> Iterator[JID]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, contact: object) -> bool:
        return isinstance(contact, JID) and contact.bare in self._items

    def state(self, contact: JID) -> Subscription:
        """The subscription state with ``contact``, on the roster or not."""
        item = self._items.get(contact.bare)
        if item is not None:
            return item.state
        return Subscription("none", pending_in=contact.bare in self._requests)

    def subscribers(self) -> list[JID]:
        """Contacts that receive the entity's presence (``from`` or ``both``), sorted."""
        return sorted((jid for jid, item in self._items.items() if item.state.has_from), key=str)

    def subscriptions(self) -> list[JID]:
        """Contacts whose presence the entity receives (``to`` or ``both``), sorted."""
        return sorted((jid for jid, item in self._items.items() if item.state.has_to), key=str)

    def pending_requests(self) -> int:
        """How many contacts wait for an answer to their subscription request."""
        return len(self._requests)

    def requests(self) -> dict[JID, str]:
        """Inbound subscription requests waiting for an answer, with the text kept for each."""
        return dict(self._requests)

    # -- the state machine -----------------------------------------------

    def receive(self, contact: JID, kind: str, request: str = "") -> Change:
        """Apply a subscription stanza from ``contact`` (A.3); ``request`` is kept with a new request."""
        contact = contact.bare
        old = self.state(contact)
        change = Change(contact, old, inbound(old, kind))
        self._move(change, request)
        return change

    def send(self, contact: JID, kind: str) -> Change:
        """Apply a subscription stanza the entity sends to ``contact`` (A.2)."""
        contact = contact.bare
        old = self.state(contact)
        change = Change(contact, old, outbound(old, kind))
        self._move(change, "")
        return change

    def set_item(self, contact: JID, name: str | None = None, groups: tuple[str, ...] = ()) -> RosterItem:
        """Put ``contact`` on the roster, or rename and regroup it; its subscription is kept."""
        contact = contact.bare
        item = RosterItem(contact, self.state(contact), name, groups)
        self._items[contact] = item
        self._write(contact)
        return item

    def remove(self, contact: JID) -> Subscription:
        """Take ``contact`` off the roster and drop any request it made; return its last state."""
        contact = contact.bare
        old = self.state(contact)
        if contact in self._items or contact in self._requests:
            self._items.pop(contact, None)
            self._requests.pop(contact, None)
            self._write(contact)
        return old

    def _move(self, change: Change, request: str) -> None:
        if not change.changed:
            return
        contact, new = change.contact, change.new
        if new.pending_in and not change.old.pending_in:
            self._requests[contact] = request
        elif not new.pending_in:
            self._requests.pop(contact, None)
        item = self._items.get(contact)
        if item is not None:
            self._items[contact] = attrs.evolve(item, state=new)
        elif new.subscription != "none" or new.pending_out:
            # Only the entity's own request or an approved subscription makes
            # an item; a request from a stranger waits beside the roster.
            self._items[contact] = RosterItem(contact, new)
        self._write(contact)

    # -- persistence -----------------------------------------------------

    def _write(self, contact: JID) -> None:
        store = self._store
        if store is None:
            return
        item = self._items.get(contact)
        row = None
        if item is not None:
            row = RosterRow(
                str(contact),
                item.state.subscription,
                item.name,
                item.groups,
                ask_out=item.state.pending_out,
            )
        request = self._requests.get(contact)
        owner = str(self.owner)

        def write() -> defer.Deferred[None]:
            return store.write(owner, str(contact), row, request)

        self._enqueue(write, f"saving {contact} on the roster of {owner}", write=True)

    def after_writes(self, call: Callable[[], Any]) -> None:
        """Run ``call`` once every change made so far is stored; at once when none is pending.

        If a write failed since the last one that succeeded, ``call`` is
        dropped: what it would announce is not durable.
        """
        self._enqueue(call, f"a step after a roster write of {self.owner}", write=False)

    def written(self) -> defer.Deferred[None]:
        """A Deferred that fires once every change made so far is stored, or fails if one was not."""
        done: defer.Deferred[None] = defer.Deferred()

        def report() -> None:
            if self._unstored:
                done.errback(StorageError(f"a change to the roster of {self.owner} was not stored"))
            else:
                done.callback(None)

        self._enqueue(report, f"reporting the writes of {self.owner}", write=None)
        return done

    @property
    def writing(self) -> bool:
        """Whether writes (or steps queued behind them) are still pending."""
        return not self._turns.idle

    def drain(self) -> defer.Deferred[None]:
        """Fires once every write and step queued so far has run, stored or not; it never fails."""
        return self._turns.drain()

    def _enqueue(self, call: Callable[[], Any], what: str, *, write: bool | None) -> None:
        """Queue ``call``: a write (``True``), a step that needs the writes before it (``False``), or neither."""

        def step() -> Any:
            if write is False and self._unstored:
                log.warn("roster: {what} skipped, an earlier write failed", what=what)
                return None
            return call()

        def stored(succeeded: bool) -> None:
            if write:
                self._unstored = not succeeded

        self._turns.submit(step, f"roster: {what}", outcome=stored)


class RosterView(Mapping[JID, RosterItem]):
    """A read-only window on a :class:`Roster`, for entity code."""

    def __init__(self, roster: Roster) -> None:
        self._roster = roster

    def __getitem__(self, contact: JID) -> RosterItem:
        return self._roster[contact]

    def __iter__(self) -> Iterator[JID]:
        return iter(self._roster)

    def __len__(self) -> int:
        return len(self._roster)

    def __contains__(self, contact: object) -> bool:
        return contact in self._roster

    def state(self, contact: JID) -> Subscription:
        """The subscription state with ``contact``, on the roster or not."""
        return self._roster.state(contact)

    def subscribers(self) -> list[JID]:
        """Contacts that receive the entity's presence, sorted."""
        return self._roster.subscribers()

    def subscriptions(self) -> list[JID]:
        """Contacts whose presence the entity receives, sorted."""
        return self._roster.subscriptions()

    def requests(self) -> list[JID]:
        """JIDs whose subscription requests wait for an answer, sorted."""
        return sorted(self._roster.requests(), key=str)


def _contact(table: str, owner: JID, text: str) -> JID | None:
    jid = parse_stored_jid(text, table=table, row={"owner": str(owner), "contact": text})
    return None if jid is None else jid.bare
