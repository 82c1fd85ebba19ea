"""A room's live state as rows: who is in it, from which clients, its subject and its lock.

A single instance keeps its rooms' occupants in memory only. With live state
kept (the MUC's ``live_state``, always on with ``[cluster]``) every change of
them is written here before the stanza that announces it goes out, so that
the instance that serves the room next (another one that took it over, or
this one restarted after a crash) loads the room as its occupants last saw
it and carries on: they stay in the room without entering again.

Three tables, written by :func:`write_changes` in one transaction a stanza:

``muc_live_rooms``
    One row per room in use: its subject (who set it, when), the time its
    lock ends (a new room nobody configured yet), and for a room that is not
    stored (a temporary room) its configuration and affiliations, which a
    stored room keeps in ``muc_rooms`` and ``muc_affiliations``.
``muc_live_occupants``
    One row per occupant: nick, role, the session shown, its place in the
    room's order.
``muc_live_sessions``
    One row per client of an occupant: its full JID and its last presence
    (the serialised template the room keeps, without addresses).

Voice requests need no row: a request goes to the moderators at once and the
answer carries everything it needs (as in Prosody), so nothing is pending.
The :class:`LiveTracker` of a room turns what changed in memory into the rows
to write; :func:`load_live` reads them back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from component.jid import parse_stored_jid
from component.storage import Migrations, Row, Sql, Transaction
from services.muc.occupants import Occupant

__all__ = [
    "LIVE_MIGRATIONS", "LiveChanges", "LiveOccupant", "LiveRoom", "LiveState", "LiveTracker",
    "forget_all_live", "forget_live", "live_occupant", "load_live", "restore_occupant", "write_changes",
]

LIVE_MIGRATIONS = Migrations(
    "muc_live",
    steps=[
        [
            Sql(
                sqlite="CREATE TABLE muc_live_rooms ("
                " node TEXT PRIMARY KEY, config TEXT, affiliations TEXT,"
                " subject TEXT NOT NULL DEFAULT '', subject_from TEXT NOT NULL DEFAULT '',"
                " subject_at REAL, locked_until REAL)",
                postgresql="CREATE TABLE muc_live_rooms ("
                " node TEXT PRIMARY KEY, config TEXT, affiliations TEXT,"
                " subject TEXT NOT NULL DEFAULT '', subject_from TEXT NOT NULL DEFAULT '',"
                " subject_at DOUBLE PRECISION, locked_until DOUBLE PRECISION)",
            ),
            "CREATE TABLE muc_live_occupants ("
            " room TEXT NOT NULL, nick TEXT NOT NULL, role TEXT NOT NULL, main TEXT NOT NULL,"
            " position BIGINT NOT NULL, PRIMARY KEY (room, nick))",
            "CREATE TABLE muc_live_sessions ("
            " room TEXT NOT NULL, jid TEXT NOT NULL, nick TEXT NOT NULL, presence TEXT NOT NULL,"
            " position INTEGER NOT NULL, PRIMARY KEY (room, jid))",
            "CREATE INDEX muc_live_sessions_nick ON muc_live_sessions (room, nick)",
        ],
    ],
)

Affiliated = tuple[str, str, str, "str | None"]
"""One affiliation of a room that is not stored: (bare JID, affiliation, reason, nick)."""


@attrs.frozen
class LiveRoom:
    """The row of a room in use.

    *config* and *affiliations* are None for a stored room (whose own rows
    hold them); *locked_until* is None once the room is configured.
    """

    subject: str = ""
    subject_from: str = ""
    subject_at: float | None = None
    locked_until: float | None = None
    config: dict[str, Any] | None = None
    affiliations: tuple[Affiliated, ...] | None = None


@attrs.frozen
class LiveOccupant:
    """One occupant as stored: *sessions* are (full JID, presence template) in the order they joined."""

    nick: str
    role: str
    main: str
    position: int
    sessions: tuple[tuple[str, bytes], ...]


def live_occupant(occupant: Occupant) -> LiveOccupant:
    """An occupant in memory as its rows hold it (its place is the tracker's to give)."""
    return LiveOccupant(
        occupant.nick, occupant.role, str(occupant.main), 0,
        tuple((str(real), template) for real, template in occupant.sessions.items()),
    )


def restore_occupant(stored: LiveOccupant, room: str) -> Occupant | None:
    """The occupant its rows describe; None (logged) when none of its sessions is a JID any more."""
    where = {"room": room, "nick": stored.nick}
    sessions = [
        (real, template)
        for real, template in (
            (parse_stored_jid(jid, table="muc_live_sessions", row=where), template) for jid, template in stored.sessions
        )
        if real is not None
    ]
    if not sessions:
        return None
    (first, template), *others = sessions
    occupant = Occupant(stored.nick, first, stored.role, template)
    for real, template in others:
        occupant.set_session(real, template)
    main = next((real for real, _ in sessions if str(real) == stored.main), None)
    occupant.main = main if main is not None else sessions[-1][0]
    occupant.changed()
    return occupant


@attrs.frozen
class LiveState:
    """A room's live state as read back: its row (None when it has none) and its occupants in order."""

    room: LiveRoom | None
    occupants: tuple[LiveOccupant, ...] = ()


@attrs.frozen
class LiveChanges:
    """What one stanza changed: occupants to write whole, nicks gone, and the room's row when it changed.

    *room* is written when *room_changed*: a row, or None to delete it.
    """

    occupants: tuple[LiveOccupant, ...] = ()
    gone: tuple[str, ...] = ()
    room_changed: bool = False
    room: LiveRoom | None = None

    def __bool__(self) -> bool:
        return bool(self.occupants or self.gone or self.room_changed)


class LiveTracker:
    """What of one room's live state is stored, so that only what changed is written.

    It remembers each stored occupant's place (the room's order of entry)
    and the room row last written.
    """

    __slots__ = ("_next", "_positions", "stored_room")

    def __init__(self, state: LiveState | None = None) -> None:
        self._positions: dict[str, int] = {}
        #: The room row as last written (None: the room has no row).
        self.stored_room: LiveRoom | None = None
        self._next = 1
        if state is not None:
            self.stored_room = state.room
            for occupant in state.occupants:
                self._positions[occupant.nick] = occupant.position
            self._next = max(self._positions.values(), default=0) + 1

    def changes(self, occupants: Iterable[tuple[str, LiveOccupant | None]], room: LiveRoom | None) -> LiveChanges:
        """The rows to write for *occupants* (nick → occupant now, None once gone) and the room row now.

        Call :meth:`written` with the result once it is stored.
        """
        upserts: list[LiveOccupant] = []
        gone: list[str] = []
        for nick, occupant in occupants:
            if occupant is None:
                if nick in self._positions:
                    gone.append(nick)
                continue
            position = self._positions.get(nick)
            if position is None:
                position = self._next
                self._next += 1
            upserts.append(attrs.evolve(occupant, position=position))
        return LiveChanges(tuple(upserts), tuple(gone), room != self.stored_room, room)

    def written(self, changes: LiveChanges) -> None:
        """*changes* are stored: they are what the next changes are measured against."""
        for nick in changes.gone:
            self._positions.pop(nick, None)
        for occupant in changes.occupants:
            self._positions[occupant.nick] = occupant.position
        if changes.room_changed:
            self.stored_room = changes.room


def _room_values(node: str, room: LiveRoom) -> tuple[Any, ...]:
    config = None if room.config is None else json.dumps(room.config, sort_keys=True, separators=(",", ":"))
    affiliations = None if room.affiliations is None else json.dumps([list(a) for a in room.affiliations])
    return (node, config, affiliations, room.subject, room.subject_from, room.subject_at, room.locked_until)


def write_changes(txn: Transaction, node: str, changes: LiveChanges) -> None:
    """Store one stanza's *changes* to the room *node*'s live state, within *txn*."""
    touched = [*changes.gone, *(occupant.nick for occupant in changes.occupants)]
    for nick in touched:
        # A session may move between occupants in one change: every old row goes before any new one.
        txn.execute("DELETE FROM muc_live_sessions WHERE room = ? AND nick = ?", (node, nick))
    for nick in changes.gone:
        txn.execute("DELETE FROM muc_live_occupants WHERE room = ? AND nick = ?", (node, nick))
    for occupant in changes.occupants:
        txn.execute(
            "INSERT INTO muc_live_occupants (room, nick, role, main, position) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (room, nick) DO UPDATE SET role = excluded.role, main = excluded.main,"
            " position = excluded.position",
            (node, occupant.nick, occupant.role, occupant.main, occupant.position),
        )
        for index, (jid, presence) in enumerate(occupant.sessions):
            txn.execute(
                "INSERT INTO muc_live_sessions (room, jid, nick, presence, position) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (room, jid) DO UPDATE SET nick = excluded.nick, presence = excluded.presence,"
                " position = excluded.position",
                (node, jid, occupant.nick, presence.decode("utf-8"), index),
            )
    if not changes.room_changed:
        return
    if changes.room is None:
        txn.execute("DELETE FROM muc_live_rooms WHERE node = ?", (node,))
        return
    txn.execute(
        "INSERT INTO muc_live_rooms (node, config, affiliations, subject, subject_from, subject_at, locked_until)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (node) DO UPDATE SET config = excluded.config, affiliations = excluded.affiliations,"
        " subject = excluded.subject, subject_from = excluded.subject_from, subject_at = excluded.subject_at,"
        " locked_until = excluded.locked_until",
        _room_values(node, changes.room),
    )


def _live_room(row: Row) -> LiveRoom:
    config, affiliations, subject, subject_from, subject_at, locked_until = row
    return LiveRoom(
        subject=str(subject),
        subject_from=str(subject_from),
        subject_at=None if subject_at is None else float(subject_at),
        locked_until=None if locked_until is None else float(locked_until),
        config=None if config is None else json.loads(config),
        affiliations=None if affiliations is None else tuple(
            (str(jid), str(affiliation), str(reason), None if nick is None else str(nick))
            for jid, affiliation, reason, nick in json.loads(affiliations)
        ),
    )


def load_live(txn: Transaction, node: str) -> LiveState:
    """The room *node*'s live state, occupants in the order they entered and sessions in the order they joined."""
    row = txn.fetchone(
        "SELECT config, affiliations, subject, subject_from, subject_at, locked_until"
        " FROM muc_live_rooms WHERE node = ?",
        (node,),
    )
    sessions: dict[str, list[tuple[str, bytes]]] = {}
    for nick, jid, presence in txn.fetchall(
        "SELECT nick, jid, presence FROM muc_live_sessions WHERE room = ? ORDER BY nick, position", (node,)
    ):
        sessions.setdefault(str(nick), []).append((str(jid), str(presence).encode("utf-8")))
    occupants = [
        LiveOccupant(str(nick), str(role), str(main), int(position), tuple(sessions.get(str(nick), ())))
        for nick, role, main, position in txn.fetchall(
            "SELECT nick, role, main, position FROM muc_live_occupants WHERE room = ? ORDER BY position", (node,)
        )
    ]
    # An occupant without a session cannot be spoken to: it is not one.
    return LiveState(None if row is None else _live_room(row), tuple(o for o in occupants if o.sessions))


def forget_live(txn: Transaction, node: str) -> None:
    """Delete the room *node*'s live state (it was destroyed, or is gone with its last occupant)."""
    for table, column in (("muc_live_sessions", "room"), ("muc_live_occupants", "room"), ("muc_live_rooms", "node")):
        txn.execute(f"DELETE FROM {table} WHERE {column} = ?", (node,))


def forget_all_live(txn: Transaction, nodes: Sequence[str] | None = None) -> None:
    """Delete the live state of *nodes*, or of every room (a single instance told its occupants it stops)."""
    if nodes is not None:
        for node in nodes:
            forget_live(txn, node)
        return
    for table in ("muc_live_sessions", "muc_live_occupants", "muc_live_rooms"):
        txn.execute(f"DELETE FROM {table}")
