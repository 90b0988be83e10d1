"""Per-target circuit breaker: stop sending to a target that keeps failing, probe it later.

States: ``closed`` (normal) -> ``open`` after ``failures`` failures within ``window_s`` ->
``half_open`` once ``cooldown_s`` has passed (one probe call is let through) -> ``closed`` if
the probe succeeds, ``open`` again if it fails. Pure state over an injected time value: the
caller passes ``now`` (monotonic seconds), so tests drive it directly.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Literal

__all__ = ["BreakerState", "CircuitBreaker"]

BreakerState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    failures: int = 5
    window_s: float = 60.0
    cooldown_s: float = 30.0


class CircuitBreaker:
    """One target's breaker. Thread-safe; every method takes ``now`` from the caller's clock."""

    def __init__(self, failures: int = 5, window_s: float = 60.0, cooldown_s: float = 30.0) -> None:
        if failures < 1 or window_s <= 0 or cooldown_s <= 0:
            raise ValueError("failures must be >= 1 and window_s, cooldown_s > 0")
        self.settings = BreakerSettings(failures, window_s, cooldown_s)
        self._failures: deque[float] = deque()
        self._opened_at: float | None = None
        self._probing = False
        self._lock = threading.Lock()

    def state(self, now: float) -> BreakerState:
        with self._lock:
            return self._state(now)

    def _state(self, now: float) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if now - self._opened_at >= self.settings.cooldown_s:
            return "half_open"
        return "open"

    def reopens_at(self) -> float | None:
        """Monotonic time at which an open breaker lets a probe through (None when closed)."""
        with self._lock:
            return None if self._opened_at is None else self._opened_at + self.settings.cooldown_s

    def is_clear(self) -> bool:
        """Closed with no failure counted and no probe out: a success would change nothing.

        Read without the lock (each attribute read is atomic): a failure recorded at the
        same moment counts as recorded after the success."""
        return self._opened_at is None and not self._probing and not self._failures

    def allow(self, now: float) -> bool:
        """May a call go to this target now? In half-open, only one probe at a time."""
        if self._opened_at is None:
            return True  # closed (lock-free fast path: one atomic read)
        with self._lock:
            state = self._state(now)
            if state == "closed":
                return True
            if state == "half_open" and not self._probing:
                self._probing = True
                return True
            return False

    def force_probe(self) -> None:
        """Let one call through although the breaker is open (every target was open)."""
        with self._lock:
            self._probing = True

    def record_success(self, now: float) -> BreakerState:
        """A call succeeded; returns the new state."""
        with self._lock:
            self._failures.clear()
            self._opened_at = None
            self._probing = False
            return "closed"

    def record_failure(self, now: float) -> BreakerState:
        """A call failed with an availability error; returns the new state."""
        with self._lock:
            if self._opened_at is not None:
                # A failed probe (or a failure of a call let through while open): open again.
                self._opened_at = now
                self._probing = False
                return "open"
            window_start = now - self.settings.window_s
            failures = self._failures
            failures.append(now)
            while failures and failures[0] < window_start:
                failures.popleft()
            if len(failures) >= self.settings.failures:
                self._opened_at = now
                failures.clear()
                return "open"
            return "closed"

    def release_probe(self) -> None:
        """A probe ended without telling us anything (e.g. invalid request): allow another."""
        with self._lock:
            self._probing = False
