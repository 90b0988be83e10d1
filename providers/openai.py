"""OpenAI through the official ``openai`` SDK (3.x, on httpx2).

The gateway already speaks OpenAI's chat shape, so the request goes out nearly as given and
the SDK's own ``ChatCompletion`` / ``ChatCompletionChunk`` objects come back unchanged.

Request, :class:`~gateway.providers.base.ChatRequest` -> ``chat.completions.create`` keyword:

- ``messages``, ``tools``, ``tool_choice``, ``response_format``, ``stop``, ``temperature``,
  ``top_p``, ``user``: as given (only the ones that are set). Content parts are not
  inspected here: a part OpenAI does not accept comes back as its own 400, which maps to
  :class:`~gateway.errors.InvalidRequest`.
- ``seed``, ``frequency_penalty``, ``presence_penalty``, ``logprobs``, ``top_logprobs``,
  ``parallel_tool_calls``, ``reasoning_effort``, ``extra_headers``, ``extra_query`` and the
  OpenAI-only arguments (``logit_bias``, ``service_tier``, ``store``, ...): as given.
- ``metadata``: sent only when the caller also asked OpenAI to store the completion
  (``store=True``, or ``extra_body={"store": True}``); otherwise dropped, because OpenAI
  refuses ``metadata`` without ``store`` (HTTP 400) and storing conversations is not ours to
  switch on.
- ``max_tokens`` -> ``max_completion_tokens`` (the budget including reasoning; the legacy
  ``max_tokens`` is refused by reasoning models).
- ``extra_body`` -> the SDK's ``extra_body`` (merged into the JSON body, winning over ours).
- streams always send ``stream_options={"include_usage": true}``: without it OpenAI sends no
  usage at all in a stream.
- ``timeout`` -> the SDK's per-call ``timeout`` (an httpx timeout: it bounds connect, each
  read and each write, not the whole call; the gateway enforces its own deadline around it).

The keyword arguments go out through ``client.post("/chat/completions", ...)``, the layer under
``chat.completions.create`` (:func:`post_arguments`): ``create`` only adds a recursive transform
of every argument against its TypedDicts (~230 µs a call), which leaves the JSON values the
gateway builds as they are. Headers, auth, timeouts, retries (off), errors and streams are the
client's, as before; ``tests/providers/test_openai_wire.py`` checks the request on the wire
equals ``create``'s for each request shape.

Async calls and streams on the aiohttp transport skip the SDK's per-request machinery
(``providers/_openai_direct.py``): the same request, made by the SDK once per request shape,
sent on the same aiohttp session; errors still made by the SDK and mapped by :func:`map_error`.

Responses are returned as the SDK parsed them; :func:`token_usage` reads the usage. A stream
yields the SDK's chunks as they come and ends with OpenAI's own usage chunk; if the server
sent none (some OpenAI-compatible servers behind ``base_url``), a zero usage chunk is made up.

The client ignores ``OPENAI_BASE_URL`` (the config's ``base_url`` or OpenAI's default wins);
``OPENAI_ORG_ID`` / ``OPENAI_PROJECT_ID`` from the environment are still honoured by the SDK.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncGenerator, Generator
from typing import Any

import httpx2
import openai
from openai import AsyncOpenAI, AsyncStream, OpenAI, Stream
from openai._base_client import make_request_options
from openai._types import RequestOptions
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.completion_usage import CompletionUsage

from gateway.config import ProviderConfig, url_without_credentials
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
from gateway.providers import _openai_direct as direct
from gateway.providers import _openai_media as media
from gateway.providers import _transport as transport
from gateway.providers._common import completion_body, retry_after_seconds, usage_chunk
from gateway.providers.base import (
    AsyncChunkStream,
    ChatRequest,
    ChunkStream,
    ProviderResponse,
    TokenUsage,
)
from gateway.providers.media import EmbeddingRequest, EmbeddingResult, ImageRequest, ImageResult

__all__ = [
    "CHAT_COMPLETIONS_PATH",
    "DEFAULT_BASE_URL",
    "OpenAIAdapter",
    "map_error",
    "native_kwargs",
    "post_arguments",
    "response_of_body",
    "token_usage",
]

#: Where requests go when the config has no ``base_url`` (the SDK's own default).
DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: The SDK's default total timeout, used when the config sets none.
_DEFAULT_TIMEOUT_S = 600.0
#: Longest provider message kept in an error (a proxy may answer with a whole HTML page).
_MAX_MESSAGE = 500

# ---------------------------------------------------------------------------------------------
# Errors

#: In-stream error events carry no status code, only OpenAI's ``code`` and ``type``.
_EVENT_ERRORS: dict[str, type[ProviderError]] = {
    "server_error": ProviderUnavailable,
    "internal_error": ProviderUnavailable,
    "service_unavailable": ProviderUnavailable,
    "overloaded": ProviderOverloaded,
    "overloaded_error": ProviderOverloaded,
    "timeout": ProviderTimeout,
    "rate_limit_exceeded": RateLimited,
    "rate_limit_error": RateLimited,
    "insufficient_quota": RateLimited,
    "tokens": RateLimited,
    "requests": RateLimited,
    "context_length_exceeded": ContextTooLong,
    "invalid_request_error": InvalidRequest,
    "invalid_api_key": AuthenticationFailed,
    "authentication_error": AuthenticationFailed,
}


def _status_class(status: int, code: str | None) -> type[ProviderError]:
    if status == 400 and code == "context_length_exceeded":
        return ContextTooLong
    if status in (401, 403):
        return AuthenticationFailed
    if status == 408:
        return ProviderTimeout
    if status == 429:
        return RateLimited
    if status == 529:
        return ProviderOverloaded
    if 400 <= status < 500:
        return InvalidRequest
    return ProviderUnavailable


def _provider_message(exc: openai.APIError) -> str:
    """The provider's own words: ``error.message`` from the body, else the SDK's message."""
    body = exc.body
    message: str = exc.message
    if isinstance(body, dict):
        value = body.get("message")
        if isinstance(value, str) and value:
            message = value
    elif isinstance(body, str) and body.strip():
        message = body.strip()
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "..."
    return message


def map_error(exc: BaseException, *, provider: str, model: str) -> GatewayError | None:
    """The gateway error for an ``openai`` SDK exception; None for anything else.

    Keyed on the SDK's exception types, the HTTP status and OpenAI's structured ``code`` /
    ``type``; never on message text.
    """
    if isinstance(exc, GatewayError):
        return exc
    # APITimeoutError subclasses APIConnectionError: test it first.
    if isinstance(exc, openai.APITimeoutError):
        return ProviderTimeout("the request timed out", provider=provider, model=model)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        detail = f" ({type(cause).__name__})" if cause is not None else ""
        return ProviderConnectionError(
            f"could not reach the API{detail}", provider=provider, model=model
        )
    if isinstance(exc, openai.APIStatusError):
        code = exc.code or exc.type
        return _status_class(exc.status_code, exc.code)(
            _provider_message(exc),
            provider=provider,
            model=model,
            status_code=exc.status_code,
            retry_after=retry_after_seconds(exc.response.headers),
            request_id=exc.request_id,
            code=code,
        )
    if isinstance(exc, openai.APIResponseValidationError):
        return ProviderUnavailable(
            "the response did not match the API's schema",
            provider=provider,
            model=model,
            status_code=exc.status_code,
            request_id=exc.response.headers.get("x-request-id"),
        )
    if isinstance(exc, openai.APIError):
        # An error event inside a 200 stream: the SDK raises the bare APIError with the
        # event's ``error`` object as body (``.code`` and ``.type`` from it, no status).
        error_class = (
            _EVENT_ERRORS.get(exc.code or "")
            or _EVENT_ERRORS.get(exc.type or "")
            or ProviderUnavailable
        )
        return error_class(
            _provider_message(exc), provider=provider, model=model, code=exc.code or exc.type
        )
    return None


class _MappedErrors:
    """``with _MappedErrors(provider, model):`` raises SDK errors as gateway errors.

    The SDK exception is not chained, not even as ``__context__`` (:func:`raise_unchained`):
    it holds the request, headers and key included.
    """

    __slots__ = ("model", "provider")

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None or isinstance(exc, GatewayError):
            return
        mapped = map_error(exc, provider=self.provider, model=self.model)
        if mapped is not None:
            raise_unchained(mapped)


def _stream_failure(
    exc: Exception, *, provider: str, model: str, request_id: str | None, content_chunks: int
) -> GatewayError | None:
    """The gateway error for a stream that broke mid-way, or None to re-raise ``exc``."""
    mapped = map_error(exc, provider=provider, model=model)
    if mapped is None:
        return None
    if isinstance(mapped, ProviderError) and mapped.request_id is None:
        mapped.request_id = request_id
    if isinstance(mapped, ProviderUnavailable):
        mapped.chunks_received = content_chunks
    return mapped


# ---------------------------------------------------------------------------------------------
# Request and usage translation


def _portable_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages without the fields other providers' answers add to tool calls.

    A conversation that Gemini answered carries ``extra_content`` (its thought signature) on
    each tool call; OpenAI refuses unknown fields there, so a fallback to OpenAI drops them.
    The common case (nothing to drop) returns the list untouched, without copying.
    """
    if not any(
        "extra_content" in call
        for message in messages
        if message.get("role") == "assistant"
        for call in message.get("tool_calls") or ()
        if isinstance(call, dict)
    ):
        return messages
    cleaned = []
    for message in messages:
        calls = message.get("tool_calls")
        if message.get("role") == "assistant" and calls:
            message = {
                **message,
                "tool_calls": [
                    {k: v for k, v in call.items() if k != "extra_content"}
                    if isinstance(call, dict)
                    else call
                    for call in calls
                ],
            }
        cleaned.append(message)
    return cleaned


def native_kwargs(model: str, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The keyword arguments of ``chat.completions.create`` for one request."""
    kwargs: dict[str, Any] = {"model": model, "messages": _portable_messages(request.messages)}
    if request.max_tokens is not None:
        kwargs["max_completion_tokens"] = request.max_tokens
    if request.temperature is not None:
        kwargs["temperature"] = request.temperature
    if request.top_p is not None:
        kwargs["top_p"] = request.top_p
    if request.stop is not None:
        kwargs["stop"] = request.stop
    if request.tools is not None:
        kwargs["tools"] = request.tools
    if request.tool_choice is not None:
        kwargs["tool_choice"] = request.tool_choice
    if request.response_format is not None:
        kwargs["response_format"] = request.response_format
    if request.user is not None:
        kwargs["user"] = request.user
    if request.seed is not None:
        kwargs["seed"] = request.seed
    if request.frequency_penalty is not None:
        kwargs["frequency_penalty"] = request.frequency_penalty
    if request.presence_penalty is not None:
        kwargs["presence_penalty"] = request.presence_penalty
    if request.logprobs:
        kwargs["logprobs"] = True
        if request.top_logprobs is not None:
            kwargs["top_logprobs"] = request.top_logprobs
    if request.parallel_tool_calls is not None:
        kwargs["parallel_tool_calls"] = request.parallel_tool_calls
    if request.reasoning_effort is not None:
        kwargs["reasoning_effort"] = request.reasoning_effort
    if request.extra_headers:
        kwargs["extra_headers"] = request.extra_headers
    if request.extra_query:
        kwargs["extra_query"] = request.extra_query
    openai_only = request.openai_only
    if openai_only:
        kwargs.update(openai_only)
    extra_body = request.extra_body
    stored = (openai_only and openai_only.get("store") is True) or (
        extra_body and extra_body.get("store") is True
    )
    if request.metadata is not None and stored:
        # OpenAI answers 400 "The 'metadata' parameter is only allowed when 'store' is
        # enabled"; storing conversations is the caller's choice, so we never turn it on.
        kwargs["metadata"] = request.metadata
    if stream:
        kwargs["stream"] = True
        kwargs["stream_options"] = {"include_usage": True}
        if extra_body and isinstance(extra_body.get("stream_options"), dict):
            # extra_body replaces our stream_options wholesale; keep the usage in it.
            extra_body = {
                **extra_body,
                "stream_options": {**extra_body["stream_options"], "include_usage": True},
            }
    if extra_body:
        kwargs["extra_body"] = extra_body
    return kwargs


#: The path ``chat.completions.create`` posts to (relative to the client's base URL).
CHAT_COMPLETIONS_PATH = "/chat/completions"
#: What ``create`` asks of the client's auth for this endpoint (its bearer key).
_SECURITY: Any = {"bearer_auth": True}


def post_arguments(kwargs: dict[str, Any]) -> tuple[dict[str, Any], RequestOptions]:
    """What ``chat.completions.create(**kwargs)`` hands ``client.post``: the JSON body and the
    request options (extra headers, query, body, timeout, auth). Takes ``kwargs`` apart."""
    extra_headers = kwargs.pop("extra_headers", None)
    extra_query = kwargs.pop("extra_query", None)
    extra_body = kwargs.pop("extra_body", None)
    timeout = kwargs.pop("timeout", openai.not_given)
    options = make_request_options(
        extra_headers=extra_headers,
        extra_query=extra_query,
        extra_body=extra_body,
        timeout=timeout,
        security=_SECURITY,
    )
    return kwargs, options


def token_usage(usage: CompletionUsage | None) -> TokenUsage:
    """OpenAI's usage as :class:`TokenUsage` (zeros when the response carried none).

    ``prompt_tokens`` already includes cached (and cache-written) tokens and
    ``completion_tokens`` already includes reasoning tokens, which is what TokenUsage wants.
    """
    return usage_of_body(None if usage is None else usage.model_dump())


def usage_of_body(usage: Any) -> TokenUsage:
    """:func:`token_usage` of a usage object as its JSON (a dict, or None)."""
    if not isinstance(usage, dict):
        return TokenUsage()
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return TokenUsage(
        input_tokens=usage.get("prompt_tokens") or 0,
        output_tokens=usage.get("completion_tokens") or 0,
        cached_input_tokens=prompt_details.get("cached_tokens") or 0,
        cache_write_tokens=prompt_details.get("cache_write_tokens") or 0,
        reasoning_tokens=completion_details.get("reasoning_tokens") or 0,
    )


def response_of_body(body: dict[str, Any]) -> ProviderResponse:
    """A chat completion's JSON body as the adapter's answer (a chat call's, a batch item's)."""
    return ProviderResponse.from_data(body, usage_of_body(body.get("usage")))


# ---------------------------------------------------------------------------------------------
# Streams


def _made_up_usage_chunk(
    last: ChatCompletionChunk | None, out: ChunkStream | AsyncChunkStream, model: str
) -> ChatCompletionChunk:
    """The closing usage chunk for a stream whose server sent none (zeros if never told)."""
    if out.usage is None:
        out.usage = TokenUsage()
    return usage_chunk(
        response_id=last.id if last is not None else "chatcmpl-gateway",
        model=last.model if last is not None else model,
        created=last.created if last is not None else int(time.time()),
        usage=out.usage,
    )


# The two relays run on every token: keep them lean and identical.


def _relay(
    sdk_stream: Stream[ChatCompletionChunk], out: ChunkStream, provider: str, model: str
) -> Generator[ChatCompletionChunk, None, None]:
    last: ChatCompletionChunk | None = None
    saw_usage_chunk = False
    try:
        for chunk in sdk_stream:
            last = chunk
            choices = chunk.choices
            if choices:
                delta = choices[0].delta
                if delta.content or delta.tool_calls or delta.refusal:
                    out.content_chunks += 1
                if chunk.usage is not None:
                    # Usage on a chunk with choices (some OpenAI-compatible servers): it is
                    # moved to the closing usage chunk, as OpenAI sends it.
                    out.usage = token_usage(chunk.usage)
                    chunk = chunk.model_copy(update={"usage": None})
            elif chunk.usage is not None:
                out.usage = token_usage(chunk.usage)
                saw_usage_chunk = True
            yield chunk
    except Exception as exc:
        mapped = _stream_failure(
            exc,
            provider=provider,
            model=model,
            request_id=sdk_stream.response.headers.get("x-request-id"),
            content_chunks=out.content_chunks,
        )
        if mapped is None:
            raise
        raise_unchained(mapped)
    if not saw_usage_chunk:
        yield _made_up_usage_chunk(last, out, model)


async def _arelay(
    sdk_stream: AsyncStream[ChatCompletionChunk] | direct.DirectStream,
    out: AsyncChunkStream,
    provider: str,
    model: str,
) -> AsyncGenerator[ChatCompletionChunk, None]:
    last: ChatCompletionChunk | None = None
    saw_usage_chunk = False
    try:
        async for chunk in sdk_stream:
            last = chunk
            choices = chunk.choices
            if choices:
                delta = choices[0].delta
                if delta.content or delta.tool_calls or delta.refusal:
                    out.content_chunks += 1
                if chunk.usage is not None:
                    out.usage = token_usage(chunk.usage)
                    chunk = chunk.model_copy(update={"usage": None})
            elif chunk.usage is not None:
                out.usage = token_usage(chunk.usage)
                saw_usage_chunk = True
            yield chunk
    except Exception as exc:
        mapped = _stream_failure(
            exc,
            provider=provider,
            model=model,
            request_id=sdk_stream.response.headers.get("x-request-id"),
            content_chunks=out.content_chunks,
        )
        if mapped is None:
            raise
        raise_unchained(mapped)
    if not saw_usage_chunk:
        yield _made_up_usage_chunk(last, out, model)


# ---------------------------------------------------------------------------------------------
# The adapter


class OpenAIAdapter:
    """OpenAI chat completions, embeddings and images; one sync and one async SDK client,
    made on first use."""

    def __init__(self, name: str, config: ProviderConfig) -> None:
        #: The provider's configured name (the part before ``/`` in ``provider/model``).
        self.name = name
        self._config = config
        self._client: OpenAI | None = None
        self._async_client: AsyncOpenAI | None = None
        #: The async client's aiohttp hot path (None on httpx2: providers/_openai_direct.py).
        self._direct: direct.DirectClient | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIAdapter(name={self.name!r}, base_url={self._shown_base_url()!r})"

    # -- clients -------------------------------------------------------------------------------

    def _base_url(self) -> str:
        return self._config.base_url or DEFAULT_BASE_URL

    def _shown_base_url(self) -> str:
        return url_without_credentials(self._base_url())

    def _client_options(self) -> dict[str, Any]:
        config = self._config
        config.check_env()
        api_key = config.api_key.reveal() if config.api_key is not None else None
        if api_key is None:
            raise ConfigError(
                "no API key",
                key=f"providers.{self.name}.api_key",
                fix="set api_key: ${OPENAI_API_KEY} (or another variable) for this provider",
            )
        return {
            "api_key": api_key,
            "base_url": self._base_url(),
            "max_retries": 0,  # the gateway owns retries
            "timeout": httpx2.Timeout(
                config.timeout or _DEFAULT_TIMEOUT_S, connect=config.connect_timeout
            ),
            "default_headers": dict(config.headers) or None,
        }

    def _sync_client(self) -> OpenAI:
        client = self._client
        if client is None:
            with self._lock:
                client = self._client
                if client is None:
                    client = self._client = OpenAI(**self._client_options())
        return client

    def _async_sdk_client(self) -> AsyncOpenAI:
        # No await between the check and the assignment: one event loop cannot race here.
        client = self._async_client
        if client is None:
            options = self._client_options()
            aiohttp_transport = None
            if transport.async_transport(self._config.transport) == "aiohttp":
                # The SDK's defaults (limits, redirects) over aiohttp (providers/_transport.py).
                aiohttp_transport = transport.AiohttpTransport()
                options["http_client"] = openai.DefaultAsyncHttpxClient(transport=aiohttp_transport)
            client = self._async_client = AsyncOpenAI(**options)
            if aiohttp_transport is not None:
                self._direct = direct.direct_client(client, aiohttp_transport)
        return client

    def _call_options(self, model: str, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        kwargs = native_kwargs(model, request, stream=stream)
        if request.timeout is not None:
            kwargs["timeout"] = httpx2.Timeout(
                request.timeout, connect=min(self._config.connect_timeout, request.timeout)
            )
        return kwargs

    # -- calls ---------------------------------------------------------------------------------

    def complete(self, model: str, request: ChatRequest) -> ProviderResponse:
        """Send a non-streamed call with the sync client."""
        body, options = post_arguments(self._call_options(model, request, stream=False))
        with _MappedErrors(self.name, model):
            response = self._sync_client().post(
                CHAT_COMPLETIONS_PATH, body=body, options=options, cast_to=httpx2.Response
            )
        return self._response(response, model)

    async def acomplete(self, model: str, request: ChatRequest) -> ProviderResponse:
        """Send a non-streamed call with the async client."""
        body, options = post_arguments(self._call_options(model, request, stream=False))
        with _MappedErrors(self.name, model):
            client = self._async_sdk_client()
            direct_client = self._direct
            if direct_client is not None:
                # On aiohttp: the SDK's request, sent without its per-request machinery.
                content = await direct_client.complete(body, options)
            else:
                response = await client.post(
                    CHAT_COMPLETIONS_PATH, body=body, options=options, cast_to=httpx2.Response
                )
                content = response.content
        return response_of_body(completion_body(content, provider=self.name, model=model))

    def _response(self, http_response: httpx2.Response, model: str) -> ProviderResponse:
        """The completion as its JSON body, validated once into the gateway's own type later
        (the SDK's ``ChatCompletion.construct`` of the same body, built only to be copied into
        that type, cost ~700 Python calls per call)."""
        body = completion_body(http_response.content, provider=self.name, model=model)
        return response_of_body(body)

    def stream(self, model: str, request: ChatRequest) -> ChunkStream:
        """Open a stream with the sync client; an HTTP error status raises here."""
        body, options = post_arguments(self._call_options(model, request, stream=True))
        with _MappedErrors(self.name, model):
            sdk_stream = self._sync_client().post(
                CHAT_COMPLETIONS_PATH,
                body=body,
                options=options,
                cast_to=ChatCompletion,
                stream=True,
                stream_cls=Stream[ChatCompletionChunk],
            )
        out = ChunkStream()
        chunks = _relay(sdk_stream, out, self.name, model)

        def close() -> None:
            try:
                chunks.close()
            finally:
                sdk_stream.close()

        out.chunks = chunks
        out.close_native = close
        return out

    async def astream(self, model: str, request: ChatRequest) -> AsyncChunkStream:
        """Open a stream with the async client; an HTTP error status raises here."""
        body, options = post_arguments(self._call_options(model, request, stream=True))
        client = self._async_sdk_client()
        direct_client = self._direct
        sdk_stream: AsyncStream[ChatCompletionChunk] | direct.DirectStream
        with _MappedErrors(self.name, model):
            if direct_client is not None:
                sdk_stream = await direct_client.stream(body, options)
            else:
                sdk_stream = await client.post(
                    CHAT_COMPLETIONS_PATH,
                    body=body,
                    options=options,
                    cast_to=ChatCompletion,
                    stream=True,
                    stream_cls=AsyncStream[ChatCompletionChunk],
                )
        out = AsyncChunkStream()
        chunks = _arelay(sdk_stream, out, self.name, model)

        async def aclose() -> None:
            try:
                await chunks.aclose()
            finally:
                await sdk_stream.close()

        out.chunks = chunks
        out.close_native = aclose
        return out

    # -- embeddings and images (translation in providers/_openai_media.py) -------------------

    def _timeout(self, kwargs: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        if timeout is not None:
            kwargs["timeout"] = httpx2.Timeout(
                timeout, connect=min(self._config.connect_timeout, timeout)
            )
        return kwargs

    def embed(self, model: str, request: EmbeddingRequest) -> EmbeddingResult:
        """``embeddings.create`` with the sync client."""
        kwargs = self._timeout(media.embedding_kwargs(model, request), request.timeout)
        try:
            with _MappedErrors(self.name, model):
                response = self._sync_client().embeddings.create(**kwargs)
        except ValueError:  # the SDK's own check of a 200 answer: no vectors in it
            raise_unchained(self._no_vectors(model))
        return media.embedding_result(response, request, provider=self.name, model=model)

    def _no_vectors(self, model: str) -> ProviderUnavailable:
        return ProviderUnavailable(
            "the response has no embeddings", provider=self.name, model=model
        )

    async def aembed(self, model: str, request: EmbeddingRequest) -> EmbeddingResult:
        """``embeddings.create`` with the async client."""
        kwargs = self._timeout(media.embedding_kwargs(model, request), request.timeout)
        try:
            with _MappedErrors(self.name, model):
                response = await self._async_sdk_client().embeddings.create(**kwargs)
        except ValueError:
            raise_unchained(self._no_vectors(model))
        return media.embedding_result(response, request, provider=self.name, model=model)

    def generate_images(self, model: str, request: ImageRequest) -> ImageResult:
        """``images.generate`` with the sync client (the body read as sent)."""
        kwargs = self._timeout(media.image_kwargs(model, request), request.timeout)
        with _MappedErrors(self.name, model):
            raw = self._sync_client().images.with_raw_response.generate(**kwargs)
        body = completion_body(raw.http_response.content, provider=self.name, model=model)
        return media.image_result(body, request, provider=self.name, model=model)

    async def agenerate_images(self, model: str, request: ImageRequest) -> ImageResult:
        """``images.generate`` with the async client."""
        kwargs = self._timeout(media.image_kwargs(model, request), request.timeout)
        with _MappedErrors(self.name, model):
            client = self._async_sdk_client()
            raw = await client.images.with_raw_response.generate(**kwargs)
        body = completion_body(raw.http_response.content, provider=self.name, model=model)
        return media.image_result(body, request, provider=self.name, model=model)

    def close(self) -> None:
        """Close the sync client, if one was made."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the async client, if one was made."""
        client, self._async_client = self._async_client, None
        self._direct = None
        if client is not None:
            await client.close()
