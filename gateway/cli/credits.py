"""``gateway credits ...``: the credit account from the command line.

``balance``, ``buy AMOUNT``, ``grant AMOUNT``, ``history``, ``limits``, ``auto-recharge`` and
``expire``, each with ``--account NAME`` and ``--config FILE``; ``migrate`` (the whole store,
so no ``--account``) runs :func:`gateway.credits.store.migrate` ahead of a deploy. Amounts are
parsed as Decimal from their text. The command line has no payment method: ``buy`` records
credit paid for elsewhere (your shop, an invoice), and an auto-recharge it sets off is
declined and recorded.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table
from rich.text import Text

from gateway.cli._common import (
    CliError,
    NoCap,
    OrderedGroup,
    account_option,
    cap,
    config_option,
    credit_account,
    find_config,
    money,
    open_gateway,
    usd,
    usd_column,
)
from gateway.cli._common import state as cli_state

if TYPE_CHECKING:
    from gateway.credits.account import CreditAccount
    from gateway.credits.ledger import LedgerEntry

__all__ = ["credits"]

#: Ledger entry kinds, for ``history --kind``.
_KINDS = (
    "account_opened",
    "purchase",
    "grant",
    "auto_recharge",
    "usage",
    "expiry",
    "debt_payment",
    "hold",
    "settle",
    "release",
    "hold_expired",
    "recharge_requested",
    "recharge_declined",
    "recharge_skipped",
    "purchase_requested",
    "purchase_declined",
    "settings",
)


@click.group(cls=OrderedGroup, no_args_is_help=True)
def credits() -> None:
    """The prepaid credit account: balance, purchases, grants, history, caps, auto-recharge."""


@credits.command()
@account_option
@config_option
def balance(account: str | None, config_path: Path | None) -> None:
    """Available, posted and held credit, and each lot with its expiry."""
    with open_gateway(config_path) as gw:
        acct = credit_account(gw, account)
        _print_balance(acct)


def _print_balance(acct: CreditAccount) -> None:
    out = cli_state().out
    b = acct.balance()
    out.print(Text(f"Account '{b.account}': {usd(b.available)} available", style="bold"))
    out.print(Text(f"  posted {usd(b.posted)} · on hold {usd(b.held)} · debt {usd(b.debt)}"))
    if b.next_expiry is not None:
        out.print(Text(f"  next expiry {b.next_expiry:%Y-%m-%d %H:%M} UTC: {usd(b.expiring_next)}"))
    if b.lots:
        table = Table(header_style="bold")
        for name, justify in (
            ("lot", "left"),
            ("source", "left"),
            ("bought", "left"),
            ("amount", "right"),
            ("remaining", "right"),
            ("expires", "left"),
        ):
            table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        amounts = usd_column([lot.amount for lot in b.lots])
        remaining = usd_column([lot.remaining for lot in b.lots])
        for lot, amount, left in zip(b.lots, amounts, remaining, strict=True):
            table.add_row(
                lot.lot_id,
                lot.source,
                f"{lot.created_at:%Y-%m-%d %H:%M}",
                amount,
                left,
                f"{lot.expires_at:%Y-%m-%d}",
            )
        out.print(table)


@credits.command(context_settings={"ignore_unknown_options": True})
@click.argument("amount", callback=money, metavar="AMOUNT")
@click.option("--key", metavar="TEXT", help="Idempotency key: a repeat with it adds nothing.")
@account_option
@config_option
def buy(amount: Decimal, key: str | None, account: str | None, config_path: Path | None) -> None:
    """Record a purchase of AMOUNT USD (paid elsewhere; the CLI charges no card)."""
    with open_gateway(config_path) as gw:
        acct = credit_account(gw, account, must_exist=False)
        entry = acct.purchase(amount, idempotency_key=key)
        expires = f", expires {entry.expires_at:%Y-%m-%d}" if entry.expires_at else ""
        cli_state().out.print(
            Text(f"Bought {usd(entry.amount)} for account '{acct.name}'{expires}.")
        )
        _print_available(acct)


@credits.command(context_settings={"ignore_unknown_options": True})
@click.argument("amount", callback=money, metavar="AMOUNT")
@click.option("--note", metavar="TEXT", help="Why (shown in the history).")
@click.option(
    "--expires",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    help="Expiry date (UTC) [default: the config's expiry_days from now].",
)
@account_option
@config_option
def grant(
    amount: Decimal,
    note: str | None,
    expires: datetime | None,
    account: str | None,
    config_path: Path | None,
) -> None:
    """Grant AMOUNT USD of promotional credit (no minimum, no payment)."""
    expires_at = datetime.combine(expires.date(), time(0), tzinfo=UTC) if expires else None
    with open_gateway(config_path) as gw:
        acct = credit_account(gw, account, must_exist=False)
        entry = acct.grant(amount, expires_at=expires_at, note=note)
        until = f", expires {entry.expires_at:%Y-%m-%d}" if entry.expires_at else ""
        cli_state().out.print(Text(f"Granted {usd(entry.amount)} to account '{acct.name}'{until}."))
        _print_available(acct)


def _print_available(acct: CreditAccount) -> None:
    cli_state().out.print(Text(f"Available now: {usd(acct.balance().available)}"))


@credits.command()
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="How many entries, newest first.",
)
@click.option("--all", "show_all", is_flag=True, help="Every entry (overrides --limit).")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(_KINDS),
    help="Only entries of this kind (repeatable).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@account_option
@config_option
def history(
    limit: int,
    show_all: bool,
    kinds: tuple[str, ...],
    fmt: str,
    account: str | None,
    config_path: Path | None,
) -> None:
    """Ledger entries, newest first (the newest 50 unless --limit or --all)."""
    from gateway.credits.reports import to_csv, to_json

    with open_gateway(config_path) as gw:
        acct = credit_account(gw, account)
        # Read past the limit to say how many there are (up to _COUNT_UP_TO, to stay cheap).
        read = None if show_all else max(limit, _COUNT_UP_TO) + 1
        found = acct.history(limit=read, kinds=list(kinds) or None)
    entries = found if show_all else found[:limit]
    note = _more_note(len(entries), len(found), counted=read is None or len(found) < read)
    if fmt in ("csv", "json"):
        click.echo(to_csv(entries) if fmt == "csv" else to_json(entries), nl=fmt == "json")
        if note:
            cli_state().err.print(Text(note))  # stdout stays machine-readable
        return
    out = cli_state().out
    if not entries:
        out.print(Text(f"No ledger entries for account '{acct.name}'."))
        return
    out.print(_history_table(acct.name, entries, out.width))
    if note:
        out.print(Text(note, style="dim"))


#: ``credits history`` counts the entries it does not show up to this many.
_COUNT_UP_TO = 10_000


def _more_note(shown: int, found: int, *, counted: bool) -> str:
    """``showing the newest 50 of 352 entries; ...``, or "" when every entry is shown."""
    if shown == found:
        return ""
    total = f"{found:,}" if counted else f"more than {found - 1:,}"
    return f"showing the newest {shown:,} of {total} entries; --limit N or --all for more"


def _history_table(account: str, entries: list[LedgerEntry], width: int) -> Table:
    """The entries as a table that fits ``width`` columns without cutting a number in two:
    amounts never wrap, details wrap between words, and the time wraps between the date and
    the time only when nothing else can give."""
    table = Table(header_style="bold", title=f"Ledger of account '{account}', newest first")
    amounts = usd_column([e.amount if e.amount_nanos else None for e in entries])
    held = usd_column([e.held if e.held_nanos else None for e in entries])
    rows = [
        (f"{e.at:%Y-%m-%d %H:%M:%S}", e.kind, amount, hold, e.lot_id or "", _detail(e))
        for e, amount, hold in zip(entries, amounts, held, strict=True)
    ]
    names = ("time (UTC)", "kind", "amount", "held", "lot", "detail")
    widest = [max(len(name), *(len(row[i]) for row in rows)) for i, name in enumerate(names)]
    longest_word = max((len(w) for row in rows for w in row[5].split()), default=0)
    # Each column has one space of padding either side, and there is a border between them.
    room = width - sum(widest[:5]) - 3 * len(names) - 1
    for i, name in enumerate(names):
        if name == "detail":
            table.add_column(name, min_width=min(longest_word, widest[i]))
        elif name == "time (UTC)":
            table.add_column(name, no_wrap=room >= min(longest_word, widest[5]))
        else:
            right = name in ("amount", "held")
            table.add_column(name, justify="right" if right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


def _detail(entry: LedgerEntry) -> str:
    from gateway.credits.money import from_nanos

    if entry.note:
        return entry.note
    meta = entry.meta
    if entry.kind == "settle" and "cost" in meta:
        return f"cost {usd(from_nanos(int(meta['cost'])))}"
    if entry.kind == "settings":
        return ", ".join(_setting(key, value) for key, value in meta.items())
    return str(meta.get("target") or meta.get("reference") or "")


def _setting(key: str, value: object) -> str:
    from gateway.credits.money import from_nanos

    if key in ("daily", "monthly"):
        return f"{key} cap " + (usd(from_nanos(value)) if isinstance(value, int) else "none")
    if key == "auto_recharge":
        if not isinstance(value, dict):
            return "auto-recharge off"
        below, amount, limit = (
            from_nanos(int(value[k])) for k in ("below", "amount", "monthly_limit")
        )
        return f"auto-recharge {usd(amount)} below {usd(below)}, at most {usd(limit)}/month"
    return f"{key} {value}"


@credits.command()
@click.option("--daily", callback=cap, metavar="AMOUNT|none", help="Daily cap (USD), or none.")
@click.option("--monthly", callback=cap, metavar="AMOUNT|none", help="Monthly cap, or none.")
@account_option
@config_option
def limits(
    daily: Decimal | NoCap | None,
    monthly: Decimal | NoCap | None,
    account: str | None,
    config_path: Path | None,
) -> None:
    """Show the spending caps and what was spent; set them with --daily and --monthly."""
    with open_gateway(config_path) as gw:
        changing = daily is not None or monthly is not None
        acct = credit_account(gw, account, must_exist=not changing)
        if changing:
            acct.set_limits(**_cap_changes(daily=daily, monthly=monthly))
        settings = acct.settings()
        tz = gw.config.credits.timezone if gw.config.credits else "UTC"
        today = _today(tz)
        spent_today = _spent(acct, today)
        spent_month = _spent(acct, today.replace(day=1))
    out = cli_state().out
    caps = usd_column([settings.daily_limit, settings.monthly_limit])
    daily_cap, monthly_cap = (cap or "none" for cap in caps)
    today_spent, month_spent = usd_column([spent_today, spent_month])
    rows = (
        ("daily   ", daily_cap, "spent today     ", today_spent),
        ("monthly ", monthly_cap, "spent this month", month_spent),
    )
    width = max(len(daily_cap), len(monthly_cap))
    spent = max(len(today_spent), len(month_spent))
    out.print(Text(f"Spending caps of account '{acct.name}' ({tz})", style="bold"))
    for label, cap_text, spent_label, spent_text in rows:
        out.print(Text(f"  {label} {cap_text:<{width}}  {spent_label}  {spent_text:>{spent}}"))


def _cap_changes(**caps: Decimal | NoCap | None) -> dict[str, Decimal | None]:
    """Only the caps given: an amount, or None to remove the cap."""
    return {k: v if isinstance(v, Decimal) else None for k, v in caps.items() if v is not None}


def _today(tz: str) -> date:
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(tz)).date()


def _spent(acct: CreditAccount, since: date) -> Decimal:
    return sum((r.cost for r in acct.usage(group_by="account", since=since)), Decimal(0))


@credits.command("auto-recharge")
@click.option("--below", callback=money, metavar="AMOUNT", help="Recharge below this balance.")
@click.option("--amount", callback=money, metavar="AMOUNT", help="What each recharge buys.")
@click.option("--monthly-limit", callback=money, metavar="AMOUNT", help="Most per calendar month.")
@click.option("--off", is_flag=True, help="Turn auto-recharge off for this account.")
@account_option
@config_option
def auto_recharge(
    below: Decimal | None,
    amount: Decimal | None,
    monthly_limit: Decimal | None,
    off: bool,
    account: str | None,
    config_path: Path | None,
) -> None:
    """Show the auto-recharge rule; set it with --below, --amount and --monthly-limit."""
    given = [v for v in (below, amount, monthly_limit) if v is not None]
    if off and given:
        raise click.UsageError("--off cannot be combined with --below/--amount/--monthly-limit")
    if given and len(given) != 3:
        raise click.UsageError("give all three of --below, --amount and --monthly-limit")
    with open_gateway(config_path) as gw:
        acct = credit_account(gw, account, must_exist=not (off or given))
        if off:
            acct.disable_auto_recharge()
        elif below is not None and amount is not None and monthly_limit is not None:
            acct.set_auto_recharge(below=below, amount=amount, monthly_limit=monthly_limit)
        rule = acct.settings().auto_recharge
    out = cli_state().out
    if rule is None:
        out.print(Text(f"Auto-recharge of account '{acct.name}' is off."))
        return
    rule_below, rule_amount, rule_limit = rule
    out.print(
        Text(
            f"Auto-recharge of account '{acct.name}': buy {usd(rule_amount)} when the balance "
            f"falls below {usd(rule_below)}, at most {usd(rule_limit)} a month."
        )
    )
    if given:
        out.print(
            Text(
                "Note: the command line has no payment method, so a recharge it sets off is "
                "declined and recorded; your application's payment_method pays for them.",
                style="dim",
            )
        )


@credits.command()
@account_option
@config_option
def expire(account: str | None, config_path: Path | None) -> None:
    """Write off expired credit and lapsed holds now (every write also does this)."""
    with open_gateway(config_path) as gw:
        acct = credit_account(gw, account)
        entries = acct.expire()
    out = cli_state().out
    if not entries:
        out.print(Text(f"Nothing to expire in account '{acct.name}'."))
        return
    for e in entries:
        what = f"lot {e.lot_id}" if e.lot_id else f"hold {e.hold_id}"
        amount = usd(-e.amount) if e.amount_nanos else usd(-e.held)
        out.print(Text(f"{e.kind}: {what}, {amount}"))


@credits.command()
@config_option
def migrate(config_path: Path | None) -> None:
    """Bring the credit store to the newest schema now (stores also do it on first use)."""
    from gateway.config import load_config
    from gateway.credits.store import migrate as migrate_store
    from gateway.credits.store import safe_url
    from gateway.errors import ConfigError

    config = load_config(find_config(config_path))
    if config.credits is None:
        raise ConfigError(
            "this config has no credit account",
            file=config.source,
            key="credits",
            fix="add a credits: section (e.g. credits: {store: sqlite:///credits.db})",
        )
    url = config.credits.store
    done = migrate_store(url)
    shown = safe_url(url) if url.startswith(("postgresql://", "postgres://")) else url
    where = f"the credit store {shown}"
    out = cli_state().out
    if done.applied:
        out.print(
            Text(
                f"Migrated {where} from schema {done.before} to {done.after}: "
                + ", ".join(done.applied)
            )
        )
    else:
        out.print(Text(f"{where[0].upper()}{where[1:]} is up to date (schema {done.after})."))


@credits.command()
@config_option
def recover(config_path: Path | None) -> None:
    """Write the settled calls of gateway processes that died before writing them.

    Each gateway journals a settled call locally before answering; the journal of a process
    that is gone is replayed into the store here (each call exactly once), and its leases are
    given back. Every gateway also does this on its first write, then every minute.
    """
    with open_gateway(config_path) as gw:
        done = gw.credits.recover()
    out = cli_state().out
    if not done.journals:
        out.print(Text("Nothing to recover: no journal of a process that died."))
    else:
        out.print(
            Text(
                f"Replayed {done.journals} journal(s) of processes that died: "
                f"{done.calls} call(s) written, charged {usd(done.cost)}; "
                f"{done.already} were already in the store; {done.leases} lease(s) closed."
            )
        )
    for problem in done.problems:
        cli_state().err.print(Text(f"warning: {problem}"))
    if done.problems:
        raise CliError("some journals could not be replayed; they are kept and tried again")


@credits.command()
@account_option
@config_option
def verify(account: str | None, config_path: Path | None) -> None:
    """Rebuild the account's balances from its ledger and compare; report unbilled work.

    Exit code 1 when the ledger does not add up; unbilled work (a journal of a dead process
    not replayed yet, a hold past its TTL) is listed as a warning.
    """
    with open_gateway(config_path) as gw:
        checked = credit_account(gw, account).verify()
    out = cli_state().out
    out.print(
        Text(
            f"Account '{checked.account}' matches its ledger: {checked.entries} entries, "
            f"posted {usd(checked.posted)}, on hold {usd(checked.held)}, "
            f"requests {usd(checked.requests_cost)}."
        )
    )
    for line in checked.unbilled:
        cli_state().err.print(Text(f"warning: {line}"))
