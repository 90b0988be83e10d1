"""The official OpenAI SDK, unchanged, against a real ``gateway serve``: sync and async,
streamed and not, with the gateway's headers and the cost in the body and the usage chunk."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from openai import AsyncOpenAI, OpenAI

from tests.server._serve import ADMIN_KEY, Served
from tests.server.conftest import make_key

pytestmark = pytest.mark.slow
HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def key(config: dict[str, Any], server: Served) -> str:
    """A key of the default account, as `gateway keys create` makes them."""
    return make_key(config)


def client(server: Served, key: str = ADMIN_KEY) -> OpenAI:
    return OpenAI(base_url=server.base_url, api_key=key, max_retries=0)


def test_sync_call_returns_the_completion_its_cost_and_who_answered(
    server: Served, key: str
) -> None:
    raw = client(server, key).chat.completions.with_raw_response.create(
        model="r", messages=HELLO, max_tokens=50
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "[fake/m] You said: Hello there"
    assert raw.headers["x-gateway-provider"] == "fake"
    assert raw.headers["x-gateway-model"] == "m"
    assert raw.headers["x-gateway-attempts"] == "1"
    assert raw.headers["x-gateway-request-id"].startswith("gw-")
    cost = Decimal(raw.headers["x-gateway-cost"])
    assert cost > 0
    assert completion.usage is not None
    assert Decimal(completion.usage.model_extra["cost"]) == cost  # the same exact number


def test_sync_stream_arrives_in_chunks_and_ends_with_the_cost(server: Served, key: str) -> None:
    with client(server, key).chat.completions.with_streaming_response.create(
        model="r", messages=HELLO, stream=True, stream_options={"include_usage": True}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-gateway-provider"] == "fake"
        assert "x-gateway-cost" not in response.headers
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "[fake/m] You said: Hello there"
    assert len(chunks) > 3
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert Decimal(last.usage.model_extra["cost"]) > 0


async def test_async_call_and_stream(server: Served, key: str) -> None:
    aclient = AsyncOpenAI(base_url=server.base_url, api_key=key, max_retries=0)
    completion = await aclient.chat.completions.create(model="other", messages=HELLO)
    assert completion.choices[0].message.content == "[fake/o] You said: Hello there"
    stream = await aclient.chat.completions.create(model="fake/m", messages=HELLO, stream=True)
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == (
        "[fake/m] You said: Hello there"
    )
    # Without include_usage, the usage (and its cost) rides on the finish_reason chunk.
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None and Decimal(chunks[-1].usage.model_extra["cost"]) > 0
    await aclient.close()


def test_a_provider_over_http_answers_through_the_server(server: Served) -> None:
    """A model on an OpenAI-wire upstream (the real OpenAI adapter inside the server)."""
    completion = client(server).chat.completions.create(model="up/plain", messages=HELLO)
    assert completion.choices[0].message.content == "Hello from upstream!"


def test_models_lists_the_routes_and_their_targets(server: Served, key: str) -> None:
    listed = client(server, key).models.list()
    ids = [model.id for model in listed]
    routes = {"r": "fake/m", "other": "fake/o", "slow": "up/gated", "long": "up/too-long"}
    routes["broken"] = "down/m"
    routes["limited"] = "up/limited"
    routes["badkey"] = "up/bad-key"
    routes["embed"] = "openai/text-embedding-3-small"
    routes["draw"] = "openai/gpt-image-1"
    assert sorted(ids) == sorted([*routes, *routes.values()])
    assert {model.owned_by for model in listed if model.id == "up/gated"} == {"up"}


def test_embeddings_and_images_are_served_and_billed(server: Served, key: str) -> None:
    import base64

    openai_client = client(server, key)
    raw = openai_client.embeddings.with_raw_response.create(model="embed", input=["a", "bc"])
    vectors = raw.parse()
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) > 0
    assert Decimal(raw.headers["x-gateway-cost"]) > 0
    assert raw.headers["x-gateway-model"] == "text-embedding-3-small"
    drawn = openai_client.images.with_raw_response.generate(
        model="draw", prompt="a red bicycle", size="1024x1024", quality="low"
    )
    image = drawn.parse()
    assert image.data is not None and image.data[0].b64_json is not None
    assert base64.b64decode(image.data[0].b64_json).startswith(b"\x89PNG")
    assert Decimal(drawn.headers["x-gateway-cost"]) > 0
    with server.client(key) as http:
        rows = http.get("/v1/usage", params={"group_by": "operation"}).json()["data"]
    by_operation = {row["operation"]: row for row in rows}
    assert {"embeddings", "images"} <= set(by_operation)
