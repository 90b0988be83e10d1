"""A clock for tests: time moves only when the test (or a gateway sleep) moves it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

__all__ = ["ManualClock"]


class ManualClock:
    """Implements :class:`gateway.Clock`. ``sleep`` advances time instantly instead of waiting.

    ``sleeps`` records every sleep the gateway asked for, so tests can assert on backoff.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
        if self._start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self._offset = 0.0
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self._offset

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._offset)

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        with self._lock:
            self._offset += seconds

    def set(self, when: datetime) -> None:
        """Jump to a wall-clock time (forward only)."""
        self.advance((when - self.now()).total_seconds())

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(max(0.0, seconds))

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)

    def __repr__(self) -> str:
        return f"ManualClock(now={self.now().isoformat()})"
