"""OpenTelemetry spans and metrics of embeddings and images calls (gateway/_media.py's hooks),
read back through the SDK's in-memory exporters as in tests/test_telemetry.py; the disabled
path of these calls is pinned there (its subprocess makes both)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from gateway import AsyncGateway, Gateway
from gateway._media import MediaCall
from gateway.errors import AuthenticationFailed, InsufficientCredits
from gateway.providers.base import TokenUsage
from gateway.providers.media import EmbeddingResult
from gateway.telemetry import NO_TELEMETRY, NULL_TRACE, CallTrace
from gateway.testing.clock import ManualClock
from tests.test_telemetry import Recorded, fake, traced

ROUTES = {
    # One embedding model at two providers (vectors that may mix), one image model likewise.
    "vec": {"targets": ["fake/embed-a", "backup/embed-a"], "retry": {"attempts": 1}},
    "pic": {"targets": ["fake/img-a", "backup/img-a"], "retry": {"attempts": 1}},
    "solo-vec": {"targets": ["fake/embed-a"], "retry": {"attempts": 1}},
    "solo-pic": {"targets": ["fake/img-a"], "retry": {"attempts": 1}},
}


@pytest.fixture
def otel() -> Recorded:
    return Recorded.new()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(autouse=True)
def _no_context_leak() -> Iterator[None]:
    """Every test leaves the OpenTelemetry context as it found it (attempt spans detach)."""
    before = otel_context.get_current()
    yield
    assert otel_context.get_current() == before


def media(otel: Recorded, clock: ManualClock, cls: type[Any] = Gateway, **extra: Any) -> Any:
    return traced(otel, clock, cls, routes=ROUTES, **extra)


def attributes(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def sorted_attempts(otel: Recorded) -> list[Any]:
    return sorted(otel.attempt_spans(), key=lambda s: s.start_time or 0)


# -- a call that succeeds -------------------------------------------------------------------


def test_embeddings_span_attributes(otel: Recorded, clock: ManualClock) -> None:
    gw = media(otel, clock)
    fake(gw).script.respond(usage=TokenUsage(input_tokens=12))
    resp = gw.embeddings.create(
        model="vec", input=["hello", "world"], dimensions=8, encoding_format="base64"
    )

    span = otel.call_span()
    assert span.name == "embeddings vec" and span.kind is SpanKind.CLIENT
    assert span.parent is None and span.status.status_code is StatusCode.UNSET
    cost = resp.usage.cost
    assert isinstance(cost, Decimal) and cost > 0
    assert attributes(span) == {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.provider.name": "fake",
        "gen_ai.request.model": "vec",
        "gen_ai.request.encoding_formats": ("base64",),
        "gen_ai.embeddings.dimension.count": 8,
        "gen_ai.response.model": "embed-a",
        # No output tokens: the conventions' embeddings span has none.
        "gen_ai.usage.input_tokens": 12,
        "gateway.route": "vec",
        "gateway.request_id": resp.gateway.request_id,
        "gateway.account": "default",
        "gateway.provider": "fake",
        "gateway.model": "embed-a",
        "gateway.cost_usd": format(cost, "f"),
    }
    (attempt,) = otel.attempt_spans()
    assert attempt.name == "attempt fake/embed-a" and attempt.kind is SpanKind.INTERNAL
    assert attempt.parent is not None and attempt.parent.span_id == span.context.span_id
    assert attributes(attempt) == {
        "gateway.attempt.provider": "fake",
        "gateway.attempt.model": "embed-a",
        "gateway.attempt.number": 1,
        "gateway.attempt.retry": False,
        "gateway.attempt.outcome": "ok",
    }


def test_embeddings_dimension_count_is_what_the_vectors_have(
    otel: Recorded, clock: ManualClock
) -> None:
    gw = media(otel, clock)
    resp = gw.embeddings.create(model="vec", input="hello")  # no dimensions asked
    attrs = attributes(otel.call_span())
    assert attrs["gen_ai.embeddings.dimension.count"] == len(resp.data[0].embedding) == 256
    assert "gen_ai.request.encoding_formats" not in attrs
    assert "gateway.usage.estimated" not in attrs


def test_image_span_attributes(otel: Recorded, clock: ManualClock) -> None:
    gw = media(otel, clock)
    usage = TokenUsage(input_tokens=9, output_tokens=544, output_image_tokens=544)
    fake(gw).script.respond(usage=usage)
    resp = gw.images.generate(model="pic", prompt="a red fox", n=2, size="512x512", quality="low")

    span = otel.call_span()
    assert span.name == "images pic" and span.kind is SpanKind.CLIENT
    cost = resp.usage.cost
    assert isinstance(cost, Decimal) and cost > 0
    assert attributes(span) == {
        # The conventions (1.44.0) have no image operation: their multimodal generation one.
        "gen_ai.operation.name": "generate_content",
        "gen_ai.output.type": "image",
        "gen_ai.provider.name": "fake",
        "gen_ai.request.model": "pic",
        "gen_ai.request.choice.count": 2,
        "gen_ai.usage.input_tokens": 9,
        "gen_ai.usage.output_tokens": 544,
        "gateway.image.size": "512x512",
        "gateway.image.quality": "low",
        "gateway.image.count": 2,
        "gateway.route": "pic",
        "gateway.request_id": resp.gateway.request_id,
        "gateway.account": "default",
        "gateway.provider": "fake",
        "gateway.model": "img-a",
        "gateway.cost_usd": format(cost, "f"),
    }
    assert not any("red fox" in str(v) for s in otel.spans() for v in attributes(s).values())
    (attempt,) = otel.attempt_spans()
    assert attempt.name == "attempt fake/img-a"
    assert attempt.parent is not None and attempt.parent.span_id == span.context.span_id


def test_image_without_reported_usage_reports_no_tokens(otel: Recorded, clock: ManualClock) -> None:
    """DALL-E reports no usage (priced per image): no token counts rather than zeros."""
    gw = media(otel, clock)
    fake(gw).script.respond(usage=TokenUsage())
    gw.images.generate(model="solo-pic", prompt="a cat")
    attrs = attributes(otel.call_span())
    assert not any(k.startswith("gen_ai.usage") for k in attrs)
    assert "gen_ai.request.choice.count" not in attrs  # n = 1: left out, as the conventions ask
    assert otel.points("gen_ai.client.token.usage") == []
    assert len(otel.points("gen_ai.client.operation.duration")) == 1


def test_estimated_embedding_usage_is_marked(otel: Recorded, clock: ManualClock) -> None:
    """Gemini may report no usage: the call is billed at the gateway's estimate, and says so."""
    gw = media(otel, clock)
    adapter = fake(gw)

    def embed(model: str, request: Any) -> EmbeddingResult:
        return EmbeddingResult([[0.6, 0.8]], TokenUsage(input_tokens=3), model, estimated=True)

    adapter.embed = embed  # type: ignore[method-assign]
    gw.embeddings.create(model="solo-vec", input="hello")
    attrs = attributes(otel.call_span())
    assert attrs["gateway.usage.estimated"] is True
    assert attrs["gen_ai.usage.input_tokens"] == 3
    assert attrs["gen_ai.embeddings.dimension.count"] == 2


def test_metrics(otel: Recorded, clock: ManualClock) -> None:
    gw = media(otel, clock)
    fake(gw).script.clock = clock
    fake(gw).script.slow(0.5, usage=TokenUsage(input_tokens=40))  # the embeddings call
    fake(gw).script.slow(2.0, usage=TokenUsage(input_tokens=9, output_tokens=272))
    vectors = gw.embeddings.create(model="vec", input="hello")
    images = gw.images.generate(model="pic", prompt="a red fox")

    embedding_attrs = {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.provider.name": "fake",
        "gen_ai.request.model": "vec",
        "gen_ai.response.model": "embed-a",
    }
    image_attrs = {
        "gen_ai.operation.name": "generate_content",
        "gen_ai.provider.name": "fake",
        "gen_ai.request.model": "pic",
    }
    tokens = {
        (a["gen_ai.operation.name"], a["gen_ai.token.type"]): (a, p)
        for a, p in otel.points("gen_ai.client.token.usage")
    }
    assert sorted(tokens) == [
        ("embeddings", "input"),  # no output tokens for embeddings
        ("generate_content", "input"),
        ("generate_content", "output"),
    ]
    attrs, point = tokens["embeddings", "input"]
    assert attrs == {**embedding_attrs, "gen_ai.token.type": "input"} and point.sum == 40
    attrs, point = tokens["generate_content", "output"]
    assert attrs == {**image_attrs, "gen_ai.token.type": "output"} and point.sum == 272
    assert tokens["generate_content", "input"][1].sum == 9

    durations = {a["gen_ai.operation.name"]: (a, p) for a, p in otel.points(_DURATION)}
    assert durations["embeddings"][0] == embedding_attrs
    assert durations["embeddings"][1].sum == pytest.approx(0.5)
    assert durations["generate_content"][0] == image_attrs
    assert durations["generate_content"][1].sum == pytest.approx(2.0)

    spent = {a["gateway.model"]: (a, p) for a, p in otel.points("gateway.cost")}
    assert spent["embed-a"][0] == {
        "gen_ai.provider.name": "fake",
        "gateway.provider": "fake",
        "gateway.model": "embed-a",
        "gateway.account": "default",
    }
    assert spent["embed-a"][1].value == pytest.approx(float(vectors.usage.cost))
    assert spent["img-a"][1].value == pytest.approx(float(images.usage.cost))


_DURATION = "gen_ai.client.operation.duration"


# -- fallback and errors --------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["embeddings", "images"])
def test_fallback_has_two_attempt_spans(otel: Recorded, clock: ManualClock, operation: str) -> None:
    gw = media(otel, clock)
    fake(gw).script.fail(503)  # the first target fails; the second answers
    if operation == "embeddings":
        resp = gw.embeddings.create(model="vec", input="hello")
    else:
        resp = gw.images.generate(model="pic", prompt="a cat")
    assert resp.gateway.provider == "backup"

    call = otel.call_span()
    first, answer = sorted_attempts(otel)
    model = "embed-a" if operation == "embeddings" else "img-a"
    assert (first.name, answer.name) == (f"attempt fake/{model}", f"attempt backup/{model}")
    assert all(s.parent and s.parent.span_id == call.context.span_id for s in (first, answer))
    assert attributes(first) == {
        "gateway.attempt.provider": "fake",
        "gateway.attempt.model": model,
        "gateway.attempt.number": 1,
        "gateway.attempt.retry": False,
        "gateway.attempt.outcome": "error",
        "error.type": "ProviderUnavailable",
        "http.response.status_code": 503,
    }
    assert first.status.status_code is StatusCode.ERROR
    assert attributes(answer)["gateway.attempt.outcome"] == "ok"
    assert attributes(answer)["gateway.attempt.number"] == 2
    attrs = attributes(call)
    assert attrs["gen_ai.provider.name"] == "backup"
    assert (attrs["gateway.provider"], attrs["gateway.model"]) == ("backup", model)
    assert "error.type" not in attrs and call.status.status_code is StatusCode.UNSET


@pytest.mark.parametrize("operation", ["embeddings", "images"])
def test_error_span_and_metrics(otel: Recorded, clock: ManualClock, operation: str) -> None:
    gw = media(otel, clock)
    fake(gw).script.fail(401)  # not a fallback trigger: raised at once
    with pytest.raises(AuthenticationFailed):
        if operation == "embeddings":
            gw.embeddings.create(model="vec", input="hello")
        else:
            gw.images.generate(model="pic", prompt="a cat")

    call = otel.call_span()
    attrs = attributes(call)
    assert call.name == f"{operation} {'vec' if operation == 'embeddings' else 'pic'}"
    assert call.status.status_code is StatusCode.ERROR
    assert call.status.description == "AuthenticationFailed"
    assert attrs["error.type"] == "AuthenticationFailed"
    assert attrs["gen_ai.provider.name"] == "fake"
    assert not any(k.startswith(("gen_ai.usage", "gen_ai.response")) for k in attrs)
    assert "gateway.cost_usd" not in attrs
    (attempt,) = otel.attempt_spans()
    assert attributes(attempt)["error.type"] == "AuthenticationFailed"
    ((metric_attrs, _),) = otel.points(_DURATION)
    assert metric_attrs["error.type"] == "AuthenticationFailed"
    assert otel.points("gen_ai.client.token.usage") == []
    assert otel.points("gateway.cost") == []


def test_refused_before_any_provider(otel: Recorded, clock: ManualClock) -> None:
    gw = media(otel, clock)
    gw.credits.account("broke").grant(Decimal("0.000000001"))
    with pytest.raises(InsufficientCredits):
        gw.images.generate(model="solo-pic", prompt="a cat", account="broke")
    call = otel.call_span()
    assert call.attributes["error.type"] == "InsufficientCredits"
    assert call.attributes["gateway.account"] == "broke"
    assert otel.attempt_spans() == []


def test_attempt_span_is_current_while_the_provider_is_called(
    otel: Recorded, clock: ManualClock
) -> None:
    gw = media(otel, clock)
    seen: list[int] = []
    adapter = fake(gw)
    original = adapter.generate_images

    def generate_images(model: str, request: Any) -> Any:
        seen.append(trace.get_current_span().get_span_context().span_id)
        return original(model, request)

    adapter.generate_images = generate_images  # type: ignore[method-assign]
    gw.images.generate(model="pic", prompt="a cat")
    (attempt,) = otel.attempt_spans()
    assert seen == [attempt.context.span_id]


def test_a_telemetry_failure_does_not_fail_the_call(
    otel: Recorded, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    gw = media(otel, clock)
    gw._core.telemetry.cost = None  # a broken instrument: recording the cost raises
    resp = gw.embeddings.create(model="vec", input="hello")
    assert resp.data[0].embedding
    assert "recording telemetry failed" in caplog.text


# -- async ----------------------------------------------------------------------------------


async def test_async_calls(otel: Recorded, clock: ManualClock) -> None:
    agw = media(otel, clock, AsyncGateway)
    fake(agw).script.fail(503)
    resp = await agw.embeddings.create(model="vec", input="hello", dimensions=4)
    assert resp.gateway.provider == "backup"
    call = otel.call_span()
    assert call.name == "embeddings vec"
    assert call.attributes["gen_ai.embeddings.dimension.count"] == 4
    assert call.attributes["gateway.cost_usd"] == format(resp.usage.cost, "f")
    assert len(otel.attempt_spans()) == 2

    otel.exporter.clear()
    images = await agw.images.generate(model="pic", prompt="a cat")
    assert otel.call_span().attributes["gateway.image.count"] == len(images.data or ())

    otel.exporter.clear()
    fake(agw).script.fail(401)
    with pytest.raises(AuthenticationFailed):
        await agw.images.generate(model="pic", prompt="a cat")
    assert otel.call_span().attributes["error.type"] == "AuthenticationFailed"
    await agw.close()


# -- the null object and the server ---------------------------------------------------------


def test_off_a_media_call_gets_the_null_trace(
    clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway._images
    from gateway._media import run

    seen: list[CallTrace] = []

    def spy(core: Any, call: MediaCall, send: Any, price: Any) -> Any:
        seen.append(call.trace)
        return run(core, call, send, price)

    monkeypatch.setattr(gateway._images, "run", spy)
    gw = Gateway(config={"providers": {"fake": {}}}, clock=clock)
    assert gw._core.telemetry is NO_TELEMETRY
    assert gw.images.generate(model="fake/img-a", prompt="a cat").data
    assert seen == [NULL_TRACE]


async def test_server_passes_incoming_traceparent_to_media_calls() -> None:
    from gateway.server import create_app
    from gateway.telemetry._otel import OpenTelemetry
    from tests.server.test_app import NO_CREDITS, call

    recorded = Recorded.new()
    app = create_app({**NO_CREDITS, "telemetry": {"opentelemetry": True}})
    gw = app.state.server.gateway
    gw._core.telemetry = OpenTelemetry(  # this test's providers, not the global ones
        gw.config,
        gw._core.clock,
        tracer_provider=recorded.tracer_provider,
        meter_provider=recorded.meter_provider,
    )
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    for path, body in (
        ("/v1/embeddings", {"model": "r", "input": "hello"}),
        ("/v1/images/generations", {"model": "r", "prompt": "a cat"}),
    ):
        answer = await call(app, "POST", path, json=body, headers=headers)
        assert answer.status_code == 200, answer.text
    calls = [s for s in recorded.spans() if s.kind is SpanKind.CLIENT]
    assert [s.name for s in calls] == ["embeddings r", "images r"]
    for span in calls:
        assert span.context.trace_id == int(trace_id, 16)
        assert span.parent is not None and span.parent.span_id == 0x00F067AA0BA902B7
    await app.state.server.close()
