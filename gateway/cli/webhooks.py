"""``gateway webhooks ...``: the webhook outbox from the command line.

``deliveries [--failed]`` lists the events sent, pending and given up (newest first) under
the config's endpoints; ``retry ID`` sends one again now (re-enabling its endpoint after a
410); ``test URL`` sends a signed ``ping`` to one of the config's endpoints. These commands
read the outbox in the credit store directly: they start no background sender, and nothing
but ``retry`` and ``test`` sends anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table
from rich.text import Text

from gateway.cli._common import (
    CliError,
    OrderedGroup,
    account_option,
    config_option,
    find_config,
)
from gateway.cli._common import state as cli_state

if TYPE_CHECKING:
    from gateway.config import GatewayConfig, WebhookConfig
    from gateway.webhooks.outbox import Delivery
    from gateway.webhooks.sender import Sender

__all__ = ["webhooks"]


@click.group(cls=OrderedGroup, no_args_is_help=True)
def webhooks() -> None:
    """Webhook events sent to the config's endpoints: deliveries, retries, a test ping."""


@contextmanager
def _sender(config_path: Path | None) -> Iterator[tuple[GatewayConfig, Sender]]:
    """The config and a sender on its credit store (closed afterwards)."""
    from gateway.config import load_config
    from gateway.credits.store import open_store
    from gateway.webhooks.sender import Sender

    path = find_config(config_path)
    config = load_config(path)
    if config.credits is None or not config.webhooks:
        raise CliError(
            f"{path} has no webhooks: list (and a credits: section, whose store keeps the "
            "outbox); see the README's 'Webhooks and alerts'"
        )
    store = open_store(config.credits.store)
    sender = Sender.on_store(store, config.webhooks, concurrency=1)
    try:
        yield config, sender
    finally:
        sender.stop()
        store.close()


@webhooks.command()
@click.option("--failed", is_flag=True, help="Only deliveries given up after a day of retries.")
@click.option(
    "--limit",
    type=click.IntRange(min=1, max=10_000),
    default=50,
    show_default=True,
    help="How many deliveries, newest first.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
)
@account_option
@config_option
def deliveries(
    failed: bool, limit: int, fmt: str, account: str | None, config_path: Path | None
) -> None:
    """The endpoints, then their deliveries, newest first: pending (with the next attempt),
    delivered, or failed (given up after a day)."""
    with _sender(config_path) as (config, sender):
        rows = sender.outbox.deliveries(
            status="failed" if failed else None, account=account, limit=limit
        )
        disabled = sender.outbox.disabled()
    urls = {ep_id: hook.display_url for ep_id, hook in sender.endpoints.items()}
    if fmt == "json":
        endpoints = [_endpoint_json(hook, ep, disabled) for ep, hook in _by_id(config)]
        listed = [dict(d.as_dict(), url=urls.get(d.endpoint)) for d in rows]
        click.echo(json.dumps({"endpoints": endpoints, "deliveries": listed}, indent=2))
        return
    out = cli_state().out
    for ep, hook in _by_id(config):
        line = Text(f"{hook.display_url}  ", style="bold")
        line.append(", ".join(hook.events), style="dim")
        if ep in disabled:
            since, why = disabled[ep]
            line.append(f"  disabled since {_when(since)}: {why}", style="red")
        out.print(line, soft_wrap=True)
    if not rows:
        what = "failed deliveries" if failed else "deliveries"
        out.print(Text(f"No {what}{f' for account {account!r}' if account else ''}."))
        return
    out.print(_table(rows, urls, failed))


@webhooks.command()
@click.argument("delivery_id", metavar="ID", type=click.IntRange(min=1))
@config_option
def retry(delivery_id: int, config_path: Path | None) -> None:
    """Send delivery ID again now, whatever its status (retried for a day if it fails), and
    re-enable its endpoint if a 410 disabled it."""
    with _sender(config_path) as (_, sender):
        row = sender.send_now(delivery_id)
    if row is None:
        raise CliError(
            f"there is no delivery {delivery_id} (`gateway webhooks deliveries` lists them)"
        )
    out = cli_state().out
    what = f"Delivery {row.id} ({row.type}, account '{row.account}')"
    if row.status == "delivered":
        out.print(Text(f"{what} delivered (HTTP {row.last_status})."))
    elif row.endpoint not in sender.endpoints:
        out.print(
            Text(f"{what} is due again, but its endpoint is no longer in the config's webhooks.")
        )
    else:
        reason = f": {row.last_error}" if row.last_error else ""
        out.print(
            Text(
                f"{what} is pending{reason}. A gateway's sender tries it again from "
                f"{_when(row.next_attempt_us)} (after any older event of the account)."
            )
        )


@webhooks.command()
@click.argument("url")
@config_option
def test(url: str, config_path: Path | None) -> None:
    """POST a signed `ping` event to URL (one of the config's webhooks) and show the answer."""
    with _sender(config_path) as (config, sender):
        assert config.credits is not None
        result = sender.ping(url, account=config.credits.default_account)
    out = cli_state().out
    if not result.ok:
        raise CliError(
            f"the ping ({result.event_id}) to {url} failed after {result.seconds:.2f} s: "
            f"{result.error}"
        )
    out.print(
        Text(
            f"HTTP {result.status} in {result.seconds:.2f} s: the endpoint accepted a signed "
            f"ping (webhook-id {result.event_id})."
        )
    )


def _by_id(config: GatewayConfig) -> list[tuple[str, WebhookConfig]]:
    from gateway.webhooks.outbox import endpoint_id

    return [(endpoint_id(hook.url), hook) for hook in config.webhooks]


def _endpoint_json(
    hook: WebhookConfig, ep: str, disabled: dict[str, tuple[int, str]]
) -> dict[str, Any]:
    off = disabled.get(ep)
    return {
        "id": ep,
        "url": hook.display_url,
        "events": list(hook.events),
        "disabled_at": None if off is None else _when(off[0]),
        "disabled_because": None if off is None else off[1],
    }


def _when(at_us: int) -> str:
    return f"{datetime.fromtimestamp(at_us / 1_000_000, UTC):%Y-%m-%d %H:%M:%S} UTC"


def _table(rows: list[Delivery], urls: dict[str, str], failed: bool) -> Table:
    title = "Failed webhook deliveries" if failed else "Webhook deliveries"
    table = Table(header_style="bold", title=f"{title}, newest first")
    for name in ("id", "created (UTC)", "account", "event", "endpoint", "status", "tries"):
        table.add_column(name, justify="right" if name in ("id", "tries") else "left")
    table.add_column("last answer / next attempt")
    for d in rows:
        if d.status == "pending":
            detail = f"{d.last_error + '; ' if d.last_error else ''}next {_when(d.next_attempt_us)}"
        elif d.status == "delivered":
            detail = f"HTTP {d.last_status}"
        else:
            detail = d.last_error or ""
        table.add_row(
            str(d.id),
            f"{d.created_at:%Y-%m-%d %H:%M:%S}",
            d.account,
            d.type,
            urls.get(d.endpoint, f"{d.endpoint} (not in the config)"),
            Text(d.status, style={"failed": "red", "delivered": "green"}.get(d.status, "")),
            str(d.attempts),
            detail,
        )
    return table
