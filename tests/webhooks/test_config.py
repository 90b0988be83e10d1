"""The ``webhooks:`` list and ``credits.alerts``: validated at load, secrets never shown."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from gateway.config import WEBHOOK_EVENTS, parse_config
from gateway.errors import ConfigError
from tests.webhooks.conftest import new_secret

SECRET = new_secret()


def config_with(*hooks: dict[str, Any], credits: dict[str, Any] | None = None) -> Any:
    return parse_config(
        {"credits": credits or {"store": "memory://"}, "webhooks": list(hooks)},
        source="gateway.yaml",
    )


def test_an_endpoint_defaults_to_every_event_and_alerts_are_read_exactly() -> None:
    config = config_with(
        {"url": "https://hooks.example.com/gateway", "secret": SECRET},
        credits={
            "store": "memory://",
            "alerts": {"balance_below": "5.00", "expiring_within_days": 30},
        },
    )
    (hook,) = config.webhooks
    assert hook.events == WEBHOOK_EVENTS
    assert hook.timeout == 10.0 and not hook.allow_http
    assert config.credits.alerts.balance_below == Decimal("5.00")
    assert config.credits.alerts.expiring_within_days == 30


def test_yaml_with_a_secret_from_the_environment() -> None:
    text = (
        "credits: {store: 'memory://', alerts: {balance_below: '2.50'}}\n"
        "webhooks:\n"
        "  - url: https://hooks.example.com/gateway\n"
        "    secret: ${WEBHOOK_SECRET}\n"
        "    events: [balance.low, recharge.failed, limit.reached]\n"
    )
    config = parse_config(text, env={"WEBHOOK_SECRET": SECRET})
    assert config.webhooks[0].events == ("balance.low", "recharge.failed", "limit.reached")
    assert config.webhooks[0].secret.reveal() == SECRET
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET") as info:
        parse_config(text, env={})
    assert "line 4" in str(info.value)


@pytest.mark.parametrize(
    ("url", "extra", "problem"),
    [
        ("ftp://hooks.example.com/x", {}, "not an http(s) URL"),
        ("https:///nohost", {}, "names no host"),
        ("http://hooks.example.com/x", {}, "plain http to another machine"),
        ("http://10.0.0.8/x", {}, "plain http to another machine"),
        ("not a url at all", {}, "not an http(s) URL"),
        ("https://hooks.example.com:port/x", {}, "not a valid URL"),
    ],
)
def test_bad_urls_are_refused_at_load(url: str, extra: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match="webhooks") as info:
        config_with({"url": url, "secret": SECRET, **extra})
    assert problem in str(info.value)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/hook", "http://localhost/hook", "http://[::1]:9/hook"]
)
def test_plain_http_is_fine_to_this_machine(url: str) -> None:
    assert config_with({"url": url, "secret": SECRET}).webhooks[0].url == url


def test_plain_http_elsewhere_when_the_config_opts_out() -> None:
    hook = config_with(
        {"url": "http://hooks.internal/x", "secret": SECRET, "allow_http": True}
    ).webhooks[0]
    assert hook.allow_http


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("hunter2-not-a-whsec", "starting with whsec_"),
        ("whsec_%%%notbase64%%%", "not base64"),
        ("whsec_" + "QUJD", "decodes to 3 bytes"),
    ],
)
def test_bad_secrets_are_refused_without_showing_them(secret: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_with({"url": "https://hooks.example.com/x", "secret": secret})
    message = str(info.value)
    assert problem in message and "webhooks[0].secret" in message
    assert secret not in message and secret.removeprefix("whsec_") not in message


def test_an_endpoint_needs_a_secret_and_known_events() -> None:
    with pytest.raises(ConfigError, match="'secret' is missing"):
        config_with({"url": "https://hooks.example.com/x"})
    with pytest.raises(ConfigError, match=r"balance\.low") as info:
        config_with({"url": "https://h.example.com/x", "secret": SECRET, "events": ["balance.lo"]})
    assert "did you mean 'balance.low'" in str(info.value)
    with pytest.raises(ConfigError, match="lists no event"):
        config_with({"url": "https://h.example.com/x", "secret": SECRET, "events": []})


def test_each_url_once_and_only_with_a_credit_account() -> None:
    hook = {"url": "https://hooks.example.com/x", "secret": SECRET}
    with pytest.raises(ConfigError, match="listed twice"):
        config_with(hook, dict(hook))
    with pytest.raises(ConfigError, match="needs a credits: section"):
        parse_config({"webhooks": [hook]})


def test_alerts_are_checked() -> None:
    with pytest.raises(ConfigError, match="float"):
        config_with(credits={"store": "memory://", "alerts": {"balance_below": 5.0}})
    with pytest.raises(ConfigError, match="expiring_within_days"):
        config_with(credits={"store": "memory://", "alerts": {"expiring_within_days": 0}})
    with pytest.raises(ConfigError, match="unknown key 'balance_bellow'"):
        config_with(credits={"store": "memory://", "alerts": {"balance_bellow": "5"}})


def test_the_secret_and_url_credentials_never_show() -> None:
    url = "https://user:pa55word-canary@hooks.example.com/x?token=tok-canary-123"
    config = config_with({"url": url, "secret": SECRET})
    hook = config.webhooks[0]
    shown = [repr(hook), str(hook), repr(config), str(config.model_dump()), hook.display_url]
    for text in shown:
        assert SECRET not in text and SECRET.removeprefix("whsec_") not in text
        assert "pa55word-canary" not in text and "tok-canary-123" not in text
    assert hook.secret.reveal() == SECRET and hook.url == url


def test_the_readme_example_loads() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Webhooks and alerts", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = parse_config(example, env={"WEBHOOK_SECRET": SECRET})
    assert config.webhooks[0].events == ("balance.low", "recharge.failed", "limit.reached")
    assert config.credits is not None and config.credits.alerts.expiring_within_days == 30
