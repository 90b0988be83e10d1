"""Route strategies: in which order a call tries a route's targets. No I/O.

Every strategy returns *all* targets, best first; the call plan then walks that order,
skipping targets whose breaker is open or which are at their rate limit, and falling back
down the list on a triggering error.

- ``fallback``: the order written in the YAML.
- ``weighted``: a random order drawn by weight (a weight-3 target comes first three times as
  often as a weight-1 target); targets with an open breaker go last.
- ``lowest-latency``: fastest moving-average latency first; a target never measured counts as
  fastest (so it gets measured), and with probability ``exploration`` the order is shuffled,
  so a target that has recovered is noticed.
- ``cheapest``: lowest price for this request's estimated tokens first; unknown prices last.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.routing import ResolvedTarget

__all__ = ["order_targets"]

#: Predicts what a request would cost at a target; None when the price is unknown.
CostEstimate = Callable[["ResolvedTarget"], Decimal | None]
#: A target's moving-average latency in seconds; None when never measured.
LatencyOf = Callable[["ResolvedTarget"], float | None]
#: True when the target's breaker is open now.
IsOpen = Callable[["ResolvedTarget"], bool]


def _weighted_order(targets: Sequence[ResolvedTarget], rng: random.Random) -> list[ResolvedTarget]:
    remaining = list(targets)
    order: list[ResolvedTarget] = []
    while remaining:
        total = sum(t.config.weight for t in remaining)
        pick = rng.random() * total
        for i, target in enumerate(remaining):
            pick -= target.config.weight
            if pick < 0 or i == len(remaining) - 1:
                order.append(remaining.pop(i))
                break
    return order


def order_targets(
    strategy: str,
    targets: Sequence[ResolvedTarget],
    *,
    rng: random.Random,
    is_open: IsOpen,
    latency_of: LatencyOf,
    cost_of: CostEstimate | None = None,
    exploration: float = 0.0,
) -> list[ResolvedTarget]:
    """The order in which one call should try ``targets``."""
    if strategy == "fallback" or len(targets) <= 1:
        return list(targets)
    if strategy == "weighted":
        order = _weighted_order(targets, rng)
    elif strategy == "lowest-latency":
        if exploration > 0 and rng.random() < exploration:
            order = list(targets)
            rng.shuffle(order)
        else:

            def speed(target: ResolvedTarget) -> float:
                latency = latency_of(target)
                return -1.0 if latency is None else latency

            order = sorted(targets, key=speed)
    elif strategy == "cheapest":
        if cost_of is None:
            order = list(targets)
        else:
            costs = {id(t): cost_of(t) for t in targets}

            def price(target: ResolvedTarget) -> tuple[int, Decimal]:
                cost = costs[id(target)]
                return (1, Decimal(0)) if cost is None else (0, cost)

            order = sorted(targets, key=price)
    else:
        raise ValueError(f"unknown strategy {strategy!r}")
    # Healthy targets first, keeping the strategy's order within each group.
    return sorted(order, key=is_open)
