"""The OpenAI adapter against mocked HTTP (pytest-httpx2), sync and async.

Every test runs both ways through the ``mode`` fixture; the sync client is safe to call from
the event loop because the transport is mocked.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpcore2
import httpx
import openai
import pytest

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
from gateway.providers.base import (
    AsyncChunkStream,
    ChatRequest,
    ChunkStream,
    ProviderAdapter,
    TokenUsage,
)
from gateway.providers.openai import OpenAIAdapter, map_error, token_usage
from gateway.testing.wire import openai as wire
from tests.conftest import CANARY_KEY

URL = wire.CHAT_COMPLETIONS_URL
MODEL = "gpt-4o"
HELLO = [{"role": "user", "content": "Hello"}]


# ---------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_adapter(**settings: Any) -> OpenAIAdapter:
    config = ProviderConfig(type="openai", name="openai", api_key=CANARY_KEY, **settings)
    return OpenAIAdapter("openai", config)


@pytest.fixture
def adapter() -> Iterator[OpenAIAdapter]:
    instance = make_adapter()
    yield instance
    instance.close()


def respond(mock: Any, body: dict[str, Any], url: str = URL) -> Any:
    return mock.post(url).mock(return_value=httpx.Response(200, json=body))


def respond_stream(mock: Any, body: bytes, headers: dict[str, str] | None = None) -> Any:
    all_headers = {**wire.SSE_HEADERS, "x-request-id": "req_stream_1", **(headers or {})}
    return mock.post(URL).mock(return_value=httpx.Response(200, content=body, headers=all_headers))


def respond_error(mock: Any, error: wire.WireError) -> Any:
    response = httpx.Response(error.status, json=error.body, headers=error.headers)
    return mock.post(URL).mock(return_value=response)


def sent(route: Any) -> dict[str, Any]:
    """The JSON body of the last request the route received."""
    body: dict[str, Any] = json.loads(route.calls.last.request.content)
    return body


async def complete(adapter: OpenAIAdapter, mode: str, request: ChatRequest) -> Any:
    if mode == "sync":
        return adapter.complete(MODEL, request)
    return await adapter.acomplete(MODEL, request)


async def open_stream(
    adapter: OpenAIAdapter, mode: str, request: ChatRequest
) -> ChunkStream | AsyncChunkStream:
    if mode == "sync":
        return adapter.stream(MODEL, request)
    return await adapter.astream(MODEL, request)


async def drain(stream: ChunkStream | AsyncChunkStream) -> list[Any]:
    if isinstance(stream, ChunkStream):
        return list(stream)
    return [chunk async for chunk in stream]


async def stream_all(
    adapter: OpenAIAdapter, mode: str, request: ChatRequest
) -> tuple[Any, list[Any]]:
    stream = await open_stream(adapter, mode, request)
    return stream, await drain(stream)


async def raised(coro: Any) -> ProviderError:
    """Await ``coro`` and return the ProviderError it raised (fail if none)."""
    with pytest.raises(ProviderError) as info:
        await coro
    error = info.value
    assert CANARY_KEY not in str(error)
    assert CANARY_KEY not in repr(error)
    assert error.__cause__ is None
    assert error.__suppress_context__
    return error


def text_of(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# ---------------------------------------------------------------------------------------------
# Non-streamed calls: request translation and response


def test_registered_and_satisfies_protocol(adapter: OpenAIAdapter) -> None:
    assert load_adapter_class("openai") is OpenAIAdapter
    assert isinstance(adapter, ProviderAdapter)
    assert adapter.name == "openai"
    assert CANARY_KEY not in repr(adapter)


async def test_plain_text(httpx2_mock: Any, adapter: OpenAIAdapter, mode: str) -> None:
    body = wire.chat_completion(text="Hi there", usage=wire.usage(12, 5))
    route = respond(httpx2_mock, body)

    result = await complete(adapter, mode, ChatRequest(messages=HELLO))

    assert isinstance(result.completion, openai.types.chat.ChatCompletion)
    assert result.completion.choices[0].message.content == "Hi there"
    assert result.completion.choices[0].finish_reason == "stop"
    assert result.completion.model_dump(exclude_unset=True) == body  # returned as parsed
    assert result.usage == TokenUsage(input_tokens=12, output_tokens=5)
    assert sent(route) == {"model": MODEL, "messages": HELLO}  # nothing unset is sent
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {CANARY_KEY}"
    assert route.call_count == 1


async def test_system_prompt_and_multi_turn(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str
) -> None:
    route = respond(httpx2_mock, wire.chat_completion(text="Lyon"))
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Answer in one word."},
        {"role": "developer", "content": "Be terse."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris"},
        {"role": "user", "content": [{"type": "text", "text": "And the second city?"}]},
    ]

    result = await complete(adapter, mode, ChatRequest(messages=messages))

    assert result.completion.choices[0].message.content == "Lyon"
    assert sent(route)["messages"] == messages


async def test_tools_round_trip(httpx2_mock: Any, adapter: OpenAIAdapter, mode: str) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    call = wire.ToolCall("call_abc", "get_weather", {"city": "Paris"})
    route = respond(httpx2_mock, wire.chat_completion(text=None, tool_calls=[call]))

    first = await complete(
        adapter, mode, ChatRequest(messages=HELLO, tools=tools, tool_choice="auto")
    )

    assert sent(route)["tools"] == tools
    assert sent(route)["tool_choice"] == "auto"
    choice = first.completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [tool_call] = choice.message.tool_calls
    assert (tool_call.id, tool_call.type) == ("call_abc", "function")
    assert tool_call.function.name == "get_weather"
    assert json.loads(tool_call.function.arguments) == {"city": "Paris"}

    # Send the result back: the assistant turn with its call, then the tool's answer.
    route = respond(httpx2_mock, wire.chat_completion(text="It is sunny in Paris."))
    history: list[dict[str, Any]] = [
        *HELLO,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": "call_abc", "content": '{"sky": "sunny"}'},
    ]
    second = await complete(adapter, mode, ChatRequest(messages=history, tools=tools))

    assert second.completion.choices[0].message.content == "It is sunny in Paris."
    messages = sent(route)["messages"]
    assert messages[1]["tool_calls"] == [call.to_wire()]
    assert messages[2] == {
        "role": "tool",
        "tool_call_id": "call_abc",
        "content": '{"sky": "sunny"}',
    }


@pytest.mark.parametrize(
    "tool_choice",
    ["auto", "none", "required", {"type": "function", "function": {"name": "get_weather"}}],
)
async def test_tool_choice(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str, tool_choice: Any
) -> None:
    route = respond(httpx2_mock, wire.chat_completion())
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    await complete(adapter, mode, ChatRequest(messages=HELLO, tools=tools, tool_choice=tool_choice))
    assert sent(route)["tool_choice"] == tool_choice


async def test_image_input(httpx2_mock: Any, adapter: OpenAIAdapter, mode: str) -> None:
    route = respond(httpx2_mock, wire.chat_completion(text="A cat."))
    content = [
        {"type": "text", "text": "What is in these images?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
    ]

    result = await complete(
        adapter, mode, ChatRequest(messages=[{"role": "user", "content": content}])
    )

    assert result.completion.choices[0].message.content == "A cat."
    assert sent(route)["messages"] == [{"role": "user", "content": content}]


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_object"},
        {
            "type": "json_schema",
            "json_schema": {
                "name": "city",
                "schema": {"type": "object", "properties": {"name": {"type": "string"}}},
                "strict": True,
            },
        },
    ],
)
async def test_json_output(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str, response_format: dict[str, Any]
) -> None:
    route = respond(httpx2_mock, wire.chat_completion(text='{"name": "Paris"}'))

    result = await complete(
        adapter, mode, ChatRequest(messages=HELLO, response_format=response_format)
    )

    assert json.loads(result.completion.choices[0].message.content) == {"name": "Paris"}
    assert sent(route)["response_format"] == response_format


async def test_sampling_stop_max_tokens_user_metadata_extra_body(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str
) -> None:
    route = respond(httpx2_mock, wire.chat_completion())
    request = ChatRequest(
        messages=HELLO,
        max_tokens=200,
        temperature=0.2,
        top_p=0.9,
        stop=["\n\n", "END"],
        user="customer-42",
        metadata={"feature": "search"},
        extra_body={"seed": 7, "reasoning_effort": "low"},
    )

    await complete(adapter, mode, request)

    assert sent(route) == {
        "model": MODEL,
        "messages": HELLO,
        "max_completion_tokens": 200,  # counts reasoning; legacy max_tokens is not sent
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["\n\n", "END"],
        "user": "customer-42",
        # no metadata: OpenAI refuses it (400) unless the completion is stored
        "seed": 7,
        "reasoning_effort": "low",
    }


async def test_metadata_is_sent_with_store(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str
) -> None:
    route = respond(httpx2_mock, wire.chat_completion())
    request = ChatRequest(
        messages=HELLO, metadata={"feature": "search"}, extra_body={"store": True}
    )
    await complete(adapter, mode, request)
    assert sent(route)["metadata"] == {"feature": "search"}
    assert sent(route)["store"] is True


async def test_every_openai_argument_passes_through(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str
) -> None:
    route = httpx2_mock.post(url__startswith=URL).mock(
        return_value=httpx.Response(200, json=wire.chat_completion())
    )
    openai_only = {
        "logit_bias": {"50256": -100},
        "service_tier": "flex",
        "store": True,
        "verbosity": "low",
        "prompt_cache_key": "k",
        "safety_identifier": "hashed",
    }
    request = ChatRequest(
        messages=HELLO,
        seed=7,
        frequency_penalty=0.5,
        presence_penalty=-0.5,
        logprobs=True,
        top_logprobs=3,
        parallel_tool_calls=False,
        reasoning_effort="high",
        metadata={"feature": "search"},
        extra_headers={"x-trace": "t-1"},
        extra_query={"api-version": "2"},
        openai_only=openai_only,
    )

    await complete(adapter, mode, request)

    assert sent(route) == {
        "model": MODEL,
        "messages": HELLO,
        "seed": 7,
        "frequency_penalty": 0.5,
        "presence_penalty": -0.5,
        "logprobs": True,
        "top_logprobs": 3,
        "parallel_tool_calls": False,
        "reasoning_effort": "high",
        "metadata": {"feature": "search"},  # store=True given as an argument
        **openai_only,
    }
    http_request = route.calls.last.request
    assert http_request.headers["x-trace"] == "t-1"
    assert http_request.url.params["api-version"] == "2"


@pytest.mark.parametrize("finish_reason", ["stop", "length", "tool_calls", "content_filter"])
async def test_finish_reasons(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str, finish_reason: Any
) -> None:
    respond(httpx2_mock, wire.chat_completion(text="partial", finish_reason=finish_reason))
    result = await complete(adapter, mode, ChatRequest(messages=HELLO))
    assert result.completion.choices[0].finish_reason == finish_reason


async def test_usage_cached_cache_write_and_reasoning(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str
) -> None:
    usage = wire.usage(1200, 300, cached_tokens=1024, cache_write_tokens=100, reasoning_tokens=256)
    respond(httpx2_mock, wire.chat_completion(usage=usage))

    result = await complete(adapter, mode, ChatRequest(messages=HELLO))

    assert result.usage == TokenUsage(
        input_tokens=1200,
        output_tokens=300,
        cached_input_tokens=1024,
        cache_write_tokens=100,
        reasoning_tokens=256,
    )
    assert result.usage.total_tokens == 1500
    assert result.completion.usage.prompt_tokens_details.cached_tokens == 1024


async def test_missing_usage_counts_as_zero(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str
) -> None:
    respond(httpx2_mock, wire.chat_completion(usage={}))
    result = await complete(adapter, mode, ChatRequest(messages=HELLO))
    assert result.completion.usage is None
    assert result.usage == TokenUsage()


def test_token_usage_without_details() -> None:
    usage = openai.types.CompletionUsage(prompt_tokens=3, completion_tokens=4, total_tokens=7)
    assert token_usage(usage) == TokenUsage(input_tokens=3, output_tokens=4)


# ---------------------------------------------------------------------------------------------
# Streams


async def test_stream_text(httpx2_mock: Any, adapter: OpenAIAdapter, mode: str) -> None:
    usage = wire.usage(20, 3, cached_tokens=16, reasoning_tokens=1)
    route = respond_stream(
        httpx2_mock, wire.chat_completion_stream(text=["Hel", "lo", "!"], usage=usage)
    )

    stream, chunks = await stream_all(adapter, mode, ChatRequest(messages=HELLO, max_tokens=50))

    assert sent(route) == {
        "model": MODEL,
        "messages": HELLO,
        "max_completion_tokens": 50,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert all(isinstance(c, openai.types.chat.ChatCompletionChunk) for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert text_of(chunks) == "Hello!"
    assert chunks[-2].choices[0].finish_reason == "stop"
    last = chunks[-1]
    assert last.choices == []
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (20, 3)
    assert stream.usage == TokenUsage(
        input_tokens=20, output_tokens=3, cached_input_tokens=16, reasoning_tokens=1
    )
    assert stream.content_chunks == 3
    # Passed through unchanged: exactly the chunks OpenAI sent.
    expected = wire.chat_completion_chunks(text=["Hel", "lo", "!"], usage=usage)
    assert [c.model_dump(exclude_unset=True) for c in chunks] == expected


async def test_stream_tool_call_deltas(httpx2_mock: Any, adapter: OpenAIAdapter, mode: str) -> None:
    calls = [
        wire.ToolCall("call_1", "get_weather", {"city": "Paris"}),
        wire.ToolCall("call_2", "get_time", {"tz": "Europe/Paris"}),
    ]
    body = wire.chat_completion_stream(text=[], tool_calls=calls, usage=wire.usage(30, 12))
    respond_stream(httpx2_mock, body)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]

    stream, chunks = await stream_all(adapter, mode, ChatRequest(messages=HELLO, tools=tools))

    assert chunks[0].choices[0].delta.role == "assistant"
    arguments: dict[int, str] = {}
    heads = []
    for chunk in chunks[:-1]:
        for delta in chunk.choices[0].delta.tool_calls or ():
            if delta.id is not None:
                heads.append((delta.index, delta.id, delta.type, delta.function.name))
            arguments[delta.index] = arguments.get(delta.index, "") + (
                delta.function.arguments or ""
            )
    assert heads == [
        (0, "call_1", "function", "get_weather"),
        (1, "call_2", "function", "get_time"),
    ]
    assert {i: json.loads(a) for i, a in arguments.items()} == {
        0: {"city": "Paris"},
        1: {"tz": "Europe/Paris"},
    }
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 42
    assert stream.usage == TokenUsage(input_tokens=30, output_tokens=12)
    assert stream.content_chunks == 6  # two heads + two argument fragments each


async def test_stream_without_usage_ends_with_zero_usage_chunk(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str
) -> None:
    # A server that ignores stream_options sends no usage chunk at all.
    respond_stream(httpx2_mock, wire.chat_completion_stream(text=["Hi"], include_usage=False))

    stream, chunks = await stream_all(adapter, mode, ChatRequest(messages=HELLO))

    assert text_of(chunks) == "Hi"
    last = chunks[-1]
    assert last.choices == [] and last.usage.total_tokens == 0
    assert last.id == chunks[0].id and last.model == chunks[0].model
    assert stream.usage == TokenUsage()


async def test_stream_usage_on_finish_chunk_moves_to_the_end(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str
) -> None:
    # Some OpenAI-compatible servers put usage on the finish chunk instead of a chunk of its own.
    events = wire.chat_completion_chunks(text=["Hi"], include_usage=False)
    events[-1]["usage"] = wire.usage(7, 1)
    respond_stream(httpx2_mock, wire.sse(events))

    stream, chunks = await stream_all(adapter, mode, ChatRequest(messages=HELLO))

    assert [c.usage for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 7
    assert stream.usage == TokenUsage(input_tokens=7, output_tokens=1)


async def test_extra_body_stream_options_keep_usage(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str
) -> None:
    route = respond_stream(httpx2_mock, wire.chat_completion_stream())
    request = ChatRequest(
        messages=HELLO, extra_body={"stream_options": {"include_obfuscation": False}}
    )
    await stream_all(adapter, mode, request)
    assert sent(route)["stream_options"] == {"include_obfuscation": False, "include_usage": True}


async def test_stream_http_error_raises_before_iteration(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str
) -> None:
    respond_error(httpx2_mock, wire.rate_limit_error(retry_after=3))
    error = await raised(open_stream(adapter, mode, ChatRequest(messages=HELLO)))
    assert isinstance(error, RateLimited)
    assert (error.status_code, error.retry_after, error.code) == (429, 3.0, "rate_limit_exceeded")


@pytest.mark.parametrize(
    ("event", "expected", "code"),
    [
        (wire.stream_error_event(), ProviderUnavailable, "server_error"),
        (
            wire.stream_error_event(
                "Rate limit reached", type="tokens", code="rate_limit_exceeded"
            ),
            RateLimited,
            "rate_limit_exceeded",
        ),
        (
            wire.stream_error_event(
                "Too long", type="invalid_request_error", code="context_length_exceeded"
            ),
            ContextTooLong,
            "context_length_exceeded",
        ),
        (
            wire.stream_error_event("Overloaded", type="overloaded_error"),
            ProviderOverloaded,
            "overloaded_error",
        ),
        (
            wire.stream_error_event("Huh", type="something_new"),
            ProviderUnavailable,
            "something_new",
        ),
    ],
)
async def test_error_inside_a_200_stream(
    httpx2_mock: Any,
    adapter: OpenAIAdapter,
    mode: str,
    event: dict[str, Any],
    expected: type[ProviderError],
    code: str,
) -> None:
    # Role chunk + two text chunks, then OpenAI's in-stream error event.
    body = wire.chat_completion_stream(text=["a", "b", "c"], error_after=3, error=event)
    respond_stream(httpx2_mock, body)
    stream = await open_stream(adapter, mode, ChatRequest(messages=HELLO))

    received: list[Any] = []

    async def consume() -> None:
        if isinstance(stream, ChunkStream):
            for chunk in stream:
                received.append(chunk)
        else:
            async for chunk in stream:
                received.append(chunk)

    error = await raised(consume())

    assert type(error) is expected
    assert text_of(received) == "ab"
    assert error.code == code
    assert error.status_code is None
    assert error.request_id == "req_stream_1"
    assert stream.content_chunks == 2
    if isinstance(error, ProviderUnavailable):
        assert error.chunks_received == 2


class _BrokenBody(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body that sends some bytes, then fails like the transport would."""

    def __init__(self, first: bytes, failure: Exception) -> None:
        self.first = first
        self.failure = failure

    def __iter__(self) -> Iterator[bytes]:
        yield self.first
        raise self.failure

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.first
        raise self.failure


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (httpcore2.ReadTimeout("read timed out"), ProviderTimeout),
        (httpcore2.RemoteProtocolError("peer closed connection"), ProviderConnectionError),
    ],
)
async def test_transport_failure_mid_stream(
    httpx2_mock: Any,
    adapter: OpenAIAdapter,
    mode: str,
    failure: Exception,
    expected: type[ProviderError],
) -> None:
    first = wire.sse(wire.chat_completion_chunks(text=["Hi"])[:2], done=False)
    response = httpx.Response(200, headers=wire.SSE_HEADERS, stream=_BrokenBody(first, failure))
    httpx2_mock.post(URL).mock(return_value=response)
    stream = await open_stream(adapter, mode, ChatRequest(messages=HELLO))

    error = await raised(drain(stream))

    assert type(error) is expected
    assert stream.content_chunks == 1
    assert isinstance(error, ProviderUnavailable) and error.chunks_received == 1


async def test_stream_close_releases_the_response(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str
) -> None:
    respond_stream(httpx2_mock, wire.chat_completion_stream(text=["a", "b", "c"]))
    stream = await open_stream(adapter, mode, ChatRequest(messages=HELLO))

    if isinstance(stream, ChunkStream):
        next(stream)
        frame = stream.chunks.gi_frame  # type: ignore[attr-defined]
        response = frame.f_locals["sdk_stream"].response
        stream.close()
        assert response.is_closed
        assert list(stream) == []  # nothing more after close
    else:
        await stream.__anext__()
        frame = stream.chunks.ag_frame  # type: ignore[union-attr]
        response = frame.f_locals["sdk_stream"].response
        await stream.aclose()
        assert response.is_closed
        assert [chunk async for chunk in stream] == []


# ---------------------------------------------------------------------------------------------
# Errors


ERROR_TABLE = [
    (wire.invalid_request_error(), InvalidRequest, None),
    (wire.context_length_error(), ContextTooLong, "context_length_exceeded"),
    (wire.auth_error(), AuthenticationFailed, "invalid_api_key"),
    (wire.permission_error(), AuthenticationFailed, "unsupported_country_region_territory"),
    (wire.not_found_error(), InvalidRequest, "model_not_found"),
    (wire.invalid_request_error(status=409), InvalidRequest, None),
    (wire.invalid_request_error(status=413), InvalidRequest, None),
    (wire.invalid_request_error(status=422), InvalidRequest, None),
    (wire.rate_limit_error(), RateLimited, "rate_limit_exceeded"),
    (wire.insufficient_quota_error(), RateLimited, "insufficient_quota"),
    (wire.server_error(500), ProviderUnavailable, "server_error"),
    (wire.server_error(502), ProviderUnavailable, "server_error"),
    (wire.overloaded_error(503), ProviderUnavailable, "server_error"),
    (wire.server_error(504), ProviderUnavailable, "server_error"),
    (wire.overloaded_error(529), ProviderOverloaded, "server_error"),
    (
        wire.error_response(408, "Request timed out.", type="timeout"),
        ProviderTimeout,
        "timeout",
    ),
]


@pytest.mark.parametrize(("error", "expected", "code"), ERROR_TABLE)
async def test_error_table(
    httpx2_mock: Any,
    adapter: OpenAIAdapter,
    mode: str,
    error: wire.WireError,
    expected: type[ProviderError],
    code: str | None,
) -> None:
    route = respond_error(httpx2_mock, error)

    failure = await raised(complete(adapter, mode, ChatRequest(messages=HELLO)))

    assert type(failure) is expected
    assert failure.status_code == error.status
    assert failure.provider == "openai" and failure.model == MODEL
    assert failure.request_id == error.headers["x-request-id"]
    expected_code = code if code is not None else error.body["error"]["type"]
    assert failure.code == expected_code
    assert error.body["error"]["message"][:40] in failure.message
    assert route.call_count == 1  # SDK retries are off


async def test_insufficient_quota_is_kept(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str
) -> None:
    respond_error(httpx2_mock, wire.insufficient_quota_error())
    error = await raised(complete(adapter, mode, ChatRequest(messages=HELLO)))
    assert isinstance(error, RateLimited) and error.quota_exhausted


@pytest.mark.parametrize(
    ("error", "seconds"),
    [
        (wire.rate_limit_error(retry_after=7), 7.0),
        (wire.rate_limit_error(retry_after_ms=1500), 1.5),
        (wire.rate_limit_error(retry_after=20, retry_after_ms=250), 0.25),
        (wire.rate_limit_error(retry_after="Wed, 21 Oct 2015 07:28:00 GMT"), 0.0),  # in the past
        (wire.server_error(503, retry_after=2), 2.0),
        (wire.rate_limit_error(), None),
    ],
)
async def test_retry_after(
    httpx2_mock: Any,
    adapter: OpenAIAdapter,
    mode: str,
    error: wire.WireError,
    seconds: float | None,
) -> None:
    respond_error(httpx2_mock, error)
    failure = await raised(complete(adapter, mode, ChatRequest(messages=HELLO)))
    assert failure.retry_after == seconds


async def test_non_json_error_body(httpx2_mock: Any, adapter: OpenAIAdapter, mode: str) -> None:
    html = "<html><body>" + "Bad gateway " * 100 + "</body></html>"
    httpx2_mock.post(URL).mock(return_value=httpx.Response(502, text=html))
    error = await raised(complete(adapter, mode, ChatRequest(messages=HELLO)))
    assert type(error) is ProviderUnavailable
    assert error.status_code == 502 and error.code is None
    assert len(error.message) < 600  # a whole page is cut short


async def test_timeout(httpx2_mock: Any, adapter: OpenAIAdapter, mode: str) -> None:
    route = httpx2_mock.post(URL).mock(side_effect=httpcore2.ReadTimeout("timed out"))
    error = await raised(complete(adapter, mode, ChatRequest(messages=HELLO)))
    assert type(error) is ProviderTimeout
    assert route.call_count == 1


async def test_stream_timeout_before_headers(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str
) -> None:
    httpx2_mock.post(URL).mock(side_effect=httpcore2.ConnectTimeout("connect timed out"))
    error = await raised(open_stream(adapter, mode, ChatRequest(messages=HELLO)))
    assert type(error) is ProviderTimeout


async def test_connection_error(httpx2_mock: Any, adapter: OpenAIAdapter, mode: str) -> None:
    route = httpx2_mock.post(URL).mock(side_effect=httpcore2.ConnectError("refused"))
    error = await raised(complete(adapter, mode, ChatRequest(messages=HELLO)))
    assert type(error) is ProviderConnectionError
    assert "ConnectError" in error.message
    assert route.call_count == 1


async def test_canary_key_echoed_by_the_provider_is_redacted(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str
) -> None:
    respond_error(httpx2_mock, wire.auth_error(masked_key=CANARY_KEY))
    error = await raised(complete(adapter, mode, ChatRequest(messages=HELLO)))
    assert isinstance(error, AuthenticationFailed)
    assert "[REDACTED]" in error.message


def test_map_error_ignores_foreign_exceptions() -> None:
    assert map_error(ValueError("x"), provider="openai", model=MODEL) is None
    own = InvalidRequest("bad", provider="openai")
    assert map_error(own, provider="openai", model=MODEL) is own


async def test_unmapped_exceptions_pass_through(adapter: OpenAIAdapter, mode: str) -> None:
    # A request the SDK refuses before sending (TypeError) is a bug, not a provider failure.
    request = ChatRequest(messages=HELLO, response_format=openai.BaseModel)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await complete(adapter, mode, request)


# ---------------------------------------------------------------------------------------------
# Clients: made once, retries off, config honoured


async def test_client_created_once_and_reused(
    httpx2_mock: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    import gateway.providers.openai as module

    made: list[str] = []

    class CountingOpenAI(openai.OpenAI):
        def __init__(self, **kwargs: Any) -> None:
            made.append("sync")
            assert kwargs["max_retries"] == 0
            super().__init__(**kwargs)

    class CountingAsyncOpenAI(openai.AsyncOpenAI):
        def __init__(self, **kwargs: Any) -> None:
            made.append("async")
            assert kwargs["max_retries"] == 0
            super().__init__(**kwargs)

    monkeypatch.setattr(module, "OpenAI", CountingOpenAI)
    monkeypatch.setattr(module, "AsyncOpenAI", CountingAsyncOpenAI)
    adapter = make_adapter()
    assert made == []  # nothing until the first call
    respond(httpx2_mock, wire.chat_completion())
    for _ in range(3):
        await complete(adapter, mode, ChatRequest(messages=HELLO))
    httpx2_mock.post(URL).mock(
        return_value=httpx.Response(
            200, content=wire.chat_completion_stream(), headers=wire.SSE_HEADERS
        )
    )
    await stream_all(adapter, mode, ChatRequest(messages=HELLO))
    assert made == [mode]
    if mode == "sync":
        adapter.close()
        assert adapter._client is None
    else:
        await adapter.aclose()
        assert adapter._async_client is None


async def test_server_error_is_requested_exactly_once(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str
) -> None:
    route = respond_error(httpx2_mock, wire.server_error(500))
    await raised(complete(adapter, mode, ChatRequest(messages=HELLO)))
    assert route.call_count == 1
    route = respond_error(httpx2_mock, wire.server_error(503))  # the same route, re-scripted
    await raised(open_stream(adapter, mode, ChatRequest(messages=HELLO)))
    assert route.call_count == 2


async def test_base_url_headers_and_timeouts_from_config(httpx2_mock: Any, mode: str) -> None:
    adapter = make_adapter(
        base_url="https://llm-proxy.example.com/v1",
        headers={"x-team": "search"},
        timeout=30,
        connect_timeout=2,
    )
    route = respond(
        httpx2_mock, wire.chat_completion(), url="https://llm-proxy.example.com/v1/chat/completions"
    )

    await complete(adapter, mode, ChatRequest(messages=HELLO))
    request = route.calls.last.request
    assert request.headers["x-team"] == "search"
    timeout = request.extensions["timeout"]
    assert (timeout["connect"], timeout["read"], timeout["write"]) == (2, 30, 30)

    # The request's own timeout overrides the total for that call only.
    await complete(adapter, mode, ChatRequest(messages=HELLO, timeout=1.5))
    timeout = route.calls.last.request.extensions["timeout"]
    assert (timeout["connect"], timeout["read"]) == (1.5, 1.5)

    await complete(adapter, mode, ChatRequest(messages=HELLO))
    assert route.calls.last.request.extensions["timeout"]["read"] == 30


async def test_default_timeout_is_the_sdk_default(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str
) -> None:
    route = respond(httpx2_mock, wire.chat_completion())
    await complete(adapter, mode, ChatRequest(messages=HELLO))
    timeout = route.calls.last.request.extensions["timeout"]
    assert (timeout["connect"], timeout["read"]) == (5.0, 600.0)


async def test_environment_base_url_is_ignored(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "https://elsewhere.example.com/v1")
    route = respond(httpx2_mock, wire.chat_completion())
    await complete(adapter, mode, ChatRequest(messages=HELLO))
    assert route.call_count == 1


async def test_unset_key_variable_is_a_config_error(mode: str) -> None:
    missing = MissingEnv(
        variable="OPENAI_API_KEY",
        file="gateway.yaml",
        line=3,
        key="providers.openai.api_key",
    )
    adapter = OpenAIAdapter("openai", ProviderConfig(type="openai", name="openai", api_key=missing))
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        await complete(adapter, mode, ChatRequest(messages=HELLO))


async def test_no_key_at_all_is_a_config_error(mode: str) -> None:
    adapter = OpenAIAdapter("openai", ProviderConfig(type="openai", name="openai"))
    with pytest.raises(ConfigError, match="api_key"):
        await complete(adapter, mode, ChatRequest(messages=HELLO))


def test_errors_are_gateway_errors() -> None:
    for _, expected, _ in ERROR_TABLE:
        assert issubclass(expected, GatewayError)


def test_tool_calls_answered_by_gemini_lose_extra_content_before_reaching_openai() -> None:
    from gateway.providers.openai import native_kwargs

    call = {
        "id": "call_0",
        "type": "function",
        "function": {"name": "f", "arguments": "{}"},
        "extra_content": {"google": {"thought_signature": "c2ln"}},
    }
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_0", "content": "42"},
    ]
    sent = native_kwargs("gpt-4o", ChatRequest(messages=messages), stream=False)["messages"]
    assert "extra_content" not in sent[1]["tool_calls"][0]
    assert sent[1]["tool_calls"][0]["function"] == {"name": "f", "arguments": "{}"}
    assert "extra_content" in call, "the caller's message is not modified"
    plain = [{"role": "user", "content": "hi"}]
    assert native_kwargs("gpt-4o", ChatRequest(messages=plain), stream=False)["messages"] is plain


@pytest.mark.parametrize(
    "content",
    [b"<html>502 from a proxy</html>", b'["not", "a", "completion"]'],
    ids=["not-json", "not-an-object"],
)
async def test_a_200_whose_body_is_not_a_completion_is_a_provider_failure(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str, content: bytes
) -> None:
    """The adapter reads the body as JSON itself (not through the SDK's model), so a broken
    one must still be a gateway error that falls back, not a crash."""
    httpx2_mock.post(URL).mock(
        return_value=httpx.Response(
            200, content=content, headers={"content-type": "application/json"}
        )
    )
    error = await raised(complete(adapter, mode, ChatRequest(messages=HELLO)))
    assert isinstance(error, ProviderUnavailable) and error.provider == "openai"


async def test_a_finish_reason_newer_than_the_sdk_is_kept_not_refused(
    httpx2_mock: Any, mode: str
) -> None:
    """A value the SDK's types do not list yet comes through as the SDK itself would keep it
    (the gateway validates bodies into its own type and falls back to the SDK's construct)."""
    from gateway import AsyncGateway, Gateway

    body = wire.chat_completion(text="hi", usage=wire.usage(3, 1))
    body["choices"][0]["finish_reason"] = "a_reason_from_the_future"
    respond(httpx2_mock, body)
    config = {
        "providers": {"openai": {"api_key": CANARY_KEY}},
        "routes": {"r": {"targets": ["openai/gpt-4o"]}},
    }
    if mode == "sync":
        resp = Gateway(config=config).chat.completions.create(model="r", messages=HELLO)
    else:
        resp = await AsyncGateway(config=config).chat.completions.create(model="r", messages=HELLO)
    assert resp.choices[0].finish_reason == "a_reason_from_the_future"
    assert resp.choices[0].message.content == "hi"
    assert resp.usage is not None and resp.usage.prompt_tokens == 3
    assert resp.gateway.provider == "openai"
