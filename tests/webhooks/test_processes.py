"""Senders in processes of their own: one killed mid-delivery (the event is delivered after a
restart, never lost), and two on one PostgreSQL store (no event is in flight twice)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway import SystemClock
from gateway.config import CreditsConfig
from gateway.credits import CreditService, PriceBook
from gateway.webhooks import open_outbox
from tests.pg_server import TestDatabase
from tests.webhooks.conftest import MakeService, endpoint
from tests.webhooks.receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
    pytest.mark.slow,
]
#: The lease of a 2-second endpoint is 3 x 2 + 30 s; a restarted sender is this far ahead.
PAST_THE_LEASE_S = 40


def start(store_url: str, url: str, secret: str, mode: str, offset_s: float = 0) -> Any:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.webhooks._sender_proc", store_url, url, str(offset_s), mode],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "GATEWAY_TEST_WEBHOOK_SECRET": secret},
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line == b"ready\n", (line, child.stderr.read() if child.stderr else b"")
    return child


def go(child: Any) -> None:
    """Let an ``idle`` sender start."""
    child.stdin.write(b"go\n")
    child.stdin.flush()


def finish(child: Any) -> int:
    """Wait for an ``idle`` sender that was let go; the attempts it made."""
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err.decode()
    return int(out.decode().split()[-1])


def test_a_sender_killed_mid_delivery_delivers_after_a_restart(
    make_service: MakeService, receiver: Receiver, secret: str, store_url: str
) -> None:
    service = make_service([endpoint(receiver.url, secret, timeout=2)])
    service.account("acme").purchase(Decimal("5"))
    outbox = open_outbox(service.store)
    receiver.script = ["hang"]  # the first attempt gets no answer
    first = start(store_url, receiver.url, secret, "forever")
    try:
        receiver.wait_for(1)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    receiver.release()
    (row,) = outbox.deliveries()
    assert row.status == "pending" and row.attempts == 0 and row.lease_until_us is not None

    restarted = start(store_url, receiver.url, secret, "idle", offset_s=PAST_THE_LEASE_S)
    go(restarted)
    assert finish(restarted) == 1
    received = receiver.wait_for(2)
    assert [r.answer for r in received] == ["hang", 200]
    assert received[0].event_id == received[1].event_id == row.event_id
    assert received[1].verify(secret)["type"] == "purchase.succeeded"
    (row,) = outbox.deliveries()
    assert (row.status, row.attempts, row.last_status) == ("delivered", 1, 200)


def test_two_senders_on_one_postgresql_store_never_send_an_event_twice_at_once(
    pg_database: TestDatabase, secret: str
) -> None:

    store_url = pg_database.new_url()
    receiver = Receiver(delay_s=0.03)  # each answer takes a moment: senders overlap
    try:
        service = CreditService(
            CreditsConfig(store=store_url, flush_interval_ms=0, min_purchase=Decimal(1)),
            PriceBook.from_config({}),
            clock=SystemClock(),
            webhooks=[endpoint(receiver.url, secret)],
            webhook_sender=False,
        )
        accounts = [f"customer-{n}" for n in range(8)]
        for amount in (1, 2, 3, 4):
            for name in accounts:
                service.account(name).purchase(Decimal(amount))
        senders = [start(store_url, receiver.url, secret, "idle") for _ in range(2)]
        for child in senders:
            go(child)
        made = [finish(child) for child in senders]
        received = receiver.wait_for(32)
        assert receiver.overlaps == []  # no event was ever in flight twice
        assert sum(made) == 32 and len(received) == 32
        assert len({r.event_id for r in received}) == 32  # each exactly once
        amounts: dict[str, list[str]] = defaultdict(list)
        for r in received:
            data = json.loads(r.body)["data"]
            amounts[data["account"]].append(data["amount"])
        assert all(a == ["1.00", "2.00", "3.00", "4.00"] for a in amounts.values())  # in order
        outbox = open_outbox(service.store)
        assert {d.status for d in outbox.deliveries(limit=100)} == {"delivered"}
        service.close()
    finally:
        receiver.close()
