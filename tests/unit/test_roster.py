"""The RFC 6121 subscription state machine, row by row, and an entity's roster with its storage.

The expected tables below are copied from RFC 6121 Appendix A.2 (outbound)
and A.3 (inbound), one tuple per row, independently of the tables in
``component.subscription``: (existing state, routed or delivered, new state or
None for "no state change", auto-reply).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer

from component.jid import parse_jid
from component.roster import Roster, RosterItem, RosterView
from component.storage import StorageError, open_storage
from component.storage.migrations import Migrations
from component.storage.rosters import ROSTER_MIGRATIONS, RosterRow, RosterStore
from component.subscription import INBOUND, OUTBOUND, STATES, Subscription, inbound, outbound
from component.testing import LogCapture

N = "None"
NO = "None + Pending Out"
NI = "None + Pending In"
NOI = "None + Pending Out/In"
T = "To"
TI = "To + Pending In"
F = "From"
FO = "From + Pending Out"
B = "Both"

Row = tuple[str, bool, str | None, str | None]

# RFC 6121 Appendix A.2: server processing of outbound subscription stanzas (ROUTE?).
APPENDIX_A2: dict[str, list[Row]] = {
    # A.2.1  Subscribe
    "subscribe": [
        (N, True, NO, None),
        (NO, True, None, None),
        (NI, True, NOI, None),
        (NOI, True, None, None),
        (T, True, None, None),
        (TI, True, None, None),
        (F, True, FO, None),
        (FO, True, None, None),
        (B, True, None, None),
    ],
    # A.2.2  Unsubscribe
    "unsubscribe": [
        (N, True, None, None),
        (NO, True, N, None),
        (NI, True, None, None),
        (NOI, True, NI, None),
        (T, True, N, None),
        (TI, True, NI, None),
        (F, True, None, None),
        (FO, True, F, None),
        (B, True, F, None),
    ],
    # A.2.3  Subscribed
    "subscribed": [
        (N, False, None, None),
        (NO, False, None, None),
        (NI, True, F, None),
        (NOI, True, FO, None),
        (T, False, None, None),
        (TI, True, B, None),
        (F, False, None, None),
        (FO, False, None, None),
        (B, False, None, None),
    ],
    # A.2.4  Unsubscribed
    "unsubscribed": [
        (N, False, None, None),
        (NO, False, None, None),
        (NI, True, N, None),
        (NOI, True, NO, None),
        (T, False, None, None),
        (TI, True, T, None),
        (F, True, N, None),
        (FO, True, NO, None),
        (B, True, T, None),
    ],
}

# RFC 6121 Appendix A.3: server processing of inbound subscription stanzas (DELIVER?).
APPENDIX_A3: dict[str, list[Row]] = {
    # A.3.1  Subscribe ("no *": the server auto-replies "subscribed")
    "subscribe": [
        (N, True, NI, None),
        (NO, True, NOI, None),
        (NI, False, None, None),
        (NOI, False, None, None),
        (T, True, TI, None),
        (TI, False, None, None),
        (F, False, None, "subscribed"),
        (FO, False, None, "subscribed"),
        (B, False, None, "subscribed"),
    ],
    # A.3.2  Unsubscribe
    "unsubscribe": [
        (N, False, None, None),
        (NO, False, None, None),
        (NI, True, N, None),
        (NOI, True, NO, None),
        (T, False, None, None),
        (TI, True, T, None),
        (F, True, N, None),
        (FO, True, NO, None),
        (B, True, T, None),
    ],
    # A.3.3  Subscribed
    "subscribed": [
        (N, False, None, None),
        (NO, True, T, None),
        (NI, False, None, None),
        (NOI, True, TI, None),
        (T, False, None, None),
        (TI, False, None, None),
        (F, False, None, None),
        (FO, True, B, None),
        (B, False, None, None),
    ],
    # A.3.4  Unsubscribed
    "unsubscribed": [
        (N, False, None, None),
        (NO, True, N, None),
        (NI, False, None, None),
        (NOI, True, NI, None),
        (T, True, N, None),
        (TI, True, NI, None),
        (F, False, None, None),
        (FO, True, F, None),
        (B, True, F, None),
    ],
}

_SECTIONS = {"subscribe": 1, "unsubscribe": 2, "subscribed": 3, "unsubscribed": 4}


def _rows(appendix: str, tables: dict[str, list[Row]]) -> list[object]:
    return [
        pytest.param(kind, *row, id=f"A.{appendix}.{_SECTIONS[kind]} {kind} in {row[0]}")
        for kind, rows in tables.items()
        for row in rows
    ]


@pytest.mark.parametrize(("kind", "existing", "routed", "new", "reply"), _rows("2", APPENDIX_A2))
def test_outbound_row(kind: str, existing: str, routed: bool, new: str | None, reply: str | None) -> None:
    state = Subscription.named(existing)
    transition = outbound(state, kind)
    assert transition.passes is routed
    assert transition.state == (state if new is None else Subscription.named(new))
    assert transition.auto_reply == reply


@pytest.mark.parametrize(("kind", "existing", "delivered", "new", "reply"), _rows("3", APPENDIX_A3))
def test_inbound_row(kind: str, existing: str, delivered: bool, new: str | None, reply: str | None) -> None:
    state = Subscription.named(existing)
    transition = inbound(state, kind)
    assert transition.passes is delivered
    assert transition.state == (state if new is None else Subscription.named(new))
    assert transition.auto_reply == reply


def test_the_tables_cover_every_state_and_type_once() -> None:
    assert len(STATES) == len(set(STATES)) == 9
    for table in (INBOUND, OUTBOUND):
        assert set(table) == {(state, kind) for state in STATES for kind in _SECTIONS}
    with pytest.raises(ValueError):
        inbound(STATES[0], "probe")
    with pytest.raises(ValueError):
        outbound(STATES[0], "available")


def test_states_read_and_print_as_in_the_rfc() -> None:
    for name in (N, NO, NI, NOI, T, TI, F, FO, B):
        assert str(Subscription.named(name)) == name
    assert Subscription.named('"To + Pending In"') == Subscription("to", pending_in=True)
    with pytest.raises(ValueError):
        Subscription.named("Both + Pending In")
    with pytest.raises(ValueError):
        Subscription("both", pending_out=True)
    with pytest.raises(ValueError):
        Subscription("from", pending_in=True)
    # Stored values that name no defined state lose the flag that makes them invalid.
    assert Subscription.of("both", pending_out=True, pending_in=True) == Subscription("both")
    assert Subscription.of("to", pending_out=True, pending_in=True) == Subscription("to", pending_in=True)
    assert Subscription.of("bogus") == Subscription()
    both = Subscription("both")
    assert both.has_to and both.has_from and not both.is_none
    assert Subscription("to").has_to and not Subscription("to").has_from


# -- the roster of one entity ---------------------------------------------------

BOT = parse_jid("news@notices.example.org")
JULIET = parse_jid("juliet@example.com")
ROMEO = parse_jid("romeo@example.net")


def test_a_request_from_a_stranger_waits_beside_the_roster() -> None:
    roster = Roster.in_memory(BOT)
    change = roster.receive(parse_jid("juliet@example.com/balcony"), "subscribe", "<presence/>")
    assert (change.contact, change.old, change.new, change.passes) == (JULIET, Subscription(), Subscription.named(NI), True)
    assert JULIET not in roster
    assert roster.state(JULIET) == Subscription.named(NI)
    assert roster.requests() == {JULIET: "<presence/>"}
    # Approving puts the contact on the roster and ends the request.
    change = roster.send(JULIET, "subscribed")
    assert change.passes and change.new == Subscription("from")
    assert roster[JULIET] == RosterItem(JULIET, Subscription("from"))
    assert roster.requests() == {}
    assert roster.subscribers() == [JULIET]
    assert roster.subscriptions() == []


def test_a_request_withdrawn_leaves_nothing() -> None:
    roster = Roster.in_memory(BOT)
    roster.receive(JULIET, "subscribe", "<presence/>")
    change = roster.receive(JULIET, "unsubscribe")
    assert change.passes and change.new == Subscription()
    assert len(roster) == 0 and roster.requests() == {}


def test_the_entity_subscribing_adds_an_item_and_the_item_stays_at_none() -> None:
    roster = Roster.in_memory(BOT)
    roster.send(ROMEO, "subscribe")
    assert roster[ROMEO].state == Subscription.named(NO)
    roster.receive(ROMEO, "subscribed")
    assert roster.subscriptions() == [ROMEO]
    roster.receive(ROMEO, "unsubscribed")
    assert roster[ROMEO].subscription == "none"
    assert roster.remove(ROMEO) == Subscription()
    assert ROMEO not in roster


def test_items_keep_name_and_groups_through_changes() -> None:
    roster = Roster.in_memory(BOT)
    roster.set_item(ROMEO, "Romeo", ("Montagues",))
    roster.send(ROMEO, "subscribe")
    assert roster[ROMEO] == RosterItem(ROMEO, Subscription.named(NO), "Romeo", ("Montagues",))


def test_the_view_reads_but_does_not_change() -> None:
    roster = Roster.in_memory(BOT)
    roster.receive(JULIET, "subscribe", "x")
    roster.send(ROMEO, "subscribe")
    view = RosterView(roster)
    assert list(view) == [ROMEO] and ROMEO in view and len(view) == 1
    assert view.requests() == [JULIET]
    assert view.state(JULIET) == Subscription.named(NI)
    assert not hasattr(view, "send") and not hasattr(view, "receive")


class SlowStore:
    """A store whose writes finish when the test says so."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str, RosterRow | None, str | None]] = []
        self.pending: list[defer.Deferred[None]] = []

    def write(self, owner: str, contact: str, row: RosterRow | None, request: str | None) -> defer.Deferred[None]:
        self.writes.append((owner, contact, row, request))
        done: defer.Deferred[None] = defer.Deferred()
        self.pending.append(done)
        return done


def test_writes_run_one_at_a_time_and_steps_wait_for_them() -> None:
    store = SlowStore()
    roster = Roster(BOT, store)  # type: ignore[arg-type]
    steps: list[str] = []
    roster.receive(JULIET, "subscribe", "<presence type='subscribe'/>")
    roster.after_writes(lambda: steps.append("request acknowledged"))
    roster.send(JULIET, "subscribed")
    roster.after_writes(lambda: steps.append("subscribed sent"))
    # The state moved at once; the first write runs, the second waits for it.
    assert roster.state(JULIET) == Subscription("from")
    assert len(store.writes) == 1 and steps == []
    assert store.writes[0] == (str(BOT), str(JULIET), None, "<presence type='subscribe'/>")
    store.pending[0].callback(None)
    assert steps == ["request acknowledged"] and len(store.writes) == 2
    assert store.writes[1] == (str(BOT), str(JULIET), RosterRow(str(JULIET), "from"), None)
    assert roster.writing
    store.pending[1].callback(None)
    assert steps == ["request acknowledged", "subscribed sent"]
    assert not roster.writing


def test_what_a_failed_write_would_announce_is_not_sent_until_a_write_succeeds() -> None:
    store = SlowStore()
    roster = Roster(BOT, store)  # type: ignore[arg-type]
    steps: list[str] = []
    roster.send(ROMEO, "subscribe")
    roster.after_writes(lambda: steps.append("announce romeo"))
    written = roster.written()
    store.pending[0].errback(RuntimeError("disk full"))
    assert steps == []
    failures: list[Any] = []
    written.addErrback(failures.append)
    assert failures and failures[0].check(StorageError)
    roster.send(JULIET, "subscribe")
    roster.after_writes(lambda: steps.append("announce juliet"))
    store.pending[1].callback(None)
    assert steps == ["announce juliet"]
    assert roster.written().called


def test_drain_waits_for_the_writes_and_does_not_fail_when_one_did() -> None:
    store = SlowStore()
    roster = Roster(BOT, store)  # type: ignore[arg-type]
    roster.send(ROMEO, "subscribe")
    roster.send(JULIET, "subscribe")
    drained: list[None] = []
    roster.drain().addCallback(drained.append)
    store.pending[0].errback(RuntimeError("disk full"))
    assert drained == []
    store.pending[1].callback(None)
    assert drained == [None] and not roster.writing


def test_unchanged_state_writes_nothing() -> None:
    store = SlowStore()
    roster = Roster(BOT, store)  # type: ignore[arg-type]
    roster.receive(JULIET, "subscribed")  # A.3.3 "None": not delivered, no change
    roster.send(JULIET, "unsubscribed")  # A.2.4 "None": not routed, no change
    assert store.writes == []


@pytest_twisted.ensureDeferred
async def test_rosters_and_requests_survive_a_crash(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rosters.db'}"
    storage = await open_storage(url, migrations=[ROSTER_MIGRATIONS])
    roster = await Roster.load(BOT, RosterStore(storage))
    roster.receive(JULIET, "subscribe", "<presence from='juliet@example.com' type='subscribe'/>")
    roster.send(JULIET, "subscribed")
    roster.send(JULIET, "subscribe")
    roster.receive(ROMEO, "subscribe", "<presence from='romeo@example.net' type='subscribe'/>")
    roster.set_item(parse_jid("nurse@example.com"), "Nurse", ("Capulets",))
    await roster.written()
    # No close: the process dies here. A new one opens the same file.
    again = await open_storage(url, migrations=[ROSTER_MIGRATIONS])
    reloaded = await Roster.load(BOT, RosterStore(again))
    assert reloaded.state(JULIET) == Subscription.named(FO)
    assert reloaded.state(ROMEO) == Subscription.named(NI)
    assert ROMEO not in reloaded
    assert reloaded.requests() == {ROMEO: "<presence from='romeo@example.net' type='subscribe'/>"}
    assert reloaded[parse_jid("nurse@example.com")].groups == ("Capulets",)
    reloaded.remove(ROMEO)
    await reloaded.written()
    assert await RosterStore(again).requests(str(BOT)) == {}
    await again.close()
    await storage.close()


@pytest_twisted.ensureDeferred
async def test_loading_heals_a_request_left_beside_an_approved_subscription(tmp_path: Path) -> None:
    storage = await open_storage(f"sqlite:///{tmp_path / 'rosters.db'}", migrations=[ROSTER_MIGRATIONS])
    store = RosterStore(storage)
    await store.write(str(BOT), str(JULIET), RosterRow(str(JULIET), "from"), "<presence/>")
    await store.write(str(BOT), str(ROMEO), RosterRow(str(ROMEO), "both", ask_out=True), None)
    await store.write(str(BOT), "not a jid@", RosterRow("not a jid@", "both"), None)
    roster = await Roster.load(BOT, store)
    assert roster.state(JULIET) == Subscription("from")
    assert roster.requests() == {}
    assert roster.state(ROMEO) == Subscription("both")
    assert len(roster) == 2
    await storage.close()


@pytest_twisted.ensureDeferred
async def test_a_stored_contact_that_is_not_a_jid_is_skipped_with_a_warning_naming_its_row(tmp_path: Path) -> None:
    storage = await open_storage(f"sqlite:///{tmp_path / 'rosters.db'}", migrations=[ROSTER_MIGRATIONS])
    store = RosterStore(storage)
    await store.write(str(BOT), str(JULIET), RosterRow(str(JULIET), "both"), None)
    await store.write(str(BOT), "romeo@@example.net", RosterRow("romeo@@example.net", "both"), None)
    await store.write(str(BOT), "nurse@exa mple.com", None, "<presence/>")
    with LogCapture() as logs:
        roster = await Roster.load(BOT, store)
    assert list(roster) == [JULIET] and roster.requests() == {}
    assert [line for line in logs.messages() if "skipped" in line] == [
        f"roster_items: skipped the row (owner='{BOT}', contact='romeo@@example.net'): "
        "'romeo@@example.net' is not a valid JID: Invalid character '@'",
        f"roster_requests: skipped the row (owner='{BOT}', contact='nurse@exa mple.com'): "
        "'nurse@exa mple.com' is not a valid JID: Invalid character ' '",
    ]
    await storage.close()


@pytest_twisted.ensureDeferred
async def test_store_write_is_one_transaction(tmp_path: Path) -> None:
    storage = await open_storage(f"sqlite:///{tmp_path / 'rosters.db'}", migrations=[ROSTER_MIGRATIONS])
    store = RosterStore(storage)
    owner, contact = str(BOT), str(JULIET)
    await store.write(owner, contact, RosterRow(contact, "to"), "<presence/>")
    assert await store.load(owner) == {contact: RosterRow(contact, "to")}
    assert await store.requests(owner) == {contact: "<presence/>"}
    await store.write(owner, contact, None, None)
    assert await store.load(owner) == {}
    assert await store.requests(owner) == {}
    await storage.close()


@pytest_twisted.ensureDeferred
async def test_a_roster_stored_before_the_ask_in_column_went_loads_as_it_was(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rosters.db'}"
    first = Migrations("rosters", ROSTER_MIGRATIONS.steps[:1])
    old = await open_storage(url, migrations=[first])
    await old.execute(
        "INSERT INTO roster_items (owner, contact, subscription, ask_out, ask_in, groups)"
        " VALUES (?, ?, 'to', 0, 1, '[\"Capulets\"]')",
        (str(BOT), str(JULIET)),
    )
    await old.execute("INSERT INTO roster_requests (owner, contact, request) VALUES (?, ?, '<presence/>')",
                      (str(BOT), str(JULIET)))
    await old.close()
    storage = await open_storage(url, migrations=[ROSTER_MIGRATIONS])
    roster = await Roster.load(BOT, RosterStore(storage))
    assert roster.state(JULIET) == Subscription.named(TI)
    assert roster[JULIET].groups == ("Capulets",)
    assert roster.requests() == {JULIET: "<presence/>"}
    columns = [row[1] for row in await storage.fetchall("PRAGMA table_info(roster_items)")]
    assert "ask_in" not in columns
    await storage.close()


def test_the_subscription_tables_are_pure_values_that_import_no_storage() -> None:
    import ast

    import component.subscription as tables

    tree = ast.parse(Path(tables.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert imported <= {"__future__", "typing", "attrs", "component.jid"}
