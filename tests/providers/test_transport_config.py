"""The ``transport:`` setting and the aiohttp error translation, without a network."""

from __future__ import annotations

import importlib.util
from typing import Any

import aiohttp
import httpx2
import pytest
from aiohttp.client_reqrep import ConnectionKey

from gateway.config import ProviderConfig, parse_config
from gateway.errors import ConfigError, ProviderConnectionError, ProviderTimeout
from gateway.providers import _transport as transport
from gateway.providers import gemini
from gateway.testing import mock_providers


def _connector_error() -> aiohttp.ClientConnectorError:
    key = ConnectionKey("127.0.0.1", 1, False, True, None, None, None)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "refused"))


def test_aiohttp_asked_for_but_not_installed_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "aiohttp" else real(name, *a)
    )
    text = "providers:\n  openai:\n    api_key: k\n    transport: aiohttp\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="gw.yaml")
    message = str(caught.value)
    assert "providers.openai.transport" in message
    assert "pip install aiohttp" in message
    assert "line 4" in message or caught.value.line == 4
    # Unset, the default falls back to httpx2 instead of failing.
    assert transport.async_transport(None) == "httpx"


def test_an_unknown_transport_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"providers": {"openai": {"api_key": "k", "transport": "requests"}}})
    assert "providers.openai.transport" in str(caught.value)


def test_defaults_and_the_mock_switch() -> None:
    assert ProviderConfig(type="openai", name="openai").transport is None
    assert transport.async_transport(None) == "aiohttp"
    assert transport.async_transport(None, transport.GEMINI_DEFAULT_TRANSPORT) == "httpx"
    assert transport.async_transport("httpx") == "httpx"
    with mock_providers():
        # respx sees only httpx2: whatever the config says while a mock is active.
        assert transport.async_transport("aiohttp") == "httpx"
    assert transport.async_transport("aiohttp") == "aiohttp"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (aiohttp.ConnectionTimeoutError("connect"), httpx2.ConnectTimeout),
        (aiohttp.SocketTimeoutError("read"), httpx2.ReadTimeout),
        (TimeoutError(), httpx2.ReadTimeout),
        (_connector_error(), httpx2.ConnectError),
        (aiohttp.ServerDisconnectedError(), httpx2.RemoteProtocolError),
        (aiohttp.ClientPayloadError("cut"), httpx2.RemoteProtocolError),
        (aiohttp.ClientOSError(104, "reset"), httpx2.ReadError),
    ],
)
def test_aiohttp_errors_become_the_httpx2_errors_httpx2_raises(
    error: BaseException, expected: type[Exception]
) -> None:
    request = httpx2.Request("POST", "http://127.0.0.1:1/v1/chat/completions")
    mapped = transport.httpx2_error(error, request)
    assert type(mapped) is expected
    assert mapped is not None and mapped.request is request  # type: ignore[attr-defined]


def test_other_errors_are_not_translated() -> None:
    assert transport.httpx2_error(ValueError("x"), None) is None


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (aiohttp.ConnectionTimeoutError("connect"), ProviderTimeout),
        (aiohttp.SocketTimeoutError("read"), ProviderTimeout),
        (TimeoutError(), ProviderTimeout),
        (_connector_error(), ProviderConnectionError),
        (aiohttp.ServerDisconnectedError(), ProviderConnectionError),
        (aiohttp.ClientPayloadError("cut"), ProviderConnectionError),
    ],
)
def test_gemini_maps_the_aiohttp_errors_google_genai_lets_through(
    error: BaseException, expected: type[Exception]
) -> None:
    mapped = gemini.map_error(error, provider="gemini", model="gemini-2.5-flash")
    assert type(mapped) is expected


def test_gemini_on_aiohttp_has_no_hidden_sdk_retry() -> None:
    adapter: Any = gemini.GeminiAdapter(
        "gemini", ProviderConfig(type="gemini", name="gemini", api_key="k", transport="aiohttp")
    )
    api = adapter._async_client()._api_client
    assert api._use_aiohttp() is True
    assert api._http_options.retry_options.attempts == 1
    adapter.close()
