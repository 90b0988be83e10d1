"""The drop-in client on the offline fake provider: shapes, streams, errors, sync/async parity."""

from __future__ import annotations

import os
import random
import re
from decimal import Decimal
from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from gateway import AsyncGateway, Gateway
from gateway.errors import (
    AllProvidersFailed,
    AuthenticationFailed,
    ConfigError,
    ContextTooLong,
    InvalidRequest,
    ProviderError,
    ProviderOverloaded,
    RateLimited,
)
from gateway.providers.base import TokenUsage
from gateway.providers.fake import FakeAdapter
from gateway.testing.clock import ManualClock

CONFIG: dict[str, Any] = {
    "providers": {"fake": {}, "backup": {"type": "fake"}},
    "routes": {
        "smart": {
            "targets": ["fake/alpha", {"model": "backup/beta", "max_tokens": 50}],
            "retry": {"attempts": 1},
        },
        "solo": {"targets": [{"model": "fake/solo", "temperature": 0.2, "params": {"seed": 7}}]},
    },
}
HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture
def gw() -> Gateway:
    return Gateway(config=CONFIG, clock=ManualClock(), rng=random.Random(1))


def fake(gw: Gateway | AsyncGateway, name: str = "fake") -> FakeAdapter:
    adapter = gw.adapter(name)
    assert isinstance(adapter, FakeAdapter)
    return adapter


def test_response_is_openai_chat_completion_with_gateway_info(gw: Gateway) -> None:
    resp = gw.chat.completions.create(model="smart", messages=HELLO, max_tokens=100)
    assert isinstance(resp, ChatCompletion)
    assert resp.choices[0].message.content == "[fake/alpha] You said: Hello there"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.gateway.provider == "fake" and resp.gateway.model == "alpha"
    assert resp.gateway.route == "smart"
    assert resp.gateway.request_id.startswith("gw-")
    assert [a.outcome for a in resp.gateway.attempts] == ["ok"]
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (3, 9)
    # No credit account: the call is still priced (the fake's default $1 / $2 per 1M tokens).
    assert resp.usage.cost == Decimal("0.000021")
    # Serialises like an OpenAI response (the extra attribute does not leak into the dump).
    assert "gateway" not in resp.model_dump()


def test_direct_provider_model_call(gw: Gateway) -> None:
    resp = gw.chat.completions.create(model="backup/gamma", messages=HELLO)
    assert resp.gateway.provider == "backup" and resp.gateway.route == "backup/gamma"


def test_unknown_route_and_unconfigured_provider_are_config_errors(gw: Gateway) -> None:
    with pytest.raises(ConfigError, match="neither a route") as info:
        gw.chat.completions.create(model="smartt", messages=HELLO)
    assert "smart" in str(info.value)
    with pytest.raises(ConfigError, match="provider 'openai', which is not configured"):
        gw.chat.completions.create(model="openai/gpt-4o", messages=HELLO)


def test_target_overrides_reach_the_provider(gw: Gateway) -> None:
    gw.chat.completions.create(model="solo", messages=HELLO, temperature=1.0, max_tokens=10)
    request = fake(gw).calls[-1].request
    assert request.temperature == 0.2
    assert request.extra_body == {"seed": 7}
    assert request.max_tokens == 10


def test_target_max_tokens_caps_the_callers(gw: Gateway) -> None:
    fake(gw).script.fail(503)
    gw.chat.completions.create(model="smart", messages=HELLO, max_tokens=500)
    assert fake(gw, "backup").calls[-1].request.max_tokens == 50


def test_fallback_to_next_target_records_attempts(gw: Gateway) -> None:
    fake(gw).script.fail(429, retry_after=2)
    resp = gw.chat.completions.create(model="smart", messages=HELLO)
    assert resp.gateway.provider == "backup"
    first, second = resp.gateway.attempts
    assert (first.outcome, first.error_type, first.status_code) == ("error", "RateLimited", 429)
    assert isinstance(first.error, RateLimited) and first.error.retry_after == 2
    assert second.outcome == "ok" and second.target == "backup/beta"


def test_all_targets_failing_raises_all_providers_failed(gw: Gateway) -> None:
    fake(gw).script.fail(500)
    fake(gw, "backup").script.overloaded_mid_stream(after_chunks=0)
    with pytest.raises(AllProvidersFailed) as info:
        gw.chat.completions.create(model="smart", messages=HELLO)
    error = info.value
    assert [a.target for a in error.attempts] == ["fake/alpha", "backup/beta"]
    assert isinstance(error.errors[1], ProviderOverloaded)
    lines = str(error).splitlines()
    assert lines[0] == "route 'smart' failed after 2 attempt(s):"
    assert lines[1].startswith("  fake/alpha: ProviderUnavailable (HTTP 500)")
    assert lines[2].startswith("  backup/beta: ProviderOverloaded")


def test_context_too_long_on_a_one_target_route_is_catchable_as_itself(gw: Gateway) -> None:
    # It arrived wrapped in AllProvidersFailed, so `except ContextTooLong` missed it.
    fake(gw).script.context_too_long()
    with pytest.raises(ContextTooLong) as info:
        gw.chat.completions.create(model="fake/alpha", messages=HELLO)
    error = info.value
    assert isinstance(error, AllProvidersFailed)  # what it used to be still catches it
    assert [(a.target, a.outcome) for a in error.attempts] == [("fake/alpha", "error")]
    assert error.route == "fake/alpha" and error.reason is None
    assert error.errors == [error.attempts[0].error]
    assert (error.provider, error.model, error.status_code) == ("fake", "alpha", 400)
    assert str(error) == "fake/alpha (HTTP 400): prompt is too long"
    assert repr(error).startswith("ContextTooLong(")
    assert not error.retryable and error.kind == "context_length"


def test_every_target_failing_with_the_same_non_retryable_error_raises_it(gw: Gateway) -> None:
    fake(gw).script.context_too_long()
    fake(gw, "backup").script.context_too_long()
    with pytest.raises(ContextTooLong) as info:
        gw.chat.completions.create(model="smart", messages=HELLO)
    error = info.value
    assert isinstance(error, AllProvidersFailed) and error.route == "smart"
    assert [a.target for a in error.attempts] == ["fake/alpha", "backup/beta"]
    lines = str(error).splitlines()
    assert lines[0] == "backup/beta (HTTP 400): prompt is too long"
    assert lines[1] == "(every target of route 'smart' failed the same way:"


def test_mixed_or_retryable_failures_stay_all_providers_failed(gw: Gateway) -> None:
    fake(gw).script.context_too_long()
    fake(gw, "backup").script.fail(503)
    with pytest.raises(AllProvidersFailed) as info:
        gw.chat.completions.create(model="smart", messages=HELLO)
    # Not also a ProviderError (it is also openai's InternalServerError: issue 21).
    assert not isinstance(info.value, ProviderError)
    fake(gw).script.fail(503)
    with pytest.raises(AllProvidersFailed) as info:
        gw.chat.completions.create(model="fake/alpha", messages=HELLO)
    # Retryable: a retry or later call may work.
    assert not isinstance(info.value, ProviderError)


def test_authentication_error_is_raised_at_once_without_fallback(gw: Gateway) -> None:
    fake(gw).script.fail(401)
    with pytest.raises(AuthenticationFailed):
        gw.chat.completions.create(model="smart", messages=HELLO)
    assert fake(gw, "backup").calls == []


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"n": 2}, "n=2"),
        ({"max_tokens": 0}, "max_tokens must be a positive integer"),
        ({"max_tokens": 10, "max_completion_tokens": 20}, "not both"),
        ({"temperature": 3}, "temperature must be between"),
        ({"top_p": "high"}, "top_p must be a number"),
        ({"stop": [""]}, "stop must be"),
        ({"tools": [{"type": "function"}]}, "tools[0].function"),
        ({"tool_choice": "always"}, "tool_choice"),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        ({"stream_options": {"include_usage": True}}, "only allowed with stream=True"),
        ({"metadata": {"k": 1}}, "metadata"),
        ({"timeout": 0}, "timeout must be more than 0"),
        ({"messages": []}, "messages must not be empty"),
        ({"messages": "hi"}, "messages must be a list"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "no tool_call_id"),
    ],
)
def test_bad_arguments_are_rejected_before_any_provider_call(
    gw: Gateway, kwargs: dict[str, Any], words: str
) -> None:
    args: dict[str, Any] = {"model": "smart", "messages": HELLO, **kwargs}
    with pytest.raises(InvalidRequest) as info:
        gw.chat.completions.create(**args)
    assert words in str(info.value)
    assert fake(gw).calls == []


def test_unknown_keyword_is_an_invalid_request_naming_it(gw: Gateway) -> None:
    # It was a TypeError naming an internal function (build_request).
    with pytest.raises(InvalidRequest) as info:
        gw.chat.completions.create(model="smart", messages=HELLO, frequency_penaltyy=1, foo=2)  # type: ignore[call-overload]
    message = str(info.value)
    assert "'foo', 'frequency_penaltyy'" in message and "build_request" not in message
    assert fake(gw).calls == []


def test_every_openai_argument_is_accepted(gw: Gateway) -> None:
    # Each of these raised a TypeError naming build_request.
    gw.chat.completions.create(
        model="smart",
        messages=HELLO,
        seed=7,
        logprobs=True,
        top_logprobs=3,
        parallel_tool_calls=False,
        frequency_penalty=0.5,
        presence_penalty=-0.5,
        reasoning_effort="low",
        extra_headers={"x-trace": "1"},
        extra_query={"q": "1"},
        logit_bias={"50256": -100},
        service_tier="flex",
        store=True,
        safety_identifier="user-1",
        prompt_cache_key="k",
        verbosity="low",
    )
    request = fake(gw).calls[-1].request
    assert (request.seed, request.logprobs, request.top_logprobs) == (7, True, 3)
    assert request.parallel_tool_calls is False
    assert (request.frequency_penalty, request.presence_penalty) == (0.5, -0.5)
    assert request.reasoning_effort == "low"
    assert request.extra_headers == {"x-trace": "1"} and request.extra_query == {"q": "1"}
    assert request.openai_only == {
        "logit_bias": {"50256": -100},
        "service_tier": "flex",
        "store": True,
        "safety_identifier": "user-1",
        "prompt_cache_key": "k",
        "verbosity": "low",
    }


def test_openai_defaults_and_sdk_sentinels_count_as_not_given(gw: Gateway) -> None:
    from anthropic import NOT_GIVEN as ANTHROPIC_NOT_GIVEN
    from openai import NOT_GIVEN, omit

    gw.chat.completions.create(  # type: ignore[call-overload]
        model="smart",
        messages=HELLO,
        max_tokens=NOT_GIVEN,
        temperature=omit,
        seed=ANTHROPIC_NOT_GIVEN,
        stream=NOT_GIVEN,
        tools=None,
        frequency_penalty=0,
        presence_penalty=0.0,
        logprobs=False,
        parallel_tool_calls=True,
    )
    request = fake(gw).calls[-1].request
    assert request.max_tokens is None and request.temperature is None and request.seed is None
    assert not request.stream
    assert (request.frequency_penalty, request.presence_penalty) == (None, None)
    assert request.logprobs is False and request.parallel_tool_calls is None
    assert request.openai_only is None


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"seed": 1.5}, "seed must be an integer"),
        ({"frequency_penalty": 3}, "frequency_penalty must be between"),
        ({"top_logprobs": 3}, "top_logprobs needs logprobs=True"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs must be from 0 to 20"),
        ({"parallel_tool_calls": "no"}, "parallel_tool_calls must be True or False"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort must be one of"),
        ({"extra_headers": "x"}, "extra_headers must be a dict"),
    ],
)
def test_bad_extra_arguments_are_rejected(gw: Gateway, kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(words)):
        gw.chat.completions.create(model="smart", messages=HELLO, **kwargs)
    assert fake(gw).calls == []


def test_stream_without_include_usage_puts_usage_on_the_finish_chunk(gw: Gateway) -> None:
    chunks = list(gw.chat.completions.create(model="smart", messages=HELLO, stream=True))
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert all(c.choices for c in chunks), "no empty-choices chunk unless include_usage"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "[fake/alpha] You said: Hello there"
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.usage is not None and last.usage.completion_tokens == 9
    assert [c.usage is not None for c in chunks].count(True) == 1


def test_stream_with_include_usage_ends_with_usage_only_chunk(gw: Gateway) -> None:
    stream = gw.chat.completions.create(
        model="smart", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    assert stream.gateway.provider == "fake"
    chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert stream.usage is not None and stream.usage.prompt_tokens == 3


def test_stream_falls_back_when_the_first_target_fails_to_open(gw: Gateway) -> None:
    fake(gw).script.fail(503)
    stream = gw.chat.completions.create(model="smart", messages=HELLO, stream=True)
    assert stream.gateway.provider == "backup"
    assert [a.outcome for a in stream.gateway.attempts] == ["error", "ok"]
    assert "backup/beta" in "".join(c.choices[0].delta.content or "" for c in stream)


def test_stream_close_stops_reading(gw: Gateway) -> None:
    with gw.chat.completions.create(model="smart", messages=HELLO, stream=True) as stream:
        first = next(iter(stream))
        assert first.choices[0].delta.role == "assistant"
    with pytest.raises(StopIteration):
        next(stream)


def test_scripted_tool_calls(gw: Gateway) -> None:
    fake(gw).script.respond(tool_calls=[("get_weather", {"city": "Paris"})])
    resp = gw.chat.completions.create(model="smart", messages=HELLO)
    call = resp.choices[0].message.tool_calls
    assert call is not None and call[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert call[0].function.arguments == '{"city":"Paris"}'  # type: ignore[union-attr]
    assert resp.choices[0].finish_reason == "tool_calls"


def test_scripted_usage_is_reported(gw: Gateway) -> None:
    usage = TokenUsage(
        input_tokens=100,
        output_tokens=20,
        cached_input_tokens=40,
        cache_write_tokens=10,
        reasoning_tokens=5,
    )
    fake(gw).script.respond("ok", usage=usage)
    resp = gw.chat.completions.create(model="smart", messages=HELLO)
    assert resp.usage is not None
    assert resp.usage.prompt_tokens_details is not None
    assert resp.usage.prompt_tokens_details.cached_tokens == 40
    assert resp.usage.prompt_tokens_details.cache_write_tokens == 10
    assert resp.usage.completion_tokens_details is not None
    assert resp.usage.completion_tokens_details.reasoning_tokens == 5


def test_adapter_is_created_once_and_reused(gw: Gateway) -> None:
    gw.chat.completions.create(model="smart", messages=HELLO)
    adapter = gw.adapter("fake")
    gw.chat.completions.create(model="smart", messages=HELLO)
    assert gw.adapter("fake") is adapter and len(fake(gw).calls) == 2


def test_from_config_file(tmp_path: Any) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("providers: {fake: {}}\nroutes: {r: {targets: [fake/m]}}\n")
    with Gateway.from_config(path) as gw:
        assert gw.chat.completions.create(model="r", messages=HELLO).gateway.model == "m"
    assert "routes=[r]" in repr(Gateway(config=str(path)))


def test_no_config_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="no config given"):
        Gateway()


# -- async: the same behaviour ------------------------------------------------------------------


async def test_async_create_and_fallback() -> None:
    agw = AsyncGateway(config=CONFIG, clock=ManualClock())
    fake(agw).script.fail(429)
    resp = await agw.chat.completions.create(model="smart", messages=HELLO)
    assert isinstance(resp, ChatCompletion)
    assert resp.gateway.provider == "backup"
    assert [a.outcome for a in resp.gateway.attempts] == ["error", "ok"]
    await agw.close()


async def test_async_stream_parity_with_sync() -> None:
    agw = AsyncGateway(config=CONFIG, clock=ManualClock())
    gw = Gateway(config=CONFIG, clock=ManualClock())
    stream = await agw.chat.completions.create(model="smart", messages=HELLO, stream=True)
    async_chunks = [c async for c in stream]
    sync_chunks = list(gw.chat.completions.create(model="smart", messages=HELLO, stream=True))

    def shape(chunks: list[ChatCompletionChunk]) -> list[tuple[Any, ...]]:
        return [
            (
                tuple((c.delta.content, c.finish_reason) for c in chunk.choices),
                chunk.usage.total_tokens if chunk.usage else None,
            )
            for chunk in chunks
        ]

    assert shape(async_chunks) == shape(sync_chunks)
    assert stream.usage is not None


async def test_async_errors_match_sync() -> None:
    agw = AsyncGateway(config=CONFIG, clock=ManualClock())
    fake(agw).script.fail(401)
    with pytest.raises(AuthenticationFailed):
        await agw.chat.completions.create(model="smart", messages=HELLO)
    with pytest.raises(InvalidRequest):
        await agw.chat.completions.create(model="smart", messages=HELLO, n=3)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_request_ids_are_random_hex_and_differ_in_a_forked_child() -> None:
    from gateway._client import _new_request_id

    ids = {_new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"gw-[0-9a-f]{32}", i) for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its first id and leave at once
        os.write(write, _new_request_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child_id = os.read(read, 100).decode()
    os.close(read)
    assert re.fullmatch(r"gw-[0-9a-f]{32}", child_id)
    assert child_id != _new_request_id()
