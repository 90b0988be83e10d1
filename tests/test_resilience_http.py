"""Fallback triggers through the real provider adapters and SDKs, with HTTP mocked in each
provider's wire format. Configured as in DESIGN.md: OpenAI, then Claude, then Gemini."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import httpcore2
import httpx
import pytest

from gateway import AsyncGateway, Gateway
from gateway.errors import (
    AllProvidersFailed,
    AuthenticationFailed,
    ProviderOverloaded,
    RateLimited,
)
from gateway.testing.clock import ManualClock
from gateway.testing.wire import anthropic as anthropic_wire
from gateway.testing.wire import gemini as gemini_wire
from gateway.testing.wire import openai as openai_wire

OPENAI_URL = "https://api.openai.com/v1/chat/completions"
ANTHROPIC_URL = anthropic_wire.MESSAGES_URL
GEMINI_URL = gemini_wire.generate_content_url("gemini-2.5-flash")
GEMINI_STREAM_URL = gemini_wire.generate_content_url("gemini-2.5-flash", stream=True)

CONFIG: dict[str, Any] = {
    "providers": {
        "openai": {"api_key": "sk-test-openai-000000000000"},
        "anthropic": {"api_key": "sk-ant-test-000000000000"},
        "gemini": {"api_key": "gemini-test-key-0000000000"},
    },
    "routes": {
        "smart": {
            "strategy": "fallback",
            "targets": [
                {"model": "openai/gpt-4o", "context_window": 128000},
                {
                    "model": "anthropic/claude-sonnet-4-6",
                    "max_tokens": 1024,
                    "context_window": 200000,
                },
                {"model": "gemini/gemini-2.5-flash", "context_window": 1000000},
            ],
            "retry": {"attempts": 2, "backoff": "exponential", "initial_s": 0.5, "max_s": 8},
        }
    },
}
HELLO = [{"role": "user", "content": "Hello"}]
Responder = Callable[[httpx.Request], httpx.Response]


def openai_error(error: openai_wire.WireError) -> httpx.Response:
    return httpx.Response(error.status, json=error.body, headers=error.headers)


def anthropic_error(status: int, **headers: Any) -> httpx.Response:
    return httpx.Response(
        status,
        json=anthropic_wire.error_for_status(status),
        headers=anthropic_wire.error_headers(**headers),
    )


def gemini_error(status: int) -> httpx.Response:
    return httpx.Response(status, json=gemini_wire.error_body(status))


def ok_openai() -> httpx.Response:
    return httpx.Response(200, json=openai_wire.chat_completion(text="from openai"))


def ok_anthropic() -> httpx.Response:
    return httpx.Response(200, json=anthropic_wire.message(text="from claude"))


def ok_gemini() -> httpx.Response:
    return httpx.Response(200, json=gemini_wire.generate_content_response(text="from gemini"))


def sequence(*responses: httpx.Response | Exception) -> Responder:
    """Answer each request with the next item; the last one repeats."""
    items = list(responses)

    def respond(request: httpx.Request) -> httpx.Response:
        item = items.pop(0) if len(items) > 1 else items[0]
        if isinstance(item, Exception):
            raise item
        return item

    return respond


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def gw(clock: ManualClock) -> Gateway:
    return Gateway(config=CONFIG, clock=clock, rng=random.Random(0))


def mock(
    http_mock: Any,
    *,
    openai: Responder | None = None,
    anthropic: Responder | None = None,
    gemini: Responder | None = None,
) -> dict[str, Any]:
    routes = {
        "openai": http_mock.post(OPENAI_URL).mock(side_effect=openai or sequence(ok_openai())),
        "anthropic": http_mock.post(ANTHROPIC_URL).mock(
            side_effect=anthropic or sequence(ok_anthropic())
        ),
        "gemini": http_mock.post(GEMINI_URL).mock(side_effect=gemini or sequence(ok_gemini())),
    }
    return routes


def test_openai_429_then_503_answers_from_claude_and_says_why(
    gw: Gateway, http_mock: Any, clock: ManualClock
) -> None:
    routes = mock(
        http_mock,
        openai=sequence(
            openai_error(openai_wire.rate_limit_error()),
            openai_error(openai_wire.server_error(503)),
        ),
    )
    resp = gw.chat.completions.create(model="smart", messages=HELLO, max_tokens=200)
    assert resp.choices[0].message.content == "from claude"
    assert (resp.gateway.provider, resp.gateway.model) == ("anthropic", "claude-sonnet-4-6")
    why = [
        (a.target, a.outcome, a.error_type, a.status_code, a.retry) for a in resp.gateway.attempts
    ]
    assert why == [
        ("openai/gpt-4o", "error", "RateLimited", 429, False),
        ("openai/gpt-4o", "error", "ProviderUnavailable", 503, True),
        ("anthropic/claude-sonnet-4-6", "ok", None, None, False),
    ]
    assert routes["openai"].call_count == 2 and routes["gemini"].call_count == 0
    assert len(clock.sleeps) == 1  # one backoff between the two OpenAI tries
    assert json.loads(routes["anthropic"].calls[0].request.content)["max_tokens"] == 200


async def test_async_same_story(http_mock: Any) -> None:
    agw = AsyncGateway(config=CONFIG, clock=ManualClock(), rng=random.Random(0))
    mock(
        http_mock,
        openai=sequence(
            openai_error(openai_wire.rate_limit_error()),
            openai_error(openai_wire.server_error(503)),
        ),
    )
    resp = await agw.chat.completions.create(model="smart", messages=HELLO)
    assert resp.gateway.provider == "anthropic"
    assert [a.outcome for a in resp.gateway.attempts] == ["error", "error", "ok"]


def test_all_three_failing_reads_well(gw: Gateway, http_mock: Any) -> None:
    mock(
        http_mock,
        openai=sequence(openai_error(openai_wire.server_error(500))),
        anthropic=sequence(anthropic_error(529)),
        gemini=sequence(httpcore2.ConnectError("connection reset by peer")),
    )
    with pytest.raises(AllProvidersFailed) as info:
        gw.chat.completions.create(model="smart", messages=HELLO)
    lines = str(info.value).splitlines()
    assert lines[0] == "route 'smart' failed after 6 attempt(s):"
    assert lines[1].startswith("  openai/gpt-4o: ProviderUnavailable (HTTP 500)")
    assert lines[2].startswith("  retry of openai/gpt-4o: ProviderUnavailable (HTTP 500)")
    assert lines[3].startswith("  anthropic/claude-sonnet-4-6: ProviderOverloaded (HTTP 529)")
    assert lines[5].startswith("  gemini/gemini-2.5-flash: ProviderConnectionError")
    assert len(lines) == 7


def test_retry_after_header_is_honoured(gw: Gateway, http_mock: Any, clock: ManualClock) -> None:
    mock(
        http_mock,
        openai=sequence(openai_error(openai_wire.rate_limit_error(retry_after=3)), ok_openai()),
    )
    resp = gw.chat.completions.create(model="smart", messages=HELLO)
    assert resp.gateway.provider == "openai" and clock.sleeps == [3.0]


def test_retry_after_ms_from_anthropic(gw: Gateway, http_mock: Any, clock: ManualClock) -> None:
    mock(
        http_mock,
        openai=sequence(openai_error(openai_wire.insufficient_quota_error())),
        anthropic=sequence(anthropic_error(429, retry_after_ms=1500), ok_anthropic()),
    )
    resp = gw.chat.completions.create(model="smart", messages=HELLO)
    assert resp.gateway.provider == "anthropic"
    assert clock.sleeps == [1.5], "insufficient_quota is not retried; Claude's 429 waits 1.5 s"
    first = resp.gateway.attempts[0].error
    assert isinstance(first, RateLimited) and first.quota_exhausted


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retried_then_falls_back(gw: Gateway, http_mock: Any, status: int) -> None:
    routes = mock(http_mock, openai=sequence(openai_error(openai_wire.server_error(status))))
    resp = gw.chat.completions.create(model="smart", messages=HELLO)
    assert resp.gateway.provider == "anthropic" and routes["openai"].call_count == 2


def test_529_overload_from_claude_falls_to_gemini(gw: Gateway, http_mock: Any) -> None:
    mock(
        http_mock,
        openai=sequence(openai_error(openai_wire.server_error(503))),
        anthropic=sequence(anthropic_error(529)),
    )
    resp = gw.chat.completions.create(model="smart", messages=HELLO)
    assert resp.gateway.provider == "gemini"
    assert isinstance(resp.gateway.attempts[2].error, ProviderOverloaded)


def test_timeout_and_connection_reset(gw: Gateway, http_mock: Any) -> None:
    mock(
        http_mock,
        openai=sequence(httpcore2.ReadTimeout("timed out")),
        anthropic=sequence(httpcore2.ConnectError("reset")),
    )
    resp = gw.chat.completions.create(model="smart", messages=HELLO)
    assert resp.gateway.provider == "gemini"
    kinds = [a.error_type for a in resp.gateway.attempts if a.outcome == "error"]
    assert kinds == [
        "ProviderTimeout",
        "ProviderTimeout",
        "ProviderConnectionError",
        "ProviderConnectionError",
    ]


def test_context_length_falls_back_only_to_a_larger_window(http_mock: Any) -> None:
    config = json.loads(json.dumps(CONFIG))
    config["routes"]["smart"]["targets"][1]["context_window"] = 128000  # no larger than OpenAI's
    gw = Gateway(config=config, clock=ManualClock())
    routes = mock(http_mock, openai=sequence(openai_error(openai_wire.context_length_error())))
    resp = gw.chat.completions.create(model="smart", messages=HELLO)
    assert resp.gateway.provider == "gemini"
    assert routes["openai"].call_count == 1 and routes["anthropic"].call_count == 0
    assert [a.outcome for a in resp.gateway.attempts] == ["error", "skipped", "ok"]


def test_authentication_failure_raises_at_once(gw: Gateway, http_mock: Any) -> None:
    routes = mock(http_mock, openai=sequence(openai_error(openai_wire.auth_error())))
    with pytest.raises(AuthenticationFailed):
        gw.chat.completions.create(model="smart", messages=HELLO)
    assert routes["openai"].call_count == 1 and routes["anthropic"].call_count == 0


def test_claude_in_stream_overload_before_content_falls_back(gw: Gateway, http_mock: Any) -> None:
    mock(http_mock, openai=sequence(openai_error(openai_wire.server_error(503))))
    overloaded = anthropic_wire.stream_body(
        text_chunks=["never seen"], error=anthropic_wire.error_event(), error_after=1
    )
    http_mock.post(ANTHROPIC_URL).mock(
        return_value=httpx.Response(
            200, content=overloaded, headers={"content-type": "text/event-stream"}
        )
    )
    http_mock.post(GEMINI_STREAM_URL).mock(
        return_value=httpx.Response(
            200,
            content=gemini_wire.stream_response(["from ", "gemini"]),
            headers={"content-type": "text/event-stream"},
        )
    )
    stream = gw.chat.completions.create(model="smart", messages=HELLO, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "from gemini"
    assert stream.gateway.provider == "gemini"
    errors = [a.error_type for a in stream.gateway.attempts if a.outcome == "error"]
    assert "ProviderOverloaded" in errors


# -- chaos --------------------------------------------------------------------------------------

FAULTS = ("429", "500", "503", "529", "timeout", "reset", "auth")


def chaos_responder(
    provider: str, rng: random.Random, ok: Callable[[], httpx.Response]
) -> Responder:
    """Fails 30% of requests with a random fault, in the provider's own wire format."""

    def respond(request: httpx.Request) -> httpx.Response:
        if rng.random() >= 0.3:
            return ok()
        fault = rng.choices(FAULTS, weights=(5, 3, 3, 3, 3, 3, 1))[0]
        if fault == "timeout":
            raise httpcore2.ReadTimeout("timed out")
        if fault == "reset":
            raise httpcore2.ConnectError("connection reset by peer")
        status = {"429": 429, "500": 500, "503": 503, "529": 529, "auth": 401}[fault]
        if provider == "openai":
            body = openai_wire.error_body("boom", type="server_error" if status >= 500 else "x")
            return httpx.Response(status, json=body)
        if provider == "anthropic":
            return anthropic_error(status)
        return gemini_error(status)

    return respond


@pytest.mark.slow
def test_chaos_1000_calls_each_succeeds_or_is_explained(http_mock: Any) -> None:
    rng = random.Random(20261126)
    clock = ManualClock()
    config = json.loads(json.dumps(CONFIG))
    config["routes"]["smart"]["timeout"] = 60
    config["routes"]["smart"]["breaker"] = {"failures": 3, "window_s": 10, "cooldown_s": 5}
    gw = Gateway(config=config, clock=clock, rng=random.Random(1))
    mock(
        http_mock,
        openai=chaos_responder("openai", rng, ok_openai),
        anthropic=chaos_responder("anthropic", rng, ok_anthropic),
        gemini=chaos_responder("gemini", rng, ok_gemini),
    )
    outcomes = {"ok": 0, "all_failed": 0, "auth": 0}
    for _ in range(1000):
        clock.advance(0.5)  # calls arrive over time, so breakers cool down and recover
        try:
            resp = gw.chat.completions.create(model="smart", messages=HELLO)
        except AllProvidersFailed as error:
            outcomes["all_failed"] += 1
            attempts = error.attempts
            assert attempts and all(a.outcome in ("error", "skipped") for a in attempts)
            assert all(a.error is not None for a in attempts if a.outcome == "error")
            assert len(str(error).splitlines()) == len(attempts) + 1
        except AuthenticationFailed as error:
            outcomes["auth"] += 1
            attempts = error.attempts
            assert attempts[-1].error is error, "an auth failure ends the call at once"
        else:
            attempts = list(resp.gateway.attempts)
            outcomes["ok"] += 1
            assert attempts[-1].outcome == "ok"
            assert resp.choices[0].message.content in ("from openai", "from claude", "from gemini")
        for i, attempt in enumerate(attempts):
            if attempt.error_type == "AuthenticationFailed":
                later = [a.target for a in attempts[i + 1 :] if a.outcome != "skipped"]
                assert attempt.target not in later, "an auth-failed target is never tried again"
        assert clock.monotonic() < 10_000, "no call hangs"
    assert sum(outcomes.values()) == 1000
    assert outcomes["ok"] > 900, outcomes
    assert outcomes["all_failed"] + outcomes["auth"] > 0, "the chaos must actually bite"
