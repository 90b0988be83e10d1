"""The outbox in both stores: rows commit with the entries that caused them, claims lease the
oldest undelivered row of each account and endpoint, once-only events stay once."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from gateway.credits import ledger
from gateway.errors import InvalidCreditsInput, SpendLimitExceeded
from gateway.providers.base import TokenUsage
from gateway.testing.clock import ManualClock
from gateway.webhooks.outbox import Finish, endpoint_id, open_outbox
from tests.webhooks.conftest import MakeService, endpoint

URL_A, URL_B = "https://a.example.com/hook", "https://b.example.com/hook"


def test_event_rows_commit_with_their_entries_or_not_at_all(
    make_service: MakeService, secret: str
) -> None:
    service = make_service([endpoint(URL_A, secret), endpoint(URL_B, secret)])
    outbox = open_outbox(service.store)
    account = service.account("acme")
    account.purchase(Decimal("20"))
    rows = outbox.deliveries()
    assert {r.endpoint for r in rows} == {endpoint_id(URL_A), endpoint_id(URL_B)}
    assert len({r.event_id for r in rows}) == 1 and all(r.status == "pending" for r in rows)
    assert json.loads(rows[0].body)["data"]["amount"] == "20.00"

    def credit_then_fail(step: object) -> None:
        from gateway.credits.service import _Step

        assert isinstance(step, _Step)
        step.add(ledger.credit(step.state, source=ledger.PURCHASE, amount=10**9, expires_us=2**60))
        raise InvalidCreditsInput("refused after the entry was decided")

    with pytest.raises(InvalidCreditsInput):
        service.write("acme", credit_then_fail, create=False)
    assert len(outbox.deliveries()) == 2  # no row for the purchase that was not written
    assert account.balance().posted == Decimal("20")


def test_claims_lease_the_head_of_each_account_and_endpoint(
    make_service: MakeService, secret: str, clock: ManualClock
) -> None:
    service = make_service([endpoint(URL_A, secret)])
    for _ in range(3):
        service.account("acme").purchase(Decimal("5"))
    service.account("bolt").purchase(Decimal("5"))
    outbox = open_outbox(service.store)
    now = service.now_us()
    ep = [endpoint_id(URL_A)]
    first = outbox.claim(endpoints=ep, owner="one", now_us=now, lease_us=60_000_000, limit=10)
    assert [(d.account, d.id) for d in first] == [
        ("acme", min(d.id for d in outbox.deliveries(account="acme"))),
        ("bolt", outbox.deliveries(account="bolt")[0].id),
    ]
    assert all(d.lease_until_us == now + 60_000_000 for d in first)
    # leased: nobody else gets them, and nothing behind them is due
    assert outbox.claim(endpoints=ep, owner="two", now_us=now, lease_us=1, limit=10) == []
    assert outbox.claim(endpoints=["ep_other"], owner="two", now_us=now, lease_us=1, limit=9) == []

    acme = first[0]
    delivered = Finish("delivered", acme.next_attempt_us, 200, None, now)
    assert outbox.finish(acme, owner="one", result=delivered, now_us=now)
    (second,) = outbox.claim(endpoints=ep, owner="two", now_us=now, lease_us=1, limit=10)
    assert second.account == "acme" and second.id > acme.id

    # a lease that ended is taken over; the first owner can no longer record a failure
    later = now + 2
    (again,) = outbox.claim(endpoints=ep, owner="three", now_us=later, lease_us=10, limit=10)
    assert again.id == second.id
    retry = Finish("pending", later + 5, 500, "HTTP 500", None)
    assert not outbox.finish(second, owner="two", result=retry, now_us=later)
    assert outbox.finish(again, owner="three", result=retry, now_us=later)
    row = outbox.get(again.id)
    assert row is not None and (row.attempts, row.last_status) == (1, 500)
    # not due before its next attempt (bolt's row is still leased to "one")
    assert outbox.claim(endpoints=ep, owner="four", now_us=later + 4, lease_us=1, limit=9) == []
    (due,) = outbox.claim(endpoints=ep, owner="four", now_us=later + 5, lease_us=1, limit=9)
    assert due.id == again.id


def test_410_disables_an_endpoint_until_a_retry(make_service: MakeService, secret: str) -> None:
    service = make_service([endpoint(URL_A, secret)])
    service.account("acme").purchase(Decimal("5"))
    service.account("acme").purchase(Decimal("6"))
    outbox = open_outbox(service.store)
    now, ep = service.now_us(), [endpoint_id(URL_A)]
    (first,) = outbox.claim(endpoints=ep, owner="one", now_us=now, lease_us=9, limit=5)
    gone = Finish("pending", now, 410, "410 Gone: the endpoint was disabled", None, disable=True)
    assert outbox.finish(first, owner="one", result=gone, now_us=now)
    assert set(outbox.disabled()) == {endpoint_id(URL_A)}
    assert outbox.claim(endpoints=ep, owner="one", now_us=now + 10**9, lease_us=9, limit=5) == []
    retried = outbox.retry(first.id, now_us=now + 5, deadline_us=now + 10**6)
    assert retried is not None and retried.status == "pending" and outbox.disabled() == {}
    (again,) = outbox.claim(endpoints=ep, owner="one", now_us=now + 5, lease_us=9, limit=5)
    assert again.id == first.id
    assert outbox.retry(10**9, now_us=now, deadline_us=now) is None


def test_retry_sends_a_failed_or_delivered_row_again_and_prune_forgets_old_ones(
    make_service: MakeService, secret: str
) -> None:
    service = make_service([endpoint(URL_A, secret)])
    service.account("acme").purchase(Decimal("5"))
    outbox = open_outbox(service.store)
    now, ep = service.now_us(), [endpoint_id(URL_A)]
    (row,) = outbox.claim(endpoints=ep, owner="one", now_us=now, lease_us=9, limit=5)
    failed = Finish("failed", now, 500, "HTTP 500 (gave up)", now)
    assert outbox.finish(row, owner="one", result=failed, now_us=now)
    assert [d.id for d in outbox.deliveries(status="failed")] == [row.id]
    assert outbox.claim(endpoints=ep, owner="one", now_us=now + 1, lease_us=9, limit=5) == []
    retried = outbox.retry(row.id, now_us=now + 1, deadline_us=now + 100)
    assert retried is not None and (retried.status, retried.deadline_us) == ("pending", now + 100)
    assert retried.done_us is None and retried.attempts == 1
    assert outbox.prune(before_us=now + 10**12) == 0  # pending rows are kept
    (again,) = outbox.claim(endpoints=ep, owner="one", now_us=now + 1, lease_us=9, limit=5)
    assert outbox.finish(
        again, owner="one", result=Finish("delivered", 0, 200, None, now + 2), now_us=now + 2
    )
    assert outbox.prune(before_us=now + 2) == 0
    assert outbox.prune(before_us=now + 3) == 1 and outbox.deliveries() == []


@pytest.mark.parametrize("flush_interval_ms", [0, 200])
def test_limit_reached_is_written_once_per_window_though_the_call_is_refused(
    make_service: MakeService, secret: str, clock: ManualClock, flush_interval_ms: int
) -> None:
    service = make_service(
        [endpoint(URL_A, secret)],
        limits={"daily": "1.00"},
        flush_interval_ms=flush_interval_ms,
    )
    account = service.account("acme")
    account.purchase(Decimal("20"))
    outbox = open_outbox(service.store)

    def call(n: int) -> None:
        billing_hold(service, "acme", f"r{n}", Decimal("0.60"))

    call(1)
    entries = len(service.store.entries("acme"))
    for n in (2, 3):
        with pytest.raises(SpendLimitExceeded):
            call(n)
    assert len(service.store.entries("acme")) == entries  # the refusals wrote no entry
    reached = [d for d in outbox.deliveries() if d.type == "limit.reached"]
    assert len(reached) == 1
    data = json.loads(reached[0].body)["data"]
    assert data["limit"] == "daily" and data["cap"] == "1.00" and data["account"] == "acme"

    # Another process (its own memory) refused in the same window: still one row.
    other = make_service(
        [endpoint(URL_A, secret)], limits={"daily": "1.00"}, flush_interval_ms=flush_interval_ms
    )
    with pytest.raises(SpendLimitExceeded):
        billing_hold(other, "acme", "r4", Decimal("0.60"))
    assert len([d for d in outbox.deliveries() if d.type == "limit.reached"]) == 1

    clock.advance(86_400)  # the next day: a new window
    call(5)
    with pytest.raises(SpendLimitExceeded):
        call(6)
    windows = {
        json.loads(d.body)["data"]["window"]
        for d in outbox.deliveries()
        if d.type == "limit.reached"
    }
    assert len(windows) == 2


def billing_hold(service: object, account: str, request_id: str, amount: Decimal) -> None:
    """Hold and settle one call the way the client does (batched when the service is)."""
    from gateway.credits.service import CreditService
    from gateway.credits.spender import LocalHold

    assert isinstance(service, CreditService)
    usage = TokenUsage(10, 10)
    if service.spender is None:
        hold = service.hold(
            account=account,
            request_id=request_id,
            amount=amount,
            route="r",
            provider="fake",
            model="small",
        )
        service.settle(hold, cost=amount, usage=usage)
        return
    local = LocalHold(
        hold_id=f"{request_id}#1",
        account=account,
        request_id=request_id,
        amount_nanos=int(amount * 10**9),
        route="r",
        provider="fake",
        model="small",
        tags={},
    )
    service.spender.hold(local, target="fake/small")
    service.spender.settle(
        local, cost=local.amount_nanos, usage=usage, status="ok", latency_us=1, attempts=1
    )
    service.drain(account)


def test_a_migration_missing_below_the_newest_is_still_applied(store_url: str) -> None:
    """Migration 005 may reach a database before 003 and 004 (branches land in any order):
    opening it applies whatever is missing, not only what is above the newest applied."""
    from gateway.credits.store import open_store

    first = open_store(store_url)
    first.accounts()  # migrated to the newest on first use
    first.close()
    if store_url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(store_url.removeprefix("sqlite:///"))
        conn.execute("DROP INDEX requests_account_hold")
        conn.execute("DELETE FROM schema_migrations WHERE version = 2")
        conn.commit()
        conn.close()
    else:
        import psycopg

        with psycopg.connect(store_url, autocommit=True) as pg:
            pg.execute("DROP INDEX requests_account_hold")
            pg.execute("DELETE FROM schema_migrations WHERE version = 2")
    store = open_store(store_url)
    try:
        store.accounts()  # first use migrates
        assert store.schema_version() == 7  # type: ignore[attr-defined]
        if store_url.startswith("sqlite"):
            with store.reading() as conn:  # type: ignore[attr-defined]
                names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
                versions = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
        else:
            names = set(
                store.run(  # type: ignore[attr-defined]
                    lambda c: [r[0] for r in c.execute("SELECT indexname FROM pg_indexes")],
                    what="test",
                )
            )
            versions = set(
                store.run(  # type: ignore[attr-defined]
                    lambda c: [r[0] for r in c.execute("SELECT version FROM schema_migrations")],
                    what="test",
                )
            )
        assert "requests_account_hold" in names and versions >= {1, 2, 5}
    finally:
        store.close()
