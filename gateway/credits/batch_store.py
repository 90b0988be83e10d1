"""The batches' tables and queries, the same SQL for SQLite and PostgreSQL (migration 007).

* ``batches``: one row per batch submitted through the gateway: who pays (``account``), the
  target it went to (``route``, ``provider``, ``model``), the provider's own batch id and
  status, the normalised status (``pending``, ``running``, ``ended``) and counts (JSON),
  its tags (JSON) and times (microseconds since the epoch).
* ``batch_items``: one row per request of a batch, in submission order: its ``custom_id``,
  the hold that pays for it (``hold_id``, placed in the same ledger as a chat call's) and its
  body (JSON, as the caller gave it).

Money is not here: each item's hold, settlement or release is a ledger entry of the account,
idempotent per hold, which is what makes collecting a batch twice (or from two processes)
charge each item once. A store provides ``read_sql``, ``write_sql`` and ``paramstyle``
(see :mod:`gateway.credits.key_store`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.credits.key_store import SqlStore

__all__ = ["BATCH_TABLES", "BatchItemRecord", "BatchRecord", "BatchStore", "m007_batches"]

#: The tables of migration 007 (PostgreSQL makes every INTEGER a BIGINT).
BATCH_TABLES = (
    """CREATE TABLE batches (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        route TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        provider_batch_id TEXT NOT NULL,
        status TEXT NOT NULL,
        provider_status TEXT NOT NULL,
        counts TEXT NOT NULL,
        tags TEXT NOT NULL,
        created_us INTEGER NOT NULL,
        cancelled_us INTEGER,
        ended_us INTEGER
    )""",
    "CREATE INDEX batches_account ON batches (account, created_us)",
    """CREATE TABLE batch_items (
        batch_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        custom_id TEXT NOT NULL,
        hold_id TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (batch_id, idx),
        UNIQUE (batch_id, custom_id)
    )""",
)


def m007_batches(conn: Any, *, postgres: bool = False) -> None:
    """Migration 007 of either store: the batches' tables."""
    for statement in BATCH_TABLES:
        conn.execute(statement.replace("INTEGER", "BIGINT") if postgres else statement)


@dataclass(slots=True)
class BatchRecord:
    """One row of ``batches``."""

    id: str
    account: str
    route: str
    provider: str
    model: str
    provider_batch_id: str
    status: str
    provider_status: str
    counts: dict[str, int]
    tags: dict[str, str]
    created_us: int
    cancelled_us: int | None = None
    ended_us: int | None = None


@dataclass(frozen=True, slots=True)
class BatchItemRecord:
    """One row of ``batch_items``."""

    index: int
    custom_id: str
    hold_id: str
    body: dict[str, Any]


_COLUMNS = (
    "id, account, route, provider, model, provider_batch_id, status, provider_status, "
    "counts, tags, created_us, cancelled_us, ended_us"
)


def _record(row: Sequence[Any]) -> BatchRecord:
    values = list(row)
    values[8] = json.loads(values[8])
    values[9] = json.loads(values[9])
    return BatchRecord(*values)


class BatchStore:
    """The batches' rows in a credit store (SQLite or PostgreSQL)."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self._format = getattr(store, "paramstyle", "qmark") == "format"

    def __repr__(self) -> str:
        return f"BatchStore({self._store!r})"

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s") if self._format else text

    def insert(self, record: BatchRecord, items: Sequence[BatchItemRecord]) -> None:
        batch_sql = self._sql(f"INSERT INTO batches ({_COLUMNS}) VALUES ({', '.join('?' * 13)})")
        item_sql = self._sql(
            "INSERT INTO batch_items (batch_id, idx, custom_id, hold_id, body) "
            "VALUES (?, ?, ?, ?, ?)"
        )
        batch_row = (
            record.id,
            record.account,
            record.route,
            record.provider,
            record.model,
            record.provider_batch_id,
            record.status,
            record.provider_status,
            json.dumps(record.counts),
            json.dumps(record.tags),
            record.created_us,
            record.cancelled_us,
            record.ended_us,
        )
        item_rows = [
            (record.id, item.index, item.custom_id, item.hold_id, json.dumps(item.body))
            for item in items
        ]

        def write(conn: Any) -> None:
            conn.execute(batch_sql, batch_row)
            for row in item_rows:
                conn.execute(item_sql, row)

        self._store.write_sql(write)

    def update(self, record: BatchRecord) -> None:
        """Write back what a poll or a cancel learned (status, counts, times)."""
        sql = self._sql(
            "UPDATE batches SET status = ?, provider_status = ?, counts = ?, cancelled_us = ?, "
            "ended_us = ? WHERE id = ?"
        )
        args = (
            record.status,
            record.provider_status,
            json.dumps(record.counts),
            record.cancelled_us,
            record.ended_us,
            record.id,
        )
        self._store.write_sql(lambda conn: conn.execute(sql, args))

    def get(self, batch_id: str) -> BatchRecord | None:
        sql = self._sql(f"SELECT {_COLUMNS} FROM batches WHERE id = ?")

        def read(conn: Any) -> BatchRecord | None:
            row = conn.execute(sql, (batch_id,)).fetchone()
            return None if row is None else _record(row)

        return self._store.read_sql(read)  # type: ignore[no-any-return]

    def select(self, *, account: str | None = None, limit: int = 100) -> list[BatchRecord]:
        where = "" if account is None else "WHERE account = ? "
        sql = self._sql(
            f"SELECT {_COLUMNS} FROM batches {where}ORDER BY created_us DESC, id LIMIT ?"
        )
        args = (limit,) if account is None else (account, limit)
        return self._store.read_sql(  # type: ignore[no-any-return]
            lambda conn: [_record(row) for row in conn.execute(sql, args)]
        )

    def items(self, batch_id: str) -> list[BatchItemRecord]:
        sql = self._sql(
            "SELECT idx, custom_id, hold_id, body FROM batch_items WHERE batch_id = ? ORDER BY idx"
        )
        return self._store.read_sql(  # type: ignore[no-any-return]
            lambda conn: [
                BatchItemRecord(int(r[0]), r[1], r[2], json.loads(r[3]))
                for r in conn.execute(sql, (batch_id,))
            ]
        )
