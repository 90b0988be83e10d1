"""The webhook outbox in a PostgreSQL credit store: its migration, its insert, its queries.

The insert is a part of the one statement that writes a ledger transaction
(``postgres_store._FLUSH_WITH_EVENTS``): :data:`INSERT_CTE`. Every other operation is one
statement on a pooled connection (:meth:`~gateway.credits.postgres_store.PostgresStore.run`,
which reconnects on transient failures). A claim leases the due rows in one ``UPDATE``: rows
another sender is claiming at the same moment are skipped (``FOR UPDATE SKIP LOCKED``), and
one whose lease another sender took since this statement's snapshot is left out by the
re-check PostgreSQL makes of the ``WHERE`` on the row's newest version.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gateway.webhooks.outbox import (
    DELIVERY_COLUMNS,
    Delivery,
    Finish,
    Status,
    delivery_from_row,
)

if TYPE_CHECKING:
    import psycopg

    from gateway.credits.postgres_store import PostgresStore

    Connection = psycopg.Connection[Any]

__all__ = ["INSERT_CTE", "PostgresOutbox", "m005_webhook_outbox"]

#: The outbox rows of a ledger transaction, as one more CTE of its write (``%(events)s`` is
#: a JSON array of :meth:`~gateway.webhooks.outbox.OutboxRow.values` arrays).
INSERT_CTE = """new_events AS (
    INSERT INTO webhook_outbox (event_id, account, endpoint, type, body, created_us, once_key,
                                next_attempt_us, deadline_us)
    SELECT w->>0, w->>1, w->>2, w->>3, w->>4, (w->>5)::bigint, w->>6, (w->>7)::bigint,
           (w->>8)::bigint
    FROM json_array_elements(%(events)s::json) WITH ORDINALITY AS t(w, n)
    ORDER BY n
    ON CONFLICT (account, endpoint, once_key) DO NOTHING
)"""

_COLUMNS_OF_O = ", ".join(f"o.{name.strip()}" for name in DELIVERY_COLUMNS.split(","))

_CLAIM = f"""
WITH heads AS (
    SELECT DISTINCT ON (account, endpoint) id, next_attempt_us, lease_until_us
    FROM webhook_outbox
    WHERE status = 'pending' AND endpoint = ANY(%(endpoints)s)
      AND endpoint NOT IN (SELECT endpoint FROM webhook_endpoints)
    ORDER BY account, endpoint, id
), due AS (
    SELECT id FROM heads
    WHERE next_attempt_us <= %(now)s AND (lease_until_us IS NULL OR lease_until_us <= %(now)s)
      AND (%(only)s::bigint IS NULL OR id = %(only)s::bigint)
    ORDER BY id
    LIMIT %(limit)s
), locked AS (
    SELECT id FROM webhook_outbox WHERE id IN (SELECT id FROM due) FOR UPDATE SKIP LOCKED
)
UPDATE webhook_outbox o SET lease_owner = %(owner)s, lease_until_us = %(until)s
FROM locked
WHERE o.id = locked.id AND o.status = 'pending'
  AND (o.lease_until_us IS NULL OR o.lease_until_us <= %(now)s)
RETURNING {_COLUMNS_OF_O}
"""

_FINISH = """
WITH done AS (
    UPDATE webhook_outbox SET status = %(status)s, attempts = attempts + 1,
        next_attempt_us = %(next)s, last_status = %(last_status)s, last_error = %(last_error)s,
        done_us = %(done)s, lease_owner = NULL, lease_until_us = NULL
    WHERE id = %(id)s AND status = 'pending'
      AND (lease_owner = %(owner)s OR %(status)s = 'delivered')
    RETURNING endpoint
), gone AS (
    INSERT INTO webhook_endpoints (endpoint, disabled_us, reason)
    SELECT endpoint, %(now)s, %(reason)s FROM done WHERE %(disable)s
    ON CONFLICT (endpoint) DO NOTHING
)
SELECT count(*) FROM done
"""

_RETRY = f"""
WITH again AS (
    UPDATE webhook_outbox SET status = 'pending', next_attempt_us = %(now)s,
        deadline_us = %(deadline)s, done_us = NULL,
        lease_owner = CASE WHEN status = 'pending' THEN lease_owner END,
        lease_until_us = CASE WHEN status = 'pending' THEN lease_until_us END
    WHERE id = %(id)s
    RETURNING *
), enabled AS (
    DELETE FROM webhook_endpoints WHERE endpoint IN (SELECT endpoint FROM again)
)
SELECT {DELIVERY_COLUMNS} FROM again
"""


def m005_webhook_outbox(conn: Connection) -> None:
    # One row per event and endpoint, written in the transaction of the ledger entries that
    # caused the event; senders lease rows (lease_owner, lease_until_us) to deliver them.
    conn.execute(
        """CREATE TABLE webhook_outbox (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            event_id TEXT NOT NULL,
            account TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            type TEXT NOT NULL,
            body TEXT NOT NULL,
            created_us BIGINT NOT NULL,
            once_key TEXT,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_us BIGINT NOT NULL,
            deadline_us BIGINT NOT NULL,
            lease_owner TEXT,
            lease_until_us BIGINT,
            last_status INTEGER,
            last_error TEXT,
            done_us BIGINT
        )"""
    )
    # NULL keys are distinct: only once-only events are limited to one row.
    conn.execute(
        "CREATE UNIQUE INDEX webhook_outbox_once ON webhook_outbox (account, endpoint, once_key)"
    )
    conn.execute(
        "CREATE INDEX webhook_outbox_pending ON webhook_outbox (endpoint, account, id) "
        "WHERE status = 'pending'"
    )
    # Endpoints that answered 410 Gone: nothing is sent to them until re-enabled.
    conn.execute(
        """CREATE TABLE webhook_endpoints (
            endpoint TEXT PRIMARY KEY,
            disabled_us BIGINT NOT NULL,
            reason TEXT NOT NULL
        )"""
    )


class PostgresOutbox:
    """The :class:`~gateway.webhooks.outbox.Outbox` of a PostgreSQL store."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    def __repr__(self) -> str:
        return f"PostgresOutbox({self._store.url!r})"

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
        if not endpoints or limit <= 0:
            return []
        params = {
            "endpoints": list(endpoints),
            "owner": owner,
            "now": now_us,
            "until": now_us + lease_us,
            "limit": limit,
            "only": only,
        }
        rows = self._store.run(
            lambda conn: conn.execute(_CLAIM, params).fetchall(),
            what="claiming webhook deliveries",
        )
        return sorted((delivery_from_row(row) for row in rows), key=lambda d: d.id)

    def finish(self, delivery: Delivery, *, owner: str, result: Finish, now_us: int) -> bool:
        params = {
            "id": delivery.id,
            "owner": owner,
            "status": result.status,
            "next": result.next_attempt_us,
            "last_status": result.last_status,
            "last_error": result.last_error,
            "done": result.done_us,
            "now": now_us,
            "disable": result.disable,
            "reason": result.last_error or "410 Gone",
        }
        row = self._store.run(
            lambda conn: conn.execute(_FINISH, params).fetchone(),
            what="recording a webhook delivery",
        )
        return bool(row and row[0])

    def disable(self, endpoint: str, *, now_us: int, reason: str) -> None:
        self._store.run(
            lambda conn: conn.execute(
                "INSERT INTO webhook_endpoints (endpoint, disabled_us, reason) "
                "VALUES (%s, %s, %s) ON CONFLICT (endpoint) DO NOTHING",
                (endpoint, now_us, reason),
            ),
            what="disabling a webhook endpoint",
        )

    def disabled(self) -> dict[str, tuple[int, str]]:
        rows = self._store.run(
            lambda conn: conn.execute(
                "SELECT endpoint, disabled_us, reason FROM webhook_endpoints"
            ).fetchall(),
            what="reading the webhook endpoints",
        )
        return {row[0]: (int(row[1]), str(row[2])) for row in rows}

    def deliveries(
        self, *, status: Status | None = None, account: str | None = None, limit: int = 50
    ) -> list[Delivery]:
        sql = f"SELECT {DELIVERY_COLUMNS} FROM webhook_outbox WHERE true"
        args: list[Any] = []
        if status is not None:
            sql += " AND status = %s"
            args.append(status)
        if account is not None:
            sql += " AND account = %s"
            args.append(account)
        sql += " ORDER BY id DESC LIMIT %s"
        args.append(limit)
        rows = self._store.run(
            lambda conn: conn.execute(sql, args).fetchall(), what="reading webhook deliveries"
        )
        return [delivery_from_row(row) for row in rows]

    def get(self, delivery_id: int) -> Delivery | None:
        row = self._store.run(
            lambda conn: conn.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM webhook_outbox WHERE id = %s", (delivery_id,)
            ).fetchone(),
            what="reading a webhook delivery",
        )
        return None if row is None else delivery_from_row(row)

    def retry(self, delivery_id: int, *, now_us: int, deadline_us: int) -> Delivery | None:
        params = {"id": delivery_id, "now": now_us, "deadline": deadline_us}
        row = self._store.run(
            lambda conn: conn.execute(_RETRY, params).fetchone(),
            what="retrying a webhook delivery",
        )
        return None if row is None else delivery_from_row(row)

    def prune(self, *, before_us: int) -> int:
        return self._store.run(
            lambda conn: int(
                conn.execute(
                    "DELETE FROM webhook_outbox WHERE status IN ('delivered', 'failed') "
                    "AND done_us < %s",
                    (before_us,),
                ).rowcount
            ),
            what="pruning webhook deliveries",
        )
