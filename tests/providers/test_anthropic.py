"""The Anthropic adapter against mocked HTTP (pytest-httpx2), sync and async.

Most tests run both ways through the ``mode`` fixture; the sync client is safe to call from the
event loop because the transport is mocked. Bodies come from ``gateway.testing.wire.anthropic``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import httpcore2
import httpx
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from gateway._yaml import MissingEnv
from gateway.config import ProviderConfig
from gateway.errors import (
    AuthenticationFailed,
    ConfigError,
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
from gateway.providers._anthropic_request import THINKING_BUDGETS
from gateway.providers.anthropic import (
    DEFAULT_MAX_TOKENS,
    REFUSAL_MESSAGE,
    AnthropicAdapter,
    build_params,
    map_error,
)
from gateway.providers.base import (
    AsyncChunkStream,
    ChatRequest,
    ChunkStream,
    ProviderAdapter,
    ProviderResponse,
    TokenUsage,
)
from gateway.testing.wire import anthropic as wire
from tests.conftest import CANARY_KEY

URL = wire.MESSAGES_URL
MODEL = "claude-sonnet-4-6"
HELLO = [{"role": "user", "content": "Hello"}]
TIME_TOOL = {"type": "function", "function": {"name": "get_time"}}
PNG_DATA = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"


# ---------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_adapter(**settings: Any) -> AnthropicAdapter:
    config = ProviderConfig(type="anthropic", name="anthropic", api_key=CANARY_KEY, **settings)
    return AnthropicAdapter("anthropic", config)


@pytest.fixture
async def adapter() -> AsyncIterator[AnthropicAdapter]:
    instance = make_adapter()
    yield instance
    instance.close()
    await instance.aclose()


def request(messages: list[dict[str, Any]] | None = None, **fields: Any) -> ChatRequest:
    return ChatRequest(messages=HELLO if messages is None else messages, **fields)


def respond(mock: Any, body: dict[str, Any], url: str = URL) -> Any:
    return mock.post(url).mock(return_value=httpx.Response(200, json=body))


def respond_stream(mock: Any, body: bytes) -> Any:
    headers = {**wire.SSE_HEADERS, "request-id": "req_stream_1"}
    return mock.post(URL).mock(return_value=httpx.Response(200, content=body, headers=headers))


def respond_error(
    mock: Any, status: int, error_type: str | None = None, message: str | None = None, **hdrs: Any
) -> Any:
    body = (
        wire.error_body(error_type, message)
        if error_type is not None
        else wire.error_for_status(status, message)
    )
    response = httpx.Response(status, json=body, headers=wire.error_headers(**hdrs))
    return mock.post(URL).mock(return_value=response)


def sent(route: Any) -> dict[str, Any]:
    """The JSON body of the last request the route received."""
    body: dict[str, Any] = json.loads(route.calls.last.request.content)
    return body


async def complete(adapter: AnthropicAdapter, req: ChatRequest, mode: str) -> ProviderResponse:
    if mode == "sync":
        return adapter.complete(MODEL, req)
    return await adapter.acomplete(MODEL, req)


async def open_stream(
    adapter: AnthropicAdapter, req: ChatRequest, mode: str
) -> ChunkStream | AsyncChunkStream:
    if mode == "sync":
        return adapter.stream(MODEL, req)
    return await adapter.astream(MODEL, req)


async def drain(stream: ChunkStream | AsyncChunkStream) -> list[ChatCompletionChunk]:
    if isinstance(stream, ChunkStream):
        return list(stream)
    return [chunk async for chunk in stream]


async def stream_all(
    adapter: AnthropicAdapter, req: ChatRequest, mode: str
) -> tuple[list[ChatCompletionChunk], ChunkStream | AsyncChunkStream]:
    stream = await open_stream(adapter, req, mode)
    return await drain(stream), stream


async def failure(adapter: AnthropicAdapter, req: ChatRequest, mode: str) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        await complete(adapter, req, mode)
    return info.value


# ---------------------------------------------------------------------------------------------
# The adapter object


def test_registered_and_satisfies_the_protocol() -> None:
    assert load_adapter_class("anthropic") is AnthropicAdapter
    instance = make_adapter()
    assert isinstance(instance, ProviderAdapter)
    assert instance.name == "anthropic"
    assert CANARY_KEY not in repr(instance)


async def test_client_created_once_and_reused(adapter: AnthropicAdapter, httpx2_mock: Any) -> None:
    respond(httpx2_mock, wire.message())
    adapter.complete(MODEL, request())
    client = adapter._client
    adapter.complete(MODEL, request())
    respond_stream(httpx2_mock, wire.stream_body())
    list(adapter.stream(MODEL, request()))
    assert client is not None and adapter._client is client
    respond(httpx2_mock, wire.message())
    await adapter.acomplete(MODEL, request())
    async_client = adapter._async_client
    await adapter.acomplete(MODEL, request())
    respond_stream(httpx2_mock, wire.stream_body())
    [chunk async for chunk in await adapter.astream(MODEL, request())]
    assert async_client is not None and adapter._async_client is async_client
    assert adapter._client is client


async def test_client_options_from_config(httpx2_mock: Any) -> None:
    adapter = make_adapter(
        base_url="https://proxy.example/anthropic",
        headers={"x-team": "search"},
        timeout=30,
        connect_timeout=2,
    )
    route = respond(httpx2_mock, wire.message(), url="https://proxy.example/anthropic/v1/messages")
    adapter.complete(MODEL, request())
    client = adapter._client
    assert client is not None
    assert client.max_retries == 0
    sent_request = route.calls.last.request
    assert sent_request.headers["x-team"] == "search"
    assert sent_request.headers["authorization"] == f"Bearer {CANARY_KEY}"
    assert "anthropic-version" in sent_request.headers
    assert sent_request.headers["x-stainless-timeout"] == "30.0"
    adapter.close()


async def test_request_timeout_overrides_the_config(
    adapter: AnthropicAdapter, httpx2_mock: Any
) -> None:
    route = respond(httpx2_mock, wire.message())
    adapter.complete(MODEL, request(timeout=7.5))
    assert route.calls.last.request.headers["x-stainless-timeout"] == "7.5"
    adapter.complete(MODEL, request())
    assert route.calls.last.request.headers["x-stainless-timeout"] == "600.0"


async def test_large_max_tokens_needs_no_stream(
    adapter: AnthropicAdapter, httpx2_mock: Any
) -> None:
    # With its default timeout the SDK refuses a non-streamed call this large (ValueError).
    route = respond(httpx2_mock, wire.message())
    adapter.complete(MODEL, request(max_tokens=64_000))
    assert sent(route)["max_tokens"] == 64_000


async def test_unset_api_key_env_is_a_config_error(httpx2_mock: Any) -> None:
    missing = MissingEnv(
        variable="ANTHROPIC_KEY_UNSET",
        file="gw.yaml",
        line=3,
        key="providers.anthropic.api_key",
    )
    config = ProviderConfig(type="anthropic", name="anthropic", api_key=missing)
    with pytest.raises(ConfigError, match="ANTHROPIC_KEY_UNSET"):
        AnthropicAdapter("anthropic", config).complete(MODEL, request())
    no_key = ProviderConfig(type="anthropic", name="anthropic")
    with pytest.raises(ConfigError, match="api_key"):
        AnthropicAdapter("anthropic", no_key).complete(MODEL, request())


async def test_close_releases_clients(httpx2_mock: Any) -> None:
    adapter = make_adapter()
    respond(httpx2_mock, wire.message())
    adapter.complete(MODEL, request())
    await adapter.acomplete(MODEL, request())
    adapter.close()
    await adapter.aclose()
    assert adapter._client is None and adapter._async_client is None
    adapter.close()  # closing twice is harmless


# ---------------------------------------------------------------------------------------------
# Requests and responses


async def test_plain_text(adapter: AnthropicAdapter, httpx2_mock: Any, mode: str) -> None:
    route = respond(httpx2_mock, wire.message(text="Hi there", message_id="msg_abc"))
    result = await complete(adapter, request(), mode)
    completion = result.completion
    assert completion.id == "msg_abc"
    assert completion.object == "chat.completion"
    assert completion.model == wire.DEFAULT_MODEL
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hi there"
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert sent(route) == {
        "model": MODEL,
        "max_tokens": DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": "Hello"}],
    }


async def test_system_and_developer_messages_join_in_order(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str
) -> None:
    route = respond(httpx2_mock, wire.message())
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "system", "content": "Now switch to German."},
        {"role": "user", "content": "Again"},
    ]
    await complete(adapter, request(messages), mode)
    body = sent(route)
    assert body["system"] == "Be brief.\n\nAnswer in French.\n\nNow switch to German."
    assert body["messages"] == [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "Again"},
    ]


async def test_multi_turn_merges_consecutive_roles(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str
) -> None:
    route = respond(httpx2_mock, wire.message())
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "First"},
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "Second"}]},
        {"role": "assistant", "content": "One"},
        {"role": "assistant", "content": [{"type": "text", "text": "Two"}]},
        {"role": "user", "content": "Third"},
    ]
    await complete(adapter, request(messages), mode)
    assert sent(route)["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "First"}, {"type": "text", "text": "Second"}],
        },
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "One"}, {"type": "text", "text": "Two"}],
        },
        {"role": "user", "content": "Third"},
    ]


async def test_tools_round_trip(adapter: AnthropicAdapter, httpx2_mock: Any, mode: str) -> None:
    weather_schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    }
    tools: list[dict[str, Any]] = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": weather_schema,
                "strict": True,
            },
        },
        {"type": "function", "function": {"name": "get_time"}},
    ]
    calls = [
        wire.ToolUse("get_weather", {"city": "Paris"}, id="toolu_1"),
        wire.ToolUse("get_time", {}, id="toolu_2"),
    ]
    route = respond(httpx2_mock, wire.message(text="Let me check.", tool_uses=calls))
    result = await complete(adapter, request(tools=tools, tool_choice="required"), mode)
    body = sent(route)
    assert body["tools"] == [
        {
            "name": "get_weather",
            "input_schema": weather_schema,
            "description": "Weather for a city",
            "strict": True,
        },
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert body["tool_choice"] == {"type": "any"}
    choice = result.completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    tool_calls = choice.message.tool_calls
    assert tool_calls is not None
    assert [(c.id, c.type, c.function.name) for c in tool_calls] == [  # type: ignore[union-attr]
        ("toolu_1", "function", "get_weather"),
        ("toolu_2", "function", "get_time"),
    ]
    assert json.loads(tool_calls[0].function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]

    # Send the calls back with their results: two tool messages become ONE user turn.
    history = [
        *HELLO,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C and sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "noon"}]},
        {"role": "user", "content": "Thanks! Summarise."},
    ]
    route = respond(httpx2_mock, wire.message(text="Sunny at noon."))
    result = await complete(adapter, request(history, tools=tools), mode)
    assert result.completion.choices[0].message.content == "Sunny at noon."
    assert sent(route)["messages"] == [
        {"role": "user", "content": "Hello"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C and sunny"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": "noon"}],
                },
                {"type": "text", "text": "Thanks! Summarise."},
            ],
        },
    ]


@pytest.mark.parametrize(
    ("choice", "native"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_time"}},
            {"type": "tool", "name": "get_time"},
        ),
    ],
)
def test_tool_choice(choice: Any, native: dict[str, str]) -> None:
    tools = [{"type": "function", "function": {"name": "get_time"}}]
    assert build_params(MODEL, request(tools=tools, tool_choice=choice))["tool_choice"] == native


async def test_tool_choice_without_tools_is_not_sent(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str
) -> None:
    # Anthropic answers 400 to a tool_choice with no tools; OpenAI ignores it.
    route = respond(httpx2_mock, wire.message())
    for choice in ("auto", "none", "required", {"type": "function", "function": {"name": "f"}}):
        await complete(adapter, request(tool_choice=choice), mode)
        body = sent(route)
        assert "tool_choice" not in body and "tools" not in body


def test_assistant_tool_call_without_text_sends_no_empty_text() -> None:
    messages: list[dict[str, Any]] = [
        *HELLO,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "f", "arguments": ""}}
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": ""},
    ]
    params = build_params(MODEL, request(messages))
    assert params["messages"][1:] == [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
    ]


async def test_image_input(adapter: AnthropicAdapter, httpx2_mock: Any, mode: str) -> None:
    route = respond(httpx2_mock, wire.message())
    content = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_DATA}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
    ]
    await complete(adapter, request([{"role": "user", "content": content}]), mode)
    assert sent(route)["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG_DATA},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            ],
        }
    ]


async def test_json_schema_output(adapter: AnthropicAdapter, httpx2_mock: Any, mode: str) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    route = respond(httpx2_mock, wire.message(text='{"answer": "42"}'))
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True},
    }
    result = await complete(adapter, request(response_format=response_format), mode)
    assert json.loads(result.completion.choices[0].message.content or "") == {"answer": "42"}
    assert sent(route)["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


async def test_json_schema_goes_through_the_sdks_schema_transform(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str
) -> None:
    # A schema as OpenAI users write it: no additionalProperties, constraints Claude's
    # structured output does not take (minimum, pattern).
    schema = {
        "type": "object",
        "properties": {
            "age": {"type": "integer", "minimum": 0},
            "email": {"type": "string", "format": "email"},
            "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}},
            "address": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        "required": ["age"],
    }
    original = json.loads(json.dumps(schema))
    route = respond(httpx2_mock, wire.message(text='{"age": 3}'))
    response_format = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}
    await complete(adapter, request(response_format=response_format), mode)
    native = sent(route)["output_config"]["format"]["schema"]
    assert native == anthropic.transform_schema(original)
    assert native["additionalProperties"] is False
    assert native["properties"]["address"]["additionalProperties"] is False
    assert "minimum" not in native["properties"]["age"]
    assert "minimum: 0" in native["properties"]["age"]["description"]
    assert native["properties"]["email"]["format"] == "email"
    assert schema == original  # the caller's schema is not changed


async def test_json_mode_is_refused_before_any_call(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str
) -> None:
    # Claude's structured output needs a schema with the object's properties: {"type":
    # "object"} is refused by the API (or, made strict, allows only {}).
    route = respond(httpx2_mock, wire.message(text="{}"))
    with pytest.raises(InvalidRequest) as info:
        await complete(adapter, request(response_format={"type": "json_object"}), mode)
    assert "json_object" in str(info.value) and "json_schema" in str(info.value)
    assert info.value.provider == "anthropic" and info.value.model == MODEL
    assert route.call_count == 0
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"minimum": 1}}}
    with pytest.raises(InvalidRequest, match=r"json_schema\.schema"):
        await complete(adapter, request(response_format=bad), mode)
    assert route.call_count == 0
    await complete(adapter, request(response_format={"type": "text"}), mode)
    assert "output_config" not in sent(route)


async def test_stop_max_tokens_sampling_user_and_extra_body(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str
) -> None:
    route = respond(httpx2_mock, wire.message())
    req = request(
        stop=["\n\n", "END"],
        max_tokens=321,
        temperature=0.3,
        top_p=0.9,
        user="user-42",
        metadata={"feature": "search"},
        response_format={"type": "json_schema", "json_schema": {"schema": {"type": "object"}}},
        extra_body={"top_k": 5, "output_config": {"effort": "low"}, "temperature": 0.1},
    )
    await complete(adapter, req, mode)
    body = sent(route)
    assert body["stop_sequences"] == ["END"]  # "\n\n" is whitespace only: dropped
    assert body["max_tokens"] == 321
    assert body["temperature"] == 0.1  # extra_body's sampling replaces the translated one
    assert "top_p" not in body
    assert body["top_k"] == 5
    assert body["metadata"] == {"user_id": "user-42"}  # OpenAI metadata has no equivalent
    assert body["output_config"] == {
        "format": {
            "type": "json_schema",
            "schema": {"type": "object", "properties": {}, "additionalProperties": False},
        },
        "effort": "low",
    }


async def test_whitespace_only_stop_sequences_are_dropped(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str
) -> None:
    # Anthropic answers 400 "stop_sequences: each stop sequence must contain non-whitespace".
    route = respond(httpx2_mock, wire.message())
    await complete(adapter, request(stop=["\n", "END", " \t", "\nUser:"]), mode)
    assert sent(route)["stop_sequences"] == ["END", "\nUser:"]
    await complete(adapter, request(stop=["\n\n"]), mode)
    assert "stop_sequences" not in sent(route)


async def test_temperature_and_top_p_together_send_only_temperature(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str
) -> None:
    # Current Claude models answer 400 to both; an OpenAI-shaped call with both must work.
    route = respond(httpx2_mock, wire.message())
    await complete(adapter, request(temperature=0.3, top_p=0.9), mode)
    body = sent(route)
    assert body["temperature"] == 0.3
    assert "top_p" not in body
    await complete(adapter, request(top_p=0.9), mode)
    assert sent(route)["top_p"] == 0.9
    assert "temperature" not in sent(route)
    await complete(adapter, request(temperature=0.3, extra_body={"top_p": 0.5}), mode)
    assert sent(route)["top_p"] == 0.5
    assert "temperature" not in sent(route)


async def test_openai_range_temperature_is_clamped_to_anthropics(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str
) -> None:
    route = respond(httpx2_mock, wire.message())
    await complete(adapter, request(temperature=1.7), mode)
    assert sent(route)["temperature"] == 1.0
    await complete(adapter, request(temperature=0.4), mode)
    assert sent(route)["temperature"] == 0.4


async def test_openai_arguments_without_an_equivalent_are_refused_before_any_call(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str
) -> None:
    # No route is mocked: a request that reached HTTP would fail the test with another error.
    req = request(
        seed=7, logprobs=True, top_logprobs=2, presence_penalty=0.5, openai_only={"logit_bias": {}}
    )
    with pytest.raises(InvalidRequest) as info:
        await complete(adapter, req, mode)
    message = str(info.value)
    assert message.startswith(f"anthropic/{MODEL}: ")
    assert "seed, presence_penalty, logprobs, top_logprobs, logit_bias have no equivalent" in (
        message
    )
    assert "on Anthropic" in message
    with pytest.raises(InvalidRequest, match=r"^anthropic/.*: frequency_penalty has no equival"):
        await complete(adapter, request(frequency_penalty=-1.0), mode)


async def test_openai_request_labels_are_dropped_or_mapped(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str
) -> None:
    route = respond(httpx2_mock, wire.message())
    labels = {"store": True, "prompt_cache_key": "k", "safety_identifier": "hashed-user"}
    await complete(adapter, request(openai_only=labels), mode)
    body = sent(route)
    assert body["metadata"] == {"user_id": "hashed-user"}
    assert not {"store", "prompt_cache_key", "safety_identifier"} & body.keys()
    await complete(adapter, request(user="u-1", openai_only=labels), mode)
    assert sent(route)["metadata"] == {"user_id": "u-1"}


@pytest.mark.parametrize(
    ("tool_choice", "native"),
    [
        (None, {"type": "auto", "disable_parallel_tool_use": True}),
        ("auto", {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", {"type": "any", "disable_parallel_tool_use": True}),
        (
            {"type": "function", "function": {"name": "get_time"}},
            {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True},
        ),
        ("none", {"type": "none"}),
    ],
)
async def test_parallel_tool_calls_false_disables_parallel_tool_use(
    adapter: AnthropicAdapter, httpx2_mock: Any, tool_choice: Any, native: dict[str, Any]
) -> None:
    route = respond(httpx2_mock, wire.message())
    req = request(tools=[TIME_TOOL], tool_choice=tool_choice, parallel_tool_calls=False)
    adapter.complete(MODEL, req)
    assert sent(route)["tool_choice"] == native
    adapter.complete(MODEL, request(parallel_tool_calls=False))  # no tools: nothing to disable
    assert "tool_choice" not in sent(route)


async def test_reasoning_effort_becomes_a_thinking_budget(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str
) -> None:
    route = respond(httpx2_mock, wire.message(thinking="hmm"))
    await complete(adapter, request(reasoning_effort="medium", temperature=0.5, top_p=0.9), mode)
    body = sent(route)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": THINKING_BUDGETS["medium"]}
    # Without the caller's max_tokens, the answer keeps its default room beside the budget.
    assert body["max_tokens"] == DEFAULT_MAX_TOKENS + THINKING_BUDGETS["medium"]
    assert "temperature" not in body and "top_p" not in body  # Claude refuses them when thinking
    # Thinking counts inside max_tokens (OpenAI's max_completion_tokens counts reasoning too).
    await complete(adapter, request(reasoning_effort="high", max_tokens=6000), mode)
    assert (sent(route)["thinking"]["budget_tokens"], sent(route)["max_tokens"]) == (3000, 6000)
    await complete(adapter, request(reasoning_effort="minimal", max_tokens=1500), mode)
    assert sent(route)["thinking"]["budget_tokens"] == 1024
    await complete(adapter, request(reasoning_effort="none", temperature=0.5), mode)
    assert "thinking" not in sent(route) and sent(route)["temperature"] == 0.5
    with pytest.raises(InvalidRequest, match="reasoning_effort needs max_tokens above 1024"):
        await complete(adapter, request(reasoning_effort="low", max_tokens=1024), mode)
    assert route.call_count == 4


async def test_reasoning_effort_leaves_thinking_out_where_claude_cannot_take_it(
    adapter: AnthropicAdapter, httpx2_mock: Any
) -> None:
    route = respond(httpx2_mock, wire.message())
    # A forced tool choice: Claude refuses it with thinking.
    adapter.complete(
        MODEL, request(tools=[TIME_TOOL], tool_choice="required", reasoning_effort="high")
    )
    assert "thinking" not in sent(route) and sent(route)["max_tokens"] == DEFAULT_MAX_TOKENS
    # A tool-use turn continued: Claude would want its thinking blocks back.
    call = {"id": "t1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    history: list[dict[str, Any]] = [
        *HELLO,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "t1", "content": "noon"},
    ]
    adapter.complete(MODEL, request(history, tools=[TIME_TOOL], reasoning_effort="high"))
    assert "thinking" not in sent(route)
    # A new user turn after a plain answer: thinking is on.
    history = [*HELLO, {"role": "assistant", "content": "Hi"}, {"role": "user", "content": "?"}]
    adapter.complete(MODEL, request(history, tools=[TIME_TOOL], reasoning_effort="high"))
    assert sent(route)["thinking"]["type"] == "enabled"


async def test_extra_headers_and_query_reach_the_request(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str
) -> None:
    route = httpx2_mock.post(url__startswith=URL).mock(
        return_value=httpx.Response(200, json=wire.message())
    )
    req = request(extra_headers={"x-trace": "t-1"}, extra_query={"beta": "true"})
    await complete(adapter, req, mode)
    sent_request = route.calls.last.request
    assert sent_request.headers["x-trace"] == "t-1"
    assert sent_request.url.params["beta"] == "true"


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("some_future_reason", "stop"),
    ],
)
async def test_finish_reasons(
    adapter: AnthropicAdapter, httpx2_mock: Any, stop_reason: str, finish_reason: str
) -> None:
    respond(httpx2_mock, wire.message(stop_reason=stop_reason))
    result = adapter.complete(MODEL, request())
    assert result.completion.choices[0].finish_reason == finish_reason


async def test_refusal_sets_message_refusal(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str
) -> None:
    respond(httpx2_mock, wire.message(text="I can", stop_reason="refusal"))
    choice = (await complete(adapter, request(), mode)).completion.choices[0]
    assert choice.finish_reason == "content_filter"
    assert choice.message.refusal == REFUSAL_MESSAGE
    assert choice.message.content == "I can"  # what was written before the refusal stays
    respond(httpx2_mock, wire.message(text="Hi"))
    assert (await complete(adapter, request(), mode)).completion.choices[0].message.refusal is None


async def test_stream_refusal_sets_the_delta_refusal(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str
) -> None:
    respond_stream(httpx2_mock, wire.stream_body(text_chunks=["I can"], stop_reason="refusal"))
    chunks, _ = await stream_all(adapter, request(), mode)
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(chunk)
    # (get_final_completion() raises ContentFilterFinishReasonError here, as for OpenAI)
    choice = state.current_completion_snapshot.choices[0]
    assert choice.finish_reason == "content_filter"
    assert choice.message.refusal == REFUSAL_MESSAGE
    assert choice.message.content == "I can"


async def test_usage_with_cache_and_reasoning(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str
) -> None:
    usage = wire.usage(
        20, 57, cache_creation_input_tokens=100, cache_read_input_tokens=300, thinking_tokens=40
    )
    respond(httpx2_mock, wire.message(text="Done", thinking="Let me think...", usage=usage))
    result = await complete(adapter, request(), mode)
    assert result.usage == TokenUsage(
        input_tokens=420,
        output_tokens=57,
        cached_input_tokens=300,
        cache_write_tokens=100,
        reasoning_tokens=40,
    )
    assert result.completion.choices[0].message.content == "Done"  # thinking skipped
    completion_usage = result.completion.usage
    assert completion_usage is not None
    assert (completion_usage.prompt_tokens, completion_usage.completion_tokens) == (420, 57)
    assert completion_usage.total_tokens == 477
    assert completion_usage.prompt_tokens_details is not None
    assert completion_usage.prompt_tokens_details.cached_tokens == 300
    assert completion_usage.completion_tokens_details is not None
    assert completion_usage.completion_tokens_details.reasoning_tokens == 40


async def test_only_tool_calls_gives_null_content(
    adapter: AnthropicAdapter, httpx2_mock: Any
) -> None:
    respond(httpx2_mock, wire.message(text=None, tool_uses=[wire.ToolUse("f", {"a": [1, 2]})]))
    message = adapter.complete(MODEL, request()).completion.choices[0].message
    assert message.content is None
    assert message.tool_calls is not None
    assert json.loads(message.tool_calls[0].function.arguments) == {"a": [1, 2]}  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------
# What cannot be translated


@pytest.mark.parametrize(
    ("messages", "fields", "names"),
    [
        (
            [
                *HELLO,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "t",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{oops"},
                        }
                    ],
                },
            ],
            {},
            "messages[1].tool_calls[0].function.arguments is not valid JSON",
        ),
        (
            [
                *HELLO,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "t",
                            "type": "function",
                            "function": {"name": "f", "arguments": "[1]"},
                        }
                    ],
                },
            ],
            {},
            "messages[1].tool_calls[0].function.arguments must be a JSON object",
        ),
        (
            [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}],
            {},
            "messages[0].content[0]: content part type 'input_audio'",
        ),
        (
            [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
            {},
            "messages[0].content[0]",
        ),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}],
            {},
            "messages[0].content[0]: image URLs must be https://",
        ),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:x"}}]}],
            {},
            "messages[0].content[0]: image data URLs must look like",
        ),
        ([{"role": "function", "name": "f", "content": "x"}], {}, "messages[0]: role 'function'"),
        (
            [{"role": "tool", "content": "x"}],
            {},
            "messages[0]: a tool message needs a tool_call_id",
        ),
        (HELLO, {"tools": [{"type": "custom", "custom": {}}]}, "tools[0]"),
        (HELLO, {"tools": [TIME_TOOL], "tool_choice": "sometimes"}, "tool_choice"),
        (HELLO, {"response_format": {"type": "yaml"}}, "response_format type 'yaml'"),
        (HELLO, {"response_format": {"type": "json_schema", "json_schema": {}}}, "schema"),
    ],
)
async def test_untranslatable_requests_are_invalid(
    adapter: AnthropicAdapter,
    httpx2_mock: Any,
    mode: str,
    messages: list[dict[str, Any]],
    fields: dict[str, Any],
    names: str,
) -> None:
    error = await failure(adapter, request(messages, **fields), mode)
    assert isinstance(error, InvalidRequest)
    assert names in str(error)
    assert error.provider == "anthropic" and error.model == MODEL
    assert httpx2_mock.calls.call_count == 0


# ---------------------------------------------------------------------------------------------
# Streaming


async def test_stream_text(adapter: AnthropicAdapter, httpx2_mock: Any, mode: str) -> None:
    usage = wire.usage(30, 12, cache_read_input_tokens=50, cache_creation_input_tokens=5)
    route = respond_stream(
        httpx2_mock,
        wire.stream_body(text_chunks=["Hel", "lo", "!"], usage=usage, message_id="msg_s"),
    )
    chunks, stream = await stream_all(adapter, request(), mode)
    body = sent(route)
    assert body["stream"] is True and body["messages"] == [{"role": "user", "content": "Hello"}]
    first = chunks[0]
    assert first.object == "chat.completion.chunk" and first.id == "msg_s"
    assert first.choices[0].delta.role == "assistant"
    texts = [c.choices[0].delta.content for c in chunks[1:-2]]
    assert texts == ["Hel", "lo", "!"]
    finish = chunks[-2]
    assert finish.choices[0].finish_reason == "stop"
    assert finish.choices[0].delta.content is None
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (85, 12)
    assert stream.usage == TokenUsage(
        input_tokens=85, output_tokens=12, cached_input_tokens=50, cache_write_tokens=5
    )
    assert stream.content_chunks == 3
    assert {c.id for c in chunks} == {"msg_s"}
    assert {c.model for c in chunks} == {wire.DEFAULT_MODEL}


async def test_stream_tool_calls(adapter: AnthropicAdapter, httpx2_mock: Any, mode: str) -> None:
    calls = [
        wire.ToolUse("get_weather", {"city": "Paris", "unit": "celsius"}, id="toolu_a"),
        wire.ToolUse("get_time", {"zone": "CET"}, id="toolu_b"),
    ]
    body = wire.stream_body(
        text_chunks=["Checking."], tool_uses=calls, thinking="hmm", json_fragment_size=5
    )
    respond_stream(httpx2_mock, body)
    chunks, stream = await stream_all(adapter, request(), mode)
    deltas = [c.choices[0].delta for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    heads = [d.tool_calls[0] for d in deltas if d.tool_calls and d.tool_calls[0].id]
    assert [(h.index, h.id, h.type) for h in heads] == [
        (0, "toolu_a", "function"),
        (1, "toolu_b", "function"),
    ]
    assert [h.function.name for h in heads if h.function] == ["get_weather", "get_time"]
    arguments: dict[int, str] = {0: "", 1: ""}
    for delta in deltas:
        for call in delta.tool_calls or []:
            if call.function and call.function.arguments:
                arguments[call.index] += call.function.arguments
    assert json.loads(arguments[0]) == {"city": "Paris", "unit": "celsius"}
    assert json.loads(arguments[1]) == {"zone": "CET"}
    # Later fragments carry only index and arguments, as OpenAI sends them.
    fragment = deltas[1].tool_calls[0]  # type: ignore[index]
    assert fragment.id is None and fragment.type is None and fragment.function is not None
    assert fragment.function.name is None
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert texts == ["Checking."]  # the thinking block is not content
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].choices == [] and stream.usage is not None
    # 1 text delta + per call: 1 head + its fragments
    fragments = sum(1 for d in deltas for c in d.tool_calls or [] if c.id is None)
    assert stream.content_chunks == 1 + 2 + fragments


async def test_stream_tool_call_without_arguments_streams_an_empty_object(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str
) -> None:
    # Anthropic streams no argument fragment for a call with no input (non-streamed: "{}").
    calls = [wire.ToolUse("get_time", {}, id="toolu_a"), wire.ToolUse("get_date", {}, id="toolu_b")]
    respond_stream(httpx2_mock, wire.stream_body(text_chunks=[], tool_uses=calls))
    chunks, _ = await stream_all(adapter, request(), mode)

    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(chunk)
    message = state.get_final_completion().choices[0].message
    assert message.tool_calls is not None
    assert [(c.id, c.function.arguments) for c in message.tool_calls] == [
        ("toolu_a", "{}"),
        ("toolu_b", "{}"),
    ]
    assert all(json.loads(c.function.arguments) == {} for c in message.tool_calls)


async def test_stream_usage_counts_replace_not_add(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str
) -> None:
    usage = wire.usage(10, 90, cache_read_input_tokens=7, thinking_tokens=60)
    respond_stream(httpx2_mock, wire.stream_body(usage=usage, cumulative_delta_usage=True))
    chunks, stream = await stream_all(adapter, request(), mode)
    assert stream.usage == TokenUsage(
        input_tokens=17, output_tokens=90, cached_input_tokens=7, reasoning_tokens=60
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 90


async def test_stream_without_message_stop_still_ends_with_usage(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str
) -> None:
    events = wire.stream_events()
    respond_stream(httpx2_mock, wire.encode_sse(events[:-1]))
    chunks, stream = await stream_all(adapter, request(), mode)
    assert chunks[-1].choices == [] and stream.usage is not None


async def test_stream_cut_before_the_end_is_a_connection_error(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str
) -> None:
    events = wire.stream_events(text_chunks=["a", "b"])
    cut = [e for e in events if e["type"] != "message_delta"][:-2]
    respond_stream(httpx2_mock, wire.encode_sse(cut))
    stream = await open_stream(adapter, request(), mode)
    with pytest.raises(ProviderConnectionError) as info:
        await drain(stream)
    assert info.value.chunks_received == 2


@pytest.mark.parametrize(
    ("error_type", "expected"),
    [
        ("overloaded_error", ProviderOverloaded),
        ("api_error", ProviderUnavailable),
        ("rate_limit_error", RateLimited),
        ("invalid_request_error", InvalidRequest),
        ("brand_new_error", ProviderUnavailable),
    ],
)
async def test_error_event_inside_a_200_stream(
    adapter: AnthropicAdapter,
    httpx2_mock: Any,
    mode: str,
    error_type: str,
    expected: type[ProviderError],
) -> None:
    body = wire.stream_body(text_chunks=["partial", "more"], error=wire.error_event(error_type))
    respond_stream(httpx2_mock, body)
    stream = await open_stream(adapter, request(), mode)
    received: list[ChatCompletionChunk] = []
    with pytest.raises(ProviderError) as info:
        if isinstance(stream, ChunkStream):
            for chunk in stream:
                received.append(chunk)
        else:
            async for chunk in stream:
                received.append(chunk)
    error = info.value
    assert type(error) is expected
    assert error.code == error_type
    assert error.request_id == "req_stream_1"
    assert error.status_code is None
    assert error.__cause__ is None and error.__suppress_context__
    assert [c.choices[0].delta.content for c in received] == ["", "partial"]
    if isinstance(error, ProviderUnavailable):
        assert error.chunks_received == 1
    assert stream.usage is None


async def test_stream_broken_by_the_transport(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str
) -> None:
    head = wire.encode_sse(wire.stream_events()[:3])

    def body() -> Iterator[bytes]:
        yield head
        raise httpcore2.ReadError("connection reset by peer")

    async def abody() -> AsyncIterator[bytes]:
        yield head
        raise httpcore2.ReadError("connection reset by peer")

    content: Any = body() if mode == "sync" else abody()
    httpx2_mock.post(URL).mock(
        return_value=httpx.Response(200, content=content, headers=wire.SSE_HEADERS)
    )
    stream = await open_stream(adapter, request(), mode)
    with pytest.raises(ProviderConnectionError) as info:
        await drain(stream)
    assert info.value.chunks_received == 0
    assert info.value.__cause__ is None


async def test_stream_read_timeout(adapter: AnthropicAdapter, httpx2_mock: Any, mode: str) -> None:
    head = wire.encode_sse(wire.stream_events()[:4])

    def body() -> Iterator[bytes]:
        yield head
        raise httpcore2.ReadTimeout("timed out")

    async def abody() -> AsyncIterator[bytes]:
        yield head
        raise httpcore2.ReadTimeout("timed out")

    content: Any = body() if mode == "sync" else abody()
    httpx2_mock.post(URL).mock(
        return_value=httpx.Response(200, content=content, headers=wire.SSE_HEADERS)
    )
    stream = await open_stream(adapter, request(), mode)
    with pytest.raises(ProviderTimeout):
        await drain(stream)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(529, ProviderOverloaded), (401, AuthenticationFailed), (429, RateLimited)],
)
async def test_stream_http_error_raises_before_iteration(
    adapter: AnthropicAdapter,
    httpx2_mock: Any,
    mode: str,
    status: int,
    expected: type[ProviderError],
) -> None:
    route = respond_error(httpx2_mock, status, retry_after=2)
    with pytest.raises(expected) as info:
        await open_stream(adapter, request(), mode)
    assert info.value.status_code == status
    assert info.value.retry_after == 2.0
    assert route.call_count == 1


@pytest.fixture
def closed_streams(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records ``response.is_closed`` each time an SDK stream is closed."""
    closed: list[bool] = []
    sync_close, async_close = anthropic.Stream.close, anthropic.AsyncStream.close

    def spy(native: anthropic.Stream[Any]) -> None:
        sync_close(native)
        closed.append(native.response.is_closed)

    async def aspy(native: anthropic.AsyncStream[Any]) -> None:
        await async_close(native)
        closed.append(native.response.is_closed)

    monkeypatch.setattr(anthropic.Stream, "close", spy)
    monkeypatch.setattr(anthropic.AsyncStream, "close", aspy)
    return closed


async def next_chunk(stream: ChunkStream | AsyncChunkStream) -> ChatCompletionChunk:
    if isinstance(stream, ChunkStream):
        return next(stream)
    return await stream.__anext__()


async def test_stream_close_releases_the_response(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str, closed_streams: list[bool]
) -> None:
    respond_stream(httpx2_mock, wire.stream_body(text_chunks=["a", "b", "c"]))
    stream = await open_stream(adapter, request(), mode)
    first = await next_chunk(stream)
    assert first.choices[0].delta.role == "assistant"
    assert closed_streams == []
    if isinstance(stream, ChunkStream):
        stream.close()
    else:
        await stream.aclose()
    assert await drain(stream) == []
    assert closed_streams and all(closed_streams)


async def test_stream_releases_the_response_with_the_usage_chunk(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str, closed_streams: list[bool]
) -> None:
    respond_stream(httpx2_mock, wire.stream_body())
    stream = await open_stream(adapter, request(), mode)
    chunk = await next_chunk(stream)
    while chunk.choices:
        chunk = await next_chunk(stream)
    assert chunk.usage is not None
    assert closed_streams == [True]  # before the caller asks for more


# ---------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("status", "error_type", "message", "expected", "code"),
    [
        (401, None, None, AuthenticationFailed, "authentication_error"),
        (403, None, None, AuthenticationFailed, "permission_error"),
        (
            400,
            "invalid_request_error",
            "prompt is too long: 210000 tokens > 200000 maximum",
            ContextTooLong,
            "invalid_request_error",
        ),
        (400, None, "max_tokens: must be positive", InvalidRequest, "invalid_request_error"),
        (404, None, "model: claude-nope", InvalidRequest, "not_found_error"),
        (409, None, None, InvalidRequest, "conflict_error"),
        (413, None, None, InvalidRequest, "request_too_large"),
        (422, "invalid_request_error", None, InvalidRequest, "invalid_request_error"),
        (429, None, None, RateLimited, "rate_limit_error"),
        (402, None, None, RateLimited, "insufficient_quota"),
        (400, "billing_error", "credit balance too low", RateLimited, "insufficient_quota"),
        (408, "timeout_error", None, ProviderTimeout, "timeout_error"),
        (500, None, None, ProviderUnavailable, "api_error"),
        (502, None, None, ProviderUnavailable, "api_error"),
        (503, None, None, ProviderUnavailable, "api_error"),
        (504, None, None, ProviderUnavailable, "timeout_error"),
        (599, None, None, ProviderUnavailable, "api_error"),
        (529, None, None, ProviderOverloaded, "overloaded_error"),
        (503, "overloaded_error", None, ProviderOverloaded, "overloaded_error"),
    ],
)
async def test_http_errors(
    adapter: AnthropicAdapter,
    httpx2_mock: Any,
    mode: str,
    status: int,
    error_type: str | None,
    message: str | None,
    expected: type[ProviderError],
    code: str,
) -> None:
    route = respond_error(httpx2_mock, status, error_type, message, request_id="req_err")
    error = await failure(adapter, request(), mode)
    assert type(error) is expected
    assert isinstance(error, ProviderError)
    assert error.status_code == status
    assert error.code == code
    assert error.request_id == "req_err"
    assert error.provider == "anthropic" and error.model == MODEL
    assert error.retry_after is None
    assert error.__cause__ is None and error.__suppress_context__
    if message:
        assert message in str(error)
    assert "Error code" not in str(error)  # the provider's message, not the SDK's dump
    assert route.call_count == 1  # SDK retries are off


async def test_request_id_from_the_body_when_the_header_is_missing(
    adapter: AnthropicAdapter, httpx2_mock: Any
) -> None:
    response = httpx.Response(500, json=wire.error_for_status(500, request_id="req_body"))
    httpx2_mock.post(URL).mock(return_value=response)
    with pytest.raises(ProviderUnavailable) as info:
        adapter.complete(MODEL, request())
    assert info.value.request_id == "req_body"


async def test_non_json_error_body(adapter: AnthropicAdapter, httpx2_mock: Any) -> None:
    httpx2_mock.post(URL).mock(return_value=httpx.Response(502, text="<html>Bad gateway</html>"))
    with pytest.raises(ProviderUnavailable, match="Bad gateway") as info:
        adapter.complete(MODEL, request())
    assert info.value.status_code == 502 and info.value.code is None


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry_after": 3}, 3.0),
        ({"retry_after_ms": 1500}, 1.5),
        ({"retry_after": 7, "retry_after_ms": 250}, 0.25),
        ({"retry_after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
    ],
)
async def test_retry_after(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str, headers: dict[str, Any], seconds: float
) -> None:
    respond_error(httpx2_mock, 429, **headers)
    error = await failure(adapter, request(), mode)
    assert isinstance(error, RateLimited)
    assert error.retry_after == seconds


async def test_overloaded_529_with_retry_after(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str
) -> None:
    route = respond_error(httpx2_mock, 529, retry_after=5)
    error = await failure(adapter, request(), mode)
    assert isinstance(error, ProviderOverloaded) and error.retry_after == 5.0
    assert error.kind == "overloaded" and error.retryable
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("exception", "expected"),
    [
        (httpcore2.ReadTimeout("read timed out"), ProviderTimeout),
        (httpcore2.ConnectTimeout("connect timed out"), ProviderTimeout),
        (httpcore2.ConnectError("name resolution failed"), ProviderConnectionError),
        (httpcore2.RemoteProtocolError("peer closed"), ProviderConnectionError),
    ],
)
async def test_transport_failures(
    adapter: AnthropicAdapter,
    httpx2_mock: Any,
    mode: str,
    exception: Exception,
    expected: type[ProviderError],
) -> None:
    route = httpx2_mock.post(URL).mock(side_effect=exception)
    error = await failure(adapter, request(), mode)
    assert type(error) is expected
    assert error.__cause__ is None
    assert route.call_count == 1
    with pytest.raises(expected):
        await open_stream(adapter, request(), mode)


async def test_canary_key_never_leaks(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str
) -> None:
    echoed = f"invalid x-api-key: {CANARY_KEY} (Authorization: Bearer {CANARY_KEY})"
    scenarios = [
        httpx.Response(401, json=wire.error_body("authentication_error", echoed)),
        httpx.Response(400, json=wire.error_body("invalid_request_error", echoed)),
        httpx.Response(500, text=echoed),
    ]
    for response in scenarios:
        httpx2_mock.post(URL).mock(return_value=response)
        error = await failure(adapter, request(), mode)
        for text in (str(error), repr(error), error.message, getattr(error, "detail", "")):
            assert CANARY_KEY not in text
        assert error.__cause__ is None and error.__context__ is None  # no SDK exception kept
        assert error.__suppress_context__
    body = wire.stream_body(error=wire.error_event("api_error", echoed))
    respond_stream(httpx2_mock, body)
    stream = await open_stream(adapter, request(), mode)
    with pytest.raises(ProviderUnavailable) as info:
        await drain(stream)
    assert CANARY_KEY not in str(info.value) and CANARY_KEY not in repr(info.value)
    httpx2_mock.post(URL).mock(side_effect=httpcore2.ConnectError(f"failed for {CANARY_KEY}"))
    error = await failure(adapter, request(), mode)
    assert CANARY_KEY not in str(error) and CANARY_KEY not in repr(error)


def test_map_error_ignores_foreign_exceptions() -> None:
    assert map_error(ValueError("nope"), provider="anthropic", model=MODEL) is None
    assert map_error(KeyError("x"), provider="anthropic", model=MODEL) is None


def test_map_error_keys_on_status_for_unknown_sdk_subclasses() -> None:
    class FutureTeapotError(anthropic.APIStatusError):
        pass

    request_ = httpx2_request()
    for status, expected in [(418, InvalidRequest), (507, ProviderUnavailable)]:
        response = httpx2_response(status, request_)
        exc = FutureTeapotError("teapot", response=response, body=None)
        mapped = map_error(exc, provider="anthropic", model=MODEL)
        assert type(mapped) is expected


def httpx2_request() -> Any:
    import httpx2

    return httpx2.Request("POST", URL)


def httpx2_response(status: int, req: Any) -> Any:
    import httpx2

    return httpx2.Response(status, request=req)


def test_map_error_credentials_error() -> None:
    mapped = map_error(anthropic.CredentialsError("no profile"), provider="a", model=MODEL)
    assert isinstance(mapped, AuthenticationFailed)


@pytest.mark.parametrize(
    "content",
    [b"<html>502 from a proxy</html>", b'["not", "a", "message"]'],
    ids=["not-json", "not-an-object"],
)
async def test_a_200_whose_body_is_not_a_message_is_a_provider_failure(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str, content: bytes
) -> None:
    """The body is read as JSON by the adapter (not through the SDK's Message model), so a
    broken one must still come out as a gateway error that falls back, not a crash."""
    httpx2_mock.post(URL).mock(
        return_value=httpx.Response(
            200, content=content, headers={"content-type": "application/json"}
        )
    )
    error = await failure(adapter, request(), mode)
    assert isinstance(error, ProviderUnavailable)
    assert error.provider == "anthropic" and error.retryable
