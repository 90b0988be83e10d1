"""Holes found under faults and hostile input (issue 12, defects 1 and 3), on both stores:
no input can stop billing for others, and an overrun is not an error."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest

from gateway import Gateway
from gateway.credits import CreditService
from gateway.credits.spender import LocalHold
from gateway.errors import InvalidRequest
from tests.credits.conftest import MakeService
from tests.credits.test_spender import COST, USAGE, calls, settle, spender_of

D = Decimal
HOSTILE = ["a\x00b", "\ud800", "bell\x07", "\x9b"]


def gateway_on(store_url: str, **credits: Any) -> Gateway:
    return Gateway(
        config={
            "providers": {"fake": {"type": "fake"}},
            "routes": {"r": {"targets": ["fake/m"]}},
            "credits": {"store": store_url, **credits},
        }
    )


@pytest.mark.parametrize("bad", HOSTILE)
def test_tags_no_store_can_keep_are_refused_before_anything_is_held(
    store_url: str, bad: str
) -> None:
    gw = gateway_on(store_url, flush_interval_ms=60_000)
    gw.credits.grant(D("5"))
    messages = [{"role": "user", "content": "hi"}]
    for tags in ({"feature": bad}, {bad: "value"}):
        with pytest.raises(InvalidRequest, match="cannot be stored") as info:
            gw.chat.completions.create(model="r", messages=messages, tags=tags)
        assert "tag " in str(info.value)
    with pytest.raises(InvalidRequest, match="not a valid account name"):
        gw.chat.completions.create(model="r", messages=messages, account=f"acct{bad}")
    # Nothing was held, and the next calls are answered and billed as usual.
    assert gw.credits.balance().held == 0
    for _ in range(3):
        gw.chat.completions.create(model="r", messages=messages, tags={"feature": "ok"})
    assert len(gw.credits.requests()) == 3
    gw.credits.verify()
    gw.close()


def test_the_same_tag_check_applies_without_a_credit_account() -> None:
    gw = Gateway(
        config={"providers": {"fake": {"type": "fake"}}, "routes": {"r": {"targets": ["fake/m"]}}}
    )
    with pytest.raises(InvalidRequest, match="NUL"):
        gw.chat.completions.create(
            model="r", messages=[{"role": "user", "content": "hi"}], tags={"t": "\x00"}
        )


def _bad_hold(spender: Any, request_id: str, account: str = "default") -> LocalHold:
    """A hold whose tags no store can keep, as if it had slipped past every check."""
    held = LocalHold(
        f"{request_id}#1", account, request_id, 10_000_000, "r", "fake", "small", {"t": "x\x00y"}
    )
    held.tags["s"] = "\ud800"
    if not spender.try_hold(held):
        spender.hold(held, target="fake/small")
    return held


def test_one_unstorable_row_does_not_block_its_batch_or_other_accounts(
    make_service: MakeService, store_kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite keeps such text (as JSON escapes); PostgreSQL refuses NUL: there the row is
    written with U+FFFD in its place, and reported."""
    service = make_service(flush_interval_ms=60_000, max_batch=10_000)
    service.account().purchase(D("10"))
    service.account("other").purchase(D("10"))
    spender = spender_of(service)
    calls(spender, 3, prefix="before")
    settle(spender, _bad_hold(spender, "bad"))
    calls(spender, 3, prefix="after")
    other = LocalHold("o#1", "other", "o", 10_000_000, "r", "fake", "small", {})
    spender.hold(other, target="fake/small")
    settle(spender, other)

    with caplog.at_level(logging.ERROR, logger="gateway.credits"):
        service.close()  # writes every account's batch
    reopened = make_service()
    rows = {r.request_id: r for r in reopened.store.requests()}
    assert len(rows) == 8, "the bad call and all the others are billed"
    if store_kind == "postgresql":
        assert "'bad'" in caplog.text and "U+FFFD" in caplog.text
        assert rows["bad"].tags == {"t": "x\ufffdy", "s": "\ufffd"}
    else:
        assert rows["bad"].tags == {"t": "x\x00y", "s": "\ud800"}
    assert rows["bad"].cost == D("0.004")
    assert reopened.account().balance().posted == D("10") - 7 * D("0.004")
    assert reopened.account("other").balance().posted == D("10") - D("0.004")
    reopened.account().verify()
    reopened.account("other").verify()


def test_close_writes_other_accounts_when_one_cannot_be_written(
    make_service: MakeService,
) -> None:
    service = make_service(flush_interval_ms=60_000, max_batch=10_000)
    for name in ("a", "b", "c"):
        service.account(name).purchase(D("10"))
    spender = spender_of(service)
    for name in ("a", "b", "c"):
        held = LocalHold(f"{name}#1", name, name, 10_000_000, "r", "fake", "small", {})
        spender.hold(held, target="fake/small")
        settle(spender, held)
    original = service.write

    def refuse_b(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "b":
            raise RuntimeError("account b is broken")
        return original(name, *args, **kwargs)

    service.write = refuse_b  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="account b is broken"):
        spender.flush()
    assert {r.account for r in service.store.requests()} == {"a", "c"}
    service.write = original  # type: ignore[method-assign]
    spender.flush()
    assert {r.account for r in service.store.requests()} == {"a", "b", "c"}


def test_a_batch_that_overran_its_lease_is_written_without_error(
    make_service: MakeService, caplog: pytest.LogCaptureFixture
) -> None:
    """Calls that cost more than held drive the balance negative (allowed), which is no
    refusal: the flush commits quietly and the account reads as usual."""
    service: CreditService = make_service(flush_interval_ms=60_000, max_batch=10_000)
    service.account().purchase(D("5"))
    spender = spender_of(service)
    held = [
        LocalHold(f"o{i}#1", "default", f"o{i}", 10_000_000, "r", "fake", "small", {})
        for i in range(3)
    ]
    for h in held:
        if not spender.try_hold(h):
            spender.hold(h, target="fake/small")
    in_flight = LocalHold("f#1", "default", "f", 10_000_000, "r", "fake", "small", {})
    spender.hold(in_flight, target="fake/small")
    for h in held:  # each costs $2: far past its $0.01 hold and, together, the balance
        spender.settle(h, cost=2_000_000_000, usage=USAGE, status="ok", latency_us=1, attempts=1)
    with caplog.at_level(logging.WARNING):
        balance = service.account().balance()  # the flush: no InsufficientCredits here
    assert balance.posted == D("-1") and balance.held == D("0.01"), "the call in flight"
    assert "ERROR" not in caplog.text and "unbilled" not in caplog.text
    spender.settle(in_flight, cost=COST, usage=USAGE, status="ok", latency_us=1, attempts=1)
    service.close()
    assert make_service().account().balance().posted == D("-1.004")
