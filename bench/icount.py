"""Instructions per call of one side, counted by valgrind (machine load does not move them).

    python bench/fake_server.py --port 8765 &            # the fake provider, outside valgrind
    python bench/icount.py --provider gemini --side gateway --scenario call --server http://127.0.0.1:8765

Runs the side under ``valgrind --tool=callgrind`` twice, with ``--calls`` and with ``--base``
calls (set-up and warm-up identical), and prints (Ir(calls) - Ir(base)) / (calls - base): the
instructions of one call, set-up and imports cancelled out. ``--inner`` runs the loop itself
(what the valgrind runs execute).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

WARMUP = 20


def _inner(args: argparse.Namespace) -> None:
    from bench import clients

    if args.side == "raw":
        sync_side = clients.raw_sync(args.provider, args.server)
        async_side = clients.raw_async(args.provider, args.server)
    else:
        config = clients.gateway_config(args.server, args.provider)
        sync_side, _ = clients.gateway_sync(config)
        async_side, _ = clients.gateway_async(config)
    if args.scenario in ("call", "stream"):
        side = sync_side

        def one() -> None:
            if args.scenario == "call":
                side.call()
            else:
                for _ in side.stream():
                    pass

        for _ in range(WARMUP + args.calls):
            one()
        return

    aside = async_side

    async def run() -> None:
        async def one() -> None:
            if args.scenario == "acall":
                await aside.call()
            else:
                async for _ in aside.stream():
                    pass

        for _ in range(WARMUP + args.calls):
            await one()

    asyncio.run(run())


def _count(args: argparse.Namespace, calls: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        cmd = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            sys.executable, __file__, "--inner", "--provider", args.provider,
            "--side", args.side, "--scenario", args.scenario, "--server", args.server,
            "--calls", str(calls),
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        match = re.search(r"Collected : (\d+)", proc.stderr)
        assert match, proc.stderr[-2000:]
        return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--provider", required=True)
    parser.add_argument("--side", default="gateway", choices=("gateway", "raw"))
    scenarios = ("call", "stream", "acall", "astream")
    parser.add_argument("--scenario", default="call", choices=scenarios)
    parser.add_argument("--server", required=True)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--base", type=int, default=0)
    parser.add_argument("--inner", action="store_true")
    args = parser.parse_args()
    if args.inner:
        _inner(args)
        return
    high, low = _count(args, args.calls), _count(args, args.base)
    per_call = (high - low) / (args.calls - args.base)
    print(
        f"{args.provider} {args.side} {args.scenario}: {per_call:,.0f} instructions per call "
        f"({args.calls} - {args.base} calls)"
    )


if __name__ == "__main__":
    main()
