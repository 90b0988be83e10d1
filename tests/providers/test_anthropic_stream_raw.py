"""Claude streams read as event JSON (``client.post`` + ``Stream[object]``) against the path they
replace: ``messages.create(stream=True)``, the SDK's event models, and the model-reading
translator the adapter had until then (kept below, as it was, as the reference).

The same recorded wire streams go through both paths, sync and async; the chunks, the usage,
the content count and any error must be identical. The request on the wire must be
``create``'s own, and the SDK's own span (when it records one) must still get the usage.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from openai.types.chat import ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import (
    Choice,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.config import ProviderConfig
from gateway.errors import GatewayError, ProviderConnectionError, ProviderUnavailable
from gateway.providers._anthropic_response import REFUSAL_MESSAGE, finish_reason
from gateway.providers._common import FinishReason, usage_chunk
from gateway.providers._construct import construct
from gateway.providers.anthropic import AnthropicAdapter, _mapped_errors, build_params
from gateway.providers.base import AsyncChunkStream, ChatRequest, ChunkStream, TokenUsage
from gateway.testing.wire import anthropic as wire
from tests.conftest import CANARY_KEY

URL = wire.MESSAGES_URL
MODEL = "claude-sonnet-4-6"
HELLO = [{"role": "user", "content": "Hello"}]


# ---------------------------------------------------------------------------------------------
# The reference: the adapter's stream path before it read the events' JSON


class _ModelTranslator:
    """Anthropic SDK event models -> OpenAI chunks, as the adapter translated them before."""

    def __init__(self, model: str, state: Any) -> None:
        self.model = model
        self.state = state
        self.response_id = ""
        self.created = int(time.time())
        self.finish_reason: FinishReason | None = None
        self.done = False
        self._input = self._output = self._reasoning = self._cache_read = self._cache_write = 0
        self._tool_index: dict[int, int] = {}
        self._tools_without_arguments: set[int] = set()

    def _chunk(self, delta: ChoiceDelta, finish: FinishReason | None = None) -> ChatCompletionChunk:
        choice = construct(Choice, index=0, delta=delta, finish_reason=finish, logprobs=None)
        return construct(
            ChatCompletionChunk,
            id=self.response_id,
            object="chat.completion.chunk",
            created=self.created,
            model=self.model,
            choices=[choice],
        )

    def _take_usage(self, usage: Any) -> None:
        if usage.input_tokens is not None:
            self._input = usage.input_tokens
        if usage.cache_creation_input_tokens is not None:
            self._cache_write = usage.cache_creation_input_tokens
        if usage.cache_read_input_tokens is not None:
            self._cache_read = usage.cache_read_input_tokens
        if usage.output_tokens is not None:
            self._output = usage.output_tokens
        details = usage.output_tokens_details
        if details is not None and details.thinking_tokens is not None:
            self._reasoning = details.thinking_tokens

    def usage(self) -> TokenUsage:
        return TokenUsage(
            input_tokens=self._input + self._cache_write + self._cache_read,
            output_tokens=self._output,
            cached_input_tokens=self._cache_read,
            cache_write_tokens=self._cache_write,
            reasoning_tokens=self._reasoning,
        )

    def usage_chunk(self) -> ChatCompletionChunk:
        self.done = True
        usage = self.usage()
        self.state.usage = usage
        return usage_chunk(
            response_id=self.response_id, model=self.model, created=self.created, usage=usage
        )

    def translate(self, event: Any) -> ChatCompletionChunk | None:
        kind = event.type
        if kind == "content_block_delta":
            delta = event.delta
            if delta.type == "text_delta":
                if not delta.text:
                    return None
                self.state.content_chunks += 1
                return self._chunk(construct(ChoiceDelta, content=delta.text))
            if delta.type == "input_json_delta":
                tool_index = self._tool_index.get(event.index)
                if tool_index is None or not delta.partial_json:
                    return None
                self._tools_without_arguments.discard(event.index)
                self.state.content_chunks += 1
                function = construct(ChoiceDeltaToolCallFunction, arguments=delta.partial_json)
                call = construct(ChoiceDeltaToolCall, index=tool_index, function=function)
                return self._chunk(construct(ChoiceDelta, tool_calls=[call]))
            return None
        if kind == "content_block_start":
            block = event.content_block
            if block.type == "tool_use":
                tool_index = len(self._tool_index)
                self._tool_index[event.index] = tool_index
                self._tools_without_arguments.add(event.index)
                self.state.content_chunks += 1
                function = construct(ChoiceDeltaToolCallFunction, name=block.name, arguments="")
                call = construct(
                    ChoiceDeltaToolCall,
                    index=tool_index,
                    id=block.id,
                    type="function",
                    function=function,
                )
                return self._chunk(construct(ChoiceDelta, tool_calls=[call]))
            if block.type == "text" and block.text:
                self.state.content_chunks += 1
                return self._chunk(construct(ChoiceDelta, content=block.text))
            return None
        if kind == "message_start":
            message = event.message
            self.response_id = message.id
            self.model = message.model or self.model
            self._take_usage(message.usage)
            return self._chunk(construct(ChoiceDelta, role="assistant", content=""))
        if kind == "message_delta":
            self._take_usage(event.usage)
            stop_reason = event.delta.stop_reason
            self.finish_reason = finish_reason(stop_reason)
            self.state.usage = self.usage()
            refusal = REFUSAL_MESSAGE if stop_reason == "refusal" else None
            return self._chunk(construct(ChoiceDelta, refusal=refusal), self.finish_reason)
        if kind == "message_stop":
            return self.usage_chunk()
        if kind == "content_block_stop" and event.index in self._tools_without_arguments:
            self._tools_without_arguments.discard(event.index)
            function = construct(ChoiceDeltaToolCallFunction, arguments="{}")
            call = construct(
                ChoiceDeltaToolCall, index=self._tool_index[event.index], function=function
            )
            return self._chunk(construct(ChoiceDelta, tool_calls=[call]))
        return None

    def end(self, provider: str) -> ChatCompletionChunk | None:
        if self.done:
            return None
        if self.finish_reason is None:
            error = ProviderConnectionError(
                "the stream ended before the message was complete",
                provider=provider,
                model=self.model,
            )
            error.chunks_received = self.state.content_chunks
            raise error
        return self.usage_chunk()


def _reference_sync(adapter: AnthropicAdapter, req: ChatRequest, out: ChunkStream) -> Iterator[Any]:
    params = build_params(MODEL, req)
    client = adapter._get_client()
    with _mapped_errors(adapter.name, MODEL):
        native = client.messages.create(**params, stream=True, timeout=adapter._call_timeout(req))
    translator = _ModelTranslator(MODEL, out)
    with _mapped_errors(adapter.name, MODEL, out):
        for event in native:
            chunk = translator.translate(event)
            if chunk is not None:
                if translator.done:  # drain message_stop and release, as the adapter did
                    for _ in native:
                        pass
                    native.close()
                yield chunk
                if translator.done:
                    return
        last = translator.end(adapter.name)
    if last is not None:
        yield last


async def _reference_async(
    adapter: AnthropicAdapter, req: ChatRequest, out: AsyncChunkStream
) -> AsyncIterator[Any]:
    params = build_params(MODEL, req)
    client = adapter._get_async_client()
    with _mapped_errors(adapter.name, MODEL):
        native = await client.messages.create(
            **params, stream=True, timeout=adapter._call_timeout(req)
        )
    translator = _ModelTranslator(MODEL, out)
    with _mapped_errors(adapter.name, MODEL, out):
        async for event in native:
            chunk = translator.translate(event)
            if chunk is not None:
                if translator.done:
                    async for _ in native:
                        pass
                    await native.close()
                yield chunk
                if translator.done:
                    return
        last = translator.end(adapter.name)
    if last is not None:
        yield last


# ---------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_adapter() -> AnthropicAdapter:
    config = ProviderConfig(type="anthropic", name="anthropic", api_key=CANARY_KEY)
    return AnthropicAdapter("anthropic", config)


@pytest.fixture
async def adapter() -> AsyncIterator[AnthropicAdapter]:
    instance = make_adapter()
    yield instance
    instance.close()
    await instance.aclose()


def respond_stream(mock: Any, body: bytes) -> Any:
    headers = {**wire.SSE_HEADERS, "request-id": "req_stream_1"}
    return mock.post(url__startswith=URL).mock(
        return_value=httpx.Response(200, content=body, headers=headers)
    )


Outcome = tuple[list[dict[str, Any]], TokenUsage | None, int, dict[str, Any] | None]


def _error_fields(error: GatewayError | None) -> dict[str, Any] | None:
    if error is None:
        return None
    fields = {"type": type(error).__name__, "message": str(error)}
    for name in ("code", "status_code", "request_id", "retry_after", "chunks_received"):
        fields[name] = getattr(error, name, None)
    return fields


def _dumps(chunks: list[ChatCompletionChunk]) -> list[dict[str, Any]]:
    # ``created`` is the clock's second when each stream began: not part of the comparison.
    return [{**chunk.model_dump(), "created": 0} for chunk in chunks]


async def _run(
    adapter: AnthropicAdapter, req: ChatRequest, mode: str, *, reference: bool
) -> Outcome:
    chunks: list[ChatCompletionChunk] = []
    error: GatewayError | None = None
    if mode == "sync":
        out = ChunkStream()
        try:
            if reference:
                chunks.extend(_reference_sync(adapter, req, out))
            else:
                stream = adapter.stream(MODEL, req)
                out = stream
                chunks.extend(stream)
        except GatewayError as exc:
            error = exc
    else:
        aout = AsyncChunkStream()
        try:
            if reference:
                async for chunk in _reference_async(adapter, req, aout):
                    chunks.append(chunk)
            else:
                astream = await adapter.astream(MODEL, req)
                aout = astream
                async for chunk in astream:
                    chunks.append(chunk)
        except GatewayError as exc:
            error = exc
        return _dumps(chunks), aout.usage, aout.content_chunks, _error_fields(error)
    return _dumps(chunks), out.usage, out.content_chunks, _error_fields(error)


async def both(adapter: AnthropicAdapter, mock: Any, body: bytes, mode: str) -> Outcome:
    """The outcome of one recorded stream on the new path, checked equal to the reference's."""
    respond_stream(mock, body)
    req = ChatRequest(messages=HELLO)
    new = await _run(adapter, req, mode, reference=False)
    old = await _run(adapter, req, mode, reference=True)
    assert new == old
    return new


def _cut(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The events up to (not including) the first of ``kind``."""
    return events[: next(i for i, e in enumerate(events) if e["type"] == kind)]


_TOOLS = [
    wire.ToolUse("get_weather", {"city": "Paris", "unit": "celsius"}, id="toolu_a"),
    wire.ToolUse("get_time", {}, id="toolu_b"),
    wire.ToolUse("lookup", {"q": 'é \u2603 "quoted"'}, id="toolu_c"),
]

#: Recorded wire streams (name -> SSE body) that end normally.
COMPLETE_STREAMS: dict[str, bytes] = {
    "text": wire.stream_body(text_chunks=["Hel", "lo", "", "!"], message_id="msg_t"),
    "cache_usage": wire.stream_body(
        usage=wire.usage(30, 12, cache_read_input_tokens=50, cache_creation_input_tokens=5)
    ),
    "cumulative_usage_and_thinking": wire.stream_body(
        thinking="hmm",
        usage=wire.usage(10, 90, cache_read_input_tokens=7, thinking_tokens=60),
        cumulative_delta_usage=True,
    ),
    "one_tool": wire.stream_body(text_chunks=[], tool_uses=_TOOLS[:1]),
    "several_tools_after_text": wire.stream_body(
        text_chunks=["Checking."], tool_uses=_TOOLS, thinking="plan", json_fragment_size=3
    ),
    "no_ping_no_message_stop": wire.encode_sse(wire.stream_events(ping=False)[:-1]),
    "other_model": wire.stream_body(model="claude-haiku-4-5"),
    **{
        f"stop_{reason}": wire.stream_body(stop_reason=reason)
        for reason in (
            "end_turn",
            "max_tokens",
            "stop_sequence",
            "pause_turn",
            "refusal",
            "model_context_window_exceeded",
            "a_reason_newer_than_the_adapter",
        )
    },
}

_EVENTS = wire.stream_events(text_chunks=["a", "b"], tool_uses=_TOOLS[:1])

#: Recorded wire streams that end in an error.
FAILING_STREAMS: dict[str, bytes] = {
    **{
        f"error_event_{kind}": wire.stream_body(
            text_chunks=["partial", "more"], error=wire.error_event(kind)
        )
        for kind in ("overloaded_error", "api_error", "rate_limit_error", "billing_error")
    },
    "error_event_before_content": wire.stream_body(error=wire.error_event(), error_after=1),
    "error_event_not_json": wire.encode_sse(_EVENTS[:3]) + b"event: error\ndata: oops\n\n",
    "cut_before_message_delta": wire.encode_sse(_cut(_EVENTS, "message_delta")),
    "cut_mid_tool_call": wire.encode_sse(_EVENTS[:-4]),
    "cut_mid_event": wire.encode_sse(_EVENTS[:4]) + b'event: content_block_delta\ndata: {"ty',
    "not_json": wire.encode_sse(_EVENTS[:4]) + b"event: content_block_delta\ndata: {oops\n\n",
}


# ---------------------------------------------------------------------------------------------
# The same output on both paths


@pytest.mark.parametrize("name", sorted(COMPLETE_STREAMS))
async def test_a_complete_stream_gives_the_same_chunks_and_usage(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str, name: str
) -> None:
    chunks, usage, content_chunks, error = await both(
        adapter, httpx2_mock, COMPLETE_STREAMS[name], mode
    )
    assert error is None and usage is not None and content_chunks > 0
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] is not None


@pytest.mark.parametrize("name", sorted(FAILING_STREAMS))
async def test_a_failing_stream_fails_the_same_way(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str, name: str
) -> None:
    chunks, usage, _, error = await both(adapter, httpx2_mock, FAILING_STREAMS[name], mode)
    assert error is not None and usage is None
    assert chunks and chunks[0]["choices"][0]["delta"]["role"] == "assistant"


async def test_the_chunks_are_the_openai_sdk_types(
    adapter: AnthropicAdapter, httpx2_mock: Any
) -> None:
    respond_stream(httpx2_mock, COMPLETE_STREAMS["several_tools_after_text"])
    chunks = list(adapter.stream(MODEL, ChatRequest(messages=HELLO)))
    assert all(type(chunk) is ChatCompletionChunk for chunk in chunks)
    # Each equals the chunk the OpenAI SDK validates from its own JSON.
    for chunk in chunks:
        assert ChatCompletionChunk.model_validate(chunk.model_dump()) == chunk


# ---------------------------------------------------------------------------------------------
# Events that are not what their type says


def _with(index: int, event: dict[str, Any]) -> bytes:
    events = wire.stream_events(text_chunks=["a", "b"])
    events[index] = event
    return wire.encode_sse(events)


@pytest.mark.parametrize(
    ("body", "content_chunks"),
    [
        pytest.param(
            _with(3, {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta"}}),
            0,
            id="text_delta_without_text",
        ),
        pytest.param(
            _with(4, {"type": "content_block_delta", "index": 0, "delta": "b"}),
            1,
            id="delta_not_an_object",
        ),
        pytest.param(
            _with(
                4,
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": 7},
                },
            ),
            1,
            id="text_not_a_string",
        ),
        pytest.param(
            _with(-2, {"type": "message_delta", "delta": {}, "usage": {"output_tokens": "9"}}),
            2,
            id="usage_not_an_integer",
        ),
        pytest.param(
            _with(-2, {"type": "message_delta", "delta": {}, "usage": {"output_tokens": 9.5}}),
            2,
            id="usage_a_float",
        ),
        pytest.param(
            wire.encode_sse(wire.stream_events()[:3])
            + b'event: content_block_delta\ndata: ["text_delta"]\n\n',
            0,
            id="event_not_an_object",
        ),
    ],
)
async def test_a_malformed_event_is_provider_unavailable(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str, body: bytes, content_chunks: int
) -> None:
    respond_stream(httpx2_mock, body)
    req = ChatRequest(messages=HELLO)
    with pytest.raises(ProviderUnavailable) as info:
        if mode == "sync":
            list(adapter.stream(MODEL, req))
        else:
            [chunk async for chunk in await adapter.astream(MODEL, req)]
    error = info.value
    assert "malformed" in str(error) and error.provider == "anthropic"
    assert error.chunks_received == content_chunks
    assert error.__cause__ is None and error.__suppress_context__


# ---------------------------------------------------------------------------------------------
# The request: create's own


_REQUESTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "system_stop_user": {
        "messages": [{"role": "system", "content": "Be brief."}, *HELLO],
        "stop": ["END", "\n"],
        "user": "u-1",
    },
    "tools": {
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_time",
                    "description": "now",
                    "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
                },
            }
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
    },
    "sampling_and_extras": {
        "temperature": 0.3,
        "max_tokens": 77,
        "extra_headers": {"x-trace": "t-1"},
        "extra_query": {"beta": "true"},
        "extra_body": {"top_k": 5, "metadata": {"user_id": "x"}},
    },
    "thinking_and_json": {
        "reasoning_effort": "low",
        "max_tokens": 4000,
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "r",
                "schema": {"type": "object", "properties": {"a": {"type": "integer"}}},
            },
        },
    },
}


def _request_seen(route: Any) -> tuple[str, str, dict[str, str], Any]:
    sent = route.calls.last.request
    headers = {k: v for k, v in sent.headers.items() if k not in ("content-length",)}
    return sent.method, str(sent.url), headers, json.loads(sent.content)


@pytest.mark.parametrize("shape", sorted(_REQUESTS))
async def test_the_stream_request_is_creates_own(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str, shape: str
) -> None:
    route = respond_stream(httpx2_mock, wire.stream_body())
    fields = _REQUESTS[shape]
    req = ChatRequest(**{"messages": HELLO, **fields})
    new = await _run(adapter, req, mode, reference=False)
    seen_new = _request_seen(route)
    old = await _run(adapter, req, mode, reference=True)
    seen_old = _request_seen(route)
    assert seen_new == seen_old
    assert seen_new[3]["stream"] is True
    assert new == old


# ---------------------------------------------------------------------------------------------
# The SDK's own span


@pytest.fixture
def sdk_spans(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """The adapter's clients record the SDK's own spans into an exporter (not the global one)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    options = AnthropicAdapter._client_options

    def with_spans(self: AnthropicAdapter) -> dict[str, Any]:
        return {**options(self), "open_telemetry": {"tracer_provider": provider}}

    monkeypatch.setattr(AnthropicAdapter, "_client_options", with_spans)
    return exporter


async def test_the_sdks_own_span_of_a_stream_still_gets_the_usage(
    adapter: AnthropicAdapter, httpx2_mock: Any, mode: str, sdk_spans: InMemorySpanExporter
) -> None:
    body = wire.stream_body(usage=wire.usage(30, 12, cache_read_input_tokens=50))
    new = await both(adapter, httpx2_mock, body, mode)
    assert new[1] == TokenUsage(input_tokens=80, output_tokens=12, cached_input_tokens=50)
    spans = sdk_spans.get_finished_spans()
    assert len(spans) == 2  # one per path
    for span in spans:
        attributes = span.attributes or {}
        assert attributes.get("gen_ai.usage.output_tokens") == 12
        assert attributes.get("gen_ai.usage.cache_read.input_tokens") == 50


@pytest.mark.parametrize(
    ("model", "fields", "category"),
    [
        ("claude-opus-4-5", {}, DeprecationWarning),
        (
            "claude-opus-4-6",
            {"reasoning_effort": "low"},
            UserWarning,
        ),
    ],
)
async def test_the_sdks_model_warnings_still_come(
    adapter: AnthropicAdapter,
    httpx2_mock: Any,
    model: str,
    fields: dict[str, Any],
    category: type[Warning],
) -> None:
    respond_stream(httpx2_mock, wire.stream_body())
    req = ChatRequest(**{"messages": HELLO, "max_tokens": 2000, **fields})
    params = build_params(model, req)
    with pytest.warns(category) as expected:
        adapter._get_client().messages.create(**params, stream=True, timeout=5.0).close()
    with pytest.warns(category) as ours:
        list(adapter.stream(model, req))
    assert [str(w.message) for w in ours] == [str(w.message) for w in expected]
    httpx2_mock.post(url__startswith=URL).mock(
        return_value=httpx.Response(200, json=wire.message())
    )
    with pytest.warns(category) as ours:
        adapter.complete(model, req)
    assert [str(w.message) for w in ours] == [str(w.message) for w in expected]
