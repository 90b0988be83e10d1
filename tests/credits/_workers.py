"""Code that runs in worker threads and child processes of the concurrency and crash tests
(importable by a spawned process, so it lives in a module of its own)."""

from __future__ import annotations

import sys
from datetime import datetime
from decimal import Decimal
from typing import Any

from gateway.config import CreditsConfig
from gateway.credits import CreditService, InMemoryPaymentMethod, PriceBook
from gateway.credits.store import open_store
from gateway.errors import InsufficientCredits
from gateway.providers.base import TokenUsage
from gateway.testing.clock import ManualClock

START = datetime.fromisoformat("2026-01-15T12:00:00+00:00")


def make_service(url: str, **settings: Any) -> CreditService:
    clock = ManualClock(START)
    return CreditService(
        CreditsConfig(store=url, **settings),
        PriceBook.from_config({}),
        clock=clock,
        payment_method=InMemoryPaymentMethod(),
        store=open_store(url),
    )


def run_calls(
    service: CreditService, worker: int, calls: int, cost: Decimal, batched: bool = False
) -> int:
    """``calls`` calls that each hold and then settle ``cost``; returns how many were admitted.
    ``batched``: through the service's spender (a lease and batches), as a gateway does."""
    if batched:
        return _run_batched(service, worker, calls, cost)
    admitted = 0
    for i in range(calls):
        try:
            hold = service.hold(
                account=None,
                request_id=f"w{worker}-{i}",
                amount=cost,
                route="smart",
                provider="fake",
                model="small",
            )
        except InsufficientCredits:
            continue
        service.settle(hold, cost=cost, usage=TokenUsage(10, 5), latency_us=1)
        admitted += 1
    return admitted


def _run_batched(service: CreditService, worker: int, calls: int, cost: Decimal) -> int:
    from gateway.credits.money import to_nanos
    from gateway.credits.spender import LocalHold

    spender = service.spender
    assert spender is not None
    nanos = to_nanos(cost)
    admitted = 0
    for i in range(calls):
        request_id = f"w{worker}-{i}"
        hold = LocalHold(
            f"{request_id}#1", "default", request_id, nanos, "smart", "fake", "small", {}
        )
        try:
            if not spender.try_hold(hold):
                spender.hold(hold, target="fake/small")
        except InsufficientCredits:
            continue
        spender.settle(
            hold, cost=nanos, usage=TokenUsage(10, 5), status="ok", latency_us=1, attempts=1
        )
        admitted += 1
    return admitted


def process_worker(
    url: str,
    settings: dict[str, Any],
    worker: int,
    calls: int,
    cost: str,
    barrier: Any,
    out: Any,
    batched: bool = False,
) -> None:
    service = make_service(url, **settings)
    barrier.wait()
    try:
        out.put((worker, run_calls(service, worker, calls, Decimal(cost), batched)))
    finally:
        service.close()


def hold_and_hang(url: str) -> None:
    """Hold, report it, and wait to be killed (the crash test's child)."""
    service = make_service(url, hold_ttl_s=900)
    hold = service.hold(
        account=None,
        request_id="doomed",
        amount=Decimal("4"),
        route="smart",
        provider="fake",
        model="small",
    )
    print(hold.hold_id, flush=True)
    sys.stdin.read()  # blocks until the parent kills us


def spend_forever(url: str) -> None:
    """Hold and settle in a loop until killed, wherever the kill lands."""
    service = make_service(url, hold_ttl_s=900)
    for i in range(10**9):
        hold = service.hold(
            account=None,
            request_id=f"loop-{i}",
            amount=Decimal("0.02"),
            route="smart",
            provider="fake",
            model="small",
        )
        if i == 20:
            print("running", flush=True)
        service.settle(hold, cost=Decimal("0.01"), usage=TokenUsage(10, 5))


if __name__ == "__main__":
    {"hang": hold_and_hang, "loop": spend_forever}[sys.argv[1]](sys.argv[2])
