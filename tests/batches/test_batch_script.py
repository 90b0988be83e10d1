"""gateway.testing.BatchScript on the fake provider: items scripted to error or expire, a batch
that expires part way, and what each costs (nothing) on the credit account."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway import Gateway
from gateway.providers._fake_batch import FAKE_ITEM_SECONDS
from gateway.testing import BatchScript, ManualClock

D = Decimal


def config(tmp_path: Path) -> dict[str, Any]:
    return {
        "providers": {"fake": {}},
        "routes": {"cheap": {"targets": ["fake/small"]}},
        "credits": {"store": f"sqlite:///{tmp_path / 'credits.db'}"},
        "pricing": {"fake/small": {"input": "1", "output": "2"}},
    }


def requests(n: int) -> list[dict[str, Any]]:
    return [
        {"custom_id": f"q{i}", "body": {"messages": [{"role": "user", "content": f"hi {i}"}]}}
        for i in range(n)
    ]


def test_item_two_errors_and_item_three_expires(tmp_path: Path) -> None:
    clock = ManualClock()
    with Gateway(config=config(tmp_path), clock=clock) as gw:
        gw.credits.grant(D("1"))
        fake = gw.adapter("fake")
        fake.batch_script.error("q1", "invalid_request: max_tokens is too large").expire(2)
        batch = gw.batches.create(model="cheap", requests=requests(4))
        clock.advance(4 * FAKE_ITEM_SECONDS)
        ended = gw.batches.retrieve(batch.id)
        assert ended.status == "ended" and ended.provider_status == "completed"
        assert (ended.counts["succeeded"], ended.counts["errored"], ended.counts["expired"]) == (
            2,
            1,
            1,
        )
        items = list(gw.batches.results(batch.id))
        assert [(i.custom_id, i.outcome) for i in items] == [
            ("q0", "succeeded"),
            ("q1", "errored"),
            ("q2", "expired"),
            ("q3", "succeeded"),
        ]
        assert items[1].error == "invalid_request: max_tokens is too large"
        assert items[2].error == "the batch expired before this request ran"
        assert items[1].cost == items[2].cost == 0
        assert items[1].response is None and items[2].response is None
        # Scripted items never reach the provider: two requests were answered.
        assert len(fake.calls) == 2  # type: ignore[attr-defined]
        charged = items[0].cost + items[3].cost
        assert charged > 0
        balance = gw.credits.balance()
        assert balance.held == 0 and balance.available == D("1") - charged


def test_a_batch_that_expires_part_way_bills_the_items_done_in_time(tmp_path: Path) -> None:
    clock = ManualClock()
    with Gateway(config=config(tmp_path), clock=clock) as gw:
        gw.credits.grant(D("1"))
        gw.adapter("fake").batch_script.expires_after(2.5 * FAKE_ITEM_SECONDS)
        batch = gw.batches.create(model="cheap", requests=requests(4))
        clock.advance(2 * FAKE_ITEM_SECONDS)
        assert gw.batches.retrieve(batch.id).status == "running"  # not expired yet
        clock.advance(FAKE_ITEM_SECONDS)
        ended = gw.batches.retrieve(batch.id)
        assert ended.status == "ended" and ended.provider_status == "expired"
        assert ended.counts["succeeded"] == 2 and ended.counts["expired"] == 2
        items = list(gw.batches.results(batch.id))
        assert [i.outcome for i in items] == ["succeeded", "succeeded", "expired", "expired"]
        assert all(i.cost > 0 for i in items[:2]) and all(i.cost == 0 for i in items[2:])
        balance = gw.credits.balance()
        assert balance.held == 0
        assert balance.available == D("1") - items[0].cost - items[1].cost


def test_a_batch_done_before_its_expiry_or_cancelled_first_is_not_expired(tmp_path: Path) -> None:
    clock = ManualClock()
    with Gateway(config=config(tmp_path), clock=clock) as gw:
        gw.credits.grant(D("1"))
        gw.adapter("fake").batch_script.expires_after(5 * FAKE_ITEM_SECONDS)
        done = gw.batches.create(model="cheap", requests=requests(2))
        stopped = gw.batches.create(model="cheap", requests=requests(3))
        clock.advance(FAKE_ITEM_SECONDS)
        assert gw.batches.cancel(stopped.id).provider_status == "cancelled"
        clock.advance(10 * FAKE_ITEM_SECONDS)  # past the expiry
        ended = gw.batches.retrieve(done.id)
        assert ended.provider_status == "completed" and ended.counts["succeeded"] == 2
        outcomes = [i.outcome for i in gw.batches.results(stopped.id)]
        assert outcomes == ["succeeded", "cancelled", "cancelled"]


def test_a_position_and_a_custom_id_name_items_and_the_custom_id_wins() -> None:
    script = BatchScript().error(0, "by position").expire("q0", "by id")
    assert script.outcome_for(0, "q0") == script.outcome_for(5, "q0")
    scripted = script.outcome_for(0, "q0")
    assert scripted is not None and (scripted.outcome, scripted.error) == ("expired", "by id")
    by_position = script.outcome_for(0, "other")
    assert by_position is not None and by_position.error == "by position"
    assert script.outcome_for(1, "other") is None
    assert "errored" in repr(script) and "expired" in repr(script)
    script.expires_after(60)
    script.clear()
    assert script.outcome_for(0, "q0") is None and script.expiry_seconds is None


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s: s.error(-1), ValueError),
        (lambda s: s.error(""), ValueError),
        (lambda s: s.error(1.5), TypeError),
        (lambda s: s.expire(True), TypeError),
        (lambda s: s.expires_after(0), ValueError),
    ],
)
def test_bad_script_arguments_are_refused(call: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        call(BatchScript())
