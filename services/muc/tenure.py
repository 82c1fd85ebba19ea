"""A room served with its live state stored: what it announces waits for the write, under the room's lease.

With live state (the MUC's ``live_state``, always with ``[cluster]``) a
room's handlers run as they do without it, but what the room sends while one
runs is held. When the handler is done, what it changed of the room's live
state (:mod:`services.muc.live`) is written in one transaction, fenced by
the room's lease in a cluster (:mod:`component.leases`); the held stanzas go
out once it is stored, in their order. A stanza that changed nothing of it
(a groupchat message, a disco query) sends at once.

A write that fails drops the room from memory without a word to anyone: the
database holds what its occupants were last told, so the next stanza for the
room loads it from there again, here or on the instance ejabberd sends it to
now. The stanza whose change was not stored gets ``remote-server-timeout``
of type ``wait`` (RFC 6120 §8.3.3.16: the service the address names could
not be reached in time): retrying is right, and XEP-0410 reads it in a
self-ping as "not known yet", not as "no longer joined".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from component.errors import StanzaError
from component.stanza import Stanza
from component.storage import StorageError
from component.storage.leases import Lease
from services.muc.archive import InLine
from services.muc.live import LiveChanges, LiveTracker

if TYPE_CHECKING:
    from component.leases import Leases
    from services.muc.store import MucStore

__all__ = ["Tenure", "moved", "room_key"]

log = Logger()


def room_key(room: str) -> str:
    """The lease key of the room at the bare JID *room*."""
    return f"muc:{room}"


def moved(room: str) -> StanzaError:
    """The error for a stanza the room could not take because this instance no longer serves it (or lost its write)."""
    return StanzaError(
        "remote-server-timeout", "wait", text="the room is moving between servers; try again in a moment", by=room
    )


class Tenure:
    """One room's live state on this instance: the rows it stored (*tracker*), its *lease*, the output it holds.

    *changes* says what the room changed since the last call; *drop* takes
    the room out of memory silently; *track* tells the service of a write in
    flight (its stop waits for it).
    """

    __slots__ = ("_changes", "_drop", "_held", "_leases", "_room", "_store", "_track", "lease", "node", "tracker")

    def __init__(
        self,
        store: MucStore,
        leases: Leases | None,
        room: str,
        node: str,
        lease: Lease | None,
        tracker: LiveTracker,
        changes: Callable[[], LiveChanges],
        drop: Callable[[], None],
        track: Callable[[defer.Deferred[Any]], defer.Deferred[Any]],
    ) -> None:
        self._store = store
        self._leases = leases
        self._room = room
        self.node = node
        #: The lease the room is served under (None: a single instance).
        self.lease = lease
        self.tracker = tracker
        self._changes = changes
        self._drop = drop
        self._track = track
        self._held: list[Callable[[], None]] | None = None

    def hold(self, send: Callable[[], None]) -> bool:
        """Keep *send* until the running handler's changes are stored; False when nothing is held (send now)."""
        if self._held is None:
            return False
        self._held.append(send)
        return True

    def check(self) -> None:
        """Raise the wait error, and drop the room, unless this instance still holds the room's lease."""
        lease = self.lease
        if lease is None or self._leases is None or self._leases.held(lease.key) == lease:
            return
        self._drop()
        raise moved(self._room)

    def run(self, work: Callable[[Stanza], Any], stanza: Stanza, *, quiet: bool = False) -> Any:
        """Run a handler with the room's output held, then store what it changed and send what it held.

        A *quiet* stanza (a groupchat message) changes nothing of the live state: it runs as it is.
        """
        self.check()
        if quiet:
            return work(stanza)
        self._held = []
        try:
            result = work(stanza)
        except Exception:
            return self._after(Failure(), stanza, now=True)
        if isinstance(result, InLine):
            self._send_held()  # a message waiting for its row: it changes nothing of the live state
            return result
        if isinstance(result, defer.Deferred):
            return result.addBoth(self._after, stanza, now=False)
        return self._after(result, stanza, now=True)

    def _after(self, outcome: Any, stanza: Stanza, *, now: bool) -> Any:
        changes = self._changes()
        if not changes:
            self._send_held()
            if now and isinstance(outcome, Failure):
                outcome.raiseException()
            return outcome
        if now:
            stanza.keep()  # its reply is built once the write is stored
        written = self._store.write_live(self.node, changes, lease=self.lease)
        return self._track(written.addCallbacks(self._stored, self._refused, callbackArgs=(changes, outcome)))

    def _stored(self, _: None, changes: LiveChanges, outcome: Any) -> Any:
        self.tracker.written(changes)
        self._send_held()
        return outcome

    def _refused(self, failure: Failure) -> Failure:
        self._held = None  # nobody hears of what was not stored
        error = failure.value
        if not isinstance(error, StorageError):
            # The changes were taken and not written: memory and the database would part for good.
            self._drop()
            return failure
        log.warn(
            "{room}: dropped from memory, its live state could not be written: {error}",
            room=self._room, error=str(error),
        )
        self._drop()
        return Failure(moved(self._room))

    def _send_held(self) -> None:
        held, self._held = self._held, None
        for send in held or ():
            send()

    def end(self) -> None:
        """The room leaves memory: give its lease up, so that any instance may take it at once."""
        lease, self.lease = self.lease, None
        if lease is not None and self._leases is not None and self._leases.held(lease.key) == lease:
            self._leases.release(lease.key).addErrback(
                lambda failure: log.warn("{room}: releasing its lease failed: {error}", room=self._room,
                                         error=failure.getErrorMessage())
            )
