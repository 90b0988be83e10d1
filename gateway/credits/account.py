"""The account API users call: ``gw.credits`` and ``gw.credits.account("customer-42")``.

Accounts:

* The default account (``credits.default_account``, "default") always exists: before
  anything is written to it, its balance is zero.
* A named account exists once something was written to it: its first ``purchase``,
  ``grant``, ``set_limits`` or ``set_auto_recharge`` (or, in pay-as-you-go mode, its first
  call). Reading or calling an unknown named account raises
  :class:`~gateway.errors.UnknownAccount`, so a typo in ``account=`` is not a new customer.
* Credit is non-refundable and cannot move between accounts: there is no refund or
  transfer method, and negative amounts are refused.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from types import EllipsisType
from typing import TYPE_CHECKING, TypeVar

from gateway.credits import ledger, reports
from gateway.credits.ledger import AccountState, LedgerEntry, Lot, RechargeRule
from gateway.credits.money import (
    format_usd,
    from_micros,
    from_nanos,
    parse_amount,
    to_micros,
)
from gateway.credits.payment import charged_nanos
from gateway.credits.reports import Statement, UsageRow
from gateway.credits.store import RequestRow
from gateway.errors import (
    IdempotencyConflict,
    InvalidAmount,
    InvalidCreditsInput,
    LedgerMismatch,
    PaymentDeclined,
)

if TYPE_CHECKING:
    from gateway.credits.journal import Recovery
    from gateway.credits.service import CreditService, _Step

__all__ = ["AccountSettings", "Balance", "CreditAccount", "LotBalance", "Verification"]

logger = logging.getLogger("gateway.credits")
T = TypeVar("T")
_MAX_NOTE = 1000
_MAX_KEY = 255


@dataclass(frozen=True, slots=True)
class LotBalance:
    """One lot of credit that still has some left."""

    lot_id: str
    #: ``purchase``, ``grant`` or ``auto_recharge``.
    source: str
    amount: Decimal
    remaining: Decimal
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Balance:
    """An account's money at one instant (USD)."""

    account: str
    as_of: datetime
    #: Credit that can pay for new calls: ``posted - held``.
    available: Decimal
    #: Unexpired credit minus debt (negative when the account owes money).
    posted: Decimal
    #: Set aside for calls in flight.
    held: Decimal
    #: What the account owes after a settlement overran its credit (paid first by new credit).
    debt: Decimal
    #: When the soonest-expiring lot expires (None when no credit is left).
    next_expiry: datetime | None
    #: How much expires then.
    expiring_next: Decimal
    lots: tuple[LotBalance, ...] = ()


@dataclass(frozen=True, slots=True)
class AccountSettings:
    """The caps and auto-recharge rule in force (the account's own, else the config's)."""

    daily_limit: Decimal | None
    monthly_limit: Decimal | None
    #: ``(below, amount, monthly_limit)`` or None when auto-recharge is off.
    auto_recharge: tuple[Decimal, Decimal, Decimal] | None


@dataclass(frozen=True, slots=True)
class Verification:
    """What ``verify()`` checked: every balance was derived again from the entries."""

    account: str
    entries: int
    posted: Decimal
    held: Decimal
    requests_cost: Decimal
    #: Work that may be unbilled, as far as it can be found (the ledger itself matches):
    #: journals of dead processes not replayed yet, holds past their TTL still open, and
    #: purchases asked of the payment method whose outcome the ledger never heard.
    unbilled: tuple[str, ...] = ()


class CreditAccount:
    """One credit account. Obtain it as ``gw.credits`` or ``gw.credits.account(name)``."""

    def __init__(self, service: CreditService, name: str) -> None:
        self._service = service
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"CreditAccount({self._name!r})"

    def account(self, name: str) -> CreditAccount:
        """Another account in the same store, e.g. one per customer of your app."""
        return self._service.account(name)

    def accounts(self) -> list[str]:
        """The names of every account in the store, sorted (this process's batched calls
        are written first, so an account it just opened is listed)."""
        self._service.drain()
        return self._service.accounts()

    def exists(self) -> bool:
        """True once anything was written to this account."""
        self._service.drain(self._name)
        return self._service.snapshot(self._name) is not None

    # -- reading ----------------------------------------------------------------------------

    def _state(self) -> AccountState:
        self._service.drain(self._name)  # this process's batched calls first
        state = self._service.snapshot(self._name)
        if state is None:
            if self._name != self._service.default_account:
                raise self._service.unknown(self._name)
            return AccountState(name=self._name)
        return state

    def balance(self) -> Balance:
        """Available, posted and held credit, debt, and the next expiry, as of now."""
        now = self._service.now_us()
        view = ledger.view(self._state(), now)
        return Balance(
            account=self._name,
            as_of=from_micros(now),
            available=from_nanos(view.available),
            posted=from_nanos(view.posted),
            held=from_nanos(view.held),
            debt=from_nanos(view.debt),
            next_expiry=from_micros(view.next_expiry_us) if view.next_expiry_us else None,
            expiring_next=from_nanos(view.expiring_next),
            lots=tuple(_lot(lot) for lot in view.lots),
        )

    def settings(self) -> AccountSettings:
        """The caps and auto-recharge rule that apply to this account now."""
        state = self._state()
        limits = ledger.effective_limits(state, self._service.default_limits)
        rule = ledger.effective_recharge(state, self._service.default_recharge)
        return AccountSettings(
            daily_limit=None if limits.daily is None else from_nanos(limits.daily),
            monthly_limit=None if limits.monthly is None else from_nanos(limits.monthly),
            auto_recharge=None
            if rule is None
            else (from_nanos(rule.below), from_nanos(rule.amount), from_nanos(rule.monthly_limit)),
        )

    def history(
        self, *, limit: int | None = None, kinds: Sequence[str] | None = None
    ) -> list[LedgerEntry]:
        """Ledger entries, newest first (``kinds`` filters, e.g. ``["purchase", "usage"]``)."""
        self._state()
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise InvalidCreditsInput(f"limit must be a non-negative int, not {limit!r}")
        store = self._service.store
        if kinds is None:
            return store.entries(self._name, limit=limit, newest_first=True)
        wanted = set(kinds)
        rows = [e for e in store.entries(self._name, newest_first=True) if e.kind in wanted]
        return rows if limit is None else rows[:limit]

    def requests(
        self,
        *,
        since: datetime | date | None = None,
        until: datetime | date | None = None,
        tags: Mapping[str, str] | None = None,
        limit: int | None = None,
        all_accounts: bool = False,
    ) -> list[RequestRow]:
        """Per-request rows (oldest first): id, time, account, route, provider, model, token
        counts, cost, latency, attempts, status, tags. ``limit`` keeps the newest rows;
        ``all_accounts`` covers every account in the store."""
        if all_accounts:
            self._service.drain()
        else:
            self._state()
        rows = self._service.store.requests(
            accounts=None if all_accounts else [self._name],
            since_us=self._instant(since, "since"),
            until_us=self._instant(until, "until"),
        )
        rows = reports.filter_by_tags(rows, _tags(tags))
        if limit is None:
            return rows
        if not isinstance(limit, int) or limit < 0:
            raise InvalidCreditsInput(f"limit must be a non-negative int, not {limit!r}")
        return rows[max(0, len(rows) - limit) :]  # the newest ``limit`` rows

    def usage(
        self,
        *,
        group_by: str | Sequence[str] = "model",
        since: datetime | date | None = None,
        until: datetime | date | None = None,
        tags: Mapping[str, str] | None = None,
        all_accounts: bool = False,
    ) -> list[UsageRow]:
        """Usage summed by ``group_by``: ``model``, ``provider``, ``route``, ``account``,
        ``status``, ``operation`` (``chat``, ``embeddings``, ``images``, ``batch``), ``day``,
        ``month`` or ``tag:<name>`` (or a list of them). The rows add up
        exactly to the usage in the ledger. ``since``/``until`` take a datetime or a date
        (midnight in the configured time zone); ``until`` is exclusive."""
        rows = self.requests(since=since, until=until, tags=tags, all_accounts=all_accounts)
        return reports.group_usage(rows, group_by, self._service.calendar)

    def statement(self, month: str | date) -> Statement:
        """The month's statement (``"2026-01"`` or any date in it): opening and closing
        balance, purchases, grants, usage by model, expiry, and the amount due."""
        self._state()
        if isinstance(month, date):
            month = f"{month.year:04d}-{month.month:02d}"
        if not isinstance(month, str):
            raise InvalidCreditsInput(f"month must be 'YYYY-MM' or a date, not {month!r}")
        store = self._service.store
        return reports.build_statement(
            self._name,
            month,
            self._service.calendar,
            store.entries(self._name),
            store.requests(accounts=[self._name]),
        )

    def verify(self) -> Verification:
        """Rebuild every balance of this account from its entries and compare with what the
        store holds; raise :class:`~gateway.errors.LedgerMismatch` listing any difference."""
        self._service.drain(self._name)
        with self._service.store.transaction(self._name) as tx:
            stored = tx.state
            if stored is None:
                self._state()
                return Verification(self._name, 0, Decimal(0), Decimal(0), Decimal(0))
            entries = tx.entries()
            request_total = tx.request_total()
        problems = ledger.verify_state(stored, entries, request_costs=request_total)
        if problems:
            raise LedgerMismatch(
                f"account '{self._name}' does not match its ledger: " + "; ".join(problems),
                problems=problems,
            )
        return Verification(
            account=self._name,
            entries=len(entries),
            posted=from_nanos(sum(e.amount_nanos for e in entries)),
            held=from_nanos(sum(e.held_nanos for e in entries)),
            requests_cost=from_nanos(request_total),
            unbilled=self._unbilled(stored) + _unanswered_purchases(entries),
        )

    def recover(self) -> Recovery:
        """Replay the settlement journals of gateway processes that died before writing
        their settled calls, for every account of the store (each call exactly once; see
        :mod:`gateway.credits.journal`). Every gateway also does this on its first write
        and then every minute; this is for doing it now (``gateway credits recover``)."""
        return self._service.recover()

    def _unbilled(self, state: AccountState) -> tuple[str, ...]:
        """What :class:`Verification` reports as possibly unbilled (see its ``unbilled``)."""
        service = self._service
        found: list[str] = []
        if service.journal_dir is not None:
            from gateway.credits.journal import unreplayed

            for journal in unreplayed(service, service.journal_dir, self._name):
                if journal.unbilled_calls:
                    found.append(
                        f"{journal.unbilled_calls} settled call(s) costing "
                        f"${journal.unbilled_cost} are in the journal {journal.path} of a "
                        "process that died, not in the store yet: run `gateway credits "
                        "recover` (the next gateway to write does it too)"
                    )
                else:
                    found.append(
                        f"the journal {journal.path} of a process that died is not replayed "
                        "yet (every call it records is in the store); until it is, a lease "
                        "that process held stays on hold: run `gateway credits recover`"
                    )
        now = service.now_us()
        for hold in state.holds.values():
            if hold.deadline_us <= now:
                what = "lease" if hold.hold_id.startswith("lease-") else "hold"
                found.append(
                    f"{what} {hold.hold_id} (${from_nanos(hold.amount)}) passed its TTL "
                    f"at {from_micros(hold.deadline_us).isoformat()} unsettled: its process "
                    "probably died; calls it answered are billed only if its journal is "
                    "replayed (the hold is released by the next write)"
                )
        return tuple(found)

    # -- writing ----------------------------------------------------------------------------

    def purchase(self, amount: Decimal, *, idempotency_key: str | None = None) -> LedgerEntry:
        """Buy credit. With a payment method configured it is charged first (a decline
        raises :class:`~gateway.errors.PaymentDeclined` and adds nothing) and the account is
        credited what it charged; without one, this records a purchase paid for elsewhere.
        The lot expires after ``expiry_days``.

        A repeat with the same ``idempotency_key`` and amount returns the first purchase and
        charges nothing more; if the first never finished (its process stopped mid-payment)
        the repeat finishes it, crediting once what was charged. The same key with another
        amount raises :class:`~gateway.errors.IdempotencyConflict` and charges nothing, even
        while the first purchase is still being paid.
        """
        config = self._service.config
        nanos = parse_amount(
            amount,
            what="purchase amount",
            minimum=config.min_purchase,
            maximum=config.max_purchase,
        )
        if idempotency_key is not None and (
            not isinstance(idempotency_key, str) or not 0 < len(idempotency_key) <= _MAX_KEY
        ):
            raise InvalidCreditsInput(f"idempotency_key must be 1-{_MAX_KEY} characters")
        if self._service.payment_method is None:
            return self._write(
                lambda step: _record_purchase(step, self._service, nanos, idempotency_key)
            )
        return self._paid_purchase(nanos, idempotency_key)

    def _paid_purchase(self, nanos: int, idempotency_key: str | None) -> LedgerEntry:
        """(1) The intent is committed under the account's lock, so a racing purchase with the
        key sees it; (2) the payment method is asked, outside the lock; (3) what it charged is
        credited, once (a racer with the same amount may have credited it first)."""
        if idempotency_key is None:
            payment_key = f"purchase-{uuid.uuid4().hex}"
        else:
            payment_key = _payment_key(self._name, idempotency_key)
        start = self._write(
            lambda step: _request_purchase(step, nanos, idempotency_key, payment_key),
            housekeeping=False,  # the credit's write does it, as before the intent existed
        )
        if isinstance(start, LedgerEntry):
            return start
        payment_key = start  # a repeat pays with the key its first request recorded
        result = self._service.charge(from_nanos(nanos), payment_key)
        if not result.ok:
            reason = result.reason or "declined"
            self._write(
                lambda step: step.add(
                    [
                        ledger.LedgerEntry(
                            ledger.PURCHASE_DECLINED,
                            note=reason,
                            meta={"amount": nanos, "payment_key": payment_key},
                        )
                    ]
                )
            )
            raise PaymentDeclined(
                f"the payment of {format_usd(nanos)} for account '{self._name}' was "
                f"declined: {reason}. No credit was added",
                reason=reason,
            )
        charged = charged_nanos(result, nanos)
        meta = {"payment_key": payment_key}
        if result.reference:
            meta["reference"] = result.reference
        entry = self._write(
            lambda step: _credit_purchase(step, self._service, charged, idempotency_key, meta)
        )
        if entry.amount_nanos != nanos:
            credited = format_usd(entry.amount_nanos)
            if idempotency_key is None:  # an error would invite a repeat, i.e. a second charge
                logger.warning(
                    "the payment method charged %s, not the %s asked; %s was credited",
                    credited,
                    format_usd(nanos),
                    credited,
                )
                return entry
            raise IdempotencyConflict(
                f"the payment method charged {credited} for idempotency key "
                f"{idempotency_key!r} (a processor answers a repeated key with its first "
                f"charge), not {format_usd(nanos)}; the account was credited {credited}, "
                "what was charged"
            )
        return entry

    def grant(
        self,
        amount: Decimal,
        *,
        expires_at: datetime | None = None,
        note: str | None = None,
    ) -> LedgerEntry:
        """Add promotional credit (no minimum, no payment). It expires at ``expires_at``
        (timezone-aware, in the future) or after ``expiry_days``."""
        nanos = parse_amount(amount, what="grant amount")
        if note is not None and (not isinstance(note, str) or len(note) > _MAX_NOTE):
            raise InvalidCreditsInput(f"note must be a string of at most {_MAX_NOTE} characters")
        expires_us: int | None = None
        if expires_at is not None:
            if not isinstance(expires_at, datetime) or expires_at.tzinfo is None:
                raise InvalidCreditsInput(
                    f"expires_at must be a timezone-aware datetime, not {expires_at!r}"
                )
            expires_us = to_micros(expires_at)

        def decide(step: _Step) -> LedgerEntry:
            expiry = expires_us if expires_us is not None else self._service.expiry_for(step.now_us)
            if expiry <= step.now_us:
                raise InvalidCreditsInput(f"expires_at {expires_at} is not in the future")
            entries = ledger.credit(
                step.state, source=ledger.GRANT, amount=nanos, expires_us=expiry, note=note
            )
            return step.add(entries)[0]

        return self._write(decide)

    def set_limits(
        self,
        *,
        daily: Decimal | EllipsisType | None = ...,
        monthly: Decimal | EllipsisType | None = ...,
    ) -> None:
        """Set this account's spending caps (None: no cap; leave out to keep). Caps count
        settled usage and open holds within the calendar day / month in the configured
        time zone; a call that would pass one raises SpendLimitExceeded."""
        changes: dict[str, int | None] = {}
        for label, value in (("daily", daily), ("monthly", monthly)):
            if value is ...:
                continue
            changes[label] = None if value is None else parse_amount(value, what=f"{label} cap")
        if changes:
            self._write(lambda step: step.add(ledger.change_settings(**changes)))

    def set_auto_recharge(self, *, below: Decimal, amount: Decimal, monthly_limit: Decimal) -> None:
        """Buy ``amount`` through the payment method whenever the balance drops below
        ``below``, at most ``monthly_limit`` per calendar month. If the balance is already
        below ``below``, a recharge is requested now."""
        config = self._service.config
        rule = RechargeRule(
            below=parse_amount(below, what="auto-recharge threshold", allow_zero=True),
            amount=parse_amount(
                amount,
                what="auto-recharge amount",
                minimum=config.min_purchase,
                maximum=config.max_purchase,
            ),
            monthly_limit=parse_amount(monthly_limit, what="auto-recharge monthly limit"),
        )
        if rule.monthly_limit < rule.amount:
            raise InvalidAmount(
                f"the auto-recharge monthly limit {format_usd(rule.monthly_limit)} is less than "
                f"one recharge ({format_usd(rule.amount)})"
            )

        def decide(step: _Step) -> None:
            step.add(ledger.change_settings(auto_recharge=rule.as_meta()))
            step.force_recharge = True

        self._write(decide)

    def disable_auto_recharge(self) -> None:
        """Turn auto-recharge off for this account (even if the config sets one)."""
        self._write(lambda step: step.add(ledger.change_settings(auto_recharge=None)))

    def expire(self) -> list[LedgerEntry]:
        """Write off expired lots and release lapsed holds now (every write does this too);
        returns the entries written."""
        if not self.exists():
            self._state()
            return []
        written_off = (ledger.EXPIRY, ledger.HOLD_EXPIRED)
        return self._write(
            lambda step: [e for e in step.entries if e.kind in written_off], create=False
        )

    def _write(
        self, decide: Callable[[_Step], T], *, create: bool = True, housekeeping: bool = True
    ) -> T:
        self._service.drain(self._name)
        return self._service.write(self._name, decide, create=create, housekeeping=housekeeping)

    def _instant(self, value: datetime | date | None, what: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise InvalidCreditsInput(f"{what} must be timezone-aware, not {value!r}")
            return to_micros(value)
        if isinstance(value, date):
            return to_micros(self._service.calendar.day_start(value))
        raise InvalidCreditsInput(f"{what} must be a datetime or a date, not {value!r}")


def _lot(lot: Lot) -> LotBalance:
    return LotBalance(
        lot_id=lot.lot_id,
        source=lot.source,
        amount=from_nanos(lot.amount),
        remaining=from_nanos(lot.remaining),
        created_at=from_micros(lot.created_us),
        expires_at=from_micros(lot.expires_us),
    )


def _unanswered_purchases(entries: Sequence[LedgerEntry]) -> tuple[str, ...]:
    """Purchase requests with no purchase or decline after them: being paid right now, or
    their process stopped after asking the payment method (it may have charged)."""
    answered = {
        e.meta.get("payment_key")
        for e in entries
        if e.kind in (ledger.PURCHASE, ledger.PURCHASE_DECLINED)
    }
    found: list[str] = []
    for e in entries:
        if e.kind != ledger.PURCHASE_REQUESTED or e.meta["payment_key"] in answered:
            continue
        amount = format_usd(int(e.meta["amount"]))
        if e.key is not None:
            key = e.key.removeprefix(_request_key(""))
            fix = (
                f"repeat purchase({amount}, idempotency_key={key!r}): it credits what was "
                "charged, without charging again"
            )
        else:
            fix = f"look for payment key {e.meta['payment_key']!r} at the payment processor"
        found.append(
            f"a purchase of {amount} requested at {from_micros(e.at_us).isoformat()} has no "
            f"outcome in the ledger (it is being paid, or its process stopped after asking "
            f"the payment method): {fix}"
        )
    return tuple(found)


def _purchase_key(idempotency_key: str) -> str:
    """The ledger key of a keyed purchase's lot."""
    return f"purchase:{idempotency_key}"


def _request_key(idempotency_key: str) -> str:
    """The ledger key of a keyed purchase's intent (its ``purchase_requested`` entry)."""
    return f"requested:purchase:{idempotency_key}"


def _payment_key(account: str, idempotency_key: str) -> str:
    """The payment method's key for a keyed purchase: scoped to the account, because the
    processor answers a key with its first charge, and another account using the same key
    must not be credited that charge too. At most 255 characters (Stripe's limit)."""
    scoped = f"purchase:{account}:{idempotency_key}"
    if len(scoped) <= _MAX_KEY:
        return scoped
    return "purchase:" + hashlib.sha256(scoped.encode("utf-8", "surrogatepass")).hexdigest()


def _completed_purchase(step: _Step, nanos: int, idempotency_key: str) -> LedgerEntry | None:
    """The purchase this key already made (None if none); IdempotencyConflict if it was
    made, or asked for, with another amount."""
    existing = step.tx.find_entry(_purchase_key(idempotency_key))
    if existing is not None:
        if existing.amount_nanos != nanos:
            raise IdempotencyConflict(
                f"idempotency key {idempotency_key!r} was used for a purchase of "
                f"{format_usd(existing.amount_nanos)}, not {format_usd(nanos)}; "
                "nothing was charged"
            )
        return existing
    requested = step.tx.find_entry(_request_key(idempotency_key))
    if requested is not None and int(requested.meta["amount"]) != nanos:
        asked = format_usd(int(requested.meta["amount"]))
        raise IdempotencyConflict(
            f"idempotency key {idempotency_key!r} was used for a purchase of {asked} that "
            f"has not completed (it is being paid, was declined, or its process stopped), "
            f"not {format_usd(nanos)}; nothing was charged. Repeat it with {asked} to "
            "complete it"
        )
    return None


def _record_purchase(
    step: _Step, service: CreditService, nanos: int, idempotency_key: str | None
) -> LedgerEntry:
    """A purchase paid for elsewhere (no payment method): credited in one transaction."""
    if idempotency_key is not None:
        existing = _completed_purchase(step, nanos, idempotency_key)
        if existing is not None:
            return existing
    return _credit_purchase(step, service, nanos, idempotency_key, None)


def _request_purchase(
    step: _Step, nanos: int, idempotency_key: str | None, payment_key: str
) -> LedgerEntry | str:
    """Step 1 of a paid purchase, under the account's lock: the purchase this key already
    made, or else the payment key to charge, with the intent recorded (once per key)."""
    key = None
    if idempotency_key is not None:
        existing = _completed_purchase(step, nanos, idempotency_key)
        if existing is not None:
            return existing
        key = _request_key(idempotency_key)
        requested = step.tx.find_entry(key)
        if requested is not None:  # a repeat, or a racer, with the same amount: pay again
            return str(requested.meta["payment_key"])
    step.add(
        [
            LedgerEntry(
                ledger.PURCHASE_REQUESTED,
                key=key,
                meta={"amount": nanos, "payment_key": payment_key},
            )
        ]
    )
    return payment_key


def _credit_purchase(
    step: _Step,
    service: CreditService,
    charged: int,
    idempotency_key: str | None,
    meta: dict[str, str] | None,
) -> LedgerEntry:
    """A lot of what was ``charged``, once per idempotency key (a racer with the same key
    and amount may have credited the same charge first)."""
    key = None
    if idempotency_key is not None:
        key = _purchase_key(idempotency_key)
        existing = step.tx.find_entry(key)
        if existing is not None:
            return existing
    entries = ledger.credit(
        step.state,
        source=ledger.PURCHASE,
        amount=charged,
        expires_us=service.expiry_for(step.now_us),
        key=key,
        meta=meta,
    )
    return step.add(entries)[0]


def _tags(tags: Mapping[str, str] | None) -> dict[str, str] | None:
    from gateway.credits.service import check_tags

    return check_tags(tags) or None
