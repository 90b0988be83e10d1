"""Write-behind settlement: a gateway's per-call holds kept in memory against a budget lease.

Holding and settling every call through the store costs two transactions per call, which is
most of what a credited call costs a gateway. With ``credits.flush_interval_ms`` above 0
(the default) a gateway's calls go through a :class:`Spender` instead:

1. It takes a **lease**: one ordinary hold on the account (hold id ``lease-<process>-<n>``),
   placed under the ledger's usual rules (balance, daily and monthly caps), so no other
   process can spend that money.
2. Each try's worst case is held against the lease in memory. When the lease cannot cover
   it, the spender goes to the store at once: it writes what is pending, settles the lease
   and places a new one; when the account cannot cover the call, the ledger's own
   InsufficientCredits or SpendLimitExceeded is raised, exactly as without batching.
3. Settled calls are kept in memory and written together, in one transaction, every
   ``flush_interval_ms`` (or ``max_batch`` calls, on ``close()``, at exit, and before any
   read or write of the account through ``gw.credits``): the lease is settled for their
   total (usage entries burn the lots as for any call), each call gets its request row, and
   a new lease is placed for what is still in flight plus the next calls.

A lease covers what is in flight plus :data:`LEASE_CALLS` worst cases of the latest call,
never more than a quarter of what the account could still hold (balance, caps): other
processes keep room, and an account close to empty is held call by call, as without
batching. A lease with nothing in flight and no new call since the last write is given back.

Nothing settled is lost when the process dies: each settled call is appended to the
process's settlement journal (:mod:`.journal`) before its caller gets the answer, and a
later process replays the journal of a dead one. The price of batching (documented in
docs/ARCHITECTURE.md): the daily and monthly windows count a call when its batch is written
(or replayed); other processes see a running gateway's lease as money on hold.
"""

from __future__ import annotations

import atexit
import dataclasses
import itertools
import logging
import os
import threading
import uuid
import weakref
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from gateway.credits import ledger
from gateway.credits.journal import Journal, store_identity
from gateway.credits.ledger import Limits
from gateway.credits.money import from_nanos
from gateway.credits.store import UNSTORABLE_TEXT, RequestRow, request_row
from gateway.errors import (
    CreditStoreUnavailable,
    InsufficientCredits,
    SpendLimitExceeded,
    UnknownAccount,
)

if TYPE_CHECKING:
    from gateway.credits.service import CreditService, _Step
    from gateway.providers.base import TokenUsage

__all__ = ["LEASE_CALLS", "LocalHold", "Spender"]

logger = logging.getLogger("gateway.credits")

#: A lease covers this many worst cases of the call that asked for it (within a quarter of
#: the account's room).
LEASE_CALLS = 64
#: A journal past this size is emptied by writing every account's pending calls.
JOURNAL_COMPACT_BYTES = 4 << 20
#: How often a running gateway looks for journals of dead processes to replay.
RECOVER_EVERY_S = 60.0
_NO_LIMITS = Limits()
#: Monotonic clock readings and intervals (time, never money: amounts here are int nanos).
Seconds = float
_LIVE: weakref.WeakSet[Spender] = weakref.WeakSet()


@dataclass(slots=True)
class LocalHold:
    """One try's worst case, held in memory against the process's lease."""

    hold_id: str
    account: str
    request_id: str
    amount_nanos: int
    route: str
    provider: str
    model: str
    tags: dict[str, str]
    #: The API key the call is made with, when the key has spend limits (its id), and those
    #: limits (nano-dollars): such calls are held against a lease of their own per key.
    api_key: str | None = None
    key_limits: Limits | None = None
    #: ``chat``, ``embeddings``, ``images`` or ``batch`` (the request row's ``operation``).
    operation: str = "chat"

    @property
    def amount(self) -> Decimal:
        """USD set aside."""
        return from_nanos(self.amount_nanos)


@dataclass(slots=True)
class _Lease:
    """What this process holds of one account (for the calls of one API key with spend
    limits, or of all others), and what it has not written yet."""

    account: str
    #: The API key whose calls this lease serves (None: calls without key limits), and
    #: its limits as the latest call gave them.
    api_key: str | None = None
    key_limits: Limits | None = None
    #: The lease's hold in the ledger (None: no lease).
    hold_id: str | None = None
    #: The lease hold's amount, nano-dollars.
    leased: int = 0
    #: Monotonic seconds after which the lease is renewed before use (half its TTL).
    renew_at: Seconds = 0.0
    #: Local holds in flight: hold id -> amount.
    holds: dict[str, int] = field(default_factory=dict)
    reserved: int = 0
    #: Settled calls not written yet, and their total cost.
    pending: list[RequestRow] = field(default_factory=list)
    spent: int = 0
    first_pending: Seconds | None = None
    #: When a call last settled (the flush thread leaves a batch in use to the calls).
    last_settle: Seconds = 0.0
    #: A hold was placed since the last write (an idle lease is given back).
    active: bool = False
    #: The worst case of the latest call that needed a new lease (sizes the next one).
    last_need: int = 0


@dataclass(frozen=True, slots=True)
class _Written:
    hold_id: str | None
    leased: int
    refused: InsufficientCredits | SpendLimitExceeded | None


class Spender:
    """Per-call holds and settlements of one gateway's credit service, batched (see the
    module docstring). Thread-safe; an event loop may call :meth:`try_hold`, :meth:`settle`
    and :meth:`release` directly (they never touch the store while another thread is)."""

    def __init__(
        self,
        service: CreditService,
        *,
        flush_interval_s: Seconds,
        max_batch: int,
        background: bool = True,
    ) -> None:
        self._service = service
        self._interval = flush_interval_s
        self._max_batch = max_batch
        self._monotonic = service.clock.monotonic
        self._background = background
        self._closed = False
        self._journal: Journal | None = None
        self._fresh_state()
        _LIVE.add(self)
        if service.config.flush_on_signals:
            from gateway.credits import shutdown

            shutdown.install()

    def _fresh_state(self) -> None:
        """No lease, nothing pending, a new lease id prefix (also what a forked child
        starts from: the parent's leases and pending calls stay the parent's)."""
        self._lock = threading.Lock()
        #: By (account, API key id or None).
        self._leases: dict[tuple[str, str | None], _Lease] = {}
        self._prefix = f"lease-{uuid.uuid4().hex[:12]}"
        self._numbers = itertools.count(1)
        self._next_id = f"{self._prefix}-{next(self._numbers)}"
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        if self._journal is not None:
            self._journal.forget()
        directory = self._service.journal_dir
        self._journal = (
            None
            if directory is None
            else Journal(
                directory,
                self._prefix,
                store=store_identity(self._service.store),
                fsync=self._service.config.journal.fsync,
            )
        )
        #: Monotonic time of the next look for dead processes' journals (0: at the first write).
        self._recover_at: Seconds = 0.0
        self._compacting = False

    @property
    def journal_name(self) -> str | None:
        """This process's journal (its file is ``<journal dir>/<name>.jnl``), if any."""
        return None if self._journal is None else self._journal.name

    def __repr__(self) -> str:
        return f"Spender(flush_interval_s={self._interval}, max_batch={self._max_batch})"

    # -- the per-call path ------------------------------------------------------------------

    def try_hold(self, hold: LocalHold) -> bool:
        """Hold ``hold`` against the lease without touching the store; False when that needs
        the store (no lease, too small or due for renewal, or another thread is writing)."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            lease = self._leases.get((hold.account, hold.api_key))
            if lease is None or not self._covers(lease, hold.amount_nanos):
                return False
            self._reserve(lease, hold)
            return True
        finally:
            self._lock.release()

    def hold(self, hold: LocalHold, *, target: str) -> None:
        """Hold ``hold``, renewing the lease through the store when it cannot cover it.
        Raises InsufficientCredits / SpendLimitExceeded (after writing what was pending);
        ``target`` (``provider/model``) names the call in that message."""
        with self._lock:
            where = (hold.account, hold.api_key)
            lease = self._leases.get(where)
            if lease is None:
                self._journal_lease(hold.account)
                lease = self._leases[where] = _Lease(hold.account, hold.api_key)
            if hold.api_key is not None:
                lease.key_limits = hold.key_limits
            if not self._covers(lease, hold.amount_nanos):
                try:
                    self._write(lease, need=hold.amount_nanos, target=target)
                except BaseException:
                    if not lease.holds and not lease.pending and lease.hold_id is None:
                        self._leases.pop(where, None)  # e.g. an unknown account
                    raise
            self._reserve(lease, hold)
        self._start_thread()

    def _covers(self, lease: _Lease, amount: int) -> bool:
        return amount == 0 or (
            lease.hold_id is not None
            and lease.leased - lease.spent - lease.reserved >= amount
            and self._monotonic() < lease.renew_at
        )

    @staticmethod
    def _reserve(lease: _Lease, hold: LocalHold) -> None:
        lease.holds[hold.hold_id] = hold.amount_nanos
        lease.reserved += hold.amount_nanos
        lease.active = True

    def settle(
        self,
        hold: LocalHold,
        *,
        cost: int,
        usage: TokenUsage,
        status: str,
        latency_us: int,
        attempts: int,
    ) -> None:
        """Charge ``cost`` (nano-dollars) for ``hold``'s call: kept in memory, written with
        the next batch. A repeat is a no-op."""
        row = request_row(
            hold,
            at_us=self._service.now_us(),
            usage=usage,
            cost_nanos=cost,
            latency_us=latency_us,
            attempts=attempts,
            status=status,
        )
        with self._lock:
            lease = self._leases.get((hold.account, hold.api_key))
            amount = None if lease is None else lease.holds.pop(hold.hold_id, None)
            if lease is None or amount is None:
                return
            lease.reserved -= amount
            lease.spent += cost
            lease.pending.append(row)
            journaled = self._journal_call(lease, row)
            now = self._monotonic()
            lease.last_settle = now
            if lease.first_pending is None:
                lease.first_pending = now
            # A due batch is written here, by the call that finds it due, not handed to the
            # flush thread: a thread competing for the GIL with a busy event loop gets it back
            # only every switch interval (5 ms) after each store call, and would hold the
            # lease's lock for the whole slow write. The flush thread writes only what no later
            # call comes to write (the last calls before a pause).
            if (
                len(lease.pending) >= self._max_batch
                or now - lease.first_pending >= self._interval
                or not journaled
            ):
                self._flush_quietly(lease)

    def _journal_lease(self, account: str) -> None:
        """Journal a lease about to be taken (so a replay can free it if this process dies)."""
        if self._journal is not None:
            try:
                self._journal.leased(account)
            except OSError as exc:  # each call will then be written at once (see settle)
                logger.warning(
                    "the credit journal %s cannot be written (%s)",
                    self._journal.path,
                    exc.strerror or exc,
                )

    def _journal_call(self, lease: _Lease, row: RequestRow) -> bool:
        """Make a settled call durable before its answer is returned; False when it could not
        be journaled (then the caller writes the batch at once)."""
        journal = self._journal
        if journal is None:
            return True
        try:
            journal.settled(lease.hold_id, row)
        except OSError as exc:
            logger.warning(
                "the credit journal %s cannot be written (%s); writing the call to the store now",
                journal.path,
                exc.strerror or exc,
            )
            return False
        return True

    def release(self, hold: LocalHold) -> None:
        """Give ``hold`` back to the lease (its try failed before any usage)."""
        with self._lock:
            lease = self._leases.get((hold.account, hold.api_key))
            amount = None if lease is None else lease.holds.pop(hold.hold_id, None)
            if lease is not None and amount is not None:
                lease.reserved -= amount

    # -- writing ----------------------------------------------------------------------------

    def flush(self, account: str | None = None) -> None:
        """Write every pending call (of ``account``, or of all accounts) now, and give back
        leases with nothing in flight. Raises when the store cannot be written."""
        with self._lock:
            failure: BaseException | None = None
            for lease in list(self._leases.values()):
                if account is None or lease.account == account:
                    lease.active = False  # keep only what is in flight
                    if lease.pending or lease.hold_id is not None:
                        try:  # one account's failure must not keep the others unwritten
                            self._write(lease, need=0, target="")
                        except Exception as exc:
                            failure = failure or exc
            if failure is not None:
                raise failure

    def flush_due(self) -> None:
        """What the background thread does: write batches that are due, give idle leases back
        and renew leases at half their TTL."""
        with self._lock:
            now = self._monotonic()
            if self._journal is not None and now >= self._recover_at:
                self._recover(now)
            for lease in list(self._leases.values()):
                # A batch that calls are still settling into is theirs to write (see settle);
                # this thread writes one only after a quiet interval, or as a last resort.
                quiet = now - lease.last_settle >= self._interval
                first = lease.first_pending
                aged = first is not None and (
                    (quiet and now - first >= self._interval) or now - first >= 4 * self._interval
                )
                idle = lease.hold_id is not None and not lease.active and not lease.pending
                stale = lease.hold_id is not None and now >= lease.renew_at
                if aged or idle or stale:
                    self._flush_quietly(lease)

    def _flush_quietly(self, lease: _Lease) -> None:
        try:
            self._write(lease, need=0, target="")
        except Exception:  # kept in memory; the next write tries again
            logger.exception(
                "writing %d settled call(s) of account '%s' failed; they stay pending",
                len(lease.pending),
                lease.account,
            )

    def _recover(self, now: Seconds) -> None:
        """Replay the journals of dead processes (lock held); never fails the caller."""
        self._recover_at = now + RECOVER_EVERY_S
        try:
            recovery = self._service.recover()
        except Exception:
            logger.exception("replaying the credit journals of dead processes failed")
            return
        if recovery.calls or recovery.leases:
            logger.warning(
                "replayed %d journal(s) of processes that died: %d call(s) charged $%s, "
                "%d lease(s) closed",
                recovery.journals,
                recovery.calls,
                recovery.cost,
                recovery.leases,
            )
        for problem in recovery.problems:
            logger.warning("credit journal: %s", problem)

    def _write(self, lease: _Lease, *, need: int, target: str) -> None:
        """One transaction (lock held): settle the lease for the pending calls, write their
        rows, place the next lease. Raises the refusal for ``need`` after committing."""
        if self._journal is not None and self._recover_at == 0.0:
            self._recover(self._monotonic())  # the first write of this process
        service = self._service
        prepaid = service.config.mode == "prepaid"
        batch, cost, in_flight = lease.pending, lease.spent, lease.reserved
        if need:
            lease.last_need = need
        # Room for LEASE_CALLS more calls on top of those in flight (at 50 in flight, a lease
        # of 64 worst cases ran out after a few actual costs and sent calls to the store).
        want = in_flight + LEASE_CALLS * lease.last_need if (need or lease.active) else 0
        old_id, new_id = lease.hold_id, self._next_id
        ttl_us = service.hold_ttl_us
        api_key, key_limits = lease.api_key, lease.key_limits

        def decide(step: _Step) -> _Written:
            state = step.state
            already = old_id is not None and (
                old_id not in state.holds and step.tx.find_entry(f"settle:{old_id}") is not None
            )
            if not already:  # else an uncertain commit went through: written already
                if old_id is not None:
                    step.add(
                        ledger.settle(
                            state,
                            hold_id=old_id,
                            request_id=self._prefix,
                            cost=cost,
                            api_key=api_key,
                        )
                    )
                elif cost:  # calls held at zero cost (a free model) that still cost something
                    step.add(ledger.burn(state, cost, request_id=self._prefix, api_key=api_key))
                for row in batch:
                    step.tx.add_request(row)
            if new_id in state.holds:  # placed by that same uncertain commit
                return _Written(new_id, state.holds[new_id].amount, None)
            limits = ledger.effective_limits(state, service.default_limits)
            room = ledger.hold_room(
                state,
                step.now_us,
                prepaid=prepaid,
                limits=limits,
                api_key=api_key,
                key_limits=key_limits,
            )
            floor = in_flight + need
            # Only a call asking for room can be refused; a batch that overran its lease
            # (allowed: the balance may go negative) keeps what is in flight held.
            refused = need > 0 and room is not None and floor > room
            if refused:
                size = in_flight
            elif room is None:
                size = max(floor, want)
            else:
                size = max(floor, min(want, room // 4))
            if size > 0:
                step.add(
                    ledger.place_hold(
                        state,
                        step.now_us,
                        hold_id=new_id,
                        request_id=self._prefix,
                        amount=size,
                        ttl_us=ttl_us,
                        prepaid=False,  # room was checked above; calls in flight stay held
                        limits=_NO_LIMITS,
                        meta={"lease": 1, "in_flight": len(lease.holds)},
                        api_key=api_key,  # the key's calls in flight, for every process
                    )
                )
            error = None
            if refused:
                try:  # the ledger's own refusal, with the lease of the calls in flight held
                    ledger.place_hold(
                        state,
                        step.now_us,
                        hold_id=f"{new_id}-probe",
                        request_id=self._prefix,
                        amount=need,
                        ttl_us=ttl_us,
                        prepaid=prepaid,
                        limits=limits,
                        meta={"target": target} if target else None,
                        api_key=api_key,
                        key_limits=key_limits,
                    )
                except (InsufficientCredits, SpendLimitExceeded) as exc:
                    error = exc
                    if isinstance(exc, SpendLimitExceeded):
                        step.refusal = exc  # its limit.reached webhook event is written too
            return _Written(new_id if size > 0 else None, size, error)

        create = lease.account == service.default_account or not prepaid
        try:
            written = service.write(lease.account, decide, create=create)
        except (InsufficientCredits, SpendLimitExceeded, CreditStoreUnavailable, UnknownAccount):
            raise
        except Exception:
            # Something in the batch the store cannot keep (a value no check caught): make
            # the offending rows storable and write everything, rather than retry a batch
            # that can never be written while the calls behind it pile up.
            if not _make_storable(batch):
                raise
            written = service.write(lease.account, decide, create=create)
        self._next_id = f"{self._prefix}-{next(self._numbers)}"
        lease.pending, lease.spent, lease.first_pending = [], 0, None
        lease.hold_id, lease.leased, lease.active = written.hold_id, written.leased, False
        lease.renew_at = self._monotonic() + ttl_us / 2_000_000
        if not lease.holds and lease.hold_id is None:
            self._leases.pop((lease.account, lease.api_key), None)
        self._journal_written()
        if written.refused is not None:
            raise written.refused
        if need and lease.leased - lease.reserved < need:  # the room check and place_hold disagree
            raise AssertionError("a lease was placed that cannot cover the call")

    def _journal_written(self) -> None:
        """After a write (lock held): empty the journal when nothing in it is unwritten; when
        it has grown large, write the other accounts' pending calls first."""
        journal = self._journal
        if journal is None or self._compacting:
            return
        waiting = [lease for lease in self._leases.values() if lease.pending]
        if waiting and journal.size > JOURNAL_COMPACT_BYTES:
            self._compacting = True
            try:
                for lease in waiting:
                    self._flush_quietly(lease)
            finally:
                self._compacting = False
            waiting = [lease for lease in self._leases.values() if lease.pending]
        if not waiting:
            journal.written({lease.account: lease.hold_id for lease in self._leases.values()})

    # -- lifecycle --------------------------------------------------------------------------

    def _start_thread(self) -> None:
        if not self._background or self._thread is not None or self._closed:
            return
        with self._lock:
            if self._thread is not None:
                return
            ref = weakref.ref(self)
            self._thread = threading.Thread(
                target=_background_flusher,
                args=(ref, self._wake, self._interval),
                name="gateway-credits-flush",
                daemon=True,
            )
            self._thread.start()

    def close(self) -> None:
        """Write everything pending, give the leases back and stop the background thread."""
        self._closed = True
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        try:
            self.flush()
            with self._lock:
                if self._journal is not None and not any(
                    lease.pending for lease in self._leases.values()
                ):
                    self._journal.close()  # everything is in the store
        finally:
            _LIVE.discard(self)

    def flush_on_signal(self) -> None:
        """Best effort from a signal handler: write what is pending unless this thread is
        in the middle of a write (whatever is not written stays in the journal)."""
        if self._closed or self._service.writing_here():
            return
        if not self._lock.acquire(blocking=False):
            return
        try:
            for lease in list(self._leases.values()):
                lease.active = False  # the process is stopping: keep only what is in flight
                if lease.pending or lease.hold_id is not None:
                    self._flush_quietly(lease)
        finally:
            self._lock.release()

    @property
    def pending(self) -> int:
        """Settled calls not written yet."""
        with self._lock:
            return sum(len(lease.pending) for lease in self._leases.values())


_UNSTORABLE = UNSTORABLE_TEXT
_TEXT_FIELDS = ("request_id", "hold_id", "route", "provider", "model", "status")


def _make_storable(batch: list[RequestRow]) -> bool:
    """Replace, in place, rows of ``batch`` holding text no store can keep by copies with
    each such character as U+FFFD (the cost and token counts unchanged), reporting each;
    False when no row needed it (the failure was something else)."""
    changed = False
    for i, row in enumerate(batch):
        fixes: dict[str, object] = {
            name: _UNSTORABLE.sub("\ufffd", getattr(row, name))
            for name in _TEXT_FIELDS
            if _UNSTORABLE.search(getattr(row, name))
        }
        if any(_UNSTORABLE.search(k) or _UNSTORABLE.search(v) for k, v in row.tags.items()):
            fixes["tags"] = {
                _UNSTORABLE.sub("\ufffd", k): _UNSTORABLE.sub("\ufffd", v)
                for k, v in row.tags.items()
            }
        if fixes:
            batch[i] = dataclasses.replace(row, **fixes)  # type: ignore[arg-type]
            changed = True
            logger.error(
                "settled call %r of account %r had text no credit store can keep in %s; it "
                "is written with U+FFFD in place of those characters",
                _UNSTORABLE.sub("?", row.request_id),
                _UNSTORABLE.sub("?", row.account),
                ", ".join(fixes),
            )
    return changed


def _background_flusher(
    ref: weakref.ref[Spender], wake: threading.Event, interval: Seconds
) -> None:
    """Wake every ``interval`` seconds and write what is due; stop
    when the spender is closed or collected."""
    while True:
        wake.wait(interval)
        wake.clear()
        spender = ref()
        if spender is None or spender._closed:
            return
        try:
            spender.flush_due()
        except Exception:  # pragma: no cover - flush_due logs its own failures
            logger.exception("the credit flush thread failed")
        del spender


def _forget_after_fork() -> None:
    """In a child made by fork() (a pre-forking server, multiprocessing's fork): the
    parent's leases, pending calls and flush thread are the parent's, never written twice."""
    for spender in list(_LIVE):
        spender._fresh_state()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


@atexit.register
def _flush_at_exit() -> None:
    """Write what open gateways still hold in memory when the interpreter exits."""
    for spender in list(_LIVE):
        try:
            spender.close()
        except Exception:
            logger.exception(
                "writing settled calls at exit failed; they stay in the credit journal and "
                "the next gateway to use the store writes them"
            )


def flush_all_on_signal() -> None:
    """What the SIGTERM / SIGINT handler (:mod:`.shutdown`) does: write every open
    gateway's pending calls, best effort (the journal keeps whatever is not written)."""
    for spender in list(_LIVE):
        try:
            spender.flush_on_signal()
        except Exception:
            logger.exception("writing settled calls on a signal failed; the journal keeps them")
