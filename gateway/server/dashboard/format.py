"""How the dashboard writes numbers and times.

Money is exact (never rounded away): a column of amounts, with its total, is written with one
number of decimal places, as many as its most precise amount needs (at least two), so the
figures line up and add up as shown, and a total equals the ledger's to the last digit.
Times are in the account's time zone, whose name the page shows beside them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

__all__ = ["MoneyColumn", "count", "local_time", "places", "usd"]


def places(amount: Decimal) -> int:
    """Decimal places ``amount`` needs to be shown exactly (at least two)."""
    exponent = amount.normalize().as_tuple().exponent
    return max(2, -exponent) if isinstance(exponent, int) else 2


def usd(amount: Decimal | None, decimals: int | None = None) -> str:
    """``$5.00``, ``-$0.000125``, ``$1,234.50``: exact, with ``decimals`` places (at least
    as many as it needs)."""
    if amount is None:
        return "–"
    shown = max(places(amount), decimals or 2)
    text = f"{abs(amount):,.{shown}f}"
    return f"-${text}" if amount < 0 else f"${text}"


class MoneyColumn:
    """Amounts read together (a table's column and its total): all with the same places."""

    def __init__(self, amounts: Iterable[Decimal | None]) -> None:
        self.decimals = max((places(a) for a in amounts if a is not None), default=2)

    def __call__(self, amount: Decimal | None) -> str:
        return usd(amount, self.decimals)


def count(value: int) -> str:
    return f"{value:,}"


def local_time(moment: datetime | None, zone: ZoneInfo, *, seconds: bool = True) -> str:
    """``2026-01-15 13:04:05`` in ``zone`` (the page labels the zone)."""
    if moment is None:
        return "–"
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
