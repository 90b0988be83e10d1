"""What one delivery attempt comes to, and when a failed one is tried again. No I/O.

* a 2xx answer: delivered;
* 410 Gone: the endpoint is disabled (the receiver says it is gone for good); the row stays
  pending until ``gateway webhooks retry ID`` re-enables the endpoint;
* anything else (another status, a timeout, a refused connection): tried again after an
  exponential backoff with equal jitter (5 s, 10 s, 20 s, ... at most an hour; half to all
  of it, as the routing retries wait), or after the receiver's ``Retry-After`` when that is
  longer (up to an hour), until the row's deadline, a day after the event; then failed.
"""

from __future__ import annotations

import random

import tenacity

from gateway.retry import RetryPolicy
from gateway.webhooks.outbox import Delivery, Finish

__all__ = ["BACKOFF", "MAX_DELAY_S", "judge"]

#: The longest wait between two attempts, seconds.
MAX_DELAY_S = 3600.0
#: 5 s after the first failure, doubling up to an hour, equal jitter.
BACKOFF = RetryPolicy(wait=tenacity.wait_exponential(multiplier=5, max=MAX_DELAY_S))


def judge(
    delivery: Delivery,
    *,
    status: int | None,
    error: str | None,
    now_us: int,
    rng: random.Random,
    retry_after_s: float | None = None,
) -> Finish:
    """The outcome of an attempt at ``delivery`` that got HTTP ``status`` (None: no answer,
    then ``error`` says why)."""
    if status is not None and 200 <= status < 300:
        return Finish("delivered", delivery.next_attempt_us, status, None, now_us)
    if status == 410:
        return Finish(
            "pending",
            now_us,
            status,
            "410 Gone: the endpoint was disabled",
            None,
            disable=True,
        )
    message = error if error is not None else f"HTTP {status}"
    delay = BACKOFF.backoff(delivery.attempts + 1, rng)
    if retry_after_s is not None and retry_after_s > delay:
        delay = min(retry_after_s, MAX_DELAY_S)
    next_us = now_us + round(delay * 1_000_000)
    if next_us > delivery.deadline_us:
        return Finish("failed", next_us, status, f"{message} (gave up)", now_us)
    return Finish("pending", next_us, status, message, None)
