"""The ledger's rules as pure functions: no I/O, no clock, no store.

An account is a list of append-only :class:`LedgerEntry` rows. Its current
:class:`AccountState` (lots, open holds, debt, spending windows, settings) is what you get
by :func:`apply`-ing every entry in order, and :func:`replay` does exactly that. A store
keeps the state as a snapshot next to the entries only so that a call need not replay
history; :func:`verify_state` checks that the snapshot is what the entries say.

Decisions (``place_hold``, ``settle``, ``credit``, ...) read a state and return the entries
to append; they never change the state themselves. The caller applies the entries, so the
state a decision sees is always derivable from the ledger.

Every entry moves money in at most one bucket: ``amount`` changes the posted balance and,
through ``lot_id``, the remaining credit of that lot (``lot_id=None`` means the debt
bucket); ``held`` changes the amount on hold. So at any time::

    posted    = sum(entry.amount)      = sum(lot.remaining) - debt
    held      = sum(entry.held)        = sum(open hold amounts)
    available = posted - held
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from gateway.credits.money import (
    MAX_AMOUNT,
    format_usd,
    from_micros,
    from_nanos,
    plain_decimal,
    to_micros,
    to_nanos,
)
from gateway.errors import InsufficientCredits, InvalidAmount, SpendLimitExceeded

__all__ = [
    "CREDIT_KINDS",
    "MAX_BALANCE",
    "AccountState",
    "BalanceView",
    "Calendar",
    "KeySpend",
    "LedgerEntry",
    "Limits",
    "Lot",
    "OpenHold",
    "RechargeRule",
    "Window",
    "apply",
    "apply_all",
    "burn",
    "calendar_of",
    "change_settings",
    "credit",
    "effective_limits",
    "effective_recharge",
    "hold_room",
    "housekeeping",
    "open_account",
    "place_hold",
    "recharge_declined",
    "recharge_due",
    "recharge_paid",
    "release",
    "replay",
    "settle",
    "verify_state",
    "view",
]

# Entry kinds. Money moves only in the first six; the others record events.
OPENED = "account_opened"
PURCHASE = "purchase"
GRANT = "grant"
AUTO_RECHARGE = "auto_recharge"
USAGE = "usage"
EXPIRY = "expiry"
DEBT_PAYMENT = "debt_payment"
HOLD = "hold"
SETTLE = "settle"
RELEASE = "release"
HOLD_EXPIRED = "hold_expired"
RECHARGE_REQUESTED = "recharge_requested"
RECHARGE_DECLINED = "recharge_declined"
RECHARGE_SKIPPED = "recharge_skipped"
PURCHASE_DECLINED = "purchase_declined"
#: A purchase about to be paid (written before the payment method is asked, so that a racing
#: or repeated purchase with the same idempotency key sees it; moves no money).
PURCHASE_REQUESTED = "purchase_requested"
SETTINGS = "settings"
#: Kinds that create a lot of credit.
CREDIT_KINDS = frozenset({PURCHASE, GRANT, AUTO_RECHARGE})
#: Kinds that close an open hold.
_CLOSING_KINDS = frozenset({SETTLE, RELEASE, HOLD_EXPIRED})
#: The largest posted balance an account may reach (keeps every sum inside int64).
MAX_BALANCE = to_nanos(MAX_AMOUNT)


#: ``json.dumps(value, separators=(",", ":"))`` without building an encoder per call.
compact_json = json.JSONEncoder(separators=(",", ":")).encode
#: A string as JSON (what ``json.dumps`` writes for it).
_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii


def _int(value: int) -> str:
    """An int as JSON; anything else (never written by the rules) as ``json.dumps`` would."""
    return int.__repr__(value) if type(value) is int else compact_json(value)


@dataclass(slots=True)
class LedgerEntry:
    """One append-only row of the ledger. Amounts are integer nano-dollars.

    ``amount_nanos`` is the change to the posted balance (credits positive, usage, expiry and
    debt payments negative) in the lot ``lot_id`` (or in the debt when None);
    ``held_nanos`` is the change to the amount on hold.
    """

    kind: str
    amount_nanos: int = 0
    held_nanos: int = 0
    lot_id: str | None = None
    hold_id: str | None = None
    request_id: str | None = None
    #: Idempotency key, unique per account (``purchase:<yours>``, ``hold:<hold id>``, ...).
    key: str | None = None
    note: str | None = None
    #: Kind-specific details (JSON-serialisable: ints and strings).
    meta: dict[str, Any] = field(default_factory=dict)
    #: When it was written, microseconds since the epoch (UTC).
    at_us: int = 0
    account: str = ""
    #: Position in the store (ascending in write order); None before it is stored.
    id: int | None = None

    @property
    def amount(self) -> Decimal:
        """Change to the posted balance, USD."""
        return from_nanos(self.amount_nanos)

    @property
    def held(self) -> Decimal:
        """Change to the amount on hold, USD."""
        return from_nanos(self.held_nanos)

    @property
    def at(self) -> datetime:
        """When it was written (UTC)."""
        return from_micros(self.at_us)

    @property
    def expires_at(self) -> datetime | None:
        """For a credit: when its lot expires."""
        expires = self.meta.get("expires_us")
        return from_micros(expires) if isinstance(expires, int) else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly: Decimal and datetime as strings."""
        return {
            "id": self.id,
            "account": self.account,
            "at": self.at.isoformat(),
            "kind": self.kind,
            "amount": plain_decimal(self.amount),
            "held": plain_decimal(self.held),
            "lot_id": self.lot_id,
            "hold_id": self.hold_id,
            "request_id": self.request_id,
            "key": self.key,
            "note": self.note,
            "meta": dict(self.meta),
        }


@dataclass(slots=True)
class Lot:
    """Credit that arrived together (a purchase, grant or recharge) and expires together."""

    lot_id: str
    source: str
    amount: int
    remaining: int
    created_us: int
    expires_us: int


@dataclass(slots=True)
class OpenHold:
    """Money set aside for a call in flight."""

    hold_id: str
    request_id: str | None
    amount: int
    placed_us: int
    deadline_us: int
    #: The API key whose spend limits this hold counts towards (None: no key's).
    api_key: str | None = None


@dataclass(slots=True)
class Window:
    """A running total for one calendar day or month (``key`` is ``2026-01-15``/``2026-01``)."""

    key: str = ""
    total: int = 0

    def add(self, key: str, amount: int) -> None:
        if self.key != key:
            self.key, self.total = key, 0
        self.total += amount

    def current(self, key: str) -> int:
        return self.total if self.key == key else 0


@dataclass(slots=True)
class KeySpend:
    """What calls made with one API key spent this day and this month (its limits' windows,
    in the account's time zone)."""

    day: Window = field(default_factory=Window)
    month: Window = field(default_factory=Window)


@dataclass(frozen=True, slots=True)
class Limits:
    """Spending caps in nano-dollars; None means no cap."""

    daily: int | None = None
    monthly: int | None = None


@dataclass(frozen=True, slots=True)
class RechargeRule:
    """Auto-recharge: buy ``amount`` when the balance drops below ``below``, at most
    ``monthly_limit`` per calendar month (nano-dollars)."""

    below: int
    amount: int
    monthly_limit: int

    def as_meta(self) -> dict[str, int]:
        return {"below": self.below, "amount": self.amount, "monthly_limit": self.monthly_limit}


@dataclass(slots=True)
class AccountState:
    """Everything the rules need about one account, derived from its entries."""

    name: str
    tz: str = "UTC"
    opened_us: int = 0
    lots: list[Lot] = field(default_factory=list)
    debt: int = 0
    holds: dict[str, OpenHold] = field(default_factory=dict)
    lots_created: int = 0
    #: Per-account overrides of the config: ``daily``/``monthly`` (int or None) and
    #: ``auto_recharge`` (a RechargeRule's fields, or None = off). Absent = the config's.
    settings: dict[str, Any] = field(default_factory=dict)
    spent_day: Window = field(default_factory=Window)
    spent_month: Window = field(default_factory=Window)
    #: Auto-recharges requested this month (pending or paid; declines are taken back out).
    recharged_month: Window = field(default_factory=Window)
    #: Auto-recharges asked of the payment method and not yet answered:
    #: key -> amount, month, requested_us.
    pending_recharges: dict[str, dict[str, Any]] = field(default_factory=dict)
    entries: int = 0
    #: Spend of the API keys that carry spend limits, by key id (only the current month's
    #: keys are kept: a key's entry goes when another key's usage starts a later month).
    key_spend: dict[str, KeySpend] = field(default_factory=dict)

    @property
    def posted(self) -> int:
        return sum(lot.remaining for lot in self.lots) - self.debt

    @property
    def held(self) -> int:
        return sum(hold.amount for hold in self.holds.values())

    def lot(self, lot_id: str) -> Lot | None:
        for lot in self.lots:
            if lot.lot_id == lot_id:
                return lot
        return None

    def copy(self) -> AccountState:
        return copy.deepcopy(self)

    # -- snapshot ---------------------------------------------------------------------------

    def to_json(self) -> str:
        """The snapshot as compact JSON: exactly ``json.dumps(self.as_json(), separators=(",",
        ":"))``, written out by hand (this runs on every write; the generic encoder and
        ``dataclasses.asdict`` were its slowest steps)."""
        q = _quote
        lots = ",".join(
            f"[{q(lot.lot_id)},{q(lot.source)},{_int(lot.amount)},{_int(lot.remaining)},"
            f"{_int(lot.created_us)},{_int(lot.expires_us)}]"
            for lot in self.lots
        )
        holds = ",".join(
            f"[{q(h.hold_id)},{'null' if h.request_id is None else q(h.request_id)},"
            f"{_int(h.amount)},{_int(h.placed_us)},{_int(h.deadline_us)}"
            f"{'' if h.api_key is None else ',' + q(h.api_key)}]"
            for h in self.holds.values()
        )
        day, month, recharged = self.spent_day, self.spent_month, self.recharged_month
        return (
            f'{{"name":{q(self.name)},"tz":{q(self.tz)},"opened_us":{_int(self.opened_us)},'
            f'"lots":[{lots}],"debt":{_int(self.debt)},"holds":[{holds}],'
            f'"lots_created":{_int(self.lots_created)},'
            f'"settings":{compact_json(self.settings) if self.settings else "{}"},'
            f'"spent_day":[{q(day.key)},{_int(day.total)}],'
            f'"spent_month":[{q(month.key)},{_int(month.total)}],'
            f'"recharged_month":[{q(recharged.key)},{_int(recharged.total)}],'
            f'"pending_recharges":'
            f"{compact_json(self.pending_recharges) if self.pending_recharges else '{}'},"
            f'"entries":{_int(self.entries)}'
            f"{_key_spend_json(self.key_spend) if self.key_spend else ''}}}"
        )

    def as_json(self) -> dict[str, Any]:
        """The snapshot as JSON-ready data (what :meth:`to_json` writes)."""
        return {
            "name": self.name,
            "tz": self.tz,
            "opened_us": self.opened_us,
            "lots": [
                [lot.lot_id, lot.source, lot.amount, lot.remaining, lot.created_us, lot.expires_us]
                for lot in self.lots
            ],
            "debt": self.debt,
            "holds": [
                [h.hold_id, h.request_id, h.amount, h.placed_us, h.deadline_us]
                + ([] if h.api_key is None else [h.api_key])
                for h in self.holds.values()
            ],
            "lots_created": self.lots_created,
            "settings": self.settings,
            "spent_day": [self.spent_day.key, self.spent_day.total],
            "spent_month": [self.spent_month.key, self.spent_month.total],
            "recharged_month": [self.recharged_month.key, self.recharged_month.total],
            "pending_recharges": self.pending_recharges,
            "entries": self.entries,
        } | (
            {
                "key_spend": {
                    key: [s.day.key, s.day.total, s.month.key, s.month.total]
                    for key, s in self.key_spend.items()
                }
            }
            if self.key_spend
            else {}
        )

    @classmethod
    def from_json(cls, text: str) -> AccountState:
        data = json.loads(text)
        return cls(
            name=data["name"],
            tz=data["tz"],
            opened_us=data["opened_us"],
            lots=[Lot(*lot) for lot in data["lots"]],
            debt=data["debt"],
            holds={h[0]: OpenHold(*h) for h in data["holds"]},
            lots_created=data["lots_created"],
            settings=data["settings"],
            spent_day=Window(*data["spent_day"]),
            spent_month=Window(*data["spent_month"]),
            recharged_month=Window(*data["recharged_month"]),
            pending_recharges=data["pending_recharges"],
            entries=data["entries"],
            key_spend={
                key: KeySpend(Window(day, day_total), Window(month, month_total))
                for key, (day, day_total, month, month_total) in data.get("key_spend", {}).items()
            },
        )


def _key_spend_json(key_spend: dict[str, KeySpend]) -> str:
    """``,"key_spend":{...}`` as :meth:`AccountState.to_json` writes it."""
    q = _quote
    items = ",".join(
        f"{q(key)}:[{q(s.day.key)},{_int(s.day.total)},{q(s.month.key)},{_int(s.month.total)}]"
        for key, s in key_spend.items()
    )
    return f',"key_spend":{{{items}}}'


class Calendar:
    """Calendar days and months in one time zone (the caps' and recharge limit's windows)."""

    def __init__(self, tz: str) -> None:
        self.tz = tz
        self.zone = _zone(tz)
        #: The last day looked up: [start, end) in microseconds (UTC) and its key.
        self._day: tuple[int, int, str] = (0, 0, "")

    def local(self, at_us: int) -> datetime:
        return from_micros(at_us).astimezone(self.zone)

    def day_key(self, at_us: int) -> str:
        start, end, key = self._day
        if start <= at_us < end:
            return key
        day = self.local(at_us).date()
        key = day.isoformat()
        self._remember(day, key)
        return key

    def _remember(self, day: date, key: str) -> None:
        """Keep the bounds of ``day`` for the next lookups, when they are plain: the zone's
        UTC offset is the same at both ends (no clock change that day), so every instant in
        between falls on ``day``."""
        first = self.day_start(day)
        following = self.day_start(date.fromordinal(day.toordinal() + 1))
        start, end = to_micros(first), to_micros(following)
        if (
            start < end
            and self.local(start).date() == day
            and self.local(end - 1).date() == day
            and self.local(start).utcoffset() == self.local(end - 1).utcoffset()
        ):
            self._day = (start, end, key)

    def month_key(self, at_us: int) -> str:
        return self.day_key(at_us)[:7]

    def month_start(self, year: int, month: int) -> datetime:
        """Midnight on the first of the month, local time, as an aware datetime."""
        return datetime(year, month, 1, tzinfo=self.zone)

    def day_start(self, day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=self.zone)


@lru_cache(maxsize=32)
def calendar_of(tz: str) -> Calendar:
    """A shared Calendar per time zone."""
    return Calendar(tz)


@lru_cache(maxsize=32)
def _zone(tz: str) -> ZoneInfo:
    return ZoneInfo(tz)


# ---------------------------------------------------------------------------------------------
# Applying entries: the only way a state changes


def apply(state: AccountState, entry: LedgerEntry) -> None:
    """Change ``state`` by one entry (in place). Replaying all entries rebuilds the state."""
    kind = entry.kind
    state.entries += 1
    if kind == OPENED:
        state.tz = str(entry.meta["tz"])
        state.opened_us = entry.at_us
    elif kind in CREDIT_KINDS:
        assert entry.lot_id is not None
        state.lots.append(
            Lot(
                lot_id=entry.lot_id,
                source=kind,
                amount=entry.amount_nanos,
                remaining=0,
                created_us=entry.at_us,
                expires_us=int(entry.meta["expires_us"]),
            )
        )
        state.lots_created += 1
        if kind == AUTO_RECHARGE:
            pending = state.pending_recharges.pop(str(entry.meta["recharge_key"]), None)
            if pending is not None and state.recharged_month.key == pending["month"]:
                # the month's tally counts what was charged, when it differs from the ask
                state.recharged_month.total += entry.amount_nanos - int(pending["amount"])
    elif kind == HOLD:
        assert entry.hold_id is not None
        state.holds[entry.hold_id] = OpenHold(
            hold_id=entry.hold_id,
            request_id=entry.request_id,
            amount=entry.held_nanos,
            placed_us=entry.at_us,
            deadline_us=int(entry.meta["deadline_us"]),
            api_key=entry.meta.get("api_key"),
        )
    elif kind in _CLOSING_KINDS:
        assert entry.hold_id is not None
        state.holds.pop(entry.hold_id, None)
    elif kind == USAGE:
        day = calendar_of(state.tz).day_key(entry.at_us)
        state.spent_day.add(day, -entry.amount_nanos)
        state.spent_month.add(day[:7], -entry.amount_nanos)
        api_key = entry.meta.get("api_key") if entry.meta else None
        if api_key is not None:
            _add_key_spend(state, str(api_key), day, -entry.amount_nanos)
    elif kind == RECHARGE_REQUESTED:
        assert entry.key is not None
        amount, month = int(entry.meta["amount"]), str(entry.meta["month"])
        state.pending_recharges[entry.key] = {
            "amount": amount,
            "month": month,
            "requested_us": entry.at_us,
        }
        state.recharged_month.add(month, amount)
    elif kind == RECHARGE_DECLINED:
        pending = state.pending_recharges.pop(str(entry.meta["recharge_key"]), None)
        if pending is not None and state.recharged_month.key == pending["month"]:
            state.recharged_month.total -= int(pending["amount"])
    elif kind == SETTINGS:
        for name, value in entry.meta.items():
            if name == "tz":
                state.tz = str(value)
            else:
                state.settings[name] = value
    if entry.amount_nanos:
        if entry.lot_id is None:
            state.debt -= entry.amount_nanos
        else:
            lot = state.lot(entry.lot_id)
            assert lot is not None, f"entry {entry.id} names unknown lot {entry.lot_id}"
            lot.remaining += entry.amount_nanos
            if lot.remaining == 0:
                state.lots.remove(lot)


def _add_key_spend(state: AccountState, api_key: str, day: str, amount: int) -> None:
    """Count ``amount`` towards the key's day and month; forget keys whose month is over."""
    month = day[:7]
    spend = state.key_spend.get(api_key)
    if spend is None:
        for stale in [k for k, s in state.key_spend.items() if s.month.key < month]:
            del state.key_spend[stale]
        spend = state.key_spend[api_key] = KeySpend()
    spend.day.add(day, amount)
    spend.month.add(month, amount)


def apply_all(state: AccountState, entries: Iterable[LedgerEntry]) -> None:
    for entry in entries:
        apply(state, entry)


def replay(name: str, entries: Iterable[LedgerEntry]) -> AccountState:
    """The state that ``entries`` (all of one account's, in order) add up to."""
    state = AccountState(name=name)
    apply_all(state, entries)
    return state


# ---------------------------------------------------------------------------------------------
# Reading a state


@dataclass(frozen=True, slots=True)
class BalanceView:
    """An account's balance at one instant, in nano-dollars."""

    posted: int
    held: int
    debt: int
    next_expiry_us: int | None
    expiring_next: int
    lots: tuple[Lot, ...]

    @property
    def available(self) -> int:
        return self.posted - self.held


def view(state: AccountState, now_us: int) -> BalanceView:
    """The balance at ``now_us``: lots past their expiry and holds past their TTL no longer
    count, even before housekeeping has written them off."""
    lots = tuple(
        sorted(
            (lot for lot in state.lots if lot.remaining > 0 and lot.expires_us > now_us),
            key=_burn_order,
        )
    )
    held = sum(h.amount for h in state.holds.values() if h.deadline_us > now_us)
    next_expiry = lots[0].expires_us if lots else None
    expiring = sum(lot.remaining for lot in lots if lot.expires_us == next_expiry)
    return BalanceView(
        posted=sum(lot.remaining for lot in lots) - state.debt,
        held=held,
        debt=state.debt,
        next_expiry_us=next_expiry,
        expiring_next=expiring,
        lots=lots,
    )


def _burn_order(lot: Lot) -> tuple[int, int]:
    """Soonest-expiring first; among equals, the oldest first."""
    return (lot.expires_us, lot.created_us)


def effective_limits(state: AccountState, default: Limits) -> Limits:
    return Limits(
        daily=state.settings.get("daily", default.daily),
        monthly=state.settings.get("monthly", default.monthly),
    )


def effective_recharge(state: AccountState, default: RechargeRule | None) -> RechargeRule | None:
    if "auto_recharge" not in state.settings:
        return default
    rule = state.settings["auto_recharge"]
    return None if rule is None else RechargeRule(**rule)


# ---------------------------------------------------------------------------------------------
# Decisions: each returns the entries to append


def open_account(tz: str) -> list[LedgerEntry]:
    return [LedgerEntry(OPENED, meta={"tz": tz})]


def housekeeping(state: AccountState, now_us: int) -> list[LedgerEntry]:
    """Write off lots past their expiry and release holds past their TTL."""
    out = [
        LedgerEntry(
            EXPIRY,
            amount_nanos=-lot.remaining,
            lot_id=lot.lot_id,
            meta={"expires_us": lot.expires_us},
        )
        for lot in state.lots
        if lot.expires_us <= now_us and lot.remaining > 0
    ]
    out += [
        LedgerEntry(
            HOLD_EXPIRED,
            held_nanos=-hold.amount,
            hold_id=hold.hold_id,
            request_id=hold.request_id,
            meta={"deadline_us": hold.deadline_us},
        )
        for hold in state.holds.values()
        if hold.deadline_us <= now_us
    ]
    return out


def credit(
    state: AccountState,
    *,
    source: str,
    amount: int,
    expires_us: int,
    key: str | None = None,
    note: str | None = None,
    meta: Mapping[str, Any] | None = None,
) -> list[LedgerEntry]:
    """A new lot of ``amount``; any debt is paid from it first."""
    assert source in CREDIT_KINDS and amount > 0
    if state.posted + amount > MAX_BALANCE:
        raise InvalidAmount(
            f"{format_usd(amount)} would take account '{state.name}' above the largest "
            f"balance the ledger keeps ({format_usd(MAX_BALANCE)})"
        )
    lot_id = f"L{state.lots_created + 1}"
    out = [
        LedgerEntry(
            source,
            amount_nanos=amount,
            lot_id=lot_id,
            key=key,
            note=note,
            meta={"expires_us": expires_us, **(meta or {})},
        )
    ]
    payment = min(amount, state.debt)
    if payment:
        out.append(LedgerEntry(DEBT_PAYMENT, amount_nanos=-payment, lot_id=lot_id))
        out.append(LedgerEntry(DEBT_PAYMENT, amount_nanos=payment, lot_id=None))
    return out


def _open_held(state: AccountState, now_us: int) -> int:
    """What view() says is on hold, without sorting the lots (this runs on every call)."""
    return sum(h.amount for h in state.holds.values() if h.deadline_us > now_us)


def _live_posted(state: AccountState, now_us: int) -> int:
    """The posted balance counting only unexpired lots (what view() says)."""
    live = sum(lot.remaining for lot in state.lots if lot.remaining > 0 and lot.expires_us > now_us)
    return live - state.debt


def _cap_windows(
    state: AccountState, now_us: int, limits: Limits
) -> Iterator[tuple[str, int, str, Window]]:
    """``(label, cap, window key, window)`` of each cap that is set."""
    for label, cap, window in (
        ("daily", limits.daily, state.spent_day),
        ("monthly", limits.monthly, state.spent_month),
    ):
        if cap is not None:
            calendar = calendar_of(state.tz)
            key = calendar.day_key(now_us) if label == "daily" else calendar.month_key(now_us)
            yield label, cap, key, window


def _key_cap_windows(
    state: AccountState, now_us: int, api_key: str, limits: Limits
) -> Iterator[tuple[str, int, str, Window]]:
    """``(label, cap, window key, window)`` of each of an API key's limits that is set."""
    spend = state.key_spend.get(api_key) or KeySpend()
    for label, cap, window in (
        ("daily", limits.daily, spend.day),
        ("monthly", limits.monthly, spend.month),
    ):
        if cap is not None:
            calendar = calendar_of(state.tz)
            key = calendar.day_key(now_us) if label == "daily" else calendar.month_key(now_us)
            yield label, cap, key, window


def _key_held(state: AccountState, now_us: int, api_key: str) -> int:
    """What open holds made for calls with ``api_key`` set aside (its calls in flight)."""
    return sum(
        h.amount for h in state.holds.values() if h.api_key == api_key and h.deadline_us > now_us
    )


def hold_room(
    state: AccountState,
    now_us: int,
    *,
    prepaid: bool,
    limits: Limits,
    api_key: str | None = None,
    key_limits: Limits | None = None,
) -> int | None:
    """The largest hold :func:`place_hold` would accept now (None: no limit; may be <= 0);
    with ``api_key`` and ``key_limits``, within that key's limits too."""
    held = _open_held(state, now_us)
    room = _live_posted(state, now_us) - held if prepaid else None
    for _label, cap, key, window in _cap_windows(state, now_us, limits):
        headroom = cap - window.current(key) - held
        room = headroom if room is None else min(room, headroom)
    if api_key is not None and key_limits is not None:
        key_held = _key_held(state, now_us, api_key)
        for _label, cap, key, window in _key_cap_windows(state, now_us, api_key, key_limits):
            headroom = cap - window.current(key) - key_held
            room = headroom if room is None else min(room, headroom)
    return room


def place_hold(
    state: AccountState,
    now_us: int,
    *,
    hold_id: str,
    request_id: str,
    amount: int,
    ttl_us: int,
    prepaid: bool,
    limits: Limits,
    meta: Mapping[str, Any] | None = None,
    api_key: str | None = None,
    key_limits: Limits | None = None,
) -> list[LedgerEntry]:
    """Set ``amount`` aside for a call, or raise InsufficientCredits / SpendLimitExceeded.

    ``api_key``: the hold counts towards that API key's spend (its calls in flight);
    ``key_limits``: the key's own daily and monthly limits, checked like the account's caps.
    """
    assert amount >= 0
    held = _open_held(state, now_us)
    what = meta.get("target") if meta else None
    call = f"this call ({what})" if what else "this call"
    if prepaid:
        posted = _live_posted(state, now_us)
        if amount > posted - held:
            raise InsufficientCredits(
                f"account '{state.name}' has {format_usd(posted - held)} available "
                f"({format_usd(posted)} posted, {format_usd(held)} on hold for "
                f"calls in flight); {call} may cost up to {format_usd(amount)}. No provider was "
                "called. Add credit with purchase() or grant(), or lower max_tokens"
            )
    for label, cap, key, window in _cap_windows(state, now_us, limits):
        committed = window.current(key) + held
        if committed + amount > cap:
            raise SpendLimitExceeded(
                f"account '{state.name}' would pass its {label} spending cap of "
                f"{format_usd(cap)} ({key}, {state.tz}): {format_usd(committed)} is spent or "
                f"on hold and {call} may cost up to {format_usd(amount)}. No provider was "
                f"called. Raise the cap with set_limits({label}=...) or wait for the next "
                f"{'day' if label == 'daily' else 'month'}",
                # what the limit.reached webhook event reports (gateway/webhooks/events.py)
                limit=label,
                window=key,
                cap=from_nanos(cap),
                committed=from_nanos(committed),
            )
    if api_key is not None and key_limits is not None:
        key_held = _key_held(state, now_us, api_key)
        for label, cap, key, window in _key_cap_windows(state, now_us, api_key, key_limits):
            committed = window.current(key) + key_held
            if committed + amount > cap:
                raise SpendLimitExceeded(
                    f"API key {api_key} of account '{state.name}' would pass its {label} "
                    f"spend limit of {format_usd(cap)} ({key}, {state.tz}): "
                    f"{format_usd(committed)} is spent or on hold with this key and {call} "
                    f"may cost up to {format_usd(amount)}. No provider was called. Wait for "
                    f"the next {'day' if label == 'daily' else 'month'}, or use a key with a "
                    "higher limit",
                    limit=label,
                    window=key,
                    cap=from_nanos(cap),
                    committed=from_nanos(committed),
                    api_key=api_key,
                )
    entry_meta = {"deadline_us": now_us + ttl_us, **(meta or {})}
    if api_key is not None:
        entry_meta["api_key"] = api_key
    return [
        LedgerEntry(
            HOLD,
            held_nanos=amount,
            hold_id=hold_id,
            request_id=request_id,
            key=f"hold:{hold_id}",
            meta=entry_meta,
        )
    ]


def burn(
    state: AccountState,
    amount: int,
    *,
    kind: str = USAGE,
    hold_id: str | None = None,
    request_id: str | None = None,
    api_key: str | None = None,
) -> list[LedgerEntry]:
    """Debit ``amount`` from the lots, soonest-expiring first; what they cannot cover
    becomes debt (a negative balance). ``api_key``: usage of calls made with that API key
    (counted towards its spend limits)."""
    out: list[LedgerEntry] = []
    left = amount

    def meta() -> dict[str, Any]:
        return {} if api_key is None else {"api_key": api_key}

    for lot in sorted((lot for lot in state.lots if lot.remaining > 0), key=_burn_order):
        if left == 0:
            break
        take = min(lot.remaining, left)
        out.append(
            LedgerEntry(
                kind,
                amount_nanos=-take,
                lot_id=lot.lot_id,
                hold_id=hold_id,
                request_id=request_id,
                meta=meta(),
            )
        )
        left -= take
    if left:
        out.append(
            LedgerEntry(
                kind, amount_nanos=-left, hold_id=hold_id, request_id=request_id, meta=meta()
            )
        )
    return out


def settle(
    state: AccountState,
    *,
    hold_id: str,
    request_id: str,
    cost: int,
    api_key: str | None = None,
) -> list[LedgerEntry]:
    """Close a hold and charge the actual ``cost`` (which may exceed the hold: the balance
    may go negative). A hold already released by its TTL is charged all the same ("late").
    The usage counts towards the API key the hold was made for (or ``api_key``, for a hold
    no longer open)."""
    assert cost >= 0
    hold = state.holds.get(hold_id)
    if hold is not None and hold.api_key is not None:
        api_key = hold.api_key
    out = [
        LedgerEntry(
            SETTLE,
            held_nanos=-hold.amount if hold is not None else 0,
            hold_id=hold_id,
            request_id=request_id,
            key=f"settle:{hold_id}",
            meta={"cost": cost, "late": int(hold is None)},
        )
    ]
    return out + burn(state, cost, hold_id=hold_id, request_id=request_id, api_key=api_key)


def release(state: AccountState, *, hold_id: str) -> list[LedgerEntry]:
    """Give a hold back in full (the call failed before any usage). No-op if not open."""
    hold = state.holds.get(hold_id)
    if hold is None:
        return []
    return [
        LedgerEntry(
            RELEASE,
            held_nanos=-hold.amount,
            hold_id=hold_id,
            request_id=hold.request_id,
            key=f"release:{hold_id}",
        )
    ]


def recharge_due(
    state: AccountState,
    posted_before: int,
    now_us: int,
    *,
    rule: RechargeRule | None,
    key: str | Callable[[], str],
    force: bool = False,
) -> list[LedgerEntry]:
    """Auto-recharge when the posted balance has just crossed below the threshold (or with
    ``force``, when it is below it). Once per crossing: only the transaction that crosses
    asks. Never past the monthly limit: a crossing that would pass it is recorded instead."""
    if rule is None:
        return []
    crossed = posted_before >= rule.below > state.posted
    if not (crossed or (force and state.posted < rule.below)):
        return []
    month = calendar_of(state.tz).month_key(now_us)
    used = state.recharged_month.current(month)
    if used + rule.amount > rule.monthly_limit:
        return [
            LedgerEntry(
                RECHARGE_SKIPPED,
                note="monthly auto-recharge limit reached",
                meta={"amount": rule.amount, "month": month, "used": used},
            )
        ]
    key = key if isinstance(key, str) else key()
    return [LedgerEntry(RECHARGE_REQUESTED, key=key, meta={"amount": rule.amount, "month": month})]


def recharge_paid(
    state: AccountState,
    *,
    key: str,
    expires_us: int,
    reference: str | None = None,
    charged: int | None = None,
) -> list[LedgerEntry]:
    """The payment for a requested recharge went through: add its lot of what was
    ``charged`` (None: the amount asked). Once: a recharge already paid adds nothing."""
    pending = state.pending_recharges.get(key)
    if pending is None:
        return []
    return credit(
        state,
        source=AUTO_RECHARGE,
        amount=int(pending["amount"]) if charged is None else charged,
        expires_us=expires_us,
        key=f"paid:{key}",
        meta={"recharge_key": key, **({"reference": reference} if reference else {})},
    )


def recharge_declined(state: AccountState, *, key: str, reason: str) -> list[LedgerEntry]:
    """The payment for a requested recharge was declined: add nothing, record why."""
    pending = state.pending_recharges.get(key)
    if pending is None:
        return []
    return [
        LedgerEntry(
            RECHARGE_DECLINED,
            key=f"declined:{key}",
            note=reason,
            meta={"recharge_key": key, "amount": int(pending["amount"])},
        )
    ]


def change_settings(**changes: Any) -> list[LedgerEntry]:
    return [LedgerEntry(SETTINGS, meta=dict(changes))]


# ---------------------------------------------------------------------------------------------
# Verification


def verify_state(
    stored: AccountState, entries: Sequence[LedgerEntry], *, request_costs: int | None = None
) -> list[str]:
    """Problems found when the stored snapshot is compared with a replay of ``entries``,
    plus the ledger's invariants. An empty list means the account is consistent."""
    problems: list[str] = []
    name = stored.name
    try:
        replayed = replay(name, entries)
    except (AssertionError, KeyError, ValueError) as exc:
        return [f"account '{name}': the entries do not replay: {exc!r}"]
    if replayed != stored:
        for f in dataclasses.fields(AccountState):
            mine, theirs = getattr(stored, f.name), getattr(replayed, f.name)
            if mine != theirs:
                problems.append(
                    f"account '{name}': stored {f.name} is {mine!r} but the entries give {theirs!r}"
                )
    posted = sum(e.amount_nanos for e in entries)
    held = sum(e.held_nanos for e in entries)
    if posted != replayed.posted:
        problems.append(
            f"account '{name}': entries sum to {format_usd(posted)} but lots minus debt are "
            f"{format_usd(replayed.posted)}"
        )
    if held != replayed.held:
        problems.append(
            f"account '{name}': held entries sum to {format_usd(held)} but open holds are "
            f"{format_usd(replayed.held)}"
        )
    for lot in replayed.lots:
        if not 0 < lot.remaining <= lot.amount:
            problems.append(f"account '{name}': lot {lot.lot_id} has {lot.remaining} remaining")
    if replayed.debt < 0:
        problems.append(f"account '{name}': negative debt {replayed.debt}")
    if replayed.debt > 0 and replayed.lots:
        problems.append(f"account '{name}': owes {replayed.debt} while lots still hold credit")
    if any(h.amount < 0 for h in replayed.holds.values()):
        problems.append(f"account '{name}': a hold has a negative amount")
    usage = -sum(e.amount_nanos for e in entries if e.kind == USAGE)
    if request_costs is not None and request_costs != usage:
        problems.append(
            f"account '{name}': per-request rows sum to {format_usd(request_costs)} but usage "
            f"entries to {format_usd(usage)}"
        )
    return problems
