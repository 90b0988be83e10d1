"""SIGTERM on a real ``gateway serve`` under load: it stops accepting, lets the calls and
streams in flight finish (up to ``server.drain_timeout_s``), writes every settled call and
exits 0. Every call a client saw answered is in the ledger once, at the cost it was shown;
a stream the drain timeout cuts is billed for what it produced."""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest

from gateway.credits.store import RequestRow, open_store
from tests.server._serve import ADMIN_KEY, Served, serve
from tests.server._upstream import Upstream
from tests.server.conftest import FUNDS, fund, server_config

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="signals")]
HELLO = [{"role": "user", "content": "Hello"}]
HEADERS = {"authorization": f"Bearer {ADMIN_KEY}"}


@dataclass
class Seen:
    """What the clients saw answered: request id -> cost; and streams cut short."""

    answered: dict[str, Decimal] = field(default_factory=dict)
    cut: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request_id: str, cost: Decimal) -> None:
        with self.lock:
            assert request_id not in self.answered
            self.answered[request_id] = cost


def call(server: Served, model: str, seen: Seen) -> None:
    with httpx2.Client(base_url=server.url, headers=HEADERS, timeout=60) as http:
        answer = http.post("/v1/chat/completions", json={"model": model, "messages": HELLO})
    assert answer.status_code == 200, answer.text
    seen.add(answer.headers["x-gateway-request-id"], Decimal(answer.headers["x-gateway-cost"]))


def stream(server: Served, model: str, seen: Seen) -> None:
    body = {"model": model, "messages": HELLO, "stream": True}
    body["stream_options"] = {"include_usage": True}
    cost: Decimal | None = None
    done = False
    with (
        httpx2.Client(base_url=server.url, headers=HEADERS, timeout=60) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as answer,
    ):
        assert answer.status_code == 200
        request_id = answer.headers["x-gateway-request-id"]
        try:
            for line in answer.iter_lines():
                if line == "data: [DONE]":
                    done = True
                elif line.startswith("data: "):
                    usage = json.loads(line[6:]).get("usage")
                    if usage:
                        cost = Decimal(usage["cost"])
        except httpx2.TransportError:
            pass
    if done:
        assert cost is not None
        seen.add(request_id, cost)
    else:
        with seen.lock:
            seen.cut.append(request_id)


def load(server: Served, seen: Seen) -> None:
    """Calls one after another until the server no longer takes them."""
    with httpx2.Client(base_url=server.url, headers=HEADERS, timeout=60) as http:
        while True:
            try:
                answer = http.post("/v1/chat/completions", json={"model": "r", "messages": HELLO})
            except httpx2.TransportError:
                return
            if answer.status_code != 200:
                return
            seen.add(
                answer.headers["x-gateway-request-id"], Decimal(answer.headers["x-gateway-cost"])
            )


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except OSError:
        return True
    return False


def rows(config: dict[str, Any]) -> list[RequestRow]:
    store = open_store(config["credits"]["store"])
    try:
        return store.requests()
    finally:
        store.close()


def check_billed_once(config: dict[str, Any], seen: Seen) -> list[RequestRow]:
    written = rows(config)
    assert len({r.hold_id for r in written}) == len(written), "no call is written twice"
    billed = {r.request_id: r.cost for r in written}
    missing = sorted(set(seen.answered) - set(billed))
    assert not missing, f"{len(missing)} answered call(s) unbilled"
    assert {rid: billed[rid] for rid in seen.answered} == seen.answered
    return written


def balance(config: dict[str, Any]) -> Any:
    from gateway import Gateway

    with Gateway(config=config) as gw:
        gw.credits.verify()
        return gw.credits.balance()


def start(
    tmp_path: Path, upstream: Upstream, drain_timeout_s: float
) -> tuple[Served, dict[str, Any]]:
    config = server_config(
        f"sqlite:///{tmp_path / 'credits.db'}", upstream, drain_timeout_s=drain_timeout_s
    )
    fund(config)
    return serve(config, tmp_path), config


def test_sigterm_under_load_finishes_what_is_in_flight_and_bills_every_answer(
    tmp_path: Path, upstream: Upstream
) -> None:
    upstream.gate.clear()
    server, config = start(tmp_path, upstream, drain_timeout_s=30)
    seen = Seen()
    gated = [threading.Thread(target=stream, args=(server, "slow", seen)) for _ in range(3)]
    gated += [threading.Thread(target=call, args=(server, "slow", seen)) for _ in range(3)]
    loaders = [threading.Thread(target=load, args=(server, seen)) for _ in range(3)]
    for thread in gated + loaders:
        thread.start()
    upstream.wait_for(lambda: upstream.waiting == 6)  # six calls held in flight upstream

    server.process.send_signal(signal.SIGTERM)
    for thread in loaders:
        thread.join(timeout=60)
    assert refuses_connections(server.port), "the server stopped accepting"
    assert server.process.poll() is None, "still draining the calls in flight"
    upstream.gate.set()  # let them finish
    for thread in gated:
        thread.join(timeout=60)
    code, err = server.stop()
    assert code == 0, err

    assert len(seen.answered) > 6 and seen.cut == []
    written = check_billed_once(config, seen)
    assert len(written) == len(seen.answered)
    after = balance(config)
    assert after.held == 0, "every lease and hold given back"
    assert after.posted == FUNDS - sum(seen.answered.values())


def test_a_stream_past_the_drain_timeout_is_cut_and_billed_for_what_it_produced(
    tmp_path: Path, upstream: Upstream
) -> None:
    upstream.gate.clear()
    hangups = upstream.hangups
    server, config = start(tmp_path, upstream, drain_timeout_s=1)
    seen = Seen()
    held = threading.Thread(target=stream, args=(server, "slow", seen))
    held.start()
    upstream.wait_for(lambda: upstream.waiting == 1)
    code, err = server.stop(signal.SIGTERM)  # the gate stays shut: the drain times out
    held.join(timeout=60)
    assert code == 0, err
    assert seen.answered == {} and len(seen.cut) == 1
    upstream.wait_for(lambda: upstream.hangups == hangups + 1)  # the upstream call was stopped
    (row,) = rows(config)
    assert row.request_id == seen.cut[0]
    assert row.status == "incomplete" and row.cost > 0
    assert balance(config).held == 0
