"""The OpenAI adapter's direct aiohttp path (providers/_openai_direct.py) against the SDK's path.

A loopback HTTP/1.1 server (in the test's event loop) records each raw request and answers
scripted raw bytes. Every case runs the same request through two adapters with the same
config on the aiohttp transport: one on the direct path, one with it switched off (the SDK's
``client.post`` over the same aiohttp transport), and asserts the same request on the wire
and the same outcome: answer, chunks, usage, or gateway error (class, status, code, message,
retry_after, request id, chunks received). Some cases also compare with the httpx2 transport.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from openai.types.chat import ChatCompletionChunk

from gateway.config import ProviderConfig
from gateway.errors import (
    AuthenticationFailed,
    GatewayError,
    InvalidRequest,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from gateway.providers import _openai_direct as direct
from gateway.providers.base import ChatRequest
from gateway.providers.openai import OpenAIAdapter
from gateway.testing.wire import openai as wire
from tests.conftest import CANARY_KEY

MODEL = "gpt-4o"
HELLO = [{"role": "user", "content": "Hi"}]


# ---------------------------------------------------------------------------------------------
# A scriptable loopback server


@dataclass
class Reply:
    """Raw bytes to write; ``close`` ends the connection after them; ``hang`` never answers."""

    pieces: list[bytes] = field(default_factory=list)
    close: bool = False
    hang: bool = False


def http(status: int, body: bytes, headers: dict[str, str] | None = None) -> Reply:
    head = [f"HTTP/1.1 {status} X", f"content-length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in (headers or {"content-type": "application/json"}).items()]
    return Reply([("\r\n".join(head) + "\r\n\r\n").encode() + body])


def json_reply(status: int, value: Any, headers: dict[str, str] | None = None) -> Reply:
    return http(status, json.dumps(value).encode(), headers)


def sse_reply(body: bytes, *, cut: bool = False) -> Reply:
    """A chunked SSE answer, one piece per event; ``cut``: closed without the last chunk."""
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
    pieces = [head + b"x-request-id: req_stream\r\n\r\n"]
    for event in body.split(b"\n\n"):
        if event:
            data = event + b"\n\n"
            pieces.append(b"%x\r\n%s\r\n" % (len(data), data))
    if cut:
        return Reply(pieces, close=True)
    pieces.append(b"0\r\n\r\n")
    return Reply(pieces)


@dataclass
class Seen:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes


class Server:
    """Records each request; answers with ``script(seen)``."""

    def __init__(self, script: Callable[[Seen], Reply]) -> None:
        self.script = script
        self.seen: list[Seen] = []
        self.connections = 0
        self.closed = 0
        self._stop = asyncio.Event()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._server is not None
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                line, *rest = head.strip().split("\r\n")
                method, target, _ = line.split(" ", 2)
                headers = [(k.lower(), v.strip()) for k, _, v in (h.partition(":") for h in rest)]
                length = int(dict(headers).get("content-length", "0"))
                seen = Seen(method, target, headers, await reader.readexactly(length))
                self.seen.append(seen)
                reply = self.script(seen)
                if reply.hang:
                    await self._stop.wait()
                    return
                for piece in reply.pieces:
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0)  # let the client read each piece apart
                if reply.close:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed += 1
            writer.close()


# ---------------------------------------------------------------------------------------------
# The two paths


def make_adapter(url: str, *, kind: str = "aiohttp", **settings: Any) -> OpenAIAdapter:
    config = ProviderConfig(
        type="openai", name="openai", api_key=CANARY_KEY, base_url=url, transport=kind, **settings
    )
    return OpenAIAdapter("openai", config)


def sdk_path(adapter: OpenAIAdapter) -> OpenAIAdapter:
    """The adapter with its direct path switched off: the SDK's ``client.post``, same transport."""
    adapter._async_sdk_client()
    adapter._direct = None
    return adapter


@pytest.fixture
async def pair() -> AsyncIterator[Callable[..., tuple[OpenAIAdapter, OpenAIAdapter]]]:
    made: list[OpenAIAdapter] = []

    def make(url: str, **settings: Any) -> tuple[OpenAIAdapter, OpenAIAdapter]:
        fast = make_adapter(url, **settings)
        fast._async_sdk_client()
        assert isinstance(fast._direct, direct.DirectClient)
        slow = sdk_path(make_adapter(url, **settings))
        made.extend((fast, slow))
        return fast, slow

    yield make
    for adapter in made:
        await adapter.aclose()


def error_fields(exc: GatewayError) -> dict[str, Any]:
    fields: dict[str, Any] = {"class": type(exc), "message": str(exc)}
    if isinstance(exc, ProviderError):
        fields |= {
            "status": exc.status_code,
            "code": exc.code,
            "retry_after": exc.retry_after,
            "request_id": exc.request_id,
        }
    if isinstance(exc, ProviderUnavailable):
        fields["chunks"] = exc.chunks_received
    return fields


async def outcome(call: Any) -> dict[str, Any]:
    try:
        await call
    except GatewayError as exc:
        assert exc.__context__ is None and exc.__cause__ is None  # the SDK's holds the key
        return error_fields(exc)
    raise AssertionError("no error")


async def stream_outcome(adapter: OpenAIAdapter, request: ChatRequest) -> dict[str, Any]:
    chunks: list[ChatCompletionChunk] = []

    def dumped() -> list[dict[str, Any]]:
        return [c.model_dump(warnings=False) for c in chunks]

    stream = await adapter.astream(MODEL, request)
    try:
        async for chunk in stream:
            assert type(chunk) is ChatCompletionChunk
            chunks.append(chunk)
    except GatewayError as exc:
        return {
            "error": error_fields(exc),
            "chunks": dumped(),
        }
    return {
        "chunks": dumped(),
        "content_chunks": stream.content_chunks,
        "usage": stream.usage,
    }


# ---------------------------------------------------------------------------------------------
# The request on the wire

TOOL = {
    "type": "function",
    "function": {"name": "f", "parameters": {"type": "object"}, "strict": True},
}
SHAPES = {
    "plain": ChatRequest(messages=HELLO, max_tokens=64),
    "settings": ChatRequest(
        messages=[{"role": "system", "content": "Be brief. é 漢字"}, *HELLO],
        temperature=0.5,
        stop=("END",),
        seed=7,
        logprobs=True,
        top_logprobs=2,
        timeout=5.0,
    ),
    "tools": ChatRequest(
        messages=HELLO,
        tools=[TOOL],
        tool_choice="required",
        response_format={"type": "json_object"},
    ),
    "extras": ChatRequest(
        messages=HELLO,
        metadata={"feature": "search"},
        extra_headers={"x-trace": "t-1", "X-Stainless-Retry-Count": "5"},
        extra_query={"api-version": "2"},
        extra_body={"store": True, "custom": {"a": [1, 2]}, "stream_options": {"x": 1}},
        openai_only={"logit_bias": {"50256": -100}},
    ),
}


def answer(seen: Seen) -> Reply:
    if b'"stream":true' in seen.body:
        return sse_reply(wire.chat_completion_stream(text=["Hel", "lo", "!"]))
    return json_reply(200, wire.chat_completion(text="Hello!"), {"x-request-id": "req_1"})


@pytest.mark.parametrize("stream", [False, True], ids=["call", "stream"])
@pytest.mark.parametrize("shape", list(SHAPES))
async def test_the_request_on_the_wire_is_the_sdks(
    pair: Any, monkeypatch: pytest.MonkeyPatch, shape: str, stream: bool
) -> None:
    monkeypatch.setenv("OPENAI_ORG_ID", "org-direct")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-direct")
    request = SHAPES[shape]
    async with Server(answer) as server:
        fast, slow = pair(server.url, headers={"x-team": "search"})
        for adapter in (fast, slow):
            if stream:
                assert "error" not in await stream_outcome(adapter, request)
            else:
                await adapter.acomplete(MODEL, request)
        direct_seen, sdk_seen = server.seen
    assert (direct_seen.method, direct_seen.target) == (sdk_seen.method, sdk_seen.target)
    assert direct_seen.target.startswith("/v1/chat/completions")
    # Every header, in the same order; none differs on this transport (content-length is
    # aiohttp's on both paths, of the same body).
    assert direct_seen.headers == sdk_seen.headers
    headers = dict(direct_seen.headers)
    assert headers["authorization"] == f"Bearer {CANARY_KEY}"
    assert headers["openai-organization"] == "org-direct"
    assert headers["openai-project"] == "proj-direct"
    assert headers["x-team"] == "search"
    assert direct_seen.body == sdk_seen.body
    if shape == "extras":
        assert direct_seen.target.endswith("?api-version=2")
        assert headers["x-trace"] == "t-1" and headers["x-stainless-retry-count"] == "5"
        assert json.loads(direct_seen.body)["custom"] == {"a": [1, 2]}
    else:
        assert headers["x-stainless-retry-count"] == "0"
    if shape == "settings":
        assert headers["x-stainless-read-timeout"] == "5.0"


async def test_an_answer_is_the_same_on_both_paths(pair: Any) -> None:
    async with Server(answer) as server:
        fast, slow = pair(server.url)
        request = ChatRequest(messages=HELLO)
        got = await fast.acomplete(MODEL, request)
        want = await slow.acomplete(MODEL, request)
        assert got.completion == want.completion and got.usage == want.usage
        assert got.usage.input_tokens > 0
        assert await stream_outcome(fast, request) == await stream_outcome(slow, request)
        # One request shape is prepared by the SDK once, then reused.
        assert fast._direct is not None and len(fast._direct._shapes) == 1
        # Both streams were read to their end: the direct path's connection went back to
        # the pool and served every later request.
        assert server.closed == 0


async def test_each_call_sends_its_own_extra_body(pair: Any) -> None:
    # Same headers, query and timeout (one prepared shape), different extra_body.
    async with Server(answer) as server:
        fast, _ = pair(server.url)
        for value in (1, 2):
            request = ChatRequest(messages=HELLO, extra_body={"custom": value})
            await fast.acomplete(MODEL, request)
        await fast.acomplete(MODEL, ChatRequest(messages=HELLO))
    sent = [json.loads(seen.body).get("custom") for seen in server.seen]
    assert sent == [1, 2, None]
    assert fast._direct is not None and len(fast._direct._shapes) == 1


async def test_a_gzip_answer_is_decoded_as_the_sdk_decodes_it(pair: Any) -> None:
    body = gzip.compress(json.dumps(wire.chat_completion(text="Zipped")).encode())
    reply = http(200, body, {"content-type": "application/json", "content-encoding": "gzip"})
    async with Server(lambda seen: reply) as server:
        fast, slow = pair(server.url)
        got = await fast.acomplete(MODEL, ChatRequest(messages=HELLO))
        want = await slow.acomplete(MODEL, ChatRequest(messages=HELLO))
    assert got.completion.choices[0].message.content == "Zipped"
    assert got.completion == want.completion


# ---------------------------------------------------------------------------------------------
# Error statuses

ERRORS = {
    "400": wire.invalid_request_error(),
    "400-context": wire.context_length_error(),
    "401": wire.auth_error(),
    "403": wire.permission_error(),
    "404": wire.not_found_error(),
    "409": wire.error_response(409, "Conflict.", type="invalid_request_error", code="conflict"),
    "422": wire.error_response(422, "Unprocessable.", type="invalid_request_error"),
    "429": wire.rate_limit_error(retry_after=7),
    "429-ms": wire.rate_limit_error(retry_after_ms=1500),
    "500": wire.server_error(500),
    "503": wire.server_error(503, retry_after=2),
}
CLASSES = {
    "400": InvalidRequest,
    "401": AuthenticationFailed,
    "403": AuthenticationFailed,
    "429": RateLimited,
    "500": ProviderUnavailable,
}


@pytest.mark.parametrize("stream", [False, True], ids=["call", "stream"])
@pytest.mark.parametrize("name", list(ERRORS))
async def test_each_error_status_is_the_sdk_paths_error(pair: Any, name: str, stream: bool) -> None:
    error = ERRORS[name]
    reply = json_reply(error.status, error.body, dict(error.headers))
    async with Server(lambda seen: reply) as server:
        fast, slow = pair(server.url)
        request = ChatRequest(messages=HELLO)
        if stream:
            got = await outcome(fast.astream(MODEL, request))
            want = await outcome(slow.astream(MODEL, request))
        else:
            got = await outcome(fast.acomplete(MODEL, request))
            want = await outcome(slow.acomplete(MODEL, request))
        # And the httpx2 transport (the SDK's own pool) ends the same.
        other = make_adapter(server.url, kind="httpx")
        try:
            on_httpx = await outcome(other.acomplete(MODEL, request))
        finally:
            await other.aclose()
    assert got == want == on_httpx
    assert got["status"] == error.status
    assert got["request_id"] == wire._DEFAULT_REQUEST_ID
    if name in CLASSES:
        assert got["class"] is CLASSES[name]
    if name == "429":
        assert got["retry_after"] == 7
    if name == "429-ms":
        assert got["retry_after"] == 1.5


async def test_an_error_page_that_is_not_json_is_the_sdk_paths_error(pair: Any) -> None:
    reply = http(502, b"<html>Bad gateway</html>", {"content-type": "text/html"})
    async with Server(lambda seen: reply) as server:
        fast, slow = pair(server.url)
        got = await outcome(fast.acomplete(MODEL, ChatRequest(messages=HELLO)))
        want = await outcome(slow.acomplete(MODEL, ChatRequest(messages=HELLO)))
    assert got == want
    assert got["class"] is ProviderUnavailable and "Bad gateway" in got["message"]


async def test_a_gzip_error_body_is_read_like_the_sdk_reads_it(pair: Any) -> None:
    error = wire.rate_limit_error(retry_after=3)
    body = gzip.compress(json.dumps(error.body).encode())
    reply = http(429, body, {**error.headers, "content-encoding": "gzip"})
    async with Server(lambda seen: reply) as server:
        fast, slow = pair(server.url)
        got = await outcome(fast.acomplete(MODEL, ChatRequest(messages=HELLO)))
        want = await outcome(slow.acomplete(MODEL, ChatRequest(messages=HELLO)))
    assert got == want
    assert got["class"] is RateLimited and "Rate limit reached" in got["message"]


# ---------------------------------------------------------------------------------------------
# Transport failures


@pytest.mark.parametrize("stream", [False, True], ids=["call", "stream"])
async def test_no_answer_in_time_is_a_provider_timeout(pair: Any, stream: bool) -> None:
    # A real socket timeout of 0.2 s (the server holds the request until the test ends).
    async with Server(lambda seen: Reply(hang=True)) as server:
        fast, slow = pair(server.url)
        request = ChatRequest(messages=HELLO, timeout=0.2)
        call = fast.astream if stream else fast.acomplete
        got = await outcome(call(MODEL, request))
        want = await outcome((slow.astream if stream else slow.acomplete)(MODEL, request))
    assert got == want
    assert got["class"] is ProviderTimeout


def refused_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


async def test_a_refused_connection_is_the_sdk_paths_connection_error(pair: Any) -> None:
    fast, slow = pair(refused_url())
    got = await outcome(fast.acomplete(MODEL, ChatRequest(messages=HELLO)))
    want = await outcome(slow.acomplete(MODEL, ChatRequest(messages=HELLO)))
    assert got == want
    assert got["class"] is ProviderConnectionError
    assert got["message"].endswith("could not reach the API (ConnectError)")


async def test_a_connection_dropped_before_the_answer_is_the_sdk_paths_error(pair: Any) -> None:
    async with Server(lambda seen: Reply(close=True)) as server:
        fast, slow = pair(server.url)
        got = await outcome(fast.acomplete(MODEL, ChatRequest(messages=HELLO)))
        want = await outcome(slow.acomplete(MODEL, ChatRequest(messages=HELLO)))
    assert got == want
    assert got["class"] is ProviderConnectionError


# ---------------------------------------------------------------------------------------------
# Streams


async def test_an_in_stream_error_event_is_the_sdk_paths_error(pair: Any) -> None:
    body = wire.chat_completion_stream(
        text=["a", "b", "c"],
        error_after=3,
        error=wire.stream_error_event("Overloaded now", type="server_error", code="overloaded"),
    )
    async with Server(lambda seen: sse_reply(body)) as server:
        fast, slow = pair(server.url)
        got = await stream_outcome(fast, ChatRequest(messages=HELLO))
        want = await stream_outcome(slow, ChatRequest(messages=HELLO))
    assert got == want
    assert got["error"]["message"] == "openai/gpt-4o: Overloaded now"
    assert got["error"]["code"] == "overloaded"
    assert got["error"]["chunks"] == 2  # a role chunk, then "a" and "b"
    assert len(got["chunks"]) == 3


async def test_a_stream_cut_mid_way_is_the_sdk_paths_error(pair: Any) -> None:
    body = wire.chat_completion_stream(text=["a", "b", "c", "d"])
    cut = sse_reply(body, cut=True)
    cut.pieces = cut.pieces[:4]  # the head, the role chunk, "a", "b"; then the socket closes
    async with Server(lambda seen: cut) as server:
        fast, slow = pair(server.url)
        got = await stream_outcome(fast, ChatRequest(messages=HELLO))
        want = await stream_outcome(slow, ChatRequest(messages=HELLO))
    assert got == want
    assert got["error"]["class"] is ProviderConnectionError
    assert len(got["chunks"]) == 3


async def test_a_chunk_that_does_not_validate_is_the_sdks_lenient_chunk(pair: Any) -> None:
    chunks = wire.chat_completion_chunks(text=["a"])
    chunks[1]["choices"][0]["finish_reason"] = "a_new_reason"  # not in the SDK's Literal
    chunks[1]["system_fingerprint"] = 5  # the wrong type
    async with Server(lambda seen: sse_reply(wire.sse(chunks))) as server:
        fast, slow = pair(server.url)
        got = await stream_outcome(fast, ChatRequest(messages=HELLO))
        want = await stream_outcome(slow, ChatRequest(messages=HELLO))
    assert got == want
    assert got["chunks"][1]["choices"][0]["finish_reason"] == "a_new_reason"


async def test_sse_comments_names_and_crlf_lines_are_read_like_the_sdk(pair: Any) -> None:
    chunks = wire.chat_completion_chunks(text=["x", "y"])
    lines = [": keep-alive\r\n\r\n"]
    for chunk in chunks:
        text = json.dumps(chunk)
        half = text.index(",") + 1  # a line break between JSON tokens
        lines.append(f"event: message\r\ndata: {text[:half]}\r\ndata:{text[half:]}\r\n\r\n")
    lines.append("data: [DONE]\r\n\r\n")
    reply = sse_reply("".join(lines).encode().replace(b"\r\n\r\n", b"\n\n"))
    async with Server(lambda seen: reply) as server:
        fast, slow = pair(server.url)
        got = await stream_outcome(fast, ChatRequest(messages=HELLO))
        want = await stream_outcome(slow, ChatRequest(messages=HELLO))
    assert "error" not in got
    assert got == want
    assert got["content_chunks"] == 2


async def test_a_stream_closed_early_closes_its_connection(pair: Any) -> None:
    # The last event never comes: the stream is still open when the caller stops reading.
    body = wire.chat_completion_stream(text=["a", "b", "c"])
    async with Server(lambda seen: Reply(sse_reply(body).pieces[:3])) as server:
        fast, _ = pair(server.url)
        stream = await fast.astream(MODEL, ChatRequest(messages=HELLO))
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        assert server.closed == 0
        await stream.aclose()
        for _ in range(200):  # the server sees the connection go within a few loop turns
            if server.closed:
                break
            await asyncio.sleep(0.01)
        assert server.closed == 1


async def test_a_finished_stream_gives_its_connection_back(pair: Any) -> None:
    async with Server(answer) as server:
        fast, _ = pair(server.url)
        for _ in range(3):
            result = await stream_outcome(fast, ChatRequest(messages=HELLO))
            assert result["content_chunks"] == 3
        await fast.acomplete(MODEL, ChatRequest(messages=HELLO))
        assert server.connections == 1 and server.closed == 0


# ---------------------------------------------------------------------------------------------
# When the direct path is not taken


async def test_the_httpx_transport_and_respx_mocks_keep_the_sdk_path() -> None:
    from gateway.providers import _transport as transport

    adapter = make_adapter("http://127.0.0.1:9/v1", kind="httpx")
    adapter._async_sdk_client()
    assert adapter._direct is None
    await adapter.aclose()
    with transport.httpx_only():
        adapter = make_adapter("http://127.0.0.1:9/v1")
        adapter._async_sdk_client()
        assert adapter._direct is None
        await adapter.aclose()


async def test_a_client_with_more_than_an_api_key_gets_no_direct_path() -> None:
    from openai import AsyncOpenAI

    from gateway.providers import _transport as transport

    async def key() -> str:
        return CANARY_KEY

    client = AsyncOpenAI(api_key=key, base_url="http://127.0.0.1:9/v1")
    assert direct.direct_client(client, transport.AiohttpTransport()) is None
    await client.close()
