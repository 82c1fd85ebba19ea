"""Rosters of hosted entities: the RFC 6121 subscription state machine and one entity's roster.

The server keeps rosters for its own accounts only; for a ``node@component``
entity the component is the server, so it applies RFC 6121 §3 itself.

The state machine is the tables of RFC 6121 Appendix A written out as data:
:data:`INBOUND` and :data:`OUTBOUND` map (state, stanza type) to a
:class:`Transition`, the new state and whether the stanza passes (is routed
to the contact, or delivered to the entity's code). It does no I/O.

A :class:`Roster` holds one entity's contacts and pending inbound requests,
moves them through the state machine, and writes every change through a
:class:`~component.storage.rosters.RosterStore`. Writes, and whatever the
caller queues behind them with :meth:`Roster.after_writes`, run in order: a
stanza that announces a change leaves only once the change is durable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal, TypeAlias

import attrs
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from component.jid import JID, parse_stored_jid
from component.ordering import Turns
from component.storage import StorageError
from component.storage.rosters import RosterRow, RosterStore

__all__ = [
    "INBOUND",
    "OUTBOUND",
    "STATES",
    "SUBSCRIPTION_TYPES",
    "Change",
    "Roster",
    "RosterItem",
    "RosterView",
    "Subscription",
    "SubscriptionType",
    "Transition",
    "inbound",
    "outbound",
]

log = Logger()

#: The presence types that manage subscriptions (RFC 6121 §3).
SubscriptionType: TypeAlias = Literal["subscribe", "subscribed", "unsubscribe", "unsubscribed"]
SUBSCRIPTION_TYPES: tuple[SubscriptionType, ...] = ("subscribe", "subscribed", "unsubscribe", "unsubscribed")

_VALUES = ("none", "to", "from", "both")


@attrs.frozen(order=False)
class Subscription:
    """One of the nine subscription states of RFC 6121 Appendix A.1.

    ``subscription`` is what a roster item shows (none, to, from, both);
    ``pending_out`` means the entity asked the contact and waits;
    ``pending_in`` means the contact asked the entity and waits.
    """

    subscription: str = attrs.field(default="none", validator=attrs.validators.in_(_VALUES))
    pending_out: bool = False
    pending_in: bool = False

    def __attrs_post_init__(self) -> None:
        if self.pending_out and self.subscription not in ("none", "from"):
            raise ValueError(f"no defined state has subscription {self.subscription!r} with pending out")
        if self.pending_in and self.subscription not in ("none", "to"):
            raise ValueError(f"no defined state has subscription {self.subscription!r} with pending in")

    @classmethod
    def of(cls, subscription: str, pending_out: bool = False, pending_in: bool = False) -> Subscription:
        """The defined state nearest to stored values: flags no state allows are dropped."""
        if subscription not in _VALUES:
            subscription = "none"
        return cls(
            subscription,
            pending_out and subscription in ("none", "from"),
            pending_in and subscription in ("none", "to"),
        )

    @classmethod
    def named(cls, name: str) -> Subscription:
        """The state written as in RFC 6121, e.g. ``"None + Pending Out/In"`` or ``"To"``."""
        found = _BY_NAME.get(name.strip().strip('"'))
        if found is None:
            raise ValueError(f"{name!r} is not a state of RFC 6121 Appendix A.1")
        return found

    @property
    def has_to(self) -> bool:
        """The entity receives the contact's presence (``to`` or ``both``)."""
        return self.subscription in ("to", "both")

    @property
    def has_from(self) -> bool:
        """The contact receives the entity's presence (``from`` or ``both``)."""
        return self.subscription in ("from", "both")

    @property
    def is_none(self) -> bool:
        """Neither subscription nor request in either direction."""
        return self == NONE

    def __str__(self) -> str:
        name = self.subscription.capitalize()
        if self.pending_out and self.pending_in:
            return f"{name} + Pending Out/In"
        if self.pending_out:
            return f"{name} + Pending Out"
        if self.pending_in:
            return f"{name} + Pending In"
        return name


NONE = Subscription()

#: The nine states, in the order of RFC 6121 Appendix A.1.
STATES: tuple[Subscription, ...] = (
    NONE,
    Subscription("none", pending_out=True),
    Subscription("none", pending_in=True),
    Subscription("none", pending_out=True, pending_in=True),
    Subscription("to"),
    Subscription("to", pending_in=True),
    Subscription("from"),
    Subscription("from", pending_out=True),
    Subscription("both"),
)
_BY_NAME = {str(state): state for state in STATES}


@attrs.frozen
class Transition:
    """What a server does with one subscription stanza in one state.

    ``passes`` is the table's ROUTE? column for outbound stanzas (send it to
    the contact) and its DELIVER? column for inbound ones (hand it to the
    entity's code). ``auto_reply`` is a presence type the server sends back
    on the entity's behalf without delivering (the starred rows of A.3.1).
    """

    state: Subscription
    passes: bool
    auto_reply: SubscriptionType | None = None


def _table(rows: str) -> dict[Subscription, Transition]:
    """Read one Appendix A table, one ``state | yes/no[*] | new state`` row per line."""
    table: dict[Subscription, Transition] = {}
    for line in rows.strip().splitlines():
        existing, passes, new = (cell.strip() for cell in line.split("|"))
        state = Subscription.named(existing)
        reply: SubscriptionType | None = "subscribed" if passes.endswith("*") else None
        target = state if new == "no state change" else Subscription.named(new)
        table[state] = Transition(target, passes.rstrip(" *") == "yes", reply)
    if set(table) != set(STATES):
        raise ValueError("a subscription table must have one row per state")
    return table


def _tables(tables: dict[SubscriptionType, str]) -> dict[tuple[Subscription, str], Transition]:
    return {(state, kind): row for kind, rows in tables.items() for state, row in _table(rows).items()}


#: RFC 6121 Appendix A.2: stanzas the entity sends (ROUTE? and NEW STATE).
#: Pre-approval (§3.4) is not offered, so an unrequested ``subscribed`` is dropped.
OUTBOUND: dict[tuple[Subscription, str], Transition] = _tables(
    {
        # A.2.1
        "subscribe": """
            "None"                  | yes | "None + Pending Out"
            "None + Pending Out"    | yes | no state change
            "None + Pending In"     | yes | "None + Pending Out/In"
            "None + Pending Out/In" | yes | no state change
            "To"                    | yes | no state change
            "To + Pending In"       | yes | no state change
            "From"                  | yes | "From + Pending Out"
            "From + Pending Out"    | yes | no state change
            "Both"                  | yes | no state change
        """,
        # A.2.2
        "unsubscribe": """
            "None"                  | yes | no state change
            "None + Pending Out"    | yes | "None"
            "None + Pending In"     | yes | no state change
            "None + Pending Out/In" | yes | "None + Pending In"
            "To"                    | yes | "None"
            "To + Pending In"       | yes | "None + Pending In"
            "From"                  | yes | no state change
            "From + Pending Out"    | yes | "From"
            "Both"                  | yes | "From"
        """,
        # A.2.3
        "subscribed": """
            "None"                  | no  | no state change
            "None + Pending Out"    | no  | no state change
            "None + Pending In"     | yes | "From"
            "None + Pending Out/In" | yes | "From + Pending Out"
            "To"                    | no  | no state change
            "To + Pending In"       | yes | "Both"
            "From"                  | no  | no state change
            "From + Pending Out"    | no  | no state change
            "Both"                  | no  | no state change
        """,
        # A.2.4
        "unsubscribed": """
            "None"                  | no  | no state change
            "None + Pending Out"    | no  | no state change
            "None + Pending In"     | yes | "None"
            "None + Pending Out/In" | yes | "None + Pending Out"
            "To"                    | no  | no state change
            "To + Pending In"       | yes | "To"
            "From"                  | yes | "None"
            "From + Pending Out"    | yes | "None + Pending Out"
            "Both"                  | yes | "To"
        """,
    }
)

#: RFC 6121 Appendix A.3: stanzas from contacts (DELIVER? and NEW STATE).
#: ``no *``: not delivered; the server auto-replies ``subscribed`` (A.3.1, §3.1.3).
INBOUND: dict[tuple[Subscription, str], Transition] = _tables(
    {
        # A.3.1
        "subscribe": """
            "None"                  | yes  | "None + Pending In"
            "None + Pending Out"    | yes  | "None + Pending Out/In"
            "None + Pending In"     | no   | no state change
            "None + Pending Out/In" | no   | no state change
            "To"                    | yes  | "To + Pending In"
            "To + Pending In"       | no   | no state change
            "From"                  | no * | no state change
            "From + Pending Out"    | no * | no state change
            "Both"                  | no * | no state change
        """,
        # A.3.2
        "unsubscribe": """
            "None"                  | no  | no state change
            "None + Pending Out"    | no  | no state change
            "None + Pending In"     | yes | "None"
            "None + Pending Out/In" | yes | "None + Pending Out"
            "To"                    | no  | no state change
            "To + Pending In"       | yes | "To"
            "From"                  | yes | "None"
            "From + Pending Out"    | yes | "None + Pending Out"
            "Both"                  | yes | "To"
        """,
        # A.3.3
        "subscribed": """
            "None"                  | no  | no state change
            "None + Pending Out"    | yes | "To"
            "None + Pending In"     | no  | no state change
            "None + Pending Out/In" | yes | "To + Pending In"
            "To"                    | no  | no state change
            "To + Pending In"       | no  | no state change
            "From"                  | no  | no state change
            "From + Pending Out"    | yes | "Both"
            "Both"                  | no  | no state change
        """,
        # A.3.4
        "unsubscribed": """
            "None"                  | no  | no state change
            "None + Pending Out"    | yes | "None"
            "None + Pending In"     | no  | no state change
            "None + Pending Out/In" | yes | "None + Pending In"
            "To"                    | yes | "None"
            "To + Pending In"       | yes | "None + Pending In"
            "From"                  | no  | no state change
            "From + Pending Out"    | yes | "From"
            "Both"                  | yes | "From"
        """,
    }
)


def inbound(state: Subscription, kind: str) -> Transition:
    """What a subscription stanza of type ``kind`` from the contact does in ``state``."""
    try:
        return INBOUND[state, kind]
    except KeyError:
        raise ValueError(f"{kind!r} is not a subscription stanza type") from None


def outbound(state: Subscription, kind: str) -> Transition:
    """What a subscription stanza of type ``kind`` the entity sends does in ``state``."""
    try:
        return OUTBOUND[state, kind]
    except KeyError:
        raise ValueError(f"{kind!r} is not a subscription stanza type") from None


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


@attrs.frozen
class Change:
    """What one subscription stanza did to one contact's state."""

    contact: JID
    old: Subscription
    transition: Transition

    @property
    def new(self) -> Subscription:
        """The state after the stanza."""
        return self.transition.state

    @property
    def changed(self) -> bool:
        """Whether the state moved."""
        return self.old != self.new

    @property
    def passes(self) -> bool:
        """Route it (outbound) or deliver it (inbound)."""
        return self.transition.passes


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
                ask_in=item.state.pending_in,
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

        def stored(_: object) -> None:
            if write:
                self._unstored = False

        def failed(failure: Failure) -> None:
            if write:
                self._unstored = True
            log.failure("roster: {what} failed", failure, what=what)

        def step() -> defer.Deferred[None] | None:
            if write is False and self._unstored:
                log.warn("roster: {what} skipped, an earlier write failed", what=what)
                return None
            try:
                result = call()
            except Exception:
                failed(Failure())
                return None
            if isinstance(result, defer.Deferred):
                return result.addCallbacks(stored, failed)
            stored(result)
            return None

        self._turns.run(step)


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
