"""gw.batches on the fake provider, on both stores: holds at the batch rate before anything is
sent, each item settled once at half price whoever collects, errored and cancelled items free,
status paced by the injected clock, and the async twin."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from gateway import AsyncGateway, Gateway
from gateway.errors import InsufficientCredits, InvalidRequest
from gateway.providers._fake_batch import FAKE_ITEM_SECONDS
from gateway.testing.clock import ManualClock

D = Decimal
M = D(1_000_000)


def config(store_url: str) -> dict[str, Any]:
    return {
        "providers": {"fake": {}},
        "routes": {"cheap": {"targets": ["fake/small"]}},
        "credits": {"store": store_url, "hold_ttl_s": 60},
        "pricing": {"fake/small": {"input": "1", "output": "2"}},
    }


def requests(n: int) -> list[dict[str, Any]]:
    return [
        {"custom_id": f"q{i}", "body": {"messages": [{"role": "user", "content": f"hi {i}"}]}}
        for i in range(n)
    ]


def full_cost(item: Any) -> Decimal:
    usage = item.response.usage
    return (usage.prompt_tokens * D(1) + usage.completion_tokens * D(2)) / M


def test_a_batch_with_one_errored_item_bills_two_items_at_half_price(store_url: str) -> None:
    clock = ManualClock()
    with Gateway(config=config(store_url), clock=clock) as gw:
        gw.credits.grant(D("1"))
        batch = gw.batches.create(model="cheap", requests=requests(3), tags={"job": "nightly"})
        assert batch.status == "pending" and batch.counts["processing"] == 3
        held = gw.credits.balance().held
        assert held > 0  # every item's worst case, before anything ran
        clock.advance(FAKE_ITEM_SECONDS)
        assert gw.batches.retrieve(batch.id).status == "running"  # the first item ran
        gw.adapter("fake").script.fail(400)  # the second item to run errors
        clock.advance(2 * FAKE_ITEM_SECONDS)
        ended = gw.batches.retrieve(batch.id)
        assert ended.status == "ended" and ended.provider_status == "completed"
        assert ended.counts["succeeded"] == 2 and ended.counts["errored"] == 1
        items = list(gw.batches.results(batch.id))
        assert [i.outcome for i in items] == ["succeeded", "errored", "succeeded"]
        assert items[1].cost == 0 and items[1].response is None and items[1].error
        for item in (items[0], items[2]):
            assert item.cost == full_cost(item) / 2
            assert item.response.usage.cost == item.cost
        balance = gw.credits.balance()
        assert balance.held == 0
        assert balance.available == D("1") - items[0].cost - items[2].cost
        rows = gw.credits.usage(group_by="operation")
        assert [(r.group["operation"], r.requests, r.cost) for r in rows] == [
            ("batch", 2, items[0].cost + items[2].cost)
        ]


def test_collecting_twice_and_from_another_gateway_charges_once(store_url: str) -> None:
    clock = ManualClock()
    with Gateway(config=config(store_url), clock=clock) as gw:
        gw.credits.grant(D("1"))
        batch = gw.batches.create(model="fake/small", requests=requests(2))
        clock.advance(10 * FAKE_ITEM_SECONDS)
        first = list(gw.batches.results(batch.id))
        again = list(gw.batches.results(batch.id))
        with Gateway(config=config(store_url), clock=clock) as other:
            third = list(other.batches.results(batch.id))
            assert [b.id for b in other.batches.list()] == [batch.id]
        charged = sum(i.cost for i in first)
        assert charged > 0
        assert [i.cost for i in again] == [i.cost for i in first] == [i.cost for i in third]
        assert gw.credits.balance().available == D("1") - charged


def test_a_cancelled_batch_bills_only_finished_items(store_url: str) -> None:
    clock = ManualClock()
    with Gateway(config=config(store_url), clock=clock) as gw:
        gw.credits.grant(D("1"))
        batch = gw.batches.create(model="cheap", requests=requests(3))
        clock.advance(FAKE_ITEM_SECONDS)  # the first item is done
        cancelled = gw.batches.cancel(batch.id)
        assert cancelled.status == "ended" and cancelled.provider_status == "cancelled"
        assert cancelled.counts["succeeded"] == 1 and cancelled.counts["cancelled"] == 2
        clock.advance(10 * FAKE_ITEM_SECONDS)
        items = list(gw.batches.results(batch.id))
        assert [i.outcome for i in items] == ["succeeded", "cancelled", "cancelled"]
        assert items[0].cost > 0 and items[1].cost == items[2].cost == 0
        balance = gw.credits.balance()
        assert balance.held == 0 and balance.available == D("1") - items[0].cost


def test_a_batch_the_account_cannot_cover_is_refused_before_anything_is_sent(
    store_url: str,
) -> None:
    with Gateway(config=config(store_url), clock=ManualClock()) as gw:
        gw.credits.grant(D("0.001"))  # 3 items of up to 4096 output tokens at $1/M: ~$0.006
        with pytest.raises(InsufficientCredits) as refused:
            gw.batches.create(model="cheap", requests=requests(3))
        # The refusal is about the whole batch, with nothing of it counted as on hold.
        message = str(refused.value)
        assert "has $0.001 available" in message and "$0.00 on hold" in message, message
        assert "a batch of 3 items at fake/" in message, message
        assert gw.batches.list() == []
        assert gw.credits.balance().held == 0
        assert gw.adapter("fake").calls == []  # type: ignore[attr-defined]


def test_results_before_the_end_and_bad_requests_are_clear_errors(store_url: str) -> None:
    with Gateway(config=config(store_url), clock=ManualClock()) as gw:
        gw.credits.grant(D("1"))
        batch = gw.batches.create(model="cheap", requests=requests(1))
        with pytest.raises(InvalidRequest, match="has not ended"):
            gw.batches.results(batch.id)
        with pytest.raises(InvalidRequest, match="used twice"):
            gw.batches.create(model="cheap", requests=requests(1) + requests(1))
        bad = [{"custom_id": "x", "body": {"messages": [], "max_tokens": 5}}]
        with pytest.raises(InvalidRequest, match=r"requests\[0\] \('x'\)"):
            gw.batches.create(model="cheap", requests=bad)
        with pytest.raises(InvalidRequest, match="no batch"):
            gw.batches.retrieve("batch_nope")
        assert [b.id for b in gw.batches.list()] == [batch.id]


def test_the_async_surface_runs_the_same_batch(store_url: str) -> None:
    clock = ManualClock()

    async def main() -> list[Any]:
        agw = AsyncGateway(config=config(store_url), clock=clock)
        try:
            await agw.credits.grant(D("1"))
            batch = await agw.batches.create(model="cheap", requests=requests(2))
            clock.advance(2 * FAKE_ITEM_SECONDS)
            assert (await agw.batches.retrieve(batch.id)).status == "ended"
            assert [b.id for b in await agw.batches.list()] == [batch.id]
            return await agw.batches.results(batch.id)
        finally:
            await agw.close()

    items = asyncio.run(main())
    assert [i.outcome for i in items] == ["succeeded", "succeeded"]
    assert all(i.cost == full_cost(i) / 2 for i in items)
