"""gateway.testing.mock: provider mocks on the wire, through the real SDKs and adapters.

Every scripted fault is checked for all three providers, sync and async, streamed and not,
against the normalised error the real adapter makes of it; the wire formats are also read by
the SDKs directly. The fixtures ``gateway_mock`` and ``gateway_clock`` come from the plugin
(gateway.testing.pytest_plugin), registered by entry point.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai import types as genai_types
from respx.models import AllMockedAssertionError

from gateway import AsyncGateway, Gateway
from gateway.config import ProviderConfig
from gateway.errors import (
    AllProvidersFailed,
    AuthenticationFailed,
    ContextTooLong,
    GatewayError,
    InvalidRequest,
    ProviderConnectionError,
    ProviderError,
    ProviderOverloaded,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from gateway.providers import load_adapter_class
from gateway.providers.base import (
    AsyncChunkStream,
    ChatRequest,
    ChunkStream,
    ProviderAdapter,
    TokenUsage,
)
from gateway.providers.fake import FakeAdapter
from gateway.testing import ManualClock, RealSleepWarning, mock_providers
from gateway.testing._mock_wire import pieces
from gateway.testing.mock import MockProviders, ProviderMock
from tests.conftest import CANARY_KEY

PROVIDERS = ("openai", "anthropic", "gemini")
MODELS = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4-6", "gemini": "gemini-2.5-flash"}
HELLO = [{"role": "user", "content": "Hello there"}]
WAYS = ("sync", "async", "sync-stream", "async-stream")

CONFIG: dict[str, Any] = {
    "providers": {
        "openai": {"api_key": CANARY_KEY},
        "anthropic": {"api_key": CANARY_KEY},
        "gemini": {"api_key": CANARY_KEY},
    },
    "routes": {
        "smart": {
            "targets": ["openai/gpt-4o", "anthropic/claude-sonnet-4-6", "gemini/gemini-2.5-flash"],
            "retry": {"attempts": 2, "jitter": False},
        }
    },
}


# ---------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture(scope="module")
def adapters() -> Iterator[dict[str, ProviderAdapter]]:
    """One adapter per provider for the module: the mock patches the transport, not them."""
    made = {
        name: load_adapter_class(name)(
            name, ProviderConfig(type=name, name=name, api_key=CANARY_KEY)
        )
        for name in PROVIDERS
    }
    yield made
    for adapter in made.values():
        adapter.close()


@pytest.fixture(params=WAYS)
def way(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Result:
    """What one adapter call gave: the response or the chunks, and the error, if any."""

    def __init__(self) -> None:
        self.response: Any = None
        self.chunks: list[Any] = []
        self.stream: ChunkStream | AsyncChunkStream | None = None
        self.error: GatewayError | None = None

    @property
    def text(self) -> str:
        if self.response is not None:
            return str(self.response.completion.choices[0].message.content or "")
        return "".join(c.choices[0].delta.content or "" for c in self.chunks if c.choices)

    @property
    def usage(self) -> TokenUsage | None:
        if self.response is not None:
            return self.response.usage  # type: ignore[no-any-return]
        return self.stream.usage if self.stream is not None else None


async def run(
    adapter: ProviderAdapter, way: str, model: str, request: ChatRequest | None = None
) -> Result:
    request = request or ChatRequest(messages=HELLO)
    result = Result()
    try:
        if way == "sync":
            result.response = adapter.complete(model, request)
        elif way == "async":
            result.response = await adapter.acomplete(model, request)
        elif way == "sync-stream":
            result.stream = adapter.stream(model, request)
            for chunk in result.stream:
                result.chunks.append(chunk)
        else:
            result.stream = await adapter.astream(model, request)
            async for chunk in result.stream:
                result.chunks.append(chunk)
    except GatewayError as error:
        result.error = error
    return result


async def fails(adapter: ProviderAdapter, way: str, model: str, **kw: Any) -> ProviderError:
    result = await run(adapter, way, model, **kw)
    assert isinstance(result.error, ProviderError), f"expected an error, got {result.text!r}"
    return result.error


def gateway(clock: ManualClock | None = None, **route: Any) -> Gateway:
    config = json.loads(json.dumps(CONFIG))
    config["routes"]["smart"].update(route)
    return Gateway(config=config, clock=clock or ManualClock())


# ---------------------------------------------------------------------------------------------
# Scripted faults -> the same normalised errors as the real providers

Expected = dict[str, tuple[type[ProviderError], int | None]]


def everywhere(cls: type[ProviderError], status: int | None) -> Expected:
    return {provider: (cls, status) for provider in PROVIDERS}


# (script, its outcome in the call record, {provider: (error class, status_code)})
FAULTS: list[tuple[Callable[[ProviderMock], Any], str, Expected]] = [
    (lambda m: m.fail(429, retry_after=2), "fail 429", everywhere(RateLimited, 429)),
    (lambda m: m.fail(503, retry_after=5), "fail 503", everywhere(ProviderUnavailable, 503)),
    (lambda m: m.fail(500), "fail 500", everywhere(ProviderUnavailable, 500)),
    (lambda m: m.fail(529), "fail 529", everywhere(ProviderOverloaded, 529)),
    (lambda m: m.fail(400), "fail 400", everywhere(InvalidRequest, 400)),
    (lambda m: m.fail(404), "fail 404", everywhere(InvalidRequest, 404)),
    (lambda m: m.fail(401), "fail 401", everywhere(AuthenticationFailed, 401)),
    (lambda m: m.fail(403), "fail 403", everywhere(AuthenticationFailed, 403)),
    (
        lambda m: m.insufficient_quota(),
        "insufficient_quota",
        {**everywhere(RateLimited, 429), "anthropic": (RateLimited, 402)},
    ),
    (lambda m: m.context_too_long(), "context_too_long", everywhere(ContextTooLong, 400)),
    (
        lambda m: m.auth_error(),
        "auth_error",
        {**everywhere(AuthenticationFailed, 401), "gemini": (AuthenticationFailed, 400)},
    ),
    (lambda m: m.timeout(), "timeout", everywhere(ProviderTimeout, None)),
    (lambda m: m.disconnect(), "disconnect", everywhere(ProviderConnectionError, None)),
]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(("script", "outcome", "expected"), FAULTS, ids=[f[1] for f in FAULTS])
async def test_scripted_fault_gives_the_providers_normalised_error(
    gateway_mock: MockProviders,
    adapters: dict[str, ProviderAdapter],
    provider: str,
    way: str,
    script: Callable[[ProviderMock], Any],
    outcome: str,
    expected: Expected,
) -> None:
    script(gateway_mock[provider])
    error = await fails(adapters[provider], way, MODELS[provider])

    cls, status = expected[provider]
    assert type(error) is cls
    assert error.status_code == status
    assert error.provider == provider and error.model == MODELS[provider]
    assert CANARY_KEY not in str(error)
    if outcome in ("fail 429", "fail 503"):
        assert error.retry_after == {"fail 429": 2.0, "fail 503": 5.0}[outcome]
    if outcome == "insufficient_quota":
        assert isinstance(error, RateLimited)
        # Gemini reports an exhausted quota as an ordinary 429, as the real API does.
        assert error.quota_exhausted is (provider != "gemini")
    assert len(gateway_mock[provider].pending) == 1  # without times: every call (an outage)
    assert [c.outcome for c in gateway_mock[provider].calls] == [outcome]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_overloaded_when_not_streamed_is_the_providers_overload_response(
    gateway_mock: MockProviders, adapters: dict[str, ProviderAdapter], provider: str
) -> None:
    gateway_mock[provider].overloaded_mid_stream(times=2)
    for way in ("sync", "async"):
        error = await fails(adapters[provider], way, MODELS[provider])
        expected = {
            "openai": (ProviderUnavailable, 503),
            "anthropic": (ProviderOverloaded, 529),
            "gemini": (ProviderUnavailable, 503),
        }[provider]
        assert (type(error), error.status_code) == expected


STREAM_ERRORS = {
    "openai": (ProviderUnavailable, None),
    "anthropic": (ProviderOverloaded, None),
    "gemini": (ProviderUnavailable, 503),
}


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("mode", ["sync-stream", "async-stream"])
@pytest.mark.parametrize("after", [0, 1, 3])
async def test_overloaded_mid_stream_breaks_after_that_many_chunks(
    gateway_mock: MockProviders,
    adapters: dict[str, ProviderAdapter],
    provider: str,
    mode: str,
    after: int,
) -> None:
    gateway_mock[provider].respond("one two three four five").overloaded_mid_stream(
        after_chunks=after
    )
    assert (await run(adapters[provider], mode, MODELS[provider])).text == "one two three four five"

    result = await run(adapters[provider], mode, MODELS[provider])

    error = result.error
    assert error is not None
    assert (type(error), error.status_code) == STREAM_ERRORS[provider]
    default = f"[{provider}/{MODELS[provider]}] You said: Hello there"
    assert result.text == "".join(pieces(default)[:after])
    assert isinstance(error, ProviderUnavailable)
    assert error.chunks_received in ((0, None) if after == 0 else (after,))


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("mode", ["sync-stream", "async-stream"])
async def test_disconnect_mid_stream(
    gateway_mock: MockProviders, adapters: dict[str, ProviderAdapter], provider: str, mode: str
) -> None:
    gateway_mock[provider].disconnect(after_chunks=2)
    result = await run(adapters[provider], mode, MODELS[provider])
    assert type(result.error) is ProviderConnectionError
    assert result.error.chunks_received == 2
    assert result.text == f"[{provider}/{MODELS[provider]}] You"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_slow_answer_advances_the_clock_and_times_out_past_the_calls_timeout(
    gateway_mock: MockProviders,
    gateway_clock: ManualClock,
    adapters: dict[str, ProviderAdapter],
    provider: str,
    way: str,
) -> None:
    request = ChatRequest(messages=HELLO, timeout=30)
    gateway_mock[provider].slow(12, text="late").slow(45)

    result = await run(adapters[provider], way, MODELS[provider], request)
    assert result.error is None and result.text == "late"
    assert gateway_clock.monotonic() == 12

    error = await fails(adapters[provider], way, MODELS[provider], request=request)
    assert type(error) is ProviderTimeout
    assert gateway_clock.monotonic() == 42  # 12 + the call's own 30 s timeout
    assert gateway_clock.sleeps == []  # nothing slept


async def test_slow_without_a_clock_passes_no_time(adapters: dict[str, ProviderAdapter]) -> None:
    with mock_providers() as mock:
        mock.openai.slow(300)  # within the SDK's default 600 s timeout
        result = await run(adapters["openai"], "sync", "gpt-4o")
        assert result.error is None
        assert mock.openai.calls[0].outcome == "slow 300s"
        mock.openai.slow(300)
        error = await fails(
            adapters["openai"], "sync", "gpt-4o", request=ChatRequest(messages=HELLO, timeout=5)
        )
        assert type(error) is ProviderTimeout


# ---------------------------------------------------------------------------------------------
# Replies: text, tool calls, usage, finish reasons; the default reply


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_default_reply_names_provider_and_model(
    gateway_mock: MockProviders, adapters: dict[str, ProviderAdapter], provider: str, way: str
) -> None:
    result = await run(adapters[provider], way, MODELS[provider])
    assert result.error is None
    assert result.text == f"[{provider}/{MODELS[provider]}] You said: Hello there"
    # One token per 4 characters: "Hello there" -> 3, the reply text -> its length / 4.
    assert result.usage is not None
    assert result.usage.input_tokens == 3
    assert result.usage.output_tokens == (len(result.text) + 3) // 4
    assert gateway_mock[provider].calls[0].outcome == "default"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_usage_round_trips_through_the_adapter(
    gateway_mock: MockProviders, adapters: dict[str, ProviderAdapter], provider: str, way: str
) -> None:
    usage = TokenUsage(
        input_tokens=1200,
        output_tokens=300,
        cached_input_tokens=800,
        cache_write_tokens=0 if provider == "gemini" else 100,
        reasoning_tokens=50,
    )
    gateway_mock[provider].respond(text="Paris", usage=usage)
    result = await run(adapters[provider], way, MODELS[provider])
    assert result.text == "Paris"
    assert result.usage == usage


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_tool_calls_round_trip(
    gateway_mock: MockProviders, adapters: dict[str, ProviderAdapter], provider: str, way: str
) -> None:
    gateway_mock[provider].respond(
        tool_calls=[("get_weather", {"city": "Paris"}), ("get_time", {"tz": "CET"})]
    )
    result = await run(adapters[provider], way, MODELS[provider])
    assert result.error is None
    if result.response is not None:
        choice = result.response.completion.choices[0]
        calls = [
            (c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls
        ]
        finish = choice.finish_reason
    else:
        by_index: dict[int, list[str]] = {}
        finish = None
        for chunk in result.chunks:
            if not chunk.choices:
                continue
            finish = chunk.choices[0].finish_reason or finish
            for call in chunk.choices[0].delta.tool_calls or ():
                parts = by_index.setdefault(call.index, ["", ""])
                parts[0] += call.function.name or ""
                parts[1] += call.function.arguments or ""
        calls = [(name, json.loads(args)) for name, args in by_index.values()]
    assert calls == [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "CET"})]
    assert finish == "tool_calls"


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("finish", ["length", "content_filter"])
async def test_finish_reason(
    gateway_mock: MockProviders,
    adapters: dict[str, ProviderAdapter],
    provider: str,
    finish: Any,
) -> None:
    gateway_mock[provider].respond("cut sho", finish_reason=finish)
    result = await run(adapters[provider], "sync", MODELS[provider])
    assert result.response.completion.choices[0].finish_reason == finish


def test_default_can_be_changed_per_provider_and_per_model(gateway_mock: MockProviders) -> None:
    gateway_mock.openai.default("from openai")
    gateway_mock.openai["gpt-4o-mini"].default("from mini")
    gw = gateway()
    assert (
        gw.chat.completions.create(model="openai/gpt-4o", messages=HELLO).choices[0].message.content
        == "from openai"
    )
    assert (
        gw.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
        .choices[0]
        .message.content
        == "from mini"
    )


# ---------------------------------------------------------------------------------------------
# The SDKs' own parsers read the mocked wire formats


def test_openai_sdk_parses_replies_and_streams(gateway_mock: MockProviders) -> None:
    gateway_mock.openai.respond("Hi there", usage=TokenUsage(12, 5, cached_input_tokens=8))
    gateway_mock.openai.respond("Streamed reply", usage=TokenUsage(7, 3))
    client = openai.OpenAI(api_key=CANARY_KEY, max_retries=0)
    completion = client.chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == "Hi there"
    assert completion.model == "gpt-4o"
    assert completion.usage is not None and completion.usage.prompt_tokens == 12
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 8

    chunks = list(
        client.chat.completions.create(
            model="gpt-4o",
            messages=HELLO,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Streamed reply"
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3
    # Without include_usage, OpenAI sends no usage at all.
    plain = list(client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True))  # type: ignore[arg-type]
    assert all(c.usage is None for c in plain)

    gateway_mock.openai.fail(429, retry_after=3)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
    assert info.value.response.headers["retry-after"] == "3"
    assert info.value.code == "rate_limit_exceeded"
    client.close()


def test_anthropic_sdk_parses_replies_and_streams(gateway_mock: MockProviders) -> None:
    gateway_mock.anthropic.respond(
        "Bonjour",
        usage=TokenUsage(400, 9, cached_input_tokens=300, cache_write_tokens=50),
    )
    gateway_mock.anthropic.respond("Au revoir")
    client = anthropic.Anthropic(api_key=CANARY_KEY, max_retries=0)
    message = client.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=HELLO)  # type: ignore[arg-type]
    assert message.content[0].type == "text" and message.content[0].text == "Bonjour"
    assert message.usage.input_tokens == 50  # the wire excludes cache reads and writes
    assert message.usage.cache_read_input_tokens == 300
    assert message.usage.cache_creation_input_tokens == 50

    with client.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=100,
        messages=HELLO,  # type: ignore[arg-type]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Au revoir"
    assert final.stop_reason == "end_turn"

    gateway_mock.anthropic.overloaded_mid_stream(after_chunks=1)
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        client.messages.stream(
            model="claude-sonnet-4-6",
            max_tokens=100,
            messages=HELLO,  # type: ignore[arg-type]
        ) as stream,
    ):
        "".join(stream.text_stream)
    assert info.value.type == "overloaded_error"
    client.close()


def test_gemini_sdk_parses_replies_and_streams(gateway_mock: MockProviders) -> None:
    gateway_mock.gemini.respond(
        "Hallo", usage=TokenUsage(30, 10, cached_input_tokens=10, reasoning_tokens=4)
    )
    gateway_mock.gemini.respond("Tschüss und bis bald")
    gateway_mock.gemini.fail(429, retry_after=7)
    client = genai.Client(api_key=CANARY_KEY)
    response = client.models.generate_content(model="gemini-2.5-flash", contents="Hello")
    assert response.text == "Hallo"
    assert response.usage_metadata is not None
    assert response.usage_metadata.prompt_token_count == 30
    assert response.usage_metadata.candidates_token_count == 6
    assert response.usage_metadata.thoughts_token_count == 4

    events = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="Hello"))
    assert "".join(e.text or "" for e in events) == "Tschüss und bis bald"

    from google.genai import errors

    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(
            model="gemini-2.5-flash",
            contents="Hello",
            config=genai_types.GenerateContentConfig(),
        )
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"
    client.close()


# ---------------------------------------------------------------------------------------------
# Call records and model narrowing


def test_call_records_keep_the_body_and_redact_credentials(gateway_mock: MockProviders) -> None:
    gateway_mock.openai.fail(503, times=2)
    gw = gateway()
    gw.chat.completions.create(model="smart", messages=HELLO, max_tokens=50)
    gw.chat.completions.create(model="gemini/gemini-2.5-flash", messages=HELLO, stream=True)

    assert [(c.provider, c.model, c.stream, c.outcome) for c in gateway_mock.calls] == [
        ("openai", "gpt-4o", False, "fail 503"),
        ("openai", "gpt-4o", False, "fail 503"),
        ("anthropic", "claude-sonnet-4-6", False, "default"),
        ("gemini", "gemini-2.5-flash", True, "default"),
    ]
    claude = gateway_mock.anthropic.calls[0]
    assert claude.body["model"] == "claude-sonnet-4-6"
    assert claude.body["max_tokens"] == 50
    assert claude.body["messages"] == [{"role": "user", "content": "Hello there"}]
    assert claude.url == "https://api.anthropic.com/v1/messages"
    assert claude.headers["authorization"] == "[REDACTED]" or (
        claude.headers["x-api-key"] == "[REDACTED]"
    )
    assert "anthropic-version" in claude.headers
    assert gateway_mock.openai.calls[0].body["max_completion_tokens"] == 50
    assert gateway_mock.openai.calls[0].headers["authorization"] == "[REDACTED]"
    gemini_call = gateway_mock.gemini.calls[0]
    assert gemini_call.headers["x-goog-api-key"] == "[REDACTED]"
    assert gemini_call.body["contents"][0]["parts"][0]["text"] == "Hello there"
    for call in gateway_mock.calls:
        assert CANARY_KEY not in json.dumps(call.headers)
        assert CANARY_KEY not in repr(call)


def test_model_narrowing(gateway_mock: MockProviders) -> None:
    gw = gateway()
    gateway_mock.openai.model("gpt-4o").fail(503)
    gateway_mock.openai["gpt-4o-mini"].respond("mini answer")

    first = gw.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
    assert first.choices[0].message.content == "mini answer"
    with pytest.raises(AllProvidersFailed):
        gw.chat.completions.create(model="openai/gpt-4o", messages=HELLO)

    assert [c.model for c in gateway_mock.openai.calls] == ["gpt-4o-mini", "gpt-4o"]
    assert [c.outcome for c in gateway_mock.openai["gpt-4o"].calls] == ["fail 503"]
    assert len(gateway_mock.openai["gpt-4o"].pending) == 1  # gpt-4o stays down
    assert gateway_mock.openai["gpt-4o-mini"].pending == []
    with pytest.raises(ValueError, match="narrowed"):
        gateway_mock.openai["gpt-4o"].fail(503, model="gpt-4o-mini")


def test_scripted_outcomes_are_consumed_in_order_then_the_default(
    gateway_mock: MockProviders,
) -> None:
    gateway_mock.anthropic.respond("one").fail(529, times=1).respond("two", times=2)
    gw = gateway()
    answers = []
    for _ in range(4):
        try:
            resp = gw.chat.completions.create(model="anthropic/claude-sonnet-4-6", messages=HELLO)
            answers.append(resp.choices[0].message.content)
        except AllProvidersFailed:
            answers.append("failed")
    # A direct provider/model call is tried once, so the 529 fails the second call.
    assert answers == ["one", "failed", "two", "two"]
    assert gw.chat.completions.create(model="anthropic/claude-sonnet-4-6", messages=HELLO).choices[
        0
    ].message.content == ("[anthropic/claude-sonnet-4-6] You said: Hello there")


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (lambda m: m.openai.fail(200), "HTTP error status"),
        (lambda m: m.openai.fail(503, times=0), "at least 1, or None for every call"),
        (lambda m: m.openai.fail(429, retry_after=-1), "retry_after"),
        (lambda m: m.openai.overloaded_mid_stream(after_chunks=-1), "after_chunks"),
        (lambda m: m.openai.slow(-2), "seconds"),
        (lambda m: m.openai.respond(tool_calls=[("x",)]), "tool call"),
        (lambda m: m.openai.respond(finish_reason="done"), "finish_reason"),
        (lambda m: m.gemini.respond(usage=TokenUsage(10, 2, cache_write_tokens=1)), "cache"),
        (lambda m: m.anthropic.respond(usage=TokenUsage(10, 2, cached_input_tokens=11)), "cache"),
        (lambda m: m.openai.model(""), "model name"),
    ],
)
def test_bad_scripts_are_refused_when_written(script: Any, message: str) -> None:
    mock = MockProviders()
    with pytest.raises(ValueError, match=message):
        script(mock)


# ---------------------------------------------------------------------------------------------
# How long a scripted outcome lasts: a fault without times is an outage, times=N is transient


def test_a_fault_without_times_lasts_for_the_whole_block(
    gateway_mock: MockProviders, gateway_clock: ManualClock
) -> None:
    gateway_mock.openai.fail(503)  # OpenAI is down
    gw = gateway(gateway_clock, retry={"attempts": 1})
    for _ in range(3):
        resp = gw.chat.completions.create(model="smart", messages=HELLO)
        assert resp.gateway.provider == "anthropic"
    assert [c.outcome for c in gateway_mock.openai.calls] == ["fail 503"] * 3
    assert len(gateway_mock.openai.pending) == 1


def test_times_makes_a_fault_transient_and_none_means_every_call(
    gateway_mock: MockProviders, gateway_clock: ManualClock
) -> None:
    gateway_mock.openai.fail(429, retry_after=2, times=1).respond("after the wait")
    gw = gateway(gateway_clock)
    resp = gw.chat.completions.create(model="smart", messages=HELLO)
    assert resp.choices[0].message.content == "after the wait"
    assert gateway_clock.sleeps == [2.0]

    gateway_mock.gemini.respond("always me", times=None)
    for _ in range(3):
        resp = gw.chat.completions.create(model="gemini/gemini-2.5-flash", messages=HELLO)
        assert resp.choices[0].message.content == "always me"


def test_an_outcome_behind_one_for_every_call_is_refused_when_written(
    gateway_mock: MockProviders,
) -> None:
    gateway_mock.openai.fail(503)
    with pytest.raises(ValueError, match=r"respond would never happen: fail 503 is scripted"):
        gateway_mock.openai.respond("ok")
    with pytest.raises(ValueError, match="times=N, or clear"):
        gateway_mock.openai["gpt-4o"].timeout()

    gateway_mock.anthropic["claude-haiku-4-5"].timeout()
    gateway_mock.anthropic.respond("other models still reachable")  # allowed
    with pytest.raises(ValueError, match="every call to 'claude-haiku-4-5'"):
        gateway_mock.anthropic["claude-haiku-4-5"].respond("never")

    gateway_mock.openai.clear()
    gateway_mock.openai.respond("back up")
    assert len(gateway_mock.openai.pending) == 1


# -- a gateway built without the test clock sleeps for real: say so, once


def test_real_sleep_under_a_mock_warns_once(
    gateway_mock: MockProviders, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)  # what SystemClock.sleep would do
    gateway_mock.openai.fail(429, retry_after=2, times=4)
    gw = Gateway(config=CONFIG)  # no clock=gateway_clock: the real clock

    with pytest.warns(RealSleepWarning, match=r"sleep 2s for real.*clock=gateway_clock") as seen:
        gw.chat.completions.create(model="smart", messages=HELLO)
        gw.chat.completions.create(model="smart", messages=HELLO)
    assert slept == [2.0, 2.0]
    assert len([w for w in seen if w.category is RealSleepWarning]) == 1
    assert seen[0].filename == __file__  # points at the call in the test


async def test_real_async_sleep_under_a_mock_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    with mock_providers() as mock:
        mock.openai.fail(429, retry_after=3, times=1)
        agw = AsyncGateway(config=CONFIG)
        monkeypatch.setattr(asyncio, "sleep", fake_sleep)
        with pytest.warns(RealSleepWarning, match="sleep 3s for real") as seen:
            await agw.chat.completions.create(model="smart", messages=HELLO)
        monkeypatch.undo()
        assert seen[0].filename == __file__  # the awaited call, past the gateway's frames
        await agw.close()
    assert slept == [3.0]


def test_no_warning_with_the_test_clock_and_the_real_clock_restored_after(
    gateway_clock: ManualClock,
) -> None:
    from gateway._clock import SystemClock

    original = SystemClock.sleep
    with mock_providers(gateway_clock) as mock, warnings.catch_warnings():
        warnings.simplefilter("error")
        assert SystemClock.sleep is not original
        mock.openai.fail(429, retry_after=2, times=1)
        Gateway(config=CONFIG, clock=gateway_clock).chat.completions.create(
            model="smart", messages=HELLO
        )
        assert gateway_clock.sleeps == [2.0]
    assert SystemClock.sleep is original


# ---------------------------------------------------------------------------------------------
# Through the gateway: fallback, streams, async under a plain ``with``


def test_openai_outage_falls_back_to_anthropic(
    gateway_mock: MockProviders, gateway_clock: ManualClock
) -> None:
    gateway_mock.openai.fail(503, times=2)
    resp = gateway(gateway_clock).chat.completions.create(model="smart", messages=HELLO)
    assert resp.gateway.provider == "anthropic"
    assert resp.choices[0].message.content == (
        "[anthropic/claude-sonnet-4-6] You said: Hello there"
    )
    assert [a.error_type for a in resp.gateway.attempts] == [
        "ProviderUnavailable",
        "ProviderUnavailable",
        None,
    ]
    assert gateway_clock.sleeps == [0.5]


def test_stream_falls_back_before_the_first_token_and_breaks_after(
    gateway_mock: MockProviders,
) -> None:
    gw = gateway(retry={"attempts": 1})
    gateway_mock.openai.overloaded_mid_stream(after_chunks=0, times=1)
    stream = gw.chat.completions.create(model="smart", messages=HELLO, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert stream.gateway.provider == "anthropic" and text.startswith("[anthropic/")

    gateway_mock.openai.overloaded_mid_stream(after_chunks=3)
    stream = gw.chat.completions.create(model="smart", messages=HELLO, stream=True)
    received = []
    with pytest.raises(ProviderUnavailable) as info:
        for chunk in stream:
            received.append(chunk)
    assert info.value.chunks_received == 3
    assert "".join(c.choices[0].delta.content or "" for c in received if c.choices) == (
        "[openai/gpt-4o] You said:"
    )


async def test_plain_with_covers_async_calls() -> None:
    clock = ManualClock()
    with mock_providers(clock) as mock:
        mock.openai.timeout(times=2)
        mock.anthropic.fail(429, retry_after=1, times=2)
        agw = AsyncGateway(config=CONFIG, clock=clock)
        resp = await agw.chat.completions.create(model="smart", messages=HELLO)
        assert resp.gateway.provider == "gemini"
        stream = await agw.chat.completions.create(model="smart", messages=HELLO, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text.startswith("[openai/gpt-4o]")
        await agw.close()
    assert [c.provider for c in mock.calls] == ["openai"] * 2 + ["anthropic"] * 2 + [
        "gemini",
        "openai",
    ]


async def test_async_with_and_concurrent_calls() -> None:
    async with mock_providers() as mock:
        mock.gemini.respond("a").respond("b").respond("c")
        agw = AsyncGateway(config=CONFIG)
        replies = await asyncio.gather(
            *(
                agw.chat.completions.create(model="gemini/gemini-2.5-flash", messages=HELLO)
                for _ in range(3)
            )
        )
        await agw.close()
    assert sorted(r.choices[0].message.content or "" for r in replies) == ["a", "b", "c"]


# ---------------------------------------------------------------------------------------------
# Scope: other hosts, base_urls, aiohttp, the mock's own failures


def test_base_urls_answer_a_provider_elsewhere() -> None:
    config = json.loads(json.dumps(CONFIG))
    config["providers"]["openai"]["base_url"] = "https://proxy.example/v1"
    with mock_providers(base_urls={"openai": "https://proxy.example/v1"}) as mock:
        resp = Gateway(config=config).chat.completions.create(model="openai/gpt-4o", messages=HELLO)
        assert resp.gateway.provider == "openai"
        assert mock.openai.calls[0].url == "https://proxy.example/v1/chat/completions"
    with pytest.raises(ValueError, match="unknown providers"):
        mock_providers(base_urls={"mistral": "https://x"})


def test_requests_to_other_hosts_are_not_let_through() -> None:
    config = json.loads(json.dumps(CONFIG))
    config["providers"]["openai"]["base_url"] = "https://elsewhere.example/v1"
    with mock_providers() as mock:
        gw = Gateway(config=config)
        with pytest.raises(AllMockedAssertionError, match=r"elsewhere\.example"):
            gw.chat.completions.create(model="openai/gpt-4o", messages=HELLO)
        assert mock.calls == []


def test_a_failure_inside_the_mock_is_raised_when_it_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mock = mock_providers()

    def broken(provider: str, request: Any) -> Any:
        raise KeyError("bug in the mock")

    monkeypatch.setattr(mock, "_answer_request", broken)
    # The SDK lets the bug through; should an SDK turn it into a connection error, leaving
    # the ``with`` still raises it.
    with (
        pytest.raises(RuntimeError, match="failed while answering"),
        mock,
        pytest.raises(KeyError, match="bug in the mock"),
    ):
        gateway().chat.completions.create(model="openai/gpt-4o", messages=HELLO)


def test_works_beside_the_users_own_httpx2_mock(
    gateway_mock: MockProviders, httpx2_mock: Any
) -> None:
    route = httpx2_mock.get("https://weather.example/paris").respond(json={"sky": "clear"})
    with httpx2.Client() as client:
        assert client.get("https://weather.example/paris").json() == {"sky": "clear"}
    resp = gateway().chat.completions.create(model="openai/gpt-4o", messages=HELLO)
    assert resp.gateway.provider == "openai" and route.call_count == 1


def test_cannot_be_started_twice() -> None:
    with mock_providers() as mock, pytest.raises(RuntimeError, match="already active"):
        mock.start()


def test_google_genai_aiohttp_path_is_switched_off_while_active(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    from google.genai import _api_client

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: object() if name == "aiohttp" else real_find_spec(name, *a),
    )
    monkeypatch.setattr(_api_client, "has_aiohttp", True)
    with mock_providers():
        assert _api_client.has_aiohttp is False
    assert _api_client.has_aiohttp is True


def test_repr_and_lookup(gateway_mock: MockProviders) -> None:
    assert gateway_mock["openai"] is gateway_mock.openai
    with pytest.raises(KeyError, match="no mock"):
        gateway_mock["mistral"]
    gateway_mock.openai.fail(503)
    assert isinstance(gateway_mock.openai, ProviderMock)
    assert "pending=1" in repr(gateway_mock.openai)
    assert "active" in repr(gateway_mock)
    gateway_mock.reset()
    assert gateway_mock.openai.pending == [] and gateway_mock.calls == []


# ---------------------------------------------------------------------------------------------
# The offline fake provider speaks the same vocabulary


def fake_gateway(clock: ManualClock, first: Any = "fake/a") -> tuple[Gateway, FakeAdapter]:
    gw = Gateway(
        config={
            "providers": {"fake": {}, "backup": {"type": "fake"}},
            "routes": {"r": {"targets": [first, "backup/b"], "retry": {"attempts": 1}}},
        },
        clock=clock,
    )
    adapter = gw.adapter("fake")
    assert isinstance(adapter, FakeAdapter)
    adapter.script.clock = clock
    return gw, adapter


def test_fake_slow_auth_error_and_narrowing() -> None:
    clock = ManualClock()
    gw, fake = fake_gateway(clock)
    fake.script.slow(7).auth_error()
    resp = gw.chat.completions.create(model="r", messages=HELLO)
    assert resp.gateway.provider == "fake" and clock.monotonic() == 7
    with pytest.raises(AuthenticationFailed):
        gw.chat.completions.create(model="r", messages=HELLO)

    fake.script["a"].context_too_long()
    fake.script.model("zzz").fail(503)
    assert gw.chat.completions.create(model="r", messages=HELLO).gateway.provider == "backup"
    assert fake.script["a"].pending == [] and len(fake.script["zzz"].pending) == 1


def test_fake_slow_past_the_timeout_times_out_on_the_clock() -> None:
    clock = ManualClock()
    gw, fake = fake_gateway(clock, first={"model": "fake/a", "timeout": 20})
    fake.script.slow(60)
    resp = gw.chat.completions.create(model="r", messages=HELLO)
    assert resp.gateway.provider == "backup"
    assert resp.gateway.attempts[0].error_type == "ProviderTimeout"
    assert clock.monotonic() == 20


def test_fake_disconnect_mid_stream_and_default_after_chunks() -> None:
    clock = ManualClock()
    gw, fake = fake_gateway(clock)
    fake.script.disconnect(after_chunks=2)
    stream = gw.chat.completions.create(model="r", messages=HELLO, stream=True)
    with pytest.raises(ProviderConnectionError) as info:
        list(stream)
    assert info.value.chunks_received == 2

    fake.script.overloaded_mid_stream()  # breaks after 3 chunks by default, like the mocks
    stream = gw.chat.completions.create(model="r", messages=HELLO, stream=True)
    with pytest.raises(ProviderOverloaded) as over:
        list(stream)
    assert over.value.chunks_received == 3


def test_fake_keeps_its_code_argument() -> None:
    clock = ManualClock()
    gw, fake = fake_gateway(clock)
    fake.script.fail(429, code="insufficient_quota")
    resp = gw.chat.completions.create(model="r", messages=HELLO)
    error = resp.gateway.attempts[0].error
    assert isinstance(error, RateLimited) and error.quota_exhausted
