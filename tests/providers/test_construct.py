"""providers/_construct.py: OpenAI models built unvalidated are the validated ones."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from openai.types.chat import ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import (
    Choice,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
)
from openai.types.completion_usage import CompletionUsage

from gateway.config import ProviderConfig
from gateway.providers._construct import construct
from gateway.providers.anthropic import AnthropicAdapter
from gateway.providers.base import ChatRequest
from gateway.testing.wire import anthropic as wire
from tests.conftest import CANARY_KEY

DELTAS: list[dict[str, Any]] = [
    {"content": "Hello"},
    {"role": "assistant", "content": ""},
    {"refusal": None},
    {"refusal": "no"},
]


@pytest.mark.parametrize("delta", DELTAS)
@pytest.mark.parametrize("finish", [None, "stop", "tool_calls"])
def test_chunk_equals_the_validated_one(delta: dict[str, Any], finish: str | None) -> None:
    validated = ChatCompletionChunk(
        id="msg_1",
        object="chat.completion.chunk",
        created=1,
        model="m",
        choices=[Choice(index=0, delta=ChoiceDelta(**delta), finish_reason=finish, logprobs=None)],
    )
    built = construct(
        ChatCompletionChunk,
        id="msg_1",
        object="chat.completion.chunk",
        created=1,
        model="m",
        choices=[
            construct(
                Choice,
                index=0,
                delta=construct(ChoiceDelta, **delta),
                finish_reason=finish,
                logprobs=None,
            )
        ],
    )
    assert type(built) is ChatCompletionChunk and built == validated
    assert built.model_fields_set == validated.model_fields_set
    assert built.choices[0].delta.model_fields_set == validated.choices[0].delta.model_fields_set
    assert list(built.choices[0].delta.__dict__) == list(validated.choices[0].delta.__dict__)
    assert built.model_dump_json() == validated.model_dump_json()
    assert built.model_dump(exclude_unset=True) == validated.model_dump(exclude_unset=True)
    assert built.model_copy(deep=True) == validated


def test_defaults_are_filled_in() -> None:
    built = construct(ChoiceDelta, content="x")
    assert built.tool_calls is None and built.role is None and built.model_extra == {}


def test_refuses_a_model_it_cannot_build() -> None:
    with pytest.raises(TypeError, match="construct"):
        construct(type("Strict", (CompletionUsage,), {"model_config": {"extra": "forbid"}}))


async def test_anthropic_stream_chunks_skip_validation(
    httpx2_mock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chunks of a Claude stream are built without running the chunk validator (but the
    usage chunk), and equal what validating their own dump gives."""
    headers = {**wire.SSE_HEADERS, "request-id": "req_stream_1"}
    body = wire.stream_body()
    adapter = AnthropicAdapter(
        "anthropic", ProviderConfig(type="anthropic", name="anthropic", api_key=CANARY_KEY)
    )
    validations = 0
    real = ChatCompletionChunk.__pydantic_validator__

    class Counting:
        def validate_python(self, *args: Any, **kwargs: Any) -> Any:
            nonlocal validations
            validations += 1
            return real.validate_python(*args, **kwargs)

    for mode in ("sync", "async"):
        httpx2_mock.post(wire.MESSAGES_URL).mock(
            return_value=httpx.Response(200, content=body, headers=headers)
        )
        request = ChatRequest(messages=[{"role": "user", "content": "Hi"}])
        with monkeypatch.context() as patch:
            patch.setattr(ChatCompletionChunk, "__pydantic_validator__", Counting())
            if mode == "sync":
                chunks = list(adapter.stream("claude-haiku-4-5", request))
            else:
                chunks = [c async for c in await adapter.astream("claude-haiku-4-5", request)]
            content = [c for c in chunks if c.choices]
            # Only the last chunk (usage, once per stream) is validated.
            assert validations == 1, mode
            validations = 0
        assert len(content) >= 3
        for chunk in chunks:
            assert type(chunk) is ChatCompletionChunk
            dump = chunk.model_dump(exclude_unset=True)
            assert ChatCompletionChunk.model_validate(dump) == chunk
    adapter.close()
    await adapter.aclose()


TOOL_CALLS: list[dict[str, Any]] = [
    {"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": ""}},
    {"index": 1, "function": {"arguments": '{"city": "Par'}},
    {"index": 0, "function": {"arguments": "{}"}},
]


@pytest.mark.parametrize("fields", TOOL_CALLS)
def test_tool_call_delta_equals_the_validated_one(fields: dict[str, Any]) -> None:
    validated = ChoiceDelta(
        tool_calls=[
            ChoiceDeltaToolCall(
                **{k: v for k, v in fields.items() if k != "function"},
                function=ChoiceDeltaToolCallFunction(**fields["function"]),
            )
        ]
    )
    call = construct(
        ChoiceDeltaToolCall,
        **{k: v for k, v in fields.items() if k != "function"},
        function=construct(ChoiceDeltaToolCallFunction, **fields["function"]),
    )
    built = construct(ChoiceDelta, tool_calls=[call])
    assert built == validated
    assert built.model_dump(exclude_unset=True) == validated.model_dump(exclude_unset=True)
    assert built.model_dump_json() == validated.model_dump_json()
    assert call.model_fields_set == validated.tool_calls[0].model_fields_set  # type: ignore[index]


async def test_anthropic_tool_call_stream_chunks_skip_validation(
    httpx2_mock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tool-call deltas of a Claude stream are built without validation too, and equal what
    validating their own dump gives."""
    body = wire.stream_body(
        tool_uses=[
            wire.ToolUse(id="toolu_1", name="get_weather", input={"city": "Paris"}),
            wire.ToolUse(id="toolu_2", name="now"),  # no arguments: "{}" sent at its end
        ]
    )
    httpx2_mock.post(wire.MESSAGES_URL).mock(
        return_value=httpx.Response(200, content=body, headers=wire.SSE_HEADERS)
    )
    adapter = AnthropicAdapter(
        "anthropic", ProviderConfig(type="anthropic", name="anthropic", api_key=CANARY_KEY)
    )
    validated: list[str] = []
    for cls in (ChoiceDelta, ChoiceDeltaToolCall, ChoiceDeltaToolCallFunction):
        real = cls.__pydantic_validator__

        class Counting:
            def __init__(self, real: Any, name: str) -> None:
                self.real, self.name = real, name

            def validate_python(self, *args: Any, **kwargs: Any) -> Any:
                validated.append(self.name)
                return self.real.validate_python(*args, **kwargs)

        monkeypatch.setattr(cls, "__pydantic_validator__", Counting(real, cls.__name__))
    request = ChatRequest(messages=[{"role": "user", "content": "Hi"}])
    chunks = list(adapter.stream("claude-haiku-4-5", request))
    monkeypatch.undo()
    adapter.close()
    deltas = [
        call
        for chunk in chunks
        if chunk.choices
        for call in chunk.choices[0].delta.tool_calls or ()
    ]
    assert validated == []
    names = {d.index: d.function.name for d in deltas if d.function and d.function.name}
    assert names == {0: "get_weather", 1: "now"}
    arguments = {index: "" for index in names}
    for d in deltas:
        arguments[d.index] += d.function.arguments or "" if d.function else ""
    assert {i: json.loads(a) for i, a in arguments.items()} == {0: {"city": "Paris"}, 1: {}}
    for chunk in chunks:
        dump = chunk.model_dump(exclude_unset=True)
        assert ChatCompletionChunk.model_validate(dump) == chunk


def test_tool_call_delta_is_kept() -> None:
    call = ChoiceDeltaToolCall(index=0, function=ChoiceDeltaToolCallFunction(arguments="{}"))
    built = construct(ChoiceDelta, tool_calls=[call])
    assert built == ChoiceDelta(tool_calls=[call])
