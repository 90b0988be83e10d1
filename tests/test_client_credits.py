"""The credit account through the client: holds before calls, exact charges after them,
streams settled however they end, fallbacks re-held at the next target's price."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway import AsyncGateway, Gateway
from gateway.credits import InMemoryPaymentMethod
from gateway.errors import (
    ConfigError,
    InsufficientCredits,
    ProviderOverloaded,
    SpendLimitExceeded,
    UnknownAccount,
)
from gateway.providers.base import TokenUsage
from gateway.providers.fake import FakeAdapter
from gateway.testing.clock import ManualClock

DESIGN_YAML = """
providers:
  openai:    {type: fake}
  anthropic: {type: fake}
  gemini:    {type: fake}
routes:
  smart:
    strategy: fallback
    targets:
      - openai/gpt-4o
      - {model: anthropic/claude-sonnet-4-5, max_tokens: 1024}
      - gemini/gemini-2.5-flash
    retry: {attempts: 1}
  thrifty:
    strategy: cheapest
    targets: [openai/gpt-4o, gemini/gemini-2.5-flash]
credits:
  store: sqlite:///STORE
  mode: prepaid
  auto_recharge: {below: "5.00", amount: "20.00", monthly_limit: "40.00"}
  limits: {daily: "100.00", monthly: "200.00"}
  expiry_days: 365
pricing:
  openai/gpt-4o: {input: "2.50", output: "10.00", cached_input: "1.25"}
  anthropic/claude-sonnet-4-5: {input: "3.00", output: "15.00"}
  gemini/gemini-2.5-flash: {input: "0.30", output: "2.50"}
"""
HELLO = [{"role": "user", "content": "Hello"}]
M = Decimal(1_000_000)


#: Every test here runs twice: with calls batched against a lease (the default) and with
#: every hold and settlement written at once (``flush_interval_ms: 0``).
_FLUSH_MS = {"batched": 200, "immediate": 0}
_mode = "batched"


@pytest.fixture(autouse=True, params=sorted(_FLUSH_MS))
def write_mode(request: pytest.FixtureRequest) -> str:
    global _mode
    _mode = request.param
    return _mode


def config_text(tmp_path: Path, text: str = DESIGN_YAML) -> str:
    store = str(tmp_path / "credits.db")
    return text.replace(
        "  store: sqlite:///STORE\n",
        f"  store: sqlite:///{store}\n  flush_interval_ms: {_FLUSH_MS[_mode]}\n",
    )


def make(tmp_path: Path, text: str = DESIGN_YAML, **kw: Any) -> Gateway:
    path = tmp_path / "gateway.yaml"
    path.write_text(config_text(tmp_path, text))
    return Gateway.from_config(path, clock=ManualClock(), rng=random.Random(0), **kw)


def fake(gw: Gateway | AsyncGateway, name: str) -> FakeAdapter:
    adapter = gw.adapter(name)
    assert isinstance(adapter, FakeAdapter)
    return adapter


def test_cost_is_charged_exactly_and_shown_on_the_response(tmp_path: Path) -> None:
    gw = make(tmp_path)
    gw.credits.purchase(Decimal("10"))
    usage = TokenUsage(input_tokens=1200, output_tokens=300, cached_input_tokens=200)
    fake(gw, "openai").script.respond("hi", usage=usage)
    resp = gw.chat.completions.create(model="smart", messages=HELLO, max_tokens=500)
    # 1000 input at $2.50/M + 200 cached at $1.25/M + 300 output at $10/M
    expected = (1000 * Decimal("2.50") + 200 * Decimal("1.25") + 300 * Decimal("10")) / M
    assert resp.usage is not None and resp.usage.cost == expected == Decimal("0.00575")
    balance = gw.credits.balance()
    assert balance.posted == Decimal("10") - expected
    assert balance.held == 0
    gw.credits.verify()


def test_done_when_buy_spend_refuse_recharge_reconcile(tmp_path: Path) -> None:
    payments = InMemoryPaymentMethod(declining="no card yet")
    gw = make(tmp_path, payment_method=payments)
    payments.declining = None
    gw.credits.purchase(Decimal("5"))
    payments.declining = "no card yet"
    big = TokenUsage(input_tokens=90_000, output_tokens=900)
    served: list[str] = []
    refused = None
    for n in range(200):
        provider = ("openai", "anthropic", "gemini")[n % 3]
        for name in ("openai", "anthropic", "gemini"):
            if name != provider:
                fake(gw, name).script.fail(503)
        fake(gw, provider).script.respond("ok", usage=big)
        calls_before = sum(len(fake(gw, p).calls) for p in ("openai", "anthropic", "gemini"))
        try:
            resp = gw.chat.completions.create(
                model="smart", messages=[{"role": "user", "content": "x" * 270_000}], max_tokens=900
            )
        except InsufficientCredits as error:
            refused = error
            calls_after = sum(len(fake(gw, p).calls) for p in ("openai", "anthropic", "gemini"))
            # Only targets whose hold succeeded were called; the refusal itself called nobody.
            assert calls_after - calls_before < 3
            break
        finally:
            for name in ("openai", "anthropic", "gemini"):
                fake(gw, name).script.clear()
        served.append(resp.gateway.provider)
    assert refused is not None, "the balance must run out"
    assert len(set(served)) >= 2, "spent through mixed providers"
    history = gw.credits.history()
    assert any(e.kind == "recharge_declined" for e in history)
    # With a card that works, the next crossing recharges within the monthly limit.
    payments.declining = None
    gw.credits.purchase(Decimal("5"))  # back above the threshold ...
    for _ in range(10):  # ... and spend down through it again
        fake(gw, "openai").script.respond("ok", usage=big)
        gw.chat.completions.create(
            model="smart", messages=[{"role": "user", "content": "x" * 270_000}], max_tokens=900
        )
    recharged = [e for e in gw.credits.history() if e.kind == "auto_recharge"]
    assert recharged and sum(e.amount for e in recharged) <= Decimal("40.00")
    # Usage by model adds up to the ledger exactly.
    rows = gw.credits.usage(group_by="model")
    total_usage = sum((row.cost for row in rows), Decimal(0))
    ledger_usage = -sum((e.amount for e in gw.credits.history() if e.kind == "usage"), Decimal(0))
    assert total_usage == ledger_usage > 0
    assert {row["model"] for row in rows} >= {"openai/gpt-4o"}
    gw.credits.verify()


def test_refused_call_contacts_no_provider(tmp_path: Path) -> None:
    gw = make(tmp_path)
    gw.credits.grant(Decimal("0.001"), note="tiny")
    with pytest.raises(InsufficientCredits):
        gw.chat.completions.create(model="smart", messages=HELLO, max_tokens=4000)
    assert fake(gw, "openai").calls == []


def test_spend_limit_counts_holds_and_refuses_before_calling(tmp_path: Path) -> None:
    gw = make(tmp_path)
    gw.credits.purchase(Decimal("50"))
    gw.credits.set_limits(daily=Decimal("0.01"))
    with pytest.raises(SpendLimitExceeded):
        gw.chat.completions.create(model="smart", messages=HELLO, max_tokens=4000)
    assert fake(gw, "openai").calls == []


def test_fallback_releases_and_reholds_at_the_next_targets_price(tmp_path: Path) -> None:
    gw = make(tmp_path)
    gw.credits.purchase(Decimal("10"))
    fake(gw, "openai").script.fail(503)
    resp = gw.chat.completions.create(model="smart", messages=HELLO, max_tokens=100)
    assert resp.gateway.provider == "anthropic"
    kinds = [e.kind for e in reversed(gw.credits.history())]
    holds = [e for e in reversed(gw.credits.history()) if e.kind == "hold"]
    if _mode == "immediate":
        assert len(holds) == 2 and holds[0].meta["provider"] == "openai"
        assert holds[1].meta["provider"] == "anthropic"
        assert "release" in kinds and kinds.count("settle") == 1
    else:  # both tries were held against one lease; the lease was settled for the call
        assert len(holds) == 1 and holds[0].meta["lease"] == 1
        assert kinds.count("settle") == 1 and "release" not in kinds
    assert gw.credits.balance().held == 0
    rows = gw.credits.requests()
    assert len(rows) == 1 and rows[0].provider == "anthropic" and rows[0].attempts == 2
    assert rows[0].hold_id == f"{resp.gateway.request_id}#2"
    assert rows[0].cost == resp.usage.cost if resp.usage else False
    assert gw.credits.balance().posted == Decimal("10") - rows[0].cost
    gw.credits.verify()


def test_stream_is_settled_when_its_usage_arrives(tmp_path: Path) -> None:
    gw = make(tmp_path)
    gw.credits.purchase(Decimal("10"))
    usage = TokenUsage(input_tokens=100, output_tokens=10)
    fake(gw, "openai").script.respond("one two three", usage=usage)
    stream = gw.chat.completions.create(model="smart", messages=HELLO, stream=True)
    chunks = list(stream)
    cost = (100 * Decimal("2.50") + 10 * Decimal("10")) / M
    assert chunks[-1].usage is not None and chunks[-1].usage.cost == cost  # type: ignore[attr-defined]
    assert stream.usage is not None and stream.usage.cost == cost
    assert gw.credits.balance().posted == Decimal("10") - cost
    assert gw.credits.requests()[0].status == "ok"


def test_stream_abandoned_by_the_caller_is_still_charged(tmp_path: Path) -> None:
    gw = make(tmp_path)
    gw.credits.purchase(Decimal("10"))
    with gw.chat.completions.create(
        model="smart", messages=HELLO, stream=True, max_tokens=100
    ) as stream:
        next(iter(stream))
    assert gw.credits.balance().held == 0
    rows = gw.credits.requests()
    assert len(rows) == 1 and rows[0].status == "incomplete" and rows[0].cost > 0
    gw.credits.verify()


def test_stream_broken_after_content_is_charged_for_what_was_used(tmp_path: Path) -> None:
    gw = make(tmp_path)
    gw.credits.purchase(Decimal("10"))
    fake(gw, "openai").script.overloaded_mid_stream(after_chunks=2)
    stream = gw.chat.completions.create(model="smart", messages=HELLO, stream=True, max_tokens=100)
    with pytest.raises(ProviderOverloaded):
        list(stream)
    rows = gw.credits.requests()
    assert len(rows) == 1 and rows[0].status == "incomplete"
    assert Decimal(0) < rows[0].cost <= (Decimal(4 + 100) * Decimal("10")) / M
    assert gw.credits.balance().held == 0


def test_named_accounts_and_tags(tmp_path: Path) -> None:
    gw = make(tmp_path)
    gw.credits.account("customer-42").purchase(Decimal("5"))
    gw.chat.completions.create(
        model="smart", messages=HELLO, account="customer-42", tags={"feature": "search"}
    )
    assert gw.credits.account("customer-42").balance().posted < Decimal("5")
    assert gw.credits.balance().posted == 0
    rows = gw.credits.account("customer-42").usage(group_by="tag:feature")
    assert [row["tag:feature"] for row in rows] == ["search"]
    with pytest.raises(UnknownAccount):
        gw.chat.completions.create(model="smart", messages=HELLO, account="customer-43")


def test_unpriced_target_is_refused_at_load(tmp_path: Path) -> None:
    text = DESIGN_YAML.replace(
        "  gemini:    {type: fake}", "  gemini:    {api_key: gemini-test-key-000}"
    ).replace("gemini/gemini-2.5-flash\n", "gemini/gemini-9-unknown\n", 1)
    with pytest.raises(ConfigError) as info:
        make(tmp_path, text)
    assert "gemini-9-unknown" in str(info.value)
    assert "pricing:" in str(info.value)
    assert info.value.key == "routes.smart.targets[2]"
    assert info.value.line == 12, "the line of the unpriced target in the YAML"


def test_account_without_credits_section_is_a_clear_error(tmp_path: Path) -> None:
    gw = Gateway(config={"providers": {"fake": {}}, "routes": {"r": {"targets": ["fake/m"]}}})
    with pytest.raises(ConfigError, match="no credit account"):
        _ = gw.credits
    with pytest.raises(ConfigError, match="account='x'"):
        gw.chat.completions.create(model="r", messages=HELLO, account="x")


def test_cheapest_strategy_uses_the_price_book(tmp_path: Path) -> None:
    gw = make(tmp_path)
    gw.credits.purchase(Decimal("5"))
    resp = gw.chat.completions.create(model="thrifty", messages=HELLO, max_tokens=100)
    assert resp.gateway.provider == "gemini", "Gemini Flash is cheaper than GPT-4o"


async def test_async_gateway_holds_and_settles_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(config_text(tmp_path))
    agw = AsyncGateway.from_config(path, clock=ManualClock())
    await agw.credits.purchase(Decimal("5"))
    fake(agw, "openai").script.fail(503)
    resp = await agw.chat.completions.create(model="smart", messages=HELLO, max_tokens=50)
    assert resp.gateway.provider == "anthropic"
    assert resp.usage is not None and resp.usage.cost is not None and resp.usage.cost > 0
    stream = await agw.chat.completions.create(model="smart", messages=HELLO, stream=True)
    async for _ in stream:
        pass
    assert stream.usage is not None and stream.usage.cost is not None
    rows = await agw.credits.requests()
    assert len(rows) == 2 and (await agw.credits.balance()).held == 0
    await agw.credits.verify()
    await agw.close()


async def test_async_stream_dropped_without_close_is_still_charged(tmp_path: Path) -> None:
    import gc

    path = tmp_path / "gateway.yaml"
    path.write_text(config_text(tmp_path))
    agw = AsyncGateway.from_config(path, clock=ManualClock())
    await agw.credits.purchase(Decimal("5"))
    stream = await agw.chat.completions.create(
        model="smart", messages=HELLO, stream=True, max_tokens=100
    )
    request_id = stream.gateway.request_id
    del stream
    gc.collect()
    rows = await agw.credits.requests()
    assert [(r.request_id, r.status) for r in rows] == [(request_id, "incomplete")]
    assert rows[0].cost > 0 and (await agw.credits.balance()).held == 0
    await agw.credits.verify()
    await agw.close()
