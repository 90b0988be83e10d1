"""The retry decision: which errors, how long, Retry-After, the deadline."""

from __future__ import annotations

import random

import pytest

from gateway.config import RetryConfig
from gateway.errors import (
    AuthenticationFailed,
    ContextTooLong,
    InvalidRequest,
    ProviderError,
    ProviderOverloaded,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from gateway.retry import RetryPolicy

COMMON = {"provider": "p", "model": "m"}


def policy(**overrides: object) -> RetryPolicy:
    return RetryPolicy.from_config(RetryConfig.model_validate({"attempts": 3, **overrides}))


def test_exponential_backoff_without_jitter_doubles_up_to_max() -> None:
    p = policy(initial_s=0.5, max_s=3, jitter=False)
    rng = random.Random(0)
    assert [p.backoff(n, rng) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_stays_between_half_and_full_and_is_seeded() -> None:
    p = policy(initial_s=1, max_s=100)
    first = [p.backoff(n, random.Random(42)) for n in (1, 2, 3)]
    again = [p.backoff(n, random.Random(42)) for n in (1, 2, 3)]
    assert first == again
    for n, value in zip((1, 2, 3), first, strict=True):
        base = 2 ** (n - 1)
        assert base / 2 <= value <= base


def test_constant_backoff() -> None:
    p = policy(backoff="constant", initial_s=0.25, jitter=False)
    assert [p.backoff(n, random.Random(0)) for n in (1, 2, 3)] == [0.25, 0.25, 0.25]


@pytest.mark.parametrize(
    "error",
    [
        RateLimited("x", status_code=429, **COMMON),
        ProviderUnavailable("x", status_code=503, **COMMON),
        ProviderOverloaded("x", status_code=529, **COMMON),
        ProviderTimeout("x", **COMMON),
    ],
)
def test_retryable_errors_are_retried_until_attempts_run_out(error: ProviderError) -> None:
    p = policy(jitter=False)
    rng = random.Random(0)
    assert p.delay_before_retry(error, 1, rng, None) == 0.5
    assert p.delay_before_retry(error, 2, rng, None) == 1.0
    assert p.delay_before_retry(error, 3, rng, None) is None


@pytest.mark.parametrize(
    "error",
    [
        AuthenticationFailed("x", status_code=401, **COMMON),
        InvalidRequest("x", status_code=400, **COMMON),
        ContextTooLong("x", status_code=400, **COMMON),
        RateLimited("x", status_code=429, code="insufficient_quota", **COMMON),
    ],
)
def test_non_retryable_errors_are_not_retried(error: ProviderError) -> None:
    assert policy().delay_before_retry(error, 1, random.Random(0), None) is None


def test_retry_after_is_honoured_when_longer_than_backoff() -> None:
    error = RateLimited("x", status_code=429, retry_after=2.0, **COMMON)
    assert policy(jitter=False).delay_before_retry(error, 1, random.Random(0), None) == 2.0


def test_retry_after_beyond_the_cap_moves_on() -> None:
    error = RateLimited("x", status_code=429, retry_after=120.0, **COMMON)
    p = policy(max_retry_after_s=30)
    assert p.delay_before_retry(error, 1, random.Random(0), None) is None


def test_a_wait_that_would_pass_the_deadline_moves_on() -> None:
    error = ProviderUnavailable("x", status_code=503, **COMMON)
    p = policy(jitter=False, initial_s=2)
    assert p.delay_before_retry(error, 1, random.Random(0), remaining_s=1.5) is None
    assert p.delay_before_retry(error, 1, random.Random(0), remaining_s=2.5) == 2.0
