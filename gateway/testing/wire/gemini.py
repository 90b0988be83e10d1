"""The Gemini API's wire format (``generateContent`` / ``streamGenerateContent``), as JSON-able
dicts and SSE bytes, for mocks and tests.

Shapes follow what ``generativelanguage.googleapis.com`` sends and what google-genai 3.x parses:

- a response is ``{"candidates": [{"content": {"role": "model", "parts": [...]},
  "finishReason": ..., "index": 0}], "usageMetadata": {...}, "modelVersion": ...,
  "responseId": ...}``;
- a stream (``:streamGenerateContent?alt=sse``) is ``data: <response>`` events separated by a blank
  line, each of the same shape; ``usageMetadata`` is a running total (the last event is the bill),
  text arrives in pieces and a ``functionCall`` part arrives whole in one event;
- an error is ``{"error": {"code", "message", "status", "details"?}}`` with the HTTP status, and
  the same object as a ``data:`` event when the failure happens inside a 200 stream.

Nothing here imports a test framework; every function returns plain data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_BASE_URL",
    "STATUS_BY_CODE",
    "FunctionCall",
    "context_too_long_error",
    "error_body",
    "error_headers",
    "function_call_part",
    "generate_content_response",
    "generate_content_url",
    "invalid_api_key_error",
    "logprobs_result",
    "rate_limit_error",
    "sse_body",
    "stream_error_event",
    "stream_events",
    "stream_response",
    "text_part",
    "usage_metadata",
]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"

#: google.rpc canonical status names the API pairs with each HTTP status.
STATUS_BY_CODE: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_SSE_SEPARATOR = b"\r\n\r\n"


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """One ``functionCall`` part the model emits."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    #: Gemini usually sends no id; some models and Vertex do.
    id: str | None = None
    #: Base64 ``thoughtSignature`` attached to the part (Gemini 2.5+/3 thinking models).
    thought_signature: str | None = None


def generate_content_url(
    model: str,
    *,
    stream: bool = False,
    base_url: str = DEFAULT_BASE_URL,
    api_version: str = "v1",
) -> str:
    """The URL google-genai posts to (``v1`` is the SDK's default API version)."""
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"{base_url.rstrip('/')}/{api_version}/models/{model}:{method}"


def text_part(text: str, *, thought: bool = False) -> dict[str, Any]:
    """A text part; ``thought=True`` marks a thought summary."""
    part: dict[str, Any] = {"text": text}
    if thought:
        part["thought"] = True
    return part


def function_call_part(call: FunctionCall) -> dict[str, Any]:
    """A ``functionCall`` part (with its ``thoughtSignature`` when given)."""
    body: dict[str, Any] = {"name": call.name, "args": dict(call.args)}
    if call.id is not None:
        body["id"] = call.id
    part: dict[str, Any] = {"functionCall": body}
    if call.thought_signature is not None:
        part["thoughtSignature"] = call.thought_signature
    return part


def usage_metadata(
    *,
    prompt_tokens: int = 10,
    output_tokens: int = 5,
    cached_tokens: int = 0,
    thoughts_tokens: int = 0,
    tool_use_prompt_tokens: int = 0,
) -> dict[str, Any]:
    """``usageMetadata``. ``prompt_tokens`` includes ``cached_tokens``, as on the wire;
    ``output_tokens`` is ``candidatesTokenCount`` (thinking is counted separately)."""
    usage: dict[str, Any] = {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": prompt_tokens + output_tokens + thoughts_tokens + tool_use_prompt_tokens,
    }
    if cached_tokens:
        usage["cachedContentTokenCount"] = cached_tokens
    if thoughts_tokens:
        usage["thoughtsTokenCount"] = thoughts_tokens
    if tool_use_prompt_tokens:
        usage["toolUsePromptTokenCount"] = tool_use_prompt_tokens
    return usage


def logprobs_result(
    chosen: Sequence[tuple[str, float]], top: Sequence[Sequence[tuple[str, float]]] = ()
) -> dict[str, Any]:
    """A candidate's ``logprobsResult``: the chosen token at each step with its log
    probability, and (when the request set ``logprobs``) the top alternatives at each step."""
    result: dict[str, Any] = {
        "chosenCandidates": [
            {"token": token, "tokenId": i, "logProbability": logprob}
            for i, (token, logprob) in enumerate(chosen)
        ],
        "logProbabilitySum": sum(logprob for _, logprob in chosen),
    }
    if top:
        result["topCandidates"] = [
            {
                "candidates": [
                    {"token": token, "tokenId": 100 + j, "logProbability": logprob}
                    for j, (token, logprob) in enumerate(step)
                ]
            }
            for step in top
        ]
    return result


def generate_content_response(
    text: str | None = "Hello!",
    *,
    function_calls: Sequence[FunctionCall] = (),
    finish_reason: str | None = "STOP",
    usage: Mapping[str, Any] | None = None,
    response_id: str | None = "resp-gemini-1",
    model_version: str | None = "gemini-2.5-flash",
    parts: Sequence[Mapping[str, Any]] | None = None,
    prompt_block_reason: str | None = None,
    blocked_categories: Sequence[str] = (),
    logprobs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``generateContent`` response body with one candidate.

    ``parts`` replaces the text and function-call parts when given. ``prompt_block_reason``
    (e.g. ``"SAFETY"``) builds a blocked-prompt response: no candidates, ``promptFeedback``
    with a blocked ``safetyRatings`` entry per category of ``blocked_categories``.
    ``logprobs`` (see :func:`logprobs_result`) is the candidate's ``logprobsResult``.
    """
    body: dict[str, Any] = {}
    if prompt_block_reason is not None:
        feedback: dict[str, Any] = {"blockReason": prompt_block_reason}
        if blocked_categories:
            feedback["safetyRatings"] = [
                {"category": category, "probability": "HIGH", "blocked": True}
                for category in blocked_categories
            ]
        body["promptFeedback"] = feedback
    else:
        if parts is None:
            built: list[dict[str, Any]] = [text_part(text)] if text is not None else []
            built += [function_call_part(call) for call in function_calls]
        else:
            built = [dict(part) for part in parts]
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": built}, "index": 0}
        if finish_reason is not None:
            candidate["finishReason"] = finish_reason
        if logprobs is not None:
            candidate["logprobsResult"] = dict(logprobs)
        body["candidates"] = [candidate]
    body["usageMetadata"] = dict(usage) if usage is not None else usage_metadata()
    if model_version is not None:
        body["modelVersion"] = model_version
    if response_id is not None:
        body["responseId"] = response_id
    return body


def stream_events(
    text_chunks: Sequence[str] = ("Hel", "lo", "!"),
    *,
    function_calls: Sequence[FunctionCall] = (),
    finish_reason: str = "STOP",
    usage: Mapping[str, Any] | None = None,
    response_id: str | None = "resp-gemini-1",
    model_version: str | None = "gemini-2.5-flash",
) -> list[dict[str, Any]]:
    """The events of a stream: one per text chunk, one per function call (whole), the last one
    carrying ``finishReason``. Every event carries ``usageMetadata`` as a running total that
    reaches ``usage`` on the last event, as the API does."""
    final = dict(usage) if usage is not None else usage_metadata()
    prompt = int(final.get("promptTokenCount", 0))
    output = int(final.get("candidatesTokenCount", 0))
    pieces: list[dict[str, Any]] = [text_part(chunk) for chunk in text_chunks]
    pieces += [function_call_part(call) for call in function_calls]
    if not pieces:
        pieces = [text_part("")]
    events: list[dict[str, Any]] = []
    for i, part in enumerate(pieces):
        last = i == len(pieces) - 1
        running = (
            dict(final)
            if last
            else {
                "promptTokenCount": prompt,
                "candidatesTokenCount": output * (i + 1) // len(pieces),
                "totalTokenCount": prompt + output * (i + 1) // len(pieces),
            }
        )
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": [part]}, "index": 0}
        if last:
            candidate["finishReason"] = finish_reason
        event: dict[str, Any] = {"candidates": [candidate], "usageMetadata": running}
        if model_version is not None:
            event["modelVersion"] = model_version
        if response_id is not None:
            event["responseId"] = response_id
        events.append(event)
    return events


def sse_body(events: Iterable[Mapping[str, Any]]) -> bytes:
    """Events as the ``alt=sse`` body: ``data: <json>`` lines separated by a blank line."""
    return b"".join(
        b"data: " + json.dumps(event, separators=(",", ":")).encode() + _SSE_SEPARATOR
        for event in events
    )


def stream_response(
    text_chunks: Sequence[str] = ("Hel", "lo", "!"),
    *,
    function_calls: Sequence[FunctionCall] = (),
    finish_reason: str = "STOP",
    usage: Mapping[str, Any] | None = None,
    response_id: str | None = "resp-gemini-1",
    model_version: str | None = "gemini-2.5-flash",
) -> bytes:
    """A whole ``streamGenerateContent?alt=sse`` body (see :func:`stream_events`)."""
    return sse_body(
        stream_events(
            text_chunks,
            function_calls=function_calls,
            finish_reason=finish_reason,
            usage=usage,
            response_id=response_id,
            model_version=model_version,
        )
    )


def error_body(
    code: int,
    message: str | None = None,
    *,
    status: str | None = None,
    details: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """A Google API error: ``{"error": {"code", "message", "status", "details"?}}``."""
    error: dict[str, Any] = {
        "code": code,
        "message": message or f"Request failed with HTTP {code}.",
        "status": status or STATUS_BY_CODE.get(code, "UNKNOWN"),
    }
    if details:
        error["details"] = [dict(detail) for detail in details]
    return {"error": error}


def context_too_long_error(input_tokens: int = 1_200_000, limit: int = 1_048_576) -> dict[str, Any]:
    """The 400 the API returns for a prompt over the model's window (no structured reason)."""
    return error_body(
        400,
        f"The input token count ({input_tokens}) exceeds the maximum number of tokens "
        f"allowed ({limit}).",
    )


def invalid_api_key_error() -> dict[str, Any]:
    """A bad key: HTTP 400 INVALID_ARGUMENT with ``ErrorInfo.reason == "API_KEY_INVALID"``."""
    return error_body(
        400,
        "API key not valid. Please pass a valid API key.",
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        ],
    )


def rate_limit_error(retry_delay_s: float | None = None) -> dict[str, Any]:
    """A 429 RESOURCE_EXHAUSTED, with a ``RetryInfo`` detail when ``retry_delay_s`` is given."""
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                }
            ],
        }
    ]
    if retry_delay_s is not None:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": f"{retry_delay_s:g}s",
            }
        )
    return error_body(
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        details=details,
    )


def error_headers(
    *, retry_after: str | None = None, retry_after_ms: str | None = None
) -> dict[str, str]:
    """Headers of an error response (the API itself rarely sends Retry-After; proxies do)."""
    headers = {"content-type": "application/json; charset=UTF-8"}
    if retry_after is not None:
        headers["retry-after"] = retry_after
    if retry_after_ms is not None:
        headers["retry-after-ms"] = retry_after_ms
    return headers


def stream_error_event(
    code: int, message: str | None = None, *, status: str | None = None
) -> bytes:
    """An error sent as an event inside a 200 stream."""
    return sse_body([error_body(code, message, status=status)])
