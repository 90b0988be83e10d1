"""Calls as OpenTelemetry spans and metrics, under the GenAI semantic conventions.

The only module of the gateway that imports ``opentelemetry`` (the API alone; which SDK and
exporter is the application's choice). Names are those of the OpenTelemetry semantic
conventions 1.44.0 for GenAI client calls (the names ``opentelemetry-semantic-conventions``
0.66b2 exports; the GenAI group is of status Development there and continues in its own
repository, ``semantic-conventions-genai``, whose unreleased head renames some of them).

One span per call, kind CLIENT, named ``chat {model}``, ``embeddings {model}`` or
``images {model}`` (``model`` as the caller passed it: a route name or ``provider/model``),
started in the current OpenTelemetry context, so a caller
that attached an incoming ``traceparent`` is its parent. One child span per try, kind
INTERNAL, named ``attempt {provider}/{model}``, current while the provider is called (an
instrumented HTTP client nests under it). A stream's span ends when the stream ends, breaks,
or is closed or dropped by the caller.

The conventions (1.44.0) have no operation for image generation: an images call's
``gen_ai.operation.name`` is ``generate_content`` (their "multimodal content generation"), with
``gen_ai.output.type`` ``image``; its span keeps the gateway's name, ``images {model}``.

Money: ``gateway.cost_usd`` on the span is the exact Decimal as text (``"0.000123450"``); the
``gateway.cost`` counter adds it as a float (USD), for dashboards: the ledger stays the record.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from functools import wraps
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from gateway.errors import GatewayError
from gateway.providers.media import EmbeddingResult
from gateway.telemetry import CallTrace, RequestParams, Telemetry
from gateway.telemetry._content import OutputCollector, input_messages, output_messages

if TYPE_CHECKING:
    from contextvars import Token
    from decimal import Decimal

    from openai.types.chat import ChatCompletionChunk
    from opentelemetry.context import Context
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider
    from opentelemetry.util.types import AttributeValue

    from gateway._billing import AttemptBill
    from gateway._clock import Clock
    from gateway.config import GatewayConfig, ProviderConfig
    from gateway.errors import ProviderError
    from gateway.providers.base import AsyncChunkStream, ChatRequest, ChunkStream, TokenUsage
    from gateway.providers.media import ImageResult, Operation
    from gateway.routing import CallPlan, ResolvedTarget, Try
    from gateway.types import GatewayChatCompletion

__all__ = ["SCHEMA_URL", "OpenTelemetry"]

logger = logging.getLogger("gateway")

SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"

#: ``gen_ai.provider.name`` by adapter type; the fake provider reports its configured name.
_PROVIDER_NAMES = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini"}
#: The host each SDK calls when the config gives no ``base_url``.
_DEFAULT_HOSTS = {
    "openai": "api.openai.com",
    "anthropic": "api.anthropic.com",
    "gemini": "generativelanguage.googleapis.com",
}
#: ``gen_ai.operation.name`` by the gateway's operation (the conventions name none for images).
_OPERATION_NAMES = {"chat": "chat", "embeddings": "embeddings", "images": "generate_content"}
#: Bucket boundaries the GenAI conventions advise.
_SECONDS_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48]
_SECONDS_BUCKETS += [40.96, 81.92]
_TOKEN_BUCKETS = [float(4**i) for i in range(14)]  # 1, 4, 16, ... 67108864

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _never_raises(method: Callable[_P, None]) -> Callable[_P, None]:
    """Telemetry must not fail a call: a bug here is logged, and the call goes on."""

    @wraps(method)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> None:
        try:
            method(*args, **kwargs)
        except Exception:
            logger.exception("recording telemetry failed; the call is not affected")

    return guarded


def error_type(error: BaseException) -> str:
    """``error.type``: a gateway error's class name (``RateLimited``), else the qualified
    class name (``builtins`` left out)."""
    cls = type(error)
    if isinstance(error, GatewayError) or cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


@dataclass(frozen=True, slots=True)
class _Provider:
    """What the conventions say about one configured provider."""

    name: str
    address: str | None
    port: int | None

    @classmethod
    def of(cls, configured: str, settings: ProviderConfig) -> _Provider:
        name = _PROVIDER_NAMES.get(settings.type, configured)
        if settings.base_url:
            parts = urlsplit(settings.base_url)  # .hostname leaves any credentials out
            default_port = 443 if parts.scheme == "https" else 80
            try:
                port = parts.port or default_port
            except ValueError:
                port = None
            return cls(name, parts.hostname, port)
        host = _DEFAULT_HOSTS.get(settings.type)
        return cls(name, host, 443 if host else None)

    def attributes(self) -> dict[str, AttributeValue]:
        out: dict[str, AttributeValue] = {"gen_ai.provider.name": self.name}
        if self.address:
            out["server.address"] = self.address
            if self.port is not None:
                out["server.port"] = self.port
        return out


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llm-gateway-sdk")
    except PackageNotFoundError:
        return ""


class OpenTelemetry(Telemetry):
    """Records every call of one gateway through the global OpenTelemetry providers."""

    __slots__ = (
        "capture_content",
        "clock",
        "cost",
        "default_account",
        "duration",
        "providers",
        "time_to_first_chunk",
        "token_usage",
        "tracer",
    )

    enabled = True

    def __init__(
        self,
        config: GatewayConfig,
        clock: Clock,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        """Records through the given providers, by default the global ones (proxies until the
        application sets its own, which they then follow)."""
        version = _version()
        self.tracer = trace.get_tracer(
            "gateway", version, tracer_provider=tracer_provider, schema_url=SCHEMA_URL
        )
        meter = metrics.get_meter(
            "gateway", version, meter_provider=meter_provider, schema_url=SCHEMA_URL
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self.time_to_first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time from the call's start to the first content chunk of its stream.",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self.cost = meter.create_counter(
            "gateway.cost",
            unit="USD",
            description="What calls were charged to their credit account (or priced at).",
        )
        self.clock = clock
        self.capture_content = config.telemetry.capture_content
        self.providers = {name: _Provider.of(name, s) for name, s in config.providers.items()}
        credits = config.credits
        self.default_account = credits.default_account if credits is not None else None

    def start(
        self, model: str, request: ChatRequest, plan: CallPlan, account: str | None
    ) -> CallTrace:
        try:
            attributes = _request_attributes(model, request)
            if self.capture_content:
                attributes["gen_ai.input.messages"] = input_messages(request.messages)
            return _CallTrace(self, "chat", model, attributes, plan, account)
        except Exception:
            logger.exception("recording telemetry failed; the call is not affected")
            return CallTrace()

    def start_operation(
        self,
        operation: Operation,
        model: str,
        plan: CallPlan,
        account: str | None,
        request_params: RequestParams,
    ) -> CallTrace:
        try:
            attributes = _media_request_attributes(operation, model, request_params)
            return _CallTrace(self, operation, model, attributes, plan, account)
        except Exception:
            logger.exception("recording telemetry failed; the call is not affected")
            return CallTrace()

    def provider(self, target: ResolvedTarget) -> _Provider:
        found = self.providers.get(target.provider)
        return found if found is not None else _Provider(target.provider, None, None)


def _request_attributes(model: str, request: ChatRequest) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
    }
    if request.stream:
        out["gen_ai.request.stream"] = True
    if request.max_tokens is not None:
        out["gen_ai.request.max_tokens"] = request.max_tokens
    if request.temperature is not None:
        out["gen_ai.request.temperature"] = float(request.temperature)
    if request.top_p is not None:
        out["gen_ai.request.top_p"] = float(request.top_p)
    if request.stop:
        out["gen_ai.request.stop_sequences"] = list(request.stop)
    if request.seed is not None:
        out["gen_ai.request.seed"] = request.seed
    if request.frequency_penalty is not None:
        out["gen_ai.request.frequency_penalty"] = float(request.frequency_penalty)
    if request.presence_penalty is not None:
        out["gen_ai.request.presence_penalty"] = float(request.presence_penalty)
    response_format = request.response_format
    if response_format:
        kind = response_format.get("type")
        out["gen_ai.output.type"] = "text" if kind == "text" else "json"
    return out


def _media_request_attributes(
    operation: Operation, model: str, params: RequestParams
) -> dict[str, AttributeValue]:
    """An embeddings or images call's request attributes; ``params`` as the caller gave them."""
    out: dict[str, AttributeValue] = {
        "gen_ai.operation.name": _OPERATION_NAMES[operation],
        "gen_ai.request.model": model,
    }
    if operation == "images":
        out["gen_ai.output.type"] = "image"
    dimensions = params.get("dimensions")
    if isinstance(dimensions, int):
        out["gen_ai.embeddings.dimension.count"] = dimensions
    encoding_format = params.get("encoding_format")
    if isinstance(encoding_format, str):
        out["gen_ai.request.encoding_formats"] = [encoding_format]
    count = params.get("n")
    if isinstance(count, int) and count != 1:  # the conventions: only when not 1
        out["gen_ai.request.choice.count"] = count
    for name in ("size", "quality"):
        value = params.get(name)
        if isinstance(value, str):
            out[f"gateway.image.{name}"] = value
    return out


def _token_counts(operation: Operation, usage: TokenUsage) -> dict[str, int]:
    """The token counts a call reports, by ``gen_ai.token.type``: an embeddings call has no
    output tokens; an images call whose provider reported no usage (DALL-E) reports none."""
    if operation == "embeddings":
        return {"input": usage.input_tokens}
    if operation == "images" and not (usage.input_tokens or usage.output_tokens):
        return {}
    return {"input": usage.input_tokens, "output": usage.output_tokens}


def _usage_attributes(counts: dict[str, int], usage: TokenUsage) -> dict[str, AttributeValue]:
    # Both totals include their parts (cached / cache-written input, reasoning output), as
    # TokenUsage's do and as the conventions ask.
    out: dict[str, AttributeValue] = {
        f"gen_ai.usage.{kind}_tokens": count for kind, count in counts.items()
    }
    if usage.cached_input_tokens:
        out["gen_ai.usage.cache_read.input_tokens"] = usage.cached_input_tokens
    if usage.cache_write_tokens:
        out["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
    if usage.reasoning_tokens:
        out["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
    return out


class _CallTrace(CallTrace):
    """The span of one call, its attempts' spans, and its metrics when it ends."""

    __slots__ = (
        "_account",
        "_attempt",
        "_attempt_token",
        "_attempts",
        "_bill",
        "_collector",
        "_ended",
        "_finish_reason",
        "_metric_attributes",
        "_native",
        "_operation",
        "_plan",
        "_response_model",
        "_span",
        "_started",
        "_target",
        "_telemetry",
        "_usage_seen",
    )

    def __init__(
        self,
        telemetry: OpenTelemetry,
        operation: Operation,
        model: str,
        attributes: dict[str, AttributeValue],
        plan: CallPlan,
        account: str | None,
    ) -> None:
        """Start the span of a call of ``operation`` with its request ``attributes``."""
        self._telemetry = telemetry
        self._operation: Operation = operation
        self._plan = plan
        self._account = account = account or telemetry.default_account
        self._started = telemetry.clock.monotonic()
        self._metric_attributes: dict[str, AttributeValue] = {
            "gen_ai.operation.name": _OPERATION_NAMES[operation],
            "gen_ai.request.model": model,
        }
        providers = {telemetry.provider(t).name for t in plan.route.targets}
        if len(providers) == 1:  # known before the first try: a sampler can see it
            attributes["gen_ai.provider.name"] = providers.pop()
        attributes["gateway.route"] = plan.route.name
        attributes["gateway.request_id"] = plan.request_id
        if account is not None:
            attributes["gateway.account"] = account
        self._span: Span = telemetry.tracer.start_span(
            f"{operation} {model}", kind=SpanKind.CLIENT, attributes=attributes
        )
        self._attempt: Span | None = None
        self._attempt_token: Token[Context] | None = None
        self._attempts = 0
        self._target: ResolvedTarget | None = None
        self._response_model: str | None = None
        self._ended = False
        self._native: ChunkStream | AsyncChunkStream | None = None
        self._bill: AttemptBill | None = None
        self._finish_reason: str | None = None
        self._usage_seen = False
        self._collector: OutputCollector | None = None

    # -- attempts ----------------------------------------------------------------------------

    @_never_raises
    def attempt(self, action: Try) -> None:
        self._end_attempt(None)  # a try that ended without a hook (never expected)
        target = action.target
        self._target = target
        self._attempts += 1
        attributes: dict[str, AttributeValue] = {
            "gateway.attempt.provider": target.provider,
            "gateway.attempt.model": target.model,
            "gateway.attempt.number": self._attempts,
            "gateway.attempt.retry": action.retry,
        }
        provider = self._telemetry.provider(target)
        if provider.address:
            attributes["server.address"] = provider.address
        span = self._telemetry.tracer.start_span(
            f"attempt {target.label}",
            context=trace.set_span_in_context(self._span),
            kind=SpanKind.INTERNAL,
            attributes=attributes,
        )
        self._attempt = span
        # Current while the provider is called, so that spans made below nest under it.
        self._attempt_token = otel_context.attach(trace.set_span_in_context(span))

    @_never_raises
    def attempt_failed(self, error: ProviderError) -> None:
        self._end_attempt(error)

    def _end_attempt(self, error: BaseException | None) -> None:
        span = self._attempt
        if span is None:
            return
        self._attempt = None
        token, self._attempt_token = self._attempt_token, None
        if token is not None:
            otel_context.detach(token)
        if error is None:
            span.set_attribute("gateway.attempt.outcome", "ok")
        else:
            kind = error_type(error)
            ended: dict[str, AttributeValue] = {
                "gateway.attempt.outcome": "error",
                "error.type": kind,
            }
            status = getattr(error, "status_code", None)
            if isinstance(status, int):
                ended["http.response.status_code"] = status
            wait = self._plan.retry_wait
            if wait is not None:
                ended["gateway.attempt.retry_wait_s"] = float(wait)
            span.set_attributes(ended)
            span.set_status(Status(StatusCode.ERROR, kind))
        span.end()

    # -- the call's end ----------------------------------------------------------------------

    @_never_raises
    def answered(
        self, response: GatewayChatCompletion, usage: TokenUsage, cost: Decimal | None
    ) -> None:
        if self._ended:
            return
        self._end_attempt(None)
        self._response_model = response.model
        ended: dict[str, AttributeValue] = {
            "gen_ai.response.id": response.id,
            "gen_ai.response.finish_reasons": [
                choice.finish_reason or "error" for choice in response.choices or ()
            ],
        }
        if self._telemetry.capture_content:
            ended["gen_ai.output.messages"] = output_messages(response)
        self._finish(ended, usage, cost, None)

    @_never_raises
    def answered_media(
        self, result: EmbeddingResult | ImageResult, usage: TokenUsage, cost: Decimal | None
    ) -> None:
        if self._ended:
            return
        self._end_attempt(None)
        ended: dict[str, AttributeValue] = {}
        if isinstance(result, EmbeddingResult):
            self._response_model = result.model
            if result.vectors:  # what the vectors have, asked for or the model's default
                ended["gen_ai.embeddings.dimension.count"] = len(result.vectors[0])
            if result.estimated:  # the provider reported no usage: billed at the estimate
                ended["gateway.usage.estimated"] = True
        else:
            ended["gateway.image.count"] = result.images
        self._finish(ended, usage, cost, None)

    @_never_raises
    def failed(self, error: BaseException) -> None:
        if self._ended:
            return
        self._end_attempt(error)
        self._finish({}, None, None, error_type(error))

    def _finish(
        self,
        ended: dict[str, AttributeValue],
        usage: TokenUsage | None,
        cost: Decimal | None,
        error: str | None,
    ) -> None:
        """End the call's span with ``ended`` and the attributes every end has; record the
        call's metrics."""
        self._ended = True
        telemetry, span = self._telemetry, self._span
        target = self._target_or_first()
        attributes = self._metric_attributes
        attributes.update(telemetry.provider(target).attributes())
        if self._response_model:
            attributes["gen_ai.response.model"] = self._response_model
        ended.update(attributes)
        if self._target is not None:
            ended["gateway.provider"] = target.provider
            ended["gateway.model"] = target.model
        for attempt in self._plan.attempts:
            if attempt.outcome == "skipped":
                span.add_event(
                    "gateway.attempt.skipped",
                    {
                        "gateway.attempt.provider": attempt.provider,
                        "gateway.attempt.model": attempt.model,
                        "gateway.attempt.skip_reason": attempt.reason or "",
                    },
                )
        if usage is not None:
            counts = _token_counts(self._operation, usage)
            ended.update(_usage_attributes(counts, usage))
            record = telemetry.token_usage.record
            for kind, count in counts.items():
                record(count, {**attributes, "gen_ai.token.type": kind})
        if cost is not None:
            ended["gateway.cost_usd"] = format(cost, "f")
            cost_attributes: dict[str, AttributeValue] = {
                "gen_ai.provider.name": attributes["gen_ai.provider.name"],
                "gateway.provider": target.provider,
                "gateway.model": target.model,
            }
            if self._account is not None:
                cost_attributes["gateway.account"] = self._account
            telemetry.cost.add(float(cost), cost_attributes)
        if error is not None:
            ended["error.type"] = error
            span.set_status(Status(StatusCode.ERROR, error))
            attributes = {**attributes, "error.type": error}
        span.set_attributes(ended)
        telemetry.duration.record(telemetry.clock.monotonic() - self._started, attributes)
        span.end()

    # -- streams -----------------------------------------------------------------------------

    def _opened(self, head: list[ChatCompletionChunk], native: Any, bill: AttemptBill) -> None:
        self._end_attempt(None)
        self._native, self._bill = native, bill
        telemetry = self._telemetry
        seconds = telemetry.clock.monotonic() - self._started
        opened: dict[str, AttributeValue] = {"gen_ai.response.time_to_first_chunk": seconds}
        if head:
            first = head[0]
            self._response_model = first.model
            opened["gen_ai.response.id"] = first.id
        self._span.set_attributes(opened)
        provider = telemetry.provider(self._target_or_first())
        attributes = {**self._metric_attributes, **provider.attributes()}
        if self._response_model:
            attributes["gen_ai.response.model"] = self._response_model
        telemetry.time_to_first_chunk.record(seconds, attributes)
        if telemetry.capture_content:
            self._collector = OutputCollector()

    def _target_or_first(self) -> ResolvedTarget:
        return self._target or self._plan.route.targets[0]

    def stream_opened(
        self,
        head: list[ChatCompletionChunk],
        chunks: Generator[ChatCompletionChunk, None, None],
        native: ChunkStream,
        bill: AttemptBill,
    ) -> Generator[ChatCompletionChunk, None, None]:
        try:
            self._opened(head, native, bill)
        except Exception:
            logger.exception("recording telemetry failed; the call is not affected")
            return chunks
        return self._watch(chunks)

    def astream_opened(
        self,
        head: list[ChatCompletionChunk],
        chunks: AsyncGenerator[ChatCompletionChunk, None],
        native: AsyncChunkStream,
        bill: AttemptBill,
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        try:
            self._opened(head, native, bill)
        except Exception:
            logger.exception("recording telemetry failed; the call is not affected")
            return chunks
        return self._awatch(chunks)

    def _see(self, chunk: ChatCompletionChunk) -> None:
        for choice in chunk.choices:
            if choice.finish_reason is not None:
                self._finish_reason = choice.finish_reason
        if chunk.usage is not None:
            self._usage_seen = True
        if self._collector is not None:
            self._collector.add(chunk)

    def _watch(
        self, chunks: Generator[ChatCompletionChunk, None, None]
    ) -> Generator[ChatCompletionChunk, None, None]:
        error: BaseException | None = None
        try:
            for chunk in chunks:
                self._see(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            chunks.close()  # the stream's own clean-up (settlement) runs first
            self._end_stream(error)

    async def _awatch(
        self, chunks: AsyncGenerator[ChatCompletionChunk, None]
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        error: BaseException | None = None
        try:
            async for chunk in chunks:
                self._see(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            await chunks.aclose()
            self._end_stream(error)

    @_never_raises
    def stream_closed(self) -> None:
        if self._native is not None:
            self._end_stream(None)

    @_never_raises
    def _end_stream(self, error: BaseException | None) -> None:
        if self._ended:
            return
        native, bill = self._native, self._bill
        assert native is not None and bill is not None
        if error is not None:
            outcome = "error"
        elif self._usage_seen:
            outcome = "complete"
        else:
            outcome = "abandoned"
        # A finish reason that never came is "error", as the conventions ask.
        reason = self._finish_reason or "error"
        ended: dict[str, AttributeValue] = {
            "gateway.stream.outcome": outcome,
            "gen_ai.response.finish_reasons": [reason],
        }
        if self._collector is not None:
            ended["gen_ai.output.messages"] = self._collector.messages(reason)
        kind = None if error is None else error_type(error)
        self._finish(ended, native.usage, bill.charged, kind)
