"""Shared fixtures."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.config import ProviderConfig

#: A fake API key that must never show up in any error, repr or log line.
CANARY_KEY = "sk-canary-7f3a9c1e5b2d4f6a8c0e"


@pytest.fixture
def provider_config() -> type[ProviderConfig]:
    return ProviderConfig


@pytest.fixture(autouse=True, scope="session")
def _private_state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Settlement journals of PostgreSQL stores default to ``$XDG_STATE_HOME``: keep the
    test session's (and its child processes') out of the real home directory."""
    import os

    old = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state-home"))
    yield
    if old is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = old


@pytest.fixture(autouse=True, scope="session")
def _one_ssl_context() -> Iterator[None]:
    """Every SDK client builds a fresh SSL context (30-90 ms, loading CA certificates); tests
    make hundreds of clients over a mocked transport that never uses it, so share one."""
    import httpcore2

    context = ssl.create_default_context()
    original_default = httpcore2.default_ssl_context
    original_create = ssl.create_default_context
    httpcore2.default_ssl_context = lambda *a, **k: context  # type: ignore[assignment]
    ssl.create_default_context = lambda *a, **k: context  # type: ignore[assignment]
    yield
    httpcore2.default_ssl_context = original_default  # type: ignore[assignment]
    ssl.create_default_context = original_create  # type: ignore[assignment]


@pytest.fixture(autouse=True)
def _respx_sees_async_clients(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test mocking with respx gets httpx2 async clients: respx cannot see aiohttp, the
    default transport of the adapters' async clients (tests/providers/test_transport_*.py
    test that one against real loopback servers)."""
    if not {"httpx2_mock", "http_mock"} & set(request.fixturenames):
        yield
        return
    from gateway.providers._transport import httpx_only

    with httpx_only():
        yield


@pytest.fixture
def http_mock() -> Iterator[Any]:
    """A respx router over the SDKs' httpx2 transport that, unlike ``httpx2_mock``, does not
    require every registered route to be called (fallback tests register all providers)."""
    import pytest_httpx2  # noqa: F401  (registers respx's "httpcore2" mocker)
    import respx

    with respx.mock(using="httpcore2", assert_all_called=False) as router:
        yield router
