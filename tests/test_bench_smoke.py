"""The benchmark's fake provider server speaks each wire format well enough for the real SDKs.

Fast and timing-free: it only checks that what bench/fake_server.py sends parses with the
official clients (and through the gateway), so a benchmark never measures error paths.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bench import clients
from bench.fake_server import DEFAULT_CHUNKS, ServerThread


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with ServerThread() as running:
        yield running.url


def _text_of(provider: str, response: Any) -> str:
    if provider == "openai":
        return str(response.choices[0].message.content)
    if provider == "anthropic":
        return str(response.content[0].text)
    return str(response.text)


@pytest.mark.parametrize("provider", clients.PROVIDERS)
def test_raw_sdk_parses_a_response_and_a_stream(server: str, provider: str) -> None:
    side = clients.raw_sync(provider, server)
    try:
        assert _text_of(provider, side.call()) == "Hello from the bench server."
        pieces = list(side.stream())
        assert len(pieces) == DEFAULT_CHUNKS
        assert "".join(pieces).startswith("tok0 tok1 ")
    finally:
        side.close()


@pytest.mark.parametrize("provider", clients.PROVIDERS)
async def test_raw_async_sdk_parses_a_response_and_a_stream(server: str, provider: str) -> None:
    side = clients.raw_async(provider, server)
    try:
        assert _text_of(provider, await side.call()) == "Hello from the bench server."
        pieces = [piece async for piece in side.stream()]
        assert len(pieces) == DEFAULT_CHUNKS
    finally:
        await side.close()


def _rate_limit_error(provider: str) -> type[Exception]:
    if provider == "openai":
        import openai

        return openai.RateLimitError
    if provider == "anthropic":
        import anthropic

        return anthropic.RateLimitError
    from google.genai import errors

    return errors.ClientError


@pytest.mark.parametrize("provider", clients.PROVIDERS)
def test_injected_429_is_the_sdks_rate_limit_error_with_retry_after(
    server: str, provider: str
) -> None:
    side = clients.raw_sync(provider, server, "status=429,retry_after=7")
    try:
        with pytest.raises(_rate_limit_error(provider)) as caught:
            side.call()
    finally:
        side.close()
    error: Any = caught.value
    response = getattr(error, "response", None)
    assert response is not None and response.headers.get("retry-after") == "7"
    assert getattr(error, "status_code", None) == 429 or getattr(error, "code", None) == 429


@pytest.mark.parametrize("provider", clients.PROVIDERS)
def test_gateway_route_and_fallback_through_the_server(server: str, provider: str) -> None:
    side, _ = clients.gateway_sync(clients.gateway_config(server, provider))
    try:
        response = side.call()
        assert response.choices[0].message.content == "Hello from the bench server."
        assert response.gateway.provider == provider
        assert len(list(side.stream())) == DEFAULT_CHUNKS
    finally:
        side.close()
    failing, _ = clients.gateway_sync(
        clients.gateway_config(server, provider, first_fails="status=429,retry_after=0")
    )
    try:
        response = failing.call()
        outcomes = [attempt.outcome for attempt in response.gateway.attempts]
        assert outcomes == ["error", "ok"]
        assert response.gateway.attempts[0].status_code == 429
    finally:
        failing.close()


def test_header_options_and_stream_length(server: str) -> None:
    import openai

    client = openai.OpenAI(
        api_key=clients.API_KEY,
        base_url=f"{server}/_bench/chunks=3,chunk_ms=1/v1",
        max_retries=0,
        default_headers={"x-fake-latency-ms": "1"},
    )
    try:
        chunks = list(
            client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        texts = [
            c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
        ]
        assert texts == ["tok0 ", "tok1 ", "tok2 "]
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
        unavailable = openai.OpenAI(
            api_key=clients.API_KEY,
            base_url=f"{server}/v1",
            max_retries=0,
            default_headers={"x-fake-status": "503"},
        )
        with pytest.raises(openai.InternalServerError):
            unavailable.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x"}]
            )
        unavailable.close()
    finally:
        client.close()


def test_stats_endpoint_counts_requests(server: str) -> None:
    from bench.run import server_stats

    stats = server_stats(server)
    assert stats["total"] >= 1
    assert stats["cpu_s"] >= 0


@pytest.mark.slow
def test_the_openai_client_benchmark_runs() -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parent.parent / "bench" / "openai_client.py"
    done = subprocess.run(
        [sys.executable, str(script), "--calls", "10", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| sync call")]
    assert len(rows) == 1 and rows[0].count("|") == 7
