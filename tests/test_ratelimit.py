"""Client-side rpm / tpm limits over a sliding minute."""

from __future__ import annotations

from gateway.ratelimit import RateLimiter


def test_rpm_admits_up_to_the_limit_then_refuses_until_the_window_moves() -> None:
    limiter = RateLimiter(rpm=3)
    assert [limiter.try_acquire(t, 10) for t in (0.0, 1.0, 2.0)] == [None, None, None]
    assert limiter.try_acquire(3.0, 10) == "at its limit of 3 requests per minute"
    assert limiter.try_acquire(59.9, 10) is not None
    assert limiter.try_acquire(60.0, 10) is None  # the call at t=0 left the window


def test_tpm_counts_estimated_tokens() -> None:
    limiter = RateLimiter(tpm=1000)
    assert limiter.try_acquire(0.0, 600) is None
    assert limiter.try_acquire(1.0, 500) == "at its limit of 1000 tokens per minute"
    assert limiter.try_acquire(1.0, 400) is None
    assert limiter.try_acquire(61.0, 900) is None


def test_one_oversized_call_is_still_admitted_on_an_idle_target() -> None:
    limiter = RateLimiter(tpm=100)
    assert limiter.try_acquire(0.0, 5000) is None  # otherwise it could never be sent
    assert limiter.try_acquire(1.0, 1) is not None


def test_no_limits_admits_everything() -> None:
    limiter = RateLimiter()
    assert all(limiter.try_acquire(0.0, 10**9) is None for _ in range(1000))
