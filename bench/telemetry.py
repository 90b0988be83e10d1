"""What telemetry costs a call (issue 19), in-process on the fake provider (no network).

    python bench/telemetry.py                    # ~1 min: off vs on, sync calls and streams
    python bench/telemetry.py --calls 2000 --rounds 3

Sides, taking turns in one process (A B C, C B A, ...), CPU time per call, median of rounds:
``off`` is the default config (no ``telemetry:``: the null trace, nothing imported);
``on`` records every call through the OpenTelemetry SDK (spans to an exporter that drops
them, metrics to an in-memory reader), so it measures the gateway's instrumentation plus the
SDK's own work. ``hooks`` times the disabled path's hook calls alone (what ``off`` adds to a
call compared with a gateway without telemetry). Run it with ``PYTHONPATH`` pointing at another
checkout to compare ``off`` across versions.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import timeit
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway import Gateway

MESSAGES = [{"role": "user", "content": "Say hello in five words."}]


def config(telemetry: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "providers": {"fake": {}},
        "routes": {"bench": {"targets": ["fake/model"]}},
    }
    if telemetry:
        out["telemetry"] = {"opentelemetry": True}
    return out


def traced_gateway() -> Gateway | None:
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            SimpleSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )
    except ImportError:
        return None

    class Drop(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    from gateway.telemetry._otel import OpenTelemetry

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(Drop()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    gw = Gateway(config=config(True), rng=random.Random(1))
    gw._core.telemetry = OpenTelemetry(
        gw.config,
        gw._core.clock,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
    )
    return gw


def one_call(gw: Gateway) -> None:
    gw.chat.completions.create(model="bench", messages=MESSAGES, max_tokens=32)


def one_stream(gw: Gateway) -> None:
    for _ in gw.chat.completions.create(model="bench", messages=MESSAGES, stream=True):
        pass


def cpu_us_per_call(work: Callable[[Gateway], None], gw: Gateway, calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        work(gw)
    return (time.process_time() - started) / calls * 1e6


def null_hooks_ns() -> float:
    """The hook calls a non-streamed call makes with telemetry off, in ns."""
    from gateway.telemetry import NO_TELEMETRY, NULL_TRACE

    args = (None,) * 4
    start, trace = NO_TELEMETRY.start, NULL_TRACE

    def hooks() -> None:
        start(*args)  # type: ignore[arg-type]
        trace.attempt(None)  # type: ignore[arg-type]
        trace.answered(None, None, None)  # type: ignore[arg-type]

    runs = 200_000
    return min(timeit.repeat(hooks, number=runs, repeat=5)) / runs * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sides: dict[str, Gateway] = {"off": Gateway(config=config(False), rng=random.Random(1))}
    traced = traced_gateway()
    if traced is not None:
        sides["on"] = traced
    else:
        print("opentelemetry-sdk is not installed: measuring 'off' only")
    for name, work in (("call", one_call), ("stream", one_stream)):
        results: dict[str, list[float]] = {side: [] for side in sides}
        order = list(sides)
        for gw in sides.values():  # warm up: adapters made, code paths hot
            for _ in range(200):
                work(gw)
        for _ in range(args.rounds):
            for side in order:
                results[side].append(cpu_us_per_call(work, sides[side], args.calls))
            order.reverse()
        line = ", ".join(f"{s} {statistics.median(v):.1f}" for s, v in results.items())
        print(f"{name}: CPU µs per call (median of {args.rounds} rounds): {line}")
    print(f"hooks: the disabled path's hook calls per call: {null_hooks_ns():.0f} ns")


if __name__ == "__main__":
    main()
