"""Bad input is refused with a clear CreditsError, and nothing is written."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from gateway.config import CreditsConfig
from gateway.credits import CreditAccount, CreditService, PriceBook
from gateway.errors import (
    ConfigError,
    CreditsError,
    GatewayError,
    InvalidAccount,
    InvalidAmount,
    InvalidCreditsInput,
    UnknownAccount,
)
from gateway.providers.base import TokenUsage
from gateway.testing.clock import ManualClock

from .conftest import MakeService

BAD_AMOUNTS: list[tuple[Any, str]] = [
    (Decimal("-5"), "negative"),
    (-20, "negative"),
    ("-0.01", "negative"),
    (Decimal("0"), "more than zero"),
    (0, "more than zero"),
    (Decimal("NaN"), "not a finite"),
    (Decimal("sNaN"), "not a finite"),
    (Decimal("Infinity"), "not a finite"),
    ("nan", "not a finite"),
    (5.0, "float"),
    (float("nan"), "float"),
    ("five dollars", "not a number"),
    (None, "must be an amount"),
    ([5], "must be an amount"),
    (True, "true/false"),
    (Decimal("5.0000000001"), "more than 9 decimal places"),
    ("10.1234567891", "more than 9 decimal places"),
    (Decimal("1e15"), "absurdly large"),
    ("999999999999", "absurdly large"),
    (Decimal("1e9"), "absurdly large"),
]


def _ledger_size(service: CreditService, name: str) -> int:
    return len(service.store.entries(name))


@pytest.fixture
def funded(make_service: MakeService) -> tuple[CreditService, CreditAccount]:
    service = make_service(max_purchase="1000")
    credits = service.account()
    credits.purchase(Decimal("10"))
    return service, credits


@pytest.mark.parametrize(("amount", "message"), BAD_AMOUNTS)
@pytest.mark.parametrize("operation", ["purchase", "grant", "daily cap", "recharge"])
def test_bad_amounts_are_refused_and_nothing_is_written(
    funded: tuple[CreditService, CreditAccount], amount: Any, message: str, operation: str
) -> None:
    service, credits = funded
    if operation == "daily cap" and amount is None:
        return  # None is how a cap is removed
    before = (_ledger_size(service, "default"), credits.balance())
    actions: dict[str, Callable[[], object]] = {
        "purchase": lambda: credits.purchase(amount),
        "grant": lambda: credits.grant(amount),
        "daily cap": lambda: credits.set_limits(daily=amount),
        "recharge": lambda: credits.set_auto_recharge(
            below=Decimal("1"), amount=amount, monthly_limit=Decimal("100")
        ),
    }
    with pytest.raises(InvalidAmount) as info:
        actions[operation]()
    error = info.value
    assert isinstance(error, CreditsError) and isinstance(error, ValueError)
    if operation != "recharge" or message not in ("more than zero",):
        assert message in str(error) or "below the minimum" in str(error)
    assert (_ledger_size(service, "default"), credits.balance()) == before


def test_purchase_minimum_and_maximum(funded: tuple[CreditService, CreditAccount]) -> None:
    service, credits = funded
    before = _ledger_size(service, "default")
    with pytest.raises(InvalidAmount, match=r"below the minimum of \$5"):
        credits.purchase(Decimal("4.99"))
    with pytest.raises(InvalidAmount, match=r"above the maximum of \$1000"):
        credits.purchase(Decimal("1000.01"))
    credits.grant(Decimal("0.01"))  # grants have no minimum
    assert _ledger_size(service, "default") == before + 1


def test_refund_and_transfer_attempts_are_refused(
    funded: tuple[CreditService, CreditAccount],
) -> None:
    service, credits = funded
    other = credits.account("other")
    other.grant(Decimal("1"))
    before = (_ledger_size(service, "default"), _ledger_size(service, "other"))
    # There is no method for either ...
    for name in ("refund", "transfer", "transfer_to", "move", "withdraw"):
        assert not hasattr(credits, name)
    with pytest.raises(AttributeError):
        credits.transfer(Decimal("1"), to="other")  # type: ignore[attr-defined]
    # ... and the ways one might fake them are refused.
    with pytest.raises(InvalidAmount, match="negative"):
        credits.purchase(Decimal("-5"))  # a refund is a negative purchase
    with pytest.raises(InvalidAmount, match="negative"):
        credits.grant(Decimal("-1"))  # take credit out of one account ...
    hold = service.hold(
        account="other",
        request_id="r",
        amount=Decimal("0.5"),
        route="r",
        provider="fake",
        model="small",
    )
    with pytest.raises(InvalidAmount, match="no refunds"):
        service.settle(hold, cost=Decimal("-3"), usage=TokenUsage())  # ... a negative cost
    with pytest.raises(InvalidAmount, match="no refunds"):
        service.hold(
            account=None,
            request_id="s",
            amount=Decimal("-1"),
            route="r",
            provider="fake",
            model="small",
        )
    service.release(hold)
    assert (_ledger_size(service, "default"), _ledger_size(service, "other")) == (
        before[0],
        before[1] + 2,  # the hold and its release
    )
    assert other.balance().posted == Decimal("1")


@pytest.mark.parametrize("bad", [5.0, "1", Decimal("NaN"), Decimal("1e12"), None])
def test_bad_hold_and_cost_amounts(funded: tuple[CreditService, CreditAccount], bad: Any) -> None:
    service, _ = funded
    before = _ledger_size(service, "default")
    with pytest.raises(InvalidAmount):
        service.hold(
            account=None, request_id="r", amount=bad, route="r", provider="fake", model="small"
        )
    hold = service.hold(
        account=None, request_id="r", amount=Decimal("1"), route="r", provider="fake", model="s"
    )
    with pytest.raises(InvalidAmount):
        service.settle(hold, cost=bad, usage=TokenUsage())
    assert _ledger_size(service, "default") == before + 1


def test_unknown_and_malformed_accounts(funded: tuple[CreditService, CreditAccount]) -> None:
    service, credits = funded
    for name in ("", " padded ", "x" * 201, "tab\there", 42):
        with pytest.raises(InvalidAccount):
            credits.account(name)  # type: ignore[arg-type]
    ghost = credits.account("ghost")
    for read in (
        ghost.balance,
        ghost.history,
        ghost.usage,
        ghost.requests,
        ghost.verify,
        ghost.expire,
        lambda: ghost.statement("2026-01"),
    ):
        with pytest.raises(UnknownAccount, match="'ghost' does not exist"):
            read()
    with pytest.raises(UnknownAccount):
        service.hold(
            account="ghost", request_id="r", amount=Decimal("1"), route="r", provider="f", model="m"
        )
    assert service.accounts() == ["default"]  # reading "ghost" did not create it


def test_other_bad_arguments(funded: tuple[CreditService, CreditAccount]) -> None:
    service, credits = funded
    before = _ledger_size(service, "default")
    naive = datetime(2027, 1, 1)
    past = datetime(2020, 1, 1, tzinfo=UTC)
    cases: list[Callable[[], object]] = [
        lambda: credits.grant(Decimal("1"), expires_at=naive),
        lambda: credits.grant(Decimal("1"), expires_at=past),
        lambda: credits.grant(Decimal("1"), note="x" * 2000),
        lambda: credits.purchase(Decimal("5"), idempotency_key=""),
        lambda: credits.statement("January"),
        lambda: credits.statement("2026-13"),
        lambda: credits.usage(group_by="colour"),
        lambda: credits.usage(group_by=[]),
        lambda: credits.usage(since=naive),
        lambda: credits.history(limit=-1),
        lambda: credits.set_auto_recharge(
            below=Decimal("5"), amount=Decimal("10"), monthly_limit=Decimal("5")
        ),
        lambda: service.hold(
            account=None,
            request_id="r",
            amount=Decimal("1"),
            route="r",
            provider="f",
            model="m",
            tags={"k": 1},  # type: ignore[dict-item]
        ),
        lambda: service.hold(
            account=None, request_id="", amount=Decimal("1"), route="r", provider="f", model="m"
        ),
    ]
    for case in cases:
        with pytest.raises(InvalidCreditsInput) as info:
            case()
        assert isinstance(info.value, GatewayError)
    assert _ledger_size(service, "default") == before


def test_bad_time_zone_is_a_config_error(clock: ManualClock) -> None:
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        CreditService(
            CreditsConfig(store="memory://", timezone="Mars/Olympus"),
            PriceBook.from_config({}),
            clock=clock,
        )


def test_settle_is_retried_when_the_store_loses_the_transaction() -> None:
    """A settle whose transaction the store lost (another writer got the lock while it was
    reconnecting: ``written=False``) is tried again instead of leaving the call unbilled."""
    from contextlib import contextmanager

    from gateway.config import CreditsConfig
    from gateway.credits import CreditService, PriceBook, open_store
    from gateway.errors import CreditStoreUnavailable
    from gateway.providers.base import TokenUsage
    from gateway.testing.clock import ManualClock

    inner = open_store("memory://")
    failures = {"left": 0}

    class FlakyStore:
        def __getattr__(self, name: str) -> Any:
            return getattr(inner, name)

        @contextmanager
        def transaction(self, account: str) -> Any:
            with inner.transaction(account) as tx:
                yield tx
                if failures["left"]:
                    failures["left"] -= 1
                    raise CreditStoreUnavailable("connection lost", written=False)

    service = CreditService(
        CreditsConfig(store="memory://"),
        PriceBook(),
        clock=ManualClock(),
        store=FlakyStore(),  # type: ignore[arg-type]
    )
    account = service.account()
    account.purchase(Decimal("10"))
    hold = service.hold(
        account=None, request_id="r1", amount=Decimal("0.01"), route="r", provider="p", model="m"
    )
    failures["left"] = 1
    charged = service.settle(hold, cost=Decimal("0.004"), usage=TokenUsage(10, 2))
    assert charged == Decimal("0.004")
    assert account.balance().posted == Decimal("9.996") and account.balance().held == 0
    account.verify()
    # Still failing after every try: an earlier "may or may not have been written" is what
    # the caller hears, not the last "nothing was written".
    hold3 = service.hold(
        account=None, request_id="r3", amount=Decimal("0.01"), route="r", provider="p", model="m"
    )
    outcomes = [
        CreditStoreUnavailable("lost at commit", written=None),
        CreditStoreUnavailable("unreachable", written=False),
        CreditStoreUnavailable("unreachable", written=False),
    ]
    original = service.write

    def failing_write(*args: Any, **kwargs: Any) -> Any:
        raise outcomes.pop(0)

    service.write = failing_write  # type: ignore[method-assign]
    with pytest.raises(CreditStoreUnavailable) as info:
        service.settle(hold3, cost=Decimal("0.004"), usage=TokenUsage(10, 2))
    assert info.value.written is None and outcomes == []
    service.write = original  # type: ignore[method-assign]

    failures["left"] = 5
    with pytest.raises(CreditStoreUnavailable):  # a hold is not retried: the call is refused
        service.hold(
            account=None,
            request_id="r2",
            amount=Decimal("0.01"),
            route="r",
            provider="p",
            model="m",
        )
