"""Anthropic request translation: an OpenAI-shaped ChatRequest -> ``messages.create`` keywords.

No I/O and no SDK call: :func:`build_params` returns the keyword arguments, or raises
:class:`~gateway.errors.InvalidRequest` naming what Anthropic cannot express.

- ``system`` / ``developer`` messages, wherever they stand in the conversation, are joined in
  order (blank line between them) into the top-level ``system`` string.
- Consecutive turns of the same role are merged into one turn, since Anthropic requires user
  and assistant turns to alternate; OpenAI ``tool`` messages become ``tool_result`` blocks of a
  user turn, so several tool results in a row form ONE user turn.
- Assistant ``tool_calls`` become ``tool_use`` blocks (the JSON string arguments parsed into
  ``input``); empty assistant text is left out (Anthropic rejects empty text blocks).
- Images: a ``data:`` URL becomes a base64 image source, an http(s) URL a url source. The
  OpenAI ``detail`` hint has no equivalent and is dropped. Other part types (audio, files)
  are refused with :class:`~gateway.errors.InvalidRequest`.
- ``max_tokens`` is required by Anthropic: :data:`DEFAULT_MAX_TOKENS` when the caller gave none.
- ``temperature`` / ``top_p`` are not parameters of ``messages.create`` since anthropic 1.0
  (TypeError); they travel in ``extra_body``. Anthropic's temperature range is 0-1 where
  OpenAI's is 0-2, so a larger value is clamped to 1.0: a call written for OpenAI that falls
  back to Claude must not turn into a non-retryable invalid request. For the same reason
  only one of the two is sent (current Claude models refuse both): temperature when the
  caller gave both; a ``temperature`` or ``top_p`` in ``extra_body`` replaces both.
- ``stop`` -> ``stop_sequences``, without whitespace-only ones (``"\\n"``), which Anthropic
  refuses (400): they are dropped, so the answer may run past a line break.
- ``tools`` -> ``{name, description, input_schema, strict}``; ``tool_choice``
  auto/none/required/function -> auto/none/any/tool (``tool_choice`` without ``tools`` is
  not sent: there is nothing to choose from, and Anthropic refuses it).
- ``response_format`` json_schema -> ``output_config.format`` with the schema as the anthropic
  SDK's own ``transform_schema`` rewrites it (``additionalProperties: false`` on every object,
  constraints Claude cannot enforce, such as ``minimum``, moved into the description); ``name``
  and ``strict`` have no equivalent: Anthropic's JSON output is always constrained.
  json_object is refused (InvalidRequest, before any call): Claude's structured output needs
  the object's properties, and an object schema without them allows only ``{}``.
- ``user`` (else ``safety_identifier``) -> ``metadata.user_id``, the only metadata field
  Anthropic has; ``metadata`` (free key/value pairs in OpenAI) has no equivalent and is
  dropped, like OpenAI's other request labels (``store``, ``prompt_cache_key``, ...).
- ``parallel_tool_calls=False`` -> ``tool_choice.disable_parallel_tool_use`` (with tools).
- ``reasoning_effort`` -> ``thinking`` with the budget of :data:`THINKING_BUDGETS` (``none``:
  no thinking), inside ``max_tokens`` (see :func:`_thinking`); with thinking on, neither
  ``temperature`` nor ``top_p`` is sent.
- ``extra_headers`` / ``extra_query`` -> the SDK's own. ``seed``, ``frequency_penalty``,
  ``presence_penalty``, ``logprobs`` and OpenAI-only arguments (``logit_bias``, ``audio``,
  ...) have no equivalent: InvalidRequest naming them, before any call.
- ``extra_body`` is merged into the body last (it wins); a dict given for ``output_config`` or
  ``metadata`` is merged into the translated one instead of replacing it. Anthropic-only
  features go there, e.g. ``{"cache_control": {"type": "ephemeral"}}`` for prompt caching
  (OpenAI's shape has no cache markers), ``thinking`` or ``top_k``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from anthropic import transform_schema

from gateway.errors import InvalidRequest
from gateway.providers._common import parse_data_url, refuse_untranslatable
from gateway.providers.base import ChatRequest

__all__ = ["DEFAULT_MAX_TOKENS", "THINKING_BUDGETS", "build_params"]

#: Output budget sent when the caller gives no ``max_tokens`` (Anthropic requires one).
DEFAULT_MAX_TOKENS = 4096
#: Anthropic accepts temperatures up to 1.0 (OpenAI up to 2.0).
_MAX_TEMPERATURE = 1.0
#: Thinking budget (``budget_tokens``) for each OpenAI ``reasoning_effort`` but ``none``.
THINKING_BUDGETS: Mapping[str, int] = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 24576,
    "max": 32000,
}
#: Claude's smallest thinking budget.
_MIN_THINKING_BUDGET = 1024

_TOOL_CHOICES: Mapping[str, dict[str, str]] = {
    "auto": {"type": "auto"},
    "none": {"type": "none"},
    "required": {"type": "any"},
}


class _Untranslatable(ValueError):
    """Part of a request has no Anthropic equivalent; becomes InvalidRequest in build_params."""


def _text_of(content: Any, index: int, role: str) -> str:
    """Text of a system/developer message (a string or a list of text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise _Untranslatable(
                    f"messages[{index}].content[{j}]: a {role} message may hold only text parts"
                )
            texts.append(str(part.get("text", "")))
        return "\n".join(texts)
    if content is None:
        return ""
    raise _Untranslatable(f"messages[{index}].content must be a string or a list of parts")


def _image_block(part: dict[str, Any], where: str) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise _Untranslatable(f"{where}: image_url needs a url")
    if url.startswith("data:"):
        try:
            media_type, data = parse_data_url(url, provider="anthropic")
        except InvalidRequest:
            raise _Untranslatable(
                f"{where}: image data URLs must look like data:image/png;base64,<data>"
            ) from None
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise _Untranslatable(f"{where}: image URLs must be https:// or data: URLs")


def _content_blocks(content: Any, index: int, *, images: bool) -> list[dict[str, Any]]:
    """User/assistant/tool content as Anthropic blocks; empty text is left out."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise _Untranslatable(f"messages[{index}].content must be a string or a list of parts")
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        where = f"messages[{index}].content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" or kind == "refusal":
            text = part.get(kind) if kind == "refusal" else part.get("text")
            if not isinstance(text, str):
                raise _Untranslatable(f"{where}: a {kind} part needs a string")
            if text:
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url" and images:
            blocks.append(_image_block(part, where))
        else:
            raise _Untranslatable(
                f"{where}: content part type {kind!r} is not supported by Anthropic here"
            )
    return blocks


def _tool_use_blocks(tool_calls: Any, index: int) -> list[dict[str, Any]]:
    if not isinstance(tool_calls, list):
        raise _Untranslatable(f"messages[{index}].tool_calls must be a list")
    blocks = []
    for j, call in enumerate(tool_calls):
        where = f"messages[{index}].tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not function.get("name") or not call.get("id"):
            raise _Untranslatable(f"{where} needs an id and function.name")
        arguments = function.get("arguments") or "{}"
        try:
            parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
        except json.JSONDecodeError:
            raise _Untranslatable(f"{where}.function.arguments is not valid JSON") from None
        if not isinstance(parsed, dict):
            raise _Untranslatable(f"{where}.function.arguments must be a JSON object")
        blocks.append(
            {"type": "tool_use", "id": call["id"], "name": function["name"], "input": parsed}
        )
    return blocks


def _tool_result_block(message: dict[str, Any], index: int) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _Untranslatable(f"messages[{index}]: a tool message needs a tool_call_id")
    content = message.get("content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    if isinstance(content, str):
        if content:
            block["content"] = content
    elif content is not None:
        parts = _content_blocks(content, index, images=True)
        if parts:
            block["content"] = parts
    return block


def _translate_messages(
    messages: list[dict[str, Any]],
) -> tuple[str | None, list[dict[str, Any]]]:
    """(system prompt, alternating turns) from OpenAI chat messages."""
    system_parts: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _Untranslatable(f"messages[{i}] must be an object")
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            text = _text_of(content, i, role)
            if text:
                system_parts.append(text)
            continue
        if role == "user":
            native_role, blocks = "user", _content_blocks(content, i, images=True)
            if not blocks and isinstance(content, str):
                blocks = [{"type": "text", "text": content}]  # let the API judge an empty turn
        elif role == "assistant":
            native_role, blocks = "assistant", _content_blocks(content, i, images=False)
            if message.get("tool_calls"):
                blocks.extend(_tool_use_blocks(message["tool_calls"], i))
            elif message.get("function_call"):
                raise _Untranslatable(
                    f"messages[{i}]: function_call is deprecated; send tool_calls"
                )
        elif role == "tool":
            native_role, blocks = "user", [_tool_result_block(message, i)]
        else:
            raise _Untranslatable(f"messages[{i}]: role {role!r} is not supported by Anthropic")
        if turns and turns[-1]["role"] == native_role:
            turns[-1]["content"].extend(blocks)
        elif blocks:
            turns.append({"role": native_role, "content": blocks})
    for turn in turns:
        # A lone text block goes as a plain string, the API's shorthand.
        blocks = turn["content"]
        if len(blocks) == 1 and blocks[0]["type"] == "text":
            turn["content"] = blocks[0]["text"]
    system = "\n\n".join(system_parts) if system_parts else None
    return system, turns


def _translate_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    native = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise _Untranslatable(f"tools[{i}]: only function tools are supported")
        function = tool.get("function")
        if not isinstance(function, dict):
            raise _Untranslatable(f"tools[{i}]: only function tools are supported")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise _Untranslatable(f"tools[{i}].function needs a name")
        entry: dict[str, Any] = {
            "name": name,
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            entry["description"] = function["description"]
        if function.get("strict") is not None:
            entry["strict"] = bool(function["strict"])
        native.append(entry)
    return native


def _translate_tool_choice(choice: str | dict[str, Any]) -> dict[str, str]:
    if isinstance(choice, str):
        if choice in _TOOL_CHOICES:
            return dict(_TOOL_CHOICES[choice])
    elif choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str) and name:
            return {"type": "tool", "name": name}
    raise _Untranslatable(
        f"tool_choice {choice!r} is not supported; use auto, none, required or a function"
    )


def _translate_response_format(response_format: dict[str, Any]) -> dict[str, Any] | None:
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        raise _Untranslatable(
            "response_format json_object has no Anthropic equivalent: Claude's JSON output "
            "follows a schema that lists the object's properties. Give response_format="
            "{'type': 'json_schema', 'json_schema': {'name': ..., 'schema': {...}}} instead "
            "(every provider supports it)"
        )
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise _Untranslatable("response_format.json_schema.schema must be a JSON schema object")
        try:
            native = transform_schema(schema)
        except (ValueError, TypeError, AttributeError) as exc:
            raise _Untranslatable(
                f"response_format.json_schema.schema cannot be used by Anthropic: {exc}"
            ) from None
        return {"format": {"type": "json_schema", "schema": native}}
    raise _Untranslatable(f"response_format type {kind!r} is not supported")


def _sampling(
    request: ChatRequest, extra_body: Mapping[str, Any], *, thinking: bool
) -> dict[str, Any]:
    """``temperature`` or ``top_p``, never both: current Claude models refuse the pair (400).

    When the caller gave both, temperature is sent and top_p dropped. Sampling given natively
    in ``extra_body`` replaces the translated one, so the pair cannot form there either. With
    thinking on, neither is sent: Claude refuses a temperature (and most top_p values) then.
    """
    if thinking or "temperature" in extra_body or "top_p" in extra_body:
        return {}
    if request.temperature is not None:
        return {"temperature": min(request.temperature, _MAX_TEMPERATURE)}
    if request.top_p is not None:
        return {"top_p": request.top_p}
    return {}


def _continues_tool_use(messages: list[dict[str, Any]]) -> bool:
    """Whether the last assistant message called tools: the call continues that turn."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "assistant":
            return bool(message.get("tool_calls"))
    return False


def _thinking(
    request: ChatRequest, extra_body: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, int]:
    """(``thinking``, ``max_tokens``) for the request's ``reasoning_effort``.

    The budget is :data:`THINKING_BUDGETS` of the effort. Thinking counts inside Anthropic's
    ``max_tokens`` as reasoning does inside OpenAI's ``max_completion_tokens``: under a
    caller's max_tokens the budget is at most half of it (never under Claude's minimum of
    1,024); without one, max_tokens is the default plus the budget. Thinking is left out when
    Claude cannot take it: a tool choice that forces a tool, or a call that continues a turn
    in which Claude called tools (Claude then wants its own thinking blocks back, which the
    OpenAI shape does not carry).
    """
    max_tokens = request.max_tokens
    effort = request.reasoning_effort
    forced_tool = request.tools and request.tool_choice not in (None, "auto", "none")
    if (
        effort is None
        or effort == "none"
        or "thinking" in extra_body
        or forced_tool
        or _continues_tool_use(request.messages)
    ):
        return None, DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
    budget = THINKING_BUDGETS[effort]
    if max_tokens is None:
        return {"type": "enabled", "budget_tokens": budget}, DEFAULT_MAX_TOKENS + budget
    budget = max(_MIN_THINKING_BUDGET, min(budget, max_tokens // 2))
    if budget >= max_tokens:
        raise _Untranslatable(
            f"reasoning_effort needs max_tokens above {_MIN_THINKING_BUDGET} on Anthropic, "
            f"got {max_tokens}: Claude thinks in at least {_MIN_THINKING_BUDGET} tokens, "
            "and they count inside max_tokens"
        )
    return {"type": "enabled", "budget_tokens": budget}, max_tokens


#: OpenAI arguments Anthropic has no equivalent for (ChatRequest fields).
_UNTRANSLATABLE = ("seed", "frequency_penalty", "presence_penalty", "logprobs", "top_logprobs")


def build_params(
    model: str, request: ChatRequest, *, provider: str = "anthropic"
) -> dict[str, Any]:
    """Keyword arguments of ``messages.create`` for a request (no I/O, no ``stream``).

    Raises InvalidRequest, naming the message / part / argument, for what Anthropic cannot
    express.
    """
    refuse_untranslatable(
        request, _UNTRANSLATABLE, target="Anthropic", provider=provider, model=model
    )
    try:
        return _build_params(model, request)
    except _Untranslatable as exc:
        raise InvalidRequest(str(exc), provider=provider, model=model) from None


def _build_params(model: str, request: ChatRequest) -> dict[str, Any]:
    system, turns = _translate_messages(request.messages)
    extra_body = request.extra_body or {}
    thinking, max_tokens = _thinking(request, extra_body)
    params: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": turns}
    if thinking is not None:
        params["thinking"] = thinking
    if system is not None:
        params["system"] = system
    if request.stop:
        # Anthropic refuses a stop sequence that is only whitespace (400): such stops are
        # dropped rather than failing a call that OpenAI or Gemini would serve.
        stops = [stop for stop in request.stop if not stop.isspace()]
        if stops:
            params["stop_sequences"] = stops
    if request.tools:
        params["tools"] = _translate_tools(request.tools)
        # Without tools there is nothing to choose from (Anthropic refuses a tool_choice).
        choice: dict[str, Any] | None = (
            _translate_tool_choice(request.tool_choice) if request.tool_choice is not None else None
        )
        if request.parallel_tool_calls is False and (choice is None or choice["type"] != "none"):
            choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
        if choice is not None:
            params["tool_choice"] = choice
    if request.response_format:
        output_config = _translate_response_format(request.response_format)
        if output_config is not None:
            params["output_config"] = output_config
    user = request.user or (request.openai_only or {}).get("safety_identifier")
    if user:
        params["metadata"] = {"user_id": user}
    if request.extra_headers:
        params["extra_headers"] = request.extra_headers
    if request.extra_query:
        params["extra_query"] = request.extra_query
    extra = _sampling(request, extra_body, thinking=thinking is not None)
    for key, value in extra_body.items():
        current = params.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            params[key] = {**current, **value}
        else:
            extra[key] = value
    if extra:
        params["extra_body"] = extra
    return params
