"""One prepaid credit account per customer of your app, all in one store. Runs offline.

You resell AI to your own customers: each one buys credit, each call says which customer pays
(``account=``), a customer who runs out is refused without touching the others, and usage is
reported per customer. The config is a dict here (fake providers, an in-memory store); in
production it is your YAML with ``store: sqlite:///...`` or ``postgresql://...``.
"""

from decimal import Decimal

from gateway import Gateway
from gateway.credits import InMemoryPaymentMethod, to_csv
from gateway.errors import InsufficientCredits, UnknownAccount

CONFIG = {
    "providers": {"openai": {"type": "fake"}, "anthropic": {"type": "fake"}},
    "routes": {"smart": {"targets": ["openai/gpt-4o", "anthropic/claude-sonnet-4-6"]}},
    "credits": {"store": "memory://", "limits": {"daily": "5.00"}},
    "pricing": {
        "openai/gpt-4o": {"input": "2.50", "output": "10.00"},
        "anthropic/claude-sonnet-4-6": {"input": "3.00", "output": "15.00"},
    },
}

# Your payment processor behind the PaymentMethod protocol (charge -> approved / declined).
gw = Gateway(config=CONFIG, payment_method=InMemoryPaymentMethod())

# Onboarding: a paying customer and one on a small trial. The first purchase or grant creates
# the account; a repeated order id adds nothing.
gw.credits.account("acme").purchase(Decimal("10"), idempotency_key="acme-order-1001")
gw.credits.account("acme").purchase(Decimal("10"), idempotency_key="acme-order-1001")
gw.credits.account("globex").grant(Decimal("0.02"), note="trial")
gw.credits.account("acme").set_limits(daily=Decimal("1.00"))  # per-customer cap


def ask(customer: str, prompt: str, feature: str) -> None:
    try:
        resp = gw.chat.completions.create(
            model="smart",
            messages=[{"role": "user", "content": prompt}],
            max_tokens=500,
            account=customer,
            tags={"feature": feature},
        )
    except InsufficientCredits as exc:
        print(f"{customer:>7}: refused, no provider was called ({exc.message[:60]}...)")
        return
    assert resp.usage is not None
    print(f"{customer:>7}: {resp.gateway.provider}/{resp.gateway.model} cost ${resp.usage.cost}")


ask("acme", "Summarise this week's support tickets.", "summaries")
ask("acme", "Draft a reply to ticket 4411.", "replies")
ask("globex", "Summarise my inbox.", "summaries")
ask("globex", "Review this contract: " + "clause " * 10_000, "review")  # too big for the trial

try:
    gw.credits.account("acmee").balance()  # a typo is an error, not a new customer
except UnknownAccount as exc:
    print("typo:", exc.message.split(".")[0])

for customer in ("acme", "globex"):
    balance = gw.credits.account(customer).balance()
    print(f"{customer:>7}: ${balance.available} left")

# One report across every customer, e.g. to bill them or to show them their usage.
print(to_csv(gw.credits.usage(group_by=["account", "tag:feature"], all_accounts=True)), end="")
gw.close()
