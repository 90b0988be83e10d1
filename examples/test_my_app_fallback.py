"""Prove your app survives an OpenAI outage. Copy this file into your own tests.

Needs the testing extra (``pip install -e '.[testing]'`` from a checkout of the SDK, or
``pip install 'llm-gateway-sdk[testing]'``): the SDK's pytest plugin then provides the
``gateway_mock`` fixture (OpenAI, Anthropic and Gemini mocked on the wire, through the real
SDKs) and ``gateway_clock`` (time that moves only when the gateway waits, so nothing sleeps).
No network, no API keys.
"""

from decimal import Decimal

from gateway import Gateway, TokenUsage
from gateway.testing.clock import ManualClock
from gateway.testing.mock import MockProviders

# Your routing config (or ``Gateway.from_config("gateway.yaml", clock=...)`` for your real file;
# any key works against the mocks).
CONFIG = {
    "providers": {
        "openai": {"api_key": "test-key"},
        "anthropic": {"api_key": "test-key"},
    },
    "routes": {
        "smart": {
            "targets": ["openai/gpt-4o", "anthropic/claude-sonnet-4-6"],
            "retry": {"attempts": 2},
        }
    },
    # One prepaid credit account (in memory for the test) and the prices it charges.
    "credits": {"store": "memory://"},
    "pricing": {
        "openai/gpt-4o": {"input": "2.50", "output": "10.00"},
        "anthropic/claude-sonnet-4-6": {"input": "3.00", "output": "15.00"},
    },
}


HELLO = [{"role": "user", "content": "What is the capital of France?"}]


def test_answers_from_claude_when_openai_is_down(
    gateway_mock: MockProviders, gateway_clock: ManualClock
) -> None:
    gateway_mock.openai.fail(503)  # OpenAI is down for the whole test
    gateway_mock.anthropic.respond("Paris", usage=TokenUsage(input_tokens=14, output_tokens=2))
    gw = Gateway(config=CONFIG, clock=gateway_clock)
    gw.credits.purchase(Decimal("5"))

    resp = gw.chat.completions.create(model="smart", messages=HELLO, max_tokens=200)

    assert resp.choices[0].message.content == "Paris"
    assert (resp.gateway.provider, resp.gateway.model) == ("anthropic", "claude-sonnet-4-6")
    assert len(gateway_mock.openai.calls) == 2
    assert gateway_mock.anthropic.calls[0].body["messages"] == HELLO
    # Charged Claude's price, nothing for the failed OpenAI tries:
    # 14 input tokens at $3 / 1M + 2 output tokens at $15 / 1M.
    assert resp.usage is not None and resp.usage.cost == Decimal("0.000072")
    assert gw.credits.balance().posted == Decimal("5") - Decimal("0.000072")


def test_rate_limit_is_retried_after_retry_after_without_sleeping(
    gateway_mock: MockProviders, gateway_clock: ManualClock
) -> None:
    gateway_mock.openai.fail(429, retry_after=2, times=1)  # once; the retry succeeds
    gw = Gateway(config=CONFIG, clock=gateway_clock)
    gw.credits.purchase(Decimal("5"))

    resp = gw.chat.completions.create(model="smart", messages=HELLO, max_tokens=200)

    assert resp.gateway.provider == "openai"
    assert gateway_clock.sleeps == [2.0]  # every wait the gateway asked for: 2 s, instantly
