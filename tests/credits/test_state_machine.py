"""A stateful property test: random purchases, grants, holds, settlements, releases, crashes
(abandoned holds), declined payments and clock jumps past TTLs, expiries and month ends,
against a deliberately simple reference model. After every step the account's balances must
equal the model's, ``verify()`` must pass, and the usage reports must add up to the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from gateway.config import CreditsConfig
from gateway.credits import CreditService, Hold, InMemoryPaymentMethod, PriceBook
from gateway.credits.money import from_nanos, to_micros
from gateway.credits.store import open_store
from gateway.errors import InsufficientCredits, PaymentDeclined, SpendLimitExceeded
from gateway.providers.base import TokenUsage
from gateway.testing.clock import ManualClock

from .conftest import NewStoreUrl

USD = 1_000_000_000
CENT = USD // 100
TTL_S = 600
EXPIRY_DAYS = 30
DAILY, MONTHLY = 15 * USD, 60 * USD
BELOW, RECHARGE, RECHARGE_LIMIT = 5 * USD, 10 * USD, 30 * USD


@dataclass
class RefLot:
    remaining: int
    expires_us: int
    seq: int


@dataclass
class Reference:
    """The account as a beginner would write it: lists and dicts, no ledger."""

    lots: list[RefLot] = field(default_factory=list)
    debt: int = 0
    holds: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> amount, deadline
    settled: set[str] = field(default_factory=set)
    usage_total: int = 0
    spent: dict[str, int] = field(default_factory=dict)  # "2026-01-15" / "2026-01" -> nanos
    recharged: dict[str, int] = field(default_factory=dict)  # month -> nanos
    last_posted: int = 0
    seq: int = 0

    def live(self, now: int) -> list[RefLot]:
        return [lot for lot in self.lots if lot.remaining > 0 and lot.expires_us > now]

    def posted(self, now: int) -> int:
        return sum(lot.remaining for lot in self.live(now)) - self.debt

    def held(self, now: int) -> int:
        return sum(amount for amount, deadline in self.holds.values() if deadline > now)

    def begin_write(self, now: int) -> int:
        """What every write does first: expire lots and lapse holds. Returns the balance the
        write started from (for auto-recharge)."""
        before = self.last_posted
        self.lots = self.live(now)
        self.holds = {k: v for k, v in self.holds.items() if v[1] > now}
        return before

    def end_write(self, now: int, before: int, payments_ok: bool) -> None:
        after = self.posted(now)
        if before >= BELOW > after:
            month = _month(now)
            if self.recharged.get(month, 0) + RECHARGE <= RECHARGE_LIMIT and payments_ok:
                self.recharged[month] = self.recharged.get(month, 0) + RECHARGE
                self.credit(RECHARGE, now + EXPIRY_DAYS * 86_400_000_000)
        self.last_posted = self.posted(now)

    def credit(self, amount: int, expires_us: int) -> None:
        paid = min(amount, self.debt)
        self.debt -= paid
        self.seq += 1
        self.lots.append(RefLot(amount - paid, expires_us, self.seq))

    def charge(self, cost: int, now: int) -> None:
        left = cost
        for lot in sorted(self.live(now), key=lambda lot: (lot.expires_us, lot.seq)):
            take = min(lot.remaining, left)
            lot.remaining -= take
            left -= take
        self.debt += left
        self.usage_total += cost
        for key in (_day(now), _month(now)):
            self.spent[key] = self.spent.get(key, 0) + cost


def _utc(now: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=now)


def _day(now: int) -> str:
    return _utc(now).strftime("%Y-%m-%d")


def _month(now: int) -> str:
    return _utc(now).strftime("%Y-%m")


def money(most_usd: int, least: int = 0) -> st.SearchStrategy[int]:
    """Nano-dollar amounts, often whole dollars (to land exactly on thresholds)."""
    return st.one_of(
        st.integers(max(least, 0), most_usd).map(lambda d: max(d * USD, least)),
        st.integers(least, most_usd * USD),
    )


class CreditMachine(RuleBasedStateMachine):
    holds = Bundle("holds")

    def __init__(self, new_store_url: NewStoreUrl) -> None:
        super().__init__()
        self.clock = ManualClock(datetime(2026, 1, 20, 9, 0, tzinfo=UTC))
        self.payments = InMemoryPaymentMethod()
        url = new_store_url()
        config = CreditsConfig(
            store=url,
            expiry_days=EXPIRY_DAYS,
            hold_ttl_s=TTL_S,
            limits={"daily": "15", "monthly": "60"},
            auto_recharge={"below": "5", "amount": "10", "monthly_limit": "30"},
            max_purchase="100",
        )
        self.service = CreditService(
            config,
            PriceBook.from_config({}),
            clock=self.clock,
            payment_method=self.payments,
            store=open_store(url),
        )
        self.credits = self.service.account()
        self.model = Reference()
        self.requests = 0

    def teardown(self) -> None:
        self.service.close()

    @property
    def now(self) -> int:
        return to_micros(self.clock.now())

    @property
    def payments_ok(self) -> bool:
        return self.payments.declining is None

    # -- credit -----------------------------------------------------------------------------

    @initialize(cents=st.integers(500, 5000))
    def first_purchase(self, cents: int) -> None:
        self.purchase(cents)

    @rule(cents=st.integers(500, 10_000))
    def purchase(self, cents: int) -> None:
        before = self.model.begin_write(self.now)
        if self.payments_ok:
            self.credits.purchase(from_nanos(cents * CENT))
            self.model.credit(cents * CENT, self.now + EXPIRY_DAYS * 86_400_000_000)
        else:
            with pytest.raises(PaymentDeclined):
                self.credits.purchase(from_nanos(cents * CENT))
        self.model.end_write(self.now, before, self.payments_ok)

    @rule(nanos=money(20, least=1), days=st.integers(1, 60))
    def grant(self, nanos: int, days: int) -> None:
        expires = self.clock.now() + timedelta(days=days)
        before = self.model.begin_write(self.now)
        self.credits.grant(from_nanos(nanos), expires_at=expires)
        self.model.credit(nanos, to_micros(expires))
        self.model.end_write(self.now, before, self.payments_ok)

    @rule(declining=st.booleans())
    def payment_method_health(self, declining: bool) -> None:
        self.payments.declining = "card declined" if declining else None

    # -- calls ------------------------------------------------------------------------------

    def _hold(self, nanos: int) -> Hold | None:
        self.requests += 1
        now = self.now
        model = self.model
        available = model.posted(now) - model.held(now)
        committed_day = model.spent.get(_day(now), 0) + model.held(now)
        committed_month = model.spent.get(_month(now), 0) + model.held(now)
        kwargs = {
            "account": None,
            "request_id": f"req-{self.requests}",
            "amount": from_nanos(nanos),
            "route": "smart",
            "provider": "fake",
            "model": ["a", "b"][self.requests % 2],
        }
        if nanos > available:
            with pytest.raises(InsufficientCredits):
                self.service.hold(**kwargs)  # type: ignore[arg-type]
            return None
        if committed_day + nanos > DAILY or committed_month + nanos > MONTHLY:
            with pytest.raises(SpendLimitExceeded):
                self.service.hold(**kwargs)  # type: ignore[arg-type]
            return None
        before = model.begin_write(now)
        hold = self.service.hold(**kwargs)  # type: ignore[arg-type]
        model.holds[hold.hold_id] = (nanos, now + TTL_S * 1_000_000)
        model.end_write(now, before, self.payments_ok)
        return hold

    @rule(target=holds, nanos=money(8))
    def hold(self, nanos: int) -> Hold | None:
        return self._hold(nanos)

    @rule(nanos=money(3))
    def crash(self, nanos: int) -> None:
        """A process holds, then dies before settling: the hold is never touched again."""
        self._hold(nanos)

    @rule(hold=holds, cost=money(10))
    def settle(self, hold: Hold | None, cost: int) -> None:
        if hold is None:
            return
        before = self.model.begin_write(self.now)
        self.service.settle(hold, cost=from_nanos(cost), usage=TokenUsage(100, 10))
        if hold.hold_id not in self.model.settled:
            self.model.settled.add(hold.hold_id)
            self.model.holds.pop(hold.hold_id, None)
            self.model.charge(cost, self.now)
        self.model.end_write(self.now, before, self.payments_ok)

    @rule(hold=holds)
    def release(self, hold: Hold | None) -> None:
        if hold is None:
            return
        before = self.model.begin_write(self.now)
        self.service.release(hold)
        self.model.holds.pop(hold.hold_id, None)
        self.model.end_write(self.now, before, self.payments_ok)

    @rule()
    def expire(self) -> None:
        before = self.model.begin_write(self.now)
        self.credits.expire()
        self.model.end_write(self.now, before, self.payments_ok)

    # -- time -------------------------------------------------------------------------------

    @rule(seconds=st.sampled_from([1, 59, TTL_S + 1, 3600, 86_400, 7 * 86_400, 31 * 86_400]))
    def wait(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @rule(last_second=st.booleans())
    def to_month_end(self, last_second: bool) -> None:
        now = self.clock.now()
        first_of_next = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
        self.clock.set(first_of_next - timedelta(seconds=1 if last_second else 0))

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def balances_match_the_model(self) -> None:
        now = self.now
        balance = self.credits.balance()
        assert balance.posted == from_nanos(self.model.posted(now))
        assert balance.held == from_nanos(self.model.held(now))
        assert balance.available == balance.posted - balance.held
        assert balance.debt == from_nanos(self.model.debt)
        live = self.model.live(now)
        expected_expiry = min((lot.expires_us for lot in live), default=None)
        actual = to_micros(balance.next_expiry) if balance.next_expiry else None
        assert actual == expected_expiry
        assert self.model.debt == 0 or not live  # debt is paid before credit is left over

    @invariant()
    def ledger_verifies_and_reports_add_up(self) -> None:
        check = self.credits.verify()
        usage = from_nanos(self.model.usage_total)
        assert check.requests_cost == usage
        if self.credits.exists():
            from_entries = -sum(e.amount for e in self.credits.history(kinds=["usage"]))
            assert from_entries == usage
            assert sum(r.cost for r in self.credits.usage(group_by="model")) == usage
            assert sum(r.cost for r in self.credits.usage(group_by="day")) == usage

    @invariant()
    def recharges_stay_within_the_monthly_limit(self) -> None:
        paid: dict[str, Decimal] = {}
        for charge in self.payments.charges:
            if charge.result.ok and charge.idempotency_key.startswith("recharge-"):
                paid[charge.idempotency_key] = charge.amount
        assert sum(paid.values()) == from_nanos(sum(self.model.recharged.values()))
        assert all(v <= RECHARGE_LIMIT for v in self.model.recharged.values())


def test_ledger_matches_a_reference_model(new_store_url: NewStoreUrl, store_kind: str) -> None:
    run_state_machine_as_test(
        lambda: CreditMachine(new_store_url),
        settings=settings(
            # The rules are the same code on both stores; PostgreSQL runs fewer examples (each
            # step is a network round trip) to keep the suite within its time budget.
            max_examples=60 if store_kind == "sqlite" else 20,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
