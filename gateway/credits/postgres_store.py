"""The shared credit store: PostgreSQL through psycopg 3 and its connection pool.

For many processes and machines sharing one account. ``credits: {store: postgresql://...}``
selects it; ``pip install 'llm-gateway-sdk[postgres]'`` brings psycopg.

Locking: each write is one Read Committed transaction that takes one row lock, the
account's (``SELECT ... FOR UPDATE`` on ``accounts``; a new account's row is first created by
``INSERT ... ON CONFLICT DO NOTHING``), from the read of the snapshot to the commit. Writers
of one account therefore queue on that lock, whatever process or host they run in, and each
sees the state the previous one committed; writers of different accounts never wait for each
other. One lock per transaction means no deadlock, and Read Committed with a row lock never
raises a serialization failure.

Failures: a transaction buffers its writes and sends them at commit, with a row in
``commits`` naming the account version it made and a random transaction id. When the
connection fails (server restart, failover, network), the store reconnects and locks the row
again within ``wait_ms``:

* before anything was sent, or when the account's version is unchanged, the transaction
  simply continues (or resends its buffered writes) on the new connection;
* when the version moved on, the ``commits`` row says whether it was this transaction's own
  commit (its acknowledgement was lost: done, nothing is sent twice) or another writer's (this
  one never committed: :class:`~gateway.errors.CreditStoreUnavailable`, nothing written).

So no write is ever applied twice, and an error always says whether anything was written.
Repeating a call after an error is safe as well: holds, settlements, releases and keyed
purchases carry idempotency keys, so a repeat of one that did commit is a no-op.

A store that cannot be reached within ``wait_ms`` (10 s) raises CreditStoreUnavailable at
the call; the client then contacts no provider (no hold, no call). The password of the URL is
never shown: reprs and errors use the URL with ``***`` in its place.

The schema is created and upgraded by numbered migrations recorded in ``schema_migrations``,
applied on first use (under an advisory lock, so many processes starting at once apply each
migration once) or by :meth:`PostgresStore.migrate` (``gateway credits migrate``).

URL options the gateway reads (and removes before connecting): ``pool_size`` (connections per
process, default 8) and ``wait_ms``. Everything else goes to libpq as is (``sslmode``,
``connect_timeout``, ``options``, ``target_session_attrs``, ...).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from gateway.credits.batch_store import m007_batches
from gateway.credits.key_store import KEY_TABLES
from gateway.credits.ledger import AccountState, LedgerEntry
from gateway.credits.request_queries import (
    Dialect,
    RequestFilter,
    Totals,
    page_query,
    totals,
    window_totals_query,
)
from gateway.credits.store import (
    RequestRow,
    SnapshotCache,
    at_us_window,
    entries_query,
    entry_from_row,
    safe_url,
)
from gateway.errors import (
    ConfigError,
    CreditsError,
    CreditStoreUnavailable,
    InvalidCreditsInput,
    redact,
    register_secret,
)
from gateway.webhooks._postgres import INSERT_CTE as OUTBOX_INSERT_CTE
from gateway.webhooks._postgres import m005_webhook_outbox
from gateway.webhooks.outbox import OutboxRow

__all__ = ["MIGRATIONS", "PostgresStore"]

T = TypeVar("T")
Connection = psycopg.Connection[Any]

_ENTRY_COLUMNS = (
    "id, account, at_us, kind, amount, held, lot_id, hold_id, request_id, key, note, meta"
)
_REQUEST_COLUMNS = (
    "request_id, hold_id, account, at_us, route, provider, model, input_tokens, output_tokens, "
    "cached_input_tokens, cache_write_tokens, reasoning_tokens, cost, latency_us, attempts, "
    "status, tags, operation"
)
#: RequestRow's fields, in the order of the columns above (``cost`` is ``cost_nanos``).
_LOCK = "SELECT state, version FROM accounts WHERE name = %s FOR UPDATE"
_BEGIN_AND_LOCK = sql.SQL(
    "BEGIN ISOLATION LEVEL READ COMMITTED; "
    "SELECT state, version FROM accounts WHERE name = {} FOR UPDATE"
)
#: One statement writes a whole transaction: its entries (ids returned in order), its
#: request rows, the new snapshot and version, and the ``commits`` row. Rows travel as one
#: JSON array each (json.dumps is far cheaper than adapting a dozen arrays).
_FLUSH = """
WITH new_entries AS (
    INSERT INTO entries (account, at_us, kind, amount, held, lot_id, hold_id, request_id, key,
                         note, meta)
    SELECT e->>0, (e->>1)::bigint, e->>2, (e->>3)::bigint, (e->>4)::bigint, e->>5, e->>6,
           e->>7, e->>8, e->>9, e->10
    FROM json_array_elements(%(entries)s::json) WITH ORDINALITY AS t(e, n)
    ORDER BY n
    RETURNING id
), new_requests AS (
    INSERT INTO requests (request_id, hold_id, account, at_us, route, provider, model,
                          input_tokens, output_tokens, cached_input_tokens, cache_write_tokens,
                          reasoning_tokens, cost, latency_us, attempts, status, tags,
                          operation)
    SELECT r->>0, r->>1, r->>2, (r->>3)::bigint, r->>4, r->>5, r->>6, (r->>7)::bigint,
           (r->>8)::bigint, (r->>9)::bigint, (r->>10)::bigint, (r->>11)::bigint,
           (r->>12)::bigint, (r->>13)::bigint, (r->>14)::integer, r->>15, r->16, r->>17
    FROM json_array_elements(%(requests)s::json) WITH ORDINALITY AS t(r, n)
    ORDER BY n
), new_commit AS (
    INSERT INTO commits (account, version, tx) VALUES (%(account)s, %(version)s, %(tx)s)
){events}
UPDATE accounts SET state = COALESCE(%(state)s, state), version = %(version)s
WHERE name = %(account)s AND version = %(version)s - 1
RETURNING (SELECT array_agg(id ORDER BY id) FROM new_entries)
"""
#: The same, with the webhook events the transaction caused (gateway/webhooks/_postgres.py).
_FLUSH_WITH_EVENTS = _FLUSH.format(events=", " + OUTBOX_INSERT_CTE)
_FLUSH = _FLUSH.format(events="")
#: First argument of the advisory lock that serialises migrations (the second is the schema).
_MIGRATION_LOCK = 0x6774_6372  # "gtcr"
#: URL options the gateway reads itself; libpq never sees them.
_GATEWAY_OPTIONS = frozenset({"pool_size", "wait_ms"})
#: Back-off between reconnection attempts, milliseconds (doubling, with jitter).
_FIRST_PAUSE_MS, _MAX_PAUSE_MS = 20, 500
#: A transaction that loses its connection again and again gives up after this many tries.
_MAX_RECOVERIES = 5


def m001_initial(conn: Connection) -> None:
    statements = [
        # state is NULL only in the placeholder row a transaction inserts to lock a new
        # account; such a transaction either saves a state or rolls back.
        # Every write updates its account's row: room on the page keeps those updates HOT.
        """CREATE TABLE accounts (
            name TEXT PRIMARY KEY,
            state TEXT,
            version BIGINT NOT NULL DEFAULT 0
        ) WITH (fillfactor = 50)""",
        """CREATE TABLE entries (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            account TEXT NOT NULL,
            at_us BIGINT NOT NULL,
            kind TEXT NOT NULL,
            amount BIGINT NOT NULL DEFAULT 0,
            held BIGINT NOT NULL DEFAULT 0,
            lot_id TEXT,
            hold_id TEXT,
            request_id TEXT,
            key TEXT,
            note TEXT,
            meta JSON NOT NULL DEFAULT '{}'
        )""",
        "CREATE UNIQUE INDEX entries_account_key ON entries (account, key) WHERE key IS NOT NULL",
        "CREATE INDEX entries_account_id ON entries (account, id)",
        """CREATE TABLE requests (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            account TEXT NOT NULL,
            hold_id TEXT NOT NULL,
            request_id TEXT NOT NULL,
            at_us BIGINT NOT NULL,
            route TEXT NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            input_tokens BIGINT NOT NULL,
            output_tokens BIGINT NOT NULL,
            cached_input_tokens BIGINT NOT NULL,
            cache_write_tokens BIGINT NOT NULL,
            reasoning_tokens BIGINT NOT NULL,
            cost BIGINT NOT NULL,
            latency_us BIGINT NOT NULL,
            attempts INTEGER NOT NULL,
            status TEXT NOT NULL,
            tags JSON NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX requests_account_at ON requests (account, at_us)",
        # Which transaction made which version of an account: how a writer whose connection
        # failed during COMMIT learns whether its commit happened.
        """CREATE TABLE commits (
            account TEXT NOT NULL,
            version BIGINT NOT NULL,
            tx UUID NOT NULL,
            at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (account, version)
        )""",
        """CREATE FUNCTION gateway_credits_append_only() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION '% are append-only', TG_TABLE_NAME; END $$""",
    ]
    for table in ("entries", "requests", "commits"):
        statements += [
            f"""CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
                FOR EACH ROW EXECUTE FUNCTION gateway_credits_append_only()""",
            f"""CREATE TRIGGER {table}_append_only_truncate BEFORE TRUNCATE ON {table}
                FOR EACH STATEMENT EXECUTE FUNCTION gateway_credits_append_only()""",
        ]
    for statement in statements:
        conn.execute(statement)


def m002_requests_unique_hold(conn: Connection) -> None:
    # A settled hold has exactly one request row: what makes replaying a process's journal
    # (spender.py) idempotent, enforced by the database as well as checked before writing.
    conn.execute("CREATE UNIQUE INDEX requests_account_hold ON requests (account, hold_id)")


def m003_api_keys(conn: Connection) -> None:
    # The gateway's API keys (gateway/keys.py; queries in key_store.py): only a SHA-256 of
    # each key is kept. A key is never deleted (request rows and ledger entries name its id)
    # and a revocation is final. Spend per key lives in the account's ledger; calls per
    # minute (rpm) in api_key_minutes, one row per key and minute, shared by every host.
    for statement in KEY_TABLES:
        conn.execute(statement.replace("INTEGER", "BIGINT"))
    conn.execute(
        """CREATE FUNCTION gateway_api_keys_guard() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'DELETE' THEN
                    RAISE EXCEPTION 'api_keys are revoked, never deleted';
                END IF;
                IF OLD.revoked_us IS NOT NULL
                   AND NEW.revoked_us IS DISTINCT FROM OLD.revoked_us THEN
                    RAISE EXCEPTION 'a revoked API key stays revoked';
                END IF;
                RETURN NEW;
            END $$"""
    )
    conn.execute(
        """CREATE TRIGGER api_keys_guard BEFORE UPDATE OR DELETE ON api_keys
            FOR EACH ROW EXECUTE FUNCTION gateway_api_keys_guard()"""
    )
    conn.execute(
        """CREATE TRIGGER api_keys_guard_truncate BEFORE TRUNCATE ON api_keys
            FOR EACH STATEMENT EXECUTE FUNCTION gateway_credits_append_only()"""
    )


def m004_requests_operation(conn: Connection) -> None:
    # What kind of call a row is (chat, embeddings, images, batch); rows before it were chat.
    # A constant default: PostgreSQL adds the column without rewriting the table.
    conn.execute("ALTER TABLE requests ADD COLUMN operation TEXT NOT NULL DEFAULT 'chat'")


def m006_entries_by_kind(conn: Connection) -> None:
    # history(kinds=[...]) (the dashboard's purchases, grants and recharges) reads the few
    # entries of some kinds among hundreds of thousands of holds and settlements.
    conn.execute("CREATE INDEX entries_account_kind_id ON entries (account, kind, id)")


#: Numbered schema migrations, applied in order, each recorded in ``schema_migrations``.
MIGRATIONS: tuple[tuple[int, str, Callable[[Connection], None]], ...] = (
    (1, "initial", m001_initial),
    (2, "requests_unique_hold", m002_requests_unique_hold),
    (3, "api_keys", m003_api_keys),
    (4, "requests_operation", m004_requests_operation),
    (5, "webhook_outbox", m005_webhook_outbox),
    (6, "entries_by_kind", m006_entries_by_kind),
    (7, "batches", lambda conn: m007_batches(conn, postgres=True)),
)

#: The request queries' SQL spelt for PostgreSQL (``tags`` is a ``json`` column).
_DIALECT = Dialect(
    mark="%s",
    tag_equals="requests.tags->>%s = %s",
    tags_text="requests.tags::text",
    int_cast="::bigint",
)


def _passwords(url: str) -> list[str]:
    parts = urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    found = [userinfo.partition(":")[2]] if at and ":" in userinfo else []
    found += [v for k, v in parse_qsl(parts.query) if "password" in k.lower()]
    return [form for value in found if value for form in {value, unquote(value)}]


def _int_option(options: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = options.pop(name, None)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ConfigError(
            f"{name}={raw} is not valid", key="credits.store", fix=f"use {low}..{high}"
        )
    return int(raw)


class PostgresStore:
    """A :class:`~gateway.credits.store.Store` in a PostgreSQL database.

    ``url``: ``postgresql://user:password@host:5432/database?options``. Nothing connects
    until the first use. ``connection_class`` is for tests (fault injection).
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int | None = None,
        wait_ms: int | None = None,
        lock_timeout_ms: int = 30_000,
        connection_class: type[Connection] = psycopg.Connection,
    ) -> None:
        for secret in _passwords(url):
            register_secret(secret)
        self.url = safe_url(url)
        parts = urlsplit(url)
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.pool_size = pool_size or _int_option(options, "pool_size", 8, 1, 1000)
        self.wait_ms = (
            wait_ms
            if wait_ms is not None
            else _int_option(options, "wait_ms", 10_000, 0, 3_600_000)
        )
        # libpq gets the rest of the query exactly as written (it has its own decoding).
        libpq_query = "&".join(
            pair
            for pair in parts.query.split("&")
            if pair and unquote(pair.partition("=")[0]) not in _GATEWAY_OPTIONS
        )
        self._conninfo = urlunsplit(parts._replace(query=libpq_query))
        try:
            conninfo_to_dict(self._conninfo)
        except psycopg.ProgrammingError as exc:
            raise ConfigError(
                f"{self.url} is not a valid PostgreSQL URL: {_describe(exc)}",
                key="credits.store",
                fix="postgresql://user@host:5432/database?option=value (libpq's URI syntax)",
            ) from None
        self._connect_kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in options:
            self._connect_kwargs["connect_timeout"] = max(2, min(10, self.wait_ms // 1000))
        if "application_name" not in options:
            self._connect_kwargs["application_name"] = "gateway-credits"
        # Notice a server that vanished without closing the connection in ~25 s, not hours.
        for name, value in (
            ("keepalives_idle", 10),
            ("keepalives_interval", 5),
            ("keepalives_count", 3),
        ):
            if name not in options:
                self._connect_kwargs[name] = value
        self._session = (
            f"SET lock_timeout = {int(lock_timeout_ms)}; "
            # A host that vanishes mid-transaction must not hold an account's lock forever.
            "SET idle_in_transaction_session_timeout = 60000"
        )
        self._connection_class = connection_class
        self._guard = threading.Lock()
        self._pool: ConnectionPool[Connection] | None = None
        #: Parsed snapshots of the accounts this process wrote last (see SnapshotCache).
        self._cache = SnapshotCache()
        self._pid = os.getpid()
        #: Pools inherited through fork(): kept referenced, never used or closed, so that the
        #: parent's connections are not torn down from the child.
        self._inherited: list[ConnectionPool[Connection]] = []
        self._ready = False
        self._closed = False

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r})"

    # -- connections ------------------------------------------------------------------------

    def _current_pool(self) -> ConnectionPool[Connection]:
        with self._guard:
            if self._closed:
                raise CreditsError("the credit store is closed")
            if os.getpid() != self._pid:
                self._pid = os.getpid()
                if self._pool is not None:
                    self._inherited.append(self._pool)
                self._pool, self._ready = None, False
            if self._pool is None:
                self._pool = ConnectionPool(
                    self._conninfo,
                    connection_class=self._connection_class,
                    kwargs=self._connect_kwargs,
                    min_size=1,
                    max_size=self.pool_size,
                    configure=self._configure,
                    name="gateway-credits",
                    num_workers=2,
                    open=True,
                    timeout=self.wait_ms / 1000,
                )
            return self._pool

    def _configure(self, conn: Connection) -> None:
        conn.execute(self._session)

    def _checkout(self, deadline_ns: int, what: str) -> Connection:
        pool = self._current_pool()
        try:
            return pool.getconn(timeout=max(1_000_000, deadline_ns - time.monotonic_ns()) / 1e9)
        except PoolTimeout:
            raise CreditStoreUnavailable(
                f"the credit store {self.url} cannot be reached ({self._why_unreachable()}); "
                f"{what} failed after {self.wait_ms / 1000:g} s and nothing was written"
            ) from None

    def _checkin(self, conn: Connection) -> None:
        """Return a connection to the pool, ending any transaction it is still in."""
        if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
            with suppress(psycopg.Error):
                conn.rollback()
        pool = self._pool
        try:
            if pool is None:
                conn.close()
            else:
                pool.putconn(conn)  # a broken connection is replaced by the pool
        except Exception:  # not this pool's (it was closed or replaced after a fork)
            conn.close()

    def _why_unreachable(self) -> str:
        """One direct connection attempt, to say why the pool has no connection to give."""
        kwargs = dict(self._connect_kwargs, connect_timeout=2)
        try:
            with psycopg.connect(self._conninfo, **kwargs):
                pass
        except psycopg.Error as exc:
            return _describe(exc)
        return f"all {self.pool_size} connections of this process were busy"

    def _pause(self, deadline_ns: int, attempt: int) -> bool:
        """Sleep before the next attempt; False when the deadline would pass first."""
        pause_ns = int(
            min(_FIRST_PAUSE_MS * 2**attempt, _MAX_PAUSE_MS) * 1e6 * random.uniform(0.5, 1.5)
        )
        if time.monotonic_ns() + pause_ns > deadline_ns:
            return False
        time.sleep(pause_ns / 1e9)
        return True

    def _run(
        self,
        work: Callable[[Connection], T],
        *,
        what: str,
        keep: bool = False,
        migrated: bool = True,
    ) -> T:
        """``work(conn)`` on a pooled connection, reconnecting and trying again on transient
        failures for up to ``wait_ms``. With ``keep`` the connection stays checked out
        (``work`` returns it along with its result). The schema is migrated first, once,
        unless ``migrated`` is False."""
        deadline_ns = time.monotonic_ns() + self.wait_ms * 1_000_000
        attempt = 0
        while True:
            conn = self._checkout(deadline_ns, what)
            try:
                if migrated and not self._ready:
                    self._migrate(conn)
                result = work(conn)
            except Exception as exc:
                self._checkin(conn)
                if not _transient(exc, conn):
                    raise _translate(exc) from None
                if not self._pause(deadline_ns, attempt):
                    raise CreditStoreUnavailable(
                        f"the credit store {self.url} is unavailable ({_describe(exc)}); "
                        f"{what} failed after {self.wait_ms / 1000:g} s and nothing was written"
                    ) from None
                attempt += 1
                continue
            if not keep:
                self._checkin(conn)
            return result

    def run(self, work: Callable[[Connection], T], *, what: str) -> T:
        """``work(conn)`` on a pooled autocommit connection, for tables beside the accounts
        (the webhook outbox): reconnects and tries again on transient failures for up to
        ``wait_ms``; errors come out as the gateway's own (see :meth:`_run`)."""
        return self._run(work, what=what)

    def close(self) -> None:
        with self._guard:
            pool, self._pool, self._closed = self._pool, None, True
        if pool is not None and os.getpid() == self._pid:
            pool.close(timeout=5)

    # -- migrations -------------------------------------------------------------------------

    def _migrate(self, conn: Connection) -> list[str]:
        """Apply the migrations this database lacks (once, whoever else starts now)."""
        newest = max(version for version, _, _ in MIGRATIONS)
        # Every migration, not only the newest: numbers are not always applied in order
        # (005 may land before 003 and 004 in a database made by a branch).
        if _applied_versions(conn) == {version for version, _, _ in MIGRATIONS}:
            self._ready = True
            return []
        applied: list[str] = []
        conn.execute("BEGIN")
        conn.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(coalesce(current_schema(), '')))",
            (_MIGRATION_LOCK,),
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
            "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        if done and max(done) > newest:
            conn.rollback()
            raise CreditsError(
                f"the credit database has schema version {max(done)}, newer than this "
                f"gateway knows ({newest}); upgrade the gateway"
            )
        for version, name, migration in MIGRATIONS:
            if version not in done:
                migration(conn)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
                )
                applied.append(f"{version:03d}_{name}")
        conn.execute("COMMIT")
        self._ready = True
        return applied

    def migrate(self) -> list[str]:
        """Bring the database to the newest schema now; returns the migrations applied
        (``["001_initial"]``, or ``[]`` when it was up to date)."""
        return self._run(self._migrate, what="migrating the credit database", migrated=False)

    def schema_version(self) -> int:
        """The newest migration applied to the database (0: none yet)."""
        return self._run(_schema_version, what="reading the schema version", migrated=False)

    # -- plain SQL for the tables beside the ledger (API keys: key_store.py) ----------------

    #: The DB-API parameter style of :meth:`read_sql` and :meth:`write_sql` (``%s``).
    paramstyle = "format"

    def read_sql(self, work: Callable[[Connection], T]) -> T:
        """``work(connection)`` outside any transaction (reads), reconnecting on transient
        failures for up to ``wait_ms``."""
        return self._run(work, what="reading the API keys")

    def write_sql(self, work: Callable[[Connection], T]) -> T:
        """``work(connection)`` in one transaction, committed when it returns, rolled back
        when it raises. Tried again on a new connection after a transient failure, so
        ``work`` must be safe to repeat."""

        def in_transaction(conn: Connection) -> T:
            with conn.transaction():
                return work(conn)

        return self._run(in_transaction, what="writing the API keys")

    # -- the Store protocol -----------------------------------------------------------------

    @contextmanager
    def transaction(self, account: str) -> Iterator[_Transaction]:
        tx = _Transaction(self, account)
        try:
            yield tx
        except BaseException:
            tx.abandon()
            raise
        tx.commit()

    def load(self, account: str) -> AccountState | None:
        row = self._run(
            lambda conn: conn.execute(
                "SELECT state FROM accounts WHERE name = %s", (account,)
            ).fetchone(),
            what="reading the account",
        )
        return None if row is None or row[0] is None else AccountState.from_json(row[0])

    def find_entry(self, account: str, key: str) -> LedgerEntry | None:
        return self._run(lambda conn: _find_entry(conn, account, key), what="reading the ledger")

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
            mark="%s",
        )
        return self._run(
            lambda conn: [entry_from_row(row) for row in conn.execute(sql, args)],
            what="reading the ledger",
        )

    def requests(
        self,
        *,
        accounts: Sequence[str] | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> list[RequestRow]:
        sql = f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE true"
        args: list[Any] = []
        if accounts is not None:
            if not accounts:
                return []
            sql += " AND account = ANY(%s)"
            args.append(list(accounts))
        window, window_args = at_us_window(since_us, until_us, "%s")
        sql += window + " ORDER BY at_us, id"
        args += window_args
        return self._run(
            lambda conn: [RequestRow(*row) for row in conn.execute(sql, args)],
            what="reading the usage",
        )

    def requests_page(
        self,
        account: str,
        filters: RequestFilter,
        *,
        limit: int,
        before: tuple[int, int] | None = None,
    ) -> list[tuple[int, RequestRow]]:
        sql, args = page_query(
            _REQUEST_COLUMNS, account, filters, limit=limit, before=before, dialect=_DIALECT
        )
        return self._run(
            lambda conn: [(row[0], RequestRow(*row[1:])) for row in conn.execute(sql, args)],
            what="reading the usage",
        )

    def window_totals(
        self, account: str, filters: RequestFilter, windows: Sequence[tuple[int, int]]
    ) -> list[tuple[int, str, str, str, Totals]]:
        sql, args = window_totals_query(account, filters, windows, dialect=_DIALECT)
        return self._run(
            lambda conn: [
                (row[0], row[1], row[2], row[3], totals(row[4:])) for row in conn.execute(sql, args)
            ],
            what="reading the usage",
        )

    def accounts(self) -> list[str]:
        # COLLATE "C": byte order, as SQLite and Python sort, whatever the database's locale.
        return self._run(
            lambda conn: [
                row[0]
                for row in conn.execute(
                    'SELECT name FROM accounts WHERE state IS NOT NULL ORDER BY name COLLATE "C"'
                )
            ],
            what="listing the accounts",
        )


class _Transaction:
    """One locked account. Reads go to the database; writes are buffered until the commit.

    ``version`` is the account's version as locked; every committed write adds one, so an
    unchanged version after a reconnection proves nobody wrote in between.
    """

    def __init__(self, store: PostgresStore, account: str) -> None:
        self._store = store
        self._account = account
        self._id = uuid.uuid4()
        self._entries: list[LedgerEntry] = []
        self._requests: list[RequestRow] = []
        self._events: list[OutboxRow] = []
        self._saved: AccountState | None = None
        self._saved_text: str | None = None
        self._recoveries = 0
        self._conn: Connection | None
        self._conn, (state, self._version) = store._run(
            lambda conn: (conn, _lock(conn, account)), what="locking the account", keep=True
        )
        try:
            self.state: AccountState | None = (
                None if state is None else store._cache.take(account, state)
            )
        except BaseException:
            self._release()
            raise

    # -- reads (on the locked connection) ---------------------------------------------------

    def _read(self, work: Callable[[Connection], T]) -> T:
        while True:
            conn = self._connection()
            try:
                return work(conn)
            except Exception as exc:
                if not _transient(exc, conn):
                    raise _translate(exc) from None
                self._recover(exc, committing=False)

    def _connection(self) -> Connection:
        assert self._conn is not None, "the transaction has ended"
        return self._conn

    def _release(self) -> None:
        """Give the connection back (rolling back whatever was not committed)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._store._checkin(conn)

    def find_entry(self, key: str) -> LedgerEntry | None:
        for entry in self._entries:
            if entry.key == key:
                return entry
        return self._read(lambda conn: _find_entry(conn, self._account, key))

    def entries(self) -> list[LedgerEntry]:
        stored = self._read(
            lambda conn: [
                entry_from_row(row)
                for row in conn.execute(
                    f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE account = %s ORDER BY id",
                    (self._account,),
                )
            ]
        )
        return stored + self._entries

    def request_total(self) -> int:
        row = self._read(
            lambda conn: conn.execute(
                "SELECT COALESCE(SUM(cost), 0) FROM requests WHERE account = %s", (self._account,)
            ).fetchone()
        )
        assert row is not None
        return int(row[0]) + sum(r.cost_nanos for r in self._requests)

    def billed_holds(self, hold_ids: Sequence[str]) -> set[str]:
        wanted = set(hold_ids)
        found = {r.hold_id for r in self._requests if r.hold_id in wanted}
        if not wanted:
            return found
        rows = self._read(
            lambda conn: conn.execute(
                "SELECT hold_id FROM requests WHERE account = %s AND hold_id = ANY(%s)",
                (self._account, list(wanted)),
            ).fetchall()
        )
        return found | {row[0] for row in rows}

    # -- writes (buffered) ------------------------------------------------------------------

    def append(self, entries: Sequence[LedgerEntry]) -> None:
        self._entries.extend(entries)

    def add_request(self, row: RequestRow) -> None:
        self._requests.append(row)

    def add_events(self, rows: Sequence[OutboxRow]) -> None:
        self._events.extend(rows)

    def save(self, state: AccountState) -> None:
        self._saved = state
        self._saved_text = None
        self.state = state

    # -- the end ----------------------------------------------------------------------------

    def abandon(self) -> None:
        self._release()

    def commit(self) -> None:
        """Send the buffered writes and commit; survive a lost connection without writing
        anything twice (see the module docstring)."""
        try:
            if not (self._entries or self._requests or self._saved or self._events):
                return  # nothing to write: the release rolls back, which frees the lock
            while True:
                conn = self._connection()
                try:
                    self._flush(conn)
                    break
                except Exception as exc:
                    if not _transient(exc, conn):
                        raise _translate(exc) from None
                    if self._recover(exc, committing=True):
                        break  # the earlier attempt did commit
            if self._saved is not None and self._saved_text is not None:
                self._store._cache.put(self._account, self._saved_text, self._saved)
        finally:
            self._release()

    def _flush(self, conn: Connection) -> None:
        if self._saved is not None and self._saved_text is None:
            self._saved_text = self._saved.to_json()
        params = {
            "account": self._account,
            "version": self._version + 1,
            "tx": self._id,
            "state": self._saved_text,
            "entries": _dumps([_entry_row(e) for e in self._entries]),
            "requests": _dumps([_request_row(r) for r in self._requests]),
        }
        statement = _FLUSH
        if self._events:
            params["events"] = _dumps([e.values() for e in self._events])
            statement = _FLUSH_WITH_EVENTS
        row = conn.execute(statement, params).fetchone()
        if row is None:  # impossible while the row lock is held
            raise CreditsError(f"account '{self._account}' changed under its lock")
        # Set before COMMIT: if its reply is lost but it happened, these ids are the ones.
        for entry, id_ in zip(self._entries, row[0] or [], strict=True):
            entry.id = id_
        conn.execute("COMMIT")

    def _recover(self, exc: Exception, *, committing: bool) -> bool:
        """After a transient failure: lock the account again on a new connection.

        Returns False when the transaction can go on there (the account is unchanged), True
        when ``committing`` and the earlier commit turns out to have happened. Raises
        CreditStoreUnavailable when another writer changed the account in between, or when
        the store stays unreachable (saying whether the change may have been written).
        """
        store, account = self._store, self._account
        self._release()
        self._recoveries += 1
        fate = (
            "the change may or may not have been written" if committing else "nothing was written"
        )
        if self._recoveries > _MAX_RECOVERIES:
            raise CreditStoreUnavailable(
                f"the credit store {store.url} keeps failing ({_describe(exc)}); {fate}",
                written=None if committing else False,
            ) from None

        def relock(conn: Connection) -> tuple[Connection, int, bool]:
            _, version = _lock(conn, account)
            mine = False
            if committing and version != self._version:
                row = conn.execute(
                    "SELECT tx FROM commits WHERE account = %s AND version = %s",
                    (account, self._version + 1),
                ).fetchone()
                mine = row is not None and row[0] == self._id
            return conn, version, mine

        try:
            conn, version, mine = store._run(relock, what="reconnecting", keep=True)
        except CreditStoreUnavailable:
            if not committing:
                raise
            raise CreditStoreUnavailable(
                f"the connection to the credit store {store.url} was lost while committing "
                f"({_describe(exc)}) and it could not be reached again within "
                f"{store.wait_ms / 1000:g} s, so {fate}; the next call will see it either way",
                written=None,
            ) from None
        self._conn = conn
        if version == self._version:
            return False  # nobody wrote in between: go on as if nothing happened
        self._release()
        if mine:
            return True
        raise CreditStoreUnavailable(
            f"the connection to the credit store {store.url} was lost ({_describe(exc)}) and "
            f"account '{account}' changed before it came back; nothing was written, and the "
            "call can be repeated"
        )


# -- helpers ----------------------------------------------------------------------------------


def _lock(conn: Connection, account: str) -> tuple[str | None, int]:
    """Begin a transaction and lock the account's row (creating a placeholder if new).

    BEGIN and the locking SELECT go in one round trip (the simple query protocol, with the
    name quoted by libpq): the lock is the hot spot, held from here to the commit.
    """
    cur = conn.execute(_BEGIN_AND_LOCK.format(sql.Literal(account)))
    cur.nextset()
    row = cur.fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO accounts (name, version) VALUES (%s, 0) ON CONFLICT (name) DO NOTHING",
            (account,),
        )
        row = conn.execute(_LOCK, (account,)).fetchone()
        assert row is not None
    return row[0], int(row[1])


def _schema_version(conn: Connection) -> int:
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0) if row is not None else 0


def _applied_versions(conn: Connection) -> set[int]:
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return set()
    return {int(r[0]) for r in conn.execute("SELECT version FROM schema_migrations")}


def _transient(exc: BaseException, conn: Connection) -> bool:
    """Would reconnecting and trying again help? Lost connections, a server shutting down
    or starting up, failover to a read-only node, serialization failures and deadlocks."""
    if isinstance(exc, pg_errors.LockNotAvailable | pg_errors.QueryCanceled):
        return False  # we already waited lock_timeout; waiting again would hide a stuck lock
    if isinstance(
        exc,
        psycopg.OperationalError
        | pg_errors.IdleInTransactionSessionTimeout
        | pg_errors.ReadOnlySqlTransaction,
    ):
        return True
    return isinstance(exc, psycopg.InterfaceError) and (conn.closed or conn.broken)


def _translate(exc: Exception) -> Exception:
    """A non-transient error as the gateway's own, without anything the DSN could leak."""
    if isinstance(exc, CreditsError):
        return exc
    if isinstance(exc, pg_errors.LockNotAvailable):
        return CreditStoreUnavailable(
            "a credit account stayed locked by another writer for too long "
            f"({_describe(exc)}); nothing was written"
        )
    if isinstance(exc, psycopg.DataError) and ("NUL" in str(exc) or "\\u0000" in str(exc)):
        return InvalidCreditsInput(
            "text sent to the PostgreSQL credit store cannot contain NUL (\\x00) characters"
        )
    if isinstance(exc, psycopg.Error):
        return CreditsError(f"the credit store failed: {_describe(exc)}")
    return exc


def _describe(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return redact(f"{type(exc).__name__}: {first}" if first else type(exc).__name__)


def _find_entry(conn: Connection, account: str, key: str) -> LedgerEntry | None:
    row = conn.execute(
        f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE account = %s AND key = %s", (account, key)
    ).fetchone()
    return None if row is None else entry_from_row(row)


def _dumps(rows: list[tuple[Any, ...]]) -> str:
    return json.dumps(rows, separators=(",", ":"))


def _entry_row(e: LedgerEntry) -> tuple[Any, ...]:
    return (
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
        e.meta,
    )


def _request_row(row: RequestRow) -> tuple[Any, ...]:
    return row.values()
