"""Scenario 8 (issue 14): the gateway as an HTTP proxy, against LiteLLM's proxy and a floor.

    python bench/run.py --only proxy

The official OpenAI SDK (``AsyncOpenAI``, 50 requests in flight) calls the fake provider
through each side, in turns, in one client process:

- ``direct``: the fake provider itself (no proxy; the baseline of the latency columns);
- ``passthrough``: bench/passthrough.py, uvicorn + one shared aiohttp session (the floor);
- ``gateway``: ``gateway serve`` with the credit account on (SQLite, a funded account, an API
  key from ``gw.keys.create``), route ``bench`` (the harness's usual config);
- ``litellm``: LiteLLM's proxy (``litellm[proxy]==1.108.7``, one worker, no database,
  ``disable_spend_logs``, its master key as the API key).

Each proxy is a process of its own pinned to the fake server's core; the client is pinned to
the other core. A proxy's CPU is read from ``/proc/<pid>/stat`` (its process and every
descendant, all threads) around each of its blocks, so it is the proxy's whole cost per
request: HTTP in and out, auth, routing, billing, background threads. Latency is the client's
wall time per request (a stream's: to its first content chunk, and to its end); "added" is a
side's percentile minus the direct side's in the same round.

LiteLLM and the passthrough run in an environment of their own that this module builds once
(``bench/.venv-litellm``, ignored by git; about a minute and a half): LiteLLM pins versions of
packages the gateway also uses. The run checks every answer, and at the end that the gateway's
ledger billed every request it served.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import clients

__all__ = ["LITELLM_VERSION", "markdown", "measure", "scenario", "target_rows"]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LITELLM_VERSION = "1.108.7"
#: LiteLLM's proxy and the passthrough's aiohttp; httptools so uvicorn does not parse with h11.
VENV = HERE / ".venv-litellm"
VENV_PACKAGES = (f"litellm[proxy]=={LITELLM_VERSION}", "httptools", "uvloop", "aiohttp")
LITELLM_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the price list
    "LITELLM_TELEMETRY_DISABLED": "true",
    "LITELLM_LOG": "ERROR",  # uvicorn's log level too: no access log line per request
}
LITELLM_KEY = "sk-litellm-bench-master-key"
SIDES = ("direct", "passthrough", "gateway", "gateway_local", "gateway_what_if", "litellm")
#: Non-streamed and 50-chunk streams with ``plan.concurrency`` in flight; non-streamed one at
#: a time (the latency a proxy adds when nothing queues).
MODES = ("call", "stream", "call_1")
TEXT = "Hello from the bench server."
#: Route ``local`` of the gateway's config: the in-process fake provider (no upstream call).
LOCAL_ROUTE = "local"
LOCAL_TEXT = f"[fake/m] You said: {clients.PROMPT_TEXT}"

# Targets of issue 14 (binding; never relax them here).
CPU_RATIO_MAX = {"call": 0.15, "stream": 0.20}
ADDED_P50_MS_MAX = 1.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The environment of LiteLLM and the passthrough


def litellm_python() -> Path | str:
    """The Python of the environment LiteLLM's proxy runs in (built when missing), or why it
    cannot be had."""
    python = VENV / "bin" / "python"
    probe = "import aiohttp, httptools, uvloop; from importlib.metadata import version; "
    probe += "print(version('litellm'))"
    if python.exists():
        found = subprocess.run([python, "-c", probe], capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip() == LITELLM_VERSION:
            return python
        shutil.rmtree(VENV)
    log(f"  building {VENV.relative_to(ROOT)}: pip install {' '.join(VENV_PACKAGES)}")
    steps = (
        [sys.executable, "-m", "venv", str(VENV)],
        [python, "-m", "pip", "install", "-q", *VENV_PACKAGES],
    )
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            tail = " ".join(done.stderr.split()[-40:])
            return f"pending: the LiteLLM environment could not be built ({tail})"
    return python


# ---------------------------------------------------------------------------------------------
# The proxy processes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proxy:
    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    api_key: str
    model: str
    log_path: Path

    def pids(self) -> list[int]:
        """The process and its descendants now."""
        return [self.process.pid, *_descendants(self.process.pid)]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rpartition(")")[2].split()[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, p in parents.items() if p == parent]
        found += children
        frontier += children
    return found


def _start(
    name: str,
    cmd: list[str],
    *,
    core: int | None,
    url: str,
    ready_path: str,
    workdir: Path,
    api_key: str,
    model: str,
    env: dict[str, str] | None = None,
) -> Proxy:
    log_path = workdir / f"{name}.log"

    def pin() -> None:
        if core is not None:
            os.sched_setaffinity(0, {core})

    with open(log_path, "wb") as out:
        process = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env={**os.environ, **(env or {})},
            preexec_fn=pin,
            start_new_session=True,  # Ctrl-C reaches the harness, which stops it
        )
    proxy = Proxy(name, process, f"{url}/v1", api_key, model, log_path)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited at start: {log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + ready_path, timeout=5):
                return proxy
        except urllib.error.HTTPError:
            return proxy  # it answers
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    proxy.stop()
    raise RuntimeError(f"{name} did not answer within 3 minutes: {log_path.read_text()[-3000:]}")


def _gateway_config(fake: str, workdir: Path, name: str) -> dict[str, Any]:
    """The harness's config (route ``bench``), plus route ``local`` on the fake provider."""
    config = clients.gateway_config(fake, "openai", credits_db=str(workdir / f"{name}.db"))
    config["providers"]["fake"] = {}
    config["routes"][LOCAL_ROUTE] = {"targets": ["fake/m"]}
    config["pricing"]["fake/m"] = {"input": "1", "output": "2"}
    return config


def start_gateway(
    fake: str,
    core: int | None,
    workdir: Path,
    name: str = "gateway",
    what_if: str | None = None,
    launcher: list[str] | None = None,
) -> Proxy:
    """``gateway serve`` with the credit account on: funded, with a key of its own.
    ``what_if``: the features of bench/what_if.py to apply to it; ``launcher``: the command
    that runs ``gateway`` with the arguments after it (default ``python -m gateway.cli``)."""
    import yaml

    from gateway import Gateway

    config = _gateway_config(fake, workdir, name)
    with Gateway(config=config) as gw:
        clients.fund_credits(gw)
        key = gw.keys.create(account="default", name="bench").key
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    port = _free_port()
    if launcher is not None:
        cmd = list(launcher)
    elif what_if is None:
        cmd = [sys.executable, "-m", "gateway.cli"]
    else:
        cmd = [sys.executable, str(HERE / "what_if.py"), what_if]
    cmd += ["serve", "--config", str(path), "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    return _start(
        name,
        cmd,
        core=core,
        url=url,
        ready_path="/healthz",
        workdir=workdir,
        api_key=key,
        model="bench",
        env={"PYTHONPATH": str(ROOT)},
    )


def gateway_billed(fake: str, workdir: Path, name: str) -> tuple[int, str]:
    """Requests the stopped gateway's ledger holds, and their cost."""
    from gateway import Gateway

    with Gateway(config=_gateway_config(fake, workdir, name)) as gw:
        account = gw.credits
        rows = getattr(account, "sync", account).usage(group_by="status")
    return sum(row.requests for row in rows), str(sum(row.cost for row in rows))


def start_litellm(python: Path, fake: str, core: int | None, workdir: Path) -> Proxy:
    import yaml

    model = clients.MODELS["openai"]
    config = {
        "model_list": [
            {
                "model_name": model,
                "litellm_params": {
                    "model": f"openai/{model}",
                    "api_base": f"{fake}/v1",
                    "api_key": clients.API_KEY,
                },
            }
        ],
        "general_settings": {"disable_spend_logs": True, "master_key": LITELLM_KEY},
    }
    path = workdir / "litellm.yaml"
    path.write_text(yaml.safe_dump(config))
    port = _free_port()
    cmd = [str(python), str(python.parent / "litellm"), "--config", str(path)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    return _start(
        "litellm",
        cmd,
        core=core,
        url=f"http://127.0.0.1:{port}",
        ready_path="/health/liveliness",
        workdir=workdir,
        api_key=LITELLM_KEY,
        model=model,
        env=LITELLM_ENV,
    )


def start_passthrough(python: Path, fake: str, core: int | None, workdir: Path) -> Proxy:
    port = _free_port()
    return _start(
        "passthrough",
        [str(python), str(HERE / "passthrough.py"), fake, str(port)],
        core=core,
        url=f"http://127.0.0.1:{port}",
        ready_path="/",
        workdir=workdir,
        api_key=clients.API_KEY,
        model=clients.MODELS["openai"],
    )


# ---------------------------------------------------------------------------------------------
# The parent: start the proxies, run rounds of the client, summarise


def scenario(runner: Any, plan: Any) -> dict[str, Any]:
    """Rounds of both modes against every side; the proxies live for the whole scenario."""
    fake: str = runner.server
    core: int | None = runner.cores.server
    python = litellm_python()
    pending: dict[str, str] = {}
    proxies: list[Proxy] = []
    applied: list[str] = []
    with tempfile.TemporaryDirectory(prefix="gateway-bench-proxy-") as tmp:
        workdir = Path(tmp)
        try:
            log("  starting the gateway, the passthrough and LiteLLM's proxy")
            proxies.append(start_gateway(fake, core, workdir))
            if plan.proxy_what_if:
                what_if = start_gateway(fake, core, workdir, "gateway_what_if", "all")
                proxies.append(what_if)
                said = what_if.log_path.read_text().splitlines()
                applied = [line for line in said if line.startswith("what_if: ")]
            if isinstance(python, Path):
                proxies.append(start_passthrough(python, fake, core, workdir))
                proxies.append(start_litellm(python, fake, core, workdir))
            else:
                pending = {"passthrough": python, "litellm": python}
            rounds = max(1, (plan.rounds + 1) // 2)
            results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
            for r in range(rounds):
                for mode in MODES:
                    log(f"  proxy {mode} round {r + 1}/{rounds}")
                    results[mode].append(runner.worker(_spec(plan, mode, fake, proxies)))
        finally:
            for proxy in proxies:
                proxy.stop()
        ledger = {}
        for name in (p.name for p in proxies if p.name.startswith("gateway")):
            made = sum(r["requests"].get(name, 0) for rs in results.values() for r in rs)
            billed, cost = gateway_billed(fake, workdir, name)
            ledger[name] = {"requests_made": made, "requests_billed": billed, "cost": cost}
    out: dict[str, Any] = {mode: summarise(results[mode]) for mode in MODES}
    out["pending"] = pending
    out["ledger"] = ledger
    out["what_if"] = applied
    out["versions"] = {"litellm": LITELLM_VERSION if isinstance(python, Path) else None}
    return out


def _spec(plan: Any, mode: str, fake: str, proxies: list[Proxy]) -> dict[str, Any]:
    model = clients.MODELS["openai"]
    sides = [
        {
            "name": "direct",
            "base_url": f"{fake}/v1",
            "api_key": clients.API_KEY,
            "model": model,
            "text": TEXT,
        }
    ]
    by_name = {proxy.name: proxy for proxy in proxies}
    if "gateway" in by_name and mode != "stream":  # the fake provider streams 8 chunks, not 50
        by_name["gateway_local"] = by_name["gateway"]
    for name in SIDES[1:]:
        if name in by_name:
            p = by_name[name]
            local = name == "gateway_local"
            sides.append(
                {
                    "name": name,
                    "server": p.name,
                    "base_url": p.base_url,
                    "api_key": p.api_key,
                    "model": LOCAL_ROUTE if local else p.model,
                    "text": LOCAL_TEXT if local else TEXT,
                    "pids": p.pids(),
                }
            )
    calls, block, concurrency = {
        "call": (plan.proxy_calls, plan.proxy_block, plan.concurrency),
        "stream": (plan.proxy_streams, plan.proxy_stream_block, plan.concurrency),
        "call_1": (plan.proxy_sequential, plan.proxy_sequential // 2, 1),
    }[mode]
    return {
        "scenario": "proxy",
        "mode": "stream" if mode == "stream" else "call",
        "sides": sides,
        "calls": calls,
        "block": block,
        "concurrency": concurrency,
    }


_METRICS = (
    "proxy_cpu_us",
    "fake_cpu_us",
    "client_cpu_us",
    "requests_per_s",
    "p50_ms",
    "p99_ms",
    "ttfc_p50_ms",
    "ttfc_p99_ms",
)


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds; per-round differences and ratios, then their median."""
    if not results:
        return {}
    out: dict[str, Any] = {}
    for name in results[0]["sides"]:
        rows = [r["sides"][name] for r in results]
        entry: dict[str, Any] = {}
        for metric in _METRICS:
            values = [row[metric] for row in rows if row.get(metric) is not None]
            if values:
                entry[metric] = statistics.median(values)
                entry[f"{metric}_rounds"] = values
        for metric in ("p50_ms", "p99_ms", "ttfc_p50_ms", "ttfc_p99_ms"):
            added = [
                r["sides"][name][metric] - r["sides"]["direct"][metric]
                for r in results
                if r["sides"][name].get(metric) is not None
            ]
            if added and name != "direct":
                entry[f"added_{metric}"] = statistics.median(added)
                entry[f"added_{metric}_rounds"] = added
        if name != "litellm" and "litellm" in results[0]["sides"] and rows[0].get("proxy_cpu_us"):
            ratios = [
                r["sides"][name]["proxy_cpu_us"] / r["sides"]["litellm"]["proxy_cpu_us"]
                for r in results
            ]
            entry["cpu_vs_litellm"] = statistics.median(ratios)
            entry["cpu_vs_litellm_range"] = [min(ratios), max(ratios)]
        out[name] = entry
    return out


# ---------------------------------------------------------------------------------------------
# The client: one round of one mode, every side in turns (run by bench/workers.py)


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` (every thread), from /proc."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_measure(spec))


async def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    from openai import AsyncOpenAI

    from bench.workers import _orders

    mode, concurrency = spec["mode"], spec["concurrency"]
    fake_pid = int(_fake_stats(spec["server"])["pid"])
    sides = {s["name"]: s for s in spec["sides"]}
    sdk = {
        name: AsyncOpenAI(base_url=s["base_url"], api_key=s["api_key"], max_retries=0, timeout=600)
        for name, s in sides.items()
    }
    requests = dict.fromkeys(sides, 0)

    def caller(name: str) -> Callable[[], Any]:
        client, model, text = sdk[name], sides[name]["model"], sides[name]["text"]
        return _call(client, model, text) if mode == "call" else _stream(client, model)

    calls = {name: caller(name) for name in sides}
    for name in sides:  # every connection opened, lazy set-up done, answers checked
        await _check(name, sdk[name], sides[name]["model"], sides[name]["text"])
        warm = max(2, 40 // concurrency)
        for _ in range(warm):
            await asyncio.gather(*(calls[name]() for _ in range(concurrency)))
        requests[name] += warm * concurrency + 2
    block, blocks = spec["block"], spec["calls"] // spec["block"]
    proxy_cpu = dict.fromkeys(sides, 0.0)
    fake_cpu = dict.fromkeys(sides, 0.0)
    client_cpu = dict.fromkeys(sides, 0.0)
    wall = dict.fromkeys(sides, 0.0)
    latencies: dict[str, list[float]] = {name: [] for name in sides}
    firsts: dict[str, list[float]] = {name: [] for name in sides}
    for order in _orders(list(sides), blocks):
        for name in order:
            call, pids = calls[name], sides[name].get("pids", [])
            remaining = block
            lat, first = latencies[name], firsts[name]

            async def worker() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    ttfc, total = await call()  # noqa: B023  (each block awaits its own)
                    lat.append(total)  # noqa: B023
                    first.append(ttfc)  # noqa: B023

            p0, f0 = _cpu_s(pids), _cpu_s([fake_pid])
            c0, w0 = time.process_time(), time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            wall[name] += time.perf_counter() - w0
            client_cpu[name] += time.process_time() - c0
            proxy_cpu[name] += _cpu_s(pids) - p0
            fake_cpu[name] += _cpu_s([fake_pid]) - f0
            requests[name] += block
    for client in sdk.values():
        await client.close()
    n = block * blocks
    out: dict[str, Any] = {}
    for name in sides:
        lat, first = sorted(latencies[name]), sorted(firsts[name])
        row: dict[str, Any] = {
            "proxy_cpu_us": proxy_cpu[name] / n * 1e6 if name != "direct" else None,
            "fake_cpu_us": fake_cpu[name] / n * 1e6,
            "client_cpu_us": client_cpu[name] / n * 1e6,
            "requests_per_s": n / wall[name],
            "p50_ms": _percentile(lat, 0.50) * 1e3,
            "p99_ms": _percentile(lat, 0.99) * 1e3,
        }
        if mode == "stream":
            row["ttfc_p50_ms"] = _percentile(first, 0.50) * 1e3
            row["ttfc_p99_ms"] = _percentile(first, 0.99) * 1e3
        out[name] = row
    served: dict[str, int] = {}
    for name, count in requests.items():
        server = sides[name].get("server", name)
        served[server] = served.get(server, 0) + count
    return {"sides": out, "requests": served, "calls": n}


def _fake_stats(server: str) -> dict[str, Any]:
    import json

    with urllib.request.urlopen(f"{server}/_stats", timeout=10) as response:
        data: dict[str, Any] = json.load(response)
        return data


def _call(client: Any, model: str, text: str = TEXT) -> Callable[[], Any]:
    create = client.chat.completions.create
    prompt, budget = clients.PROMPT, clients.MAX_TOKENS

    async def call() -> tuple[float, float]:
        started = time.perf_counter()
        completion = await create(model=model, messages=prompt, max_completion_tokens=budget)
        elapsed = time.perf_counter() - started
        if completion.choices[0].message.content != text:
            raise AssertionError(f"unexpected answer: {completion!r}")
        return elapsed, elapsed

    return call


def _stream(client: Any, model: str) -> Callable[[], Any]:
    create = client.chat.completions.create
    prompt, budget = clients.PROMPT, clients.MAX_TOKENS
    options = {"include_usage": True}

    async def stream() -> tuple[float, float]:
        started = time.perf_counter()
        first = 0.0
        pieces = 0
        chunks = await create(
            model=model,
            messages=prompt,
            max_completion_tokens=budget,
            stream=True,
            stream_options=options,
        )
        async for chunk in chunks:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces += 1
                if pieces == 1:
                    first = time.perf_counter() - started
        elapsed = time.perf_counter() - started
        if pieces != 50:
            raise AssertionError(f"a stream of {pieces} content chunks, not 50")
        return first, elapsed

    return stream


async def _check(name: str, client: Any, model: str, text: str) -> None:
    """One request of each mode with its headers: the side answers what it should (the
    gateway: from the provider, with its cost in the header or the usage chunk)."""
    raw = await client.chat.completions.with_raw_response.create(
        model=model, messages=clients.PROMPT, max_completion_tokens=clients.MAX_TOKENS
    )
    completion = raw.parse()
    if completion.choices[0].message.content != text:
        raise AssertionError(f"{name}: unexpected answer {completion!r}")
    if name.startswith("gateway"):
        provider = "fake" if model == LOCAL_ROUTE else "openai"
        if raw.headers.get("x-gateway-provider") != provider or not raw.headers.get(
            "x-gateway-cost"
        ):
            raise AssertionError(f"{name}: no provider or cost in {dict(raw.headers)}")
        chunks = [
            chunk
            async for chunk in await client.chat.completions.create(
                model=model,
                messages=clients.PROMPT,
                max_completion_tokens=clients.MAX_TOKENS,
                stream=True,
                stream_options={"include_usage": True},
            )
        ]
        usage = chunks[-1].usage
        if usage is None or not (usage.model_extra or {}).get("cost"):
            raise AssertionError(f"{name}: no cost in the stream's usage chunk {chunks[-1]!r}")
    else:
        await _stream(client, model)()


# ---------------------------------------------------------------------------------------------
# The report


def _fmt(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def target_rows(proxy: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for mode, what in (("call", "non-streamed"), ("stream", "50-chunk streams")):
        gateway = proxy[mode].get("gateway", {})
        ratio = gateway.get("cpu_vs_litellm")
        limit = CPU_RATIO_MAX[mode]
        rows.append(
            {
                "target": f"proxy CPU/request <= {limit:.2f}x LiteLLM's proxy, {what}, credits on",
                "measured": "pending (no LiteLLM)"
                if ratio is None
                else f"{ratio:.3f}x ({_fmt(gateway['proxy_cpu_us'])} µs vs "
                f"{_fmt(proxy[mode]['litellm']['proxy_cpu_us'])} µs)",
                "met": None if ratio is None else ratio <= limit,
            }
        )
    for mode, metric, what in (
        ("call", "added_p50_ms", "non-streamed"),
        ("stream", "added_ttfc_p50_ms", "streams, to the first chunk"),
    ):
        added = proxy[mode].get("gateway", {}).get(metric)
        rows.append(
            {
                "target": f"added p50 latency <= {ADDED_P50_MS_MAX:g} ms at 50 in flight, {what}",
                "measured": f"{_fmt(added, 2)} ms",
                "met": None if added is None else added <= ADDED_P50_MS_MAX,
            }
        )
    for name, ledger in proxy["ledger"].items():
        rows.append(
            {
                "target": f"{name}: the ledger billed every request it served",
                "measured": f"{ledger['requests_billed']:,} of {ledger['requests_made']:,} "
                f"(USD {ledger['cost']})",
                "met": ledger["requests_billed"] == ledger["requests_made"],
            }
        )
    return rows


_TITLES = {
    "call": "8a. Proxy, non-streamed, 50 in flight: OpenAI SDK -> side -> fake provider",
    "stream": "8b. Proxy, 50-chunk streams, 50 in flight (p50/p99: to the end of the stream)",
    "call_1": "8c. Proxy, non-streamed, one at a time (nothing queues)",
}
_LABELS = {
    "direct": "direct (no proxy)",
    "passthrough": "passthrough (uvicorn + aiohttp)",
    "gateway": "gateway serve (credits on)",
    "gateway_local": "gateway serve, fake provider in-process (no upstream call)",
    "gateway_what_if": "gateway serve, what-if (bench/what_if.py)",
    "litellm": f"LiteLLM proxy {LITELLM_VERSION}",
}


def markdown(proxy: dict[str, Any], table: Callable[..., list[str]]) -> list[str]:
    lines: list[str] = []
    for mode in MODES:
        header = (
            "side | proxy CPU µs/request | vs LiteLLM | requests/s | p50 ms | p99 ms "
            "| added p50 ms | added p99 ms | client CPU µs | fake CPU µs"
        )
        if mode == "stream":
            header += " | TTFC p50 ms | added TTFC p50 ms"
        rows = []
        for name, s in proxy[mode].items():
            row = [
                _LABELS.get(name, name),
                _fmt(s.get("proxy_cpu_us")),
                "–" if s.get("cpu_vs_litellm") is None else f"{s['cpu_vs_litellm']:.3f}x",
                _fmt(s.get("requests_per_s")),
                _fmt(s.get("p50_ms"), 1),
                _fmt(s.get("p99_ms"), 1),
                _fmt(s.get("added_p50_ms"), 2),
                _fmt(s.get("added_p99_ms"), 1),
                _fmt(s.get("client_cpu_us")),
                _fmt(s.get("fake_cpu_us")),
            ]
            if mode == "stream":
                row += [_fmt(s.get("ttfc_p50_ms"), 1), _fmt(s.get("added_ttfc_p50_ms"), 2)]
            rows.append(row)
        notes = [f"Pending: {k}: {v}" for k, v in proxy.get("pending", {}).items()]
        notes += [f"The what-if side: {line}" for line in proxy.get("what_if", [])]
        lines += table(_TITLES[mode], header, "l" + "r" * header.count("|"), rows, notes or None)
    return lines


if __name__ == "__main__":  # build the environment alone: python bench/proxy.py
    print(litellm_python())
