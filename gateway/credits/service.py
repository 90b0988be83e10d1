"""What the client calls around every provider call: hold, settle, release.

One :class:`CreditService` per gateway. Per attempt at a target the client:

1. ``hold = credits.hold(account=..., request_id=..., amount=worst_case, ...)`` before any
   provider is contacted (raises :class:`~gateway.errors.InsufficientCredits` or
   :class:`~gateway.errors.SpendLimitExceeded`, having written nothing);
2. after the call, ``credits.settle(hold, cost=prices.cost(...), usage=..., ...)`` with what
   it actually cost (the balance may go negative when the cost exceeds the hold), or
   ``credits.release(hold)`` when the attempt failed before producing any usage.

A fallback releases the failed attempt's hold and holds again at the next target's price
with the same ``request_id``: each hold is ``<request_id>#<attempt>``, so the second hold is
a new hold, while a repeated ``settle`` or ``release`` of the same hold is a no-op.

Every method is one short transaction on one account (see :mod:`.store`); the ``a``-prefixed
twins run the same code in a worker thread so an event loop is never blocked by SQLite.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfoNotFoundError

from gateway._clock import Clock, SystemClock
from gateway.config import CreditsConfig, WebhookConfig
from gateway.credits import ledger
from gateway.credits.ledger import AccountState, Calendar, LedgerEntry, Limits, RechargeRule
from gateway.credits.money import MAX_AMOUNT, from_micros, from_nanos, to_micros, to_nanos
from gateway.credits.payment import PaymentMethod, PaymentResult, charged_nanos
from gateway.credits.pricing import PriceBook
from gateway.credits.store import (
    OPERATIONS,
    UNSTORABLE_TEXT,
    Store,
    StoreTransaction,
    open_store,
    request_row,
)
from gateway.errors import (
    ConfigError,
    CreditStoreUnavailable,
    InvalidAccount,
    InvalidAmount,
    InvalidCreditsInput,
    SpendLimitExceeded,
    UnknownAccount,
)

if TYPE_CHECKING:
    from gateway.credits.account import CreditAccount
    from gateway.credits.journal import Recovery
    from gateway.credits.spender import Spender
    from gateway.providers.base import TokenUsage
    from gateway.webhooks.events import Alerts
    from gateway.webhooks.outbox import OutboxRow
    from gateway.webhooks.sender import AsyncSender, Sender

__all__ = ["CreditService", "Hold"]

logger = logging.getLogger("gateway.credits")
T = TypeVar("T")
_DAY_US = 86_400 * 1_000_000
_MAX_NAME = 200
_MAX_TAGS = 32
#: Tries of a settle or release when the store loses the transaction (each waits for the
#: store to come back, up to its own limit, e.g. PostgreSQL's ``wait_ms``).
_IDEMPOTENT_TRIES = 3


@dataclass(frozen=True, slots=True)
class Hold:
    """Money set aside for one attempt of one call; pass it to ``settle`` or ``release``."""

    #: ``<request_id>#<attempt>``.
    hold_id: str
    account: str
    request_id: str
    attempt: int
    amount_nanos: int
    placed_at: datetime
    #: When the hold lapses if never settled (a crashed process): placed_at + hold TTL.
    expires_at: datetime
    route: str
    provider: str
    model: str
    tags: dict[str, str] = field(default_factory=dict)
    #: The API key the call was made with, when the key has spend limits (its id).
    api_key: str | None = None
    #: ``chat``, ``embeddings``, ``images`` or ``batch`` (the request row's ``operation``).
    operation: str = "chat"

    @property
    def amount(self) -> Decimal:
        """USD set aside."""
        return from_nanos(self.amount_nanos)


@dataclass(slots=True)
class _Step:
    """One write transaction in progress: the locked state and the entries added so far."""

    state: AccountState
    now_us: int
    tx: StoreTransaction
    entries: list[LedgerEntry] = field(default_factory=list)
    #: Auto-recharge even without a crossing (the rule was just switched on below threshold).
    force_recharge: bool = False
    #: A cap refused a call in this write (the batched path commits its refusal): its
    #: limit.reached webhook event goes with the write.
    refusal: SpendLimitExceeded | None = None

    def add(self, entries: list[LedgerEntry]) -> list[LedgerEntry]:
        for entry in entries:
            entry.account = self.state.name
            entry.at_us = self.now_us
            ledger.apply(self.state, entry)
            self.entries.append(entry)
        return entries


class CreditService:
    """The credit account of one gateway: per-call holds and settlements, and the accounts.

    ``store`` defaults to the one ``config.store`` names; tests pass one in.
    Batches of settled calls (see :mod:`.spender`) are written by a background thread on
    real time, or, with ``background_flush=False`` (the default when ``clock`` is not the
    system clock: tests and simulations), by the call that finds a batch due on ``clock``.
    """

    def __init__(
        self,
        config: CreditsConfig,
        prices: PriceBook,
        *,
        clock: Clock,
        payment_method: PaymentMethod | None = None,
        store: Store | None = None,
        background_flush: bool | None = None,
        webhooks: Sequence[WebhookConfig] = (),
        webhook_sender: bool | None = None,
    ) -> None:
        self.config = config
        self.prices = prices
        self.clock = clock
        self.payment_method = payment_method
        try:
            self.calendar = Calendar(config.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"unknown time zone '{config.timezone}'",
                key="credits.timezone",
                fix="use an IANA name such as UTC or Europe/Berlin",
            ) from None
        self.default_limits = Limits(
            daily=_opt_nanos(config.limits.daily), monthly=_opt_nanos(config.limits.monthly)
        )
        rule = config.auto_recharge
        self.default_recharge = (
            None
            if rule is None
            else RechargeRule(
                below=to_nanos(rule.below),
                amount=to_nanos(rule.amount),
                monthly_limit=to_nanos(rule.monthly_limit),
            )
        )
        self.hold_ttl_us = round(config.hold_ttl_s * 1_000_000)
        self.expiry_us = config.expiry_days * _DAY_US
        self.store: Store = store if store is not None else open_store(config.store)
        #: Threads inside :meth:`write` (a signal handler must not write from one of them).
        self._writing = threading.local()
        #: Where settled calls are journaled before their batch is written (None: nowhere).
        self.journal_dir: Path | None = None
        if config.flush_interval_ms > 0 and config.journal.enabled:
            from gateway.credits.journal import default_directory

            journal = config.journal
            self.journal_dir = (
                Path(journal.dir).expanduser() if journal.dir else default_directory(self.store)
            )
        #: The batched per-call path a gateway uses (None when ``flush_interval_ms`` is 0).
        self.spender: Spender | None = None
        if config.flush_interval_ms > 0:
            from gateway.credits.spender import Spender

            self.spender = Spender(
                self,
                flush_interval_s=config.flush_interval_ms / 1000,
                max_batch=config.max_batch,
                background=isinstance(clock, SystemClock)
                if background_flush is None
                else background_flush,
            )
        #: The endpoints of the config's ``webhooks:`` section.
        self.webhooks = tuple(webhooks)
        #: Which webhook events this gateway's writes raise (None: no webhooks configured).
        self.alerts: Alerts | None = None
        #: What delivers them from a background thread: with webhooks configured, on the real
        #: clock unless ``webhook_sender`` says otherwise (see gateway/webhooks/sender.py).
        self.webhook_sender: Sender | AsyncSender | None = None
        if self.webhooks:
            from gateway.webhooks.events import Alerts

            self.alerts = Alerts(config.alerts, self.webhooks)
            if isinstance(clock, SystemClock) if webhook_sender is None else webhook_sender:
                from gateway.webhooks.sender import Sender

                sender = Sender(self)
                sender.start()
                self.webhook_sender = sender

    def __repr__(self) -> str:
        return f"CreditService(store={self.store!r}, mode={self.config.mode!r})"

    # -- accounts ---------------------------------------------------------------------------

    @property
    def default_account(self) -> str:
        return self.config.default_account

    def account(self, name: str | None = None) -> CreditAccount:
        """The public API of one account (None: the default account)."""
        from gateway.credits.account import CreditAccount

        return CreditAccount(self, self.account_name(name))

    def accounts(self) -> list[str]:
        """Every account in the store."""
        return self.store.accounts()

    def account_name(self, name: str | None) -> str:
        """Validate an account name (None means the default account)."""
        if name is None:
            return self.config.default_account
        if not isinstance(name, str):
            raise InvalidAccount(f"an account name is a string, not {type(name).__name__}")
        if not name or len(name) > _MAX_NAME or name != name.strip() or not name.isprintable():
            raise InvalidAccount(
                f"{name!r} is not a valid account name: use 1-{_MAX_NAME} printable "
                "characters without leading or trailing spaces"
            )
        return name

    def drain(self, name: str | None = None) -> None:
        """Write the gateway's batched calls (of account ``name``, or all) to the store now,
        so that a read sees them; see :mod:`.spender`."""
        if self.spender is not None:
            self.spender.flush(name)

    def recover(self) -> Recovery:
        """Replay the settlement journals of processes that died before writing their
        settled calls (see :mod:`.journal`); also done by the first write of every gateway
        and every minute by a running one. ``gateway credits recover`` runs this."""
        from gateway.credits.journal import Recovery, recover

        if self.journal_dir is None:
            return Recovery()
        own = self.spender.journal_name if self.spender is not None else None
        return recover(self, self.journal_dir, exclude=own)

    def writing_here(self) -> bool:
        """Whether this thread is inside a store transaction of this service."""
        return bool(getattr(self._writing, "depth", 0))

    def close(self) -> None:
        """Write what is batched, stop the webhook sender, then close the store's
        connections (undelivered events stay in the outbox for the next sender)."""
        try:
            if self.spender is not None:
                self.spender.close()
        finally:
            try:
                if self.webhook_sender is not None:
                    self.webhook_sender.stop()
            finally:
                self.store.close()

    # -- the per-call path ------------------------------------------------------------------

    def hold(
        self,
        *,
        account: str | None,
        request_id: str,
        amount: Decimal,
        route: str,
        provider: str,
        model: str,
        tags: Mapping[str, str] | None = None,
        attempt: int | None = None,
        api_key: str | None = None,
        key_limits: Limits | None = None,
        operation: str = "chat",
    ) -> Hold:
        """Set ``amount`` (the call's worst case) aside before calling a provider.

        ``attempt`` numbers the tries of one request (1, 2, ...); when None the next unused
        number is taken. Holding an ``attempt`` that exists returns the existing hold.
        ``api_key`` (an API key's id) and ``key_limits`` (its spend limits, nano-dollars):
        the hold counts towards that key's spend and is refused past its limits.
        ``operation`` is what kind of call it is (``chat``, ``embeddings``, ``images``).
        Raises InsufficientCredits or SpendLimitExceeded, having written nothing; an unknown
        named account raises UnknownAccount (in prepaid mode).
        """
        name = self.account_name(account)
        nanos = _hold_nanos(amount)
        clean_tags = check_tags(tags)
        if operation not in OPERATIONS:
            raise InvalidCreditsInput(f"operation must be one of {OPERATIONS}, not {operation!r}")
        _check_text(request_id, "request_id")
        if attempt is not None and (not isinstance(attempt, int) or attempt < 1):
            raise InvalidCreditsInput(f"attempt must be a positive integer, not {attempt!r}")
        prepaid = self.config.mode == "prepaid"

        def decide(step: _Step) -> Hold:
            if attempt is None:
                number = 1
                while step.tx.find_entry(f"hold:{request_id}#{number}") is not None:
                    number += 1
            else:
                number = attempt
                existing = step.tx.find_entry(f"hold:{request_id}#{number}")
                if existing is not None:
                    return _hold_from_entry(existing)
            hold_id = f"{request_id}#{number}"
            meta = {
                "attempt": number,
                "route": route,
                "provider": provider,
                "model": model,
                "tags": clean_tags,
                "target": f"{provider}/{model}",
            }
            if operation != "chat":  # a chat hold's entry stays as it always was
                meta["operation"] = operation
            (entry,) = step.add(
                ledger.place_hold(
                    step.state,
                    step.now_us,
                    hold_id=hold_id,
                    request_id=request_id,
                    amount=nanos,
                    ttl_us=self.hold_ttl_us,
                    prepaid=prepaid,
                    limits=ledger.effective_limits(step.state, self.default_limits),
                    meta=meta,
                    api_key=api_key,
                    key_limits=key_limits,
                )
            )
            return _hold_from_entry(entry)

        create = name == self.default_account or not prepaid
        return self.write(name, decide, create=create)

    def settle(
        self,
        hold: Hold,
        *,
        cost: Decimal,
        usage: TokenUsage,
        status: str = "ok",
        latency_us: int = 0,
        attempts: int = 1,
    ) -> Decimal:
        """Charge the call's actual ``cost`` (exact Decimal; rounded here, once, to
        nano-dollars) and record its request row. Returns the amount charged.

        The cost may exceed the hold (the balance may go negative). Settling a hold twice is
        a no-op that returns the first charge; a hold already lapsed by its TTL is still
        charged. May trigger an auto-recharge (after the commit).
        """
        cost_nanos = _cost_nanos(cost)
        _check_text(status, "status", limit=40)
        if not isinstance(latency_us, int) or latency_us < 0:
            raise InvalidCreditsInput(f"latency_us must be a non-negative int, not {latency_us!r}")
        if not isinstance(attempts, int) or attempts < 1:
            raise InvalidCreditsInput(f"attempts must be a positive int, not {attempts!r}")

        def decide(step: _Step) -> Decimal:
            if hold.hold_id not in step.state.holds:  # an open hold cannot have been settled
                done = step.tx.find_entry(f"settle:{hold.hold_id}")
                if done is not None:
                    return from_nanos(int(done.meta["cost"]))
            step.add(
                ledger.settle(
                    step.state,
                    hold_id=hold.hold_id,
                    request_id=hold.request_id,
                    cost=cost_nanos,
                    api_key=hold.api_key,
                )
            )
            step.tx.add_request(
                request_row(
                    hold,
                    at_us=step.now_us,
                    usage=usage,
                    cost_nanos=cost_nanos,
                    latency_us=latency_us,
                    attempts=attempts,
                    status=status,
                )
            )
            return from_nanos(cost_nanos)

        return self.write_idempotent(hold.account, decide)

    def release(self, hold: Hold) -> None:
        """Give the whole hold back (the attempt failed before any usage). Idempotent."""

        def decide(step: _Step) -> None:
            step.add(ledger.release(step.state, hold_id=hold.hold_id))

        self.write_idempotent(hold.account, decide)

    def hold_state(self, hold: Hold) -> str:
        """``open``, ``settled``, ``released`` or ``lapsed`` (its TTL passed unsettled). A
        client that re-holds a request by its idempotency key learns here whether that
        request was already served."""
        store = self.store
        if store.find_entry(hold.account, f"settle:{hold.hold_id}") is not None:
            return "settled"
        if store.find_entry(hold.account, f"release:{hold.hold_id}") is not None:
            return "released"
        state = store.load(hold.account)
        open_hold = state.holds.get(hold.hold_id) if state is not None else None
        if open_hold is not None and open_hold.deadline_us > self.now_us():
            return "open"
        return "lapsed"

    async def ahold(
        self,
        *,
        account: str | None,
        request_id: str,
        amount: Decimal,
        route: str,
        provider: str,
        model: str,
        tags: Mapping[str, str] | None = None,
        attempt: int | None = None,
        api_key: str | None = None,
        key_limits: Limits | None = None,
        operation: str = "chat",
    ) -> Hold:
        """:meth:`hold` in a worker thread."""
        import asyncio

        return await asyncio.to_thread(
            lambda: self.hold(
                account=account,
                request_id=request_id,
                amount=amount,
                route=route,
                provider=provider,
                model=model,
                tags=tags,
                attempt=attempt,
                api_key=api_key,
                key_limits=key_limits,
                operation=operation,
            )
        )

    async def asettle(
        self,
        hold: Hold,
        *,
        cost: Decimal,
        usage: TokenUsage,
        status: str = "ok",
        latency_us: int = 0,
        attempts: int = 1,
    ) -> Decimal:
        """:meth:`settle` in a worker thread."""
        import asyncio

        return await asyncio.to_thread(
            lambda: self.settle(
                hold,
                cost=cost,
                usage=usage,
                status=status,
                latency_us=latency_us,
                attempts=attempts,
            )
        )

    async def arelease(self, hold: Hold) -> None:
        """:meth:`release` in a worker thread."""
        import asyncio

        await asyncio.to_thread(self.release, hold)

    # -- the write path shared by every change ----------------------------------------------

    def now_us(self) -> int:
        return to_micros(self.clock.now())

    def write_idempotent(self, name: str, decide: Callable[[_Step], T]) -> T:
        """:meth:`write` for an operation whose repeat is a no-op (settle, release), tried
        again when the store lost the transaction: a settle must not be lost because another
        writer got the account's lock while this one was reconnecting."""
        uncertain: CreditStoreUnavailable | None = None
        for attempt in range(1, _IDEMPOTENT_TRIES + 1):
            try:
                return self.write(name, decide, create=False)
            except CreditStoreUnavailable as exc:
                if exc.written is None and uncertain is None:
                    uncertain = exc  # a later "nothing was written" must not hide this one
                if attempt == _IDEMPOTENT_TRIES:
                    raise (uncertain or exc) from None
                logger.warning("credit store write failed (%s); trying again", exc.message)
        raise AssertionError("unreachable")  # pragma: no cover

    def write(
        self, name: str, decide: Callable[[_Step], T], *, create: bool, housekeeping: bool = True
    ) -> T:
        """Run ``decide`` on the locked account, then commit what it added.

        Before ``decide``: the account is opened if new (when ``create``), expired lots are
        written off and lapsed holds released (unless not ``housekeeping``: for a record that
        moves no money, so that the write which does move it judges the auto-recharge
        threshold on the expiry and its own change together, as one write did before the
        record existed). After it: an auto-recharge is requested if the balance just crossed
        its threshold; the payment runs after the commit, outside the lock; the webhook
        events of the write go to the outbox with it. If ``decide`` raises, nothing is
        written (but for the ``limit.reached`` event of a SpendLimitExceeded refusal).
        """
        now = self.now_us()
        recharges: list[tuple[str, int]] = []
        events: list[OutboxRow] = []
        writing = self._writing
        writing.depth = getattr(writing, "depth", 0) + 1
        try:
            result = self._write_locked(
                name,
                decide,
                create=create,
                now=now,
                recharges=recharges,
                events=events,
                housekeeping=housekeeping,
            )
        finally:
            writing.depth -= 1
        for key, amount in recharges:
            try:
                self._pay_recharge(name, key, amount)
            except Exception:  # the call itself succeeded; a later write retries the payment
                logger.exception("auto-recharge of account '%s' could not be recorded", name)
        return result

    def _write_locked(
        self,
        name: str,
        decide: Callable[[_Step], T],
        *,
        create: bool,
        now: int,
        recharges: list[tuple[str, int]],
        events: list[OutboxRow],
        housekeeping: bool,
    ) -> T:
        refused: SpendLimitExceeded | None = None
        with self.store.transaction(name) as tx:
            state = tx.state
            if state is None:
                if not create:
                    raise self.unknown(name)
                state = AccountState(name=name)
                step = _Step(state, now, tx)
                step.add(ledger.open_account(self.config.timezone))
            else:
                step = _Step(state, now, tx)
                if state.tz != self.config.timezone:
                    step.add(ledger.change_settings(tz=self.config.timezone))
            posted_before = state.posted
            if housekeeping:
                step.add(ledger.housekeeping(state, now))
            try:
                result = decide(step)
            except SpendLimitExceeded as exc:
                # A refused call writes nothing to the ledger, but the webhook event of the
                # cap it hit (limit.reached, once per window) is committed, on its own.
                if self.alerts is None or tx.state is None:
                    raise
                events += self.alerts.rows(self.alerts.limit_reached(name, exc, now))
                if not events:
                    raise
                tx.add_events(events)
                refused = exc
            else:
                # A recharge left unanswered for a hold TTL (its process died mid-payment) is
                # asked again with the same idempotency key, so it is never paid twice.
                recharges += [
                    (key, int(pending["amount"]))
                    for key, pending in state.pending_recharges.items()
                    if int(pending["requested_us"]) + self.hold_ttl_us <= now
                ]
                rule = ledger.effective_recharge(state, self.default_recharge)
                for entry in step.add(
                    ledger.recharge_due(
                        state,
                        posted_before,
                        now,
                        rule=rule,
                        key=lambda: f"recharge-{uuid.uuid4().hex}",
                        force=step.force_recharge,
                    )
                ):
                    if entry.kind == ledger.RECHARGE_REQUESTED and entry.key is not None:
                        recharges.append((entry.key, int(entry.meta["amount"])))
                if self.alerts is not None:
                    events += self._events_of(step, posted_before)
                    if events:
                        tx.add_events(events)
                if step.entries:
                    tx.append(step.entries)
                    tx.save(state)
        if events:  # committed
            self._outboxed(events)
        if refused is not None:
            raise refused
        return result

    def _events_of(self, step: _Step, posted_before: int) -> list[OutboxRow]:
        """The webhook events of a write, as outbox rows to commit with its entries
        (gateway/webhooks/events.py decides which)."""
        alerts = self.alerts
        assert alerts is not None
        state = step.state
        found = alerts.after_write(state, step.entries, posted_before, step.now_us)
        if step.refusal is not None:
            found += alerts.limit_reached(state.name, step.refusal, step.now_us)
        return alerts.rows(found)

    def _outboxed(self, rows: list[OutboxRow]) -> None:
        """After a commit with webhook events: remember its once-only events and wake the
        sender, so that they go out now rather than at its next look at the outbox."""
        if self.alerts is not None:
            self.alerts.committed(rows)
        if self.webhook_sender is not None:
            self.webhook_sender.wake()

    def _pay_recharge(self, name: str, key: str, amount: int) -> None:
        """Pay a requested recharge and credit what was charged. The request (its key and
        amount) was committed before this, so a repeat after a crash, or a second process
        asking the same stale request, gets the processor's first result for the key and
        the lot is added once (``recharge_paid`` adds nothing for a request already paid)."""
        result = self.charge(from_nanos(amount), key)

        def decide(step: _Step) -> None:
            if result.ok:
                step.add(
                    ledger.recharge_paid(
                        step.state,
                        key=key,
                        expires_us=step.now_us + self.expiry_us,
                        reference=result.reference,
                        charged=charged_nanos(result, amount),
                    )
                )
            else:
                step.add(ledger.recharge_declined(step.state, key=key, reason=result.reason or ""))

        self.write(name, decide, create=False)
        if not result.ok:
            logger.warning("auto-recharge of account '%s' declined: %s", name, result.reason)

    def charge(self, amount: Decimal, key: str) -> PaymentResult:
        """Charge through the payment method; a missing method, an exception or an approval
        of an amount that is not a positive Decimal is a decline."""
        if self.payment_method is None:
            return PaymentResult.declined("no payment method is configured")
        try:
            result = self.payment_method.charge(amount, key)
        except Exception as exc:
            logger.exception("payment method failed")
            return PaymentResult.declined(f"the payment method raised {type(exc).__name__}: {exc}")
        if not isinstance(result, PaymentResult):
            return PaymentResult.declined(f"the payment method returned {result!r}")
        charged = result.amount
        if result.ok and charged is not None and not _valid_charge(charged):
            logger.error("payment method approved %r for key %r", charged, key)
            return PaymentResult.declined(
                f"the payment method approved an invalid amount {charged!r} "
                "(PaymentResult.amount must be a positive Decimal of USD)"
            )
        return result

    def unknown(self, name: str) -> UnknownAccount:
        return UnknownAccount(
            f"credit account '{name}' does not exist. A named account is created by its first "
            f"purchase, grant or set_limits (e.g. gw.credits.account({name!r}).grant(...)); "
            f"existing accounts: {', '.join(self.store.accounts()) or 'none'}"
        )

    def expiry_for(self, now_us: int) -> int:
        return now_us + self.expiry_us

    def snapshot(self, name: str) -> AccountState | None:
        return self.store.load(name)


def _valid_charge(amount: object) -> bool:
    return (
        isinstance(amount, Decimal)
        and amount.is_finite()
        and 0 < amount < MAX_AMOUNT
        and to_nanos(amount) > 0
    )


def _opt_nanos(value: Decimal | None) -> int | None:
    return None if value is None else to_nanos(value)


def _decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise InvalidAmount(
            f"{what} must be a Decimal (never a float), not {type(value).__name__}: {value!r}"
        )
    amount = Decimal(value)
    if not amount.is_finite():
        raise InvalidAmount(f"{what} {value} is not a finite amount")
    if amount < 0:
        raise InvalidAmount(f"{what} {value} is negative (there are no refunds)")
    if amount >= MAX_AMOUNT:
        raise InvalidAmount(f"{what} {value} is absurdly large")
    return amount


def _hold_nanos(value: Any) -> int:
    """A hold's size: exact worst cases are rounded with the ledger's one rounding mode."""
    return to_nanos(_decimal(value, "hold amount"))


def _cost_nanos(value: Any) -> int:
    return to_nanos(_decimal(value, "cost"))


def _check_text(value: Any, what: str, *, limit: int = _MAX_NAME) -> None:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InvalidCreditsInput(f"{what} must be a non-empty string of at most {limit} chars")


def check_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    """Validate usage tags: at most 32 string keys and values of at most 200 characters."""
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise InvalidCreditsInput(f"tags must be a mapping of strings, not {type(tags).__name__}")
    if len(tags) > _MAX_TAGS:
        raise InvalidCreditsInput(f"at most {_MAX_TAGS} tags per call")
    clean: dict[str, str] = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidCreditsInput(f"tag {key!r}: keys and values must be strings")
        if not key or len(key) > _MAX_NAME or len(value) > _MAX_NAME:
            raise InvalidCreditsInput(f"tag {key!r}: keys and values are 1-200 characters")
        bad = _UNSTORABLE.search(key) or _UNSTORABLE.search(value)
        if bad is not None:
            raise InvalidCreditsInput(
                f"tag {key!r}: {_describe_char(bad.group())} cannot be stored (control "
                "characters and lone surrogates are refused by every credit store)"
            )
        clean[key] = value
    return clean


_UNSTORABLE = UNSTORABLE_TEXT


def _describe_char(char: str) -> str:
    if char == "\x00":
        return "the NUL character (\\x00)"
    if "\ud800" <= char <= "\udfff":
        return f"a lone surrogate (\\u{ord(char):04x})"
    return f"the control character \\x{ord(char):02x}"


def _hold_from_entry(entry: LedgerEntry) -> Hold:
    meta = entry.meta
    assert entry.hold_id is not None and entry.request_id is not None
    return Hold(
        hold_id=entry.hold_id,
        account=entry.account,
        request_id=entry.request_id,
        attempt=int(meta["attempt"]),
        amount_nanos=entry.held_nanos,
        placed_at=from_micros(entry.at_us),
        expires_at=from_micros(int(meta["deadline_us"])),
        route=str(meta["route"]),
        provider=str(meta["provider"]),
        model=str(meta["model"]),
        tags=dict(meta["tags"]),
        api_key=meta.get("api_key"),
        operation=str(meta.get("operation", "chat")),
    )
