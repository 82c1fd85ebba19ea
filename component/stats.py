"""What components, storage and services count, as plain values read at scrape time.

The hot path adds to integers and ``Counter`` entries; nothing here knows of
Prometheus. ``component.metrics`` reads these values when a scrape comes and
turns them into metric families, so a stanza costs a dictionary increment,
not a metrics library call.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Literal

import attrs

__all__ = ["Sample", "Latency", "LATENCY_BOUNDS"]

#: Upper bounds (seconds) of the latency buckets: a SQLite commit with
#: ``synchronous=FULL`` takes a few milliseconds, a slow disk or a remote
#: PostgreSQL tens to hundreds.
LATENCY_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@attrs.frozen
class Sample:
    """One value a service reports: a counter (only grows) or a gauge (goes up and down).

    ``name`` is the metric's name without the ``netherfield_`` prefix and,
    for a counter, without ``_total``; the domain label is added by the
    reader, ``labels`` are any others.
    """

    name: str
    kind: Literal["counter", "gauge"]
    help: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


@attrs.define
class Latency:
    """How long calls took (a histogram over :data:`LATENCY_BOUNDS`) and how many failed."""

    #: Calls per bucket, not cumulative; the last one counts calls over every bound.
    buckets: list[int] = attrs.field(factory=lambda: [0] * (len(LATENCY_BOUNDS) + 1))
    count: int = 0
    seconds: float = 0.0
    failures: int = 0

    def observe(self, seconds: float, *, failed: bool = False) -> None:
        """Count one call that took ``seconds``."""
        self.buckets[bisect_left(LATENCY_BOUNDS, seconds)] += 1
        self.count += 1
        self.seconds += seconds
        if failed:
            self.failures += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """(bound, calls at or under it) for each bound, then (inf, every call)."""
        total = 0
        found = []
        for bound, calls in zip((*LATENCY_BOUNDS, float("inf")), self.buckets, strict=True):
            total += calls
            found.append((bound, total))
        return found
