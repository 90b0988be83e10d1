"""The webhook outbox: one row per event and endpoint, in the credit store.

An event is written to the outbox (:class:`OutboxRow`, one per endpoint that wants it) by
:meth:`~gateway.credits.store.StoreTransaction.add_events`, in the same store transaction as
the ledger entries that caused it: a crash loses both or neither. A sender
(:mod:`.sender`) then works through the rows with an :class:`Outbox`, one per store kind
(:mod:`._sqlite`, :mod:`._postgres`):

* :meth:`Outbox.claim` leases the rows that are due to one sender for a while: only the
  oldest undelivered row of each account and endpoint is ever due (so an account's events
  arrive in order), and a leased row is not claimed again until its lease ends (so several
  senders on one store never send one event at the same time);
* :meth:`Outbox.finish` records an attempt: delivered, failed for good, or to be retried at
  a later time (see :mod:`.schedule`); a 410 answer disables the endpoint
  (:meth:`Outbox.disable`) until ``gateway webhooks retry`` re-enables it.

Rows name their endpoint by :func:`endpoint_id` (a hash of its URL), never by the URL: a
URL can carry a token (``https://hooks.zapier.com/hooks/catch/123/abc/``), and the config,
not the database, is where the URL and its secret live.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from gateway.credits.store import Store

__all__ = [
    "DELIVERY_COLUMNS",
    "Delivery",
    "Finish",
    "Outbox",
    "OutboxRow",
    "Status",
    "endpoint_id",
    "open_outbox",
]

Status = Literal["pending", "delivered", "failed"]

#: The columns a :class:`Delivery` is read from, in its fields' order.
DELIVERY_COLUMNS = (
    "id, event_id, account, endpoint, type, body, created_us, status, attempts, "
    "next_attempt_us, deadline_us, lease_until_us, last_status, last_error, done_us"
)


def endpoint_id(url: str) -> str:
    """How the outbox names an endpoint: ``ep_`` and 16 hex digits of the URL's SHA-256."""
    return "ep_" + hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One event for one endpoint, as a store transaction writes it."""

    #: The event's id (``msg_...``), sent as ``webhook-id``; the same for every endpoint.
    event_id: str
    account: str
    endpoint: str
    type: str
    #: The JSON body exactly as it is signed and sent.
    body: str
    created_us: int
    #: Retries stop after this instant (created + a day).
    deadline_us: int
    #: Makes the event once-only per account and endpoint (``limit.reached:daily:2026-01-15``):
    #: a row with a key already in the outbox is not written again. None: no such limit.
    once_key: str | None = None

    def values(self) -> tuple[Any, ...]:
        """The row's values in the order the stores insert them."""
        return (
            self.event_id,
            self.account,
            self.endpoint,
            self.type,
            self.body,
            self.created_us,
            self.once_key,
            self.created_us,  # next_attempt_us: due at once
            self.deadline_us,
        )


@dataclass(frozen=True, slots=True)
class Delivery:
    """An outbox row as read back: one event, one endpoint, and how its delivery stands."""

    id: int
    event_id: str
    account: str
    endpoint: str
    type: str
    body: str
    created_us: int
    status: Status
    attempts: int
    next_attempt_us: int
    deadline_us: int
    #: While a sender holds it: until when (microseconds since the epoch).
    lease_until_us: int | None
    #: The last attempt's HTTP status (None: no answer, or not tried yet).
    last_status: int | None
    #: The last attempt's error (a status line or a connection error), if it failed.
    last_error: str | None
    #: When it was delivered or given up.
    done_us: int | None

    @property
    def created_at(self) -> datetime:
        from gateway.credits.money import from_micros

        return from_micros(self.created_us)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly, with instants as ISO-8601 strings."""
        from gateway.credits.money import from_micros

        def when(us: int | None) -> str | None:
            return None if us is None else from_micros(us).isoformat()

        return {
            "id": self.id,
            "event_id": self.event_id,
            "account": self.account,
            "endpoint": self.endpoint,
            "type": self.type,
            "created_at": when(self.created_us),
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": when(self.next_attempt_us) if self.status == "pending" else None,
            "deadline": when(self.deadline_us),
            "last_status": self.last_status,
            "last_error": self.last_error,
            "done_at": when(self.done_us),
        }


def delivery_from_row(row: Sequence[Any]) -> Delivery:
    """A row of :data:`DELIVERY_COLUMNS`."""
    return Delivery(*row)


@dataclass(frozen=True, slots=True)
class Finish:
    """What one delivery attempt came to (see :func:`.schedule.judge`)."""

    status: Status
    #: When a pending row is due again.
    next_attempt_us: int
    last_status: int | None
    last_error: str | None
    #: When a delivered or failed row was done (None while pending).
    done_us: int | None
    #: The endpoint answered 410 Gone: disable it (the row stays pending).
    disable: bool = False


class Outbox(Protocol):
    """The outbox of one credit store: what senders, the CLI and the dashboard use."""

    def claim(
        self,
        *,
        endpoints: Sequence[str],
        owner: str,
        now_us: int,
        lease_us: int,
        limit: int,
        only: int | None = None,
    ) -> list[Delivery]:
        """Lease to ``owner`` until ``now_us + lease_us`` up to ``limit`` rows that are due:
        each the oldest pending row of its account and endpoint, its next attempt at or
        before ``now_us``, not leased (or its lease over), its endpoint one of
        ``endpoints`` and not disabled (and its id ``only``, when given). Oldest first."""
        ...

    def finish(self, delivery: Delivery, *, owner: str, result: Finish, now_us: int) -> bool:
        """Record an attempt of a row ``owner`` claimed, and end its lease. A failure is
        recorded only while ``owner`` still holds the lease (else another sender has the row
        now); a delivery is recorded whoever holds it. False when nothing was recorded."""
        ...

    def disable(self, endpoint: str, *, now_us: int, reason: str) -> None:
        """Stop sending to ``endpoint`` (it answered 410 Gone); its rows stay pending."""
        ...

    def disabled(self) -> dict[str, tuple[int, str]]:
        """Disabled endpoints: id -> (since when, why)."""
        ...

    def deliveries(
        self, *, status: Status | None = None, account: str | None = None, limit: int = 50
    ) -> list[Delivery]:
        """Rows newest first, optionally of one status or account."""
        ...

    def get(self, delivery_id: int) -> Delivery | None: ...

    def retry(self, delivery_id: int, *, now_us: int, deadline_us: int) -> Delivery | None:
        """Send a row again now (whatever its status), retrying until ``deadline_us``, and
        re-enable its endpoint. None when there is no such row."""
        ...

    def prune(self, *, before_us: int) -> int:
        """Delete delivered and failed rows done before ``before_us``; how many were."""
        ...


def open_outbox(store: Store) -> Outbox:
    """The outbox in ``store`` (SQLite or PostgreSQL)."""
    from gateway.credits.sqlite_store import SQLiteStore

    if isinstance(store, SQLiteStore):
        from gateway.webhooks._sqlite import SQLiteOutbox

        return SQLiteOutbox(store)
    # A PostgreSQL store exists only once its module (and psycopg) was imported.
    postgres = sys.modules.get("gateway.credits.postgres_store")
    if postgres is not None and isinstance(store, postgres.PostgresStore):
        from gateway.webhooks._postgres import PostgresOutbox

        return PostgresOutbox(store)
    raise TypeError(f"{store!r} has no webhook outbox (it is not an SQLite or PostgreSQL store)")
