"""The ``gateway`` command line through click's CliRunner: every command, what it prints,
its exit code, and bad arguments (one ``error:`` line, a non-zero exit, never a traceback)."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gateway import Gateway
from gateway.cli._app import cli
from gateway.cli._common import usd
from gateway.cli.demo import demo_config_text
from gateway.testing.clock import ManualClock

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEMO_DAY = "2026-01-15"
# Every story beat of the issue, as the demo tells it.
STORY = [
    "Bought $5.00 of credit (payment mem-1)",
    "calls on route 'smart', all answered by openai/gpt-4o",
    "OpenAI outage: openai/gpt-4o answers HTTP 503",
    "openai/gpt-4o 503 → retry in",
    "anthropic/claude-sonnet-4-6 ok",
    "the circuit breaker for openai/gpt-4o opened after 4 failures",
    "openai/gpt-4o skipped (circuit breaker open)",
    "OpenAI is back",
    "the probe succeeded, so the breaker closed",
    "Gemini rate limit on route 'fast'",
    "gemini/gemini-2.5-flash 429 → retry in 1s: 429 → openai/gpt-4o-mini ok",
    "Auto-recharge: the balance fell below $2.00, but buying $10.00 was declined (card expired)",
    "A call was refused for lack of credit",
    "InsufficientCredits: account 'default' has",
    "(checked: the fake providers received no request)",
    "Card updated; bought $5.00 of credit by hand",
    "Auto-recharge: the balance fell below $2.00, so $10.00 was bought (payment mem-4)",
    "The daily spending cap of $12.00 was reached",
    "SpendLimitExceeded",
    "At the end of the day, account 'default' has",
    "Usage by provider and model",
]


@contextmanager
def chdir(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def invoke(*args: str, env: dict[str, str | None] | None = None) -> Result:
    """Run ``gateway ARGS`` in the current directory, 120 columns wide."""
    runner = CliRunner()
    return runner.invoke(
        cli, list(args), env={"COLUMNS": "120", **(env or {})}, prog_name="gateway"
    )


def flat(text: str) -> str:
    """Output with its line wrapping undone."""
    return " ".join(text.split())


def one_error_line(result: Result) -> str:
    """The single ``error:`` line of a failed command (and proof there is no traceback)."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No real ~/.config/gateway/gateway.yaml and no GATEWAY_CONFIG leak into a test."""
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    """``gateway demo`` once, with no flags, in a fresh folder (as a new user runs it)."""
    folder = tmp_path_factory.mktemp("demo")
    with chdir(folder):
        result = invoke("demo", env={"HOME": str(folder), "GATEWAY_CONFIG": None})
    return folder, result


@pytest.fixture
def demo_dir(demo_run: tuple[Path, Result], tmp_path: Path) -> Iterator[Path]:
    """A private copy of the folder the demo ran in, as the current directory."""
    folder = tmp_path / "work"
    shutil.copytree(demo_run[0], folder)
    with chdir(folder):
        yield folder


def ledger_total(folder: Path) -> Decimal:
    """The usage in the ledger of the demo config in ``folder`` (its store path is relative)."""
    with chdir(folder), Gateway.from_config("gateway.yaml") as gw:
        return sum((r.cost for r in gw.credits.usage(group_by="model")), Decimal(0))


# -- the command tree ------------------------------------------------------------------------


def test_help_lists_every_command() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("demo", "chat", "credits", "usage", "config"):
        assert re.search(rf"^\s+{command}\s", result.output, re.M), command
    result = invoke("credits", "--help")
    for command in (
        "balance", "buy", "grant", "history", "limits", "auto-recharge", "expire", "migrate",
    ):  # fmt: skip
        assert re.search(rf"^\s+{command}\s", result.output, re.M), command


def test_no_arguments_shows_the_help() -> None:
    result = invoke()
    assert "Usage: " in result.output and "demo" in result.output


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and "gateway, version" in result.output


def test_unknown_command_is_one_line_exit_2() -> None:
    line = one_error_line(invoke("demoo"))
    assert "No such command 'demoo'" in line and "(see 'gateway --help')" in line
    assert invoke("demoo").exit_code == 2


def test_import_gateway_does_not_import_the_cli() -> None:
    code = (
        "import sys, gateway; gateway.Gateway\n"
        "print([m for m in ('gateway.cli', 'click', 'rich') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- gateway demo ----------------------------------------------------------------------------


def test_demo_tells_the_whole_story(demo_run: tuple[Path, Result]) -> None:
    folder, result = demo_run
    assert result.exit_code == 0, result.output
    out = result.stdout
    positions = [out.find(beat) for beat in STORY]
    missing = [beat for beat, at in zip(STORY, positions, strict=True) if at < 0]
    assert not missing, out
    assert positions == sorted(positions), "the story is told in order"
    assert "./gateway.yaml (written: the demo's config)" in out
    # By default the simulated day is yesterday: in the past, inside `--since 7d`.
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    assert date.fromisoformat(simulated_day(result)) in (yesterday, yesterday - timedelta(days=1))
    assert (folder / "gateway.yaml").read_text() == demo_config_text()
    assert (folder / "gateway-demo.db").exists()
    # The usage table's totals are the ledger's: every call, to the nano-dollar.
    with chdir(folder), Gateway.from_config("gateway.yaml") as gw:
        calls = len(gw.credits.requests())
    total = re.search(r"│ total +│ +│ +(\d+) │.*│ +(\$[\d.]+) │", out)
    assert total is not None, out
    assert (int(total[1]), total[2]) == (calls, usd(ledger_total(folder)))


def test_demo_is_deterministic_and_starts_clean_when_run_again(
    demo_run: tuple[Path, Result], demo_dir: Path
) -> None:
    first = demo_run[1].stdout
    total = ledger_total(demo_dir)
    again = invoke("demo")
    assert again.exit_code == 0, again.output
    assert "(the demo's config, already there)" in again.stdout
    assert "previous run removed" in again.stdout

    def story(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith(("  config", "  ledger"))]

    assert story(again.stdout) == story(first)
    assert ledger_total(demo_dir) == total  # replaced, not appended


def test_demo_on_a_chosen_day(tmp_path: Path) -> None:
    with chdir(tmp_path):
        result = invoke("demo", "--date", DEMO_DAY)
        assert result.exit_code == 0
        assert f"day     {DEMO_DAY} (UTC)" in result.stdout
        assert f"({DEMO_DAY}, UTC)" in flat(result.stdout)  # the daily cap's day
        assert one_error_line(invoke("demo", "--date", "tomorrow")).startswith("error: Invalid")


def test_demo_leaves_your_own_config_alone(tmp_path: Path) -> None:
    mine = "providers:\n  fake: {}\nroutes:\n  r:\n    targets: [fake/m]\n"
    (tmp_path / "gateway.yaml").write_text(mine)
    with chdir(tmp_path):
        result = invoke("demo")
        assert result.exit_code == 0, result.output
        assert (tmp_path / "gateway.yaml").read_text() == mine
        assert (tmp_path / "gateway-demo.yaml").read_text() == demo_config_text()
        assert "./gateway.yaml is your own config and was left alone" in result.stdout
        assert "gateway usage --config ./gateway-demo.yaml" in result.stdout
        usage = invoke("usage", "--config", "gateway-demo.yaml")
        assert usage.exit_code == 0 and "openai/gpt-4o" in usage.stdout


def demo_steps(out: str) -> list[tuple[str, str]]:
    """The demo's steps as (text, balance shown), in order."""
    steps: list[tuple[str, str]] = []
    for line in out.splitlines():
        if not line.strip():
            if steps:
                break  # the story ends at the first blank line after it began
            continue
        first = re.match(r"^\d\d:\d\d.*?(-?\$[\d,]+\.\d+)\s*$", line)
        if first:
            steps.append((line, first[1]))
        elif steps:
            steps[-1] = (steps[-1][0] + " " + line, steps[-1][1])
    return steps


def test_demo_steps_add_up_on_the_screen(demo_run: tuple[Path, Result]) -> None:
    """Each step's balance is the one before it, minus what the step says was spent or plus
    what it says was bought, in the numbers as shown (one rounding, to the cent)."""
    steps = demo_steps(demo_run[1].stdout)
    assert len(steps) >= 12
    assert all(re.fullmatch(r"\$[\d,]+\.\d\d", shown) for _, shown in steps)  # one precision
    balances = [Decimal(shown[1:].replace(",", "")) for _, shown in steps]
    checked = 0
    for (text, _), before, after in zip(steps[1:], balances[:-1], balances[1:], strict=True):
        text = flat(text)
        spent = re.search(r"spent \$([\d.]+) ·|\(\$([\d.]+) in all\)", text)
        bought = re.search(r"(?:[Bb]ought|so) \$([\d.]+)", text)
        if spent:
            assert before - Decimal(spent[1] or spent[2]) == after, text
            checked += 1
        elif bought and "declined" not in text:
            assert before + Decimal(bought[1]) == after, text
            checked += 1
    assert checked == 8  # five stretches of traffic, the outage and two purchases


def test_demo_hints_carry_the_config_it_was_given(tmp_path: Path) -> None:
    with chdir(tmp_path):
        after = invoke("demo", "--config", "mine.yaml", "--date", DEMO_DAY)
        assert after.exit_code == 0, after.output
        assert "gateway usage --config ./mine.yaml" in after.stdout
        assert 'gateway chat "Hello" --config ./mine.yaml' in after.stdout
        elsewhere = invoke("demo", "--config", "sub/mine.yaml", "--date", DEMO_DAY)
        assert "ledger  ./sub/gateway-demo.db" in elsewhere.stdout  # beside its config
        assert "gateway usage --config ./sub/mine.yaml" in elsewhere.stdout
        usage = invoke("usage", "--config", "sub/mine.yaml")
        assert usage.exit_code == 0 and "openai/gpt-4o" in usage.stdout
        before = invoke("--config", "theirs.yaml", "demo", "--date", DEMO_DAY)
        assert (tmp_path / "theirs.yaml").read_text() == demo_config_text()
        assert "gateway credits history --all --config ./theirs.yaml" in before.stdout
        usage = invoke("usage", "--config", "theirs.yaml")
        assert usage.exit_code == 0 and "openai/gpt-4o" in usage.stdout
        # GATEWAY_CONFIG points elsewhere: ./gateway.yaml needs naming too.
        named = invoke("demo", "--date", DEMO_DAY, env={"GATEWAY_CONFIG": "other.yaml"})
        assert "gateway usage --config ./gateway.yaml" in named.stdout
        plain = invoke("demo", "--date", DEMO_DAY)
        assert re.search(r"^  gateway usage +spend by model", plain.stdout, re.M)


def test_the_packaged_demo_config_is_examples_offline_yaml() -> None:
    assert (EXAMPLES / "offline.yaml").read_text() == demo_config_text()


# -- gateway usage ---------------------------------------------------------------------------


def simulated_day(demo: Result) -> str:
    """The day the demo simulated (yesterday, when it ran), from its header."""
    found = re.search(r"day +(\d{4}-\d{2}-\d{2}) \(UTC\)", demo.stdout)
    assert found is not None, demo.stdout
    return found[1]


def test_usage_after_the_demo_shows_its_spend_and_a_chart(
    demo_run: tuple[Path, Result], demo_dir: Path
) -> None:
    day = simulated_day(demo_run[1])
    result = invoke("usage")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Usage of account 'default', by model" in out
    for model in ("openai/gpt-4o", "anthropic/claude-sonnet-4-6", "gemini/gemini-2.5-flash"):
        assert model in out
    assert usd(ledger_total(demo_dir)) in out
    assert re.search(rf"^{day}  █+ +\$", out, re.M), out
    assert "Spend per day" in out
    assert "Spend per day" in invoke("usage", "--since", "7d").stdout


@pytest.mark.parametrize(
    ("by", "expected"),
    [
        ("provider", ["anthropic", "gemini", "openai"]),
        ("provider,model", ["gpt-4o-mini", "claude-sonnet-4-6"]),
        ("route", ["smart", "fast"]),
        ("tag:feature", ["summaries", "reports", "autocomplete"]),
        ("day", ["DAY"]),
        ("account", ["Usage of every account", "default"]),
    ],
)
def test_usage_grouped(
    demo_run: tuple[Path, Result], demo_dir: Path, by: str, expected: list[str]
) -> None:
    result = invoke("usage", "--by", by)
    assert result.exit_code == 0, result.output
    for text in expected:
        assert text.replace("DAY", simulated_day(demo_run[1])) in result.stdout


def test_usage_csv_and_json_add_up_to_the_ledger(demo_dir: Path) -> None:
    total = ledger_total(demo_dir)
    rows = list(csv.DictReader(io.StringIO(invoke("usage", "--format", "csv").stdout)))
    assert {r["model"] for r in rows} >= {"openai/gpt-4o", "anthropic/claude-sonnet-4-6"}
    assert sum(Decimal(r["cost"]) for r in rows) == total
    data = json.loads(invoke("usage", "--by", "provider", "--format", "json").stdout)
    assert all(isinstance(r["cost"], str) for r in data)  # money never as a JSON float
    assert sum(Decimal(r["cost"]) for r in data) == total


def test_usage_since_a_date_with_nothing_after_it(demo_dir: Path) -> None:
    result = invoke("usage", "--since", "2099-01-01")
    assert result.exit_code == 0
    assert "No usage recorded for account 'default' since 2099-01-01." in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "is not a duration (7d, 24h, 30m, 2w)"),
        (["--since", "7 days"], "is not a duration"),
        (["--by", "colour"], "cannot group by 'colour'"),
        (["--by", "tag"], "name the tag to group by, e.g. --by tag:feature"),
        (["--format", "xml"], "Invalid value for '--format'"),
    ],
)
def test_usage_bad_arguments(demo_dir: Path, args: list[str], message: str) -> None:
    result = invoke("usage", *args)
    assert result.exit_code == 2
    assert message in one_error_line(result)


# -- gateway chat ----------------------------------------------------------------------------


def test_chat_streams_the_answer_then_says_who_answered_and_the_cost(demo_dir: Path) -> None:
    result = invoke("chat", "Hello there")
    assert result.exit_code == 0, result.output
    assert result.stdout == "[openai/gpt-4o] You said: Hello there\n"  # only the answer
    assert "answered by openai/gpt-4o on route 'smart'" in result.stderr
    assert "attempt 1: openai/gpt-4o: ok" in result.stderr
    assert re.search(r"cost \$0\.\d+ · account 'default'", result.stderr)


def test_chat_on_another_route_or_a_direct_model(demo_dir: Path) -> None:
    fast = invoke("chat", "Hi", "--route", "fast", "--max-tokens", "50", "--system", "Be brief")
    assert fast.exit_code == 0 and "[gemini/gemini-2.5-flash] You said: Hi" in fast.stdout
    direct = invoke("chat", "Hi", "--route", "anthropic/claude-sonnet-4-6")
    assert "answered by anthropic/claude-sonnet-4-6" in direct.stderr


def test_chat_shows_every_attempt_of_a_fallback(tmp_path: Path) -> None:
    config = tmp_path / "chaos.yaml"
    config.write_text(
        "providers: {openai: {type: fake}, anthropic: {type: fake}}\n"
        "routes:\n  smart:\n    targets: [openai/gpt-4o, anthropic/claude-sonnet-4-6]\n"
        "    retry: {attempts: 1}\n"
        "chaos:\n  enabled: true\n  faults:\n"
        "    - {target: openai/gpt-4o, rate: 1, error: server_error}\n"
    )
    result = invoke("chat", "Hello", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "attempt 1: openai/gpt-4o: ProviderUnavailable (HTTP 503)" in result.stderr
    assert "attempt 2: anthropic/claude-sonnet-4-6: ok" in result.stderr
    assert "cost not priced" not in result.stderr  # fakes have a default price
    assert "warning: " in result.stderr  # chaos announces itself on the gateway logger


def test_chat_refused_for_lack_of_credit_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "gateway.yaml").write_text(demo_config_text())
    with chdir(tmp_path):
        line = one_error_line(invoke("chat", "Hello"))
    assert "account 'default' has $0.00 available" in line
    assert "No provider was called" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["chat", "Hi", "--route", "nope"], "nope"),
        (["chat", "Hi", "--max-tokens", "0"], "Invalid value for '--max-tokens'"),
        (["chat"], "Missing argument 'PROMPT'"),
    ],
)
def test_chat_bad_arguments(demo_dir: Path, args: list[str], message: str) -> None:
    assert message in one_error_line(invoke(*args))


# -- gateway credits -------------------------------------------------------------------------


def test_credits_balance_after_the_demo(demo_dir: Path) -> None:
    result = invoke("credits", "balance")
    assert result.exit_code == 0, result.output
    with Gateway.from_config("gateway.yaml") as gw:
        available = gw.credits.balance().available
    assert f"Account 'default': {usd(available)} available" in result.stdout
    assert "auto_recharge" in result.stdout  # the lot it came from


def test_credits_buy_is_exact_and_idempotent_with_a_key(demo_dir: Path) -> None:
    with Gateway.from_config("gateway.yaml") as gw:
        before = gw.credits.balance().available
    result = invoke("credits", "buy", "20.000000001", "--key", "order-7")
    assert result.exit_code == 0, result.output
    assert "Bought $20.000000001 for account 'default'" in result.stdout
    assert invoke("credits", "buy", "20.000000001", "--key", "order-7").exit_code == 0
    with Gateway.from_config("gateway.yaml") as gw:
        assert gw.credits.balance().available == before + Decimal("20.000000001")
    conflict = one_error_line(invoke("credits", "buy", "30", "--key", "order-7"))
    assert "idempotency key 'order-7' was used for a purchase of $20.000000001" in conflict


@pytest.mark.parametrize(
    ("amount", "code", "message"),
    [
        ("abc", 2, "'abc' is not an amount of money"),
        ("1,000", 2, "is not an amount of money"),
        ("-5", 2, "'-5': the amount must be more than zero"),
        ("0", 2, "the amount must be more than zero"),
        ("NaN", 2, "is not a finite amount"),
        ("5.0000000001", 2, "more than 9 decimal places"),
        ("1e400", 2, "is absurdly large"),
        ("1000000000", 2, "is absurdly large"),
        # Within what an amount can be, but against the account's rules: the operation fails.
        ("2", 1, "below the minimum of $5"),
        ("20000", 1, "above the maximum of $10000"),
    ],
)
def test_credits_buy_bad_amounts(demo_dir: Path, amount: str, code: int, message: str) -> None:
    result = invoke("credits", "buy", amount)
    assert result.exit_code == code
    assert message in one_error_line(result)


@pytest.mark.parametrize(
    "args",
    [
        ["credits", "grant", "0.0000000001"],
        ["credits", "limits", "--daily", "1e400"],
        ["credits", "auto-recharge", "--below", "1", "--amount", "2.0000000001",
         "--monthly-limit", "9"],
    ],
)  # fmt: skip
def test_a_bad_amount_anywhere_is_a_usage_error(demo_dir: Path, args: list[str]) -> None:
    result = invoke(*args)
    assert result.exit_code == 2  # the README: exit 2 when the command line was wrong
    assert "Invalid value" in one_error_line(result)


def test_the_cli_amount_limit_is_the_ledgers() -> None:
    from gateway.cli import _common
    from gateway.credits.money import MAX_AMOUNT

    assert _common._MAX_AMOUNT == MAX_AMOUNT


def test_credits_grant_creates_a_named_account(demo_dir: Path) -> None:
    result = invoke(
        "credits", "grant", "1.5", "--note", "trial", "--account", "customer-42",
        "--expires", "2099-01-01",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Granted $1.50 to account 'customer-42', expires 2099-01-01." in result.stdout
    balance = invoke("credits", "balance", "--account", "customer-42")
    assert "Account 'customer-42': $1.50 available" in balance.stdout
    history = invoke("credits", "history", "--account", "customer-42")
    assert "trial" in history.stdout


def test_credits_history(demo_dir: Path) -> None:
    table = invoke("credits", "history", "--limit", "500")
    assert table.exit_code == 0
    for text in ("auto_recharge", "recharge_declined", "card expired", "purchase", "settle"):
        assert text in table.stdout
    rows = json.loads(invoke("credits", "history", "--kind", "purchase", "--format", "json").stdout)
    assert [r["kind"] for r in rows] == ["purchase", "purchase"]
    assert [r["amount"] for r in rows] == ["5.00", "5.00"]
    limited = list(csv.DictReader(io.StringIO(
        invoke("credits", "history", "--limit", "3", "--format", "csv").stdout
    )))  # fmt: skip
    assert len(limited) == 3
    assert one_error_line(invoke("credits", "history", "--kind", "refund")).startswith(
        "error: Invalid value for '--kind'"
    )


def test_credits_history_says_how_many_it_does_not_show(demo_dir: Path) -> None:
    with Gateway.from_config("gateway.yaml") as gw:
        total = len(gw.credits.history())
    default = invoke("credits", "history")
    assert f"showing the newest 50 of {total} entries; --limit N or --all for more" in flat(
        default.stdout
    )
    every = invoke("credits", "history", "--all", "--format", "csv")
    assert len(list(csv.DictReader(io.StringIO(every.stdout)))) == total
    assert "showing" not in every.stderr
    few = invoke("credits", "history", "--limit", "3", "--format", "json")
    assert len(json.loads(few.stdout)) == 3  # the note goes to stderr, not into the JSON
    assert f"showing the newest 3 of {total} entries" in few.stderr
    purchases = invoke("credits", "history", "--kind", "purchase")
    assert "showing" not in purchases.stdout


def test_credits_history_at_80_columns_never_cuts_a_number(demo_dir: Path) -> None:
    out = invoke("credits", "history", "--limit", "400", env={"COLUMNS": "80"}).stdout
    table = [line for line in out.splitlines() if line.startswith("│")]
    assert table and all(len(line) <= 80 for line in out.splitlines())
    cells = [cell.strip() for line in table for cell in line.strip("│").split("│")]
    # A number cut in two leaves a cell that is a bare run of digits, or a dollar amount
    # without its decimal point.
    assert not [c for c in cells if re.fullmatch(r"[\d.,]+", c)]
    assert not re.search(r"\$\d[\d,]*(?![\d,.])", out)
    for column in (2, 3):  # amount, held: one precision each
        places = {
            len(cell.split(".")[1])
            for line in table
            if (cell := line.strip("│").split("│")[column].strip())
        }
        assert len(places) == 1, places


def test_usage_cost_column_has_one_precision_and_adds_up(demo_dir: Path) -> None:
    out = invoke("usage", "--by", "provider").stdout
    costs = re.findall(r"(\$[\d,]+\.\d+) │$", out, re.M)
    assert len(costs) == 4  # three providers and the total
    assert len({len(c.split(".")[1]) for c in costs}) == 1, costs
    *rows, total = (Decimal(c[1:].replace(",", "")) for c in costs)
    assert sum(rows) == total


def test_credits_limits_show_and_set(demo_dir: Path) -> None:
    shown = invoke("credits", "limits")
    assert "daily    $12.00" in shown.stdout and "monthly  $100.00" in shown.stdout
    changed = invoke("credits", "limits", "--daily", "50", "--monthly", "none")
    assert changed.exit_code == 0
    assert "daily    $50.00" in changed.stdout and "monthly  none" in changed.stdout
    assert "Invalid value for '--daily'" in one_error_line(
        invoke("credits", "limits", "--daily", "lots")
    )


def test_credits_auto_recharge_show_set_and_off(demo_dir: Path) -> None:
    shown = invoke("credits", "auto-recharge")
    assert "buy $10.00 when the balance falls below $2.00, at most $30.00 a month" in shown.stdout
    changed = invoke(
        "credits", "auto-recharge", "--below", "3", "--amount", "20", "--monthly-limit", "60"
    )
    assert changed.exit_code == 0, changed.output
    assert "buy $20.00 when the balance falls below $3.00, at most $60.00 a month" in (
        changed.stdout
    )
    assert "is off" in invoke("credits", "auto-recharge", "--off").stdout
    partial = one_error_line(invoke("credits", "auto-recharge", "--below", "3"))
    assert "give all three of --below, --amount and --monthly-limit" in partial
    limit = one_error_line(
        invoke("credits", "auto-recharge", "--below", "3", "--amount", "20", "--monthly-limit", "5")
    )
    assert "less than one recharge" in limit


def test_credits_expire_writes_off_expired_credit(demo_dir: Path) -> None:
    assert "Nothing to expire in account 'default'" in invoke("credits", "expire").stdout
    # A lot granted a year ago that expired yesterday (written with an earlier clock).
    year_ago = datetime.now(UTC) - timedelta(days=365)
    clock = ManualClock(year_ago)
    with Gateway.from_config("gateway.yaml", clock=clock, rng=random.Random(0)) as gw:
        gw.credits.account("old").grant(
            Decimal("3"), expires_at=datetime.now(UTC) - timedelta(days=1)
        )
    result = invoke("credits", "expire", "--account", "old")
    assert result.exit_code == 0, result.output
    assert "expiry: lot L1, $3.00" in result.stdout


def test_credits_migrate(tmp_path: Path) -> None:
    (tmp_path / "gateway.yaml").write_text(demo_config_text())
    with chdir(tmp_path):
        first = invoke("credits", "migrate")
        assert first.exit_code == 0, first.output
        ledger = tmp_path / "gateway-demo.db"  # relative to the config file's folder
        assert f"Migrated the credit store sqlite:///{ledger} from schema 0 to 7" in flat(
            first.stdout
        )
        again = invoke("credits", "migrate")
        assert "is up to date (schema 7)" in flat(again.stdout)  # a long path wraps the line


def test_credits_migrate_without_a_credits_section_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "gateway.yaml").write_text("providers: {fake: {}}\n")
    with chdir(tmp_path):
        assert "this config has no credit account" in one_error_line(invoke("credits", "migrate"))


@pytest.mark.parametrize(
    "args",
    [
        ["credits", "balance"],
        ["credits", "history"],
        ["credits", "limits"],
        ["credits", "auto-recharge"],
        ["credits", "expire"],
        ["usage"],
    ],
)
def test_an_unknown_account_is_one_line(demo_dir: Path, args: list[str]) -> None:
    line = one_error_line(invoke(*args, "--account", "nobody"))
    assert "credit account 'nobody' does not exist" in line
    assert "gateway credits grant 5 --account nobody" in line


def test_a_malformed_account_name_is_one_line(demo_dir: Path) -> None:
    line = one_error_line(invoke("credits", "buy", "5", "--account", " padded "))
    assert "is not a valid account name" in line


# -- finding the config ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [["credits", "balance"], ["usage"], ["chat", "Hi"], ["config", "check"]]
)
def test_no_config_is_one_line(tmp_path: Path, args: list[str]) -> None:
    with chdir(tmp_path):
        line = one_error_line(invoke(*args))
    assert "no config found: looked for ./gateway.yaml and ~/.config/gateway/gateway.yaml" in line
    assert "gateway demo" in line


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    with chdir(tmp_path):
        line = one_error_line(invoke("credits", "balance", "--config", "nope.yaml"))
    assert line == "error: config file nope.yaml not found"


def test_the_user_config_and_the_environment_variable_are_found(tmp_path: Path) -> None:
    home = tmp_path / "home"
    user_config = home / ".config" / "gateway" / "gateway.yaml"
    user_config.parent.mkdir(parents=True)
    user_config.write_text(demo_config_text())
    work = tmp_path / "work"
    work.mkdir()
    with chdir(work):
        found = invoke("credits", "balance", env={"HOME": str(home)})
        assert found.exit_code == 0, found.output
        assert "Account 'default': $0.00 available" in found.stdout
        via_env = invoke("config", "check", env={"GATEWAY_CONFIG": str(user_config)})
        assert via_env.exit_code == 0 and str(user_config) in via_env.stdout


def test_config_before_or_after_the_command(tmp_path: Path) -> None:
    config = tmp_path / "elsewhere.yaml"
    config.write_text(demo_config_text())
    with chdir(tmp_path):
        before = invoke("--config", str(config), "credits", "grant", "5")
        assert before.exit_code == 0, before.output
        assert "Available now: $5.00" in before.stdout
        after = invoke("credits", "balance", "--config", str(config))
        assert "Account 'default': $5.00 available" in after.stdout
        # The command's own --config wins over the one before it.
        (tmp_path / "empty.yaml").write_text(demo_config_text().replace("gateway-demo", "other"))
        both = invoke("--config", str(config), "credits", "balance", "--config", "empty.yaml")
        assert "Account 'default': $0.00 available" in both.stdout
        # --config before the command also wins over GATEWAY_CONFIG.
        env = invoke(
            "--config", str(config), "credits", "balance", env={"GATEWAY_CONFIG": "empty.yaml"}
        )
        assert "Account 'default': $5.00 available" in env.stdout
        checked = invoke("--config", str(config), "config", "check")
        assert checked.exit_code == 0 and f"{config} is valid" in flat(checked.stdout)
        line = one_error_line(invoke("--config", "nope.yaml", "usage"))
        assert line == "error: config file nope.yaml not found"


def test_config_check_takes_the_file_or_config(tmp_path: Path) -> None:
    config = tmp_path / "offline.yaml"
    config.write_text(demo_config_text())
    by_option = invoke("config", "check", "--config", str(config))
    assert by_option.exit_code == 0 and f"{config} is valid" in flat(by_option.stdout)
    by_argument = invoke("config", "check", str(config))
    assert by_argument.exit_code == 0 and f"{config} is valid" in flat(by_argument.stdout)
    clash = invoke("config", "check", str(config), "--config", "other.yaml")
    assert clash.exit_code == 2 and "two configs given" in one_error_line(clash)


def test_help_names_the_environment_variable_and_date_format() -> None:
    root = flat(invoke("--help").output)
    assert "--config FILE" in root and "GATEWAY_CONFIG" in root
    grant = invoke("credits", "grant", "--help").output
    assert "--expires YYYY-MM-DD" in grant and "%Y" not in grant
    for command in (["usage"], ["credits", "balance"], ["config", "check"]):
        assert "GATEWAY_CONFIG" in flat(invoke(*command, "--help").output), command


def test_environment_variable_naming_a_missing_file_says_so(tmp_path: Path) -> None:
    with chdir(tmp_path):
        line = one_error_line(invoke("usage", env={"GATEWAY_CONFIG": "gone.yaml"}))
    assert line == "error: config file gone.yaml (named by GATEWAY_CONFIG) not found"


def test_a_config_without_credits_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "gateway.yaml").write_text(
        "providers: {fake: {}}\nroutes: {r: {targets: [fake/m]}}\n"
    )
    with chdir(tmp_path):
        line = one_error_line(invoke("credits", "balance"))
        assert "this gateway has no credit account" in line
        chat = invoke("chat", "Hi")
        assert chat.exit_code == 0 and "cost $" in chat.stderr  # priced, not charged


def test_a_broken_config_is_one_line_with_its_line_number(tmp_path: Path) -> None:
    (tmp_path / "gateway.yaml").write_text(
        "providers: {fake: {}}\nroutes:\n  smart:\n    strategy: fastest\n    targets: [fake/m]\n"
    )
    with chdir(tmp_path):
        line = one_error_line(invoke("usage"))
    assert "gateway.yaml, line 4, key 'routes.smart.strategy'" in line


# -- gateway config check --------------------------------------------------------------------


def test_config_check_shows_routes_and_prices(tmp_path: Path) -> None:
    config = tmp_path / "offline.yaml"
    config.write_text(demo_config_text())
    result = invoke("config", "check", str(config))
    assert result.exit_code == 0, result.output
    out = result.stdout
    ledger = tmp_path / "gateway-demo.db"  # relative to the config file's folder
    assert f"is valid: 3 provider(s), 2 route(s), credits on sqlite:///{ledger}" in flat(out)
    assert re.search(r"1\.\s+openai/gpt-4o\s+\$2\.50 / \$10\.00 / \$1\.25\s+from pricing:", out)
    assert re.search(r"2\.\s+openai/gpt-4o-mini\s+\$0\.15 / \$0\.60 / \$0\.075", out)
    assert "auto-recharge buy $10.00 below $2.00, at most $30.00/month" in out
    assert not (tmp_path / "gateway-demo.db").exists()  # checking opens no store


def test_config_check_production_warns_about_unset_keys_with_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    result = invoke("config", "check", str(EXAMPLES / "production.yaml"))
    assert result.exit_code == 0, result.output
    assert "from genai-prices" in result.stdout
    assert (
        "warning: line 6, providers.openai.api_key: environment variable OPENAI_API_KEY is not set"
        in result.stdout
    )


def test_config_check_reports_problems_with_line_numbers(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "providers:\n  openai: {api_key: test-key}\nroutes:\n  smart:\n    targets:\n"
        "      - openai/gpt-4o\n      - openai/no-such-model\ncredits: {store: 'memory://'}\n"
    )
    result = invoke("config", "check", str(config))
    assert result.exit_code == 1
    assert "has problems" in result.stdout
    assert (
        "problem: line 7, routes.smart.targets[1]: 'openai/no-such-model' has no known price"
        in result.stdout
    )


def test_config_check_of_an_invalid_file_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("routes:\n  smart:\n    targets: [openai/gpt-4o]\n    colour: blue\n")
    line = one_error_line(invoke("config", "check", str(config)))
    assert "line 4" in line and "unknown key 'colour'" in line


# -- errors, --debug -------------------------------------------------------------------------


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    (tmp_path / "gateway.yaml").write_text(demo_config_text())
    with chdir(tmp_path):
        quiet = invoke("credits", "buy", "2")
        loud = invoke("--debug", "credits", "buy", "2")
    one_error_line(quiet)
    assert loud.exit_code == 1
    assert type(loud.exception).__name__ == "InvalidAmount"  # raised, so Python prints it


def test_an_unexpected_error_is_one_line(demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("gateway.credits.account.CreditAccount.balance", boom)
    line = one_error_line(invoke("credits", "balance"))
    assert line == (
        "error: unexpected RuntimeError: disk on fire (run `gateway --debug ...` for the traceback)"
    )


def test_the_gateway_logger_is_left_as_it_was() -> None:
    import logging

    logger = logging.getLogger("gateway")
    before = (logger.level, logger.propagate, list(logger.handlers))
    invoke("--debug", "config", "check", str(EXAMPLES / "offline.yaml"))
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


# -- a new user, from a fresh checkout -------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent
_NOT_IN_A_CHECKOUT = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.egg-info", ".*_cache", ".hypothesis", "build", "dist",
    "*.db", "*.db-*", "gateway.yaml", "gateway-demo.yaml",
)  # fmt: skip


def _sh(*args: str | Path, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{args}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_the_readme_commands_work_for_a_new_user(tmp_path: Path) -> None:
    """``pip install -e . && gateway demo``, then ``gateway usage``, in a new virtual
    environment, in a copy of the checkout (what ``git clone`` gives, plus uncommitted work).

    Speed: installing every dependency from PyPI would take minutes, so the new environment
    sees this test's own site-packages through a ``.pth`` file (``--system-site-packages``
    would expose the base interpreter's, not this virtual environment's) and the checkout is
    installed with ``--no-deps``. Only the package itself is built and installed, as pip does
    it for a user: in an isolated build environment (setuptools from PyPI), editable, with the
    ``gateway`` console script. What is run is ``venv/bin/gateway`` from the checkout's
    folder, as the README says, with no key and no config anywhere.
    """
    import sysconfig

    checkout = tmp_path / "llm-gateway-sdk"
    shutil.copytree(REPO, checkout, ignore=_NOT_IN_A_CHECKOUT)
    venv = tmp_path / "venv"
    env = {
        **os.environ,
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path / "home"),  # no ~/.config/gateway/gateway.yaml
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "COLUMNS": "120",
    }
    for leak in ("GATEWAY_CONFIG", "VIRTUAL_ENV", "PYTHONPATH"):
        env.pop(leak, None)
    _sh(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path, env=env)
    python = venv / "bin" / "python"
    site = Path(_sh(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                    cwd=tmp_path, env=env).strip())  # fmt: skip
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site / "_test_deps.pth").write_text("\n".join(sorted(ours)) + "\n")

    _sh(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
        "-e", ".", cwd=checkout, env=env)  # fmt: skip
    where = _sh(python, "-c", "import gateway; print(gateway.__file__)", cwd=tmp_path, env=env)
    assert Path(where.strip()).is_relative_to(checkout)  # the new install, not this one

    gateway = venv / "bin" / "gateway"
    demo = _sh(gateway, "demo", cwd=checkout, env=env)
    for beat in STORY:
        assert beat in demo, beat
    usage = _sh(gateway, "usage", cwd=checkout, env=env)
    total = re.search(r"│ total .*│\s+(\$[\d.]+) │", demo)
    assert total is not None, demo
    assert total[1] in usage and "Spend per day" in usage
    assert (checkout / "gateway-demo.db").exists() and (checkout / "gateway.yaml").exists()


@pytest.mark.slow
def test_the_wheel_ships_the_demo_config(tmp_path: Path) -> None:
    """A non-editable install must find the demo's config inside the package."""
    import zipfile

    checkout = tmp_path / "checkout"
    shutil.copytree(REPO, checkout, ignore=_NOT_IN_A_CHECKOUT)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    _sh(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", tmp_path / "dist",
        ".", cwd=checkout, env=env)  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("gateway/cli/offline.yaml").decode() == demo_config_text()
        entry_points = archive.read(
            next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
        ).decode()
    assert "gateway = gateway.cli:main" in entry_points
