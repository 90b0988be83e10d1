"""Embeddings and images made with an API key (what ``/v1/embeddings`` and
``/v1/images/generations`` do for a caller): paid from the key's account, within its
allow-list, rpm and spend limits, refused before any provider is contacted; sync and async."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway import AsyncGateway, Gateway
from gateway.errors import InvalidRequest, KeyNotAllowed, KeyRateLimited, SpendLimitExceeded
from gateway.providers.fake import FakeAdapter
from gateway.testing.clock import ManualClock

D = Decimal


def config(tmp_path: Path) -> dict[str, Any]:
    return {
        "providers": {"openai": {"type": "fake"}},
        "routes": {
            "embed": {"targets": ["openai/text-embedding-3-small"]},
            "draw": {"targets": ["openai/dall-e-3"]},
        },
        "credits": {"store": f"sqlite:///{tmp_path / 'credits.db'}"},
        "pricing": {"openai/dall-e-3": {"per_image": {"1024x1024": "0.04"}}},
    }


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def gw(tmp_path: Path, clock: ManualClock) -> Iterator[Gateway]:
    gw = Gateway(config=config(tmp_path), clock=clock)
    gw.credits.grant(D("100"))
    gw.credits.account("team-b").grant(D("1"))
    yield gw
    gw.close()


def calls(gw: Gateway | AsyncGateway) -> int:
    adapter = gw.adapter("openai")
    assert isinstance(adapter, FakeAdapter)
    return len(adapter.calls)


def test_media_calls_with_a_key_are_paid_by_the_keys_account(gw: Gateway) -> None:
    key = gw.keys.create(account="team-b", name="ci").info
    image = gw.images.generate(model="draw", prompt="a fox", api_key=key)
    vectors = gw.embeddings.create(model="embed", input="a" * 40, api_key=key)
    assert image.usage is not None and image.usage.cost == D("0.04")
    assert vectors.usage.cost == 10 * D("0.02") / 10**6
    assert gw.credits.account("team-b").balance().available == D("1") - D("0.04") - D("2E-7")
    assert gw.credits.balance().available == D("100")
    rows = gw.credits.account("team-b").requests()
    assert [r.operation for r in rows] == ["images", "embeddings"]
    with pytest.raises(InvalidRequest, match="pays from account 'team-b'"):
        gw.images.generate(model="draw", prompt="x", account="default", api_key=key)


def test_a_key_may_make_media_only_on_its_routes(gw: Gateway) -> None:
    key = gw.keys.create(account="default", name="ci", routes=["embed"]).info
    gw.embeddings.create(model="embed", input="x", api_key=key)
    before = calls(gw)
    with pytest.raises(KeyNotAllowed, match="may call: embed"):
        gw.images.generate(model="draw", prompt="x", api_key=key)
    with pytest.raises(KeyNotAllowed):
        gw.embeddings.create(model="openai/text-embedding-3-small", input="x", api_key=key)
    assert calls(gw) == before, "no provider contacted"


def test_a_keys_rpm_counts_media_calls(gw: Gateway, clock: ManualClock) -> None:
    key = gw.keys.create(account="default", name="ci", rpm=2).info
    clock.advance(50)
    gw.embeddings.create(model="embed", input="x", api_key=key)
    gw.images.generate(model="draw", prompt="x", api_key=key)
    with pytest.raises(KeyRateLimited):
        gw.embeddings.create(model="embed", input="x", api_key=key)
    assert calls(gw) == 2


def test_a_keys_spend_limit_holds_the_images_worst_case(gw: Gateway) -> None:
    key = gw.keys.create(account="default", name="ci", daily_limit=D("0.10")).info
    gw.images.generate(model="draw", prompt="x", n=2, api_key=key)  # $0.08
    with pytest.raises(SpendLimitExceeded) as info:
        gw.images.generate(model="draw", prompt="x", api_key=key)  # $0.04 more: over $0.10
    assert info.value.api_key == key.id
    assert calls(gw) == 1


async def test_async_media_calls_with_a_key(tmp_path: Path, clock: ManualClock) -> None:
    with Gateway(config=config(tmp_path), clock=clock) as setup:
        setup.credits.account("team-b").grant(D("1"))
        key = setup.keys.create(account="team-b", name="ci", rpm=1).info
    agw = AsyncGateway(config=config(tmp_path), clock=clock)
    image = await agw.images.generate(model="draw", prompt="a fox", api_key=key)
    assert image.usage is not None and image.usage.cost == D("0.04")
    with pytest.raises(KeyRateLimited):
        await agw.embeddings.create(model="embed", input="x", api_key=key)
    balance = await agw.credits.account("team-b").balance()
    assert balance.available == D("0.96")
    await agw.close()
