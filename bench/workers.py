"""One round of one scenario in one fresh process: ``python bench/workers.py '<json spec>'``.

:mod:`bench.run` starts one of these per scenario, provider and round, pinned to a core of
its own, and reads the JSON object printed on the last line.

The sides being compared (``raw``, ``gateway``, ...) live in the same process and take turns
in blocks (A B, then B A, ...), so a noisy neighbour on this shared machine slows both alike
and the ratio stays put; rounds in fresh processes give the spread. Client CPU is
``time.process_time()`` (user + sys of the whole process, every thread included) around each
block only; warm-up calls (connections, lazy clients, first imports) are not counted.

Sides:

- ``raw``: the official SDK called directly (:func:`bench.clients.raw_sync`);
- ``raw_fallback``: the SDK, catching the first account's error and calling the second;
- ``gateway``: :class:`gateway.Gateway` on route ``bench`` (three targets, the first healthy);
- ``gateway_credits``: the same with a ``credits:`` section (SQLite in a temporary folder);
  reported as pending, and not run, while the client does not wire the credit account;
- ``gateway_fallback``: route ``bench`` whose first target answers 429 (no retry, no wait).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import clients

__all__ = ["SCENARIOS", "main", "rss_mb"]

#: Fault options of the failing first target in the fallback scenario.
FIRST_FAILS = "status=429,retry_after=0"


def rss_mb() -> float:
    """Resident set size of this process now, in MiB (Linux)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class Pending(Exception):
    """A side that cannot be measured yet (e.g. credits not wired into the client)."""


class _Builder:
    """Builds the sides of one spec; keeps what must outlive them (temporary folders)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self._tmp: list[tempfile.TemporaryDirectory[str]] = []

    def _config(self, side: str) -> dict[str, Any]:
        spec = self.spec
        db = None
        if side == "gateway_credits":
            tmp = tempfile.TemporaryDirectory(prefix="gateway-bench-")
            self._tmp.append(tmp)
            db = os.path.join(tmp.name, "credits.db")
        first_fails = FIRST_FAILS if side == "gateway_fallback" else None
        return clients.gateway_config(
            spec["server"], spec["provider"], credits_db=db, first_fails=first_fails
        )

    def _gateway_ready(self, side: str, gw: Any) -> None:
        if side == "gateway_credits":
            status = clients.credits_status(gw)
            if status != "on":
                raise Pending(status)
            clients.fund_credits(gw)

    def sync(self, side: str) -> clients.SyncSide:
        provider, server = self.spec["provider"], self.spec["server"]
        if side.startswith("gateway"):
            built, gw = clients.gateway_sync(self._config(side))
            self._gateway_ready(side, gw)
            return built
        if side == "raw_fallback":
            failing = clients.raw_sync(provider, server, FIRST_FAILS)
            healthy = clients.raw_sync(provider, server)

            def call() -> Any:
                try:
                    return failing.call()
                except Exception:
                    return healthy.call()

            def close() -> None:
                failing.close()
                healthy.close()

            return clients.SyncSide(call, healthy.stream, close)
        if side == "raw":
            return clients.raw_sync(provider, server)
        raise ValueError(f"unknown side {side!r}")

    def async_(self, side: str) -> clients.AsyncSide:
        provider, server = self.spec["provider"], self.spec["server"]
        if side.startswith("gateway"):
            built, gw = clients.gateway_async(self._config(side))
            self._gateway_ready(side, gw)
            return built
        if side == "raw":
            return clients.raw_async(provider, server)
        raise ValueError(f"unknown side {side!r}")

    def cleanup(self) -> None:
        for tmp in self._tmp:
            tmp.cleanup()


def _check(spec: dict[str, Any], side: str, response: Any) -> None:
    """Fail loudly if the calls are not what the benchmark says they are."""
    if not side.startswith("gateway"):
        return
    info = response.gateway
    if info.provider != spec["provider"]:
        raise AssertionError(f"{side}: answered by {info.provider}, not {spec['provider']}")
    expected = 2 if side == "gateway_fallback" else 1
    if len(info.attempts) != expected:
        raise AssertionError(f"{side}: {len(info.attempts)} attempts, expected {expected}")
    if side == "gateway_credits" and (response.usage is None or response.usage.cost is None):
        raise AssertionError(f"{side}: the response carries no cost")


def _build_all(
    spec: dict[str, Any], make: Callable[[str], Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    sides: dict[str, Any] = {}
    pending: dict[str, str] = {}
    for name in spec["sides"]:
        try:
            sides[name] = make(name)
        except Pending as why:
            pending[name] = str(why)
    return sides, pending


def _orders(names: list[str], blocks: int) -> list[list[str]]:
    """A B C, C B A, A B C, ...: each side is as often early as late."""
    return [names if i % 2 == 0 else names[::-1] for i in range(blocks)]


def _block_ratios(blocks: dict[str, list[float]], base: str) -> dict[str, float]:
    """Median over blocks of each side's CPU over ``base``'s in the same block."""
    out = {}
    for name, values in blocks.items():
        if name != base and base in blocks:
            out[name] = statistics.median(v / b for v, b in zip(values, blocks[base], strict=True))
    return out


# ---------------------------------------------------------------------------------------------
# Scenarios


def sync_calls(spec: dict[str, Any]) -> dict[str, Any]:
    """Sequential non-streamed calls (scenarios 2 and 5)."""
    builder = _Builder(spec)
    sides, pending = _build_all(spec, builder.sync)
    for name, side in sides.items():
        for _ in range(spec["warmup"]):
            response = side.call()
        _check(spec, name, response)
    block, blocks = spec["block"], spec["calls"] // spec["block"]
    cpu = {name: [] for name in sides}  # type: dict[str, list[float]]
    wall = {name: 0.0 for name in sides}
    gc.collect()
    for order in _orders(list(sides), blocks):
        for name in order:
            call = sides[name].call
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(block):
                call()
            cpu[name].append(time.process_time() - c0)
            wall[name] += time.perf_counter() - w0
    for side in sides.values():
        side.close()
    builder.cleanup()
    n = block * blocks
    return {
        "sides": {
            name: {"cpu_us": sum(cpu[name]) / n * 1e6, "wall_us": wall[name] / n * 1e6}
            for name in sides
        },
        "block_ratios": _block_ratios(cpu, "raw"),
        "pending": pending,
        "calls": n,
    }


def async_calls(spec: dict[str, Any]) -> dict[str, Any]:
    """Calls with ``concurrency`` in flight on one event loop (scenario 3)."""
    builder = _Builder(spec)
    concurrency = spec["concurrency"]

    async def run() -> dict[str, Any]:
        sides, pending = _build_all(spec, builder.async_)
        for name, side in sides.items():
            for _ in range(max(1, spec["warmup"] // concurrency)):  # opens every connection
                responses = await asyncio.gather(*(side.call() for _ in range(concurrency)))
            _check(spec, name, responses[0])
        block, blocks = spec["block"], spec["calls"] // spec["block"]
        cpu = {name: [] for name in sides}  # type: dict[str, list[float]]
        wall = {name: 0.0 for name in sides}
        gc.collect()
        for order in _orders(list(sides), blocks):
            for name in order:
                call = sides[name].call
                remaining = block

                async def worker() -> None:
                    nonlocal remaining
                    while remaining > 0:
                        remaining -= 1
                        await call()  # noqa: B023  (each block awaits its own workers)

                c0, w0 = time.process_time(), time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(concurrency)))
                cpu[name].append(time.process_time() - c0)
                wall[name] += time.perf_counter() - w0
        for side in sides.values():
            await side.close()
        n = block * blocks
        return {
            "sides": {
                name: {
                    "cpu_us": sum(cpu[name]) / n * 1e6,
                    "wall_us": wall[name] / n * 1e6,
                    "calls_per_s": n / wall[name],
                }
                for name in sides
            },
            "block_ratios": _block_ratios(cpu, "raw"),
            "pending": pending,
            "calls": n,
        }

    try:
        return asyncio.run(run())
    finally:
        builder.cleanup()


def streams(spec: dict[str, Any]) -> dict[str, Any]:
    """Sequential sync streams: time to first content chunk, CPU per stream (scenario 4)."""
    builder = _Builder(spec)
    sides, pending = _build_all(spec, builder.sync)
    chunks: dict[str, int] = {}
    for name, side in sides.items():
        for _ in range(spec["warmup"]):
            chunks[name] = sum(1 for _ in side.stream())
    block, blocks = spec["block"], spec["streams"] // spec["block"]
    cpu = {name: [] for name in sides}  # type: dict[str, list[float]]
    wall = {name: 0.0 for name in sides}
    ttfc_wall: dict[str, list[float]] = {name: [] for name in sides}
    ttfc_cpu: dict[str, list[float]] = {name: [] for name in sides}
    gc.collect()
    for order in _orders(list(sides), blocks):
        for name in order:
            stream = sides[name].stream
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(block):
                c, w = time.process_time(), time.perf_counter()
                iterator = stream()
                next(iterator)
                ttfc_wall[name].append(time.perf_counter() - w)
                ttfc_cpu[name].append(time.process_time() - c)
                for _ in iterator:
                    pass
            cpu[name].append(time.process_time() - c0)
            wall[name] += time.perf_counter() - w0
    for side in sides.values():
        side.close()
    builder.cleanup()
    n = block * blocks
    return {
        "sides": {
            name: {
                "cpu_us": sum(cpu[name]) / n * 1e6,
                "wall_us": wall[name] / n * 1e6,
                "ttfc_wall_us": statistics.median(ttfc_wall[name]) * 1e6,
                "ttfc_cpu_us": statistics.median(ttfc_cpu[name]) * 1e6,
                "content_chunks": chunks[name],
                "cpu_us_per_chunk": sum(cpu[name]) / n / chunks[name] * 1e6,
            }
            for name in sides
        },
        "block_ratios": _block_ratios(cpu, "raw"),
        "pending": pending,
        "streams": n,
    }


def memory(spec: dict[str, Any]) -> dict[str, Any]:
    """RSS after each checkpoint of sequential calls, one side per process (scenario 7).

    ``gc.collect()`` runs before each reading, so the figure is what stays alive.
    """
    builder = _Builder(spec)
    (name,) = spec["sides"]
    sides, pending = _build_all(spec, builder.sync)
    if pending:
        return {"sides": {}, "pending": pending}
    side = sides[name]
    done = 0
    rss: dict[str, float] = {}
    for checkpoint in spec["checkpoints"]:
        for _ in range(checkpoint - done):
            side.call()
        done = checkpoint
        gc.collect()
        rss[str(checkpoint)] = rss_mb()
    side.close()
    builder.cleanup()
    return {"sides": {name: {"rss_mb": rss}}, "pending": pending}


def proxy(spec: dict[str, Any]) -> dict[str, Any]:
    """The client of scenario 8: every proxy side in turns (bench/proxy.py)."""
    from bench import proxy as proxy_scenario

    return proxy_scenario.measure(spec)


SCENARIOS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "sync": sync_calls,
    "fallback": sync_calls,
    "async": async_calls,
    "stream": streams,
    "memory": memory,
    "proxy": proxy,
}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(args[0])
    cpu = spec.get("cpu")
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    if spec["scenario"] == "ledger":
        from bench import ledger

        result = ledger.run(spec)
    else:
        result = SCENARIOS[spec["scenario"]](spec)
    result["rss_mb_end"] = rss_mb()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
