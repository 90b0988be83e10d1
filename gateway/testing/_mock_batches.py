"""The provider mocks' batch endpoints: stateful, paced by the mock's clock, in each wire format.

Each provider mock keeps the batches it was sent (:class:`MockBatch`) and answers its batch
API on the wire (the builders of :mod:`gateway.testing.wire`): OpenAI's file upload,
``/v1/batches`` and file content; Anthropic's Message Batches and their results; Gemini's
``batchGenerateContent`` (inline, or a resumable file upload), the batch operation's get and
cancel, and the result file's download.

Timing is the fake provider's (:mod:`gateway.providers._fake_batch`): item ``i`` (from 0)
finishes :data:`FAKE_ITEM_SECONDS` × (i + 1) after the batch was created, on the mock's clock.
A batch is pending until its first item finishes, running until its last has, then ended.
A cancel request answers the batch cancelling; from the next poll it is cancelled, the items
unfinished at the cancel never run. The provider's :class:`BatchScript` decides which items
error or expire and when a batch expires (its unfinished items then expired). Without a
controllable clock no time is waited for: a batch has ended at its first poll.

An item finishes with the answer a chat call to the mock would get at that moment: the
script's next outcome for the model (a reply, or a fault: an error answer is the item's error,
``timeout()`` makes it expired) or the default reply, usage counted the same way. An item's
outcome is decided once, the first time it is seen finished, and kept, so collecting twice
reads the same results.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import httpx

from gateway._clock import Clock
from gateway.providers._fake_batch import FAKE_ITEM_SECONDS
from gateway.testing._batch_script import BatchScript
from gateway.testing._mock_wire import DIALECTS, Answer, WireCall
from gateway.testing.wire import anthropic as anthropic_wire
from gateway.testing.wire import anthropic_batch, gemini_batch, openai_batch
from gateway.testing.wire import gemini as gemini_wire
from gateway.testing.wire import openai as openai_wire

__all__ = ["BATCH_SERVERS", "BatchServer", "ItemResult", "MockBatch"]

ItemKind = Literal["succeeded", "errored", "expired"]
#: Where a batch is: ``cancelling`` only in the answer to the cancel request itself.
Phase = Literal["pending", "running", "cancelling", "completed", "expired", "cancelled"]
_ENDED: frozenset[Phase] = frozenset(("completed", "expired", "cancelled"))
_EXPIRED = "the batch expired before this request ran"
_CANCELLED = "the batch was cancelled before this request ran"


@dataclass(frozen=True, slots=True)
class ItemResult:
    """How a finished item ended."""

    kind: ItemKind
    #: The answer (succeeded).
    answer: Answer | None = None
    #: The HTTP status and provider error body a chat call would have got (errored), or None
    #: for a scripted error (the provider's invalid-request error with ``message``).
    status: int = 400
    body: dict[str, Any] | None = None
    message: str = ""


#: Answers one item as a chat call: (provider, model, request body) -> its result.
ItemAnswerer = Callable[[str, str, dict[str, Any]], ItemResult]


@dataclass(slots=True)
class MockBatch:
    """One batch a provider mock was sent (``mock.openai.batches``)."""

    #: The provider's batch id (``batch_mock1``, ``msgbatch_mock1``, ``batches/mock1``).
    id: str
    #: The model the batch runs on, as the provider saw it.
    model: str
    #: ``(custom_id, request body)`` of each item, in submission order, as the provider got them.
    requests: list[tuple[str, dict[str, Any]]] = field(repr=False)
    #: When it was created, on the mock's clock (None without a clock).
    created: datetime | None = field(default=None, repr=False)
    #: Seconds after creation it was cancelled (None: never).
    cancelled_after: float | None = None
    #: Gemini: whether the requests came as a file (the results then go to a file too).
    from_file: bool = field(default=False, repr=False)
    _results: dict[int, ItemResult] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class _View:
    """A batch at one moment: its phase, and each item's state."""

    phase: Phase
    #: ``done``, ``processing``, ``expired`` or ``cancelled``, per item.
    items: list[str]


class BatchServer:
    """One provider's batch endpoints: the batches it holds, their files, and the dispatch."""

    provider = ""

    def __init__(
        self,
        base_url: str | None,
        clock: Clock | None,
        script: Callable[[], BatchScript],
        answer_item: ItemAnswerer,
    ) -> None:
        self.base = (base_url or self.default_base).rstrip("/")
        self._clock = clock
        self._script = script
        self._answer_item = answer_item
        self._lock = threading.RLock()
        self._numbers = itertools.count(1)
        self.batches: dict[str, MockBatch] = {}
        self.files: dict[str, bytes] = {}

    default_base = ""

    # -- what the subclasses say ----------------------------------------------------------------

    def patterns(self) -> list[tuple[str, str]]:
        """``(method, url regex)`` of every endpoint (no named groups: respx passes them on)."""
        raise NotImplementedError

    def dispatch(self, request: httpx.Request) -> httpx.Response:
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            return self.dispatch(request)

    def forget(self) -> None:
        """Drop every batch and file."""
        with self._lock:
            self.batches.clear()
            self.files.clear()

    def _number(self) -> int:
        return next(self._numbers)

    def _new_batch(
        self, batch_id: str, model: str, requests: list[tuple[str, dict[str, Any]]]
    ) -> MockBatch:
        created = self._clock.now() if self._clock is not None else None
        batch = MockBatch(batch_id, model, requests, created)
        self.batches[batch_id] = batch
        return batch

    def _elapsed(self, batch: MockBatch) -> float:
        if self._clock is None or batch.created is None:
            return math.inf  # nothing waits without a clock
        return (self._clock.now() - batch.created).total_seconds()

    def _view(self, batch: MockBatch, elapsed: float | None = None) -> _View:
        now = self._elapsed(batch) if elapsed is None else elapsed
        expiry = self._script().expiry_seconds
        cancelled = batch.cancelled_after
        stop = min(x for x in (now, cancelled, expiry) if x is not None)
        expired = expiry is not None and expiry <= now and (cancelled is None or expiry < cancelled)
        states = []
        for index in range(len(batch.requests)):
            if FAKE_ITEM_SECONDS * (index + 1) <= stop:
                states.append("done")
            elif expired:
                states.append("expired")
            elif cancelled is not None:
                states.append("cancelled")
            else:
                states.append("processing")
        phase: Phase
        if "processing" not in states and "cancelled" not in states and "expired" not in states:
            phase = "completed"
        elif expired:
            phase = "expired"
        elif cancelled is not None:
            phase = "cancelled"
        else:
            phase = "running" if "done" in states else "pending"
        return _View(phase, states)

    def _cancel(self, batch: MockBatch) -> _View:
        """Cancel it now; the answer to the cancel request (``cancelling`` unless it has ended)."""
        view = self._view(batch)
        if view.phase in _ENDED:
            return view
        if batch.cancelled_after is None:
            batch.cancelled_after = self._elapsed(batch)
        items = [s if s == "done" else "processing" for s in self._view(batch).items]
        return _View("cancelling", items)

    def _result(self, batch: MockBatch, index: int) -> ItemResult:
        """A finished item's end, decided the first time it is asked for and kept."""
        known = batch._results.get(index)
        if known is not None:
            return known
        custom_id, body = batch.requests[index]
        scripted = self._script().outcome_for(index, custom_id)
        if scripted is not None:
            result = ItemResult(scripted.outcome, message=scripted.error)
        else:
            result = self._answer_item(self.provider, batch.model, body)
        batch._results[index] = result
        return result

    def _ends(self, batch: MockBatch, view: _View) -> list[tuple[str, ItemResult | str]]:
        """Each item's custom_id and its end: a result (done) or ``expired`` / ``cancelled`` /
        ``processing``. Outcomes are decided in item order."""
        return [
            (custom_id, self._result(batch, index) if state == "done" else state)
            for index, ((custom_id, _), state) in enumerate(
                zip(batch.requests, view.items, strict=True)
            )
        ]

    @staticmethod
    def _tally(ends: Sequence[tuple[str, ItemResult | str]]) -> dict[str, int]:
        counts = {"succeeded": 0, "errored": 0, "expired": 0, "cancelled": 0, "processing": 0}
        for _, end in ends:
            counts[end.kind if isinstance(end, ItemResult) else end] += 1
        return counts

    def _find(self, batch_id: str) -> MockBatch | None:
        return self.batches.get(batch_id)


def _json(request: httpx.Request) -> dict[str, Any]:
    try:
        body = json.loads(request.content or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _body(provider: str, model: str, answer: Answer) -> dict[str, Any]:
    """A succeeded item's answer: the JSON a chat call to the mock gets."""
    return DIALECTS[provider].body(WireCall(model, False, {}), answer)


# ---------------------------------------------------------------------------------------------
# OpenAI


class _OpenAIBatches(BatchServer):
    provider = "openai"
    default_base = openai_wire.API_BASE

    def patterns(self) -> list[tuple[str, str]]:
        base = re.escape(self.base)
        return [
            ("POST", base + r"/files(?:\?.*)?$"),
            ("GET", base + r"/files/[^/?]+/content(?:\?.*)?$"),
            ("POST", base + r"/batches(?:\?.*)?$"),
            ("GET", base + r"/batches/[^/?]+(?:\?.*)?$"),
            ("POST", base + r"/batches/[^/?]+/cancel(?:\?.*)?$"),
        ]

    def dispatch(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        parts = path.rstrip("/").split("/")
        if path.endswith("/files"):
            return self._upload(request)
        if path.endswith("/content"):
            content = self.files.get(parts[-2])
            if content is None:
                return self._not_found(f"No such File object: {parts[-2]}")
            return httpx.Response(
                200, content=content, headers={"content-type": "application/octet-stream"}
            )
        if path.endswith("/batches"):
            return self._create(request)
        cancel = parts[-1] == "cancel"
        batch = self._find(parts[-2] if cancel else parts[-1])
        if batch is None:
            return self._not_found(f"No batch found with id '{parts[-2 if cancel else -1]}'.")
        view = self._cancel(batch) if cancel else self._view(batch)
        return httpx.Response(200, json=self._batch_object(batch, view))

    def _not_found(self, message: str) -> httpx.Response:
        error = openai_wire.invalid_request_error(message, status=404)
        return httpx.Response(error.status, json=error.body, headers=error.headers)

    def _upload(self, request: httpx.Request) -> httpx.Response:
        fields = openai_batch.multipart(request)
        filename, data = fields.get("file", (None, b""))
        purpose = fields.get("purpose", (None, b"batch"))[1].decode()
        file_id = f"file-mock{self._number()}"
        self.files[file_id] = data
        body = openai_batch.file_object(file_id, len(data), purpose, filename=filename or "file")
        return httpx.Response(200, json=body)

    def _create(self, request: httpx.Request) -> httpx.Response:
        input_file = str(_json(request).get("input_file_id"))
        data = self.files.get(input_file)
        if data is None:
            return self._not_found(f"No such File object: {input_file}")
        lines = [json.loads(line) for line in data.splitlines() if line.strip()]
        requests = [(str(line["custom_id"]), dict(line["body"])) for line in lines]
        model = str(requests[0][1].get("model", "")) if requests else ""
        batch = self._new_batch(f"batch_mock{self._number()}", model, requests)
        return httpx.Response(200, json=self._batch_object(batch, self._view(batch, 0.0)))

    def _batch_object(self, batch: MockBatch, view: _View) -> dict[str, Any]:
        ends = self._ends(batch, view)
        counts = self._tally(ends)
        status = {
            "pending": "validating",
            "running": "in_progress",
            "cancelling": "cancelling",
            "completed": "completed",
            "expired": "expired",
            "cancelled": "cancelled",
        }[view.phase]
        if status == "completed" and counts["expired"]:
            status = "expired"  # OpenAI expires requests only by expiring their batch
        output_id = error_id = None
        if view.phase in _ENDED:
            output_id, error_id = self._result_files(batch, ends)
        return openai_batch.batch_object(
            status,
            batch_id=batch.id,
            model=batch.model,
            total=len(batch.requests),
            completed=counts["succeeded"],
            failed=counts["errored"],
            output_file_id=output_id,
            error_file_id=error_id,
        )

    def _result_files(
        self, batch: MockBatch, ends: Sequence[tuple[str, ItemResult | str]]
    ) -> tuple[str | None, str | None]:
        output, errors = [], []
        for custom_id, end in ends:
            if isinstance(end, ItemResult) and end.kind == "succeeded":
                assert end.answer is not None
                body = _body("openai", batch.model, end.answer)
                output.append(openai_batch.ok_line(custom_id, body))
            elif isinstance(end, ItemResult) and end.kind == "errored":
                error = (
                    openai_wire.WireError(end.status, end.body)
                    if end.body is not None
                    else openai_wire.invalid_request_error(end.message)
                )
                errors.append(openai_batch.http_error_line(custom_id, error))
            elif end == "cancelled":
                errors.append(
                    openai_batch.batch_error_line(custom_id, "batch_cancelled", _CANCELLED)
                )
            else:  # expired, by the script or with the batch
                message = end.message if isinstance(end, ItemResult) else _EXPIRED
                errors.append(openai_batch.batch_error_line(custom_id, "batch_expired", message))
        output_id, error_id = f"file-{batch.id}-output", f"file-{batch.id}-errors"
        self.files[output_id] = openai_batch.jsonl(output)
        self.files[error_id] = openai_batch.jsonl(errors)
        return (output_id if output else None), (error_id if errors else None)


# ---------------------------------------------------------------------------------------------
# Anthropic


class _AnthropicBatches(BatchServer):
    provider = "anthropic"
    default_base = "https://api.anthropic.com"

    @property
    def _batches_url(self) -> str:
        return f"{self.base}/v1/messages/batches"

    def patterns(self) -> list[tuple[str, str]]:
        base = re.escape(self._batches_url)
        return [
            ("POST", base + r"(?:\?.*)?$"),
            ("GET", base + r"/[^/?]+(?:/results)?(?:\?.*)?$"),
            ("POST", base + r"/[^/?]+/cancel(?:\?.*)?$"),
        ]

    def dispatch(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.rstrip("/").split("/")
        if parts[-1] == "batches":
            return self._create(request)
        action = parts[-1] if parts[-1] in ("cancel", "results") else None
        batch_id = parts[-2] if action else parts[-1]
        batch = self._find(batch_id)
        if batch is None:
            return self._error(404, f"No message batch with id {batch_id!r}")
        view = self._view(batch)
        if action == "results":
            if view.phase not in _ENDED:
                return self._error(404, f"Message batch {batch_id} has no results yet")
            return self._results(batch, view)
        if action == "cancel":
            if view.phase in _ENDED:
                return self._error(400, f"Message batch {batch_id} has already ended")
            view = self._cancel(batch)
        return httpx.Response(200, json=self._batch_body(batch, view))

    def _error(self, status: int, message: str) -> httpx.Response:
        body = anthropic_wire.error_for_status(status, message)
        return httpx.Response(status, json=body, headers=anthropic_wire.error_headers())

    def _create(self, request: httpx.Request) -> httpx.Response:
        sent = _json(request).get("requests") or []
        requests = [(str(r["custom_id"]), dict(r["params"])) for r in sent]
        model = str(requests[0][1].get("model", "")) if requests else ""
        batch = self._new_batch(f"msgbatch_mock{self._number()}", model, requests)
        return httpx.Response(200, json=self._batch_body(batch, self._view(batch, 0.0)))

    def _batch_body(self, batch: MockBatch, view: _View) -> dict[str, Any]:
        base = self._batches_url
        if view.phase not in _ENDED:  # Anthropic counts nothing until the whole batch ends
            status = "canceling" if view.phase == "cancelling" else "in_progress"
            return anthropic_batch.batch_body(
                status, processing=len(batch.requests), batch_id=batch.id, base=base
            )
        counts = self._tally(self._ends(batch, view))
        return anthropic_batch.batch_body(
            "ended",
            succeeded=counts["succeeded"],
            errored=counts["errored"],
            expired=counts["expired"],
            canceled=counts["cancelled"],
            batch_id=batch.id,
            base=base,
        )

    def _results(self, batch: MockBatch, view: _View) -> httpx.Response:
        lines = []
        for custom_id, end in self._ends(batch, view):
            if isinstance(end, ItemResult) and end.kind == "succeeded":
                assert end.answer is not None
                message = _body("anthropic", batch.model, end.answer)
                lines.append(anthropic_batch.succeeded(custom_id, **message))
            elif isinstance(end, ItemResult) and end.kind == "errored":
                error = end.body or anthropic_wire.error_body("invalid_request_error", end.message)
                lines.append(
                    {"custom_id": custom_id, "result": {"type": "errored", "error": error}}
                )
            elif end == "cancelled":
                lines.append(anthropic_batch.ended_without_answer(custom_id, "canceled"))
            else:
                lines.append(anthropic_batch.ended_without_answer(custom_id, "expired"))
        headers = {"content-type": "application/binary"}
        return httpx.Response(200, content=anthropic_batch.jsonl(lines), headers=headers)


# ---------------------------------------------------------------------------------------------
# Gemini

#: google.rpc codes of HTTP statuses, for an item's error (Gemini reports a Status per item).
_RPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 10, 429: 8, 500: 13, 501: 12, 503: 14}
_RPC_CANCELLED, _RPC_DEADLINE_EXCEEDED, _RPC_INVALID_ARGUMENT = 1, 4, 3


class _GeminiBatches(BatchServer):
    provider = "gemini"
    default_base = gemini_wire.DEFAULT_BASE_URL

    def patterns(self) -> list[tuple[str, str]]:
        base = re.escape(self.base)
        return [
            ("POST", base + r"/[^/]+/models/[^/:?]+:batchGenerateContent(?:\?.*)?$"),
            ("GET", base + r"/[^/]+/batches/[^/:?]+(?:\?.*)?$"),
            ("POST", base + r"/[^/]+/batches/[^/:?]+:cancel(?:\?.*)?$"),
            ("POST", base + r"/upload/[^/]+/files(?:\?.*)?$"),
            ("GET", base + r"/[^/]+/files/[^/:?]+:download(?:\?.*)?$"),
        ]

    def dispatch(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith(":batchGenerateContent"):
            model = path.rsplit("/", 1)[-1].split(":", 1)[0]
            return self._create(request, model)
        if "/upload/" in path:
            return self._upload(request)
        if path.endswith(":download"):
            name = "files/" + path.rsplit("/", 1)[-1].split(":", 1)[0]
            content = self.files.get(name)
            if content is None:
                return self._error(404, f"File {name} not found.")
            return httpx.Response(200, content=content)
        cancel = path.endswith(":cancel")
        name = "batches/" + path.rsplit("/", 1)[-1].split(":", 1)[0]
        batch = self._find(name)
        if batch is None:
            return self._error(404, f"Batch {name} not found.")
        if cancel:
            self._cancel(batch)
            return httpx.Response(200, json={})
        return httpx.Response(200, json=self._operation(batch, self._view(batch)))

    def _error(self, status: int, message: str) -> httpx.Response:
        return httpx.Response(status, json=gemini_wire.error_body(status, message))

    def _upload(self, request: httpx.Request) -> httpx.Response:
        command = request.headers.get("x-goog-upload-command", "")
        if "start" in command:
            session = f"{self.base}/upload/{gemini_batch.API_VERSION}/files"
            session += f"?upload_id=mock-u{self._number()}"
            return httpx.Response(200, headers=gemini_batch.upload_start_headers(session))
        name = f"files/mock-in{self._number()}"
        self.files[name] = request.content
        body = gemini_batch.uploaded_file(name, len(request.content))
        return httpx.Response(200, json=body, headers=gemini_batch.upload_finished_headers())

    def _create(self, request: httpx.Request, model: str) -> httpx.Response:
        config = (_json(request).get("batch") or {}).get("inputConfig") or {}
        file_name = config.get("fileName")
        if isinstance(file_name, str):
            data = self.files.get(file_name)
            if data is None:
                return self._error(404, f"File {file_name} not found.")
            lines = [json.loads(line) for line in data.splitlines() if line.strip()]
            requests = [(str(line["key"]), dict(line["request"])) for line in lines]
        else:
            inline = (config.get("requests") or {}).get("requests") or []
            requests = [
                (str((r.get("metadata") or {}).get("key", i)), dict(r["request"]))
                for i, r in enumerate(inline)
            ]
        batch = self._new_batch(f"batches/mock{self._number()}", model, requests)
        batch.from_file = isinstance(file_name, str)
        return httpx.Response(200, json=self._operation(batch, self._view(batch, 0.0)))

    def _operation(self, batch: MockBatch, view: _View) -> dict[str, Any]:
        ends = self._ends(batch, view)
        counts = self._tally(ends)
        state = {
            "pending": "BATCH_STATE_PENDING",
            "running": "BATCH_STATE_RUNNING",
            "cancelling": "BATCH_STATE_RUNNING",
            "completed": "BATCH_STATE_SUCCEEDED",
            "expired": "BATCH_STATE_EXPIRED",
            "cancelled": "BATCH_STATE_CANCELLED",
        }[view.phase]
        if state == "BATCH_STATE_SUCCEEDED" and counts["expired"]:
            state = "BATCH_STATE_EXPIRED"  # the batch's end says why the items have no answer
        inline: list[dict[str, Any]] | None = None
        responses_file: str | None = None
        if view.phase in _ENDED:
            answers = [self._answer(batch, end) for _, end in ends]
            if batch.from_file:
                responses_file = f"files/{batch.id.split('/', 1)[1]}-results"
                lines = [
                    {"key": custom_id, **answer}
                    for (custom_id, _), answer in zip(ends, answers, strict=True)
                ]
                self.files[responses_file] = gemini_batch.jsonl(lines)
            else:
                inline = answers
        return gemini_batch.batch_operation(
            batch.id,
            state,
            model=batch.model,
            requests=len(batch.requests),
            succeeded=counts["succeeded"],
            failed=counts["errored"],
            inline=inline,
            responses_file=responses_file,
        )

    def _answer(self, batch: MockBatch, end: ItemResult | str) -> dict[str, Any]:
        """One answer, ``{"response"}`` or ``{"error"}`` (a google.rpc Status)."""
        if isinstance(end, ItemResult) and end.kind == "succeeded":
            assert end.answer is not None
            body = _body("gemini", batch.model, end.answer)
            return gemini_batch.inline_response(body)
        if isinstance(end, ItemResult) and end.kind == "errored":
            error = (end.body or {}).get("error")
            if isinstance(error, dict):
                code = _RPC_CODES.get(end.status, 2)  # 2: UNKNOWN
                return gemini_batch.inline_error(code, str(error.get("message")))
            return gemini_batch.inline_error(_RPC_INVALID_ARGUMENT, end.message)
        if end == "cancelled":
            return gemini_batch.inline_error(_RPC_CANCELLED, _CANCELLED)
        message = end.message if isinstance(end, ItemResult) else _EXPIRED
        return gemini_batch.inline_error(_RPC_DEADLINE_EXCEEDED, message)


#: The batch server class of each provider.
BATCH_SERVERS: Mapping[str, type[BatchServer]] = {
    "openai": _OpenAIBatches,
    "anthropic": _AnthropicBatches,
    "gemini": _GeminiBatches,
}
