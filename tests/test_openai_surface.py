"""The OpenAI client surface of ``Gateway`` / ``AsyncGateway`` beyond ``create`` (issue 21):
what frameworks read on the client they are handed, and the OpenAI SDK's exception classes."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from openai.types.chat import ParsedChatCompletion
from pydantic import BaseModel

from gateway import AsyncGateway, Gateway
from gateway.errors import (
    AllProvidersFailed,
    AuthenticationFailed,
    ConfigError,
    GatewayError,
    InsufficientCredits,
    InvalidRequest,
    ProviderError,
)
from gateway.testing.clock import ManualClock
from gateway.testing.mock import MockProviders
from tests.conftest import CANARY_KEY

HELLO = [{"role": "user", "content": "hello"}]
CONFIG: dict[str, Any] = {
    "providers": {"openai": {"api_key": CANARY_KEY}, "anthropic": {"api_key": CANARY_KEY}},
    "routes": {
        "smart": {
            "targets": ["openai/gpt-4o", "anthropic/claude-sonnet-4-6"],
            "retry": {"attempts": 1},
        },
        "gpt": {"targets": ["openai/gpt-4o"], "retry": {"attempts": 1}},
    },
}


class City(BaseModel):
    name: str
    country: str


@pytest.fixture
def gw(gateway_clock: ManualClock) -> Gateway:
    return Gateway(CONFIG, clock=gateway_clock)


@pytest.fixture
def agw(gateway_clock: ManualClock) -> AsyncGateway:
    return AsyncGateway(CONFIG, clock=gateway_clock)


# -- what frameworks read on the client ------------------------------------------------------


def test_base_url_names_no_server_and_api_key_is_never_a_providers(gw: Gateway) -> None:
    assert isinstance(gw.base_url, httpx2.URL)
    assert str(gw.base_url) == "https://gateway.invalid/v1/"
    assert gw.api_key == "gateway-in-process"
    assert CANARY_KEY not in (gw.api_key, str(gw.base_url))
    assert gw.max_retries == 0 and gw.timeout is None


def test_with_options_sets_defaults_for_the_copys_calls_only(
    gw: Gateway, gateway_mock: MockProviders
) -> None:
    tuned = gw.with_options(
        timeout=httpx2.Timeout(30.0, read=9.0),
        default_headers={"x-team": "team-surface-21"},
        max_retries=0,  # the SDK's own retries: left to the route
        http_client=None,
    )
    assert tuned is not gw and tuned.timeout == httpx2.Timeout(30.0, read=9.0)
    tuned.chat.completions.create(model="gpt", messages=HELLO, extra_headers={"x-call": "1"})
    gw.chat.completions.create(model="gpt", messages=HELLO)
    with_options, plain = gateway_mock.openai.calls
    assert (with_options.headers["x-team"], with_options.headers["x-call"]) == (
        "team-surface-21",
        "1",
    )
    assert "x-team" not in plain.headers
    assert gw.timeout is None  # the original is unchanged
    assert tuned.with_options(set_default_headers={}).chat.completions._options is not None
    with pytest.raises(TypeError, match="organization"):
        gw.with_options(organization="org-1")


def test_with_options_timeout_bounds_the_call(gw: Gateway, gateway_mock: MockProviders) -> None:
    gateway_mock.openai.slow(5)
    with pytest.raises(AllProvidersFailed) as info:
        gw.with_options(timeout=2).chat.completions.create(model="gpt", messages=HELLO)
    assert info.value.attempts[0].error_type == "ProviderTimeout"


def test_responses_carry_the_request_id(gw: Gateway, gateway_mock: MockProviders) -> None:
    resp = gw.chat.completions.create(model="gpt", messages=HELLO)
    assert resp._request_id == resp.gateway.request_id
    assert resp._request_id.startswith("gw-")


def test_with_raw_response_parses_to_the_completion_and_has_headers(
    gw: Gateway, gateway_mock: MockProviders
) -> None:
    raw = gw.chat.completions.with_raw_response.create(model="smart", messages=HELLO)
    resp = raw.parse()
    assert resp.choices[0].message.content == "[openai/gpt-4o] You said: hello"
    assert raw.headers["x-request-id"] == resp.gateway.request_id == raw.request_id
    assert raw.headers["x-gateway-provider"] == "openai"
    assert raw.headers["x-gateway-model"] == "gpt-4o"
    assert raw.http_response.status_code == raw.status_code == 200
    stream = gw.chat.completions.with_raw_response.create(model="gpt", messages=HELLO, stream=True)
    assert stream.headers["x-gateway-provider"] == "openai"
    assert "".join(c.choices[0].delta.content or "" for c in stream.parse() if c.choices)


async def test_with_raw_response_async(agw: AsyncGateway, gateway_mock: MockProviders) -> None:
    raw = await agw.chat.completions.with_raw_response.create(model="gpt", messages=HELLO)
    assert raw.headers["x-request-id"] == raw.parse().gateway.request_id
    gateway_mock.openai.respond(text='{"name": "Paris", "country": "FR"}')
    parsed = await agw.chat.completions.with_raw_response.parse(
        model="gpt", messages=HELLO, response_format=City
    )
    assert parsed.headers["x-gateway-route"] == "gpt"
    assert parsed.parse().choices[0].message.parsed == City(name="Paris", country="FR")


def test_parse_gives_the_pydantic_model_and_keeps_the_gateway_extras(
    gw: Gateway, gateway_mock: MockProviders
) -> None:
    gateway_mock.openai.respond(text='{"name": "Paris", "country": "FR"}')
    resp = gw.chat.completions.parse(model="gpt", messages=HELLO, response_format=City)
    assert isinstance(resp, ParsedChatCompletion)
    assert resp.choices[0].message.parsed == City(name="Paris", country="FR")
    assert resp.gateway.provider == "openai" and resp._request_id == resp.gateway.request_id
    assert resp.usage is not None and hasattr(resp.usage, "cost")
    sent = gateway_mock.openai.calls[0].body["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["strict"] is True
    assert sent["json_schema"]["name"] == "City"


async def test_parse_parses_strict_tools_and_refuses_others(
    agw: AsyncGateway, gateway_mock: MockProviders
) -> None:
    gateway_mock.openai.respond(tool_calls=[("City", {"name": "Rome", "country": "IT"})])
    tool = openai.pydantic_function_tool(City)
    resp = await agw.chat.completions.parse(model="gpt", messages=HELLO, tools=[tool])
    call = resp.choices[0].message.tool_calls[0]
    assert call.function.parsed_arguments == City(name="Rome", country="IT")
    loose = {"type": "function", "function": {"name": "f", "parameters": {}}}
    with pytest.raises(ValueError, match="not strict"):
        await agw.chat.completions.parse(model="gpt", messages=HELLO, tools=[loose])
    with pytest.raises(TypeError, match="stream"):
        await agw.chat.completions.parse(model="gpt", messages=HELLO, stream=True)


def test_models_list_names_routes_and_targets(gw: Gateway) -> None:
    models = {m.id: m.owned_by for m in gw.models.list()}
    assert models == {
        "smart": "gateway",
        "gpt": "gateway",
        "openai/gpt-4o": "openai",
        "anthropic/claude-sonnet-4-6": "anthropic",
    }
    assert gw.models.retrieve("gpt").owned_by == "gateway"
    with pytest.raises(openai.NotFoundError) as info:
        gw.models.retrieve("gpt-5")
    assert isinstance(info.value, InvalidRequest)


async def test_models_list_async(agw: AsyncGateway) -> None:
    page = await agw.models.list()
    ids = [m.id async for m in agw.models.list()]
    assert (
        [m.id for m in page.data]
        == ids
        == [
            "smart",
            "gpt",
            "openai/gpt-4o",
            "anthropic/claude-sonnet-4-6",
        ]
    )
    assert (await agw.models.retrieve("smart")).owned_by == "gateway"


# -- errors: the gateway's, and the OpenAI SDK's classes ---------------------------------------


def test_a_route_rate_limited_everywhere_is_a_rate_limit_error(
    gw: Gateway, gateway_mock: MockProviders
) -> None:
    gateway_mock.openai.fail(429, retry_after=7)
    gateway_mock.anthropic.fail(429)
    with pytest.raises(openai.RateLimitError) as info:
        gw.chat.completions.create(model="smart", messages=HELLO)
    error = info.value
    assert isinstance(error, AllProvidersFailed) and isinstance(error, GatewayError)
    assert error.status_code == 429 and error.response.headers["retry-after"] == "7"
    assert error.body["code"] == "rate_limited" and len(error.body["attempts"]) == 2
    assert error.request_id == error.response.headers["x-request-id"]
    assert error.request_id is not None and error.request_id.startswith("gw-")
    assert [a.status_code for a in error.attempts] == [429, 429]


def test_an_outage_is_an_internal_server_error_502(
    gw: Gateway, gateway_mock: MockProviders
) -> None:
    gateway_mock.openai.fail(503)
    with pytest.raises(openai.InternalServerError) as info:
        gw.chat.completions.create(model="gpt", messages=HELLO)
    assert isinstance(info.value, AllProvidersFailed)
    assert info.value.status_code == 502 and info.value.type == "upstream_error"


def test_a_bad_request_is_a_bad_request_error(gw: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        gw.chat.completions.create(model="gpt", messages=HELLO, n=3)
    error = info.value
    assert isinstance(error, InvalidRequest) and isinstance(error, ProviderError)
    assert error.status_code == 400 and error.code == "invalid_request"
    assert "n=3" in str(error) and "n=3" in error.body["message"]


def test_an_unknown_route_is_not_found(gw: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        gw.chat.completions.create(model="gpt-5", messages=HELLO)
    assert isinstance(info.value, ConfigError)
    assert info.value.body["code"] == "model_not_found"
    assert "gateway.invalid" not in info.value.message  # the Python message is unchanged


def test_a_rejected_provider_key_is_an_authentication_error(
    gw: Gateway, gateway_mock: MockProviders
) -> None:
    gateway_mock.openai.auth_error()
    with pytest.raises(openai.AuthenticationError) as info:
        gw.chat.completions.create(model="smart", messages=HELLO)
    assert isinstance(info.value, AuthenticationFailed)
    assert CANARY_KEY not in repr(info.value) + str(info.value.body) + str(info.value.response)


def test_no_credit_is_402_and_not_retried(tmp_path: Path, gateway_clock: ManualClock) -> None:
    config = {
        **CONFIG,
        "credits": {"store": f"sqlite:///{tmp_path / 'c.db'}"},
    }
    gw = Gateway(config, clock=gateway_clock)
    with pytest.raises(openai.APIStatusError) as info:
        gw.chat.completions.create(model="gpt", messages=HELLO)
    error = info.value
    assert isinstance(error, InsufficientCredits)
    assert error.status_code == 402 and error.response.headers["x-should-retry"] == "false"
    gw.close()


def test_errors_stay_plain_gateway_errors_while_openai_is_not_imported() -> None:
    code = (
        "import sys\n"
        "from gateway import Gateway, ConfigError\n"
        "config = {'providers': {'fake': {}}, 'routes': {'r': {'targets': ['fake/m']}}}\n"
        "gw = Gateway(config=config)\n"
        "try:\n"
        "    gw.chat.completions.create(model='nope', messages=[{'role': 'user', 'content': ''}])\n"
        "except ConfigError as error:\n"
        "    print(type(error) is ConfigError, 'openai' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "False"]


def test_cost_is_exact_in_the_raw_headers(tmp_path: Path, gateway_clock: ManualClock) -> None:
    config = {
        "providers": {"fake": {}},
        "routes": {"r": {"targets": ["fake/m"]}},
        "credits": {"store": f"sqlite:///{tmp_path / 'c.db'}"},
    }
    with Gateway(config, clock=gateway_clock) as gw:
        gw.credits.grant(Decimal("1"))
        raw = gw.chat.completions.with_raw_response.create(model="r", messages=HELLO)
        cost = raw.parse().usage.cost
        assert cost is not None and raw.headers["x-gateway-cost"] == format(cost, "f")
