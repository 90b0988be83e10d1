"""``mock_providers`` answers each provider's batch endpoints: ``gw.batches`` runs against mocked
OpenAI, Anthropic and Gemini through the real SDKs and adapters, paced by the mock's clock,
each item answered as a chat call to the mock, ``mock.<provider>.batch_script`` deciding which
items error or expire; the money through the credit account."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway import AsyncGateway, Gateway
from gateway.errors import InvalidRequest
from gateway.providers import _gemini_batch
from gateway.providers._fake_batch import FAKE_ITEM_SECONDS
from gateway.providers.base import TokenUsage
from gateway.testing import BatchScript, ManualClock, MockProviders, mock_providers
from tests.conftest import CANARY_KEY

D = Decimal
MODELS = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-sonnet-4-6",
    "gemini": "gemini-2.5-flash",
}
#: USD per 1M tokens; the batch rate is half.
PRICES = {"input": "2.00", "output": "8.00"}
USAGE = TokenUsage(input_tokens=1000, output_tokens=200)
#: One item at the batch rate: (1000 × 2 + 200 × 8) / 1M / 2.
ITEM_COST = D("0.0018")
#: Each provider's own word for a batch that is running / was cancelled / expired.
RUNNING = {"openai": "in_progress", "anthropic": "in_progress", "gemini": "JOB_STATE_RUNNING"}
EXPIRED = {"openai": "expired", "anthropic": "ended", "gemini": "JOB_STATE_EXPIRED"}
CANCELLED = {"openai": "cancelled", "anthropic": "ended", "gemini": "JOB_STATE_CANCELLED"}


def config(tmp_path: Path, provider: str) -> dict[str, Any]:
    target = f"{provider}/{MODELS[provider]}"
    return {
        "providers": {provider: {"api_key": CANARY_KEY}},
        "routes": {"bulk": {"targets": [target]}},
        "credits": {"store": f"sqlite:///{tmp_path / 'credits.db'}"},
        "pricing": {target: PRICES},
    }


def requests(n: int) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"q{i}",
            "body": {"messages": [{"role": "user", "content": f"question {i}"}], "max_tokens": 50},
        }
        for i in range(n)
    ]


@pytest.fixture(params=list(MODELS))
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def mock(clock: ManualClock, provider: str) -> Iterator[MockProviders]:
    with mock_providers(clock) as active:
        active[provider].default(text="answer", usage=USAGE)
        yield active


@pytest.fixture
def gw(tmp_path: Path, provider: str, clock: ManualClock, mock: MockProviders) -> Iterator[Gateway]:
    with Gateway(config=config(tmp_path, provider), clock=clock) as gateway:
        gateway.credits.grant(D("1"))
        yield gateway


def test_one_scripted_error_of_three_bills_exactly_two_items_at_half_price(
    provider: str, clock: ManualClock, mock: MockProviders, gw: Gateway
) -> None:
    mock[provider].batch_script.error("q1", "max_tokens is too large")
    batch = gw.batches.create(model="bulk", requests=requests(3), tags={"job": "nightly"})
    assert (batch.status, batch.provider) == (
        "pending" if provider != "anthropic" else "running",
        provider,
    )
    assert gw.credits.balance().held > 0
    (sent,) = mock[provider].batches
    assert sent.id == batch.provider_batch_id and sent.model == MODELS[provider]
    assert [custom_id for custom_id, _ in sent.requests] == ["q0", "q1", "q2"]

    clock.advance(FAKE_ITEM_SECONDS)  # the first item has finished
    running = gw.batches.retrieve(batch.id)
    assert (running.status, running.provider_status) == ("running", RUNNING[provider])
    clock.advance(2 * FAKE_ITEM_SECONDS)  # all three have
    ended = gw.batches.retrieve(batch.id)
    assert ended.status == "ended"
    assert (ended.counts["succeeded"], ended.counts["errored"]) == (2, 1)

    items = list(gw.batches.results(batch.id))

    assert [(i.custom_id, i.outcome, i.cost) for i in items] == [
        ("q0", "succeeded", ITEM_COST),
        ("q1", "errored", D(0)),
        ("q2", "succeeded", ITEM_COST),
    ]
    assert items[1].response is None and "max_tokens is too large" in (items[1].error or "")
    answer = items[0].response
    assert answer is not None and answer.usage is not None
    assert answer.choices[0].message.content == "answer" and answer.usage.cost == ITEM_COST
    balance = gw.credits.balance()
    assert balance.held == 0 and balance.available == D("1") - 2 * ITEM_COST
    rows = gw.credits.usage(group_by="operation")
    assert [(r.group["operation"], r.requests, r.cost) for r in rows] == [
        ("batch", 2, 2 * ITEM_COST)
    ]


def test_an_expired_batch_bills_the_items_finished_before_it_expired(
    provider: str, clock: ManualClock, mock: MockProviders, gw: Gateway
) -> None:
    mock[provider].batch_script.expires_after(1.5 * FAKE_ITEM_SECONDS)
    batch = gw.batches.create(model="bulk", requests=requests(3))
    clock.advance(2 * FAKE_ITEM_SECONDS)
    ended = gw.batches.retrieve(batch.id)
    assert (ended.status, ended.provider_status) == ("ended", EXPIRED[provider])
    assert (ended.counts["succeeded"], ended.counts["expired"]) == (1, 2)

    items = list(gw.batches.results(batch.id))

    assert [(i.outcome, i.cost) for i in items] == [
        ("succeeded", ITEM_COST),
        ("expired", 0),
        ("expired", 0),
    ]
    balance = gw.credits.balance()
    assert balance.held == 0 and balance.available == D("1") - ITEM_COST


def test_a_cancelled_batch_bills_only_the_items_finished_before_the_cancel(
    provider: str, clock: ManualClock, mock: MockProviders, gw: Gateway
) -> None:
    batch = gw.batches.create(model="bulk", requests=requests(3))
    clock.advance(1.5 * FAKE_ITEM_SECONDS)
    cancelling = gw.batches.cancel(batch.id)
    if provider == "gemini":  # Gemini's cancel answers nothing: the adapter polls at once
        assert (cancelling.status, cancelling.provider_status) == ("ended", CANCELLED[provider])
    else:
        assert cancelling.status == "running"
        assert cancelling.provider_status in ("cancelling", "canceling")
    clock.advance(10 * FAKE_ITEM_SECONDS)  # what had not finished never runs

    items = list(gw.batches.results(batch.id))

    assert [(i.outcome, i.cost) for i in items] == [
        ("succeeded", ITEM_COST),
        ("cancelled", 0),
        ("cancelled", 0),
    ]
    assert gw.batches.retrieve(batch.id).provider_status == CANCELLED[provider]
    balance = gw.credits.balance()
    assert balance.held == 0 and balance.available == D("1") - ITEM_COST


def test_collecting_twice_charges_once(
    provider: str, tmp_path: Path, clock: ManualClock, mock: MockProviders, gw: Gateway
) -> None:
    batch = gw.batches.create(model="bulk", requests=requests(2))
    clock.advance(2 * FAKE_ITEM_SECONDS)
    first = list(gw.batches.results(batch.id))
    again = list(gw.batches.results(batch.id))
    with Gateway(config=config(tmp_path, provider), clock=clock) as other:
        third = list(other.batches.results(batch.id))

    assert [i.cost for i in first] == [i.cost for i in again] == [i.cost for i in third]
    assert [i.cost for i in first] == [ITEM_COST, ITEM_COST]
    assert [i.response.id for i in first if i.response] == [
        i.response.id for i in third if i.response
    ]
    assert gw.credits.balance().available == D("1") - 2 * ITEM_COST


def test_results_before_the_batch_has_ended_are_refused_and_charge_nothing(
    provider: str, clock: ManualClock, mock: MockProviders, gw: Gateway
) -> None:
    batch = gw.batches.create(model="bulk", requests=requests(3))
    clock.advance(FAKE_ITEM_SECONDS)
    with pytest.raises(InvalidRequest, match="has not ended"):
        gw.batches.results(batch.id)
    balance = gw.credits.balance()
    assert balance.posted == D("1") and balance.held > 0  # still held, nothing charged


def test_items_are_answered_as_chat_calls_by_the_models_script(
    provider: str, clock: ManualClock, mock: MockProviders, gw: Gateway
) -> None:
    model = mock[provider][MODELS[provider]]
    model.respond("first", usage=USAGE).fail(400, times=1).timeout(times=1)
    mock[provider].batch_script.expire(3)  # by position
    batch = gw.batches.create(model="bulk", requests=requests(5))
    clock.advance(5 * FAKE_ITEM_SECONDS)

    items = list(gw.batches.results(batch.id))

    assert [i.outcome for i in items] == ["succeeded", "errored", "expired", "expired", "succeeded"]
    contents = [i.response.choices[0].message.content for i in items if i.response]
    assert contents == ["first", "answer"]
    assert [i.cost for i in items] == [ITEM_COST, 0, 0, 0, ITEM_COST]
    assert model.pending == []  # the scripted answers were used by the items, in order


def test_the_default_reply_counts_tokens_as_a_chat_call_does(
    provider: str, tmp_path: Path, clock: ManualClock
) -> None:
    with (
        mock_providers(clock) as mock,
        Gateway(config=config(tmp_path, provider), clock=clock) as gw,
    ):
        gw.credits.grant(D("1"))
        chat = gw.chat.completions.create(model="bulk", **requests(1)[0]["body"])
        batch = gw.batches.create(model="bulk", requests=requests(1))
        clock.advance(FAKE_ITEM_SECONDS)
        (item,) = gw.batches.results(batch.id)
    assert item.response is not None and chat.usage is not None and item.response.usage
    assert item.response.choices[0].message.content == chat.choices[0].message.content
    assert item.response.usage.prompt_tokens == chat.usage.prompt_tokens
    assert item.response.usage.completion_tokens == chat.usage.completion_tokens
    assert item.cost * 2 == chat.usage.cost
    assert len(mock[provider].calls) == 1  # batch endpoints are not chat calls


def test_gemini_file_mode_reads_the_uploaded_file_and_answers_in_a_result_file(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_gemini_batch, "INLINE_LIMIT_BYTES", 100)
    with (
        mock_providers(clock) as mock,
        Gateway(config=config(tmp_path, "gemini"), clock=clock) as gw,
    ):
        mock.gemini.default(text="from a file", usage=USAGE)
        mock.gemini.batch_script.error("q0")
        gw.credits.grant(D("1"))
        batch = gw.batches.create(model="bulk", requests=requests(2))
        assert [custom_id for custom_id, _ in mock.gemini.batches[0].requests] == ["q0", "q1"]
        clock.advance(2 * FAKE_ITEM_SECONDS)
        items = list(gw.batches.results(batch.id))
    assert [(i.custom_id, i.outcome, i.cost) for i in items] == [
        ("q0", "errored", 0),
        ("q1", "succeeded", ITEM_COST),
    ]
    assert items[1].response is not None
    assert items[1].response.choices[0].message.content == "from a file"


def test_without_a_clock_a_batch_has_ended_at_its_first_poll(provider: str, tmp_path: Path) -> None:
    with mock_providers() as mock, Gateway(config=config(tmp_path, provider)) as gw:
        mock[provider].default(usage=USAGE)
        gw.credits.grant(D("1"))
        batch = gw.batches.create(model="bulk", requests=requests(2))
        assert gw.batches.retrieve(batch.id).status == "ended"
        assert [i.cost for i in gw.batches.results(batch.id)] == [ITEM_COST, ITEM_COST]


def test_the_async_surface_runs_a_mocked_batch(
    provider: str, tmp_path: Path, clock: ManualClock, mock: MockProviders
) -> None:
    mock[provider].batch_script.error(0)

    async def main() -> list[Any]:
        agw = AsyncGateway(config=config(tmp_path, provider), clock=clock)
        try:
            await agw.credits.grant(D("1"))
            batch = await agw.batches.create(model="bulk", requests=requests(2))
            clock.advance(2 * FAKE_ITEM_SECONDS)
            return await agw.batches.results(batch.id)
        finally:
            await agw.close()

    items = asyncio.run(main())
    assert [(i.outcome, i.cost) for i in items] == [("errored", 0), ("succeeded", ITEM_COST)]


def test_reset_forgets_the_batches_and_the_batch_script(
    provider: str, clock: ManualClock, mock: MockProviders, gw: Gateway
) -> None:
    mock[provider].batch_script.expires_after(5)
    batch = gw.batches.create(model="bulk", requests=requests(1))
    assert len(mock[provider].batches) == 1
    mock.reset()
    assert mock[provider].batches == []
    assert mock[provider].batch_script.expiry_seconds is None
    assert isinstance(mock[provider].batch_script, BatchScript)
    with pytest.raises(InvalidRequest, match="batch"):  # the provider no longer knows it
        gw.batches.retrieve(batch.id)
