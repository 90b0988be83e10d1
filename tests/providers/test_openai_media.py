"""The OpenAI adapter's embeddings and images through the real SDK, HTTP mocked in OpenAI's
wire format (gateway.testing.wire.openai_media), sync and async."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.config import ProviderConfig
from gateway.errors import InvalidRequest, ProviderUnavailable, RateLimited
from gateway.providers.base import TokenUsage
from gateway.providers.media import (
    EmbeddingAdapter,
    EmbeddingRequest,
    ImageAdapter,
    ImageRequest,
)
from gateway.providers.openai import OpenAIAdapter
from gateway.testing.wire import openai as wire
from gateway.testing.wire import openai_media as media_wire
from tests.conftest import CANARY_KEY

PNG = b"\x89PNG\r\n\x1a\nfake-png-bytes"


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def adapter() -> Iterator[OpenAIAdapter]:
    config = ProviderConfig(type="openai", name="openai", api_key=CANARY_KEY)
    instance = OpenAIAdapter("openai", config)
    yield instance
    instance.close()


def sent(route: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(route.calls.last.request.content)
    return body


async def embed(adapter: OpenAIAdapter, mode: str, model: str, request: EmbeddingRequest) -> Any:
    if mode == "sync":
        return adapter.embed(model, request)
    return await adapter.aembed(model, request)


async def generate(adapter: OpenAIAdapter, mode: str, model: str, request: ImageRequest) -> Any:
    if mode == "sync":
        return adapter.generate_images(model, request)
    return await adapter.agenerate_images(model, request)


def test_the_adapter_makes_embeddings_and_images(adapter: OpenAIAdapter) -> None:
    assert isinstance(adapter, EmbeddingAdapter)
    assert isinstance(adapter, ImageAdapter)


async def test_embeddings_request_vectors_and_usage(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str
) -> None:
    route = httpx2_mock.post(media_wire.EMBEDDINGS_URL).mock(
        return_value=httpx.Response(
            200,
            json=media_wire.embeddings(vectors=[[0.5, -0.25], [0.125, 1.0]], prompt_tokens=1234),
        )
    )
    request = EmbeddingRequest(["hello", "world"], dimensions=2, user="u-1")
    result = await embed(adapter, mode, "text-embedding-3-small", request)
    assert sent(route) == {
        "model": "text-embedding-3-small",
        "input": ["hello", "world"],
        "user": "u-1",
        "dimensions": 2,
        "encoding_format": "base64",  # what the SDK asks for, and decodes itself
    }
    assert result.vectors == [[0.5, -0.25], [0.125, 1.0]]
    assert result.usage == TokenUsage(input_tokens=1234)
    assert result.model == "text-embedding-3-small"
    assert not result.estimated


async def test_embeddings_of_token_ids_and_out_of_order_data(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str
) -> None:
    body = media_wire.embeddings(vectors=[[1.0], [2.0]], prompt_tokens=5)
    body["data"].reverse()  # OpenAI numbers each vector; the order on the wire is not the rule
    route = httpx2_mock.post(media_wire.EMBEDDINGS_URL).mock(
        return_value=httpx.Response(200, json=body)
    )
    result = await embed(adapter, mode, "text-embedding-3-small", EmbeddingRequest([[1, 2], [3]]))
    assert sent(route)["input"] == [[1, 2], [3]]
    assert result.vectors == [[1.0], [2.0]]


@pytest.mark.parametrize("vectors", [[[1.0]], []], ids=["one-for-two", "none"])
async def test_a_200_without_a_vector_per_input_is_a_provider_failure(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str, vectors: list[list[float]]
) -> None:
    httpx2_mock.post(media_wire.EMBEDDINGS_URL).mock(
        return_value=httpx.Response(200, json=media_wire.embeddings(vectors=vectors))
    )
    with pytest.raises(ProviderUnavailable) as caught:
        await embed(adapter, mode, "text-embedding-3-small", EmbeddingRequest(["a", "b"]))
    assert caught.value.__context__ is None and caught.value.__cause__ is None


async def test_embeddings_errors_are_mapped(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str
) -> None:
    error = wire.rate_limit_error(retry_after=3)
    httpx2_mock.post(media_wire.EMBEDDINGS_URL).mock(
        return_value=httpx.Response(error.status, json=error.body, headers=error.headers)
    )
    with pytest.raises(RateLimited) as caught:
        await embed(adapter, mode, "text-embedding-3-small", EmbeddingRequest(["a"]))
    assert caught.value.retry_after == 3
    assert CANARY_KEY not in str(caught.value)


async def test_gpt_image_request_usage_and_data_url(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str
) -> None:
    route = httpx2_mock.post(media_wire.IMAGES_URL).mock(
        return_value=httpx.Response(
            200,
            json=media_wire.images(
                b64=[PNG, PNG],
                usage=media_wire.image_usage(60, 8320, input_image_tokens=10),
                size="1024x1024",
                quality="high",
                output_format="webp",
            ),
        )
    )
    request = ImageRequest(
        "a red bicycle", n=2, size="1024x1024", quality="high", response_format="url"
    )
    result = await generate(adapter, mode, "gpt-image-1", request)
    assert sent(route) == {
        "model": "gpt-image-1",
        "prompt": "a red bicycle",
        "n": 2,
        "size": "1024x1024",
        "quality": "high",
    }, "GPT Image models refuse response_format: it is not sent"
    encoded = base64.b64encode(PNG).decode()
    assert result.data["data"] == [{"url": f"data:image/webp;base64,{encoded}"}] * 2
    assert result.images == 2
    assert result.usage == TokenUsage(
        input_tokens=60, output_tokens=8320, input_image_tokens=10, output_image_tokens=8320
    )


async def test_gpt_image_output_split_into_text_and_image_tokens(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str
) -> None:
    httpx2_mock.post(media_wire.IMAGES_URL).mock(
        return_value=httpx.Response(
            200,
            json=media_wire.images(
                b64=[PNG], usage=media_wire.image_usage(40, 4200, output_text_tokens=40)
            ),
        )
    )
    result = await generate(adapter, mode, "gpt-image-1.5", ImageRequest("a cat"))
    assert result.usage == TokenUsage(input_tokens=40, output_tokens=4200, output_image_tokens=4160)
    assert result.data["data"] == [{"b64_json": base64.b64encode(PNG).decode()}]


async def test_dall_e_gets_response_format_and_reports_no_usage(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str
) -> None:
    route = httpx2_mock.post(media_wire.IMAGES_URL).mock(
        return_value=httpx.Response(
            200,
            json=media_wire.images(
                urls=["https://images.example/1.png"], revised_prompt="A red bicycle, studio"
            ),
        )
    )
    request = ImageRequest(
        "a red bicycle", size="1792x1024", quality="hd", style="vivid", response_format="url"
    )
    result = await generate(adapter, mode, "dall-e-3", request)
    assert sent(route) == {
        "model": "dall-e-3",
        "prompt": "a red bicycle",
        "n": 1,
        "size": "1792x1024",
        "quality": "hd",
        "style": "vivid",
        "response_format": "url",
    }
    assert result.data["data"] == [
        {"url": "https://images.example/1.png", "revised_prompt": "A red bicycle, studio"}
    ]
    assert result.usage == TokenUsage()


async def test_image_errors_are_mapped(httpx2_mock: Any, adapter: OpenAIAdapter, mode: str) -> None:
    error = wire.invalid_request_error("Your request was rejected by the safety system.")
    httpx2_mock.post(media_wire.IMAGES_URL).mock(
        return_value=httpx.Response(error.status, json=error.body)
    )
    with pytest.raises(InvalidRequest, match="safety system"):
        await generate(adapter, mode, "dall-e-3", ImageRequest("x"))


async def test_a_200_without_images_is_a_provider_failure(
    httpx2_mock: Any, adapter: OpenAIAdapter, mode: str
) -> None:
    httpx2_mock.post(media_wire.IMAGES_URL).mock(
        return_value=httpx.Response(200, json={"created": 1})
    )
    with pytest.raises(ProviderUnavailable, match="no list of images"):
        await generate(adapter, mode, "gpt-image-1", ImageRequest("x"))
