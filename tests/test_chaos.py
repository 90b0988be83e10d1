"""gateway.chaos: the ``chaos:`` config and the ChaosMonkey's decisions."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from gateway.chaos import CHAOS_CODE, ChaosConfig, ChaosMonkey
from gateway.config import DEFAULT_FALLBACK_ON
from gateway.errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderOverloaded,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)

YAML = """
chaos:
  enabled: true
  faults:
    - {target: "openai/*", rate: 0.25, error: rate_limited, retry_after: 2}
    - {target: "anthropic/claude-sonnet-4-6", rate: 1, error: server_error, status: 502}
    - {target: "*", rate: 0.5, error: timeout}
"""


def monkey(faults: list[dict[str, Any]], enabled: bool = True) -> ChaosMonkey:
    return ChaosMonkey(ChaosConfig(enabled=enabled, faults=faults))  # type: ignore[arg-type]


def test_off_by_default_and_from_config_gives_none_when_off() -> None:
    assert ChaosConfig().enabled is False and ChaosConfig().faults == []
    assert ChaosMonkey.from_config(None) is None
    config = ChaosConfig.model_validate(
        {"faults": [{"target": "*", "rate": 1, "error": "timeout"}]}
    )
    assert ChaosMonkey.from_config(config) is None


def test_disabled_monkey_never_fails_and_draws_nothing() -> None:
    rng = random.Random(1)
    state = rng.getstate()
    chaos = monkey([{"target": "*", "rate": 1, "error": "timeout"}], enabled=False)
    assert chaos.fault_for("openai/gpt-4o", rng) is None
    assert rng.getstate() == state


def test_parses_from_yaml() -> None:
    config = ChaosConfig.model_validate(yaml.safe_load(YAML)["chaos"])
    assert config.enabled
    assert [(f.target, f.rate, f.error, f.status) for f in config.faults] == [
        ("openai/*", 0.25, "rate_limited", None),
        ("anthropic/claude-sonnet-4-6", 1.0, "server_error", 502),
        ("*", 0.5, "timeout", None),
    ]


@pytest.mark.parametrize(
    ("error", "status", "cls", "expected_status"),
    [
        ("rate_limited", None, RateLimited, 429),
        ("server_error", None, ProviderUnavailable, 503),
        ("server_error", 500, ProviderUnavailable, 500),
        ("overloaded", None, ProviderOverloaded, 529),
        ("overloaded", 503, ProviderOverloaded, 503),
        ("timeout", None, ProviderTimeout, None),
        ("connection", None, ProviderConnectionError, None),
    ],
)
def test_injected_errors_are_the_normalised_errors(
    error: str, status: int | None, cls: type[ProviderError], expected_status: int | None
) -> None:
    fault: dict[str, Any] = {"target": "openai/gpt-4o", "rate": 1, "error": error}
    if status is not None:
        fault["status"] = status
    injected = monkey([fault]).fault_for("openai/gpt-4o", random.Random(0))
    assert type(injected) is cls
    assert injected.status_code == expected_status
    assert (injected.provider, injected.model) == ("openai", "gpt-4o")
    assert injected.code == CHAOS_CODE
    assert "injected by chaos" in str(injected)
    # The route's default fallback triggers react to it as to a real failure.
    assert injected.kind in DEFAULT_FALLBACK_ON


def test_retry_after_is_carried() -> None:
    chaos = monkey([{"target": "*", "rate": 1, "error": "rate_limited", "retry_after": 3}])
    injected = chaos.fault_for("gemini/gemini-2.5-flash", random.Random(0))
    assert isinstance(injected, RateLimited) and injected.retry_after == 3.0


@pytest.mark.parametrize(
    ("pattern", "label", "hit"),
    [
        ("openai/*", "openai/gpt-4o", True),
        ("openai/*", "anthropic/claude-sonnet-4-6", False),
        ("openai/gpt-4o", "openai/gpt-4o-mini", False),
        ("openai/gpt-4o*", "openai/gpt-4o-mini", True),
        ("*/gpt-4o", "azure/gpt-4o", True),
        ("*", "fake/anything", True),
    ],
)
def test_target_patterns(pattern: str, label: str, hit: bool) -> None:
    chaos = monkey([{"target": pattern, "rate": 1, "error": "timeout"}])
    assert (chaos.fault_for(label, random.Random(0)) is not None) is hit


def test_rate_is_a_share_of_attempts_and_deterministic_for_a_seed() -> None:
    chaos = monkey([{"target": "openai/*", "rate": 0.1, "error": "server_error"}])

    def run(seed: int) -> list[bool]:
        rng = random.Random(seed)
        return [chaos.fault_for("openai/gpt-4o", rng) is not None for _ in range(5000)]

    first = run(42)
    assert first == run(42)
    assert 400 < sum(first) < 600
    assert (
        monkey([{"target": "*", "rate": 0, "error": "timeout"}]).fault_for(
            "openai/gpt-4o", random.Random(0)
        )
        is None
    )


def test_first_matching_fault_that_fires_wins() -> None:
    config = ChaosConfig.model_validate(yaml.safe_load(YAML)["chaos"])
    chaos = ChaosMonkey(config)
    rng = random.Random(7)
    kinds = {type(chaos.fault_for("anthropic/claude-sonnet-4-6", rng)) for _ in range(50)}
    assert kinds == {ProviderUnavailable}  # the rate-1 server_error comes before the timeout
    rng = random.Random(7)
    outcomes = {type(chaos.fault_for("openai/gpt-4o", rng)).__name__ for _ in range(200)}
    assert outcomes == {"RateLimited", "ProviderTimeout", "NoneType"}


def test_loud_when_switched_on_and_on_every_fault(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gateway"):
        chaos = monkey([{"target": "openai/*", "rate": 1, "error": "overloaded"}])
        chaos.fault_for("openai/gpt-4o", random.Random(0))
        chaos.fault_for("openai/gpt-4o", random.Random(0))
        chaos.fault_for("gemini/x", random.Random(0))
    records = [r for r in caplog.records if r.name == "gateway"]
    assert all(r.levelno == logging.WARNING for r in records)
    messages = [r.getMessage() for r in records]
    assert "CHAOS fault injection is ON" in messages[0]
    assert "openai/*: 100.00% overloaded 529" in messages[0]
    assert (
        messages[1:]
        == ["CHAOS injected overloaded into openai/gpt-4o (fault openai/*: 100.00% overloaded 529)"]
        * 2
    )


def test_silent_when_off(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="gateway"):
        monkey([{"target": "*", "rate": 1, "error": "timeout"}], enabled=False)
        ChaosMonkey.from_config(ChaosConfig())
    assert caplog.records == []


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ({"target": "openai", "rate": 0.1, "error": "timeout"}, "not a target"),
        ({"target": "/gpt-4o", "rate": 0.1, "error": "timeout"}, "not a target"),
        ({"target": "*", "rate": 1.5, "error": "timeout"}, "less than or equal to 1"),
        ({"target": "*", "rate": -0.1, "error": "timeout"}, "greater than or equal to 0"),
        ({"target": "*", "rate": True, "error": "timeout"}, "not true/false"),
        ({"target": "*", "rate": 0.1, "error": "explode"}, "rate_limited"),
        ({"target": "*", "rate": 0.1, "error": "rate_limited", "status": 503}, "use 429"),
        ({"target": "*", "rate": 0.1, "error": "server_error", "status": 429}, "5xx"),
        ({"target": "*", "rate": 0.1, "error": "overloaded", "status": 500}, "503 or 529"),
        ({"target": "*", "rate": 0.1, "error": "timeout", "status": 504}, "no status"),
        ({"target": "*", "rate": 0.1, "error": "timeout", "retry_after": -1}, "greater than"),
        ({"target": "*", "rate": 0.1, "error": "timeout", "ratio": 1}, "Extra inputs"),
    ],
)
def test_bad_faults_are_refused_with_a_reason(fault: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        ChaosConfig.model_validate({"enabled": True, "faults": [fault]})


def test_repr() -> None:
    assert repr(monkey([{"target": "*", "rate": 1, "error": "timeout"}])) == (
        "ChaosMonkey(on, faults=1)"
    )


def test_chaos_from_yaml_drives_a_real_fallback_through_the_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import random as _random

    from gateway import Gateway
    from gateway.providers.fake import FakeAdapter
    from gateway.testing.clock import ManualClock

    yaml_text = """
providers: {openai: {type: fake}, anthropic: {type: fake}}
routes:
  smart: {targets: [openai/gpt-4o, anthropic/claude-sonnet-4-6], retry: {attempts: 1}}
chaos:
  enabled: true
  faults: [{target: "openai/*", rate: 1.0, error: server_error}]
"""
    with caplog.at_level("WARNING", logger="gateway"):
        gw = Gateway(config=yaml_text, clock=ManualClock(), rng=_random.Random(0))
        resp = gw.chat.completions.create(
            model="smart", messages=[{"role": "user", "content": "hi"}]
        )
    assert resp.gateway.provider == "anthropic"
    first = resp.gateway.attempts[0]
    assert (
        first.error_type == "ProviderUnavailable" and getattr(first.error, "code", None) == "chaos"
    )
    openai = gw.adapter("openai")
    assert isinstance(openai, FakeAdapter) and openai.calls == [], "the fault never reached it"
    assert any("chaos" in r.getMessage().lower() for r in caplog.records)
