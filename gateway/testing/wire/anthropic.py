"""Anthropic Messages API on the wire: response bodies, SSE streams, error bodies and headers.

Every builder returns what ``POST https://api.anthropic.com/v1/messages`` sends: a JSON-able
``dict`` for a message or an error, ``bytes`` for a stream. The shapes were checked against the
parser of the ``anthropic`` SDK (2.14); see ``shared/PROVIDERS.md``.

A stream is a list of event dicts (:func:`stream_events`) encoded by :func:`encode_sse`; every
event gets an ``event:`` line, without which the SDK drops it silently. Slice or extend the list
to script a broken stream, e.g. ``encode_sse([*events[:3], error_event("overloaded_error")])``.

Typical use with respx::

    route = mock.post(MESSAGES_URL).mock(return_value=httpx.Response(200, json=message(text="hi")))
    mock.post(MESSAGES_URL).mock(
        return_value=httpx.Response(200, content=stream_body(text_chunks=["h", "i"]),
                                    headers=SSE_HEADERS))
    mock.post(MESSAGES_URL).mock(
        return_value=httpx.Response(529, json=error_for_status(529),
                                    headers=error_headers(retry_after=3)))
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_MODEL",
    "ERROR_TYPES",
    "MESSAGES_URL",
    "SSE_HEADERS",
    "ToolUse",
    "encode_sse",
    "error_body",
    "error_event",
    "error_for_status",
    "error_headers",
    "message",
    "stream_body",
    "stream_events",
    "usage",
]

#: Where the SDK posts a Messages call with the default base URL.
MESSAGES_URL = "https://api.anthropic.com/v1/messages"
#: The model name the builders report unless told otherwise.
DEFAULT_MODEL = "claude-sonnet-4-6"
#: Response headers of a stream.
SSE_HEADERS: Mapping[str, str] = {"content-type": "text/event-stream; charset=utf-8"}

#: The ``error.type`` Anthropic sends with each HTTP status.
ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_DEFAULT_MESSAGES: Mapping[str, str] = {
    "invalid_request_error": "Invalid request",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API.",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "The requested resource could not be found.",
    "conflict_error": "Conflict",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit",
    "api_error": "Internal server error",
    "timeout_error": "Request timeout",
    "overloaded_error": "Overloaded",
}


@dataclass(frozen=True, slots=True)
class ToolUse:
    """A tool call made by the model (a ``tool_use`` content block)."""

    name: str
    input: Mapping[str, Any] = field(default_factory=dict)
    id: str = "toolu_01"


def usage(
    input_tokens: int = 20,
    output_tokens: int = 7,
    *,
    cache_creation_input_tokens: int = 0,
    cache_read_input_tokens: int = 0,
    thinking_tokens: int | None = None,
) -> dict[str, Any]:
    """A ``usage`` object. ``input_tokens`` excludes the cache reads and writes, as on the wire."""
    body: dict[str, Any] = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": cache_creation_input_tokens,
        "cache_read_input_tokens": cache_read_input_tokens,
    }
    if thinking_tokens is not None:
        body["output_tokens_details"] = {"thinking_tokens": thinking_tokens}
    return body


_usage_body = usage  # the builders below take a parameter named ``usage``


def _text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _thinking_block(thinking: str, signature: str = "sig_01") -> dict[str, Any]:
    return {"type": "thinking", "thinking": thinking, "signature": signature}


def _tool_use_block(tool: ToolUse, *, with_input: bool = True) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": tool.id,
        "name": tool.name,
        "input": dict(tool.input) if with_input else {},
    }


def _stop_reason(stop_reason: str | None, tool_uses: Sequence[ToolUse]) -> str:
    if stop_reason is not None:
        return stop_reason
    return "tool_use" if tool_uses else "end_turn"


def message(
    *,
    text: str | None = "Hello!",
    tool_uses: Sequence[ToolUse] = (),
    thinking: str | None = None,
    stop_reason: str | None = None,
    stop_sequence: str | None = None,
    usage: Mapping[str, Any] | None = None,
    model: str = DEFAULT_MODEL,
    message_id: str = "msg_01",
) -> dict[str, Any]:
    """A complete (non-streamed) Message.

    Content blocks come in the order thinking, text, tool uses. ``stop_reason`` defaults to
    ``tool_use`` when there are tool uses, else ``end_turn``.
    """
    content: list[dict[str, Any]] = []
    if thinking is not None:
        content.append(_thinking_block(thinking))
    if text is not None:
        content.append(_text_block(text))
    content.extend(_tool_use_block(tool) for tool in tool_uses)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _stop_reason(stop_reason, tool_uses),
        "stop_sequence": stop_sequence,
        "usage": dict(usage) if usage is not None else _usage_body(),
    }


# ---------------------------------------------------------------------------------------------
# Errors


def error_body(
    error_type: str, message: str | None = None, *, request_id: str | None = "req_01"
) -> dict[str, Any]:
    """An error response body: ``{"type": "error", "error": {...}, "request_id": ...}``."""
    body: dict[str, Any] = {
        "type": "error",
        "error": {"type": error_type, "message": message or _DEFAULT_MESSAGES.get(error_type, "")},
    }
    if request_id is not None:
        body["request_id"] = request_id
    return body


def error_for_status(
    status: int, message: str | None = None, *, request_id: str | None = "req_01"
) -> dict[str, Any]:
    """The error body Anthropic sends with an HTTP status (``api_error`` for unknown ones)."""
    return error_body(ERROR_TYPES.get(status, "api_error"), message, request_id=request_id)


def error_headers(
    *,
    request_id: str | None = "req_01",
    retry_after: float | str | None = None,
    retry_after_ms: float | None = None,
) -> dict[str, str]:
    """Headers of an error response: ``request-id`` and, when given, the Retry-After pair."""
    headers = {"content-type": "application/json"}
    if request_id is not None:
        headers["request-id"] = request_id
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    if retry_after_ms is not None:
        headers["retry-after-ms"] = str(retry_after_ms)
    return headers


def error_event(error_type: str = "overloaded_error", message: str | None = None) -> dict[str, Any]:
    """An ``error`` event inside a 200 stream (the body carries no request id)."""
    return error_body(error_type, message, request_id=None)


# ---------------------------------------------------------------------------------------------
# Streams


def _fragments(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] if size > 0 else [text]


def stream_events(
    *,
    text_chunks: Sequence[str] = ("Hel", "lo!"),
    tool_uses: Sequence[ToolUse] = (),
    thinking: str | None = None,
    json_fragment_size: int = 8,
    stop_reason: str | None = None,
    stop_sequence: str | None = None,
    usage: Mapping[str, Any] | None = None,
    cumulative_delta_usage: bool = False,
    model: str = DEFAULT_MODEL,
    message_id: str = "msg_01",
    ping: bool = True,
) -> list[dict[str, Any]]:
    """The events of one streamed message, in the order Anthropic sends them.

    ``message_start`` carries the input and cache tokens (and ``output_tokens: 1``);
    ``message_delta`` carries the stop reason and the final ``output_tokens`` (plus the
    cumulative input and cache counts when ``cumulative_delta_usage``, as newer API versions
    send). A tool use streams as ``content_block_start`` (id, name, empty input) followed by
    ``input_json_delta`` fragments of ``json_fragment_size`` characters (after an empty one);
    a tool use with no input streams only the empty fragment.
    """
    final = dict(usage) if usage is not None else _usage_body()
    start_usage = {
        "input_tokens": final.get("input_tokens", 0),
        "output_tokens": 1,
        "cache_creation_input_tokens": final.get("cache_creation_input_tokens", 0),
        "cache_read_input_tokens": final.get("cache_read_input_tokens", 0),
    }
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": start_usage,
            },
        }
    ]
    if ping:
        events.append({"type": "ping"})  # sent right after message_start; the SDK skips it
    index = 0
    if thinking is not None:
        events.append(
            {
                "type": "content_block_start",
                "index": index,
                "content_block": _thinking_block("", ""),
            }
        )
        events.append(
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "thinking_delta", "thinking": thinking},
            }
        )
        events.append(
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "signature_delta", "signature": "sig_01"},
            }
        )
        events.append({"type": "content_block_stop", "index": index})
        index += 1
    if text_chunks:
        events.append(
            {"type": "content_block_start", "index": index, "content_block": _text_block("")}
        )
        events.extend(
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "text_delta", "text": t},
            }
            for t in text_chunks
        )
        events.append({"type": "content_block_stop", "index": index})
        index += 1
    for tool in tool_uses:
        events.append(
            {
                "type": "content_block_start",
                "index": index,
                "content_block": _tool_use_block(tool, with_input=False),
            }
        )
        # A call without arguments streams one empty fragment, not "{}".
        arguments = json.dumps(dict(tool.input), separators=(",", ":")) if tool.input else ""
        for fragment in ["", *_fragments(arguments, json_fragment_size)]:
            events.append(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": fragment},
                }
            )
        events.append({"type": "content_block_stop", "index": index})
        index += 1
    delta_usage: dict[str, Any] = {"output_tokens": final.get("output_tokens", 0)}
    if "output_tokens_details" in final:
        delta_usage["output_tokens_details"] = final["output_tokens_details"]
    if cumulative_delta_usage:
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
            delta_usage[key] = final.get(key, 0)
    events.append(
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": _stop_reason(stop_reason, tool_uses),
                "stop_sequence": stop_sequence,
            },
            "usage": delta_usage,
        }
    )
    events.append({"type": "message_stop"})
    return events


def encode_sse(events: Iterable[Mapping[str, Any]]) -> bytes:
    """Server-sent events: an ``event: <type>`` and a ``data: <json>`` line per event."""
    return b"".join(
        f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()
        for event in events
    )


def stream_body(
    *,
    error: Mapping[str, Any] | None = None,
    error_after: int | None = None,
    **kwargs: Any,
) -> bytes:
    """An encoded stream (see :func:`stream_events` for ``kwargs``).

    With ``error`` (e.g. ``error_event("overloaded_error")``), the stream is cut after
    ``error_after`` events (default: after ``message_start`` and the first content block's
    first delta, if any) and the error event is sent instead of the rest.
    """
    events = stream_events(**kwargs)
    if error is not None:
        if error_after is None:
            deltas = [i for i, e in enumerate(events) if e["type"] == "content_block_delta"]
            error_after = deltas[0] + 1 if deltas else 1
        events = [*events[:error_after], dict(error)]
    return encode_sse(events)
