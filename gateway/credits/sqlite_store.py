"""The embedded credit store: stdlib ``sqlite3``, WAL, ``BEGIN IMMEDIATE``.

* One connection per thread (``sqlite3`` connections must not be shared by threads running
  at once); an in-memory database has one connection, serialised by a lock.
* Writers of one process queue on a lock before ``BEGIN IMMEDIATE``, so threads wait their
  turn in order instead of in SQLite's sleeping busy handler; writers in other processes
  wait in the busy handler (``timeout``).
* ``PRAGMA synchronous=NORMAL`` by default: in WAL mode a committed transaction survives
  any crash of the process (the test suite SIGKILLs one mid-write), and the database is never
  corrupted; only a power cut or OS crash may lose the last few commits. It is what makes
  thousands of hold+settle pairs per second possible (FULL waits for an fsync on every
  commit). ``sqlite:///path.db?synchronous=FULL`` trades that speed for power-cut durability.
* The file: a path that is not a ledger (an empty file, another database, a folder, a
  symbolic link without ``?allow_symlink=1``) is refused; a new ledger is created 0600 and
  whole (see :mod:`.sqlite_file`). Every ``sqlite3`` error is raised as a
  :class:`~gateway.errors.CreditStoreError` that names the file and the fix (translated by
  :func:`.sqlite_file.store_error` where the store opens, reads and writes).
* The schema is created and upgraded by numbered migrations (``m001_initial``, ...) recorded
  in ``schema_migrations``; a database written by a newer gateway is refused.
* Entries and request rows are append-only: triggers refuse UPDATE and DELETE.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from typing import Any, TypeVar

from gateway.credits.batch_store import m007_batches
from gateway.credits.key_store import KEY_TABLES
from gateway.credits.ledger import AccountState, LedgerEntry, compact_json
from gateway.credits.request_queries import (
    SQLITE,
    RequestFilter,
    Totals,
    page_query,
    totals,
    window_totals_query,
)
from gateway.credits.sqlite_file import prepare_ledger_file, store_error
from gateway.credits.store import (
    RequestRow,
    SnapshotCache,
    at_us_window,
    entries_query,
    entry_from_row,
)
from gateway.errors import ConfigError, CreditsError
from gateway.webhooks._sqlite import insert_rows, m005_webhook_outbox
from gateway.webhooks.outbox import OutboxRow

__all__ = ["MIGRATIONS", "SQLiteStore"]

T = TypeVar("T")

_ENTRY_COLUMNS = (
    "id, account, at_us, kind, amount, held, lot_id, hold_id, request_id, key, note, meta"
)
_REQUEST_COLUMNS = (
    "request_id, hold_id, account, at_us, route, provider, model, input_tokens, output_tokens, "
    "cached_input_tokens, cache_write_tokens, reasoning_tokens, cost, latency_us, attempts, "
    "status, tags, operation"
)


_INSERT_ENTRIES = (
    "INSERT INTO entries (account, at_us, kind, amount, held, lot_id, hold_id, request_id, key, "
    "note, meta) VALUES "
)
_ENTRY_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
#: Entries per INSERT (11 parameters each, well below SQLite's limit of 32,766).
_BATCH = 256
#: How long ``close`` waits for reads in progress on other threads.
CLOSE_WAIT_S = 5.0


@lru_cache(maxsize=_BATCH)
def _insert_entries(count: int) -> str:
    """The INSERT of ``count`` entries in one statement."""
    return _INSERT_ENTRIES + ", ".join([_ENTRY_VALUES] * count)


def m001_initial(conn: sqlite3.Connection) -> None:
    statements = [
        """CREATE TABLE accounts (
            name TEXT PRIMARY KEY,
            state TEXT NOT NULL
        )""",
        """CREATE TABLE entries (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            account TEXT NOT NULL,
            at_us INTEGER NOT NULL,
            kind TEXT NOT NULL,
            amount INTEGER NOT NULL DEFAULT 0,
            held INTEGER NOT NULL DEFAULT 0,
            lot_id TEXT,
            hold_id TEXT,
            request_id TEXT,
            key TEXT,
            note TEXT,
            meta TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE UNIQUE INDEX entries_account_key ON entries (account, key) WHERE key IS NOT NULL",
        "CREATE INDEX entries_account_id ON entries (account, id)",
        # One row per settled hold (the settle entry's unique key guarantees it).
        """CREATE TABLE requests (
            id INTEGER PRIMARY KEY,
            account TEXT NOT NULL,
            hold_id TEXT NOT NULL,
            request_id TEXT NOT NULL,
            at_us INTEGER NOT NULL,
            route TEXT NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            cached_input_tokens INTEGER NOT NULL,
            cache_write_tokens INTEGER NOT NULL,
            reasoning_tokens INTEGER NOT NULL,
            cost INTEGER NOT NULL,
            latency_us INTEGER NOT NULL,
            attempts INTEGER NOT NULL,
            status TEXT NOT NULL,
            tags TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX requests_account_at ON requests (account, at_us)",
    ]
    for table in ("entries", "requests"):
        for action in ("UPDATE", "DELETE"):
            statements.append(
                f"""CREATE TRIGGER {table}_append_only_{action.lower()}
                BEFORE {action} ON {table}
                BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END"""
            )
    for statement in statements:
        conn.execute(statement)


def m002_requests_unique_hold(conn: sqlite3.Connection) -> None:
    # A settled hold has exactly one request row: what makes replaying a process's journal
    # (spender.py) idempotent, enforced by the database as well as checked before writing.
    conn.execute("CREATE UNIQUE INDEX requests_account_hold ON requests (account, hold_id)")


def m003_api_keys(conn: sqlite3.Connection) -> None:
    # The gateway's API keys (gateway/keys.py; queries in key_store.py): only a SHA-256 of
    # each key is kept. A key is never deleted (request rows and ledger entries name its id)
    # and a revocation is final. Spend per key lives in the account's ledger; calls per
    # minute (rpm) in api_key_minutes, one row per key and minute, shared by every process.
    for statement in KEY_TABLES:
        conn.execute(statement)
    conn.execute(
        """CREATE TRIGGER api_keys_never_deleted BEFORE DELETE ON api_keys
        BEGIN SELECT RAISE(ABORT, 'api_keys are revoked, never deleted'); END"""
    )
    conn.execute(
        """CREATE TRIGGER api_keys_revocation_final BEFORE UPDATE OF revoked_us ON api_keys
        WHEN OLD.revoked_us IS NOT NULL AND NEW.revoked_us IS NOT OLD.revoked_us
        BEGIN SELECT RAISE(ABORT, 'a revoked API key stays revoked'); END"""
    )


def m004_requests_operation(conn: sqlite3.Connection) -> None:
    # What kind of call a row is (chat, embeddings, images, batch); rows before it were chat.
    conn.execute("ALTER TABLE requests ADD COLUMN operation TEXT NOT NULL DEFAULT 'chat'")


def m006_entries_by_kind(conn: sqlite3.Connection) -> None:
    # history(kinds=[...]) (the dashboard's purchases, grants and recharges) reads the few
    # entries of some kinds among hundreds of thousands of holds and settlements.
    conn.execute("CREATE INDEX entries_account_kind_id ON entries (account, kind, id)")


#: Numbered schema migrations, applied in order, each recorded in ``schema_migrations``.
MIGRATIONS: tuple[tuple[int, str, Callable[[sqlite3.Connection], None]], ...] = (
    (1, "initial", m001_initial),
    (2, "requests_unique_hold", m002_requests_unique_hold),
    (3, "api_keys", m003_api_keys),
    (4, "requests_operation", m004_requests_operation),
    (5, "webhook_outbox", m005_webhook_outbox),
    (6, "entries_by_kind", m006_entries_by_kind),
    (7, "batches", m007_batches),
)


class SQLiteStore:
    """A :class:`~gateway.credits.store.Store` in one SQLite file (or in memory)."""

    def __init__(
        self,
        path: str,
        *,
        timeout_s: int = 60,
        synchronous: str = "NORMAL",
        allow_symlink: bool = False,
    ) -> None:
        if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise ConfigError(
                f"synchronous={synchronous} is not safe for a ledger",
                key="credits.store",
                fix="use synchronous=NORMAL (the default) or FULL",
            )
        self.path = path
        self._memory = path == ":memory:"
        self._timeout_s = timeout_s
        self._synchronous = synchronous
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        #: Guards the connection list and counts the reads in progress (``close`` waits them).
        self._registry = threading.Condition()
        self._readers = 0
        #: Serialises this process's writers (and, in memory, every access).
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._closed = False
        self._shared: sqlite3.Connection | None = None
        #: Parsed snapshots of the accounts written last (used under ``_lock`` only).
        self._cache = SnapshotCache()
        if not self._memory:
            prepare_ledger_file(path, allow_symlink=allow_symlink, initialise=_migrate)
        with self._lock:
            try:
                with self._reading() as conn:
                    _migrate(conn)
            except BaseException:
                self.close()
                raise

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    # -- connections ------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise CreditsError("the credit store is closed")
        if os.getpid() != self._pid:  # forked: never touch the parent's connections
            self._pid = os.getpid()
            self._local = threading.local()
            self._connections = []
            self._shared = None
        if self._memory:
            if self._shared is None:
                self._shared = self._connect()
            return self._shared
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self._timeout_s, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
        except BaseException:
            conn.close()
            raise
        with self._registry:
            self._connections.append(conn)
        return conn

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        try:
            if self._memory:
                with self._lock:
                    yield self._conn()
            else:
                with self._registry:
                    conn = self._conn()  # raises once closed
                    self._readers += 1
                try:
                    yield conn
                finally:
                    with self._registry:
                        self._readers -= 1
                        if self._readers == 0:
                            self._registry.notify_all()
        except sqlite3.Error as exc:
            raise store_error(exc, self.path) from exc

    def reading(self) -> AbstractContextManager[sqlite3.Connection]:
        """This thread's connection, for reading tables beside the accounts (the webhook
        outbox); sqlite3 errors come out as CreditStoreError."""
        return self._reading()

    @contextmanager
    def immediate(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on tables beside the accounts (the webhook outbox): taken
        after this process's other writers, ``BEGIN IMMEDIATE``, committed at the end of the
        block (rolled back if it raises)."""
        with self._lock:
            try:
                conn = self._conn()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise store_error(exc, self.path) from exc

    def close(self) -> None:
        """Close every thread's connection, once the reads and the write in progress on other
        threads are done (new ones are refused from now on): closing a connection another
        thread is in the middle of using can crash the process. A read still running after
        :data:`CLOSE_WAIT_S` seconds is not waited for."""
        with self._registry:
            self._closed = True
            self._registry.wait_for(lambda: self._readers <= 0, timeout=CLOSE_WAIT_S)
        with self._lock, self._registry:  # the write in progress, if any, ends first
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    # -- the Store protocol -----------------------------------------------------------------

    def transaction(self, account: str) -> _Transaction:
        return _Transaction(self, account)

    def load(self, account: str) -> AccountState | None:
        with self._reading() as conn:
            return _load(conn, account)

    def find_entry(self, account: str, key: str) -> LedgerEntry | None:
        with self._reading() as conn:
            return _find_entry(conn, account, key)

    def entries(
        self,
        account: str,
        *,
        since_us: int | None = None,
        until_us: int | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        kinds: Sequence[str] | None = None,
    ) -> list[LedgerEntry]:
        sql, args = entries_query(
            _ENTRY_COLUMNS,
            account,
            since_us=since_us,
            until_us=until_us,
            limit=limit,
            newest_first=newest_first,
            kinds=kinds,
            mark="?",
        )
        with self._reading() as conn:
            return [entry_from_row(row) for row in conn.execute(sql, args)]

    def requests(
        self,
        *,
        accounts: Sequence[str] | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> list[RequestRow]:
        sql = f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE 1 = 1"
        args: list[Any] = []
        if accounts is not None:
            if not accounts:
                return []
            sql += f" AND account IN ({', '.join('?' for _ in accounts)})"
            args += list(accounts)
        window, window_args = at_us_window(since_us, until_us, "?")
        sql += window + " ORDER BY at_us, id"
        args += window_args
        with self._reading() as conn:
            return [_request(row) for row in conn.execute(sql, args)]

    def requests_page(
        self,
        account: str,
        filters: RequestFilter,
        *,
        limit: int,
        before: tuple[int, int] | None = None,
    ) -> list[tuple[int, RequestRow]]:
        sql, args = page_query(
            _REQUEST_COLUMNS, account, filters, limit=limit, before=before, dialect=SQLITE
        )
        with self._reading() as conn:
            return [(row[0], _request(row[1:])) for row in conn.execute(sql, args)]

    def window_totals(
        self, account: str, filters: RequestFilter, windows: Sequence[tuple[int, int]]
    ) -> list[tuple[int, str, str, str, Totals]]:
        found: list[tuple[int, str, str, str, Totals]] = []
        # At most 10,000 windows a statement: three parameters each, within SQLite's limit.
        for start in range(0, len(windows), 10_000):
            chunk = windows[start : start + 10_000]
            sql, args = window_totals_query(account, filters, chunk, dialect=SQLITE)
            with self._reading() as conn:
                found += [
                    (row[0] + start, row[1], row[2], row[3], totals(row[4:]))
                    for row in conn.execute(sql, args)
                ]
        return found

    def accounts(self) -> list[str]:
        with self._reading() as conn:
            return [row[0] for row in conn.execute("SELECT name FROM accounts ORDER BY name")]

    def schema_version(self) -> int:
        with self._reading() as conn:
            row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
            return int(row[0] or 0)

    # -- plain SQL for the tables beside the ledger (API keys: key_store.py) ----------------

    #: The DB-API parameter style of :meth:`read_sql` and :meth:`write_sql` (``?``).
    paramstyle = "qmark"

    def read_sql(self, work: Callable[[Any], T]) -> T:
        """``work(connection)`` outside any transaction (reads)."""
        with self._reading() as conn:
            return work(conn)

    def write_sql(self, work: Callable[[Any], T]) -> T:
        """``work(connection)`` in one write transaction (``BEGIN IMMEDIATE``), committed when
        it returns, rolled back when it raises."""
        with self._lock:
            try:
                conn = self._conn()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise store_error(exc, self.path) from exc
        return result


class _Transaction:
    """A locked account inside ``BEGIN IMMEDIATE`` (a context manager: commits at the end of
    the block, rolls back if it raises)."""

    __slots__ = ("_account", "_conn", "_store", "saved", "state")

    def __init__(self, store: SQLiteStore, account: str) -> None:
        self._store = store
        self._account = account
        #: The snapshot text written by ``save`` (None until then).
        self.saved: str | None = None
        self.state: AccountState | None = None

    def __enter__(self) -> _Transaction:
        store = self._store
        store._lock.acquire()
        try:
            conn = self._conn = store._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT state FROM accounts WHERE name = ?", (self._account,)
                ).fetchone()
                if row is not None:
                    self.state = store._cache.take(self._account, row[0])
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except BaseException as exc:
            store._lock.release()
            if isinstance(exc, sqlite3.Error):
                raise store_error(exc, store.path) from exc
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: object
    ) -> None:
        store, conn = self._store, self._conn
        try:
            if kind is None:
                try:
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                if self.saved is not None and self.state is not None:
                    store._cache.put(self._account, self.saved, self.state)
                return
            if conn.in_transaction:  # SQLite rolls some failures back by itself
                conn.execute("ROLLBACK")
            if isinstance(error, sqlite3.Error):
                raise error
        except sqlite3.Error as exc:
            raise store_error(exc, store.path) from exc
        finally:
            store._lock.release()

    def find_entry(self, key: str) -> LedgerEntry | None:
        return _find_entry(self._conn, self._account, key)

    def append(self, entries: Sequence[LedgerEntry]) -> None:
        for start in range(0, len(entries), _BATCH):
            self._insert(entries[start : start + _BATCH])

    def _insert(self, entries: Sequence[LedgerEntry]) -> None:
        values: list[Any] = []
        for e in entries:
            values += (
                e.account,
                e.at_us,
                e.kind,
                e.amount_nanos,
                e.held_nanos,
                e.lot_id,
                e.hold_id,
                e.request_id,
                e.key,
                e.note,
                compact_json(e.meta) if e.meta else "{}",
            )
        # One statement for them all: under the write lock, AUTOINCREMENT gives the rows
        # consecutive ids ending at the last one inserted.
        last = self._conn.execute(_insert_entries(len(entries)), values).lastrowid
        assert last is not None
        for offset, e in enumerate(reversed(entries)):
            e.id = last - offset

    def add_request(self, row: RequestRow) -> None:
        self._conn.execute(
            f"INSERT INTO requests ({_REQUEST_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*row.values()[:-2], compact_json(row.tags) if row.tags else "{}", row.operation),
        )

    def add_events(self, rows: Sequence[OutboxRow]) -> None:
        insert_rows(self._conn, rows)

    def save(self, state: AccountState) -> None:
        text = state.to_json()
        self._conn.execute(
            "INSERT INTO accounts (name, state) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET state = excluded.state",
            (self._account, text),
        )
        self.state = state
        self.saved = text

    def entries(self) -> list[LedgerEntry]:
        rows = self._conn.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE account = ? ORDER BY id", (self._account,)
        )
        return [entry_from_row(row) for row in rows]

    def request_total(self) -> int:
        row = self._conn.execute(
            "SELECT COALESCE(SUM(cost), 0) FROM requests WHERE account = ?", (self._account,)
        ).fetchone()
        return int(row[0])

    def billed_holds(self, hold_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        ids = list(hold_ids)
        for start in range(0, len(ids), _BATCH):
            chunk = ids[start : start + _BATCH]
            rows = self._conn.execute(
                "SELECT hold_id FROM requests WHERE account = ? AND hold_id IN "
                f"({', '.join('?' * len(chunk))})",
                (self._account, *chunk),
            )
            found.update(row[0] for row in rows)
        return found


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL)"
        )
        applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        newest = max(version for version, _, _ in MIGRATIONS)
        if applied and max(applied) > newest:
            raise CreditsError(
                f"the credit database has schema version {max(applied)}, newer than this "
                f"gateway knows ({newest}); upgrade the gateway"
            )
        for version, name, migration in MIGRATIONS:
            if version not in applied:
                migration(conn)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (version, name)
                )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _load(conn: sqlite3.Connection, account: str) -> AccountState | None:
    row = conn.execute("SELECT state FROM accounts WHERE name = ?", (account,)).fetchone()
    return None if row is None else AccountState.from_json(row[0])


def _find_entry(conn: sqlite3.Connection, account: str, key: str) -> LedgerEntry | None:
    row = conn.execute(
        f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE account = ? AND key = ?", (account, key)
    ).fetchone()
    return None if row is None else entry_from_row(row)


def _request(row: Sequence[Any]) -> RequestRow:
    values = list(row)
    values[-2] = json.loads(values[-2])  # tags, before operation
    return RequestRow(*values)
