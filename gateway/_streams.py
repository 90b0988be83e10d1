"""What a streamed call returns: an iterator of OpenAI ``ChatCompletionChunk`` objects.

Adapters always end a stream with a usage chunk (``choices == []``). The caller sees it only
when they asked for ``stream_options={"include_usage": True}``, as with the OpenAI SDK;
otherwise the usage rides on the chunk that carries ``finish_reason``, so a loop reading
``chunk.choices[0]`` never meets an empty chunk and the usage is still there. Either way the
usage-bearing chunk has ``usage.cost``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING

from gateway._attempts import GatewayInfo
from providers.base import AsyncChunkStream, ChunkStream, TokenUsage

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionChunk

    from gateway.types import GatewayUsage

__all__ = ["AsyncGatewayStream", "GatewayStream"]

#: Prices a finished stream's usage; returns None when no credit account is configured.
CostOf = Callable[[TokenUsage], Decimal | None]


class _Relay:
    """Chunk bookkeeping shared by the sync and async streams (no I/O)."""

    __slots__ = ("_cost_of", "_held", "_include_usage", "usage")

    def __init__(self, include_usage: bool, cost_of: CostOf) -> None:
        self._include_usage = include_usage
        self._cost_of = cost_of
        self._held: ChatCompletionChunk | None = None
        self.usage: GatewayUsage | None = None

    def relay(
        self, chunk: ChatCompletionChunk, tokens: TokenUsage | None
    ) -> ChatCompletionChunk | None:
        """The chunk to give the caller now, or None to give nothing for this one."""
        choices = chunk.choices
        if choices:
            if not self._include_usage and choices[0].finish_reason is not None:
                self._held = chunk  # usage arrives next; it will ride on this chunk
                return None
            return chunk
        if chunk.usage is None:
            return chunk
        from gateway.types import to_gateway_chunk

        usage = tokens or TokenUsage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        cost = self._cost_of(usage)
        if self._include_usage or self._held is None:
            final = to_gateway_chunk(chunk, cost)
        else:
            held, self._held = self._held, None
            final = to_gateway_chunk(held.model_copy(update={"usage": chunk.usage}), cost)
        self.usage = final.usage
        return final

    def leftover(self) -> ChatCompletionChunk | None:
        """A held finish chunk whose usage never came (the provider sent none)."""
        held, self._held = self._held, None
        return held


class GatewayStream:
    """A streamed chat completion: iterate for chunks; ``.gateway`` says who answers."""

    def __init__(
        self, native: ChunkStream, info: GatewayInfo, include_usage: bool, cost_of: CostOf
    ) -> None:
        self._native = native
        self._relay = _Relay(include_usage, cost_of)
        self._iter = self._chunks()
        #: Who is answering and the attempts it took to open the stream.
        self.gateway = info

    @property
    def usage(self) -> GatewayUsage | None:
        """The whole call's usage, with ``cost``, once the stream has ended."""
        return self._relay.usage

    def _chunks(self) -> Generator[ChatCompletionChunk, None, None]:
        native = self._native
        relay = self._relay.relay
        try:
            for chunk in native:
                out = relay(chunk, native.usage)
                if out is not None:
                    yield out
            leftover = self._relay.leftover()
            if leftover is not None:
                yield leftover
        finally:
            native.close()

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return self._iter

    def __next__(self) -> ChatCompletionChunk:
        return next(self._iter)

    def close(self) -> None:
        """Stop reading; releases the connection."""
        self._iter.close()
        self._native.close()

    def __enter__(self) -> GatewayStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncGatewayStream:
    """The async twin of :class:`GatewayStream`: ``async for chunk in stream``."""

    def __init__(
        self, native: AsyncChunkStream, info: GatewayInfo, include_usage: bool, cost_of: CostOf
    ) -> None:
        self._native = native
        self._relay = _Relay(include_usage, cost_of)
        self._iter = self._chunks()
        self.gateway = info

    @property
    def usage(self) -> GatewayUsage | None:
        return self._relay.usage

    async def _chunks(self) -> AsyncGenerator[ChatCompletionChunk, None]:
        native = self._native
        relay = self._relay.relay
        try:
            async for chunk in native:
                out = relay(chunk, native.usage)
                if out is not None:
                    yield out
            leftover = self._relay.leftover()
            if leftover is not None:
                yield leftover
        finally:
            await native.aclose()

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self._iter

    async def __anext__(self) -> ChatCompletionChunk:
        return await self._iter.__anext__()

    async def close(self) -> None:
        await self._iter.aclose()
        await self._native.aclose()

    async def __aenter__(self) -> AsyncGatewayStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
