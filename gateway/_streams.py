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
from gateway.errors import ProviderError, ProviderUnavailable
from providers.base import AsyncChunkStream, ChunkStream, TokenUsage

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionChunk

    from gateway.types import GatewayUsage

__all__ = ["AsyncGatewayStream", "GatewayStream", "aread_until_content", "read_until_content"]

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


class GatewayStream:
    """A streamed chat completion: iterate for chunks; ``.gateway`` says who answers."""

    def __init__(
        self,
        native: ChunkStream,
        head: list[ChatCompletionChunk],
        info: GatewayInfo,
        include_usage: bool,
        cost_of: CostOf,
    ) -> None:
        self._native = native
        self._head = head
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
            for chunk in self._head:
                out = relay(chunk, native.usage)
                if out is not None:
                    yield out
            self._head = []
            for chunk in native:
                out = relay(chunk, native.usage)
                if out is not None:
                    yield out
        except ProviderError as error:
            raise broken_stream_error(error, native.content_chunks) from None
        finally:
            native.close()
        leftover = self._relay.leftover()
        if leftover is not None:
            yield leftover

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
        self,
        native: AsyncChunkStream,
        head: list[ChatCompletionChunk],
        info: GatewayInfo,
        include_usage: bool,
        cost_of: CostOf,
    ) -> None:
        self._native = native
        self._head = head
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
            for chunk in self._head:
                out = relay(chunk, native.usage)
                if out is not None:
                    yield out
            self._head = []
            async for chunk in native:
                out = relay(chunk, native.usage)
                if out is not None:
                    yield out
        except ProviderError as error:
            raise broken_stream_error(error, native.content_chunks) from None
        finally:
            await native.aclose()
        leftover = self._relay.leftover()
        if leftover is not None:
            yield leftover

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
