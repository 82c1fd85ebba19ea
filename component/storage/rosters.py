"""Entity rosters and pending subscription requests (RFC 6121), as rows.

One row per (owner, contact): the subscription state, the pending flags and
the roster presentation (name, groups). An inbound subscription request waits
in a table of its own, as the text the service chose to keep for redelivery,
because RFC 6121 keeps such a request even when the contact is not on the
roster. Every write is a single-row upsert or delete, so processes sharing
one database never lose each other's rows.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
from twisted.internet.defer import Deferred

from component.storage.base import Row, Storage, Transaction
from component.storage.migrations import Migrations

SUBSCRIPTIONS = ("none", "to", "from", "both")
"""The values of `RosterRow.subscription`."""

ROSTER_MIGRATIONS = Migrations(
    "rosters",
    steps=[
        [
            "CREATE TABLE roster_items ("
            " owner TEXT NOT NULL,"
            " contact TEXT NOT NULL,"
            " name TEXT,"
            " subscription TEXT NOT NULL DEFAULT 'none'"
            "  CHECK (subscription IN ('none', 'to', 'from', 'both')),"
            " ask_out INTEGER NOT NULL DEFAULT 0,"
            " ask_in INTEGER NOT NULL DEFAULT 0,"
            " groups TEXT NOT NULL DEFAULT '[]',"
            " PRIMARY KEY (owner, contact))",
            "CREATE TABLE roster_requests ("
            " owner TEXT NOT NULL,"
            " contact TEXT NOT NULL,"
            " request TEXT NOT NULL,"
            " PRIMARY KEY (owner, contact))",
        ],
        # Whether the contact waits for an answer is whether its request is
        # kept in roster_requests; the copy in this column was never read.
        ["ALTER TABLE roster_items DROP COLUMN ask_in"],
    ],
)


def _groups(value: Any) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class RosterRow:
    """One contact on one owner's roster."""

    contact: str
    subscription: str = attrs.field(
        default="none", validator=attrs.validators.in_(SUBSCRIPTIONS)
    )
    name: str | None = None
    groups: tuple[str, ...] = attrs.field(default=(), converter=_groups)
    ask_out: bool = False
    """We asked the contact for a subscription and wait for the answer."""


_COLUMNS = "contact, name, subscription, ask_out, groups"


def _row(row: Row) -> RosterRow:
    contact, name, subscription, ask_out, groups = row
    return RosterRow(
        contact=contact,
        name=name,
        subscription=subscription,
        ask_out=bool(ask_out),
        groups=json.loads(groups),
    )


def _rows(rows: list[Row]) -> dict[str, RosterRow]:
    return {item.contact: item for item in map(_row, rows)}


_UPSERT_ITEM = (
    f"INSERT INTO roster_items (owner, {_COLUMNS})"
    " VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (owner, contact) DO UPDATE SET"
    " name = excluded.name, subscription = excluded.subscription,"
    " ask_out = excluded.ask_out,"
    " groups = excluded.groups"
)
_UPSERT_REQUEST = (
    "INSERT INTO roster_requests (owner, contact, request) VALUES (?, ?, ?)"
    " ON CONFLICT (owner, contact) DO UPDATE SET request = excluded.request"
)


def _item_params(owner: str, row: RosterRow) -> tuple[str | bool | None, ...]:
    return (
        owner,
        row.contact,
        row.name,
        row.subscription,
        row.ask_out,
        json.dumps(list(row.groups)),
    )


def _write_contact(
    txn: Transaction, owner: str, contact: str, row: RosterRow | None, request: str | None
) -> None:
    if row is None:
        txn.execute("DELETE FROM roster_items WHERE owner = ? AND contact = ?", (owner, contact))
    else:
        txn.execute(_UPSERT_ITEM, _item_params(owner, row))
    if request is None:
        txn.execute("DELETE FROM roster_requests WHERE owner = ? AND contact = ?", (owner, contact))
    else:
        txn.execute(_UPSERT_REQUEST, (owner, contact, request))


@attrs.define
class RosterStore:
    """The rosters of every entity a service hosts, on a `Storage`.

    Open the storage with `ROSTER_MIGRATIONS` among its migrations.
    """

    storage: Storage

    def load(self, owner: str) -> Deferred[dict[str, RosterRow]]:
        """*owner*'s roster, keyed by contact."""
        d = self.storage.fetchall(
            f"SELECT {_COLUMNS} FROM roster_items WHERE owner = ? ORDER BY contact",
            (owner,),
        )
        return d.addCallback(_rows)

    def requests(self, owner: str) -> Deferred[dict[str, str]]:
        """The pending subscription requests to *owner*, keyed by contact."""
        d = self.storage.fetchall(
            "SELECT contact, request FROM roster_requests WHERE owner = ?"
            " ORDER BY contact",
            (owner,),
        )
        return d.addCallback(lambda rows: {contact: text for contact, text in rows})

    def write(
        self, owner: str, contact: str, row: RosterRow | None, request: str | None
    ) -> Deferred[None]:
        """Store everything *owner* knows of *contact* in one transaction.

        *row* replaces the roster row (None: *contact* is not on the roster)
        and *request* the pending request (None: there is none), so a crash
        never leaves a subscription approved on one side and still pending on
        the other.
        """
        return self.storage.transaction(_write_contact, owner, contact, row, request)
