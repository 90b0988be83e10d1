"""Many callers on one account: 8 threads, and 8 processes on one database file, x 200
calls against balance B at cost c: exactly floor(B / c) admitted, nothing lost, nothing
double-charged; auto-recharge fires once per crossing and never past its monthly limit."""

from __future__ import annotations

import multiprocessing
import threading
from decimal import Decimal
from typing import Any

import pytest

from gateway.credits import CreditService

from . import _workers

WORKERS, CALLS = 8, 200
RECHARGE = {"below": "5", "amount": "10", "monthly_limit": "30"}


def _threads(
    url: str, settings: dict[str, Any], cost: Decimal, fund: Decimal, batched: bool = False
) -> int:
    service = _workers.make_service(url, **settings)
    service.account().purchase(fund)
    barrier = threading.Barrier(WORKERS)
    admitted = [0] * WORKERS

    def work(worker: int) -> None:
        barrier.wait()
        admitted[worker] = _workers.run_calls(service, worker, CALLS, cost, batched)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    service.close()
    return sum(admitted)


def _processes(
    url: str, settings: dict[str, Any], cost: Decimal, fund: Decimal, batched: bool = False
) -> int:
    setup = _workers.make_service(url, **settings)
    setup.account().purchase(fund)
    setup.close()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    out = ctx.Queue()
    procs = [
        ctx.Process(
            target=_workers.process_worker,
            args=(url, settings, w, CALLS, str(cost), barrier, out, batched),
        )
        for w in range(WORKERS)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return sum(admitted for _, admitted in results)


RUNNERS = {"threads": _threads, "processes": _processes}
#: Spawning 8 interpreters takes a few seconds on 2 cores.
HOW = ["threads", pytest.param("processes", marks=pytest.mark.slow)]


def _check_ledger(service: CreditService, admitted: int, cost: Decimal) -> None:
    credits = service.account()
    credits.verify()
    rows = credits.requests()
    assert len(rows) == admitted  # one row per admitted call: none lost, none twice
    assert len({r.request_id for r in rows}) == admitted
    assert sum(r.cost for r in rows) == admitted * cost
    assert len(credits.history(kinds=["hold"])) == admitted  # refusals wrote nothing
    assert credits.balance().held == 0


@pytest.mark.parametrize("how", HOW)
def test_exactly_floor_b_over_c_admitted(store_url: str, how: str) -> None:
    fund, cost = Decimal("30"), Decimal("0.07")
    admitted = RUNNERS[how](store_url, {}, cost, fund)
    assert admitted == int(fund // cost) == 428
    service = _workers.make_service(store_url)
    _check_ledger(service, admitted, cost)
    assert service.account().balance().posted == fund - admitted * cost == Decimal("0.04")
    service.close()


@pytest.mark.parametrize("how", HOW)
def test_auto_recharge_once_per_crossing_within_the_monthly_limit(store_url: str, how: str) -> None:
    fund, cost = Decimal("10"), Decimal("0.05")
    settings = {"auto_recharge": RECHARGE}
    admitted = RUNNERS[how](store_url, settings, cost, fund)
    service = _workers.make_service(store_url, **settings)
    credits = service.account()
    kinds = [e.kind for e in reversed(credits.history()) if e.kind.startswith(("recharge", "auto"))]
    # Four crossings of $5: three recharges of $10 (the $30 monthly limit), then one skipped.
    assert kinds == ["recharge_requested", "auto_recharge"] * 3 + ["recharge_skipped"]
    recharged = sum(e.amount for e in credits.history(kinds=["auto_recharge"]))
    assert recharged == Decimal("30")
    # Demand (1600 x $0.05 = $80) exceeds supply ($10 + $30): all of it is spent, exactly.
    assert admitted == int((fund + recharged) // cost) == 800
    assert credits.balance().posted == fund + recharged - admitted * cost == 0
    _check_ledger(service, admitted, cost)
    service.close()


@pytest.mark.parametrize("how", HOW)
def test_batched_calls_never_spend_more_than_the_balance(store_url: str, how: str) -> None:
    """Through leases and batches (a gateway's path): every admitted call is held within the
    balance, written once, and the leases are all given back. Across processes a call may be
    refused while another process's lease has room it is not using, so the count is at most
    floor(B / c), not exactly."""
    fund, cost = Decimal("30"), Decimal("0.07")
    admitted = RUNNERS[how](store_url, {}, cost, fund, batched=True)
    assert 0 < admitted <= int(fund // cost) == 428
    if how == "threads":  # one process, one lease: refused exactly as the per-call path
        assert admitted == 428
    service = _workers.make_service(store_url)
    credits = service.account()
    credits.verify()
    rows = credits.requests()
    assert len(rows) == len({r.request_id for r in rows}) == admitted
    assert credits.balance().posted == fund - admitted * cost >= 0
    assert credits.balance().held == 0
    service.close()
