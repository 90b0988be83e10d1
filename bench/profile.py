"""Where a side's CPU per call goes: py-spy samples, folded into a tree of the gateway's frames.

    python bench/profile.py --provider openai --side gateway --calls 3000
    python bench/profile.py --provider gemini --side raw --scenario stream
    python bench/profile.py --ledger --calls 3000        # CreditService.hold + settle alone
    python bench/profile.py --serve --calls 5000        # `gateway serve` under the OpenAI SDK
    python bench/profile.py --serve --scenario stream --calls 1000

Starts the fake server, runs ``--calls`` calls of one side (as bench/workers.py builds it) in
a child process under ``py-spy record --format raw`` (py-spy only samples a thread while it is
on the CPU, so samples measure CPU time), then prints the samples as a tree: each node is a
frame of ``gateway/`` or ``providers/``, or the first library frame below one (``[openai]``,
``[pydantic]``, ...), with everything deeper folded into it. ``µs/call`` is samples x sampling
interval / calls. Only samples inside a measured call are counted (set-up is not).

``--serve`` profiles the ``gateway serve`` process of bench/proxy.py (credit account on),
pinned to the fake server's core, while a client process on the other core sends ``--calls``
requests (``--scenario sync``: non-streamed; ``stream``: 50-chunk streams) with the OpenAI SDK,
``--concurrency`` in flight: cProfile on the CPU clock (``time.process_time``) in the event
loop's thread, the ``--top`` functions by cumulative and by own time. py-spy is not used there:
on this machine it counted threads blocked in a wait as running. cProfile's own cost per call
inflates code made of many small calls (typing, the SDKs' transforms), so read the shares
as an upper bound for such code, and confirm a fix with the unprofiled figure.

Needs py-spy (``pip install -e '.[bench]'``) and permission to ptrace the child (root here).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

__all__ = ["fold", "main"]

OURS = ("gateway/", "providers/")
#: Only samples under a frame of this name count (the measured loop, not set-up or warm-up).
MARKER = "_measured"
#: Harness frames above the measured call (their children are the tree's roots).
HARNESS = ("bench/",)
LIBS = {
    "openai/": "openai",
    "anthropic/": "anthropic",
    "google/genai/": "google-genai",
    "httpx2/": "httpx2",
    "httpcore2/": "httpcore2",
    "h11/": "h11",
    "pydantic/": "pydantic",
    "pydantic_core/": "pydantic",
    "sqlite3/": "sqlite3",
    "json/": "json",
    "asyncio/": "asyncio",
    "concurrent/": "concurrent",
    "threading.py": "threading",
    "typing.py": "typing",
    "uuid.py": "uuid",
    "copy.py": "copy",
    "dataclasses.py": "dataclasses",
    "decimal.py": "decimal",
    "zoneinfo/": "zoneinfo",
    "ssl.py": "ssl",
    "socket.py": "socket",
    "selectors.py": "selectors",
    "email/": "email",
}


def _split(frame: str) -> tuple[str, str]:
    """``func (path:line)`` -> (func, path)."""
    name, _, rest = frame.rpartition(" (")
    path = rest.rstrip(")").rsplit(":", 1)[0]
    return name, path


def _lib(path: str) -> str:
    for marker, lib in LIBS.items():
        if marker in path:
            return lib
    return Path(path).name


def _ours(path: str) -> bool:
    return any(path.startswith(p) or f"/{p}" in path for p in OURS)


def fold(raw: str, lib_depth: int = 0) -> tuple[dict[tuple[str, ...], int], int, int]:
    """py-spy raw output -> ({path of node labels: samples}, counted, skipped).

    A sample counts when it passes through a :data:`MARKER` frame; its path starts below the
    last harness frame and keeps our frames, plus the first non-ours frame below each of ours
    (labelled ``[lib] func``) and ``lib_depth`` more library frames; deeper frames fold into
    the last node.
    """
    nodes: dict[tuple[str, ...], int] = defaultdict(int)
    counted = skipped = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        if not any(MARKER in _split(frame)[0] for frame in frames):
            skipped += count
            continue
        start = 0
        for i, frame in enumerate(frames):
            if any(h in _split(frame)[1] for h in HARNESS):
                start = i + 1
        counted += count
        path: list[str] = []
        lib_frames = 0
        for frame in frames[start:]:
            name, file = _split(frame)
            if _ours(file):
                path.append(f"{name} ({file.split('/work/main/')[-1]})")
                lib_frames = 0
            elif lib_frames <= lib_depth:
                path.append(f"[{_lib(file)}] {name}")
                lib_frames += 1
        if not path:
            path = ["(in the harness call itself)"]
        for depth in range(1, len(path) + 1):
            nodes[tuple(path[:depth])] += count
    return nodes, counted, skipped


def report(
    nodes: dict[tuple[str, ...], int], counted: int, calls: int, rate: int, min_pct: float
) -> str:
    """The tree, depth first, heaviest child first; nodes under ``min_pct`` are left out."""
    per_sample_us = 1e6 / rate
    children: dict[tuple[str, ...], list[tuple[str, ...]]] = defaultdict(list)
    for key in nodes:
        children[key[:-1]].append(key)
    lines = [
        f"{counted} samples at {rate} Hz over {calls} calls: "
        f"{counted * per_sample_us / calls:,.0f} µs CPU per call in the measured calls",
        f"{'µs/call':>9} {'share':>6}  frame",
    ]

    def walk(key: tuple[str, ...]) -> None:
        for child in sorted(children.get(key, []), key=lambda k: -nodes[k]):
            share = nodes[child] / counted * 100
            if share < min_pct:
                continue
            us = nodes[child] * per_sample_us / calls
            lines.append(f"{us:9.1f} {share:5.1f}%  {'  ' * (len(child) - 1)}{child[-1]}")
            walk(child)

    walk(())
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The child: the measured loop


def child(args: argparse.Namespace) -> None:
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    if args.ledger:
        from bench import ledger

        with tempfile.TemporaryDirectory() as tmp:
            service = ledger._service(f"sqlite:///{tmp}/ledger.db")
            service.account().grant(ledger.FUNDING)
            ledger._pairs(service, "warm", 50)

            def _measured() -> None:
                ledger._pairs(service, "run", args.calls)

            c0 = time.process_time()
            _measured()
            print(f"child: {(time.process_time() - c0) / args.calls * 1e6:,.0f} µs CPU per pair")
            service.close()
        return
    from bench.workers import _Builder

    spec: dict[str, Any] = {"provider": args.provider, "server": args.server}
    builder = _Builder(spec)
    if args.scenario == "async":

        async def run() -> float:
            side = builder.async_(args.side)
            await asyncio.gather(*(side.call() for _ in range(50)))
            remaining = args.calls

            async def _measured_worker() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    await side.call()

            c0 = time.process_time()
            await asyncio.gather(*(_measured_worker() for _ in range(args.concurrency)))
            return time.process_time() - c0

        cpu = asyncio.run(run())
    else:
        sync_side = builder.sync(args.side)
        if args.scenario == "stream":

            def one() -> None:
                for _ in sync_side.stream():
                    pass

        else:
            one = sync_side.call
        for _ in range(50):
            one()

        def _measured() -> None:
            for _ in range(args.calls):
                one()

        c0 = time.process_time()
        _measured()
        cpu = time.process_time() - c0
    builder.cleanup()
    print(f"child: {cpu / args.calls * 1e6:,.0f} µs CPU per call (unprofiled figure is lower)")


def serve_child(out: str, argv: list[str]) -> None:
    """``gateway serve`` (``argv``) whose event-loop thread cProfile measures, on the CPU clock,
    from SIGUSR1 to SIGUSR2 (then the stats are written to ``out``)."""
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # stdlib `profile`
    import cProfile

    profiler = cProfile.Profile(time.process_time)
    signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())

    def dump(*_: object) -> None:
        profiler.disable()
        profiler.dump_stats(out)

    signal.signal(signal.SIGUSR2, dump)
    from gateway.cli import main as gateway_main

    sys.argv = ["gateway", *argv]
    gateway_main()


def profile_server(args: argparse.Namespace) -> int:
    """cProfile of ``gateway serve`` (bench/proxy.py's, credit account on) under the SDK."""
    import pstats

    from bench import proxy
    from bench.run import Cores, Runner, fake_server

    mode = "stream" if args.scenario == "stream" else "call"
    cores = Cores.pick(True)
    with tempfile.TemporaryDirectory() as tmp, fake_server(cores) as fake:
        workdir = Path(tmp)
        out = Path(args.raw_out or workdir / "serve.prof")
        launcher = [sys.executable, str(Path(__file__).resolve()), "--serve-child", str(out)]
        gateway = proxy.start_gateway(fake, cores.server, workdir, launcher=launcher)
        try:
            side = {
                "name": "gateway",
                "base_url": gateway.base_url,
                "api_key": gateway.api_key,
                "model": gateway.model,
                "text": proxy.TEXT,
                "pids": gateway.pids(),
            }
            spec = {"scenario": "proxy", "mode": mode, "sides": [side]}
            spec["concurrency"] = args.concurrency
            runner = Runner(fake, cores)
            bare = runner.worker({**spec, "calls": args.calls, "block": args.calls})
            gateway.process.send_signal(signal.SIGUSR1)
            result = runner.worker({**spec, "calls": args.calls, "block": args.calls})
            gateway.process.send_signal(signal.SIGUSR2)
            deadline = time.monotonic() + 30
            while not out.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.0)  # written
        finally:
            gateway.stop()
        print(
            f"server: {bare['sides']['gateway']['proxy_cpu_us']:,.0f} µs CPU per request "
            f"unprofiled, {result['sides']['gateway']['proxy_cpu_us']:,.0f} profiled "
            f"({mode}, {args.concurrency} in flight; the event loop's thread only below)"
        )
        stats = pstats.Stats(str(out))
        stats.sort_stats("cumulative").print_stats(args.top)
        stats.sort_stats("tottime").print_stats(args.top)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", default="openai")
    parser.add_argument("--side", default="gateway", help="raw, gateway, gateway_credits, ...")
    parser.add_argument("--scenario", default="sync", choices=("sync", "async", "stream"))
    parser.add_argument("--ledger", action="store_true", help="profile hold + settle alone")
    parser.add_argument("--serve", action="store_true", help="profile `gateway serve`")
    parser.add_argument("--top", type=int, default=40, help="--serve: functions listed")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rate", type=int, default=1000, help="py-spy samples per second")
    parser.add_argument("--min-pct", type=float, default=0.5)
    parser.add_argument("--lib-depth", type=int, default=0, help="library frames to expand")
    parser.add_argument("--raw-out", default=None, help="keep py-spy's raw output here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--server", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, default=None, help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve-child"]:  # the server process of --serve
        serve_child(argv[1], argv[2:])
        return 0
    args = parser.parse_args(argv)
    if args.serve:
        return profile_server(args)
    if args.child:
        child(args)
        return 0
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    from bench.run import Cores, fake_server

    cores = Cores.pick(True)
    with tempfile.TemporaryDirectory() as tmp, fake_server(cores) as server:
        out = Path(args.raw_out or Path(tmp) / "raw.txt")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--server", server]
        cmd += ["--provider", args.provider, "--side", args.side, "--scenario", args.scenario]
        cmd += ["--calls", str(args.calls), "--concurrency", str(args.concurrency)]
        if args.ledger:
            cmd.append("--ledger")
        if cores.client is not None:
            cmd += ["--cpu", str(cores.client)]
        spy_cmd = [spy, "record", "-r", str(args.rate), "-f", "raw", "-o", str(out), "--", *cmd]
        proc = subprocess.run(spy_cmd, capture_output=True, text=True, cwd=ROOT)
        print(proc.stdout.strip())
        if proc.returncode != 0 or not out.exists():
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        nodes, counted, skipped = fold(out.read_text(), args.lib_depth)
    what = "ledger hold+settle" if args.ledger else f"{args.provider} {args.side} {args.scenario}"
    print(f"== {what}")
    print(report(nodes, counted, args.calls, args.rate, args.min_pct))
    print(f"({skipped} samples outside the measured calls: set-up, warm-up, event loop)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
