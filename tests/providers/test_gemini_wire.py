"""The body the adapter sends itself (providers/_gemini_wire.py) is the one the SDK would send."""

from __future__ import annotations

import base64
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
