"""LangChain: ``ChatOpenAI(model=route, client=gw.chat.completions, root_client=gw, ...)``."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("langchain_openai", reason="langchain-openai is in the 'frameworks' extra")

from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from gateway.testing.mock import MockProviders
from tests.frameworks.conftest import CLAUDE, GPT, said


class City(BaseModel):
    name: str
    country: str


@tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def chat_model(client: Any, aclient: Any, route: str = "smart") -> ChatOpenAI:
    return ChatOpenAI(
        model=route,
        client=client.chat.completions,
        async_client=aclient.chat.completions,
        root_client=client,
        root_async_client=aclient,
    )


def test_a_plain_call(client: Any, aclient: Any, gateway_mock: MockProviders) -> None:
    message = chat_model(client, aclient).invoke("hello")
    assert message.content == said(GPT, "hello")
    assert message.response_metadata["model_name"] == "gpt-4o"


async def test_a_plain_call_async(client: Any, aclient: Any, gateway_mock: MockProviders) -> None:
    message = await chat_model(client, aclient).ainvoke("hello")
    assert message.content == said(GPT, "hello")


def test_a_tool_round_trip(client: Any, aclient: Any, gateway_mock: MockProviders) -> None:
    gateway_mock.openai.respond(tool_calls=[("weather", {"city": "Paris"})])
    gateway_mock.openai.respond(text="It is sunny in Paris.")
    llm = chat_model(client, aclient).bind_tools([weather])
    question = HumanMessage("Weather in Paris?")
    asked = llm.invoke([question])
    call = asked.tool_calls[0]
    assert (call["name"], call["args"]) == ("weather", {"city": "Paris"})
    result = ToolMessage(weather.invoke(call["args"]), tool_call_id=call["id"])
    answer = llm.invoke([question, asked, result])
    assert answer.content == "It is sunny in Paris."
    tool_message = gateway_mock.openai.calls[1].body["messages"][-1]
    assert (tool_message["role"], tool_message["content"]) == ("tool", "sunny in Paris")


async def test_a_tool_round_trip_async_on_claude(
    client: Any, aclient: Any, gateway_mock: MockProviders
) -> None:
    gateway_mock.anthropic.respond(tool_calls=[("weather", {"city": "Paris"})])
    gateway_mock.anthropic.respond(text="It is sunny in Paris.")
    llm = chat_model(client, aclient, "claude").bind_tools([weather])
    question = HumanMessage("Weather in Paris?")
    asked = await llm.ainvoke([question])
    call = asked.tool_calls[0]
    result = ToolMessage(await weather.ainvoke(call["args"]), tool_call_id=call["id"])
    answer = await llm.ainvoke([question, asked, result])
    assert answer.content == "It is sunny in Paris."


def test_structured_output(client: Any, aclient: Any, gateway_mock: MockProviders) -> None:
    gateway_mock.openai.respond(text='{"name": "Paris", "country": "FR"}')
    llm = chat_model(client, aclient).with_structured_output(City)  # json_schema: .parse
    assert llm.invoke("Capital of France?") == City(name="Paris", country="FR")
    assert gateway_mock.openai.calls[0].body["response_format"]["type"] == "json_schema"


async def test_structured_output_async_on_claude(
    client: Any, aclient: Any, gateway_mock: MockProviders
) -> None:
    gateway_mock.anthropic.respond(tool_calls=[("City", {"name": "Rome", "country": "IT"})])
    llm = chat_model(client, aclient, "claude").with_structured_output(
        City, method="function_calling"
    )
    assert await llm.ainvoke("Capital of Italy?") == City(name="Rome", country="IT")


def test_streaming(client: Any, aclient: Any, gateway_mock: MockProviders) -> None:
    chunks = list(chat_model(client, aclient).stream("stream me"))
    assert "".join(str(chunk.content) for chunk in chunks) == said(GPT, "stream me")


async def test_streaming_async(client: Any, aclient: Any, gateway_mock: MockProviders) -> None:
    chunks = [chunk async for chunk in chat_model(client, aclient, "claude").astream("stream me")]
    assert "".join(str(chunk.content) for chunk in chunks) == said(CLAUDE, "stream me")


def test_the_route_falls_back_from_openai_to_claude(
    client: Any, aclient: Any, gateway_mock: MockProviders
) -> None:
    gateway_mock.openai.fail(503)
    assert chat_model(client, aclient).invoke("hello").content == said(CLAUDE, "hello")


async def test_the_route_falls_back_from_openai_to_claude_async(
    client: Any, aclient: Any, gateway_mock: MockProviders
) -> None:
    gateway_mock.openai.fail(429)
    message = await chat_model(client, aclient).ainvoke("hello")
    assert message.content == said(CLAUDE, "hello")
