"""The README's quickstart: one YAML file, five lines of Python. Runs offline."""

from pathlib import Path

from gateway import Gateway

gw = Gateway.from_config(Path(__file__).with_name("offline.yaml"))
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
    "attempt(s)",
)
