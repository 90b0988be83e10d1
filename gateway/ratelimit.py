"""Client-side request and token limits per target (``rpm``, ``tpm`` in the YAML).

A sliding one-minute window: a call is admitted only if the requests (and estimated tokens)
sent in the last 60 seconds leave room for it, so the router moves on to the next target
instead of sending a request the provider would refuse with a 429. Time is passed in.
"""

from __future__ import annotations

import threading
from collections import deque

__all__ = ["RateLimiter"]

WINDOW_S = 60.0


class RateLimiter:
    """Requests-per-minute and tokens-per-minute for one target. Thread-safe."""

    def __init__(self, rpm: int | None = None, tpm: int | None = None) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self._sent: deque[tuple[float, int]] = deque()
        self._tokens = 0
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        start = now - WINDOW_S
        sent = self._sent
        while sent and sent[0][0] <= start:
            _, tokens = sent.popleft()
            self._tokens -= tokens

    def try_acquire(self, now: float, tokens: int) -> str | None:
        """Reserve room for one call of ``tokens``; None if admitted, else why not."""
        with self._lock:
            self._expire(now)
            if self.rpm is not None and len(self._sent) >= self.rpm:
                return f"at its limit of {self.rpm} requests per minute"
            if self.tpm is not None and self._sent and self._tokens + tokens > self.tpm:
                return f"at its limit of {self.tpm} tokens per minute"
            self._sent.append((now, tokens))
            self._tokens += tokens
            return None
