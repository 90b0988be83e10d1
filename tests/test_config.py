"""The routing config: valid files load exactly; every bad input is a clear ConfigError."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.config import GatewayConfig, load_config, parse_config
from gateway.errors import ConfigError
from tests.conftest import CANARY_KEY

DESIGN_YAML = """\
providers:
  openai:    {api_key: ${OPENAI_API_KEY}, timeout: 30}
  anthropic: {api_key: ${ANTHROPIC_API_KEY}}
  gemini:    {api_key: ${GEMINI_API_KEY}}
routes:
  smart:
    strategy: fallback            # fallback | weighted | lowest-latency | cheapest
    targets:
      - openai/gpt-4o
      - {model: anthropic/claude-sonnet-4-5, max_tokens: 1024}
      - gemini/gemini-2.5-flash
    retry: {attempts: 2, backoff: exponential, initial_s: 0.5, max_s: 8}
credits:
  store: sqlite:///gateway-credits.db   # or postgresql://...
  mode: prepaid                         # prepaid | payg
  auto_recharge: {below: "5.00", amount: "20.00", monthly_limit: "100.00"}
  limits: {daily: "10.00", monthly: "200.00"}
  expiry_days: 365
pricing:                                # overrides and additions, USD per 1M tokens
  openai/gpt-4o: {input: "2.50", output: "10.00", cached_input: "1.25"}
"""

ENV = {
    "OPENAI_API_KEY": CANARY_KEY,
    "ANTHROPIC_API_KEY": "sk-ant-test-key-000000",
    "GEMINI_API_KEY": "gemini-test-key-000000",
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env=ENV if env is None else env)
    error = info.value
    assert str(path) in str(error), "the error names the file"
    assert CANARY_KEY not in str(error) and CANARY_KEY not in repr(error)
    return error


def test_design_yaml_loads_with_exact_values(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, DESIGN_YAML), env=ENV)
    assert set(config.providers) == {"openai", "anthropic", "gemini"}
    assert config.providers["openai"].timeout == 30.0
    assert config.providers["openai"].api_key is not None
    assert config.providers["openai"].api_key.reveal() == CANARY_KEY
    route = config.routes["smart"]
    assert route.strategy == "fallback"
    assert [t.model for t in route.targets] == [
        "openai/gpt-4o",
        "anthropic/claude-sonnet-4-5",
        "gemini/gemini-2.5-flash",
    ]
    assert route.targets[1].max_tokens == 1024
    assert route.retry.attempts == 2 and route.retry.max_s == 8.0
    assert config.credits is not None
    assert config.credits.auto_recharge is not None
    assert config.credits.auto_recharge.monthly_limit == Decimal("100.00")
    assert config.credits.limits.daily == Decimal("10.00")
    price = config.pricing["openai/gpt-4o"]
    assert (price.input, price.output, price.cached_input) == (
        Decimal("2.50"),
        Decimal("10.00"),
        Decimal("1.25"),
    )


def test_unquoted_decimal_money_is_exact_not_float(tmp_path: Path) -> None:
    text = DESIGN_YAML.replace('{input: "2.50"', "{input: 0.1").replace('"10.00"', "0.30")
    config = load_config(write(tmp_path, text), env=ENV)
    assert config.pricing["openai/gpt-4o"].input == Decimal("0.1")
    assert config.pricing["openai/gpt-4o"].output == Decimal("0.30")


def test_secret_is_hidden_in_repr_of_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, DESIGN_YAML), env=ENV)
    assert CANARY_KEY not in repr(config)
    assert CANARY_KEY not in str(config.providers["openai"])


def test_missing_env_var_is_raised_lazily_naming_the_variable(tmp_path: Path) -> None:
    env = {"OPENAI_API_KEY": CANARY_KEY}
    config = load_config(write(tmp_path, DESIGN_YAML), env=env)  # loads: no route used yet
    config.providers["openai"].check_env()  # the one that is set is fine
    with pytest.raises(ConfigError) as info:
        config.providers["anthropic"].check_env()
    error = info.value
    assert "ANTHROPIC_API_KEY" in str(error)
    assert error.line == 3
    assert error.key == "providers.anthropic.api_key"
    assert error.fix is not None and "export ANTHROPIC_API_KEY" in error.fix


def test_env_default_syntax(tmp_path: Path) -> None:
    text = """\
    providers:
      fake: {base_url: "${FAKE_URL:-http://localhost:9}"}
    routes:
      r: {targets: [fake/m]}
    """
    config = load_config(write(tmp_path, text), env={})
    assert config.providers["fake"].base_url == "http://localhost:9"


def test_missing_env_outside_providers_is_reported_at_load(tmp_path: Path) -> None:
    text = """\
    providers:
      fake: {}
    routes:
      r: {targets: [fake/m]}
    credits:
      store: ${CREDITS_URL}
    """
    error = load_error(tmp_path, text, env={})
    assert "CREDITS_URL" in error.problem
    assert error.line == 6 and error.key == "credits.store"


@pytest.mark.parametrize(
    ("replace", "by", "line", "key", "words"),
    [
        ("strategy: fallback", "strategy: fallbak", 7, "routes.smart.strategy", "'fallback'"),
        ("  gemini:    {", "  gemni:    {", 4, "providers.gemni", "unknown provider 'gemni'"),
        ("- openai/gpt-4o\n", "- gpt-4o\n", 9, "routes.smart.targets[0].model", "provider/model"),
        ('{input: "2.50"', '{input: "-2.50"', 20, "pricing.openai/gpt-4o.input", "negative"),
        ('{input: "2.50"', "{input: -2.5", 20, "pricing.openai/gpt-4o.input", "negative"),
        ('{input: "2.50"', '{input: "abc"', 20, "pricing.openai/gpt-4o.input", "not a number"),
        ('daily: "10.00"', "daily: .nan", 17, "credits.limits.daily", "float"),
        ('daily: "10.00"', "daily: true", 17, "credits.limits.daily", "true/false"),
        ('daily: "10.00"', 'daily: "0.0000000001"', 17, "credits.limits.daily", "decimal places"),
        ('daily: "10.00"', 'daily: "1e15"', 17, "credits.limits.daily", "absurdly large"),
        # Between the ledger's limit ($1e9) and the config's old one ($1e12): refused at load,
        # not at the first write that would have used it.
        ('daily: "10.00"', 'daily: "5e9"', 17, "credits.limits.daily", "below $1,000,000,000"),
        ("expiry_days: 365", "expiry_days: soon", 18, "credits.expiry_days", "integer"),
        ("timeout: 30}", "timeout: -1}", 2, "providers.openai.timeout", "greater than 0"),
        ("timeout: 30}", "timeout: thirty}", 2, "providers.openai.timeout", "number"),
        (
            "max_tokens: 1024",
            "max_tokens: lots",
            10,
            "routes.smart.targets[1].max_tokens",
            "integer",
        ),
        ("    targets:", "    targetz:", 8, "routes.smart.targetz", "unknown key 'targetz'"),
        ("mode: prepaid", "mode: prepay", 15, "credits.mode", "'payg'"),
        ("store: sqlite:///", "store: mysql:///", 14, "credits.store", "not a store URL"),
        ("attempts: 2", "attempts: 0", 12, "routes.smart.retry.attempts", "greater than or equal"),
        ("  openai/gpt-4o: {", "  gpt-4o: {", 20, "pricing.gpt-4o", "provider/model"),
    ],
)
def test_bad_value_names_line_key_and_problem(
    tmp_path: Path, replace: str, by: str, line: int, key: str, words: str
) -> None:
    assert replace in DESIGN_YAML
    error = load_error(tmp_path, DESIGN_YAML.replace(replace, by, 1))
    assert error.line == line, str(error)
    assert error.key == key, str(error)
    assert words in str(error), str(error)
    assert "Traceback" not in str(error)


def test_duplicate_route_is_an_error_not_last_wins(tmp_path: Path) -> None:
    text = DESIGN_YAML.replace(
        "credits:", "  smart:\n    targets: [openai/gpt-4o-mini]\ncredits:", 1
    )
    error = load_error(tmp_path, text)
    assert "'smart' is defined twice (first on line 6)" in str(error)
    assert error.line == 13 and error.key == "routes.smart"


def test_unparseable_yaml_names_the_line(tmp_path: Path) -> None:
    error = load_error(tmp_path, DESIGN_YAML.replace("retry: {attempts", "retry: {{attempts"))
    assert "not valid YAML" in str(error)
    assert error.line in (12, 13)


def test_target_on_unconfigured_provider(tmp_path: Path) -> None:
    text = DESIGN_YAML.replace(
        "      - gemini/gemini-2.5-flash\n",
        "      - gemini/gemini-2.5-flash\n      - mistral/large\n",
    )
    error = load_error(tmp_path, text)
    assert "provider 'mistral'" in str(error) and "not under providers" in str(error)
    assert error.line == 12 and error.key == "routes.smart.targets[3]"


def test_route_name_may_not_look_like_a_model_id(tmp_path: Path) -> None:
    error = load_error(tmp_path, DESIGN_YAML.replace("  smart:", "  openai/smart:"))
    assert error.key == "routes.openai/smart" and error.line == 6


def test_second_account_of_a_provider_via_type(tmp_path: Path) -> None:
    text = """\
    providers:
      openai-eu: {type: openai, api_key: k-123456, base_url: "https://eu.example/v1"}
    routes:
      r: {targets: [openai-eu/gpt-4o]}
    """
    config = load_config(write(tmp_path, text), env={})
    assert config.providers["openai-eu"].type == "openai"
    assert config.routes["r"].targets[0].provider == "openai-eu"


def test_unknown_type_is_reported_on_the_type_line(tmp_path: Path) -> None:
    text = """\
    providers:
      mine:
        type: mistral
    routes: {}
    """
    error = load_error(tmp_path, text, env={})
    assert error.line == 3 and error.key == "providers.mine.type"
    assert "unknown provider 'mistral'" in str(error)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    error = load_error(tmp_path, "- just\n- a list\n")
    assert "top level must be a mapping" in str(error)


def test_empty_route_targets(tmp_path: Path) -> None:
    error = load_error(tmp_path, "providers: {fake: {}}\nroutes:\n  r: {targets: []}\n")
    assert error.key == "routes.r.targets" and error.line == 3


def test_missing_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_config("/nonexistent/gateway.yaml")
    assert "file not found" in str(info.value)
    assert "/nonexistent/gateway.yaml" in str(info.value)


def test_dict_config_refuses_float_money_and_accepts_strings() -> None:
    base = {"providers": {"fake": {}}, "routes": {"r": {"targets": ["fake/m"]}}}
    ok = parse_config({**base, "pricing": {"fake/m": {"input": "0.10", "output": 1}}})
    assert ok.pricing["fake/m"].input == Decimal("0.10")
    assert ok.pricing["fake/m"].output == Decimal(1)
    with pytest.raises(ConfigError) as info:
        parse_config({**base, "pricing": {"fake/m": {"input": 0.1, "output": "1"}}})
    assert "float" in str(info.value) and info.value.key == "pricing.fake/m.input"


def test_dict_config_interpolates_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_TEST_KEY", CANARY_KEY)
    config = parse_config(
        {
            "providers": {"openai": {"api_key": "${GW_TEST_KEY}"}},
            "routes": {"r": {"targets": ["openai/gpt-4o"]}},
        }
    )
    assert config.providers["openai"].api_key is not None
    assert config.providers["openai"].api_key.reveal() == CANARY_KEY
    assert isinstance(parse_config(config), GatewayConfig)


def test_yaml_text_config() -> None:
    config = parse_config("providers: {fake: {}}\nroutes: {r: {targets: [fake/m]}}\n")
    assert config.routes["r"].targets[0].model_name == "m"


def test_all_strategies_accepted_with_their_options(tmp_path: Path) -> None:
    text = """\
    providers: {fake: {}}
    routes:
      a: {strategy: fallback, targets: [fake/a, fake/b]}
      b:
        strategy: weighted
        targets: [{model: fake/a, weight: 3}, {model: fake/b, weight: 1}]
      c: {strategy: lowest-latency, exploration: 0.1, targets: [fake/a]}
      d:
        strategy: cheapest
        fallback_on: [rate_limited, timeout]
        timeout: 20
        breaker: {failures: 3, window_s: 30, cooldown_s: 10}
        targets:
          - {model: fake/a, rpm: 60, tpm: 10000, context_window: 8000, params: {seed: 1}}
    """
    config = load_config(write(tmp_path, text), env={})
    assert config.routes["b"].targets[0].weight == 3
    assert config.routes["d"].fallback_on == ("rate_limited", "timeout")
    assert config.routes["d"].targets[0].params == {"seed": 1}
    error = load_error(tmp_path, text.replace("[rate_limited, timeout]", "[rate_limitd]"), env={})
    assert error.key == "routes.d.fallback_on[0]"
