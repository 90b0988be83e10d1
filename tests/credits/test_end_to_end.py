"""The issue's "done when", at the credit service's level (what the client will call):
with DESIGN.md's YAML on fake providers, buy $5, spend it down through mixed providers,
see the call that would overspend refused before any provider is called, auto-recharge top
the account up within its monthly limit, and usage by model add up to the ledger exactly."""

from __future__ import annotations

from decimal import Decimal

from gateway.config import parse_config
from gateway.credits import CreditService, InMemoryPaymentMethod, PriceBook
from gateway.errors import InsufficientCredits
from gateway.providers.base import TokenUsage
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
credits:
  store: STORE
  mode: prepaid
  auto_recharge: {below: "5.00", amount: "20.00", monthly_limit: "40.00"}
  limits: {daily: "100.00", monthly: "200.00"}
  expiry_days: 365
pricing:
  openai/gpt-4o: {input: "2.50", output: "10.00", cached_input: "1.25"}
"""


def test_buy_spend_refuse_recharge_and_reconcile(store_url: str) -> None:
    config = parse_config(DESIGN_YAML.replace("STORE", store_url))
    assert config.credits is not None
    clock = ManualClock()
    prices = PriceBook.from_config(config.pricing, clock=clock)
    prices.check_config(config)  # every target has a price
    payments = InMemoryPaymentMethod()
    service = CreditService(config.credits, prices, clock=clock, payment_method=payments)
    credits = service.account()
    credits.purchase(Decimal("5"))
    payments.declining = "no card on file yet"  # first, no auto-recharge can be paid

    targets = [t for route in config.routes.values() for t in route.targets]
    providers_called: list[str] = []
    spent = Decimal(0)
    # Big prompts on each provider in turn, until a call is refused.
    for n in range(100):
        target = targets[n % 3]
        provider = config.providers[target.provider]
        worst = prices.worst_case(
            provider.type,
            target.model_name,
            provider=target.provider,
            input_tokens=100_000,
            max_output_tokens=target.max_tokens or 4096,
        )
        try:
            hold = service.hold(
                account=None,
                request_id=f"req-{n}",
                amount=worst,
                route="smart",
                provider=target.provider,
                model=target.model_name,
            )
        except InsufficientCredits as refused:
            assert "No provider was called" in str(refused)
            break
        providers_called.append(target.provider)  # only now would the provider be called
        usage = TokenUsage(95_000, 900, cached_input_tokens=20_000)
        cost = prices.cost(provider.type, target.model_name, usage, provider=target.provider)
        spent += service.settle(hold, cost=cost, usage=usage, latency_us=250_000)
    else:
        raise AssertionError("the $5 never ran out")
    assert set(providers_called) == {"openai", "anthropic", "gemini"}
    balance = credits.balance()
    assert balance.posted == Decimal("5") - spent and balance.posted < worst
    declined = credits.history(kinds=["recharge_declined"])
    assert len(declined) == 1 and declined[0].note == "no card on file yet"

    # With a working card, buying takes the balance back above $5, and spending it down
    # again triggers auto-recharges, at most $40 in the month.
    payments.declining = None
    credits.purchase(Decimal("5"))
    for n in range(100, 400):
        hold = service.hold(
            account=None,
            request_id=f"req-{n}",
            amount=Decimal("0.5"),
            route="smart",
            provider="openai",
            model="gpt-4o",
        )
        service.settle(hold, cost=Decimal("0.25"), usage=TokenUsage(1000, 100))
        if credits.history(kinds=["recharge_skipped"]):
            break
    recharged = [e.amount for e in credits.history(kinds=["auto_recharge"])]
    assert recharged == [Decimal("20"), Decimal("20")]

    by_model = credits.usage(group_by="model")
    assert {row["model"] for row in by_model} == {
        "openai/gpt-4o",
        "anthropic/claude-sonnet-4-5",
        "gemini/gemini-2.5-flash",
    }
    ledger_usage = -sum(e.amount for e in credits.history(kinds=["usage"]))
    assert sum(row.cost for row in by_model) == ledger_usage
    balance = credits.balance()
    assert balance.posted == Decimal("5") + Decimal("5") + Decimal("40") - ledger_usage
    credits.verify()
    service.close()
