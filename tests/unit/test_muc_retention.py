"""Archives are trimmed by age and by count, in bounded batches, on the service's schedule."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer, task

from component.config import ConfigError
from services.muc.archive_store import ArchiveStore, Selection
from services.muc.retention import ArchiveSettings, Retention
from services.muc.service import MucService
from services.muc.store import HistoryRecord, MucStore
from services.muc.testing import immediate_storage, muc_harness

DAY = 86400.0


def _now(deferred: Any) -> Any:
    results: list[Any] = []
    defer.ensureDeferred(deferred).addBoth(results.append)
    assert results, "the immediate storage answered later"
    if hasattr(results[0], "raiseException"):
        results[0].raiseException()
    return results[0]


def _fill(storage: Any, node: str, config: dict[str, Any], times: list[float]) -> None:
    rooms = MucStore(storage)
    _now(rooms.save_config(node, config))
    records = [HistoryRecord(f"{node}-{n}", "firstwitch", None, "<message/>", when) for n, when in enumerate(times)]
    _now(rooms.append_rooms_histories([(node, records)]))


def _left(storage: Any, node: str) -> list[str]:
    page = _now(ArchiveStore(storage).page(node, Selection(), limit=1000))
    assert page.count == len(page.rows)
    return [row.stanza_id for row in page.rows]


def test_a_sweep_caps_archiving_rooms_and_keeps_only_the_join_history_of_the_others() -> None:
    storage = immediate_storage()
    clock = task.Clock()
    clock.advance(100 * DAY)
    recent = [100 * DAY - 100 + n for n in range(30)]
    _fill(storage, "coven", {}, recent)  # archives: the service's default
    _fill(storage, "heath", {"archiving": False, "history_length": 5}, recent)
    _fill(storage, "castle", {"archiving": True}, [DAY * 90 + n for n in range(6)] + recent[:3])
    retention = Retention(ArchiveStore(storage), ArchiveSettings(archive_expires_days=7, archive_max_messages=10, archive_delete_batch=4), clock)
    before = storage.transactions
    assert _now(retention.sweep()) == 20 + 25 + 6
    # At most 4 rows a transaction: coven's 20 are 5 deletions and one that finds no more, then its expiry
    # finds none; heath's 25 are 7 and 1; castle is under its cap and its 6 old rows are 2; one to list the rooms.
    assert storage.transactions - before == 1 + (6 + 1) + (7 + 1) + 2
    assert _left(storage, "coven") == [f"coven-{n}" for n in range(20, 30)]
    assert _left(storage, "heath") == [f"heath-{n}" for n in range(25, 30)]
    assert _left(storage, "castle") == ["castle-6", "castle-7", "castle-8"]
    assert _now(retention.sweep()) == 0


def test_no_limit_keeps_everything_and_sweeps_run_on_schedule() -> None:
    storage = immediate_storage()
    clock = task.Clock()
    _fill(storage, "coven", {}, [float(n) for n in range(30)])
    retention = Retention(ArchiveStore(storage), ArchiveSettings(archive_expires_days=0, archive_max_messages=0, archive_sweep_seconds=60), clock)
    assert _now(retention.sweep()) == 0
    retention.settings = ArchiveSettings(archive_expires_days=0, archive_max_messages=12, archive_sweep_seconds=60)
    retention.start()
    clock.advance(59)
    assert len(_left(storage, "coven")) == 30
    clock.advance(1)
    assert len(_left(storage, "coven")) == 12
    retention.stop()
    assert retention.deleted == 18


def test_a_reload_keeps_the_schedule_unless_its_period_changes() -> None:
    storage = immediate_storage()
    clock = task.Clock()
    _fill(storage, "coven", {}, [float(n) for n in range(30)])
    settings = ArchiveSettings(archive_expires_days=0, archive_max_messages=0, archive_sweep_seconds=60)
    retention = Retention(ArchiveStore(storage), settings, clock)
    retention.start()
    clock.advance(40)
    retention.reconfigure(ArchiveSettings(archive_expires_days=0, archive_max_messages=20, archive_sweep_seconds=60))
    clock.advance(20)  # the sweep due at 60 s still comes, with the new cap
    assert len(_left(storage, "coven")) == 20
    retention.reconfigure(ArchiveSettings(archive_expires_days=0, archive_max_messages=10, archive_sweep_seconds=100))
    clock.advance(99)
    assert len(_left(storage, "coven")) == 20
    clock.advance(1)
    assert len(_left(storage, "coven")) == 10
    retention.stop()


def test_a_service_takes_retention_settings_and_refuses_bad_ones() -> None:
    harness = muc_harness({"archive_expires_days": 30, "archive_max_messages": 500, "archive_delete_batch": 50})
    service = next(s for s in harness.component.services if isinstance(s, MucService))
    assert service.retention is not None
    settings = service.retention.settings
    assert (settings.archive_expires_days, settings.archive_max_messages, settings.archive_delete_batch) == (30, 500, 50)
    assert (settings.archive_by_default, settings.archive_max_results, settings.archive_sweep_seconds) == (True, 50, 3600)
    for options in ({"archive_by_default": "yes"}, {"archive_delete_batch": 0}, {"archive_max_results": 0},
                    {"archive_expires_days": -1}):
        with pytest.raises(ConfigError):
            muc_harness(options)
