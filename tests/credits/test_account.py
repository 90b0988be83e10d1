"""The account API and the per-call path, on every store kind."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.credits import CreditService, Hold, InMemoryPaymentMethod, to_csv, to_json
from gateway.errors import (
    IdempotencyConflict,
    InsufficientCredits,
    LedgerMismatch,
    PaymentDeclined,
    SpendLimitExceeded,
    UnknownAccount,
)
from gateway.providers.base import TokenUsage
from gateway.testing.clock import ManualClock

from .conftest import MakeService

D = Decimal
USAGE = TokenUsage(1000, 500)


def call(
    service: CreditService,
    hold_amount: str,
    cost: str | None = None,
    *,
    account: str | None = None,
    request_id: str = "req",
    model: str = "small",
    tags: dict[str, str] | None = None,
) -> Hold:
    hold = service.hold(
        account=account,
        request_id=request_id,
        amount=D(hold_amount),
        route="smart",
        provider="fake",
        model=model,
        tags=tags,
    )
    if cost is not None:
        service.settle(hold, cost=D(cost), usage=USAGE, latency_us=12_500, attempts=1)
    return hold


def test_buy_spend_refuse_before_the_provider(make_service: MakeService) -> None:
    service = make_service()
    credits = service.account()
    assert credits.balance().available == 0  # the default account exists from the start
    credits.purchase(D("5"))
    call(service, "2", "1.25", request_id="a")
    call(service, "3", "3.00", request_id="b")
    balance = credits.balance()
    assert (balance.posted, balance.available, balance.held) == (D("0.75"), D("0.75"), 0)
    with pytest.raises(InsufficientCredits, match=r"\$0.75 available.*up to \$1.00"):
        call(service, "1", request_id="c")
    assert [e.kind for e in credits.history(limit=1)] == ["usage"]  # the refusal wrote nothing
    credits.verify()


def test_settle_above_the_hold_goes_negative_and_the_next_credit_pays_the_debt(
    make_service: MakeService,
) -> None:
    service = make_service()
    credits = service.account()
    credits.purchase(D("5"))
    call(service, "4", "6.50")
    balance = credits.balance()
    assert (balance.posted, balance.debt, balance.available) == (D("-1.50"), D("1.50"), D("-1.50"))
    credits.purchase(D("5"))
    balance = credits.balance()
    assert (balance.posted, balance.debt) == (D("3.50"), 0)
    assert [lot.remaining for lot in balance.lots] == [D("3.50")]
    credits.verify()


def test_fallback_rehold_and_idempotent_settle_and_release(make_service: MakeService) -> None:
    service = make_service()
    service.account().purchase(D("10"))
    first = call(service, "2", request_id="r1")
    service.release(first)
    second = call(service, "3", request_id="r1", model="big")  # same request, next target
    assert (first.hold_id, second.hold_id) == ("r1#1", "r1#2")
    assert service.account().balance().held == D("3")
    charged = service.settle(second, cost=D("1.5"), usage=USAGE, attempts=2)
    assert charged == D("1.5")
    assert service.settle(second, cost=D("9"), usage=USAGE) == D("1.5")  # repeat: no-op
    service.release(second)  # after settle: no-op
    service.release(first)  # again: no-op
    assert service.account().balance().posted == D("8.5")
    (row,) = service.account().requests()
    assert (row.request_id, row.hold_id, row.attempts, row.cost) == ("r1", "r1#2", 2, D("1.5"))
    # an explicit attempt number makes a repeated hold return the same hold
    assert service.hold_state(first) == "released" and service.hold_state(second) == "settled"
    again = service.hold(
        account=None,
        request_id="r1",
        amount=D("7"),
        route="smart",
        provider="fake",
        model="big",
        attempt=2,
    )
    assert again == second
    service.account().verify()


def test_hold_lapses_after_ttl_and_a_late_settle_is_still_charged(
    make_service: MakeService, clock: ManualClock
) -> None:
    service = make_service(hold_ttl_s=60)
    service.account().purchase(D("10"))
    hold = call(service, "4")
    assert service.account().balance().available == D("6")
    assert service.hold_state(hold) == "open"
    clock.advance(61)
    assert service.hold_state(hold) == "lapsed"
    assert service.account().balance().available == D("10")
    service.settle(hold, cost=D("1"), usage=USAGE)
    kinds = [e.kind for e in service.account().history(limit=4)]
    assert kinds == ["usage", "settle", "hold_expired", "hold"]
    assert service.account().balance().posted == D("9")
    service.account().verify()


def test_purchase_idempotency_minimum_maximum_and_payment(
    make_service: MakeService, payments: InMemoryPaymentMethod
) -> None:
    service = make_service(payment_method=payments, max_purchase="100")
    credits = service.account()
    first = credits.purchase(D("20"), idempotency_key="order-1")
    assert credits.purchase(D("20"), idempotency_key="order-1").id == first.id
    assert len(payments.charges) == 1 and credits.balance().posted == D("20")
    with pytest.raises(IdempotencyConflict):
        credits.purchase(D("30"), idempotency_key="order-1")
    payments.decline_next(reason="insufficient funds")
    with pytest.raises(PaymentDeclined, match="insufficient funds") as info:
        credits.purchase(D("10"))
    assert info.value.reason == "insufficient funds"
    assert credits.balance().posted == D("20")
    assert credits.history(limit=1)[0].kind == "purchase_declined"
    credits.verify()


def test_grants_expire_soonest_first_and_are_written_off(
    make_service: MakeService, clock: ManualClock
) -> None:
    service = make_service(expiry_days=30)
    credits = service.account()
    credits.purchase(D("10"))  # expires in 30 days
    soon = clock.now() + timedelta(days=7)
    credits.grant(D("2"), expires_at=soon, note="trial")
    assert credits.balance().next_expiry == soon
    assert credits.balance().expiring_next == D("2")
    call(service, "1", "0.5")  # burns the grant first
    clock.advance(timedelta(days=8).total_seconds())
    assert credits.balance().posted == D("10")  # the grant's 1.50 left is gone
    (written_off,) = credits.expire()
    assert (written_off.kind, written_off.amount, written_off.lot_id) == ("expiry", D("-1.5"), "L2")
    assert credits.expire() == []
    clock.advance(timedelta(days=30).total_seconds())
    assert credits.balance().posted == 0
    statement = credits.statement("2026-01")
    assert (statement.purchases, statement.grants, statement.usage) == (D("10"), D("2"), D("0.5"))
    assert statement.expired == D("1.5")
    credits.verify()


def test_named_accounts_are_separate_and_unknown_ones_are_refused(
    make_service: MakeService,
) -> None:
    service = make_service()
    customer = service.account().account("customer-42")
    with pytest.raises(UnknownAccount, match="customer-42"):
        customer.balance()
    with pytest.raises(UnknownAccount):
        call(service, "1", account="customer-42")
    assert not customer.exists()
    customer.grant(D("3"))
    call(service, "1", "0.25", account="customer-42")
    assert customer.balance().posted == D("2.75")
    assert service.account().balance().posted == 0
    assert service.accounts() == ["customer-42"]
    with pytest.raises(InsufficientCredits):
        call(service, "1", account=None)
    assert not hasattr(customer, "transfer") and not hasattr(customer, "refund")


def test_spending_caps_count_holds_and_reset_with_the_calendar(
    make_service: MakeService, clock: ManualClock
) -> None:
    service = make_service(limits={"daily": "3", "monthly": "5"}, hold_ttl_s=3 * 86_400)
    credits = service.account()
    credits.purchase(D("100"))
    call(service, "2", request_id="open")  # held, not settled
    with pytest.raises(SpendLimitExceeded, match=r"daily spending cap of \$3.00"):
        call(service, "1.5", request_id="x")  # 0 spent + 2 held + 1.5 > 3
    call(service, "1", "1", request_id="y")
    clock.advance(timedelta(days=1).total_seconds())
    call(service, "1", "1", request_id="z")  # new day: 0 spent + 2 held + 1 <= 3
    credits.set_limits(daily=None)
    with pytest.raises(SpendLimitExceeded, match=r"monthly spending cap of \$5.00"):
        call(service, "1.5", request_id="w")  # 2 spent + 2 held + 1.5 > 5
    credits.set_limits(monthly=None)
    call(service, "1.5", request_id="v")
    assert credits.settings().daily_limit is None and credits.settings().monthly_limit is None
    assert [e.kind for e in credits.history(kinds=["settings"])] == ["settings", "settings"]
    credits.verify()


def test_auto_recharge_once_per_crossing_and_declines_are_recorded(
    make_service: MakeService, payments: InMemoryPaymentMethod
) -> None:
    service = make_service(
        payment_method=payments,
        auto_recharge={"below": "5", "amount": "10", "monthly_limit": "20"},
    )
    credits = service.account()
    credits.purchase(D("6"))
    call(service, "2", "2", request_id="a")  # 6 -> 4: recharge 10
    assert credits.balance().posted == D("14")
    call(service, "1", "1", request_id="b")  # 14 -> 13: no crossing
    payments.decline_next(reason="card expired")
    call(service, "9", "9", request_id="c")  # 13 -> 4: crossing, declined
    assert credits.balance().posted == D("4")
    call(service, "1", "1", request_id="d")  # still below: no new request
    assert [c.result.ok for c in payments.charges] == [True, True, False]
    credits.purchase(D("10"))  # 13: above again
    call(service, "9", "9", request_id="e")  # crossing: 10 used of 20, recharge 10
    call(service, "12", "12", request_id="f")  # 14 -> 2: crossing, limit reached: skipped
    kinds = [e.kind for e in credits.history(kinds=["recharge_declined", "recharge_skipped"])]
    assert kinds == ["recharge_skipped", "recharge_declined"]
    statement = credits.statement(date(2026, 1, 1))
    assert len(statement.recharge_problems) == 2
    recharges = [c for c in payments.charges if c.idempotency_key.startswith("recharge-")]
    assert sum(c.amount for c in recharges if c.result.ok) == 20
    credits.verify()


def test_set_auto_recharge_below_threshold_recharges_now(
    make_service: MakeService, payments: InMemoryPaymentMethod
) -> None:
    service = make_service(payment_method=payments)
    credits = service.account()
    credits.grant(D("1"))
    credits.set_auto_recharge(below=D("5"), amount=D("10"), monthly_limit=D("50"))
    assert credits.balance().posted == D("11")
    assert credits.settings().auto_recharge == (D("5"), D("10"), D("50"))
    credits.disable_auto_recharge()
    call(service, "11", "11")
    assert credits.balance().posted == 0
    credits.verify()


def test_pay_as_you_go_accrues_usage_for_a_statement(
    make_service: MakeService, clock: ManualClock
) -> None:
    clock.set(datetime(2026, 1, 31, 23, 0, tzinfo=UTC))
    service = make_service(mode="payg")
    call(service, "5", "1.25", account="acme", request_id="a")  # creates the account
    clock.advance(7200)  # February
    call(service, "5", "2.00", account="acme", request_id="b")
    acme = service.account("acme")
    january, february = acme.statement("2026-01"), acme.statement("2026-02")
    assert (january.usage, january.closing_balance, january.amount_due) == (
        D("1.25"),
        D("-1.25"),
        D("1.25"),
    )
    assert (february.opening_balance, february.usage, february.amount_due) == (
        D("-1.25"),
        D("2"),
        D("3.25"),
    )
    assert [line["model"] for line in february.lines] == ["fake/small"]
    acme.verify()


def test_usage_reports_add_up_to_the_ledger_and_export(
    make_service: MakeService, clock: ManualClock, tmp_path: Path
) -> None:
    service = make_service()
    credits = service.account()
    credits.purchase(D("50"))
    service.account("other").grant(D("5"))
    call(service, "1", "0.000000333", request_id="1", tags={"feature": "search"})
    call(service, "1", "0.5", request_id="2", model="big", tags={"feature": "chat"})
    clock.advance(86_400)
    call(service, "1", "0.25", request_id="3", tags={"feature": "search", "user": "u1"})
    call(service, "1", "0.125", account="other", request_id="4")
    by_model = credits.usage(group_by="model")
    assert [(r["model"], r.requests, r.cost) for r in by_model] == [
        ("fake/big", 1, D("0.5")),
        ("fake/small", 2, D("0.250000333")),
    ]
    usage_entries = -sum(e.amount for e in credits.history(kinds=["usage"]))
    assert sum(r.cost for r in by_model) == usage_entries == D("0.750000333")
    by_day = credits.usage(group_by=["day", "tag:feature"])
    assert [(r["day"], r["tag:feature"], r.cost) for r in by_day] == [
        ("2026-01-15", "chat", D("0.5")),
        ("2026-01-15", "search", D("0.000000333")),
        ("2026-01-16", "search", D("0.25")),
    ]
    assert [r.cost for r in credits.usage(tags={"user": "u1"})] == [D("0.25")]
    assert [r.cost for r in credits.usage(since=date(2026, 1, 16))] == [D("0.25")]
    everyone = credits.usage(group_by="account", all_accounts=True)
    assert [(r["account"], r.cost) for r in everyone] == [
        ("default", D("0.750000333")),
        ("other", D("0.125")),
    ]
    rows = credits.requests()
    assert [r.request_id for r in rows] == ["1", "2", "3"]
    assert [r.request_id for r in credits.requests(limit=2)] == ["2", "3"]
    assert len(credits.requests(limit=10)) == 3 and credits.requests(limit=0) == []
    assert rows[0].latency_ms == D("12.5") and rows[0].tags == {"feature": "search"}
    text = to_csv(rows, tmp_path / "requests.csv")
    assert text.splitlines()[0].startswith("request_id,hold_id,at,account,route,provider,model")
    assert "0.000000333" in text and "E-" not in text
    data = json.loads(to_json(by_model, tmp_path / "usage.json"))
    assert data[1] == {
        "model": "fake/small",
        "requests": 2,
        "input_tokens": 2000,
        "output_tokens": 1000,
        "cached_input_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "cost": "0.250000333",
    }
    assert (tmp_path / "usage.json").exists()
    assert to_csv([]) == ""


def test_verify_detects_a_snapshot_that_does_not_match_the_entries(
    make_service: MakeService, store_url: str, store_kind: str
) -> None:
    service = make_service()
    service.account().purchase(D("5"))
    call(service, "1", "0.5")
    service.account().verify()
    if store_kind != "sqlite":  # pragma: no cover - each store kind tampers its own way
        pytest.skip("tampering is store-specific")
    import sqlite3

    conn = sqlite3.connect(store_url.removeprefix("sqlite:///"))
    (state,) = conn.execute("SELECT state FROM accounts WHERE name = 'default'").fetchone()
    data = json.loads(state)
    data["lots"][0][3] += (
        1_000_000_000  # a dollar from nowhere (lots: id, source, amount, remaining, ...)
    )
    conn.execute("UPDATE accounts SET state = ? WHERE name = 'default'", (json.dumps(data),))
    conn.commit()
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM entries")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE requests SET cost = 0")
    conn.close()
    with pytest.raises(LedgerMismatch) as info:
        service.account().verify()
    assert any("lots" in p for p in info.value.problems)


async def test_async_twins_do_not_block_and_behave_the_same(make_service: MakeService) -> None:
    service = make_service()
    service.account().purchase(D("10"))

    async def one(i: int) -> None:
        hold = await service.ahold(
            account=None,
            request_id=f"r{i}",
            amount=D("1"),
            route="smart",
            provider="fake",
            model="small",
        )
        if i % 2:
            await service.arelease(hold)
        else:
            await service.asettle(hold, cost=D("0.5"), usage=USAGE)

    await asyncio.gather(*(one(i) for i in range(8)))
    assert service.account().balance().posted == D("8")
    service.account().verify()


def test_a_recharge_lost_in_a_crash_is_asked_again_with_the_same_key(
    make_service: MakeService,
    payments: InMemoryPaymentMethod,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = make_service(
        payment_method=payments,
        auto_recharge={"below": "5", "amount": "10", "monthly_limit": "100"},
        hold_ttl_s=60,
    )
    credits = service.account()
    credits.grant(D("6"))
    with monkeypatch.context() as patch:  # the process "dies" right after asking
        patch.setattr(service, "_pay_recharge", lambda *args: None)
        call(service, "2", "2", request_id="a")
    (asked,) = credits.history(kinds=["recharge_requested"])
    assert credits.balance().posted == D("4") and payments.charges == []
    call(service, "1", "1", request_id="b")  # not yet stale: left alone
    assert payments.charges == []
    clock.advance(61)
    call(service, "1", "1", request_id="c")
    assert [c.idempotency_key for c in payments.charges] == [asked.key]
    assert credits.balance().posted == D("12")
    credits.verify()


def test_a_payment_method_that_raises_counts_as_a_decline(make_service: MakeService) -> None:
    class Broken:
        def charge(self, amount: Decimal, idempotency_key: str) -> object:
            raise ConnectionError("payment gateway unreachable")

    service = make_service(
        payment_method=Broken(),  # type: ignore[arg-type]
        auto_recharge={"below": "5", "amount": "10", "monthly_limit": "100"},
    )
    credits = service.account()
    credits.grant(D("6"))
    call(service, "2", "2")  # the user's call still succeeds
    (declined,) = credits.history(kinds=["recharge_declined"])
    assert declined.note is not None and "unreachable" in declined.note
    with pytest.raises(PaymentDeclined, match="unreachable"):
        credits.purchase(D("10"))
    credits.verify()


def test_changing_the_time_zone_is_recorded_and_still_verifies(
    store_url: str, clock: ManualClock
) -> None:
    from gateway.config import CreditsConfig
    from gateway.credits import PriceBook
    from gateway.credits.store import open_store

    def service(tz: str) -> CreditService:
        config = CreditsConfig(store=store_url, timezone=tz, limits={"daily": "10"})
        return CreditService(config, PriceBook.from_config({}), clock=clock)

    utc = service("UTC")
    utc.account().purchase(D("20"))
    call(utc, "1", "1", request_id="a")
    utc.close()
    berlin = service("Europe/Berlin")
    call(berlin, "1", "1", request_id="b")
    (change,) = berlin.account().history(kinds=["settings"])
    assert change.meta == {"tz": "Europe/Berlin"}
    store = open_store(store_url)
    state = store.load("default")
    store.close()
    assert state is not None and state.tz == "Europe/Berlin"
    assert state.spent_day.total == 2 * 10**9  # the day's spending carries over
    berlin.account().verify()
    berlin.close()
