"""Anthropic response translation: a Message's JSON and a stream's event JSON -> OpenAI types.

No I/O and no SDK model: both read the JSON as Anthropic sent it. Building the SDK's models
(its recursive ``construct_type``) cost a sixth of a non-streamed call and, for a stream,
about 14 µs per event (half the SDK's own cost per chunk), only to be read once here.

- Text blocks are concatenated into ``message.content``; ``tool_use`` blocks become
  ``tool_calls``. Thinking and server-tool blocks have no place in the OpenAI shape and are
  skipped; their tokens still count in ``output_tokens`` (thinking also in
  ``reasoning_tokens``).
- Stop reasons: end_turn, stop_sequence, pause_turn -> stop; max_tokens,
  model_context_window_exceeded -> length; tool_use -> tool_calls; refusal -> content_filter,
  with ``message.refusal`` (in a stream: the finishing chunk's ``delta.refusal``) set to
  :data:`REFUSAL_MESSAGE`.
- Usage: Anthropic's ``input_tokens`` excludes cache reads and writes, so ours is
  ``input_tokens + cache_creation_input_tokens + cache_read_input_tokens``. In a stream the
  counts of a later event replace the earlier ones, never add.
- A stream event whose fields are missing or of the wrong type raises :class:`MalformedEvent`,
  which the adapter reports as ProviderUnavailable.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

from openai.types.chat import ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import (
    Choice,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
)

from gateway.errors import ProviderConnectionError
from gateway.providers._common import FinishReason, completion_data, make_tool_call, usage_chunk
from gateway.providers._construct import construct
from gateway.providers.base import ProviderResponse, TokenUsage

__all__ = [
    "REFUSAL_MESSAGE",
    "MalformedEvent",
    "StreamTranslator",
    "finish_reason",
    "response_of_body",
    "usage_of_body",
]

_FINISH_REASONS: Mapping[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

#: ``message.refusal`` when Claude stops with ``stop_reason: "refusal"``.
REFUSAL_MESSAGE = "Claude declined to continue this request (stop_reason: refusal)"


def finish_reason(stop_reason: str | None) -> FinishReason:
    """OpenAI's finish reason for an Anthropic stop reason (a new one counts as ``stop``)."""
    return _FINISH_REASONS.get(stop_reason or "end_turn", "stop")


# ---------------------------------------------------------------------------------------------
# Non-streamed


def response_of_body(body: Mapping[str, Any], model: str) -> ProviderResponse:
    """A Message as its JSON body -> the OpenAI-shaped completion."""
    texts: list[str] = []
    tool_calls = []
    for block in body.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            tool_calls.append(make_tool_call(block["id"], block["name"], block.get("input") or {}))
        # thinking, redacted_thinking and server-tool blocks have no OpenAI equivalent
    usage = usage_of_body(body.get("usage") or {})
    stop_reason = body.get("stop_reason")
    data = completion_data(
        response_id=body.get("id") or "",
        model=body.get("model") or model,
        content="".join(texts) if texts else None,
        finish_reason=finish_reason(stop_reason),
        usage=usage,
        tool_calls=tool_calls,
        refusal=REFUSAL_MESSAGE if stop_reason == "refusal" else None,
    )
    return ProviderResponse.from_data(data, usage)


def usage_of_body(usage: Mapping[str, Any]) -> TokenUsage:
    """Anthropic's usage (its JSON) -> TokenUsage: the prompt's three parts add up to
    ``input_tokens``; thinking tokens are the reasoning part of the output."""
    cache_write = usage.get("cache_creation_input_tokens") or 0
    cache_read = usage.get("cache_read_input_tokens") or 0
    details = usage.get("output_tokens_details") or {}
    return TokenUsage(
        input_tokens=(usage.get("input_tokens") or 0) + cache_write + cache_read,
        output_tokens=usage.get("output_tokens") or 0,
        cached_input_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=details.get("thinking_tokens") or 0,
    )


# ---------------------------------------------------------------------------------------------
# Streams


class MalformedEvent(ValueError):
    """A stream event without the fields its type needs, or with fields of the wrong type."""


class StreamState(Protocol):
    """What the translator reports to the stream it feeds (a ChunkStream or AsyncChunkStream)."""

    content_chunks: int
    usage: TokenUsage | None


def _count(value: Any, name: str) -> int:
    # A token count goes to the ledger: it must be a whole number, not whatever was sent.
    if value.__class__ is not int:
        raise MalformedEvent(f"usage.{name} is not an integer")
    return int(value)


#: A stream event's usage fields -> the :class:`StreamTranslator` slot each one sets.
_USAGE_SLOTS = (
    ("input_tokens", "_input"),
    ("cache_creation_input_tokens", "_cache_write"),
    ("cache_read_input_tokens", "_cache_read"),
    ("output_tokens", "_output"),
)


def _text(value: Any, name: str) -> str:
    if value.__class__ is not str:
        raise MalformedEvent(f"{name} is not a string")
    return str(value)


class StreamTranslator:
    """Anthropic stream events, as their JSON objects -> OpenAI chunks, at most one per event.

    The chunks are the OpenAI SDK's own types built without validation (``_construct``): the
    values put in them are checked here, where they come from the wire, or made here.
    """

    __slots__ = (
        "_cache_read",
        "_cache_write",
        "_input",
        "_output",
        "_reasoning",
        "_tool_index",
        "_tools_without_arguments",
        "created",
        "done",
        "finish_reason",
        "model",
        "response_id",
        "state",
    )

    def __init__(self, model: str, state: StreamState) -> None:
        self.model = model
        self.state = state
        self.response_id = ""
        self.created = int(time.time())
        self.finish_reason: FinishReason | None = None
        self.done = False
        self._input = self._output = self._reasoning = self._cache_read = self._cache_write = 0
        #: Content block index -> OpenAI tool-call index (counting tool calls only).
        self._tool_index: dict[Any, int] = {}
        #: Content blocks of tool calls that have streamed no arguments yet.
        self._tools_without_arguments: set[Any] = set()

    def _chunk(self, delta: ChoiceDelta, finish: FinishReason | None = None) -> ChatCompletionChunk:
        choice = construct(Choice, index=0, delta=delta, finish_reason=finish, logprobs=None)
        return construct(
            ChatCompletionChunk,
            id=self.response_id,
            object="chat.completion.chunk",
            created=self.created,
            model=self.model,
            choices=[choice],
        )

    def _tool_call_chunk(
        self, index: int, function: ChoiceDeltaToolCallFunction, **head: Any
    ) -> ChatCompletionChunk:
        call = construct(ChoiceDeltaToolCall, index=index, function=function, **head)
        return self._chunk(construct(ChoiceDelta, tool_calls=[call]))

    def _take_usage(self, usage: Any) -> None:
        # Counts in later events are cumulative: they replace, never add.
        if usage.__class__ is not dict:
            raise MalformedEvent("usage is not an object")
        for name, slot in _USAGE_SLOTS:
            value = usage.get(name)
            if value is not None:
                setattr(self, slot, _count(value, name))
        details = usage.get("output_tokens_details")
        if details is not None:
            if details.__class__ is not dict:
                raise MalformedEvent("usage.output_tokens_details is not an object")
            value = details.get("thinking_tokens")
            if value is not None:
                self._reasoning = _count(value, "output_tokens_details.thinking_tokens")

    def usage(self) -> TokenUsage:
        return TokenUsage(
            input_tokens=self._input + self._cache_write + self._cache_read,
            output_tokens=self._output,
            cached_input_tokens=self._cache_read,
            cache_write_tokens=self._cache_write,
            reasoning_tokens=self._reasoning,
        )

    def usage_chunk(self) -> ChatCompletionChunk:
        self.done = True
        usage = self.usage()
        self.state.usage = usage
        return usage_chunk(
            response_id=self.response_id, model=self.model, created=self.created, usage=usage
        )

    def translate(self, event: Any) -> ChatCompletionChunk | None:
        """The chunk for one event (a JSON object), or None when it has nothing to send.

        Raises :class:`MalformedEvent` for an event that is not what its type says."""
        try:
            return self._translate(event)
        except (KeyError, TypeError, AttributeError) as exc:
            kind = event.get("type") if isinstance(event, dict) else None
            what = f"a {kind} event" if isinstance(kind, str) else "an event"
            raise MalformedEvent(f"{what} lacks a field or has one of the wrong type") from exc

    def _translate(self, event: dict[str, Any]) -> ChatCompletionChunk | None:
        kind = event["type"]
        if kind == "content_block_delta":
            delta = event["delta"]
            delta_kind = delta["type"]
            if delta_kind == "text_delta":
                text = delta["text"]
                if not text:
                    return None
                content = _text(text, "delta.text")
                self.state.content_chunks += 1
                return self._chunk(construct(ChoiceDelta, content=content))
            if delta_kind == "input_json_delta":
                index = event["index"]
                tool_index = self._tool_index.get(index)
                fragment = delta["partial_json"]
                if tool_index is None or not fragment:
                    return None
                arguments = _text(fragment, "delta.partial_json")
                self._tools_without_arguments.discard(index)
                self.state.content_chunks += 1
                function = construct(ChoiceDeltaToolCallFunction, arguments=arguments)
                return self._tool_call_chunk(tool_index, function)
            return None  # thinking, signature and citation deltas
        if kind == "content_block_start":
            block = event["content_block"]
            block_kind = block["type"]
            if block_kind == "tool_use":
                index = event["index"]
                call_id = _text(block["id"], "content_block.id")
                name = _text(block["name"], "content_block.name")
                tool_index = len(self._tool_index)
                self._tool_index[index] = tool_index
                self._tools_without_arguments.add(index)
                self.state.content_chunks += 1
                function = construct(ChoiceDeltaToolCallFunction, name=name, arguments="")
                return self._tool_call_chunk(tool_index, function, id=call_id, type="function")
            if block_kind == "text":
                text = block.get("text")
                if text:
                    content = _text(text, "content_block.text")
                    self.state.content_chunks += 1
                    return self._chunk(construct(ChoiceDelta, content=content))
            return None
        if kind == "message_start":
            message = event["message"]
            self.response_id = _text(message["id"], "message.id")
            model = message.get("model")
            if model:
                self.model = _text(model, "message.model")
            self._take_usage(message["usage"])
            return self._chunk(construct(ChoiceDelta, role="assistant", content=""))
        if kind == "message_delta":
            self._take_usage(event["usage"])
            stop_reason = event["delta"].get("stop_reason")
            self.finish_reason = finish_reason(stop_reason)
            self.state.usage = self.usage()
            refusal = REFUSAL_MESSAGE if stop_reason == "refusal" else None
            return self._chunk(construct(ChoiceDelta, refusal=refusal), self.finish_reason)
        if kind == "message_stop":
            return self.usage_chunk()
        if kind == "content_block_stop" and event["index"] in self._tools_without_arguments:
            # A call without arguments streams none (not even "{}"), but OpenAI's are always
            # JSON: send "{}" so json.loads and the SDK's own accumulator work.
            index = event["index"]
            self._tools_without_arguments.discard(index)
            function = construct(ChoiceDeltaToolCallFunction, arguments="{}")
            return self._tool_call_chunk(self._tool_index[index], function)
        return None  # ping, and event types newer than this adapter

    def end(self, provider: str) -> ChatCompletionChunk | None:
        """Called when the events run out: the usage chunk if still owed, or an error."""
        if self.done:
            return None
        if self.finish_reason is None:
            error = ProviderConnectionError(
                "the stream ended before the message was complete",
                provider=provider,
                model=self.model,
            )
            error.chunks_received = self.state.content_chunks
            raise error
        return self.usage_chunk()
