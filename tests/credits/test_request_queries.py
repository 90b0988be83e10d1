"""Reads that never load every call (gateway/credits/request_queries.py), on both stores:
a page of calls keyed on (time, id), sums per day / provider / model and per tag that equal
``usage()`` to the nano-dollar, and ``history(kinds=...)`` filtered by the store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from gateway import Gateway
from gateway.providers.base import TokenUsage
from gateway.providers.fake import FakeAdapter
from gateway.testing.clock import ManualClock

HI = [{"role": "user", "content": "hi"}]
# One hour west of UTC, so that calls in the evening (UTC) fall on the next day only in UTC.
TZ = "Atlantic/Azores"


def config(url: str) -> dict[str, Any]:
    return {
        "providers": {"fake": {}, "other": {"type": "fake"}},
        "routes": {
            "a": {"targets": ["fake/m"], "retry": {"attempts": 1}},
            "b": {"targets": ["other/n"], "retry": {"attempts": 1}},
        },
        "credits": {"store": url, "timezone": TZ, "flush_interval_ms": 0},
        "pricing": {
            "fake/m": {"input": "1.000000001", "output": "3"},
            "other/n": {"input": "7", "output": "0.3"},
        },
    }


@pytest.fixture
def gw(store_url: str) -> Iterator[Gateway]:
    clock = ManualClock()
    gateway = Gateway(config=config(store_url), clock=clock)
    for name in ("fake", "other"):
        adapter = gateway.adapter(name)
        assert isinstance(adapter, FakeAdapter)
        adapter.script.respond("ok", usage=TokenUsage(13, 7), times=10_000)
    gateway.credits.grant(Decimal("100"))
    gateway.credits.grant(Decimal("5"))
    # 40 calls over 4 days, one every 2.4 hours, on two routes, with tags (some without).
    for n in range(40):
        tags = {"team": ["x", "y", "=1+1"][n % 3]} if n % 4 else {"user": str(n % 2)}
        gateway.chat.completions.create(
            model="ab"[n % 2], messages=HI, max_tokens=10 + n, tags=tags
        )
        clock.advance(2.4 * 3600)
    yield gateway
    gateway.close()


def test_pages_walk_every_call_newest_first_once(gw: Gateway) -> None:
    everything = gw.credits.requests()
    seen = []
    page = gw.credits.requests_page(limit=7)
    while True:
        seen += page.rows
        if page.next is None:
            break
        page = gw.credits.requests_page(limit=7, before=page.next)
    assert seen == list(reversed(everything))


def test_filters_select_exactly_what_usage_counts(gw: Gateway) -> None:
    page = gw.credits.requests_page(model="other/n", tag=("team", "=1+1"), limit=100)
    expected = [
        r
        for r in gw.credits.requests(tags={"team": "=1+1"})
        if (r.provider, r.model) == ("other", "n")
    ]
    assert page.rows == list(reversed(expected)) and page.next is None and expected
    since, until = date(2026, 1, 16), date(2026, 1, 17)
    day = gw.credits.requests_page(since=since, until=until, route="a", limit=100)
    assert day.rows == [
        r for r in reversed(gw.credits.requests(since=since, until=until)) if r.route == "a"
    ]
    assert gw.credits.requests_page(status="incomplete").rows == []


def test_the_usage_report_equals_usage_by_day_provider_model_and_each_tag(gw: Gateway) -> None:
    since, until = date(2026, 1, 16), date(2026, 1, 21)
    report = gw.credits.usage_report(since=since, until=until)
    by_day = gw.credits.usage(group_by=["day", "provider", "model"], since=since, until=until)
    assert report.daily == by_day
    assert {r["day"] for r in report.daily} == {f"2026-01-{d}" for d in range(16, 20)}
    assert sorted(report.tags) == ["team", "user"]
    for name, rows in report.tags.items():
        assert rows == gw.credits.usage(group_by=f"tag:{name}", since=since, until=until)
        assert sum(r.cost_nanos for r in rows) == sum(r.cost_nanos for r in by_day)
    everything = gw.credits.usage_report(since=date(2026, 1, 1), until=date(2026, 2, 1))
    total = sum(r.cost_nanos for r in everything.daily)
    assert total == sum(r.cost_nanos for r in gw.credits.requests()) > 0
    empty = gw.credits.usage_report(since=since, until=since)
    assert empty.daily == [] and empty.tags == {}


def test_history_by_kind_is_filtered_by_the_store(gw: Gateway) -> None:
    grants = gw.credits.history(kinds=["grant"])
    assert [e.amount for e in grants] == [Decimal("5"), Decimal("100")]
    assert gw.credits.history(kinds=["grant"], limit=1) == grants[:1]
    assert gw.credits.history(kinds=[]) == []
    every = gw.credits.history()
    wanted = {"grant", "usage"}
    assert gw.credits.history(kinds=sorted(wanted)) == [e for e in every if e.kind in wanted]


@pytest.mark.parametrize(
    "bad",
    [{"limit": 0}, {"limit": 1001}, {"before": "12"}, {"model": "m"}, {"tag": ("team",)}],
)
def test_bad_page_arguments_are_refused(gw: Gateway, bad: dict[str, Any]) -> None:
    from gateway.errors import InvalidCreditsInput

    with pytest.raises(InvalidCreditsInput):
        gw.credits.requests_page(**bad)


def test_a_migration_numbered_below_the_newest_still_reaches_a_database(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migrations are numbered as they are written (004 and 005 come from other branches
    than 006), so a database can have 006 and lack 003: it gets 003 on first use."""
    from gateway.credits import sqlite_store
    from gateway.credits.store import migrate

    if store_url.startswith("postgresql"):
        from gateway.credits import postgres_store as module
    else:
        module = sqlite_store  # type: ignore[assignment]
    without_003 = tuple(m for m in module.MIGRATIONS if m[0] != 3)
    with monkeypatch.context() as patch:
        patch.setattr(module, "MIGRATIONS", without_003)
        migrate(store_url)
    gw = Gateway(config=config(store_url), clock=ManualClock())
    try:
        gw.credits.grant(Decimal("1"))
        assert gw.keys.create(account="default", name="k").info.name == "k"  # api_keys exists
    finally:
        gw.close()
