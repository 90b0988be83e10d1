"""OpenAI's batch API through the ``openai`` SDK: a JSONL file, ``/v1/batches``, result files.

- create: every item becomes one line ``{"custom_id", "method": "POST", "url":
  "/v1/chat/completions", "body"}``, whose body is exactly what a chat call with the same
  request sends (:func:`~gateway.providers.openai.native_kwargs`, ``extra_body`` merged in as
  the SDK merges it); the file is uploaded with ``files.create(purpose="batch")``, then
  ``batches.create(endpoint="/v1/chat/completions", completion_window="24h")``.
- status: ``validating`` is pending; ``in_progress``, ``finalizing`` and ``cancelling`` are
  running; ``completed``, ``failed``, ``expired`` and ``cancelled`` are ended. Counts come from
  ``request_counts`` (completed: succeeded, failed: errored); the items not counted there are
  processing, or expired / cancelled once the batch has expired / been cancelled.
- results: the output and error files (``files.content``), one line per item ``{"id",
  "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``. A 200 line is
  succeeded, its body turned into a :class:`ProviderResponse` by the chat path's
  :func:`~gateway.providers.openai.response_of_body`; a line with error code ``batch_expired``
  / ``batch_cancelled`` is expired / cancelled; any other line is errored with OpenAI's message.
  An item in neither file is expired or cancelled when the batch was, errored otherwise. A
  batch that ``failed`` as a whole (its input did not validate) has every item errored with
  the batch's own error messages.

Every SDK call runs inside the chat adapter's :class:`~gateway.providers.openai._MappedErrors`
with its sync client, so an HTTP error here is the gateway error a chat call would raise.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final, Literal

from openai.types import Batch

from gateway.errors import InvalidRequest, ProviderUnavailable
from gateway.providers.batch import (
    BatchCounts,
    BatchHandle,
    BatchItem,
    BatchItemResult,
    BatchState,
    ProviderBatch,
)
from gateway.providers.openai import OpenAIAdapter, _MappedErrors, native_kwargs, response_of_body

__all__ = ["ENDPOINT", "MAX_FILE_BYTES", "OpenAIBatches", "batch_line", "request_body"]

#: The endpoint every line of a gateway batch calls.
ENDPOINT: Final[Literal["/v1/chat/completions"]] = "/v1/chat/completions"
#: OpenAI's limit on a batch input file (200 MB); a larger batch is refused before the upload.
MAX_FILE_BYTES = 200_000_000
#: Longest provider message kept in an item's error.
_MAX_MESSAGE = 500

_STATES: dict[str, BatchState] = {
    "validating": "pending",
    "in_progress": "running",
    "finalizing": "running",
    "cancelling": "running",
    "completed": "ended",
    "failed": "ended",
    "expired": "ended",
    "cancelled": "ended",
}


def request_body(model: str, item: BatchItem) -> dict[str, Any]:
    """The JSON body a chat call of ``item.request`` would send (what the SDK builds from
    ``native_kwargs``: its keyword arguments, then ``extra_body`` merged over them)."""
    kwargs = native_kwargs(model, item.request, stream=False)
    for name in ("extra_headers", "extra_query"):
        if kwargs.pop(name, None):
            raise InvalidRequest(
                f"batch item {item.custom_id!r} has {name}: a line of an OpenAI batch carries "
                "only a body (put the value in extra_body, or send the request as a chat call)",
                provider="openai",
                model=model,
            )
    extra_body = kwargs.pop("extra_body", None)
    return {**kwargs, **extra_body} if extra_body else kwargs


def batch_line(model: str, item: BatchItem) -> dict[str, Any]:
    """One line of the input file."""
    return {
        "custom_id": item.custom_id,
        "method": "POST",
        "url": ENDPOINT,
        "body": request_body(model, item),
    }


def _input_file(model: str, items: Sequence[BatchItem]) -> bytes:
    lines = [
        json.dumps(batch_line(model, item), ensure_ascii=False, separators=(",", ":"))
        for item in items
    ]
    data = ("\n".join(lines) + "\n").encode()
    if len(data) > MAX_FILE_BYTES:
        raise InvalidRequest(
            f"the batch's input file would be {len(data):,} bytes; OpenAI takes at most "
            f"{MAX_FILE_BYTES:,}: split it into smaller batches",
            provider="openai",
            model=model,
        )
    return data


def _clip(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[:_MAX_MESSAGE] + "..."


def _counts(batch: Batch, total: int) -> BatchCounts:
    if batch.status == "failed":  # nothing ran: the input file did not validate
        return BatchCounts(errored=total)
    request_counts = batch.request_counts
    succeeded = request_counts.completed if request_counts is not None else 0
    errored = request_counts.failed if request_counts is not None else 0
    rest = max(total - succeeded - errored, 0)
    counts = BatchCounts(succeeded=succeeded, errored=errored)
    if batch.status == "expired":
        counts.expired = rest
    elif batch.status == "cancelled":
        counts.cancelled = rest
    elif batch.status == "completed":
        counts.errored += rest  # in neither result file: errored (see batch_results)
    else:
        counts.processing = rest
    return counts


def _provider_batch(batch: Batch, total: int) -> ProviderBatch:
    return ProviderBatch(batch.id, _STATES[batch.status], batch.status, _counts(batch, total))


def _batch_failure(batch: Batch) -> str:
    """The messages of a batch that failed as a whole (``errors.data``)."""
    errors = batch.errors.data if batch.errors is not None else None
    messages = [
        f"line {error.line}: {error.message}" if error.line is not None else str(error.message)
        for error in errors or ()
        if error.message
    ]
    return _clip("; ".join(messages) or "the batch failed (OpenAI gave no reason)")


def _line_error(line: dict[str, Any]) -> str:
    """What OpenAI said went wrong with one item: the line's ``error``, else the error in the
    response body, with the HTTP status and OpenAI's ``code`` (or ``type``)."""
    error = line.get("error")
    response = line.get("response")
    status = response.get("status_code") if isinstance(response, dict) else None
    if not isinstance(error, dict) and isinstance(response, dict):
        body = response.get("body")
        error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    code = (error.get("code") or error.get("type")) if isinstance(error, dict) else None
    text = message if isinstance(message, str) and message else "the request failed"
    details = [f"HTTP {status}" if isinstance(status, int) else None]
    details.append(code if isinstance(code, str) and code else None)
    shown = ", ".join(d for d in details if d)
    return _clip(f"{text} ({shown})" if shown else text)


def _item_result(custom_id: str, line: dict[str, Any]) -> BatchItemResult:
    error = line.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    if code == "batch_expired":
        return BatchItemResult(custom_id, "expired", error=_line_error(line))
    if code == "batch_cancelled":
        return BatchItemResult(custom_id, "cancelled", error=_line_error(line))
    response = line.get("response")
    if not error and isinstance(response, dict) and response.get("status_code") == 200:
        body = response.get("body")
        if isinstance(body, dict):
            return BatchItemResult(custom_id, "succeeded", response_of_body(body))
        return BatchItemResult(custom_id, "errored", error="the result line has no completion")
    return BatchItemResult(custom_id, "errored", error=_line_error(line))


def _missing(custom_id: str, status: str) -> BatchItemResult:
    """An item in neither result file."""
    if status == "expired":
        return BatchItemResult(custom_id, "expired", error="the batch expired before it ran")
    if status in ("cancelled", "cancelling"):
        return BatchItemResult(custom_id, "cancelled")
    return BatchItemResult(
        custom_id,
        "errored",
        error=f"no result for it in the batch's files (batch status {status})",
    )


class OpenAIBatches:
    """The batch API of one :class:`OpenAIAdapter` (its sync client and error mapping)."""

    def __init__(self, adapter: object) -> None:
        if not isinstance(adapter, OpenAIAdapter):
            raise TypeError(f"OpenAIBatches needs an OpenAIAdapter, not {type(adapter).__name__}")
        self.adapter = adapter

    def _errors(self, model: str) -> _MappedErrors:
        return _MappedErrors(self.adapter.name, model)

    def create_batch(self, model: str, items: Sequence[BatchItem]) -> ProviderBatch:
        data = _input_file(model, items)
        with self._errors(model):
            client = self.adapter._sync_client()
            uploaded = client.files.create(
                file=("batch.jsonl", data, "application/jsonl"), purpose="batch"
            )
            batch = client.batches.create(
                input_file_id=uploaded.id, endpoint=ENDPOINT, completion_window="24h"
            )
        return _provider_batch(batch, len(items))

    def _retrieve(self, handle: BatchHandle) -> Batch:
        with self._errors(handle.model):
            return self.adapter._sync_client().batches.retrieve(handle.id)

    def retrieve_batch(self, handle: BatchHandle, items: Sequence[BatchItem]) -> ProviderBatch:
        return _provider_batch(self._retrieve(handle), len(items))

    def cancel_batch(self, handle: BatchHandle, items: Sequence[BatchItem]) -> ProviderBatch:
        with self._errors(handle.model):
            batch = self.adapter._sync_client().batches.cancel(handle.id)
        return _provider_batch(batch, len(items))

    def _lines(self, file_id: str, model: str) -> dict[str, dict[str, Any]]:
        """A result file's lines by ``custom_id``."""
        with self._errors(model):
            data = self.adapter._sync_client().files.content(file_id).content
        lines: dict[str, dict[str, Any]] = {}
        for number, raw in enumerate(data.splitlines(), 1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                line = None
            if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
                raise ProviderUnavailable(
                    f"line {number} of the batch result file {file_id} is not a result line",
                    provider=self.adapter.name,
                    model=model,
                )
            lines[line["custom_id"]] = line
        return lines

    def batch_results(
        self, handle: BatchHandle, items: Sequence[BatchItem]
    ) -> list[BatchItemResult]:
        batch = self._retrieve(handle)
        if _STATES[batch.status] != "ended":  # no item may be released while it can still run
            raise InvalidRequest(
                f"OpenAI batch {batch.id} has not ended (status {batch.status})",
                provider=self.adapter.name,
                model=handle.model,
            )
        if batch.status == "failed":
            message = _batch_failure(batch)
            return [BatchItemResult(item.custom_id, "errored", error=message) for item in items]
        lines: dict[str, dict[str, Any]] = {}
        # The error file first: an item in both (never seen) counts as answered.
        for file_id in (batch.error_file_id, batch.output_file_id):
            if file_id:
                lines.update(self._lines(file_id, handle.model))
        return [
            _item_result(item.custom_id, lines[item.custom_id])
            if item.custom_id in lines
            else _missing(item.custom_id, batch.status)
            for item in items
        ]
