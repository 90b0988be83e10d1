"""The Gemini adapter's embeddings and images through google-genai, HTTP mocked in the Gemini
API's wire format (gateway.testing.wire.gemini_media), sync and async."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.config import ProviderConfig
from gateway.errors import InvalidRequest, ProviderUnavailable, RateLimited
from gateway.providers._gemini_media import aspect_ratio
from gateway.providers.base import TokenUsage
from gateway.providers.gemini import GeminiAdapter
from gateway.providers.media import EmbeddingRequest, ImageRequest, refusal
from gateway.testing.wire import gemini as wire
from gateway.testing.wire import gemini_media as media_wire
from tests.conftest import CANARY_KEY

EMBED_MODEL = "gemini-embedding-001"
IMAGE_MODEL = "gemini-2.5-flash-image"
EMBED_URL = media_wire.batch_embed_url(EMBED_MODEL)
IMAGE_URL = wire.generate_content_url(IMAGE_MODEL)
PNG = b"\x89PNG\r\n\x1a\ngemini-png"


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def adapter() -> Iterator[GeminiAdapter]:
    config = ProviderConfig(type="gemini", name="gemini", api_key=CANARY_KEY)
    instance = GeminiAdapter("gemini", config)
    yield instance
    instance.close()


def sent(route: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(route.calls.last.request.content)
    return body


async def embed(adapter: GeminiAdapter, mode: str, request: EmbeddingRequest) -> Any:
    if mode == "sync":
        return adapter.embed(EMBED_MODEL, request)
    return await adapter.aembed(EMBED_MODEL, request)


async def generate(adapter: GeminiAdapter, mode: str, request: ImageRequest) -> Any:
    if mode == "sync":
        return adapter.generate_images(IMAGE_MODEL, request)
    return await adapter.agenerate_images(IMAGE_MODEL, request)


async def test_embeddings_request_vectors_and_usage(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    route = httpx2_mock.post(EMBED_URL).mock(
        return_value=httpx.Response(
            200,
            json=media_wire.batch_embed_response(
                vectors=[[0.1, 0.2], [0.3, 0.4]], prompt_tokens=20
            ),
        )
    )
    request = EmbeddingRequest(["hello", "world"], dimensions=2, user="dropped")
    result = await embed(adapter, mode, request)
    assert sent(route) == {
        "requests": [
            {
                "content": {"parts": [{"text": text}], "role": "user"},
                "outputDimensionality": 2,
                "model": f"models/{EMBED_MODEL}",
            }
            for text in ("hello", "world")
        ]
    }
    assert route.calls.last.request.headers["x-goog-api-key"] == CANARY_KEY
    assert result.vectors == [[0.1, 0.2], [0.3, 0.4]]
    assert result.usage == TokenUsage(input_tokens=20)
    assert not result.estimated


async def test_embeddings_without_usage_are_charged_the_estimate(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    httpx2_mock.post(EMBED_URL).mock(
        return_value=httpx.Response(
            200, json=media_wire.batch_embed_response(vectors=[[1.0]], prompt_tokens=None)
        )
    )
    result = await embed(adapter, mode, EmbeddingRequest(["twelve chars"]))
    assert result.usage == TokenUsage(input_tokens=12 // 3 + 1)
    assert result.estimated


async def test_embeddings_missing_a_vector_are_a_provider_failure(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    httpx2_mock.post(EMBED_URL).mock(
        return_value=httpx.Response(200, json=media_wire.batch_embed_response(vectors=[[1.0]]))
    )
    with pytest.raises(ProviderUnavailable, match="1 vectors for 2 inputs"):
        await embed(adapter, mode, EmbeddingRequest(["a", "b"]))


async def test_embeddings_errors_are_mapped(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    httpx2_mock.post(EMBED_URL).mock(
        return_value=httpx.Response(429, json=wire.rate_limit_error(retry_delay_s=7))
    )
    with pytest.raises(RateLimited) as caught:
        await embed(adapter, mode, EmbeddingRequest(["a"]))
    assert caught.value.retry_after == 7


async def test_image_request_usage_and_text(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    route = httpx2_mock.post(IMAGE_URL).mock(
        return_value=httpx.Response(
            200,
            json=media_wire.image_response(
                images=[PNG], text="Here is a red bicycle.", prompt_tokens=12, text_tokens=10
            ),
        )
    )
    request = ImageRequest("a red bicycle", size="1536x1024", quality="high", user="x")
    result = await generate(adapter, mode, request)
    assert sent(route) == {
        "contents": [{"parts": [{"text": "a red bicycle"}], "role": "user"}],
        "generationConfig": {
            "responseModalities": ["IMAGE"],
            "imageConfig": {"aspectRatio": "3:2"},
        },
    }
    assert result.data["data"] == [
        {"b64_json": base64.b64encode(PNG).decode(), "revised_prompt": "Here is a red bicycle."}
    ]
    assert result.data["output_format"] == "png"
    assert result.usage == TokenUsage(input_tokens=12, output_tokens=1300, output_image_tokens=1290)


async def test_image_as_data_url_with_thoughts(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    httpx2_mock.post(IMAGE_URL).mock(
        return_value=httpx.Response(
            200,
            json=media_wire.image_response(
                images=[PNG], mime_type="image/jpeg", image_tokens=1120, thoughts_tokens=200
            ),
        )
    )
    result = await generate(adapter, mode, ImageRequest("a cat", response_format="url"))
    encoded = base64.b64encode(PNG).decode()
    assert result.data["data"] == [{"url": f"data:image/jpeg;base64,{encoded}"}]
    assert result.data["output_format"] == "jpeg"
    assert result.usage == TokenUsage(
        input_tokens=12, output_tokens=1320, reasoning_tokens=200, output_image_tokens=1120
    )


async def test_an_answer_without_an_image_says_why(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    httpx2_mock.post(IMAGE_URL).mock(
        return_value=httpx.Response(200, json=media_wire.blocked_image_response())
    )
    with pytest.raises(InvalidRequest, match=r"no image \(finish reason IMAGE_SAFETY\)"):
        await generate(adapter, mode, ImageRequest("x"))


@pytest.mark.parametrize(
    ("size", "ratio"),
    [
        (None, None),
        ("auto", None),
        ("1024x1024", "1:1"),
        ("1024x1536", "2:3"),
        ("1792x1024", "16:9"),
        ("1024x1792", "9:16"),
        ("2560x1080", "21:9"),
    ],
)
def test_sizes_become_the_nearest_aspect_ratio(size: str | None, ratio: str | None) -> None:
    assert aspect_ratio(size) == ratio


@pytest.mark.parametrize(
    ("request_", "refused"),
    [
        (ImageRequest("x", n=2), "n=2 has no equivalent"),
        (ImageRequest("x", style="vivid"), "style='vivid'"),
        (ImageRequest("x", background="transparent"), "background='transparent'"),
        (ImageRequest("x", output_format="webp"), "output_format='webp'"),
        (ImageRequest("x", background="auto", output_format="png", quality="hd"), None),
        (EmbeddingRequest([[1, 2]]), "token ids"),
    ],
)
def test_what_gemini_cannot_express_is_refused_before_the_call(
    request_: Any, refused: str | None
) -> None:
    model = EMBED_MODEL if isinstance(request_, EmbeddingRequest) else IMAGE_MODEL
    operation = "embeddings" if isinstance(request_, EmbeddingRequest) else "images"
    why = refusal("gemini", model, operation, request_)
    if refused is None:
        assert why is None
    else:
        assert why is not None and refused in why
