"""Helpers every adapter shares: OpenAI result types, Retry-After, data URLs.

Imported only by adapter modules, which are imported only when a provider is first used, so
the OpenAI types imported here never load on ``import gateway``.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

from openai.types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessageFunctionToolCall,
)
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import ChoiceDelta, ChoiceLogprobs
from openai.types.chat.chat_completion_message_function_tool_call import Function
from openai.types.completion_usage import (
    CompletionUsage,
)

from gateway.errors import InvalidRequest, ProviderUnavailable, UnsupportedArgument
from gateway.providers.base import OPENAI_LABELS, ChatRequest, TokenUsage

__all__ = [
    "DROPPABLE_HINTS",
    "FinishReason",
    "completion_body",
    "completion_data",
    "completion_usage",
    "make_chunk",
    "make_completion",
    "make_tool_call",
    "parse_data_url",
    "refuse_untranslatable",
    "retry_after_seconds",
    "usage_chunk",
]

#: The models' own validators (what their constructors run), called on nested data at once.
_validate_usage: Callable[[Any], CompletionUsage] = (
    CompletionUsage.__pydantic_validator__.validate_python
)
_validate_completion: Callable[[Any], ChatCompletion] = (
    ChatCompletion.__pydantic_validator__.validate_python
)

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


def completion_body(raw: str | bytes | None, *, provider: str, model: str) -> dict[str, Any]:
    """A non-streamed response's body as the JSON object it must be. Adapters read the body
    themselves (not through the SDK's model of it), so a body that is not JSON, or not an
    object, is a ProviderUnavailable here, and the call falls back like on any failure."""
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ProviderUnavailable(
            "response body was not a JSON object", provider=provider, model=model
        ) from None
    return body


#: Longest Retry-After we take literally; anything longer is clamped (the router caps again).
_MAX_RETRY_AFTER_S = 3600.0


def retry_after_seconds(
    headers: Mapping[str, str] | None, *, now: float | None = None
) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            value = float(millis) / 1000.0
            if value >= 0:
                return min(value, _MAX_RETRY_AFTER_S)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        value = float(raw)
        return min(value, _MAX_RETRY_AFTER_S) if value >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return min(max(0.0, when.timestamp() - current), _MAX_RETRY_AFTER_S)


def _usage_fields(usage: TokenUsage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {
            "cached_tokens": usage.cached_input_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def completion_usage(usage: TokenUsage) -> CompletionUsage:
    """Our normalised usage as the OpenAI usage type (cached and reasoning in the details)."""
    return _validate_usage(_usage_fields(usage))


def make_tool_call(
    call_id: str, name: str, arguments: str | Mapping[str, Any]
) -> ChatCompletionMessageFunctionToolCall:
    """An OpenAI tool call; ``arguments`` given as a dict is serialised to a JSON string."""
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, separators=(",", ":"), ensure_ascii=False)
    return ChatCompletionMessageFunctionToolCall(
        id=call_id, type="function", function=Function(name=name, arguments=arguments)
    )


def completion_data(
    *,
    response_id: str,
    model: str,
    content: str | None,
    finish_reason: FinishReason,
    usage: TokenUsage,
    tool_calls: list[ChatCompletionMessageFunctionToolCall] | None = None,
    refusal: str | None = None,
    created: int | None = None,
    logprobs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The fields of a one-choice ChatCompletion, nested models as dicts (its
    ``model_validate`` input): what :meth:`ProviderResponse.from_data` takes."""
    message = {
        "role": "assistant",
        "content": content,
        "refusal": refusal,
        "tool_calls": tool_calls or None,
    }
    return {
        "id": response_id,
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": logprobs}
        ],
        "usage": _usage_fields(usage),
    }


def make_completion(
    *,
    response_id: str,
    model: str,
    content: str | None,
    finish_reason: FinishReason,
    usage: TokenUsage,
    tool_calls: list[ChatCompletionMessageFunctionToolCall] | None = None,
    refusal: str | None = None,
    created: int | None = None,
) -> ChatCompletion:
    """One-choice ChatCompletion in OpenAI's exact shape."""
    # One validation of the nested data: the same objects as building each model with its
    # constructor (same validator), at about 2/3 of the cost of seven separate validations.
    return _validate_completion(
        completion_data(
            response_id=response_id,
            model=model,
            content=content,
            finish_reason=finish_reason,
            usage=usage,
            tool_calls=tool_calls,
            refusal=refusal,
            created=created,
        )
    )


def make_chunk(
    *,
    response_id: str,
    model: str,
    created: int,
    delta: ChoiceDelta,
    finish_reason: FinishReason | None = None,
    logprobs: ChoiceLogprobs | None = None,
) -> ChatCompletionChunk:
    """One streamed chunk with one choice."""
    return ChatCompletionChunk(
        id=response_id,
        object="chat.completion.chunk",
        created=created,
        model=model,
        choices=[ChunkChoice(index=0, delta=delta, finish_reason=finish_reason, logprobs=logprobs)],
    )


def usage_chunk(
    *, response_id: str, model: str, created: int, usage: TokenUsage
) -> ChatCompletionChunk:
    """The last chunk of every stream: no choices, the whole call's usage."""
    return ChatCompletionChunk(
        id=response_id,
        object="chat.completion.chunk",
        created=created,
        model=model,
        choices=[],
        usage=completion_usage(usage),
    )


def parse_data_url(url: str, *, provider: str) -> tuple[str, str]:
    """Split ``data:<mime>;base64,<data>`` into (mime type, base64 data)."""
    header, sep, data = url.partition(",")
    if not sep or not header.startswith("data:") or not header.endswith(";base64"):
        raise InvalidRequest(
            "image data URLs must look like data:image/png;base64,<data>", provider=provider
        )
    return header[len("data:") : -len(";base64")] or "application/octet-stream", data


def guess_image_mime(url: str) -> str:
    """MIME type of an image URL from its extension (jpeg when unknown)."""
    path = url.split("?", 1)[0].lower()
    for ext, mime in (
        (".png", "image/png"),
        (".gif", "image/gif"),
        (".webp", "image/webp"),
        (".heic", "image/heic"),
        (".heif", "image/heif"),
    ):
        if path.endswith(ext):
            return mime
    return "image/jpeg"


#: Each ChatRequest field's value when the caller did not give it.
_UNSET: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(ChatRequest)}

#: OpenAI arguments that only hint at how to produce the answer, not at what it means:
#: best-effort determinism (``seed``), repetition penalties, OpenAI's latency and pricing tier
#: (``service_tier``), a length hint (``verbosity``) and predicted output (``prediction``, a
#: speed-up). A target without an equivalent leaves them out when ``ChatRequest.drop_hints``
#: (the config's ``untranslatable_hints: drop``, the default), and refuses them otherwise.
#: Every other argument without an equivalent is always refused: leaving it out would change
#: the answer or its shape (``logit_bias``, ``logprobs``, ``modalities``, ``functions``...).
DROPPABLE_HINTS = frozenset(
    {"seed", "frequency_penalty", "presence_penalty", "service_tier", "verbosity", "prediction"}
)

logger = logging.getLogger("gateway.providers")


def refuse_untranslatable(
    request: ChatRequest,
    arguments: tuple[str, ...],
    *,
    target: str,
    provider: str,
    model: str | None,
) -> None:
    """Raise UnsupportedArgument, before any call, when the request carries an OpenAI argument
    the provider has no equivalent for: one of ``arguments`` (ChatRequest fields) that is set,
    or any ``openai_only`` argument that is not a mere label (:data:`OPENAI_LABELS`). With
    ``request.drop_hints``, the :data:`DROPPABLE_HINTS` among them are left out instead."""
    names = [name for name in arguments if getattr(request, name) != _UNSET[name]]
    names += [name for name in request.openai_only or () if name not in OPENAI_LABELS]
    if not names:
        return
    if request.drop_hints:
        dropped = [name for name in names if name in DROPPABLE_HINTS]
        if dropped:
            logger.debug("%s/%s: left out %s (no equivalent)", provider, model, ", ".join(dropped))
            names = [name for name in names if name not in DROPPABLE_HINTS]
            if not names:
                return
    listed = ", ".join(names)
    verb, them = ("has", "it") if len(names) == 1 else ("have", "them")
    raise UnsupportedArgument(
        f"{listed} {verb} no equivalent on {target}: leave {them} out for this target, or "
        f"route the call to a target that takes {them} (OpenAI takes every OpenAI argument)",
        provider=provider,
        model=model,
        arguments=names,
    )
