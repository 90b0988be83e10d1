"""gw.embeddings through the real SDKs with each provider's wire format mocked: OpenAI's type
with .gateway and usage.cost, exact costs hand-computed from each provider's usage shape (prices
from genai-prices), holds placed before the call, fallback only between targets whose vectors
may mix, refusals before any call, and the request rows' operation."""

from __future__ import annotations

import base64
import json
import struct
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai.types import CreateEmbeddingResponse

from gateway import AsyncGateway, Gateway
from gateway.errors import AllProvidersFailed, ConfigError, InvalidRequest
from gateway.testing.clock import ManualClock
from gateway.testing.wire import gemini_media as gemini_wire
from gateway.testing.wire import openai as openai_wire
from gateway.testing.wire import openai_media as openai_wire_media
from gateway.types import GatewayEmbeddingResponse

D = Decimal
M = Decimal(1_000_000)
OPENAI_URL = openai_wire_media.EMBEDDINGS_URL
BACKUP_URL = "https://backup.example/v1/embeddings"
GEMINI_URL = gemini_wire.batch_embed_url("gemini-embedding-001")

CONFIG = """
providers:
  openai: {api_key: sk-test-openai-0000000000}
  backup: {type: openai, api_key: sk-test-backup-0000000000, base_url: "https://backup.example/v1"}
  gemini: {api_key: gemini-test-key-000000000}
  anthropic: {api_key: sk-ant-test-0000000000000}
  fake: {}
routes:
  embed:                          # two models, declared interchangeable at 1024 dimensions
    targets:
      - {model: openai/text-embedding-3-large, dimensions: 1024}
      - {model: gemini/gemini-embedding-001, dimensions: 1024}
    retry: {attempts: 1}
  small:                          # one model at two OpenAI-compatible endpoints
    targets: [openai/text-embedding-3-small, backup/text-embedding-3-small]
    retry: {attempts: 1}
  smart:                          # a chat route
    targets: [openai/gpt-4o, anthropic/claude-sonnet-4-6]
  mixed:                          # an embedding model and a model of another kind
    targets: [openai/text-embedding-3-small, fake/chat-model]
credits:
  store: sqlite:///STORE
  flush_interval_ms: FLUSH
"""


@pytest.fixture(params=["batched", "immediate"])
def flush_ms(request: pytest.FixtureRequest) -> int:
    return 200 if request.param == "batched" else 0


def make(tmp_path: Path, flush_ms: int, cls: type[Any] = Gateway) -> Any:
    text = CONFIG.replace("STORE", str(tmp_path / "credits.db")).replace("FLUSH", str(flush_ms))
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    with Gateway.from_config(path, clock=ManualClock()) as funder:
        funder.credits.grant(D("10"), note="test")
    return cls.from_config(path, clock=ManualClock())


async def done(gw: Any, tmp_path: Path) -> Gateway:
    """Close ``gw`` (writing what it has pending) and read its account through a sync
    gateway (the async one's account API is awaitable)."""
    if isinstance(gw, AsyncGateway):
        await gw.close()
        return Gateway.from_config(tmp_path / "gateway.yaml", clock=ManualClock())
    return gw  # type: ignore[no-any-return]


def ok(body: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json=body)


def sent(route: Any, n: int = -1) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(route.calls[n].request.content)
    return body


def rows(gw: Any) -> list[Any]:
    return gw.credits.requests()


def holds(gw: Any) -> list[Any]:
    return [e for e in gw.credits.history(limit=1000) if e.kind == "hold"]


async def create(gw: Any, **kwargs: Any) -> GatewayEmbeddingResponse:
    if isinstance(gw, AsyncGateway):
        response: GatewayEmbeddingResponse = await gw.embeddings.create(**kwargs)
        return response
    response = gw.embeddings.create(**kwargs)
    return response


@pytest.fixture(params=[Gateway, AsyncGateway], ids=["sync", "async"])
def client_class(request: pytest.FixtureRequest) -> type[Any]:
    return request.param  # type: ignore[no-any-return]


async def test_openai_embeddings_are_held_then_charged_exactly(
    http_mock: Any, tmp_path: Path, flush_ms: int, client_class: type[Any]
) -> None:
    route = http_mock.post(OPENAI_URL).mock(
        return_value=ok(
            openai_wire_media.embeddings(vectors=[[0.5, 0.25], [-1.0, 0.0]], prompt_tokens=1234)
        )
    )
    gw = make(tmp_path, flush_ms, client_class)
    resp = await create(
        gw, model="openai/text-embedding-3-small", input=["hello world", "bye"], tags={"t": "x"}
    )
    assert isinstance(resp, CreateEmbeddingResponse)
    assert [d.embedding for d in resp.data] == [[0.5, 0.25], [-1.0, 0.0]]
    assert [d.index for d in resp.data] == [0, 1]
    # text-embedding-3-small: $0.02 per 1M input tokens (genai-prices).
    assert resp.usage.prompt_tokens == resp.usage.total_tokens == 1234
    assert resp.usage.cost == 1234 * D("0.02") / M == D("0.00002468")
    assert (resp.gateway.provider, resp.gateway.model) == ("openai", "text-embedding-3-small")
    assert resp.model == "text-embedding-3-small"
    assert sent(route)["input"] == ["hello world", "bye"]
    gw = await done(gw, tmp_path)
    if flush_ms == 0:
        # The hold before the call: the prompt estimate (11 // 3 + 1 + 3 // 3 + 1 = 6 tokens).
        (held,) = holds(gw)
        assert held.held_nanos == 6 * 20  # 6 tokens at 20 nano-dollars each
        assert held.meta["operation"] == "embeddings"
    (row,) = rows(gw)
    assert (row.operation, row.input_tokens, row.output_tokens) == ("embeddings", 1234, 0)
    assert (row.cost, row.tags) == (D("0.00002468"), {"t": "x"})
    assert gw.credits.balance().posted == D("10") - D("0.00002468")
    (usage,) = gw.credits.usage(group_by="operation")
    assert (usage["operation"], usage.requests, usage.cost) == ("embeddings", 1, D("0.00002468"))
    gw.close()


async def test_gemini_embeddings_are_charged_exactly(
    http_mock: Any, tmp_path: Path, client_class: type[Any]
) -> None:
    http_mock.post(GEMINI_URL).mock(
        return_value=ok(gemini_wire.batch_embed_response(vectors=[[0.1, 0.2]], prompt_tokens=20))
    )
    gw = make(tmp_path, 0, client_class)
    resp = await create(gw, model="gemini/gemini-embedding-001", input="hello")
    # gemini-embedding-001: $0.15 per 1M input tokens.
    assert resp.usage.cost == 20 * D("0.15") / M == D("0.000003")
    assert resp.data[0].embedding == [0.1, 0.2]
    gw = await done(gw, tmp_path)
    assert rows(gw)[0].operation == "embeddings"


def test_gemini_embeddings_without_usage_are_charged_the_estimate(
    http_mock: Any, tmp_path: Path
) -> None:
    http_mock.post(GEMINI_URL).mock(
        return_value=ok(gemini_wire.batch_embed_response(vectors=[[1.0]], prompt_tokens=None))
    )
    gw = make(tmp_path, 0)
    resp = gw.embeddings.create(model="gemini/gemini-embedding-001", input="x" * 30)
    assert resp.usage.prompt_tokens == 11  # 30 // 3 + 1, what the hold was
    assert resp.usage.cost == 11 * D("0.15") / M
    (held,) = holds(gw)
    assert D(held.held_nanos) / 10**9 == resp.usage.cost


def test_fallback_between_targets_declared_interchangeable(http_mock: Any, tmp_path: Path) -> None:
    error = openai_wire.server_error(503)
    openai_route = http_mock.post(OPENAI_URL).mock(
        return_value=httpx.Response(error.status, json=error.body)
    )
    gemini_route = http_mock.post(GEMINI_URL).mock(
        return_value=ok(gemini_wire.batch_embed_response(vectors=[[0.5] * 4], prompt_tokens=40))
    )
    gw = make(tmp_path, 0)
    resp = gw.embeddings.create(model="embed", input="the quick brown fox")
    assert sent(openai_route)["dimensions"] == 1024, "the target's declared dimensions"
    assert sent(gemini_route)["requests"][0]["outputDimensionality"] == 1024
    assert [(a.target, a.outcome) for a in resp.gateway.attempts] == [
        ("openai/text-embedding-3-large", "error"),
        ("gemini/gemini-embedding-001", "ok"),
    ]
    assert resp.gateway.model == resp.model == "gemini-embedding-001"
    assert resp.usage.cost == 40 * D("0.15") / M
    (row,) = rows(gw)
    assert (row.provider, row.operation, row.attempts) == ("gemini", "embeddings", 2)
    balance = gw.credits.balance()
    assert (balance.posted, balance.held) == (D("10") - D("0.000006"), 0), "first hold released"


def test_the_callers_dimensions_go_to_every_target(http_mock: Any, tmp_path: Path) -> None:
    route = http_mock.post(OPENAI_URL).mock(
        return_value=ok(openai_wire_media.embeddings(vectors=[[0.5] * 3]))
    )
    gw = make(tmp_path, 0)
    gw.embeddings.create(model="embed", input="x", dimensions=256)
    assert sent(route)["dimensions"] == 256


def test_fallback_between_one_model_at_two_providers(http_mock: Any, tmp_path: Path) -> None:
    error = openai_wire.rate_limit_error()
    http_mock.post(OPENAI_URL).mock(
        return_value=httpx.Response(error.status, json=error.body, headers=error.headers)
    )
    http_mock.post(BACKUP_URL).mock(
        return_value=ok(openai_wire_media.embeddings(vectors=[[1.0]], prompt_tokens=100))
    )
    gw = make(tmp_path, 0)
    resp = gw.embeddings.create(model="small", input="x")
    assert resp.gateway.provider == "backup"
    assert resp.usage.cost == 100 * D("0.02") / M


def test_a_route_of_different_embedding_models_is_refused_at_load(tmp_path: Path) -> None:
    text = """
providers:
  openai: {api_key: k}
  gemini: {api_key: k}
routes:
  embed:
    targets:
      - openai/text-embedding-3-small
      - {model: gemini/gemini-embedding-001, dimensions: 1536}
"""
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        Gateway.from_config(path)
    error = caught.value
    assert (error.line, error.key) == (7, "routes.embed.targets")
    assert "vectors of different models are not comparable" in error.problem
    assert error.fix is not None and "dimensions:" in error.fix


def test_a_mixed_route_is_refused_before_any_call(http_mock: Any, tmp_path: Path) -> None:
    route = http_mock.post(OPENAI_URL).mock(return_value=ok(openai_wire_media.embeddings()))
    gw = make(tmp_path, 0)
    before = gw.credits.history(limit=100)
    with pytest.raises(ConfigError, match="route 'mixed': its targets are different embedding"):
        gw.embeddings.create(model="mixed", input="x")
    assert not route.called
    assert gw.credits.history(limit=100) == before, "nothing held"


def test_claude_cannot_make_embeddings_clear_error_before_any_call(
    http_mock: Any, tmp_path: Path
) -> None:
    chat = http_mock.post(openai_wire.CHAT_COMPLETIONS_URL).mock(return_value=ok({}))
    gw = make(tmp_path, 0)
    before = gw.credits.history(limit=100)
    with pytest.raises(InvalidRequest) as caught:
        gw.embeddings.create(model="anthropic/claude-sonnet-4-6", input="x")
    assert "Anthropic has no embeddings API" in str(caught.value)
    assert "openai/text-embedding-3-small" in str(caught.value), "names what to use instead"
    with pytest.raises(InvalidRequest, match=r"route 'smart'.*'gpt-4o' is not an embedding model"):
        gw.embeddings.create(model="smart", input="x")
    assert not chat.called
    assert gw.credits.history(limit=100) == before


def test_an_unpriced_embedding_model_is_refused_before_any_call(
    http_mock: Any, tmp_path: Path
) -> None:
    route = http_mock.post(OPENAI_URL).mock(return_value=ok(openai_wire_media.embeddings()))
    gw = make(tmp_path, 0)
    with pytest.raises(ConfigError) as caught:
        gw.embeddings.create(model="openai/my-embedding-model", input="x")
    assert "no known price" in caught.value.problem
    assert caught.value.fix is not None and '{input: "0.02"}' in caught.value.fix
    assert not route.called


def test_an_unpriced_embedding_route_is_refused_at_load(tmp_path: Path) -> None:
    text = """
providers:
  openai: {api_key: k}
routes:
  embed: {targets: [openai/my-embedding-model]}
credits: {store: "sqlite://"}
"""
    with pytest.raises(ConfigError, match="no known price") as caught:
        Gateway(text)
    assert caught.value.fix is not None and "USD per 1M input tokens" in caught.value.fix


def test_an_embedding_price_is_not_a_chat_price(tmp_path: Path) -> None:
    """An embedding model's price (input only) does not price a chat call: a chat target
    priced with input alone is refused at load, as an unpriced one is."""
    text = """
providers:
  openai: {api_key: k}
routes:
  smart: {targets: [openai/my-chat-model]}
credits: {store: "sqlite://"}
pricing:
  openai/my-chat-model: {input: "1.00"}
"""
    with pytest.raises(ConfigError, match="its price has no output price"):
        Gateway(text)


def test_base64_encoding_is_openais(http_mock: Any, tmp_path: Path) -> None:
    http_mock.post(OPENAI_URL).mock(
        return_value=ok(openai_wire_media.embeddings(vectors=[[0.5, -2.0, 0.25]]))
    )
    gw = make(tmp_path, 0)
    resp = gw.embeddings.create(
        model="openai/text-embedding-3-small", input="x", encoding_format="base64"
    )
    encoded = resp.data[0].embedding
    assert isinstance(encoded, str)
    assert list(struct.unpack("<3f", base64.b64decode(encoded))) == [0.5, -2.0, 0.25]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input": []}, "input is empty"),
        ({"input": ["a", ""]}, "empty string"),
        ({"input": ["a", [1, 2]]}, "mixes kinds"),
        ({"input": [[1, -2]]}, "non-negative integers"),
        ({"input": 5}, "must be a string or a list"),
        ({"input": "x", "dimensions": 0}, "dimensions must be a positive integer"),
        ({"input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"input": ["x"] * 2049}, "at most 2048"),
    ],
)
def test_bad_input_is_refused_before_any_call(
    http_mock: Any, tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    route = http_mock.post(OPENAI_URL).mock(return_value=ok(openai_wire_media.embeddings()))
    gw = make(tmp_path, 0)
    with pytest.raises(InvalidRequest, match=message):
        gw.embeddings.create(model="openai/text-embedding-3-small", **kwargs)
    assert not route.called


def test_every_target_failing_is_all_providers_failed(http_mock: Any, tmp_path: Path) -> None:
    error = openai_wire.server_error(500)
    http_mock.post(OPENAI_URL).mock(return_value=httpx.Response(error.status, json=error.body))
    http_mock.post(GEMINI_URL).mock(return_value=httpx.Response(500, json={}))
    gw = make(tmp_path, 0)
    with pytest.raises(AllProvidersFailed):
        gw.embeddings.create(model="embed", input="x")
    assert rows(gw) == []
    balance = gw.credits.balance()
    assert (balance.posted, balance.held) == (D("10"), 0), "every hold released"


def test_without_credits_the_cost_is_priced_not_charged(http_mock: Any) -> None:
    http_mock.post(OPENAI_URL).mock(
        return_value=ok(openai_wire_media.embeddings(vectors=[[1.0]], prompt_tokens=500))
    )
    gw = Gateway({"providers": {"openai": {"api_key": "k"}}})
    resp = gw.embeddings.create(model="openai/text-embedding-3-large", input="x")
    assert resp.usage.cost == 500 * D("0.13") / M
