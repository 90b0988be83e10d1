"""``gateway usage``: spend grouped by model, provider, route, account, operation, tag or
day, as a table (with a bar chart of spend per day), CSV or JSON."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table
from rich.text import Text

from gateway.cli._common import (
    account_option,
    config_option,
    credit_account,
    open_gateway,
    usd_column,
)
from gateway.cli._common import since as parse_since
from gateway.cli._common import state as cli_state

if TYPE_CHECKING:
    from gateway.credits.reports import UsageRow

__all__ = ["spend_chart", "usage", "usage_table"]

_KEYS = ("model", "provider", "route", "account", "status", "operation", "day", "month")
_BAR_WIDTH = 32
_MAX_DAYS = 31
_EIGHTHS = " ▏▎▍▌▋▊▉"


def _group_keys(text: str, ctx: click.Context) -> list[str]:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    if not keys:
        raise click.BadParameter("name at least one key", ctx=ctx, param_hint="'--by'")
    for key in keys:
        if key == "tag":
            raise click.BadParameter(
                "name the tag to group by, e.g. --by tag:feature", ctx=ctx, param_hint="'--by'"
            )
        if key not in _KEYS and not (key.startswith("tag:") and len(key) > 4):
            raise click.BadParameter(
                f"cannot group by {key!r}; use {', '.join(_KEYS)} or tag:NAME "
                "(several with commas, e.g. provider,model)",
                ctx=ctx,
                param_hint="'--by'",
            )
    return keys


@click.command()
@click.option(
    "--by",
    "group_by",
    default="model",
    show_default=True,
    metavar="KEY[,KEY...]",
    help="Group by model, provider, route, account, status, operation (chat, embeddings, "
    "images, batch), day, month or tag:NAME.",
)
@click.option(
    "--since",
    callback=parse_since,
    metavar="WHEN",
    help="Only calls since then: 7d, 24h, 30m, 2w, a date (2026-01-15) or an ISO date-time.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="table (with spend per day), or csv / json for other tools.",
)
@account_option
@config_option
@click.pass_context
def usage(
    ctx: click.Context,
    group_by: str,
    since: datetime | date | None,
    fmt: str,
    account: str | None,
    config_path: Path | None,
) -> None:
    """What was spent, grouped (and per day). --by account covers every account."""
    from gateway.credits.reports import to_csv, to_json

    keys = _group_keys(group_by, ctx)
    every_account = account is None and "account" in keys
    with open_gateway(config_path) as gw:
        credits = credit_account(gw, account)
        rows = credits.usage(group_by=keys, since=since, all_accounts=every_account)
        if fmt == "csv":
            click.echo(to_csv(rows), nl=False)
            return
        if fmt == "json":
            click.echo(to_json(rows))
            return
        out = cli_state().out
        who = "every account" if every_account else f"account '{credits.name}'"
        when = f" since {_when(since)}" if since is not None else ""
        if not rows:
            out.print(Text(f"No usage recorded for {who}{when}."))
            return
        out.print(Text(f"Usage of {who}{when}, by {', '.join(keys)}", style="bold"))
        out.print(usage_table(rows, keys))
        days = credits.usage(group_by="day", since=since, all_accounts=every_account)
        out.print(spend_chart(days))


def _when(since: datetime | date) -> str:
    if isinstance(since, datetime):
        return since.strftime("%Y-%m-%d %H:%M %Z").strip()
    return since.isoformat()


def usage_table(rows: Sequence[UsageRow], keys: Sequence[str]) -> Table:
    """Usage rows as a table with a total line."""
    cached = any(r.cached_input_tokens for r in rows)
    table = Table(show_footer=True, footer_style="bold", header_style="bold")
    for i, key in enumerate(keys):
        table.add_column(key, footer="total" if i == 0 else "")
    total_requests = sum(r.requests for r in rows)
    counts = {"calls": total_requests, "tokens in": sum(r.input_tokens for r in rows)}
    if cached:
        counts["cached in"] = sum(r.cached_input_tokens for r in rows)
    counts["tokens out"] = sum(r.output_tokens for r in rows)
    for name, total_count in counts.items():  # numbers never wrap mid-digit
        table.add_column(name, justify="right", footer=f"{total_count:,}", no_wrap=True)
    *costs, total = usd_column([*(r.cost for r in rows), sum((r.cost for r in rows), Decimal(0))])
    table.add_column("cost", justify="right", footer=total, no_wrap=True)
    for r, cost in zip(rows, costs, strict=True):
        cells = [_cell(r, k, keys) for k in keys]
        cells += [f"{r.requests:,}", f"{r.input_tokens:,}"]
        if cached:
            cells.append(f"{r.cached_input_tokens:,}")
        cells += [f"{r.output_tokens:,}", cost]
        table.add_row(*(Text(c) for c in cells))
    return table


def _cell(row: UsageRow, key: str, keys: Sequence[str]) -> str:
    value = row.group.get(key)
    if value is None:
        return "(none)"
    if key == "model" and "provider" in keys:
        return value.partition("/")[2] or value  # the provider has its own column
    return value


def spend_chart(days: Sequence[UsageRow]) -> Text:
    """Spend per day as horizontal bars, days without spend included, the last 31 days."""
    spend = {str(r.group["day"]): r.cost for r in days if r.group.get("day")}
    if not spend:
        return Text("")
    first, last = date.fromisoformat(min(spend)), date.fromisoformat(max(spend))
    span = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    hidden = max(0, len(span) - _MAX_DAYS)
    span = span[hidden:]
    top = max(spend.values()) or Decimal(1)
    text = Text("\nSpend per day\n", style="bold")
    if hidden:
        text.append(f"({hidden} earlier day(s) not shown)\n", style="dim")
    amounts = [spend.get(day.isoformat(), Decimal(0)) for day in span]
    for day, amount, shown in zip(span, amounts, usd_column(amounts), strict=True):
        eighths = int(amount / top * _BAR_WIDTH * 8)
        bar = "█" * (eighths // 8) + (_EIGHTHS[eighths % 8] if eighths % 8 else "")
        if amount and not bar:
            bar = "▏"
        text.append(f"{day.isoformat()}  ")
        text.append(bar.ljust(_BAR_WIDTH), style="cyan")
        text.append(f"  {shown}\n")
    text.rstrip()
    return text
