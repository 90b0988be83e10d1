"""Retrying one target: whether to, and how long to wait first. No I/O, no sleeping.

The backoff curve is tenacity's (``wait_exponential`` / ``wait_fixed``); the jitter uses the
random source the caller injects, so tests are deterministic. A provider's ``Retry-After``
is honoured when it is no longer than ``max_retry_after_s``; a longer one means "go to the
next target" rather than stalling the call.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import tenacity

from gateway.config import RetryConfig
from gateway.errors import ProviderError, RateLimited

__all__ = ["RetryPolicy"]


def _call_state(attempt_number: int) -> tenacity.RetryCallState:
    state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt_number
    return state


_DEFAULT_WAIT = tenacity.wait_exponential(multiplier=0.5, max=8.0)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How one route retries a target before moving on."""

    attempts: int = 2
    wait: tenacity.wait.wait_base = _DEFAULT_WAIT
    jitter: bool = True
    max_retry_after_s: float = 30.0

    @classmethod
    def from_config(cls, config: RetryConfig) -> RetryPolicy:
        wait: tenacity.wait.wait_base
        if config.backoff == "constant":
            wait = tenacity.wait_fixed(config.initial_s)
        else:
            wait = tenacity.wait_exponential(multiplier=config.initial_s, max=config.max_s)
        return cls(config.attempts, wait, config.jitter, config.max_retry_after_s)

    def backoff(self, tries: int, rng: random.Random) -> float:
        """Seconds to wait after the ``tries``-th failed try (1-based), jitter included."""
        base = float(self.wait(_call_state(tries)))
        if not self.jitter or base <= 0:
            return base
        return base / 2 + rng.random() * base / 2  # "equal jitter": never less than half

    def delay_before_retry(
        self,
        error: ProviderError,
        tries: int,
        rng: random.Random,
        remaining_s: float | None,
    ) -> float | None:
        """Seconds to wait before trying the same target again, or None to move on.

        ``tries`` is how many times this target has been tried in this call so far.
        """
        if not error.retryable or tries >= self.attempts:
            return None
        if isinstance(error, RateLimited) and error.quota_exhausted:
            return None  # the provider account is out of money: retrying cannot help
        delay = self.backoff(tries, rng)
        if error.retry_after is not None:
            if error.retry_after > self.max_retry_after_s:
                return None
            delay = max(delay, error.retry_after)
        if remaining_s is not None and delay >= remaining_s:
            return None
        return delay
