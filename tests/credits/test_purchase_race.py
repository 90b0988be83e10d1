"""Purchases racing on one idempotency key (issue 12, defect 2).

A payment processor answers a repeated idempotency key with its first result, whatever amount
the repeat asks. When the key was checked only before the payment, a $5 purchase and a $5,000
purchase with one key ended with one $5 charge and $5,000 credited, and the $5 caller was told
that nothing was charged. Under any interleaving, in threads and in processes, the ledger must
credit exactly what the processor charged, once, and a purchase that conflicts with the key's
first one must be refused before anything is charged.

The interleavings are forced, not hoped for: the processor's first charge, once recorded,
answers only when the test releases it (after every other purchase has returned).
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import queue
import threading
from decimal import Decimal as D
from pathlib import Path

import pytest

from gateway.credits import CreditService, InMemoryPaymentMethod, LedgerEntry
from gateway.credits.payment import PaymentResult
from gateway.errors import IdempotencyConflict, PaymentDeclined

from . import _purchase_workers as workers
from ._purchase_workers import GATE_TIMEOUT_S, FilePaymentMethod, SlowFirstCharge, purchase
from .conftest import MakeService

KEY = "order-1"
#: One amount per racer, all different: whichever racer's intent is recorded first is paid.
AMOUNTS = ["5", "5000", "20", "7.5"]

Outcome = tuple[str, str, str]  # amount asked, "ok" / "conflict", entry id / message


def credited_once(service: CreditService, charged: list[D]) -> LedgerEntry:
    """One charge at the processor, one purchase in the ledger, of the same amount."""
    credits = service.account()
    assert credits.verify().unbilled == ()  # no purchase is left without its outcome
    assert len(charged) == 1, f"the processor charged {charged}"
    (purchase_entry,) = credits.history(kinds=["purchase"])
    assert purchase_entry.amount == charged[0], "the ledger credits what was charged"
    assert credits.balance().posted == charged[0]
    assert len(credits.history(kinds=["purchase_requested"])) == 1
    return purchase_entry


def check_outcomes(service: CreditService, outcomes: list[Outcome], charged: list[D]) -> None:
    """The racer that was charged got the purchase; every other was refused, charging nothing."""
    entry = credited_once(service, charged)
    assert len(outcomes) == len(AMOUNTS)
    for amount, outcome, detail in outcomes:
        if D(amount) == charged[0]:
            assert (outcome, detail) == ("ok", str(entry.id))
        else:
            assert outcome == "conflict", (amount, outcome, detail)
            assert f"was used for a purchase of ${charged[0]:,.2f}" in detail
            assert "nothing was charged" in detail


# -- threads ---------------------------------------------------------------------------------


def test_a_purchase_racing_the_key_with_another_amount_is_refused_before_any_charge(
    make_service: MakeService,
) -> None:
    """The issue's reproduction: $5 is being charged when $5,000 comes with the same key."""
    payments = SlowFirstCharge()
    service = make_service(payment_method=payments)
    first: list[tuple[str, str]] = []
    paying = threading.Thread(target=lambda: first.append(purchase(service, D("5"), KEY)))
    paying.start()
    try:
        assert payments.charging.wait(GATE_TIMEOUT_S)  # $5 charged, its credit not yet written
        racer = purchase(service, D("5000"), KEY)
        twin = purchase(service, D("5"), KEY)  # the same purchase again: it completes it
    finally:
        payments.release.set()
        paying.join()
    outcome, message = racer
    assert outcome == "conflict", "the $5,000 purchase must not succeed on a $5 charge"
    assert "idempotency key 'order-1' was used for a purchase of $5.00" in message
    assert "not $5,000.00; nothing was charged" in message
    assert [(c.amount, c.result.ok) for c in payments.charges] == [(D("5"), True)]
    entry = credited_once(service, [c.amount for c in payments.charges])
    assert first == [twin] == [("ok", str(entry.id))]  # both $5 callers got the one purchase


def test_threads_racing_on_one_key_credit_what_was_charged_once(
    make_service: MakeService,
) -> None:
    payments = SlowFirstCharge()
    service = make_service(payment_method=payments)
    barrier = threading.Barrier(len(AMOUNTS))
    out: queue.Queue[Outcome] = queue.Queue()

    def race(amount: str) -> None:
        barrier.wait()
        out.put((amount, *purchase(service, D(amount), KEY)))

    threads = [threading.Thread(target=race, args=(amount,)) for amount in AMOUNTS]
    for thread in threads:
        thread.start()
    try:  # every racer but the one being paid returns while its charge is held
        outcomes = [out.get(timeout=GATE_TIMEOUT_S) for _ in AMOUNTS[1:]]
        payments.release.set()
        outcomes.append(out.get(timeout=GATE_TIMEOUT_S))
    finally:
        payments.release.set()
        for thread in threads:
            thread.join()
    check_outcomes(service, outcomes, [c.amount for c in payments.charges if c.result.ok])


# -- processes -------------------------------------------------------------------------------


@pytest.mark.slow
def test_processes_racing_on_one_key_credit_what_was_charged_once(
    store_url: str, tmp_path: Path
) -> None:
    processor = str(tmp_path / "processor.db")
    FilePaymentMethod.create(processor)
    setup = workers.make_service(store_url, FilePaymentMethod(processor))
    setup.account().balance()  # the store's tables exist before the racers start
    ctx = multiprocessing.get_context("spawn")
    charging, release, barrier = ctx.Event(), ctx.Event(), ctx.Barrier(len(AMOUNTS))
    out = ctx.Queue()
    racers = [
        ctx.Process(
            target=workers.purchase_in_process,
            args=(store_url, processor, charging, release, amount, KEY, barrier, out),
        )
        for amount in AMOUNTS
    ]
    for racer in racers:
        racer.start()
    try:  # every racer but the one being paid returns while its charge is held
        outcomes = [out.get(timeout=120) for _ in AMOUNTS[1:]]
        release.set()
        outcomes.append(out.get(timeout=120))
    finally:
        release.set()
        for racer in racers:
            racer.join(timeout=60)
    assert [racer.exitcode for racer in racers] == [0] * len(AMOUNTS)
    check_outcomes(setup, outcomes, [amount for _, amount in FilePaymentMethod.charges(processor)])
    setup.close()


@pytest.mark.slow
def test_a_process_killed_between_charge_and_credit_is_credited_once_by_the_repeat(
    store_url: str, tmp_path: Path
) -> None:
    """The process dies after the processor charged $5 and before the ledger heard of it. A
    repeat with the key and another amount is refused; with the same amount it credits the
    $5 once, without a second charge."""
    processor = str(tmp_path / "processor.db")
    FilePaymentMethod.create(processor)
    service = workers.make_service(store_url, FilePaymentMethod(processor))
    service.account().balance()
    ctx = multiprocessing.get_context("spawn")
    charging, never, out = ctx.Event(), ctx.Event(), ctx.Queue()  # kept alive for the child
    doomed = ctx.Process(
        target=workers.purchase_in_process,
        args=(store_url, processor, charging, never, "5", KEY, None, out),
    )
    doomed.start()
    try:
        assert charging.wait(120)
    finally:
        doomed.kill()
        doomed.join(timeout=60)
    assert [amount for _, amount in FilePaymentMethod.charges(processor)] == [D("5")]
    credits = service.account()
    assert credits.balance().posted == 0
    (unanswered,) = credits.verify().unbilled
    assert "a purchase of $5.00 requested at" in unanswered
    assert "repeat purchase($5.00, idempotency_key='order-1')" in unanswered

    with pytest.raises(IdempotencyConflict) as conflict:
        credits.purchase(D("5000"), idempotency_key=KEY)
    message = str(conflict.value)
    assert "was used for a purchase of $5.00 that has not completed" in message
    assert "nothing was charged. Repeat it with $5.00 to complete it" in message
    entry = credits.purchase(D("5"), idempotency_key=KEY)
    assert credits.purchase(D("5"), idempotency_key=KEY).id == entry.id
    charges = FilePaymentMethod.charges(processor)
    assert credited_once(service, [amount for _, amount in charges]).id == entry.id
    assert entry.meta["payment_key"] == charges[0][0]  # the repeat paid with the first's key
    service.close()


# -- what the processor charged, not what was asked ------------------------------------------


class ChargesLess(InMemoryPaymentMethod):
    """A processor that took 50 cents less than it was asked (and says so)."""

    def charge(self, amount: D, idempotency_key: str) -> PaymentResult:
        result = super().charge(amount, idempotency_key)
        if not result.ok or result.amount is None:
            return result
        return dataclasses.replace(result, amount=result.amount - D("0.5"))


def test_a_purchase_is_credited_what_the_processor_charged(
    make_service: MakeService, caplog: pytest.LogCaptureFixture
) -> None:
    service = make_service(payment_method=ChargesLess())
    credits = service.account()
    with pytest.raises(IdempotencyConflict) as info:
        credits.purchase(D("20"), idempotency_key=KEY)
    assert "the payment method charged $19.50 for idempotency key 'order-1'" in str(info.value)
    assert "the account was credited $19.50" in str(info.value)
    assert credits.balance().posted == D("19.5")
    with pytest.raises(IdempotencyConflict, match="nothing was charged"):
        credits.purchase(D("20"), idempotency_key=KEY)  # a repeat: recognised, not paid again
    assert credits.purchase(D("19.5"), idempotency_key=KEY).amount == D("19.5")
    with caplog.at_level(logging.WARNING, logger="gateway.credits"):
        unkeyed = credits.purchase(D("10"))  # no key: an error would invite a second charge
    assert unkeyed.amount == D("9.5")
    assert "charged $9.50, not the $10.00 asked" in caplog.text
    assert credits.balance().posted == D("29")
    credits.verify()


def test_an_auto_recharge_is_credited_what_the_processor_charged(
    make_service: MakeService,
) -> None:
    service = make_service(payment_method=ChargesLess())
    credits = service.account()
    credits.grant(D("1"))
    credits.set_auto_recharge(below=D("5"), amount=D("10"), monthly_limit=D("100"))
    (recharge,) = credits.history(kinds=["auto_recharge"])
    assert recharge.amount == D("9.5")
    assert credits.balance().posted == D("10.5")
    credits.verify()


def test_one_key_in_two_accounts_is_two_charges(
    make_service: MakeService, payments: InMemoryPaymentMethod
) -> None:
    """The processor's keys are global: without scoping, the second account would be
    credited the first account's charge."""
    service = make_service(payment_method=payments)
    service.account().purchase(D("5"), idempotency_key=KEY)
    service.account("customer-42").purchase(D("7"), idempotency_key=KEY)
    assert [c.amount for c in payments.charges] == [D("5"), D("7")]
    assert service.account().balance().posted == D("5")
    assert service.account("customer-42").balance().posted == D("7")
    service.account().verify()
    service.account("customer-42").verify()


@pytest.mark.parametrize("amount", [5.0, D("-5"), D("NaN"), D("0")], ids=repr)
def test_an_approval_of_a_nonsense_amount_is_a_decline(
    make_service: MakeService, amount: object
) -> None:
    class Nonsense:
        def charge(self, asked: D, idempotency_key: str) -> PaymentResult:
            return PaymentResult(ok=True, reference="x", amount=amount)  # type: ignore[arg-type]

    service = make_service(payment_method=Nonsense())
    credits = service.account()
    with pytest.raises(PaymentDeclined, match="approved an invalid amount"):
        credits.purchase(D("5"), idempotency_key=KEY)
    assert credits.balance().posted == 0
    assert [e.kind for e in credits.history(limit=2)] == ["purchase_declined", "purchase_requested"]
    credits.verify()
