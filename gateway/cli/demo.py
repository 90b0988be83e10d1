"""``gateway demo``: a scripted day of traffic on fake providers, offline, told step by step.

Where its files go (so that ``gateway usage`` right after ``gateway demo``, both run with no
flags in the same directory, shows the demo's spend):

* the ledger is ``./gateway-demo.db`` (the demo config's ``credits.store``, relative to the
  current directory); each run deletes the previous run's file first and starts clean;
* the demo config (``gateway/cli/offline.yaml``, the same as ``examples/offline.yaml``) is
  written to ``./gateway.yaml`` (or ``--config FILE``) when that file does not exist, so the
  other commands find it by default. An existing file that is not the demo's is left alone,
  and the demo says how to reach its account anyway.

The day itself is :class:`~gateway.cli._story.DemoDay`: yesterday (UTC) by default, on a
manual clock, so the numbers are the same on every run and the day is in the past for
``gateway usage --since 7d``. It takes about a second; in a terminal each step pauses briefly
so that the story can be read as it unfolds (never when the output is piped or tested).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from gateway.cli._common import CONFIG_ENV, quiet_logs, usd
from gateway.cli._common import state as cli_state
from gateway.cli._story import DAY_END, DAY_START, Step
from gateway.cli.usage import usage_table

if TYPE_CHECKING:
    from gateway.cli._story import DemoDay

__all__ = ["demo", "demo_config_text"]

#: Pause after each step in a terminal, so the story unfolds at reading pace (about 2 s in
#: all; the simulated day itself takes about 1 s).
_PACE_S = 0.15
_MARKERS = {
    "bought": ("+", "green"),
    "traffic": ("✓", "green"),
    "outage": ("!", "yellow"),
    "recovered": ("✓", "green"),
    "rate_limit": ("!", "yellow"),
    "recharge": ("+", "green"),
    "declined": ("✗", "red"),
    "refused": ("✗", "red"),
    "cap": ("✗", "red"),
}


def demo_config_text() -> str:
    """The demo's config, as shipped in the package."""
    return resources.files("gateway.cli").joinpath("offline.yaml").read_text(encoding="utf-8")


def _parse_day(ctx: click.Context, param: click.Parameter, value: str | None) -> date:
    if value is None:
        return datetime.now(UTC).date() - timedelta(days=1)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date such as 2026-01-15") from None


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Where to write the demo's config when that file does not exist yet (also accepted "
    "before the command) [default: ./gateway.yaml].",
)
@click.option("--date", "day", callback=_parse_day, hidden=True, help="The simulated day.")
def demo(config_path: Path | None, day: date) -> None:
    """Run a scripted day of traffic offline (fake providers, no keys) and tell its story.

    An OpenAI outage and the fallback to Claude, a Gemini rate limit, credit bought and spent
    down, a call refused for lack of credit, an auto-recharge and a spending cap. The ledger
    goes to ./gateway-demo.db (replaced on every run); the demo's config is written to
    ./gateway.yaml if there is none, so `gateway usage` afterwards shows the demo's spend.
    """
    from gateway.cli._story import DemoDay
    from gateway.config import parse_config

    out = cli_state().out
    config_path = config_path or cli_state().config_path or Path("gateway.yaml")
    text = demo_config_text()
    config = parse_config(text, source="gateway demo's config (offline.yaml)")
    assert config.credits is not None
    config_note, reach, placed = _place_config(config_path, text)
    # The ledger goes beside the config file, where the other commands look for it.
    name = Path(config.credits.store.removeprefix("sqlite:///"))
    ledger = name if placed is None else placed.parent / name
    credits = config.credits.model_copy(update={"store": f"sqlite:///{ledger}"})
    config = config.model_copy(update={"credits": credits})
    removed = _remove_ledger(ledger)

    out.print(
        Text(
            "gateway demo: a day of traffic on fake OpenAI, Anthropic and Gemini providers",
            style="bold",
        )
    )
    out.print(Text(f"  config  {config_note}"))
    out.print(
        Text(f"  ledger  {_shown(ledger)} (SQLite{', previous run removed' if removed else ''})")
    )
    out.print(
        Text(f"  day     {day.isoformat()} (UTC) on a simulated clock: offline, nothing sleeps\n")
    )

    start = datetime.combine(day, DAY_START, tzinfo=UTC)
    minutes = (datetime.combine(day, DAY_END, tzinfo=UTC) - start).total_seconds() / 60
    with (
        quiet_logs(),
        Progress(
            TextColumn(f"simulating {day.isoformat()}"),
            BarColumn(),
            TextColumn("{task.fields[clock]}"),
            console=out,
            transient=True,
        ) as progress,
    ):
        task = progress.add_task("day", total=minutes, clock="08:00")
        _print_header(progress.console)

        def tick(now: datetime) -> None:
            progress.update(
                task, completed=(now - start).total_seconds() / 60, clock=f"{now:%H:%M}"
            )

        def report(step: Step) -> None:
            _print_step(progress.console, step)
            if out.is_terminal:
                time.sleep(_PACE_S)  # a person reads along; never when piped or tested

        story = DemoDay(config, day, report=report, tick=tick)
        try:
            story.run()
            progress.update(task, completed=minutes)
            _print_summary(out, story)
        finally:
            story.close()
    _print_next(out, reach, _shown(ledger))


def _place_config(path: Path, text: str) -> tuple[str, str, Path | None]:
    """Write the demo's config to ``path`` unless another config is there (then next to it,
    as gateway-demo.yaml). Returns what to say about it, the --config flag the other
    commands need to reach the demo's account ("" when they find it by default), and the
    file the demo's config is in (None when both places hold configs of your own)."""
    for candidate in (path, path.with_name("gateway-demo.yaml")):
        shown = _shown(candidate)
        if not candidate.exists():
            candidate.parent.mkdir(parents=True, exist_ok=True)
            candidate.write_text(text, encoding="utf-8")
            note = f"{shown} (written: the demo's config)"
        elif candidate.read_text(encoding="utf-8", errors="replace") == text:
            note = f"{shown} (the demo's config, already there)"
        else:
            continue
        if candidate != path:
            note += f"; {_shown(path)} is your own config and was left alone"
        found_by_default = candidate.resolve() == _found_by_default().resolve()
        return note, "" if found_by_default else f" --config {shown}", candidate
    return f"{_shown(path)} is your own config and was left alone", " --config FILE", None


def _found_by_default() -> Path:
    """The config the other commands read when given no --config (once ./gateway.yaml
    exists): the one GATEWAY_CONFIG names, else ./gateway.yaml."""
    return Path(os.environ.get(CONFIG_ENV) or "gateway.yaml")


def _shown(path: Path) -> str:
    return str(path) if path.is_absolute() or str(path).startswith(".") else f"./{path}"


def _remove_ledger(ledger: Path) -> bool:
    removed = False
    for suffix in ("", "-wal", "-shm", "-journal"):
        part = ledger.with_name(ledger.name + suffix)
        if part.exists():
            part.unlink()
            removed = True
    return removed


def _step_grid() -> Table:
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(width=11, no_wrap=True)
    grid.add_column(width=1)
    grid.add_column(ratio=1)
    grid.add_column(justify="right", no_wrap=True, min_width=7)
    return grid


def _print_header(console: Console) -> None:
    grid = _step_grid()
    grid.add_row("time (UTC)", "", "what happened", "balance", style="bold")
    console.print(grid)


def _print_step(console: Console, step: Step) -> None:
    marker, colour = _MARKERS[step.kind]
    when = f"{step.at:%H:%M}" + (f"–{step.until:%H:%M}" if step.until else "")
    grid = _step_grid()
    balance = usd(step.balance, 2) if step.balance is not None else ""
    grid.add_row(when, Text(marker, style=f"bold {colour}"), Text(step.title), balance)
    for line in step.details:
        grid.add_row("", "", Text(line, style="dim"), "")
    console.print(grid)


def _print_summary(out: Console, story: DemoDay) -> None:
    balance = story.account.balance()
    expiry = f", next expiry {balance.next_expiry:%Y-%m-%d}" if balance.next_expiry else ""
    out.print(
        Text(
            f"\nAt the end of the day, account '{balance.account}' has {usd(balance.available)} "
            f"available ({usd(balance.posted)} posted, {usd(balance.held)} on hold{expiry}).",
            style="bold",
        )
    )
    rows = story.account.usage(group_by=["provider", "model"])
    out.print(Text("Usage by provider and model", style="bold"))
    out.print(usage_table(rows, ["provider", "model"]))


def _print_next(out: Console, reach: str, ledger: str) -> None:
    out.print()
    out.print(Text(f"The whole day is in {ledger}. Try next:", style="bold"))
    hints = (
        (f"gateway usage{reach}", "spend by model, and per day"),
        (f"gateway usage --by tag:feature{reach}", "spend by the tags the calls carried"),
        (f"gateway credits history --all{reach}", "every ledger entry of the day"),
        (f'gateway chat "Hello"{reach}', "one call on route 'smart'"),
    )
    width = max(len(command) for command, _ in hints)
    for command, what in hints:
        out.print(Text.assemble("  ", (command.ljust(width), "cyan"), "   ", what))
