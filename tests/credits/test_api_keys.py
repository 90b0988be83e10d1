"""API keys in the credit store (gateway/keys.py, gateway/credits/key_store.py), on both
stores: only a hash is stored; revocation, spend limits and rpm hold across processes.

Two gateways on one store stand for two processes (or hosts): each has its own store
connections, snapshot cache, leases and key cache, and they share only the database. The
clock is a ManualClock shared by both, so "within one second" is tested without sleeping.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway import Gateway
from gateway.credits import ledger
from gateway.credits.ledger import AccountState, KeySpend, Limits, Window
from gateway.errors import InvalidApiKey, KeyRateLimited, SpendLimitExceeded
from gateway.keys import ApiKey, Keys
from gateway.providers.base import TokenUsage
from gateway.providers.fake import FakeAdapter
from gateway.testing.clock import ManualClock

D = Decimal
HI = [{"role": "user", "content": "hi"}]
#: Output at $1000 per 1M tokens and free input: a call with max_tokens=100 that writes 100
#: tokens holds and costs exactly $0.10.
CALL = D("0.1")


def config(url: str, **credits: Any) -> dict[str, Any]:
    return {
        "providers": {"fake": {}},
        "routes": {"r": {"targets": ["fake/m"], "retry": {"attempts": 1}}},
        "credits": {"store": url, **credits},
        "pricing": {"fake/m": {"input": "0", "output": "1000"}},
    }


@pytest.fixture
def gateways(store_url: str, clock: ManualClock) -> Iterator[Any]:
    """``make(**credits)``: a gateway on the test store (each one a "process")."""
    made: list[Gateway] = []

    def make(**credits: Any) -> Gateway:
        gw = Gateway(config=config(store_url, **credits), clock=clock)
        adapter = gw.adapter("fake")
        assert isinstance(adapter, FakeAdapter)
        adapter.script.respond("ok", usage=TokenUsage(0, 100), times=10_000)
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.close()


def ask(gw: Gateway, key: ApiKey) -> Decimal:
    resp = gw.chat.completions.create(model="r", messages=HI, max_tokens=100, api_key=key)
    assert resp.usage is not None and resp.usage.cost is not None
    return resp.usage.cost


def calls_made(gw: Gateway) -> int:
    adapter = gw.adapter("fake")
    assert isinstance(adapter, FakeAdapter)
    return len(adapter.calls)


# -- storage ------------------------------------------------------------------------------------


def _stored_text(gw: Gateway, store_url: str) -> str:
    """Everything the store holds, as text: every row of every table (and, for SQLite, the
    bytes of the file and of its write-ahead log)."""
    store: Any = gw._core.billing.service.store  # type: ignore[union-attr]
    if store_url.startswith("sqlite"):
        path = Path(store_url[len("sqlite:///") :])
        raw = b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
        text = raw.decode("latin-1")
        tables_sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    else:
        text = ""
        tables_sql = (
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    tables = store.read_sql(lambda conn: [r[0] for r in conn.execute(tables_sql)])
    assert "api_keys" in tables
    for table in tables:
        rows = store.read_sql(lambda conn, t=table: conn.execute(f"SELECT * FROM {t}").fetchall())
        text += repr(rows)
    return text


def test_a_key_is_stored_only_as_its_hash(gateways: Any, store_url: str) -> None:
    gw = gateways()
    gw.credits.grant(D("10"))
    new = gw.keys.create(account="default", name="ci", routes=["r"], daily_limit=D("5"))
    key = gw.keys.authenticate(new.key)
    ask(gw, key)
    gw.keys.revoke(key.id)
    gw.credits.balance()  # writes the batch
    stored = _stored_text(gw, store_url)
    digest = hashlib.sha256(new.key.encode()).hexdigest()
    assert digest in stored and key.id in stored
    assert new.key not in stored
    assert new.key[len("gk_") :] not in stored  # not even the random part alone
    assert new.key[-20:] not in stored


def test_keys_are_kept_revoked_never_deleted(gateways: Any) -> None:
    gw = gateways()
    key = gw.keys.create(account="default", name="ci").info
    store: Any = gw._core.billing.service.store
    from gateway.errors import CreditsError

    with pytest.raises(CreditsError, match="never deleted"):
        store.write_sql(lambda conn: conn.execute("DELETE FROM api_keys"))
    gw.keys.revoke(key.id)
    with pytest.raises(CreditsError, match="stays revoked"):
        store.write_sql(lambda conn: conn.execute("UPDATE api_keys SET revoked_us = NULL"))
    assert gw.keys.get(key.id).revoked


def test_migration_003_upgrades_a_store_made_before_it(
    store_url: str, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.credits import sqlite_store
    from gateway.credits.store import migrate

    if store_url.startswith("postgresql"):
        from gateway.credits import postgres_store as module
    else:
        module = sqlite_store  # type: ignore[assignment]
    with monkeypatch.context() as patch:
        # every migration but 003 (a later one, 004, landed first on another branch)
        patch.setattr(module, "MIGRATIONS", tuple(m for m in module.MIGRATIONS if m[0] != 3))
        old = Gateway(config=config(store_url), clock=clock)
        old.credits.grant(D("3"))
        old.close()
    assert "003_api_keys" in migrate(store_url).applied
    gw = Gateway(config=config(store_url), clock=clock)
    assert gw.credits.balance().available == D("3")
    new = gw.keys.create(account="default", name="after")
    assert gw.keys.authenticate(new.key).name == "after"
    gw.close()


# -- revocation and expiry across processes ---------------------------------------------------


def test_a_revocation_reaches_every_process_within_one_second(
    gateways: Any, clock: ManualClock
) -> None:
    here, there = gateways(), gateways()
    new = here.keys.create(account="default", name="ci")
    assert there.keys.authenticate(new.key).id == new.id  # "there" caches it now
    clock.advance(0.25)
    here.keys.revoke(new.id)
    with pytest.raises(InvalidApiKey) as info:
        here.keys.authenticate(new.key)  # the revoking process at once
    assert info.value.reason == "revoked" and info.value.key_id == new.id
    clock.advance(0.5)
    there.keys.authenticate(new.key)  # 0.75 s after it was read: still cached
    clock.advance(0.25)
    with pytest.raises(InvalidApiKey) as info:  # 1 s after the read: read again, refused
        there.keys.authenticate(new.key)
    assert info.value.reason == "revoked"


def test_an_expired_key_is_refused_at_once(gateways: Any, clock: ManualClock) -> None:
    gw = gateways()
    expires = clock.now() + timedelta(seconds=10)
    new = gw.keys.create(account="default", name="short", expires_at=expires)
    gw.keys.authenticate(new.key)
    clock.advance(10)
    with pytest.raises(InvalidApiKey) as info:
        gw.keys.authenticate(new.key)  # cached, but expiry is checked on every use
    assert info.value.reason == "expired"


# -- spend limits across processes ------------------------------------------------------------


@pytest.mark.parametrize("flush_interval_ms", [200, 0])
def test_a_keys_daily_limit_admits_exactly_what_it_allows_across_processes(
    gateways: Any, flush_interval_ms: int
) -> None:
    one, two = (
        gateways(flush_interval_ms=flush_interval_ms),
        gateways(flush_interval_ms=flush_interval_ms),
    )
    one.credits.grant(D("100"))
    key = one.keys.create(account="default", name="ci", daily_limit=D("1")).info
    other = one.keys.create(account="default", name="other").info
    admitted, spent = 0, D(0)
    for _ in range(6):  # rounds; every round ends with both processes' batches written
        for gw in (one, two, one, two):
            try:
                spent += ask(gw, key)
                admitted += 1
            except SpendLimitExceeded as exc:
                assert exc.api_key == key.id and exc.limit == "daily"
                assert key.id in exc.message and "No provider was called" in exc.message
        assert spent <= D("1")
        one.credits.balance(), two.credits.balance()  # write what is pending, return leases
    assert admitted == 10 and spent == D("1")
    assert calls_made(one) + calls_made(two) == 10  # no provider saw a refused call
    ask(two, other)  # a key without limits, and the account, still spend
    state = one._core.billing.service.snapshot("default")
    assert state is not None and state.key_spend[key.id].day.total == 1_000_000_000
    one.credits.verify()


def test_a_keys_calls_in_flight_count_towards_its_limit_in_other_processes(
    gateways: Any,
) -> None:
    one, two = gateways(), gateways()
    one.credits.grant(D("100"))
    key = one.keys.create(account="default", name="ci", daily_limit=D("0.25")).info
    stream = one.chat.completions.create(
        model="r", messages=HI, max_tokens=100, api_key=key, stream=True
    )  # held, not settled: in flight in process one
    next(iter(stream))
    ask(two, key)  # 0.10 in flight + 0.10 here: within 0.25
    with pytest.raises(SpendLimitExceeded):
        ask(two, key)  # 0.20 + another 0.10 would pass it
    for _ in stream:
        pass
    one.credits.balance()
    two.credits.balance()
    with pytest.raises(SpendLimitExceeded):
        ask(two, key)  # 0.20 spent: still no room for 0.10
    one.credits.verify()


def test_key_spend_is_derived_from_the_ledger(gateways: Any, clock: ManualClock) -> None:
    gw = gateways()
    gw.credits.grant(D("10"))
    key = gw.keys.create(account="default", name="ci", monthly_limit=D("0.3")).info
    for _ in range(3):
        ask(gw, key)
    with pytest.raises(SpendLimitExceeded) as info:
        ask(gw, key)
    assert info.value.limit == "monthly"
    service = gw._core.billing.service
    assert service is not None
    gw.credits.verify()  # replaying the entries gives the stored key_spend
    clock.advance(32 * 86_400)  # next month
    ask(gw, key)
    gw.credits.balance()  # writes the pending batch
    state = service.snapshot("default")
    assert state is not None
    assert state.key_spend[key.id].month == Window("2026-02", 100_000_000)


# -- rpm across processes ---------------------------------------------------------------------


def test_rpm_admits_exactly_rpm_calls_a_minute_across_processes(
    gateways: Any, clock: ManualClock
) -> None:
    one, two = gateways(), gateways()
    key = one.keys.create(account="default", name="ci", rpm=10).info
    clock.advance(15)  # 12:00:15
    admitted = 0
    refused: list[KeyRateLimited] = []
    for _ in range(12):
        for keys in (one.keys, two.keys):
            try:
                keys.count_call(key)
                admitted += 1
            except KeyRateLimited as exc:
                refused.append(exc)
    assert admitted == 10
    assert refused and all(e.retry_after == 45 and e.key_id == key.id for e in refused)
    clock.advance(45)  # the next minute
    two.keys.count_call(key)
    one.keys.count_call(key)


def test_a_process_counts_rpm_in_memory_between_shares(gateways: Any) -> None:
    gw = gateways()
    key = gw.keys.create(account="default", name="ci", rpm=100).info
    keys: Keys = gw.keys
    taken: list[int] = []
    store = keys._store
    original = store.take_calls

    def counting(key_id: str, minute: int, rpm: int) -> int:
        share = original(key_id, minute, rpm)
        taken.append(share)
        return share

    store.take_calls = counting  # type: ignore[method-assign]
    for _ in range(100):
        keys.count_call(key)
    with pytest.raises(KeyRateLimited):
        keys.count_call(key)
    assert sum(taken) == 100 and len(taken) < 25  # a quarter of what is left each time


# -- the ledger's rules (pure) ----------------------------------------------------------------


def test_a_snapshot_without_keys_reads_and_writes_as_before() -> None:
    state = AccountState(name="a")
    assert "key_spend" not in state.to_json()
    state.key_spend["key_1"] = KeySpend(Window("2026-01-15", 5), Window("2026-01", 7))
    state.holds["h"] = ledger.OpenHold("h", "r", 3, 1, 2, api_key="key_1")
    import json

    assert state.to_json() == json.dumps(state.as_json(), separators=(",", ":"))
    assert AccountState.from_json(state.to_json()) == state


def test_a_hold_for_a_key_is_refused_past_its_limit_with_calls_in_flight() -> None:
    now = 1_768_478_400_000_000  # 2026-01-15 12:00 UTC
    state = AccountState(name="a")
    limits = Limits(daily=100)
    for entry in ledger.place_hold(
        state,
        now,
        hold_id="h1",
        request_id="r1",
        amount=60,
        ttl_us=1,
        prepaid=False,
        limits=Limits(),
        api_key="key_1",
        key_limits=limits,
    ):
        ledger.apply(state, entry)
    room = ledger.hold_room(
        state, now - 1, prepaid=False, limits=Limits(), api_key="key_1", key_limits=limits
    )
    assert room == 40
    with pytest.raises(SpendLimitExceeded):
        ledger.place_hold(
            state,
            now - 1,
            hold_id="h2",
            request_id="r2",
            amount=41,
            ttl_us=1,
            prepaid=False,
            limits=Limits(),
            api_key="key_1",
            key_limits=limits,
        )
    # another key, or no key, is not limited by key_1's spend
    assert ledger.hold_room(state, now - 1, prepaid=False, limits=Limits()) is None


# -- a process that dies ----------------------------------------------------------------------


@pytest.mark.parametrize("lapsed", [False, True])
def test_a_dead_processs_calls_count_towards_the_keys_spend_when_replayed(
    make_service: Any, clock: ManualClock, lapsed: bool
) -> None:
    from gateway.credits.spender import LocalHold
    from tests.credits.test_journal import BATCHED, die, spender_of

    dead = make_service(**BATCHED)
    dead.account().purchase(D("100"))
    limits = Limits(daily=1_000_000_000)  # $1: the three calls fit one lease
    spender = spender_of(dead)
    for i in range(3):
        held = LocalHold(f"k{i}#1", "default", f"k{i}", 10_000_000, "r", "fake", "small", {})
        held.api_key, held.key_limits = "key_1", limits
        if not spender.try_hold(held):
            spender.hold(held, target="fake/small")
        spender.settle(
            held, cost=10_000_000, usage=TokenUsage(1, 1), status="ok", latency_us=1, attempts=1
        )
    die(dead)
    if lapsed:
        clock.advance(dead.config.hold_ttl_s + 1)
    heir = make_service(**BATCHED)
    assert heir.recover().calls == 3
    state = heir.snapshot("default")
    assert state is not None and state.key_spend["key_1"].day.total == 30_000_000
    assert (
        ledger.hold_room(
            state, heir.now_us(), prepaid=True, limits=Limits(), api_key="key_1", key_limits=limits
        )
        == 970_000_000
    )
    heir.account().verify()
