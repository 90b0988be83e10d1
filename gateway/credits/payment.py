"""How credit is paid for: the :class:`PaymentMethod` protocol and a test double.

The gateway never talks to a card network itself. Give :class:`~.service.CreditService`
(or the Gateway) an object with a ``charge(amount, idempotency_key)`` method, e.g. a thin
wrapper around Stripe's PaymentIntents, and it is used for auto-recharge and for
``purchase()``. ``charge`` must be idempotent on the key: the gateway may repeat a charge
with the same key after a crash (or two callers may race with one purchase's key), and
expects no second payment, but the first charge's result again. Report what was charged in
``PaymentResult.amount``: the ledger credits exactly that (see ``CreditAccount.purchase``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

from gateway.credits.money import to_nanos

__all__ = ["InMemoryPaymentMethod", "PaymentMethod", "PaymentResult"]


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """What a charge came to: ``ok``, or declined with a ``reason``."""

    ok: bool
    reason: str | None = None
    #: The payment processor's id for the payment (recorded in the ledger entry's meta).
    reference: str | None = None
    #: USD the processor charged (for a repeated key: what the first charge took). The
    #: ledger credits this; None means exactly the amount asked.
    amount: Decimal | None = None

    @classmethod
    def approved(cls, reference: str | None = None, amount: Decimal | None = None) -> PaymentResult:
        return cls(ok=True, reference=reference, amount=amount)

    @classmethod
    def declined(cls, reason: str) -> PaymentResult:
        return cls(ok=False, reason=reason)


def charged_nanos(result: PaymentResult, asked: int) -> int:
    """What an approved charge took, in nano-dollars: the processor's ``amount`` (for a
    repeated idempotency key, its first charge's), else the ``asked`` amount."""
    return asked if result.amount is None else to_nanos(result.amount)


@runtime_checkable
class PaymentMethod(Protocol):
    """Takes money for credit."""

    def charge(self, amount: Decimal, idempotency_key: str) -> PaymentResult:
        """Charge ``amount`` USD once per ``idempotency_key``. Return a result rather than
        raising for a decline; an exception is recorded as a decline."""
        ...


@dataclass(frozen=True, slots=True)
class Charge:
    amount: Decimal
    idempotency_key: str
    result: PaymentResult


class InMemoryPaymentMethod:
    """A payment method for tests and demos: approves everything unless told otherwise.

    ``charges`` lists every distinct charge (a repeated key returns the first result, with
    the first amount, whatever amount it asks, and is not listed twice).
    ``decline_next(n, reason)`` declines the next ``n`` charges; ``declining = "reason"``
    declines all until set back to None.
    """

    def __init__(self, *, declining: str | None = None) -> None:
        self.declining = declining
        self.charges: list[Charge] = []
        self._by_key: dict[str, PaymentResult] = {}
        self._decline_queue: list[str] = []
        self._lock = threading.Lock()

    def charge(self, amount: Decimal, idempotency_key: str) -> PaymentResult:
        with self._lock:
            previous = self._by_key.get(idempotency_key)
            if previous is not None:
                return previous
            if self._decline_queue:
                result = PaymentResult.declined(self._decline_queue.pop(0))
            elif self.declining is not None:
                result = PaymentResult.declined(self.declining)
            else:
                result = PaymentResult.approved(f"mem-{len(self.charges) + 1}", amount)
            self._by_key[idempotency_key] = result
            self.charges.append(Charge(amount, idempotency_key, result))
            return result

    def decline_next(self, times: int = 1, reason: str = "card declined") -> None:
        with self._lock:
            self._decline_queue.extend([reason] * times)

    @property
    def total_charged(self) -> Decimal:
        """The sum of approved charges."""
        with self._lock:
            return sum((c.amount for c in self.charges if c.result.ok), Decimal(0))

    def __repr__(self) -> str:
        return f"InMemoryPaymentMethod(charges={len(self.charges)})"
