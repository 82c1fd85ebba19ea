"""Token buckets, counters and expiring sets per key, on a task.Clock."""

from __future__ import annotations

import pytest
from twisted.internet import task

from component.ratelimit import Counter, ExpiringSet, RateLimiter


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    clock = task.Clock()
    limiter: RateLimiter[str] = RateLimiter(rate=2.0, burst=3, clock=clock.seconds)
    assert [limiter.allow("juliet") for _ in range(4)] == [True, True, True, False]
    clock.advance(0.4)  # 0.8 of a token
    assert not limiter.allow("juliet")
    clock.advance(0.1)  # one token
    assert limiter.allow("juliet")
    assert not limiter.allow("juliet")
    clock.advance(100)  # refills up to the burst, not beyond
    assert [limiter.allow("juliet") for _ in range(4)] == [True, True, True, False]


def test_keys_have_their_own_buckets() -> None:
    clock = task.Clock()
    limiter: RateLimiter[str] = RateLimiter(rate=1.0, burst=1, clock=clock.seconds)
    assert limiter.allow("juliet")
    assert not limiter.allow("juliet")
    assert limiter.allow("romeo")


def test_a_refused_cost_spends_nothing() -> None:
    clock = task.Clock()
    limiter: RateLimiter[str] = RateLimiter(rate=1.0, burst=5, clock=clock.seconds)
    assert limiter.allow("juliet", 4)
    assert not limiter.allow("juliet", 2)
    assert limiter.allow("juliet", 1)


def test_full_buckets_are_not_kept_and_the_bound_drops_the_oldest() -> None:
    clock = task.Clock()
    limiter: RateLimiter[int] = RateLimiter(rate=1.0, burst=2, clock=clock.seconds, max_keys=3)
    for key in range(10):
        limiter.allow(key)
    assert len(limiter) == 3
    clock.advance(1)
    for key in (7, 8, 9):
        assert limiter.allow(key)  # refilled to 2, spent 1: kept
    limiter.allow(9)
    limiter.allow(9)
    assert not limiter.allow(9)
    clock.advance(10)
    assert limiter.allow(9)


def test_a_burst_of_zero_turns_the_limit_off() -> None:
    limiter: RateLimiter[str] = RateLimiter(rate=0, burst=0, clock=task.Clock().seconds)
    assert all(limiter.allow("juliet") for _ in range(1000))
    assert len(limiter) == 0


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate=-1, burst=1, clock=task.Clock().seconds)
    with pytest.raises(ValueError):
        Counter(-1)


def test_a_counter_holds_at_most_its_limit_per_key() -> None:
    counter: Counter[str] = Counter(2)
    assert counter.acquire("juliet")
    assert counter.acquire("juliet")
    assert not counter.acquire("juliet")
    assert counter.acquire("romeo")
    assert counter["juliet"] == 2
    counter.release("juliet")
    assert counter.acquire("juliet")
    for _ in range(2):
        counter.release("juliet")
    counter.release("romeo")
    assert len(counter) == 0
    assert counter["juliet"] == 0


def test_a_counter_of_limit_zero_counts_without_refusing() -> None:
    counter: Counter[str] = Counter(0)
    assert all(counter.acquire("juliet") for _ in range(100))
    assert counter["juliet"] == 100


def test_an_expiring_set_forgets_after_its_time() -> None:
    clock = task.Clock()
    seen: ExpiringSet[str] = ExpiringSet(60, clock.seconds)
    seen.add("nosuchroom")
    clock.advance(59)
    assert "nosuchroom" in seen
    clock.advance(1)
    assert "nosuchroom" not in seen
    assert len(seen) == 0


def test_an_expiring_set_is_bounded_and_forgets_on_demand() -> None:
    clock = task.Clock()
    seen: ExpiringSet[int] = ExpiringSet(60, clock.seconds, max_keys=100)
    for key in range(1000):
        seen.add(key)
    assert len(seen) == 100
    assert 899 not in seen
    assert 900 in seen
    seen.discard(900)
    assert 900 not in seen
    clock.advance(61)
    seen.add(1)  # the expired ones go as new ones come
    assert len(seen) == 1
