"""What the credit account needs from a database: the :class:`Store` protocol.

A store keeps four things and decides nothing:

* the append-only ledger entries of every account (:class:`~.ledger.LedgerEntry`);
* a snapshot of each account's :class:`~.ledger.AccountState` (derivable from its entries;
  kept so that a call does not replay history);
* one :class:`RequestRow` per settled call, for reports;
* the webhook outbox: the events its writes caused, one row per endpoint
  (:class:`~gateway.webhooks.outbox.OutboxRow`), written in the same transaction as the
  entries that caused them (see :mod:`gateway.webhooks`).

All writes to one account happen inside :meth:`Store.transaction`, which holds that
account's lock from the read of the snapshot to the commit (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: ``SELECT ... FOR UPDATE`` on the account's row). The ledger's rules run in
between, in Python, identically for every store. Both stores (:mod:`.sqlite_store`,
:mod:`.postgres_store`) implement these methods (seven on the store, eight on a transaction)
and nothing else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from gateway.config import url_without_password
from gateway.credits.ledger import AccountState, LedgerEntry
from gateway.credits.money import from_micros, from_nanos, plain_decimal
from gateway.errors import ConfigError

if TYPE_CHECKING:
    from gateway.credits.service import Hold
    from gateway.credits.spender import LocalHold
    from gateway.providers.base import TokenUsage
    from gateway.webhooks.outbox import OutboxRow

__all__ = [
    "OPERATIONS",
    "UNSTORABLE_TEXT",
    "Migrated",
    "RequestRow",
    "SnapshotCache",
    "Store",
    "StoreTransaction",
    "at_us_window",
    "entries_query",
    "entry_from_row",
    "migrate",
    "open_store",
    "request_row",
    "safe_url",
]


#: Characters no credit store keeps faithfully: C0/C1 controls (PostgreSQL refuses NUL) and
#: lone surrogates (not encodable as UTF-8). Refused in tags; see service.check_tags.
UNSTORABLE_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

#: The kinds of call a request row records (its ``operation``), as usage reports group them.
OPERATIONS = ("chat", "embeddings", "images", "batch")


@dataclass(frozen=True, slots=True)
class RequestRow:
    """One settled call, as the per-request report shows it."""

    request_id: str
    #: ``<request_id>#<attempt>``: the hold this row settled.
    hold_id: str
    account: str
    at_us: int
    route: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_nanos: int
    latency_us: int
    attempts: int
    status: str
    tags: dict[str, str] = field(default_factory=dict)
    #: What kind of call it was: one of :data:`OPERATIONS` (``chat`` for rows written before
    #: the column existed).
    operation: str = "chat"

    @property
    def cost(self) -> Decimal:
        """USD charged for the call."""
        return from_nanos(self.cost_nanos)

    @property
    def at(self) -> datetime:
        """When the call was settled (UTC)."""
        return from_micros(self.at_us)

    @property
    def latency_ms(self) -> Decimal:
        return Decimal(self.latency_us).scaleb(-3)

    def values(self) -> tuple[Any, ...]:
        """Every field in declaration order (``tags`` as the dict, then ``operation``): how a
        store or the journal writes the row, and ``RequestRow(*values)`` reads it back."""
        return (
            self.request_id,
            self.hold_id,
            self.account,
            self.at_us,
            self.route,
            self.provider,
            self.model,
            self.input_tokens,
            self.output_tokens,
            self.cached_input_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
            self.cost_nanos,
            self.latency_us,
            self.attempts,
            self.status,
            self.tags,
            self.operation,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON/CSV-friendly: Decimal and datetime as strings."""
        return {
            "request_id": self.request_id,
            "hold_id": self.hold_id,
            "at": self.at.isoformat(),
            "account": self.account,
            "route": self.route,
            "provider": self.provider,
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost": plain_decimal(self.cost),
            "latency_ms": plain_decimal(self.latency_ms),
            "attempts": self.attempts,
            "status": self.status,
            "operation": self.operation,
            "tags": dict(self.tags),
        }


def request_row(
    hold: Hold | LocalHold,
    *,
    at_us: int,
    usage: TokenUsage,
    cost_nanos: int,
    latency_us: int,
    attempts: int,
    status: str,
) -> RequestRow:
    """The request row of a call settled on ``hold`` (a store's hold or a batched one)."""
    return RequestRow(
        request_id=hold.request_id,
        hold_id=hold.hold_id,
        account=hold.account,
        at_us=at_us,
        route=hold.route,
        provider=hold.provider,
        model=hold.model,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cost_nanos=cost_nanos,
        latency_us=latency_us,
        attempts=attempts,
        status=status,
        tags=dict(hold.tags),
        operation=hold.operation,
    )


class SnapshotCache:
    """Parsed snapshots of the accounts this process wrote last, keyed by their exact text.

    A transaction reads the snapshot's JSON under the account's lock as always; when it is
    the very text this process committed last, the parsed :class:`AccountState` kept from
    that commit is reused instead of parsing it again. Whoever else wrote in between (another
    process, a repair by hand) changed the text, so the comparison is exact. A state is taken
    out while a transaction works on it (and changes it in place) and put back only with the
    text of a successful commit, so no two transactions ever share one.
    """

    __slots__ = ("_items", "_limit")

    def __init__(self, limit: int = 1024) -> None:
        self._items: dict[str, tuple[str, AccountState]] = {}
        self._limit = limit

    def take(self, account: str, text: str) -> AccountState:
        """The state ``text`` holds: the cached one if it is exactly that text, else parsed."""
        item = self._items.pop(account, None)
        if item is not None and item[0] == text:
            return item[1]
        return AccountState.from_json(text)

    def put(self, account: str, text: str, state: AccountState) -> None:
        """Keep ``state``, which ``text`` (just committed) holds."""
        items = self._items
        items[account] = (text, state)
        if len(items) > self._limit:
            # the least recently written account (dict order); another thread may race
            with suppress(RuntimeError, StopIteration):
                items.pop(next(iter(items)), None)

    def clear(self) -> None:
        self._items.clear()


class StoreTransaction(Protocol):
    """One account, locked, between the read of its snapshot and the commit."""

    #: The account's snapshot as of the lock, or None if the account does not exist yet.
    state: AccountState | None

    def find_entry(self, key: str) -> LedgerEntry | None:
        """The account's entry with this idempotency key, if any."""
        ...

    def append(self, entries: Sequence[LedgerEntry]) -> None:
        """Append entries (their ``account`` and ``at_us`` are already set); sets ``id``."""
        ...

    def add_request(self, row: RequestRow) -> None:
        """Record a settled call."""
        ...

    def add_events(self, rows: Sequence[OutboxRow]) -> None:
        """Write webhook events to the outbox, committed with this transaction's entries; a
        row whose ``once_key`` the outbox already holds (for its account and endpoint) is
        left out."""
        ...

    def save(self, state: AccountState) -> None:
        """Replace the account's snapshot (creating the account if new)."""
        ...

    def entries(self) -> list[LedgerEntry]:
        """All of the account's entries, in write order (for ``verify``)."""
        ...

    def request_total(self) -> int:
        """The sum of the account's request rows' costs, nano-dollars (for ``verify``)."""
        ...

    def billed_holds(self, hold_ids: Sequence[str]) -> set[str]:
        """Which of these holds already have their request row (replaying a journal)."""
        ...


class Store(Protocol):
    """Persistence for the credit account. Implementations: SQLite (here), PostgreSQL."""

    def transaction(self, account: str) -> AbstractContextManager[StoreTransaction]:
        """Lock ``account`` until the block ends; commit on success, roll back on error."""
        ...

    def load(self, account: str) -> AccountState | None:
        """The account's last committed snapshot, without locking (for reads)."""
        ...

    def find_entry(self, account: str, key: str) -> LedgerEntry | None:
        """The entry with this idempotency key, without locking."""
        ...

    def entries(
        self,
        account: str,
        *,
        since_us: int | None = None,
        until_us: int | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[LedgerEntry]:
        """An account's entries in write order (or newest first), ``since <= at < until``."""
        ...

    def requests(
        self,
        *,
        accounts: Sequence[str] | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> list[RequestRow]:
        """Settled calls of these accounts (all when None), oldest first."""
        ...

    def accounts(self) -> list[str]:
        """The names of every account in the store, sorted."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def at_us_window(since_us: int | None, until_us: int | None, mark: str) -> tuple[str, list[Any]]:
    """SQL conditions (each starting with `` AND``) for ``since_us <= at_us < until_us``, with
    ``mark`` as the store's parameter placeholder (``?`` or ``%s``)."""
    sql = ""
    args: list[Any] = []
    if since_us is not None:
        sql += f" AND at_us >= {mark}"
        args.append(since_us)
    if until_us is not None:
        sql += f" AND at_us < {mark}"
        args.append(until_us)
    return sql, args


def entries_query(
    columns: str,
    account: str,
    *,
    since_us: int | None,
    until_us: int | None,
    limit: int | None,
    newest_first: bool,
    mark: str,
) -> tuple[str, list[Any]]:
    """The SELECT behind :meth:`Store.entries`, the same for every store but its placeholder."""
    window, args = at_us_window(since_us, until_us, mark)
    sql = f"SELECT {columns} FROM entries WHERE account = {mark}{window}"
    sql += " ORDER BY id DESC" if newest_first else " ORDER BY id"
    if limit is not None:
        sql += f" LIMIT {mark}"
        args.append(limit)
    return sql, [account, *args]


def entry_from_row(row: Sequence[Any]) -> LedgerEntry:
    """A row of the ``entries`` columns (id, account, at_us, kind, amount, held, lot_id,
    hold_id, request_id, key, note, meta), as every store selects them; ``meta`` is JSON text
    (SQLite) or already decoded (PostgreSQL's jsonb)."""
    (id_, account, at_us, kind, amount, held, lot_id, hold_id, request_id, key, note, meta) = row
    return LedgerEntry(
        kind=kind,
        amount_nanos=amount,
        held_nanos=held,
        lot_id=lot_id,
        hold_id=hold_id,
        request_id=request_id,
        key=key,
        note=note,
        meta=meta if isinstance(meta, dict) else json.loads(meta),
        at_us=at_us,
        account=account,
        id=id_,
    )


def safe_url(url: str) -> str:
    """``url`` with its password (in the user part or a ``password=`` option) as ``***``;
    everything else exactly as written."""
    return url_without_password(url)


def open_store(url: str) -> Store:
    """The store a ``credits.store`` URL names.

    ``sqlite:///relative/path.db`` (relative to the current directory here; a config file's
    relative path is made absolute against the file's folder when it is loaded),
    ``sqlite:////absolute/path.db``, either with options ``?synchronous=FULL`` and
    ``?allow_symlink=1`` (joined with ``&``; a path that is a symbolic link is refused
    without it), ``sqlite://`` or ``memory://`` (a private in-memory database, for tests and
    demos), ``postgresql://user:password@host:5432/database`` (needs the ``postgres`` extra;
    connects on first use, see :mod:`.postgres_store`).
    """
    if url in ("sqlite://", "sqlite:///:memory:", "memory://") or url.startswith("memory://"):
        from gateway.credits.sqlite_store import SQLiteStore

        return SQLiteStore(":memory:")
    if url.startswith("sqlite:///"):
        from urllib.parse import parse_qs

        from gateway.credits.sqlite_store import SQLiteStore

        path, _, query = url[len("sqlite:///") :].partition("?")
        if not path:
            raise ConfigError(
                "the SQLite store URL names no file",
                key="credits.store",
                fix="use sqlite:///path.db, or sqlite:// for a private in-memory store",
            )
        options = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        synchronous = options.pop("synchronous", "NORMAL")
        allow_symlink = _flag(options.pop("allow_symlink", "0"), "allow_symlink")
        if options:
            raise ConfigError(
                f"unknown SQLite store option(s): {', '.join(options)}",
                key="credits.store",
                fix="the options are ?synchronous=NORMAL|FULL and ?allow_symlink=1",
            )
        return SQLiteStore(path, synchronous=synchronous, allow_symlink=allow_symlink)
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from gateway.credits.postgres_store import PostgresStore
        except ImportError as exc:
            if exc.name not in ("psycopg", "psycopg_pool"):
                raise
            raise ConfigError(
                "the PostgreSQL credit store needs psycopg, which is not installed",
                key="credits.store",
                fix="pip install 'llm-gateway-sdk[postgres]'",
            ) from None
        return PostgresStore(url)
    raise ConfigError(
        f"'{safe_url(url)}' is not a store URL",
        key="credits.store",
        fix="use sqlite:///path.db or postgresql://user@host/database",
    )


def _flag(value: str, name: str) -> bool:
    """A yes/no store option: ``1``/``true``/``yes`` or ``0``/``false``/``no``."""
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise ConfigError(
        f"{name}={value} is not a yes/no value", key="credits.store", fix=f"use ?{name}=1"
    )


@dataclass(frozen=True, slots=True)
class Migrated:
    """What :func:`migrate` did."""

    #: The schema version before and after.
    before: int
    after: int
    #: The migrations applied now, e.g. ``("001_initial",)``; empty when up to date.
    applied: tuple[str, ...]


def migrate(url: str) -> Migrated:
    """Bring the store at ``url`` to the newest schema (``gateway credits migrate``).

    Stores also migrate themselves on first use; this is for doing it ahead of a deploy.
    Raises CreditsError when the store's schema is newer than this gateway knows.
    """
    if url.startswith(("postgresql://", "postgres://")):
        from gateway.credits.postgres_store import PostgresStore

        postgres = open_store(url)
        assert isinstance(postgres, PostgresStore)
        try:
            before = postgres.schema_version()
            applied = postgres.migrate()
            return Migrated(before, postgres.schema_version(), tuple(applied))
        finally:
            postgres.close()
    from gateway.credits.sqlite_store import MIGRATIONS, SQLiteStore

    done = _sqlite_versions(url)
    sqlite = open_store(url)  # SQLite applies its migrations on opening
    assert isinstance(sqlite, SQLiteStore)
    try:
        after = sqlite.schema_version()
    finally:
        sqlite.close()
    # By the versions each had, not by range: a lower number can land after a higher one.
    names = tuple(f"{v:03d}_{name}" for v, name, _ in MIGRATIONS if v not in done and v <= after)
    return Migrated(max(done, default=0), after, names)


def _sqlite_versions(url: str) -> set[int]:
    """The migrations an SQLite file had before opening it (none if new, in memory or
    unreadable)."""
    import sqlite3
    from pathlib import Path

    path = url[len("sqlite:///") :].partition("?")[0] if url.startswith("sqlite:///") else ""
    if not path or path == ":memory:" or not Path(path).exists():
        return set()
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT version FROM schema_migrations").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return set()
    return {int(row[0]) for row in rows}
