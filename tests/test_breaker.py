"""The circuit breaker's state machine, driven with explicit times."""

from __future__ import annotations

import pytest

from gateway.breaker import CircuitBreaker


def test_opens_after_n_failures_within_the_window() -> None:
    breaker = CircuitBreaker(failures=3, window_s=10, cooldown_s=5)
    assert breaker.record_failure(0.0) == "closed"
    assert breaker.record_failure(1.0) == "closed"
    assert breaker.record_failure(2.0) == "open"
    assert breaker.state(2.0) == "open"
    assert not breaker.allow(3.0)


def test_failures_outside_the_window_do_not_count() -> None:
    breaker = CircuitBreaker(failures=3, window_s=10, cooldown_s=5)
    breaker.record_failure(0.0)
    breaker.record_failure(1.0)
    assert breaker.record_failure(11.5) == "closed"  # the first two fell out of the window
    assert breaker.record_failure(12.0) == "closed"
    assert breaker.record_failure(12.5) == "open"


def test_half_open_after_cooldown_allows_exactly_one_probe() -> None:
    breaker = CircuitBreaker(failures=1, window_s=10, cooldown_s=5)
    breaker.record_failure(0.0)
    assert breaker.state(4.9) == "open" and not breaker.allow(4.9)
    assert breaker.state(5.0) == "half_open"
    assert breaker.allow(5.0)
    assert not breaker.allow(5.1), "a second call waits for the probe's outcome"


def test_successful_probe_closes() -> None:
    breaker = CircuitBreaker(failures=1, window_s=10, cooldown_s=5)
    breaker.record_failure(0.0)
    assert breaker.allow(6.0)
    assert breaker.record_success(6.5) == "closed"
    assert breaker.allow(6.6) and breaker.allow(6.7)
    assert breaker.reopens_at() is None


def test_failed_probe_reopens_with_a_fresh_cooldown() -> None:
    breaker = CircuitBreaker(failures=1, window_s=10, cooldown_s=5)
    breaker.record_failure(0.0)
    assert breaker.allow(6.0)
    assert breaker.record_failure(6.5) == "open"
    assert breaker.reopens_at() == 11.5
    assert not breaker.allow(10.0)
    assert breaker.allow(11.5)


def test_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(failures=2, window_s=10, cooldown_s=5)
    breaker.record_failure(0.0)
    breaker.record_success(1.0)
    assert breaker.record_failure(2.0) == "closed"


def test_released_probe_lets_another_through() -> None:
    breaker = CircuitBreaker(failures=1, window_s=10, cooldown_s=5)
    breaker.record_failure(0.0)
    assert breaker.allow(5.0)
    breaker.release_probe()
    assert breaker.allow(5.0)


@pytest.mark.parametrize(("failures", "window", "cooldown"), [(0, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_bad_settings(failures: int, window: float, cooldown: float) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failures, window, cooldown)


def test_is_clear_only_when_a_success_would_change_nothing() -> None:
    breaker = CircuitBreaker(failures=2, window_s=10, cooldown_s=5)
    assert breaker.is_clear()
    breaker.record_failure(0.0)
    assert not breaker.is_clear()  # a failure is counted
    breaker.record_success(1.0)
    assert breaker.is_clear()
    breaker.record_failure(2.0)
    breaker.record_failure(3.0)
    assert not breaker.is_clear()  # open
    assert breaker.allow(9.0)  # the half-open probe
    assert not breaker.is_clear()
    breaker.record_success(9.5)
    assert breaker.is_clear()
