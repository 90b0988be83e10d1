"""Many clients racing for a small balance through real servers: two worker processes of one
``gateway serve`` on SQLite, and two ``gateway serve`` processes (two hosts) on one
PostgreSQL account. Each call costs exactly its hold ($0.07), so a $1.00 account admits
exactly 14 calls, whichever process serves them; every other call is a 402, and the
ledger holds exactly the calls that were answered."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.server._serve import ADMIN_KEY, Served, serve
from tests.server.test_drain import rows

pytestmark = pytest.mark.slow
FUNDS, COST = Decimal("1.00"), Decimal("0.07")
CLIENTS, CALLS = 8, 5


def race_config(store: str, flush_interval_ms: int) -> dict[str, Any]:
    return {
        "providers": {"fake": {}},
        "routes": {"r": {"targets": ["fake/m"]}},
        "credits": {"store": store, "flush_interval_ms": flush_interval_ms},
        # No input price, and max_tokens=1: the hold is exactly the cost.
        "pricing": {"fake/m": {"input": "0", "output": "70000"}},
        "server": {"admin_key": ADMIN_KEY},
    }


def funded(config: dict[str, Any]) -> None:
    from gateway import Gateway

    with Gateway(config=config) as gw:
        gw.credits.grant(FUNDS)


def race(servers: list[Served]) -> tuple[Counter[int], dict[str, Decimal]]:
    """CLIENTS threads x CALLS calls, each on a new connection, spread over ``servers``."""
    statuses: Counter[int] = Counter()
    answered: dict[str, Decimal] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS)
    turn = itertools.count()

    def client() -> None:
        barrier.wait()
        for _ in range(CALLS):
            server = servers[next(turn) % len(servers)]
            with httpx2.Client(base_url=server.url, timeout=60) as http:
                answer = http.post(
                    "/v1/chat/completions",
                    headers={"authorization": f"Bearer {ADMIN_KEY}"},
                    json={
                        "model": "r",
                        "messages": [{"role": "user", "content": "race"}],
                        "max_tokens": 1,
                    },
                )
            with lock:
                statuses[answer.status_code] += 1
                if answer.status_code == 200:
                    answered[answer.headers["x-gateway-request-id"]] = Decimal(
                        answer.headers["x-gateway-cost"]
                    )
                else:
                    assert answer.json()["error"]["code"] == "insufficient_credits"

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return statuses, answered


def check(
    config: dict[str, Any], statuses: Counter[int], answered: dict[str, Decimal], exact: bool
) -> None:
    from gateway import Gateway

    admitted = statuses[200]
    assert admitted + statuses[402] == CLIENTS * CALLS
    if exact:
        assert admitted == int(FUNDS // COST) == 14
    else:
        assert 0 < admitted <= 14
    assert set(answered.values()) == {COST}
    written = rows(config)
    assert {r.request_id: r.cost for r in written} == answered
    with Gateway(config=config) as gw:
        gw.credits.verify()
        after = gw.credits.balance()
    assert after.held == 0
    assert after.posted == FUNDS - admitted * COST >= 0


@pytest.mark.parametrize(
    ("flush_interval_ms", "exact"), [(0, True), (200, False)], ids=["per-call", "batched"]
)
def test_two_workers_on_one_sqlite_account(
    tmp_path: Path, flush_interval_ms: int, exact: bool
) -> None:
    """Per call, exactly floor(B / c); batched (leases), never more than that (a worker can be
    refused while the other's lease still has room, see docs/ARCHITECTURE.md)."""
    config = race_config(f"sqlite:///{tmp_path / 'credits.db'}", flush_interval_ms)
    funded(config)
    server = serve(config, tmp_path, workers=2)
    try:
        statuses, answered = race([server])
    finally:
        code, err = server.stop()
    assert code == 0, err
    check(config, statuses, answered, exact)


def test_two_servers_on_one_postgresql_account(tmp_path: Path, pg_database: Any) -> None:
    config = race_config(pg_database.new_url(), 0)
    funded(config)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    servers = [serve(config, tmp_path / "a"), serve(config, tmp_path / "b")]
    try:
        statuses, answered = race(servers)
    finally:
        results = [server.stop() for server in servers]
    assert [code for code, _ in results] == [0, 0], results
    check(config, statuses, answered, exact=True)
