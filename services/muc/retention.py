"""How long rooms keep their archives: expiry by age and a cap per room, swept in bounded batches.

Every ``archive_sweep_seconds`` the service looks at each stored room that
has archived rows: rows older than ``archive_expires_days`` go, and so do
the oldest beyond the room's cap (``archive_max_messages`` for a room that
archives, its history length for one that does not: such a room keeps only
what its join history replays). Each deletion is a transaction of at most
``archive_delete_batch`` rows, so a sweep never holds the database for long,
and the next batch waits for the one before.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import attrs
from twisted.internet import task
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger

from component.options import setting
from services.muc.archive_store import ArchiveStore

__all__ = ["ArchiveSettings", "Retention"]

log = Logger()

_DAY = 86400.0


@attrs.frozen(slots=False)  # a second base of MucSettings beside the slotted LimitSettings
class ArchiveSettings:
    """The archive's settings, inherited by :class:`services.muc.settings.MucSettings`."""

    archive_by_default: bool = setting(True, "whether a persistent room archives its messages unless its owner says no")
    archive_expires_days: float = setting(7.0, "days an archived message is kept (0: no limit)", minimum=0)
    archive_max_messages: int = setting(
        100_000, "messages one room's archive keeps, the oldest going first (0: no limit)", minimum=0
    )
    archive_max_results: int = setting(50, "archived messages one query answers at most", minimum=1)
    archive_sweep_seconds: float = setting(3600.0, "seconds between sweeps for expired messages (0: none)", minimum=0)
    archive_delete_batch: int = setting(500, "archived messages one retention transaction deletes at most", minimum=1)


class Retention:
    """The sweeps of one service's archives."""

    def __init__(self, archive: ArchiveStore, settings: ArchiveSettings, clock: Any) -> None:
        self.archive = archive
        self.settings = settings
        self._clock = clock
        self._loop: task.LoopingCall | None = None
        #: Rows deleted by sweeps so far.
        self.deleted = 0

    def start(self) -> None:
        """Sweep every ``every`` seconds from now on, the first time after one period."""
        every = self.settings.archive_sweep_seconds
        if self._loop is None and every > 0:
            self._loop = task.LoopingCall(self._sweep_logged)
            self._loop.clock = self._clock
            self._loop.start(every, now=False)

    def reconfigure(self, settings: ArchiveSettings) -> None:
        """Take reloaded settings; the schedule starts over only when its period changed.

        Restarted at every reload, a schedule would never come round on a
        service whose configuration is reloaded more often than it sweeps.
        """
        changed = settings.archive_sweep_seconds != self.settings.archive_sweep_seconds
        self.settings = settings
        if changed:
            self.stop()
            self.start()

    def stop(self) -> None:
        """No more sweeps (one in progress finishes its batch)."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def _sweep_logged(self) -> Deferred[Any]:
        d = ensureDeferred(self.sweep())
        return d.addErrback(lambda failure: log.failure("archive retention sweep failed", failure))

    async def sweep(self) -> int:
        """One sweep over every room; returns how many rows it deleted."""
        settings = self.settings
        batch = settings.archive_delete_batch
        now: float = self._clock.seconds()
        deleted = 0
        for node, archived, config in await self.archive.rooms():
            archives = bool(config.get("archiving", settings.archive_by_default))
            cap = (settings.archive_max_messages or None) if archives else int(config.get("history_length", 20))
            if cap is not None and archived > cap:
                deleted += await _in_batches(partial(self.archive.delete_oldest, node, cap, batch), batch)
            if settings.archive_expires_days > 0:
                before = now - settings.archive_expires_days * _DAY
                deleted += await _in_batches(partial(self.archive.delete_older, node, before, batch), batch)
        if deleted:
            log.info("archive retention: deleted {count} rows", count=deleted)
        self.deleted += deleted
        return deleted


async def _in_batches(delete: Callable[[], Deferred[int]], batch: int) -> int:
    total = 0
    while True:
        gone = await delete()
        total += gone
        if gone < batch:
            return total
