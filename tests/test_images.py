"""gw.images through the real SDKs with each provider's wire format mocked: OpenAI's
ImagesResponse with .gateway and usage.cost, held at the worst case of n images at the size and
quality asked, charged exactly (GPT Image and Gemini by tokens from genai-prices, DALL-E 3 per
image from pricing:), fallback, refusals before any call, request rows with operation."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai.types import ImagesResponse

from gateway import AsyncGateway, Gateway
from gateway.errors import ConfigError, InvalidRequest
from gateway.testing.clock import ManualClock
from gateway.testing.wire import gemini as gemini_chat_wire
from gateway.testing.wire import gemini_media as gemini_wire
from gateway.testing.wire import openai as openai_wire
from gateway.testing.wire import openai_media as openai_wire_media
from gateway.types import GatewayImagesResponse

D = Decimal
M = Decimal(1_000_000)
URL = openai_wire_media.IMAGES_URL
GEMINI_URL = gemini_chat_wire.generate_content_url("gemini-2.5-flash-image")
PNG = b"\x89PNG\r\n\x1a\nimage"

CONFIG = """
providers:
  openai: {api_key: sk-test-openai-0000000000}
  gemini: {api_key: gemini-test-key-000000000}
  anthropic: {api_key: sk-ant-test-0000000000000}
routes:
  draw:
    targets: [openai/gpt-image-1, gemini/gemini-2.5-flash-image]
    retry: {attempts: 1}
  smart:
    targets: [openai/gpt-4o]
credits:
  store: sqlite:///STORE
  flush_interval_ms: FLUSH
pricing:
  openai/dall-e-3:
    per_image:
      "1024x1024": "0.04"
      "1024x1792": "0.08"
      "1792x1024": "0.08"
      "1024x1024/hd": "0.08"
      "1024x1792/hd": "0.12"
      "1792x1024/hd": "0.12"
"""


@pytest.fixture(params=["batched", "immediate"])
def flush_ms(request: pytest.FixtureRequest) -> int:
    return 200 if request.param == "batched" else 0


@pytest.fixture(params=[Gateway, AsyncGateway], ids=["sync", "async"])
def client_class(request: pytest.FixtureRequest) -> type[Any]:
    return request.param  # type: ignore[no-any-return]


def make(tmp_path: Path, flush_ms: int = 0, cls: type[Any] = Gateway) -> Any:
    text = CONFIG.replace("STORE", str(tmp_path / "credits.db")).replace("FLUSH", str(flush_ms))
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    with Gateway.from_config(path, clock=ManualClock()) as funder:
        funder.credits.grant(D("10"), note="test")
    return cls.from_config(path, clock=ManualClock())


def ok(body: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json=body)


def sent(route: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(route.calls.last.request.content)
    return body


def held(gw: Any) -> list[Decimal]:
    return [D(e.held_nanos) / 10**9 for e in gw.credits.history(limit=1000) if e.kind == "hold"]


async def generate(gw: Any, **kwargs: Any) -> GatewayImagesResponse:
    if isinstance(gw, AsyncGateway):
        response: GatewayImagesResponse = await gw.images.generate(**kwargs)
        return response
    response = gw.images.generate(**kwargs)
    return response


async def test_gpt_image_is_held_at_the_worst_case_and_charged_its_tokens(
    http_mock: Any, tmp_path: Path, flush_ms: int, client_class: type[Any]
) -> None:
    route = http_mock.post(URL).mock(
        return_value=ok(
            openai_wire_media.images(
                b64=[PNG],
                usage=openai_wire_media.image_usage(50, 4160),
                size="1024x1024",
                quality="high",
            )
        )
    )
    gw = make(tmp_path, flush_ms, client_class)
    resp = await generate(
        gw,
        model="openai/gpt-image-1",
        prompt="a red bicycle",
        size="1024x1024",
        quality="high",
        tags={"feature": "art"},
    )
    assert isinstance(resp, ImagesResponse)
    assert sent(route)["model"] == "gpt-image-1"
    assert resp.data is not None and resp.data[0].b64_json is not None
    # gpt-image-1 (genai-prices): text input $5, image output $40 per 1M tokens.
    expected = 50 * D("5") / M + 4160 * D("40") / M
    assert expected == D("0.16665")
    assert resp.usage is not None and resp.usage.cost == expected
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (50, 4160)
    assert resp.usage.output_tokens_details is None, "OpenAI's usage, as it sent it"
    assert (resp.gateway.provider, resp.gateway.model) == ("openai", "gpt-image-1")
    if isinstance(gw, AsyncGateway):  # its account API is awaitable: read through a sync one
        await gw.close()
        gw = Gateway.from_config(tmp_path / "gateway.yaml", clock=ManualClock())
    if flush_ms == 0:
        # Held before the call: the prompt (13 // 3 + 1 = 5 tokens at $5) and one high-quality
        # 1024x1024 image (4,160 tokens at $40).
        assert held(gw) == [5 * D("5") / M + 4160 * D("40") / M]
    (row,) = gw.credits.requests()
    assert (row.operation, row.cost, row.tags) == ("images", expected, {"feature": "art"})
    assert (row.input_tokens, row.output_tokens) == (50, 4160)
    assert gw.credits.balance().posted == D("10") - expected
    gw.close()


def test_gpt_image_1_5_text_and_image_output_at_their_own_rates(
    http_mock: Any, tmp_path: Path
) -> None:
    http_mock.post(URL).mock(
        return_value=ok(
            openai_wire_media.images(
                b64=[PNG], usage=openai_wire_media.image_usage(40, 4200, output_text_tokens=40)
            )
        )
    )
    gw = make(tmp_path)
    resp = gw.images.generate(model="openai/gpt-image-1.5", prompt="a cat")
    # gpt-image-1.5: input $5, text output $10, image output $32 per 1M tokens.
    assert resp.usage is not None
    assert resp.usage.cost == (40 * 5 + 40 * 10 + 4160 * 32) / M == D("0.13372")


def test_dall_e_3_is_priced_per_image_by_size_and_quality(http_mock: Any, tmp_path: Path) -> None:
    route = http_mock.post(URL).mock(
        return_value=ok(openai_wire_media.images(urls=["https://images.example/a.png"]))
    )
    gw = make(tmp_path)
    resp = gw.images.generate(
        model="openai/dall-e-3", prompt="a fox", size="1792x1024", quality="hd"
    )
    assert sent(route)["quality"] == "hd"
    assert resp.usage is not None and resp.usage.cost == D("0.12")
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (0, 0)
    assert resp.data is not None and resp.data[0].url == "https://images.example/a.png"
    # Named neither: held at the dearest price that may apply, charged OpenAI's default
    # (1024x1024, standard quality).
    resp = gw.images.generate(model="openai/dall-e-3", prompt="a fox")
    assert resp.usage is not None and resp.usage.cost == D("0.04")
    assert held(gw) == [D("0.12"), D("0.12")]
    assert [r.cost for r in gw.credits.requests()] == [D("0.12"), D("0.04")]
    # A size with no quality named: the size's lowest price (standard).
    resp = gw.images.generate(model="openai/dall-e-3", prompt="a fox", size="1024x1792")
    assert resp.usage is not None and resp.usage.cost == D("0.08")


def test_n_images_are_held_and_charged_n_times(http_mock: Any, tmp_path: Path) -> None:
    http_mock.post(URL).mock(
        return_value=ok(openai_wire_media.images(urls=["https://i/1.png", "https://i/2.png"]))
    )
    gw = make(tmp_path)
    resp = gw.images.generate(
        model="openai/dall-e-3", prompt="a fox", n=2, size="1024x1024", quality="hd"
    )
    assert resp.usage is not None and resp.usage.cost == 2 * D("0.08")
    assert held(gw) == [2 * D("0.08")]


def test_a_size_without_a_per_image_price_is_refused_before_the_call(
    http_mock: Any, tmp_path: Path
) -> None:
    route = http_mock.post(URL).mock(return_value=ok(openai_wire_media.images(urls=["x"])))
    gw = make(tmp_path)
    with pytest.raises(InvalidRequest, match="no per-image price for size 512x512"):
        gw.images.generate(model="openai/dall-e-3", prompt="a fox", size="512x512")
    assert not route.called
    assert held(gw) == []


def test_gemini_images_are_charged_their_tokens(http_mock: Any, tmp_path: Path) -> None:
    http_mock.post(GEMINI_URL).mock(
        return_value=ok(
            gemini_wire.image_response(
                images=[PNG], text="A bicycle.", prompt_tokens=12, image_tokens=1290, text_tokens=10
            )
        )
    )
    gw = make(tmp_path)
    resp = gw.images.generate(model="gemini/gemini-2.5-flash-image", prompt="a red bicycle")
    # gemini-2.5-flash-image: input $0.30, text output $2.50, image output $30 per 1M tokens.
    assert resp.usage is not None
    assert resp.usage.cost == (12 * D("0.3") + 10 * D("2.5") + 1290 * 30) / M == D("0.0387286")
    # Held: 5 prompt tokens and 2,000 image tokens, the most a Gemini image takes.
    assert held(gw) == [(5 * D("0.3") + 2000 * 30) / M]
    assert gw.credits.requests()[0].operation == "images"


def test_fallback_to_the_next_image_model(http_mock: Any, tmp_path: Path) -> None:
    error = openai_wire.server_error(500)
    http_mock.post(URL).mock(return_value=httpx.Response(error.status, json=error.body))
    http_mock.post(GEMINI_URL).mock(return_value=ok(gemini_wire.image_response(images=[PNG])))
    gw = make(tmp_path)
    resp = gw.images.generate(model="draw", prompt="a red bicycle", response_format="url")
    assert [(a.target, a.outcome) for a in resp.gateway.attempts] == [
        ("openai/gpt-image-1", "error"),
        ("gemini/gemini-2.5-flash-image", "ok"),
    ]
    assert resp.data is not None and resp.data[0].url is not None
    assert resp.data[0].url.startswith("data:image/png;base64,")
    (row,) = gw.credits.requests()
    assert (row.provider, row.operation, row.attempts) == ("gemini", "images", 2)
    assert gw.credits.balance().held == 0


def test_models_that_make_no_images_are_refused_before_any_call(
    http_mock: Any, tmp_path: Path
) -> None:
    route = http_mock.post(URL).mock(return_value=ok(openai_wire_media.images(urls=["x"])))
    gw = make(tmp_path)
    with pytest.raises(InvalidRequest, match="Anthropic has no images API"):
        gw.images.generate(model="anthropic/claude-sonnet-4-6", prompt="x")
    with pytest.raises(InvalidRequest, match="'gpt-4o' is not an image model"):
        gw.images.generate(model="smart", prompt="x")
    with pytest.raises(InvalidRequest, match="n=2 has no equivalent on Gemini"):
        gw.images.generate(model="draw", prompt="x", n=2)
    assert not route.called
    assert held(gw) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": ""}, "prompt must be a non-empty string"),
        ({"prompt": "x", "n": 0}, "n must be an integer from 1 to 10"),
        ({"prompt": "x", "n": 11}, "n must be an integer from 1 to 10"),
        ({"prompt": "x", "size": "big"}, "size must be WIDTHxHEIGHT"),
        ({"prompt": "x", "response_format": "png"}, "response_format"),
        ({"prompt": "x", "quality": "HD!"}, "quality must be a lowercase word"),
    ],
)
def test_bad_requests_are_refused_before_any_call(
    http_mock: Any, tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    route = http_mock.post(URL).mock(return_value=ok(openai_wire_media.images(urls=["x"])))
    gw = make(tmp_path)
    with pytest.raises(InvalidRequest, match=message):
        gw.images.generate(model="openai/dall-e-3", **kwargs)
    assert not route.called


def test_an_image_route_without_a_price_is_refused_at_load() -> None:
    text = """
providers:
  openai: {api_key: k}
routes:
  draw: {targets: [openai/dall-e-2]}
credits: {store: "sqlite://"}
"""
    with pytest.raises(ConfigError, match="no known price") as caught:
        Gateway(text)
    assert caught.value.fix is not None and "per_image" in caught.value.fix


@pytest.mark.parametrize(
    ("price", "message"),
    [
        ('{per_image: {"big": "0.04"}}', "'big' is not an image size"),
        ("{per_image: {}}", "lists no price"),
        ('{per_image: {"1024x1024": "-1"}}', "negative"),
        ('{per_image: {"1024x1024": 0.04}}', None),  # YAML floats are read as exact decimals
        ('{output: "1.00"}', "a price needs input"),
    ],
)
def test_per_image_prices_are_validated_at_load(price: str, message: str | None) -> None:
    text = f"""
providers:
  openai: {{api_key: k}}
pricing:
  openai/dall-e-3: {price}
"""
    if message is None:
        gw = Gateway(text)
        assert gw.config.pricing["openai/dall-e-3"].per_image == {"1024x1024": D("0.04")}
        return
    with pytest.raises(ConfigError, match=message) as caught:
        Gateway(text)
    assert caught.value.line == 5


def test_without_credits_an_unpriced_image_model_costs_none(http_mock: Any) -> None:
    http_mock.post(URL).mock(return_value=ok(openai_wire_media.images(urls=["x"])))
    gw = Gateway({"providers": {"openai": {"api_key": "k"}}})
    resp = gw.images.generate(model="openai/dall-e-2", prompt="x")
    assert resp.usage is not None and resp.usage.cost is None
