"""Anthropic (Claude) through the official ``anthropic`` SDK's Messages API.

Request translation (OpenAI chat shape -> ``messages.create``) is in
:mod:`gateway.providers._anthropic_request`; :func:`build_params` is re-exported here.

Response translation: text blocks are concatenated into ``message.content``; ``tool_use``
blocks become ``tool_calls``. Thinking blocks (and server-tool blocks such as web search
results) have no place in the OpenAI shape and are skipped; their tokens still count in
``output_tokens`` (thinking tokens also in ``reasoning_tokens``). Stop reasons: end_turn,
stop_sequence, pause_turn -> stop; max_tokens, model_context_window_exceeded -> length;
tool_use -> tool_calls; refusal -> content_filter, with ``message.refusal`` (in a stream: the
``refusal`` of the finishing chunk's delta) set to :data:`REFUSAL_MESSAGE`; any text Claude wrote
before it stopped stays in ``content``.

Usage: Anthropic's ``input_tokens`` excludes cache reads and writes, so ours is
``input_tokens + cache_creation_input_tokens + cache_read_input_tokens``.

Streams use the raw event stream (``messages.create(stream=True)``), not the SDK's
accumulating ``messages.stream`` helper. A stream that ends before ``message_delta`` (no stop
reason) raises ProviderConnectionError rather than passing off a truncated answer as complete.
A tool call without arguments streams no argument fragment at all; it gets ``"{}"`` when its
block ends, as OpenAI's arguments are always a JSON object.

Errors (:func:`map_error`) are keyed on the HTTP status first, so SDK subclasses added later
still map; an ``error`` event inside a 200 stream (``status_code == 200`` on the SDK error) is
keyed on its ``error.type`` and reported with ``status_code=None``. A 402 or ``billing_error``
is RateLimited with ``code="insufficient_quota"`` (out of credit, as OpenAI names it).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncGenerator, Generator, Mapping
from typing import Any, Protocol

import anthropic
import httpx2
from openai.types.chat import ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import (
    Choice,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
)

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
    raise_unchained,
)
from gateway.providers import _transport as transport
from gateway.providers._anthropic_request import DEFAULT_MAX_TOKENS, build_params
from gateway.providers._common import (
    FinishReason,
    completion_body,
    completion_data,
    make_tool_call,
    retry_after_seconds,
    usage_chunk,
)
from gateway.providers._construct import construct
from gateway.providers.base import (
    AsyncChunkStream,
    ChatRequest,
    ChunkStream,
    ProviderResponse,
    TokenUsage,
)

__all__ = ["DEFAULT_MAX_TOKENS", "REFUSAL_MESSAGE", "AnthropicAdapter", "build_params", "map_error"]

#: Total seconds per request when neither the config nor the call sets one (the SDK's default).
DEFAULT_TIMEOUT_S = 600.0

_FINISH_REASONS: Mapping[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


#: ``message.refusal`` when Claude stops with ``stop_reason: "refusal"``.
REFUSAL_MESSAGE = "Claude declined to continue this request (stop_reason: refusal)"


def _finish_reason(stop_reason: str | None) -> FinishReason:
    return _FINISH_REASONS.get(stop_reason or "end_turn", "stop")


# ---------------------------------------------------------------------------------------------
# Errors

# Error ``type`` values that name the failure when the HTTP status does not (in-stream errors).
_ERRORS_BY_TYPE: Mapping[str, type[ProviderError]] = {
    "overloaded_error": ProviderOverloaded,
    "rate_limit_error": RateLimited,
    "api_error": ProviderUnavailable,
    "timeout_error": ProviderTimeout,
    "authentication_error": AuthenticationFailed,
    "permission_error": AuthenticationFailed,
    "invalid_request_error": InvalidRequest,
    "not_found_error": InvalidRequest,
    "request_too_large": InvalidRequest,
    "billing_error": RateLimited,
}


def _status_class(status: int, error_type: str | None) -> type[ProviderError]:
    """The error class for an HTTP status, keyed on the status so new SDK subclasses map too."""
    if status in (401, 403):
        return AuthenticationFailed
    if status in (402, 429) or error_type == "billing_error":
        return RateLimited
    if status == 408:
        return ProviderTimeout
    if status == 529 or error_type == "overloaded_error":
        return ProviderOverloaded
    if 400 <= status < 500:
        return InvalidRequest
    return ProviderUnavailable


def _status_error(exc: anthropic.APIStatusError, *, provider: str, model: str) -> ProviderError:
    error_type = exc.type
    message = exc.api_message
    if not message:
        body = exc.body
        message = body[:200] if isinstance(body, str) and body else "no error message"
    request_id = exc.request_id
    if request_id is None and isinstance(exc.body, dict):
        body_id = exc.body.get("request_id")
        request_id = body_id if isinstance(body_id, str) else None
    code: str | None = exc.error_code or error_type
    status: int | None = exc.status_code
    if exc.status_code < 300:
        # An ``error`` event inside a 200 stream: only its type says what failed.
        cls = _ERRORS_BY_TYPE.get(error_type or "", ProviderUnavailable)
        message = f"error event in the stream: {message}"
        status = None
    else:
        cls = _status_class(exc.status_code, error_type)
        # Anthropic gives no structured code for an over-long prompt, only this message.
        if cls is InvalidRequest and "prompt is too long" in message.lower():
            cls = ContextTooLong
    if exc.status_code == 402 or error_type == "billing_error":
        # The account is out of credit: the same condition as OpenAI's insufficient_quota.
        code = "insufficient_quota"
    return cls(
        message,
        provider=provider,
        model=model,
        status_code=status,
        retry_after=retry_after_seconds(exc.response.headers),
        request_id=request_id,
        code=code,
    )


def map_error(exc: BaseException, *, provider: str, model: str) -> GatewayError | None:
    """The gateway error for an exception raised by the ``anthropic`` SDK, or None if not one."""
    if isinstance(exc, anthropic.APIStatusError):
        return _status_error(exc, provider=provider, model=model)
    if isinstance(exc, anthropic.APITimeoutError):
        return ProviderTimeout("request timed out", provider=provider, model=model)
    if isinstance(exc, anthropic.APIConnectionError):
        return ProviderConnectionError("connection failed", provider=provider, model=model)
    if isinstance(exc, anthropic.APIResponseValidationError):
        return ProviderUnavailable(
            "response did not match the API schema",
            provider=provider,
            model=model,
            status_code=exc.status_code,
        )
    if isinstance(exc, anthropic.APIError):
        return ProviderUnavailable(exc.message[:200], provider=provider, model=model)
    # Reading a stream goes straight to httpx2, whose errors the SDK does not wrap.
    if isinstance(exc, httpx2.TimeoutException):
        return ProviderTimeout("timed out reading the stream", provider=provider, model=model)
    if isinstance(exc, httpx2.TransportError):
        return ProviderConnectionError(
            f"stream broken: {type(exc).__name__}", provider=provider, model=model
        )
    if isinstance(exc, json.JSONDecodeError):
        return ProviderUnavailable(
            "malformed JSON from the provider", provider=provider, model=model
        )
    if isinstance(exc, anthropic.CredentialsError):
        return AuthenticationFailed(
            "credentials could not be loaded", provider=provider, model=model
        )
    return None


class _StreamState(Protocol):
    content_chunks: int
    usage: TokenUsage | None


class _mapped_errors:
    """Raise SDK exceptions as gateway errors, unchained (an SDK message may echo a header).

    A class, not a ``@contextmanager`` generator: entered on every call, and a generator
    costs a few µs more."""

    __slots__ = ("model", "provider", "stream")

    def __init__(self, provider: str, model: str, stream: _StreamState | None = None) -> None:
        self.provider = provider
        self.model = model
        self.stream = stream

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, GatewayError):
            return
        mapped = map_error(exc, provider=self.provider, model=self.model)
        if mapped is None:
            return
        if self.stream is not None and isinstance(mapped, ProviderUnavailable):
            mapped.chunks_received = self.stream.content_chunks
        raise_unchained(mapped)


# ---------------------------------------------------------------------------------------------
# Response translation


def _response(body: Mapping[str, Any], model: str) -> ProviderResponse:
    """A Message as its JSON body -> the OpenAI-shaped completion.

    The body is read as sent, not through the SDK's ``Message`` model: building that model
    (its recursive ``construct``) was a sixth of the SDK's CPU per call, only to be read once
    and thrown away here."""
    texts: list[str] = []
    tool_calls = []
    for block in body.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            tool_calls.append(make_tool_call(block["id"], block["name"], block.get("input") or {}))
        # thinking, redacted_thinking and server-tool blocks have no OpenAI equivalent
    usage = _usage_of_body(body.get("usage") or {})
    stop_reason = body.get("stop_reason")
    data = completion_data(
        response_id=body.get("id") or "",
        model=body.get("model") or model,
        content="".join(texts) if texts else None,
        finish_reason=_finish_reason(stop_reason),
        usage=usage,
        tool_calls=tool_calls,
        refusal=REFUSAL_MESSAGE if stop_reason == "refusal" else None,
    )
    return ProviderResponse.from_data(data, usage)


def _usage_of_body(usage: Mapping[str, Any]) -> TokenUsage:
    """Anthropic's usage (its JSON) -> TokenUsage: the prompt's three parts add up to
    ``input_tokens``; thinking tokens are the reasoning part of the output."""
    cache_write = usage.get("cache_creation_input_tokens") or 0
    cache_read = usage.get("cache_read_input_tokens") or 0
    details = usage.get("output_tokens_details") or {}
    return TokenUsage(
        input_tokens=(usage.get("input_tokens") or 0) + cache_write + cache_read,
        output_tokens=usage.get("output_tokens") or 0,
        cached_input_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=details.get("thinking_tokens") or 0,
    )


class _StreamTranslator:
    """Anthropic stream events -> OpenAI chunks, at most one chunk per event."""

    __slots__ = (
        "_cache_read",
        "_cache_write",
        "_input",
        "_output",
        "_reasoning",
        "_tool_index",
        "_tools_without_arguments",
        "created",
        "done",
        "finish_reason",
        "model",
        "response_id",
        "state",
    )

    def __init__(self, model: str, state: _StreamState) -> None:
        self.model = model
        self.state = state
        self.response_id = ""
        self.created = int(time.time())
        self.finish_reason: FinishReason | None = None
        self.done = False
        self._input = self._output = self._reasoning = self._cache_read = self._cache_write = 0
        #: Content block index -> OpenAI tool-call index (counting tool calls only).
        self._tool_index: dict[int, int] = {}
        #: Content blocks of tool calls that have streamed no arguments yet.
        self._tools_without_arguments: set[int] = set()

    def _chunk(self, delta: ChoiceDelta, finish: FinishReason | None = None) -> ChatCompletionChunk:
        # The OpenAI SDK's types, built without validating what we just made (make_chunk's
        # validation was ~13 µs per chunk, see _construct).
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
        # Counts in later events are cumulative: they replace, never add.
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
            return None  # thinking, signature and citation deltas
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
            self.finish_reason = _finish_reason(stop_reason)
            self.state.usage = self.usage()
            refusal = REFUSAL_MESSAGE if stop_reason == "refusal" else None
            return self._chunk(construct(ChoiceDelta, refusal=refusal), self.finish_reason)
        if kind == "message_stop":
            return self.usage_chunk()
        if kind == "content_block_stop" and event.index in self._tools_without_arguments:
            # A call without arguments streams none (not even "{}"), but OpenAI's are always
            # JSON: send "{}" so json.loads and the SDK's own accumulator work.
            self._tools_without_arguments.discard(event.index)
            function = construct(ChoiceDeltaToolCallFunction, arguments="{}")
            call = construct(
                ChoiceDeltaToolCall, index=self._tool_index[event.index], function=function
            )
            return self._chunk(construct(ChoiceDelta, tool_calls=[call]))
        return None  # event types newer than this adapter

    def end(self, provider: str) -> ChatCompletionChunk | None:
        """Called when the events run out: the usage chunk if still owed, or an error."""
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


# ---------------------------------------------------------------------------------------------
# The adapter


class AnthropicAdapter:
    """Anthropic's Messages API behind the OpenAI chat shape (see the module docstring)."""

    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self._config = config
        self._client: anthropic.Anthropic | None = None
        self._async_client: anthropic.AsyncAnthropic | None = None
        self._lock = threading.Lock()
        self._default_timeout: httpx2.Timeout | None = None

    #: Whether the SDK records its own OpenTelemetry span per HTTP call (when a tracer
    #: provider is set). The gateway turns it off when its own telemetry is on, so a call is
    #: not counted twice by a backend that sums ``gen_ai.usage.*`` over every span.
    sdk_spans: bool = True

    def __repr__(self) -> str:
        return f"AnthropicAdapter(name={self.name!r})"

    # -- clients ----------------------------------------------------------------------------

    def _client_options(self) -> dict[str, Any]:
        config = self._config
        if config.api_key is None:
            raise ConfigError(
                "no api_key",
                key=f"providers.{self.name}.api_key",
                fix="add api_key: ${ANTHROPIC_API_KEY}",
            )
        return {
            "api_key": config.api_key.reveal(),
            "base_url": config.base_url,
            "timeout": httpx2.Timeout(
                config.timeout or DEFAULT_TIMEOUT_S, connect=config.connect_timeout
            ),
            "max_retries": 0,  # the gateway owns retries
            "default_headers": dict(config.headers) or None,
            # None: the SDK's own environment variables decide; False: its spans are off.
            "open_telemetry": None if self.sdk_spans else False,
        }

    def _get_client(self) -> anthropic.Anthropic:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = anthropic.Anthropic(**self._client_options())
        return self._client

    def _get_async_client(self) -> anthropic.AsyncAnthropic:
        if self._async_client is None:
            options = self._client_options()
            if transport.async_transport(self._config.transport) == "aiohttp":
                # The SDK's defaults (limits, redirects) over aiohttp (providers/_transport.py).
                options["http_client"] = anthropic.DefaultAsyncHttpxClient(
                    transport=transport.AiohttpTransport()
                )
            self._async_client = anthropic.AsyncAnthropic(**options)
        return self._async_client

    def _call_timeout(self, request: ChatRequest) -> httpx2.Timeout:
        # Always explicit: with the client default, the SDK refuses a non-streamed call whose
        # max_tokens could take over 10 minutes (ValueError "Streaming is required ...").
        if request.timeout is None and self._default_timeout is not None:
            return self._default_timeout  # the same every call: made once
        total = request.timeout or self._config.timeout or DEFAULT_TIMEOUT_S
        timeout = httpx2.Timeout(total, connect=min(self._config.connect_timeout, total))
        if request.timeout is None:
            self._default_timeout = timeout
        return timeout

    # -- calls ------------------------------------------------------------------------------

    def complete(self, model: str, request: ChatRequest) -> ProviderResponse:
        params = build_params(model, request, provider=self.name)
        client = self._get_client()
        with _mapped_errors(self.name, model):
            raw = client.messages.with_raw_response.create(
                **params, timeout=self._call_timeout(request)
            )
        body = completion_body(raw.http_response.content, provider=self.name, model=model)
        return _response(body, model)

    async def acomplete(self, model: str, request: ChatRequest) -> ProviderResponse:
        params = build_params(model, request, provider=self.name)
        client = self._get_async_client()
        with _mapped_errors(self.name, model):
            raw = await client.messages.with_raw_response.create(
                **params, timeout=self._call_timeout(request)
            )
        body = completion_body(raw.http_response.content, provider=self.name, model=model)
        return _response(body, model)

    def stream(self, model: str, request: ChatRequest) -> ChunkStream:
        params = build_params(model, request, provider=self.name)
        client = self._get_client()
        with _mapped_errors(self.name, model):
            native = client.messages.create(
                **params, stream=True, timeout=self._call_timeout(request)
            )
        result = ChunkStream()
        translator = _StreamTranslator(model, result)
        chunks = self._iterate(native, translator, model, result)
        result.chunks = chunks

        def close() -> None:
            chunks.close()
            native.close()

        result.close_native = close
        return result

    def _iterate(
        self,
        native: anthropic.Stream[Any],
        translator: _StreamTranslator,
        model: str,
        state: ChunkStream,
    ) -> Generator[ChatCompletionChunk, None, None]:
        with _mapped_errors(self.name, model, state):
            for event in native:
                chunk = translator.translate(event)
                if chunk is None:
                    continue
                if translator.done:
                    # The usage chunk. Read the rest (message_stop) before closing, so the
                    # connection goes back to the pool instead of being dropped mid-response.
                    for _ in native:
                        pass
                    native.close()
                    yield chunk
                    return
                yield chunk
            last = translator.end(self.name)
        if last is not None:
            yield last

    async def astream(self, model: str, request: ChatRequest) -> AsyncChunkStream:
        params = build_params(model, request, provider=self.name)
        client = self._get_async_client()
        with _mapped_errors(self.name, model):
            native = await client.messages.create(
                **params, stream=True, timeout=self._call_timeout(request)
            )
        result = AsyncChunkStream()
        translator = _StreamTranslator(model, result)
        chunks = self._aiterate(native, translator, model, result)
        result.chunks = chunks

        async def close() -> None:
            await chunks.aclose()
            await native.close()

        result.close_native = close
        return result

    async def _aiterate(
        self,
        native: anthropic.AsyncStream[Any],
        translator: _StreamTranslator,
        model: str,
        state: AsyncChunkStream,
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        with _mapped_errors(self.name, model, state):
            async for event in native:
                chunk = translator.translate(event)
                if chunk is None:
                    continue
                if translator.done:  # the usage chunk; drain message_stop, keep the connection
                    async for _ in native:
                        pass
                    await native.close()
                    yield chunk
                    return
                yield chunk
            last = translator.end(self.name)
        if last is not None:
            yield last

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        client, self._async_client = self._async_client, None
        if client is not None:
            await client.close()
