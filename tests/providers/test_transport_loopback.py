"""The async clients on both transports (aiohttp, httpx2) against a real loopback server.

respx cannot see aiohttp, so these tests talk HTTP to bench/fake_server.py (each provider's
wire format from gateway.testing.wire, faults per request). Every case runs on both
transports and must end the same: the same answer, the same gateway error, the connection
released when a stream is closed early, the same fallback.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from bench import clients
from bench.fake_server import DEFAULT_CHUNKS, ServerThread, _Handler
from gateway import AsyncGateway
from gateway.config import ProviderConfig
from gateway.errors import (
    AllProvidersFailed,
    ProviderConnectionError,
    ProviderTimeout,
    RateLimited,
)
from gateway.providers import _transport as transport
from gateway.providers.anthropic import AnthropicAdapter
from gateway.providers.base import ChatRequest
from gateway.providers.gemini import GeminiAdapter
from gateway.providers.openai import OpenAIAdapter

pytestmark = pytest.mark.parametrize("kind", transport.TRANSPORTS)

ADAPTERS: dict[str, Any] = {
    "openai": OpenAIAdapter,
    "anthropic": AnthropicAdapter,
    "gemini": GeminiAdapter,
}
PROVIDERS = clients.PROVIDERS
HELLO = [{"role": "user", "content": "Say hello"}]


class _Closed:
    """Connections the fake server saw closed (its handler's connection_lost, counted)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.count += 1


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with ServerThread() as running:
        yield running.url


@pytest.fixture
def closed(monkeypatch: pytest.MonkeyPatch) -> _Closed:
    seen = _Closed()
    original = _Handler.connection_lost

    def connection_lost(self: _Handler, exc: Exception | None) -> None:
        seen.add()
        original(self, exc)

    monkeypatch.setattr(_Handler, "connection_lost", connection_lost)
    return seen


def refused_url() -> str:
    """A loopback URL nobody listens on (the port was just free)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def make_adapter(provider: str, kind: str, base_url: str, **settings: Any) -> Any:
    config = ProviderConfig(
        type=provider,
        name=provider,
        api_key=clients.API_KEY,
        base_url=base_url,
        transport=kind,
        **settings,
    )
    return ADAPTERS[provider](provider, config)


def assert_on(adapter: Any, provider: str, kind: str) -> None:
    """The adapter's async client really sends through ``kind``."""
    if provider == "gemini":
        assert adapter._aclient._api_client._use_aiohttp() is (kind == "aiohttp")
        return
    http = adapter._async_client._client
    assert isinstance(http._transport, transport.AiohttpTransport) is (kind == "aiohttp")


async def close(adapter: Any) -> None:
    await adapter.aclose()


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_call_and_a_stream_answer_the_same(server: str, provider: str, kind: str) -> None:
    adapter = make_adapter(provider, kind, clients.base_url(provider, server))
    try:
        request = ChatRequest(messages=HELLO, max_tokens=64)
        result = await adapter.acomplete(clients.MODELS[provider], request)
        assert result.completion.choices[0].message.content == "Hello from the bench server."
        assert result.usage.input_tokens > 0
        assert_on(adapter, provider, kind)

        stream = await adapter.astream(clients.MODELS[provider], request)
        chunks = [chunk async for chunk in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text.startswith("tok0 tok1 ")
        assert stream.content_chunks == DEFAULT_CHUNKS
        assert stream.usage is not None and stream.usage.output_tokens > 0
    finally:
        await close(adapter)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_429_is_rate_limited_with_its_retry_after(
    server: str, provider: str, kind: str
) -> None:
    url = clients.base_url(provider, server, "status=429,retry_after=7")
    adapter = make_adapter(provider, kind, url)
    try:
        with pytest.raises(RateLimited) as caught:
            await adapter.acomplete(clients.MODELS[provider], ChatRequest(messages=HELLO))
        assert caught.value.retry_after == 7
        assert caught.value.__context__ is None  # the SDK's exception holds the key
    finally:
        await close(adapter)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_slow_answer_is_a_provider_timeout(server: str, provider: str, kind: str) -> None:
    # The server answers after 5 s; the try may take 0.2 s (a real wait: a socket timeout).
    url = clients.base_url(provider, server, "latency_ms=5000")
    adapter = make_adapter(provider, kind, url)
    try:
        with pytest.raises(ProviderTimeout):
            await adapter.acomplete(
                clients.MODELS[provider], ChatRequest(messages=HELLO, timeout=0.2)
            )
    finally:
        await close(adapter)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_connection_refused_is_a_connection_error_at_once(provider: str, kind: str) -> None:
    base = refused_url()
    adapter = make_adapter(provider, kind, f"{base}/v1" if provider == "openai" else base)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(ProviderConnectionError) as caught:
            await adapter.acomplete(clients.MODELS[provider], ChatRequest(messages=HELLO))
        assert caught.value.__context__ is None
    finally:
        await close(adapter)
    # No hidden SDK retry (google-genai on aiohttp sleeps 1-10 s and retries unless told not to).
    assert loop.time() - started < 1.0


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_stream_closed_early_releases_its_connection(
    server: str, provider: str, kind: str, closed: _Closed
) -> None:
    if provider == "gemini" and kind == "aiohttp":
        pytest.xfail(
            "google-genai on aiohttp releases a stream closed early only when its generators "
            "are garbage-collected: why Gemini's default transport is httpx"
        )
    # 50 events 20 ms apart: the stream is still being sent when the caller stops reading.
    url = clients.base_url(provider, server, "chunk_ms=20")
    adapter = make_adapter(provider, kind, url)
    try:
        stream = await adapter.astream(clients.MODELS[provider], ChatRequest(messages=HELLO))
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        assert closed.count == 0
        await stream.aclose()
        for _ in range(200):  # the server sees the connection go within a few loop turns
            if closed.count:
                break
            await asyncio.sleep(0.01)
        assert closed.count == 1
    finally:
        await close(adapter)


async def test_fallback_moves_past_a_refused_and_a_429_target(server: str, kind: str) -> None:
    config = {
        "providers": {
            "openai": {
                "api_key": clients.API_KEY,
                "base_url": f"{refused_url()}/v1",
                "transport": kind,
            },
            "anthropic": {
                "api_key": clients.API_KEY,
                "base_url": clients.base_url("anthropic", server, "status=429,retry_after=0"),
                "transport": kind,
            },
            "gemini": {
                "api_key": clients.API_KEY,
                "base_url": clients.base_url("gemini", server),
                "transport": kind,
            },
        },
        "routes": {
            "smart": {
                "strategy": "fallback",
                "targets": [f"{p}/{clients.MODELS[p]}" for p in PROVIDERS],
                "retry": {"attempts": 1},
            }
        },
    }
    gateway = AsyncGateway(config=config)
    try:
        response = await gateway.chat.completions.create(
            model="smart", messages=HELLO, max_tokens=64
        )
        assert response.gateway.provider == "gemini"
        outcomes = [(a.provider, a.error_type) for a in response.gateway.attempts]
        assert outcomes[:2] == [
            ("openai", "ProviderConnectionError"),
            ("anthropic", "RateLimited"),
        ]
    finally:
        await gateway.close()


async def test_a_route_of_one_refused_target_fails_with_every_attempt(kind: str) -> None:
    config = {
        "providers": {
            "openai": {"api_key": clients.API_KEY, "base_url": f"{refused_url()}/v1"},
        },
        "routes": {"one": {"targets": ["openai/gpt-4o-mini"], "retry": {"attempts": 1}}},
    }
    config["providers"]["openai"]["transport"] = kind
    gateway = AsyncGateway(config=config)
    try:
        with pytest.raises(AllProvidersFailed) as caught:
            await gateway.chat.completions.create(model="one", messages=HELLO)
        assert [a.provider for a in caught.value.attempts] == ["openai"]
        assert isinstance(caught.value.errors[0], ProviderConnectionError)
    finally:
        await gateway.close()


async def test_the_transport_raises_httpx2_errors_for_aiohttp_ones(kind: str) -> None:
    # What the SDKs see from AiohttpTransport is what httpx2 raises for the same failure.
    if kind != "aiohttp":
        pytest.skip("the aiohttp transport's own translation")
    sender = httpx2.AsyncClient(transport=transport.AiohttpTransport())
    try:
        with pytest.raises(httpx2.ConnectError):
            await sender.post(refused_url(), content=b"{}")
    finally:
        await sender.aclose()
