"""Gemini request translation: an OpenAI-shaped ChatRequest -> ``generate_content``'s
``contents`` and ``config``. No I/O.

- ``system`` / ``developer`` messages -> ``config.system_instruction`` (all of them, joined by a
  blank line, wherever they appear; the text parts of one message joined by a line break, as
  are those of a tool result); ``assistant`` -> role ``model``; consecutive turns of the
  same role are merged, since Gemini expects them to alternate.
- content parts: ``text``; ``image_url`` with a data URL -> ``inline_data`` (bytes), with an
  ``http(s)://`` or ``gs://`` URL -> ``file_data`` (MIME type guessed from the extension). Any
  other part type is an :class:`~gateway.errors.InvalidRequest` naming the message and part.
- assistant ``tool_calls`` -> ``functionCall`` parts (arguments parsed to an object). A
  ``role: "tool"`` result -> a ``functionResponse`` part in a user turn, named after the earlier
  assistant tool call with that id; its ``response`` must be an object, so anything else (a JSON
  list, a number, plain text) is wrapped as ``{"result": ...}``. Ids: a call that Gemini gave
  an id (kept in ``extra_content.google.function_call_id`` of the OpenAI tool call) gets it
  back on both its ``functionCall`` and its ``functionResponse``; other ids (generated for
  Gemini's calls without one, or another provider's) are not sent, and Gemini pairs those calls
  and results by order and name.
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
  id, and ``labels`` exist only on Vertex AI; so are OpenAI's other request labels (``store``,
  ``prompt_cache_key``, ``safety_identifier``, ...).
- ``seed``, ``frequency_penalty``, ``presence_penalty`` -> the same fields of the generation
  config; ``logprobs`` -> ``responseLogprobs``, ``top_logprobs`` -> ``logprobs`` (the answer's
  ``logprobsResult`` comes back as OpenAI's ``choices[0].logprobs``); ``reasoning_effort`` ->
  ``thinkingConfig.thinkingBudget`` (:data:`THINKING_BUDGETS`); ``extra_headers`` -> the
  request's headers. ``parallel_tool_calls=False`` (with tools), ``extra_query`` and the
  OpenAI-only arguments (``logit_bias``, ``audio``, ...) have no equivalent: InvalidRequest
  naming them, before any call.
- ``extra_body`` is merged (recursively, in wire names, e.g. ``generationConfig.topK``) into
  the request body via ``HttpOptions(extra_body=...)``.
- The SDK's automatic continuation (re-sending a request that ended with ``CONTINUATION``) is
  off: the gateway owns retries and deadlines. ``CONTINUATION`` therefore maps to ``length``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pydantic
from google.genai import types

from gateway.errors import InvalidRequest
from gateway.providers._common import guess_image_mime, parse_data_url, refuse_untranslatable
from gateway.providers.base import ChatRequest

__all__ = ["SKIP_SIGNATURE", "THINKING_BUDGETS", "build_request"]

#: Google's documented stand-in for a thought signature the caller no longer has.
SKIP_SIGNATURE = "skip_thought_signature_validator"
# The SDK writes bytes URL-safe base64 encoded, so these bytes reach the wire as the placeholder.
_SKIP_SIGNATURE_BYTES = base64.urlsafe_b64decode(SKIP_SIGNATURE)

#: ``thinkingConfig.thinkingBudget`` for each OpenAI ``reasoning_effort``; 0 turns thinking
#: off (models that always think, such as 2.5 Pro, refuse it), 24,576 is Flash's largest.
THINKING_BUDGETS: dict[str, int] = {
    "none": 0,
    "minimal": 512,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
    "xhigh": 24576,
    "max": 24576,
}

_TOOL_CHOICE_MODES = {
    "auto": types.FunctionCallingConfigMode.AUTO,
    "none": types.FunctionCallingConfigMode.NONE,
    "required": types.FunctionCallingConfigMode.ANY,
}


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
        return "\n".join(texts)  # separate parts: their words must not run together
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


#: What a tool call id of the conversation means to Gemini: the function's name, and the
#: ``functionCall.id`` Gemini gave the call (None when it gave none).
_CallNames = dict[str, tuple[str, str | None]]


def _google_extra(call: Mapping[str, Any], key: str) -> str | None:
    """A string an earlier Gemini response put in ``extra_content.google`` of this tool call."""
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, Mapping) else None
    value = google.get(key) if isinstance(google, Mapping) else None
    return value if isinstance(value, str) and value else None


def _signature_bytes(call: Mapping[str, Any]) -> bytes | None:
    """The thought signature an earlier Gemini response attached to this tool call."""
    signature = _google_extra(call, "thought_signature")
    return None if signature is None else _decode_signature(signature)


def _decode_signature(signature: str) -> bytes | None:
    # Accept both base64 alphabets; the SDK sends bytes back URL-safe encoded.
    padded = signature + "=" * (-len(signature) % 4)
    try:
        return base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
    except (binascii.Error, ValueError):
        return None


def _assistant_parts(
    message: Mapping[str, Any], where: str, provider: str, tool_names: _CallNames
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
        # Only an id Gemini itself gave goes back; other ids (generated for Gemini's calls
        # that had none, or another provider's) stay on our side of the translation.
        gemini_id = _google_extra(call, "function_call_id")
        function_call: types.FunctionCallDict = {"name": name, "args": args}
        if gemini_id is not None:
            function_call["id"] = gemini_id
        call_part: types.PartDict = {"function_call": function_call}
        if signature is not None:
            call_part["thought_signature"] = signature
        parts.append(call_part)
        call_id = call.get("id")
        if isinstance(call_id, str):
            tool_names[call_id] = (name, gemini_id)
    return parts


def _function_response_part(
    message: Mapping[str, Any], where: str, provider: str, tool_names: _CallNames
) -> types.PartDict:
    call_id = message.get("tool_call_id")
    name, gemini_id = (
        tool_names.get(call_id, (None, None)) if isinstance(call_id, str) else (None, None)
    )
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
    function_response: types.FunctionResponseDict = {"name": name, "response": response}
    if gemini_id is not None:
        function_response["id"] = gemini_id
    return {"function_response": function_response}


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
    tool_names: _CallNames = {}
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


#: OpenAI arguments Gemini has no equivalent for (ChatRequest fields); parallel_tool_calls
#: only matters with tools.
_UNTRANSLATABLE = ("extra_query",)
_UNTRANSLATABLE_WITH_TOOLS = ("extra_query", "parallel_tool_calls")


def _generation_extras(request: ChatRequest, provider: str, model: str | None) -> dict[str, Any]:
    """``GenerateContentConfig`` fields for the less common OpenAI arguments (none usually).

    Raises InvalidRequest, before any call, for an argument Gemini has no equivalent for.
    """
    refuse_untranslatable(
        request,
        _UNTRANSLATABLE_WITH_TOOLS if request.tools else _UNTRANSLATABLE,
        target="Gemini",
        provider=provider,
        model=model,
    )
    extras: dict[str, Any] = {}
    if request.seed is not None:
        extras["seed"] = request.seed
    if request.frequency_penalty is not None:
        extras["frequency_penalty"] = request.frequency_penalty
    if request.presence_penalty is not None:
        extras["presence_penalty"] = request.presence_penalty
    if request.logprobs:
        extras["response_logprobs"] = True
        if request.top_logprobs is not None:
            extras["logprobs"] = request.top_logprobs
    if request.reasoning_effort is not None:
        extras["thinking_config"] = types.ThinkingConfig(
            thinking_budget=THINKING_BUDGETS[request.reasoning_effort]
        )
    return extras


def build_request(
    request: ChatRequest, *, provider: str, model: str | None = None, raw_body: bool = False
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
    if request.timeout is not None or request.extra_body or request.extra_headers:
        http_options = types.HttpOptions(
            timeout=_millis(request.timeout) if request.timeout is not None else None,
            extra_body=dict(request.extra_body) if request.extra_body else None,
            headers=request.extra_headers,
        )
    stop = tuple(request.stop) if request.stop else None
    extras = _generation_extras(request, provider, model)
    try:
        if (
            tools is None
            and mime_type is None
            and json_schema is None
            and http_options is None
            and not extras
        ):
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
                **extras,
            )
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise _invalid(f"{where}: {first['msg']}", provider) from None
    return contents, config
