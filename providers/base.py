"""The one interface every provider adapter implements, and the types it speaks.

An adapter takes a :class:`ChatRequest` (the OpenAI chat shape, already validated) and a
model id, calls its provider through the official SDK with the SDK's own retries off, and
returns OpenAI SDK types: a ``ChatCompletion`` (in :class:`ProviderResponse`) or a stream of
``ChatCompletionChunk`` (a :class:`ChunkStream` / :class:`AsyncChunkStream`). Every native
error leaves the adapter as a :mod:`gateway.errors` error, mapped in its ``map_error``.

Adapters never import their SDK at module import time of :mod:`providers`; the registry in
:mod:`providers` imports an adapter module only when a call first uses that provider.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    from gateway.config import ProviderConfig

__all__ = [
    "OPENAI_LABELS",
    "AsyncChunkStream",
    "ChatRequest",
    "ChunkStream",
    "ProviderAdapter",
    "ProviderResponse",
    "TokenUsage",
]


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Token counts of one call, normalised across providers; what pricing reads.

    ``input_tokens`` is the whole prompt, including the cached part, the part written to
    the cache and image tokens. ``output_tokens`` is everything generated, including
    reasoning and generated images.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    #: Prompt tokens read from the provider's cache (billed at the cached-input rate).
    cached_input_tokens: int = 0
    #: Prompt tokens written to the provider's cache (Anthropic cache creation).
    cache_write_tokens: int = 0
    #: Output tokens spent on reasoning / thinking (already inside ``output_tokens``).
    reasoning_tokens: int = 0
    #: Prompt tokens that are images (already inside ``input_tokens``; an image to edit).
    input_image_tokens: int = 0
    #: Output tokens that are generated images (already inside ``output_tokens``).
    output_image_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class ChatRequest:
    """An OpenAI-shaped chat request, validated; what every adapter receives.

    ``max_tokens`` is the caller's ``max_tokens`` or ``max_completion_tokens`` (the output
    budget, reasoning included). ``stop`` is always a list. ``extra_body`` is merged into
    the provider's request body as-is.
    """

    messages: list[dict[str, Any]]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    stream: bool = False
    #: The caller asked for ``stream_options={"include_usage": True}``.
    include_usage: bool = False
    user: str | None = None
    metadata: dict[str, str] | None = None
    #: Seconds this try may take in total (the gateway computes it from its deadlines).
    timeout: float | None = None
    extra_body: dict[str, Any] | None = None
    # The OpenAI arguments below are None (False for logprobs) when not given, or given as
    # OpenAI's default (a penalty of 0, parallel_tool_calls=True): nothing to translate then.
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logprobs: bool = False
    #: How many alternatives per token (0-20); only with ``logprobs``.
    top_logprobs: int | None = None
    #: False when the caller turned parallel tool calls off.
    parallel_tool_calls: bool | None = None
    #: ``none``, ``minimal``, ``low``, ``medium``, ``high``, ``xhigh`` or ``max``.
    reasoning_effort: str | None = None
    #: HTTP headers added to the provider's request.
    extra_headers: dict[str, str] | None = None
    #: Query parameters added to the provider's URL.
    extra_query: dict[str, Any] | None = None
    #: OpenAI arguments that only OpenAI understands, as given (see :data:`OPENAI_LABELS`).
    openai_only: dict[str, Any] | None = None
    #: Leave out, rather than refuse, the arguments a provider has no equivalent for that
    #: only hint at how to produce the answer (``seed``, penalties, ``service_tier``...; see
    #: ``providers/_common.py``). The gateway sets it from the config's
    #: ``untranslatable_hints`` (default ``drop``).
    drop_hints: bool = False


#: Keys of ``ChatRequest.openai_only`` that label or route a request at OpenAI without changing
#: the answer (caching, storage, abuse tracking): other providers drop them. Anthropic and
#: Gemini refuse every other key of ``openai_only`` (InvalidRequest naming it).
OPENAI_LABELS = frozenset(
    {
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "safety_identifier",
        "store",
    }
)


class ProviderResponse:
    """A finished, non-streamed call: the ChatCompletion and the usage it reports.

    An adapter that makes the completion from its own data can hand over that data instead
    (:meth:`from_data`): the gateway validates it once, straight into its own response type
    (not into a ChatCompletion first and then again), and ``completion`` is only made if read.
    """

    __slots__ = ("_completion", "data", "usage")

    def __init__(self, completion: ChatCompletion, usage: TokenUsage) -> None:
        self._completion: ChatCompletion | None = completion
        #: The completion's fields with nested models as dicts, when given by ``from_data``.
        self.data: dict[str, Any] | None = None
        self.usage = usage

    @classmethod
    def from_data(cls, data: dict[str, Any], usage: TokenUsage) -> ProviderResponse:
        """A response whose completion is ``ChatCompletion.model_validate(data)``."""
        response = cls.__new__(cls)
        response._completion = None
        response.data = data
        response.usage = usage
        return response

    @property
    def completion(self) -> ChatCompletion:
        if self._completion is None:
            assert self.data is not None
            self._completion = completion_of(self.data)
        return self._completion

    def __repr__(self) -> str:
        return f"ProviderResponse(completion={self.completion!r}, usage={self.usage!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProviderResponse):
            return NotImplemented
        return (self.completion, self.usage) == (other.completion, other.usage)

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass it replaces


def completion_of(data: dict[str, Any]) -> ChatCompletion:
    """``ChatCompletion.model_validate(data)``; a body the model's types refuse (a finish reason
    or field value newer than the SDK) is kept as it came, like the SDK itself keeps it
    (``ChatCompletion.construct``), rather than failing a call that succeeded."""
    from openai.types.chat import ChatCompletion
    from pydantic import ValidationError

    try:
        return ChatCompletion.model_validate(data)
    except ValidationError:
        return ChatCompletion.construct(**data)


@dataclass(slots=True)
class ChunkStream:
    """A streamed call: iterate it for ``ChatCompletionChunk``; ``usage`` is set at the end.

    The last chunk always carries ``usage`` and ``choices == []``.
    """

    chunks: Iterator[ChatCompletionChunk] = field(default_factory=lambda: iter(()))
    close_native: Callable[[], None] | None = None
    #: Filled in by the adapter when the provider reports usage (at the end of the stream).
    usage: TokenUsage | None = None
    #: Number of chunks that carried content (text, tool-call deltas), for error reports.
    content_chunks: int = 0

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return self.chunks

    def __next__(self) -> ChatCompletionChunk:
        return next(self.chunks)

    def close(self) -> None:
        """Stop reading and release the HTTP connection."""
        if self.close_native is not None:
            self.close_native()


@dataclass(slots=True)
class AsyncChunkStream:
    """The async twin of :class:`ChunkStream`."""

    chunks: AsyncIterator[ChatCompletionChunk] | None = None
    close_native: Callable[[], Awaitable[None]] | None = None
    usage: TokenUsage | None = None
    content_chunks: int = 0

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        assert self.chunks is not None
        return self.chunks

    async def __anext__(self) -> ChatCompletionChunk:
        assert self.chunks is not None
        return await self.chunks.__anext__()

    async def aclose(self) -> None:
        if self.close_native is not None:
            await self.close_native()


@runtime_checkable
class ProviderAdapter(Protocol):
    """One provider. One instance per configured provider per gateway; SDK clients inside
    are created on first use and reused across calls (sync and async clients separately)."""

    #: The provider's configured name (the part before ``/`` in ``provider/model``).
    name: str

    def complete(self, model: str, request: ChatRequest) -> ProviderResponse:
        """Send a non-streamed call with the sync SDK client."""
        ...

    async def acomplete(self, model: str, request: ChatRequest) -> ProviderResponse:
        """Send a non-streamed call with the async SDK client."""
        ...

    def stream(self, model: str, request: ChatRequest) -> ChunkStream:
        """Open a stream with the sync SDK client. HTTP errors raise here, before iteration."""
        ...

    async def astream(self, model: str, request: ChatRequest) -> AsyncChunkStream:
        """Open a stream with the async SDK client."""
        ...

    def close(self) -> None:
        """Close the sync SDK client, if one was made."""
        ...

    async def aclose(self) -> None:
        """Close the async SDK client, if one was made."""
        ...


AdapterFactory = Callable[[str, "ProviderConfig"], ProviderAdapter]
