"""The settlement journal: a settled call is durable before its caller sees the answer.

A gateway's :class:`~gateway.credits.spender.Spender` keeps settled calls in memory until
their batch is written to the store. Before that, each one is appended as one line to a
file of the process's own (``<journal dir>/lease-<id>.jnl``): one ``os.write``, no fsync by
default. The kernel keeps what was written when the process dies, however it dies
(SIGKILL, SIGTERM, an exception, the OOM killer); only a power cut or a kernel crash can
lose the pages it had not flushed yet (``credits.journal.fsync: true`` flushes every
record, at the price of a disk flush per call).

The file is emptied whenever everything it records has been written to the store, and
removed when the gateway closes. A journal whose process is gone (nobody holds its
``flock``, which the kernel drops with the process) is *replayed* by the next gateway
that writes to the store, or by ``gateway credits recover``:

* each call whose request row is not in the store yet gets its row and is charged, and
  the dead process's lease it was held against is settled for the total (or, if the lease
  lapsed already, the usage is charged on its own, "late", as any late settle is);
* the dead process's other open leases are released at once instead of lapsing after
  ``hold_ttl_s``;
* everything for one account happens in one store transaction, and a call is recognised
  by its hold id (unique per account in the store), so a replay that is interrupted, or
  run twice at once by two processes, writes each call exactly once.

On PostgreSQL the journal is per host (a local directory): a host that never comes back
leaves its journal unreplayed and its lease to lapse after ``hold_ttl_s``, as before.

Record format (one JSON array per line; a torn last line, from a process killed in the
middle of a write, is ignored because its call was never answered)::

    ["s", store]                                 the store the calls belong to (first line);
                                                 a journal of another store is never replayed
    ["a", account]                               this process leased from the account
    ["c", lease_id | null, request_id, hold_id, account, at_us, route, provider, model,
     input, output, cached_input, cache_write, reasoning, cost_nanos, latency_us,
     attempts, status, {tags}, operation]        one settled call

``operation`` came last when it was added; a journal written before (a record of 19
values, ending with the tags) still replays, its calls as ``chat``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.credits import ledger
from gateway.credits.money import from_nanos
from gateway.credits.store import RequestRow
from gateway.errors import UnknownAccount

if TYPE_CHECKING:
    from gateway.credits.service import CreditService, _Step
    from gateway.credits.store import Store, StoreTransaction

__all__ = [
    "Journal",
    "JournalCall",
    "Recovery",
    "UnreplayedJournal",
    "default_directory",
    "recover",
    "store_identity",
    "unreplayed",
]

logger = logging.getLogger("gateway.credits")

SUFFIX = ".jnl"
_STORE, _ACCOUNT, _CALL = "s", "a", "c"
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


def default_directory(store: Store) -> Path | None:
    """Where a store's journals live when the config names no directory: beside an SQLite
    file (``<file>.journal``); for PostgreSQL, under ``$XDG_STATE_HOME`` (or
    ``~/.local/state``) in ``llm-gateway/journal/<hash of the URL without password>``.
    None for a store with nothing to replay into later (in memory)."""
    path = getattr(store, "path", None)
    if isinstance(path, str):
        return None if path == ":memory:" else Path(path + ".journal")
    url = getattr(store, "url", None)
    if isinstance(url, str):
        state = os.environ.get("XDG_STATE_HOME") or os.path.join(
            os.path.expanduser("~"), ".local", "state"
        )
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        return Path(state) / "llm-gateway" / "journal" / digest
    return None


def store_identity(store: Store) -> str:
    """What names a store in a journal: an SQLite file's absolute path, a PostgreSQL URL
    without its password (a journal directory shared by two stores replays each journal into
    its own store only)."""
    path = getattr(store, "path", None)
    if isinstance(path, str):
        return f"sqlite:{os.path.abspath(path)}"
    url = getattr(store, "url", None)
    return str(url) if isinstance(url, str) else repr(store)


@dataclass(frozen=True, slots=True)
class JournalCall:
    """One settled call as its journal recorded it."""

    lease_id: str | None
    row: RequestRow


class Journal:
    """This process's journal (one per spender; a forked child starts a new one). The file
    is created on the first record, so a gateway that never settles a call leaves none.
    Not thread-safe: the spender calls it under its own lock."""

    __slots__ = ("_accounts", "_directory", "_fd", "_fsync", "_store", "name", "path", "size")

    def __init__(self, directory: Path, name: str, *, store: str, fsync: bool = False) -> None:
        self._directory = directory
        self._store = store
        self._fsync = fsync
        self.name = name
        self.path = directory / f"{name}{SUFFIX}"
        self._fd: int | None = None
        self._accounts: set[str] = set()
        #: Bytes written since the file was last emptied.
        self.size = 0

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"

    def _open(self) -> int:
        if self._fd is None:
            self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            # Held until this process ends: what tells a later process the journal is live.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._fd = fd
            self._append([_STORE, self._store])
        return self._fd

    def _append(self, record: list[Any]) -> None:
        data = (_encode(record) + "\n").encode()
        fd = self._fd if self._fd is not None else self._open()
        written = os.write(fd, data)
        if written != len(data):  # a full disk: say so rather than keep a torn record
            raise OSError(errno.ENOSPC, f"the credit journal {self.path} is full")
        if self._fsync:
            os.fdatasync(fd)
        self.size += written

    def leased(self, account: str) -> None:
        """Record that this process holds (or is about to hold) a lease on ``account``."""
        if account not in self._accounts:
            self._append([_ACCOUNT, account])
            self._accounts.add(account)

    def settled(self, lease_id: str | None, row: RequestRow) -> None:
        """Record one settled call, before its caller gets the answer."""
        if row.account not in self._accounts:
            self.leased(row.account)
        self._append([_CALL, lease_id, *row.values()])

    def written(self, leases: dict[str, str | None]) -> None:
        """Everything recorded is in the store: start the file again, recording the
        accounts whose leases (``account -> lease id``) are still open."""
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        self.size = 0
        self._accounts.clear()
        self._append([_STORE, self._store])
        for account in leases:
            self.leased(account)

    def close(self) -> None:
        """Remove the file (everything it recorded is in the store)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            os.close(fd)

    def forget(self) -> None:
        """After fork(), in the child: the file is the parent's; let go of it untouched."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # the parent's descriptor keeps the lock


def parse(lines: Iterator[bytes]) -> tuple[str | None, list[str], list[JournalCall], int]:
    """The store, accounts and calls a journal records, and how many lines could not be read
    (a torn last line is not counted: its call was never answered)."""
    store: str | None = None
    accounts: list[str] = []
    calls: list[JournalCall] = []
    bad = 0
    pending_bad = 0
    for raw in lines:
        if pending_bad:
            bad += pending_bad
            pending_bad = 0
        try:
            record = json.loads(raw)
            if record[0] == _STORE:
                store = str(record[1])
                continue
            if record[0] == _ACCOUNT:
                accounts.append(str(record[1]))
                continue
            if record[0] != _CALL or len(record) not in (19, 20):
                raise ValueError(record[0])
            lease_id = record[1]
            if not isinstance(record[18], dict):
                raise TypeError("tags")
            if len(record) == 20 and not isinstance(record[19], str):
                raise TypeError("operation")
            row = RequestRow(*record[2:])
            calls.append(JournalCall(lease_id, row))
        except (ValueError, TypeError, IndexError, KeyError):
            pending_bad = 1  # forgiven only if it is the last line
    return store, accounts, calls, bad


@dataclass(frozen=True, slots=True)
class Recovery:
    """What replaying the journals of dead processes did."""

    #: Journals of dead processes found (and replayed unless listed in ``problems``).
    journals: int = 0
    #: Calls written to the store now, and what they were charged.
    calls: int = 0
    cost: Decimal = Decimal(0)
    #: Calls that were already in the store (their batch was written before the process died).
    already: int = 0
    #: Leases of dead processes settled or released now.
    leases: int = 0
    #: Journals left in place, and why (they are tried again next time).
    problems: tuple[str, ...] = ()


@dataclass(slots=True)
class _Tally:
    journals: int = 0
    calls: int = 0
    cost: int = 0
    already: int = 0
    leases: int = 0
    problems: list[str] = field(default_factory=list)

    def result(self) -> Recovery:
        return Recovery(
            self.journals,
            self.calls,
            from_nanos(self.cost),
            self.already,
            self.leases,
            tuple(self.problems),
        )


@contextlib.contextmanager
def _dead_journals(directory: Path, exclude: str | None) -> Iterator[Iterator[tuple[Path, int]]]:
    """The journals in ``directory`` whose writer is gone, each locked (so no other process
    replays it at the same time) while the caller works on it."""
    opened: list[int] = []

    def walk() -> Iterator[tuple[Path, int]]:
        try:
            paths = sorted(directory.glob(f"*{SUFFIX}"))
        except OSError:
            return
        for path in paths:
            if exclude is not None and path.name == f"{exclude}{SUFFIX}":
                continue
            try:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # replayed by another process meanwhile
            opened.append(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its process is alive
            if os.fstat(fd).st_nlink == 0:
                continue  # replayed and removed by another process meanwhile
            yield path, fd

    try:
        yield walk()
    finally:
        for fd in opened:
            os.close(fd)


def _read(fd: int) -> Iterator[bytes]:
    with os.fdopen(os.dup(fd), "rb") as file:
        file.seek(0)
        yield from (line for line in file if line.strip())


def recover(service: CreditService, directory: Path, *, exclude: str | None = None) -> Recovery:
    """Replay every journal in ``directory`` whose process is gone (all but ``exclude``, this
    process's own) into ``service``'s store; see the module docstring."""
    tally = _Tally()
    with _dead_journals(directory, exclude) as journals:
        for path, fd in journals:
            name = path.name[: -len(SUFFIX)]
            store, accounts, calls, bad = parse(_read(fd))
            if store is None and not accounts and not calls and not bad:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)  # died before its first record: nothing to replay
                continue
            if store != store_identity(service.store):
                continue  # another store's journal (a directory shared by two stores)
            tally.journals += 1
            if bad:
                tally.problems.append(
                    f"{path}: {bad} unreadable line(s) skipped (the rest was replayed)"
                )
            by_account: dict[str, list[JournalCall]] = {a: [] for a in accounts}
            for call in calls:
                by_account.setdefault(call.row.account, []).append(call)
            failed = False
            for account, account_calls in by_account.items():
                try:
                    _replay_account(service, account, name, account_calls, tally)
                except UnknownAccount:
                    continue  # its lease was never placed: nothing to replay
                except Exception as exc:
                    failed = True
                    tally.problems.append(
                        f"{path}: account '{account}' could not be written ({exc}); "
                        "the journal is kept and tried again"
                    )
                    logger.warning("replaying the credit journal %s failed: %s", path, exc)
            if not failed:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
    return tally.result()


def _replay_account(
    service: CreditService,
    account: str,
    prefix: str,
    calls: Sequence[JournalCall],
    tally: _Tally,
) -> None:
    """One transaction: the calls not in the store yet, and the dead process's leases."""

    def decide(step: _Step) -> tuple[int, int, int, int]:
        state, tx = step.state, step.tx
        billed = tx.billed_holds([c.row.hold_id for c in calls]) if calls else set()
        missing = [c for c in calls if c.row.hold_id not in billed]
        per_lease: dict[str | None, int] = {}
        for call in missing:
            per_lease[call.lease_id] = per_lease.get(call.lease_id, 0) + call.row.cost_nanos
        leases = 0
        for lease_id, cost in per_lease.items():
            if lease_id is not None and tx.find_entry(f"settle:{lease_id}") is None:
                step.add(
                    ledger.settle(
                        state,
                        hold_id=lease_id,
                        request_id=prefix,
                        cost=cost,
                        api_key=_lease_key(state, tx, lease_id),
                    )
                )
                leases += 1
            elif cost:
                step.add(ledger.burn(state, cost, request_id=prefix))
        for hold_id in [h for h in state.holds if h.startswith(f"{prefix}-")]:
            step.add(ledger.release(state, hold_id=hold_id))
            leases += 1
        for call in missing:
            tx.add_request(call.row)
        return len(missing), sum(c.row.cost_nanos for c in missing), len(billed), leases

    written, cost, already, leases = service.write_idempotent(account, decide)
    tally.calls += written
    tally.cost += cost
    tally.already += already
    tally.leases += leases


def _lease_key(state: ledger.AccountState, tx: StoreTransaction, lease_id: str) -> str | None:
    """The API key a lease served (its calls count towards that key's spend limits), also
    when the lease lapsed already and is no longer open."""
    hold = state.holds.get(lease_id)
    if hold is not None:
        return hold.api_key
    entry = tx.find_entry(f"hold:{lease_id}")
    key = None if entry is None else entry.meta.get("api_key")
    return None if key is None else str(key)


@dataclass(frozen=True, slots=True)
class UnreplayedJournal:
    """A dead process's journal still waiting to be replayed (what ``verify`` reports)."""

    path: Path
    #: Calls of the account asked about that it records.
    calls: int
    #: Their total cost, and how much of it is not in the store yet.
    cost: Decimal
    unbilled_calls: int
    unbilled_cost: Decimal


def unreplayed(service: CreditService, directory: Path, account: str) -> list[UnreplayedJournal]:
    """Journals of dead processes that hold calls of ``account`` or leased from it, read
    without replaying them."""
    found: list[UnreplayedJournal] = []
    with _dead_journals(directory, None) as journals:
        for path, fd in journals:
            store, accounts, calls, _bad = parse(_read(fd))
            if store != store_identity(service.store):
                continue
            mine = [c for c in calls if c.row.account == account]
            if not mine and account not in accounts:
                continue
            billed: set[str] = set()
            if mine:
                with service.store.transaction(account) as tx:
                    billed = tx.billed_holds([c.row.hold_id for c in mine])
            missing = [c for c in mine if c.row.hold_id not in billed]
            found.append(
                UnreplayedJournal(
                    path,
                    len(mine),
                    from_nanos(sum(c.row.cost_nanos for c in mine)),
                    len(missing),
                    from_nanos(sum(c.row.cost_nanos for c in missing)),
                )
            )
    return found
