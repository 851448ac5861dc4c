"""FailedAuthLimiter (docs/architecture.md, RFC 6585 §4) and TokenBucket, on an injected clock."""

from __future__ import annotations

import pytest

from gateway.errors import RateLimitedError
from gateway.state.ratelimit import FailedAuthLimiter, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_blocks_after_limit_until_window_ends() -> None:
    clock = Clock()
    limiter = FailedAuthLimiter(3, clock=clock)
    for _ in range(3):
        limiter.check("10.0.0.1")
        limiter.record_failure("10.0.0.1")
    with pytest.raises(RateLimitedError) as caught:
        limiter.check("10.0.0.1")
    assert caught.value.headers()["Retry-After"] == "60"
    assert caught.value.status_code == 429
    limiter.check("10.0.0.2")  # other addresses are unaffected
    clock.now += 45
    with pytest.raises(RateLimitedError) as caught:
        limiter.check("10.0.0.1")
    assert caught.value.headers()["Retry-After"] == "15"
    clock.now += 15.5
    limiter.check("10.0.0.1")  # the window has passed


def test_failures_do_not_extend_the_window() -> None:
    clock = Clock()
    limiter = FailedAuthLimiter(2, clock=clock)
    limiter.record_failure("a")
    clock.now += 50
    limiter.record_failure("a")
    with pytest.raises(RateLimitedError):
        limiter.check("a")
    clock.now += 11
    limiter.check("a")


def test_memory_is_bounded() -> None:
    clock = Clock()
    limiter = FailedAuthLimiter(1, max_addresses=100, clock=clock)
    for i in range(1000):
        limiter.record_failure(f"10.0.{i // 256}.{i % 256}")
    blocked = 0
    for i in range(1000):
        try:
            limiter.check(f"10.0.{i // 256}.{i % 256}")
        except RateLimitedError:
            blocked += 1
    assert blocked == 100  # only the newest 100 addresses are remembered


def test_unknown_peer_address_is_one_bucket() -> None:
    limiter = FailedAuthLimiter(1)
    limiter.record_failure(None)
    with pytest.raises(RateLimitedError):
        limiter.check(None)


def test_rejects_nonsense_limits() -> None:
    with pytest.raises(ValueError):
        FailedAuthLimiter(0)
    with pytest.raises(ValueError):
        TokenBucket(0, 1)
    with pytest.raises(ValueError):
        TokenBucket(1, 0)


def test_token_bucket_burst_then_refill() -> None:
    clock = Clock()
    bucket = TokenBucket(2.0, 3, clock=clock)
    assert [bucket.take("c") for _ in range(3)] == [None, None, None]
    assert bucket.take("c") == pytest.approx(0.5)
    assert bucket.take("other") is None  # per key
    clock.now += 0.5
    assert bucket.take("c") is None
    clock.now += 100  # refill is capped at the burst
    assert [bucket.take("c") for _ in range(4)] == [None, None, None, pytest.approx(0.5)]


def test_checks_in_flight_count_until_they_end() -> None:
    clock = Clock()
    limiter = FailedAuthLimiter(3, clock=clock)
    for _ in range(3):
        limiter.begin("a")
    with pytest.raises(RateLimitedError) as caught:
        limiter.begin("a")  # three checks running: a fourth would exceed the limit
    assert caught.value.headers()["Retry-After"] == "1"
    limiter.begin("b")  # another address is not affected
    limiter.end("a", failed=False)  # a success frees its place
    limiter.begin("a")
    for _ in range(3):
        limiter.end("a", failed=True)
    limiter.end("a", failed=False)
    with pytest.raises(RateLimitedError) as caught:
        limiter.check("a")  # now three failures: blocked for the window
    assert caught.value.headers()["Retry-After"] == "60"
    assert limiter._in_flight == {"b": 1}  # nothing left behind for "a"
