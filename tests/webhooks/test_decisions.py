"""The pure parts: which events a ledger write causes, the signature, and what an attempt's
answer comes to (retry, give up, disable)."""

from __future__ import annotations

import itertools
import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from gateway.config import AlertsConfig
from gateway.credits import ledger
from gateway.credits.ledger import AccountState, LedgerEntry
from gateway.credits.money import to_micros, to_nanos
from gateway.errors import SpendLimitExceeded
from gateway.webhooks.events import DELIVERY_WINDOW_US, Alerts
from gateway.webhooks.outbox import Delivery
from gateway.webhooks.schedule import judge
from gateway.webhooks.signing import signed_headers
from tests.webhooks.conftest import endpoint, new_secret

NOW = to_micros(datetime(2026, 3, 1, 12, tzinfo=UTC))
DAY_US = 86_400 * 1_000_000
SECRET = new_secret()


def alerts(**settings: object) -> Alerts:
    events = settings.pop("events", None)
    hook = endpoint("https://h.example.com/x", SECRET, **({"events": events} if events else {}))
    return Alerts(AlertsConfig.model_validate(settings), [hook])


def funded(amount: str = "10", expires_in_days: int = 365) -> AccountState:
    state = AccountState(name="acme")
    for entry in ledger.credit(
        state,
        source=ledger.PURCHASE,
        amount=to_nanos(Decimal(amount)),
        expires_us=NOW + expires_in_days * DAY_US,
    ):
        ledger.apply(state, entry)
    return state


def spend(state: AccountState, amount: str) -> list[LedgerEntry]:
    entries = ledger.burn(state, to_nanos(Decimal(amount)))
    for entry in entries:
        ledger.apply(state, entry)
    return entries


def test_balance_low_once_per_crossing() -> None:
    rules = alerts(balance_below="5")
    state = funded("10")
    before = state.posted
    assert rules.after_write(state, spend(state, "4"), before, NOW) == []  # 6 left: above
    before = state.posted
    (event,) = rules.after_write(state, spend(state, "1.5"), before, NOW)  # 4.50: crossed
    assert event.type == "balance.low" and event.account == "acme"
    assert event.payload()["data"] == {"account": "acme", "balance": "4.50", "threshold": "5.00"}
    before = state.posted
    assert rules.after_write(state, spend(state, "1"), before, NOW) == []  # still below
    assert alerts().after_write(funded(), [], to_nanos(Decimal(99)), NOW) == []  # no threshold


def test_credit_events_carry_money_as_decimal_strings() -> None:
    rules = alerts()
    state = AccountState(name="acme")
    entries = ledger.credit(
        state, source=ledger.PURCHASE, amount=to_nanos(Decimal("20.5")), expires_us=NOW + DAY_US
    )
    for entry in entries:
        ledger.apply(state, entry)
    (event,) = rules.after_write(state, entries, 0, NOW)
    payload = json.loads(event.body())
    assert payload == {
        "type": "purchase.succeeded",
        "timestamp": "2026-03-01T12:00:00Z",
        "data": {
            "account": "acme",
            "amount": "20.50",
            "lot_id": "L1",
            "expires_at": "2026-03-02T12:00:00Z",
            "balance": "20.50",
        },
    }
    assert event.id.startswith("msg_")


def test_recharge_declined_and_skipped_are_recharge_failed_with_the_reason() -> None:
    rules = alerts()
    declined = LedgerEntry(
        ledger.RECHARGE_DECLINED, note="card expired", meta={"amount": 20 * 10**9}
    )
    skipped = LedgerEntry(
        ledger.RECHARGE_SKIPPED, note="monthly auto-recharge limit reached", meta={"amount": 5}
    )
    events = rules.after_write(funded(), [declined, skipped], 0, NOW)
    assert [e.type for e in events] == ["recharge.failed", "recharge.failed"]
    assert events[0].data == {"amount": "20.00", "reason": "card expired"}
    assert events[1].data["reason"] == "monthly auto-recharge limit reached"


def test_expired_and_expiring_lots() -> None:
    rules = alerts(expiring_within_days=30)
    soon = funded("3", expires_in_days=10)
    (expiring,) = rules.after_write(soon, [], soon.posted, NOW)
    assert expiring.type == "credits.expiring" and expiring.once_key == "credits.expiring:L1"
    assert expiring.data["amount"] == "3.00" and expiring.data["source"] == "purchase"
    rules.committed(rules.rows([expiring]))
    assert rules.after_write(soon, [], soon.posted, NOW) == []  # announced once
    assert alerts(expiring_within_days=5).after_write(soon, [], soon.posted, NOW) == []

    later = NOW + 11 * DAY_US
    written_off = ledger.housekeeping(soon, later)
    for entry in written_off:
        ledger.apply(soon, entry)
    (expired,) = rules.after_write(soon, written_off, 3 * 10**9, later)
    assert expired.type == "credits.expired"
    assert expired.data["amount"] == "3.00" and expired.data["balance"] == "0.00"


def test_limit_reached_once_per_cap_and_window() -> None:
    rules = alerts()
    refusal = SpendLimitExceeded(
        "over", limit="daily", window="2026-03-01", cap=Decimal("10"), committed=Decimal("9.5")
    )
    (event,) = rules.limit_reached("acme", refusal, NOW)
    assert event.once_key == "limit.reached:daily:2026-03-01"
    assert event.data == {"limit": "daily", "window": "2026-03-01", "cap": "10", "spent": "9.5"}
    rules.committed(rules.rows([event]))
    assert rules.limit_reached("acme", refusal, NOW) == []
    assert rules.limit_reached("other", refusal, NOW) != []  # per account
    assert rules.limit_reached("acme", SpendLimitExceeded("no details"), NOW) == []


def test_the_ledger_refusal_says_which_cap_and_window() -> None:
    state = funded("100")
    with pytest.raises(SpendLimitExceeded) as info:
        ledger.place_hold(
            state,
            NOW,
            hold_id="r#1",
            request_id="r",
            amount=to_nanos(Decimal("6")),
            ttl_us=DAY_US,
            prepaid=True,
            limits=ledger.Limits(daily=to_nanos(Decimal("5"))),
        )
    refusal = info.value
    assert (refusal.limit, refusal.window) == ("daily", "2026-03-01")
    assert (refusal.cap, refusal.committed) == (Decimal("5.00"), Decimal("0.00"))


def test_rows_go_only_to_endpoints_that_want_the_event() -> None:
    rules = Alerts(
        AlertsConfig(balance_below=Decimal(5)),
        [
            endpoint("https://a.example.com/x", SECRET, events=["balance.low"]),
            endpoint("https://b.example.com/x", SECRET, events=["purchase.succeeded"]),
            endpoint("https://c.example.com/x", SECRET),
        ],
    )
    state = funded("10")
    before = state.posted
    events = rules.after_write(state, spend(state, "6"), before, NOW)
    rows = rules.rows(events)
    assert len(rows) == 2 and {r.event_id for r in rows} == {events[0].id}
    assert rows[0].deadline_us == NOW + DELIVERY_WINDOW_US
    assert alerts(events=["purchase.succeeded"], balance_below="5").balance_below is None


def test_signed_headers_verify_with_standardwebhooks() -> None:
    body = '{"type":"balance.low","timestamp":"2026-03-01T12:00:00Z","data":{"account":"a"}}'
    headers = signed_headers(SECRET, event_id="msg_1", body=body, at=datetime.now(UTC))
    assert Webhook(SECRET).verify(body.encode(), headers) == json.loads(body)
    assert headers["webhook-id"] == "msg_1" and headers["webhook-signature"].startswith("v1,")
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace('"a"', '"b"').encode(), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body.encode(), headers)
    stale = signed_headers(
        SECRET, event_id="msg_1", body=body, at=datetime.now(UTC) - timedelta(minutes=10)
    )
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(body.encode(), stale)


def delivery(attempts: int = 0, created: int = NOW) -> Delivery:
    return Delivery(
        id=1,
        event_id="msg_1",
        account="acme",
        endpoint="ep_1",
        type="balance.low",
        body="{}",
        created_us=created,
        status="pending",
        attempts=attempts,
        next_attempt_us=created,
        deadline_us=created + DELIVERY_WINDOW_US,
        lease_until_us=None,
        last_status=None,
        last_error=None,
        done_us=None,
    )


def test_2xx_is_delivered_410_disables_anything_else_retries() -> None:
    rng = random.Random(1)
    ok = judge(delivery(), status=204, error=None, now_us=NOW, rng=rng)
    assert ok.status == "delivered" and ok.done_us == NOW and not ok.disable
    gone = judge(delivery(), status=410, error=None, now_us=NOW, rng=rng)
    assert gone.status == "pending" and gone.disable
    for status, error in ((500, None), (404, None), (301, None), (None, "ConnectError")):
        later = judge(delivery(), status=status, error=error, now_us=NOW, rng=rng)
        assert later.status == "pending" and not later.disable
        assert NOW + 2_500_000 <= later.next_attempt_us <= NOW + 5_000_000  # 5 s, jittered
    assert judge(delivery(), status=503, error=None, now_us=NOW, rng=rng).last_error == "HTTP 503"


def test_backoff_grows_to_an_hour_and_gives_up_after_a_day() -> None:
    rng = random.Random(2)
    waits = []
    attempts, now = 0, NOW
    while True:
        result = judge(delivery(attempts), status=500, error=None, now_us=now, rng=rng)
        if result.status == "failed":
            break
        waits.append(result.next_attempt_us - now)
        attempts, now = attempts + 1, result.next_attempt_us
    assert waits[0] <= 5_000_000 and max(waits) <= 3_600_000_000
    assert all(later >= earlier / 2 for earlier, later in itertools.pairwise(waits))
    assert now <= NOW + DELIVERY_WINDOW_US < now + 3_600_000_000
    assert result.done_us == now and "gave up" in (result.last_error or "")
    assert 20 <= attempts <= 60  # for up to a day, not for ever, not a handful


def test_retry_after_is_honoured_up_to_an_hour() -> None:
    rng = random.Random(3)
    result = judge(delivery(), status=429, error=None, now_us=NOW, rng=rng, retry_after_s=120)
    assert result.next_attempt_us == NOW + 120_000_000
    capped = judge(delivery(), status=429, error=None, now_us=NOW, rng=rng, retry_after_s=10**6)
    assert capped.next_attempt_us == NOW + 3_600_000_000


def test_the_public_names_of_gateway_webhooks() -> None:
    import gateway.webhooks as webhooks

    assert webhooks.__all__ == [
        "Alerts",
        "AsyncSender",
        "Delivery",
        "Outbox",
        "PingResult",
        "Sender",
        "WebhookEvent",
        "endpoint_id",
        "open_outbox",
        "signed_headers",
    ]
    assert all(getattr(webhooks, name) is not None for name in webhooks.__all__)
