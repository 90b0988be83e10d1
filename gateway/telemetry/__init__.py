"""Telemetry of calls: OpenTelemetry spans and metrics, or nothing at all (the default).

A gateway picks one :class:`Telemetry` when it is made (:func:`telemetry_for`): with
``telemetry: {opentelemetry: true}`` the OpenTelemetry one (:mod:`gateway.telemetry._otel`,
which alone imports ``opentelemetry``), otherwise :data:`NO_TELEMETRY`, whose calls return
:data:`NULL_TRACE`, a :class:`CallTrace` whose hooks do nothing. The call loops call the hooks
unconditionally: off, a call pays a few empty method calls and imports nothing.

Hooks of one call, in order (``_client.py`` and ``_streams.py``)::

    trace = telemetry.start(model, request, plan, account)    # the call's span starts
    trace.attempt(action)                  # before each try: its child span starts
    trace.attempt_failed(error)            # that try failed (after the plan decided what next)
    trace.answered(response, usage, cost)  # a non-streamed call returns
    chunks = trace.stream_opened(...)      # a stream returns; its span ends with the stream
    trace.stream_closed()                  # the caller closed or dropped the stream
    trace.failed(error)                    # the call raises (any exception)

An embeddings or images call (``_media.py``, sync and async) makes the same hooks, but starts
with :meth:`Telemetry.start_operation` and ends with :meth:`CallTrace.answered_media`::

    trace = telemetry.start_operation(operation, model, plan, account, request_params)
    trace.attempt(action) / trace.attempt_failed(error)           # as for chat
    trace.answered_media(result, usage, cost)  # the call returns
    trace.failed(error)                        # the call raises

What is recorded, and under which names, is in the README ("Telemetry") and in
:mod:`gateway.telemetry._otel`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Mapping
from typing import TYPE_CHECKING

from gateway.errors import ConfigError

if TYPE_CHECKING:
    from decimal import Decimal

    from openai.types.chat import ChatCompletionChunk

    from gateway._billing import AttemptBill
    from gateway._clock import Clock
    from gateway.config import GatewayConfig
    from gateway.errors import ProviderError
    from gateway.providers.base import AsyncChunkStream, ChatRequest, ChunkStream, TokenUsage
    from gateway.providers.media import EmbeddingResult, ImageResult, Operation
    from gateway.routing import CallPlan, Try
    from gateway.types import GatewayChatCompletion

__all__ = [
    "NO_TELEMETRY",
    "NULL_TRACE",
    "CallTrace",
    "RequestParams",
    "Telemetry",
    "telemetry_for",
]

#: An embeddings or images call's OpenAI arguments that the conventions (or the gateway's
#: ``gateway.*`` names) record, as the caller gave them (None: not given): ``dimensions``,
#: ``encoding_format`` (embeddings); ``n``, ``size``, ``quality`` (images).
RequestParams = Mapping[str, str | int | None]


class CallTrace:
    """The telemetry of one call. This base class records nothing (the disabled path)."""

    __slots__ = ()

    def attempt(self, action: Try) -> None:
        """A try of ``action.target`` starts now."""

    def attempt_failed(self, error: ProviderError) -> None:
        """The current try failed with ``error`` and the call goes on (retry or fallback)."""

    def answered(
        self, response: GatewayChatCompletion, usage: TokenUsage, cost: Decimal | None
    ) -> None:
        """The current try answered a non-streamed call; the call ends."""

    def answered_media(
        self, result: EmbeddingResult | ImageResult, usage: TokenUsage, cost: Decimal | None
    ) -> None:
        """The current try answered an embeddings or images call with ``result`` (``usage``
        as billed, ``cost`` as charged or priced); the call ends."""

    def failed(self, error: BaseException) -> None:
        """The call raises ``error``."""

    def stream_opened(
        self,
        head: list[ChatCompletionChunk],
        chunks: Generator[ChatCompletionChunk, None, None],
        native: ChunkStream,
        bill: AttemptBill,
    ) -> Generator[ChatCompletionChunk, None, None]:
        """The current try opened a stream (``head`` read); returns the chunks the caller
        gets (``chunks`` itself, or a generator that watches them)."""
        return chunks

    def astream_opened(
        self,
        head: list[ChatCompletionChunk],
        chunks: AsyncGenerator[ChatCompletionChunk, None],
        native: AsyncChunkStream,
        bill: AttemptBill,
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        """The async twin of :meth:`stream_opened`."""
        return chunks

    def stream_closed(self) -> None:
        """The caller closed the stream, or dropped it (garbage collection)."""


#: The trace of every call when telemetry is off.
NULL_TRACE = CallTrace()


class Telemetry:
    """No telemetry: the default. Subclassed by the OpenTelemetry implementation."""

    __slots__ = ()

    #: True when calls are recorded.
    enabled = False

    def start(
        self, model: str, request: ChatRequest, plan: CallPlan, account: str | None
    ) -> CallTrace:
        """The trace of a chat call that starts now."""
        return NULL_TRACE

    def start_operation(
        self,
        operation: Operation,
        model: str,
        plan: CallPlan,
        account: str | None,
        request_params: RequestParams,
    ) -> CallTrace:
        """The trace of an embeddings or images call (``operation``) that starts now."""
        return NULL_TRACE


NO_TELEMETRY = Telemetry()


def telemetry_for(config: GatewayConfig, clock: Clock) -> Telemetry:
    """The telemetry the config asks for; :data:`NO_TELEMETRY` unless it asks for any.

    Raises ConfigError when ``telemetry.opentelemetry`` is on but the OpenTelemetry API is not
    installed."""
    settings = config.telemetry
    if not settings.opentelemetry:
        return NO_TELEMETRY
    try:
        from gateway.telemetry._otel import OpenTelemetry
    except ImportError as exc:
        if exc.name is None or not exc.name.startswith("opentelemetry"):
            raise
        raise ConfigError(
            "telemetry.opentelemetry is on but the OpenTelemetry API is not installed",
            file=config.source,
            line=config.line_of("telemetry", "opentelemetry"),
            key="telemetry.opentelemetry",
            fix="pip install 'llm-gateway-sdk[otel]' (and an OpenTelemetry SDK to export), "
            "or set it to false",
        ) from None
    return OpenTelemetry(config, clock)
