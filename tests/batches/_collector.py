"""A process (or thread) that collects one batch's results (tests/batches/test_collectors.py).

Importable by a spawned process, so it lives in a module of its own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway import Gateway
from gateway.testing.clock import ManualClock

#: The item every collector's fake provider scripts to error.
ERRORED = "q1"


def config(store_url: str) -> dict[str, Any]:
    return {
        "providers": {"fake": {}},
        "routes": {"cheap": {"targets": ["fake/small"]}},
        "credits": {"store": store_url},
        "pricing": {"fake/small": {"input": "1", "output": "2"}},
    }


def open_gateway(store_url: str, now: datetime) -> Gateway:
    gw = Gateway(config=config(store_url), clock=ManualClock(now))
    gw.adapter("fake").batch_script.error(ERRORED, "scripted error")  # type: ignore[attr-defined]
    return gw


def collect(gw: Gateway, batch_id: str) -> list[tuple[str, str, str]]:
    """(custom_id, outcome, cost) of every item."""
    return [(i.custom_id, i.outcome, str(i.cost)) for i in gw.batches.results(batch_id)]


def process_collector(store_url: str, now: str, batch_id: str, barrier: Any, out: Any) -> None:
    """Wait for every collector, then collect once and report what was seen."""
    with open_gateway(store_url, datetime.fromisoformat(now)) as gw:
        barrier.wait(timeout=60)
        out.put(collect(gw, batch_id))
