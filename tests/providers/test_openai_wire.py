"""The request the OpenAI adapter sends through ``client.post`` is the one ``create`` sends.

For each request shape, the adapter's call and ``chat.completions.create(**native_kwargs(...))``
on a client with the same settings go to the same mocked endpoint; method, URL (query
included), headers, timeout and JSON body must be equal.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI, OpenAI

from gateway.config import ProviderConfig
from gateway.providers.base import ChatRequest
from gateway.providers.openai import OpenAIAdapter, native_kwargs
from gateway.testing.wire import openai as wire
from tests.conftest import CANARY_KEY

MODEL = "gpt-4o"
URL = "https://llm-proxy.example.com/v1/chat/completions"
PNG = base64.b64encode(b"\x89PNG fake").decode()
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "strict": True,
    },
}
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
REQUESTS = {
    "plain": ChatRequest(messages=[{"role": "user", "content": "Hi"}], max_tokens=64),
    "settings": ChatRequest(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi", "name": "ann"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Again"},
        ],
        temperature=0.5,
        top_p=0.9,
        stop=("END", "STOP"),
        seed=7,
        frequency_penalty=0.1,
        presence_penalty=-0.2,
        logprobs=True,
        top_logprobs=2,
        reasoning_effort="low",
        user="u-1",
        timeout=5.0,
    ),
    "images": ChatRequest(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this? é 漢字"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
                ],
            }
        ]
    ),
    "tools": ChatRequest(
        messages=[
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
        ],
        tools=[TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": True},
        },
    ),
    "extras": ChatRequest(
        messages=[{"role": "user", "content": "Hi"}],
        metadata={"feature": "search"},
        extra_headers={"x-trace": "t-1"},
        extra_query={"api-version": "2"},
        extra_body={"store": True, "custom": {"a": [1, 2]}, "stream_options": {"x": 1}},
        openai_only={"logit_bias": {"50256": -100}, "service_tier": "flex"},
    ),
}


def _config() -> ProviderConfig:
    return ProviderConfig(
        type="openai",
        name="openai",
        api_key=CANARY_KEY,
        base_url="https://llm-proxy.example.com/v1",
        headers={"x-team": "search"},
        timeout=30,
        connect_timeout=2,
    )


def _route(mock: Any, *, stream: bool) -> Any:
    if stream:
        body = wire.chat_completion_stream(text=["Hi"], usage=wire.usage(3, 1))
        response = httpx.Response(200, content=body, headers=wire.SSE_HEADERS)
    else:
        response = httpx.Response(200, json=wire.chat_completion())
    return mock.post(url__startswith=URL).mock(return_value=response)


def _seen(request: Any) -> dict[str, Any]:
    """What is compared of one request: everything the provider can see."""
    return {
        "method": request.method,
        "url": str(request.url),
        "headers": sorted(request.headers.items()),
        "timeout": request.extensions["timeout"],
        "body": json.loads(request.content),
    }


@pytest.mark.parametrize("stream", [False, True], ids=["call", "stream"])
@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_sync_request_is_creates(httpx2_mock: Any, name: str, stream: bool) -> None:
    request = REQUESTS[name]
    route = _route(httpx2_mock, stream=stream)
    adapter = OpenAIAdapter("openai", _config())
    try:
        if stream:
            adapter.stream(MODEL, request).close()
        else:
            adapter.complete(MODEL, request)
        ours = _seen(route.calls.last.request)
        # The same client settings; create() given exactly the keyword arguments we build.
        sdk = OpenAI(**adapter._client_options())
        kwargs = adapter._call_options(MODEL, request, stream=stream)
        answer: Any = sdk.chat.completions.create(**kwargs)
        if stream:
            answer.close()
        theirs = _seen(route.calls.last.request)
        sdk.close()
    finally:
        adapter.close()
    assert ours == theirs
    assert ours["body"]["model"] == MODEL  # the comparison saw a real body


@pytest.mark.parametrize("stream", [False, True], ids=["call", "stream"])
@pytest.mark.parametrize("name", sorted(REQUESTS))
async def test_async_request_is_creates(httpx2_mock: Any, name: str, stream: bool) -> None:
    request = REQUESTS[name]
    route = _route(httpx2_mock, stream=stream)
    adapter = OpenAIAdapter("openai", _config())
    try:
        if stream:
            await (await adapter.astream(MODEL, request)).aclose()
        else:
            await adapter.acomplete(MODEL, request)
        ours = _seen(route.calls.last.request)
        sdk = AsyncOpenAI(**adapter._client_options())
        kwargs = adapter._call_options(MODEL, request, stream=stream)
        answer: Any = await sdk.chat.completions.create(**kwargs)
        if stream:
            await answer.close()
        theirs = _seen(route.calls.last.request)
        await sdk.close()
    finally:
        await adapter.aclose()
    assert ours == theirs


def test_native_kwargs_of_a_stream_keep_usage() -> None:
    """The shape the stream comparisons rely on: usage asked for, extra_body's kept."""
    kwargs = native_kwargs(MODEL, REQUESTS["extras"], stream=True)
    assert kwargs["stream_options"] == {"include_usage": True}
    assert kwargs["extra_body"]["stream_options"] == {"x": 1, "include_usage": True}
