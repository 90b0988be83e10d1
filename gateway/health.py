"""What the gateway remembers about each target across calls: breaker, rate limit, latency.

Shared by every call of one gateway (sync or async); keyed by ``provider/model``, so an
outage seen through one route is known to every route that uses the same target.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from gateway.breaker import CircuitBreaker
from gateway.config import BreakerConfig, TargetConfig
from gateway.ratelimit import RateLimiter

__all__ = ["HealthRegistry", "LatencyTracker", "TargetHealth"]


class LatencyTracker:
    """Exponentially weighted moving average of a target's successful-call latency."""

    __slots__ = ("_alpha", "_value")

    def __init__(self, alpha: float = 0.3) -> None:
        self._alpha = alpha
        self._value: float | None = None

    @property
    def value(self) -> float | None:
        """Seconds, or None before the first observation."""
        return self._value

    def observe(self, seconds: float) -> None:
        current = self._value
        self._value = seconds if current is None else current + self._alpha * (seconds - current)


@dataclass(slots=True)
class TargetHealth:
    breaker: CircuitBreaker
    limiter: RateLimiter | None
    latency: LatencyTracker = field(default_factory=LatencyTracker)


class HealthRegistry:
    """One :class:`TargetHealth` per ``provider/model``, created on first use."""

    def __init__(self) -> None:
        self._targets: dict[str, TargetHealth] = {}
        self._lock = threading.Lock()

    def get(self, label: str, breaker: BreakerConfig, target: TargetConfig) -> TargetHealth:
        health = self._targets.get(label)
        if health is not None:
            return health
        with self._lock:
            health = self._targets.get(label)
            if health is None:
                limiter = (
                    RateLimiter(target.rpm, target.tpm)
                    if target.rpm is not None or target.tpm is not None
                    else None
                )
                health = TargetHealth(
                    CircuitBreaker(breaker.failures, breaker.window_s, breaker.cooldown_s), limiter
                )
                self._targets[label] = health
            return health

    def peek(self, label: str) -> TargetHealth | None:
        """The health of a target, if it has been used."""
        return self._targets.get(label)
