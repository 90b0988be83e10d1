"""``gateway keys ...``: the API keys ``gateway serve`` accepts.

``create`` prints what was stored about the new key, then the key itself alone on the last
line (``KEY=$(gateway keys create ... | tail -n 1)``): it is shown this once and kept nowhere,
only its SHA-256 is stored, and nothing logs it. ``list`` shows the keys (never the keys
themselves: their id and display prefix); ``revoke ID`` refuses the key everywhere within a
second.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.text import Text

from gateway.cli._common import OrderedGroup, config_option, money, open_gateway, usd
from gateway.cli._common import state as cli_state

if TYPE_CHECKING:
    from gateway.keys import ApiKey

__all__ = ["keys"]


@click.group(cls=OrderedGroup, no_args_is_help=True)
def keys() -> None:
    """API keys for `gateway serve`: create (shown once), list, revoke."""


@keys.command()
@click.option("--name", required=True, metavar="TEXT", help="What the key is for, e.g. ci.")
@click.option(
    "--account", metavar="NAME", help="The account that pays [default: the default account]."
)
@click.option(
    "--routes",
    metavar="R1,R2",
    help="Routes (or provider/model, provider/*) the key may call [default: all].",
)
@click.option("--rpm", type=click.IntRange(min=1), help="Calls per minute, across every worker.")
@click.option("--daily", callback=money, metavar="AMOUNT", help="Daily spend limit (USD).")
@click.option("--monthly", callback=money, metavar="AMOUNT", help="Monthly spend limit (USD).")
@click.option(
    "--expires",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="The key stops working at midnight UTC starting this date.",
)
@config_option
def create(
    name: str,
    account: str | None,
    routes: str | None,
    rpm: int | None,
    daily: Decimal | None,
    monthly: Decimal | None,
    expires: datetime | None,
    config_path: Path | None,
) -> None:
    """Create a key; prints it once, alone on the last line."""
    expires_at = datetime.combine(expires.date(), time(0), tzinfo=UTC) if expires else None
    route_list = None
    if routes is not None:
        route_list = [r.strip() for r in routes.split(",") if r.strip()]
        if not route_list:
            raise click.BadParameter("name at least one route", param_hint="--routes")
    with open_gateway(config_path) as gw:
        new = gw.keys.create(
            account=account if account is not None else gw.credits.name,
            name=name,
            routes=route_list,
            rpm=rpm,
            daily_limit=daily,
            monthly_limit=monthly,
            expires_at=expires_at,
        )
    out = cli_state().out
    info = new.info
    out.print(
        Text(
            f"Created API key {info.id} ({info.prefix}...) '{info.name}' for account "
            f"'{info.account}'.",
            style="bold",
        ),
        soft_wrap=True,
    )
    out.print(Text(f"  {_limits(info)}"), soft_wrap=True)
    out.print(Text("The key is shown only this once; it is stored only as a hash:"))
    click.echo(new.key)  # alone on the last line, never through rich (no wrapping, no markup)


@keys.command(name="list")
@click.option("--account", metavar="NAME", help="Only this account's keys [default: all].")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@config_option
def list_keys(
    account: str | None, include_revoked: bool, fmt: str, config_path: Path | None
) -> None:
    """The keys: id, display prefix, name, account, status, limits; never the keys."""
    with open_gateway(config_path) as gw:
        found = gw.keys.list(account=account, include_revoked=include_revoked)
    now = datetime.now(UTC)
    if fmt == "json":
        click.echo(json.dumps([key.as_dict() for key in found], indent=2))
        return
    out = cli_state().out
    if not found:
        whose = f" for account '{account}'" if account else ""
        out.print(Text(f"No API keys{whose}. Create one with `gateway keys create --name N`."))
        return
    for key in found:
        line = Text(f"{key.id}  {key.prefix}...  ", style="bold")
        line.append(f"'{key.name}' of account '{key.account}'  ")
        status = _status(key, now)
        line.append(status, style="green" if status == "active" else "red")
        out.print(line, soft_wrap=True)
        out.print(Text(f"    {_limits(key)} · created {key.created_at:%Y-%m-%d}"), soft_wrap=True)


@keys.command()
@click.argument("key_id", metavar="ID")
@config_option
def revoke(key_id: str, config_path: Path | None) -> None:
    """Revoke key ID: every gateway refuses it within a second."""
    with open_gateway(config_path) as gw:
        key = gw.keys.revoke(key_id)
    assert key.revoked_at is not None
    cli_state().out.print(
        Text(
            f"Revoked API key {key.id} ({key.prefix}...) '{key.name}' of account "
            f"'{key.account}' at {key.revoked_at:%Y-%m-%d %H:%M:%S} UTC; every gateway "
            "refuses it within a second."
        ),
        soft_wrap=True,
    )


def _limits(key: ApiKey) -> str:
    parts = ["routes: " + (", ".join(key.routes) if key.routes is not None else "all")]
    if key.rpm is not None:
        parts.append(f"rpm {key.rpm}")
    if key.daily_limit is not None:
        parts.append(f"daily {usd(key.daily_limit)}")
    if key.monthly_limit is not None:
        parts.append(f"monthly {usd(key.monthly_limit)}")
    if key.expires_at is not None:
        parts.append(f"expires {key.expires_at:%Y-%m-%d %H:%M} UTC")
    return " · ".join(parts)


def _status(key: ApiKey, now: datetime) -> str:
    if key.revoked_at is not None:
        return f"revoked {key.revoked_at:%Y-%m-%d}"
    if key.expired(now):
        return "expired"
    return "active"
