"""The RFC 6121 subscription state machine: nine states, and what each subscription stanza does to them.

The tables of RFC 6121 Appendix A written out as data: :data:`INBOUND` and
:data:`OUTBOUND` map (state, stanza type) to a :class:`Transition`, the new
state and whether the stanza passes (is routed to the contact, or delivered
to the entity's code). Pure values: no I/O, no storage, no stanzas.
:mod:`component.roster` keeps an entity's contacts in these states.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import attrs

from component.jid import JID

__all__ = [
    "INBOUND",
    "NONE",
    "OUTBOUND",
    "STATES",
    "SUBSCRIPTION_TYPES",
    "Change",
    "Subscription",
    "SubscriptionType",
    "Transition",
    "inbound",
    "outbound",
]

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


# A.2.4 (the entity cancels or refuses) and A.3.2 (the contact unsubscribes)
# are one table in the RFC's two appendices: either side ends the contact's
# subscription to the entity, or a request for it.
_FROM_ENDS = """
    "None"                  | no  | no state change
    "None + Pending Out"    | no  | no state change
    "None + Pending In"     | yes | "None"
    "None + Pending Out/In" | yes | "None + Pending Out"
    "To"                    | no  | no state change
    "To + Pending In"       | yes | "To"
    "From"                  | yes | "None"
    "From + Pending Out"    | yes | "None + Pending Out"
    "Both"                  | yes | "To"
"""

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
        "unsubscribed": _FROM_ENDS,
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
        "unsubscribe": _FROM_ENDS,
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
