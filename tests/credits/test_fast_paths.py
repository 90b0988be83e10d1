"""The shortcuts of the per-call write path give exactly what the plain way gives."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest

from gateway.credits import ledger
from gateway.credits.ledger import AccountState, Calendar, LedgerEntry
from gateway.credits.money import to_micros
from gateway.credits.sqlite_store import SQLiteStore
from gateway.credits.store import SnapshotCache

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Sao_Paulo",  # clock changes at midnight (until 2019)
    "America/Havana",  # clock changes at midnight
    "Australia/Lord_Howe",  # half-hour changes
    "Pacific/Apia",  # skipped 2011-12-30 entirely
    "Asia/Kathmandu",
]


@pytest.mark.parametrize("tz", ZONES)
def test_cached_day_keys_are_the_calendar_days(tz: str) -> None:
    calendar = Calendar(tz)
    rng = random.Random(tz)
    start = to_micros(datetime(2008, 1, 1, tzinfo=UTC))
    end = to_micros(datetime(2030, 1, 1, tzinfo=UTC))
    instants = [rng.randrange(start, end) for _ in range(2000)]
    # walk through whole years hour by hour (and a bit) in order, as a running service does
    step = 3_600_000_000 + 1_234_567
    instants += list(range(to_micros(datetime(2011, 1, 1, tzinfo=UTC)), end, step * 7))
    instants += list(range(start, start + 400 * 24 * 3_600_000_000, step))
    for at_us in instants:
        expected = calendar.local(at_us).date().isoformat()
        assert calendar.day_key(at_us) == expected, (tz, at_us)
        assert calendar.month_key(at_us) == expected[:7]


def test_the_snapshot_cache_reuses_only_the_exact_text() -> None:
    cache = SnapshotCache(limit=2)
    state = AccountState(name="a", debt=5)
    text = state.to_json()
    cache.put("a", text, state)
    assert cache.take("a", text) is state
    assert cache.take("a", text) is not state  # taken out: a second taker parses its own
    cache.put("a", text, state)
    other = AccountState(name="a", debt=6)
    assert cache.take("a", other.to_json()) == other
    for name in "abc":
        cache.put(name, text, state)
    assert len(cache._items) == 2


def _grant(store: SQLiteStore, account: str, amount: int, at_us: int) -> None:
    with store.transaction(account) as tx:
        state = tx.state or AccountState(name=account)
        entries = ledger.credit(
            state, source=ledger.GRANT, amount=amount, expires_us=at_us + 10**12
        )
        for entry in entries:
            entry.account, entry.at_us = account, at_us
            ledger.apply(state, entry)
        tx.append(entries)
        tx.save(state)


def test_a_write_by_another_process_is_seen(tmp_path: Path) -> None:
    path = str(tmp_path / "c.db")
    mine, theirs = SQLiteStore(path), SQLiteStore(path)
    _grant(mine, "a", 5, 1)
    _grant(theirs, "a", 7, 2)  # not through ``mine``: its cached snapshot is stale
    _grant(mine, "a", 11, 3)
    assert mine.load("a") is not None
    with mine.transaction("a") as tx:
        assert tx.state is not None and tx.state.posted == 23
        assert ledger.verify_state(tx.state, tx.entries()) == []
    conn = sqlite3.connect(path)  # a repair by hand
    conn.execute("UPDATE accounts SET state = ?", (AccountState(name="a").to_json(),))
    conn.commit()
    conn.close()
    with mine.transaction("a") as tx:
        assert tx.state is not None and tx.state.posted == 0
    mine.close()
    theirs.close()


def test_a_rolled_back_write_leaves_no_trace_in_the_cache(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "c.db"))
    _grant(store, "a", 5, 1)
    with pytest.raises(RuntimeError), store.transaction("a") as tx:
        assert tx.state is not None
        tx.state.debt = 99  # changed in place, then the write fails
        raise RuntimeError
    with store.transaction("a") as tx:
        assert tx.state is not None and tx.state.debt == 0 and tx.state.posted == 5
    store.close()


@pytest.mark.parametrize("count", [1, 2, 3, 255, 256, 257, 700])
def test_entries_appended_at_once_get_their_ids_in_order(tmp_path: Path, count: int) -> None:
    store = SQLiteStore(str(tmp_path / "c.db"))
    _grant(store, "other", 1, 1)
    entries = [
        LedgerEntry(ledger.SETTINGS, meta={"n": i} if i % 2 else {}, account="a", at_us=i)
        for i in range(count)
    ]
    with store.transaction("a") as tx:
        tx.append(entries)
        tx.save(AccountState(name="a"))
    stored = store.entries("a")
    assert [e.id for e in stored] == [e.id for e in entries]
    assert [e.meta for e in stored] == [e.meta for e in entries]
    assert len({e.id for e in entries}) == count
    store.close()


def test_settling_after_another_process_wrote_charges_the_new_state(tmp_path: Path) -> None:
    from gateway._clock import SystemClock
    from gateway.config import CreditsConfig
    from gateway.credits import CreditService, PriceBook
    from gateway.providers.base import TokenUsage

    url = f"sqlite:///{tmp_path / 'c.db'}"

    def service() -> CreditService:
        return CreditService(
            CreditsConfig(store=url), PriceBook.from_config({}), clock=SystemClock()
        )

    one, two = service(), service()
    one.account().grant(D("1"))
    usage = TokenUsage(input_tokens=1, output_tokens=1)
    for i in range(20):
        by = one if i % 3 else two
        hold = by.hold(
            account=None, request_id=f"r{i}", amount=D("0.01"), route="r", provider="p", model="m"
        )
        (two if i % 2 else one).settle(hold, cost=D("0.001"), usage=usage)
    assert one.account().balance().available == D("0.98")
    one.account().verify()
    two.account().verify()
    one.close()
    two.close()
