"""What a new user trips on in the first hour (issue 13, items 9-17): each test here failed on
the code before its fix."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway import AsyncGateway, Gateway
from gateway.errors import AllProvidersFailed, ConfigError
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
    await agw.credits.grant(Decimal("5"))
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


# -- 10: a fallback target whose key variable is unset ----------------------------------------

MISSING_KEYS_YAML = """\
providers:
  openai: {api_key: ${GW_TEST_UNSET_OPENAI}}
  anthropic: {api_key: ${GW_TEST_UNSET_ANTHROPIC}}
  backup: {type: fake}
routes:
  smart:
    targets: [openai/gpt-4o, anthropic/claude-sonnet-4-5, backup/beta]
  keyless:
    targets: [openai/gpt-4o, anthropic/claude-sonnet-4-5]
"""


@pytest.fixture
def unset_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GW_TEST_UNSET_OPENAI", raising=False)
    monkeypatch.delenv("GW_TEST_UNSET_ANTHROPIC", raising=False)


def test_target_with_unset_key_is_skipped_and_the_call_falls_back(
    unset_keys: None, http_mock: Any
) -> None:
    gw = Gateway(config=MISSING_KEYS_YAML, clock=ManualClock())
    resp = gw.chat.completions.create(model="smart", messages=HELLO)

    assert (resp.gateway.provider, resp.gateway.model) == ("backup", "beta")
    skipped = [(a.target, a.outcome, a.reason) for a in resp.gateway.attempts[:2]]
    assert skipped == [
        ("openai/gpt-4o", "skipped", "environment variable GW_TEST_UNSET_OPENAI is not set"),
        (
            "anthropic/claude-sonnet-4-5",
            "skipped",
            "environment variable GW_TEST_UNSET_ANTHROPIC is not set",
        ),
    ]
    assert not http_mock.calls


async def test_async_target_with_unset_key_is_skipped(unset_keys: None) -> None:
    agw = AsyncGateway(config=MISSING_KEYS_YAML, clock=ManualClock())
    resp = await agw.chat.completions.create(model="smart", messages=HELLO)
    assert resp.gateway.provider == "backup"
    assert [a.outcome for a in resp.gateway.attempts] == ["skipped", "skipped", "ok"]


def test_no_target_can_run_names_every_missing_variable(unset_keys: None) -> None:
    gw = Gateway(config=MISSING_KEYS_YAML, clock=ManualClock())
    with pytest.raises(ConfigError) as caught:
        gw.chat.completions.create(model="keyless", messages=HELLO)
    message = str(caught.value)
    assert "no target of route 'keyless' can run" in message
    assert "GW_TEST_UNSET_OPENAI is not set (line 2" in message
    assert "GW_TEST_UNSET_ANTHROPIC is not set (line 3" in message


def test_direct_call_with_unset_key_is_still_that_variables_error(unset_keys: None) -> None:
    gw = Gateway(config=MISSING_KEYS_YAML, clock=ManualClock())
    with pytest.raises(ConfigError) as caught:
        gw.chat.completions.create(model="openai/gpt-4o", messages=HELLO)
    assert caught.value.problem == "environment variable GW_TEST_UNSET_OPENAI is not set"
    assert caught.value.line == 2 and caught.value.key == "providers.openai.api_key"


def test_skipped_targets_show_in_all_providers_failed(unset_keys: None) -> None:
    gw = Gateway(config=MISSING_KEYS_YAML, clock=ManualClock())
    gw.adapter("backup").script.fail(503, times=5)
    with pytest.raises(AllProvidersFailed) as caught:
        gw.chat.completions.create(model="smart", messages=HELLO)
    lines = str(caught.value).splitlines()
    assert lines[1] == (
        "  openai/gpt-4o: skipped (environment variable GW_TEST_UNSET_OPENAI is not set)"
    )
    assert "backup/beta: ProviderUnavailable (HTTP 503)" in lines[3]


# -- 15: the library never prints log records to an app that did not configure logging -------

_BREAKER_OPENS = """
import logging, sys
from gateway import Gateway
{setup}
gw = Gateway(config={{
    "providers": {{"fake": {{}}, "backup": {{"type": "fake"}}}},
    "routes": {{"r": {{"targets": ["fake/a", "backup/b"], "retry": {{"attempts": 1}},
                      "breaker": {{"failures": 1}}}}}},
}})
gw.adapter("fake").script.fail(503)
print(gw.chat.completions.create(model="r", messages=[{{"role": "user", "content": "x"}}])
      .gateway.provider)
"""


@pytest.mark.parametrize(
    ("setup", "stderr"),
    [
        ("", ""),  # an app that never configured logging hears nothing
        ("logging.basicConfig()", "WARNING:gateway:"),  # one that did still gets the records
    ],
)
def test_log_records_reach_stderr_only_when_the_app_configures_logging(
    setup: str, stderr: str
) -> None:
    import subprocess
    import sys

    code = _BREAKER_OPENS.format(setup=setup)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "backup"
    if stderr:
        assert stderr in done.stderr and "breaker_state" in done.stderr
    else:
        assert done.stderr == ""


# -- 16: a misspelt value of a fixed set is echoed, with the closest allowed value ----------


def test_misspelt_choice_is_echoed_with_the_closest_allowed_value() -> None:
    from gateway.config import parse_config

    yaml = (
        "providers: {fake: {}}\n"
        "routes:\n"
        "  smart:\n"
        "    strategy: fallbak\n"
        "    targets: [fake/a]\n"
        "    fallback_on: [rate_limted]\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml, source="gateway.yaml")
    error = caught.value
    assert (error.line, error.key) == (4, "routes.smart.strategy")
    assert error.problem.startswith(
        "Input should be 'fallback', 'weighted', 'lowest-latency' or 'cheapest', "
        "not 'fallbak' (did you mean 'fallback'?)"
    )
    assert "'routes.smart.fallback_on[0]'" in error.problem
    assert "not 'rate_limted' (did you mean 'rate_limited'?)" in error.problem


def test_a_choice_far_from_every_allowed_value_is_echoed_without_a_guess() -> None:
    from gateway.config import parse_config

    with pytest.raises(ConfigError) as caught:
        parse_config({"providers": {"fake": {}}, "credits": {"store": "memory://", "mode": "x"}})
    assert caught.value.problem == "Input should be 'prepaid' or 'payg', not 'x'"
    assert caught.value.fix == "use one of the allowed values"


# -- 17: config check says where each price comes from --------------------------------------


def test_config_check_labels_the_fake_providers_default_price(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gateway.cli._app import cli

    config = tmp_path / "gateway.yaml"
    config.write_text(
        "providers:\n"
        "  openai: {type: fake}\n"  # a fake standing in for OpenAI
        "  fake: {}\n"
        "routes:\n"
        "  r:\n"
        "    targets: [openai/my-own-model, openai/gpt-4o, fake/x, openai/priced]\n"
        "pricing:\n"
        '  openai/priced: {input: "1", output: "2"}\n'
    )
    result = CliRunner().invoke(
        cli, ["config", "check", str(config)], env={"COLUMNS": "120"}, prog_name="gateway"
    )
    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line.rstrip() for line in result.stdout.splitlines() if "/" in line}
    assert lines["openai/my-own-model"].endswith("fake provider default")
    assert lines["fake/x"].endswith("fake provider default")
    assert lines["openai/gpt-4o"].endswith("from genai-prices")  # the real model's price
    assert lines["openai/priced"].endswith("from pricing:")
