"""Failed sign-ins are throttled per client address: after ten in a minute, the address is
refused (429 with Retry-After) even with the right key, until the window moves on."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.server.dashboard.throttle import SignInThrottle
from tests.dashboard.conftest import ADMIN_KEY, dashboard_config
from tests.dashboard.test_pages import Browser


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_window_counts_failures_per_address_and_moves_on() -> None:
    clock = Clock()
    throttle = SignInThrottle(limit=3, window_s=60, clock=clock)
    for _ in range(3):
        assert throttle.retry_after("10.0.0.1") is None
        throttle.failed("10.0.0.1")
        clock.now += 10
    assert throttle.retry_after("10.0.0.1") == 30  # the first failure leaves the window at 60
    assert throttle.retry_after("10.0.0.2") is None  # another address is not affected
    clock.now += 30
    assert throttle.retry_after("10.0.0.1") is None
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 10


def test_a_success_forgets_the_failures_and_addresses_are_bounded() -> None:
    clock = Clock()
    throttle = SignInThrottle(limit=2, window_s=60, max_addresses=3, clock=clock)
    throttle.failed("a")
    throttle.succeeded("a")
    throttle.failed("a")
    assert throttle.retry_after("a") is None  # one failure since the success
    for address in ("b", "c", "d", "e"):
        throttle.failed(address)
        throttle.failed(address)
    assert len(throttle._failures) == 3
    assert throttle.retry_after("b") is None  # forgotten, oldest first
    assert throttle.retry_after("e") == 60


@pytest.fixture
def config(tmp_path: Any) -> dict[str, Any]:
    return dashboard_config(f"sqlite:///{tmp_path / 'credits.db'}")


def test_ten_wrong_keys_lock_the_address_out_even_with_the_right_one(
    config: dict[str, Any],
) -> None:
    browser = Browser(config)
    for attempt in range(10):
        answer = browser.sign_in(f"wrong-key-{attempt}")
        assert answer.status_code == 401, attempt
        assert "not valid" in answer.text
    refused = browser.sign_in(ADMIN_KEY)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert "Too many failed sign-ins" in refused.text
    assert ADMIN_KEY not in refused.text
    assert browser.get("/").headers["location"] == "/signin"  # no session was started


def test_a_right_key_before_the_limit_signs_in(config: dict[str, Any]) -> None:
    browser = Browser(config)
    for attempt in range(9):
        assert browser.sign_in(f"wrong-key-{attempt}").status_code == 401
    assert browser.sign_in(ADMIN_KEY).status_code == 303
    assert browser.get("/").status_code == 200
