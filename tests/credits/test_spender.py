"""Write-behind settlement (gateway/credits/spender.py): a gateway's calls held in memory
against a lease and written in batches, on both stores.

The clock is a ManualClock, so due batches are written by the settling call (no background
thread) and every step here is deterministic.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.credits import CreditService
from gateway.credits.spender import LEASE_CALLS, LocalHold, Spender
from gateway.errors import CreditStoreUnavailable, InsufficientCredits, SpendLimitExceeded
from gateway.providers.base import TokenUsage
from gateway.testing.clock import ManualClock
from tests.credits.conftest import MakeService

USAGE = TokenUsage(input_tokens=10, output_tokens=2)
HOLD = 10_000_000  # $0.01 in nano-dollars
COST = 4_000_000  # $0.004
D = Decimal


def spender_of(service: CreditService) -> Spender:
    assert service.spender is not None
    return service.spender


def hold(
    spender: Spender, request_id: str, amount: int = HOLD, account: str = "default"
) -> LocalHold:
    held = LocalHold(f"{request_id}#1", account, request_id, amount, "r", "fake", "small", {})
    held.tags["team"] = "a"
    if not spender.try_hold(held):
        spender.hold(held, target="fake/small")
    return held


def settle(spender: Spender, held: LocalHold, cost: int = COST) -> None:
    spender.settle(held, cost=cost, usage=USAGE, status="ok", latency_us=5, attempts=1)


def calls(spender: Spender, n: int, prefix: str = "c", cost: int = COST) -> None:
    for i in range(n):
        settle(spender, hold(spender, f"{prefix}{i}"), cost)


def test_many_calls_cost_one_lease_and_one_batch(make_service: MakeService) -> None:
    service = make_service(flush_interval_ms=1000, max_batch=1000)
    account = service.account()
    account.purchase(D("100"))
    spender = spender_of(service)
    before = len(service.store.entries("default"))
    calls(spender, 50)
    assert spender.pending == 50
    assert len(service.store.entries("default")) == before + 1, "only the lease was written"
    assert service.store.requests() == [], "no request row before the batch is written"

    balance = account.balance()  # a read through the account writes the batch first
    assert spender.pending == 0
    assert balance.posted == D("100") - 50 * D("0.004") and balance.held == 0
    rows = account.requests()
    assert [row.request_id for row in rows] == [f"c{i}" for i in range(50)]
    assert all(row.cost == D("0.004") and row.tags == {"team": "a"} for row in rows)
    kinds = [e.kind for e in service.store.entries("default")][before:]
    assert kinds == ["hold", "settle", "usage"], "one lease, settled for the batch's total"
    account.verify()


def test_a_batch_is_written_when_due_by_the_clock_or_by_size(
    make_service: MakeService, clock: ManualClock
) -> None:
    service = make_service(flush_interval_ms=200, max_batch=5)
    service.account().purchase(D("100"))
    spender = spender_of(service)
    calls(spender, 3)
    assert spender.pending == 3
    clock.advance(0.2)
    calls(spender, 1, prefix="late")
    assert spender.pending == 0, "the settle that found the batch 200 ms old wrote it"
    calls(spender, 5, prefix="size")
    assert spender.pending == 0, "the fifth call filled the batch"
    assert len(service.store.requests()) == 9


def test_other_processes_see_the_lease_as_held(make_service: MakeService) -> None:
    service = make_service()
    service.account().purchase(D("100"))
    spender = spender_of(service)
    held = hold(spender, "x")
    other = make_service()  # another process on the same store
    lease = other.account().balance().held
    assert lease == LEASE_CALLS * D("0.01"), "a lease covers LEASE_CALLS worst cases"
    settle(spender, held)
    service.drain()
    assert other.account().balance().held == 0, "a drained lease with nothing in flight is gone"
    assert other.account().balance().posted == D("100") - D("0.004")


def test_a_lease_never_takes_more_than_a_quarter_of_the_room(make_service: MakeService) -> None:
    service = make_service()
    service.account().purchase(D("5"))
    spender = spender_of(service)
    held = hold(spender, "big", amount=100_000_000)  # $0.10: 64 of them would be $6.40
    other = make_service()
    assert other.account().balance().held == D("1.25"), "a quarter of the $5 the account had"
    # the other process can still hold most of the balance
    other_hold = other.hold(
        account=None, request_id="o", amount=D("3.75"), route="r", provider="p", model="m"
    )
    assert other_hold.amount == D("3.75")
    settle(spender, held)
    service.drain()
    other.release(other_hold)
    service.account().verify()


def test_an_almost_empty_account_is_held_call_by_call_and_refused_exactly(
    make_service: MakeService,
) -> None:
    service = make_service()
    account = service.account()
    account.grant(D("0.025"))
    spender = spender_of(service)
    first = hold(spender, "a")
    second = hold(spender, "b")
    assert account.balance().held == D("0.02")
    with pytest.raises(InsufficientCredits) as info:
        hold(spender, "c")
    message = str(info.value)
    assert "$0.005" in message and "available" in message and "fake/small" in message
    assert "$0.02" in message, "the calls in flight are shown as on hold"
    settle(spender, first)
    spender.release(second)
    balance = account.balance()
    assert balance.posted == D("0.021") and balance.held == 0
    assert [row.request_id for row in account.requests()] == ["a"]
    account.verify()


def test_pending_calls_are_written_even_when_the_next_call_is_refused(
    make_service: MakeService,
) -> None:
    service = make_service(flush_interval_ms=60_000)
    account = service.account()
    account.grant(D("1"))
    spender = spender_of(service)
    calls(spender, 2, cost=HOLD)  # $0.02 spent, still in memory
    assert spender.pending == 2
    with pytest.raises(InsufficientCredits, match=re.escape("$0.98 available")):
        hold(spender, "too-big", amount=990_000_000)
    assert spender.pending == 0, "the refusal's transaction wrote the batch"
    assert len(service.store.requests()) == 2
    assert account.balance().posted == D("0.98")


def test_spend_caps_count_the_lease_and_refuse_with_the_ledgers_message(
    make_service: MakeService,
) -> None:
    service = make_service()
    account = service.account()
    account.purchase(D("100"))
    account.set_limits(daily=D("0.03"))
    spender = spender_of(service)
    calls(spender, 2, cost=HOLD)
    held = hold(spender, "third")
    with pytest.raises(SpendLimitExceeded, match=re.escape("daily spending cap of $0.03")):
        hold(spender, "fourth")
    settle(spender, held, cost=HOLD)
    assert account.balance().posted == D("99.97")
    assert account.settings().daily_limit == D("0.03")
    account.verify()


def test_named_prepaid_accounts_must_exist(make_service: MakeService) -> None:
    from gateway.errors import UnknownAccount

    service = make_service()
    with pytest.raises(UnknownAccount, match="customer-9"):
        hold(spender_of(service), "x", account="customer-9")
    service.account("customer-9").grant(D("1"))
    settle(spender_of(service), hold(spender_of(service), "y", account="customer-9"))
    assert service.account("customer-9").balance().posted == D("0.996")


def test_idle_leases_are_given_back_and_busy_ones_renewed_at_half_their_ttl(
    make_service: MakeService, clock: ManualClock
) -> None:
    service = make_service(hold_ttl_s=60)
    account = service.account()
    account.purchase(D("10"))
    spender = spender_of(service)
    calls(spender, 1)
    spender.flush_due()  # a call since the last write: the lease stays
    lease_ids = {e.hold_id for e in service.store.entries("default") if e.kind == "hold"}
    assert len(lease_ids) == 1
    long_call = hold(spender, "long")  # a call that outlives the lease's TTL
    clock.advance(31)
    spender.flush_due()  # half the TTL: renewed, with the call in flight still held
    assert service.snapshot("default") is not None
    assert len(service.snapshot("default").holds) == 1  # type: ignore[union-attr]
    clock.advance(31)
    spender.flush_due()  # renewed again (no call since the last write: only the one in flight)
    settle(spender, long_call)
    clock.advance(0.2)
    spender.flush_due()  # written, and with nothing in flight the lease is given back
    state = service.snapshot("default")
    assert state is not None and state.holds == {}
    assert account.balance().posted == D("10") - 2 * D("0.004")
    assert not any(e.kind == "hold_expired" for e in service.store.entries("default"))
    account.verify()


def test_a_lease_that_lapsed_is_still_charged(
    make_service: MakeService, clock: ManualClock
) -> None:
    service = make_service(hold_ttl_s=10, flush_interval_ms=60_000)
    account = service.account()
    account.purchase(D("10"))
    spender = spender_of(service)
    held = hold(spender, "slow")
    clock.advance(11)
    make_service().account().expire()  # another process's write: the lease lapses
    settle(spender, held)
    service.drain()
    kinds = [e.kind for e in service.store.entries("default")]
    assert "hold_expired" in kinds and kinds[-1] == "usage"
    assert account.balance().posted == D("9.996")
    account.verify()


def test_a_failed_write_keeps_the_batch_and_the_next_one_writes_it(
    make_service: MakeService, clock: ManualClock
) -> None:
    service = make_service(flush_interval_ms=100)
    account = service.account()
    account.purchase(D("10"))
    spender = spender_of(service)
    calls(spender, 3)
    original = service.write

    def unavailable(*args: object, **kwargs: object) -> object:
        raise CreditStoreUnavailable("store down", written=False)

    service.write = unavailable  # type: ignore[method-assign]
    clock.advance(0.1)
    calls(spender, 1, prefix="during")  # due, but the write fails: the calls stay in memory
    assert spender.pending == 4
    service.write = original  # type: ignore[method-assign]
    spender.flush_due()
    assert spender.pending == 4, "calls settled just now: the batch is theirs to write"
    clock.advance(0.1)
    spender.flush_due()  # a quiet interval: the flush thread writes it
    assert spender.pending == 0 and len(service.store.requests()) == 4
    assert account.balance().posted == D("10") - 4 * D("0.004")
    account.verify()


def test_an_uncertain_commit_is_not_written_twice(make_service: MakeService) -> None:
    """The store lost the commit's answer but the batch went in: the next write finds the
    lease settled and does not settle or record the calls again."""
    service = make_service(flush_interval_ms=60_000)
    account = service.account()
    account.purchase(D("10"))
    spender = spender_of(service)
    calls(spender, 2)
    original = service.write

    def commit_then_lose_the_answer(*args: object, **kwargs: object) -> object:
        original(*args, **kwargs)  # type: ignore[arg-type]
        raise CreditStoreUnavailable("lost at commit", written=None)

    service.write = commit_then_lose_the_answer  # type: ignore[method-assign]
    with pytest.raises(CreditStoreUnavailable):
        spender.flush()
    service.write = original  # type: ignore[method-assign]
    assert spender.pending == 2, "as far as the spender knows, nothing was written"
    spender.flush()
    assert len(service.store.requests()) == 2
    assert account.balance().posted == D("10") - 2 * D("0.004")
    assert account.balance().held == 0
    account.verify()


def test_release_and_repeated_settle_charge_nothing(make_service: MakeService) -> None:
    service = make_service()
    account = service.account()
    account.purchase(D("10"))
    spender = spender_of(service)
    failed = hold(spender, "f")
    spender.release(failed)
    spender.release(failed)
    done = hold(spender, "d")
    settle(spender, done)
    settle(spender, done)
    assert account.balance().posted == D("9.996")
    assert len(account.requests()) == 1


def test_close_writes_what_is_pending_and_stops_the_thread(tmp_path: Path) -> None:
    from gateway._clock import SystemClock
    from gateway.config import CreditsConfig
    from gateway.credits import PriceBook

    service = CreditService(
        CreditsConfig(store=f"sqlite:///{tmp_path / 'c.db'}", flush_interval_ms=60_000),
        PriceBook(),
        clock=SystemClock(),
    )
    service.account().purchase(D("10"))
    spender = spender_of(service)
    calls(spender, 3)
    thread = spender._thread
    assert thread is not None and thread.is_alive(), "the system clock gets a flush thread"
    service.close()
    assert not thread.is_alive()
    again = CreditService(
        CreditsConfig(store=f"sqlite:///{tmp_path / 'c.db'}"), PriceBook(), clock=SystemClock()
    )
    assert len(again.store.requests()) == 3 and again.account().balance().held == 0
    again.close()


@pytest.mark.slow
def test_a_gateway_that_exits_without_close_still_writes_its_calls(store_url: str) -> None:
    """The interpreter's exit handler writes what an unclosed gateway kept in memory."""
    script = textwrap.dedent(
        f"""
        from decimal import Decimal
        from gateway import Gateway
        gw = Gateway(config={{
            "providers": {{"fake": {{"type": "fake"}}}},
            "routes": {{"r": {{"targets": ["fake/m"]}}}},
            "credits": {{"store": "{store_url}", "flush_interval_ms": 60000}},
        }})
        gw.credits.grant(Decimal("1"))
        for _ in range(7):
            gw.chat.completions.create(model="r", messages=[{{"role": "user", "content": "hi"}}])
        print(gw._core.billing.service.spender.pending)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "7", "the calls were still in memory when the script ended"
    from gateway.credits.store import open_store

    store = open_store(store_url)
    try:
        assert len(store.requests()) == 7
        state = store.load("default")
        assert state is not None and state.holds == {}, "the exit handler gave the lease back"
    finally:
        store.close()


def test_calls_of_a_free_model_need_no_lease_and_are_still_recorded(
    make_service: MakeService, clock: ManualClock
) -> None:
    service = make_service(flush_interval_ms=100)
    account = service.account()
    account.purchase(D("10"))
    spender = spender_of(service)
    before = len(service.store.entries("default"))
    for i in range(3):
        settle(spender, hold(spender, f"free{i}", amount=0), cost=0)
    for_free = hold(spender, "priced-after-all", amount=0)
    settle(spender, for_free, cost=COST)  # a zero estimate that cost something is charged
    assert len(service.store.entries("default")) == before, "no lease for zero holds"
    clock.advance(0.1)
    spender.flush_due()
    assert [row.request_id for row in service.store.requests()] == [
        "free0",
        "free1",
        "free2",
        "priced-after-all",
    ]
    assert account.balance().posted == D("10") - D("0.004")
    account.verify()


class _Twin:
    """The same calls through the batched path and the per-call path, side by side."""

    def __init__(self) -> None:
        from gateway.config import CreditsConfig
        from gateway.credits import PriceBook
        from gateway.credits.store import open_store

        self.clock = ManualClock()
        self.services = [
            CreditService(
                CreditsConfig(store="memory://", flush_interval_ms=flush, hold_ttl_s=600),
                PriceBook(),
                clock=self.clock,
                store=open_store("memory://"),
            )
            for flush in (150, 0)
        ]
        for service in self.services:
            service.account().purchase(D("1000"))
        self.batched: dict[str, LocalHold] = {}
        self.direct: dict[str, object] = {}

    def hold(self, request_id: str, amount: int) -> None:
        self.batched[request_id] = hold(spender_of(self.services[0]), request_id, amount)
        self.direct[request_id] = self.services[1].hold(
            account=None,
            request_id=request_id,
            amount=from_nanos_(amount),
            route="r",
            provider="fake",
            model="small",
            tags={"team": "a"},
        )

    def finish(self, request_id: str, cost: int | None) -> None:
        local, direct = self.batched.pop(request_id), self.direct.pop(request_id)
        if cost is None:
            spender_of(self.services[0]).release(local)
            self.services[1].release(direct)  # type: ignore[arg-type]
        else:
            settle(spender_of(self.services[0]), local, cost)
            self.services[1].settle(
                direct,  # type: ignore[arg-type]
                cost=from_nanos_(cost),
                usage=USAGE,
                latency_us=5,
            )


def from_nanos_(nanos: int) -> Decimal:
    from gateway.credits.money import from_nanos

    return from_nanos(nanos)


@pytest.mark.parametrize("seed", range(12))
def test_batched_and_per_call_paths_charge_the_same(seed: int) -> None:
    """Random holds, settlements (some above their hold), releases, batch writes and clock
    jumps (past the TTL too): once drained, the batched account equals the per-call one."""
    import random

    rng = random.Random(seed)
    twin = _Twin()
    open_ids: list[str] = []
    for step in range(120):
        roll = rng.random()
        if roll < 0.45 or not open_ids:
            request_id = f"q{step}"
            twin.hold(request_id, rng.randrange(1, 50) * 1_000_000)
            open_ids.append(request_id)
        elif roll < 0.85:
            request_id = open_ids.pop(rng.randrange(len(open_ids)))
            cost = None if rng.random() < 0.15 else rng.randrange(0, 80) * 1_000_000
            twin.finish(request_id, cost)
        elif roll < 0.95:
            twin.clock.advance(rng.choice([0.01, 0.2, 1, 400, 700]))
        else:
            spender_of(twin.services[0]).flush_due()
    for request_id in list(open_ids):
        twin.finish(request_id, rng.randrange(0, 80) * 1_000_000)
    batched, direct = (service.account() for service in twin.services)
    assert batched.balance().posted == direct.balance().posted
    assert batched.balance().held == direct.balance().held == 0
    key = lambda row: row.request_id  # noqa: E731
    assert [
        (r.request_id, r.cost_nanos, r.hold_id) for r in sorted(batched.requests(), key=key)
    ] == [(r.request_id, r.cost_nanos, r.hold_id) for r in sorted(direct.requests(), key=key)]
    batched.verify()
    direct.verify()
    for service in twin.services:
        service.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX-only")
def test_a_forked_child_never_writes_its_parents_calls(tmp_path: Path) -> None:
    """A pre-forking server builds the gateway, then forks: the child starts with no lease
    and nothing pending, and its own calls are written by its own exit handler."""
    from gateway.config import CreditsConfig
    from gateway.credits import PriceBook

    url = f"sqlite:///{tmp_path / 'c.db'}"
    service = CreditService(
        CreditsConfig(store=url, flush_interval_ms=60_000), PriceBook(), clock=ManualClock()
    )
    service.account().purchase(D("10"))
    spender = spender_of(service)
    calls(spender, 3, prefix="parent")
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            if spender.pending == 0:
                calls(spender, 2, prefix="child")
                service.close()
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    service.drain()
    ids = sorted(row.request_id for row in service.store.requests())
    assert ids == ["child0", "child1", "parent0", "parent1", "parent2"]
    assert service.account().balance().posted == D("10") - 5 * D("0.004")
    assert service.account().balance().held == 0
    service.account().verify()
    service.close()
