"""``gateway config check [FILE]`` (or ``--config FILE``, like every command): validate a
routing config and show what it resolves to.

A config that does not load is one error line naming the file, line, key and fix (exit 1).
One that loads is shown as its providers, its routes with each target's price and where the
price comes from, and its credit account; then its problems (exit 1: a target with no price
while credits are on, an unknown time zone) and warnings (exit 0: an unset ``${VAR}``, which
only matters when a call uses that provider), each with its line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table
from rich.text import Text

from gateway.cli._common import OrderedGroup, config_option, find_config, usd
from gateway.cli._common import state as cli_state

if TYPE_CHECKING:
    from gateway._yaml import Located
    from gateway.config import GatewayConfig, ModelPrice
    from gateway.credits.pricing import PriceBook

__all__ = ["config"]


@dataclass(frozen=True, slots=True)
class _Finding:
    line: int | None
    key: str
    message: str
    fatal: bool


@click.group(cls=OrderedGroup, no_args_is_help=True)
def config() -> None:
    """Check a routing config: `gateway config check [FILE]`."""


@config.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@config_option
def check(file: Path | None, config_path: Path | None) -> None:
    """Validate FILE (or --config FILE) [default: $GATEWAY_CONFIG, else ./gateway.yaml, else
    ~/.config/gateway/gateway.yaml]: print its routes, the price of every target, and any
    problem with its line number."""
    from gateway._yaml import load_yaml_text
    from gateway.config import load_config
    from gateway.credits.pricing import PriceBook

    if file is not None and config_path is not None and file != config_path:
        raise click.UsageError(f"two configs given ({file} and --config {config_path}): give one")
    path = find_config(file or config_path)
    cfg = load_config(path)  # a ConfigError here is the one-line error, with its line
    located = load_yaml_text(path.read_text(encoding="utf-8"), file=str(path))
    prices = PriceBook.from_config(cfg.pricing)
    findings = _env_findings(cfg) + _price_findings(cfg, prices, located) + _credit_findings(cfg)

    out = cli_state().out
    fatal = [f for f in findings if f.fatal]
    mark, style = ("✗", "bold red") if fatal else ("✓", "bold green")
    summary = f"{len(cfg.providers)} provider(s), {len(cfg.routes)} route(s), " + (
        f"credits on {cfg.credits.store}" if cfg.credits else "no credit account"
    )
    verdict = "has problems" if fatal else "is valid"
    out.print(Text.assemble((f"{mark} ", style), (f"{path} {verdict}: ", "bold"), summary))
    out.print(_providers_table(cfg))
    out.print(_routes_table(cfg, prices))
    if cfg.credits is not None:
        out.print(Text("\nCredits", style="bold"))
        out.print(_credits_text(cfg))
    for finding in findings:
        where = f"line {finding.line}, " if finding.line else ""
        label = ("problem", "red") if finding.fatal else ("warning", "yellow")
        out.print(
            Text.assemble((f"{label[0]}: ", label[1]), f"{where}{finding.key}: {finding.message}")
        )
    if fatal:
        raise click.exceptions.Exit(1)


def _providers_table(cfg: GatewayConfig) -> Table:
    from gateway.config import url_without_credentials

    table = Table(title="\nProviders", title_justify="left", header_style="bold")
    for column in ("name", "type", "api key", "base url", "timeout"):
        table.add_column(column)
    for name, p in cfg.providers.items():
        key = "–" if p.api_key is None else ("set" if p.api_key.is_set else "unset")
        timeout = f"{p.timeout:g}s" if p.timeout is not None else "SDK default"
        base_url = url_without_credentials(p.base_url) if p.base_url else "default"
        table.add_row(name, p.type, key, base_url, timeout)
    return table


def _routes_table(cfg: GatewayConfig, prices: PriceBook) -> Table:
    table = Table.grid(padding=(0, 2))
    table.title = "\nRoutes (USD per 1M tokens: input / output / cached input)"
    table.title_justify = "left"
    table.title_style = "bold"
    for _ in range(4):
        table.add_column(no_wrap=True)
    for route_name, route in cfg.routes.items():
        attempts = route.retry.attempts
        tries = f"{attempts} tries per target" if attempts > 1 else "no retry"
        table.add_row(Text(route_name, style="bold"), f"{route.strategy}, {tries}", "", "")
        for i, target in enumerate(route.targets):
            provider = cfg.providers[target.provider]
            price = prices.price_of(provider.type, target.model_name, provider=target.provider)
            table.add_row(
                f"  {i + 1}.",
                target.model,
                _price(price),
                _source(prices, provider.type, target.provider, target.model_name),
            )
    return table


def _price(price: ModelPrice | None) -> str:
    if price is None:
        return "unknown price"
    if price.per_image is not None and price.input is None:
        return "per image: " + ", ".join(f"{k} {usd(v)}" for k, v in price.per_image.items())
    cached = usd(price.cached_input) if price.cached_input is not None else "–"
    return f"{usd(price.input)} / {usd(price.output)} / {cached}"


def _source(prices: PriceBook, kind: str, provider: str, model: str) -> str:
    source = prices.source_of(kind, model, provider=provider)
    if source is None:
        return "–"
    return source if source == "fake provider default" else f"from {source}"


def _credits_text(cfg: GatewayConfig) -> Text:
    c = cfg.credits
    assert c is not None
    rule = c.auto_recharge
    recharge = (
        f"buy {usd(rule.amount)} below {usd(rule.below)}, at most {usd(rule.monthly_limit)}/month"
        if rule
        else "off"
    )
    caps = f"daily {usd(c.limits.daily) if c.limits.daily else 'none'}, "
    caps += f"monthly {usd(c.limits.monthly) if c.limits.monthly else 'none'}"
    return Text(
        f"  store {c.store}, {c.mode}\n  auto-recharge {recharge}\n  caps {caps}\n"
        f"  credit expires after {c.expiry_days} days; days and months in {c.timezone}"
    )


def _env_findings(cfg: GatewayConfig) -> list[_Finding]:
    from gateway.errors import ConfigError

    findings = []
    for name, provider in cfg.providers.items():
        try:
            provider.check_env()
        except ConfigError as exc:
            key = exc.key or f"providers.{name}"
            findings.append(
                _Finding(
                    exc.line, key, f"{exc.problem} (needed when a call uses '{name}')", fatal=False
                )
            )
    return findings


def _price_findings(cfg: GatewayConfig, prices: PriceBook, located: Located) -> list[_Finding]:
    from gateway.credits.pricing import missing_for
    from gateway.providers.media import model_kind

    findings = []
    for route_name, route in cfg.routes.items():
        for i, target in enumerate(route.targets):
            provider = cfg.providers[target.provider]
            price = prices.price_of(provider.type, target.model_name, provider=target.provider)
            operation = model_kind(target.model_name)
            if price is not None and missing_for(price, operation) is None:
                continue
            path: tuple[str | int, ...] = ("routes", route_name, "targets", i)
            credits_on = cfg.credits is not None
            known = "no known price" if price is None else f"no {missing_for(price, operation)}"
            message = f"'{target.model}' has {known}; " + (
                "the credit account refuses unpriced targets. "
                if credits_on
                else "calls to it report usage.cost = None. "
            )
            example = {
                "embeddings": '{input: "0.02"}',
                "images": '{per_image: {"1024x1024": "0.04"}}',
            }.get(operation, '{input: "1.00", output: "2.00"}')
            message += f"Add it under pricing:, e.g. {target.model}: {example}"
            findings.append(
                _Finding(
                    located.line_of(path),
                    f"routes.{route_name}.targets[{i}]",
                    message,
                    fatal=credits_on,
                )
            )
    return findings


def _credit_findings(cfg: GatewayConfig) -> list[_Finding]:
    if cfg.credits is None:
        return []
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(cfg.credits.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return [
            _Finding(
                None,
                "credits.timezone",
                f"unknown time zone '{cfg.credits.timezone}'; use an IANA name such as UTC",
                fatal=True,
            )
        ]
    return []
