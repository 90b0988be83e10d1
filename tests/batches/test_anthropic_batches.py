"""Anthropic's Message Batches through the real ``anthropic`` SDK, HTTP mocked in Anthropic's
wire format (pytest-httpx2): the adapter on its own (create, poll, cancel, results, errors at
each step), then the money through ``gw.batches`` on both stores."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway import Gateway
from gateway.config import ProviderConfig
from gateway.errors import (
    AuthenticationFailed,
    GatewayError,
    InvalidRequest,
    ProviderOverloaded,
    ProviderUnavailable,
    RateLimited,
)
from gateway.providers._anthropic_batch import (
    EXPIRED_MESSAGE,
    MISSING_MESSAGE,
    AnthropicBatches,
)
from gateway.providers.anthropic import AnthropicAdapter
from gateway.providers.base import ChatRequest
from gateway.providers.batch import BatchHandle, BatchItem
from gateway.testing.clock import ManualClock
from gateway.testing.wire import anthropic as wire
from gateway.testing.wire import anthropic_batch as bwire
from gateway.testing.wire.anthropic_batch import (
    batch_body,
    ended_without_answer,
    errored,
    succeeded,
)
from tests.conftest import CANARY_KEY

D = Decimal
MODEL = "claude-sonnet-4-6"
BATCHES_URL = bwire.BATCHES_URL
BATCH_ID = "msgbatch_013Zva2CMHLNnXjNJJKqJ2EF"
BATCH_URL = bwire.batch_url(BATCH_ID)
RESULTS_URL = bwire.results_url(BATCH_ID)
CANCEL_URL = bwire.cancel_url(BATCH_ID)
JSONL_HEADERS = {"content-type": "application/binary"}


# ---------------------------------------------------------------------------------------------
# Anthropic's Message Batches on the wire (builders: gateway.testing.wire.anthropic_batch)


def jsonl(lines: Sequence[Mapping[str, Any]]) -> httpx.Response:
    return httpx.Response(200, content=bwire.jsonl(lines), headers=JSONL_HEADERS)


def ok(body: Mapping[str, Any]) -> httpx.Response:
    return httpx.Response(200, json=dict(body))


def error(status: int, message: str | None = None) -> httpx.Response:
    return httpx.Response(
        status, json=wire.error_for_status(status, message), headers=wire.error_headers()
    )


# ---------------------------------------------------------------------------------------------
# The adapter alone


def make_batches() -> AnthropicBatches:
    config = ProviderConfig(type="anthropic", name="anthropic", api_key=CANARY_KEY)
    return AnthropicBatches(AnthropicAdapter("anthropic", config))


def item(custom_id: str, text: str = "Hello", **fields: Any) -> BatchItem:
    return BatchItem(custom_id, ChatRequest(messages=[{"role": "user", "content": text}], **fields))


def handle(cancelled: bool = False) -> BatchHandle:
    return BatchHandle(BATCH_ID, MODEL, 0, 1 if cancelled else None, 2)


def sent(route: Any, call: int = -1) -> Any:
    return json.loads(route.calls[call].request.content)


def test_create_sends_every_item_as_a_chat_call_would_send_it(httpx2_mock: Any) -> None:
    batches = make_batches()
    items = [
        BatchItem(
            "q0",
            ChatRequest(
                messages=[
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hello"},
                ],
                max_tokens=100,
                temperature=0.5,
                stop=["END"],
            ),
        ),
        item("q_1", "Bye"),
    ]
    create = httpx2_mock.post(BATCHES_URL).mock(return_value=ok(batch_body(processing=2)))
    chat = httpx2_mock.post(wire.MESSAGES_URL).mock(return_value=ok(wire.message()))

    submitted = batches.create_batch(MODEL, items)

    assert submitted.id == BATCH_ID
    assert (submitted.state, submitted.provider_status) == ("running", "in_progress")
    assert submitted.counts.as_dict() == {
        "processing": 2,
        "succeeded": 0,
        "errored": 0,
        "expired": 0,
        "cancelled": 0,
    }
    assert sent(create) == {
        "requests": [
            {
                "custom_id": "q0",
                "params": {
                    "model": MODEL,
                    "max_tokens": 100,
                    "messages": [{"role": "user", "content": "Hello"}],
                    "system": "Be brief.",
                    "stop_sequences": ["END"],
                    "temperature": 0.5,
                },
            },
            {
                "custom_id": "q_1",
                "params": {
                    "model": MODEL,
                    "max_tokens": 4096,
                    "messages": [{"role": "user", "content": "Bye"}],
                },
            },
        ]
    }
    request = create.calls.last.request
    assert request.headers["authorization"] == f"Bearer {CANARY_KEY}"
    assert "anthropic-version" in request.headers
    # The same body a chat call sends for each request (one translation, not two).
    for index, batch_item in enumerate(items):
        batches.adapter.complete(MODEL, batch_item.request)
        assert sent(chat) == sent(create)["requests"][index]["params"]


def test_custom_ids_anthropic_refuses_are_sent_as_indexes_and_mapped_back(
    httpx2_mock: Any,
) -> None:
    batches = make_batches()
    items = [item("order/1"), item("q 2"), item("ok_id")]
    create = httpx2_mock.post(BATCHES_URL).mock(return_value=ok(batch_body(processing=3)))
    batches.create_batch(MODEL, items)
    assert [r["custom_id"] for r in sent(create)["requests"]] == ["item-0", "item-1", "item-2"]

    httpx2_mock.get(BATCH_URL).mock(return_value=ok(batch_body("ended", succeeded=3)))
    httpx2_mock.get(RESULTS_URL).mock(
        return_value=jsonl(  # in no particular order, as Anthropic says
            [
                succeeded("item-2", **wire.message(text="c")),
                succeeded("item-0", **wire.message(text="a")),
                succeeded("item-1", **wire.message(text="b")),
            ]
        )
    )
    results = batches.batch_results(handle(), items)
    assert [(r.custom_id, r.outcome) for r in results] == [
        ("order/1", "succeeded"),
        ("q 2", "succeeded"),
        ("ok_id", "succeeded"),
    ]
    contents = [r.response.completion.choices[0].message.content for r in results if r.response]
    assert contents == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("status", "counts", "state"),
    [
        ("in_progress", {"processing": 3}, "running"),
        ("canceling", {"processing": 3}, "running"),
        ("ended", {"succeeded": 1, "errored": 1, "canceled": 1}, "ended"),
        ("ended", {"expired": 3}, "ended"),
    ],
)
def test_poll_normalises_each_status_and_keeps_anthropics(
    httpx2_mock: Any, status: str, counts: dict[str, int], state: str
) -> None:
    route = httpx2_mock.get(BATCH_URL).mock(return_value=ok(batch_body(status, **counts)))
    polled = make_batches().retrieve_batch(handle(), [item("a"), item("b"), item("c")])
    assert route.call_count == 1
    assert (polled.id, polled.state, polled.provider_status) == (BATCH_ID, state, status)
    expected = {"processing": 0, "succeeded": 0, "errored": 0, "expired": 0, "cancelled": 0}
    expected.update({"cancelled" if k == "canceled" else k: v for k, v in counts.items()})
    assert polled.counts.as_dict() == expected


def test_results_map_each_outcome_and_read_answers_as_a_chat_call_does(httpx2_mock: Any) -> None:
    batches = make_batches()
    items = [item("ok"), item("bad"), item("late"), item("stopped"), item("lost")]
    usage = wire.usage(20, 7, cache_creation_input_tokens=100, cache_read_input_tokens=300)
    message = wire.message(text="hi", usage=usage, message_id="msg_batch_1")
    httpx2_mock.get(BATCH_URL).mock(
        return_value=ok(batch_body("ended", succeeded=1, errored=1, expired=1, canceled=1))
    )
    download = httpx2_mock.get(RESULTS_URL).mock(
        return_value=jsonl(
            [
                ended_without_answer("stopped", "canceled"),
                errored("bad", "invalid_request_error", "max_tokens: must be at least 1"),
                succeeded("ok", **message),
                ended_without_answer("late", "expired"),
                succeeded("stranger", **message),  # not ours: ignored
                {"custom_id": "lost", "result": None},  # malformed: as if missing
            ]
        )
    )
    chat = httpx2_mock.post(wire.MESSAGES_URL).mock(return_value=ok(message))

    results = batches.batch_results(handle(), items)

    assert download.call_count == 1
    assert [(r.custom_id, r.outcome) for r in results] == [
        ("ok", "succeeded"),
        ("bad", "errored"),
        ("late", "expired"),
        ("stopped", "cancelled"),
        ("lost", "errored"),
    ]
    assert [r.error for r in results] == [
        None,
        "invalid_request_error: max_tokens: must be at least 1",
        EXPIRED_MESSAGE,
        None,
        MISSING_MESSAGE,
    ]
    assert all(r.response is None for r in results[1:])
    answer = results[0].response
    assert answer is not None
    as_chat = batches.adapter.complete(MODEL, items[0].request)
    assert chat.call_count == 1
    assert answer.usage == as_chat.usage
    assert answer.usage.input_tokens == 420 and answer.usage.cached_input_tokens == 300
    assert answer.data == as_chat.data


def test_an_errored_items_message_never_carries_a_key(httpx2_mock: Any) -> None:
    httpx2_mock.get(BATCH_URL).mock(return_value=ok(batch_body("ended", errored=1)))
    httpx2_mock.get(RESULTS_URL).mock(
        return_value=jsonl([errored("a", "authentication_error", f"bad key {CANARY_KEY}")])
    )
    (result,) = make_batches().batch_results(handle(), [item("a")])
    assert result.outcome == "errored" and result.error is not None
    assert CANARY_KEY not in result.error and "[REDACTED]" in result.error


def test_cancel_asks_anthropic_to_stop(httpx2_mock: Any) -> None:
    route = httpx2_mock.post(CANCEL_URL).mock(
        return_value=ok(batch_body("canceling", processing=2))
    )
    polled = make_batches().cancel_batch(handle(cancelled=True), [item("a"), item("b")])
    assert route.call_count == 1 and route.calls.last.request.content in (b"", b"{}")
    assert (polled.state, polled.provider_status) == ("running", "canceling")


def test_cancelling_a_batch_that_has_just_ended_returns_it_ended(
    store_url: str, httpx2_mock: Any
) -> None:
    """Anthropic refuses to cancel a batch that has ended: gw.batches polls and returns it."""
    httpx2_mock.post(BATCHES_URL).mock(return_value=ok(batch_body(processing=1)))
    httpx2_mock.post(CANCEL_URL).mock(return_value=error(400, "batch has already ended"))
    httpx2_mock.get(BATCH_URL).mock(return_value=ok(batch_body("ended", succeeded=1)))
    with Gateway(config=config(store_url), clock=ManualClock()) as gw:
        gw.credits.grant(D("1"))
        batch = gw.batches.create(model="claude", requests=requests(1))
        polled = gw.batches.cancel(batch.id)
        assert (polled.status, polled.counts["succeeded"]) == ("ended", 1)


def test_a_refused_cancel_of_a_running_batch_is_raised(store_url: str, httpx2_mock: Any) -> None:
    httpx2_mock.post(BATCHES_URL).mock(return_value=ok(batch_body(processing=1)))
    httpx2_mock.post(CANCEL_URL).mock(return_value=error(400, "cannot cancel"))
    httpx2_mock.get(BATCH_URL).mock(return_value=ok(batch_body(processing=1)))
    with Gateway(config=config(store_url), clock=ManualClock()) as gw:
        gw.credits.grant(D("1"))
        batch = gw.batches.create(model="claude", requests=requests(1))
        with pytest.raises(InvalidRequest, match="cannot cancel"):
            gw.batches.cancel(batch.id)


STEPS = ("create", "retrieve", "cancel", "results: retrieve", "results: download")


def _run_step(step: str, mock: Any, failure: httpx.Response) -> None:
    batches, items = make_batches(), [item("a")]
    if step == "create":
        mock.post(BATCHES_URL).mock(return_value=failure)
        batches.create_batch(MODEL, items)
    elif step == "retrieve":
        mock.get(BATCH_URL).mock(return_value=failure)
        batches.retrieve_batch(handle(), items)
    elif step == "cancel":
        mock.post(CANCEL_URL).mock(return_value=failure)
        batches.cancel_batch(handle(cancelled=True), items)
    elif step == "results: retrieve":
        mock.get(BATCH_URL).mock(return_value=failure)
        batches.batch_results(handle(), items)
    else:
        mock.get(BATCH_URL).mock(return_value=ok(batch_body("ended", succeeded=1)))
        mock.get(RESULTS_URL).mock(return_value=failure)
        batches.batch_results(handle(), items)


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, AuthenticationFailed),
        (429, RateLimited),
        (500, ProviderUnavailable),
        (529, ProviderOverloaded),
    ],
)
def test_an_http_error_at_each_step_is_the_error_a_chat_call_raises(
    httpx2_mock: Any, step: str, status: int, expected: type[GatewayError]
) -> None:
    with pytest.raises(expected) as caught:
        _run_step(step, httpx2_mock, error(status))
    assert type(caught.value) is expected
    assert caught.value.status_code == status  # type: ignore[attr-defined]
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    # The same class a chat call gets for the same answer.
    httpx2_mock.post(wire.MESSAGES_URL).mock(return_value=error(status))
    with pytest.raises(expected):
        make_batches().adapter.complete(MODEL, item("a").request)


def test_results_no_longer_kept_are_a_clear_error(httpx2_mock: Any) -> None:
    archived = {**batch_body("ended", succeeded=1), "results_url": None}
    archived["archived_at"] = "2026-12-20T10:00:00Z"
    httpx2_mock.get(BATCH_URL).mock(return_value=ok(archived))
    with pytest.raises(InvalidRequest, match="no results for batch"):
        make_batches().batch_results(handle(), [item("a")])


def test_an_item_anthropic_cannot_express_is_refused_naming_it() -> None:
    items = [item("a"), item("b", seed=7)]
    with pytest.raises(InvalidRequest, match=r"requests\[1\] \('b'\).*seed"):
        make_batches().create_batch(MODEL, items)


def test_extra_headers_go_with_the_create_call_when_every_item_has_the_same(
    httpx2_mock: Any,
) -> None:
    beta = {"anthropic-beta": "some-feature-2026-01-01"}
    create = httpx2_mock.post(BATCHES_URL).mock(return_value=ok(batch_body(processing=2)))
    make_batches().create_batch(
        MODEL, [item("a", extra_headers=beta), item("b", extra_headers=beta)]
    )
    assert create.calls.last.request.headers["anthropic-beta"] == "some-feature-2026-01-01"
    assert all("extra_headers" not in r["params"] for r in sent(create)["requests"])
    with pytest.raises(InvalidRequest, match=r"requests\[1\] \('b'\).*every item"):
        make_batches().create_batch(MODEL, [item("a", extra_headers=beta), item("b")])


# ---------------------------------------------------------------------------------------------
# The money, through gw.batches

PRICES = {"input": "3.00", "output": "15.00", "cached_input": "0.30", "cache_write": "3.75"}


def config(store_url: str) -> dict[str, Any]:
    return {
        "providers": {"anthropic": {"api_key": CANARY_KEY}},
        "routes": {"claude": {"targets": [f"anthropic/{MODEL}"]}},
        "credits": {"store": store_url},
        "pricing": {f"anthropic/{MODEL}": PRICES},
    }


def requests(n: int) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"q{i}",
            "body": {"messages": [{"role": "user", "content": f"hi {i}"}], "max_tokens": 50},
        }
        for i in range(n)
    ]


def batch_cost(usage: Mapping[str, int]) -> Decimal:
    """Half the standard cost at the config's prices, from Anthropic's own usage counts."""
    price = {key: D(value) for key, value in PRICES.items()}
    full = (
        usage["input_tokens"] * price["input"]
        + usage["cache_read_input_tokens"] * price["cached_input"]
        + usage["cache_creation_input_tokens"] * price["cache_write"]
        + usage["output_tokens"] * price["output"]
    ) / 1_000_000
    return full / 2


USAGE_0 = wire.usage(21, 9, cache_creation_input_tokens=0, cache_read_input_tokens=100)
USAGE_2 = wire.usage(23, 11, cache_creation_input_tokens=40, cache_read_input_tokens=0)


def test_a_batch_with_one_errored_item_bills_two_items_at_half_price(
    store_url: str, httpx2_mock: Any
) -> None:
    create = httpx2_mock.post(BATCHES_URL).mock(return_value=ok(batch_body(processing=3)))
    poll = httpx2_mock.get(BATCH_URL).mock(
        side_effect=[
            ok(batch_body(processing=3)),
            ok(batch_body("ended", succeeded=2, errored=1)),
            ok(batch_body("ended", succeeded=2, errored=1)),  # the SDK's, before the download
        ]
    )
    httpx2_mock.get(RESULTS_URL).mock(
        return_value=jsonl(
            [
                succeeded("q0", **wire.message(text="a", usage=USAGE_0)),
                errored("q1", "invalid_request_error", "prompt is too long"),
                succeeded("q2", **wire.message(text="c", usage=USAGE_2)),
            ]
        )
    )
    with Gateway(config=config(store_url), clock=ManualClock()) as gw:
        gw.credits.grant(D("1"))
        batch = gw.batches.create(model="claude", requests=requests(3))
        assert (batch.provider, batch.provider_batch_id) == ("anthropic", BATCH_ID)
        assert [r["custom_id"] for r in sent(create)["requests"]] == ["q0", "q1", "q2"]
        assert gw.credits.balance().held > 0
        assert gw.batches.retrieve(batch.id).status == "running"
        ended = gw.batches.retrieve(batch.id)
        assert (ended.status, ended.provider_status) == ("ended", "ended")
        assert ended.counts["succeeded"] == 2 and ended.counts["errored"] == 1

        items = list(gw.batches.results(batch.id))

        assert poll.call_count == 3
        assert [(i.custom_id, i.outcome) for i in items] == [
            ("q0", "succeeded"),
            ("q1", "errored"),
            ("q2", "succeeded"),
        ]
        assert items[0].cost == batch_cost(USAGE_0) == D("0.000114")
        assert items[2].cost == batch_cost(USAGE_2) == D("0.0001920")
        assert items[1].cost == 0 and items[1].error == "invalid_request_error: prompt is too long"
        assert items[0].response is not None and items[0].response.usage.cost == items[0].cost
        balance = gw.credits.balance()
        assert balance.held == 0
        assert balance.available == D("1") - batch_cost(USAGE_0) - batch_cost(USAGE_2)


def test_a_cancelled_batch_bills_only_finished_items(store_url: str, httpx2_mock: Any) -> None:
    httpx2_mock.post(BATCHES_URL).mock(return_value=ok(batch_body(processing=3)))
    cancel = httpx2_mock.post(CANCEL_URL).mock(
        return_value=ok(batch_body("canceling", processing=3))
    )
    httpx2_mock.get(BATCH_URL).mock(return_value=ok(batch_body("ended", succeeded=1, canceled=2)))
    httpx2_mock.get(RESULTS_URL).mock(
        return_value=jsonl(
            [
                succeeded("q0", **wire.message(usage=USAGE_0)),
                ended_without_answer("q1", "canceled"),
                ended_without_answer("q2", "canceled"),
            ]
        )
    )
    with Gateway(config=config(store_url), clock=ManualClock()) as gw:
        gw.credits.grant(D("1"))
        batch = gw.batches.create(model="claude", requests=requests(3))
        cancelling = gw.batches.cancel(batch.id)
        assert cancel.call_count == 1
        assert (cancelling.status, cancelling.provider_status) == ("running", "canceling")
        items = list(gw.batches.results(batch.id))
        assert [i.outcome for i in items] == ["succeeded", "cancelled", "cancelled"]
        assert [i.cost for i in items] == [batch_cost(USAGE_0), 0, 0]
        balance = gw.credits.balance()
        assert balance.held == 0 and balance.available == D("1") - batch_cost(USAGE_0)


def test_collecting_twice_charges_once(store_url: str, httpx2_mock: Any) -> None:
    httpx2_mock.post(BATCHES_URL).mock(return_value=ok(batch_body(processing=2)))
    httpx2_mock.get(BATCH_URL).mock(return_value=ok(batch_body("ended", succeeded=2)))
    results = httpx2_mock.get(RESULTS_URL).mock(
        return_value=jsonl(
            [
                succeeded("q0", **wire.message(usage=USAGE_0)),
                succeeded("q1", **wire.message(usage=USAGE_2)),
            ]
        )
    )
    with Gateway(config=config(store_url), clock=ManualClock()) as gw:
        gw.credits.grant(D("1"))
        batch = gw.batches.create(model="claude", requests=requests(2))
        first = list(gw.batches.results(batch.id))
        with Gateway(config=config(store_url), clock=ManualClock()) as other:
            again = list(other.batches.results(batch.id))
        assert results.call_count == 2  # read twice, charged once
        expected = [batch_cost(USAGE_0), batch_cost(USAGE_2)]
        assert [i.cost for i in first] == [i.cost for i in again] == expected
        assert gw.credits.balance().available == D("1") - sum(expected)
        rows = gw.credits.usage(group_by="operation")
        assert [(r.group["operation"], r.requests, r.cost) for r in rows] == [
            ("batch", 2, sum(expected))
        ]


def test_a_failed_submission_holds_nothing(store_url: str, httpx2_mock: Any) -> None:
    httpx2_mock.post(BATCHES_URL).mock(return_value=error(429))
    with Gateway(config=config(store_url), clock=ManualClock()) as gw:
        gw.credits.grant(D("1"))
        with pytest.raises(RateLimited):
            gw.batches.create(model="claude", requests=requests(2))
        assert gw.batches.list() == []
        assert gw.credits.balance().held == 0


def test_custom_ids_anthropic_refuses_come_back_as_the_callers(
    store_url: str, httpx2_mock: Any
) -> None:
    create = httpx2_mock.post(BATCHES_URL).mock(return_value=ok(batch_body(processing=2)))
    httpx2_mock.get(BATCH_URL).mock(return_value=ok(batch_body("ended", succeeded=2)))
    httpx2_mock.get(RESULTS_URL).mock(
        return_value=jsonl(
            [
                succeeded("item-1", **wire.message(text="two", usage=USAGE_2)),
                succeeded("item-0", **wire.message(text="one", usage=USAGE_0)),
            ]
        )
    )
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}
    ids = ["user:42/question 1", "user:42/question 2"]
    with Gateway(config=config(store_url), clock=ManualClock()) as gw:
        gw.credits.grant(D("1"))
        batch = gw.batches.create(
            model="claude", requests=[{"custom_id": i, "body": body} for i in ids]
        )
        assert [r["custom_id"] for r in sent(create)["requests"]] == ["item-0", "item-1"]
        items = list(gw.batches.results(batch.id))
    assert [(i.custom_id, i.cost) for i in items] == [
        (ids[0], batch_cost(USAGE_0)),
        (ids[1], batch_cost(USAGE_2)),
    ]
    assert [i.response.choices[0].message.content for i in items if i.response] == ["one", "two"]
