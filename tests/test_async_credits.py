"""``agw.credits``: the account API with every method awaitable (gateway/credits/async_account.py).

Parity with the synchronous account (every public method has an awaitable twin with the same
parameters and the same results), and an event loop that keeps running while the store
makes a call wait.
"""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway import AsyncGateway, Gateway
from gateway.credits import AsyncCreditAccount, CreditAccount
from gateway.errors import UnknownAccount
from gateway.testing.clock import ManualClock

D = Decimal


def config(tmp_path: Path) -> dict[str, Any]:
    return {
        "providers": {"fake": {}},
        "routes": {"r": {"targets": ["fake/m"]}},
        "credits": {"store": f"sqlite:///{tmp_path / 'credits.db'}"},
        "pricing": {"fake/m": {"input": "1", "output": "2"}},
    }


def _public(cls: type) -> dict[str, Any]:
    return {
        name: member
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and (inspect.isfunction(member) or isinstance(member, property))
    }


def test_every_method_of_the_account_has_an_awaitable_twin() -> None:
    sync, twin = _public(CreditAccount), _public(AsyncCreditAccount)
    missing = set(sync) - set(twin)
    assert not missing, f"AsyncCreditAccount lacks {sorted(missing)}"
    for name, method in sync.items():
        mirror = twin[name]
        if isinstance(method, property) or name == "account":  # no I/O: stays synchronous
            assert not inspect.iscoroutinefunction(mirror), name
            continue
        assert inspect.iscoroutinefunction(mirror), f"{name} is not awaitable"
        ours = inspect.signature(mirror).parameters
        theirs = inspect.signature(method).parameters
        assert [(p.name, p.kind, p.default) for p in ours.values()] == [
            (p.name, p.kind, p.default) for p in theirs.values()
        ], name
        assert (mirror.__doc__ or "").strip(), f"{name} has no docstring"


async def test_the_twins_give_what_the_account_gives(tmp_path: Path) -> None:
    clock = ManualClock()
    agw = AsyncGateway(config=config(tmp_path), clock=clock)
    credits = agw.credits
    assert isinstance(credits, AsyncCreditAccount) and credits.name == "default"
    assert not await credits.exists()
    entry = await credits.purchase(D("10"), idempotency_key="order-1")
    assert (await credits.purchase(D("10"), idempotency_key="order-1")).id == entry.id
    await credits.grant(D("2"), note="trial")
    await credits.set_limits(daily=D("5"))
    await credits.set_auto_recharge(below=D("1"), amount=D("5"), monthly_limit=D("20"))
    await credits.disable_auto_recharge()
    await agw.chat.completions.create(model="r", messages=[{"role": "user", "content": "hi"}])
    balance = await credits.balance()
    sync = credits.sync
    assert balance == sync.balance()
    assert await credits.exists()
    assert (await credits.settings()) == sync.settings()
    assert (await credits.settings()).daily_limit == D("5")
    assert [e.id for e in await credits.history(limit=3)] == [e.id for e in sync.history(limit=3)]
    assert await credits.requests() == sync.requests()
    assert await credits.usage(group_by="provider") == sync.usage(group_by="provider")
    assert await credits.statement(date(2026, 1, 1)) == sync.statement("2026-01")
    assert (await credits.verify()).entries == sync.verify().entries
    assert (await credits.recover()).calls == 0
    assert await credits.expire() == []
    named = credits.account("customer-42")  # no await: no I/O
    assert isinstance(named, AsyncCreditAccount) and named.name == "customer-42"
    assert repr(named) == "AsyncCreditAccount('customer-42')"
    with pytest.raises(UnknownAccount):
        await named.balance()
    await named.grant(D("1"))
    assert (await named.balance()).available == D("1")
    await agw.close()


def test_the_sync_gateway_keeps_its_sync_account(tmp_path: Path) -> None:
    gw = Gateway(config=config(tmp_path), clock=ManualClock())
    assert isinstance(gw.credits, CreditAccount)
    gw.credits.grant(D("1"))
    assert gw.credits.balance().available == D("1")
    gw.close()


async def test_the_event_loop_runs_while_the_store_makes_a_write_wait(tmp_path: Path) -> None:
    agw = AsyncGateway(config=config(tmp_path), clock=ManualClock())
    await agw.credits.grant(D("1"))  # the ledger exists
    blocker = sqlite3.connect(tmp_path / "credits.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        pending = asyncio.ensure_future(agw.credits.grant(D("2")))
        ticks = 0
        for _ in range(20):
            await asyncio.sleep(0)  # yields to the loop (no real waiting)
            ticks += 1
        assert ticks == 20 and not pending.done()  # the loop ran; the grant waits
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    await asyncio.wait_for(pending, 30)
    assert (await agw.credits.balance()).available == D("3")
    await agw.close()
