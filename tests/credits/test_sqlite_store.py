"""The SQLite store: WAL, numbered migrations, append-only tables, URLs."""

from __future__ import annotations

import sqlite3
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.config import CreditsConfig
from gateway.credits import CreditService, PriceBook
from gateway.credits.sqlite_store import MIGRATIONS, SQLiteStore
from gateway.credits.store import open_store
from gateway.errors import ConfigError, CreditsError
from gateway.providers.base import TokenUsage
from gateway.testing.clock import ManualClock


def test_migrations_are_numbered_recorded_and_run_once(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    SQLiteStore(str(path)).close()
    store = SQLiteStore(str(path))  # reopening applies nothing twice
    assert store.schema_version() == MIGRATIONS[-1][0] == 7
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version, name FROM schema_migrations").fetchall() == [
        (1, "initial"),
        (2, "requests_unique_hold"),
        (3, "api_keys"),
        (4, "requests_operation"),
        (5, "webhook_outbox"),
        (6, "entries_by_kind"),
        (7, "batches"),
    ]
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.execute("INSERT INTO schema_migrations VALUES (99, 'from the future')")
    conn.commit()
    conn.close()
    with pytest.raises(CreditsError, match="schema version 99, newer"):
        SQLiteStore(str(path))


def test_store_urls(tmp_path: Path) -> None:
    relative = open_store(f"sqlite:///{tmp_path}/x.db")
    assert isinstance(relative, SQLiteStore) and relative.path == f"{tmp_path}/x.db"
    relative.close()
    for url in ("memory://", "sqlite://"):
        memory = open_store(url)
        assert isinstance(memory, SQLiteStore) and memory.path == ":memory:"
        memory.close()
    full = open_store(f"sqlite:///{tmp_path}/y.db?synchronous=FULL")
    assert isinstance(full, SQLiteStore)
    full.close()
    with pytest.raises(ConfigError, match="not safe"):
        open_store(f"sqlite:///{tmp_path}/z.db?synchronous=OFF")
    with pytest.raises(ConfigError, match="unknown SQLite store option"):
        open_store(f"sqlite:///{tmp_path}/z.db?cache=shared")


def test_in_memory_store_serves_threads() -> None:
    clock = ManualClock()
    service = CreditService(
        CreditsConfig(store="memory://"), PriceBook.from_config({}), clock=clock
    )
    service.account().grant(Decimal("100"))

    def spend(worker: int) -> None:
        for i in range(20):
            hold = service.hold(
                account=None,
                request_id=f"{worker}-{i}",
                amount=Decimal("0.5"),
                route="r",
                provider="fake",
                model="m",
            )
            service.settle(hold, cost=Decimal("0.25"), usage=TokenUsage())

    threads = [threading.Thread(target=spend, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert service.account().balance().posted == Decimal("80")
    service.account().verify()
    service.close()
    with pytest.raises(CreditsError, match="closed"):
        service.account().balance()


def test_close_waits_for_a_read_in_progress_on_another_thread(tmp_path: Path) -> None:
    """Closing a connection another thread is using can crash the process: close refuses new
    reads at once, waits for the ones in progress, then closes."""
    store = SQLiteStore(str(tmp_path / "credits.db"))
    inside, proceed = threading.Event(), threading.Event()
    seen: list[object] = []

    def reader() -> None:
        with store.reading() as conn:
            inside.set()
            proceed.wait()
            seen.append(conn.execute("SELECT count(*) FROM entries").fetchone()[0])

    reading = threading.Thread(target=reader)
    reading.start()
    inside.wait()
    closing = threading.Thread(target=store.close)
    closing.start()
    while not store._closed:  # close has begun and is waiting for the reader
        threading.Event().wait(0.001)
    with pytest.raises(CreditsError, match="closed"), store.reading():
        pass  # a new read is refused
    proceed.set()
    reading.join()
    closing.join()
    assert seen == [0]  # the read in progress finished on an open connection
    assert store._connections == []
