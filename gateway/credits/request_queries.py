"""Reads of the request rows that never load them all: one page of calls, and sums.

``Store.requests()`` returns every row of a window, which is right for an export and too slow
for a page that must answer in milliseconds over 100,000 calls (the dashboard). These are
the SQL both stores run instead, written once here; a :class:`Dialect` holds what differs
(the placeholder, the JSON functions, casts). Sums are integers added by the database, so
they equal what :func:`.reports.group_usage` adds up from the rows, to the nano-dollar.

* :func:`page_query`: the newest calls first, ``limit`` at a time, keyed on ``(at_us, id)``
  (keyset paging: a page costs the same however deep it is, and no row is skipped or shown
  twice when calls are written in between).
* :func:`window_totals_query`: totals per ``(window, provider, model, tags)`` for given
  ``[start, end)`` windows (the caller's calendar days: a day in the account's time zone is
  a window of UTC microseconds, so no database needs to know time zones). Sums by day, by
  model and by each tag are added up from these in Python; the groups are few (tags repeat).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.errors import InvalidCreditsInput

if TYPE_CHECKING:
    from gateway.credits.reports import UsageRow
    from gateway.credits.store import RequestRow

__all__ = [
    "SQLITE",
    "TOTALS",
    "Dialect",
    "RequestFilter",
    "RequestPage",
    "Totals",
    "UsageReport",
    "decode_cursor",
    "encode_cursor",
    "page_query",
    "totals",
    "window_totals_query",
]

#: Calls, input, output, cached input, cache write and reasoning tokens, cost (nano-USD).
Totals = tuple[int, int, int, int, int, int, int]


@dataclass(frozen=True, slots=True)
class RequestFilter:
    """Which settled calls a page or a sum covers; every field left None matches all."""

    #: ``since_us <= at_us < until_us`` (microseconds since the epoch, UTC).
    since_us: int | None = None
    until_us: int | None = None
    route: str | None = None
    provider: str | None = None
    #: The model as stored, without its provider (``gpt-4o``).
    model: str | None = None
    status: str | None = None
    #: ``(name, value)``: calls carrying this tag.
    tag: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class RequestPage:
    """One page of calls, newest first."""

    rows: list[RequestRow] = field(default_factory=list)
    #: Pass as ``before`` for the next (older) page; None on the last page.
    next: str | None = None


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Usage over a range of days, summed by the store in one pass over the calls."""

    #: The rows of ``usage(group_by=["day", "provider", "model"])``, in its order.
    daily: list[UsageRow] = field(default_factory=list)
    #: For each tag name the calls carry, the rows of ``usage(group_by="tag:<name>")``:
    #: by value, then the calls without the tag (None).
    tags: dict[str, list[UsageRow]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Dialect:
    """What the SQL of one store spells its own way."""

    #: The parameter placeholder.
    mark: str
    #: A condition on ``requests`` true when its tags hold ``name = value`` (two marks).
    tag_equals: str
    #: ``requests.tags`` as text (PostgreSQL cannot group by a ``json`` value).
    tags_text: str
    #: Appended to a window's placeholders in ``VALUES`` (PostgreSQL needs the type).
    int_cast: str = ""


SQLITE = Dialect(
    mark="?",
    tag_equals=(
        "EXISTS (SELECT 1 FROM json_each(requests.tags) AS tag WHERE tag.key = ? AND tag.value = ?)"
    ),
    tags_text="requests.tags",
)

#: The sums every totals query selects, in :class:`Totals` order.
TOTALS = (
    "COUNT(*), SUM(requests.input_tokens), SUM(requests.output_tokens), "
    "SUM(requests.cached_input_tokens), SUM(requests.cache_write_tokens), "
    "SUM(requests.reasoning_tokens), SUM(requests.cost)"
)


def totals(values: Sequence[Any]) -> Totals:
    """The seven sums of a row (PostgreSQL's SUM of bigints is a numeric: made int)."""
    a, b, c, d, e, f, g = (int(v or 0) for v in values)
    return (a, b, c, d, e, f, g)


_COLUMNS = {"route": "route", "provider": "provider", "model": "model", "status": "status"}


def _conditions(account: str, filters: RequestFilter, dialect: Dialect) -> tuple[str, list[Any]]:
    mark = dialect.mark
    sql = f"requests.account = {mark}"
    args: list[Any] = [account]
    if filters.since_us is not None:
        sql += f" AND requests.at_us >= {mark}"
        args.append(filters.since_us)
    if filters.until_us is not None:
        sql += f" AND requests.at_us < {mark}"
        args.append(filters.until_us)
    for field_name, column in _COLUMNS.items():
        value = getattr(filters, field_name)
        if value is not None:
            sql += f" AND requests.{column} = {mark}"
            args.append(value)
    if filters.tag is not None:
        sql += f" AND {dialect.tag_equals}"
        args += list(filters.tag)
    return sql, args


def encode_cursor(at_us: int, row_id: int) -> str:
    """The position after which the next (older) page starts."""
    return f"{at_us}.{row_id}"


def decode_cursor(cursor: str) -> tuple[int, int]:
    """``(at_us, id)`` of a cursor made by :func:`encode_cursor`."""
    at_text, dot, id_text = cursor.partition(".")
    if dot and at_text.isdigit() and id_text.isdigit() and len(cursor) <= 40:
        return int(at_text), int(id_text)
    raise InvalidCreditsInput(f"{cursor[:40]!r} is not a page cursor")


def page_query(
    columns: str,
    account: str,
    filters: RequestFilter,
    *,
    limit: int,
    before: tuple[int, int] | None,
    dialect: Dialect,
) -> tuple[str, list[Any]]:
    """``SELECT id, <columns>``: the newest ``limit`` calls older than ``before``."""
    where, args = _conditions(account, filters, dialect)
    mark = dialect.mark
    if before is not None:
        where += (
            f" AND (requests.at_us < {mark} OR (requests.at_us = {mark} AND requests.id < {mark}))"
        )
        args += [before[0], before[0], before[1]]
    sql = (
        f"SELECT requests.id, {columns} FROM requests WHERE {where} "
        f"ORDER BY requests.at_us DESC, requests.id DESC LIMIT {mark}"
    )
    return sql, [*args, limit]


def window_totals_query(
    account: str,
    filters: RequestFilter,
    windows: Sequence[tuple[int, int]],
    *,
    dialect: Dialect,
) -> tuple[str, list[Any]]:
    """``(window index, provider, model, tags as JSON text, *TOTALS)`` per group with at
    least one call: one pass over the calls gives the sums by day, by model and by tag (a
    ``GROUP BY`` sorts every row it reads, so one grouping costs half of two)."""
    if not windows:
        raise ValueError("no windows")
    mark, cast = dialect.mark, dialect.int_cast
    values = ", ".join(f"({mark}{cast}, {mark}{cast}, {mark}{cast})" for _ in windows)
    where, args = _conditions(account, filters, dialect)
    window_args: list[Any] = []
    for n, (start, end) in enumerate(windows):
        window_args += [n, start, end]
    tags = dialect.tags_text
    sql = (
        f"WITH windows (n, lo, hi) AS (VALUES {values}) "
        f"SELECT windows.n, requests.provider, requests.model, {tags}, {TOTALS} "
        f"FROM windows JOIN requests "
        f"ON requests.at_us >= windows.lo AND requests.at_us < windows.hi "
        f"WHERE {where} GROUP BY windows.n, requests.provider, requests.model, {tags}"
    )
    return sql, [*window_args, *args]
