"""Usage reports, monthly statements, and CSV / JSON export. Pure functions over rows.

Usage rows are sums of per-request rows (:class:`~.store.RequestRow`); each request row's
cost is the exact integer of nano-dollars its settlement wrote to the ledger, so the rows of
any grouping add up to the ledger's usage entries to the nano-dollar.

``group_by`` keys: ``model`` (``provider/model``, e.g. ``openai/gpt-4o``), ``provider``,
``route``, ``account``, ``status``, ``operation`` (``chat``, ``embeddings``, ``images`` or
``batch``), ``day`` (calendar day in the configured time zone), ``month``, and ``tag:<name>``
(the value of one tag; None when a request has no such tag).

CSV is written for spreadsheets, so text that one would run as a formula (a tag value such
as ``=1+1`` or ``@SUM(A1)``: any cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return, as OWASP's "CSV injection" advice lists them) is prefixed with ``'``; a cell
that is a plain decimal number (money such as ``-1.50``) is a number, never a formula, and
is written as it is. NUL characters, which some readers stop at, become U+FFFD.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from gateway.credits import ledger
from gateway.credits.ledger import Calendar, LedgerEntry
from gateway.credits.money import from_micros, from_nanos, plain_decimal
from gateway.credits.store import RequestRow
from gateway.errors import InvalidCreditsInput

__all__ = [
    "GROUP_KEYS",
    "Statement",
    "UsageRow",
    "build_statement",
    "filter_by_tags",
    "group_usage",
    "to_csv",
    "to_json",
    "total_cost",
]


@dataclass(frozen=True, slots=True)
class UsageRow:
    """The total of the requests that share one value of each ``group_by`` key."""

    #: The grouping, e.g. ``{"model": "openai/gpt-4o"}`` or ``{"day": "2026-01-15", ...}``.
    group: dict[str, str | None]
    requests: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_nanos: int

    @property
    def cost(self) -> Decimal:
        """USD charged for these requests."""
        return from_nanos(self.cost_nanos)

    def __getitem__(self, key: str) -> str | None:
        """``row["model"]``: the value of one grouping key."""
        return self.group[key]

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.group,
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost": plain_decimal(self.cost),
        }


def _key_functions(calendar: Calendar) -> dict[str, Callable[[RequestRow], str | None]]:
    return {
        "model": lambda r: f"{r.provider}/{r.model}",
        "provider": lambda r: r.provider,
        "route": lambda r: r.route,
        "account": lambda r: r.account,
        "status": lambda r: r.status,
        "operation": lambda r: r.operation,
        "day": lambda r: calendar.day_key(r.at_us),
        "month": lambda r: calendar.month_key(r.at_us),
    }


GROUP_KEYS = (
    "model",
    "provider",
    "route",
    "account",
    "status",
    "operation",
    "day",
    "month",
    "tag:<name>",
)


def _grouping(
    group_by: str | Sequence[str], calendar: Calendar
) -> list[tuple[str, Callable[[RequestRow], str | None]]]:
    names = [group_by] if isinstance(group_by, str) else list(group_by)
    if not names:
        raise InvalidCreditsInput("group_by needs at least one key")
    known = _key_functions(calendar)
    out: list[tuple[str, Callable[[RequestRow], str | None]]] = []
    for name in names:
        if not isinstance(name, str):
            raise InvalidCreditsInput(f"group_by keys are strings, not {name!r}")
        if name.startswith("tag:") and len(name) > 4:
            out.append((name, _tag_value(name[4:])))
        elif name in known:
            out.append((name, known[name]))
        else:
            raise InvalidCreditsInput(
                f"cannot group usage by '{name}'; use one or more of {', '.join(GROUP_KEYS)}"
            )
    return out


def _tag_value(tag: str) -> Callable[[RequestRow], str | None]:
    return lambda r: r.tags.get(tag)


def filter_by_tags(rows: Iterable[RequestRow], tags: Mapping[str, str] | None) -> list[RequestRow]:
    """The rows carrying every one of ``tags`` (all rows when None or empty)."""
    if not tags:
        return list(rows)
    wanted = dict(tags)
    return [r for r in rows if all(r.tags.get(k) == v for k, v in wanted.items())]


def group_usage(
    rows: Iterable[RequestRow], group_by: str | Sequence[str], calendar: Calendar
) -> list[UsageRow]:
    """Sum request rows per group, sorted by the group's values (None last)."""
    keys = _grouping(group_by, calendar)
    totals: dict[tuple[str | None, ...], list[int]] = {}
    for r in rows:
        group = tuple(fn(r) for _, fn in keys)
        t = totals.setdefault(group, [0] * 7)
        t[0] += 1
        t[1] += r.input_tokens
        t[2] += r.output_tokens
        t[3] += r.cached_input_tokens
        t[4] += r.cache_write_tokens
        t[5] += r.reasoning_tokens
        t[6] += r.cost_nanos

    def order(item: tuple[tuple[str | None, ...], list[int]]) -> tuple[tuple[bool, str], ...]:
        return tuple((value is None, value or "") for value in item[0])

    return [
        UsageRow(
            group={name: value for (name, _), value in zip(keys, group, strict=True)},
            requests=t[0],
            input_tokens=t[1],
            output_tokens=t[2],
            cached_input_tokens=t[3],
            cache_write_tokens=t[4],
            reasoning_tokens=t[5],
            cost_nanos=t[6],
        )
        for group, t in sorted(totals.items(), key=order)
    ]


class _HasCost(Protocol):
    @property
    def cost_nanos(self) -> int: ...


def total_cost(rows: Iterable[_HasCost]) -> Decimal:
    """The exact sum of the rows' costs, USD."""
    return from_nanos(sum(r.cost_nanos for r in rows))


# ---------------------------------------------------------------------------------------------
# Statements


@dataclass(frozen=True, slots=True)
class Statement:
    """One calendar month of one account, for pay-as-you-go billing (or a receipt).

    ``opening_balance + purchases + grants - usage - expired == closing_balance``;
    ``amount_due`` is what the account owes at the end of the month (its negative balance).
    """

    account: str
    month: str
    timezone: str
    start: datetime
    end: datetime
    opening_balance: Decimal
    #: Purchases and auto-recharges.
    purchases: Decimal
    grants: Decimal
    usage: Decimal
    expired: Decimal
    closing_balance: Decimal
    amount_due: Decimal
    requests: int
    #: Usage by model for the month.
    lines: list[UsageRow] = field(default_factory=list)
    #: Auto-recharges declined or skipped at the monthly limit during the month.
    recharge_problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "month": self.month,
            "timezone": self.timezone,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "opening_balance": plain_decimal(self.opening_balance),
            "purchases": plain_decimal(self.purchases),
            "grants": plain_decimal(self.grants),
            "usage": plain_decimal(self.usage),
            "expired": plain_decimal(self.expired),
            "closing_balance": plain_decimal(self.closing_balance),
            "amount_due": plain_decimal(self.amount_due),
            "requests": self.requests,
            "lines": [line.as_dict() for line in self.lines],
            "recharge_problems": list(self.recharge_problems),
        }


def month_bounds(month: str, calendar: Calendar) -> tuple[datetime, datetime]:
    """The first instant of ``YYYY-MM`` and of the next month, in the calendar's zone."""
    try:
        year_text, month_text = month.split("-")
        year, number = int(year_text), int(month_text)
        start = calendar.month_start(year, number)
    except ValueError:
        raise InvalidCreditsInput(
            f"'{month}' is not a month; write it as YYYY-MM, e.g. 2026-01"
        ) from None
    end = calendar.month_start(year + (number == 12), number % 12 + 1)
    return start, end


def build_statement(
    account: str,
    month: str,
    calendar: Calendar,
    entries: Sequence[LedgerEntry],
    requests: Sequence[RequestRow],
) -> Statement:
    """The statement of ``month`` from all of an account's entries and that month's requests."""
    from gateway.credits.money import to_micros

    start, end = month_bounds(month, calendar)
    start_us, end_us = to_micros(start), to_micros(end)
    opening = sum(e.amount_nanos for e in entries if e.at_us < start_us)
    in_month = [e for e in entries if start_us <= e.at_us < end_us]

    def total(*kinds: str) -> int:
        return sum(e.amount_nanos for e in in_month if e.kind in kinds)

    purchases = total(ledger.PURCHASE, ledger.AUTO_RECHARGE)
    grants = total(ledger.GRANT)
    usage = -total(ledger.USAGE)
    expired = -total(ledger.EXPIRY)
    closing = opening + purchases + grants - usage - expired
    assert closing == opening + sum(e.amount_nanos for e in in_month)  # debt payments net to 0
    month_requests = [r for r in requests if start_us <= r.at_us < end_us]
    problems = [
        f"{from_micros(e.at_us).isoformat()}: {e.kind}: {e.note or ''}".rstrip(": ")
        for e in in_month
        if e.kind in (ledger.RECHARGE_DECLINED, ledger.RECHARGE_SKIPPED)
    ]
    return Statement(
        account=account,
        month=month,
        timezone=calendar.tz,
        start=start,
        end=end,
        opening_balance=from_nanos(opening),
        purchases=from_nanos(purchases),
        grants=from_nanos(grants),
        usage=from_nanos(usage),
        expired=from_nanos(expired),
        closing_balance=from_nanos(closing),
        amount_due=from_nanos(max(0, -closing)),
        requests=len(month_requests),
        lines=group_usage(month_requests, "model", calendar),
        recharge_problems=problems,
    )


# ---------------------------------------------------------------------------------------------
# Export


class _Exportable(Protocol):
    def as_dict(self) -> dict[str, Any]: ...


def to_json(rows: Iterable[_Exportable], path: str | os.PathLike[str] | None = None) -> str:
    """Rows (usage, request, ledger or statement) as a JSON array; money as decimal strings
    so that no consumer parses it into a float by accident. Also written to ``path``."""
    text = json.dumps([row.as_dict() for row in rows], indent=2, ensure_ascii=False)
    if path is not None:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return text


def to_csv(rows: Iterable[_Exportable], path: str | os.PathLike[str] | None = None) -> str:
    """Rows as CSV with a header; nested values (tags, meta) as JSON; text that a spreadsheet
    would run as a formula neutralised (see the module's docstring). Also written to
    ``path``."""
    dicts = [row.as_dict() for row in rows]
    lines: list[str] = []
    if dicts:
        columns: list[str] = []
        for d in dicts:
            columns += [k for k in d if k not in columns]
        buffer = io.StringIO()
        # Both line-break characters in the terminator make the writer quote a cell holding
        # either (with "\n" alone, a lone "\r" would end the row in a spreadsheet); each row
        # then ends in "\n" as before.
        writer = csv.writer(buffer, lineterminator="\r\n")
        table: list[list[Any]] = [list(columns), *([d.get(c) for c in columns] for d in dicts)]
        for cells in table:
            writer.writerow([_csv_cell(cell) for cell in cells])
            lines.append(buffer.getvalue()[:-2] + "\n")
            buffer.seek(0)
            buffer.truncate()
    text = "".join(lines)
    if path is not None:
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    return text


#: How a cell a spreadsheet reads as a formula starts (OWASP, "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: A cell a spreadsheet reads as a number (so not a formula), e.g. the money ``-1.50``.
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def _csv_cell(value: Any) -> Any:
    """One value as a safe CSV cell: JSON for nested values, ``'`` before text that would
    start a formula, U+FFFD for NUL; numbers and None unchanged."""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)  # starts with { or [; NUL as \u0000
    if not isinstance(value, str):
        return value
    text = value.replace("\x00", "\ufffd")
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text
