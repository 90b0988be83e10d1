"""Gemini's batch mode through the real google-genai SDK against its mocked v1beta endpoints:
each item sent as a chat call's body (inline, or a JSONL file past the inline limit), polled in
each state, results inline by position or from the result file by key, cancel, every HTTP
error mapped as a chat call's, and the money through ``gw.batches`` on SQLite."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpcore2
import httpx
import pytest

from gateway import AsyncGateway, Gateway
from gateway._request import build_request
from gateway.config import ProviderConfig
from gateway.errors import (
    AuthenticationFailed,
    GatewayError,
    InvalidRequest,
    ProviderConnectionError,
    ProviderUnavailable,
    RateLimited,
)
from gateway.providers import _gemini_batch
from gateway.providers._gemini_batch import GeminiBatches
from gateway.providers.batch import BatchHandle, BatchItem
from gateway.providers.gemini import GeminiAdapter, to_response
from gateway.testing.clock import ManualClock
from gateway.testing.wire import gemini as wire
from gateway.testing.wire import gemini_batch as bwire
from tests.conftest import CANARY_KEY

D = Decimal
M = D(1_000_000)
MODEL = "gemini-2.5-flash"
NAME = "batches/b-1"
SESSION_URL = "https://generativelanguage.googleapis.com/upload/v1beta/files?upload_id=u-1"


# ---------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture
def adapter() -> Iterator[GeminiAdapter]:
    instance = GeminiAdapter(
        "gemini", ProviderConfig(type="gemini", name="gemini", api_key=CANARY_KEY)
    )
    yield instance
    instance.close()


@pytest.fixture
def batches(adapter: GeminiAdapter) -> GeminiBatches:
    return GeminiBatches(adapter)


def item(custom_id: str, **body: Any) -> BatchItem:
    body.setdefault("messages", [{"role": "user", "content": f"hi {custom_id}"}])
    return BatchItem(custom_id, build_request(**body))


def items(n: int) -> list[BatchItem]:
    return [item(f"q{i}") for i in range(n)]


def handle(name: str = NAME) -> BatchHandle:
    return BatchHandle(name, MODEL, created_us=0, cancelled_us=None, now_us=0)


def answer(text: str, prompt: int, output: int) -> dict[str, Any]:
    """A generateContent body with these token counts."""
    usage = wire.usage_metadata(prompt_tokens=prompt, output_tokens=output)
    return wire.generate_content_response(text, usage=usage, response_id=f"r-{text}")


def body_of(route: Any, index: int = -1) -> dict[str, Any]:
    request = route.calls[index].request
    parsed: dict[str, Any] = json.loads(request.content)
    return parsed


def operation(state: str = "BATCH_STATE_PENDING", **kwargs: Any) -> Any:
    return httpx.Response(200, json=bwire.batch_operation(NAME, state, **kwargs))


def api_error(code: int, message: str | None = None) -> Any:
    return httpx.Response(code, json=wire.error_body(code, message))


def assert_clean(error: GatewayError) -> None:
    assert CANARY_KEY not in str(error) and CANARY_KEY not in repr(error)
    assert error.__cause__ is None


# ---------------------------------------------------------------------------------------------
# Submission


def test_inline_batch_sends_each_item_as_a_chat_call_would(
    httpx2_mock: Any, adapter: GeminiAdapter, batches: GeminiBatches
) -> None:
    first = item(
        "a",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"},
        ],
        max_tokens=50,
        temperature=0.2,
    )
    second = item(
        "b",
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        extra_body={"generationConfig": {"topK": 5}},
    )
    chat = httpx2_mock.post(wire.generate_content_url(MODEL)).mock(
        return_value=httpx.Response(200, json=answer("x", 1, 1))
    )
    for one in (first, second):
        adapter.complete(MODEL, one.request)
    chat_bodies = [body_of(chat, 0), body_of(chat, 1)]
    create = httpx2_mock.post(bwire.create_url(MODEL)).mock(return_value=operation(requests=2))

    submitted = batches.create_batch(MODEL, [first, second])

    assert create.calls.last.request.headers["x-goog-api-key"] == CANARY_KEY
    sent = body_of(create)
    assert sent == {
        "batch": {
            "displayName": "gateway batch",
            "inputConfig": {
                "requests": {
                    "requests": [
                        {"request": chat_bodies[0], "metadata": {"key": "a"}},
                        {"request": chat_bodies[1], "metadata": {"key": "b"}},
                    ]
                }
            },
        }
    }
    assert sent["batch"]["inputConfig"]["requests"]["requests"][0]["request"] == {
        "contents": [{"role": "user", "parts": [{"text": "Capital of France?"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}], "role": "user"},
        "generationConfig": {"maxOutputTokens": 50, "temperature": 0.2},
    }
    assert chat_bodies[1]["generationConfig"]["topK"] == 5  # extra_body merged, as in chat
    assert (submitted.id, submitted.state, submitted.provider_status) == (
        NAME,
        "pending",
        "JOB_STATE_PENDING",
    )
    assert submitted.counts.processing == 2


def test_past_the_inline_limit_the_requests_go_up_as_a_jsonl_file(
    httpx2_mock: Any,
    adapter: GeminiAdapter,
    batches: GeminiBatches,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_gemini_batch, "INLINE_LIMIT_BYTES", 100)
    chat = httpx2_mock.post(wire.generate_content_url(MODEL)).mock(
        return_value=httpx.Response(200, json=answer("x", 1, 1))
    )
    sent_items = items(2)
    for one in sent_items:
        adapter.complete(MODEL, one.request)
    # The session URL is the start URL plus a query: its route goes first to be told apart.
    upload = httpx2_mock.post(SESSION_URL).mock(
        return_value=httpx.Response(
            200, headers=bwire.upload_finished_headers(), json=bwire.uploaded_file("files/in-1", 9)
        )
    )
    start = httpx2_mock.post(bwire.upload_url()).mock(
        return_value=httpx.Response(200, headers=bwire.upload_start_headers(SESSION_URL))
    )
    create = httpx2_mock.post(bwire.create_url(MODEL)).mock(return_value=operation(requests=2))

    submitted = batches.create_batch(MODEL, sent_items)

    uploaded = upload.calls.last.request.content
    assert uploaded.endswith(b"\n")
    assert [json.loads(line) for line in uploaded.splitlines()] == [
        {"key": "q0", "request": body_of(chat, 0)},
        {"key": "q1", "request": body_of(chat, 1)},
    ]
    assert body_of(start) == {
        "file": {"display_name": "gateway batch", "mime_type": "jsonl", "size_bytes": len(uploaded)}
    }
    assert start.calls.last.request.headers["x-goog-upload-command"] == "start"
    assert upload.calls.last.request.headers["x-goog-upload-command"] == "upload, finalize"
    assert body_of(create) == {
        "batch": {"displayName": "gateway batch", "inputConfig": {"fileName": "files/in-1"}}
    }
    assert submitted.id == NAME and submitted.state == "pending"


def test_extra_headers_cannot_go_with_one_item_of_a_batch(batches: GeminiBatches) -> None:
    with pytest.raises(InvalidRequest, match="'a': extra_headers"):
        batches.create_batch(MODEL, [item("a", extra_headers={"x-trace": "1"})])


# ---------------------------------------------------------------------------------------------
# Status


@pytest.mark.parametrize(
    ("state", "stats", "expected", "counts"),
    [
        ("BATCH_STATE_PENDING", {}, "pending", {"processing": 3}),
        (
            "BATCH_STATE_RUNNING",
            {"succeeded": 1, "failed": 1},
            "running",
            {"processing": 1, "succeeded": 1, "errored": 1},
        ),
        (
            "BATCH_STATE_SUCCEEDED",
            {"succeeded": 2, "failed": 1},
            "ended",
            {"succeeded": 2, "errored": 1},
        ),
        ("BATCH_STATE_CANCELLED", {"succeeded": 1}, "ended", {"succeeded": 1, "cancelled": 2}),
        ("BATCH_STATE_EXPIRED", {"succeeded": 1}, "ended", {"succeeded": 1, "expired": 2}),
        ("BATCH_STATE_FAILED", {}, "ended", {"errored": 3}),
    ],
)
def test_poll_in_each_state(
    httpx2_mock: Any,
    batches: GeminiBatches,
    state: str,
    stats: dict[str, int],
    expected: str,
    counts: dict[str, int],
) -> None:
    poll = httpx2_mock.get(bwire.operation_url(NAME)).mock(
        return_value=operation(state, requests=3, **stats)
    )
    polled = batches.retrieve_batch(handle(), items(3))
    assert poll.calls.last.request.headers["x-goog-api-key"] == CANARY_KEY
    assert polled.state == expected
    assert polled.provider_status == state.replace("BATCH_STATE_", "JOB_STATE_")
    want = {"processing": 0, "succeeded": 0, "errored": 0, "expired": 0, "cancelled": 0}
    assert polled.counts.as_dict() == {**want, **counts}


def test_cancel_asks_the_provider_then_polls(httpx2_mock: Any, batches: GeminiBatches) -> None:
    cancel = httpx2_mock.post(bwire.cancel_url(NAME)).mock(
        return_value=httpx.Response(200, json={})
    )
    httpx2_mock.get(bwire.operation_url(NAME)).mock(
        return_value=operation("BATCH_STATE_CANCELLED", requests=2, succeeded=1)
    )
    polled = batches.cancel_batch(handle(), items(2))
    assert cancel.call_count == 1 and cancel.calls.last.request.content in (b"", b"{}")
    assert polled.state == "ended" and polled.provider_status == "JOB_STATE_CANCELLED"
    assert polled.counts.succeeded == 1 and polled.counts.cancelled == 1


# ---------------------------------------------------------------------------------------------
# Results


def test_inline_results_are_read_by_position_as_chat_answers(
    httpx2_mock: Any, batches: GeminiBatches
) -> None:
    ok = answer("Paris", 12, 3)
    inline = [
        bwire.inline_response(ok),
        bwire.inline_error(3, "Request contains an invalid argument."),
        bwire.inline_error(4, "Deadline exceeded."),
        bwire.inline_error(1, "The operation was cancelled."),
    ]
    httpx2_mock.get(bwire.operation_url(NAME)).mock(
        return_value=operation("BATCH_STATE_SUCCEEDED", requests=4, succeeded=1, inline=inline)
    )
    results = batches.batch_results(handle(), items(4))
    assert [(r.custom_id, r.outcome) for r in results] == [
        ("q0", "succeeded"),
        ("q1", "errored"),
        ("q2", "expired"),
        ("q3", "cancelled"),
    ]
    chat = to_response(ok, MODEL)  # what a chat call makes of the same answer
    assert results[0].response is not None
    assert results[0].response.usage == chat.usage
    assert results[0].response.data is not None and chat.data is not None
    assert results[0].response.data["choices"] == chat.data["choices"]
    assert results[0].response.data["id"] == "r-Paris"
    assert results[1].error == "Request contains an invalid argument. (code 3)"
    assert results[1].response is None
    assert results[2].error == "Deadline exceeded. (code 4)"


@pytest.mark.parametrize(
    ("state", "rest"),
    [
        ("BATCH_STATE_CANCELLED", "cancelled"),
        ("BATCH_STATE_EXPIRED", "expired"),
        ("BATCH_STATE_FAILED", "errored"),
    ],
)
def test_items_without_an_answer_take_the_batch_end(
    httpx2_mock: Any, batches: GeminiBatches, state: str, rest: str
) -> None:
    error = {"code": 13, "message": "Internal error."} if rest == "errored" else None
    httpx2_mock.get(bwire.operation_url(NAME)).mock(
        return_value=operation(
            state,
            requests=3,
            succeeded=1,
            inline=[bwire.inline_response(answer("a", 5, 5))],
            error=error,
        )
    )
    results = batches.batch_results(handle(), items(3))
    assert [r.outcome for r in results] == ["succeeded", rest, rest]
    if rest == "errored":
        assert results[1].error is not None and "Internal error. (code 13)" in results[1].error
    if rest == "expired":
        assert results[1].error == "the batch expired before this request ran"


def test_file_results_are_matched_by_key(httpx2_mock: Any, batches: GeminiBatches) -> None:
    lines = [  # not in request order; q1 has no line
        bwire.result_line("q2", error={"code": 3, "message": "Bad image."}),
        bwire.result_line("q0", answer("zero", 7, 2)),
    ]
    httpx2_mock.get(bwire.operation_url(NAME)).mock(
        return_value=operation(
            "BATCH_STATE_SUCCEEDED",
            requests=3,
            succeeded=1,
            failed=1,
            responses_file="files/out-1",
        )
    )
    download = httpx2_mock.get(bwire.download_url("files/out-1")).mock(
        return_value=httpx.Response(200, content=bwire.jsonl(lines))
    )
    results = batches.batch_results(handle(), items(3))
    assert download.calls.last.request.headers["x-goog-api-key"] == CANARY_KEY
    assert [(r.custom_id, r.outcome) for r in results] == [
        ("q0", "succeeded"),
        ("q1", "errored"),
        ("q2", "errored"),
    ]
    assert results[0].response is not None and results[0].response.usage.input_tokens == 7
    assert results[2].error == "Bad image. (code 3)"


def test_an_unreadable_result_file_is_a_provider_error(
    httpx2_mock: Any, batches: GeminiBatches
) -> None:
    httpx2_mock.get(bwire.operation_url(NAME)).mock(
        return_value=operation("BATCH_STATE_SUCCEEDED", responses_file="files/out-1")
    )
    httpx2_mock.get(bwire.download_url("files/out-1")).mock(
        return_value=httpx.Response(200, content=b"<html>oops</html>\n")
    )
    with pytest.raises(ProviderUnavailable, match="line 1 of the batch's result file"):
        batches.batch_results(handle(), items(1))


# ---------------------------------------------------------------------------------------------
# HTTP errors, mapped as a chat call's


def test_http_errors_at_each_step_are_mapped(
    httpx2_mock: Any, batches: GeminiBatches, monkeypatch: pytest.MonkeyPatch
) -> None:
    httpx2_mock.post(bwire.create_url(MODEL)).mock(
        return_value=httpx.Response(
            429, json=wire.rate_limit_error(retry_delay_s=7), headers=wire.error_headers()
        )
    )
    with pytest.raises(RateLimited) as limited:
        batches.create_batch(MODEL, items(1))
    assert limited.value.retry_after == 7
    assert_clean(limited.value)

    httpx2_mock.get(bwire.operation_url(NAME)).mock(
        return_value=api_error(403, "Permission denied.")
    )
    with pytest.raises(AuthenticationFailed) as denied:
        batches.retrieve_batch(handle(), items(1))
    assert_clean(denied.value)

    httpx2_mock.post(bwire.cancel_url(NAME)).mock(
        return_value=api_error(400, "Batch is already in a terminal state.")
    )
    with pytest.raises(InvalidRequest, match="terminal state") as refused:
        batches.cancel_batch(handle(), items(1))
    assert refused.value.status_code == 400

    monkeypatch.setattr(_gemini_batch, "INLINE_LIMIT_BYTES", 1)
    httpx2_mock.post(bwire.upload_url()).mock(return_value=api_error(503))
    with pytest.raises(ProviderUnavailable) as unavailable:
        batches.create_batch(MODEL, items(1))
    assert unavailable.value.status_code == 503


def test_result_download_errors_are_mapped(httpx2_mock: Any, batches: GeminiBatches) -> None:
    httpx2_mock.get(bwire.operation_url(NAME)).mock(
        return_value=operation("BATCH_STATE_SUCCEEDED", responses_file="files/out-1")
    )
    httpx2_mock.get(bwire.download_url("files/out-1")).mock(
        return_value=api_error(500, "Internal error.")
    )
    with pytest.raises(ProviderUnavailable) as failed:
        batches.batch_results(handle(), items(1))
    assert failed.value.status_code == 500
    assert_clean(failed.value)


def test_a_connection_failure_is_mapped(httpx2_mock: Any, batches: GeminiBatches) -> None:
    httpx2_mock.get(bwire.operation_url(NAME)).mock(
        side_effect=httpcore2.ConnectError("connection refused")
    )
    with pytest.raises(ProviderConnectionError):
        batches.retrieve_batch(handle(), items(1))


# ---------------------------------------------------------------------------------------------
# Money through gw.batches (SQLite)

PRICES = {"input": D("0.30"), "output": D("2.50")}


def config(tmp_path: Path) -> dict[str, Any]:
    return {
        "providers": {"gemini": {"api_key": CANARY_KEY}},
        "routes": {"bulk": {"targets": [f"gemini/{MODEL}"]}},
        "credits": {"store": f"sqlite:///{tmp_path / 'credits.db'}"},
        "pricing": {f"gemini/{MODEL}": {k: str(v) for k, v in PRICES.items()}},
    }


def batch_cost(prompt: int, output: int) -> Decimal:
    """An item's cost at the batch rate: half the configured price."""
    return (prompt * PRICES["input"] + output * PRICES["output"]) / M / 2


def requests(n: int) -> list[dict[str, Any]]:
    return [
        {"custom_id": f"q{i}", "body": {"messages": [{"role": "user", "content": f"hi {i}"}]}}
        for i in range(n)
    ]


def test_one_errored_item_of_three_bills_two_at_half_price(http_mock: Any, tmp_path: Path) -> None:
    create = http_mock.post(bwire.create_url(MODEL)).mock(return_value=operation(requests=3))
    inline = [
        bwire.inline_response(answer("a", 1200, 300)),
        bwire.inline_error(3, "Request contains an invalid argument."),
        bwire.inline_response(answer("c", 800, 1000)),
    ]
    poll = http_mock.get(bwire.operation_url(NAME))
    poll.side_effect = [
        operation("BATCH_STATE_RUNNING", requests=3, succeeded=1),
        operation("BATCH_STATE_SUCCEEDED", requests=3, succeeded=2, failed=1, inline=inline),
        operation("BATCH_STATE_SUCCEEDED", requests=3, succeeded=2, failed=1, inline=inline),
    ]
    with Gateway(config=config(tmp_path), clock=ManualClock()) as gw:
        gw.credits.grant(D("1"))
        batch = gw.batches.create(model="bulk", requests=requests(3))
        assert create.call_count == 1 and len(body_of(create)["batch"]["inputConfig"]) == 1
        assert batch.provider == "gemini" and batch.provider_batch_id == NAME
        assert batch.status == "pending" and batch.provider_status == "JOB_STATE_PENDING"
        assert gw.credits.balance().held > 0
        running = gw.batches.retrieve(batch.id)
        assert running.status == "running" and running.counts["processing"] == 2
        ended = gw.batches.retrieve(batch.id)
        assert ended.status == "ended" and ended.provider_status == "JOB_STATE_SUCCEEDED"
        assert ended.counts["succeeded"] == 2 and ended.counts["errored"] == 1
        results = list(gw.batches.results(batch.id))
        assert [r.outcome for r in results] == ["succeeded", "errored", "succeeded"]
        assert results[0].cost == batch_cost(1200, 300) == D("0.000555")
        assert results[2].cost == batch_cost(800, 1000)
        assert results[1].cost == 0 and results[1].response is None
        assert results[1].error == "Request contains an invalid argument. (code 3)"
        assert results[0].response is not None and results[0].response.usage.cost == results[0].cost
        assert results[0].response.choices[0].message.content == "a"
        balance = gw.credits.balance()
        assert balance.held == 0
        assert balance.available == D("1") - batch_cost(1200, 300) - batch_cost(800, 1000)


def test_a_cancelled_batch_bills_only_finished_items(http_mock: Any, tmp_path: Path) -> None:
    http_mock.post(bwire.create_url(MODEL)).mock(return_value=operation(requests=3))
    cancel = http_mock.post(bwire.cancel_url(NAME)).mock(return_value=httpx.Response(200, json={}))
    http_mock.get(bwire.operation_url(NAME)).mock(
        return_value=operation(
            "BATCH_STATE_CANCELLED",
            requests=3,
            succeeded=1,
            inline=[bwire.inline_response(answer("a", 1000, 100))],
        )
    )
    with Gateway(config=config(tmp_path), clock=ManualClock()) as gw:
        gw.credits.grant(D("1"))
        batch = gw.batches.create(model="bulk", requests=requests(3))
        cancelled = gw.batches.cancel(batch.id)
        assert cancel.call_count == 1
        assert cancelled.status == "ended" and cancelled.provider_status == "JOB_STATE_CANCELLED"
        assert cancelled.counts["succeeded"] == 1 and cancelled.counts["cancelled"] == 2
        results = list(gw.batches.results(batch.id))
        assert [r.outcome for r in results] == ["succeeded", "cancelled", "cancelled"]
        assert [r.cost for r in results] == [batch_cost(1000, 100), 0, 0]
        balance = gw.credits.balance()
        assert balance.held == 0 and balance.available == D("1") - batch_cost(1000, 100)


def test_collecting_twice_charges_once(http_mock: Any, tmp_path: Path) -> None:
    http_mock.post(bwire.create_url(MODEL)).mock(return_value=operation(requests=2))
    inline = [
        bwire.inline_response(answer("a", 100, 10)),
        bwire.inline_response(answer("b", 200, 20)),
    ]
    http_mock.get(bwire.operation_url(NAME)).mock(
        return_value=operation("BATCH_STATE_SUCCEEDED", requests=2, succeeded=2, inline=inline)
    )
    with Gateway(config=config(tmp_path), clock=ManualClock()) as gw:
        gw.credits.grant(D("1"))
        batch = gw.batches.create(model="bulk", requests=requests(2))
        first = [r.cost for r in gw.batches.results(batch.id)]
        again = [r.cost for r in gw.batches.results(batch.id)]
        with Gateway(config=config(tmp_path), clock=ManualClock()) as other:
            third = [r.cost for r in other.batches.results(batch.id)]
        assert first == again == third == [batch_cost(100, 10), batch_cost(200, 20)]
        assert gw.credits.balance().available == D("1") - sum(first)


def test_a_refused_submission_holds_nothing_and_stores_nothing(
    http_mock: Any, tmp_path: Path
) -> None:
    http_mock.post(bwire.create_url(MODEL)).mock(return_value=api_error(429))
    with Gateway(config=config(tmp_path), clock=ManualClock()) as gw:
        gw.credits.grant(D("1"))
        with pytest.raises(RateLimited):
            gw.batches.create(model="bulk", requests=requests(2))
        assert gw.batches.list() == []
        assert gw.credits.balance().held == 0
        assert gw.credits.balance().available == D("1")


def test_the_async_surface_runs_the_same_gemini_batch(http_mock: Any, tmp_path: Path) -> None:
    http_mock.post(bwire.create_url(MODEL)).mock(return_value=operation(requests=1))
    inline = [bwire.inline_response(answer("a", 100, 10))]
    http_mock.get(bwire.operation_url(NAME)).mock(
        return_value=operation("BATCH_STATE_SUCCEEDED", requests=1, succeeded=1, inline=inline)
    )

    async def main() -> list[Any]:
        agw = AsyncGateway(config=config(tmp_path), clock=ManualClock())
        try:
            await agw.credits.grant(D("1"))
            batch = await agw.batches.create(model="bulk", requests=requests(1))
            assert (await agw.batches.retrieve(batch.id)).status == "ended"
            return await agw.batches.results(batch.id)
        finally:
            await agw.close()

    results = asyncio.run(main())
    assert [(r.outcome, r.cost) for r in results] == [("succeeded", batch_cost(100, 10))]
