"""What ``gw.openai_client()`` costs over calling the gateway directly (issue 21).

Both sides call the same gateway, on the in-process fake provider (no network, no server):
``direct`` is ``gw.chat.completions.create``; ``openai_client`` is the OpenAI SDK client
whose transport hands the request to the gateway in-process, so the difference is the SDK's
own work (building the request, JSON both ways, parsing the response into its types) plus the
transport's; ``transport`` is the transport alone, handed a ready request (reading it, the
call, the JSON answer), which separates the two. Streams of 50 content chunks are measured
too (server-sent events both ways).

    python bench/openai_client.py              # ~1 min; prints a Markdown table
    python bench/openai_client.py --calls 500  # quicker, noisier

The sides take turns in blocks (A B, B A, ...) within one process; the table shows the median
over rounds of client CPU (``time.process_time``) per call.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx2

from gateway import AsyncGateway, Gateway
from gateway._openai_errors import IN_PROCESS_BASE_URL
from gateway._openai_transport import GatewayTransport

CONFIG: dict[str, Any] = {"providers": {"fake": {}}, "routes": {"bench": {"targets": ["fake/m"]}}}
SHORT = [{"role": "user", "content": "Say hello to the benchmark."}]
#: 50 words: the fake provider streams its answer word by word, so ~50 content chunks.
LONG = [{"role": "user", "content": " ".join(["word"] * 46)}]


def _request(messages: Any, stream: bool = False) -> httpx2.Request:
    body = {"model": "bench", "messages": messages, "max_tokens": 64, "stream": stream}
    return httpx2.Request("POST", IN_PROCESS_BASE_URL + "chat/completions", json=body)


def _sync_sides(gw: Gateway) -> dict[str, dict[str, Callable[[], None]]]:
    client = gw.openai_client()
    direct, sdk = gw.chat.completions, client.chat.completions
    transport = GatewayTransport(gw)
    short, long = _request(SHORT), _request(LONG, stream=True)

    def transport_call() -> None:
        transport.handle_request(short).read()

    def transport_stream() -> None:
        transport.handle_request(long).read()

    def direct_call() -> None:
        direct.create(model="bench", messages=SHORT, max_tokens=64)

    def sdk_call() -> None:
        sdk.create(model="bench", messages=SHORT, max_tokens=64)

    def direct_stream() -> None:
        for _ in direct.create(model="bench", messages=LONG, stream=True):
            pass

    def sdk_stream() -> None:
        for _ in sdk.create(model="bench", messages=LONG, stream=True):
            pass

    return {
        "sync call": {
            "direct": direct_call,
            "transport": transport_call,
            "openai_client": sdk_call,
        },
        "sync stream (50 chunks)": {
            "direct": direct_stream,
            "transport": transport_stream,
            "openai_client": sdk_stream,
        },
    }


def _async_sides(agw: AsyncGateway, loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
    client = agw.openai_client()
    direct, sdk = agw.chat.completions, client.chat.completions

    async def direct_call() -> None:
        await direct.create(model="bench", messages=SHORT, max_tokens=64)

    async def sdk_call() -> None:
        await sdk.create(model="bench", messages=SHORT, max_tokens=64)

    def run(make: Callable[[], Any]) -> Callable[[], None]:
        return lambda: loop.run_until_complete(make())

    return {"async call": {"direct": run(direct_call), "openai_client": run(sdk_call)}}


def _measure(call: Callable[[], None], calls: int) -> float:
    """Client CPU seconds per call over ``calls`` calls."""
    started = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per block")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    gw = Gateway(CONFIG)
    agw = AsyncGateway(CONFIG)
    loop = asyncio.new_event_loop()
    scenarios = {**_sync_sides(gw), **_async_sides(agw, loop)}
    print("| scenario | direct µs | transport alone µs | openai_client µs | added µs | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, sides in scenarios.items():
        calls = args.calls if "stream" not in name else max(1, args.calls // 10)
        for side in sides.values():  # warm-up: imports, first-call caches
            _measure(side, max(1, calls // 10))
        results: dict[str, list[float]] = {side: [] for side in sides}
        ratios = []
        for round_ in range(args.rounds):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
            seen = {side: _measure(sides[side], calls) for side in order}
            for side, value in seen.items():
                results[side].append(value)
            ratios.append(seen["openai_client"] / seen["direct"])
        direct = statistics.median(results["direct"]) * 1e6
        sdk = statistics.median(results["openai_client"]) * 1e6
        alone = statistics.median(results["transport"]) * 1e6 if "transport" in results else None
        shown = f"{alone:,.0f}" if alone is not None else "–"
        ratio = statistics.median(ratios)
        print(
            f"| {name} | {direct:,.0f} | {shown} | {sdk:,.0f} | {sdk - direct:,.0f} | "
            f"{ratio:.2f}x |"
        )
    loop.close()


if __name__ == "__main__":
    main()
