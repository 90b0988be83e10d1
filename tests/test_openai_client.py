"""``gw.openai_client()``: a genuine OpenAI SDK client whose HTTP transport is the gateway,
in-process (issue 21). Every SDK helper works on it; errors are the SDK's classes with
OpenAI's status codes, and the gateway's own error objects."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from pydantic import BaseModel

from gateway import AsyncGateway, Gateway
from gateway._openai_transport import _Call
from gateway.errors import (
    AllProvidersFailed,
    GatewayError,
    InvalidApiKey,
    InvalidRequest,
    KeyNotAllowed,
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
def client(gw: Gateway) -> openai.OpenAI:
    return gw.openai_client()


@pytest.fixture
def aclient(gateway_clock: ManualClock) -> openai.AsyncOpenAI:
    return AsyncGateway(CONFIG, clock=gateway_clock).openai_client()


def test_it_is_a_genuine_client_that_holds_no_provider_key(
    client: openai.OpenAI, aclient: openai.AsyncOpenAI
) -> None:
    assert isinstance(client, openai.OpenAI) and isinstance(aclient, openai.AsyncOpenAI)
    assert str(client.base_url) == "https://gateway.invalid/v1/"
    assert client.api_key == "gateway-in-process" != CANARY_KEY
    assert client.max_retries == 0  # the gateway retries
    assert client.with_options(max_retries=3).max_retries == 3


def test_a_call_answers_through_the_gateway(
    client: openai.OpenAI, gateway_mock: MockProviders
) -> None:
    gateway_mock.openai.fail(503)
    raw = client.chat.completions.with_raw_response.create(model="smart", messages=HELLO)
    resp = raw.parse()
    assert type(resp) is openai.types.chat.ChatCompletion
    assert resp.choices[0].message.content == "[anthropic/claude-sonnet-4-6] You said: hello"
    assert resp._request_id == raw.headers["x-request-id"]
    assert resp._request_id is not None and resp._request_id.startswith("gw-")
    assert raw.headers["x-gateway-provider"] == "anthropic"
    assert raw.headers["x-gateway-attempts"] == "2"
    assert gateway_mock.anthropic.calls[0].body["model"] == "claude-sonnet-4-6"


def test_a_stream_arrives_as_server_sent_events(
    client: openai.OpenAI, gateway_mock: MockProviders
) -> None:
    stream = client.chat.completions.create(
        model="gpt", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "[openai/gpt-4o] You said: hello"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


def test_the_sdks_own_helpers_work(client: openai.OpenAI, gateway_mock: MockProviders) -> None:
    gateway_mock.openai.respond(text='{"name": "Paris", "country": "FR"}')
    parsed = client.chat.completions.parse(model="gpt", messages=HELLO, response_format=City)
    assert parsed.choices[0].message.parsed == City(name="Paris", country="FR")
    gateway_mock.openai.respond(text='{"name": "Rome", "country": "IT"}')
    with client.chat.completions.stream(
        model="gpt", messages=HELLO, response_format=City
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.parsed == City(name="Rome", country="IT")
    assert [m.id for m in client.models.list()][:2] == ["smart", "gpt"]
    assert client.models.retrieve("openai/gpt-4o").owned_by == "openai"


def test_errors_are_the_sdks_classes_and_the_gateways_errors(
    client: openai.OpenAI, gateway_mock: MockProviders
) -> None:
    gateway_mock.openai.fail(429, retry_after=3)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt", messages=HELLO)
    error = info.value
    assert isinstance(error, AllProvidersFailed) and isinstance(error, GatewayError)
    assert error.status_code == 429 and error.attempts[0].status_code == 429
    assert error.response.headers["retry-after"] == "3"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="gpt", messages=[])
    assert isinstance(bad.value, InvalidRequest) and "messages" in bad.value.message
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("gpt-5")
    assert missing.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError, match="not served in-process"):
        client.embeddings.create(model="gpt", input="x")
    with pytest.raises(openai.BadRequestError, match="no 'messages'"):
        client.post("/chat/completions", body={"model": "gpt"}, cast_to=object)


def test_a_stream_broken_after_content_ends_with_an_error_event(
    client: openai.OpenAI, gateway_mock: MockProviders
) -> None:
    gateway_mock.openai.overloaded_mid_stream(after_chunks=2)
    stream = client.chat.completions.create(model="gpt", messages=HELLO, stream=True)
    with pytest.raises(openai.APIError) as info:
        list(stream)
    assert info.value.body["code"] == "stream_interrupted"


async def test_async(aclient: openai.AsyncOpenAI, gateway_mock: MockProviders) -> None:
    resp = await aclient.chat.completions.create(model="smart", messages=HELLO)
    assert resp.choices[0].message.content == "[openai/gpt-4o] You said: hello"
    stream = await aclient.chat.completions.create(model="smart", messages=HELLO, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "[openai/gpt-4o] You said: hello"
    gateway_mock.openai.fail(503)
    gateway_mock.anthropic.fail(503)
    with pytest.raises(openai.InternalServerError) as info:
        await aclient.chat.completions.create(model="smart", messages=HELLO)
    assert isinstance(info.value, AllProvidersFailed) and info.value.status_code == 502
    page = await aclient.models.list()
    assert page.data[0].id == "smart"


def test_what_a_request_carries_becomes_the_calls_arguments() -> None:
    body = {
        "model": "smart",
        "messages": HELLO,
        "temperature": 0.2,
        "stream": True,
        "account": "customer-42",
        "tags": {"feature": "search"},
        "top_k": 5,  # the SDK's extra_body
    }
    request = httpx2.Request(
        "POST",
        "https://gateway.invalid/v1/chat/completions?trace=1",
        json=body,
        headers={
            "authorization": "Bearer gateway-in-process",
            "user-agent": "OpenAI/Python",
            "x-stainless-retry-count": "0",
            "x-team": "search",
        },
        extensions={"timeout": {"connect": 5.0, "read": 42.0, "write": 5.0, "pool": 5.0}},
    )
    call = _Call(request, request.read())
    assert call.api_key is None and call.path == "chat/completions"
    assert call.arguments() == {
        "model": "smart",
        "messages": HELLO,
        "temperature": 0.2,
        "stream": True,
        "account": "customer-42",
        "tags": {"feature": "search"},
        "extra_body": {"top_k": 5},
        "extra_headers": {"x-team": "search"},
        "extra_query": {"trace": "1"},
        "timeout": 42.0,
    }
    # The SDK's default timeout (600 s) is not the caller's: the config's timeouts apply.
    default = {"connect": 5.0, "read": 600.0, "write": 600.0, "pool": 600.0}
    request.extensions["timeout"] = default
    assert "timeout" not in _Call(request, request.read()).arguments()


def test_a_gateway_api_key_is_held_to_its_limits(
    tmp_path: Path, gateway_clock: ManualClock
) -> None:
    config = {
        "providers": {"fake": {}},
        "routes": {"r": {"targets": ["fake/m"]}},
        "credits": {"store": f"sqlite:///{tmp_path / 'c.db'}"},
    }
    with Gateway(config, clock=gateway_clock) as gw:
        gw.credits.grant(Decimal("1"))
        new = gw.keys.create(account="default", name="app", routes=["r"])
        client = gw.openai_client(api_key=new.key)
        assert client.chat.completions.create(model="r", messages=HELLO).choices
        with pytest.raises(openai.NotFoundError) as refused:  # held to the key's routes
            client.chat.completions.create(model="fake/m", messages=HELLO)
        assert isinstance(refused.value, KeyNotAllowed)
        with pytest.raises(openai.AuthenticationError) as info:
            gw.openai_client(api_key="gk_" + "x" * 43).chat.completions.create(
                model="r", messages=HELLO
            )
        assert isinstance(info.value, InvalidApiKey)
        assert new.key not in str(info.value) + repr(info.value.request.headers)
