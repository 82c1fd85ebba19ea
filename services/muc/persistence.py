"""A room's writes to the database: every change a room stores goes through its :class:`RoomStorage`.

A change is stored before the stanza announcing it goes out, so each write
here is awaited by the handler that makes the change; refused, it becomes
the requester's error (see :mod:`services.muc.writes`) and the room, which
has changed nothing yet, goes on as it was. A change of several rows (a
room becoming persistent with its owners, a multi-item admin set) is one
transaction: it lands whole or not at all. History rows are the exception
in form only: they go through the room's archive line
(:mod:`services.muc.archive`), awaited all the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet import defer

from component.errors import StanzaError
from component.storage import StorageError
from component.storage.leases import Lease, LeaseLost
from services.muc.affiliations import Affiliations
from services.muc.config import RoomConfig
from services.muc.history import History
from services.muc.store import AffiliationChange, HistoryRecord
from services.muc.subject import RoomSubject
from services.muc.tenure import moved
from services.muc.writes import refusal

if TYPE_CHECKING:
    from services.muc.service import MucService
    from services.muc.tombstones import Tombstone

__all__ = ["RoomStorage"]

T = TypeVar("T")


class RoomStorage:
    """The rows of one room in the service's store; without a store every write is a no-op."""

    __slots__ = ("_room", "_service", "lease", "node", "stored")

    def __init__(self, service: MucService, node: str, room: str) -> None:
        self._service = service
        self.node = node
        self._room = room
        #: True while the room is in storage (persistent rooms, with a store).
        self.stored = False
        #: The room's lease with ``[cluster]``: every write commits only while it is held.
        self.lease: Lease | None = None

    def track(self, deferred: defer.Deferred[Any]) -> defer.Deferred[Any]:
        """Let the service know of a write in flight (its stop waits for it)."""
        return self._service.track(deferred)

    async def write(self, kind: str, deferred: defer.Deferred[T]) -> T:
        """Wait for a write of *kind* that is about to be announced; a refusal is counted and raised as the requester's error."""
        try:
            result: T = await self.track(deferred)
        except StorageError as error:
            raise self.refused(kind, error) from None
        return result

    def refused(self, kind: str, error: StorageError) -> StanzaError:
        """Count a refused write of *kind* and make it the requester's error.

        A write refused because another instance serves the room now is no
        failure: its requester is told to retry, which reaches that instance.
        """
        if isinstance(error, LeaseLost):
            return moved(self._room)
        self._service.write_failures.failed(self._room, kind, error)
        return refusal(kind, error)

    async def save_config(self, config: RoomConfig, affiliations: Sequence[AffiliationChange] = ()) -> None:
        """Write a new configuration of the stored room, with the affiliation changes it comes with, in one transaction."""
        store = self._service.store
        if store is None:
            return
        await self.write(
            "config",
            store.save_config(
                self.node, config.to_dict(), public=config.public, affiliations=affiliations, lease=self.lease
            ),
        )

    async def store_room(
        self, config: RoomConfig, affiliations: Affiliations, subject: RoomSubject, history: History,
        changes: Sequence[AffiliationChange] = (),
    ) -> None:
        """The room becomes persistent with *config*: write it whole, in one transaction.

        Its configuration, affiliations (then the *changes* to them that come
        with the configuration), subject and history land together or not at
        all: half of it stored would come back after a restart as a room
        without its owners.
        """
        store = self._service.store
        if store is None:
            return
        rows = [
            AffiliationChange(str(jid), standing.affiliation, standing.reason, standing.nick)
            for jid, standing in affiliations.items()
        ]
        rows.extend(changes)
        await self.write("config", store.store_room(
            self.node,
            config.to_dict(),
            public=config.public,
            affiliations=rows,
            subject=(subject.text, subject.nick, subject.seconds),
            history=[entry.record() for entry in history],
            lease=self.lease,
        ))
        self.stored = True

    async def forget(self, kind: str = "config", tombstone: Tombstone | None = None) -> None:
        """The room is no longer persistent (or is destroyed, leaving *tombstone*): drop it, in one
        transaction with the tombstone; *kind* names the change for the error."""
        store = self._service.store
        if store is None or not self.stored:
            return
        await self.write(kind, store.delete_room(self.node, tombstone, lease=self.lease))
        self.stored = False

    async def store_affiliations(self, changes: list[AffiliationChange]) -> None:
        """Write affiliation changes when the room is stored: in one transaction, all or none."""
        store = self._service.store
        if store is not None and self.stored and changes:
            await self.write("affiliations", store.set_affiliations(self.node, changes, lease=self.lease))

    async def store_subject(self, subject: str, nick: str, at: float | None, record: HistoryRecord | None = None) -> bool:
        """Write a new subject, set by *nick* at *at*, when the room is stored, archiving *record* (the message
        that set it) with it; whether it was written."""
        store = self._service.store
        if store is None or not self.stored:
            return False
        await self.write("subject", store.set_subject(self.node, subject, nick, at, record, lease=self.lease))
        return True
