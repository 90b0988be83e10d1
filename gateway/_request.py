"""Turn the keyword arguments of ``chat.completions.create`` into a validated ChatRequest.

Checks here are the ones every provider shares; each adapter checks what only it cares about.
A bad argument is an :class:`~gateway.errors.InvalidRequest` that names the argument (and the
message index), raised before any provider is contacted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.errors import InvalidRequest
from gateway.providers.base import ChatRequest

__all__ = ["MAX_NESTING", "accepted_arguments", "build_request", "estimate_prompt_tokens"]

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_LOCAL = "gateway"
#: The deepest nesting of lists and dicts in a message, the tools, ``response_format``,
#: ``tool_choice`` or ``extra_body`` (a message with parts is 3; a tool's JSON schema rarely
#: passes 20). Deeper data would hit Python's recursion limit when it is measured or sent.
MAX_NESTING = 100


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(message, provider=_LOCAL)


def _number(name: str, value: Any, low: float, high: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or not low <= value <= high:
        raise _invalid(f"{name} must be between {low} and {high}, got {value}")
    return float(value)


def _timeout(value: Any) -> float | None:
    if not isinstance(value, int | float) and hasattr(value, "read"):
        # An httpx / httpx2 ``Timeout`` (what the SDKs take): its read timeout, the one the
        # SDKs apply while waiting for the answer; None there means no limit.
        value = value.read
        if value is None:
            return None
    seconds = _number("timeout", value, 0.0, 86400.0)
    if seconds is not None and seconds <= 0:
        raise _invalid(f"timeout must be more than 0 seconds, got {value}")
    return seconds


def _positive_int(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _invalid(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_nesting(value: Any, where: str) -> None:
    """Refuse ``value`` if lists and dicts nest in it deeper than :data:`MAX_NESTING` (one that
    contains itself does). Iterative, so depth itself cannot overflow the stack here."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_NESTING:
            raise _invalid(f"{where} is nested more than {MAX_NESTING} levels deep")
        children = item.values() if isinstance(item, Mapping) else item
        for child in children:
            if type(child) is not str and isinstance(child, Mapping | list | tuple):
                stack.append((child, depth + 1))


def _messages(messages: Any) -> list[dict[str, Any]]:
    # ``type(x) is ...`` first: the common case (plain lists, dicts, strings) skips the
    # slower ABC isinstance checks.
    if type(messages) is not list and (
        isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Iterable)
    ):
        raise _invalid("messages must be a list of {'role': ..., 'content': ...} dicts")
    checked = list(messages)
    if not checked:
        raise _invalid("messages must not be empty")
    all_dicts = True
    for i, message in enumerate(checked):
        if type(message) is not dict:
            if not isinstance(message, Mapping):
                raise _invalid(f"messages[{i}] must be a dict, got {type(message).__name__}")
            all_dicts = False
        role = message.get("role")
        if role not in _ROLES:
            raise _invalid(
                f"messages[{i}].role must be one of {', '.join(sorted(_ROLES))}, got {role!r}"
            )
        content = message.get("content")
        if (
            content is not None
            and type(content) is not str
            and not isinstance(content, str | list | tuple)
        ):
            raise _invalid(
                f"messages[{i}].content must be a string or a list of parts, "
                f"got {type(content).__name__}"
            )
        if role == "tool" and not message.get("tool_call_id"):
            raise _invalid(f"messages[{i}] has role 'tool' but no tool_call_id")
        if type(content) is not str or len(message) != 2:  # not the plain {role, content}
            _check_nesting(message, f"messages[{i}]")
    if all_dicts:
        return checked  # already a new list: the caller's list is never shared
    return [m if isinstance(m, dict) else dict(m) for m in checked]


#: Arguments of ``chat.completions.create`` that only OpenAI understands: sent to OpenAI as
#: given, dropped or refused by the other providers (see ``gateway.providers.base.OPENAI_LABELS``).
_OPENAI_ONLY = frozenset(
    {
        "audio",
        "function_call",
        "functions",
        "logit_bias",
        "modalities",
        "moderation",
        "prediction",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "safety_identifier",
        "service_tier",
        "store",
        "verbosity",
        "web_search_options",
    }
)
#: The less common arguments, read by ``_set_extras`` only when one is given.
_EXTRAS = _OPENAI_ONLY | {
    "extra_headers",
    "extra_query",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "logprobs",
    "top_logprobs",
    "parallel_tool_calls",
    "reasoning_effort",
}
#: Every argument ``build_request`` takes besides ``messages`` and ``stream``.
_ACCEPTED: frozenset[str] = _EXTRAS | {
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "tools",
    "tool_choice",
    "response_format",
    "stream_options",
    "n",
    "user",
    "metadata",
    "timeout",
    "extra_body",
}


def accepted_arguments() -> frozenset[str]:
    """Every argument ``build_request`` takes besides ``messages`` and ``stream``."""
    return _ACCEPTED


#: OpenAI's ``reasoning_effort`` values.
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
#: Type names of the OpenAI and Anthropic SDKs' "not given" sentinels (``NOT_GIVEN``, ``omit``).
_SENTINEL_TYPES = frozenset({"NotGiven", "Omit"})


def _is_sentinel(value: Any) -> bool:
    """An SDK's ``NOT_GIVEN`` / ``omit``, found by name so that no SDK is imported here."""
    kind = type(value)
    return kind.__name__ in _SENTINEL_TYPES and kind.__module__.startswith(("openai", "anthropic"))


def _given(arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments the caller really gave: None and the SDKs' sentinels mean "not given"."""
    for value in arguments.values():
        if value is None or _is_sentinel(value):
            return {k: v for k, v in arguments.items() if v is not None and not _is_sentinel(v)}
    return arguments


def _unknown(names: Iterable[str]) -> InvalidRequest:
    listed = ", ".join(repr(name) for name in sorted(names))
    return _invalid(
        f"unknown argument(s) {listed} for chat.completions.create; the gateway takes "
        "OpenAI's arguments plus account and tags"
    )


def build_request(*, messages: Any, stream: Any = False, **arguments: Any) -> ChatRequest:
    """Validate OpenAI-style arguments; see ``Completions.create`` for their meaning.

    An argument given as None, or as the OpenAI / Anthropic SDKs' ``NOT_GIVEN`` / ``omit``,
    counts as not given; an argument OpenAI's ``create`` does not take is an InvalidRequest.
    """
    if arguments:
        arguments = _given(arguments)
        if not arguments.keys() <= _ACCEPTED:
            raise _unknown(arguments.keys() - _ACCEPTED)
    if _is_sentinel(stream):
        stream = False
    get = arguments.get
    n = get("n")
    if n is not None and n != 1:
        raise _invalid(f"n={n!r} is not supported: the gateway returns exactly one choice")
    max_tokens = get("max_tokens")
    budget = _positive_int("max_tokens", max_tokens) if max_tokens is not None else None
    max_completion_tokens = get("max_completion_tokens")
    if max_completion_tokens is not None:
        completion_budget = _positive_int("max_completion_tokens", max_completion_tokens)
        if budget is not None and budget != completion_budget:
            raise _invalid(
                "give max_tokens or max_completion_tokens, not both with different values"
            )
        budget = completion_budget
    stop = get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else list(stop)
        if not all(isinstance(s, str) and s for s in stops):
            raise _invalid("stop must be a string or a list of non-empty strings")
        stop = stops or None
    tools = get("tools")
    if tools is not None:
        tools = list(tools)
        for i, tool in enumerate(tools):
            if not isinstance(tool, Mapping) or tool.get("type") != "function":
                raise _invalid(f"tools[{i}] must be {{'type': 'function', 'function': {{...}}}}")
            function = tool.get("function")
            if not isinstance(function, Mapping) or not function.get("name"):
                raise _invalid(f"tools[{i}].function must have a name")
    tool_choice = get("tool_choice")
    if tool_choice is not None and not (
        tool_choice in ("auto", "none", "required")
        or (isinstance(tool_choice, Mapping) and tool_choice.get("type") == "function")
    ):
        raise _invalid(
            "tool_choice must be 'auto', 'none', 'required' or "
            "{'type': 'function', 'function': {'name': ...}}"
        )
    response_format = get("response_format")
    if response_format is not None and (
        not isinstance(response_format, Mapping)
        or response_format.get("type") not in ("text", "json_object", "json_schema")
    ):
        raise _invalid("response_format.type must be 'text', 'json_object' or 'json_schema'")
    if response_format is not None and response_format.get("type") == "text":
        response_format = None
    if not isinstance(stream, bool):
        raise _invalid("stream must be True or False")
    include_usage = False
    stream_options = get("stream_options")
    if stream_options is not None:
        if not stream:
            raise _invalid("stream_options is only allowed with stream=True")
        include_usage = bool(stream_options and stream_options.get("include_usage"))
    metadata = get("metadata")
    if metadata is not None and (
        not isinstance(metadata, Mapping)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        raise _invalid("metadata must be a dict of strings to strings")
    user = get("user")
    if user is not None and not isinstance(user, str):
        raise _invalid("user must be a string")
    extra_body = get("extra_body")
    if extra_body is not None and not isinstance(extra_body, Mapping):
        raise _invalid("extra_body must be a dict")
    if tools is not None:
        _check_nesting(tools, "tools")
    if isinstance(tool_choice, Mapping):
        _check_nesting(tool_choice, "tool_choice")
    if response_format is not None:
        _check_nesting(response_format, "response_format")
    if extra_body is not None:
        _check_nesting(extra_body, "extra_body")
    # Only what the caller gave is set: a dataclass constructor with every keyword costs
    # ~2 µs, most of it for defaults.
    request = ChatRequest(_messages(messages), budget)
    temperature = get("temperature")
    if temperature is not None:
        request.temperature = _number("temperature", temperature, 0.0, 2.0)
    top_p = get("top_p")
    if top_p is not None:
        request.top_p = _number("top_p", top_p, 0.0, 1.0)
    request.stop = stop
    request.tools = tools
    if tool_choice is not None:
        request.tool_choice = dict(tool_choice) if isinstance(tool_choice, Mapping) else tool_choice
    if response_format is not None:
        request.response_format = dict(response_format)
    if stream:
        request.stream = True
        request.include_usage = include_usage
    if user is not None:
        request.user = user
    if metadata is not None:
        request.metadata = dict(metadata)
    timeout = get("timeout")
    if timeout is not None:
        request.timeout = _timeout(timeout)
    if extra_body is not None:
        request.extra_body = dict(extra_body)
    if not _EXTRAS.isdisjoint(arguments):
        _set_extras(request, arguments)
    return request


def _set_extras(request: ChatRequest, arguments: Mapping[str, Any]) -> None:
    """The less common OpenAI arguments: checked, and recorded unless they ask for OpenAI's
    default behaviour (a penalty of 0, ``logprobs=False``, ``parallel_tool_calls=True``),
    which every provider has without being told."""
    get = arguments.get
    seed = get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise _invalid(f"seed must be an integer, got {seed!r}")
        request.seed = seed
    for name in ("frequency_penalty", "presence_penalty"):
        penalty = _number(name, get(name), -2.0, 2.0)
        if penalty:
            setattr(request, name, penalty)
    logprobs = get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise _invalid(f"logprobs must be True or False, got {logprobs!r}")
    top_logprobs = get("top_logprobs")
    if top_logprobs is not None:
        if isinstance(top_logprobs, bool) or not isinstance(top_logprobs, int):
            raise _invalid(f"top_logprobs must be an integer from 0 to 20, got {top_logprobs!r}")
        if not 0 <= top_logprobs <= 20:
            raise _invalid(f"top_logprobs must be from 0 to 20, got {top_logprobs}")
        if not logprobs:
            raise _invalid("top_logprobs needs logprobs=True")
        request.top_logprobs = top_logprobs
    request.logprobs = bool(logprobs)
    parallel = get("parallel_tool_calls")
    if parallel is not None:
        if not isinstance(parallel, bool):
            raise _invalid(f"parallel_tool_calls must be True or False, got {parallel!r}")
        if not parallel:
            request.parallel_tool_calls = False
    effort = get("reasoning_effort")
    if effort is not None:
        if effort not in REASONING_EFFORTS:
            raise _invalid(
                f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}, got {effort!r}"
            )
        request.reasoning_effort = effort
    for name in ("extra_headers", "extra_query"):
        value = get(name)
        if value is not None:
            if not isinstance(value, Mapping):
                raise _invalid(f"{name} must be a dict")
            setattr(request, name, dict(value))
    openai_only = {name: value for name, value in arguments.items() if name in _OPENAI_ONLY}
    if openai_only:
        request.openai_only = openai_only


#: Rough tokens for an image part, used only for estimates (holds, rate limits, cheapest).
_IMAGE_TOKEN_ESTIMATE = 1_000


def estimate_prompt_tokens(request: ChatRequest) -> int:
    """An upper-leaning estimate of the prompt's tokens, without a tokenizer.

    About one token per three characters of text (tokenizers average closer to four for
    English, so this leans high, as a hold should), plus a flat amount per image and per
    message for the role framing. Used to size holds and rate-limit reservations, never to
    bill: bills use the provider's reported usage.
    """
    chars = 0
    images = 0
    for message in request.messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list | tuple):
            for part in content:
                if not isinstance(part, Mapping):
                    continue
                if part.get("type") == "image_url":
                    images += 1
                else:
                    chars += len(str(part.get("text", "")))
        for call in message.get("tool_calls") or ():
            if isinstance(call, Mapping):
                chars += len(str(call.get("function", "")))
    for tool in request.tools or ():
        chars += len(str(tool))
    if request.response_format is not None:
        chars += len(str(request.response_format))
    return chars // 3 + 4 * len(request.messages) + images * _IMAGE_TOKEN_ESTIMATE
