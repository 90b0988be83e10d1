"""The body the adapter sends itself (providers/_gemini_wire.py) is the one the SDK would send."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import pytest
from google import genai
from google.genai import _common, models

from gateway.providers import _gemini_wire as wire
from gateway.providers._gemini_request import build_request
from gateway.providers.base import ChatRequest

PNG = base64.b64encode(b"\x89PNG fake").decode()
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris", "snake_key": 1}'},
    "extra_content": {"google": {"thought_signature": "c2lnLTE+/w==", "function_call_id": "fc"}},
}
REQUESTS = {
    "plain": ChatRequest(messages=[{"role": "user", "content": "Hi"}], max_tokens=64),
    "settings": ChatRequest(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Again"},
        ],
        temperature=0.5,
        top_p=0.9,
        stop=["END"],
        seed=7,
        logprobs=True,
        top_logprobs=2,
        reasoning_effort="low",
    ),
    "images": ChatRequest(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
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
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "w", "schema": {"type": "object"}},
        },
        timeout=5.0,
        extra_headers={"x-test": "1"},
    ),
}


def _sdk_body(client: Any, contents: Any, config: Any) -> dict[str, Any]:
    """What ``Models._generate_content`` sends for these arguments."""
    params = models.types._GenerateContentParameters(
        model="gemini-2.5-flash", contents=contents, config=config
    )
    body = models._GenerateContentParameters_to_mldev(client, params, None, params)
    body.pop("_url", None)
    body.pop("config", None)
    result: dict[str, Any] = _common.encode_unserializable_types(_common.convert_to_dict(body))
    return result


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_body_is_the_sdks(name: str) -> None:
    api = genai.Client(vertexai=False, api_key="AIza-test")._api_client
    contents, config = build_request(REQUESTS[name], provider="gemini", model="m")
    fragments = wire.ConfigFragments(api)
    sent = wire.body(contents, fragments.get(config))
    assert sent == _sdk_body(api, contents, config)
    # Converted once: the same config instance gives the same fragment object.
    assert fragments.get(config) is fragments.get(config)


def test_model_path() -> None:
    api = genai.Client(vertexai=False, api_key="AIza-test")._api_client
    assert wire.model_path(api, "gemini-2.5-flash") == "models/gemini-2.5-flash:generateContent"
    with pytest.raises(ValueError):
        wire.model_path(api, "../x")


def test_stream_model_path() -> None:
    api = genai.Client(vertexai=False, api_key="AIza-test")._api_client
    assert (
        wire.model_path(api, "gemini-2.5-flash", stream=True)
        == "models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )


def _counting_converter(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    convert = wire._config_to_mldev

    def counted(*args: Any) -> Any:
        calls.append(1)
        return convert(*args)

    monkeypatch.setattr(wire, "_config_to_mldev", counted)
    return calls


def test_a_config_made_per_call_is_converted_once_per_shape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tools and response_format make a new config each call; the same shape converts once."""
    calls = _counting_converter(monkeypatch)
    api = genai.Client(vertexai=False, api_key="AIza-test")._api_client
    fragments = wire.ConfigFragments(api)
    _, first = build_request(REQUESTS["tools"], provider="gemini", model="m")
    _, again = build_request(REQUESTS["tools"], provider="gemini", model="m")
    assert first is not again

    assert fragments.get(again) is fragments.get(first)
    assert len(calls) == 1
    # Another shape (one more tool) is converted on its own, and sent as the SDK sends it.
    other = dataclasses.replace(
        REQUESTS["tools"], tools=[TOOL, {**TOOL, "function": {"name": "other"}}]
    )
    contents, config = build_request(other, provider="gemini", model="m")
    assert fragments.get(config) is not fragments.get(first)
    assert len(calls) == 2
    assert wire.body(contents, fragments.get(config)) == _sdk_body(api, contents, config)


def test_the_caches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "_MAX_FRAGMENTS", 4)
    api = genai.Client(vertexai=False, api_key="AIza-test")._api_client
    fragments = wire.ConfigFragments(api)
    for seed in range(10):
        request = ChatRequest(messages=[{"role": "user", "content": "Hi"}], seed=seed)
        fragments.get(build_request(request, provider="gemini", model="m")[1])
    assert len(fragments._fragments) <= 4
    assert len(fragments._by_shape) <= 4
