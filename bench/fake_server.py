"""A fast local HTTP/1.1 server that speaks the OpenAI, Anthropic and Gemini wire formats.

It exists so the benchmarks measure the *client*: every response is pre-encoded (built once
from :mod:`gateway.testing.wire`, the exact formats the adapters' tests use) and the request
handler is a raw :class:`asyncio.Protocol` that finds the end of the headers, reads
``content-length`` bytes and writes cached bytes back, with keep-alive. It costs the server
about 20-40 µs of CPU per request, against ~1 ms for an SDK call.

Endpoints (what each SDK posts to, given ``base_url``):

- OpenAI ``POST .../chat/completions`` (``"stream": true`` in the body -> SSE);
- Anthropic ``POST .../v1/messages`` (same);
- Gemini ``POST .../models/<model>:generateContent`` and ``:streamGenerateContent?alt=sse``;
- ``GET /_stats``: requests served and the server's own CPU seconds (JSON).

Fault injection and stream length, per request, either as a path prefix (put it in a
provider's ``base_url``, so one gateway target can fail while another is healthy) or as
headers (``x-fake-<option>``, e.g. via the SDK's ``default_headers``)::

    http://127.0.0.1:PORT/_bench/status=429,retry_after=0/v1     # OpenAI base_url
    x-fake-status: 503
    x-fake-latency-ms: 20

Options: ``status`` (HTTP status, default 200; errors get the provider's own error body),
``retry_after`` (seconds, sent as ``retry-after`` with an error), ``latency_ms`` (delay before
the response), ``chunks`` (text chunks in a stream, default 50), ``chunk_ms`` (delay between
stream events; the stream is then sent with chunked transfer encoding, event by event).

Run it alone with ``python bench/fake_server.py --port 8765`` (prints ``READY <port>``), or in
a thread with :class:`ServerThread` (the smoke test does).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import resource
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.testing.wire import anthropic as anthropic_wire
from gateway.testing.wire import gemini as gemini_wire
from gateway.testing.wire import openai as openai_wire

__all__ = ["DEFAULT_CHUNKS", "Options", "ServerThread", "parse_options", "serve"]

#: Text chunks in a stream unless the request asks for another number.
DEFAULT_CHUNKS = 50
PREFIX = b"/_bench/"
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    529: "Overloaded",
}
_TEXT = "Hello from the bench server."


@dataclass(frozen=True, slots=True)
class Options:
    """What one request asks of the server."""

    status: int = 200
    retry_after: str | None = None
    latency_ms: float = 0.0
    chunks: int = DEFAULT_CHUNKS
    chunk_ms: float = 0.0


_DEFAULT_OPTIONS = Options()


def parse_options(pairs: dict[str, str], base: Options = _DEFAULT_OPTIONS) -> Options:
    """Options from ``{"status": "429", ...}`` (path prefix or ``x-fake-*`` headers)."""
    if not pairs:
        return base
    return Options(
        status=int(pairs.get("status", base.status)),
        retry_after=pairs.get("retry_after", base.retry_after),
        latency_ms=float(pairs.get("latency_ms", base.latency_ms)),
        chunks=int(pairs.get("chunks", base.chunks)),
        chunk_ms=float(pairs.get("chunk_ms", base.chunk_ms)),
    )


# ---------------------------------------------------------------------------------------------
# Pre-encoded responses


def _head(status: int, headers: dict[str, str], length: int | None) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(
        f"content-length: {length}" if length is not None else "transfer-encoding: chunked"
    )
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def _json(status: int, body: Any, headers: dict[str, str]) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode()
    return _head(status, {"content-type": "application/json", **headers}, len(data)) + data


def _words(n: int) -> list[str]:
    return [f"tok{i} " for i in range(n)]


#: A builder's answer: a whole response, or (headers, events) of a stream.
Built = bytes | tuple[dict[str, str], list[bytes]]


def _openai(stream: bool, o: Options) -> Built:
    if o.status != 200:
        if o.status == 429:
            err = openai_wire.rate_limit_error(retry_after=o.retry_after)
        else:
            err = openai_wire.error_response(
                o.status,
                "injected failure",
                type="server_error" if o.status >= 500 else "invalid_request_error",
                retry_after=o.retry_after,
            )
        return _json(err.status, err.body, {**err.headers})
    usage = openai_wire.usage(12, o.chunks if stream else 8)
    if not stream:
        body = openai_wire.chat_completion(text=_TEXT, usage=usage)
        return _json(200, body, {"x-request-id": "req_bench"})
    chunks = openai_wire.chat_completion_chunks(text=_words(o.chunks), usage=usage)
    events = [openai_wire.sse([c], done=False) for c in chunks] + [b"data: [DONE]\n\n"]
    return dict(openai_wire.SSE_HEADERS), events


def _anthropic(stream: bool, o: Options) -> Built:
    if o.status != 200:
        body = anthropic_wire.error_for_status(o.status)
        headers = anthropic_wire.error_headers(retry_after=o.retry_after)
        return _json(o.status, body, headers)
    usage = anthropic_wire.usage(20, o.chunks if stream else 7)
    if not stream:
        body = anthropic_wire.message(text=_TEXT, usage=usage)
        return _json(200, body, {"request-id": "req_bench"})
    events = anthropic_wire.stream_events(text_chunks=_words(o.chunks), usage=usage)
    return dict(anthropic_wire.SSE_HEADERS), [anthropic_wire.encode_sse([e]) for e in events]


def _gemini(stream: bool, o: Options) -> Built:
    if o.status != 200:
        body = gemini_wire.error_body(o.status)
        headers = gemini_wire.error_headers(retry_after=o.retry_after)
        return _json(o.status, body, headers)
    usage = gemini_wire.usage_metadata(prompt_tokens=30, output_tokens=o.chunks if stream else 6)
    if not stream:
        body = gemini_wire.generate_content_response(_TEXT, usage=usage)
        return _json(200, body, {})
    events = gemini_wire.stream_events(_words(o.chunks), usage=usage)
    headers = {"content-type": "text/event-stream"}
    return headers, [gemini_wire.sse_body([e]) for e in events]


_BUILDERS: dict[str, Callable[[bool, Options], Built]] = {
    "openai": _openai,
    "anthropic": _anthropic,
    "gemini": _gemini,
}


@dataclass(slots=True)
class _Response:
    #: The whole response (head and body) in one piece.
    whole: bytes
    #: For a stream sent event by event: the head, then each event as an HTTP chunk.
    pieces: list[bytes] = field(default_factory=list)


def _build(kind: str, stream: bool, o: Options) -> _Response:
    built = _BUILDERS[kind](stream, o)
    if isinstance(built, bytes):
        return _Response(built)
    headers, events = built
    body = b"".join(events)
    whole = _head(200, headers, len(body)) + body
    pieces = [_head(200, headers, None)]
    pieces += [f"{len(e):x}\r\n".encode() + e + b"\r\n" for e in events]
    pieces.append(b"0\r\n\r\n")
    return _Response(whole, pieces)


class _Cache:
    def __init__(self) -> None:
        self._responses: dict[tuple[str, bool, Options], _Response] = {}

    def get(self, kind: str, stream: bool, o: Options) -> _Response:
        key = (kind, stream, dataclasses.replace(o, latency_ms=0.0, chunk_ms=0.0))
        response = self._responses.get(key)
        if response is None:
            response = self._responses[key] = _build(kind, stream, o)
        return response


# ---------------------------------------------------------------------------------------------
# The protocol


class Stats:
    """Requests served, by provider; read with ``GET /_stats``."""

    def __init__(self) -> None:
        self.requests: dict[str, int] = {"openai": 0, "anthropic": 0, "gemini": 0, "other": 0}
        self.connections = 0

    def as_json(self) -> bytes:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        data = {
            "requests": self.requests,
            "total": sum(self.requests.values()),
            "connections": self.connections,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "pid": os.getpid(),
        }
        return _json(200, data, {})


_NOT_FOUND = _json(404, {"error": {"message": "no such endpoint", "code": 404}}, {})


def _kind(path: bytes) -> str | None:
    if path.endswith(b"/chat/completions"):
        return "openai"
    if path.endswith(b"/messages"):
        return "anthropic"
    if b":generateContent" in path or b":streamGenerateContent" in path:
        return "gemini"
    return None


def _header_options(head_lower: bytes) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for line in head_lower.split(b"\r\n"):
        if line.startswith(b"x-fake-"):
            name, _, value = line.partition(b":")
            pairs[name[7:].decode().replace("-", "_")] = value.strip().decode()
    return pairs


def _prefix_options(path: bytes) -> tuple[dict[str, str], bytes]:
    spec, _, rest = path[len(PREFIX) :].partition(b"/")
    pairs = {}
    for item in spec.decode().split(","):
        if item:
            name, _, value = item.partition("=")
            pairs[name] = value
    return pairs, b"/" + rest


class _Handler(asyncio.Protocol):
    __slots__ = ("_buffer", "_cache", "_closing", "_loop", "_stats", "_transport")

    def __init__(self, cache: _Cache, stats: Stats) -> None:
        self._cache = cache
        self._stats = stats
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._stats.connections += 1

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end])
            lower = head.lower()
            at = lower.find(b"\r\ncontent-length:")
            length = 0
            if at >= 0:
                stop = lower.find(b"\r\n", at + 2)
                length = int(lower[at + 17 : stop if stop >= 0 else None])
            total = end + 4 + length
            if len(buffer) < total:
                return
            body = bytes(buffer[end + 4 : total])
            del buffer[:total]
            self._respond(head, lower, body)

    def _respond(self, head: bytes, lower: bytes, body: bytes) -> None:
        transport = self._transport
        assert transport is not None
        line_end = head.find(b"\r\n")
        _, path, _ = head[: line_end if line_end >= 0 else None].split(b" ", 2)
        path, _, query = path.partition(b"?")
        pairs: dict[str, str] = {}
        if path.startswith(PREFIX):
            pairs, path = _prefix_options(path)
        if b"\r\nx-fake-" in lower:
            pairs.update(_header_options(lower))
        if b"\r\nconnection: close" in lower:
            self._closing = True
        kind = _kind(path)
        if kind is None:
            self._stats.requests["other"] += 1
            transport.write(self._stats.as_json() if path == b"/_stats" else _NOT_FOUND)
            return self._maybe_close()
        self._stats.requests[kind] += 1
        options = parse_options(pairs)
        if kind == "gemini":
            stream = b":streamGenerateContent" in path or b"alt=sse" in query
        else:
            stream = b'"stream":true' in body or b'"stream": true' in body
        response = self._cache.get(kind, stream, options)
        if options.chunk_ms > 0 and response.pieces:
            self._send_slowly(response.pieces, options.latency_ms / 1000, options.chunk_ms / 1000)
        elif options.latency_ms > 0:
            self._loop.call_later(options.latency_ms / 1000, self._write, response.whole)
        else:
            transport.write(response.whole)
            self._maybe_close()

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)
            self._maybe_close()

    def _send_slowly(self, pieces: list[bytes], first: float, gap: float) -> None:
        transport = self._transport
        assert transport is not None
        for i, piece in enumerate(pieces):
            self._loop.call_later(first + gap * max(0, i - 1), self._write_piece, piece)
        self._loop.call_later(first + gap * len(pieces), self._maybe_close)

    def _write_piece(self, piece: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(piece)

    def _maybe_close(self) -> None:
        if self._closing and self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


async def serve(
    host: str = "127.0.0.1", port: int = 0, *, ready: Callable[[int], None] | None = None
) -> None:
    """Serve until cancelled; ``ready(port)`` is called once the socket listens."""
    loop = asyncio.get_running_loop()
    cache = _Cache()
    stats = Stats()
    for kind in _BUILDERS:  # pre-build the common responses
        cache.get(kind, False, _DEFAULT_OPTIONS)
        cache.get(kind, True, _DEFAULT_OPTIONS)
    server = await loop.create_server(
        lambda: _Handler(cache, stats), host, port, backlog=1024, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    if ready is not None:
        ready(bound)
    async with server:
        await server.serve_forever()


class ServerThread:
    """The server on its own event loop in a daemon thread (for tests)::

    with ServerThread() as server:
        OpenAI(base_url=f"{server.url}/v1", api_key="k")...
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()

        def ready(port: int) -> None:
            self.port = port
            self._ready.set()

        self._task = loop.create_task(serve(self.host, self.port, ready=ready))
        try:
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        finally:
            loop.close()

    def start(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(5)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--cpu", type=int, default=None, help="pin the server to this core")
    args = parser.parse_args(argv)
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    def ready(port: int) -> None:
        print(f"READY {port}", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, ready=ready))


if __name__ == "__main__":
    main()
