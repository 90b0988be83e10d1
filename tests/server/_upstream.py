"""A provider the server's tests can hold still: OpenAI's chat completions on a real loopback
HTTP server (a thread of the test process), in OpenAI's exact wire format.

The model asked for picks the behaviour:

* ``gated``: answers (a stream: its first two chunks) and then waits until the test opens
  the gate, or until the gateway hangs up, which it records (``hangups``);
* ``too-long``: OpenAI's 400 ``context_length_exceeded``;
* ``breaks``: a stream that breaks after two chunks with OpenAI's in-stream error event;
* anything else: a normal answer at once.

``wait_for(lambda: ...)`` blocks until a condition on the counters holds (no sleeping).
"""

from __future__ import annotations

import json
import select
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from gateway.testing.wire import openai as wire

__all__ = ["Upstream"]

_TEXT = ("Hel", "lo", " from", " up", "stream", "!")


class Upstream:
    """The server and what it saw."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.changed = threading.Condition()
        #: Requests waiting at the gate now, hang-ups seen, requests answered in full.
        self.waiting = 0
        self.hangups = 0
        self.answered = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> Upstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.set()
        self._server.shutdown()
        self._server.server_close()

    def count(self, name: str, delta: int) -> None:
        with self.changed:
            setattr(self, name, getattr(self, name) + delta)
            self.changed.notify_all()

    def wait_for(self, condition: Callable[[], bool], timeout: float = 30) -> None:
        with self.changed:
            assert self.changed.wait_for(condition, timeout), "the upstream never got there"


def _handler(upstream: Upstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            request = json.loads(self.rfile.read(length))
            model = request.get("model", "")
            stream = bool(request.get("stream"))
            if model == "too-long":
                self._send_error(wire.context_length_error())
                return
            if model == "limited":
                self._send_error(wire.rate_limit_error(retry_after=7))
                return
            if model == "bad-key":
                self._send_error(wire.auth_error())
                return
            usage = wire.usage(12, 6)
            if not stream:
                if model == "gated" and not self._wait_at_gate():
                    return
                body = wire.chat_completion(text="".join(_TEXT), usage=usage, model=model)
                self._send(200, json.dumps(body).encode(), "application/json")
                upstream.count("answered", 1)
                return
            chunks = wire.chat_completion_chunks(text=_TEXT, usage=usage, model=model)
            if model == "breaks":
                body = wire.sse([*chunks[:3], wire.stream_error_event()], done=False)
                self._send(200, body, "text/event-stream")
                return
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            try:
                self._write_chunk(wire.sse(chunks[:2], done=False))
                if model == "gated" and not self._wait_at_gate():
                    return
                self._write_chunk(wire.sse(chunks[2:]))
                self._write_chunk(b"")
            except OSError:
                upstream.count("hangups", 1)
                return
            upstream.count("answered", 1)

        def _wait_at_gate(self) -> bool:
            """Wait for the gate; False (and a hang-up counted) if the client left first."""
            upstream.count("waiting", 1)
            try:
                while not upstream.gate.wait(0.02):
                    if _closed(self.connection):
                        upstream.count("hangups", 1)
                        self.close_connection = True
                        return False
                return True
            finally:
                upstream.count("waiting", -1)

        def _write_chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _send_error(self, error: wire.WireError) -> None:
            body = json.dumps(error.body).encode()
            self.send_response(error.status)
            for name, value in error.headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def _closed(connection: socket.socket) -> bool:
    """Whether the peer has closed the connection (readable, and nothing to read)."""
    readable, _, _ = select.select([connection], [], [], 0)
    if not readable:
        return False
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True
