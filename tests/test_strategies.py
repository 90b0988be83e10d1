"""Route strategies: order and distribution, with a seeded random source."""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal

import pytest

from gateway.config import TargetConfig
from gateway.routing import ResolvedTarget
from gateway.strategies import order_targets


def targets(*specs: tuple[str, float]) -> list[ResolvedTarget]:
    out = []
    for model_id, weight in specs:
        config = TargetConfig(model=model_id, weight=weight)
        out.append(ResolvedTarget(config.provider, config.model_name, config))
    return out


A, B, C = targets(("p/a", 1), ("p/b", 1), ("p/c", 1))


def order(strategy: str, items: list[ResolvedTarget], **kw: object) -> list[str]:
    defaults: dict[str, object] = {
        "rng": random.Random(0),
        "is_open": lambda t: False,
        "latency_of": lambda t: None,
    }
    defaults.update(kw)
    return [t.model for t in order_targets(strategy, items, **defaults)]  # type: ignore[arg-type]


def test_fallback_keeps_the_yaml_order() -> None:
    assert order("fallback", [A, B, C]) == ["a", "b", "c"]


def test_weighted_first_pick_follows_the_weights() -> None:
    heavy, light = targets(("p/heavy", 3), ("p/light", 1))
    rng = random.Random(7)
    firsts = Counter(order("weighted", [heavy, light], rng=rng)[0] for _ in range(4000))
    share = firsts["heavy"] / 4000
    assert 0.72 < share < 0.78  # expected 0.75
    assert sorted(order("weighted", [heavy, light], rng=rng)) == ["heavy", "light"]


def test_weighted_puts_open_breakers_last() -> None:
    heavy, light = targets(("p/heavy", 100), ("p/light", 1))
    for seed in range(20):
        got = order(
            "weighted", [heavy, light], rng=random.Random(seed), is_open=lambda t: t is heavy
        )
        assert got == ["light", "heavy"]


def test_lowest_latency_orders_by_moving_average_and_measures_unknowns_first() -> None:
    latency = {"a": 0.9, "b": 0.2, "c": None}
    got = order("lowest-latency", [A, B, C], latency_of=lambda t: latency[t.model])
    assert got == ["c", "b", "a"]


def test_lowest_latency_explores_at_the_configured_rate() -> None:
    latency = {"a": 0.1, "b": 5.0}
    rng = random.Random(3)
    firsts = Counter(
        order(
            "lowest-latency",
            [A, B],
            rng=rng,
            latency_of=lambda t: latency[t.model],
            exploration=0.2,
        )[0]
        for _ in range(5000)
    )
    # Exploration shuffles 20% of orders; half of those put the slow target first.
    assert 0.08 < firsts["b"] / 5000 < 0.12


def test_cheapest_orders_by_estimated_cost_unknown_last() -> None:
    prices = {"a": Decimal("0.003"), "b": None, "c": Decimal("0.001")}
    got = order("cheapest", [A, B, C], cost_of=lambda t: prices[t.model])
    assert got == ["c", "a", "b"]


def test_unknown_strategy_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown strategy"):
        order("random", [A, B])
