"""Prices and costs: a table computed by hand from the providers' published prices.

Published prices, USD per 1M tokens (the providers' pricing pages, late 2025):

  OpenAI gpt-4o               input 2.50, cached input 1.25, output 10.00; Batch API -50%
  OpenAI gpt-4o-mini          input 0.15, cached input 0.075, output 0.60
  OpenAI o3                   input 2.00, cached input 0.50, output 8.00 (reasoning = output)
  Anthropic claude-sonnet-4-5 input 3, cache write (5 min) 3.75, cache read 0.30, output 15;
                              prompts over 200K tokens: input 6, cache write 7.50,
                              cache read 0.60, output 22.50; Message Batches -50%
  Anthropic claude-haiku-4-5  input 1, cache write 1.25, cache read 0.10, output 5
  Google gemini-2.5-pro       input 1.25, cached 0.125, output 10; prompts over 200K:
                              input 2.50, cached 0.25, output 15
  Google gemini-2.5-flash     input 0.30, cached 0.03, output 2.50; Batch API -50%

Each expected cost below was worked out by hand (shown in the comment) and must match to
1e-9 USD, both with these prices given in YAML and with genai-prices' bundled defaults.
"""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import ModelPrice, parse_config
from gateway.credits.money import to_nanos
from gateway.credits.pricing import FAKE_PRICE, PriceBook, cost_of, worst_case_of
from gateway.errors import ConfigError
from gateway.providers.base import TokenUsage

PUBLISHED: dict[str, dict[str, object]] = {
    "openai/gpt-4o": {"input": "2.50", "cached_input": "1.25", "output": "10.00"},
    "openai/gpt-4o-mini": {"input": "0.15", "cached_input": "0.075", "output": "0.60"},
    "openai/o3": {"input": "2.00", "cached_input": "0.50", "output": "8.00"},
    "anthropic/claude-sonnet-4-5": {
        "input": "3",
        "cache_write": "3.75",
        "cached_input": "0.30",
        "output": "15",
        "long_context": {
            "above_input_tokens": 200_000,
            "input": "6",
            "cache_write": "7.50",
            "cached_input": "0.60",
            "output": "22.50",
        },
    },
    "anthropic/claude-haiku-4-5": {
        "input": "1",
        "cache_write": "1.25",
        "cached_input": "0.10",
        "output": "5",
    },
    "gemini/gemini-2.5-pro": {
        "input": "1.25",
        "cached_input": "0.125",
        "output": "10",
        "long_context": {
            "above_input_tokens": 200_000,
            "input": "2.50",
            "cached_input": "0.25",
            "output": "15",
        },
    },
    "gemini/gemini-2.5-flash": {"input": "0.30", "cached_input": "0.03", "output": "2.50"},
}

U = TokenUsage
# (model id, usage, batch, expected USD); sums are in "USD per 1M tokens x tokens".
COST_TABLE: list[tuple[str, TokenUsage, bool, str]] = [
    # 1000 x 2.50 + 500 x 10 = 7_500
    ("openai/gpt-4o", U(1000, 500), False, "0.0075"),
    # uncached 6000 x 2.50 + cached 4000 x 1.25 + 1234 x 10 = 15_000 + 5_000 + 12_340
    ("openai/gpt-4o", U(10_000, 1234, cached_input_tokens=4000), False, "0.03234"),
    # batch: half of 7_500
    ("openai/gpt-4o", U(1000, 500), True, "0.00375"),
    # 7 x 0.15 + 3 x 0.60 = 1.05 + 1.8 = 2.85
    ("openai/gpt-4o-mini", U(7, 3), False, "0.00000285"),
    # one cached token: 0.075 -> 75 nano-dollars
    ("openai/gpt-4o-mini", U(1, 0, cached_input_tokens=1), False, "0.000000075"),
    # reasoning is billed as output: 2000 x 2 + 5000 x 8 = 4_000 + 40_000
    ("openai/o3", U(2000, 5000, reasoning_tokens=4000), False, "0.044"),
    # uncached 1500 x 3 + write 1000 x 3.75 + read 500 x 0.30 + 200 x 15
    # = 4_500 + 3_750 + 150 + 3_000 = 11_400
    (
        "anthropic/claude-sonnet-4-5",
        U(3000, 200, cached_input_tokens=500, cache_write_tokens=1000),
        False,
        "0.0114",
    ),
    # long context (250K > 200K): uncached 200_000 x 6 + cached 50_000 x 0.60 + 1000 x 22.50
    # = 1_200_000 + 30_000 + 22_500
    (
        "anthropic/claude-sonnet-4-5",
        U(250_000, 1000, cached_input_tokens=50_000),
        False,
        "1.2525",
    ),
    # exactly 200K is not above the threshold: 200_000 x 3
    ("anthropic/claude-sonnet-4-5", U(200_000, 0), False, "0.6"),
    # long context batch: half of (300_000 x 6 + 100 x 22.50 = 1_802_250)
    ("anthropic/claude-sonnet-4-5", U(300_000, 100), True, "0.901125"),
    # 1000 x 1 + 1000 x 5 = 6_000, batch half
    ("anthropic/claude-haiku-4-5", U(1000, 1000), True, "0.003"),
    # long context: 300_000 x 2.50 + 2000 x 15 = 750_000 + 30_000
    ("gemini/gemini-2.5-pro", U(300_000, 2000), False, "0.78"),
    # standard tier with cache: uncached 90_000 x 1.25 + cached 10_000 x 0.125 + 100 x 10
    # = 112_500 + 1_250 + 1_000
    ("gemini/gemini-2.5-pro", U(100_000, 100, cached_input_tokens=10_000), False, "0.11475"),
    # 10_000 x 0.30 + 4000 x 2.50 = 13_000; batch half
    ("gemini/gemini-2.5-flash", U(10_000, 4000), True, "0.0065"),
    # uncached 900 x 0.30 + cached 100 x 0.03 + thinking included in output: 50 x 2.50
    # = 270 + 3 + 125 = 398
    (
        "gemini/gemini-2.5-flash",
        U(1000, 50, cached_input_tokens=100, reasoning_tokens=30),
        False,
        "0.000398",
    ),
]


def _split(model_id: str) -> tuple[str, str]:
    provider, _, model = model_id.partition("/")
    return provider, model


def _yaml_book() -> PriceBook:
    config = parse_config({"pricing": PUBLISHED})
    return PriceBook.from_config(config.pricing)


@pytest.mark.parametrize(("model_id", "usage", "batch", "expected"), COST_TABLE)
def test_cost_table_with_published_prices_in_yaml(
    model_id: str, usage: TokenUsage, batch: bool, expected: str
) -> None:
    provider, model = _split(model_id)
    cost = _yaml_book().cost(provider, model, usage, batch=batch)
    assert cost == Decimal(expected)
    assert isinstance(cost, Decimal)


@pytest.mark.parametrize(("model_id", "usage", "batch", "expected"), COST_TABLE)
def test_cost_table_with_genai_prices_defaults(
    model_id: str, usage: TokenUsage, batch: bool, expected: str
) -> None:
    provider, model = _split(model_id)
    cost = PriceBook.from_config({}).cost(provider, model, usage, batch=batch)
    assert cost == Decimal(expected)


def test_reasoning_priced_apart_and_explicit_batch_prices() -> None:
    book = PriceBook.from_config(
        parse_config(
            {
                "pricing": {
                    "fake/reasoner": {
                        "input": "1",
                        "output": "2",
                        "reasoning": "3",
                        "batch": {"input": "0.25", "output": "0.5"},
                    },
                    "fake/cheap-batch": {"input": "1", "output": "2", "batch_discount": "0.4"},
                }
            }
        ).pricing
    )
    # 100 x 1 + visible 400 x 2 + reasoning 600 x 3 = 100 + 800 + 1800
    usage = TokenUsage(100, 1000, reasoning_tokens=600)
    assert book.cost("fake", "reasoner", usage) == Decimal("0.0027")
    # batch prices: 100 x 0.25 + 1000 x 0.5 (the batch price has no separate reasoning rate)
    assert book.cost("fake", "reasoner", usage, batch=True) == Decimal("0.000525")
    # batch_discount 0.4 x (100 x 1 + 1000 x 2)
    assert book.cost("fake", "cheap-batch", usage, batch=True) == Decimal("0.00084")


def test_worst_case_takes_the_dearest_rates() -> None:
    book = _yaml_book()
    # input at the cache-write rate 3.75 (dearer than 3), output at 15: 3_750 + 7_500
    assert book.worst_case(
        "anthropic", "claude-sonnet-4-5", input_tokens=1000, max_output_tokens=500
    ) == Decimal("0.01125")
    # over 200K: 250_000 x 7.50 + 1000 x 22.50
    assert book.worst_case(
        "anthropic", "claude-sonnet-4-5", input_tokens=250_000, max_output_tokens=1000
    ) == Decimal("1.8975")


@given(
    input_tokens=st.integers(0, 400_000),
    output_tokens=st.integers(0, 50_000),
    data=st.data(),
    batch=st.booleans(),
)
def test_a_cost_never_exceeds_its_worst_case(
    input_tokens: int, output_tokens: int, data: st.DataObject, batch: bool
) -> None:
    price = _yaml_book().price_of("anthropic", "claude-sonnet-4-5")
    assert price is not None
    cached = data.draw(st.integers(0, input_tokens))
    written = data.draw(st.integers(0, input_tokens - cached))
    reasoning = data.draw(st.integers(0, output_tokens))
    actual_in = data.draw(st.integers(cached + written, input_tokens))
    actual_out = data.draw(st.integers(reasoning, output_tokens))
    usage = TokenUsage(actual_in, actual_out, cached, written, reasoning)
    worst = worst_case_of(
        price, input_tokens=input_tokens, max_output_tokens=output_tokens, batch=batch
    )
    cost = cost_of(price, usage, batch=batch)
    assert cost <= worst
    assert to_nanos(cost) <= to_nanos(worst)  # rounding is monotone


def test_rounding_is_half_even_to_the_nano_dollar() -> None:
    assert to_nanos(Decimal("0.0000000025")) == 2
    assert to_nanos(Decimal("0.0000000035")) == 4
    assert to_nanos(Decimal("0.00000000251")) == 3
    assert to_nanos(Decimal("1.2525")) == 1_252_500_000
    # A price that splits a nano-dollar: 1 token at 0.0375 / 1M = 37.5 nano -> 38 (even)
    book = PriceBook.from_config({"fake/x": ModelPrice(input=Decimal("0.0375"), output=0)})
    assert to_nanos(book.cost("fake", "x", TokenUsage(1, 0))) == 38


def test_yaml_overrides_genai_prices_and_provider_names_and_wildcards() -> None:
    pricing = parse_config(
        {
            "pricing": {
                "openai/gpt-4o": {"input": "5", "output": "20"},
                "backup/claude-like": {"input": "3", "output": "15"},
                "fake/*": {"input": "0.5", "output": "1"},
            }
        }
    ).pricing
    book = PriceBook.from_config(pricing)
    assert book.cost("openai", "gpt-4o", TokenUsage(1000, 500)) == Decimal("0.015")
    # configured name first, then the type
    price = book.price_of("fake", "claude-like", provider="backup")
    assert price is not None and price.input == Decimal("3")
    price = book.price_of("fake", "anything", provider="other-fake")
    assert price is not None and price.input == Decimal("0.5")


def test_fake_provider_has_a_documented_default_price() -> None:
    book = PriceBook.from_config({})
    assert book.price_of("fake", "gpt-4o-like") == FAKE_PRICE
    # 1000 x 1 + 1000 x 2
    assert book.cost("fake", "x", TokenUsage(1000, 1000)) == Decimal("0.003")


def test_unknown_price_is_refused_with_the_yaml_to_add() -> None:
    book = PriceBook.from_config({})
    assert book.price_of("openai", "no-such-model-xyz") is None
    with pytest.raises(ConfigError) as info:
        book.require("openai", "no-such-model-xyz", label="route 'smart', target 1")
    message = str(info.value)
    assert "pricing:" in message and 'openai/no-such-model-xyz: {input: "1.00"' in message
    with pytest.raises(ConfigError):
        book.cost("openai", "no-such-model-xyz", TokenUsage(1, 1))


def test_check_config_names_the_route_target() -> None:
    config = parse_config(
        {
            "providers": {"openai": {"api_key": "sk-test-abcdefgh1234"}, "fake": {}},
            "routes": {"smart": {"targets": ["fake/a", "openai/no-such-model-xyz"]}},
        }
    )
    with pytest.raises(ConfigError) as info:
        PriceBook.from_config(config.pricing).check_config(config)
    assert info.value.key == "routes.smart.targets[1]"
    assert "route 'smart', target 2" in str(info.value)
    ok = parse_config({"providers": {"fake": {}}, "routes": {"r": {"targets": ["fake/a"]}}})
    PriceBook.from_config(ok.pricing).check_config(ok)


def test_no_network_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    import genai_prices

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("genai-prices tried to fetch prices")

    monkeypatch.setattr(genai_prices.UpdatePrices, "start", refuse)
    book = PriceBook.from_config({})
    assert book.price_of("openai", "gpt-4o") is not None
    assert book.price_of("gemini", "gemini-2.5-flash") is not None


def test_negative_token_counts_are_refused() -> None:
    with pytest.raises(ValueError):
        PriceBook.from_config({}).cost("fake", "x", TokenUsage(-1, 0))


def test_no_float_on_the_money_path() -> None:
    package = Path(__file__).resolve().parents[2] / "gateway" / "credits"
    offenders = [
        f"{path.name}:{n}: {line.strip()}"
        for path in sorted(package.glob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"float\(|: float|-> float", line)
    ]
    assert offenders == []


def test_a_fake_standing_in_for_a_real_provider_costs_what_the_real_model_would() -> None:
    book = PriceBook.from_config({})
    assert book.price_of("fake", "gpt-4o", provider="openai") == book.price_of("openai", "gpt-4o")
    assert book.price_of("fake", "gpt-4o-like", provider="openai") == FAKE_PRICE
    assert book.price_of("fake", "gpt-4o", provider="backup") == FAKE_PRICE


@given(
    input_tokens=st.integers(0, 10**8),
    output_tokens=st.integers(0, 10**7),
    cached=st.integers(0, 10**6),
    cache_write=st.integers(0, 10**6),
    reasoning=st.integers(0, 10**6),
)
def test_whole_nano_rates_price_exactly_as_the_decimal_path(
    input_tokens: int, output_tokens: int, cached: int, cache_write: int, reasoning: int
) -> None:
    """Prices with at most three decimals per 1M tokens are computed in integer nano-dollars;
    the result is the same exact Decimal the general path gives."""
    from gateway.credits import pricing

    price = ModelPrice(
        input=Decimal("0.15"),
        output=Decimal("0.6"),
        cached_input=Decimal("0.075"),
        cache_write=Decimal("3.75"),
        reasoning=Decimal("20"),
    )
    rates = pricing._rates_for(price, input_tokens)
    assert rates.nanos == (150, 600, 75, 3750, 20000)
    usage = TokenUsage(input_tokens, output_tokens, cached, cache_write, reasoning)
    general = replace(rates, nanos=None)
    slow = pricing._exact_price(
        (
            (max(0, input_tokens - cached - cache_write), general.input),
            (cached, general.cached_input),
            (cache_write, general.cache_write),
            (max(0, output_tokens - reasoning), general.output),
            (reasoning, general.reasoning),
        ),
        Decimal(1),
    )
    assert pricing.cost_of(price, usage) == slow
    worst = pricing.worst_case_of(price, input_tokens=input_tokens, max_output_tokens=output_tokens)
    assert worst == (input_tokens * Decimal("3.75") + output_tokens * Decimal("20")) / 10**6
    assert (
        pricing._rates_for(ModelPrice(input=Decimal("0.0375"), output=Decimal(1)), 1).nanos is None
    )
