"""The dashboard with 100,000 calls in the ledger: how long each read and each page takes.

    python bench/dashboard.py                    # 100,000 calls over 60 days, SQLite
    python bench/dashboard.py --calls 20000 --store postgresql://...

Fills a new ledger (a temporary SQLite file, or the PostgreSQL database a URL names: use a
scratch one) with ``--calls`` request rows spread over 60 days, 3 providers x 2 models,
``api_key`` and ``feature`` tags, and three settlement entries per call (so that the entries
table is as large as a ledger's with that many calls), then times, best of ``--rounds``:

* the library's reads: ``usage()`` (loads every row), and what the dashboard uses instead
  (``usage_report``, ``requests_page`` with and without filters,
  ``history(kinds=...)``);
* every dashboard page, served in process through the ASGI app (server time only: no
  network, no browser).

The target (issue 15): every page in under 200 ms of server time. Not a test: numbers
depend on the machine; the README of bench/ records a run.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ADMIN_KEY = "bench-admin-key-0123456789abcdef"
START = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 60
MODELS = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-5"),
          ("anthropic", "claude-haiku-4-5"), ("gemini", "gemini-2.5-flash"),
          ("gemini", "gemini-2.5-pro")]  # fmt: skip


def config(store: str) -> dict[str, Any]:
    return {
        "providers": {"fake": {}},
        "routes": {"smart": {"targets": ["fake/m"]}},
        "credits": {"store": store, "timezone": "Europe/Paris"},
        "pricing": {"fake/m": {"input": "1", "output": "2"}},
        "server": {"admin_key": ADMIN_KEY},
    }


def fill(store_url: str, calls: int) -> None:
    """``calls`` request rows (and three entries each) written straight to the store, in
    transactions of 2,000, after a grant that opens the account through the library."""
    from gateway import Gateway
    from gateway.credits.ledger import LedgerEntry
    from gateway.credits.store import RequestRow, open_store

    with Gateway(config=config(store_url)) as gw:
        gw.credits.grant(Decimal("1000"))
    store = open_store(store_url)
    span_us = DAYS * 86_400_000_000
    start_us = int(START.timestamp() * 1_000_000)
    try:
        for first in range(0, calls, 2000):
            with store.transaction("default") as tx:
                for n in range(first, min(calls, first + 2000)):
                    at_us = start_us + span_us * n // calls
                    provider, model = MODELS[n % len(MODELS)]
                    hold = f"req-{n:08d}#1"
                    tx.add_request(
                        RequestRow(
                            request_id=f"req-{n:08d}",
                            hold_id=hold,
                            account="default",
                            at_us=at_us,
                            route="smart",
                            provider=provider,
                            model=model,
                            input_tokens=100 + n % 900,
                            output_tokens=10 + n % 300,
                            cached_input_tokens=n % 50,
                            cache_write_tokens=0,
                            reasoning_tokens=n % 7,
                            cost_nanos=1_000 + (n * 7919) % 2_000_000,
                            latency_us=200_000 + n % 5000,
                            attempts=1 + (n % 10 == 0),
                            status="ok",
                            tags={"api_key": f"key_{n % 5:016x}", "feature": f"f{n % 10}"},
                        )
                    )
                    tx.append(
                        [
                            LedgerEntry(kind, hold_id=hold, at_us=at_us, account="default")
                            for kind in ("hold", "settle", "usage")
                        ]
                    )
    finally:
        store.close()


def best(work: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def library(store_url: str, rounds: int) -> list[tuple[str, float]]:
    from gateway import Gateway

    out: list[tuple[str, float]] = []
    with Gateway(config=config(store_url)) as gw:
        credits = gw.credits
        since, until = date(2026, 2, 1), date(2026, 3, 3)
        cases: list[tuple[str, Callable[[], Any]]] = [
            ("usage(group_by=day,provider,model), 30 days", lambda: credits.usage(
                group_by=["day", "provider", "model"], since=since, until=until)),
            ("usage(group_by=tag:feature), 30 days", lambda: credits.usage(
                group_by="tag:feature", since=since, until=until)),
            ("usage_report, 30 days", lambda: credits.usage_report(since=since, until=until)),
            ("usage_report, 60 days (every call)", lambda: credits.usage_report(
                since=date(2025, 12, 31), until=date(2026, 3, 3))),
            ("requests_page, newest 50", lambda: credits.requests_page(limit=50)),
            ("requests_page, model filter", lambda: credits.requests_page(
                model="gemini/gemini-2.5-pro", limit=50)),
            ("requests_page, tag filter", lambda: credits.requests_page(
                tag=("feature", "f3"), limit=50)),
            ("requests_page, a filter nothing matches", lambda: credits.requests_page(
                model="openai/none", limit=50)),
            ("requests_page, tag nothing has", lambda: credits.requests_page(
                tag=("feature", "none"), limit=50)),
            ("history(kinds=grant, purchase, ...)", lambda: credits.history(
                kinds=["grant", "purchase", "auto_recharge", "recharge_declined"], limit=50)),
        ]  # fmt: skip
        for name, work in cases:
            out.append((name, best(work, rounds)))
    return out


def pages(store_url: str, rounds: int) -> list[tuple[str, float]]:
    """Each dashboard page through the ASGI app in this process (server time only)."""
    import httpx2

    from gateway.server import create_app

    app = create_app(config(store_url))
    out: list[tuple[str, float]] = []

    async def measure() -> None:
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://bench") as client:
            signin = await client.get("/signin")
            token = signin.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            answer = await client.post("/signin", data={"key": ADMIN_KEY, "csrf": token})
            assert answer.status_code == 303, answer.text
            for path in (
                "/",
                "/usage?since=2026-02-01&until=2026-03-02",
                "/usage?since=2025-12-31&until=2026-03-02",
                "/usage.csv?since=2026-02-01&until=2026-03-02&table=model",
                "/requests",
                "/requests?model=gemini%2Fgemini-2.5-pro&tag=feature%3Df3",
                "/requests?model=openai%2Fnone",
                "/credits",
                "/settings",
                "/keys",
            ):
                times = []
                for _ in range(rounds):
                    started = time.perf_counter()
                    page = await client.get(path)
                    times.append(time.perf_counter() - started)
                    assert page.status_code == 200, (path, page.status_code, page.text[:300])
                out.append((f"GET {path}", min(times) * 1000))

    asyncio.run(measure())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--store", help="a PostgreSQL URL (default: a new SQLite file)")
    parser.add_argument("--library-only", action="store_true", help="skip the pages")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = args.store or f"sqlite:///{Path(folder) / 'bench.db'}"
        started = time.perf_counter()
        fill(store, args.calls)
        print(f"filled {args.calls:,} calls in {time.perf_counter() - started:.1f} s")
        parts = [("library", library)] + ([] if args.library_only else [("pages", pages)])
        for title, measure in parts:
            rows = measure(store, args.rounds)
            print(f"\n{title} (best of {args.rounds}, ms)")
            for name, ms in rows:
                flag = "" if ms < 200 else "   <-- over 200 ms"
                print(f"  {ms:8.1f}  {name}{flag}")


if __name__ == "__main__":
    main()
