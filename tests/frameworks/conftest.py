"""The frameworks people hand an OpenAI client to, against mocked provider HTTP (issue 21).

Each framework gets the gateway two ways, and every test runs with both:

- ``gateway``: the gateway itself (``Gateway`` / ``AsyncGateway``), which has the OpenAI
  client's surface;
- ``openai_client``: ``gw.openai_client()``, a genuine ``openai.OpenAI`` / ``AsyncOpenAI``
  served by the gateway in-process.

The route ``smart`` tries OpenAI, then Claude; ``gpt`` and ``claude`` have one target each.
The frameworks are in the ``frameworks`` extra; without it these tests skip and say so.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gateway import AsyncGateway, Gateway
from gateway.testing.clock import ManualClock
from tests.conftest import CANARY_KEY

GPT = "openai/gpt-4o"
CLAUDE = "anthropic/claude-sonnet-4-6"
CONFIG: dict[str, Any] = {
    "providers": {"openai": {"api_key": CANARY_KEY}, "anthropic": {"api_key": CANARY_KEY}},
    "routes": {
        "smart": {"targets": [GPT, CLAUDE], "retry": {"attempts": 1}},
        "gpt": {"targets": [GPT], "retry": {"attempts": 1}},
        "claude": {"targets": [CLAUDE]},
    },
}
FLAVOURS = ("gateway", "openai_client")


def said(target: str, prompt: str) -> str:
    """The mocks' default answer: who answered, and the last user message."""
    return f"[{target}] You said: {prompt}"


@pytest.fixture(autouse=True)
def _no_openai_key_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A framework that fell back to its own OpenAI client would need this key: without it,
    such a fallback fails instead of silently passing."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def gw(gateway_clock: ManualClock) -> Iterator[Gateway]:
    with Gateway(CONFIG, clock=gateway_clock) as gateway:
        yield gateway


@pytest.fixture
def agw(gateway_clock: ManualClock) -> AsyncGateway:
    return AsyncGateway(CONFIG, clock=gateway_clock)


@pytest.fixture
def client(flavour: str, gw: Gateway) -> Any:
    """What the framework is handed as its sync OpenAI client."""
    return gw if flavour == "gateway" else gw.openai_client()


@pytest.fixture
def aclient(flavour: str, agw: AsyncGateway) -> Any:
    """What the framework is handed as its async OpenAI client."""
    return agw if flavour == "gateway" else agw.openai_client()
