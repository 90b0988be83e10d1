"""What a streamed call returns: an iterator of OpenAI ``ChatCompletionChunk`` objects.

Adapters always end a stream with a usage chunk (``choices == []``). The caller sees it only
when they asked for ``stream_options={"include_usage": True}``, as with the OpenAI SDK;
otherwise the usage rides on the chunk that carries ``finish_reason``, so a loop reading
``chunk.choices[0]`` never meets an empty chunk and the usage is still there. Either way the
usage-bearing chunk has ``usage.cost``, what the credit account was charged.

The call is settled when its usage arrives. A stream that breaks, or that the caller stops
reading (``close()``, leaving a ``with`` block, or dropping it), is settled from what is
known when it ends (see :mod:`gateway._billing`).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from types import TracebackType
from typing import TYPE_CHECKING

from gateway._attempts import GatewayInfo
from gateway._billing import AttemptBill
from gateway.errors import ProviderError, ProviderUnavailable
from gateway.providers.base import AsyncChunkStream, ChunkStream, TokenUsage
from gateway.telemetry import NULL_TRACE, CallTrace

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionChunk

    from gateway.types import GatewayUsage

__all__ = ["AsyncGatewayStream", "GatewayStream", "aread_until_content", "read_until_content"]


class _Relay:
    """Chunk bookkeeping shared by the sync and async streams (no I/O)."""

    __slots__ = ("_held", "_include_usage", "delivered_chars", "settle_with", "usage")

    def __init__(self, include_usage: bool) -> None:
        self._include_usage = include_usage
        self._held: ChatCompletionChunk | None = None
        #: Characters of text delivered so far (to estimate a stream cut short).
        self.delivered_chars = 0
        #: Set when the chunk just returned carries the call's usage: settle with these tokens.
        self.settle_with: TokenUsage | None = None
        self.usage: GatewayUsage | None = None

    def relay(
        self, chunk: ChatCompletionChunk, tokens: TokenUsage | None
    ) -> ChatCompletionChunk | None:
        """The chunk to give the caller now, or None to give nothing for this one."""
        choices = chunk.choices
        if choices:
            first = choices[0]
            content = first.delta.content
            if content:
                self.delivered_chars += len(content)
            if not self._include_usage and first.finish_reason is not None:
                self._held = chunk  # usage arrives next; it will ride on this chunk
                return None
            return chunk
        if chunk.usage is None:
            return chunk
        from gateway.types import to_gateway_chunk

        usage = tokens or TokenUsage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        if self._include_usage or self._held is None:
            final = to_gateway_chunk(chunk, None)
        else:
            held, self._held = self._held, None
            final = to_gateway_chunk(held.model_copy(update={"usage": chunk.usage}), None)
        self.usage = final.usage
        self.settle_with = usage
        return final

    def leftover(self) -> ChatCompletionChunk | None:
        """A held finish chunk whose usage never came (the provider sent none)."""
        held, self._held = self._held, None
        return held


def read_until_content(native: ChunkStream) -> list[ChatCompletionChunk]:
    """Read a new stream up to its first content chunk, so a failure before any content can
    still fall back to another target. Closes the stream if it fails."""
    head: list[ChatCompletionChunk] = []
    try:
        for chunk in native:
            head.append(chunk)
            if native.content_chunks or not chunk.choices:
                break
    except BaseException:
        native.close()
        raise
    return head


async def aread_until_content(native: AsyncChunkStream) -> list[ChatCompletionChunk]:
    """The async twin of :func:`read_until_content`."""
    head: list[ChatCompletionChunk] = []
    try:
        async for chunk in native:
            head.append(chunk)
            if native.content_chunks or not chunk.choices:
                break
    except BaseException:
        await native.aclose()
        raise
    return head


def broken_stream_error(error: ProviderError, delivered: int) -> ProviderUnavailable:
    """The error a caller sees when a stream breaks after content was delivered."""
    cls = type(error) if isinstance(error, ProviderUnavailable) else ProviderUnavailable
    broken = cls(
        f"the stream broke after {delivered} content chunk(s) were delivered: {error.detail}",
        provider=error.provider,
        model=error.model,
        status_code=error.status_code,
        request_id=error.request_id,
        code=error.code,
    )
    broken.chunks_received = delivered
    broken.attempts = error.attempts
    return broken


async def _achain(
    head: list[ChatCompletionChunk], rest: AsyncChunkStream
) -> AsyncGenerator[ChatCompletionChunk, None]:
    for chunk in head:
        yield chunk
    head.clear()
    async for chunk in rest:
        yield chunk


class GatewayStream:
    """A streamed chat completion: iterate for chunks; ``.gateway`` says who answers."""

    def __init__(
        self,
        native: ChunkStream,
        head: list[ChatCompletionChunk],
        info: GatewayInfo,
        include_usage: bool,
        bill: AttemptBill,
        trace: CallTrace = NULL_TRACE,
    ) -> None:
        self._native = native
        self._head = head
        self._bill = bill
        self._relay = _Relay(include_usage)
        self._trace = trace
        self._iter = trace.stream_opened(head, self._chunks(), native, bill)
        #: Who is answering and the attempts it took to open the stream.
        self.gateway = info

    @property
    def usage(self) -> GatewayUsage | None:
        """The whole call's usage, with ``cost``, once the stream has ended."""
        return self._relay.usage

    def _chunks(self) -> Generator[ChatCompletionChunk, None, None]:
        native = self._native
        relay = self._relay
        attempts = len(self.gateway.attempts)
        try:
            head, self._head = self._head, []
            for chunk in itertools.chain(head, native):
                out = relay.relay(chunk, native.usage)
                if out is None:
                    continue
                if relay.settle_with is not None:
                    assert relay.usage is not None
                    relay.usage.cost = self._bill.settle(relay.settle_with, attempts=attempts)
                    relay.settle_with = None
                yield out
        except ProviderError as error:
            raise broken_stream_error(error, native.content_chunks) from None
        finally:
            native.close()
            self._bill.settle_incomplete(native.usage, relay.delivered_chars, attempts=attempts)
        leftover = relay.leftover()
        if leftover is not None:
            yield leftover

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return self._iter

    def __next__(self) -> ChatCompletionChunk:
        return next(self._iter)

    def close(self) -> None:
        """Stop reading; releases the connection and settles what was used."""
        self._iter.close()
        self._native.close()
        attempts = len(self.gateway.attempts)
        self._bill.settle_incomplete(
            self._native.usage, self._relay.delivered_chars, attempts=attempts
        )
        self._trace.stream_closed()

    def __enter__(self) -> GatewayStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # A stream dropped unread still pays for what it used (and frees its connection).
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()


class AsyncGatewayStream:
    """The async twin of :class:`GatewayStream`: ``async for chunk in stream``."""

    def __init__(
        self,
        native: AsyncChunkStream,
        head: list[ChatCompletionChunk],
        info: GatewayInfo,
        include_usage: bool,
        bill: AttemptBill,
        trace: CallTrace = NULL_TRACE,
    ) -> None:
        self._native = native
        self._head = head
        self._bill = bill
        self._relay = _Relay(include_usage)
        self._trace = trace
        self._iter = trace.astream_opened(head, self._chunks(), native, bill)
        self.gateway = info

    @property
    def usage(self) -> GatewayUsage | None:
        return self._relay.usage

    async def _chunks(self) -> AsyncGenerator[ChatCompletionChunk, None]:
        native = self._native
        relay = self._relay
        attempts = len(self.gateway.attempts)
        try:
            async for chunk in _achain(self._head, native):
                out = relay.relay(chunk, native.usage)
                if out is None:
                    continue
                if relay.settle_with is not None:
                    assert relay.usage is not None
                    relay.usage.cost = await self._bill.asettle(
                        relay.settle_with, attempts=attempts
                    )
                    relay.settle_with = None
                yield out
        except ProviderError as error:
            raise broken_stream_error(error, native.content_chunks) from None
        finally:
            await native.aclose()
            await self._bill.asettle_incomplete(
                native.usage, relay.delivered_chars, attempts=attempts
            )
        leftover = relay.leftover()
        if leftover is not None:
            yield leftover

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self._iter

    async def __anext__(self) -> ChatCompletionChunk:
        return await self._iter.__anext__()

    async def close(self) -> None:
        """Stop reading; releases the connection and settles what was used."""
        await self._iter.aclose()
        await self._native.aclose()
        await self._bill.asettle_incomplete(
            self._native.usage, self._relay.delivered_chars, attempts=len(self.gateway.attempts)
        )
        self._trace.stream_closed()

    def __del__(self) -> None:
        # A stream dropped unread still pays for what it used. No await is possible here, so
        # the settlement runs synchronously: in memory against the lease (the default), or one
        # short store transaction with ``flush_interval_ms: 0``. The connection is left to the
        # HTTP client's own clean-up.
        with contextlib.suppress(Exception):  # interpreter shutdown
            self._bill.settle_incomplete(
                self._native.usage,
                self._relay.delivered_chars,
                attempts=len(self.gateway.attempts),
            )
            self._trace.stream_closed()

    async def __aenter__(self) -> AsyncGatewayStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
