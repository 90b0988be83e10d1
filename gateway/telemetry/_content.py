"""Prompts and answers in the GenAI conventions' message shape (only with ``capture_content``).

``gen_ai.input.messages`` and ``gen_ai.output.messages`` are JSON strings of
``[{"role": ..., "parts": [...]}]``, parts being ``{"type": "text", "content": ...}``,
``{"type": "tool_call", "id", "name", "arguments"}``, ``{"type": "tool_call_response", "id",
"response"}``, ``{"type": "uri", "modality", "uri"}``, or ``{"type": <OpenAI part type>}``
for anything else. No I/O, no OpenTelemetry import.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionChunk

    from gateway.types import GatewayChatCompletion

__all__ = ["OutputCollector", "input_messages", "output_messages"]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def _arguments(text: str | None) -> Any:
    """Tool-call arguments as an object when they are JSON (the conventions want one)."""
    if not text:
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _content_parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    for item in content if isinstance(content, Iterable) else ():
        if not isinstance(item, Mapping):
            parts.append({"type": "text", "content": str(item)})
            continue
        kind = item.get("type")
        if kind == "text":
            parts.append({"type": "text", "content": item.get("text", "")})
        elif kind == "image_url":
            image = item.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            parts.append({"type": "uri", "modality": "image", "uri": url})
        else:
            parts.append({"type": kind})
    return parts


def _tool_call_part(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    return {
        "type": "tool_call",
        "id": call.get("id"),
        "name": function.get("name"),
        "arguments": _arguments(function.get("arguments")),
    }


def input_messages(messages: Sequence[Mapping[str, Any]]) -> str:
    """The request's messages as ``gen_ai.input.messages``."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "tool":
            parts: list[dict[str, Any]] = [
                {
                    "type": "tool_call_response",
                    "id": message.get("tool_call_id"),
                    "response": message.get("content"),
                }
            ]
        else:
            parts = _content_parts(message.get("content"))
            parts.extend(_tool_call_part(c) for c in message.get("tool_calls") or ())
        out.append({"role": role, "parts": parts})
    return _dumps(out)


def output_messages(response: GatewayChatCompletion) -> str:
    """A completion's choices as ``gen_ai.output.messages``."""
    out: list[dict[str, Any]] = []
    for choice in response.choices or ():
        message = choice.message
        parts = _content_parts(message.content)
        for call in message.tool_calls or ():
            parts.append(_tool_call_part(call.model_dump()))
        out.append({"role": "assistant", "parts": parts, "finish_reason": choice.finish_reason})
    return _dumps(out)


class OutputCollector:
    """Assembles a stream's answer from its chunks, for ``gen_ai.output.messages``."""

    __slots__ = ("_calls", "_text")

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}

    def add(self, chunk: ChatCompletionChunk) -> None:
        for choice in chunk.choices[:1]:  # n is always 1
            delta = choice.delta
            if delta.content:
                self._text.append(delta.content)
            for call in delta.tool_calls or ():
                entry = self._calls.setdefault(call.index, {"id": None, "name": "", "args": ""})
                if call.id:
                    entry["id"] = call.id
                if call.function is not None:
                    entry["name"] += call.function.name or ""
                    entry["args"] += call.function.arguments or ""

    def messages(self, finish_reason: str) -> str:
        parts: list[dict[str, Any]] = []
        if self._text:
            parts.append({"type": "text", "content": "".join(self._text)})
        for _, call in sorted(self._calls.items()):
            parts.append(
                {
                    "type": "tool_call",
                    "id": call["id"],
                    "name": call["name"],
                    "arguments": _arguments(call["args"]),
                }
            )
        return _dumps([{"role": "assistant", "parts": parts, "finish_reason": finish_reason}])
