"""Retries, fallback, breakers, rate limits, deadlines and stream failover through the client.

Driven on the offline fake provider with a manual clock and a seeded random source, so
nothing sleeps and every run is the same. The same triggers through the real provider
adapters with mocked HTTP are in tests/test_resilience_http.py.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest

from gateway import Gateway
from gateway.errors import (
    AllProvidersFailed,
    AuthenticationFailed,
    InvalidRequest,
    ProviderOverloaded,
    ProviderUnavailable,
    RateLimited,
)
from gateway.events import GatewayEvent
from gateway.providers.fake import FakeAdapter
from gateway.testing.clock import ManualClock

HELLO = [{"role": "user", "content": "Hello"}]


def make(
    routes: dict[str, Any], providers: tuple[str, ...] = ("one", "two", "three"), **kw: Any
) -> tuple[Gateway, ManualClock]:
    clock = ManualClock()
    config = {"providers": {p: {"type": "fake"} for p in providers}, "routes": routes}
    return Gateway(config=config, clock=clock, rng=random.Random(5), **kw), clock


def fake(gw: Gateway, name: str) -> FakeAdapter:
    adapter = gw.adapter(name)
    assert isinstance(adapter, FakeAdapter)
    return adapter


THREE = {"targets": ["one/a", "two/b", "three/c"], "retry": {"attempts": 2, "jitter": False}}


def test_503_then_success_retries_the_same_target_after_backoff() -> None:
    gw, clock = make({"r": THREE})
    fake(gw, "one").script.fail(503)
    resp = gw.chat.completions.create(model="r", messages=HELLO)
    assert resp.gateway.provider == "one"
    assert [(a.outcome, a.retry) for a in resp.gateway.attempts] == [("error", False), ("ok", True)]
    assert clock.sleeps == [0.5]


def test_429_with_retry_after_waits_that_long() -> None:
    gw, clock = make({"r": THREE})
    fake(gw, "one").script.fail(429, retry_after=2)
    resp = gw.chat.completions.create(model="r", messages=HELLO)
    assert resp.gateway.provider == "one" and clock.sleeps == [2.0]


def test_429_then_503_falls_back_and_attempts_say_why() -> None:
    gw, _clock = make({"r": THREE})
    fake(gw, "one").script.fail(429).fail(503)
    resp = gw.chat.completions.create(model="r", messages=HELLO)
    assert resp.gateway.provider == "two"
    summary = [(a.target, a.error_type, a.status_code, a.retry) for a in resp.gateway.attempts]
    assert summary == [
        ("one/a", "RateLimited", 429, False),
        ("one/a", "ProviderUnavailable", 503, True),
        ("two/b", None, None, False),
    ]


def test_insufficient_quota_falls_back_without_retrying() -> None:
    gw, clock = make({"r": THREE})
    fake(gw, "one").script.insufficient_quota()
    resp = gw.chat.completions.create(model="r", messages=HELLO)
    assert resp.gateway.provider == "two" and clock.sleeps == []
    error = resp.gateway.attempts[0].error
    assert isinstance(error, RateLimited) and error.quota_exhausted


@pytest.mark.parametrize("status", [401, 403, 400, 404])
def test_caller_errors_raise_at_once(status: int) -> None:
    gw, _clock = make({"r": THREE})
    fake(gw, "one").script.fail(status)
    with pytest.raises((AuthenticationFailed, InvalidRequest)) as info:
        gw.chat.completions.create(model="r", messages=HELLO)
    assert fake(gw, "two").calls == [] and len(fake(gw, "one").calls) == 1
    assert [a.outcome for a in info.value.attempts] == ["error"]  # type: ignore[union-attr]


def test_context_too_long_falls_back_only_to_larger_windows() -> None:
    route = {
        "targets": [
            {"model": "one/small", "context_window": 8000},
            {"model": "two/same", "context_window": 8000},
            {"model": "three/big", "context_window": 200000},
        ]
    }
    gw, _ = make({"r": route})
    fake(gw, "one").script.context_too_long()
    resp = gw.chat.completions.create(model="r", messages=HELLO)
    assert resp.gateway.provider == "three"
    assert [a.outcome for a in resp.gateway.attempts] == ["error", "skipped", "ok"]
    assert "context window 8000" in (resp.gateway.attempts[1].reason or "")
    assert fake(gw, "two").calls == []


def test_fallback_on_limits_which_errors_move_on() -> None:
    gw, _ = make({"r": {**THREE, "fallback_on": ["timeout"], "retry": {"attempts": 1}}})
    fake(gw, "one").script.fail(503)
    with pytest.raises(ProviderUnavailable):
        gw.chat.completions.create(model="r", messages=HELLO)
    fake(gw, "one").script.timeout()
    assert gw.chat.completions.create(model="r", messages=HELLO).gateway.provider == "two"


def test_all_failing_gives_a_readable_error_listing_every_try() -> None:
    gw, _ = make({"r": {**THREE, "retry": {"attempts": 1}}})
    fake(gw, "one").script.fail(429)
    fake(gw, "two").script.fail(503)
    fake(gw, "three").script.timeout()
    with pytest.raises(AllProvidersFailed) as info:
        gw.chat.completions.create(model="r", messages=HELLO)
    text = str(info.value)
    assert text.splitlines()[0] == "route 'r' failed after 3 attempt(s):"
    assert "one/a: RateLimited (HTTP 429)" in text
    assert "two/b: ProviderUnavailable (HTTP 503)" in text
    assert "three/c: ProviderTimeout" in text


def test_overall_deadline_bounds_retries_and_fallbacks() -> None:
    route = {
        "targets": ["one/a", "two/b"],
        "timeout": 3,
        "retry": {"attempts": 5, "initial_s": 1, "max_s": 10, "jitter": False},
    }
    gw, clock = make({"r": route})
    fake(gw, "one").script.fail(503, times=10)
    fake(gw, "two").script.fail(503, times=10)
    with pytest.raises(AllProvidersFailed):
        gw.chat.completions.create(model="r", messages=HELLO)
    assert clock.monotonic() <= 3.0
    assert sum(clock.sleeps) <= 3.0


def test_per_call_timeout_tightens_the_deadline() -> None:
    route = {"targets": ["one/a"], "retry": {"attempts": 5, "initial_s": 1, "jitter": False}}
    gw, clock = make({"r": route})
    fake(gw, "one").script.fail(503, times=10)
    with pytest.raises(AllProvidersFailed):
        gw.chat.completions.create(model="r", messages=HELLO, timeout=2.5)
    assert sum(clock.sleeps) <= 2.5
    # Each try was given only what was left of the deadline.
    timeouts = [call.request.timeout for call in fake(gw, "one").calls]
    assert timeouts[0] == 2.5 and all(t is not None and t <= 2.5 for t in timeouts)


def test_breaker_opens_and_the_target_is_skipped_without_a_call() -> None:
    route = {
        **THREE,
        "retry": {"attempts": 1},
        "breaker": {"failures": 2, "window_s": 60, "cooldown_s": 30},
    }
    gw, clock = make({"r": route})
    fake(gw, "one").script.fail(503, times=2)
    gw.chat.completions.create(model="r", messages=HELLO)
    gw.chat.completions.create(model="r", messages=HELLO)
    calls_before = len(fake(gw, "one").calls)
    resp = gw.chat.completions.create(model="r", messages=HELLO)
    assert len(fake(gw, "one").calls) == calls_before, "open breaker: no network call"
    assert resp.gateway.attempts[0].outcome == "skipped"
    assert resp.gateway.attempts[0].reason == "circuit breaker open"
    # After the cooldown one probe goes through, succeeds, and closes the breaker.
    clock.advance(30)
    resp = gw.chat.completions.create(model="r", messages=HELLO)
    assert resp.gateway.provider == "one"


def test_when_every_breaker_is_open_the_earliest_to_reopen_is_tried() -> None:
    route = {
        "targets": ["one/a", "two/b"],
        "retry": {"attempts": 1},
        "breaker": {"failures": 1, "cooldown_s": 30},
    }
    gw, clock = make({"r": route}, providers=("one", "two"))
    fake(gw, "two").script.fail(503)
    fake(gw, "one").script.fail(503)
    with pytest.raises(AllProvidersFailed):
        gw.chat.completions.create(model="r", messages=HELLO)  # one fails at t=0, then two
    clock.advance(1)
    resp = gw.chat.completions.create(model="r", messages=HELLO)
    assert [a.outcome for a in resp.gateway.attempts] == ["skipped", "skipped", "ok"]
    assert resp.gateway.provider == "one"


def test_rate_limited_target_is_skipped_for_the_next() -> None:
    route = {"targets": [{"model": "one/a", "rpm": 2}, "two/b"]}
    gw, clock = make({"r": route})
    served = [
        gw.chat.completions.create(model="r", messages=HELLO).gateway.provider for _ in range(3)
    ]
    assert served == ["one", "one", "two"]
    clock.advance(60)
    assert gw.chat.completions.create(model="r", messages=HELLO).gateway.provider == "one"


def test_weighted_route_spreads_traffic() -> None:
    route = {
        "strategy": "weighted",
        "targets": [{"model": "one/a", "weight": 3}, {"model": "two/b", "weight": 1}],
    }
    gw, _ = make({"r": route})
    served = [
        gw.chat.completions.create(model="r", messages=HELLO).gateway.provider for _ in range(400)
    ]
    assert 260 < served.count("one") < 340


def test_lowest_latency_route_prefers_the_fast_target() -> None:
    route = {"strategy": "lowest-latency", "exploration": 0, "targets": ["one/a", "two/b"]}
    gw, clock = make({"r": route})
    original = fake(gw, "one").complete

    def slow(model: str, request: Any) -> Any:
        clock.advance(2.0)
        return original(model, request)

    fake(gw, "one").complete = slow  # type: ignore[method-assign]
    served = [
        gw.chat.completions.create(model="r", messages=HELLO).gateway.provider for _ in range(5)
    ]
    # Both unmeasured targets are tried once each; then the fast one wins every time.
    assert served[-3:] == ["two", "two", "two"]


def test_stream_fails_before_first_content_then_falls_back_transparently() -> None:
    gw, _ = make({"r": {**THREE, "retry": {"attempts": 1}}})
    fake(gw, "one").script.overloaded_mid_stream(after_chunks=0)
    stream = gw.chat.completions.create(model="r", messages=HELLO, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream)
    assert text.startswith("[two/b]")
    assert [a.outcome for a in stream.gateway.attempts] == ["error", "ok"]


def test_stream_fails_after_content_raises_unavailable_saying_how_much() -> None:
    gw, _ = make({"r": THREE})
    fake(gw, "one").script.overloaded_mid_stream(after_chunks=2)
    stream = gw.chat.completions.create(model="r", messages=HELLO, stream=True)
    received = []
    with pytest.raises(ProviderOverloaded) as info:
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 2
    assert info.value.chunks_received == 2
    assert "after 2 content chunk(s)" in str(info.value)
    assert isinstance(info.value, ProviderUnavailable)


def test_events_and_logging(caplog: pytest.LogCaptureFixture) -> None:
    events: list[GatewayEvent] = []
    gw, _ = make({"r": {**THREE, "retry": {"attempts": 1}}}, on_event=events.append)
    fake(gw, "one").script.fail(503)
    with caplog.at_level(logging.DEBUG, logger="gateway"):
        gw.chat.completions.create(model="r", messages=HELLO)
    kinds = [e.kind for e in events]
    assert kinds == ["attempt_start", "attempt_end", "fallback", "attempt_start", "attempt_end"]
    assert events[1].detail["error"] == "ProviderUnavailable"
    assert events[2].target == "one/a" and events[2].detail["next"] == "two/b"
    assert any("fallback route=r target=one/a" in r.getMessage() for r in caplog.records)


def test_a_failing_event_hook_does_not_break_the_call() -> None:
    def broken(event: GatewayEvent) -> None:
        raise RuntimeError("hook bug")

    gw, _ = make({"r": THREE}, on_event=broken)
    assert gw.chat.completions.create(model="r", messages=HELLO).gateway.provider == "one"


def test_breaker_state_change_is_an_event() -> None:
    events: list[GatewayEvent] = []
    route = {**THREE, "retry": {"attempts": 1}, "breaker": {"failures": 1}}
    gw, _ = make({"r": route}, on_event=events.append)
    fake(gw, "one").script.fail(503)
    gw.chat.completions.create(model="r", messages=HELLO)
    states = [(e.target, e.detail["state"]) for e in events if e.kind == "breaker_state"]
    assert states == [("one/a", "open")]
