"""The ledger's rules, tested directly on states and entries (no store, no clock)."""

from __future__ import annotations

import pytest

from gateway.credits import ledger
from gateway.credits.ledger import AccountState, LedgerEntry, Limits, RechargeRule
from gateway.errors import InsufficientCredits, SpendLimitExceeded

USD = 1_000_000_000
DAY = 86_400 * 1_000_000
T0 = 1_768_478_400_000_000  # 2026-01-15 12:00 UTC


def run(state: AccountState, entries: list[LedgerEntry], at_us: int = T0) -> list[LedgerEntry]:
    for e in entries:
        e.account, e.at_us = state.name, at_us
        ledger.apply(state, e)
    return entries


def fresh() -> tuple[AccountState, list[LedgerEntry]]:
    state = AccountState(name="a")
    log = run(state, ledger.open_account("UTC"))
    return state, log


def fund(state: AccountState, amount: int, expires_us: int, source: str = ledger.PURCHASE) -> None:
    run(state, ledger.credit(state, source=source, amount=amount, expires_us=expires_us))


def test_usage_burns_the_soonest_expiring_lot_first() -> None:
    state, _ = fresh()
    fund(state, 5 * USD, T0 + 300 * DAY)
    fund(state, 2 * USD, T0 + 10 * DAY, ledger.GRANT)
    fund(state, 3 * USD, T0 + 100 * DAY)
    burned = ledger.burn(state, 4 * USD)
    assert [(e.lot_id, e.amount_nanos) for e in burned] == [("L2", -2 * USD), ("L3", -2 * USD)]
    run(state, burned)
    assert [(lot.lot_id, lot.remaining) for lot in state.lots] == [("L1", 5 * USD), ("L3", USD)]


def test_overrun_becomes_debt_and_the_next_credit_pays_it_first() -> None:
    state, _ = fresh()
    fund(state, USD, T0 + DAY)
    run(state, ledger.burn(state, 3 * USD))
    assert (state.posted, state.debt, state.lots) == (-2 * USD, 2 * USD, [])
    entries = ledger.credit(state, source=ledger.PURCHASE, amount=5 * USD, expires_us=T0 + DAY)
    assert [(e.kind, e.lot_id, e.amount_nanos) for e in entries] == [
        ("purchase", "L2", 5 * USD),
        ("debt_payment", "L2", -2 * USD),
        ("debt_payment", None, 2 * USD),
    ]
    run(state, entries)
    assert (state.posted, state.debt) == (3 * USD, 0)
    assert state.lots[0].remaining == 3 * USD


def test_expiry_is_written_off_by_its_own_entry_and_holds_lapse_after_their_ttl() -> None:
    state, _ = fresh()
    fund(state, 5 * USD, T0 + DAY)
    run(
        state,
        ledger.place_hold(
            state,
            T0,
            hold_id="r#1",
            request_id="r",
            amount=USD,
            ttl_us=60_000_000,
            prepaid=True,
            limits=Limits(),
        ),
    )
    assert ledger.view(state, T0).available == 4 * USD
    assert ledger.view(state, T0 + 60_000_000).held == 0  # lapsed, before any write
    assert ledger.view(state, T0 + DAY).posted == 0  # expired, before any write
    entries = ledger.housekeeping(state, T0 + DAY)
    assert [(e.kind, e.amount_nanos, e.held_nanos) for e in entries] == [
        ("expiry", -5 * USD, 0),
        ("hold_expired", 0, -USD),
    ]
    run(state, entries, T0 + DAY)
    assert (state.posted, state.held, state.lots, state.holds) == (0, 0, [], {})


def test_holds_are_refused_beyond_the_available_balance_and_caps_count_holds() -> None:
    state, _ = fresh()
    fund(state, 10 * USD, T0 + DAY)

    def hold(amount: int, limits: Limits | None = None, prepaid: bool = True) -> None:
        run(
            state,
            ledger.place_hold(
                state,
                T0,
                hold_id=f"h{state.entries}",
                request_id="r",
                amount=amount,
                ttl_us=DAY,
                prepaid=prepaid,
                limits=limits or Limits(),
            ),
        )

    hold(6 * USD)
    with pytest.raises(InsufficientCredits, match=r"\$4.00 available"):
        hold(5 * USD)
    hold(4 * USD)
    # Pay-as-you-go never refuses for lack of credit, but the caps still count the holds.
    hold(5 * USD, prepaid=False)
    with pytest.raises(SpendLimitExceeded, match=r"daily spending cap of \$20.00"):
        hold(6 * USD, Limits(daily=20 * USD), prepaid=False)
    with pytest.raises(SpendLimitExceeded, match="monthly"):
        hold(USD, Limits(monthly=15 * USD), prepaid=False)


def test_settle_charges_the_actual_cost_and_a_lapsed_hold_is_charged_late() -> None:
    state, _ = fresh()
    fund(state, 10 * USD, T0 + 365 * DAY)
    run(
        state,
        ledger.place_hold(
            state,
            T0,
            hold_id="r#1",
            request_id="r",
            amount=2 * USD,
            ttl_us=DAY,
            prepaid=True,
            limits=Limits(),
        ),
    )
    entries = run(state, ledger.settle(state, hold_id="r#1", request_id="r", cost=3 * USD))
    assert [(e.kind, e.amount_nanos, e.held_nanos) for e in entries] == [
        ("settle", 0, -2 * USD),
        ("usage", -3 * USD, 0),
    ]
    late = ledger.settle(state, hold_id="gone#1", request_id="gone", cost=USD)
    assert late[0].held_nanos == 0 and late[0].meta["late"] == 1
    assert state.spent_day.total == 3 * USD and state.spent_month.key == "2026-01"


def test_recharge_once_per_crossing_and_never_past_the_monthly_limit() -> None:
    state, _ = fresh()
    rule = RechargeRule(below=5 * USD, amount=10 * USD, monthly_limit=20 * USD)
    fund(state, 6 * USD, T0 + 365 * DAY)

    def spend(amount: int) -> list[LedgerEntry]:
        before = state.posted
        run(state, ledger.burn(state, amount))
        key = f"k{state.entries}"
        return run(state, ledger.recharge_due(state, before, T0, rule=rule, key=key))

    assert spend(USD) == []  # 6 -> 5: not below
    (asked,) = spend(USD)  # 5 -> 4: crossed
    assert asked.kind == "recharge_requested" and state.pending_recharges
    assert spend(USD) == []  # 4 -> 3: already below, no second request
    run(state, ledger.recharge_paid(state, key=str(asked.key), expires_us=T0 + DAY))
    assert state.posted == 13 * USD and not state.pending_recharges
    (asked,) = spend(9 * USD)  # 13 -> 4: crossed again; 20 of 20 used
    run(state, ledger.recharge_declined(state, key=str(asked.key), reason="card expired"))
    assert state.recharged_month.total == 10 * USD  # a decline gives its share back
    run(state, ledger.credit(state, source=ledger.GRANT, amount=10 * USD, expires_us=T0 + DAY))
    (asked,) = spend(10 * USD)  # 14 -> 4: crossed; 10 + 10 <= 20
    run(state, ledger.recharge_paid(state, key=str(asked.key), expires_us=T0 + DAY))
    (skipped,) = spend(10 * USD)  # 14 -> 4: crossed, but 20 + 10 > 20
    assert skipped.kind == "recharge_skipped" and skipped.meta["used"] == 20 * USD


def test_replay_rebuilds_the_state_and_verify_spots_a_tampered_snapshot() -> None:
    state = AccountState(name="a")
    log = run(state, ledger.open_account("UTC"))
    log += run(state, ledger.credit(state, source=ledger.GRANT, amount=USD, expires_us=T0 + DAY))
    log += run(state, ledger.burn(state, 3 * USD))
    assert ledger.replay("a", log) == state
    assert ledger.verify_state(state, log) == []
    tampered = state.copy()
    tampered.debt -= 1
    problems = ledger.verify_state(tampered, log)
    assert problems and "debt" in problems[0]
    assert ledger.verify_state(state, log, request_costs=2 * USD)  # rows do not match usage
    assert AccountState.from_json(state.to_json()) == state


def test_calendar_windows_follow_the_configured_time_zone() -> None:
    cal = ledger.Calendar("America/New_York")
    jan_31_late = 1_769_911_200_000_000  # 2026-02-01 02:00 UTC = 2026-01-31 21:00 in New York
    assert cal.day_key(jan_31_late) == "2026-01-31"
    assert cal.month_key(jan_31_late) == "2026-01"
    assert ledger.Calendar("UTC").month_key(jan_31_late) == "2026-02"
