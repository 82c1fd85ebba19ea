"""What a refused write to the MUC store does: the requester is told, the log is told once.

Every change a room announces is stored first; when the database refuses it
(disk full, server gone), nothing is announced, the room stays as it was,
and the stanza that asked for the change gets an error saying what was not
done. The service counts the failures by kind, and logs them at most once a
minute per room: a room whose database is full would otherwise log a line
for every message its occupants send.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from twisted.logger import Logger

from component.errors import StanzaError
from component.storage import StorageError, StorageUnavailable

__all__ = ["LOG_INTERVAL", "WriteFailures", "refusal"]

log = Logger()

#: Seconds between two log lines about one room's failed writes.
LOG_INTERVAL = 60.0
# Rooms whose last log line is recent; past this many, the old ones are dropped.
_REMEMBERED = 1000

#: What the requester is told was not done, by kind of write.
_NOT_DONE = {
    "destroy": "the room could not be destroyed",
    "config": "the configuration could not be stored",
    "affiliations": "the affiliation change could not be stored",
    "subject": "the subject could not be stored",
    "history": "the message could not be archived, so it was not sent",
}


def refusal(kind: str, error: StorageError) -> StanzaError:
    """The error for the requester of a write of *kind* that the database refused.

    A message that cannot be archived meets a lack of room
    (resource-constraint, wait: RFC 6120 §8.3.3.18); any other change that was
    not stored is the server's fault (internal-server-error), worth retrying
    (wait) when the database could not serve for now (unreachable, busy, locked, full).
    """
    if kind == "history":
        return StanzaError("resource-constraint", "wait", text=_NOT_DONE[kind])
    retry = "wait" if isinstance(error, StorageUnavailable) else "cancel"
    return StanzaError("internal-server-error", retry, text=f"{_NOT_DONE[kind]}; nothing changed")


class WriteFailures:
    """The failed writes of one MUC service: counted by kind, logged at most once a minute per room."""

    __slots__ = ("_clock", "_logged", "_unlogged", "counts")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        #: Failed writes by kind ("history", "config", ...) since the service started.
        self.counts: Counter[str] = Counter()
        self._logged: dict[str, float] = {}
        self._unlogged: Counter[str] = Counter()

    @property
    def total(self) -> int:
        """Every failed write since the service started."""
        return self.counts.total()

    def failed(self, room: str, kind: str, error: BaseException) -> None:
        """Count a refused write of *kind* in *room*; log it unless the room logged one within a minute."""
        self.counts[kind] += 1
        now = self._clock()
        last = self._logged.get(room)
        if last is not None and now - last < LOG_INTERVAL:
            self._unlogged[room] += 1
            return
        if len(self._logged) >= _REMEMBERED:
            self._forget_before(now - LOG_INTERVAL)
        self._logged[room] = now
        unlogged = self._unlogged.pop(room, 0)
        log.warn(
            "{room}: a {kind} write failed ({error})" + ("; {unlogged} more failed since the last line" if unlogged else ""),
            room=room,
            kind=kind,
            error=str(error),
            unlogged=unlogged,
        )

    def _forget_before(self, moment: float) -> None:
        self._logged = {room: at for room, at in self._logged.items() if at >= moment}
        self._unlogged = Counter({room: n for room, n in self._unlogged.items() if room in self._logged})
