"""The README's quickstart: one YAML file, a few lines of Python. Runs offline.

``offline.yaml`` routes ``smart`` over the built-in fake provider (named after OpenAI, Claude
and Gemini) and keeps a prepaid credit account in gateway-demo.db beside it (a relative
ledger path is relative to its config file), so the call needs credit: a $1 trial grant pays
for it.
"""

from decimal import Decimal
from pathlib import Path

from gateway import Gateway

gw = Gateway.from_config(Path(__file__).with_name("offline.yaml"))
gw.credits.grant(Decimal("1"), note="quickstart trial")
resp = gw.chat.completions.create(
    model="smart", messages=[{"role": "user", "content": "Hello!"}], max_tokens=200
)
print(resp.choices[0].message.content)
print(
    "answered by",
    resp.gateway.provider,
    resp.gateway.model,
    "after",
    len(resp.gateway.attempts),
    "attempt(s); cost",
    resp.usage.cost if resp.usage else None,
)
gw.close()
