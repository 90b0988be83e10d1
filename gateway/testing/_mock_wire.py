"""How each provider's mock reads a request and answers on the wire.

One :class:`Dialect` per provider, built on the wire builders of :mod:`gateway.testing.wire`
(which the adapters' own tests check against the SDKs): parse the intercepted request, render
a reply (JSON or an SSE stream), an error response, or a stream that breaks part way.

What a scripted outcome sends (openai / anthropic / gemini) and the gateway error the real
adapter makes of it:

- ``fail(429)``: ``rate_limit_exceeded`` / ``rate_limit_error`` / ``RESOURCE_EXHAUSTED``
  -> RateLimited, with ``retry_after`` (Gemini's in a RetryInfo detail, as the API sends it).
- ``fail(5xx)``: ``server_error`` / ``api_error`` / ``INTERNAL``, ``UNAVAILABLE`` ->
  ProviderUnavailable; ``fail(529)`` -> ProviderOverloaded.
- ``fail(4xx)``: the provider's body for that status -> InvalidRequest (401/403:
  AuthenticationFailed).
- ``insufficient_quota()``: 429 ``insufficient_quota`` / 402 ``billing_error`` / 429
  ``RESOURCE_EXHAUSTED`` -> RateLimited (``quota_exhausted`` for OpenAI and Anthropic).
- ``context_too_long()``: 400 ``context_length_exceeded`` / 400 "prompt is too long" / 400
  "input token count exceeds" -> ContextTooLong.
- ``auth_error()``: 401 ``invalid_api_key`` / 401 ``authentication_error`` / 400
  ``API_KEY_INVALID`` -> AuthenticationFailed.
- ``overloaded_mid_stream()``: an in-stream ``server_error`` / ``overloaded_error`` / 503
  ``UNAVAILABLE`` event -> ProviderUnavailable / ProviderOverloaded / ProviderUnavailable; not
  streamed: 503 / 529 / 503, the same classes.
- ``timeout()``: the transport times out -> ProviderTimeout; ``disconnect()``: the server
  drops the connection -> ProviderConnectionError.

Gemini reports quota exhaustion as an ordinary 429, so its ``RateLimited.quota_exhausted`` is
False, as with the real API; OpenAI has no separate overload type, so its overload errors are
plain ``ProviderUnavailable`` (a fallback trigger all the same).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from gateway.providers.base import TokenUsage
from gateway.testing._mock_script import Failure, FinishReason
from gateway.testing.wire import anthropic as anthropic_wire
from gateway.testing.wire import gemini as gemini_wire
from gateway.testing.wire import openai as openai_wire

__all__ = ["DIALECTS", "Answer", "BrokenBody", "Dialect", "WireCall", "pieces"]


@dataclass(frozen=True, slots=True)
class WireCall:
    """What the mock read from one intercepted request."""

    model: str
    stream: bool
    #: The JSON body as the provider received it.
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Answer:
    """A reply with everything decided: text (None: no text part), tool calls, usage."""

    text: str | None
    tool_calls: tuple[tuple[str, dict[str, Any]], ...]
    usage: TokenUsage
    finish_reason: FinishReason | None
    #: Numbers the response's ids, so that every answer of one mock is told apart.
    number: int


class Dialect(Protocol):
    """One provider's side of the wire."""

    name: str

    def url_pattern(self, base_url: str | None) -> re.Pattern[str]:
        """The URLs of the calls this mock answers (``base_url`` replaces the default host)."""
        ...

    def parse(self, request: httpx.Request) -> WireCall: ...

    def prompt_texts(self, body: Mapping[str, Any]) -> list[str]:
        """Every text of the prompt (system and messages), for the default token count."""
        ...

    def last_user_text(self, body: Mapping[str, Any]) -> str: ...

    def check_usage(self, usage: TokenUsage) -> None:
        """Raise ValueError if the provider cannot report this usage."""
        ...

    def reply(self, call: WireCall, answer: Answer) -> httpx.Response: ...

    def body(self, call: WireCall, answer: Answer) -> dict[str, Any]:
        """The JSON of a non-streamed reply (also a batch item's answer)."""
        ...

    def error(self, failure: Failure, model: str) -> httpx.Response: ...

    def overloaded(self) -> httpx.Response:
        """The provider's overload error response (for a non-streamed call)."""
        ...

    def broken_stream(
        self, call: WireCall, answer: Answer, after_chunks: int, *, overloaded: bool
    ) -> tuple[bytes, dict[str, str]]:
        """The head of a stream cut after ``after_chunks`` content chunks (and, if
        ``overloaded``, the provider's in-stream overload error), with its headers."""
        ...


def pieces(text: str | None) -> list[str]:
    """Stream deltas of a text: one per word, each word after the first with its space."""
    if not text:
        return []
    words = text.split(" ")
    return [word if i == 0 else " " + word for i, word in enumerate(words)]


def _json_body(request: httpx.Request) -> dict[str, Any]:
    try:
        body = json.loads(request.content or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _texts_of(content: Any, *, text_key: str = "text") -> list[str]:
    """Texts of a message content: a string, or a list of parts with a text field."""
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            part[text_key]
            for part in content
            if isinstance(part, dict) and isinstance(part.get(text_key), str)
        ]
    return []


def _cut(events: Sequence[Any], is_content: Callable[[Any], bool], after: int) -> int:
    """Where to cut a stream so that exactly ``after`` content events are kept (or all of
    them, cut right after the last, when there are fewer)."""
    seen = 0
    last_end = 1
    for i, event in enumerate(events):
        if is_content(event):
            if seen == after:
                return i
            seen += 1
            last_end = i + 1
    return last_end


def _with_headers(response: httpx.Response, headers: Mapping[str, str]) -> httpx.Response:
    response.headers.update(headers)
    return response


# ---------------------------------------------------------------------------------------------
# OpenAI


class _OpenAI:
    name = "openai"

    def url_pattern(self, base_url: str | None) -> re.Pattern[str]:
        base = (base_url or openai_wire.API_BASE).rstrip("/")
        return re.compile(re.escape(base) + r"/chat/completions(?:\?.*)?$")

    def parse(self, request: httpx.Request) -> WireCall:
        body = _json_body(request)
        return WireCall(str(body.get("model", "")), bool(body.get("stream")), body)

    def prompt_texts(self, body: Mapping[str, Any]) -> list[str]:
        messages = body.get("messages")
        if not isinstance(messages, list):
            return []
        return [t for m in messages if isinstance(m, dict) for t in _texts_of(m.get("content"))]

    def last_user_text(self, body: Mapping[str, Any]) -> str:
        messages = body.get("messages")
        for message in reversed(messages if isinstance(messages, list) else []):
            if isinstance(message, dict) and message.get("role") == "user":
                return " ".join(_texts_of(message.get("content")))
        return ""

    def check_usage(self, usage: TokenUsage) -> None:
        if usage.cached_input_tokens + usage.cache_write_tokens > usage.input_tokens:
            raise ValueError("OpenAI counts cached and cache-write tokens inside input_tokens")
        if usage.reasoning_tokens > usage.output_tokens:
            raise ValueError("OpenAI counts reasoning tokens inside output_tokens")

    def _usage(self, usage: TokenUsage) -> dict[str, Any]:
        return openai_wire.usage(
            usage.input_tokens,
            usage.output_tokens,
            cached_tokens=usage.cached_input_tokens,
            cache_write_tokens=usage.cache_write_tokens or None,
            reasoning_tokens=usage.reasoning_tokens,
        )

    def _tool_calls(self, answer: Answer) -> list[openai_wire.ToolCall]:
        return [
            openai_wire.ToolCall(f"call_mock{answer.number}_{i}", name, args)
            for i, (name, args) in enumerate(answer.tool_calls)
        ]

    def _headers(self, answer: Answer) -> dict[str, str]:
        return {"x-request-id": f"req_mock{answer.number}"}

    def _chunks(self, call: WireCall, answer: Answer) -> list[dict[str, Any]]:
        options = call.body.get("stream_options")
        return openai_wire.chat_completion_chunks(
            text=pieces(answer.text),
            tool_calls=self._tool_calls(answer),
            finish_reason=answer.finish_reason,
            usage=self._usage(answer.usage),
            include_usage=isinstance(options, dict) and options.get("include_usage") is True,
            model=call.model,
            response_id=f"chatcmpl-mock{answer.number}",
        )

    def reply(self, call: WireCall, answer: Answer) -> httpx.Response:
        if call.stream:
            body = openai_wire.sse(self._chunks(call, answer))
            headers = {**openai_wire.SSE_HEADERS, **self._headers(answer)}
            return httpx.Response(200, content=body, headers=headers)
        return httpx.Response(200, json=self.body(call, answer), headers=self._headers(answer))

    def body(self, call: WireCall, answer: Answer) -> dict[str, Any]:
        return openai_wire.chat_completion(
            text=answer.text,
            tool_calls=self._tool_calls(answer),
            finish_reason=answer.finish_reason,
            usage=self._usage(answer.usage),
            model=call.model,
            response_id=f"chatcmpl-mock{answer.number}",
        )

    def _status_error(self, status: int, model: str) -> openai_wire.WireError:
        if status == 400:
            return openai_wire.invalid_request_error()
        if status == 401:
            return openai_wire.auth_error()
        if status == 403:
            return openai_wire.permission_error()
        if status == 404:
            return openai_wire.not_found_error(model)
        if status == 429:
            return openai_wire.rate_limit_error()
        if status == 529:
            return openai_wire.overloaded_error(529)
        if status >= 500:
            return openai_wire.server_error(status)
        kind = "timeout" if status == 408 else "invalid_request_error"
        return openai_wire.error_response(status, f"HTTP {status}", type=kind)

    def _response(
        self, error: openai_wire.WireError, retry_after: float | None = None
    ) -> httpx.Response:
        headers = dict(error.headers)
        if retry_after is not None:
            headers["retry-after"] = _seconds(retry_after)
        return httpx.Response(error.status, json=error.body, headers=headers)

    def error(self, failure: Failure, model: str) -> httpx.Response:
        if failure.kind == "insufficient_quota":
            return self._response(openai_wire.insufficient_quota_error())
        if failure.kind == "context_too_long":
            return self._response(openai_wire.context_length_error())
        if failure.kind == "auth_error":
            return self._response(openai_wire.auth_error())
        assert failure.status is not None
        return self._response(self._status_error(failure.status, model), failure.retry_after)

    def overloaded(self) -> httpx.Response:
        return self._response(openai_wire.overloaded_error(503))

    def broken_stream(
        self, call: WireCall, answer: Answer, after_chunks: int, *, overloaded: bool
    ) -> tuple[bytes, dict[str, str]]:
        chunks = self._chunks(call, answer)

        def is_content(chunk: dict[str, Any]) -> bool:
            choices = chunk.get("choices") or [{}]
            delta = choices[0].get("delta") or {}
            return bool(delta.get("content") or delta.get("tool_calls"))

        events: list[Mapping[str, Any]] = list(chunks[: _cut(chunks, is_content, after_chunks)])
        if overloaded:
            events.append(
                openai_wire.stream_error_event(
                    "The engine is currently overloaded, please try again later."
                )
            )
        headers = {**openai_wire.SSE_HEADERS, **self._headers(answer)}
        return openai_wire.sse(events, done=False), headers


# ---------------------------------------------------------------------------------------------
# Anthropic

_ANTHROPIC_BASE = "https://api.anthropic.com"
_ANTHROPIC_STOP: Mapping[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


class _Anthropic:
    name = "anthropic"

    def url_pattern(self, base_url: str | None) -> re.Pattern[str]:
        base = (base_url or _ANTHROPIC_BASE).rstrip("/")
        return re.compile(re.escape(base) + r"/v1/messages(?:\?.*)?$")

    def parse(self, request: httpx.Request) -> WireCall:
        body = _json_body(request)
        return WireCall(str(body.get("model", "")), bool(body.get("stream")), body)

    def prompt_texts(self, body: Mapping[str, Any]) -> list[str]:
        texts = _texts_of(body.get("system"))
        messages = body.get("messages")
        for message in messages if isinstance(messages, list) else []:
            if isinstance(message, dict):
                texts += _texts_of(message.get("content"))
        return texts

    def last_user_text(self, body: Mapping[str, Any]) -> str:
        messages = body.get("messages")
        for message in reversed(messages if isinstance(messages, list) else []):
            if isinstance(message, dict) and message.get("role") == "user":
                return " ".join(_texts_of(message.get("content")))
        return ""

    def check_usage(self, usage: TokenUsage) -> None:
        if usage.cached_input_tokens + usage.cache_write_tokens > usage.input_tokens:
            raise ValueError("input_tokens must include cached and cache-write tokens")
        if usage.reasoning_tokens > usage.output_tokens:
            raise ValueError("Anthropic counts thinking tokens inside output_tokens")

    def _usage(self, usage: TokenUsage) -> dict[str, Any]:
        # On the wire input_tokens excludes the cache reads and writes.
        return anthropic_wire.usage(
            usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens,
            usage.output_tokens,
            cache_creation_input_tokens=usage.cache_write_tokens,
            cache_read_input_tokens=usage.cached_input_tokens,
            thinking_tokens=usage.reasoning_tokens or None,
        )

    def _tool_uses(self, answer: Answer) -> list[anthropic_wire.ToolUse]:
        return [
            anthropic_wire.ToolUse(name, args, id=f"toolu_mock{answer.number}_{i}")
            for i, (name, args) in enumerate(answer.tool_calls)
        ]

    def _stop(self, answer: Answer) -> str | None:
        return _ANTHROPIC_STOP[answer.finish_reason] if answer.finish_reason else None

    def _headers(self, answer: Answer) -> dict[str, str]:
        return {"request-id": f"req_mock{answer.number}"}

    def _events(self, call: WireCall, answer: Answer) -> list[dict[str, Any]]:
        return anthropic_wire.stream_events(
            text_chunks=pieces(answer.text),
            tool_uses=self._tool_uses(answer),
            stop_reason=self._stop(answer),
            usage=self._usage(answer.usage),
            model=call.model,
            message_id=f"msg_mock{answer.number}",
        )

    def reply(self, call: WireCall, answer: Answer) -> httpx.Response:
        if call.stream:
            body = anthropic_wire.encode_sse(self._events(call, answer))
            headers = {**anthropic_wire.SSE_HEADERS, **self._headers(answer)}
            return httpx.Response(200, content=body, headers=headers)
        return httpx.Response(200, json=self.body(call, answer), headers=self._headers(answer))

    def body(self, call: WireCall, answer: Answer) -> dict[str, Any]:
        return anthropic_wire.message(
            text=answer.text,
            tool_uses=self._tool_uses(answer),
            stop_reason=self._stop(answer),
            usage=self._usage(answer.usage),
            model=call.model,
            message_id=f"msg_mock{answer.number}",
        )

    def _response(
        self, status: int, body: dict[str, Any], retry_after: float | None = None
    ) -> httpx.Response:
        after = _seconds(retry_after) if retry_after is not None else None
        headers = anthropic_wire.error_headers(retry_after=after)
        return httpx.Response(status, json=body, headers=headers)

    def error(self, failure: Failure, model: str) -> httpx.Response:
        if failure.kind == "insufficient_quota":
            # How providers/anthropic.py recognises an account out of credit.
            return self._response(402, anthropic_wire.error_for_status(402))
        if failure.kind == "context_too_long":
            message = "prompt is too long: 210000 tokens > 200000 maximum"
            return self._response(400, anthropic_wire.error_body("invalid_request_error", message))
        if failure.kind == "auth_error":
            return self._response(401, anthropic_wire.error_for_status(401))
        assert failure.status is not None
        body = anthropic_wire.error_for_status(failure.status)
        return self._response(failure.status, body, failure.retry_after)

    def overloaded(self) -> httpx.Response:
        return self._response(529, anthropic_wire.error_for_status(529))

    def broken_stream(
        self, call: WireCall, answer: Answer, after_chunks: int, *, overloaded: bool
    ) -> tuple[bytes, dict[str, str]]:
        events = self._events(call, answer)

        def is_content(event: dict[str, Any]) -> bool:
            if event["type"] == "content_block_start":
                return bool(event["content_block"].get("type") == "tool_use")
            if event["type"] != "content_block_delta":
                return False
            delta = event["delta"]
            return bool(delta.get("text") or delta.get("partial_json"))

        kept = events[: _cut(events, is_content, after_chunks)]
        if overloaded:
            kept.append(anthropic_wire.error_event("overloaded_error"))
        headers = {**anthropic_wire.SSE_HEADERS, **self._headers(answer)}
        return anthropic_wire.encode_sse(kept), headers


# ---------------------------------------------------------------------------------------------
# Gemini

_GEMINI_FINISH: Mapping[str, str] = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "content_filter": "SAFETY",
}
_GEMINI_SSE_HEADERS: Mapping[str, str] = {"content-type": "text/event-stream"}
_GEMINI_OVERLOADED = "The model is overloaded. Please try again later."


class _Gemini:
    name = "gemini"

    def url_pattern(self, base_url: str | None) -> re.Pattern[str]:
        base = (base_url or gemini_wire.DEFAULT_BASE_URL).rstrip("/")
        return re.compile(
            # No named groups: respx would pass them to the side effect as arguments.
            re.escape(base) + r"/[^/]+/models/[^/:?]+:(?:generateContent|streamGenerateContent)"
            r"(?:\?.*)?$"
        )

    def parse(self, request: httpx.Request) -> WireCall:
        match = re.search(
            r"/models/(?P<model>[^/:?]+):(?P<method>\w+)", request.url.path or str(request.url)
        )
        if match is None:
            return WireCall("", False, _json_body(request))
        stream = match["method"] == "streamGenerateContent"
        return WireCall(match["model"], stream, _json_body(request))

    def prompt_texts(self, body: Mapping[str, Any]) -> list[str]:
        system = body.get("systemInstruction") or body.get("system_instruction")
        texts = _texts_of(system.get("parts")) if isinstance(system, dict) else []
        contents = body.get("contents")
        for content in contents if isinstance(contents, list) else []:
            if isinstance(content, dict):
                texts += _texts_of(content.get("parts"))
        return texts

    def last_user_text(self, body: Mapping[str, Any]) -> str:
        contents = body.get("contents")
        for content in reversed(contents if isinstance(contents, list) else []):
            if isinstance(content, dict) and content.get("role", "user") == "user":
                texts = _texts_of(content.get("parts"))
                if texts:
                    return " ".join(texts)
        return ""

    def check_usage(self, usage: TokenUsage) -> None:
        if usage.cache_write_tokens:
            raise ValueError("Gemini reports no cache-write tokens; leave cache_write_tokens 0")
        if usage.cached_input_tokens > usage.input_tokens:
            raise ValueError("Gemini counts cached tokens inside input_tokens")
        if usage.reasoning_tokens > usage.output_tokens:
            raise ValueError("output_tokens must include reasoning_tokens")

    def _usage(self, usage: TokenUsage) -> dict[str, Any]:
        # candidatesTokenCount excludes the thinking, which Gemini reports separately.
        return gemini_wire.usage_metadata(
            prompt_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens - usage.reasoning_tokens,
            cached_tokens=usage.cached_input_tokens,
            thoughts_tokens=usage.reasoning_tokens,
        )

    def _calls(self, answer: Answer) -> list[gemini_wire.FunctionCall]:
        return [gemini_wire.FunctionCall(name, args) for name, args in answer.tool_calls]

    def _finish(self, answer: Answer) -> str:
        return _GEMINI_FINISH[answer.finish_reason] if answer.finish_reason else "STOP"

    def _events(self, call: WireCall, answer: Answer) -> list[dict[str, Any]]:
        return gemini_wire.stream_events(
            pieces(answer.text),
            function_calls=self._calls(answer),
            finish_reason=self._finish(answer),
            usage=self._usage(answer.usage),
            response_id=f"resp-mock{answer.number}",
            model_version=call.model,
        )

    def reply(self, call: WireCall, answer: Answer) -> httpx.Response:
        if call.stream:
            body = gemini_wire.sse_body(self._events(call, answer))
            return httpx.Response(200, content=body, headers=_GEMINI_SSE_HEADERS)
        return httpx.Response(200, json=self.body(call, answer))

    def body(self, call: WireCall, answer: Answer) -> dict[str, Any]:
        return gemini_wire.generate_content_response(
            answer.text,
            function_calls=self._calls(answer),
            finish_reason=self._finish(answer),
            usage=self._usage(answer.usage),
            response_id=f"resp-mock{answer.number}",
            model_version=call.model,
        )

    def _response(
        self, status: int, body: dict[str, Any], retry_after: float | None = None
    ) -> httpx.Response:
        after = _seconds(retry_after) if retry_after is not None else None
        headers = gemini_wire.error_headers(retry_after=after)
        return httpx.Response(status, json=body, headers=headers)

    def error(self, failure: Failure, model: str) -> httpx.Response:
        if failure.kind == "insufficient_quota":
            return self._response(429, gemini_wire.rate_limit_error())
        if failure.kind == "context_too_long":
            return self._response(400, gemini_wire.context_too_long_error())
        if failure.kind == "auth_error":
            return self._response(400, gemini_wire.invalid_api_key_error())
        status = failure.status
        assert status is not None
        if status == 429:
            # Gemini says how long to wait in a RetryInfo detail, not in a header.
            return self._response(429, gemini_wire.rate_limit_error(failure.retry_after))
        message = _GEMINI_OVERLOADED if status in (503, 529) else None
        return self._response(status, gemini_wire.error_body(status, message), failure.retry_after)

    def overloaded(self) -> httpx.Response:
        return self._response(503, gemini_wire.error_body(503, _GEMINI_OVERLOADED))

    def broken_stream(
        self, call: WireCall, answer: Answer, after_chunks: int, *, overloaded: bool
    ) -> tuple[bytes, dict[str, str]]:
        events = self._events(call, answer)
        # Every event of a Gemini stream carries one part: each is a content chunk.
        body = gemini_wire.sse_body(events[: min(after_chunks, len(events))])
        if overloaded:
            body += gemini_wire.stream_error_event(503, _GEMINI_OVERLOADED)
        return body, dict(_GEMINI_SSE_HEADERS)


DIALECTS: Mapping[str, Dialect] = {
    "openai": _OpenAI(),
    "anthropic": _Anthropic(),
    "gemini": _Gemini(),
}


class BrokenBody(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body that sends ``head``, then fails the way a dropped connection does."""

    def __init__(self, head: bytes, failure: Exception) -> None:
        self._head = head
        self._failure = failure

    def __iter__(self) -> Iterator[bytes]:
        if self._head:
            yield self._head
        raise self._failure

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._head:
            yield self._head
        raise self._failure
