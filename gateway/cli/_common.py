"""What every command shares: the consoles, the config and account options, argument types
(money as Decimal, ``--since``), opening a gateway, and money formatting.

Imports of the gateway itself (pydantic, the SDK types) happen inside functions, so that
``gateway --help`` stays fast.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console

if TYPE_CHECKING:
    from gateway import Gateway
    from gateway.credits.account import CreditAccount

__all__ = [
    "CliError",
    "CliState",
    "OrderedGroup",
    "account_option",
    "cap",
    "config_option",
    "credit_account",
    "find_config",
    "money",
    "open_gateway",
    "since",
    "state",
    "usd",
    "usd_column",
]

F = TypeVar("F", bound=Callable[..., Any])

#: Where a config is looked for when neither --config nor GATEWAY_CONFIG names one, in order.
DEFAULT_CONFIGS = ("./gateway.yaml", "~/.config/gateway/gateway.yaml")
#: The environment variable naming the config when no --config is given.
CONFIG_ENV = "GATEWAY_CONFIG"


class OrderedGroup(click.Group):
    """Lists its commands in the order they were added (click sorts them by name)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


class CliError(click.ClickException):
    """A problem the user can fix, shown as one line (exit code 1)."""

    exit_code = 1


@dataclass
class CliState:
    """Per invocation: the ``--debug`` flag and the two consoles (resolved at write time, so
    a test runner that swaps sys.stdout sees the output)."""

    debug: bool = False
    #: ``gateway --config FILE COMMAND``: the config, unless the command gets its own --config.
    config_path: Path | None = None
    out: Console = field(default_factory=lambda: Console(highlight=False))
    err: Console = field(default_factory=lambda: Console(stderr=True, highlight=False))


def state() -> CliState:
    """The state of the command being run."""
    ctx = click.get_current_context(silent=True)
    found = ctx.find_object(CliState) if ctx is not None else None
    return found if found is not None else CliState()


# -- logging ---------------------------------------------------------------------------------


class _LogHandler(logging.Handler):
    """The gateway's log records as ``warning: ...`` lines on stderr; tracebacks only with
    --debug. Writes to the current sys.stderr (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.debug = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if self.debug:
                text = f"{record.name}: {text}"
                if record.exc_info:
                    text += "\n" + logging.Formatter().formatException(record.exc_info)
            else:
                text = " ".join(text.split())
            print(f"{record.levelname.lower()}: {text}", file=sys.stderr)
        except Exception:  # pragma: no cover - logging must never break a command
            self.handleError(record)


_HANDLER = _LogHandler()


@contextmanager
def cli_logging() -> Iterator[_LogHandler]:
    """Route the ``gateway`` logger to stderr for one command, then restore it as it was."""
    logger = logging.getLogger("gateway")
    saved = (logger.level, logger.propagate)
    _HANDLER.debug = False
    _HANDLER.setLevel(logging.WARNING)
    logger.addHandler(_HANDLER)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        yield _HANDLER
    finally:
        logger.removeHandler(_HANDLER)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def set_debug(enabled: bool) -> None:
    """--debug: every gateway log record (attempts, retries, fallbacks), with tracebacks."""
    _HANDLER.debug = enabled
    level = logging.DEBUG if enabled else logging.WARNING
    _HANDLER.setLevel(level)
    logging.getLogger("gateway").setLevel(level)


@contextmanager
def quiet_logs() -> Iterator[None]:
    """Hide warnings for a while (the demo tells its own story); --debug still shows all."""
    if _HANDLER.debug:
        yield
        return
    _HANDLER.setLevel(logging.ERROR)
    try:
        yield
    finally:
        _HANDLER.setLevel(logging.WARNING)


# -- argument types --------------------------------------------------------------------------


#: The ledger's limit on one amount (gateway.credits.money.MAX_AMOUNT, which a test pins; not
#: imported, so that parsing arguments loads no pydantic).
_MAX_AMOUNT = Decimal(1_000_000_000)


def _money(text: str) -> Decimal:
    """An amount of USD, parsed as a Decimal from its text (never through a float)."""
    from gateway.credits.money import decimal_from_text

    value = text.strip().removeprefix("$")
    try:
        amount = decimal_from_text(value)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not an amount of money: it {exc}") from None
    if not amount.is_finite():
        raise click.BadParameter(f"{text!r} is not a finite amount")
    if amount <= 0:
        raise click.BadParameter(f"{text!r}: the amount must be more than zero")
    if decimal_places(amount) > 9:
        raise click.BadParameter(
            f"{text!r} has more than 9 decimal places (the ledger counts billionths of a dollar)"
        )
    if amount >= _MAX_AMOUNT:
        raise click.BadParameter(f"{text!r} is absurdly large (the limit is below $1e9)")
    return amount


def money(ctx: click.Context, param: click.Parameter, value: str | None) -> Decimal | None:
    """Click callback: ``--amount 20.50`` as ``Decimal("20.50")``."""
    return None if value is None else _money(value)


class NoCap:
    """``--daily none``: remove the cap."""

    def __repr__(self) -> str:
        return "none"


NO_CAP = NoCap()


def cap(ctx: click.Context, param: click.Parameter, value: str | None) -> Decimal | NoCap | None:
    """Click callback: a spending cap, an amount or ``none`` to remove it."""
    if value is None:
        return None
    if value.strip().lower() in ("none", "off"):
        return NO_CAP
    return _money(value)


_DURATION = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def since(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | date | None:
    """Click callback: ``7d``, ``24h``, ``30m``, ``2w`` (before now), a date (``2026-01-15``,
    midnight in the credit account's time zone) or an ISO date-time (UTC unless it carries an
    offset)."""
    if value is None:
        return None
    text = value.strip().lower()
    match = _DURATION.match(text)
    if match:
        return datetime.now(UTC) - timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a duration (7d, 24h, 30m, 2w), a date (2026-01-15) or an "
            "ISO date-time"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def usd(amount: Decimal | None, places: int | None = None) -> str:
    """``$5.00``, ``$0.0625``, ``-$1.20``: exact with at least two decimal places, or with
    exactly ``places`` (rounded half even, the ledger's rounding)."""
    if amount is None:
        return "–"
    if places is not None:
        amount = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    sign = "-" if amount < 0 else ""
    text = f"{abs(amount):,f}"
    whole, _, frac = text.partition(".")
    if places is None:
        frac = frac.rstrip("0").ljust(2, "0")
    return f"{sign}${whole}.{frac}" if frac else f"{sign}${whole}"


def decimal_places(amount: Decimal) -> int:
    """How many decimal places ``amount`` needs to be shown exactly (at least two)."""
    exponent = amount.normalize().as_tuple().exponent
    return max(2, -exponent) if isinstance(exponent, int) else 2


def usd_column(amounts: Sequence[Decimal | None]) -> list[str]:
    """Amounts that are read together (a table column, a total and its parts): exact, each
    with the same number of decimal places (as many as the most precise one needs), so they
    line up and visibly add up. None is shown as an empty cell."""
    places = max((decimal_places(a) for a in amounts if a is not None), default=2)
    return ["" if a is None else usd(a, places) for a in amounts]


# -- options shared by commands ---------------------------------------------------------------


def config_option(func: F) -> F:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="FILE",
        help=f"The YAML config (also accepted before the command) [default: ${CONFIG_ENV}, "
        "else ./gateway.yaml, else ~/.config/gateway/gateway.yaml].",
    )(func)


def account_option(func: F) -> F:
    return click.option(
        "--account",
        metavar="NAME",
        help="Which credit account [default: the config's default account].",
    )(func)


def find_config(explicit: Path | None) -> Path:
    """The config file to use: the command's --config, else ``gateway --config``, else
    ``$GATEWAY_CONFIG``, else the first of :data:`DEFAULT_CONFIGS` found."""
    if explicit is None:
        explicit = state().config_path
    origin = ""
    if explicit is None and os.environ.get(CONFIG_ENV):
        explicit, origin = Path(os.environ[CONFIG_ENV]), f" (named by {CONFIG_ENV})"
    if explicit is not None:
        if not explicit.is_file():
            raise CliError(f"config file {explicit}{origin} not found")
        return explicit
    for candidate in DEFAULT_CONFIGS:
        path = Path(candidate).expanduser()
        if path.is_file():
            return path
    raise CliError(
        "no config found: looked for ./gateway.yaml and ~/.config/gateway/gateway.yaml. "
        f"Pass --config FILE (or set {CONFIG_ENV}), or run `gateway demo` to write the "
        "offline demo's config here"
    )


@contextmanager
def open_gateway(config_path: Path | None) -> Iterator[Gateway]:
    """A Gateway on the config found by :func:`find_config`, closed afterwards."""
    from gateway import Gateway

    gw = Gateway.from_config(find_config(config_path))
    try:
        yield gw
    finally:
        gw.close()


def credit_account(gw: Gateway, account: str | None, *, must_exist: bool = True) -> CreditAccount:
    """The default credit account, or the named one. A named account that was never written
    to is an error unless ``must_exist`` is False (buying or granting credit creates it)."""
    default = gw.credits
    if account is None or account == default.name:
        return default
    named = default.account(account)
    if must_exist and not named.exists():
        raise CliError(
            f"credit account '{account}' does not exist; a named account starts with its "
            f"first purchase or grant, e.g. `gateway credits grant 5 --account {account}`"
        )
    return named
