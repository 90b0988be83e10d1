"""``gateway batches submit | status | results | cancel | list`` through click's CliRunner, on
the fake provider. Every command opens its own gateway (as separate runs of the command do);
the fixture gives each the test's ManualClock, so the fake's batches end when the test moves
time, and can script the fake's batches (gateway.testing.BatchScript)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway import Gateway
from gateway.cli._common import usd
from gateway.providers._fake_batch import FAKE_ITEM_SECONDS
from gateway.testing import ManualClock
from tests.test_cli import chdir, flat, invoke, one_error_line

D = Decimal
M = D(1_000_000)

CONFIG = """\
providers: {fake: {}}
routes: {cheap: {targets: [fake/small]}}
credits: {store: 'sqlite:///credits.db'}
pricing: {fake/small: {input: '1', output: '2'}}
"""

OnOpen = list[Callable[[Gateway], None]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def on_open() -> OnOpen:
    """Called with every gateway a command opens (e.g. to script the fake's batches)."""
    return []


@pytest.fixture(autouse=True)
def _gateways_on_the_test_clock(
    clock: ManualClock, on_open: OnOpen, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Gateway.from_config.__func__  # type: ignore[attr-defined]

    def from_config(cls: type[Gateway], path: Any, **kwargs: Any) -> Gateway:
        kwargs.setdefault("clock", clock)
        gw: Gateway = original(cls, path, **kwargs)
        for hook in on_open:
            hook(gw)
        return gw

    monkeypatch.setattr(Gateway, "from_config", classmethod(from_config))
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)


@pytest.fixture
def folder(tmp_path: Path, clock: ManualClock) -> Iterator[Path]:
    """A folder with the config and $1 of credit, as the current directory."""
    (tmp_path / "gateway.yaml").write_text(CONFIG)
    with chdir(tmp_path):
        granted = invoke("credits", "grant", "1")
        assert granted.exit_code == 0, granted.output
        yield tmp_path


def write_requests(path: Path, n: int, *, openai_shape: bool = False) -> Path:
    lines = []
    for i in range(n):
        body: dict[str, Any] = {"messages": [{"role": "user", "content": f"hello {i}"}]}
        line: dict[str, Any] = {"custom_id": f"q{i}", "body": body}
        if openai_shape:
            body["model"] = "gpt-4o-mini"
            line.update(method="POST", url="/v1/chat/completions")
        lines.append(json.dumps(line))
    path.write_text("\n".join(lines) + "\n")
    return path


def submit(*args: str) -> str:
    """``gateway batches submit ... --format json``: the new batch's id."""
    result = invoke("batches", "submit", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return str(json.loads(result.stdout)["id"])


def status_of(batch_id: str) -> dict[str, Any]:
    result = invoke("batches", "status", batch_id, "--format", "json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def ledger(folder: Path) -> tuple[Decimal, Decimal, Decimal]:
    """available, held and the usage total of the default account."""
    with chdir(folder), Gateway.from_config("gateway.yaml") as gw:
        balance = gw.credits.balance()
        used = sum((r.cost for r in gw.credits.usage(group_by="operation")), D(0))
        return balance.available, balance.held, used


def half_price(line: dict[str, Any]) -> Decimal:
    usage = line["response"]["usage"]
    return (usage["prompt_tokens"] * D(1) + usage["completion_tokens"] * D(2)) / M / 2


def test_submit_status_results_bill_each_item_once_at_half_price(
    folder: Path, clock: ManualClock
) -> None:
    write_requests(folder / "in.jsonl", 3)
    shown = invoke("batches", "submit", "in.jsonl", "--model", "cheap", "--tag", "job=nightly")
    assert shown.exit_code == 0, shown.output
    text = flat(shown.stdout)
    assert "3 request(s) to fake/small for account 'default'" in text
    assert "On hold on the account now: $" in text
    batch_id = text.split("Submitted batch ")[1].split(":")[0]
    _, held, _ = ledger(folder)
    assert held > 0  # every item's worst case, before anything ran

    assert status_of(batch_id)["status"] == "pending"
    clock.advance(FAKE_ITEM_SECONDS)
    running = invoke("batches", "status", batch_id)
    assert "running (provider: in_progress)" in flat(running.stdout)
    assert "1 succeeded" in flat(running.stdout) and "2 processing" in flat(running.stdout)
    early = invoke("batches", "results", batch_id)
    assert "has not ended" in one_error_line(early) and early.exit_code == 1

    clock.advance(2 * FAKE_ITEM_SECONDS)
    ended = status_of(batch_id)
    assert ended["status"] == "ended" and ended["counts"]["succeeded"] == 3
    assert ended["tags"] == {"job": "nightly"} and ended["route"] == "cheap"

    collected = invoke("batches", "results", batch_id)
    assert collected.exit_code == 0, collected.output
    lines = [json.loads(line) for line in collected.stdout.splitlines()]
    assert [line["custom_id"] for line in lines] == ["q0", "q1", "q2"]
    assert {line["outcome"] for line in lines} == {"succeeded"}
    costs = [D(line["cost"]) for line in lines]
    assert all(isinstance(line["cost"], str) for line in lines)
    assert costs == [half_price(line) for line in lines]
    assert all(D(line["response"]["usage"]["cost"]) == D(line["cost"]) for line in lines)
    assert "You said: hello 0" in lines[0]["response"]["choices"][0]["message"]["content"]
    total = sum(costs, D(0))
    summary = flat(collected.stderr)  # stdout stays JSON lines
    assert "3 result(s) (3 succeeded)" in summary
    assert f"{usd(total)} charged to account 'default' at the batch rate" in summary

    available, held, used = ledger(folder)
    assert held == 0 and used == total and available == D(1) - total

    again = invoke("batches", "results", batch_id)  # collecting again charges nothing more
    assert again.exit_code == 0 and again.stdout == collected.stdout
    assert ledger(folder) == (available, held, used)


def test_results_out_file_and_usage_shows_batch_spend(folder: Path, clock: ManualClock) -> None:
    batch_id = submit(str(write_requests(folder / "in.jsonl", 2)), "--model", "fake/small")
    clock.advance(2 * FAKE_ITEM_SECONDS)
    result = invoke("batches", "results", batch_id, "--out", "out.jsonl")
    assert result.exit_code == 0, result.output
    assert "2 result(s) written to out.jsonl (2 succeeded)" in flat(result.stdout)
    lines = [json.loads(line) for line in (folder / "out.jsonl").read_text().splitlines()]
    assert [line["custom_id"] for line in lines] == ["q0", "q1"]
    total = sum((D(line["cost"]) for line in lines), D(0))

    usage = invoke("usage", "--by", "operation", "--format", "json")
    rows = json.loads(usage.stdout)
    assert [(r["operation"], r["requests"], D(r["cost"])) for r in rows] == [("batch", 2, total)]
    table = flat(invoke("usage", "--by", "operation").stdout)
    assert "batch" in table


def test_an_openai_batch_file_works_unchanged(folder: Path, clock: ManualClock) -> None:
    write_requests(folder / "openai.jsonl", 2, openai_shape=True)
    shown = invoke("batches", "submit", "openai.jsonl", "--model", "cheap")
    assert shown.exit_code == 0, shown.output
    assert "The file's own model (gpt-4o-mini) was left out: --model decides." in flat(shown.stdout)
    (batch,) = json.loads(invoke("batches", "list", "--format", "json").stdout)
    clock.advance(2 * FAKE_ITEM_SECONDS)
    lines = invoke("batches", "results", batch["id"]).stdout.splitlines()
    assert [json.loads(line)["outcome"] for line in lines] == ["succeeded", "succeeded"]


def test_a_scripted_item_error_and_expiry_cost_nothing(
    folder: Path, clock: ManualClock, on_open: OnOpen
) -> None:
    on_open.append(lambda gw: gw.adapter("fake").batch_script.error("q1", "bad prompt").expire(2))
    batch_id = submit(str(write_requests(folder / "in.jsonl", 3)), "--model", "cheap")
    clock.advance(3 * FAKE_ITEM_SECONDS)
    result = invoke("batches", "results", batch_id)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(x["outcome"], x["error"], x["cost"]) for x in lines[1:]] == [
        ("errored", "bad prompt", "0"),
        ("expired", "the batch expired before this request ran", "0"),
    ]
    assert lines[1]["response"] is None and D(lines[0]["cost"]) > 0
    assert "(1 succeeded, 1 errored, 1 expired)" in flat(result.stderr)
    available, held, used = ledger(folder)
    assert held == 0 and used == D(lines[0]["cost"]) and available == D(1) - used


def test_cancel_bills_only_the_finished_items(folder: Path, clock: ManualClock) -> None:
    batch_id = submit(str(write_requests(folder / "in.jsonl", 3)), "--model", "cheap")
    clock.advance(FAKE_ITEM_SECONDS)
    cancelled = invoke("batches", "cancel", batch_id)
    assert cancelled.exit_code == 0, cancelled.output
    text = flat(cancelled.stdout)
    assert "ended (provider: cancelled)" in text and "1 succeeded, 2 cancelled" in text
    assert f"gateway batches results {batch_id}" in text
    lines = invoke("batches", "results", batch_id).stdout.splitlines()
    outcomes = [(json.loads(x)["outcome"], D(json.loads(x)["cost"])) for x in lines]
    assert [o for o, _ in outcomes] == ["succeeded", "cancelled", "cancelled"]
    assert outcomes[0][1] > 0 and outcomes[1][1] == outcomes[2][1] == 0
    _, held, used = ledger(folder)
    assert held == 0 and used == outcomes[0][1]


def test_list_newest_first_by_account(folder: Path, clock: ManualClock) -> None:
    assert "No batches" in invoke("batches", "list").stdout
    assert invoke("credits", "grant", "1", "--account", "acme").exit_code == 0
    path = str(write_requests(folder / "in.jsonl", 1))
    first = submit(path, "--model", "cheap")
    clock.advance(1)
    second = submit(path, "--model", "cheap", "--account", "acme")
    every = json.loads(invoke("batches", "list", "--format", "json").stdout)
    assert [(b["id"], b["account"]) for b in every] == [(second, "acme"), (first, "default")]
    acme = json.loads(invoke("batches", "list", "--account", "acme", "--format", "json").stdout)
    assert [b["id"] for b in acme] == [second]
    table = flat(invoke("batches", "list").stdout)
    assert f"{second} pending (validating) fake/small account 'acme'" in table
    assert "1 processing" in table


BAD_FILES = [
    ('{"custom_id": "a", "body": {"messages": []}}\n', "line 1: custom_id 'a': "),
    ('{"custom_id": "a", "body": {"messages": [{"role": "user", "content": "x"}]}}\n{oops\n',
     "line 2: not JSON (Expecting property name enclosed in double quotes at column 2)"),
    ('\n{"body": {"messages": [{"role": "user", "content": "x"}]}}\n',
     "line 2: custom_id is missing"),
    ('{"custom_id": "a", "body": {"messages": [{"role": "user", "content": "x"}]}}\n'
     '{"custom_id": "b", "body": {"messages": [{"role": "user", "content": "x"}]}}\n'
     '{"custom_id": "a", "body": {"messages": [{"role": "user", "content": "x"}]}}\n',
     "line 3: custom_id 'a' is already used on line 1"),
    ("", "has no requests"),
    ("\n  \n", "has no requests"),
    ('{"custom_id": "a"}\n', "line 1: body is missing"),
    ('[1, 2]\n', "line 1: not a JSON object"),
    ('{"custom_id": "a", "body": {}, "extra": 1}\n', "line 1: unknown key(s) 'extra'"),
    ('{"custom_id": "a", "url": "/v1/embeddings", "body": {"input": "x"}}\n',
     "line 1: url '/v1/embeddings': only chat completions"),
    ('{"custom_id": "a", "body": {"messages": [{"role": "user", "content": "x"}], '
     '"stream": true}}\n', "line 1: body has 'stream'"),
    ('{"custom_id": "' + "x" * 65 + '", "body": {}}\n', "custom_id must be a string of 1 to 64"),
]  # fmt: skip


@pytest.mark.parametrize(("content", "message"), BAD_FILES)
def test_a_bad_file_names_the_line_and_submits_nothing(
    folder: Path, content: str, message: str
) -> None:
    (folder / "in.jsonl").write_text(content)
    result = invoke("batches", "submit", "in.jsonl", "--model", "cheap")
    line = one_error_line(result)
    assert result.exit_code == 1
    assert "in.jsonl" in line and message in line, line
    assert json.loads(invoke("batches", "list", "--format", "json").stdout) == []
    available, held, _ = ledger(folder)
    assert held == 0 and available == D(1)


def test_a_file_that_is_not_text_or_not_there(folder: Path) -> None:
    (folder / "in.jsonl").write_bytes(b'{"custom_id": "\xff"}\n')
    assert "is not UTF-8 text" in one_error_line(
        invoke("batches", "submit", "in.jsonl", "--model", "cheap")
    )
    assert "cannot read missing.jsonl" in one_error_line(
        invoke("batches", "submit", "missing.jsonl", "--model", "cheap")
    )


def test_a_batch_the_account_cannot_cover_is_refused_whole(folder: Path) -> None:
    write_requests(folder / "in.jsonl", 300)  # 300 items of up to 4,096 tokens at $1/M
    result = invoke("batches", "submit", "in.jsonl", "--model", "cheap")
    line = one_error_line(result)
    assert "account 'default' has" in line and "No provider was called" in line
    assert result.exit_code == 1
    assert json.loads(invoke("batches", "list", "--format", "json").stdout) == []
    assert ledger(folder)[1] == 0


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["submit", "in.jsonl", "--model", "cheap", "--tag", "novalue"], 2, "is not KEY=VALUE"),
        (["submit", "in.jsonl"], 2, "Missing option '--model'"),
        (["submit", "in.jsonl", "--model", "nope"], 1, "nope"),
        (["submit", "in.jsonl", "--model", "cheap", "--account", "ghost"], 1, "does not exist"),
        (["status", "batch_nope"], 1, "no batch 'batch_nope'"),
        (["results", "batch_nope"], 1, "no batch 'batch_nope'"),
        (["cancel", "batch_nope"], 1, "no batch 'batch_nope'"),
    ],
)
def test_bad_arguments_are_one_line(folder: Path, args: list[str], code: int, message: str) -> None:
    write_requests(folder / "in.jsonl", 1)
    result = invoke("batches", *args)
    assert message in one_error_line(result)
    assert result.exit_code == code


def test_help_lists_the_batch_commands() -> None:
    result = invoke("batches", "--help")
    assert result.exit_code == 0
    for command in ("submit", "status", "results", "cancel", "list"):
        assert f"  {command} " in result.output, command
    assert "batches" in invoke("--help").output
