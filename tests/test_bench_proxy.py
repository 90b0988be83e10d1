"""The proxy scenario of the benchmarks (bench/proxy.py): its arithmetic, and its client against
a real ``gateway serve`` with the credit account on (LiteLLM is not needed for either)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench import proxy
from bench.fake_server import ServerThread


def _round(**sides: tuple[float | None, float]) -> dict[str, Any]:
    """A worker's result: ``name=(proxy CPU µs, p50 ms)``."""
    return {
        "sides": {
            name: {"proxy_cpu_us": cpu, "p50_ms": p50, "p99_ms": p50 * 2}
            for name, (cpu, p50) in sides.items()
        }
    }


def test_summary_compares_each_round_with_its_own_direct_and_litellm_sides() -> None:
    rounds = [
        _round(direct=(None, 10.0), gateway=(1_000.0, 12.0), litellm=(10_000.0, 50.0)),
        _round(direct=(None, 20.0), gateway=(3_000.0, 21.0), litellm=(10_000.0, 80.0)),
        _round(direct=(None, 30.0), gateway=(2_000.0, 33.0), litellm=(5_000.0, 90.0)),
    ]
    summary = proxy.summarise(rounds)
    gateway = summary["gateway"]
    assert gateway["added_p50_ms"] == 2.0  # median of 2, 1, 3: not 22 - 20
    assert gateway["cpu_vs_litellm"] == pytest.approx(0.3)  # median of 0.1, 0.3, 0.4
    assert gateway["cpu_vs_litellm_range"] == pytest.approx([0.1, 0.4])
    assert "added_p50_ms" not in summary["direct"]
    assert "cpu_vs_litellm" not in summary["direct"]


def _report(ratio: float, added: float, billed: int) -> dict[str, Any]:
    side = {"proxy_cpu_us": ratio * 10_000, "cpu_vs_litellm": ratio, "added_p50_ms": added}
    stream = {**side, "added_ttfc_p50_ms": added}
    litellm = {"proxy_cpu_us": 10_000.0}
    return {
        "call": {"gateway": side, "litellm": litellm},
        "stream": {"gateway": stream, "litellm": litellm},
        "call_1": {},
        "ledger": {"gateway": {"requests_made": 10, "requests_billed": billed, "cost": "1"}},
    }


def test_targets_are_met_at_their_limits_and_missed_past_them() -> None:
    met = {row["target"]: row["met"] for row in proxy.target_rows(_report(0.15, 1.0, 10))}
    assert [v for k, v in met.items() if "non-streamed, credits on" in k] == [True]
    assert [v for k, v in met.items() if "streams, credits on" in k] == [True]
    assert all(met.values())
    rows = proxy.target_rows(_report(0.151, 1.01, 9))
    missed = {row["target"]: row["met"] for row in rows}
    assert [v for k, v in missed.items() if "non-streamed, credits on" in k] == [False]
    assert [v for k, v in missed.items() if "streams, credits on" in k] == [True]  # <= 0.20
    assert [v for k, v in missed.items() if "latency" in k] == [False, False]
    assert [v for k, v in missed.items() if "ledger" in k] == [False]


@pytest.fixture(scope="module")
def fake() -> Iterator[str]:
    with ServerThread() as running:
        yield running.url


@pytest.mark.slow
def test_the_client_measures_gateway_serve_and_its_ledger_bills_every_request(
    fake: str, tmp_path: Path
) -> None:
    gateway = proxy.start_gateway(fake, None, tmp_path)
    try:
        plan = SimpleNamespace(
            proxy_calls=20,
            proxy_block=10,
            concurrency=5,
            proxy_streams=0,
            proxy_stream_block=0,
            proxy_sequential=0,
        )
        spec = {**proxy._spec(plan, "call", fake, [gateway]), "server": fake}
        result = proxy.measure(spec)
    finally:
        gateway.stop()
    sides = result["sides"]
    assert set(sides) == {"direct", "gateway", "gateway_local"}
    assert sides["direct"]["proxy_cpu_us"] is None
    assert sides["gateway"]["p50_ms"] > 0 and sides["gateway_local"]["requests_per_s"] > 0
    # both gateway sides are served (and billed) by the one gateway process
    assert set(result["requests"]) == {"direct", "gateway"}
    billed, cost = proxy.gateway_billed(fake, tmp_path, "gateway")
    assert billed == result["requests"]["gateway"] > 40
    assert float(cost) > 0


def test_cpu_of_a_process_is_read_from_proc() -> None:
    import os
    import time

    before = proxy._cpu_s([os.getpid()])
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    assert proxy._cpu_s([os.getpid()]) - before >= 0.03
    assert proxy._cpu_s([2**22 + 12345]) == 0.0  # past pid_max: no such process, nothing
