"""Prices of embeddings and images (gateway/credits/pricing.py): input-only and per-image
prices, image tokens at their own rates, worst cases for holds, what each operation needs."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.config import ModelPrice
from gateway.credits.pricing import (
    PriceBook,
    cost_of,
    describe,
    image_cost,
    image_worst_case,
    missing_for,
    per_image_price,
)
from gateway.providers.base import TokenUsage
from gateway.providers.media import image_tokens, model_kind, worst_case_image_tokens

D = Decimal
M = Decimal(1_000_000)
DALL_E_3 = ModelPrice(
    per_image={
        "1024x1024": D("0.04"),
        "1024x1792": D("0.08"),
        "1024x1024/hd": D("0.08"),
        "1024x1792/hd": D("0.12"),
    }
)


def test_genai_prices_embedding_models_have_an_input_price_only() -> None:
    book = PriceBook()
    small = book.price_of("openai", "text-embedding-3-small")
    assert small is not None and (small.input, small.output) == (D("0.02"), None)
    gemini = book.price_of("gemini", "gemini-embedding-001")
    assert gemini is not None and gemini.input == D("0.15")
    assert missing_for(small, "embeddings") is None
    assert missing_for(small, "chat") == "output price per 1M tokens"


def test_genai_prices_image_models_have_image_token_rates() -> None:
    book = PriceBook()
    one = book.price_of("openai", "gpt-image-1")
    assert one is not None
    assert (one.input, one.output, one.input_image, one.output_image) == (
        D("5"),
        D("40"),
        D("10"),
        None,
    )
    one_five = book.price_of("openai", "gpt-image-1.5")
    assert one_five is not None and (one_five.output, one_five.output_image) == (D("10"), D("32"))
    flash = book.price_of("gemini", "gemini-2.5-flash-image")
    assert flash is not None and flash.output_image == D("30")
    assert book.price_of("openai", "dall-e-3") is None, "per-image prices come from pricing:"
    assert "image output $32" in describe(one_five)


def test_image_tokens_are_charged_at_their_own_rates_exactly() -> None:
    price = ModelPrice(input=D("5"), output=D("10"), input_image=D("8"), output_image=D("32"))
    usage = TokenUsage(
        input_tokens=100, output_tokens=4200, input_image_tokens=60, output_image_tokens=4160
    )
    # 40 text in at $5, 60 image in at $8, 40 text out at $10, 4,160 image out at $32.
    assert cost_of(price, usage) == (40 * 5 + 60 * 8 + 40 * 10 + 4160 * 32) / M
    # Without image rates, image tokens cost what text does.
    plain = ModelPrice(input=D("5"), output=D("10"))
    assert cost_of(plain, usage) == (100 * 5 + 4200 * 10) / M
    # Batch: half of it all.
    assert cost_of(price, usage, batch=True) == (40 * 5 + 60 * 8 + 40 * 10 + 4160 * 32) / M / 2


def test_chat_costs_are_unchanged_by_image_fields() -> None:
    price = ModelPrice(input=D("2.50"), output=D("10"), cached_input=D("1.25"))
    usage = TokenUsage(input_tokens=1000, output_tokens=500, cached_input_tokens=200)
    assert cost_of(price, usage) == (800 * D("2.50") + 200 * D("1.25") + 500 * 10) / M


def test_negative_image_tokens_are_refused() -> None:
    with pytest.raises(ValueError, match="negative image token"):
        cost_of(ModelPrice(input=D("1"), output=D("1")), TokenUsage(output_image_tokens=-1))


@pytest.mark.parametrize(
    ("size", "quality", "price"),
    [
        ("1024x1024", None, D("0.04")),  # no quality named: the size's plain price
        ("1024x1024", "standard", D("0.04")),  # a quality not listed: the size's plain price
        ("1024x1024", "hd", D("0.08")),
        ("1024x1792", "hd", D("0.12")),
        (None, None, D("0.04")),  # no size known: OpenAI's default, 1024x1024
        (None, "hd", D("0.08")),
    ],
)
def test_per_image_price_picks_the_most_specific_key(
    size: str | None, quality: str | None, price: Decimal
) -> None:
    assert per_image_price(DALL_E_3, size, quality) == price


def test_per_image_keys_with_quality_only_charge_the_lowest_when_none_is_named() -> None:
    price = ModelPrice(per_image={"1024x1024/standard": D("0.04"), "1024x1024/hd": D("0.08")})
    assert per_image_price(price, "1024x1024", None) == D("0.04")
    any_size = ModelPrice(per_image={"*": D("0.02"), "*/hd": D("0.05")})
    assert per_image_price(any_size, "640x480", "hd") == D("0.05")
    assert per_image_price(any_size, "640x480", None) == D("0.02")
    with pytest.raises(LookupError):
        per_image_price(ModelPrice(per_image={"1024x1024": D("1")}), "512x512", None)


def test_per_image_holds_take_the_dearest_price_that_may_apply() -> None:
    def hold(size: str | None, quality: str | None, n: int = 1) -> Decimal | None:
        return image_worst_case(
            DALL_E_3, input_tokens=10, images=n, size=size, quality=quality, tokens_per_image=0
        )

    assert hold(None, None) == D("0.12")
    assert hold("1024x1024", None) == D("0.08")
    assert hold("1024x1024", "standard") == D("0.04")
    assert hold("1024x1792", "hd", n=3) == D("0.36")
    assert hold("512x512", None) is None
    assert image_cost(
        DALL_E_3, TokenUsage(output_tokens=999), images=3, size=None, quality="hd"
    ) == (3 * D("0.08")), "a per-image model's tokens are not charged"


def test_token_priced_image_holds() -> None:
    price = ModelPrice(input=D("5"), output=D("10"), cached_input=D("1.25"), output_image=D("32"))
    amount = image_worst_case(
        price, input_tokens=10, images=2, size="1024x1024", quality="high", tokens_per_image=4160
    )
    assert amount == (10 * 5 + 2 * 4160 * 32) / M


@pytest.mark.parametrize(
    ("size", "quality", "tokens"),
    [
        ("1024x1024", "low", 272),
        ("1024x1024", "medium", 1056),
        ("1024x1024", "high", 4160),
        ("1024x1536", "high", 6240),
        ("1536x1024", None, 6240),
        (None, None, 6240),
        ("auto", "auto", 6240),
        ("1024x1024", "xhigh", 8320),
    ],
)
def test_gpt_image_output_tokens(size: str | None, quality: str | None, tokens: int) -> None:
    assert image_tokens(size, quality) == tokens


def test_gemini_images_are_held_at_their_largest() -> None:
    assert worst_case_image_tokens("gemini", "1024x1024", "low") == 2000


@pytest.mark.parametrize(
    ("price", "operation", "missing"),
    [
        (ModelPrice(input=D("1")), "embeddings", None),
        (ModelPrice(per_image={"*": D("1")}), "embeddings", "input price per 1M tokens"),
        (ModelPrice(per_image={"*": D("1")}), "images", None),
        (ModelPrice(input=D("1"), output=D("2")), "images", None),
        (ModelPrice(input=D("1"), output_image=D("2")), "images", None),
        (ModelPrice(input=D("1")), "images", "per_image price, nor input and output prices"),
        (ModelPrice(input=D("1"), output=D("2")), "chat", None),
        (ModelPrice(per_image={"*": D("1")}), "chat", "input price"),
    ],
)
def test_what_each_operation_needs_of_a_price(
    price: ModelPrice, operation: str, missing: str | None
) -> None:
    found = missing_for(price, operation)
    assert found == missing if missing is None else found is not None and missing in found


@pytest.mark.parametrize(
    ("model", "kind"),
    [
        ("text-embedding-3-small", "embeddings"),
        ("gemini-embedding-001", "embeddings"),
        ("gpt-image-1", "images"),
        ("dall-e-3", "images"),
        ("gemini-2.5-flash-image", "images"),
        ("gpt-4o", "chat"),
        ("gemini-2.5-flash", "chat"),
    ],
)
def test_model_kind_by_name(model: str, kind: str) -> None:
    assert model_kind(model) == kind
