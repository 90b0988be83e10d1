"""The payment processors and the child process of the purchase race tests (importable by a
spawned process, so they live in a module of their own).

Both processors answer a repeated idempotency key with its first result, whatever amount the
repeat asks, as real processors do, and both can make the first charge slow: once it is
recorded it sets ``charging`` and answers only when ``release`` is set. A test decides, with
that gate, what the other purchases do while the first one is being paid.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from decimal import Decimal
from typing import Any

from gateway.config import CreditsConfig
from gateway.credits import CreditService, InMemoryPaymentMethod, PaymentMethod, PriceBook
from gateway.credits.payment import PaymentResult
from gateway.credits.store import open_store
from gateway.errors import IdempotencyConflict
from gateway.testing.clock import ManualClock

from ._workers import START

#: How long a gate waits before the test is declared hung (never reached when it passes).
GATE_TIMEOUT_S = 60


class SlowFirstCharge(InMemoryPaymentMethod):
    """In memory, for threads: the first charge is slow."""

    def __init__(self) -> None:
        super().__init__()
        self.charging = threading.Event()
        self.release = threading.Event()
        self._first = threading.Lock()

    def charge(self, amount: Decimal, idempotency_key: str) -> PaymentResult:
        with self._first:
            result = super().charge(amount, idempotency_key)
            first = not self.charging.is_set()
            self.charging.set()
        if first and not self.release.wait(GATE_TIMEOUT_S):
            raise AssertionError("the first charge was never released")
        return result


class FilePaymentMethod:
    """One SQLite file of charges that every process shares; ``charging`` and ``release``
    are multiprocessing Events (or None: no gate)."""

    def __init__(self, path: str, charging: Any = None, release: Any = None) -> None:
        self.path = path
        self.charging = charging
        self.release = release

    @staticmethod
    def create(path: str) -> None:
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.execute(
                "CREATE TABLE charges (key TEXT PRIMARY KEY, amount TEXT NOT NULL, "
                "reference TEXT NOT NULL)"
            )

    @staticmethod
    def charges(path: str) -> list[tuple[str, Decimal]]:
        """Every charge: (idempotency key, amount), in order."""
        with closing(sqlite3.connect(path)) as conn:
            rows = conn.execute("SELECT key, amount FROM charges ORDER BY rowid").fetchall()
        return [(key, Decimal(amount)) for key, amount in rows]

    def charge(self, amount: Decimal, idempotency_key: str) -> PaymentResult:
        with closing(sqlite3.connect(self.path, timeout=GATE_TIMEOUT_S)) as conn:
            conn.isolation_level = None
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(
                "SELECT amount, reference FROM charges WHERE key = ?", (idempotency_key,)
            ).fetchone()
            if row is None:
                (count,) = conn.execute("SELECT count(*) FROM charges").fetchone()
                row = (str(amount), f"file-{count + 1}")
                conn.execute("INSERT INTO charges VALUES (?, ?, ?)", (idempotency_key, *row))
                first = True
            else:
                first = False
            conn.execute("COMMIT")
        if first and self.charging is not None:
            self.charging.set()
            if not self.release.wait(GATE_TIMEOUT_S):
                raise AssertionError("the first charge was never released")
        return PaymentResult.approved(row[1], Decimal(row[0]))


def make_service(url: str, payment_method: PaymentMethod) -> CreditService:
    return CreditService(
        CreditsConfig(store=url),
        PriceBook.from_config({}),
        clock=ManualClock(START),
        payment_method=payment_method,
        store=open_store(url),
    )


def purchase(service: CreditService, amount: Decimal, key: str) -> tuple[str, str]:
    """One purchase, as ``("ok", entry id)`` or ``("conflict", message)``."""
    try:
        return "ok", str(service.account().purchase(amount, idempotency_key=key).id)
    except IdempotencyConflict as exc:
        return "conflict", str(exc)


def purchase_in_process(
    url: str,
    processor: str,
    charging: Any,
    release: Any,
    amount: str,
    key: str,
    barrier: Any,
    out: Any,
) -> None:
    """A child process: one purchase, started with the others at ``barrier`` (if any), its
    outcome put on ``out`` as ``(amount, outcome, detail)``."""
    service = make_service(url, FilePaymentMethod(processor, charging, release))
    try:
        if barrier is not None:
            barrier.wait()
        out.put((amount, *purchase(service, Decimal(amount), key)))
    finally:
        service.close()
