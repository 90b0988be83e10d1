"""Gemini's batch mode through google-genai: a list of chat requests at the batch rate.

Submission: each item's body is the ``generateContent`` body a chat call sends
(:meth:`GeminiAdapter.request_body <gateway.providers.gemini.GeminiAdapter.request_body>`,
the call's ``extra_body`` merged in as the SDK merges it for a chat call). While the requests'
JSON (as JSONL, one ``{"key": custom_id, "request": {...}}`` per line) fits in
:data:`INLINE_LIMIT_BYTES`, they go inline in ``models/<model>:batchGenerateContent``
(``inputConfig.requests.requests``: ``{"request", "metadata": {"key"}}`` each); past it, the
JSONL is uploaded (``files.upload``, mime type ``jsonl``) and the batch names the file
(``inputConfig.fileName``). ``extra_headers`` has no place in a batch (one HTTP request for
all items) and is refused; a per-call timeout does not apply.

Every call goes to the API version of Gemini's batch mode, :data:`BATCH_API_VERSION`
(google-genai 3.x defaults to ``v1``), with the adapter's own client: its key, base URL,
headers and timeout. Creating and polling go through the client's ``request`` layer (the one
under ``batches.create`` / ``batches.get``): the SDK's ``BatchJob`` leaves out the API's
``batchStats`` (the counts) and would parse every answer into models only for them to be read
back; here each answer's JSON goes through :func:`~gateway.providers.gemini.to_response`,
exactly as a chat call's does. Cancel, upload and download are the SDK's own
(``batches.cancel``, ``files.upload``, ``files.download``). Every SDK error is mapped by the
chat adapter's :func:`~gateway.providers.gemini.map_error`.

Status: ``BATCH_STATE_*`` on the wire, kept as the SDK names it (``JOB_STATE_PENDING``, ...,
``provider_status``): pending -> ``pending``, running -> ``running``, succeeded / failed /
cancelled / expired -> ``ended``. Counts come from ``batchStats``; once ended, the requests
without a result are ``cancelled`` (cancelled batch), ``expired`` (expired batch) or
``errored`` (failed batch).

Results: inline answers (``output.inlinedResponses``) come back in request order, so an item
is found by position; a result file (``output.responsesFile``, downloaded) carries each line's
``key``. An answer with ``response`` is ``succeeded``; with ``error`` it is ``errored``
(``cancelled`` / ``expired`` for google.rpc CANCELLED / DEADLINE_EXCEEDED) with the provider's
message; an item with no answer takes the batch's end as above.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from google.genai import _common, types
from google.genai import _transformers as transformers

from gateway.errors import InvalidRequest, ProviderUnavailable, redact
from gateway.providers._common import completion_body
from gateway.providers.batch import (
    BatchCounts,
    BatchHandle,
    BatchItem,
    BatchItemResult,
    BatchState,
    ItemOutcome,
    ProviderBatch,
)
from gateway.providers.gemini import GeminiAdapter, _mapped_errors, to_response

__all__ = ["BATCH_API_VERSION", "INLINE_LIMIT_BYTES", "GeminiBatches"]

#: Most request JSON sent inline (Gemini documents 20 MB); a bigger batch is uploaded as a file.
INLINE_LIMIT_BYTES = 20_000_000
#: Gemini's batch mode (``batchGenerateContent``, ``batches``, ``files``) is documented on v1beta.
BATCH_API_VERSION = "v1beta"
#: ``batch.displayName`` (required by the API).
DISPLAY_NAME = "gateway batch"

_STATES: dict[str, BatchState] = {
    "JOB_STATE_UNSPECIFIED": "pending",
    "JOB_STATE_PENDING": "pending",
    "JOB_STATE_RUNNING": "running",
    "JOB_STATE_SUCCEEDED": "ended",
    "JOB_STATE_FAILED": "ended",
    "JOB_STATE_CANCELLED": "ended",
    "JOB_STATE_EXPIRED": "ended",
}
#: What an item without an answer is once the batch has ended, by the batch's state
#: (any other ended state: errored).
_UNANSWERED: dict[str, ItemOutcome] = {
    "JOB_STATE_CANCELLED": "cancelled",
    "JOB_STATE_EXPIRED": "expired",
}
#: google.rpc codes of an item's error that say it was not run: CANCELLED, DEADLINE_EXCEEDED.
_ERROR_OUTCOMES: dict[int, ItemOutcome] = {1: "cancelled", 4: "expired"}
_BATCH_NAME = re.compile(r"batches/[^/?#\s]+")


def _count(value: Any, default: int = 0) -> int:
    """A ``batchStats`` count (int64: a string on the wire)."""
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def _error_message(error: Any) -> str:
    """A google.rpc ``Status`` as one line, with nothing secret in it."""
    if not isinstance(error, Mapping):
        return "the request failed"
    message = str(error.get("message") or "the request failed")
    code = error.get("code")
    return redact(f"{message} (code {code})" if code is not None else message)


class GeminiBatches:
    """The batch API of one :class:`GeminiAdapter` (its sync client)."""

    def __init__(self, adapter: GeminiAdapter) -> None:
        self.adapter = adapter
        self._options = types.HttpOptions(api_version=BATCH_API_VERSION)

    # -- submission -----------------------------------------------------------------------------

    def _line(self, model: str, item: BatchItem) -> dict[str, Any]:
        """The item as a line of the JSONL file: its key and a chat call's request body."""
        body, http_options = self.adapter.request_body(model, item.request)
        if http_options is not None and http_options.headers:
            raise InvalidRequest(
                f"batch item {item.custom_id!r}: extra_headers cannot be sent with one request "
                "of a Gemini batch (the batch is one HTTP request); leave them out",
                provider=self.adapter.name,
                model=model,
            )
        if http_options is not None and http_options.extra_body:
            _common.recursive_dict_update(body, http_options.extra_body)
        return {"key": item.custom_id, "request": body}

    def create_batch(self, model: str, items: Sequence[BatchItem]) -> ProviderBatch:
        lines = [self._line(model, item) for item in items]
        jsonl = b"".join(
            json.dumps(line, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
            for line in lines
        )
        client = self.adapter._sync_client()
        api = client._api_client
        source: dict[str, Any]
        with _mapped_errors(self.adapter.name, model):
            if len(jsonl) <= INLINE_LIMIT_BYTES:
                inline = [
                    {"request": line["request"], "metadata": {"key": line["key"]}} for line in lines
                ]
                source = {"requests": {"requests": inline}}
            else:
                uploaded = client.files.upload(
                    file=io.BytesIO(jsonl),
                    config=types.UploadFileConfig(
                        mime_type="jsonl", display_name=DISPLAY_NAME, http_options=self._options
                    ),
                )
                if not uploaded.name:
                    raise ProviderUnavailable(
                        "the uploaded batch file came back without a name",
                        provider=self.adapter.name,
                        model=model,
                    )
                source = {"fileName": uploaded.name}
            response = api.request(
                "post",
                f"{transformers.t_model(api, model)}:batchGenerateContent",
                {"batch": {"displayName": DISPLAY_NAME, "inputConfig": source}},
                self._options,
            )
        return self._batch(self._operation(response, model), len(items))

    # -- status ---------------------------------------------------------------------------------

    def _operation(self, response: Any, model: str) -> dict[str, Any]:
        operation = completion_body(response.body, provider=self.adapter.name, model=model)
        name = operation.get("name")
        if not isinstance(name, str) or not _BATCH_NAME.fullmatch(name):
            raise ProviderUnavailable(
                "the batch answer has no batch name", provider=self.adapter.name, model=model
            )
        return operation

    def _get(self, handle: BatchHandle) -> dict[str, Any]:
        if not _BATCH_NAME.fullmatch(handle.id):
            raise InvalidRequest(
                f"{handle.id!r} is not a Gemini batch name (batches/...)",
                provider=self.adapter.name,
                model=handle.model,
            )
        api = self.adapter._sync_client()._api_client
        with _mapped_errors(self.adapter.name, handle.model):
            response = api.request("get", handle.id, {}, self._options)
        return self._operation(response, handle.model)

    @staticmethod
    def _state(operation: Mapping[str, Any]) -> str:
        metadata = operation.get("metadata") or {}
        return transformers.t_job_state(str(metadata.get("state") or "BATCH_STATE_UNSPECIFIED"))

    def _batch(self, operation: Mapping[str, Any], size: int) -> ProviderBatch:
        state = self._state(operation)
        stats = (operation.get("metadata") or {}).get("batchStats") or {}
        succeeded = _count(stats.get("successfulRequestCount"))
        errored = _count(stats.get("failedRequestCount"))
        rest = max(_count(stats.get("requestCount"), size) - succeeded - errored, 0)
        counts = BatchCounts(succeeded=succeeded, errored=errored)
        normalised = _STATES.get(state, "running")
        if normalised != "ended":
            counts.processing = rest
        else:
            outcome = _UNANSWERED.get(state, "errored")
            setattr(counts, outcome, getattr(counts, outcome) + rest)
        return ProviderBatch(str(operation["name"]), normalised, state, counts)

    def retrieve_batch(self, handle: BatchHandle, items: Sequence[BatchItem]) -> ProviderBatch:
        return self._batch(self._get(handle), len(items))

    def cancel_batch(self, handle: BatchHandle, items: Sequence[BatchItem]) -> ProviderBatch:
        client = self.adapter._sync_client()
        with _mapped_errors(self.adapter.name, handle.model):
            client.batches.cancel(
                name=handle.id, config=types.CancelBatchJobConfig(http_options=self._options)
            )
        return self.retrieve_batch(handle, items)

    # -- results --------------------------------------------------------------------------------

    def _result(self, custom_id: str, answer: Any, model: str) -> BatchItemResult:
        """One answer (inline or a line of the result file) as the item's outcome."""
        response = answer.get("response") if isinstance(answer, Mapping) else None
        if isinstance(response, Mapping):  # a generateContent body: read as a chat call's is
            return BatchItemResult(custom_id, "succeeded", to_response(response, model))
        error = answer.get("error") if isinstance(answer, Mapping) else None
        code = error.get("code") if isinstance(error, Mapping) else None
        outcome = _ERROR_OUTCOMES.get(code, "errored") if isinstance(code, int) else "errored"
        return BatchItemResult(custom_id, outcome, error=_error_message(error))

    @staticmethod
    def _unanswered(custom_id: str, state: str, operation: Mapping[str, Any]) -> BatchItemResult:
        outcome = _UNANSWERED.get(state, "errored")
        if outcome == "cancelled":
            return BatchItemResult(custom_id, "cancelled")
        if outcome == "expired":
            return BatchItemResult(
                custom_id, "expired", error="the batch expired before this request ran"
            )
        why = operation.get("error")
        error = f"the batch ended ({state}) without an answer to this request"
        return BatchItemResult(
            custom_id, "errored", error=f"{error}: {_error_message(why)}" if why else error
        )

    def _file_answers(self, file_name: str, model: str) -> dict[str, Any]:
        client = self.adapter._sync_client()
        with _mapped_errors(self.adapter.name, model):
            data = client.files.download(
                file=file_name, config=types.DownloadFileConfig(http_options=self._options)
            )
        answers: dict[str, Any] = {}
        for number, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                answer = json.loads(line)
            except ValueError:
                answer = None
            if not isinstance(answer, dict) or not isinstance(answer.get("key"), str):
                raise ProviderUnavailable(
                    f"line {number} of the batch's result file {file_name} is not a keyed answer",
                    provider=self.adapter.name,
                    model=model,
                )
            answers[answer["key"]] = answer
        return answers

    def batch_results(
        self, handle: BatchHandle, items: Sequence[BatchItem]
    ) -> list[BatchItemResult]:
        operation = self._get(handle)
        state = self._state(operation)
        metadata = operation.get("metadata") or {}
        output = metadata.get("output") or operation.get("response") or {}
        model = handle.model
        answers: Sequence[Any] | Mapping[str, Any]
        file_name = output.get("responsesFile")
        if isinstance(file_name, str) and file_name:
            by_key = self._file_answers(file_name, model)
            answers = [by_key.get(item.custom_id) for item in items]
        else:  # inline answers come back in request order
            answers = (output.get("inlinedResponses") or {}).get("inlinedResponses") or []
        results = []
        for index, item in enumerate(items):
            answer = answers[index] if index < len(answers) else None
            if answer is None:
                results.append(self._unanswered(item.custom_id, state, operation))
            else:
                results.append(self._result(item.custom_id, answer, model))
        return results
