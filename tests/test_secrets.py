"""An API-key canary never appears in an exception message, a repr or a log record.

Each provider is configured with the canary key and made to fail in ways that tend to echo
request details (auth errors that quote the key, 5xx, timeouts, missing env vars); every
log record of every logger is captured at DEBUG.
"""

from __future__ import annotations

import logging
import random
import traceback
from typing import Any

import httpcore2
import httpx
import pytest

from gateway import Gateway
from gateway.config import load_config
from gateway.errors import GatewayError
from gateway.testing.clock import ManualClock
from gateway.testing.wire import anthropic as anthropic_wire
from gateway.testing.wire import gemini as gemini_wire
from gateway.testing.wire import openai as openai_wire
from tests.conftest import CANARY_KEY

PROVIDERS = {
    "openai": ("openai/gpt-4o", "https://api.openai.com/v1/chat/completions"),
    "anthropic": ("anthropic/claude-sonnet-4-6", anthropic_wire.MESSAGES_URL),
    "gemini": ("gemini/gemini-2.5-flash", gemini_wire.generate_content_url("gemini-2.5-flash")),
}
ECHO = f"Incorrect API key provided: {CANARY_KEY}. Authorization: Bearer {CANARY_KEY}"


def echoing_error(provider: str, status: int) -> httpx.Response:
    """An error response whose body quotes the key back, as a careless proxy might."""
    if provider == "openai":
        return httpx.Response(
            status, json=openai_wire.error_body(ECHO, type="invalid_request_error")
        )
    if provider == "anthropic":
        return httpx.Response(status, json=anthropic_wire.error_for_status(status, ECHO))
    return httpx.Response(status, json=gemini_wire.error_body(status, ECHO))


def assert_clean(text: str) -> None:
    assert CANARY_KEY not in text
    assert CANARY_KEY[8:] not in text  # not even most of it


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("failure", [401, 403, 400, 429, 500, 529, "timeout", "reset"])
def test_canary_never_leaks(
    provider: str, failure: int | str, http_mock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    model, url = PROVIDERS[provider]
    config = {
        "providers": {provider: {"api_key": CANARY_KEY}},
        "routes": {"r": {"targets": [model], "retry": {"attempts": 2}}},
    }
    gw = Gateway(config=config, clock=ManualClock(), rng=random.Random(0))
    if failure == "timeout":
        http_mock.post(url).mock(side_effect=httpcore2.ReadTimeout(f"timed out {CANARY_KEY}"))
    elif failure == "reset":
        http_mock.post(url).mock(side_effect=httpcore2.ConnectError(f"reset {CANARY_KEY}"))
    else:
        assert isinstance(failure, int)
        http_mock.post(url).mock(return_value=echoing_error(provider, failure))
    with caplog.at_level(logging.DEBUG), pytest.raises(GatewayError) as info:
        gw.chat.completions.create(model="r", messages=[{"role": "user", "content": "hi"}])
    error = info.value
    assert_clean(str(error))
    assert_clean(repr(error))
    assert_clean("".join(traceback.format_exception(error)))
    for attempt in getattr(error, "attempts", []):
        assert_clean(attempt.describe())
        assert_clean(repr(attempt))
    for record in caplog.records:
        assert_clean(record.getMessage())
    assert_clean(repr(gw))
    assert_clean(repr(gw.adapter(provider)))
    assert_clean(repr(gw.config))


def test_missing_key_error_names_the_variable_not_a_value(tmp_path: Any) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "providers:\n  openai: {api_key: ${GW_CANARY_MISSING}}\n"
        "routes:\n  r: {targets: [openai/gpt-4o]}\n"
    )
    gw = Gateway(config=load_config(path, env={}))
    with pytest.raises(GatewayError) as info:
        gw.chat.completions.create(model="r", messages=[{"role": "user", "content": "hi"}])
    assert "GW_CANARY_MISSING" in str(info.value) and "line 2" in str(info.value)


def test_config_error_never_shows_a_secret(tmp_path: Any) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(f"providers:\n  openai: {{api_key: {CANARY_KEY}, timeout: -1}}\nroutes: {{}}\n")
    with pytest.raises(GatewayError) as info:
        load_config(path)
    assert_clean(str(info.value))
    assert "timeout" in str(info.value)


def test_store_password_is_hidden_everywhere() -> None:
    from gateway.config import CreditsConfig
    from gateway.errors import redact

    config = CreditsConfig(store="postgresql://app:Pg-s3cret-pw@db.internal:5432/credits")
    assert "Pg-s3cret-pw" not in repr(config) and "Pg-s3cret-pw" not in str(config)
    assert "app:***@db.internal" in repr(config)
    assert redact("connection to app:Pg-s3cret-pw failed") == "connection to app:[REDACTED] failed"
    with pytest.raises(GatewayError) as info:
        parse = {
            "providers": {"fake": {}},
            "routes": {},
            "credits": {"store": "mysql://u:Pg-s3cret-pw@h/d"},
        }
        from gateway.config import parse_config

        parse_config(parse)
    assert_clean_of(str(info.value), "Pg-s3cret-pw")


def assert_clean_of(text: str, secret: str) -> None:
    assert secret not in text
