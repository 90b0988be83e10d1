"""The API keys' tables and queries, the same SQL for SQLite and PostgreSQL.

Two tables beside the ledger, made by migration 003 of each store:

* ``api_keys``: one row per key, with the SHA-256 (hex) of the key, never the key itself,
  its display prefix, account, name, routes allow-list (JSON, NULL for every route), rpm,
  daily and monthly spend limits (nano-dollars), expiry and revocation (microseconds since
  the epoch). Keys are revoked, never deleted; a revocation is final (triggers).
* ``api_key_minutes``: calls per key per clock minute, for ``rpm``. A process takes a share
  of a key's minute in one short transaction (see :meth:`KeyStore.take_calls`) and counts
  calls against it in memory, so ``rpm`` holds across every process and host that shares the
  store for the price of a few transactions a minute.

A key's spend is not here: it is counted in the account's ledger (``key_spend`` in its
state, from usage entries that carry the key's id), in the same transaction that writes
the calls, which is what makes a key's spend limits hold across processes.

A store provides ``read_sql(work)``, ``write_sql(work)`` and ``paramstyle``; the queries are
written with ``?`` and turned into ``%s`` for PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

__all__ = ["KEY_TABLES", "KeyRecord", "KeyStore", "SqlStore"]

T = TypeVar("T")

#: The tables of migration 003 (PostgreSQL makes every INTEGER a BIGINT).
KEY_TABLES = (
    """CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        account TEXT NOT NULL,
        name TEXT NOT NULL,
        routes TEXT,
        rpm INTEGER,
        daily_limit INTEGER,
        monthly_limit INTEGER,
        expires_us INTEGER,
        created_us INTEGER NOT NULL,
        revoked_us INTEGER
    )""",
    "CREATE INDEX api_keys_account ON api_keys (account, created_us)",
    """CREATE TABLE api_key_minutes (
        key_id TEXT NOT NULL,
        minute INTEGER NOT NULL,
        used INTEGER NOT NULL,
        PRIMARY KEY (key_id, minute)
    )""",
)

_COLUMNS = (
    "id, hash, prefix, account, name, routes, rpm, daily_limit, monthly_limit, expires_us, "
    "created_us, revoked_us"
)


class SqlStore(Protocol):
    """What :class:`KeyStore` needs of a credit store (both stores have it)."""

    paramstyle: str

    def read_sql(self, work: Any) -> Any: ...

    def write_sql(self, work: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One row of ``api_keys``: integers as stored (nano-dollars, microseconds)."""

    id: str
    #: SHA-256 of the key, 64 hex digits.
    hash: str
    prefix: str
    account: str
    name: str
    routes: tuple[str, ...] | None
    rpm: int | None
    daily_limit: int | None
    monthly_limit: int | None
    expires_us: int | None
    created_us: int
    revoked_us: int | None


def _record(row: Sequence[Any]) -> KeyRecord:
    values = list(row)
    routes = values[5]
    values[5] = None if routes is None else tuple(json.loads(routes))
    return KeyRecord(*values)


class KeyStore:
    """The API keys of one credit store."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self._mark = "?" if store.paramstyle == "qmark" else "%s"

    def __repr__(self) -> str:
        return f"KeyStore({self._store!r})"

    def _sql(self, text: str) -> str:
        return text if self._mark == "?" else text.replace("?", self._mark)

    def _one(self, sql: str, args: Sequence[Any]) -> KeyRecord | None:
        query = self._sql(sql)

        def read(conn: Any) -> KeyRecord | None:
            row = conn.execute(query, tuple(args)).fetchone()
            return None if row is None else _record(row)

        result: KeyRecord | None = self._store.read_sql(read)
        return result

    def insert(self, record: KeyRecord) -> None:
        """Write a new key (a repeat of the same write, after a lost commit, is a no-op)."""
        insert = self._sql(
            f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO NOTHING"
        )
        routes = None if record.routes is None else json.dumps(list(record.routes))
        args = (
            record.id,
            record.hash,
            record.prefix,
            record.account,
            record.name,
            routes,
            record.rpm,
            record.daily_limit,
            record.monthly_limit,
            record.expires_us,
            record.created_us,
            record.revoked_us,
        )

        def write(conn: Any) -> None:
            conn.execute(insert, args)

        self._store.write_sql(write)
        stored = self.by_id(record.id)
        if stored is None or stored.hash != record.hash:  # 64 random bits: never in practice
            raise AssertionError(f"API key id {record.id} is taken")

    def by_hash(self, digest: str) -> KeyRecord | None:
        """The key whose SHA-256 is ``digest`` (hex), if any."""
        return self._one(f"SELECT {_COLUMNS} FROM api_keys WHERE hash = ?", (digest,))

    def by_id(self, key_id: str) -> KeyRecord | None:
        return self._one(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,))

    def select(self, *, account: str | None, include_revoked: bool) -> list[KeyRecord]:
        """Keys in the order they were created (of one account, or all)."""
        sql = f"SELECT {_COLUMNS} FROM api_keys WHERE 1 = 1"
        args: list[Any] = []
        if account is not None:
            sql += " AND account = ?"
            args.append(account)
        if not include_revoked:
            sql += " AND revoked_us IS NULL"
        query = self._sql(sql + " ORDER BY created_us, id")

        def read(conn: Any) -> list[KeyRecord]:
            return [_record(row) for row in conn.execute(query, tuple(args))]

        result: list[KeyRecord] = self._store.read_sql(read)
        return result

    def revoke(self, key_id: str, at_us: int) -> KeyRecord | None:
        """Revoke the key now (a key revoked already keeps its first revocation time);
        None when there is no such key."""
        update = self._sql("UPDATE api_keys SET revoked_us = ? WHERE id = ? AND revoked_us IS NULL")

        def write(conn: Any) -> None:
            conn.execute(update, (at_us, key_id))

        self._store.write_sql(write)
        return self.by_id(key_id)

    def take_calls(self, key_id: str, minute: int, rpm: int) -> int:
        """Take this process's share of the key's calls in clock minute ``minute`` (minutes
        since the epoch): a quarter of what is left, at least one, or 0 when the minute's
        ``rpm`` calls are all taken. Rows of the key's earlier minutes are removed."""
        upsert = self._sql(
            "INSERT INTO api_key_minutes (key_id, minute, used) VALUES (?, ?, 0) "
            "ON CONFLICT (key_id, minute) DO NOTHING"
        )
        lock = "" if self._mark == "?" else " FOR UPDATE"
        select = self._sql(
            f"SELECT used FROM api_key_minutes WHERE key_id = ? AND minute = ?{lock}"
        )
        update = self._sql("UPDATE api_key_minutes SET used = ? WHERE key_id = ? AND minute = ?")
        prune = self._sql("DELETE FROM api_key_minutes WHERE key_id = ? AND minute < ?")

        def write(conn: Any) -> int:
            conn.execute(upsert, (key_id, minute))
            row = conn.execute(select, (key_id, minute)).fetchone()
            used = int(row[0])
            left = rpm - used
            share = 0 if left <= 0 else max(1, left // 4)
            if share:
                conn.execute(update, (used + share, key_id, minute))
            conn.execute(prune, (key_id, minute))
            return share

        share: int = self._store.write_sql(write)
        return share
