"""Several collectors of one ended batch at once: real processes on PostgreSQL, and threads
on both stores (each with its own gateway, or sharing one). Each item is charged exactly
once: one request row per succeeded item, one release per errored item, the ledger's totals
and verify()."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from gateway.providers._fake_batch import FAKE_ITEM_SECONDS
from gateway.testing.clock import ManualClock

from . import _collector

COLLECTORS, ITEMS = 4, 6
D = Decimal
Seen = list[tuple[str, str, str]]


def _ended_batch(store_url: str) -> tuple[str, datetime]:
    """A batch of ITEMS items (its second scripted to error), and a time after it ended."""
    clock = ManualClock()
    with _collector.open_gateway(store_url, clock.now()) as gw:
        gw.credits.grant(D("1"))
        requests = [
            {"custom_id": f"q{i}", "body": {"messages": [{"role": "user", "content": f"n{i}"}]}}
            for i in range(ITEMS)
        ]
        batch = gw.batches.create(model="cheap", requests=requests)
    return batch.id, clock.now() + timedelta(seconds=(ITEMS + 1) * FAKE_ITEM_SECONDS)


def _processes(store_url: str, batch_id: str, now: datetime) -> list[Seen]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(COLLECTORS)
    out = ctx.Queue()
    procs = [
        ctx.Process(
            target=_collector.process_collector,
            args=(store_url, now.isoformat(), batch_id, barrier, out),
        )
        for _ in range(COLLECTORS)
    ]
    for p in procs:
        p.start()
    seen = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return seen


def _threads(store_url: str, batch_id: str, when: datetime, *, shared: bool) -> list[Seen]:
    one = _collector.open_gateway(store_url, when) if shared else None
    barrier = threading.Barrier(COLLECTORS)
    seen: list[Seen] = [[] for _ in range(COLLECTORS)]
    errors: list[BaseException] = []

    def work(n: int) -> None:
        gw = one or _collector.open_gateway(store_url, when)
        try:
            barrier.wait(timeout=60)
            seen[n] = _collector.collect(gw, batch_id)
        except BaseException as exc:  # reported by the test
            errors.append(exc)
        finally:
            if one is None:
                gw.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(COLLECTORS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if one is not None:
        one.close()
    assert errors == []
    return seen


RUNNERS: dict[str, Callable[[str, str, datetime], list[Seen]]] = {
    "processes": _processes,
    "threads": lambda url, batch_id, now: _threads(url, batch_id, now, shared=False),
    "threads-sharing-a-gateway": lambda url, batch_id, now: _threads(
        url, batch_id, now, shared=True
    ),
}


@pytest.mark.parametrize("how", ["threads", "threads-sharing-a-gateway"])
def test_concurrent_collectors_charge_each_item_once(store_url: str, how: str) -> None:
    _collect_at_once(store_url, how)


@pytest.mark.slow
@pytest.mark.parametrize("store_kind", ["postgresql"])  # spawning 4 interpreters: ~15 s
def test_concurrent_collector_processes_on_postgresql_charge_each_item_once(
    store_url: str,
) -> None:
    _collect_at_once(store_url, "processes")


def _collect_at_once(store_url: str, how: str) -> None:
    batch_id, now = _ended_batch(store_url)
    seen = RUNNERS[how](store_url, batch_id, now)

    first = seen[0]
    assert all(s == first for s in seen)  # every collector saw the same items and costs
    outcomes = {custom_id: outcome for custom_id, outcome, _ in first}
    assert outcomes.pop(_collector.ERRORED) == "errored"
    assert set(outcomes.values()) == {"succeeded"} and len(outcomes) == ITEMS - 1
    costs = {custom_id: D(cost) for custom_id, _, cost in first}
    assert costs[_collector.ERRORED] == 0 and all(costs[c] > 0 for c in outcomes)
    charged = sum(costs.values(), D(0))

    with _collector.open_gateway(store_url, now) as gw:
        credits = gw.credits
        credits.verify()
        rows = credits.requests()
        assert len(rows) == ITEMS - 1  # one row per succeeded item, however many collected
        assert sorted(r.cost for r in rows) == sorted(costs[c] for c in outcomes)
        assert len(credits.history(kinds=["settle"])) == ITEMS - 1
        assert len(credits.history(kinds=["release"])) == 1  # the errored item's hold
        assert len(credits.history(kinds=["hold"])) == ITEMS
        balance = credits.balance()
        assert balance.held == 0
        assert balance.available == D("1") - charged
        assert sum((r.cost for r in credits.usage(group_by="operation")), D(0)) == charged
