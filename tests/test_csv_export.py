"""CSV exports are safe to open in a spreadsheet (issue 12, defect 9): text that would run as
a formula is neutralised as OWASP recommends, NUL is not written, numbers stay numbers."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway import Gateway
from gateway.cli._app import cli
from gateway.credits import to_csv
from gateway.credits.ledger import LedgerEntry
from gateway.credits.reports import UsageRow
from gateway.credits.store import RequestRow

#: Each hostile value and how its cell must read.
HOSTILE = {
    "=1+1": "'=1+1",
    "+SUM(A1:A9)": "'+SUM(A1:A9)",
    "-2+3+cmd|' /C calc'!A0": "'-2+3+cmd|' /C calc'!A0",
    "@SUM(1)": "'@SUM(1)",
    "\t=1+1": "'\t=1+1",
    "\r=1+1": "'\r=1+1",
    "a\x00b": "a\ufffdb",
    "=a\x00": "'=a\ufffd",
    "x\r=1+1": "x\r=1+1",  # quoted, so that the CR does not start a row with a formula
    "plain text": "plain text",
    "-1.50": "-1.50",  # a number, not a formula
}


def parse(text: str) -> list[dict[str, str]]:
    assert "\x00" not in text
    return list(csv.DictReader(io.StringIO(text, newline="")))


def usage_row(value: str, cost_nanos: int) -> UsageRow:
    return UsageRow(
        group={"tag:feature": value},
        requests=1,
        input_tokens=10,
        output_tokens=5,
        cached_input_tokens=0,
        cache_write_tokens=0,
        reasoning_tokens=0,
        cost_nanos=cost_nanos,
    )


def test_usage_csv_neutralises_formulas_in_tag_values() -> None:
    rows = [usage_row(value, 1_500_000_000) for value in HOSTILE]
    cells = parse(to_csv(rows))
    assert [r["tag:feature"] for r in cells] == list(HOSTILE.values())
    assert {r["cost"] for r in cells} == {"1.50"} and {r["requests"] for r in cells} == {"1"}


def test_ledger_csv_keeps_negative_money_a_number_and_neutralises_notes_and_keys() -> None:
    usage = LedgerEntry(kind="usage", amount_nanos=-1_500_000_000, lot_id="L1", account="acme")
    grant = LedgerEntry(
        kind="grant",
        amount_nanos=2_000_000_000,
        note='=HYPERLINK("http://evil","x")',
        key="purchase:@me",
        meta={"reference": "=1+1\x00"},
        account="acme",
    )
    cells = parse(to_csv([usage, grant]))
    assert cells[0]["amount"] == "-1.50" and cells[1]["amount"] == "2.00"
    assert cells[1]["note"] == '\'=HYPERLINK("http://evil","x")'
    assert cells[1]["key"] == "purchase:@me"  # a formula only at the start of a cell
    assert cells[1]["meta"] == '{"reference": "=1+1\\u0000"}'  # JSON: starts with {


def test_request_csv_neutralises_user_text(tmp_path: Path) -> None:
    row = RequestRow(
        request_id="-id",
        hold_id="-id#1",
        account="@acme",
        at_us=0,
        route="r",
        provider="fake",
        model="m",
        input_tokens=1,
        output_tokens=1,
        cached_input_tokens=0,
        cache_write_tokens=0,
        reasoning_tokens=0,
        cost_nanos=1,
        latency_us=1000,
        attempts=1,
        status="ok",
        tags={"feature": "=1+1"},
    )
    out = tmp_path / "requests.csv"
    text = to_csv([row], out)
    assert out.read_text(encoding="utf-8") == text
    (cells,) = parse(text)
    assert cells["account"] == "'@acme" and cells["request_id"] == "'-id"
    assert cells["cost"] == "0.000000001" and cells["latency_ms"] == "1.000"
    assert cells["tags"] == '{"feature": "=1+1"}'


def test_gateway_usage_csv_from_the_cli_is_neutralised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gateway.yaml").write_text(
        "providers: {fake: {}}\n"
        "routes:\n  r: {targets: [fake/m]}\n"
        'pricing:\n  fake/m: {input: "1.00", output: "2.00"}\n'
        "credits: {store: sqlite:///credits.db, flush_interval_ms: 0}\n"
    )
    with Gateway.from_config("gateway.yaml") as gw:
        gw.credits.grant(Decimal("5"))
        gw.chat.completions.create(
            model="r",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=10,
            tags={"feature": "=1+1"},
        )
    result = CliRunner().invoke(cli, ["usage", "--by", "tag:feature", "--format", "csv"])
    assert result.exit_code == 0, result.output
    (cells,) = parse(result.stdout)
    assert cells["tag:feature"] == "'=1+1"
    assert Decimal(cells["cost"]) > 0
    history = CliRunner().invoke(cli, ["credits", "history", "--format", "csv"])
    assert history.exit_code == 0, history.output
    amounts = [Decimal(r["amount"]) for r in parse(history.stdout)]
    assert min(amounts) < 0  # the usage entry's amount is written as a plain number
