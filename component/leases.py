"""One owner per key across instances: leases in PostgreSQL, renewed on a timer, fenced by epoch.

An instance serves a key (a room, say) only while its `LeaseManager` holds
the key's lease. Every write that depends on the tenure goes through
`LeaseManager.fenced`, which checks the owner and epoch inside the write's
own transaction, so a stale instance (paused, partitioned, or simply too
late) cannot write: its write fails with `LeaseLost` and changes nothing.

The holder is told to drop a key (`LeaseHolder.lease_lost`) when

- another instance takes it: a NOTIFY on the lease channel, sent by the
  takeover's own transaction, reaches the previous owner;
- a renewal finds it no longer held with its epoch;
- the local deadline passes before a renewal succeeded. The deadline is one
  renewal interval short of the database's expiry, measured from when the
  renewal was sent, so an instance that cannot renew (a lost database, a
  SIGSTOP) lets go before anyone else may take the key.

Dropping a key is silent: the manager sends nothing, and the holder must not
announce anything either, since the key's new owner speaks for it now.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from component.storage.base import StorageError, Transaction
from component.storage.leases import (
    LEASE_CHANNEL,
    Lease,
    LeaseLost,
    Taken,
    acquire,
    fence,
    release,
    renew,
    sweep,
)

__all__ = ["Lease", "LeaseHolder", "LeaseLost", "LeaseManager", "LeaseStorage", "Leases", "Listening"]

log = Logger()

P = ParamSpec("P")
T = TypeVar("T")


class Listening(Protocol):
    """A LISTEN in progress."""

    ready: Deferred[None]

    def stop(self) -> Deferred[None]:
        """End it."""


class LeaseStorage(Protocol):
    """What leases need of a storage: transactions and LISTEN (`PostgresStorage` has both)."""

    def transaction(
        self, fn: Callable[Concatenate[Transaction, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> Deferred[T]:
        """Run *fn* in one transaction off the reactor thread."""

    def listen(self, channel: str, deliver: Callable[[str], None]) -> Listening:
        """Hand every NOTIFY payload on *channel* to *deliver*."""


class LeaseHolder(Protocol):
    """The code that serves the keys: told when it must stop serving one."""

    def lease_lost(self, lease: Lease) -> None:
        """Stop serving *lease*'s key at once, unload it, and announce nothing."""


class Leases(Protocol):
    """The seam a service uses: take keys, write under them, give them back."""

    owner: str

    def acquire(self, key: str, *, take: bool = False) -> Deferred[Lease | None]:
        """The lease on *key* if it was free or expired (or always, with *take*); None if another holds it."""

    def held(self, key: str) -> Lease | None:
        """The lease held on *key*, if any."""

    def fenced(
        self, lease: Lease, fn: Callable[Concatenate[Transaction, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> Deferred[T]:
        """Run *fn* in a transaction that commits only while *lease* is held; else fail with `LeaseLost`."""

    def release(self, key: str) -> Deferred[None]:
        """Give *key* up, so that another instance can take it at once."""


def _fenced(
    txn: Transaction, lease: Lease, fn: Callable[Concatenate[Transaction, P], T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    fence(txn, lease)
    return fn(txn, *args, **kwargs)


#: Lease lives a row stays expired before it is deleted, and between two sweeps.
SWEEP_LIVES = 10
#: Rows one sweep's transaction deletes at most; a sweep goes on until one deletes fewer.
SWEEP_BATCH = 1000


class LeaseManager:
    """The `Leases` of one instance: *instance* names it in the table and logs; *seconds* is a lease's life."""

    def __init__(
        self,
        storage: LeaseStorage,
        instance: str,
        seconds: float,
        holder: LeaseHolder,
        clock: IReactorTime,
    ) -> None:
        self._storage = storage
        # A restarted instance must not renew what its previous run held, so
        # each run is an owner of its own.
        self.owner = f"{instance}/{secrets.token_hex(4)}"
        self.seconds = seconds
        self.interval = seconds / 3
        self._holder = holder
        self._clock = clock
        self._leases: dict[str, Lease] = {}
        self._deadlines: dict[str, float] = {}
        self._loop = LoopingCall(self._renew)
        self._loop.clock = clock
        # Every instance sweeps: the rows are the same for all, and a delete skips what another holds locked.
        self._sweeping = LoopingCall(self.sweep)
        self._sweeping.clock = clock
        self._listening: Listening | None = None
        self._renewing: Deferred[None] = succeed(None)
        self._sweep_over: Deferred[None] = succeed(None)
        self._stopping = False

    async def start(self) -> None:
        """LISTEN for takeovers and start renewing; returns once the LISTEN is in place."""
        self._listening = self._storage.listen(LEASE_CHANNEL, self._notice)
        await self._listening.ready
        self._loop.start(self.interval, now=False)
        self._sweeping.start(self.seconds * SWEEP_LIVES, now=False)

    async def stop(self) -> None:
        """Stop renewing and listening, and release every lease held."""
        if self._loop.running:
            self._loop.stop()
        if self._sweeping.running:
            self._sweeping.stop()
        # A sweep under way ends after its current batch, and a renewal under way ends,
        # before the storage they write to closes.
        self._stopping = True
        await self._sweep_over
        await self.renewed()
        for key in list(self._leases):
            await self.release(key)
        if self._listening is not None:
            await self._listening.stop()
            self._listening = None

    def held(self, key: str) -> Lease | None:
        """The lease held on *key*, if any: one past its local deadline is let go here and is not."""
        lease = self._leases.get(key)
        if lease is not None and self._deadlines[key] <= self._clock.seconds():
            # Woken from a pause before the renewal timer: the deadline is past.
            self._lapse(lease)
            return None
        return lease

    def keys(self) -> frozenset[str]:
        """Every key held."""
        return frozenset(self._leases)

    async def _acquire(self, key: str, take: bool) -> Lease | None:
        sent = self._clock.seconds()
        lease = await self._storage.transaction(acquire, key, self.owner, self.seconds, take)
        if lease is not None:
            self._leases[key] = lease
            self._deadlines[key] = sent + self.seconds - self.interval
            log.info("leases: {owner} took {key} at epoch {epoch}", owner=self.owner, key=key, epoch=lease.epoch)
        return lease

    def acquire(self, key: str, *, take: bool = False) -> Deferred[Lease | None]:
        """The lease on *key* if it was free or expired (or always, with *take*); None if another holds it.

        Each acquisition starts a new epoch; the previous owner, if another,
        is notified.
        """
        return Deferred.fromCoroutine(self._acquire(key, take))

    def fenced(
        self, lease: Lease, fn: Callable[Concatenate[Transaction, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> Deferred[T]:
        """Run *fn* in a transaction that commits only while *lease* is held; else fail with `LeaseLost`.

        A lease already dropped here, or past its local deadline, fails at
        once, without a round trip.
        """
        if self.held(lease.key) != lease:
            return fail(LeaseLost(f"the lease on {lease.key!r} at epoch {lease.epoch} is no longer held here"))
        result = self._storage.transaction(_fenced, lease, fn, *args, **kwargs)
        result.addErrback(self._fence_failed, lease)
        return result

    def _fence_failed(self, failure: Failure, lease: Lease) -> Failure:
        if failure.check(LeaseLost):
            self._lose(lease, "a fenced write found it gone")
        return failure

    async def _release(self, key: str) -> None:
        lease = self._leases.pop(key, None)
        self._deadlines.pop(key, None)
        if lease is not None:
            await self._storage.transaction(release, lease)
            log.info("leases: {owner} released {key}", owner=self.owner, key=key)

    def release(self, key: str) -> Deferred[None]:
        """Give *key* up, so that another instance can take it at once."""
        return Deferred.fromCoroutine(self._release(key))

    def _lose(self, lease: Lease, why: str) -> None:
        if self._leases.get(lease.key) != lease:
            return
        del self._leases[lease.key]
        del self._deadlines[lease.key]
        log.warn(
            "leases: {owner} lost {key} at epoch {epoch}: {why}",
            owner=self.owner, key=lease.key, epoch=lease.epoch, why=why,
        )
        self._holder.lease_lost(lease)

    def _notice(self, payload: str) -> None:
        taken = Taken.from_payload(payload)
        if taken is None or taken.previous != self.owner:
            return
        lease = self._leases.get(taken.key)
        if lease is not None and lease.epoch < taken.epoch:
            self._lose(lease, f"taken by {taken.by} at epoch {taken.epoch}")

    def _lapse(self, lease: Lease) -> None:
        self._lose(lease, "not renewed in time")
        # It may still stand in the table; let others have it now.
        self._storage.transaction(release, lease).addErrback(lambda _: None)

    def _expire(self, now: float) -> None:
        for key, deadline in list(self._deadlines.items()):
            if deadline <= now:
                self._lapse(self._leases[key])

    async def _renew_once(self) -> None:
        sent = self._clock.seconds()
        # A paused instance wakes up here, late: what it could not renew is gone.
        self._expire(sent)
        if not self._leases:
            return
        # A key taken during the round trip may be missing from the answer; judge only these.
        before = dict(self._leases)
        try:
            still = await self._storage.transaction(renew, self.owner, self.seconds)
        except StorageError as e:
            log.warn("leases: {owner} could not renew: {error}", owner=self.owner, error=str(e))
            return
        for key, lease in before.items():
            if self._leases.get(key) != lease:
                continue  # released or lost meanwhile
            if still.get(key) == lease.epoch:
                self._deadlines[key] = sent + self.seconds - self.interval
            else:
                self._lose(lease, "the renewal found it gone")

    def sweep(self) -> Deferred[int]:
        """Delete the rows of keys expired for :data:`SWEEP_LIVES` lease lives; fires with how many went."""
        over: Deferred[None] = Deferred()
        self._sweep_over = over

        def ended(result: Any) -> Any:
            over.callback(None)
            return result  # passed on whole to the sweep's own caller

        return Deferred.fromCoroutine(self._sweep()).addBoth(ended)

    async def _sweep(self) -> int:
        total = 0
        while not self._stopping:
            try:
                swept = await self._storage.transaction(sweep, self.seconds * SWEEP_LIVES, SWEEP_BATCH)
            except StorageError as e:
                log.warn("leases: {owner} could not sweep: {error}", owner=self.owner, error=str(e))
                return total
            total += swept
            if swept < SWEEP_BATCH:
                break
        return total

    def _renew(self) -> Deferred[None]:
        self._renewing = Deferred.fromCoroutine(self._renew_once())
        return self._renewing

    def renewed(self) -> Deferred[None]:
        """Fires when the renewal under way, if any, is done (for stop, and for tests that drive the clock)."""
        if self._renewing.called:
            return succeed(None)
        done: Deferred[None] = Deferred()

        def finished(result: object) -> object:
            done.callback(None)
            return result

        self._renewing.addBoth(finished)
        return done
