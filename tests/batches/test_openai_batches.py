"""OpenAI batches through the real SDK, OpenAI's batch endpoints mocked in their wire format
(``POST /v1/files`` multipart, ``POST /v1/batches``, ``GET /v1/batches/{id}``, ``POST
/v1/batches/{id}/cancel``, ``GET /v1/files/{id}/content``): the JSONL lines sent (the body a chat
call sends), status in each state, results of every kind, cancel, HTTP errors mapped as a chat
call's, and the money through ``gw.batches`` on SQLite."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import AsyncGateway, Gateway
from gateway.config import ProviderConfig
from gateway.errors import (
    AuthenticationFailed,
    InsufficientCredits,
    InvalidRequest,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from gateway.providers._openai_batch import OpenAIBatches
from gateway.providers.base import ChatRequest, TokenUsage
from gateway.providers.batch import BatchHandle, BatchItem
from gateway.providers.openai import OpenAIAdapter
from gateway.testing.clock import ManualClock
from gateway.testing.wire import openai as wire
from gateway.testing.wire.openai_batch import (
    batch_error_line,
    batch_object,
    file_object,
    http_error_line,
    jsonl,
    multipart,
    ok_line,
)
from tests.conftest import CANARY_KEY

D = Decimal
M = D(1_000_000)
API = wire.API_BASE
MODEL = "gpt-4o-mini"
BATCH_ID = "batch_67d3a1b2c3"
INPUT_FILE = "file-in-1"
OUTPUT_FILE = "file-out-1"
ERROR_FILE = "file-err-1"
#: The config's prices (USD per 1M tokens); the batch rate is half of them.
PRICES = {"input": "0.15", "cached_input": "0.075", "output": "0.60"}


# ---------------------------------------------------------------------------------------------
# OpenAI's batch endpoints (the wire builders of gateway.testing.wire.openai_batch)


class OpenAIBatchServer:
    """OpenAI's batch endpoints on a respx router: one batch whose state a test sets."""

    def __init__(self, router: Any) -> None:
        self.batch = batch_object("validating")
        self.files: dict[str, bytes] = {}
        self.upload = router.post(f"{API}/files").mock(side_effect=self._upload)
        self.create = router.post(f"{API}/batches").mock(
            side_effect=lambda request: httpx.Response(200, json=self.batch)
        )
        self.retrieve = router.get(f"{API}/batches/{BATCH_ID}").mock(
            side_effect=lambda request: httpx.Response(200, json=self.batch)
        )
        self.cancel = router.post(f"{API}/batches/{BATCH_ID}/cancel").mock(side_effect=self._cancel)
        self.content = router.get(url__regex=rf"{API}/files/[^/]+/content").mock(
            side_effect=self._content
        )

    def _upload(self, request: httpx.Request) -> httpx.Response:
        fields = multipart(request)
        return httpx.Response(200, json=file_object(INPUT_FILE, len(fields["file"][1])))

    def _cancel(self, request: httpx.Request) -> httpx.Response:
        self.batch = {**self.batch, "status": "cancelling"}
        return httpx.Response(200, json=self.batch)

    def _content(self, request: httpx.Request) -> httpx.Response:
        file_id = request.url.path.split("/")[-2]
        return httpx.Response(
            200, content=self.files[file_id], headers={"content-type": "application/octet-stream"}
        )

    def end(
        self,
        status: str,
        output: list[dict[str, Any]],
        errors: list[dict[str, Any]],
        *,
        total: int = 3,
    ) -> None:
        """The batch ends with these output and error file lines."""
        self.files = {OUTPUT_FILE: jsonl(output), ERROR_FILE: jsonl(errors)}
        failed = sum(1 for line in errors if line["response"] is not None)
        self.batch = batch_object(
            status,
            total=total,
            completed=len(output),
            failed=failed,
            output_file_id=OUTPUT_FILE if output else None,
            error_file_id=ERROR_FILE if errors else None,
        )

    def uploaded_lines(self) -> list[dict[str, Any]]:
        fields = multipart(self.upload.calls.last.request)
        assert fields["purpose"] == (None, b"batch")
        filename, data = fields["file"]
        assert filename == "batch.jsonl"
        assert data.endswith(b"\n")
        return [json.loads(line) for line in data.splitlines()]


@pytest.fixture
def server(http_mock: Any) -> OpenAIBatchServer:
    return OpenAIBatchServer(http_mock)


@pytest.fixture
def adapter() -> Iterator[OpenAIAdapter]:
    config = ProviderConfig(type="openai", name="openai", api_key=CANARY_KEY)
    instance = OpenAIAdapter("openai", config)
    yield instance
    instance.close()


@pytest.fixture
def batches(adapter: OpenAIAdapter) -> OpenAIBatches:
    return OpenAIBatches(adapter)


def item(custom_id: str, text: str, **fields: Any) -> BatchItem:
    messages = [{"role": "user", "content": text}]
    return BatchItem(custom_id, ChatRequest(messages=messages, **fields))


ITEMS = [
    item("q0", "Capital of France?", max_tokens=50),
    item("q1", "Capital of Peru?", max_tokens=50, temperature=0.2, stop=["\n"]),
    item("q2", "Capital of Chad?", max_tokens=80, extra_body={"service_tier": "flex"}),
]


def handle() -> BatchHandle:
    return BatchHandle(BATCH_ID, MODEL, 1_767_000_000_000_000, None, 1_767_000_100_000_000)


# ---------------------------------------------------------------------------------------------
# create: the JSONL file and the batch


def test_create_uploads_the_chat_bodies_as_jsonl_then_creates_the_batch(
    server: OpenAIBatchServer, batches: OpenAIBatches, adapter: OpenAIAdapter, http_mock: Any
) -> None:
    submitted = batches.create_batch(MODEL, ITEMS)

    assert (submitted.id, submitted.state, submitted.provider_status) == (
        BATCH_ID,
        "pending",
        "validating",
    )
    assert submitted.counts.as_dict() == {
        "processing": 3,
        "succeeded": 0,
        "errored": 0,
        "expired": 0,
        "cancelled": 0,
    }
    lines = server.uploaded_lines()
    assert [line["custom_id"] for line in lines] == ["q0", "q1", "q2"]
    assert lines[0] == {
        "custom_id": "q0",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Capital of France?"}],
            "max_completion_tokens": 50,
        },
    }
    assert json.loads(server.create.calls.last.request.content) == {
        "input_file_id": INPUT_FILE,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    assert server.upload.calls.last.request.headers["authorization"] == f"Bearer {CANARY_KEY}"

    # Each line's body is exactly what a chat call of the same request sends.
    chat = http_mock.post(wire.CHAT_COMPLETIONS_URL).mock(
        return_value=httpx.Response(200, json=wire.chat_completion())
    )
    for line, batch_item in zip(lines, ITEMS, strict=True):
        adapter.complete(MODEL, batch_item.request)
        assert line["body"] == json.loads(chat.calls.last.request.content)
    assert lines[2]["body"]["service_tier"] == "flex"  # extra_body merged as the SDK merges it


def test_an_item_with_extra_headers_is_refused_before_anything_is_sent(
    server: OpenAIBatchServer, batches: OpenAIBatches
) -> None:
    bad = item("h", "hi", extra_headers={"x-team": "search"})
    with pytest.raises(InvalidRequest, match="'h' has extra_headers"):
        batches.create_batch(MODEL, [*ITEMS, bad])
    assert not server.upload.called and not server.create.called


# ---------------------------------------------------------------------------------------------
# Status


@pytest.mark.parametrize(
    ("status", "completed", "failed", "state", "counts"),
    [
        ("validating", 0, 0, "pending", {"processing": 3}),
        ("in_progress", 1, 1, "running", {"processing": 1, "succeeded": 1, "errored": 1}),
        ("finalizing", 2, 1, "running", {"succeeded": 2, "errored": 1}),
        ("cancelling", 1, 0, "running", {"processing": 2, "succeeded": 1}),
        ("completed", 2, 1, "ended", {"succeeded": 2, "errored": 1}),
        ("expired", 1, 0, "ended", {"succeeded": 1, "expired": 2}),
        ("cancelled", 1, 1, "ended", {"succeeded": 1, "errored": 1, "cancelled": 1}),
        ("failed", 0, 0, "ended", {"errored": 3}),
    ],
)
def test_poll_normalises_each_status(
    server: OpenAIBatchServer,
    batches: OpenAIBatches,
    status: str,
    completed: int,
    failed: int,
    state: str,
    counts: dict[str, int],
) -> None:
    server.batch = batch_object(status, completed=completed, failed=failed)
    polled = batches.retrieve_batch(handle(), ITEMS)
    assert (polled.id, polled.state, polled.provider_status) == (BATCH_ID, state, status)
    expected = {"processing": 0, "succeeded": 0, "errored": 0, "expired": 0, "cancelled": 0}
    assert polled.counts.as_dict() == {**expected, **counts}


def test_cancel_asks_openai_to_stop_and_reports_cancelling_as_running(
    server: OpenAIBatchServer, batches: OpenAIBatches
) -> None:
    server.batch = batch_object("in_progress", completed=1)
    cancelled = batches.cancel_batch(handle(), ITEMS)
    assert server.cancel.call_count == 1
    assert server.cancel.calls.last.request.method == "POST"
    assert (cancelled.state, cancelled.provider_status) == ("running", "cancelling")
    assert cancelled.counts.succeeded == 1 and cancelled.counts.processing == 2


# ---------------------------------------------------------------------------------------------
# Results


def test_results_mix_succeeded_errored_expired_and_cancelled(
    server: OpenAIBatchServer, batches: OpenAIBatches
) -> None:
    answer = wire.chat_completion(text="Paris", usage=wire.usage(20, 4, cached_tokens=8))
    items = [*ITEMS, item("q3", "Capital of Mali?"), item("q4", "Capital of Laos?")]
    server.end(
        "completed",
        output=[ok_line("q0", answer)],
        errors=[
            http_error_line("q1", wire.invalid_request_error("Invalid 'stop': too long.")),
            batch_error_line("q2", "batch_expired", "This request could not be executed."),
            batch_error_line("q3", "batch_cancelled", "The batch was cancelled."),
            http_error_line("q4", wire.server_error()),
        ],
        total=5,
    )
    results = batches.batch_results(handle(), items)

    assert [(r.custom_id, r.outcome) for r in results] == [
        ("q0", "succeeded"),
        ("q1", "errored"),
        ("q2", "expired"),
        ("q3", "cancelled"),
        ("q4", "errored"),
    ]
    first = results[0].response
    assert first is not None and results[0].error is None
    assert first.completion.choices[0].message.content == "Paris"
    assert first.usage == TokenUsage(input_tokens=20, output_tokens=4, cached_input_tokens=8)
    assert results[1].error == "Invalid 'stop': too long. (HTTP 400, invalid_request_error)"
    assert results[2].error == "This request could not be executed. (batch_expired)"
    assert results[3].error == "The batch was cancelled. (batch_cancelled)"
    assert results[4].error is not None and "(HTTP 500" in results[4].error
    assert all(r.response is None for r in results[1:])
    contents = [call.request.url.path for call in server.content.calls]
    assert contents == [f"/v1/files/{ERROR_FILE}/content", f"/v1/files/{OUTPUT_FILE}/content"]


@pytest.mark.parametrize(
    ("status", "outcome"),
    [("expired", "expired"), ("cancelled", "cancelled"), ("completed", "errored")],
)
def test_items_in_neither_file_follow_the_batch(
    server: OpenAIBatchServer, batches: OpenAIBatches, status: str, outcome: str
) -> None:
    server.end(status, output=[ok_line("q0", wire.chat_completion())], errors=[])
    results = batches.batch_results(handle(), ITEMS)
    assert [r.outcome for r in results] == ["succeeded", outcome, outcome]
    assert server.content.call_count == 1  # no error file to read


def test_a_batch_that_failed_validation_errors_every_item_with_its_message(
    server: OpenAIBatchServer, batches: OpenAIBatches
) -> None:
    server.batch = batch_object(
        "failed",
        total=0,
        errors=[
            {
                "code": "invalid_request",
                "line": 2,
                "message": "Model 'gpt-x' not found.",
                "param": "body.model",
            }
        ],
    )
    results = batches.batch_results(handle(), ITEMS)
    assert [r.outcome for r in results] == ["errored"] * 3
    assert {r.error for r in results} == {"line 2: Model 'gpt-x' not found."}
    assert not server.content.called


@pytest.mark.parametrize("status", ["validating", "in_progress", "finalizing", "cancelling"])
def test_results_of_a_batch_that_has_not_ended_are_refused(
    server: OpenAIBatchServer, batches: OpenAIBatches, status: str
) -> None:
    server.batch = batch_object(status, completed=1, output_file_id=OUTPUT_FILE)
    with pytest.raises(InvalidRequest, match=f"has not ended \\(status {status}\\)"):
        batches.batch_results(handle(), ITEMS)
    assert not server.content.called


def test_a_result_line_that_is_not_json_is_a_provider_error(
    server: OpenAIBatchServer, batches: OpenAIBatches
) -> None:
    server.end("completed", output=[ok_line("q0", wire.chat_completion())], errors=[])
    server.files[OUTPUT_FILE] += b"{not json\n"
    with pytest.raises(ProviderUnavailable, match=f"line 2 of the batch result file {OUTPUT_FILE}"):
        batches.batch_results(handle(), ITEMS)


# ---------------------------------------------------------------------------------------------
# HTTP errors: the gateway error a chat call would raise


def error_response(error: wire.WireError) -> httpx.Response:
    return httpx.Response(error.status, json=error.body, headers=error.headers)


STEPS: dict[str, Callable[[OpenAIBatchServer], Any]] = {
    "upload": lambda s: s.upload,
    "create": lambda s: s.create,
    "retrieve": lambda s: s.retrieve,
    "cancel": lambda s: s.cancel,
    "content": lambda s: s.content,
}


def run_step(step: str, batches: OpenAIBatches, server: OpenAIBatchServer) -> None:
    if step in ("upload", "create"):
        batches.create_batch(MODEL, ITEMS)
    elif step == "retrieve":
        batches.retrieve_batch(handle(), ITEMS)
    elif step == "cancel":
        batches.cancel_batch(handle(), ITEMS)
    else:
        server.end("completed", output=[ok_line("q0", wire.chat_completion())], errors=[])
        batches.batch_results(handle(), ITEMS)


@pytest.mark.parametrize(
    ("step", "error", "expected"),
    [
        ("upload", wire.auth_error(), AuthenticationFailed),
        ("create", wire.rate_limit_error(retry_after=7), RateLimited),
        ("retrieve", wire.server_error(503), ProviderUnavailable),
        ("cancel", wire.not_found_error(), InvalidRequest),
        ("content", wire.insufficient_quota_error(), RateLimited),
    ],
)
def test_an_http_error_at_each_step_is_mapped_as_a_chat_calls(
    server: OpenAIBatchServer,
    batches: OpenAIBatches,
    adapter: OpenAIAdapter,
    http_mock: Any,
    step: str,
    error: wire.WireError,
    expected: type[ProviderError],
) -> None:
    STEPS[step](server).mock(side_effect=None, return_value=error_response(error))
    with pytest.raises(ProviderError) as raised:
        run_step(step, batches, server)
    http_mock.post(wire.CHAT_COMPLETIONS_URL).mock(return_value=error_response(error))
    with pytest.raises(ProviderError) as chat:
        adapter.complete(MODEL, ITEMS[0].request)

    batch_error, chat_error = raised.value, chat.value
    assert type(batch_error) is type(chat_error) is expected
    assert (batch_error.message, batch_error.status_code, batch_error.code) == (
        chat_error.message,
        chat_error.status_code,
        chat_error.code,
    )
    assert batch_error.retry_after == chat_error.retry_after
    assert (batch_error.provider, batch_error.model) == ("openai", MODEL)
    assert CANARY_KEY not in str(batch_error) and CANARY_KEY not in repr(batch_error)
    assert batch_error.__cause__ is None and batch_error.__suppress_context__


def test_the_adapter_refuses_another_providers_adapter() -> None:
    with pytest.raises(TypeError, match="needs an OpenAIAdapter"):
        OpenAIBatches(object())


# ---------------------------------------------------------------------------------------------
# Money through gw.batches, on SQLite


def config(tmp_path: Path) -> dict[str, Any]:
    return {
        "providers": {"openai": {"api_key": CANARY_KEY}},
        "routes": {"nightly": {"targets": [f"openai/{MODEL}"]}},
        "credits": {"store": f"sqlite:///{tmp_path / 'credits.db'}"},
        "pricing": {f"openai/{MODEL}": PRICES},
    }


def gateway(tmp_path: Path) -> Gateway:
    return Gateway(config=config(tmp_path), clock=ManualClock())


def requests(n: int) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"q{i}",
            "body": {"messages": [{"role": "user", "content": f"question {i}"}], "max_tokens": 100},
        }
        for i in range(n)
    ]


def batch_cost(usage: dict[str, Any]) -> Decimal:
    """One item's cost at half the config's prices."""
    cached: int = usage["prompt_tokens_details"]["cached_tokens"]
    prompt: int = usage["prompt_tokens"]
    output: int = usage["completion_tokens"]
    full = (
        (prompt - cached) * D(PRICES["input"])
        + cached * D(PRICES["cached_input"])
        + output * D(PRICES["output"])
    ) / M
    return full / 2


USAGE_0 = wire.usage(2000, 500, cached_tokens=1000)
USAGE_2 = wire.usage(1234, 321)


def test_a_batch_with_one_errored_item_bills_two_items_at_half_price(
    server: OpenAIBatchServer, tmp_path: Path
) -> None:
    with gateway(tmp_path) as gw:
        gw.credits.grant(D("1"))
        batch = gw.batches.create(model="nightly", requests=requests(3), tags={"job": "n"})
        assert (batch.status, batch.provider_status, batch.provider) == (
            "pending",
            "validating",
            "openai",
        )
        assert batch.provider_batch_id == BATCH_ID
        assert [line["custom_id"] for line in server.uploaded_lines()] == ["q0", "q1", "q2"]
        assert gw.credits.balance().held > 0

        server.batch = batch_object("in_progress", completed=1)
        assert gw.batches.retrieve(batch.id).status == "running"
        server.end(
            "completed",
            output=[
                ok_line("q0", wire.chat_completion(text="a", usage=USAGE_0)),
                ok_line("q2", wire.chat_completion(text="c", usage=USAGE_2)),
            ],
            errors=[http_error_line("q1", wire.context_length_error())],
        )
        ended = gw.batches.retrieve(batch.id)
        assert (ended.status, ended.counts["succeeded"], ended.counts["errored"]) == (
            "ended",
            2,
            1,
        )
        items = list(gw.batches.results(batch.id))

        assert [i.outcome for i in items] == ["succeeded", "errored", "succeeded"]
        expected = [batch_cost(USAGE_0), D(0), batch_cost(USAGE_2)]
        assert expected[0] == D("0.0002625")  # (1000×0.15 + 1000×0.075 + 500×0.60) / 1M / 2
        assert [i.cost for i in items] == expected
        answer = items[0].response
        assert answer is not None and answer.usage is not None
        assert answer.usage.cost == expected[0]
        assert answer.choices[0].message.content == "a"
        assert items[1].response is None and "maximum context length" in (items[1].error or "")
        balance = gw.credits.balance()
        assert balance.held == 0
        assert balance.available == D("1") - expected[0] - expected[2]


def test_a_cancelled_batch_bills_only_finished_items(
    server: OpenAIBatchServer, tmp_path: Path
) -> None:
    with gateway(tmp_path) as gw:
        gw.credits.grant(D("1"))
        batch = gw.batches.create(model=f"openai/{MODEL}", requests=requests(3))
        server.batch = batch_object("in_progress", completed=1)
        cancelling = gw.batches.cancel(batch.id)
        assert (cancelling.status, cancelling.provider_status) == ("running", "cancelling")
        assert server.cancel.call_count == 1
        with pytest.raises(InvalidRequest, match="has not ended"):
            gw.batches.results(batch.id)

        server.end(
            "cancelled",
            output=[ok_line("q0", wire.chat_completion(usage=USAGE_0))],
            errors=[batch_error_line("q1", "batch_cancelled", "The batch was cancelled.")],
        )
        items = list(gw.batches.results(batch.id))

        assert [i.outcome for i in items] == ["succeeded", "cancelled", "cancelled"]
        assert [i.cost for i in items] == [batch_cost(USAGE_0), 0, 0]
        balance = gw.credits.balance()
        assert balance.held == 0 and balance.available == D("1") - batch_cost(USAGE_0)


def test_collecting_twice_charges_once(server: OpenAIBatchServer, tmp_path: Path) -> None:
    with gateway(tmp_path) as gw:
        gw.credits.grant(D("1"))
        batch = gw.batches.create(model="nightly", requests=requests(2))
        server.end(
            "completed",
            output=[
                ok_line("q0", wire.chat_completion(usage=USAGE_0)),
                ok_line("q1", wire.chat_completion(usage=USAGE_2)),
            ],
            errors=[],
            total=2,
        )
        first = list(gw.batches.results(batch.id))
        again = list(gw.batches.results(batch.id))
        with gateway(tmp_path) as other:
            third = list(other.batches.results(batch.id))

        charged = batch_cost(USAGE_0) + batch_cost(USAGE_2)
        assert sum(i.cost for i in first) == charged
        assert [i.cost for i in again] == [i.cost for i in first] == [i.cost for i in third]
        assert gw.credits.balance().available == D("1") - charged
        rows = gw.credits.usage(group_by="operation")
        assert [(r.group["operation"], r.requests, r.cost) for r in rows] == [("batch", 2, charged)]


def test_a_refused_upload_releases_every_hold_and_records_no_batch(
    server: OpenAIBatchServer, tmp_path: Path
) -> None:
    server.upload.mock(side_effect=None, return_value=error_response(wire.server_error(502)))
    with gateway(tmp_path) as gw:
        gw.credits.grant(D("1"))
        with pytest.raises(ProviderUnavailable) as raised:
            gw.batches.create(model="nightly", requests=requests(3))
        assert CANARY_KEY not in str(raised.value)
        assert gw.batches.list() == []
        assert gw.credits.balance().held == 0 and gw.credits.balance().available == D("1")
        assert not server.create.called


def test_a_batch_the_account_cannot_cover_uploads_nothing(
    server: OpenAIBatchServer, tmp_path: Path
) -> None:
    with gateway(tmp_path) as gw:
        gw.credits.grant(D("0.00001"))
        with pytest.raises(InsufficientCredits):
            gw.batches.create(model="nightly", requests=requests(3))
        assert not server.upload.called and gw.batches.list() == []


def test_the_async_surface_runs_an_openai_batch(server: OpenAIBatchServer, tmp_path: Path) -> None:
    async def main() -> list[Any]:
        agw = AsyncGateway(config=config(tmp_path), clock=ManualClock())
        try:
            await agw.credits.grant(D("1"))
            batch = await agw.batches.create(model="nightly", requests=requests(2))
            server.end(
                "completed",
                output=[ok_line("q1", wire.chat_completion(usage=USAGE_2))],
                errors=[http_error_line("q0", wire.server_error())],
                total=2,
            )
            assert (await agw.batches.retrieve(batch.id)).status == "ended"
            return await agw.batches.results(batch.id)
        finally:
            await agw.close()

    items = asyncio.run(main())
    expected = [("errored", 0), ("succeeded", batch_cost(USAGE_2))]
    assert [(i.outcome, i.cost) for i in items] == expected


def test_cancelling_a_batch_that_has_just_ended_returns_it_ended(
    server: OpenAIBatchServer, tmp_path: Path
) -> None:
    """OpenAI refuses to cancel a batch that has completed (a 4xx): the gateway polls, finds
    it ended and says so, and its results are still billed as they came."""
    with gateway(tmp_path) as gw:
        gw.credits.grant(D("1"))
        batch = gw.batches.create(model=f"openai/{MODEL}", requests=requests(1))
        server.end(
            "completed",
            output=[ok_line("q0", wire.chat_completion(usage=USAGE_0))],
            errors=[],
            total=1,
        )
        refusal = wire.error_response(
            409, "Cannot cancel a batch with status 'completed'.", type="invalid_request_error"
        )
        server.cancel.mock(side_effect=lambda request: error_response(refusal))
        ended = gw.batches.cancel(batch.id)
        assert (ended.status, ended.provider_status) == ("ended", "completed")
        (item,) = gw.batches.results(batch.id)
        assert (item.outcome, item.cost) == ("succeeded", batch_cost(USAGE_0))


def test_a_refused_cancel_of_a_running_batch_is_raised(
    server: OpenAIBatchServer, tmp_path: Path
) -> None:
    with gateway(tmp_path) as gw:
        gw.credits.grant(D("1"))
        batch = gw.batches.create(model=f"openai/{MODEL}", requests=requests(1))
        server.batch = batch_object("in_progress")
        refusal = wire.error_response(
            400, "This batch cannot be cancelled now.", type="invalid_request_error"
        )
        server.cancel.mock(side_effect=lambda request: error_response(refusal))
        with pytest.raises(InvalidRequest, match="cannot be cancelled now"):
            gw.batches.cancel(batch.id)
        assert gw.batches.retrieve(batch.id).status == "running"
