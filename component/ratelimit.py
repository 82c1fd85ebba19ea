"""Per-key rate limits and counts whose memory is bounded, on the component's clock.

:class:`RateLimiter` keeps a token bucket per key (a user, an occupant): a
key may spend ``burst`` at once and earns ``rate`` a second back, the shape
of ejabberd's shapers and Prosody's ``util.throttle``. :class:`Counter` keeps
how many of something a key holds (requests in flight). :class:`ExpiringSet`
remembers keys for a while. Each keeps at most ``max_keys`` keys: past that,
the one least recently used goes, which for a bucket is the one that has had
the most time to refill.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["Counter", "ExpiringSet", "RateLimiter"]

K = TypeVar("K", bound=Hashable)

#: Keys a limiter remembers unless told otherwise.
DEFAULT_MAX_KEYS = 10_000


class RateLimiter(Generic[K]):
    """A token bucket per key: ``burst`` at once, then ``rate`` a second.

    A ``rate`` of 0 never refills; a ``burst`` of 0 turns the limit off.
    """

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float], max_keys: int = DEFAULT_MAX_KEYS
    ) -> None:
        if rate < 0 or burst < 0 or max_keys < 1:
            raise ValueError("rate and burst must be at least 0, max_keys at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._max_keys = max_keys
        # key → (tokens left, when they were counted)
        # Insertion-ordered: a key taken out and put back is the newest, the first the least recently used.
        # A plain dict does this faster than an OrderedDict, and a room asks on every message.
        self._buckets: dict[K, tuple[float, float]] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, key: K, cost: float = 1.0) -> bool:
        """Spend ``cost`` from ``key``'s bucket; False (and nothing spent) when it holds less."""
        if not self.burst:
            return True
        now = self._clock()
        burst = self.burst
        tokens, then = self._buckets.pop(key, (burst, now))
        if now > then:
            tokens += (now - then) * self.rate
        if tokens > burst:
            tokens = burst
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        if tokens < burst:
            # A full bucket is the same as none: only the spent ones are kept.
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > self._max_keys:
                del self._buckets[next(iter(self._buckets))]
        return allowed


class Counter(Generic[K]):
    """How many of something each key holds, at most ``limit`` each (0: no limit)."""

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError("limit must be at least 0")
        self.limit = limit
        self._counts: dict[K, int] = {}

    def __len__(self) -> int:
        return len(self._counts)

    def __getitem__(self, key: K) -> int:
        return self._counts.get(key, 0)

    def acquire(self, key: K) -> bool:
        """Count one more for ``key``; False (and nothing counted) when it already holds ``limit``."""
        held = self._counts.get(key, 0)
        if self.limit and held >= self.limit:
            return False
        self._counts[key] = held + 1
        return True

    def release(self, key: K) -> None:
        """Count one less for ``key``; a key that holds nothing is forgotten."""
        held = self._counts.get(key, 0) - 1
        if held > 0:
            self._counts[key] = held
        else:
            self._counts.pop(key, None)


class ExpiringSet(Generic[K]):
    """Keys remembered for ``seconds`` each, at most ``max_keys`` of them (0: remember none)."""

    def __init__(self, seconds: float, clock: Callable[[], float], max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if seconds < 0 or max_keys < 0:
            raise ValueError("seconds and max_keys must be at least 0")
        self.seconds = seconds
        self._clock = clock
        #: May be lowered while in use (a reloaded setting): the excess goes at the next add.
        self.max_keys = max_keys
        # key → when it is forgotten; oldest first, since every entry lives as long.
        self._until: OrderedDict[K, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._until)

    def __contains__(self, key: K) -> bool:
        until = self._until.get(key)
        if until is None:
            return False
        if until <= self._clock():
            del self._until[key]
            return False
        return True

    def add(self, key: K) -> None:
        """Remember ``key`` from now on for ``seconds``."""
        if not self.max_keys or not self.seconds:
            self._until.clear()
            return
        now = self._clock()
        self._until.pop(key, None)
        self._until[key] = now + self.seconds
        # The oldest go first: those expired, and any past the bound.
        while len(self._until) > self.max_keys or next(iter(self._until.values())) <= now:
            self._until.popitem(last=False)

    def discard(self, key: K) -> None:
        """Forget ``key`` now."""
        self._until.pop(key, None)
