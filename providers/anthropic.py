"""Anthropic (Claude) through the official ``anthropic`` SDK's Messages API.

Request translation (OpenAI chat shape -> ``messages.create``) is in
:mod:`gateway.providers._anthropic_request`; :func:`build_params` is re-exported here.
Response and stream translation (finish reasons, refusals, usage with its cache parts) is in
:mod:`gateway.providers._anthropic_response`.

A non-streamed call goes through ``messages.with_raw_response.create`` and its answer is read
as its JSON body. A stream goes out through the client's ``post("/v1/messages", ...)``, the
layer under ``messages.create``, with the same body, headers, auth, timeout, span options and
model warnings (:func:`post_arguments`; the request on the wire is checked equal to
``create``'s in ``tests/providers/test_anthropic_stream_raw.py``). Its events are read as their
JSON objects (``Stream[object]``: the SDK still decodes the server-sent events, skips ``ping``
and raises an in-stream ``error`` event as it does for ``create``) and translated directly,
without the SDK's event models (about half of its CPU per chunk). When the SDK
records its own span of the call (its OpenTelemetry is on and the gateway's is off), the
events are read as its models instead, so that span still gets the message's usage.

A stream that ends before ``message_delta`` (no stop reason) raises ProviderConnectionError
rather than passing off a truncated answer as complete. A tool call without arguments streams
no argument fragment at all; it gets ``"{}"`` when its block ends, as OpenAI's arguments are
always a JSON object. An event that is not what its type says is a ProviderUnavailable.

Errors (:func:`map_error`) are keyed on the HTTP status first, so SDK subclasses added later
still map; an ``error`` event inside a 200 stream (``status_code == 200`` on the SDK error) is
keyed on its ``error.type`` and reported with ``status_code=None``. A 402 or ``billing_error``
is RateLimited with ``code="insufficient_quota"`` (out of credit, as OpenAI names it).
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping
from typing import Any

import anthropic
import httpx2
from anthropic._base_client import make_request_options
from anthropic._data import DEPRECATED_MODELS, MODELS_TO_WARN_WITH_THINKING_ENABLED
from anthropic._types import RequestOptions
from anthropic.lib._tracing import messages_create_request_attributes
from anthropic.types import Message, RawMessageStreamEvent
from openai.types.chat import ChatCompletionChunk

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
from gateway.providers._anthropic_response import (
    REFUSAL_MESSAGE,
    MalformedEvent,
    StreamState,
    StreamTranslator,
    response_of_body,
)
from gateway.providers._common import completion_body, retry_after_seconds
from gateway.providers.base import (
    AsyncChunkStream,
    ChatRequest,
    ChunkStream,
    ProviderResponse,
)

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "MESSAGES_PATH",
    "REFUSAL_MESSAGE",
    "AnthropicAdapter",
    "build_params",
    "map_error",
    "post_arguments",
]

#: Total seconds per request when neither the config nor the call sets one (the SDK's default).
DEFAULT_TIMEOUT_S = 600.0

#: The SDK's event union (an annotated Union, which mypy does not take as a ``type``).
_EVENT_TYPE: Any = RawMessageStreamEvent

#: What the batch module imports (the same translation as a chat call's).
_response = response_of_body

# ---------------------------------------------------------------------------------------------
# Requests

#: The path ``messages.create`` posts to (relative to the client's base URL).
MESSAGES_PATH = "/v1/messages"


def post_arguments(
    params: dict[str, Any], *, timeout: httpx2.Timeout
) -> tuple[dict[str, Any], RequestOptions]:
    """What ``messages.create(**params, stream=True, timeout=timeout)`` hands ``client.post``:
    the JSON body and the request options (extra headers, query and body, the timeout, the
    SDK's span name and attributes). Warns as ``create`` warns about the model. Takes
    ``params`` (:func:`build_params`'s) apart."""
    body = dict(params)
    extra_headers = {**(body.pop("extra_headers", None) or {})}
    extra_query = body.pop("extra_query", None)
    extra_body = body.pop("extra_body", None)
    body["stream"] = True
    _warn_as_create_does(body)
    options = make_request_options(
        extra_headers=extra_headers,
        extra_query=extra_query,
        extra_body=extra_body,
        timeout=timeout,
        span_name="anthropic.messages.create",
        span_route=MESSAGES_PATH,
        span_attributes=messages_create_request_attributes,
    )
    return body, options


def _warn_as_create_does(body: Mapping[str, Any]) -> None:
    # The SDK's own warnings, word for word: a deprecated model, thinking "enabled" on a model
    # that wants "adaptive".
    model = body["model"]
    if model in DEPRECATED_MODELS:
        warnings.warn(
            f"The model '{model}' is deprecated and will reach end-of-life on "
            f"{DEPRECATED_MODELS[model]}.\nPlease migrate to a newer model. Visit "
            "https://docs.anthropic.com/en/docs/resources/model-deprecations for more "
            "information.",
            DeprecationWarning,
            stacklevel=4,
        )
    thinking = body.get("thinking")
    if model in MODELS_TO_WARN_WITH_THINKING_ENABLED and thinking and thinking["type"] == "enabled":
        warnings.warn(
            f"Using Claude with {model} and 'thinking.type=enabled' is deprecated. Use "
            "'thinking.type=adaptive' instead which results in better model performance in our "
            "testing: https://platform.claude.com/docs/en/build-with-claude/adaptive-thinking",
            UserWarning,
            stacklevel=4,
        )


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
    if isinstance(exc, MalformedEvent):
        return ProviderUnavailable(
            f"malformed stream event from the provider: {exc}", provider=provider, model=model
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


class _mapped_errors:
    """Raise SDK exceptions as gateway errors, unchained (an SDK message may echo a header).

    A class, not a ``@contextmanager`` generator: entered on every call, and a generator
    costs a few µs more."""

    __slots__ = ("model", "provider", "stream")

    def __init__(self, provider: str, model: str, stream: StreamState | None = None) -> None:
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

    # -- calls ----------------------------------------------------------------------------

    def complete(self, model: str, request: ChatRequest) -> ProviderResponse:
        # Through ``create`` still: ``client.post`` measured no fewer instructions per call
        # here (bench/README.md), unlike for streams, where the events' models were the cost.
        params = build_params(model, request, provider=self.name)
        client = self._get_client()
        with _mapped_errors(self.name, model):
            raw = client.messages.with_raw_response.create(
                **params, timeout=self._call_timeout(request)
            )
        body = completion_body(raw.http_response.content, provider=self.name, model=model)
        return response_of_body(body, model)

    async def acomplete(self, model: str, request: ChatRequest) -> ProviderResponse:
        params = build_params(model, request, provider=self.name)
        client = self._get_async_client()
        with _mapped_errors(self.name, model):
            raw = await client.messages.with_raw_response.create(
                **params, timeout=self._call_timeout(request)
            )
        body = completion_body(raw.http_response.content, provider=self.name, model=model)
        return response_of_body(body, model)

    def stream(self, model: str, request: ChatRequest) -> ChunkStream:
        params = build_params(model, request, provider=self.name)
        body, options = post_arguments(params, timeout=self._call_timeout(request))
        client = self._get_client()
        with _mapped_errors(self.name, model):
            native = client.post(
                MESSAGES_PATH,
                body=body,
                options=options,
                cast_to=Message,  # what the call returns, for the SDK's own span
                stream=True,
                stream_cls=anthropic.Stream[object],
            )
        events: Iterator[Any] = native
        if native._observer is not None:
            # The SDK records this call on its own span, from its event models: read those.
            typed: anthropic.Stream[RawMessageStreamEvent] = anthropic.Stream(
                cast_to=_EVENT_TYPE, response=native.response, client=client
            )
            events = (event.to_dict() for event in typed)
        result = ChunkStream()
        translator = StreamTranslator(model, result)
        chunks = self._iterate(native, events, translator, model, result)
        result.chunks = chunks

        def close() -> None:
            chunks.close()
            native.close()

        result.close_native = close
        return result

    def _iterate(
        self,
        native: anthropic.Stream[object],
        events: Iterator[Any],
        translator: StreamTranslator,
        model: str,
        state: ChunkStream,
    ) -> Generator[ChatCompletionChunk, None, None]:
        with _mapped_errors(self.name, model, state):
            for event in events:
                chunk = translator.translate(event)
                if chunk is None:
                    continue
                if translator.done:
                    # The usage chunk. Read the rest (message_stop) before closing, so the
                    # connection goes back to the pool instead of being dropped mid-response.
                    for _ in events:
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
        body, options = post_arguments(params, timeout=self._call_timeout(request))
        client = self._get_async_client()
        with _mapped_errors(self.name, model):
            native = await client.post(
                MESSAGES_PATH,
                body=body,
                options=options,
                cast_to=Message,
                stream=True,
                stream_cls=anthropic.AsyncStream[object],
            )
        events: AsyncIterator[Any] = native
        if native._observer is not None:  # the SDK's own span reads its models (see stream)
            typed: anthropic.AsyncStream[RawMessageStreamEvent] = anthropic.AsyncStream(
                cast_to=_EVENT_TYPE, response=native.response, client=client
            )
            events = _as_dicts(typed)
        result = AsyncChunkStream()
        translator = StreamTranslator(model, result)
        chunks = self._aiterate(native, events, translator, model, result)
        result.chunks = chunks

        async def close() -> None:
            await chunks.aclose()
            await native.close()

        result.close_native = close
        return result

    async def _aiterate(
        self,
        native: anthropic.AsyncStream[object],
        events: AsyncIterator[Any],
        translator: StreamTranslator,
        model: str,
        state: AsyncChunkStream,
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        with _mapped_errors(self.name, model, state):
            async for event in events:
                chunk = translator.translate(event)
                if chunk is None:
                    continue
                if translator.done:  # the usage chunk; drain message_stop, keep the connection
                    async for _ in events:
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


async def _as_dicts(events: anthropic.AsyncStream[RawMessageStreamEvent]) -> AsyncIterator[Any]:
    async for event in events:
        yield event.to_dict()
