"""Every request row says what kind of call it was (``operation``: chat, embeddings, images,
batch), on both stores, through both write paths and the journal; a store made before the
column existed (migration 004) reads its rows as chat calls; usage groups by it."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.credits import CreditService
from gateway.credits.journal import parse
from gateway.credits.reports import GROUP_KEYS
from gateway.credits.spender import LocalHold
from gateway.credits.sqlite_store import SQLiteStore, m001_initial, m002_requests_unique_hold
from gateway.credits.store import RequestRow, open_store
from gateway.errors import InvalidCreditsInput
from gateway.providers.base import TokenUsage
from tests.credits.conftest import MakeService, NewStoreUrl
from tests.credits.test_journal import die, funded, journal_path, records, spender_of

D = Decimal
USAGE = TokenUsage(input_tokens=100, output_tokens=0)
BATCHED = {"flush_interval_ms": 60_000, "max_batch": 10_000}


def local_hold(request_id: str, operation: str) -> LocalHold:
    return LocalHold(
        f"{request_id}#1",
        "default",
        request_id,
        1_000_000,
        "r",
        "fake",
        "small",
        {},
        operation=operation,
    )


def test_rows_keep_their_operation_on_the_per_call_path(make_service: MakeService) -> None:
    service = make_service(flush_interval_ms=0)
    account = service.account()
    account.purchase(D("10"))
    for request_id, operation in (("a", "chat"), ("b", "embeddings"), ("c", "images")):
        held = service.hold(
            account=None,
            request_id=request_id,
            amount=D("0.01"),
            route="r",
            provider="fake",
            model="small",
            operation=operation,
        )
        assert held.operation == operation
        service.settle(held, cost=D("0.001"), usage=USAGE)
    rows = service.store.requests()
    assert [(r.request_id, r.operation) for r in rows] == [
        ("a", "chat"),
        ("b", "embeddings"),
        ("c", "images"),
    ]
    assert [r.as_dict()["operation"] for r in rows] == ["chat", "embeddings", "images"]
    holds = [e for e in service.store.entries("default") if e.kind == "hold"]
    assert "operation" not in holds[0].meta, "a chat hold's entry is written as it always was"
    assert [h.meta.get("operation") for h in holds[1:]] == ["embeddings", "images"]
    usage = account.usage(group_by="operation")
    assert [(u["operation"], u.requests, u.cost) for u in usage] == [
        ("chat", 1, D("0.001")),
        ("embeddings", 1, D("0.001")),
        ("images", 1, D("0.001")),
    ]


def test_rows_keep_their_operation_through_the_batch_and_the_journal(
    make_service: MakeService,
) -> None:
    service = funded(make_service)
    spender = spender_of(service)
    for request_id, operation in (("e", "embeddings"), ("i", "images"), ("c", "chat")):
        held = local_hold(request_id, operation)
        if not spender.try_hold(held):
            spender.hold(held, target="fake/small")
        spender.settle(held, cost=2_000_000, usage=USAGE, status="ok", latency_us=1, attempts=1)
    lines = [line for line in records(journal_path(service)) if line[0] == "c"]
    assert [(line[2], line[19]) for line in lines] == [
        ("e", "embeddings"),
        ("i", "images"),
        ("c", "chat"),
    ]
    die(service)

    heir = make_service(**BATCHED)
    assert heir.recover().calls == 3
    assert {r.request_id: r.operation for r in heir.store.requests()} == {
        "e": "embeddings",
        "i": "images",
        "c": "chat",
    }
    assert heir.account().verify().unbilled == ()


def test_an_old_journal_record_replays_as_a_chat_call(make_service: MakeService) -> None:
    """A journal written before ``operation`` existed (19 values per call) still replays."""
    dead = funded(make_service)
    held = local_hold("old", "embeddings")
    spender = spender_of(dead)
    if not spender.try_hold(held):
        spender.hold(held, target="fake/small")
    spender.settle(held, cost=3_000_000, usage=USAGE, status="ok", latency_us=1, attempts=1)
    path = journal_path(dead)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    old_format = [line[:19] if line[0] == "c" else line for line in lines]
    assert any(len(line) == 19 and line[0] == "c" for line in old_format)
    die(dead)
    path.write_text("".join(json.dumps(line) + "\n" for line in old_format))

    heir = make_service(**BATCHED)
    recovery = heir.recover()
    assert (recovery.calls, recovery.cost, recovery.problems) == (1, D("0.003"), ())
    (row,) = heir.store.requests()
    assert (row.request_id, row.operation, row.cost) == ("old", "chat", D("0.003"))


def test_a_journal_record_with_a_bad_operation_is_reported() -> None:
    row = RequestRow("r", "r#1", "a", 1, "x", "fake", "m", 1, 1, 0, 0, 0, 5, 1, 1, "ok", {})
    good = json.dumps(["c", None, *row.values()]).encode()
    bad = json.dumps(["c", None, *row.values()[:-1], 7]).encode()
    _store, _accounts, calls, unreadable = parse(iter([good, bad, good]))
    assert (len(calls), unreadable) == (2, 1)
    assert calls[0].row == row


def test_an_unknown_operation_is_refused(make_service: MakeService) -> None:
    service = make_service(flush_interval_ms=0)
    service.account().purchase(D("10"))
    with pytest.raises(InvalidCreditsInput, match="operation must be one of"):
        service.hold(
            account=None,
            request_id="x",
            amount=D("0.01"),
            route="r",
            provider="fake",
            model="small",
            operation="speech",
        )
    assert [e.kind for e in service.store.entries("default")] == ["account_opened", "purchase"]


def test_usage_groups_by_operation() -> None:
    assert "operation" in GROUP_KEYS


def _old_sqlite_ledger(path: Path) -> None:
    """An SQLite ledger as migrations 001 and 002 left it, with one settled chat call."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    m001_initial(conn)
    m002_requests_unique_hold(conn)
    conn.execute("INSERT INTO schema_migrations VALUES (1, 'initial'), (2, 'requests_unique_hold')")
    conn.execute(
        "INSERT INTO requests (account, hold_id, request_id, at_us, route, provider, model, "
        "input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, reasoning_tokens, "
        "cost, latency_us, attempts, status, tags) "
        "VALUES ('default', 'old#1', 'old', 1, 'smart', 'openai', 'gpt-4o', 10, 5, 0, 0, 0, "
        "1000, 7, 1, 'ok', '{\"team\": \"a\"}')"
    )
    conn.close()


def test_migration_004_on_an_older_sqlite_ledger(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _old_sqlite_ledger(path)
    store = SQLiteStore(str(path))
    try:
        assert store.schema_version() == 7  # 003 to 007 applied in turn
        (row,) = store.requests()
        assert (row.request_id, row.tags, row.operation) == ("old", {"team": "a"}, "chat")
    finally:
        store.close()


def test_migration_004_on_an_older_postgresql_store(new_store_url: NewStoreUrl) -> None:
    url = new_store_url()
    if not url.startswith("postgresql"):
        pytest.skip("the PostgreSQL half of this test")
    import psycopg

    from gateway.credits import postgres_store

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        postgres_store.m001_initial(conn)
        postgres_store.m002_requests_unique_hold(conn)
        conn.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (1, 'initial'), "
            "(2, 'requests_unique_hold')"
        )
        conn.execute(
            "INSERT INTO requests (account, hold_id, request_id, at_us, route, provider, model, "
            "input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, "
            "reasoning_tokens, cost, latency_us, attempts, status, tags) VALUES ('default', "
            "'old#1', 'old', 1, 'smart', 'openai', 'gpt-4o', 10, 5, 0, 0, 0, 1000, 7, 1, 'ok', "
            '\'{"team": "a"}\')'
        )
    store = open_store(url)
    try:
        (row,) = store.requests()
        assert (row.request_id, row.tags, row.operation) == ("old", {"team": "a"}, "chat")
    finally:
        store.close()


def test_postgresql_applies_a_migration_numbered_below_the_newest(
    new_store_url: NewStoreUrl,
) -> None:
    """Migrations made on parallel branches can land out of order (004 was written before
    003 landed): a store at the newest version that lacks a lower-numbered migration still
    gets it (the check is the set of versions, not the newest)."""
    url = new_store_url()
    if not url.startswith("postgresql"):
        pytest.skip("the PostgreSQL half of this test")
    import psycopg

    from gateway.credits import postgres_store

    open_store(url).close()
    store = open_store(url)
    store.accounts()  # migrated
    store.close()
    applied: list[str] = []

    def m000_probe(conn: psycopg.Connection[object]) -> None:
        applied.append("000")

    migrations = postgres_store.MIGRATIONS
    try:
        postgres_store.MIGRATIONS = ((0, "probe", m000_probe), *migrations)
        store = open_store(url)
        store.accounts()
        store.close()
    finally:
        postgres_store.MIGRATIONS = migrations
    assert applied == ["000"]


def test_service_hold_defaults_to_chat(make_service: MakeService) -> None:
    service: CreditService = make_service(flush_interval_ms=0)
    service.account().purchase(D("10"))
    held = service.hold(
        account=None, request_id="z", amount=D("0.01"), route="r", provider="fake", model="small"
    )
    service.settle(held, cost=D("0.001"), usage=USAGE)
    assert [r.operation for r in service.store.requests()] == ["chat"]
