"""OpenAI's chat completions wire format: JSON bodies, SSE streams and error responses.

Everything here returns plain JSON-able values (``dict``) or ``bytes`` (SSE bodies), shaped
exactly like what ``POST https://api.openai.com/v1/chat/completions`` sends, so that tests and
the SDK's provider mocks can hand them to any HTTP mock::

    body = chat_completion(text="Hello", usage=usage(12, 5, cached_tokens=8))
    stream = chat_completion_stream(text=["Hel", "lo"], usage=usage(12, 5))
    error = rate_limit_error(retry_after=2)      # WireError(status, body, headers)

Streams follow OpenAI's order: a first chunk whose delta has ``role: "assistant"``, the text
deltas, tool-call deltas (``id``, ``type`` and ``function.name`` on the first delta of each
call, ``function.arguments`` fragments after), a chunk with ``finish_reason``, then (when the
caller asked for ``stream_options.include_usage``) a chunk with ``choices: []`` and ``usage``,
and ``data: [DONE]``. Every chunk before the usage chunk carries ``"usage": null``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "API_BASE",
    "CHAT_COMPLETIONS_URL",
    "SSE_HEADERS",
    "FinishReason",
    "ToolCall",
    "WireError",
    "auth_error",
    "chat_completion",
    "chat_completion_chunks",
    "chat_completion_stream",
    "context_length_error",
    "error_body",
    "error_response",
    "insufficient_quota_error",
    "invalid_request_error",
    "not_found_error",
    "overloaded_error",
    "permission_error",
    "rate_limit_error",
    "server_error",
    "sse",
    "stream_error_event",
    "usage",
]

#: Where the OpenAI SDK sends requests by default.
API_BASE = "https://api.openai.com/v1"
#: The chat completions endpoint.
CHAT_COMPLETIONS_URL = f"{API_BASE}/chat/completions"
#: Headers of a streamed (200) response.
SSE_HEADERS: Mapping[str, str] = {"content-type": "text/event-stream; charset=utf-8"}

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]

_DEFAULT_ID = "chatcmpl-wire0000000000000000000001"
_DEFAULT_MODEL = "gpt-4o-2024-08-06"
_DEFAULT_CREATED = 1_700_000_000
_DEFAULT_FINGERPRINT = "fp_wire00001"
_DEFAULT_REQUEST_ID = "req_wire0000000000000000000001"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call the model makes. ``arguments`` is a JSON string (or a dict to dump)."""

    id: str
    name: str
    arguments: str | Mapping[str, Any] = "{}"

    @property
    def arguments_json(self) -> str:
        """The arguments as the JSON string OpenAI sends."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, separators=(",", ":"))

    def to_wire(self) -> dict[str, Any]:
        """The call as it appears in a non-streamed ``message.tool_calls``."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments_json},
        }


@dataclass(frozen=True, slots=True)
class WireError:
    """An HTTP error response: status code, JSON body and headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def usage(
    prompt_tokens: int,
    completion_tokens: int,
    *,
    cached_tokens: int = 0,
    cache_write_tokens: int | None = None,
    reasoning_tokens: int = 0,
) -> dict[str, Any]:
    """A ``usage`` object. ``prompt_tokens`` already includes the cached tokens and
    ``completion_tokens`` already includes the reasoning tokens, as on the real API."""
    prompt_details: dict[str, Any] = {"cached_tokens": cached_tokens, "audio_tokens": 0}
    if cache_write_tokens is not None:
        prompt_details["cache_write_tokens"] = cache_write_tokens
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {
            "reasoning_tokens": reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _default_usage() -> dict[str, Any]:
    return usage(10, 5)


def _default_finish(tool_calls: Sequence[ToolCall] | None) -> FinishReason:
    return "tool_calls" if tool_calls else "stop"


def chat_completion(
    *,
    text: str | None = "Hello!",
    tool_calls: Sequence[ToolCall] | None = None,
    finish_reason: FinishReason | None = None,
    usage: Mapping[str, Any] | None = None,
    model: str = _DEFAULT_MODEL,
    response_id: str = _DEFAULT_ID,
    created: int = _DEFAULT_CREATED,
    refusal: str | None = None,
) -> dict[str, Any]:
    """A non-streamed chat completion body (one choice).

    ``finish_reason`` defaults to ``tool_calls`` when there are tool calls, else ``stop``.
    ``usage=None`` gives a small default usage; pass ``usage={}`` to omit the key entirely.
    """
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text,
        "refusal": refusal,
        "annotations": [],
    }
    if tool_calls:
        message["tool_calls"] = [call.to_wire() for call in tool_calls]
    body: dict[str, Any] = {
        "id": response_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason or _default_finish(tool_calls),
            }
        ],
        "service_tier": "default",
        "system_fingerprint": _DEFAULT_FINGERPRINT,
    }
    chosen_usage = _default_usage() if usage is None else usage
    if chosen_usage:
        body["usage"] = dict(chosen_usage)
    return body


def chat_completion_chunks(
    *,
    text: str | Sequence[str] = ("Hel", "lo!"),
    tool_calls: Sequence[ToolCall] | None = None,
    argument_fragments: int = 2,
    finish_reason: FinishReason | None = None,
    usage: Mapping[str, Any] | None = None,
    include_usage: bool = True,
    model: str = _DEFAULT_MODEL,
    response_id: str = _DEFAULT_ID,
    created: int = _DEFAULT_CREATED,
) -> list[dict[str, Any]]:
    """The chunks of a streamed completion, as JSON-able dicts, in OpenAI's order.

    ``text`` is the text deltas (a string is one delta). Each tool call's arguments are split
    into ``argument_fragments`` pieces. With ``include_usage`` (what the caller's
    ``stream_options`` asks for) a last chunk with ``choices: []`` carries ``usage``
    (a small default when ``usage`` is None).
    """
    deltas = [text] if isinstance(text, str) else list(text)

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": response_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": _DEFAULT_FINGERPRINT,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            **({"usage": None} if include_usage else {}),
        }

    deltas = [piece for piece in deltas if piece]
    # The first chunk announces the role: with content "" before text, or together with the
    # first tool call (content null) when the answer is only tool calls, as OpenAI does.
    role_only = bool(deltas) or not tool_calls
    chunks = []
    if role_only:
        chunks.append(chunk({"role": "assistant", "content": "", "refusal": None}))
    chunks += [chunk({"content": piece}) for piece in deltas]
    for index, call in enumerate(tool_calls or ()):
        head = {"index": index, "id": call.id, "type": "function"}
        delta: dict[str, Any] = {
            "tool_calls": [{**head, "function": {"name": call.name, "arguments": ""}}]
        }
        if index == 0 and not role_only:
            delta = {"role": "assistant", "content": None, **delta, "refusal": None}
        chunks.append(chunk(delta))
        for piece in _split(call.arguments_json, argument_fragments):
            chunks.append(
                chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            )
    chunks.append(chunk({}, finish_reason or _default_finish(tool_calls)))
    if include_usage:
        final = chunk({})
        final["choices"] = []
        final["usage"] = dict(_default_usage() if usage is None else usage)
        chunks.append(final)
    return chunks


def _split(text: str, parts: int) -> list[str]:
    if not text:
        return []
    size = max(1, -(-len(text) // max(1, parts)))
    return [text[i : i + size] for i in range(0, len(text), size)]


def sse(events: Iterable[Mapping[str, Any] | str], *, done: bool = True) -> bytes:
    """Serialise events as OpenAI's SSE body: ``data: <json>`` lines, then ``data: [DONE]``.

    A ``str`` event is sent verbatim after ``data: `` (for malformed-stream tests).
    """
    lines = [
        f"data: {event if isinstance(event, str) else json.dumps(event, separators=(',', ':'))}\n\n"
        for event in events
    ]
    if done:
        lines.append("data: [DONE]\n\n")
    return "".join(lines).encode("utf-8")


def chat_completion_stream(
    *,
    text: str | Sequence[str] = ("Hel", "lo!"),
    tool_calls: Sequence[ToolCall] | None = None,
    finish_reason: FinishReason | None = None,
    usage: Mapping[str, Any] | None = None,
    include_usage: bool = True,
    model: str = _DEFAULT_MODEL,
    response_id: str = _DEFAULT_ID,
    error_after: int | None = None,
    error: Mapping[str, Any] | None = None,
) -> bytes:
    """A whole SSE body for a streamed completion (see :func:`chat_completion_chunks`).

    ``error_after=N`` cuts the stream after N chunks and sends an in-stream error event
    (``error``, by default a ``server_error``) instead of the rest, as OpenAI does when a
    generation fails after the 200 was sent; no ``[DONE]`` follows it.
    """
    chunks = chat_completion_chunks(
        text=text,
        tool_calls=tool_calls,
        finish_reason=finish_reason,
        usage=usage,
        include_usage=include_usage,
        model=model,
        response_id=response_id,
    )
    if error_after is None:
        return sse(chunks)
    events: list[Mapping[str, Any]] = [*chunks[:error_after], error or stream_error_event()]
    return sse(events, done=False)


def stream_error_event(
    message: str = "The server had an error while processing your request. Sorry about that!",
    *,
    type: str = "server_error",
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """An error event inside a 200 stream: ``data: {"error": {...}}``."""
    return error_body(message, type=type, code=code, param=param)


def error_body(
    message: str, *, type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error JSON: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_response(
    status: int,
    message: str,
    *,
    type: str,
    code: str | None = None,
    param: str | None = None,
    retry_after: float | str | None = None,
    retry_after_ms: int | None = None,
    request_id: str = _DEFAULT_REQUEST_ID,
    headers: Mapping[str, str] | None = None,
) -> WireError:
    """Any error response. ``retry_after`` may be seconds or an HTTP date string."""
    all_headers = {"content-type": "application/json", "x-request-id": request_id}
    if retry_after is not None:
        all_headers["retry-after"] = (
            retry_after if isinstance(retry_after, str) else _format_number(retry_after)
        )
    if retry_after_ms is not None:
        all_headers["retry-after-ms"] = str(retry_after_ms)
    all_headers.update(headers or {})
    return WireError(status, error_body(message, type=type, code=code, param=param), all_headers)


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def invalid_request_error(
    message: str = "Invalid value for 'temperature': must be between 0 and 2.",
    *,
    status: int = 400,
    code: str | None = None,
    param: str | None = None,
) -> WireError:
    """A 400 (or other 4xx) the caller must fix."""
    return error_response(status, message, type="invalid_request_error", code=code, param=param)


def context_length_error(limit: int = 128000, used: int = 130512) -> WireError:
    """400 ``context_length_exceeded``."""
    message = (
        f"This model's maximum context length is {limit} tokens. However, your messages "
        f"resulted in {used} tokens. Please reduce the length of the messages."
    )
    return error_response(
        400, message, type="invalid_request_error", code="context_length_exceeded", param="messages"
    )


def auth_error(masked_key: str = "sk-abc***********wxyz") -> WireError:
    """401 ``invalid_api_key`` (OpenAI echoes a masked key in the message)."""
    message = (
        f"Incorrect API key provided: {masked_key}. You can find your API key at "
        "https://platform.openai.com/account/api-keys."
    )
    return error_response(401, message, type="invalid_request_error", code="invalid_api_key")


def permission_error() -> WireError:
    """403, e.g. a region OpenAI does not serve."""
    return error_response(
        403,
        "Country, region, or territory not supported",
        type="request_forbidden",
        code="unsupported_country_region_territory",
    )


def not_found_error(model: str = "gpt-nonexistent") -> WireError:
    """404 ``model_not_found``."""
    return error_response(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        type="invalid_request_error",
        code="model_not_found",
    )


def rate_limit_error(
    *, retry_after: float | str | None = None, retry_after_ms: int | None = None
) -> WireError:
    """429 ``rate_limit_exceeded`` (tokens per minute), with OpenAI's x-ratelimit headers."""
    message = (
        "Rate limit reached for gpt-4o in organization org-wire on tokens per min (TPM): "
        "Limit 30000, Used 29000, Requested 2000. Please try again in 2s."
    )
    return error_response(
        429,
        message,
        type="tokens",
        code="rate_limit_exceeded",
        retry_after=retry_after,
        retry_after_ms=retry_after_ms,
        headers={
            "x-ratelimit-limit-tokens": "30000",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "2s",
        },
    )


def insufficient_quota_error() -> WireError:
    """429 ``insufficient_quota``: the account is out of money (retrying will not help)."""
    return error_response(
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        type="insufficient_quota",
        code="insufficient_quota",
    )


def server_error(status: int = 500, *, retry_after: float | None = None) -> WireError:
    """A 5xx ``server_error``."""
    return error_response(
        status,
        "The server had an error while processing your request. Sorry about that!",
        type="server_error",
        retry_after=retry_after,
    )


def overloaded_error(status: int = 503) -> WireError:
    """OpenAI's "engine overloaded" (a 503 ``server_error``); pass 529 for proxies that use it."""
    return error_response(
        status,
        "The engine is currently overloaded, please try again later.",
        type="server_error",
    )
