"""An offline provider: no network, deterministic answers, scriptable failures.

``fake/<anything>`` answers every call with a reply derived from the last user message, and
counts tokens with a fixed rule (about one token per four characters), so the same request
always costs the same. It also makes embeddings (deterministic unit vectors) and images (small
PNGs), see :mod:`gateway.providers._fake_media`; scripted failures apply to those calls too.
Script it per adapter::

    fake = gw.adapter("fake")
    fake.script.fail(429, times=2, retry_after=1)   # the next two calls are rate limited
    fake.script.respond(text="Paris", usage=TokenUsage(input_tokens=10, output_tokens=2))
    fake.script.respond(tool_calls=[("get_weather", {"city": "Paris"})])
    fake.script["big"].overloaded_mid_stream(after_chunks=3)   # only calls to fake/big
    fake.script.clock = clock; fake.script.slow(45)            # advances a ManualClock
    fake.batch_script.error("q2", "bad prompt").expire("q3")   # items of its batches

The vocabulary is the one of the HTTP provider mocks (:mod:`gateway.testing.mock`), so a test
can move between them. Scripted outcomes are consumed in order by the next calls (to any
model, or only to the model given with ``model=`` / ``.model(...)``); with nothing scripted,
the default answer is used. Errors are the same normalised errors a real provider's failure
would give. ``fake.calls`` records every request the adapter received.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from typing import Any

from openai.types.chat import ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import (
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
)

from gateway.config import ProviderConfig
from gateway.errors import (
    AuthenticationFailed,
    ContextTooLong,
    GatewayError,
    InvalidRequest,
    ProviderConnectionError,
    ProviderOverloaded,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from gateway.providers._common import (
    FinishReason,
    make_chunk,
    make_completion,
    make_tool_call,
    usage_chunk,
)
from gateway.providers._fake_media import fake_embeddings, fake_images
from gateway.providers.base import (
    AsyncChunkStream,
    ChatRequest,
    ChunkStream,
    ProviderResponse,
    TokenUsage,
)
from gateway.providers.media import (
    EmbeddingRequest,
    EmbeddingResult,
    ImageRequest,
    ImageResult,
)
from gateway.testing._batch_script import BatchScript
from gateway.testing._mock_script import (
    Disconnect,
    Failure,
    Outcome,
    OverloadedMidStream,
    Reply,
    Script,
    ScriptState,
    Slow,
    Timeout,
    advance_clock,
    estimate_tokens,
    status_failure,
)

__all__ = ["FakeAdapter", "FakeCall", "FakeScript", "estimate_tokens"]

#: Context window of every fake model, in tokens.
FAKE_CONTEXT_WINDOW = 128_000


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list | tuple):
        return " ".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict)
        ).strip()
    return ""


@dataclass(frozen=True, slots=True)
class FakeCall:
    """One request the fake provider received (a chat, embeddings or images request)."""

    model: str
    request: ChatRequest | EmbeddingRequest | ImageRequest
    stream: bool


_STATUS_ERRORS: dict[int, type[GatewayError]] = {
    400: InvalidRequest,
    401: AuthenticationFailed,
    403: AuthenticationFailed,
    404: InvalidRequest,
    408: ProviderTimeout,
    429: RateLimited,
    529: ProviderOverloaded,
}


class FakeScript(Script):
    """The queue of scripted outcomes of one fake provider (thread-safe).

    The same vocabulary as the HTTP mocks of :mod:`gateway.testing.mock` (``respond``,
    ``fail``, ``timeout``, ``disconnect``, ``overloaded_mid_stream``, ``slow``,
    ``insufficient_quota``, ``context_too_long``, ``auth_error``, ``model(...)``). ``slow``
    advances :attr:`clock` (give it the gateway's ManualClock); without one no time passes.
    """

    def __init__(self, state: ScriptState | None = None, model: str | None = None) -> None:
        super().__init__(state or ScriptState(), model)

    @property
    def clock(self) -> object | None:
        """The clock ``slow`` advances (e.g. the ManualClock the gateway was built with)."""
        return self._state.clock

    @clock.setter
    def clock(self, value: object | None) -> None:
        self._state.clock = value

    def model(self, name: str) -> FakeScript:
        """The same script, narrowed to calls to one model."""
        super().model(name)  # validates the name
        return FakeScript(self._state, name)

    def __getitem__(self, name: str) -> FakeScript:
        return self.model(name)

    def fail(
        self,
        status: int,
        *,
        retry_after: float | None = None,
        times: int | None = 1,
        model: str | None = None,
        code: str | None = None,
    ) -> FakeScript:
        """Fail the next call(s) as the provider would with this HTTP status; ``code`` is the
        provider's error code the error carries (e.g. ``insufficient_quota``)."""
        return self._push(status_failure(status, retry_after, code), times, model)

    def next_for(self, model: str) -> Outcome | None:
        """Take the next outcome scripted for this model (or for any model)."""
        return self._state.next_for(model)


class FakeAdapter:
    """The offline provider. Same interface as the real adapters (see gateway.providers.base)."""

    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self.config = config
        self.script = FakeScript()
        #: Which items of this provider's batches error or expire (gateway.testing.BatchScript).
        self.batch_script = BatchScript()
        self.calls: list[FakeCall] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FakeAdapter(name={self.name!r})"

    # -- what happens on a call ----------------------------------------------------------------

    def _begin(
        self, model: str, request: ChatRequest, stream: bool
    ) -> tuple[str, Reply, Disconnect | OverloadedMidStream | None]:
        """The call's id, its reply, and the failure that breaks its stream part way, if any.

        Failures that happen before any answer raise here.
        """
        with self._lock:
            self.calls.append(FakeCall(model, request, stream))
            response_id = f"fake-{next(self._ids)}"
        outcome = self.script.next_for(model)
        if isinstance(outcome, Slow):
            self._wait(outcome.seconds, request, model)
            outcome = outcome.reply
        if isinstance(outcome, Disconnect | OverloadedMidStream):
            if outcome.after_chunks is None or not stream:
                raise self._error(outcome, model)
            return response_id, self._default_reply(model, request), outcome
        if isinstance(outcome, Failure | Timeout):
            raise self._error(outcome, model)
        prompt_tokens = sum(estimate_tokens(_text_of(m)) for m in request.messages)
        if prompt_tokens > FAKE_CONTEXT_WINDOW:
            raise ContextTooLong(
                f"prompt of {prompt_tokens} tokens exceeds {FAKE_CONTEXT_WINDOW}",
                provider=self.name,
                model=model,
                status_code=400,
            )
        reply = outcome if outcome is not None else self._default_reply(model, request)
        if reply.text is None and not reply.tool_calls:
            reply = Reply(
                self._default_reply(model, request).text, (), reply.usage, reply.finish_reason
            )
        return response_id, reply, None

    def _begin_media(
        self, model: str, request: EmbeddingRequest | ImageRequest
    ) -> TokenUsage | None:
        """Record an embeddings or images call and play its scripted outcome: raise a
        failure, or return a scripted reply's usage (None: count it)."""
        with self._lock:
            self.calls.append(FakeCall(model, request, False))
        outcome = self.script.next_for(model)
        if isinstance(outcome, Slow):
            self._wait(outcome.seconds, request, model)
            outcome = outcome.reply
        if isinstance(outcome, Failure | Timeout | Disconnect | OverloadedMidStream):
            raise self._error(outcome, model)
        return outcome.usage if outcome is not None else None

    def _wait(
        self, seconds: float, request: ChatRequest | EmbeddingRequest | ImageRequest, model: str
    ) -> None:
        """A slow answer: advance the script's clock, or time out at the call's own timeout."""
        if request.timeout is not None and seconds > request.timeout:
            advance_clock(self.script.clock, request.timeout)
            raise ProviderTimeout(
                f"no answer within {request.timeout:g}s", provider=self.name, model=model
            )
        advance_clock(self.script.clock, seconds)

    def _default_reply(self, model: str, request: ChatRequest) -> Reply:
        last_user = next(
            (_text_of(m) for m in reversed(request.messages) if m.get("role") == "user"), ""
        )
        text = f"[{self.name}/{model}] You said: {last_user[:200]}"
        return Reply(text=text)

    def _usage(self, request: ChatRequest, reply: Reply, text: str) -> TokenUsage:
        if reply.usage is not None:
            return reply.usage
        prompt = sum(estimate_tokens(_text_of(m)) for m in request.messages)
        output = estimate_tokens(text) + sum(
            estimate_tokens(name) + estimate_tokens(str(args)) for name, args in reply.tool_calls
        )
        return TokenUsage(input_tokens=prompt, output_tokens=output)

    def _shape(self, request: ChatRequest, reply: Reply) -> tuple[str, FinishReason]:
        text = reply.text or ""
        finish: FinishReason = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        if request.max_tokens is not None and reply.usage is None:
            limit = request.max_tokens * 4
            if len(text) > limit:
                text, finish = text[:limit], "length"
        return text, finish

    def _error(
        self, failure: Failure | Timeout | Disconnect | OverloadedMidStream, model: str
    ) -> GatewayError:
        common: dict[str, Any] = {"provider": self.name, "model": model}
        if isinstance(failure, Timeout):
            return ProviderTimeout("request timed out", **common)
        if isinstance(failure, Disconnect):
            return ProviderConnectionError("connection reset by peer", **common)
        if isinstance(failure, OverloadedMidStream):
            return ProviderOverloaded("overloaded", **common)
        if failure.kind == "context_too_long":
            return ContextTooLong("prompt is too long", status_code=400, **common)
        if failure.kind == "insufficient_quota":
            failure = status_failure(429, None, "insufficient_quota")
        elif failure.kind == "auth_error":
            failure = status_failure(401, None)
        status = failure.status or 500
        cls = _STATUS_ERRORS.get(status, ProviderUnavailable if status >= 500 else InvalidRequest)
        message = "insufficient quota" if failure.code == "insufficient_quota" else f"HTTP {status}"
        return cls(  # type: ignore[call-arg]
            message,
            status_code=status,
            retry_after=failure.retry_after,
            code=failure.code,
            **common,
        )

    # -- the adapter interface -------------------------------------------------------------------

    def complete(self, model: str, request: ChatRequest) -> ProviderResponse:
        response_id, reply, _ = self._begin(model, request, stream=False)
        text, finish = self._shape(request, reply)
        usage = self._usage(request, reply, text)
        tool_calls = [
            make_tool_call(f"call_{i}", name, args)
            for i, (name, args) in enumerate(reply.tool_calls)
        ]
        completion = make_completion(
            response_id=response_id,
            model=model,
            content=text if reply.text is not None or not tool_calls else None,
            finish_reason=finish,
            usage=usage,
            tool_calls=tool_calls or None,
            created=int(time.time()),
        )
        return ProviderResponse(completion=completion, usage=usage)

    async def acomplete(self, model: str, request: ChatRequest) -> ProviderResponse:
        return self.complete(model, request)

    def _chunks(
        self, model: str, request: ChatRequest, holder: ChunkStream | AsyncChunkStream
    ) -> Generator[ChatCompletionChunk, None, None]:
        response_id, reply, failure = self._begin(model, request, stream=True)
        created = int(time.time())
        text, finish = self._shape(request, reply)
        usage = self._usage(request, reply, text)

        def chunk(
            delta: ChoiceDelta, finish_reason: FinishReason | None = None
        ) -> ChatCompletionChunk:
            return make_chunk(
                response_id=response_id,
                model=model,
                created=created,
                delta=delta,
                finish_reason=finish_reason,
            )

        def content_chunks() -> Iterator[ChatCompletionChunk]:
            words = text.split(" ") if text else []
            for i, word in enumerate(words):
                piece = word if i == 0 else " " + word
                yield chunk(ChoiceDelta(role="assistant" if i == 0 else None, content=piece))
            for index, (name, args) in enumerate(reply.tool_calls):
                call = make_tool_call(f"call_{index}", name, args)
                yield chunk(
                    ChoiceDelta(
                        role="assistant" if not words and index == 0 else None,
                        tool_calls=[
                            ChoiceDeltaToolCall(
                                index=index,
                                id=call.id,
                                type="function",
                                function=ChoiceDeltaToolCallFunction(
                                    name=name, arguments=call.function.arguments
                                ),
                            )
                        ],
                    )
                )

        for sent, item in enumerate(content_chunks()):
            if failure is not None and sent >= (failure.after_chunks or 0):
                raise self._broken(failure, model, holder.content_chunks)
            holder.content_chunks += 1
            yield item
        if failure is not None:
            raise self._broken(failure, model, holder.content_chunks)
        yield chunk(ChoiceDelta(), finish)
        holder.usage = usage
        yield usage_chunk(response_id=response_id, model=model, created=created, usage=usage)

    def _broken(
        self, failure: Disconnect | OverloadedMidStream, model: str, chunks: int
    ) -> GatewayError:
        error = self._error(failure, model)
        if isinstance(error, ProviderUnavailable):
            error.chunks_received = chunks
        return error

    def stream(self, model: str, request: ChatRequest) -> ChunkStream:
        holder = ChunkStream()
        chunks = self._chunks(model, request, holder)
        holder.chunks = _opened(chunks)
        holder.close_native = chunks.close
        return holder

    async def astream(self, model: str, request: ChatRequest) -> AsyncChunkStream:
        holder = AsyncChunkStream()
        chunks = self._chunks(model, request, holder)
        first = _opened(chunks)

        async def agen() -> AsyncIterator[ChatCompletionChunk]:
            for item in first:
                yield item

        holder.chunks = agen()

        async def aclose() -> None:
            chunks.close()

        holder.close_native = aclose
        return holder

    def embed(self, model: str, request: EmbeddingRequest) -> EmbeddingResult:
        """Deterministic unit vectors (see :mod:`gateway.providers._fake_media`)."""
        return fake_embeddings(model, request, self._begin_media(model, request))

    async def aembed(self, model: str, request: EmbeddingRequest) -> EmbeddingResult:
        return self.embed(model, request)

    def generate_images(self, model: str, request: ImageRequest) -> ImageResult:
        """Small generated PNGs (see :mod:`gateway.providers._fake_media`)."""
        return fake_images(request, self._begin_media(model, request))

    async def agenerate_images(self, model: str, request: ImageRequest) -> ImageResult:
        return self.generate_images(model, request)

    def close(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _opened(chunks: Iterator[ChatCompletionChunk]) -> Iterator[ChatCompletionChunk]:
    """Run the generator up to its first chunk now, so errors before the stream raise at open."""
    try:
        first = next(chunks)
    except StopIteration:
        return iter(())
    return itertools.chain((first,), chunks)
