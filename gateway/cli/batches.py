"""``gateway batches ...``: a provider's batch API at the batch rate, from the command line.

``submit FILE.jsonl --model M`` holds every request's worst case and submits them (the file:
see :mod:`._batch_file`); ``status ID``, ``cancel ID`` and ``list`` show where batches are;
``results ID [--out FILE]`` collects an ended batch, which charges each item once whoever
collects (another process, the library, the CLI again). Batch state lives in the credit
store, so any of these may run in another process than the one that submitted.

``results`` writes JSON lines ``{custom_id, outcome, response, error, cost}`` (``cost`` a
decimal string of USD) to stdout, or to ``--out FILE``; its summary goes to stderr, or to
stdout when the lines went to a file, so ``gateway batches results ID > out.jsonl`` keeps only
the results.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.text import Text

from gateway.cli._common import (
    CliError,
    OrderedGroup,
    account_option,
    config_option,
    credit_account,
    open_gateway,
    usd,
)
from gateway.cli._common import state as cli_state

if TYPE_CHECKING:
    from gateway._batches import Batch, BatchResult

__all__ = ["batches"]

F = TypeVar("F", bound=Callable[..., Any])

_COUNTS = ("processing", "succeeded", "errored", "expired", "cancelled")


@click.group(cls=OrderedGroup, no_args_is_help=True)
def batches() -> None:
    """Batches at the batch rate (half price unless pricing: says otherwise), paid from the
    credit account: submit, status, results, cancel, list."""


def _format_option(*choices: str) -> Callable[[F], F]:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default=choices[0],
        show_default=True,
        help="Human-readable, or json for other tools.",
    )


def _tags(values: Sequence[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for value in values:
        key, sep, tag = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="'--tag'")
        tags[key.strip()] = tag
    return tags


@batches.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.jsonl")
@click.option(
    "--model",
    required=True,
    metavar="M",
    help="A route of the config (its first healthy target takes the whole batch; no fallback "
    "inside a batch) or provider/model.",
)
@click.option("--tag", "tag_values", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
@_format_option("text", "json")
@account_option
@config_option
def submit(
    file: Path,
    model: str,
    tag_values: tuple[str, ...],
    fmt: str,
    account: str | None,
    config_path: Path | None,
) -> None:
    """Submit FILE.jsonl: one {"custom_id", "body"} per line (OpenAI's batch lines work too).

    Every request's worst case is held at the batch rate before anything is sent; a file with
    a bad line, or one the account cannot cover, submits nothing.
    """
    from gateway.cli._batch_file import read_batch_file

    tags = _tags(tag_values)
    found = read_batch_file(file)
    with open_gateway(config_path) as gw:
        acct = credit_account(gw, account)
        batch = gw.batches.create(
            model=model, requests=found.requests, account=acct.name, tags=tags or None
        )
        held = acct.balance().held
    if fmt == "json":
        click.echo(json.dumps(_batch_json(batch), indent=2))
        return
    out = cli_state().out
    total = sum(batch.counts.values())
    out.print(
        Text(
            f"Submitted batch {batch.id}: {total:,} request(s) to {batch.provider}/{batch.model} "
            f"for account '{batch.account}' (provider batch {batch.provider_batch_id}).",
            style="bold",
        ),
        soft_wrap=True,
    )
    out.print(
        Text(
            f"  On hold on the account now: {usd(held)} (each item's worst case at the batch "
            "rate is held until its result is collected)."
        ),
        soft_wrap=True,
    )
    others = sorted(found.body_models - {batch.model, model})
    if others:
        out.print(
            Text(f"  The file's own model ({', '.join(others)}) was left out: --model decides."),
            soft_wrap=True,
        )
    out.print(Text(f"  Next: gateway batches status {batch.id}"), soft_wrap=True)


@batches.command()
@click.argument("batch_id", metavar="ID")
@_format_option("text", "json")
@config_option
def status(batch_id: str, fmt: str, config_path: Path | None) -> None:
    """Where batch ID is now (asks the provider until it has ended)."""
    with open_gateway(config_path) as gw:
        batch = gw.batches.retrieve(batch_id)
    _show(batch, fmt)


@batches.command()
@click.argument("batch_id", metavar="ID")
@_format_option("text", "json")
@config_option
def cancel(batch_id: str, fmt: str, config_path: Path | None) -> None:
    """Ask the provider to stop batch ID; items already finished are billed when collected."""
    with open_gateway(config_path) as gw:
        batch = gw.batches.cancel(batch_id)
    _show(batch, fmt)


@batches.command()
@click.argument("batch_id", metavar="ID")
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write the JSON lines to FILE instead of stdout.",
)
@config_option
def results(batch_id: str, out_path: Path | None, config_path: Path | None) -> None:
    """Collect ended batch ID: each item's result as a JSON line, then the total charged.

    Each succeeded item is charged its batch cost once, whoever collects; errored, expired
    and cancelled items cost nothing.
    """
    with open_gateway(config_path) as gw:
        batch = gw.batches.retrieve(batch_id)
        items = list(gw.batches.results(batch_id))
    lines = [json.dumps(_result_json(item)) + "\n" for item in items]
    if out_path is None:
        click.echo("".join(lines), nl=False)
        summary_console = cli_state().err
    else:
        _write(out_path, "".join(lines))
        summary_console = cli_state().out
    summary_console.print(Text(_summary(batch, items, out_path)), soft_wrap=True)


@batches.command(name="list")
@click.option("--account", metavar="NAME", help="Only this account's batches [default: all].")
@click.option(
    "--limit",
    type=click.IntRange(min=1, max=10_000),
    default=50,
    show_default=True,
    help="How many batches, newest first.",
)
@_format_option("table", "json")
@config_option
def list_batches(account: str | None, limit: int, fmt: str, config_path: Path | None) -> None:
    """The batches in the credit store, newest first (as last seen: `status ID` asks anew)."""
    with open_gateway(config_path) as gw:
        found = gw.batches.list(account=account, limit=limit)
    if fmt == "json":
        click.echo(json.dumps([_batch_json(b) for b in found], indent=2))
        return
    out = cli_state().out
    if not found:
        whose = f" for account '{account}'" if account else ""
        out.print(Text(f"No batches{whose}. Submit one with `gateway batches submit FILE.jsonl`."))
        return
    for b in found:
        line = Text(f"{b.id}  ", style="bold")
        line.append(b.status, style="green" if b.status == "ended" else "yellow")
        line.append(f" ({b.provider_status})  {b.provider}/{b.model}  account '{b.account}'")
        out.print(line, soft_wrap=True)
        out.print(
            Text(f"    {_counts_text(b.counts)} · created {b.created_at:%Y-%m-%d %H:%M} UTC"),
            soft_wrap=True,
        )


# -- output ------------------------------------------------------------------------------------


def _batch_json(batch: Batch) -> dict[str, Any]:
    return {
        "id": batch.id,
        "status": batch.status,
        "provider_status": batch.provider_status,
        "counts": batch.counts,
        "provider": batch.provider,
        "model": batch.model,
        "route": batch.route,
        "account": batch.account,
        "provider_batch_id": batch.provider_batch_id,
        "created_at": batch.created_at.isoformat(),
        "tags": batch.tags,
    }


def _result_json(item: BatchResult) -> dict[str, Any]:
    response = None
    if item.response is not None:
        response = item.response.model_dump(mode="json", exclude_unset=True)
    return {
        "custom_id": item.custom_id,
        "outcome": item.outcome,
        "response": response,
        "error": item.error,
        "cost": f"{item.cost:f}",
    }


def _counts_text(counts: dict[str, int]) -> str:
    parts = [f"{counts[name]:,} {name}" for name in _COUNTS if counts.get(name)]
    return ", ".join(parts) or "none"


def _show(batch: Batch, fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(_batch_json(batch), indent=2))
        return
    out = cli_state().out
    out.print(
        Text(f"Batch {batch.id}: {batch.status} (provider: {batch.provider_status})", style="bold"),
        soft_wrap=True,
    )
    target = f"{batch.provider}/{batch.model}"
    route = f" via route '{batch.route}'" if batch.route != target else ""
    out.print(
        Text(f"  {target}{route} · account '{batch.account}'"),
        soft_wrap=True,
    )
    out.print(Text(f"  items: {_counts_text(batch.counts)}"))
    out.print(Text(f"  created {batch.created_at:%Y-%m-%d %H:%M:%S} UTC"))
    if batch.tags:
        tags = ", ".join(f"{k}={v}" for k, v in sorted(batch.tags.items()))
        out.print(Text(f"  tags: {tags}"), soft_wrap=True)
    if batch.status == "ended":
        out.print(Text(f"  Collect it: gateway batches results {batch.id}"), soft_wrap=True)


def _summary(batch: Batch, items: Sequence[BatchResult], out_path: Path | None) -> str:
    counts: dict[str, int] = {}
    for item in items:
        counts[item.outcome] = counts.get(item.outcome, 0) + 1
    total = sum((item.cost for item in items), Decimal(0))
    where = f" written to {out_path}" if out_path is not None else ""
    return (
        f"Batch {batch.id}: {len(items):,} result(s){where} ({_counts_text(counts)}); "
        f"{usd(total)} charged to account '{batch.account}' at the batch rate."
    )


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a temporary file renamed over it)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise CliError(
            f"cannot write {path}: {exc.strerror or exc} (the batch was collected; run the "
            "command again to write its results: it charges nothing twice)"
        ) from None
