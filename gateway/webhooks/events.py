"""The credit account's webhook events, decided from a ledger write. No I/O.

Every write of an account (``CreditService._write_locked``) hands its entries and the locked
state to :meth:`Alerts.after_write`, which says which events they cause; the events go to the
outbox in the same store transaction (:meth:`Alerts.rows`), so an event exists exactly when
the entries that caused it do:

=====================  ==========================================================
``purchase.succeeded``  a purchase entry (a lot of purchased credit)
``recharge.succeeded``  an auto-recharge entry (its payment went through)
``recharge.failed``     a declined auto-recharge (with the payment method's reason), or
                        one skipped because the month's recharge limit was reached
``credits.expired``     an expiry entry (a lot's unused remainder written off)
``balance.low``         the posted balance crossed below ``credits.alerts.balance_below``
                        in this write (once per crossing, as auto-recharge judges it)
``credits.expiring``    a lot with credit left expires within
                        ``credits.alerts.expiring_within_days`` (once per lot)
``limit.reached``       a daily or monthly cap refused a call (once per window; the
                        refusal writes no entry, the event is committed on its own)
=====================  ==========================================================

The once-only events carry a ``once_key`` that the outbox keeps unique per account and
endpoint, so every process may decide them and the store keeps one; :class:`Alerts`
remembers the keys it has seen committed, so a process does not offer them again on every
write.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.config import AlertsConfig, WebhookConfig
from gateway.credits import ledger
from gateway.credits.ledger import AccountState, LedgerEntry
from gateway.credits.money import from_micros, from_nanos, plain_decimal, to_nanos
from gateway.webhooks.outbox import OutboxRow, endpoint_id

if TYPE_CHECKING:
    from gateway.errors import SpendLimitExceeded

__all__ = ["DELIVERY_WINDOW_US", "Alerts", "WebhookEvent", "new_event_id", "usd"]

#: How long an event is retried before it is given up: a day.
DELIVERY_WINDOW_US = 86_400 * 1_000_000
_DAY_US = 86_400 * 1_000_000
#: Once-only keys remembered per process (forgetting one only costs an insert the outbox
#: ignores).
_REMEMBER = 10_000


def new_event_id() -> str:
    """A new event id, ``msg_`` and 32 hex digits (sent as ``webhook-id``)."""
    return f"msg_{uuid.uuid4().hex}"


def usd(nanos: int) -> str:
    """Money in an event: a decimal string of USD, exact (``"4.99"``, ``"0.000012"``)."""
    return plain_decimal(from_nanos(nanos))


def _iso(at_us: int) -> str:
    return from_micros(at_us).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One event: what happened to which account, and when."""

    id: str
    type: str
    account: str
    at_us: int
    #: The event's details (beside ``account``): money as decimal strings.
    data: Mapping[str, Any] = field(default_factory=dict)
    #: Once-only events: the key the outbox keeps unique (None: every occurrence is sent).
    once_key: str | None = None

    def payload(self) -> dict[str, Any]:
        """``{"type", "timestamp", "data": {"account", ...}}``: what the endpoint receives."""
        return {
            "type": self.type,
            "timestamp": _iso(self.at_us),
            "data": {"account": self.account, **self.data},
        }

    def body(self) -> str:
        """The payload as the JSON text that is signed and sent (ASCII, compact)."""
        return json.dumps(self.payload(), separators=(",", ":"))


class Alerts:
    """What one gateway's webhooks want from its credit account's writes: the events each
    endpoint subscribes to, and the thresholds of ``credits.alerts``."""

    def __init__(self, alerts: AlertsConfig, endpoints: Sequence[WebhookConfig]) -> None:
        #: (endpoint id, the event types it receives), in config order.
        self.endpoints = [(endpoint_id(e.url), frozenset(e.events)) for e in endpoints]
        self.wanted = frozenset().union(*(types for _, types in self.endpoints))
        below = alerts.balance_below
        self.balance_below = (
            to_nanos(below) if below is not None and "balance.low" in self.wanted else None
        )
        days = alerts.expiring_within_days
        self.expiring_within_us = (
            days * _DAY_US if days is not None and "credits.expiring" in self.wanted else None
        )
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Alerts(endpoints={len(self.endpoints)}, events={sorted(self.wanted)})"

    # -- decisions --------------------------------------------------------------------------

    def after_write(
        self,
        state: AccountState,
        entries: Sequence[LedgerEntry],
        posted_before: int,
        now_us: int,
    ) -> list[WebhookEvent]:
        """The events of one write: ``entries`` were just applied to ``state``, whose posted
        balance was ``posted_before`` when the write began."""
        wanted = self.wanted
        account = state.name
        events: list[WebhookEvent] = []

        def add(kind: str, data: dict[str, Any], once_key: str | None = None) -> None:
            if kind in wanted:
                events.append(WebhookEvent(new_event_id(), kind, account, now_us, data, once_key))

        for entry in entries:
            kind = entry.kind
            if kind == ledger.PURCHASE:
                add("purchase.succeeded", _credit_data(entry, state))
            elif kind == ledger.AUTO_RECHARGE:
                add("recharge.succeeded", _credit_data(entry, state))
            elif kind == ledger.RECHARGE_DECLINED:
                add(
                    "recharge.failed",
                    {"amount": usd(int(entry.meta["amount"])), "reason": entry.note or "declined"},
                )
            elif kind == ledger.RECHARGE_SKIPPED:
                add(
                    "recharge.failed",
                    {
                        "amount": usd(int(entry.meta["amount"])),
                        "reason": entry.note or "monthly auto-recharge limit reached",
                    },
                )
            elif kind == ledger.EXPIRY:
                add(
                    "credits.expired",
                    {
                        "amount": usd(-entry.amount_nanos),
                        "lot_id": entry.lot_id,
                        "expired_at": _iso(int(entry.meta["expires_us"])),
                        "balance": usd(state.posted),
                    },
                )
        below = self.balance_below
        # Once per crossing, judged like auto-recharge: this write took it below the line.
        if below is not None and posted_before >= below > state.posted:
            add("balance.low", {"balance": usd(state.posted), "threshold": usd(below)})
        if self.expiring_within_us is not None:
            horizon = now_us + self.expiring_within_us
            for lot in state.lots:
                if lot.remaining > 0 and now_us < lot.expires_us <= horizon:
                    key = f"credits.expiring:{lot.lot_id}"
                    if (account, key) not in self._seen:
                        add(
                            "credits.expiring",
                            {
                                "amount": usd(lot.remaining),
                                "lot_id": lot.lot_id,
                                "source": lot.source,
                                "expires_at": _iso(lot.expires_us),
                            },
                            key,
                        )
        return events

    def limit_reached(
        self, account: str, refusal: SpendLimitExceeded, now_us: int
    ) -> list[WebhookEvent]:
        """The ``limit.reached`` event of a call a cap refused: once per cap and window."""
        if "limit.reached" not in self.wanted or refusal.limit is None or refusal.window is None:
            return []
        # An API key's own limit is its own event (data.api_key), never the account cap's.
        scope = "" if refusal.api_key is None else f"{refusal.api_key}:"
        key = f"limit.reached:{scope}{refusal.limit}:{refusal.window}"
        if (account, key) in self._seen:
            return []
        data: dict[str, Any] = {"limit": refusal.limit, "window": refusal.window}
        if refusal.api_key is not None:
            data["api_key"] = refusal.api_key
        if refusal.cap is not None:
            data["cap"] = plain_decimal(refusal.cap)
        if refusal.committed is not None:
            data["spent"] = plain_decimal(refusal.committed)
        return [WebhookEvent(new_event_id(), "limit.reached", account, now_us, data, key)]

    def due_soon(self, state: AccountState, now_us: int) -> bool:
        """Whether a write of this account now would write off a lot or announce one that
        expires soon (the sender's sweep of idle accounts writes only those)."""
        horizon = now_us + (self.expiring_within_us or 0)
        for lot in state.lots:
            if lot.remaining <= 0:
                continue
            if lot.expires_us <= now_us and "credits.expired" in self.wanted:
                return True
            if (
                self.expiring_within_us is not None
                and now_us < lot.expires_us <= horizon
                and (state.name, f"credits.expiring:{lot.lot_id}") not in self._seen
            ):
                return True
        return False

    # -- the outbox -------------------------------------------------------------------------

    def rows(self, events: Iterable[WebhookEvent]) -> list[OutboxRow]:
        """One outbox row per event and endpoint that receives it."""
        out: list[OutboxRow] = []
        for event in events:
            body = event.body()
            for endpoint, types in self.endpoints:
                if event.type in types:
                    out.append(
                        OutboxRow(
                            event_id=event.id,
                            account=event.account,
                            endpoint=endpoint,
                            type=event.type,
                            body=body,
                            created_us=event.at_us,
                            deadline_us=event.at_us + DELIVERY_WINDOW_US,
                            once_key=event.once_key,
                        )
                    )
        return out

    def committed(self, rows: Iterable[OutboxRow]) -> None:
        """Remember the once-only keys of rows a transaction committed (written now or
        already in the outbox): they are not offered again by this process."""
        with self._lock:
            seen = self._seen
            for row in rows:
                if row.once_key is not None:
                    if len(seen) >= _REMEMBER:
                        seen.clear()
                    seen.add((row.account, row.once_key))


def _credit_data(entry: LedgerEntry, state: AccountState) -> dict[str, Any]:
    data: dict[str, Any] = {
        "amount": usd(entry.amount_nanos),
        "lot_id": entry.lot_id,
        "expires_at": _iso(int(entry.meta["expires_us"])),
        "balance": usd(state.posted),
    }
    reference = entry.meta.get("reference")
    if reference:
        data["reference"] = str(reference)
    return data
