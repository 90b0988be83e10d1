"""The aiohttp transport honours HTTP(S)_PROXY and NO_PROXY, looked up once per origin (not
in a thread on every request, as aiohttp's own ``trust_env`` does)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from gateway import AsyncGateway
from gateway.errors import AllProvidersFailed, ProviderConnectionError
from gateway.testing.wire import openai as wire

#: Never resolvable (RFC 2606): only a proxy can answer for it.
UPSTREAM = "http://upstream.invalid:9/v1"


class Proxy:
    """A forward proxy that answers for every host itself and records what it was asked."""

    def __init__(self) -> None:
        self.requested: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                proxy.requested.append(self.path)  # absolute-form: the target URL
                body = json.dumps(wire.chat_completion(text="via the proxy")).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Proxy]:
    served = Proxy()
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", served.url)
    yield served
    served.close()


def gateway() -> AsyncGateway:
    provider = {"api_key": "sk-test", "base_url": UPSTREAM, "transport": "aiohttp"}
    return AsyncGateway(
        config={
            "providers": {"openai": provider},
            "pricing": {"openai/gpt-4o": {"input": "1", "output": "1"}},
        }
    )


async def call(gw: AsyncGateway) -> str | None:
    answer = await gw.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    return answer.choices[0].message.content


async def test_calls_go_through_the_proxy_the_environment_names(proxy: Proxy) -> None:
    async with gateway() as gw:
        assert await call(gw) == "via the proxy"
        assert await call(gw) == "via the proxy"
    assert proxy.requested == [f"{UPSTREAM}/chat/completions"] * 2


async def test_no_proxy_sends_directly(proxy: Proxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "upstream.invalid")
    async with gateway() as gw:
        with pytest.raises(AllProvidersFailed) as failed:
            await call(gw)  # upstream.invalid does not resolve
    assert [type(e) for e in failed.value.errors] == [ProviderConnectionError]
    assert proxy.requested == []
