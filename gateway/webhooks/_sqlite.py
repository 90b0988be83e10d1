"""The webhook outbox in an SQLite credit store: its migration, its insert, its queries.

Writes take the store's write lock and ``BEGIN IMMEDIATE`` like every ledger write
(:meth:`~gateway.credits.sqlite_store.SQLiteStore.immediate`), so a claim reads and leases
its rows with no other writer in between, in this process or another.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from gateway.webhooks.outbox import (
    DELIVERY_COLUMNS,
    Delivery,
    Finish,
    OutboxRow,
    Status,
    delivery_from_row,
)

if TYPE_CHECKING:
    from gateway.credits.sqlite_store import SQLiteStore

__all__ = ["SQLiteOutbox", "insert_rows", "m005_webhook_outbox"]

_INSERT = (
    "INSERT INTO webhook_outbox (event_id, account, endpoint, type, body, created_us, "
    "once_key, next_attempt_us, deadline_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    # a once-only event (limit.reached of a window, credits.expiring of a lot) already there
    "ON CONFLICT (account, endpoint, once_key) DO NOTHING"
)


def m005_webhook_outbox(conn: sqlite3.Connection) -> None:
    # One row per event and endpoint, written in the transaction of the ledger entries that
    # caused the event; senders lease rows (lease_owner, lease_until_us) to deliver them.
    conn.execute(
        """CREATE TABLE webhook_outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL,
            account TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            type TEXT NOT NULL,
            body TEXT NOT NULL,
            created_us INTEGER NOT NULL,
            once_key TEXT,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_us INTEGER NOT NULL,
            deadline_us INTEGER NOT NULL,
            lease_owner TEXT,
            lease_until_us INTEGER,
            last_status INTEGER,
            last_error TEXT,
            done_us INTEGER
        )"""
    )
    # NULL keys are distinct: only once-only events are limited to one row.
    conn.execute(
        "CREATE UNIQUE INDEX webhook_outbox_once ON webhook_outbox (account, endpoint, once_key)"
    )
    conn.execute(
        "CREATE INDEX webhook_outbox_pending ON webhook_outbox (endpoint, account, id) "
        "WHERE status = 'pending'"
    )
    # Endpoints that answered 410 Gone: nothing is sent to them until re-enabled.
    conn.execute(
        """CREATE TABLE webhook_endpoints (
            endpoint TEXT PRIMARY KEY,
            disabled_us INTEGER NOT NULL,
            reason TEXT NOT NULL
        )"""
    )


def insert_rows(conn: sqlite3.Connection, rows: Sequence[OutboxRow]) -> None:
    """Write outbox rows (inside the caller's transaction)."""
    conn.executemany(_INSERT, [row.values() for row in rows])


class SQLiteOutbox:
    """The :class:`~gateway.webhooks.outbox.Outbox` of an SQLite store."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    def __repr__(self) -> str:
        return f"SQLiteOutbox({self._store.path!r})"

    def claim(
        self,
        *,
        endpoints: Sequence[str],
        owner: str,
        now_us: int,
        lease_us: int,
        limit: int,
        only: int | None = None,
    ) -> list[Delivery]:
        if not endpoints or limit <= 0:
            return []
        marks = ", ".join("?" * len(endpoints))
        with self._store.immediate() as conn:
            rows = conn.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM webhook_outbox WHERE id IN ("
                "  SELECT MIN(id) FROM webhook_outbox"
                f"  WHERE status = 'pending' AND endpoint IN ({marks})"
                "  AND endpoint NOT IN (SELECT endpoint FROM webhook_endpoints)"
                "  GROUP BY account, endpoint"
                ") AND next_attempt_us <= ? AND (lease_until_us IS NULL OR lease_until_us <= ?) "
                "AND (? IS NULL OR id = ?) ORDER BY id LIMIT ?",
                (*endpoints, now_us, now_us, only, only, limit),
            ).fetchall()
            until = now_us + lease_us
            conn.executemany(
                "UPDATE webhook_outbox SET lease_owner = ?, lease_until_us = ? WHERE id = ?",
                [(owner, until, row[0]) for row in rows],
            )
        return [replace(delivery_from_row(row), lease_until_us=until) for row in rows]

    def finish(self, delivery: Delivery, *, owner: str, result: Finish, now_us: int) -> bool:
        with self._store.immediate() as conn:
            changed = conn.execute(
                "UPDATE webhook_outbox SET status = ?, attempts = attempts + 1, "
                "next_attempt_us = ?, last_status = ?, last_error = ?, done_us = ?, "
                "lease_owner = NULL, lease_until_us = NULL "
                "WHERE id = ? AND status = 'pending' AND (lease_owner = ? OR ? = 'delivered')",
                (
                    result.status,
                    result.next_attempt_us,
                    result.last_status,
                    result.last_error,
                    result.done_us,
                    delivery.id,
                    owner,
                    result.status,
                ),
            ).rowcount
            if changed and result.disable:
                _disable(conn, delivery.endpoint, now_us, result.last_error or "410 Gone")
        return bool(changed)

    def disable(self, endpoint: str, *, now_us: int, reason: str) -> None:
        with self._store.immediate() as conn:
            _disable(conn, endpoint, now_us, reason)

    def disabled(self) -> dict[str, tuple[int, str]]:
        with self._store.reading() as conn:
            rows = conn.execute("SELECT endpoint, disabled_us, reason FROM webhook_endpoints")
            return {row[0]: (int(row[1]), str(row[2])) for row in rows}

    def deliveries(
        self, *, status: Status | None = None, account: str | None = None, limit: int = 50
    ) -> list[Delivery]:
        sql = f"SELECT {DELIVERY_COLUMNS} FROM webhook_outbox WHERE 1 = 1"
        args: list[Any] = []
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        if account is not None:
            sql += " AND account = ?"
            args.append(account)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        with self._store.reading() as conn:
            return [delivery_from_row(row) for row in conn.execute(sql, args)]

    def get(self, delivery_id: int) -> Delivery | None:
        with self._store.reading() as conn:
            row = conn.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM webhook_outbox WHERE id = ?", (delivery_id,)
            ).fetchone()
        return None if row is None else delivery_from_row(row)

    def retry(self, delivery_id: int, *, now_us: int, deadline_us: int) -> Delivery | None:
        with self._store.immediate() as conn:
            changed = conn.execute(
                "UPDATE webhook_outbox SET status = 'pending', next_attempt_us = ?, "
                "deadline_us = ?, done_us = NULL, "
                # a row in flight keeps its lease: no second sender may take it meanwhile
                "lease_owner = CASE WHEN status = 'pending' THEN lease_owner END, "
                "lease_until_us = CASE WHEN status = 'pending' THEN lease_until_us END "
                "WHERE id = ?",
                (now_us, deadline_us, delivery_id),
            ).rowcount
            if not changed:
                return None
            conn.execute(
                "DELETE FROM webhook_endpoints WHERE endpoint = "
                "(SELECT endpoint FROM webhook_outbox WHERE id = ?)",
                (delivery_id,),
            )
            row = conn.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM webhook_outbox WHERE id = ?", (delivery_id,)
            ).fetchone()
        return delivery_from_row(row)

    def prune(self, *, before_us: int) -> int:
        with self._store.immediate() as conn:
            return int(
                conn.execute(
                    "DELETE FROM webhook_outbox WHERE status IN ('delivered', 'failed') "
                    "AND done_us < ?",
                    (before_us,),
                ).rowcount
            )


def _disable(conn: sqlite3.Connection, endpoint: str, now_us: int, reason: str) -> None:
    conn.execute(
        "INSERT INTO webhook_endpoints (endpoint, disabled_us, reason) VALUES (?, ?, ?) "
        "ON CONFLICT (endpoint) DO NOTHING",
        (endpoint, now_us, reason),
    )
