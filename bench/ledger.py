"""Scenario 6: the credit ledger alone, hold + settle per second (no HTTP, no gateway client).

Runs against :class:`gateway.credits.CreditService` on a fresh SQLite file in a temporary
folder, as configured by a ``credits:`` section with default settings (WAL, the store's own
``synchronous`` setting). One hold + settle pair is what every credited call costs the
ledger. Workers are threads sharing one service in one process (``mode: threads``) or
separate processes each with its own service on the same file (``mode: processes``).

PostgreSQL (issue 5) is reported as pending; set ``BENCH_POSTGRES_URL`` (a ``postgresql://``
store URL of a database that may be written to) to run the same scenario against it once the
PostgreSQL store exists.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import threading
import time
from decimal import Decimal
from typing import Any

__all__ = ["available", "run"]

HOLD = Decimal("0.01")
COST = Decimal("0.000123456")
FUNDING = Decimal("1000000")


def available(store: str) -> str | None:
    """None when the ledger can be measured on ``store`` (sqlite/postgresql), else why not."""
    try:
        from gateway.credits import CreditService  # noqa: F401
    except ImportError as exc:
        return f"pending: gateway.credits has no CreditService yet ({exc})"
    if store == "postgresql" and not os.environ.get("BENCH_POSTGRES_URL"):
        return "pending: the PostgreSQL store is issue 5 (then set BENCH_POSTGRES_URL)"
    return None


def _service(url: str) -> Any:
    from gateway._clock import SystemClock
    from gateway.config import CreditsConfig
    from gateway.credits import CreditService, PriceBook

    return CreditService(CreditsConfig(store=url), PriceBook.from_config({}), clock=SystemClock())


def _pairs(service: Any, prefix: str, n: int) -> None:
    from providers.base import TokenUsage

    usage = TokenUsage(input_tokens=12, output_tokens=8)
    for i in range(n):
        hold = service.hold(
            account=None,
            request_id=f"{prefix}-{i}",
            amount=HOLD,
            route="bench",
            provider="openai",
            model="gpt-4o-mini",
        )
        service.settle(hold, cost=COST, usage=usage, latency_us=1000)


def _process_worker(url: str, prefix: str, n: int, ready: Any, start: Any, done: Any) -> None:
    service = _service(url)
    _pairs(service, f"{prefix}-warm", 5)
    ready.put(prefix)
    start.wait()
    c0 = time.process_time()
    _pairs(service, prefix, n)
    done.put(time.process_time() - c0)
    service.close()


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec``: ``workers``, ``mode`` (threads|processes), ``pairs`` per worker."""
    workers, mode, n = spec["workers"], spec.get("mode", "threads"), spec["pairs"]
    with tempfile.TemporaryDirectory(prefix="gateway-bench-ledger-") as tmp:
        url = f"sqlite:///{os.path.join(tmp, 'ledger.db')}"
        if spec.get("store") == "postgresql":
            url = os.environ["BENCH_POSTGRES_URL"]
        service = _service(url)
        service.account().grant(FUNDING, note="benchmark")
        _pairs(service, "warm", 20)
        cpu_s: float | None
        if mode == "threads":
            threads = [
                threading.Thread(target=_pairs, args=(service, f"w{w}", n)) for w in range(workers)
            ]
            c0, w0 = time.process_time(), time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - w0
            cpu_s = time.process_time() - c0
        else:
            ctx = multiprocessing.get_context("spawn")
            ready, start, done = ctx.Queue(), ctx.Event(), ctx.Queue()
            procs = [
                ctx.Process(target=_process_worker, args=(url, f"p{w}", n, ready, start, done))
                for w in range(workers)
            ]
            for proc in procs:
                proc.start()
            for _ in procs:  # every process has imported and warmed up
                ready.get(timeout=120)
            w0 = time.perf_counter()
            start.set()
            cpu_s = sum(done.get(timeout=600) for _ in procs)
            wall = time.perf_counter() - w0
            for proc in procs:
                proc.join()
        balance = service.account().balance()
        service.close()
    total = workers * n
    spent = FUNDING - balance.available
    return {
        "pairs": total,
        "pairs_per_s": total / wall,
        "cpu_us_per_pair": cpu_s / total * 1e6,
        "wall_s": wall,
        "check_spent_usd": str(spent),
        "check_expected_usd": str(COST * (total + 20 + (5 * workers if mode != "threads" else 0))),
    }
