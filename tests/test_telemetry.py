"""OpenTelemetry spans and metrics of calls (gateway.telemetry), read back through the SDK's
in-memory span exporter and metric reader; and the disabled path, which imports nothing."""

from __future__ import annotations

import gc
import json
import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway import AsyncGateway, Gateway
from gateway.errors import (
    AllProvidersFailed,
    AuthenticationFailed,
    ConfigError,
    InsufficientCredits,
    ProviderUnavailable,
)
from gateway.providers.base import TokenUsage
from gateway.providers.fake import FakeAdapter
from gateway.telemetry import NO_TELEMETRY, telemetry_for
from gateway.telemetry._otel import OpenTelemetry
from gateway.testing.clock import ManualClock

HELLO = [{"role": "user", "content": "Hello there"}]


def config(**extra: Any) -> dict[str, Any]:
    return {
        "providers": {"fake": {}, "backup": {"type": "fake"}},
        "routes": {
            "smart": {
                "targets": ["fake/alpha", "backup/beta"],
                "retry": {"attempts": 2, "initial_s": 1, "max_s": 1, "jitter": False},
            },
            "solo": {"targets": ["fake/solo"], "retry": {"attempts": 1}},
        },
        "credits": {"store": "memory://", "flush_interval_ms": 0},
        "telemetry": {"opentelemetry": True},
        **extra,
    }


@dataclass
class Recorded:
    """What one test's gateway recorded."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    @classmethod
    def new(cls) -> Recorded:
        """In-memory exporters for one test (tests/test_telemetry_media.py uses them too)."""
        exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        reader = InMemoryMetricReader()
        return cls(exporter, reader, tracer_provider, MeterProvider(metric_readers=[reader]))

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def call_span(self) -> ReadableSpan:
        (span,) = [s for s in self.spans() if s.kind is SpanKind.CLIENT]
        return span

    def attempt_spans(self) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name.startswith("attempt ")]

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, point) of every data point of the metric ``name``."""
        data = self.reader.get_metrics_data()
        out: list[tuple[dict[str, Any], Any]] = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        out += [(dict(p.attributes or {}), p) for p in metric.data.data_points]
        return out


@pytest.fixture
def otel() -> Recorded:
    return Recorded.new()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def traced(
    otel: Recorded,
    clock: ManualClock,
    cls: type[Gateway] | type[AsyncGateway] = Gateway,
    **extra: Any,
) -> Any:
    """A gateway whose config turns telemetry on, recording into this test's providers (the
    gateway would use the global ones)."""
    gw = cls(config=config(**extra), clock=clock, rng=random.Random(1))
    assert isinstance(gw._core.telemetry, OpenTelemetry)  # chosen by the config
    gw._core.telemetry = OpenTelemetry(
        gw.config,
        clock,
        tracer_provider=otel.tracer_provider,
        meter_provider=otel.meter_provider,
    )
    if gw.config.credits is not None:
        gw._core.billing.account().grant(Decimal("5"))  # agw.credits is awaitable
    return gw


def fake(gw: Gateway | AsyncGateway, name: str = "fake") -> FakeAdapter:
    adapter = gw.adapter(name)
    assert isinstance(adapter, FakeAdapter)
    return adapter


# -- a call that succeeds -------------------------------------------------------------------


def test_success_span_attributes(otel: Recorded, clock: ManualClock) -> None:
    gw = traced(otel, clock)
    usage = TokenUsage(
        input_tokens=1200,
        output_tokens=300,
        cached_input_tokens=1000,
        cache_write_tokens=100,
        reasoning_tokens=120,
    )
    fake(gw).script.respond(text="Paris", usage=usage)
    resp = gw.chat.completions.create(
        model="smart", messages=HELLO, max_tokens=400, temperature=0.5, top_p=0.9
    )

    span = otel.call_span()
    assert span.name == "chat smart"
    assert span.parent is None and span.status.status_code is StatusCode.UNSET
    attrs = dict(span.attributes or {})
    cost = resp.usage.cost
    assert isinstance(cost, Decimal) and cost > 0
    assert attrs == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "fake",
        "gen_ai.request.model": "smart",
        "gen_ai.request.max_tokens": 400,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.response.id": resp.id,
        "gen_ai.response.model": "alpha",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 300,
        "gen_ai.usage.cache_read.input_tokens": 1000,
        "gen_ai.usage.cache_creation.input_tokens": 100,
        "gen_ai.usage.reasoning.output_tokens": 120,
        "gateway.route": "smart",
        "gateway.request_id": resp.gateway.request_id,
        "gateway.account": "default",
        "gateway.provider": "fake",
        "gateway.model": "alpha",
        # The exact Decimal, as text: no float on the money path.
        "gateway.cost_usd": format(cost, "f"),
    }
    assert Decimal(str(attrs["gateway.cost_usd"])) == cost

    (attempt,) = otel.attempt_spans()
    assert attempt.name == "attempt fake/alpha" and attempt.kind is SpanKind.INTERNAL
    assert attempt.parent is not None and attempt.parent.span_id == span.context.span_id
    assert dict(attempt.attributes or {}) == {
        "gateway.attempt.provider": "fake",
        "gateway.attempt.model": "alpha",
        "gateway.attempt.number": 1,
        "gateway.attempt.retry": False,
        "gateway.attempt.outcome": "ok",
    }


def test_success_metrics(otel: Recorded, clock: ManualClock) -> None:
    gw = traced(otel, clock)
    fake(gw).script.clock = clock
    # The call takes 1.5 s on the gateway's clock.
    fake(gw).script.slow(1.5, text="Paris", usage=TokenUsage(input_tokens=40, output_tokens=2))
    resp = gw.chat.completions.create(model="smart", messages=HELLO)

    common = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "fake",
        "gen_ai.request.model": "smart",
        "gen_ai.response.model": "alpha",
    }
    tokens = {a["gen_ai.token.type"]: (a, p) for a, p in otel.points("gen_ai.client.token.usage")}
    assert tokens["input"][0] == {**common, "gen_ai.token.type": "input"}
    assert (tokens["input"][1].count, tokens["input"][1].sum) == (1, 40)
    assert (tokens["output"][1].count, tokens["output"][1].sum) == (1, 2)
    ((attrs, duration),) = otel.points("gen_ai.client.operation.duration")
    assert attrs == common and duration.sum == pytest.approx(1.5)
    # The conventions' advised buckets, not the SDK's defaults.
    assert duration.explicit_bounds[:3] == (0.01, 0.02, 0.04)
    ((attrs, spent),) = otel.points("gateway.cost")
    assert attrs == {
        "gen_ai.provider.name": "fake",
        "gateway.provider": "fake",
        "gateway.model": "alpha",
        "gateway.account": "default",
    }
    assert spent.value == pytest.approx(float(resp.usage.cost))
    assert otel.points("gen_ai.client.operation.time_to_first_chunk") == []


def test_real_provider_names_and_server_address(otel: Recorded, clock: ManualClock) -> None:
    gw = traced(
        otel,
        clock,
        providers={
            "openai": {"api_key": "sk-test"},
            "claude": {
                "type": "anthropic",
                "api_key": "k",
                "base_url": "https://u:p@llm.example:8443",
            },
            "gemini": {"api_key": "k"},
        },
        routes={},
        credits=None,
    )
    telemetry = gw._core.telemetry
    names = {
        name: telemetry.providers[name].attributes() for name in ("openai", "claude", "gemini")
    }
    assert names == {
        "openai": {
            "gen_ai.provider.name": "openai",
            "server.address": "api.openai.com",
            "server.port": 443,
        },
        # A base_url's host and port, never its credentials.
        "claude": {
            "gen_ai.provider.name": "anthropic",
            "server.address": "llm.example",
            "server.port": 8443,
        },
        "gemini": {
            "gen_ai.provider.name": "gcp.gemini",
            "server.address": "generativelanguage.googleapis.com",
            "server.port": 443,
        },
    }


def test_openai_on_the_wire(otel: Recorded, clock: ManualClock) -> None:
    from gateway.testing.mock import mock_providers

    with mock_providers(clock) as mock:
        gw = traced(
            otel,
            clock,
            providers={"openai": {"api_key": "sk-test"}},
            routes={},
            credits=None,
        )
        mock.openai.respond(text="Hi", usage=TokenUsage(input_tokens=9, output_tokens=2))
        resp = gw.chat.completions.create(model="openai/gpt-4o", messages=HELLO)
    attrs = dict(otel.call_span().attributes or {})
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["server.address"] == "api.openai.com" and attrs["server.port"] == 443
    assert attrs["gen_ai.request.model"] == "openai/gpt-4o"
    assert attrs["gen_ai.response.id"] == resp.id
    assert attrs["gen_ai.response.model"] == resp.model
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (9, 2)
    assert "gateway.account" not in attrs  # no credit account: priced, not charged
    assert attrs["gateway.cost_usd"] == format(resp.usage.cost, "f")
    (attempt,) = otel.attempt_spans()
    assert attempt.attributes["server.address"] == "api.openai.com"


# -- fallback and retries -------------------------------------------------------------------


def test_fallback_has_one_attempt_span_per_try(otel: Recorded, clock: ManualClock) -> None:
    gw = traced(otel, clock)
    fake(gw).script.fail(429, times=2)  # alpha: a try and its retry fail, then backup answers
    resp = gw.chat.completions.create(model="smart", messages=HELLO)
    assert resp.gateway.provider == "backup"

    call = otel.call_span()
    attempts = sorted(otel.attempt_spans(), key=lambda s: s.start_time or 0)
    assert [s.name for s in attempts] == [
        "attempt fake/alpha",
        "attempt fake/alpha",
        "attempt backup/beta",
    ]
    assert all(s.parent and s.parent.span_id == call.context.span_id for s in attempts)
    first, retry, answer = (dict(s.attributes or {}) for s in attempts)
    assert first == {
        "gateway.attempt.provider": "fake",
        "gateway.attempt.model": "alpha",
        "gateway.attempt.number": 1,
        "gateway.attempt.retry": False,
        "gateway.attempt.outcome": "error",
        "error.type": "RateLimited",
        "http.response.status_code": 429,
        "gateway.attempt.retry_wait_s": 1.0,  # then the plan waited 1 s and retried
    }
    assert retry["gateway.attempt.retry"] is True and retry["gateway.attempt.number"] == 2
    assert retry["error.type"] == "RateLimited" and "gateway.attempt.retry_wait_s" not in retry
    assert answer["gateway.attempt.outcome"] == "ok" and "error.type" not in answer
    assert attempts[0].status.status_code is StatusCode.ERROR
    attrs = dict(call.attributes or {})
    # Who answered, and no error on the call: the fallback is invisible to the caller.
    assert attrs["gen_ai.provider.name"] == "backup"
    assert (attrs["gateway.provider"], attrs["gateway.model"]) == ("backup", "beta")
    assert "error.type" not in attrs and call.status.status_code is StatusCode.UNSET
    ((_, duration),) = otel.points("gen_ai.client.operation.duration")
    assert duration.sum == pytest.approx(1.0)  # the retry's wait, on the gateway's clock


def test_skipped_target_is_an_event(otel: Recorded, clock: ManualClock) -> None:
    gw = traced(otel, clock)
    fake(gw).script["alpha"].fail(503, times=None)
    for _ in range(3):  # two tries each: the fifth failure opens alpha's breaker
        gw.chat.completions.create(model="smart", messages=HELLO)
    otel.exporter.clear()
    gw.chat.completions.create(model="smart", messages=HELLO)
    events = [e for e in otel.call_span().events if e.name == "gateway.attempt.skipped"]
    assert [dict(e.attributes or {}) for e in events] == [
        {
            "gateway.attempt.provider": "fake",
            "gateway.attempt.model": "alpha",
            "gateway.attempt.skip_reason": "circuit breaker open",
        }
    ]
    assert [s.name for s in otel.attempt_spans()] == ["attempt backup/beta"]


# -- errors ---------------------------------------------------------------------------------


def test_error_span_and_metrics(otel: Recorded, clock: ManualClock) -> None:
    gw = traced(otel, clock)
    fake(gw).script.fail(401)  # not a fallback trigger: raised at once
    with pytest.raises(AuthenticationFailed):
        gw.chat.completions.create(model="solo", messages=HELLO)

    call = otel.call_span()
    attrs = dict(call.attributes or {})
    assert call.status.status_code is StatusCode.ERROR
    assert call.status.description == "AuthenticationFailed"
    assert attrs["error.type"] == "AuthenticationFailed"
    assert attrs["gen_ai.provider.name"] == "fake"
    assert not any(k.startswith(("gen_ai.usage", "gen_ai.response")) for k in attrs)
    assert "gateway.cost_usd" not in attrs
    (attempt,) = otel.attempt_spans()
    assert attempt.attributes["error.type"] == "AuthenticationFailed"
    assert attempt.attributes["gateway.attempt.outcome"] == "error"
    ((metric_attrs, _),) = otel.points("gen_ai.client.operation.duration")
    assert metric_attrs["error.type"] == "AuthenticationFailed"
    assert otel.points("gen_ai.client.token.usage") == []
    assert otel.points("gateway.cost") == []


def test_every_target_failing(otel: Recorded, clock: ManualClock) -> None:
    gw = traced(otel, clock)
    fake(gw).script.fail(503, times=2)
    fake(gw, "backup").script.fail(503, times=2)
    with pytest.raises(AllProvidersFailed):
        gw.chat.completions.create(model="smart", messages=HELLO)
    call = otel.call_span()
    assert call.attributes["error.type"] == "AllProvidersFailed"
    assert call.attributes["gen_ai.provider.name"] == "backup"  # the last one tried
    assert len(otel.attempt_spans()) == 4


def test_refused_before_any_provider(otel: Recorded, clock: ManualClock) -> None:
    gw = traced(otel, clock)
    gw.credits.account("broke").grant(Decimal("0.000001"))
    with pytest.raises(InsufficientCredits):
        gw.chat.completions.create(model="solo", messages=HELLO, account="broke")
    call = otel.call_span()
    assert call.attributes["error.type"] == "InsufficientCredits"
    assert call.attributes["gateway.account"] == "broke"
    assert otel.attempt_spans() == []


def test_message_content_only_when_asked(otel: Recorded, clock: ManualClock) -> None:
    gw = traced(otel, clock)
    gw.chat.completions.create(model="smart", messages=HELLO)
    attrs = dict(otel.call_span().attributes or {})
    assert "gen_ai.input.messages" not in attrs and "gen_ai.output.messages" not in attrs
    assert not any("Hello there" in str(v) for s in otel.spans() for v in s.attributes.values())

    otel.exporter.clear()
    gw = traced(otel, clock, telemetry={"opentelemetry": True, "capture_content": True})
    gw.chat.completions.create(model="smart", messages=HELLO)
    attrs = dict(otel.call_span().attributes or {})
    assert json.loads(str(attrs["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": "Hello there"}]}
    ]
    assert json.loads(str(attrs["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "[fake/alpha] You said: Hello there"}],
            "finish_reason": "stop",
        }
    ]


# -- streams --------------------------------------------------------------------------------


def _stream_checks(otel: Recorded, text: str, cost: Decimal | None) -> dict[str, Any]:
    call = otel.call_span()
    attrs = dict(call.attributes or {})
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gateway.stream.outcome"] == "complete"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.response.time_to_first_chunk"] == pytest.approx(0.25)
    assert cost is not None and attrs["gateway.cost_usd"] == format(cost, "f")
    assert json.loads(str(attrs["gen_ai.output.messages"]))[0]["parts"] == [
        {"type": "text", "content": text}
    ]
    ((_, ttfc),) = otel.points("gen_ai.client.operation.time_to_first_chunk")
    assert ttfc.sum == pytest.approx(0.25)
    ((_, duration),) = otel.points("gen_ai.client.operation.duration")
    assert duration.sum == pytest.approx(0.25)
    (attempt,) = otel.attempt_spans()
    assert attempt.attributes["gateway.attempt.outcome"] == "ok"
    # The attempt ended when the stream opened; the call's span when the stream ended.
    assert (attempt.end_time or 0) <= (call.end_time or 0)
    return attrs


def test_stream_span_ends_with_the_stream(otel: Recorded, clock: ManualClock) -> None:
    gw = traced(otel, clock, telemetry={"opentelemetry": True, "capture_content": True})
    fake(gw).script.clock = clock
    fake(gw).script.slow(0.25, text="Bonjour le monde", usage=TokenUsage(30, 5))
    stream = gw.chat.completions.create(model="smart", messages=HELLO, stream=True)
    assert [s for s in otel.spans() if s.kind is SpanKind.CLIENT] == []  # still open
    chunks = list(stream)
    assert stream.usage is not None
    attrs = _stream_checks(otel, "Bonjour le monde", stream.usage.cost)
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (30, 5)
    assert attrs["gen_ai.response.id"] == chunks[0].id


async def test_async_stream_span_ends_with_the_stream(otel: Recorded, clock: ManualClock) -> None:
    capture = {"opentelemetry": True, "capture_content": True}
    agw = traced(otel, clock, AsyncGateway, telemetry=capture)
    fake(agw).script.clock = clock
    fake(agw).script.slow(0.25, text="Bonjour le monde", usage=TokenUsage(30, 5))
    stream = await agw.chat.completions.create(model="smart", messages=HELLO, stream=True)
    chunks = [chunk async for chunk in stream]
    assert stream.usage is not None and chunks
    attrs = _stream_checks(otel, "Bonjour le monde", stream.usage.cost)
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (30, 5)


async def test_async_call_and_failure(otel: Recorded, clock: ManualClock) -> None:
    agw = traced(otel, clock, AsyncGateway)
    fake(agw).script.fail(429, times=2)
    resp = await agw.chat.completions.create(model="smart", messages=HELLO)
    assert otel.call_span().attributes["gateway.provider"] == "backup"
    assert len(otel.attempt_spans()) == 3
    assert resp.usage is not None
    otel.exporter.clear()
    fake(agw).script.fail(401)
    with pytest.raises(AuthenticationFailed):
        await agw.chat.completions.create(model="solo", messages=HELLO)
    assert otel.call_span().attributes["error.type"] == "AuthenticationFailed"


def _abandoned_checks(otel: Recorded) -> None:
    call = otel.call_span()
    attrs = dict(call.attributes or {})
    assert attrs["gateway.stream.outcome"] == "abandoned"
    assert attrs["gen_ai.response.finish_reasons"] == ("error",)  # no finish reason came
    assert "error.type" not in attrs  # the caller stopping is not an error
    assert Decimal(str(attrs["gateway.cost_usd"])) > 0  # what was used is still charged
    assert len(otel.points("gen_ai.client.operation.duration")) == 1


@pytest.mark.parametrize("how", ["close", "close-unread", "drop"])
def test_abandoned_stream_ends_its_span(otel: Recorded, clock: ManualClock, how: str) -> None:
    gw = traced(otel, clock)
    fake(gw).script.respond(text="one two three four five six seven eight nine ten")
    stream = gw.chat.completions.create(model="smart", messages=HELLO, stream=True)
    if how != "close-unread":
        next(stream)
    assert [s for s in otel.spans() if s.kind is SpanKind.CLIENT] == []
    if how == "drop":
        del stream
        gc.collect()
    else:
        stream.close()
    _abandoned_checks(otel)


async def test_async_abandoned_stream_ends_its_span(otel: Recorded, clock: ManualClock) -> None:
    agw = traced(otel, clock, AsyncGateway)
    fake(agw).script.respond(text="one two three four five six seven eight nine ten")
    stream = await agw.chat.completions.create(model="smart", messages=HELLO, stream=True)
    await stream.__anext__()
    await stream.close()
    _abandoned_checks(otel)


async def test_async_dropped_stream_ends_its_span(otel: Recorded, clock: ManualClock) -> None:
    agw = traced(otel, clock, AsyncGateway)
    stream = await agw.chat.completions.create(model="smart", messages=HELLO, stream=True)
    del stream
    gc.collect()
    _abandoned_checks(otel)


def test_stream_falls_back_before_its_first_chunk(otel: Recorded, clock: ManualClock) -> None:
    gw = traced(otel, clock)
    fake(gw).script.overloaded_mid_stream(after_chunks=0, times=2)
    stream = gw.chat.completions.create(model="smart", messages=HELLO, stream=True)
    list(stream)
    outcomes = [
        (s.name, s.attributes["gateway.attempt.outcome"])
        for s in sorted(otel.attempt_spans(), key=lambda s: s.start_time or 0)
    ]
    assert outcomes == [
        ("attempt fake/alpha", "error"),
        ("attempt fake/alpha", "error"),
        ("attempt backup/beta", "ok"),
    ]
    attrs = otel.call_span().attributes
    assert attrs["gateway.stream.outcome"] == "complete"
    assert attrs["gen_ai.provider.name"] == "backup" and attrs["gen_ai.response.model"] == "beta"


def test_broken_stream_is_an_error(otel: Recorded, clock: ManualClock) -> None:
    gw = traced(otel, clock)
    fake(gw).script.overloaded_mid_stream(after_chunks=2)
    stream = gw.chat.completions.create(model="smart", messages=HELLO, stream=True)
    with pytest.raises(ProviderUnavailable):
        list(stream)
    call = otel.call_span()
    assert call.status.status_code is StatusCode.ERROR
    assert call.attributes["gateway.stream.outcome"] == "error"
    assert call.attributes["error.type"] == "ProviderOverloaded"
    ((metric_attrs, _),) = otel.points("gen_ai.client.operation.duration")
    assert metric_attrs["error.type"] == "ProviderOverloaded"


# -- context --------------------------------------------------------------------------------


def test_incoming_traceparent_is_the_parent(otel: Recorded, clock: ManualClock) -> None:
    """What the server does with an incoming ``traceparent``: attach the extracted context."""
    gw = traced(otel, clock)
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    headers = {"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"}
    token = otel_context.attach(TraceContextTextMapPropagator().extract(headers))
    try:
        gw.chat.completions.create(model="smart", messages=HELLO)
    finally:
        otel_context.detach(token)
    call = otel.call_span()
    assert call.context.trace_id == int(trace_id, 16)
    assert call.parent is not None and call.parent.span_id == 0xB7AD6B7169203331
    assert all(s.context.trace_id == int(trace_id, 16) for s in otel.attempt_spans())


def test_attempt_span_is_current_while_the_provider_is_called(
    otel: Recorded, clock: ManualClock
) -> None:
    from opentelemetry import trace

    gw = traced(otel, clock)
    seen: list[int] = []
    adapter = fake(gw)
    original = adapter.complete

    def complete(model: str, request: Any) -> Any:
        seen.append(trace.get_current_span().get_span_context().span_id)
        return original(model, request)

    adapter.complete = complete  # type: ignore[method-assign]
    gw.chat.completions.create(model="smart", messages=HELLO)
    (attempt,) = otel.attempt_spans()
    assert seen == [attempt.context.span_id]
    assert trace.get_current_span().get_span_context().is_valid is False  # detached after


def test_a_telemetry_failure_does_not_fail_the_call(
    otel: Recorded, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    gw = traced(otel, clock)
    gw._core.telemetry.cost = None  # a broken instrument: recording the cost raises
    resp = gw.chat.completions.create(model="smart", messages=HELLO)
    assert resp.choices[0].message.content
    assert "recording telemetry failed" in caplog.text


# -- configuration and the disabled path ----------------------------------------------------


def test_off_by_default_and_config_errors(clock: ManualClock) -> None:
    plain = Gateway(config={"providers": {"fake": {}}}, clock=clock)
    assert plain._core.telemetry is NO_TELEMETRY
    assert plain.config.telemetry.opentelemetry is False
    assert plain.config.telemetry.capture_content is False
    with pytest.raises(ConfigError, match="telemetry"):
        Gateway(config={"providers": {"fake": {}}, "telemetry": {"opentelemetri": True}})


def test_missing_api_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.config import parse_config

    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "gateway.telemetry._otel", raising=False)
    cfg = parse_config(
        "providers: {fake: {}}\ntelemetry:\n  opentelemetry: true\n", source="gw.yaml"
    )
    with pytest.raises(ConfigError) as info:
        telemetry_for(cfg, ManualClock())
    message = str(info.value)
    assert "OpenTelemetry API is not installed" in message and "[otel]" in message
    assert "line 3" in message


_DISABLED = textwrap.dedent(
    """
    import asyncio, sys
    from gateway import AsyncGateway, Gateway

    config = {"providers": {"fake": {}}, "routes": {"r": {"targets": ["fake/a"]}},
              "telemetry": {"opentelemetry": False}}
    gw = Gateway(config=config)
    gw.chat.completions.create(model="r", messages=[{"role": "user", "content": "hi"}])
    for chunk in gw.chat.completions.create(
        model="r", messages=[{"role": "user", "content": "hi"}], stream=True
    ):
        pass
    stream = gw.chat.completions.create(
        model="r", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    stream.close()
    gw.embeddings.create(model="r", input=["hi", "there"])
    gw.images.generate(model="r", prompt="a cat")

    async def main():
        agw = AsyncGateway(config=config)
        await agw.chat.completions.create(model="r", messages=[{"role": "user", "content": "hi"}])
        stream = await agw.chat.completions.create(
            model="r", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        async for chunk in stream:
            pass
        await agw.embeddings.create(model="r", input="hi")
        await agw.images.generate(model="r", prompt="a cat")
        await agw.close()

    asyncio.run(main())
    gw.close()
    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
    print(loaded or "none")
    """
)


def test_disabled_path_imports_nothing_from_opentelemetry() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _DISABLED], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "none", out.stdout


_CLAUDE_SPANS = textwrap.dedent(
    """
    import json, sys
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # global: the Anthropic SDK records into it

    from gateway import Gateway
    from gateway.testing import ManualClock, mock_providers

    clock = ManualClock()
    config = {
        "providers": {"claude": {"type": "anthropic", "api_key": "k"}},
        "telemetry": {"opentelemetry": sys.argv[1] == "on"},
    }
    with mock_providers(clock), Gateway(config=config, clock=clock) as gw:
        gw.chat.completions.create(
            model="claude/claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}]
        )
    print(json.dumps(sorted(s.instrumentation_scope.name for s in exporter.get_finished_spans())))
    """
)


@pytest.mark.parametrize(("telemetry", "scopes"), [("on", ["gateway", "gateway"]), ("off", None)])
def test_with_gateway_telemetry_on_the_anthropic_sdk_records_no_spans_of_its_own(
    telemetry: str, scopes: list[str] | None
) -> None:
    """The SDK's own span per HTTP call would count each Claude call twice for a backend that
    sums ``gen_ai.usage.*``; with the gateway's telemetry off, the SDK's behaviour is its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_OPEN_TELEMETRY")}
    out = subprocess.run(
        [sys.executable, "-c", _CLAUDE_SPANS, telemetry],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    recorded = json.loads(out.stdout)
    if scopes is not None:
        assert recorded == scopes  # the call span and its attempt, nothing from the SDK
    else:
        assert "com.anthropic.sdk.python" in recorded  # what "on" turns off is really there


@pytest.fixture(autouse=True)
def _no_context_leak() -> Iterator[None]:
    """Every test leaves the OpenTelemetry context as it found it (attempt spans detach)."""
    before = otel_context.get_current()
    yield
    assert otel_context.get_current() == before
