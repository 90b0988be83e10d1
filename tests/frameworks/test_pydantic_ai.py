"""pydantic-ai: ``OpenAIChatModel(route, provider=OpenAIProvider(openai_client=agw))``."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("pydantic_ai", reason="pydantic-ai is in the 'frameworks' extra")

from pydantic import BaseModel
from pydantic_ai import Agent, NativeOutput
from pydantic_ai.models.fallback import FallbackModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from gateway.errors import AllProvidersFailed
from gateway.testing.mock import MockProviders
from tests.frameworks.conftest import CLAUDE, GPT, said


class City(BaseModel):
    name: str
    country: str


def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def model(aclient: Any, route: str = "smart") -> OpenAIChatModel:
    return OpenAIChatModel(route, provider=OpenAIProvider(openai_client=aclient))


async def test_a_plain_call(aclient: Any, gateway_mock: MockProviders) -> None:
    result = await Agent(model(aclient)).run("hello")
    assert result.output == said(GPT, "hello")
    assert len(gateway_mock.openai.calls) == 1


def test_a_plain_call_sync(aclient: Any, gateway_mock: MockProviders) -> None:
    result = Agent(model(aclient)).run_sync("hello")
    assert result.output == said(GPT, "hello")


async def test_a_tool_round_trip(aclient: Any, gateway_mock: MockProviders) -> None:
    gateway_mock.openai.respond(tool_calls=[("weather", {"city": "Paris"})])
    gateway_mock.openai.respond(text="It is sunny in Paris.")
    result = await Agent(model(aclient), tools=[weather]).run("Weather in Paris?")
    assert result.output == "It is sunny in Paris."
    first, second = (call.body for call in gateway_mock.openai.calls)
    assert first["tools"][0]["function"]["name"] == "weather"
    tool_message = second["messages"][-1]
    assert tool_message["role"] == "tool"
    assert tool_message["content"] == "sunny in Paris"


def test_a_tool_round_trip_sync(aclient: Any, gateway_mock: MockProviders) -> None:
    gateway_mock.openai.respond(tool_calls=[("weather", {"city": "Paris"})])
    gateway_mock.openai.respond(text="It is sunny in Paris.")
    result = Agent(model(aclient), tools=[weather]).run_sync("Weather in Paris?")
    assert result.output == "It is sunny in Paris."


async def test_structured_output(aclient: Any, gateway_mock: MockProviders) -> None:
    # pydantic-ai's default: an output tool.
    gateway_mock.openai.respond(tool_calls=[("final_result", {"name": "Paris", "country": "FR"})])
    result = await Agent(model(aclient), output_type=City).run("Capital of France?")
    assert result.output == City(name="Paris", country="FR")
    # NativeOutput: OpenAI's json_schema response format, here served by Claude.
    gateway_mock.anthropic.respond(text='{"name": "Rome", "country": "IT"}')
    agent = Agent(model(aclient, "claude"), output_type=NativeOutput(City))
    result = await agent.run("Capital of Italy?")
    assert result.output == City(name="Rome", country="IT")
    output_config = gateway_mock.anthropic.calls[-1].body["output_config"]
    assert output_config["format"]["type"] == "json_schema"


def test_structured_output_sync(aclient: Any, gateway_mock: MockProviders) -> None:
    gateway_mock.openai.respond(tool_calls=[("final_result", {"name": "Paris", "country": "FR"})])
    result = Agent(model(aclient), output_type=City).run_sync("Capital of France?")
    assert result.output == City(name="Paris", country="FR")


async def test_streaming(aclient: Any, gateway_mock: MockProviders) -> None:
    async with Agent(model(aclient)).run_stream("stream me") as result:
        parts = [text async for text in result.stream_text(delta=True)]
    assert "".join(parts) == said(GPT, "stream me")
    assert gateway_mock.openai.calls[0].stream


def test_streaming_sync(aclient: Any, gateway_mock: MockProviders) -> None:
    result = Agent(model(aclient)).run_stream_sync("stream me")
    assert "".join(result.stream_text(delta=True)) == said(GPT, "stream me")


async def test_the_route_falls_back_from_openai_to_claude(
    aclient: Any, gateway_mock: MockProviders
) -> None:
    gateway_mock.openai.fail(503)
    result = await Agent(model(aclient)).run("hello")
    assert result.output == said(CLAUDE, "hello")


def test_the_route_falls_back_from_openai_to_claude_sync(
    aclient: Any, gateway_mock: MockProviders
) -> None:
    gateway_mock.openai.fail(429)
    result = Agent(model(aclient), tools=[weather]).run_sync("hello")
    assert result.output == said(CLAUDE, "hello")


async def test_pydantic_ais_own_fallback_model_recognises_a_gateway_failure(
    aclient: Any, gateway_mock: MockProviders
) -> None:
    gateway_mock.openai.fail(503)
    fallback = FallbackModel(model(aclient, "gpt"), model(aclient, "claude"))
    result = await Agent(fallback).run("hello")
    assert result.output == said(CLAUDE, "hello")


async def test_a_failure_pydantic_ai_cannot_route_around_keeps_the_gateway_error(
    aclient: Any, gateway_mock: MockProviders
) -> None:
    from pydantic_ai.exceptions import ModelHTTPError

    gateway_mock.openai.fail(503)
    with pytest.raises(ModelHTTPError) as info:
        await Agent(model(aclient, "gpt")).run("hello")
    assert info.value.status_code == 502
    assert isinstance(info.value.__cause__, AllProvidersFailed)  # with every attempt
    assert info.value.__cause__.attempts[0].status_code == 503


async def test_model_settings_that_need_with_options(
    aclient: Any, gateway_mock: MockProviders
) -> None:
    # max_retries goes through client.with_options(http_client=client._client, ...).
    settings: Any = {"max_retries": 1, "timeout": 30, "extra_headers": {"x-team": "agents-21"}}
    result = await Agent(model(aclient), model_settings=settings).run("hello")
    assert result.output == said(GPT, "hello")
    assert gateway_mock.openai.calls[0].headers["x-team"] == "agents-21"


async def test_hints_claude_cannot_take_are_left_out_when_the_route_falls_back(
    aclient: Any, gateway_mock: MockProviders
) -> None:
    gateway_mock.openai.fail(503)
    settings: Any = {"seed": 42, "presence_penalty": 0.2, "frequency_penalty": 0.1}
    result = await Agent(model(aclient), model_settings=settings).run("hello")
    assert result.output == said(CLAUDE, "hello")
    assert gateway_mock.openai.calls[0].body["seed"] == 42  # OpenAI got them as given
    assert not {"seed", "presence_penalty"} & gateway_mock.anthropic.calls[0].body.keys()
