"""The usage chart: spend per day, stacked by provider or by model, as inline SVG.

Pure geometry from the store's sums (no JavaScript, no library, nothing fetched): the page
draws it with SVG attributes only, so a Content-Security-Policy without inline styles holds.
Bar heights are floats because they are pixels; every amount shown (a bar's title, the axis,
the table beside it) is the exact Decimal.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import TypeVar

from gateway.credits.money import from_nanos
from gateway.credits.reports import UsageRow

__all__ = ["COLORS", "Chart", "build_chart", "series_rows", "sums_by"]

_K = TypeVar("_K", bound=Hashable)

#: Series colours: distinct, and each at least 4.5:1 against the white background.
COLORS = (
    "#1d4ed8",
    "#c2410c",
    "#047857",
    "#7e22ce",
    "#b91c1c",
    "#0e7490",
    "#a16207",
    "#be185d",
    "#4d7c0f",
    "#475569",
)
#: Series shown by name; the rest are added up as "other".
_MOST_SERIES = len(COLORS) - 1
OTHER = "other"

WIDTH, HEIGHT = 720, 240
_LEFT, _BOTTOM, _TOP = 8, 22, 8


@dataclass(frozen=True, slots=True)
class Segment:
    x: float
    y: float
    width: float
    height: float
    color: str
    title: str


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    color: str
    cost: Decimal


@dataclass(slots=True)
class Chart:
    """What the template draws."""

    width: int = WIDTH
    height: int = HEIGHT
    segments: list[Segment] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    #: ``(x, text)`` of the day labels under the bars.
    labels: list[tuple[float, str]] = field(default_factory=list)
    #: The dearest day, the top of the scale.
    peak: Decimal = Decimal(0)
    #: What the chart shows, for screen readers.
    summary: str = ""


def sums_by(rows: Sequence[UsageRow], key: Callable[[UsageRow], _K]) -> dict[_K, list[int]]:
    """``rows`` added up per ``key``: each key's requests, token counts and cost, in
    :class:`UsageRow`'s field order (after its group)."""
    sums: dict[_K, list[int]] = {}
    for row in rows:
        t = sums.setdefault(key(row), [0] * 7)
        t[0] += row.requests
        t[1] += row.input_tokens
        t[2] += row.output_tokens
        t[3] += row.cached_input_tokens
        t[4] += row.cache_write_tokens
        t[5] += row.reasoning_tokens
        t[6] += row.cost_nanos
    return sums


def series_rows(daily: Sequence[UsageRow], by: str) -> list[UsageRow]:
    """The chart's rows: per day and per series (``by`` is provider or model), the most
    expensive series by name and the rest as "other", so they add up to ``daily``."""
    spend: dict[str, int] = {}
    for row in daily:
        name = row[by] or ""
        spend[name] = spend.get(name, 0) + row.cost_nanos
    named = sorted(spend, key=lambda n: (-spend[n], n))
    keep = set(named if len(named) <= _MOST_SERIES + 1 else named[:_MOST_SERIES])

    def day_and_series(row: UsageRow) -> tuple[str, str]:
        name = row[by] or ""
        return row["day"] or "", name if name in keep else OTHER

    sums = sums_by(daily, day_and_series)
    order = {name: n for n, name in enumerate([*named, OTHER])}
    return [
        UsageRow({"day": day, by: name}, *t)
        for (day, name), t in sorted(sums.items(), key=lambda i: (i[0][0], order[i[0][1]]))
    ]


def build_chart(rows: Sequence[UsageRow], days: Sequence[date], by: str, money: str) -> Chart:
    """Bars for ``days`` (every day of the range, empty ones too) from :func:`series_rows`;
    ``money`` formats the peak for the summary."""
    chart = Chart()
    totals: dict[str, int] = {}
    per_series: dict[str, int] = {}
    for row in rows:
        totals[row["day"] or ""] = totals.get(row["day"] or "", 0) + row.cost_nanos
        per_series[row[by] or ""] = per_series.get(row[by] or "", 0) + row.cost_nanos
    names = list(dict.fromkeys(row[by] or "" for row in sorted(rows, key=lambda r: -r.cost_nanos)))
    names.sort(key=lambda n: (n == OTHER, -per_series[n], n))
    colors = {name: COLORS[n % len(COLORS)] for n, name in enumerate(names)}
    colors[OTHER] = COLORS[-1]
    chart.series = [Series(n, colors[n], from_nanos(per_series[n])) for n in names]
    peak = max(totals.values(), default=0)
    chart.peak = from_nanos(peak)
    if not days:
        return chart
    plot_w = WIDTH - _LEFT * 2
    plot_h = HEIGHT - _BOTTOM - _TOP
    step = plot_w / len(days)
    bar = max(1.0, step * 0.7)
    index = {day.isoformat(): n for n, day in enumerate(days)}
    stacked: dict[str, float] = {}
    for row in rows:
        day = row["day"] or ""
        if day not in index or peak <= 0 or row.cost_nanos <= 0:
            continue
        height = plot_h * row.cost_nanos / peak
        base = stacked.get(day, 0.0)
        stacked[day] = base + height
        x = _LEFT + index[day] * step + (step - bar) / 2
        chart.segments.append(
            Segment(
                x=round(x, 2),
                y=round(_TOP + plot_h - base - height, 2),
                width=round(bar, 2),
                height=round(max(height, 0.5), 2),
                color=colors[row[by] or ""],
                title=f"{day} · {row[by]} · ${from_nanos(row.cost_nanos):f} "
                f"({row.requests:,} calls)",
            )
        )
    every = max(1, round(len(days) / 8))
    chart.labels = [
        (round(_LEFT + n * step + step / 2, 2), day.strftime("%m-%d"))
        for n, day in enumerate(days)
        if n % every == 0
    ]
    chart.summary = (
        f"Spend per day from {days[0]} to {days[-1]} by {by}; the dearest day cost {money}."
    )
    return chart
