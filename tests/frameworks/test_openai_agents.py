"""The OpenAI Agents SDK: ``OpenAIChatCompletionsModel(model=route, openai_client=agw)``."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("agents", reason="openai-agents is in the 'frameworks' extra")

from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from pydantic import BaseModel

from gateway.testing.mock import MockProviders
from tests.frameworks.conftest import CLAUDE, GPT, said

set_tracing_disabled(True)  # its traces go to OpenAI's servers


class City(BaseModel):
    name: str
    country: str


@function_tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def agent(aclient: Any, route: str = "smart", **options: Any) -> Agent[Any]:
    model = OpenAIChatCompletionsModel(model=route, openai_client=aclient)
    return Agent(name="assistant", model=model, **options)


async def test_a_plain_call(aclient: Any, gateway_mock: MockProviders) -> None:
    result = await Runner.run(agent(aclient), "hello")
    assert result.final_output == said(GPT, "hello")


def test_a_plain_call_sync(aclient: Any, gateway_mock: MockProviders) -> None:
    result = Runner.run_sync(agent(aclient), "hello")
    assert result.final_output == said(GPT, "hello")


async def test_a_tool_round_trip(aclient: Any, gateway_mock: MockProviders) -> None:
    gateway_mock.openai.respond(tool_calls=[("weather", {"city": "Paris"})])
    gateway_mock.openai.respond(text="It is sunny in Paris.")
    result = await Runner.run(agent(aclient, tools=[weather]), "Weather in Paris?")
    assert result.final_output == "It is sunny in Paris."
    tool_message = gateway_mock.openai.calls[1].body["messages"][-1]
    assert (tool_message["role"], tool_message["content"]) == ("tool", "sunny in Paris")


def test_a_tool_round_trip_sync_on_claude(aclient: Any, gateway_mock: MockProviders) -> None:
    gateway_mock.anthropic.respond(tool_calls=[("weather", {"city": "Paris"})])
    gateway_mock.anthropic.respond(text="It is sunny in Paris.")
    result = Runner.run_sync(agent(aclient, "claude", tools=[weather]), "Weather in Paris?")
    assert result.final_output == "It is sunny in Paris."
    last_turn = gateway_mock.anthropic.calls[1].body["messages"][-1]["content"][0]
    assert (last_turn["type"], last_turn["content"]) == ("tool_result", "sunny in Paris")


async def test_structured_output(aclient: Any, gateway_mock: MockProviders) -> None:
    gateway_mock.openai.respond(text='{"name": "Paris", "country": "FR"}')
    result = await Runner.run(agent(aclient, output_type=City), "Capital of France?")
    assert result.final_output == City(name="Paris", country="FR")
    response_format = gateway_mock.openai.calls[0].body["response_format"]
    assert response_format["type"] == "json_schema"


def test_structured_output_sync_on_claude(aclient: Any, gateway_mock: MockProviders) -> None:
    gateway_mock.anthropic.respond(text='{"name": "Rome", "country": "IT"}')
    result = Runner.run_sync(agent(aclient, "claude", output_type=City), "Capital of Italy?")
    assert result.final_output == City(name="Rome", country="IT")


async def test_streaming(aclient: Any, gateway_mock: MockProviders) -> None:
    result = Runner.run_streamed(agent(aclient), "stream me")
    deltas = [
        event.data.delta
        async for event in result.stream_events()
        if event.type == "raw_response_event" and event.data.type == "response.output_text.delta"
    ]
    assert "".join(deltas) == said(GPT, "stream me")
    assert result.final_output == said(GPT, "stream me")


def test_streaming_sync(aclient: Any, gateway_mock: MockProviders) -> None:
    # The Agents SDK streams only from async code; a sync program runs it in an event loop.
    import asyncio

    async def stream() -> Any:
        result = Runner.run_streamed(agent(aclient, "claude"), "stream me")
        async for _ in result.stream_events():
            pass
        return result.final_output

    assert asyncio.run(stream()) == said(CLAUDE, "stream me")
    assert gateway_mock.anthropic.calls[0].stream


async def test_the_route_falls_back_from_openai_to_claude(
    aclient: Any, gateway_mock: MockProviders
) -> None:
    gateway_mock.openai.fail(503)
    result = await Runner.run(agent(aclient, tools=[weather]), "hello")
    assert result.final_output == said(CLAUDE, "hello")


def test_the_route_falls_back_from_openai_to_claude_sync(
    aclient: Any, gateway_mock: MockProviders
) -> None:
    gateway_mock.openai.fail(429)
    result = Runner.run_sync(agent(aclient), "hello")
    assert result.final_output == said(CLAUDE, "hello")


async def test_hints_claude_cannot_take_are_left_out_when_the_route_falls_back(
    aclient: Any, gateway_mock: MockProviders
) -> None:
    from agents import ModelSettings

    gateway_mock.openai.fail(503)
    settings = ModelSettings(frequency_penalty=0.5, presence_penalty=0.1, verbosity="low")
    result = await Runner.run(agent(aclient, model_settings=settings), "hello")
    assert result.final_output == said(CLAUDE, "hello")
    assert gateway_mock.openai.calls[0].body["frequency_penalty"] == 0.5
    assert "frequency_penalty" not in gateway_mock.anthropic.calls[0].body
