"""Gemini through the official ``google-genai`` SDK: OpenAI chat shape in, OpenAI types out.

Request translation (``ChatRequest`` -> ``generateContent``):

- ``system`` / ``developer`` messages -> ``config.system_instruction`` (all of them, joined by a
  blank line, wherever they appear); ``assistant`` -> role ``model``; consecutive turns of the
  same role are merged, since Gemini expects them to alternate.
- content parts: ``text``; ``image_url`` with a data URL -> ``inline_data`` (bytes), with an
  ``http(s)://`` or ``gs://`` URL -> ``file_data`` (MIME type guessed from the extension). Any
  other part type is an :class:`~gateway.errors.InvalidRequest` naming the message and part.
- assistant ``tool_calls`` -> ``functionCall`` parts (arguments parsed to an object). Tool call
  ids are not sent: Gemini pairs calls and results by order and name. A ``role: "tool"`` result
  -> a ``functionResponse`` part in a user turn, named after the earlier assistant tool call with
  that id; its ``response`` must be an object, so anything else (a JSON list, a number, plain
  text) is wrapped as ``{"result": ...}``.
- Thought signatures (Gemini 2.5+/3 thinking models attach an opaque ``thoughtSignature`` to
  function calls, and Gemini 3 rejects a replayed call without it): a returned signature rides
  on the OpenAI tool call as ``extra_content.google.thought_signature`` (the field Google's own
  OpenAI-compatible endpoint uses) and is sent back from there. When the first call of an
  assistant turn has none (a history built by hand or by another provider), Google's documented
  placeholder ``skip_thought_signature_validator`` is sent instead.
- ``tools`` -> one ``Tool(function_declarations=...)`` with ``parameters_json_schema``;
  ``tool_choice`` auto/none/required/{function} -> ``function_calling_config`` AUTO/NONE/ANY/ANY
  + ``allowed_function_names``. The SDK's automatic function calling is disabled.
- ``response_format`` json_object -> ``response_mime_type="application/json"``; json_schema ->
  also ``response_json_schema`` (``name`` and ``strict`` have no equivalent and are dropped).
- ``stop`` -> ``stop_sequences``, ``max_tokens`` -> ``max_output_tokens`` (thinking counts
  against it, as it does in OpenAI's ``max_completion_tokens``), ``temperature``, ``top_p``.
- ``user`` and ``metadata`` are dropped: the Gemini Developer API has no per-request end-user
  id, and ``labels`` exist only on Vertex AI.
- ``extra_body`` is merged (recursively, in wire names, e.g. ``generationConfig.topK``) into
  the request body via ``HttpOptions(extra_body=...)``.
- The SDK's automatic continuation (re-sending a request that ended with ``CONTINUATION``) is
  off: the gateway owns retries and deadlines. ``CONTINUATION`` therefore maps to ``length``.

Response translation:

- Gemini has no tool call ids: calls get ``call_<n>`` (n counts the calls of the response)
  unless ``functionCall.id`` is present; ``args`` become a JSON string.
- finish reasons: ``STOP`` -> ``stop`` (``tool_calls`` whenever the candidate has function
  calls, since Gemini says STOP for those too); ``MAX_TOKENS``/``CONTINUATION`` -> ``length``;
  ``SAFETY``, ``RECITATION``, ``BLOCKLIST``, ``PROHIBITED_CONTENT``, ``SPII``, the ``IMAGE_*``
  filters, ``MODEL_ARMOR`` and a blocked prompt (``promptFeedback.blockReason``) ->
  ``content_filter``; ``MALFORMED_FUNCTION_CALL`` -> ``stop`` (Gemini returns no call to run,
  so ``tool_calls`` would be a lie); anything else -> ``stop``.
- thought-summary parts (``thought: true``) are not part of the answer and are dropped.
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

import base64
import binascii
import functools
import json
import math
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
from providers._common import (
    FinishReason,
    completion_body,
    completion_data,
    guess_image_mime,
    make_chunk,
    parse_data_url,
    retry_after_seconds,
    usage_chunk,
)
from providers.base import AsyncChunkStream, ChatRequest, ChunkStream, ProviderResponse, TokenUsage

try:  # google-genai uses legacy httpx instead when GOOGLE_GENAI_HTTP_CLIENT=httpx.
    import httpx as _legacy_httpx
except ImportError:  # pragma: no cover - httpx is optional
    _legacy_httpx = None  # type: ignore[assignment]

__all__ = ["GeminiAdapter", "map_error"]

#: Seconds a call may take when neither the config nor the call sets a timeout.
DEFAULT_TIMEOUT_S = 600.0

#: Google's documented stand-in for a thought signature the caller no longer has.
SKIP_SIGNATURE = "skip_thought_signature_validator"
# The SDK writes bytes URL-safe base64 encoded, so these bytes reach the wire as the placeholder.
_SKIP_SIGNATURE_BYTES = base64.urlsafe_b64decode(SKIP_SIGNATURE)
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

_TOOL_CHOICE_MODES = {
    "auto": types.FunctionCallingConfigMode.AUTO,
    "none": types.FunctionCallingConfigMode.NONE,
    "required": types.FunctionCallingConfigMode.ANY,
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
    mapped = map_error(exc, provider=provider, model=model)
    if mapped is None:
        return exc
    if isinstance(mapped, ProviderUnavailable):
        mapped.chunks_received = stream.content_chunks
    return mapped


# ---------------------------------------------------------------------------------------------
# Request translation


def _invalid(message: str, provider: str) -> InvalidRequest:
    return InvalidRequest(message, provider=provider)


def _text_of(content: Any, where: str, provider: str) -> str:
    """The text of a content that may only hold text (system messages, tool results)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, Mapping) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
                raise _invalid(
                    f"{where}.content[{j}]: only text parts are allowed here, got {kind!r}",
                    provider,
                )
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise _invalid(f"{where}.content must be a string or a list of parts", provider)


def _image_part(part: Mapping[str, Any], where: str, provider: str) -> types.PartDict:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, Mapping) else image
    if not isinstance(url, str):
        raise _invalid(f"{where}: image_url needs a url", provider)
    if url.startswith("data:"):
        try:
            mime, data = parse_data_url(url, provider=provider)
            raw = base64.b64decode(data)
        except (InvalidRequest, binascii.Error, ValueError):
            raise _invalid(
                f"{where}: image data URLs must look like data:image/png;base64,<data>", provider
            ) from None
        return {"inline_data": {"mime_type": mime, "data": raw}}
    if url.startswith(("https://", "http://", "gs://")):
        return {"file_data": {"file_uri": url, "mime_type": guess_image_mime(url)}}
    raise _invalid(f"{where}: image url must be a data: URL or an http(s):// URL", provider)


def _user_parts(content: Any, where: str, provider: str) -> list[types.PartDict]:
    if isinstance(content, str):
        return [{"text": content}]
    if content is None:
        return []
    if not isinstance(content, list):
        raise _invalid(f"{where}.content must be a string or a list of parts", provider)
    parts: list[types.PartDict] = []
    for j, item in enumerate(content):
        kind = item.get("type") if isinstance(item, Mapping) else None
        if kind == "text":
            parts.append({"text": str(item.get("text", ""))})
        elif kind == "image_url":
            parts.append(_image_part(item, f"{where}.content[{j}]", provider))
        else:
            raise _invalid(
                f"{where}.content[{j}]: content part type {kind!r} is not supported for Gemini "
                "(use text or image_url)",
                provider,
            )
    return parts


def _signature_bytes(call: Mapping[str, Any]) -> bytes | None:
    """The thought signature an earlier Gemini response attached to this tool call."""
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, Mapping) else None
    signature = google.get("thought_signature") if isinstance(google, Mapping) else None
    if not isinstance(signature, str) or not signature:
        return None
    return _decode_signature(signature)


def _decode_signature(signature: str) -> bytes | None:
    # Accept both base64 alphabets; the SDK sends bytes back URL-safe encoded.
    padded = signature + "=" * (-len(signature) % 4)
    try:
        return base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
    except (binascii.Error, ValueError):
        return None


def _assistant_parts(
    message: Mapping[str, Any], where: str, provider: str, tool_names: dict[str, str]
) -> list[types.PartDict]:
    parts: list[types.PartDict] = []
    content = message.get("content")
    if isinstance(content, str):
        if content:
            parts.append({"text": content})
    elif isinstance(content, list):
        for j, item in enumerate(content):
            kind = item.get("type") if isinstance(item, Mapping) else None
            if kind == "text":
                parts.append({"text": str(item.get("text", ""))})
            elif kind != "refusal":
                raise _invalid(
                    f"{where}.content[{j}]: assistant content part type {kind!r} is not supported",
                    provider,
                )
    elif content is not None:
        raise _invalid(f"{where}.content must be a string or a list of parts", provider)
    tool_calls = message.get("tool_calls") or []
    if not isinstance(tool_calls, list):
        raise _invalid(f"{where}.tool_calls must be a list", provider)
    for k, call in enumerate(tool_calls):
        at = f"{where}.tool_calls[{k}]"
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or call.get("type", "function") != "function":
            raise _invalid(f"{at}: only function tool calls are supported", provider)
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise _invalid(f"{at}.function.name is missing", provider)
        try:
            args = json.loads(function.get("arguments") or "{}")
        except (TypeError, ValueError):
            args = None
        if not isinstance(args, dict):
            raise _invalid(f"{at}.function.arguments must be a JSON object", provider)
        signature = _signature_bytes(call)
        if signature is None and k == 0:
            signature = _SKIP_SIGNATURE_BYTES
        call_part: types.PartDict = {"function_call": {"name": name, "args": args}}
        if signature is not None:
            call_part["thought_signature"] = signature
        parts.append(call_part)
        call_id = call.get("id")
        if isinstance(call_id, str):
            tool_names[call_id] = name
    return parts


def _function_response_part(
    message: Mapping[str, Any], where: str, provider: str, tool_names: Mapping[str, str]
) -> types.PartDict:
    call_id = message.get("tool_call_id")
    name = tool_names.get(call_id) if isinstance(call_id, str) else None
    if name is None:
        legacy_name = message.get("name")
        if not isinstance(legacy_name, str) or not legacy_name:
            raise _invalid(
                f"{where}: tool_call_id {call_id!r} matches no tool call of an earlier "
                "assistant message",
                provider,
            )
        name = legacy_name
    text = _text_of(message.get("content"), where, provider)
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = text
    response = value if isinstance(value, dict) else {"result": value}
    return {"function_response": {"name": name, "response": response}}


def _contents(
    messages: Sequence[Mapping[str, Any]], provider: str
) -> tuple[list[types.ContentDict], str | None]:
    """Gemini ``contents`` and the system instruction for the OpenAI ``messages``.

    Plain dicts in google-genai's dict form (``ContentDict`` / ``PartDict``, snake_case keys),
    not ``types.Content`` / ``types.Part``: the SDK validates ``contents`` either way, and model
    instances cost it several times as much as the equivalent dicts (it re-checks them field by
    field). The request on the wire is the same. Every value here already has the type the SDK
    expects, so its validation cannot fail on them.
    """
    system: list[str] = []
    turns: list[tuple[str, list[types.PartDict]]] = []
    tool_names: dict[str, str] = {}
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise _invalid(f"{where} must be an object", provider)
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text_of(message.get("content"), where, provider))
            continue
        if role == "user":
            role_parts = ("user", _user_parts(message.get("content"), where, provider))
        elif role == "assistant":
            role_parts = ("model", _assistant_parts(message, where, provider, tool_names))
        elif role == "tool":
            role_parts = ("user", [_function_response_part(message, where, provider, tool_names)])
        else:
            raise _invalid(f"{where}: role {role!r} is not supported for Gemini", provider)
        gemini_role, parts = role_parts
        if not parts:
            continue
        if turns and turns[-1][0] == gemini_role:
            turns[-1][1].extend(parts)
        else:
            turns.append((gemini_role, parts))
    if not turns:
        raise _invalid("Gemini needs at least one user or assistant message", provider)
    contents: list[types.ContentDict] = [{"role": role, "parts": parts} for role, parts in turns]
    return contents, "\n\n".join(system) if system else None


def _tools(tools: Sequence[Mapping[str, Any]], provider: str) -> list[types.Tool]:
    declarations = []
    for k, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or tool.get("type") != "function":
            raise _invalid(f"tools[{k}]: only function tools are supported for Gemini", provider)
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise _invalid(f"tools[{k}].function.name is missing", provider)
        declarations.append(
            types.FunctionDeclaration(
                name=name,
                description=function.get("description"),
                parameters_json_schema=function.get("parameters"),
            )
        )
    return [types.Tool(function_declarations=declarations)]


def _tool_config(choice: str | Mapping[str, Any], provider: str) -> types.ToolConfig:
    allowed: list[str] | None = None
    if isinstance(choice, str) and choice in _TOOL_CHOICE_MODES:
        mode = _TOOL_CHOICE_MODES[choice]
    elif isinstance(choice, Mapping) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(name, str) or not name:
            raise _invalid("tool_choice.function.name is missing", provider)
        mode, allowed = types.FunctionCallingConfigMode.ANY, [name]
    else:
        raise _invalid(
            f"tool_choice {choice!r} is not supported for Gemini "
            "(use auto, none, required or a function)",
            provider,
        )
    return types.ToolConfig(
        function_calling_config=types.FunctionCallingConfig(
            mode=mode, allowed_function_names=allowed
        )
    )


def _response_format(response_format: Mapping[str, Any], provider: str) -> tuple[str | None, Any]:
    """(response_mime_type, response_json_schema) for an OpenAI ``response_format``."""
    kind = response_format.get("type")
    if kind == "text":
        return None, None
    if kind == "json_object":
        return "application/json", None
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        return "application/json", schema
    raise _invalid(f"response_format type {kind!r} is not supported", provider)


def _millis(seconds: float) -> int:
    """HttpOptions.timeout is whole milliseconds, and 0 would mean no timeout at all."""
    return max(1, math.ceil(seconds * 1000))


@functools.lru_cache(maxsize=256)
def _plain_config(
    system: str | None,
    max_tokens: int | None,
    temperature: float | None,
    top_p: float | None,
    stop: tuple[str, ...] | None,
    raw_body: bool = False,
) -> types.GenerateContentConfig:
    """The config of a request with no tools, output format, timeout or extra body: made
    once per distinct set of values (validating it cost ~30 µs a call). The SDK never changes
    a config it is given (it works on a copy), so one instance serves every such call."""
    return types.GenerateContentConfig(
        system_instruction=system,
        max_output_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        stop_sequences=list(stop) if stop else None,
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        automatic_continuation=False,
        should_return_http_response=raw_body or None,
    )


def build_request(
    request: ChatRequest, *, provider: str, raw_body: bool = False
) -> tuple[list[types.ContentDict] | types.ContentDict, types.GenerateContentConfig]:
    """The ``contents`` and ``config`` of ``generate_content`` for an OpenAI-shaped request.

    One turn goes as that turn alone, not a one-item list: the SDK sends the same request,
    but tries each dict of a list as a Part and then a FileData before taking it as a
    Content (two failed validations per turn, ~50 µs).
    """
    turns, system = _contents(request.messages, provider)
    contents = turns[0] if len(turns) == 1 else turns
    mime_type, json_schema = (
        _response_format(request.response_format, provider)
        if request.response_format
        else (None, None)
    )
    tools = tool_config = None
    if request.tools:
        tools = _tools(request.tools, provider)
        if request.tool_choice is not None:
            tool_config = _tool_config(request.tool_choice, provider)
    http_options = None
    if request.timeout is not None or request.extra_body:
        http_options = types.HttpOptions(
            timeout=_millis(request.timeout) if request.timeout is not None else None,
            extra_body=dict(request.extra_body) if request.extra_body else None,
        )
    stop = tuple(request.stop) if request.stop else None
    try:
        if tools is None and mime_type is None and json_schema is None and http_options is None:
            config = _plain_config(
                system, request.max_tokens, request.temperature, request.top_p, stop, raw_body
            )
        else:
            # The config stays a model: validated here, a bad value (temperature="hot") is an
            # InvalidRequest before any call, and the SDK uses a config instance as it is (a
            # dict it would validate again in several places; nested dicts for tools measured
            # slower too).
            config = types.GenerateContentConfig(
                system_instruction=system,
                max_output_tokens=request.max_tokens,
                temperature=request.temperature,
                top_p=request.top_p,
                stop_sequences=list(stop) if stop else None,
                response_mime_type=mime_type,
                response_json_schema=json_schema,
                tools=tools,
                tool_config=tool_config,
                automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
                automatic_continuation=False,
                http_options=http_options,
                should_return_http_response=raw_body or None,
            )
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise _invalid(f"{where}: {first['msg']}", provider) from None
    return contents, config


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


def _finish_reason(reason: Any, *, has_tool_calls: bool, blocked: bool) -> FinishReason:
    if blocked:
        return "content_filter"
    if has_tool_calls:
        return "tool_calls"
    if reason is None:
        return "stop"
    # FinishReason is a str enum, so it looks up like its value.
    return _FINISH_REASONS.get(reason, "stop")


def _call_fields(part: types.Part, index: int) -> tuple[str, str, str, dict[str, Any]]:
    """(id, name, arguments JSON, extra fields) of the OpenAI tool call for a functionCall part."""
    call = part.function_call
    assert call is not None
    arguments = json.dumps(call.args or {}, separators=(",", ":"), ensure_ascii=False)
    extra: dict[str, Any] = {}
    if part.thought_signature:
        signature = base64.b64encode(part.thought_signature).decode("ascii")
        extra["extra_content"] = {"google": {"thought_signature": signature}}
    return call.id or f"call_{index}", call.name or "", arguments, extra


def _new_response_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


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
            extra: dict[str, Any] = {}
            if part.get("thoughtSignature"):  # base64 on the wire, as the OpenAI shape wants it
                extra["extra_content"] = {"google": {"thought_signature": part["thoughtSignature"]}}
            arguments = json.dumps(
                call.get("args") or {}, separators=(",", ":"), ensure_ascii=False
            )
            tool_calls.append(
                ChatCompletionMessageFunctionToolCall(
                    id=call.get("id") or f"call_{len(tool_calls)}",
                    type="function",
                    function=Function(name=call.get("name") or "", arguments=arguments),
                    **extra,
                )
            )
        elif part.get("text") is not None and not part.get("thought"):
            texts.append(part["text"])
    feedback = body.get("promptFeedback") or {}
    finish = _finish_reason(
        candidate.get("finishReason") if candidate is not None else None,
        has_tool_calls=bool(tool_calls),
        blocked=feedback.get("blockReason") is not None,
    )
    data = completion_data(
        response_id=body.get("responseId") or _new_response_id(),
        model=body.get("modelVersion") or model,
        content="".join(texts) if texts or not tool_calls else None,
        finish_reason=finish,
        usage=usage,
        tool_calls=tool_calls or None,
    )
    return ProviderResponse.from_data(data, usage)


def _body_of(response: types.GenerateContentResponse, provider: str, model: str) -> dict[str, Any]:
    """The JSON body the SDK handed back unparsed (``should_return_http_response``)."""
    raw = response.sdk_http_response
    return completion_body(raw.body if raw is not None else None, provider=provider, model=model)


class _StreamTranslator:
    """Turns Gemini stream events into OpenAI chunks; one per stream."""

    __slots__ = ("blocked", "created", "finish", "model", "response_id", "tool_calls", "usage_meta")

    def __init__(self, first: types.GenerateContentResponse | None, model: str) -> None:
        self.response_id = (first.response_id if first else None) or _new_response_id()
        self.model = (first.model_version if first else None) or model
        self.created = int(time.time())
        self.tool_calls = 0
        self.finish: Any = None
        self.blocked = False
        self.usage_meta: types.GenerateContentResponseUsageMetadata | None = None

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

    def feed(self, event: types.GenerateContentResponse) -> list[ChatCompletionChunk]:
        """The content chunks of one event (text, whole tool calls); records finish and usage."""
        if event.usage_metadata is not None:
            self.usage_meta = event.usage_metadata
        if event.prompt_feedback is not None and event.prompt_feedback.block_reason is not None:
            self.blocked = True
        if not event.candidates:
            return []
        candidate = event.candidates[0]
        if candidate.finish_reason is not None:
            self.finish = candidate.finish_reason
        parts = candidate.content.parts if candidate.content is not None else None
        if not parts:
            return []
        chunks: list[ChatCompletionChunk] = []
        text = ""
        for part in parts:
            if part.function_call is not None:
                if text:
                    chunks.append(self._chunk(ChoiceDelta(content=text)))
                    text = ""
                call_id, name, arguments, extra = _call_fields(part, self.tool_calls)
                delta_call = ChoiceDeltaToolCall(
                    index=self.tool_calls,
                    id=call_id,
                    type="function",
                    function=ChoiceDeltaToolCallFunction(name=name, arguments=arguments),
                    **extra,
                )
                self.tool_calls += 1
                chunks.append(self._chunk(ChoiceDelta(tool_calls=[delta_call])))
            elif part.text and not part.thought:
                text += part.text
        if text:
            chunks.append(self._chunk(ChoiceDelta(content=text)))
        return chunks

    def closing(self) -> ChatCompletionChunk:
        finish = _finish_reason(
            self.finish, has_tool_calls=self.tool_calls > 0, blocked=self.blocked
        )
        return self._chunk(ChoiceDelta(), finish)

    def final_usage(self) -> TokenUsage:
        meta = self.usage_meta
        return _usage(meta.model_dump(by_alias=True, exclude_none=True) if meta else {})

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

    def __repr__(self) -> str:
        return f"GeminiAdapter(name={self.name!r})"

    # -- clients --------------------------------------------------------------------------------

    def _new_client(self) -> genai.Client:
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

        options = types.HttpOptions(
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
                "event_hooks": {
                    "request": [acap_connect_timeout],
                    "response": [_ahand_over_response],
                }
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
                    self._aclient = self._new_client()
                client = self._aclient
        return client

    # -- calls ----------------------------------------------------------------------------------

    def complete(self, model: str, request: ChatRequest) -> ProviderResponse:
        contents, config = build_request(request, provider=self.name, raw_body=True)
        client = self._sync_client()
        with _mapped_errors(self.name, model):
            response = client.models.generate_content(
                model=model,
                contents=contents,
                config=config,
            )
        return to_response(_body_of(response, self.name, model), model)

    async def acomplete(self, model: str, request: ChatRequest) -> ProviderResponse:
        contents, config = build_request(request, provider=self.name, raw_body=True)
        client = self._async_client()
        with _mapped_errors(self.name, model):
            response = await client.aio.models.generate_content(
                model=model, contents=contents, config=config
            )
        return to_response(_body_of(response, self.name, model), model)

    def stream(self, model: str, request: ChatRequest) -> ChunkStream:
        contents, config = build_request(request, provider=self.name)
        client = self._sync_client()
        http_responses: list[Any] = []
        token = _OPENING_STREAM.set(http_responses)
        try:
            with _mapped_errors(self.name, model):
                native = client.models.generate_content_stream(
                    model=model,
                    contents=contents,
                    config=config,
                )
                # The request is sent on the first next(): an HTTP error raises here.
                first = next(native, None)
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
                for chunk in translator.feed(event):
                    stream.content_chunks += 1
                    yield chunk
                try:
                    event = next(native, None)
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
        contents, config = build_request(request, provider=self.name)
        client = self._async_client()
        http_responses: list[Any] = []
        token = _OPENING_STREAM.set(http_responses)
        try:
            with _mapped_errors(self.name, model):
                native = await client.aio.models.generate_content_stream(
                    model=model, contents=contents, config=config
                )
                first = await anext(native, None)
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
                for chunk in translator.feed(event):
                    stream.content_chunks += 1
                    yield chunk
                try:
                    event = await anext(native, None)
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

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        with self._lock:
            client, self._aclient = self._aclient, None
        if client is not None:
            await client.aio.aclose()
