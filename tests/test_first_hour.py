"""What a new user trips on in the first hour (issue 13, items 9-17): each test here failed on
the code before its fix."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway import AsyncGateway, Gateway
from gateway.errors import ConfigError
from gateway.testing.clock import ManualClock

HELLO = [{"role": "user", "content": "Hello"}]


def credits_config(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "providers": {"openai": {"api_key": "test-key"}},
        "credits": {"store": f"sqlite:///{tmp_path / 'credits.db'}"},
        **extra,
    }


# -- 9: a direct provider/model with no known price -----------------------------------------


def test_direct_call_to_unpriced_model_is_a_config_error_with_the_yaml_to_add(
    tmp_path: Path, http_mock: Any
) -> None:
    gw = Gateway(config=credits_config(tmp_path), clock=ManualClock())
    gw.credits.grant(Decimal("5"))
    before = len(gw.credits.history())

    with pytest.raises(ConfigError) as caught:
        gw.chat.completions.create(model="openai/gpt-unpriced-9", messages=HELLO)

    message = str(caught.value)
    assert "a direct call uses 'openai/gpt-unpriced-9', which has no known price" in message
    assert "pricing:\n  openai/gpt-unpriced-9: {input:" in message
    assert caught.value.key == "pricing"
    assert not http_mock.calls  # no provider contacted
    assert len(gw.credits.history()) == before  # nothing held or written
    gw.close()


async def test_async_direct_call_to_unpriced_model_is_the_same_config_error(
    tmp_path: Path, http_mock: Any
) -> None:
    agw = AsyncGateway(config=credits_config(tmp_path), clock=ManualClock())
    agw.credits.grant(Decimal("5"))
    with pytest.raises(ConfigError, match="a direct call uses 'openai/gpt-unpriced-9'"):
        await agw.chat.completions.create(model="openai/gpt-unpriced-9", messages=HELLO)
    assert not http_mock.calls
    await agw.close()


def test_direct_call_priced_in_yaml_is_charged(tmp_path: Path) -> None:
    config = credits_config(tmp_path, pricing={"fake/x": {"input": "1", "output": "2"}})
    config["providers"] = {"fake": {}}
    gw = Gateway(config=config, clock=ManualClock(), rng=random.Random(0))
    gw.credits.grant(Decimal("5"))
    resp = gw.chat.completions.create(model="fake/x", messages=HELLO, max_tokens=10)
    assert resp.usage is not None and resp.usage.cost is not None and resp.usage.cost > 0
    gw.close()
