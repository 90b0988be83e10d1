"""Delivery to a real receiver on a loopback port, on both stores, with real gateway calls:
the event arrives signed (verified with standardwebhooks), retried until the receiver is up,
once, in order per account; 410 disables the endpoint; a declined auto-recharge and a cap
send their events. The clock is injected: backoff is waited by moving it, never by sleeping.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from gateway import Gateway
from gateway.credits import InMemoryPaymentMethod
from gateway.errors import SpendLimitExceeded
from gateway.testing.clock import ManualClock
from gateway.webhooks import Sender, open_outbox
from tests.webhooks.conftest import MakeService, endpoint
from tests.webhooks.receiver import Receiver, free_port, receiver_on

PROMPT = [{"role": "user", "content": "hello there"}]


def gateway_config(store_url: str, url: str, secret: str, **credits: Any) -> dict[str, Any]:
    return {
        "providers": {"fake": {}},
        "routes": {"r": {"targets": ["fake/m"]}},
        "pricing": {"fake/m": {"input": "1000", "output": "1000"}},  # $0.001 per token
        "credits": {"store": store_url, "min_purchase": "1", **credits},
        "webhooks": [{"url": url, "secret": secret}],
    }


def call(gw: Gateway, account: str | None = None) -> Decimal:
    response = gw.chat.completions.create(model="r", messages=PROMPT, max_tokens=5, account=account)
    cost = response.usage.cost
    assert isinstance(cost, Decimal)
    return cost


@pytest.mark.parametrize("flush_interval_ms", [0, 200])
def test_real_calls_cross_the_threshold_and_the_signed_event_arrives(
    store_url: str,
    receiver: Receiver,
    secret: str,
    clock: ManualClock,
    flush_interval_ms: int,
) -> None:
    config = gateway_config(
        store_url,
        receiver.url,
        secret,
        alerts={"balance_below": "1.95"},
        flush_interval_ms=flush_interval_ms,
    )
    with Gateway(config=config, clock=clock) as gw:
        gw.credits.purchase(Decimal("2"))
        sender = Sender(gw)
        while gw.credits.balance().posted >= Decimal("1.95"):
            call(gw)
        call(gw)  # still below: no second balance.low
        assert gw.credits.balance().posted < Decimal("1.95")
        assert sender.run_until_idle() == 2
        assert sender.run_until_idle() == 0
    payloads = [r.verify(secret) for r in receiver.wait_for(2)]
    assert [p["type"] for p in payloads] == ["purchase.succeeded", "balance.low"]
    low = payloads[1]["data"]
    assert low["account"] == "default" and low["threshold"] == "1.95"
    assert Decimal(low["balance"]) < Decimal("1.95")
    assert payloads[0]["data"]["amount"] == "2.00"
    headers = receiver.received[1].headers
    assert headers["content-type"] == "application/json"
    assert headers["webhook-id"].startswith("msg_")
    assert len(receiver.received) == 2


def test_a_receiver_down_for_the_first_attempts_gets_the_event_once(
    make_service: MakeService, secret: str, clock: ManualClock
) -> None:
    port = free_port()  # nothing listens there yet: connections are refused
    url = f"http://127.0.0.1:{port}/hook"
    service = make_service([endpoint(url, secret, timeout=2)])
    service.account("acme").purchase(Decimal("5"))
    sender = Sender(service)
    outbox = open_outbox(service.store)
    for attempt in (1, 2, 3):
        assert sender.run_once() == 1
        (row,) = outbox.deliveries()
        assert (row.status, row.attempts, row.last_status) == ("pending", attempt, None)
        assert row.last_error is not None and "Connect" in row.last_error
        assert sender.run_once() == 0  # not due again before its backoff
        clock.set(_at(row.next_attempt_us))
    with receiver_on(port) as receiver:
        assert sender.run_until_idle() == 1
        (got,) = receiver.wait_for(1)
        assert got.verify(secret)["type"] == "purchase.succeeded"
        clock.advance(86_400)
        assert sender.run_until_idle() == 0
        assert len(receiver.received) == 1
    (row,) = outbox.deliveries()
    assert (row.status, row.attempts, row.last_status) == ("delivered", 4, 200)


def test_error_answers_are_retried_with_the_same_event_id(
    make_service: MakeService, receiver: Receiver, secret: str, clock: ManualClock
) -> None:
    receiver.script = [500, 503, "drop", 429]
    service = make_service([endpoint(receiver.url, secret, timeout=2)])
    service.account("acme").purchase(Decimal("5"))
    sender = Sender(service)
    outbox = open_outbox(service.store)
    for _ in range(5):
        sender.run_until_idle()
        (row,) = outbox.deliveries()
        if row.status == "delivered":
            break
        clock.set(_at(row.next_attempt_us))
    assert row.status == "delivered" and row.attempts == 5
    received = receiver.wait_for(5)
    assert len({r.event_id for r in received}) == 1
    assert [r.answer for r in received] == [500, 503, "drop", 429, 200]
    received[-1].verify(secret)


def test_events_of_an_account_arrive_in_order_behind_a_failing_one(
    make_service: MakeService, receiver: Receiver, secret: str, clock: ManualClock
) -> None:
    receiver.script = [500]
    service = make_service([endpoint(receiver.url, secret)])
    service.account("acme").purchase(Decimal("5"))
    service.account("acme").purchase(Decimal("6"))
    service.account("bolt").purchase(Decimal("7"))
    sender = Sender(service, concurrency=1)
    assert sender.run_until_idle() == 2  # acme's first fails; bolt's goes; acme's second waits
    clock.advance(3600)
    assert sender.run_until_idle() == 2
    sent = [
        (json.loads(r.body)["data"]["account"], json.loads(r.body)["data"]["amount"], r.answer)
        for r in receiver.wait_for(4)
    ]
    assert sent == [
        ("acme", "5.00", 500),
        ("bolt", "7.00", 200),
        ("acme", "5.00", 200),
        ("acme", "6.00", 200),
    ]


def test_410_disables_the_endpoint_until_retry(
    make_service: MakeService, receiver: Receiver, secret: str, clock: ManualClock
) -> None:
    receiver.script = [410]
    service = make_service([endpoint(receiver.url, secret)])
    service.account("acme").purchase(Decimal("5"))
    service.account("acme").purchase(Decimal("6"))
    sender = Sender(service)
    outbox = open_outbox(service.store)
    assert sender.run_until_idle() == 1
    clock.advance(86_400 * 2)
    assert sender.run_until_idle() == 0  # disabled: nothing is sent, nothing given up
    assert [d.status for d in outbox.deliveries()] == ["pending", "pending"]
    assert len(outbox.disabled()) == 1
    first = min(d.id for d in outbox.deliveries())
    assert sender.retry(first) is not None
    assert outbox.disabled() == {}
    assert sender.run_until_idle() == 2
    assert [r.answer for r in receiver.wait_for(3)] == [410, 200, 200]


def test_a_declined_auto_recharge_sends_recharge_failed_with_the_reason(
    store_url: str, receiver: Receiver, secret: str, clock: ManualClock
) -> None:
    payments = InMemoryPaymentMethod(declining="card expired (4242)")
    config = gateway_config(
        store_url,
        receiver.url,
        secret,
        flush_interval_ms=0,
        auto_recharge={"below": "1.95", "amount": "5", "monthly_limit": "50"},
    )
    with Gateway(config=config, clock=clock, payment_method=payments) as gw:
        gw.credits.grant(Decimal("2"))
        while gw.credits.balance().posted >= Decimal("1.95"):
            call(gw)
        assert len(payments.charges) == 1
        Sender(gw).run_until_idle()
    (event,) = [r.verify(secret) for r in receiver.wait_for(1)]
    assert event["type"] == "recharge.failed"
    assert event["data"] == {
        "account": "default",
        "amount": "5.00",
        "reason": "card expired (4242)",
    }


def test_an_approved_recharge_sends_recharge_succeeded(
    store_url: str, receiver: Receiver, secret: str, clock: ManualClock
) -> None:
    config = gateway_config(
        store_url,
        receiver.url,
        secret,
        flush_interval_ms=0,
        auto_recharge={"below": "1.95", "amount": "5", "monthly_limit": "50"},
    )
    with Gateway(config=config, clock=clock, payment_method=InMemoryPaymentMethod()) as gw:
        gw.credits.grant(Decimal("2"))
        while gw.credits.balance().posted < Decimal("5"):
            call(gw)
        Sender(gw).run_until_idle()
    (event,) = [r.verify(secret) for r in receiver.wait_for(1)]
    assert event["type"] == "recharge.succeeded"
    assert event["data"]["amount"] == "5.00" and event["data"]["reference"] == "mem-1"


def test_a_cap_sends_limit_reached_once_per_window(
    store_url: str, receiver: Receiver, secret: str, clock: ManualClock
) -> None:
    config = gateway_config(store_url, receiver.url, secret, limits={"daily": "0.05"})
    with Gateway(config=config, clock=clock) as gw:
        gw.credits.purchase(Decimal("5"))
        refused = 0
        for _ in range(20):
            try:
                call(gw)
            except SpendLimitExceeded:
                refused += 1
        assert refused > 1
        Sender(gw).run_until_idle()
    types = [r.verify(secret)["type"] for r in receiver.wait_for(2)]
    assert types == ["purchase.succeeded", "limit.reached"]
    data = json.loads(receiver.received[1].body)["data"]
    assert data["limit"] == "daily" and data["cap"] == "0.05"


def test_credit_about_to_expire_and_expired_credit_of_an_idle_account(
    make_service: MakeService, receiver: Receiver, secret: str, clock: ManualClock
) -> None:
    hooks = [endpoint(receiver.url, secret, events=["credits.expiring", "credits.expired"])]
    service = make_service(hooks, alerts={"expiring_within_days": 7})
    service.account("acme").grant(Decimal("3"), expires_at=clock.now() + timedelta(days=10))
    sender = Sender(service)
    sender.housekeeping()
    assert sender.run_until_idle() == 0  # 10 days left
    clock.advance(4 * 86_400)  # 6 days left: within 7 (the sweep runs every 10 minutes)
    sender.housekeeping()
    assert sender.run_until_idle() == 1
    clock.advance(86_400)
    sender.housekeeping()
    assert sender.run_until_idle() == 0  # announced once
    clock.advance(5 * 86_400 + 1)
    sender.housekeeping()
    assert sender.run_until_idle() == 1
    events = [json.loads(r.body) for r in receiver.wait_for(2)]  # (signed days from now)
    assert [e["type"] for e in events] == ["credits.expiring", "credits.expired"]
    assert events[0]["data"]["amount"] == "3.00" and events[1]["data"]["amount"] == "3.00"


def _at(at_us: int) -> Any:
    from gateway.credits.money import from_micros

    return from_micros(at_us)
