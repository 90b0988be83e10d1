"""Run the benchmarks of issue 8 and write bench/results/latest.{md,json}.

    python bench/run.py            # the full run (about 18-20 minutes on the 2-core machine)
    python bench/run.py --quick    # a smoke run in under 2 minutes -> bench/results/quick.*

The fake provider server (bench/fake_server.py) runs in its own process pinned to one core;
every measurement runs in a fresh client process (bench/workers.py) pinned to the other.
Within a client process the sides being compared take turns in blocks, and each scenario is
repeated for several rounds in new processes; tables show medians over rounds, and ratios
are medians of the per-round ratios (the min-max of those is in the JSON). See README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(ROOT))

from bench import ledger, proxy  # noqa: E402
from bench.clients import PROVIDERS  # noqa: E402

SDKS = ("openai", "anthropic", "google.genai", "httpx2", "pydantic")

# Targets of issue 8 (binding; never relax them here).
SYNC_CPU_RATIO_MAX = 1.10
ASYNC_THROUGHPUT_RATIO_MIN = 0.90
IMPORT_ADDED_MS_MAX = 100.0
LEDGER_SQLITE_MIN_PER_S = 5_000.0
RSS_GROWTH_MB_MAX = 5.0


@dataclass(frozen=True)
class Plan:
    """How much of everything to run."""

    rounds: int
    import_runs: int
    sync_calls: int
    sync_block: int
    warmup: int
    async_calls: int
    async_block: int
    concurrency: int
    stream_count: int
    stream_block: int
    fallback_calls: int
    fallback_block: int
    ledger_pairs: int
    ledger_rounds: int
    memory_checkpoints: tuple[int, int]
    memory_providers: tuple[str, ...]
    proxy_calls: int
    proxy_block: int
    proxy_streams: int
    proxy_stream_block: int
    proxy_sequential: int
    #: Also run bench/what_if.py's side in the proxy scenario (``--what-if``).
    proxy_what_if: bool = False


FULL = Plan(
    rounds=5,
    import_runs=15,
    sync_calls=500,
    sync_block=50,
    warmup=50,
    async_calls=2000,
    async_block=500,
    concurrency=50,
    stream_count=200,
    stream_block=20,
    fallback_calls=300,
    fallback_block=30,
    ledger_pairs=3000,
    ledger_rounds=3,
    memory_checkpoints=(1_000, 20_000),
    memory_providers=PROVIDERS,
    proxy_calls=2000,
    proxy_block=500,
    proxy_streams=400,
    proxy_stream_block=100,
    proxy_sequential=300,
)
QUICK = Plan(
    rounds=1,
    import_runs=3,
    sync_calls=200,
    sync_block=50,
    warmup=20,
    async_calls=300,
    async_block=150,
    concurrency=50,
    stream_count=30,
    stream_block=10,
    fallback_calls=100,
    fallback_block=25,
    ledger_pairs=400,
    ledger_rounds=1,
    memory_checkpoints=(500, 2_000),
    memory_providers=("openai",),
    proxy_calls=300,
    proxy_block=150,
    proxy_streams=100,
    proxy_stream_block=50,
    proxy_sequential=100,
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ---------------------------------------------------------------------------------------------
# Processes


@dataclass
class Cores:
    server: int | None
    client: int | None

    @classmethod
    def pick(cls, pin: bool) -> Cores:
        if not pin or not hasattr(os, "sched_getaffinity"):
            return cls(None, None)
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return cls(None, None)
        return cls(cpus[-1], cpus[0])


@contextmanager
def fake_server(cores: Cores) -> Iterator[str]:
    cmd = [sys.executable, str(HERE / "fake_server.py")]
    if cores.server is not None:
        cmd += ["--cpu", str(cores.server)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"the fake server did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.terminate()
        proc.wait(10)


def busy_cpu_s() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (all processes), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU seconds of this process and every child it has waited for."""
    import resource

    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def server_stats(server: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{server}/_stats", timeout=10) as response:
        data: dict[str, Any] = json.load(response)
        return data


class Runner:
    def __init__(self, server: str | None, cores: Cores) -> None:
        self.server = server
        self.cores = cores
        #: (server CPU s, requests, wall s) of each worker, to show the server kept up.
        self.server_load: list[tuple[float, int, float]] = []

    def worker(self, spec: dict[str, Any]) -> dict[str, Any]:
        spec = {**spec, "server": self.server, "cpu": self.cores.client}
        before = server_stats(self.server) if self.server else None
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(HERE / "workers.py"), json.dumps(spec)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=1800,
        )
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"worker failed: {spec}\n{proc.stderr[-4000:]}")
        if before is not None and self.server:
            after = server_stats(self.server)
            self.server_load.append(
                (after["cpu_s"] - before["cpu_s"], after["total"] - before["total"] - 1, wall)
            )
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return result


# ---------------------------------------------------------------------------------------------
# Scenario 1: import cost


_IMPORT_PROBE = """
import json, sys, time
t = time.perf_counter()
{stmt}
seconds = time.perf_counter() - t
rss = 0
for line in open('/proc/self/status'):
    if line.startswith('VmRSS:'):
        rss = int(line.split()[1]) / 1024
print(json.dumps({{'s': seconds, 'rss': rss, 'sdks': [m for m in {sdks!r} if m in sys.modules]}}))
"""


def import_cost(plan: Plan, cores: Cores) -> dict[str, Any]:
    """Fresh interpreters: bare, ``import gateway``, and (for reference) a ready client."""
    stmts = {
        "bare": "pass",
        "import gateway": "import gateway",
        "from gateway import Gateway": "from gateway import Gateway",
    }
    pin = ["taskset", "-c", str(cores.client)] if cores.client is not None else []
    if pin and subprocess.run(["which", "taskset"], capture_output=True).returncode != 0:
        pin = []
    wall: dict[str, list[float]] = {k: [] for k in stmts}
    inner: dict[str, list[float]] = {k: [] for k in stmts}
    rss: dict[str, list[float]] = {k: [] for k in stmts}
    sdks: dict[str, list[str]] = {}
    for _ in range(plan.import_runs):
        for name, stmt in stmts.items():
            code = _IMPORT_PROBE.format(stmt=stmt, sdks=SDKS)
            started = time.perf_counter()
            proc = subprocess.run(
                [*pin, sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT
            )
            wall[name].append(time.perf_counter() - started)
            data = json.loads(proc.stdout)
            inner[name].append(data["s"])
            rss[name].append(data["rss"])
            sdks[name] = data["sdks"]
    out: dict[str, dict[str, Any]] = {
        name: {
            "process_wall_ms": _median(wall[name]) * 1e3,
            "import_ms": _median(inner[name]) * 1e3,
            "rss_mb": _median(rss[name]),
            "modules_loaded": sdks[name],
        }
        for name in stmts
    }
    bare = out["bare"]
    for name in stmts:
        out[name]["added_ms"] = out[name]["process_wall_ms"] - bare["process_wall_ms"]
        out[name]["added_rss_mb"] = out[name]["rss_mb"] - bare["rss_mb"]
    return out


# ---------------------------------------------------------------------------------------------
# Scenarios 2-5 and 7: through the workers


def rounds_of(
    runner: Runner, plan: Plan, spec: dict[str, Any], rounds: int, label: str
) -> list[dict[str, Any]]:
    results = []
    for r in range(rounds):
        log(f"  {label} round {r + 1}/{rounds}")
        results.append(runner.worker(spec))
    return results


def summarise(results: list[dict[str, Any]], metrics: tuple[str, ...]) -> dict[str, Any]:
    """Medians over rounds of each side's metrics, and per-round ratios to ``raw``."""
    sides: dict[str, dict[str, Any]] = {}
    names = list(results[0]["sides"])
    for name in names:
        entry: dict[str, Any] = {}
        for metric in metrics:
            values = [r["sides"][name][metric] for r in results if metric in r["sides"][name]]
            if values:
                entry[metric] = _median(values)
                entry[f"{metric}_rounds"] = values
        if name != "raw" and "raw" in names:
            for metric in ("cpu_us", "calls_per_s", "ttfc_wall_us", "ttfc_cpu_us"):
                if metric not in results[0]["sides"][name]:
                    continue
                ratios = [r["sides"][name][metric] / r["sides"]["raw"][metric] for r in results]
                entry[f"{metric}_ratio"] = _median(ratios)
                entry[f"{metric}_ratio_range"] = [min(ratios), max(ratios)]
            blocks = [r["block_ratios"][name] for r in results if name in r.get("block_ratios", {})]
            if blocks:
                entry["cpu_us_block_ratio"] = _median(blocks)
        sides[name] = entry
    return {"sides": sides, "pending": results[0].get("pending", {}), "rounds": len(results)}


def gateway_sides(with_credits: bool) -> list[str]:
    return ["raw", "gateway", "gateway_credits"] if with_credits else ["raw", "gateway"]


def sync_scenario(runner: Runner, plan: Plan) -> dict[str, Any]:
    out = {}
    for provider in PROVIDERS:
        spec = {
            "scenario": "sync",
            "provider": provider,
            "sides": gateway_sides(True),
            "calls": plan.sync_calls,
            "block": plan.sync_block,
            "warmup": plan.warmup,
        }
        results = rounds_of(runner, plan, spec, plan.rounds, f"sync {provider}")
        out[provider] = summarise(results, ("cpu_us", "wall_us"))
    return out


def async_scenario(runner: Runner, plan: Plan) -> dict[str, Any]:
    out = {}
    for provider in PROVIDERS:
        spec = {
            "scenario": "async",
            "provider": provider,
            "sides": gateway_sides(True),
            "calls": plan.async_calls,
            "block": plan.async_block,
            "concurrency": plan.concurrency,
            "warmup": plan.concurrency,
        }
        rounds = max(1, (plan.rounds + 1) // 2)
        results = rounds_of(runner, plan, spec, rounds, f"async {provider}")
        out[provider] = summarise(results, ("cpu_us", "wall_us", "calls_per_s"))
    return out


def stream_scenario(runner: Runner, plan: Plan) -> dict[str, Any]:
    out = {}
    for provider in PROVIDERS:
        spec = {
            "scenario": "stream",
            "provider": provider,
            "sides": gateway_sides(True),
            "streams": plan.stream_count,
            "block": plan.stream_block,
            "warmup": 5,
        }
        rounds = max(1, (plan.rounds + 1) // 2)
        results = rounds_of(runner, plan, spec, rounds, f"stream {provider}")
        out[provider] = summarise(
            results,
            (
                "cpu_us",
                "wall_us",
                "ttfc_wall_us",
                "ttfc_cpu_us",
                "cpu_us_per_chunk",
                "content_chunks",
            ),
        )
    return out


def fallback_scenario(runner: Runner, plan: Plan) -> dict[str, Any]:
    out = {}
    for provider in PROVIDERS:
        spec = {
            "scenario": "fallback",
            "provider": provider,
            "sides": ["raw", "raw_fallback", "gateway_fallback"],
            "calls": plan.fallback_calls,
            "block": plan.fallback_block,
            "warmup": 10,
        }
        rounds = max(1, (plan.rounds + 1) // 2)
        results = rounds_of(runner, plan, spec, rounds, f"fallback {provider}")
        out[provider] = summarise(results, ("cpu_us", "wall_us"))
    return out


def memory_scenario(runner: Runner, plan: Plan) -> dict[str, Any]:
    out: dict[str, Any] = {}
    first, last = plan.memory_checkpoints
    for provider in plan.memory_providers:
        out[provider] = {}
        for side in ("raw", "gateway", "gateway_credits"):
            spec = {
                "scenario": "memory",
                "provider": provider,
                "sides": [side],
                "checkpoints": [first, last],
            }
            log(f"  memory {provider} {side}")
            result = runner.worker(spec)
            if result.get("pending"):
                out[provider][side] = {"pending": result["pending"][side]}
                continue
            rss = result["sides"][side]["rss_mb"]
            out[provider][side] = {
                "rss_first_mb": rss[str(first)],
                "rss_last_mb": rss[str(last)],
                "growth_mb": rss[str(last)] - rss[str(first)],
            }
    return {"checkpoints": [first, last], "providers": out}


def ledger_scenario(runner: Runner, plan: Plan) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for store in ("sqlite", "postgresql"):
        why = ledger.available(store)
        if why is not None:
            out[store] = {"pending": why}
            continue
        if store == "sqlite":
            out[store] = ledger_rows(runner, plan, store, None)
            continue
        try:
            pg = ledger.Postgres.open(runner.cores.server)
        except ledger.NotRun as exc:
            log(f"  ledger postgresql: {exc}")
            out[store] = {"pending": str(exc)}
            continue
        try:
            where = "BENCH_POSTGRES_URL" if pg.external else "a throwaway server"
            pinned = "" if pg.pinned is None else f", pinned to core {pg.pinned}"
            log(f"  ledger postgresql on {where}{pinned}")
            out[store] = ledger_rows(runner, plan, store, pg)
        finally:
            pg.close()
    return out


def ledger_rows(
    runner: Runner, plan: Plan, store: str, pg: ledger.Postgres | None
) -> dict[str, Any]:
    """Both paths (batched, per call) x 1 thread, 8 threads and 8 processes on ``store``,
    ``plan.ledger_rounds`` rounds each."""
    out: dict[str, Any] = {}
    for path, workers, mode in (
        (path, workers, mode)
        for path in ("batched", "per_call")
        for workers, mode in ((1, "threads"), (8, "threads"), (8, "processes"))
    ):
        spec: dict[str, Any] = {
            "scenario": "ledger",
            "store": store,
            "workers": workers,
            "mode": mode,
            "path": path,
            "pairs": max(50, plan.ledger_pairs // workers),
        }
        label = f"{workers} {'thread' if mode == 'threads' else 'process'}"
        label += "es" if mode == "processes" and workers > 1 else ""
        label += "s" if mode == "threads" and workers > 1 else ""
        label = f"{path.replace('_', ' ')}, {label}"
        results = []
        log_errors: list[str] = []
        for r in range(plan.ledger_rounds):
            log(f"  ledger {store} {label} round {r + 1}/{plan.ledger_rounds}")
            if pg is not None:
                spec |= {"url": pg.new_url(), "server_pid": pg.server_pid}
            seen = pg.log.stat().st_size if pg is not None and pg.log else 0
            results.append(runner.worker(spec))
            if pg is not None and pg.log:  # serialisation failures, lock time-outs, ...
                with pg.log.open(errors="replace") as server_log:
                    server_log.seek(seen)
                    log_errors += [line for line in server_log if "ERROR:" in line]
        row: dict[str, Any] = {
            "pairs_per_s": _median([r["pairs_per_s"] for r in results]),
            "cpu_us_per_pair": _median([r["cpu_us_per_pair"] for r in results]),
            "pairs_per_s_rounds": [r["pairs_per_s"] for r in results],
            "checks": [(r["check_spent_usd"], r["check_expected_usd"]) for r in results],
        }
        server_cpu = [r["server_cpu_us_per_pair"] for r in results if r["server_cpu_us_per_pair"]]
        if server_cpu:
            row["server_cpu_us_per_pair"] = _median(server_cpu)
        if pg is not None and pg.log:
            row["server_log_errors"] = log_errors
            if log_errors:
                log(f"  {len(log_errors)} ERROR lines in the server's log, e.g. {log_errors[0]}")
        out[label] = row
    return out


# ---------------------------------------------------------------------------------------------
# Targets and the report


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None or value != value:
        return "–"
    return f"{value:,.{digits}f}"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}x"


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    imp = results.get("import")
    if imp:
        added = imp["import gateway"]["added_ms"]
        loaded = [m for m in imp["import gateway"]["modules_loaded"] if m != "pydantic"]
        ok = added < IMPORT_ADDED_MS_MAX and not loaded
        rows.append(
            {
                "target": "`import gateway` adds < 100 ms, imports no provider SDK",
                "measured": f"+{added:.0f} ms, SDKs imported: {', '.join(loaded) or 'none'}",
                "met": ok,
            }
        )
    sync = results.get("sync")
    if sync:
        for provider, data in sync.items():
            sides = data["sides"]
            credited = "gateway_credits" in sides
            side = "gateway_credits" if credited else "gateway"
            ratio = sides[side].get("cpu_us_ratio")
            rows.append(
                {
                    "target": f"sync CPU/call <= 1.10x raw, {provider}, credits on",
                    "measured": f"{_ratio(ratio)}"
                    + ("" if credited else " (credits pending: measured without credits)"),
                    "met": ratio is not None and ratio <= SYNC_CPU_RATIO_MAX and credited,
                }
            )
    asy = results.get("async")
    if asy:
        for provider, data in asy.items():
            sides = data["sides"]
            credited = "gateway_credits" in sides
            side = "gateway_credits" if credited else "gateway"
            ratio = sides[side].get("calls_per_s_ratio")
            rows.append(
                {
                    "target": f"async throughput >= 0.90x raw, {provider}",
                    "measured": f"{_ratio(ratio)}"
                    + (" with credits" if credited else " (credits pending: without credits)"),
                    "met": ratio is not None and ratio >= ASYNC_THROUGHPUT_RATIO_MIN,
                }
            )
    led = results.get("ledger")
    if led:
        sqlite = led.get("sqlite", {})
        if "pending" in sqlite:
            rows.append(
                {
                    "target": "ledger SQLite >= 5,000 hold+settle/s, one process",
                    "measured": sqlite["pending"],
                    "met": None,
                }
            )
        elif "batched, 1 thread" in sqlite:
            rate = sqlite["batched, 1 thread"]["pairs_per_s"]
            per_call = sqlite.get("per call, 1 thread", {}).get("pairs_per_s", 0)
            rows.append(
                {
                    "target": "ledger SQLite >= 5,000 hold+settle/s, one process",
                    "measured": f"{rate:,.0f}/s (batched, as a gateway holds and settles; "
                    f"per call: {per_call:,.0f}/s)",
                    "met": rate >= LEDGER_SQLITE_MIN_PER_S,
                }
            )
    mem = results.get("memory")
    if mem:
        first, last = mem["checkpoints"]
        for provider, sides in mem["providers"].items():
            side = (
                "gateway_credits"
                if "rss_first_mb" in sides.get("gateway_credits", {})
                else "gateway"
            )
            growth = sides[side].get("growth_mb")
            full = (first, last) == FULL.memory_checkpoints
            rows.append(
                {
                    "target": f"RSS growth {first:,} -> {last:,} calls < 5 MB, {provider}",
                    "measured": f"{_fmt(growth, 2)} MB ({side.replace('_', ' + ')})"
                    + ("" if full else " (quick run: fewer calls than the target's)"),
                    "met": growth is not None and growth < RSS_GROWTH_MB_MAX if full else None,
                }
            )
    if results.get("proxy"):
        rows += proxy.target_rows(results["proxy"])
    return rows


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"# Benchmark results ({meta['mode']})",
        "",
        f"Command: `{meta['command']}`  ",
        f"When: {meta['when']}; {meta['machine']}; Python {meta['python']}; {meta['versions']}  ",
        f"Client pinned to core {meta['client_core']}, fake server to core {meta['server_core']}; "
        f"{meta['rounds']} rounds (async, stream, fallback, proxy: "
        f"{max(1, (meta['rounds'] + 1) // 2)}); "
        "medians over rounds; CPU = client user+sys per call.  ",
        f"Fake server: {_fmt(meta.get('server_cpu_us_per_request'), 1)} µs CPU per request, "
        f"at most {_fmt(meta.get('server_busy_max_pct'), 0)}% busy during any measurement. "
        f"Other processes used {_fmt(meta.get('others_cpu_pct'), 0)}% of the machine's CPU "
        f"during the run ({meta['seconds']:.0f} s).",
    ]
    lines += _table(
        "Targets",
        "target | measured | met",
        "lll",
        ([row["target"], row["measured"], _MET[row["met"]]] for row in results["targets"]),
    )

    imp = results.get("import")
    if imp:
        lines += _table(
            "1. Import (fresh interpreter, median of runs)",
            "statement | process wall ms | added ms | import ms (in-process) | RSS MiB "
            "| added MiB | modules loaded",
            "lrrrrrl",
            (
                [
                    f"`{name}`",
                    _fmt(row["process_wall_ms"], 1),
                    _fmt(row["added_ms"], 1),
                    _fmt(row["import_ms"], 1),
                    _fmt(row["rss_mb"], 1),
                    _fmt(row["added_rss_mb"], 1),
                    ", ".join(row["modules_loaded"]) or "none",
                ]
                for name, row in imp.items()
            ),
        )

    sync = results.get("sync")
    if sync:
        lines += _table(
            "2. Sequential sync calls (CPU µs per call; route of 3 targets, first healthy)",
            "provider | raw SDK | gateway | ratio | gateway + credits | ratio | raw wall µs "
            "| gateway wall µs",
            "lrrrrrrr",
            ([provider, *_compared(s, c, "cpu_us", "wall_us")] for provider, s, c in _sides(sync)),
            _pending_notes(sync),
        )

    asy = results.get("async")
    if asy:
        lines += _table(
            "3. Async, 50 in flight (calls per second; CPU µs per call)",
            "provider | raw calls/s | gateway calls/s | ratio | gateway + credits calls/s "
            "| ratio | raw CPU | gateway CPU",
            "lrrrrrrr",
            (
                [provider, *_compared(s, c, "calls_per_s", "cpu_us")]
                for provider, s, c in _sides(asy)
            ),
            _pending_notes(asy),
        )

    stream = results.get("stream")
    if stream:
        lines += _table(
            "4. Streams of 50 chunks (sync; time to first content chunk, CPU per stream)",
            "provider | raw TTFC µs | gateway TTFC µs | raw CPU/stream µs "
            "| gateway CPU/stream µs | ratio | raw CPU/chunk | gateway CPU/chunk",
            "lrrrrrrr",
            (
                [
                    provider,
                    _fmt(s["raw"]["ttfc_wall_us"]),
                    _fmt(s["gateway"]["ttfc_wall_us"]),
                    _fmt(s["raw"]["cpu_us"]),
                    _fmt(s["gateway"]["cpu_us"]),
                    _ratio(s["gateway"].get("cpu_us_ratio")),
                    _fmt(s["raw"]["cpu_us_per_chunk"], 1),
                    _fmt(s["gateway"]["cpu_us_per_chunk"], 1),
                ]
                for provider, s, _ in _sides(stream)
            ),
            _pending_notes(stream),
        )

    fb = results.get("fallback")
    if fb:
        lines += _table(
            "5. Fallback: first target answers 429, no retry, no wait (CPU µs per call)",
            "provider | one raw call | raw 429 + raw call (by hand) | gateway fallback "
            "| vs one raw call | vs by hand | gateway wall µs",
            "lrrrrrr",
            (
                [
                    provider,
                    _fmt(s["raw"]["cpu_us"]),
                    _fmt(s["raw_fallback"]["cpu_us"]),
                    _fmt(s["gateway_fallback"]["cpu_us"]),
                    _ratio(s["gateway_fallback"].get("cpu_us_ratio")),
                    _ratio(s["gateway_fallback"]["cpu_us"] / s["raw_fallback"]["cpu_us"]),
                    _fmt(s["gateway_fallback"]["wall_us"]),
                ]
                for provider, s, _ in _sides(fb)
            ),
        )

    led = results.get("ledger")
    if led:
        lines += _table(
            "6. Ledger alone (hold + settle pairs per second)",
            "store | path, workers | pairs/s | CPU µs per pair | server CPU µs per pair",
            "llrrr",
            _ledger_rows(led),
        )

    mem = results.get("memory")
    if mem:
        first, last = mem["checkpoints"]
        lines += _table(
            f"7. Memory: RSS after {first:,} and {last:,} sequential calls (MiB)",
            f"provider | side | after {first:,} | after {last:,} | growth",
            "llrrr",
            (
                [provider, side, row["pending"], "", ""]
                if "pending" in row
                else [
                    provider,
                    side,
                    _fmt(row["rss_first_mb"], 1),
                    _fmt(row["rss_last_mb"], 1),
                    _fmt(row["growth_mb"], 2),
                ]
                for provider, sides in mem["providers"].items()
                for side, row in sides.items()
            ),
        )
    if results.get("proxy"):
        lines += proxy.markdown(results["proxy"], _table)
    return "\n".join(lines) + "\n"


_MET = {True: "yes", False: "**NO**", None: "pending"}


def _table(
    title: str,
    header: str,
    align: str,
    rows: Iterable[list[str]],
    notes: list[str] | None = None,
) -> list[str]:
    """A section of the report: a blank line, ``## title``, a table (``header``: the column
    names joined by ``|``; ``align``: one letter per column, ``l`` text or ``r`` numbers) and,
    when ``notes`` is given, a blank line and the notes."""
    lines = [
        "",
        f"## {title}",
        "",
        f"| {header} |",
        "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|",
    ]
    lines += [f"| {' | '.join(cells)} |" for cells in rows]
    if notes is not None:
        lines += ["", *notes]
    return lines


def _sides(section: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Each provider's sides, and its ``gateway_credits`` side (empty when not measured)."""
    for provider, data in section.items():
        yield provider, data["sides"], data["sides"].get("gateway_credits", {})


def _compared(sides: dict[str, Any], credits: dict[str, Any], metric: str, extra: str) -> list[str]:
    """``metric`` for raw, gateway (and its ratio), gateway + credits (and its ratio), then
    ``extra`` for raw and gateway."""
    raw, gateway = sides["raw"], sides["gateway"]
    return [
        _fmt(raw[metric]),
        _fmt(gateway[metric]),
        _ratio(gateway.get(f"{metric}_ratio")),
        _fmt(credits.get(metric)),
        _ratio(credits.get(f"{metric}_ratio")),
        _fmt(raw[extra]),
        _fmt(gateway[extra]),
    ]


def _ledger_rows(led: dict[str, Any]) -> Iterator[list[str]]:
    for store, data in led.items():
        if "pending" in data:
            yield [store, "–", data["pending"], "–", "–"]
            continue
        for label, row in data.items():
            yield [
                store,
                label,
                _fmt(row["pairs_per_s"]),
                _fmt(row["cpu_us_per_pair"]),
                _fmt(row.get("server_cpu_us_per_pair")),
            ]


def _pending_notes(section: dict[str, Any]) -> list[str]:
    notes = sorted({f"{k}: {v}" for d in section.values() for k, v in d["pending"].items()})
    return [f"Pending: {n}" for n in notes]


def _versions() -> str:
    from importlib.metadata import version

    names = ("openai", "anthropic", "google-genai", "httpx2", "pydantic")
    return ", ".join(f"{n} {version(n)}" for n in names)


ALL = ("import", "sync", "async", "stream", "fallback", "ledger", "memory", "proxy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Gateway benchmarks (issue 8)")
    parser.add_argument("--quick", action="store_true", help="a smoke run in under 2 minutes")
    parser.add_argument("--only", default=",".join(ALL), help=f"comma list of {', '.join(ALL)}")
    parser.add_argument("--rounds", type=int, default=None, help="override the plan's rounds")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument("--out", default=None, help="output stem (default results/latest)")
    parser.add_argument(
        "--what-if", action="store_true", help="proxy: also a gateway with bench/what_if.py"
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.rounds:
        plan = Plan(**{**plan.__dict__, "rounds": args.rounds})
    if args.what_if:
        plan = Plan(**{**plan.__dict__, "proxy_what_if": True})
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(ALL)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    out = Path(args.out) if args.out else HERE / "results" / ("quick" if args.quick else "latest")
    cores = Cores.pick(not args.no_pin)
    # A SIGTERM unwinds like Ctrl-C, so the fake server and a throwaway PostgreSQL are stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started = time.perf_counter()
    busy0, own0 = busy_cpu_s(), own_cpu_s()
    results: dict[str, Any] = {}
    steps: dict[str, Callable[[Runner, Plan], dict[str, Any]]] = {
        "sync": sync_scenario,
        "async": async_scenario,
        "stream": stream_scenario,
        "fallback": fallback_scenario,
        "memory": memory_scenario,
        "proxy": proxy.scenario,
    }
    if "import" in only:
        log("import cost")
        results["import"] = import_cost(plan, cores)
    with fake_server(cores) as server:
        runner = Runner(server, cores)
        for name in ("sync", "async", "stream", "fallback", "memory", "proxy"):
            if name in only:
                log(name)
                results[name] = steps[name](runner, plan)
        load = runner.server_load
    if "ledger" in only:
        log("ledger")
        results["ledger"] = ledger_scenario(Runner(None, cores), plan)
    wall = time.perf_counter() - started
    busy1, own1 = busy_cpu_s(), own_cpu_s()
    others = None
    if busy0 is not None and busy1 is not None:
        others = max(0.0, (busy1 - busy0) - (own1 - own0)) / (wall * (os.cpu_count() or 1)) * 100
    command = "python bench/run.py" + (" " + " ".join(sys.argv[1:]) if argv is None else "")
    results["meta"] = {
        "mode": "quick" if args.quick else "full",
        "command": command.strip(),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "python": platform.python_version(),
        "versions": _versions(),
        "client_core": cores.client,
        "server_core": cores.server,
        "rounds": plan.rounds,
        "plan": plan.__dict__,
        "seconds": wall,
        "others_cpu_pct": others,
        "server_cpu_us_per_request": (
            sum(c for c, _, _ in load) / max(1, sum(n for _, n, _ in load)) * 1e6 if load else None
        ),
        "server_busy_max_pct": max((c / w * 100 for c, _, w in load), default=None),
    }
    results["targets"] = targets(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    text = markdown(results)
    out.with_suffix(".md").write_text(text)
    print(text)
    log(f"done in {results['meta']['seconds']:.0f} s -> {out}.md / .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
