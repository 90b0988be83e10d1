"""A real webhook receiver for the tests: stdlib ``http.server`` on a loopback port, in a
thread, answering as a test scripts it.

``Receiver.script`` is a list of answers used one per request, in order (then ``default``):
an HTTP status (``200``, ``500``, ``410``), ``"hang"`` (hold the request until
:meth:`Receiver.release` or the receiver closes, as a stuck receiver would) or ``"drop"``
(close the connection without an answer). Every request is recorded with its headers and
body as received, and :meth:`Receiver.wait_for` waits (on a condition, not a sleep) until
enough have arrived.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook

Answer = int | str


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    path: str
    #: How the receiver answered it (a status, "hang" or "drop").
    answer: Answer
    #: Event ids that were in flight (received, not yet answered) when this one arrived.
    in_flight: frozenset[str] = field(default_factory=frozenset)

    @property
    def event_id(self) -> str:
        return self.headers["webhook-id"]

    def verify(self, secret: str) -> Any:
        """The payload, verified with the standardwebhooks package (raises if it fails)."""
        return Webhook(secret).verify(self.body, self.headers)


class Receiver:
    def __init__(self, port: int = 0, *, delay_s: float = 0.0) -> None:
        self.script: list[Answer] = []
        self.default: Answer = 200
        self.received: list[Received] = []
        #: Seconds to wait before answering (a receiver that takes a little while).
        self.delay_s = delay_s
        self._lock = threading.Condition()
        self._released = threading.Event()
        self._in_flight: dict[str, int] = {}
        self.overlaps: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a sender that went away mid-request (killed, timed out, closed)

        self._server = Server(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length", "0"))
        body = handler.rfile.read(length)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        event_id = headers.get("webhook-id", "")
        with self._lock:
            answer = self.script.pop(0) if self.script else self.default
            if self._in_flight.get(event_id):
                self.overlaps.append(event_id)
            self._in_flight[event_id] = self._in_flight.get(event_id, 0) + 1
            self.received.append(
                Received(headers, body, handler.path, answer, frozenset(self._in_flight))
            )
            self._lock.notify_all()
        try:
            if answer == "hang":
                self._released.wait(60)
                handler.close_connection = True
                return
            if answer == "drop":
                handler.close_connection = True
                handler.connection.shutdown(socket.SHUT_RDWR)
                return
            if self.delay_s:
                time.sleep(self.delay_s)
            assert isinstance(answer, int)
            handler.send_response(answer)
            handler.send_header("content-length", "2")
            handler.end_headers()
            handler.wfile.write(b"ok")
        finally:
            with self._lock:
                self._in_flight[event_id] -= 1

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The requests received, once there are at least ``count`` (AssertionError if not
        within ``timeout`` seconds)."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(
                    f"expected {count} webhook request(s), got {len(self.received)}"
                )
            return list(self.received)

    def types(self) -> list[str]:
        import json

        return [json.loads(r.body)["type"] for r in self.received]

    def release(self) -> None:
        """Let hanging requests end (without an answer)."""
        self._released.set()

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def receiver_on(port: int = 0, **kwargs: Any) -> Iterator[Receiver]:
    r = Receiver(port, **kwargs)
    try:
        yield r
    finally:
        r.close()


def free_port() -> int:
    """A loopback port nothing listens on (a receiver that is down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
