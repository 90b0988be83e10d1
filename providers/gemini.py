"""Gemini through the official ``google-genai`` SDK: OpenAI chat shape in, OpenAI types out.

Request translation (``ChatRequest`` -> ``generateContent``) is in
:mod:`gateway.providers._gemini_request`; :func:`build_request` is re-exported here. Calls and
streams send the body :mod:`gateway.providers._gemini_wire` builds through the client's request
layer, and read responses and stream events from their JSON (not the SDK's models of them).

Response translation:

- tool call ids: Gemini's own ``functionCall.id`` when it sends one (also kept in
  ``extra_content.google.function_call_id``, from where a replayed turn sends it back), else a
  new random ``call_<hex>``, unique across the conversation; ``args`` become a JSON string.
- finish reasons: ``STOP`` -> ``stop`` (``tool_calls`` whenever the candidate has function
  calls, since Gemini says STOP for those too); ``MAX_TOKENS``/``CONTINUATION`` -> ``length``;
  ``SAFETY``, ``RECITATION``, ``BLOCKLIST``, ``PROHIBITED_CONTENT``, ``SPII``, the ``IMAGE_*``
  filters, ``MODEL_ARMOR`` and a blocked prompt (``promptFeedback.blockReason``) ->
  ``content_filter``. A blocked prompt also sets ``message.refusal`` (in a stream: the
  ``refusal`` of the finishing chunk's delta) to why: "Gemini blocked the prompt: SAFETY
  (HARM_CATEGORY_...)" with Gemini's ``blockReasonMessage`` when it sends one.
  ``MALFORMED_FUNCTION_CALL`` -> ``stop`` (Gemini returns no call to run, so ``tool_calls``
  would be a lie); anything else -> ``stop``.
- thought-summary parts (``thought: true``) are not part of the answer and are dropped.
- ``logprobsResult`` (asked for with ``logprobs``) -> ``choices[0].logprobs`` in OpenAI's shape;
  in a stream, on the text chunk of the event that carried it.
- usage: ``promptTokenCount`` (which includes the cached part) + ``toolUsePromptTokenCount`` ->
  input; ``candidatesTokenCount`` + ``thoughtsTokenCount`` -> output; ``thoughtsTokenCount`` ->
  reasoning; ``cachedContentTokenCount`` -> cached input. A stream's usage is a running total;
  the last event's is billed.
- the response id is ``responseId`` when present, else a generated ``chatcmpl-<hex>``.

Transport: the SDK's own httpx2 clients, SDK retries off (google-genai retries only when
``retry_options`` is set). google-genai moves its *async* path to aiohttp whenever aiohttp is
importable; it is not installed here (a test guards that), because respx cannot intercept
aiohttp and its errors are not mapped below. ``HttpOptions.timeout`` is in milliseconds and the
SDK applies it as connect, read, write and pool timeout of every request, so an httpx event hook
caps the connect part at ``connect_timeout``. With no timeout configured the SDK would wait
forever; we use 600 s, the other SDKs' default. Without ``api_key`` in the config, the SDK's
``GOOGLE_API_KEY`` / ``GEMINI_API_KEY`` are used.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Generator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

import httpx2
import pydantic
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from openai.types.chat import ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import (
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
    ChoiceLogprobs,
)
from openai.types.chat.chat_completion_message_function_tool_call import (
    ChatCompletionMessageFunctionToolCall,
    Function,
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
    register_secret,
)
from gateway.providers import _gemini_media as media
from gateway.providers import _gemini_wire as wire
from gateway.providers import _transport as transport
from gateway.providers._common import (
    FinishReason,
    completion_body,
    completion_data,
    make_chunk,
    retry_after_seconds,
    usage_chunk,
)
from gateway.providers._gemini_request import SKIP_SIGNATURE, _millis, build_request
from gateway.providers.base import (
    AsyncChunkStream,
    ChatRequest,
    ChunkStream,
    ProviderResponse,
    TokenUsage,
)
from gateway.providers.media import EmbeddingRequest, EmbeddingResult, ImageRequest, ImageResult

try:  # google-genai uses legacy httpx instead when GOOGLE_GENAI_HTTP_CLIENT=httpx.
    import httpx as _legacy_httpx
except ImportError:  # pragma: no cover - httpx is optional
    _legacy_httpx = None  # type: ignore[assignment]

__all__ = ["SKIP_SIGNATURE", "GeminiAdapter", "build_request", "map_error"]

#: Seconds a call may take when neither the config nor the call sets a timeout.
DEFAULT_TIMEOUT_S = 600.0

#: Where google-genai looks for a key when none is passed (GOOGLE_API_KEY wins).
_API_KEY_ENV = ("GOOGLE_API_KEY", "GEMINI_API_KEY")

_FINISH_REASONS: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "CONTINUATION": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "MODEL_ARMOR": "content_filter",
    # No call is returned with it, so there is nothing for the caller to run.
    "MALFORMED_FUNCTION_CALL": "stop",
}

# Gemini's 400 for an over-long prompt is INVALID_ARGUMENT with reason "badRequest", like any
# other bad request; the message is the only thing that tells it apart (checked on 400 only).
_CONTEXT_TOO_LONG = re.compile(
    r"input token count.*exceeds the maximum|exceeds the maximum number of tokens", re.IGNORECASE
)
#: ErrorInfo reasons that mean the key itself is wrong (Gemini sends them with HTTP 400).
_AUTH_REASONS = frozenset({"API_KEY_INVALID"})
_MAX_RETRY_DELAY_S = 3600.0

_TIMEOUT_ERRORS: tuple[type[BaseException], ...] = (httpx2.TimeoutException,)
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (httpx2.TransportError, httpx2.DecodingError)
# The async client on aiohttp (providers/_transport.py) lets aiohttp's exceptions through.
_TIMEOUT_ERRORS += transport.aiohttp_errors()[0]
_CONNECTION_ERRORS += transport.aiohttp_errors()[1]
if _legacy_httpx is not None:
    _TIMEOUT_ERRORS += (_legacy_httpx.TimeoutException,)
    _CONNECTION_ERRORS += (_legacy_httpx.TransportError, _legacy_httpx.DecodingError)
#: The provider answered 200 with something the SDK cannot read.
_GARBLED_RESPONSE_ERRORS = (
    genai_errors.UnknownApiResponseError,
    json.JSONDecodeError,
    pydantic.ValidationError,
)

# stream()/astream() set this around the request that opens a stream; the response event hook
# drops the live HTTP response into it so that closing the stream can release it. The SDK does
# not expose that response, and its async generator only releases it when the event loop
# finalises the abandoned generator.
_OPENING_STREAM: ContextVar[list[Any] | None] = ContextVar("gemini_opening_stream", default=None)


# ---------------------------------------------------------------------------------------------
# Errors


def map_error(exc: BaseException, *, provider: str, model: str) -> GatewayError | None:
    """The gateway error for a google-genai / transport exception, or None if it is not one.

    google-genai raises ``errors.ClientError`` (4xx) / ``errors.ServerError`` (5xx) keyed on
    ``.code``, also for an error event inside a 200 stream, and lets httpx2's own exceptions
    through unwrapped.
    """
    if isinstance(exc, genai_errors.APIError):
        return _map_api_error(exc, provider=provider, model=model)
    if isinstance(exc, _TIMEOUT_ERRORS):
        return ProviderTimeout(_describe(exc, "timed out"), provider=provider, model=model)
    if isinstance(exc, _CONNECTION_ERRORS):
        return ProviderConnectionError(
            _describe(exc, "connection failed"), provider=provider, model=model
        )
    if isinstance(exc, _GARBLED_RESPONSE_ERRORS):
        return ProviderUnavailable(
            f"unreadable response ({type(exc).__name__})", provider=provider, model=model
        )
    return None


def _map_api_error(exc: genai_errors.APIError, *, provider: str, model: str) -> ProviderError:
    status_code = exc.code if isinstance(exc.code, int) else None
    details = _error_details(exc.details)
    reason = _detail_field(details, "google.rpc.ErrorInfo", "reason")
    message = exc.message or exc.status or "request failed"
    headers = getattr(exc.response, "headers", None)
    retry_after = retry_after_seconds(headers) if isinstance(headers, Mapping) else None
    if retry_after is None:
        retry_after = _retry_delay(_detail_field(details, "google.rpc.RetryInfo", "retryDelay"))
    request_id = _detail_field(details, "google.rpc.RequestInfo", "requestId")
    fields: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "status_code": status_code,
        "retry_after": retry_after,
        "request_id": request_id if isinstance(request_id, str) else None,
        "code": reason if isinstance(reason, str) else exc.status,
    }
    if status_code in (401, 403) or reason in _AUTH_REASONS:
        return AuthenticationFailed(message, **fields)
    if status_code == 429:
        return RateLimited(message, **fields)
    if status_code == 400 and _CONTEXT_TOO_LONG.search(message):
        return ContextTooLong(message, **fields)
    if status_code == 408:
        return ProviderTimeout(message, **fields)
    if status_code == 529:
        return ProviderOverloaded(message, **fields)
    if status_code is not None and status_code >= 500:
        return ProviderUnavailable(message, **fields)
    if status_code is not None and status_code >= 400:
        return InvalidRequest(message, **fields)
    return ProviderError(message, **fields)


def _error_details(body: Any) -> list[Mapping[str, Any]]:
    """The ``details`` list of a Google error body (``{"error": {...}}`` or the bare error)."""
    if not isinstance(body, Mapping):
        return []
    error = body.get("error", body)
    details = error.get("details") if isinstance(error, Mapping) else None
    if not isinstance(details, list):
        return []
    return [detail for detail in details if isinstance(detail, Mapping)]


def _detail_field(details: Sequence[Mapping[str, Any]], type_suffix: str, key: str) -> Any:
    for detail in details:
        if str(detail.get("@type", "")).endswith(type_suffix) and key in detail:
            return detail[key]
    return None


def _retry_delay(value: Any) -> float | None:
    """Seconds from a ``RetryInfo.retryDelay`` duration such as ``"17s"`` or ``"0.5s"``."""
    if not isinstance(value, str) or not value.endswith("s"):
        return None
    try:
        seconds = float(value[:-1])
    except ValueError:
        return None
    return min(seconds, _MAX_RETRY_DELAY_S) if seconds >= 0 else None


def _describe(exc: BaseException, fallback: str) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else f"{type(exc).__name__}: {fallback}"


class _mapped_errors:
    """Raise SDK and transport errors as gateway errors, without chaining the original.

    A class, not a ``@contextmanager`` generator: entered on every call, and a generator
    costs a few µs more."""

    __slots__ = ("model", "provider")

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None or not isinstance(exc, Exception):
            return
        mapped = map_error(exc, provider=self.provider, model=self.model)
        if mapped is not None:
            raise_unchained(mapped)


def _stream_failure(
    exc: Exception, *, provider: str, model: str, stream: ChunkStream | AsyncChunkStream
) -> BaseException:
    mapped = (
        exc if isinstance(exc, GatewayError) else map_error(exc, provider=provider, model=model)
    )
    if mapped is None:
        return exc
    if isinstance(mapped, ProviderUnavailable):
        mapped.chunks_received = stream.content_chunks
    return mapped


# ---------------------------------------------------------------------------------------------
# Response translation


def _usage(meta: Mapping[str, Any]) -> TokenUsage:
    """Gemini's ``usageMetadata`` (its JSON) -> TokenUsage: tool-use prompt tokens are input,
    thoughts are the reasoning part of the output."""
    thoughts = meta.get("thoughtsTokenCount") or 0
    return TokenUsage(
        input_tokens=(meta.get("promptTokenCount") or 0)
        + (meta.get("toolUsePromptTokenCount") or 0),
        output_tokens=(meta.get("candidatesTokenCount") or 0) + thoughts,
        cached_input_tokens=meta.get("cachedContentTokenCount") or 0,
        reasoning_tokens=thoughts,
    )


def _block_message(feedback: Mapping[str, Any] | None) -> str | None:
    """``message.refusal`` for a prompt Gemini blocked (``promptFeedback`` as JSON), saying
    why: the block reason, Gemini's own message if any, and the safety categories it blocked.
    None when the prompt was not blocked."""
    reason = feedback.get("blockReason") if feedback else None
    if reason is None:
        return None
    assert feedback is not None
    why = str(reason)
    categories = [
        str(rating.get("category"))
        for rating in feedback.get("safetyRatings") or ()
        if isinstance(rating, Mapping) and rating.get("blocked")
    ]
    if categories:
        why += f" ({', '.join(categories)})"
    message = feedback.get("blockReasonMessage")
    if message:
        why += f": {message}"
    return f"Gemini blocked the prompt: {why}"


def _finish_reason(reason: Any, *, has_tool_calls: bool, blocked: bool) -> FinishReason:
    if blocked:
        return "content_filter"
    if has_tool_calls:
        return "tool_calls"
    if reason is None:
        return "stop"
    # FinishReason is a str enum, so it looks up like its value.
    return _FINISH_REASONS.get(reason, "stop")


def _call_identity(gemini_id: str | None, signature: str | None) -> tuple[str, dict[str, Any]]:
    """(OpenAI tool call id, extra fields) for a Gemini functionCall.

    Gemini's own id when it sent one (kept in ``extra_content.google.function_call_id`` too,
    so a replayed turn sends it back), else a new random one: ids must be unique across a
    conversation (Anthropic refuses repeated ``tool_use`` ids; apps key results on them).
    """
    google: dict[str, Any] = {}
    if signature:
        google["thought_signature"] = signature
    if gemini_id:
        google["function_call_id"] = gemini_id
        call_id = gemini_id
    else:
        call_id = f"call_{uuid.uuid4().hex[:24]}"
    return call_id, {"extra_content": {"google": google}} if google else {}


def _new_response_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _logprobs(result: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A candidate's ``logprobsResult`` (its JSON) as OpenAI's ``choice.logprobs``: per token,
    its log probability and the top alternatives at that step (``top_logprobs``)."""
    if not result:
        return None
    steps = result.get("topCandidates") or ()
    content = []
    for i, chosen in enumerate(result.get("chosenCandidates") or ()):
        top = steps[i].get("candidates") or () if i < len(steps) else ()
        content.append({**_token_logprob(chosen), "top_logprobs": [_token_logprob(t) for t in top]})
    return {"content": content, "refusal": None}


def _token_logprob(candidate: Mapping[str, Any]) -> dict[str, Any]:
    token = candidate.get("token") or ""
    return {
        "token": token,
        "logprob": candidate.get("logProbability") or 0.0,
        "bytes": list(token.encode()),
    }


def to_response(body: Mapping[str, Any], model: str) -> ProviderResponse:
    """A ``ProviderResponse`` (OpenAI ChatCompletion + usage) for a Gemini response, read from
    its JSON body (``should_return_http_response``): building the SDK's
    ``GenerateContentResponse`` only to read it here cost as much as the rest of the gateway."""
    usage = _usage(body.get("usageMetadata") or {})
    candidates = body.get("candidates") or ()
    candidate = candidates[0] if candidates else None
    texts: list[str] = []
    tool_calls: list[ChatCompletionMessageFunctionToolCall] = []
    content = candidate.get("content") if candidate is not None else None
    for part in (content or {}).get("parts") or ():
        call = part.get("functionCall")
        if call is not None:
            # The signature is base64 on the wire, as the OpenAI shape wants it.
            call_id, extra = _call_identity(call.get("id"), part.get("thoughtSignature"))
            arguments = json.dumps(
                call.get("args") or {}, separators=(",", ":"), ensure_ascii=False
            )
            tool_calls.append(
                ChatCompletionMessageFunctionToolCall(
                    id=call_id,
                    type="function",
                    function=Function(name=call.get("name") or "", arguments=arguments),
                    **extra,
                )
            )
        elif part.get("text") is not None and not part.get("thought"):
            texts.append(part["text"])
    blocked = _block_message(body.get("promptFeedback"))
    finish = _finish_reason(
        candidate.get("finishReason") if candidate is not None else None,
        has_tool_calls=bool(tool_calls),
        blocked=blocked is not None,
    )
    data = completion_data(
        response_id=body.get("responseId") or _new_response_id(),
        model=body.get("modelVersion") or model,
        content="".join(texts) if texts or not tool_calls else None,
        finish_reason=finish,
        usage=usage,
        tool_calls=tool_calls or None,
        refusal=blocked,
        logprobs=_logprobs(candidate.get("logprobsResult")) if candidate is not None else None,
    )
    return ProviderResponse.from_data(data, usage)


def _event_of(response: Any, provider: str, model: str) -> dict[str, Any]:
    """One stream event's JSON (the SDK's ``request_streamed`` hands it over as text)."""
    return completion_body(response.body, provider=provider, model=model)


class _StreamTranslator:
    """Turns Gemini stream events (their JSON) into OpenAI chunks; one per stream.

    Read from the JSON as :func:`to_response` reads a whole response: the SDK's conversion of
    each event into a ``GenerateContentResponse`` cost more than the rest of the chunk's path.
    """

    __slots__ = ("blocked", "created", "finish", "model", "response_id", "tool_calls", "usage_meta")

    def __init__(self, first: Mapping[str, Any] | None, model: str) -> None:
        self.response_id = (first.get("responseId") if first else None) or _new_response_id()
        self.model = (first.get("modelVersion") if first else None) or model
        self.created = int(time.time())
        self.tool_calls = 0
        self.finish: Any = None
        #: The refusal for a blocked prompt (see _block_message), None while not blocked.
        self.blocked: str | None = None
        self.usage_meta: Mapping[str, Any] | None = None

    def _chunk(self, delta: ChoiceDelta, finish: FinishReason | None = None) -> ChatCompletionChunk:
        return make_chunk(
            response_id=self.response_id,
            model=self.model,
            created=self.created,
            delta=delta,
            finish_reason=finish,
        )

    def opening(self) -> ChatCompletionChunk:
        return self._chunk(ChoiceDelta(role="assistant", content=""))

    def feed(self, event: Mapping[str, Any], provider: str) -> list[ChatCompletionChunk]:
        """The content chunks of one event (text, whole tool calls); records finish and usage.

        An event whose fields are not of the types Gemini sends is a ProviderUnavailable."""
        try:
            return self._feed(event)
        except (AttributeError, TypeError, KeyError, IndexError) as exc:
            raise ProviderUnavailable(
                f"unreadable stream event ({type(exc).__name__})",
                provider=provider,
                model=self.model,
            ) from None

    def _feed(self, event: Mapping[str, Any]) -> list[ChatCompletionChunk]:
        usage_meta = event.get("usageMetadata")
        if usage_meta is not None:
            self.usage_meta = usage_meta
        feedback = event.get("promptFeedback")
        if feedback and feedback.get("blockReason") is not None:
            self.blocked = _block_message(feedback)
        candidates = event.get("candidates")
        if not candidates:
            return []
        candidate = candidates[0]
        if candidate.get("finishReason") is not None:
            self.finish = candidate["finishReason"]
        content = candidate.get("content")
        parts = content.get("parts") if content else None
        if not parts:
            return []
        chunks: list[ChatCompletionChunk] = []
        text = ""
        for part in parts:
            call = part.get("functionCall")
            if call is not None:
                if text:
                    chunks.append(self._chunk(ChoiceDelta(content=text)))
                    text = ""
                # The signature is base64 on the wire, as the OpenAI shape wants it.
                call_id, extra = _call_identity(call.get("id"), part.get("thoughtSignature"))
                arguments = json.dumps(
                    call.get("args") or {}, separators=(",", ":"), ensure_ascii=False
                )
                delta_call = ChoiceDeltaToolCall(
                    index=self.tool_calls,
                    id=call_id,
                    type="function",
                    function=ChoiceDeltaToolCallFunction(
                        name=call.get("name") or "", arguments=arguments
                    ),
                    **extra,
                )
                self.tool_calls += 1
                chunks.append(self._chunk(ChoiceDelta(tool_calls=[delta_call])))
            elif part.get("text") and not part.get("thought"):
                text += part["text"]
        if text:
            chunk = self._chunk(ChoiceDelta(content=text))
            logprobs = _logprobs(candidate.get("logprobsResult"))
            if logprobs is not None:
                chunk.choices[0].logprobs = ChoiceLogprobs.model_validate(logprobs)
            chunks.append(chunk)
        return chunks

    def closing(self) -> ChatCompletionChunk:
        finish = _finish_reason(
            self.finish, has_tool_calls=self.tool_calls > 0, blocked=self.blocked is not None
        )
        return self._chunk(ChoiceDelta(refusal=self.blocked), finish)

    def final_usage(self) -> TokenUsage:
        return _usage(self.usage_meta or {})

    def usage_chunk(self, usage: TokenUsage) -> ChatCompletionChunk:
        return usage_chunk(
            response_id=self.response_id, model=self.model, created=self.created, usage=usage
        )


# ---------------------------------------------------------------------------------------------
# The adapter


def _hand_over_response(response: Any) -> None:
    holder = _OPENING_STREAM.get()
    if holder is not None:
        holder.append(response)


async def _ahand_over_response(response: Any) -> None:
    _hand_over_response(response)


class GeminiAdapter:
    """Gemini via google-genai; one sync and one async ``genai.Client``, made on first use."""

    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self._config = config
        self._lock = threading.Lock()
        # Keep the genai.Client itself: a client that is only referenced through .models/.aio
        # is garbage-collected (and closes its HTTP client) in the middle of a call.
        self._client: genai.Client | None = None
        self._aclient: genai.Client | None = None
        # The request fields of each config, converted once per client (see _gemini_wire).
        self._fragments: wire.ConfigFragments | None = None
        self._afragments: wire.ConfigFragments | None = None

    def __repr__(self) -> str:
        return f"GeminiAdapter(name={self.name!r})"

    # -- clients --------------------------------------------------------------------------------

    def _new_client(self, *, for_async: bool = False) -> genai.Client:
        config = self._config
        if config.api_key is not None:
            api_key = config.api_key.reveal()
        else:
            # Like the SDK itself, fall back to its environment variables; redact that key too.
            api_key = next(filter(None, (os.environ.get(var) for var in _API_KEY_ENV)), "")
            if not api_key:
                raise ConfigError(
                    f"provider '{self.name}' has no api_key and neither GOOGLE_API_KEY nor "
                    "GEMINI_API_KEY is set",
                    key=f"providers.{self.name}.api_key",
                    fix="set api_key: ${GEMINI_API_KEY}",
                )
            register_secret(api_key)
        connect_timeout = config.connect_timeout

        def cap_connect_timeout(request: httpx2.Request) -> None:
            # The SDK sets one value for connect/read/write/pool on every request.
            timeout = request.extensions.get("timeout")
            if isinstance(timeout, dict):
                connect = timeout.get("connect")
                if connect is None or connect > connect_timeout:
                    request.extensions = {
                        **request.extensions,
                        "timeout": {**timeout, "connect": connect_timeout},
                    }

        async def acap_connect_timeout(request: httpx2.Request) -> None:
            cap_connect_timeout(request)

        # The async client's HTTP stack (providers/_transport.py); the sync one is httpx2's.
        options_for_transport, async_args = transport.gemini_async_options(
            transport.async_transport(config.transport, transport.GEMINI_DEFAULT_TRANSPORT)
            if for_async
            else "httpx"
        )
        options = types.HttpOptions(
            **options_for_transport,
            base_url=config.base_url,
            api_version=config.api_version,
            headers=dict(config.headers) or None,
            timeout=_millis(config.timeout or DEFAULT_TIMEOUT_S),
            client_args={
                "event_hooks": {
                    "request": [cap_connect_timeout],
                    "response": [_hand_over_response],
                }
            },
            async_client_args={
                **async_args,
                "event_hooks": {
                    "request": [acap_connect_timeout],
                    "response": [_ahand_over_response],
                },
            },
        )
        # vertexai=False: GOOGLE_GENAI_USE_VERTEXAI in the environment must not reroute us.
        return genai.Client(vertexai=False, api_key=api_key, http_options=options)

    def _sync_client(self) -> genai.Client:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._new_client()
                client = self._client
        return client

    def _async_client(self) -> genai.Client:
        client = self._aclient
        if client is None:
            with self._lock:
                if self._aclient is None:
                    self._aclient = self._new_client(for_async=True)
                client = self._aclient
        return client

    # -- calls ----------------------------------------------------------------------------------

    def request_body(
        self, model: str, request: ChatRequest
    ) -> tuple[dict[str, Any], types.HttpOptions | None]:
        """The ``generateContent`` JSON body of ``request`` and the call's own HTTP options:
        what :meth:`complete` sends, and each item of a batch (``_gemini_batch``)."""
        contents, config = build_request(request, provider=self.name, model=model)
        fragments = self._fragments_of(self._sync_client()._api_client, sync=True)
        return wire.body(contents, fragments.get(config)), config.http_options

    def complete(self, model: str, request: ChatRequest) -> ProviderResponse:
        body, http_options = self.request_body(model, request)
        api = self._sync_client()._api_client
        with _mapped_errors(self.name, model):
            # generate_content without its per-call conversion (see _gemini_wire).
            response = api.request("post", wire.model_path(api, model), body, http_options)
        return to_response(completion_body(response.body, provider=self.name, model=model), model)

    async def acomplete(self, model: str, request: ChatRequest) -> ProviderResponse:
        contents, config = build_request(request, provider=self.name, model=model)
        api = self._async_client()._api_client
        fragments = self._fragments_of(api, sync=False)
        with _mapped_errors(self.name, model):
            response = await api.async_request(
                "post",
                wire.model_path(api, model),
                wire.body(contents, fragments.get(config)),
                config.http_options,
            )
        return to_response(completion_body(response.body, provider=self.name, model=model), model)

    def _fragments_of(self, api: Any, *, sync: bool) -> wire.ConfigFragments:
        fragments = self._fragments if sync else self._afragments
        if fragments is None:
            fragments = wire.ConfigFragments(api)
            if sync:
                self._fragments = fragments
            else:
                self._afragments = fragments
        return fragments

    def stream(self, model: str, request: ChatRequest) -> ChunkStream:
        contents, config = build_request(request, provider=self.name, model=model)
        api = self._sync_client()._api_client
        fragments = self._fragments_of(api, sync=True)
        http_responses: list[Any] = []
        token = _OPENING_STREAM.set(http_responses)
        try:
            with _mapped_errors(self.name, model):
                # generate_content_stream without its per-call conversions (see _gemini_wire).
                native = api.request_streamed(
                    "post",
                    wire.model_path(api, model, stream=True),
                    wire.body(contents, fragments.get(config)),
                    config.http_options,
                )
                # The request is sent on the first next(): an HTTP error raises here.
                response = next(native, None)
                first = None if response is None else _event_of(response, self.name, model)
        except BaseException:
            for http_response in http_responses:
                http_response.close()
            raise
        finally:
            _OPENING_STREAM.reset(token)

        stream = ChunkStream()
        translator = _StreamTranslator(first, model)

        def chunks() -> Generator[ChatCompletionChunk, None, None]:
            yield translator.opening()
            event = first
            while event is not None:
                try:
                    content = translator.feed(event, self.name)
                except ProviderUnavailable as exc:
                    raise_unchained(
                        _stream_failure(exc, provider=self.name, model=model, stream=stream)
                    )
                for chunk in content:
                    stream.content_chunks += 1
                    yield chunk
                try:
                    response = next(native, None)
                    event = None if response is None else _event_of(response, self.name, model)
                except Exception as exc:
                    raise_unchained(
                        _stream_failure(exc, provider=self.name, model=model, stream=stream)
                    )
            yield translator.closing()
            stream.usage = translator.final_usage()
            yield translator.usage_chunk(stream.usage)

        iterator = chunks()

        def close_native() -> None:
            iterator.close()
            close = getattr(native, "close", None)
            if close is not None:
                close()
            for http_response in http_responses:
                http_response.close()

        stream.chunks = iterator
        stream.close_native = close_native
        return stream

    async def astream(self, model: str, request: ChatRequest) -> AsyncChunkStream:
        contents, config = build_request(request, provider=self.name, model=model)
        api = self._async_client()._api_client
        fragments = self._fragments_of(api, sync=False)
        http_responses: list[Any] = []
        token = _OPENING_STREAM.set(http_responses)
        try:
            with _mapped_errors(self.name, model):
                native = await api.async_request_streamed(
                    "post",
                    wire.model_path(api, model, stream=True),
                    wire.body(contents, fragments.get(config)),
                    config.http_options,
                )
                response = await anext(native, None)
                first = None if response is None else _event_of(response, self.name, model)
        except BaseException:
            for http_response in http_responses:
                await http_response.aclose()
            raise
        finally:
            _OPENING_STREAM.reset(token)

        stream = AsyncChunkStream()
        translator = _StreamTranslator(first, model)

        async def chunks() -> AsyncGenerator[ChatCompletionChunk, None]:
            yield translator.opening()
            event = first
            while event is not None:
                try:
                    content = translator.feed(event, self.name)
                except ProviderUnavailable as exc:
                    raise_unchained(
                        _stream_failure(exc, provider=self.name, model=model, stream=stream)
                    )
                for chunk in content:
                    stream.content_chunks += 1
                    yield chunk
                try:
                    response = await anext(native, None)
                    event = None if response is None else _event_of(response, self.name, model)
                except Exception as exc:
                    raise_unchained(
                        _stream_failure(exc, provider=self.name, model=model, stream=stream)
                    )
            yield translator.closing()
            stream.usage = translator.final_usage()
            yield translator.usage_chunk(stream.usage)

        iterator = chunks()

        async def close_native() -> None:
            await iterator.aclose()
            aclose = getattr(native, "aclose", None)
            if aclose is not None:
                await aclose()
            for http_response in http_responses:
                await http_response.aclose()

        stream.chunks = iterator
        stream.close_native = close_native
        return stream

    # -- embeddings and images (translation in providers/_gemini_media.py) -------------------

    def embed(self, model: str, request: EmbeddingRequest) -> EmbeddingResult:
        client = self._sync_client()
        with _mapped_errors(self.name, model):
            response = client.models.embed_content(
                model=model, contents=list(request.inputs), config=media.embed_config(request)
            )
        return media.embedding_result(response, request, provider=self.name, model=model)

    async def aembed(self, model: str, request: EmbeddingRequest) -> EmbeddingResult:
        client = self._async_client()
        with _mapped_errors(self.name, model):
            response = await client.aio.models.embed_content(
                model=model, contents=list(request.inputs), config=media.embed_config(request)
            )
        return media.embedding_result(response, request, provider=self.name, model=model)

    def generate_images(self, model: str, request: ImageRequest) -> ImageResult:
        client = self._sync_client()
        with _mapped_errors(self.name, model):
            response = client.models.generate_content(
                model=model, contents=request.prompt, config=media.image_config(request)
            )
        return media.image_result(response, request, provider=self.name, model=model)

    async def agenerate_images(self, model: str, request: ImageRequest) -> ImageResult:
        client = self._async_client()
        with _mapped_errors(self.name, model):
            response = await client.aio.models.generate_content(
                model=model, contents=request.prompt, config=media.image_config(request)
            )
        return media.image_result(response, request, provider=self.name, model=model)

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            self._fragments = None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        with self._lock:
            client, self._aclient = self._aclient, None
            self._afragments = None
        if client is not None:
            await client.aio.aclose()
