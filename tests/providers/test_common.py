"""The OpenAI result types the adapters build (providers/_common.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice
from openai.types.completion_usage import (
    CompletionTokensDetails,
    CompletionUsage,
    PromptTokensDetails,
)

from gateway.providers._common import (
    completion_data,
    completion_usage,
    make_completion,
    make_tool_call,
)
from gateway.providers.base import ProviderResponse, TokenUsage

USAGE = TokenUsage(
    input_tokens=10,
    output_tokens=20,
    cached_input_tokens=3,
    cache_write_tokens=4,
    reasoning_tokens=5,
)


def _by_constructors(content: str | None, finish_reason: Any, **extra: Any) -> ChatCompletion:
    """The same completion built model by model with each constructor."""
    message = ChatCompletionMessage(
        role="assistant",
        content=content,
        refusal=extra.get("refusal"),
        tool_calls=extra.get("tool_calls") or None,
    )
    usage = CompletionUsage(
        prompt_tokens=10,
        completion_tokens=20,
        total_tokens=30,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=3, cache_write_tokens=4),
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=5),
    )
    return ChatCompletion(
        id="resp-1",
        object="chat.completion",
        created=123,
        model="m",
        choices=[Choice(index=0, message=message, finish_reason=finish_reason, logprobs=None)],
        usage=usage,
    )


@pytest.mark.parametrize(
    ("content", "finish_reason", "extra"),
    [
        ("hello", "stop", {}),
        (None, "tool_calls", {"tool_calls": [make_tool_call("call_1", "f", {"a": 1})]}),
        ("", "content_filter", {"refusal": "no"}),
    ],
)
def test_make_completion_is_what_the_constructors_make(
    content: str | None, finish_reason: Any, extra: dict[str, Any]
) -> None:
    made = make_completion(
        response_id="resp-1",
        model="m",
        content=content,
        finish_reason=finish_reason,
        usage=USAGE,
        created=123,
        **extra,
    )
    expected = _by_constructors(content, finish_reason, **extra)
    assert made == expected
    assert repr(made) == repr(expected)
    assert made.model_dump_json() == expected.model_dump_json()
    assert made.model_dump(exclude_unset=True) == expected.model_dump(exclude_unset=True)


def test_completion_usage_details() -> None:
    usage = completion_usage(USAGE)
    assert isinstance(usage, CompletionUsage)
    assert usage.total_tokens == 30
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 3
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 5


@pytest.mark.parametrize("cost", [None, Decimal("0.000012300")])
def test_a_response_from_data_is_what_the_recast_completion_is(cost: Decimal | None) -> None:
    from gateway._attempts import GatewayInfo
    from gateway.types import data_to_gateway_completion, to_gateway_completion

    data = completion_data(
        response_id="resp-1", model="m", content="hi", finish_reason="stop", usage=USAGE
    )
    response = ProviderResponse.from_data(data, USAGE)
    info = GatewayInfo("anthropic", "m", "route", "gw-1")
    direct = data_to_gateway_completion(data, info, cost)
    recast = to_gateway_completion(response.completion, info, cost)
    assert type(direct) is type(recast)
    assert direct == recast
    assert repr(direct) == repr(recast)
    assert direct.model_dump(exclude_unset=True) == recast.model_dump(exclude_unset=True)
    assert direct.usage is not None and direct.usage.cost is cost
    assert direct.gateway is info
    assert "cost" not in data["usage"]  # the adapter's data is left as it was
    assert response.completion == make_completion(
        response_id="resp-1",
        model="m",
        content="hi",
        finish_reason="stop",
        usage=USAGE,
        created=data["created"],
    )
