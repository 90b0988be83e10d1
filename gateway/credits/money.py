"""Money and time as the ledger stores them: integers, never floats.

* Money is ``int`` nano-dollars (1e-9 USD) in storage and in the ledger's arithmetic, and
  :class:`~decimal.Decimal` dollars at the public API.
* A price computation is exact (a Decimal with as many places as it needs). It is rounded
  once, when the amount is written to the ledger, to whole nano-dollars with
  :data:`ROUNDING` (round half to even: unbiased, so rounding errors do not drift one way
  over many calls). Rounding is monotone, so a cost never rounds above its hold when the
  exact cost is at most the exact worst case.
* Instants are ``int`` microseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Any

from gateway.config import MAX_MONEY, _exact_amount, decimal_from_text
from gateway.errors import InvalidAmount

__all__ = [
    "MAX_AMOUNT",
    "NANOS_PER_USD",
    "ROUNDING",
    "decimal_from_text",
    "format_usd",
    "from_micros",
    "from_nanos",
    "parse_amount",
    "plain_decimal",
    "to_micros",
    "to_nanos",
]

NANOS_PER_USD = 1_000_000_000
#: The one rounding mode of the ledger, applied when an exact amount becomes nano-dollars.
ROUNDING = ROUND_HALF_EVEN
#: The largest single amount (and account balance) the ledger accepts: $1e9, which keeps
#: every stored integer and every per-account sum far inside SQLite's and PostgreSQL's int64.
#: The config refuses larger amounts at load (the same constant).
MAX_AMOUNT = MAX_MONEY
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
#: Wide enough that scaling any amount to nano-dollars is exact (the default has 28 digits).
_WIDE = Context(prec=60)
_NANOS = Decimal(NANOS_PER_USD)


def to_nanos(amount: Decimal) -> int:
    """Exact Decimal dollars -> whole nano-dollars, rounded once with :data:`ROUNDING`."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise InvalidAmount(f"{amount!r} is not a finite Decimal amount of USD")
    exact = _WIDE.multiply(amount, _NANOS)
    return int(exact.to_integral_value(rounding=ROUNDING, context=_WIDE))


def from_nanos(nanos: int) -> Decimal:
    """Nano-dollars -> Decimal dollars, exact, with 2 to 9 places (``6.00``, ``0.00475``)."""
    sign = "-" if nanos < 0 else ""
    whole, frac = divmod(abs(nanos), NANOS_PER_USD)
    return Decimal(f"{sign}{whole}.{f'{frac:09d}'.rstrip('0').ljust(2, '0')}")


def parse_amount(
    value: Any,
    *,
    what: str,
    allow_zero: bool = False,
    minimum: Decimal | None = None,
    maximum: Decimal | None = None,
) -> int:
    """Validate an amount given to the public API and return it in nano-dollars.

    Accepts ``Decimal``, ``int`` or a decimal string of ASCII digits (not ``"1_000"`` or
    ``"٥"``: :func:`decimal_from_text`); refuses floats, booleans, NaN and infinities,
    negatives, zero (unless ``allow_zero``), more than 9 decimal places and anything at or
    above :data:`MAX_AMOUNT` (or above ``maximum``). Raises
    :class:`~gateway.errors.InvalidAmount`, naming the limit that was passed.
    """
    try:
        amount = _exact_amount(value)
    except ValueError as exc:
        raise InvalidAmount(f"{what}: {exc}") from None
    except (InvalidOperation, TypeError):  # pragma: no cover - _exact_amount handles these
        raise InvalidAmount(f"{what}: {value!r} is not an amount of money") from None
    if amount == 0 and not allow_zero:
        raise InvalidAmount(f"{what}: must be more than zero")
    if amount >= MAX_AMOUNT:
        limit = (
            f"above the maximum of ${maximum}"
            if maximum is not None and maximum < MAX_AMOUNT
            else f"the limit is below ${MAX_AMOUNT:,}"
        )
        raise InvalidAmount(f"{what}: {amount} is absurdly large ({limit})")
    if minimum is not None and amount < minimum:
        raise InvalidAmount(f"{what}: ${amount} is below the minimum of ${minimum}")
    if maximum is not None and amount > maximum:
        raise InvalidAmount(f"{what}: ${amount} is above the maximum of ${maximum}")
    return to_nanos(amount)


def to_micros(when: datetime) -> int:
    """A timezone-aware datetime -> microseconds since the epoch (exact)."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{when!r} has no time zone; pass a timezone-aware datetime")
    return (when - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    """Microseconds since the epoch -> a UTC datetime (exact)."""
    return _EPOCH + timedelta(microseconds=micros)


def plain_decimal(amount: Decimal) -> str:
    """A Decimal as plain digits (never ``5E-9``), for exports."""
    return format(amount, "f")


def format_usd(nanos: int) -> str:
    """``$1.50``, ``-$0.000012``: at least two places, no trailing zeros beyond them."""
    sign = "-" if nanos < 0 else ""
    return f"{sign}${abs(from_nanos(nanos)):,f}"
