"""A streamed chat completion as Server-Sent Events, passed on chunk by chunk.

Each chunk is written the moment the provider's arrives (``data: {...}``, then
``data: [DONE]``); nothing is buffered. A client that goes away stops the call: the pump
is cancelled, which closes the gateway's stream, which closes the provider's connection and
settles what was produced (``status="incomplete"``, see gateway/_billing.py). The same
happens to a stream cut by the drain timeout when the server stops. A stream that breaks
after its first chunk ends with an ``error`` event in OpenAI's shape (and no ``[DONE]``, as
OpenAI does), and is billed for what it produced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from gateway.errors import GatewayError
from gateway.server._json import dumps
from gateway.server.errors import api_error

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionChunk

    from gateway import AsyncGatewayStream

__all__ = ["SSEResponse", "encode_chunk"]

logger = logging.getLogger("gateway.server")

_DONE = b"data: [DONE]\n\n"
_SSE_HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: do not buffer the stream
)


def encode_chunk(chunk: ChatCompletionChunk) -> bytes:
    """One SSE event. The usage chunk carries ``cost`` as an exact decimal string."""
    if chunk.usage is None:
        return b"data: " + chunk.model_dump_json(exclude_unset=True).encode() + b"\n\n"
    return b"data: " + dumps(chunk.model_dump(exclude_unset=True)) + b"\n\n"


class SSEResponse(Response):
    """An ASGI response that relays an :class:`~gateway.AsyncGatewayStream`."""

    def __init__(self, stream: AsyncGatewayStream, headers: Mapping[str, str]) -> None:
        self.status_code = 200
        self.background = None
        self._stream = stream
        self._sse_headers = [*_SSE_HEADERS, *((k.encode(), v.encode()) for k, v in headers.items())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        pump = asyncio.ensure_future(self._pump(send))
        watch = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait((pump, watch), return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Cut short (the client left, or the server's drain timed out and cancelled us):
            # stop the pump, whose `finally` closes the stream and settles what was used.
            watch.cancel()
            if not pump.done():
                pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(pump)
        if not pump.cancelled():
            pump.result()  # re-raise what the pump could not handle

    async def _pump(self, send: Send) -> None:
        stream = self._stream
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self._sse_headers})
            try:
                async for chunk in stream:
                    await send(
                        {
                            "type": "http.response.body",
                            "body": encode_chunk(chunk),
                            "more_body": True,
                        }
                    )
            except GatewayError as exc:
                # The provider broke the stream after content was sent: OpenAI's in-stream
                # error event ends it, with no [DONE] (the SDKs raise on it).
                event = b"data: " + dumps(api_error(exc).body()) + b"\n\n"
                await send({"type": "http.response.body", "body": event, "more_body": False})
                return
            await send({"type": "http.response.body", "body": _DONE, "more_body": False})
        finally:
            await asyncio.shield(_close(stream))


async def _close(stream: AsyncGatewayStream) -> None:
    try:
        await stream.close()
    except Exception:  # settling must never take the worker down; the journal has the call
        logger.exception("closing a stream failed")


async def _disconnected(receive: Receive) -> None:
    """Returns when the client has gone away."""
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return
