"""Anthropic's Message Batches behind :class:`~gateway.providers.batch.BatchAdapter`.

Through the chat adapter's own sync client (its key, base_url, timeouts, headers; retries off):
``messages.batches.create(requests=[{"custom_id", "params"}])``, ``retrieve``, ``cancel`` and
``results`` (the SDK reads the batch's ``results_url``, a JSON line per request). Each item's
``params`` are :func:`~gateway.providers._anthropic_request.build_params`'s, as a chat call's,
with ``extra_body`` merged into them as the SDK merges it into a chat call's body; each
succeeded ``message`` goes through the chat adapter's ``_response``, so usage is the same.
SDK errors go through the chat adapter's ``map_error``.

- ``custom_id``: Anthropic takes 1-64 characters of ``[A-Za-z0-9_-]``. When every item's id
  fits they are sent as they are; otherwise every item is sent as ``item-<index>`` (its place
  in the batch, which the gateway keeps) and mapped back when the results are read.
- Status: ``in_progress`` and ``canceling`` are ``running`` (a batch starts processing when it
  is created; Anthropic does not say when the first request has), ``ended`` is ``ended``.
  Anthropic's counts stay at ``processing`` until the whole batch ends.
- Outcomes: ``errored`` with Anthropic's error type and message; ``expired`` (the batch hit
  Anthropic's 24-hour limit first) and ``canceled`` -> ``cancelled``. A request the results
  do not mention is ``errored`` (so its hold is released, never charged).
- ``extra_headers`` / ``extra_query`` of a chat call are options of an HTTP request, and a
  batch is one request: they are sent with the create call when every item has the same
  (an ``anthropic-beta`` header, say), refused (InvalidRequest) otherwise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import anthropic

from gateway.errors import InvalidRequest, raise_unchained, redact
from gateway.providers._anthropic_request import build_params
from gateway.providers.anthropic import AnthropicAdapter, _mapped_errors, _response
from gateway.providers.batch import (
    BatchCounts,
    BatchHandle,
    BatchItem,
    BatchItemResult,
    BatchState,
    ProviderBatch,
)

__all__ = ["AnthropicBatches", "wire_custom_ids"]

_CUSTOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

_STATES: Mapping[str, BatchState] = {
    "in_progress": "running",
    "canceling": "running",
    "ended": "ended",
}

#: Why an expired item has no answer (Anthropic's result carries no message).
EXPIRED_MESSAGE = "the batch reached Anthropic's 24-hour limit before this request ran"
#: An item the results file does not mention.
MISSING_MESSAGE = "Anthropic's results have no line for this request"


def wire_custom_ids(items: Sequence[BatchItem]) -> list[str]:
    """The ``custom_id`` each item is sent with: the caller's when every one is valid at
    Anthropic, else ``item-<index>`` for all (so no mapped id can collide with a caller's)."""
    if all(_CUSTOM_ID.fullmatch(item.custom_id) for item in items):
        return [item.custom_id for item in items]
    return [f"item-{index}" for index in range(len(items))]


def _provider_batch(batch: Any) -> ProviderBatch:
    counts = batch.request_counts
    return ProviderBatch(
        id=batch.id,
        state=_STATES.get(batch.processing_status, "running"),
        provider_status=batch.processing_status,
        counts=BatchCounts(
            processing=counts.processing,
            succeeded=counts.succeeded,
            errored=counts.errored,
            expired=counts.expired,
            cancelled=counts.canceled,
        ),
    )


def _error_text(error: Any) -> str:
    """``{"type": "error", "error": {"type", "message"}}`` -> ``"<type>: <message>"``."""
    inner = error.get("error") if isinstance(error, Mapping) else None
    if not isinstance(inner, Mapping):
        return "Anthropic reported an error without details"
    kind, message = inner.get("type") or "error", inner.get("message") or "no error message"
    return redact(f"{kind}: {message}"[:500])


class AnthropicBatches:
    """The Message Batches API of one :class:`AnthropicAdapter`."""

    def __init__(self, adapter: AnthropicAdapter) -> None:
        self.adapter = adapter

    def _requests(
        self, model: str, items: Sequence[BatchItem]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Every item as ``{"custom_id", "params"}``, and the options of the create call."""
        name = self.adapter.name
        requests = []
        options: dict[str, Any] | None = None
        for index, (item, wire_id) in enumerate(zip(items, wire_custom_ids(items), strict=True)):
            where = f"requests[{index}] ({item.custom_id!r})"
            try:
                params = build_params(model, item.request, provider=name)
            except InvalidRequest as exc:
                message = f"{where}: {exc.message}"
                raise InvalidRequest(message, provider=name, model=model) from None
            params.update(params.pop("extra_body", None) or {})  # as the SDK merges it
            item_options: dict[str, Any] = {
                key: params.pop(key) for key in ("extra_headers", "extra_query") if key in params
            }
            if options is None:
                options = item_options
            elif item_options != options:
                raise InvalidRequest(
                    f"{where}: extra_headers / extra_query differ from requests[0]'s; a batch "
                    "is one HTTP request to Anthropic, so every item must have the same",
                    provider=name,
                    model=model,
                )
            requests.append({"custom_id": wire_id, "params": params})
        return requests, options or {}

    def create_batch(self, model: str, items: Sequence[BatchItem]) -> ProviderBatch:
        requests, options = self._requests(model, items)
        client = self.adapter._get_client()
        with _mapped_errors(self.adapter.name, model):
            batch = client.messages.batches.create(requests=requests, **options)  # type: ignore[arg-type]
        return _provider_batch(batch)

    def retrieve_batch(self, handle: BatchHandle, items: Sequence[BatchItem]) -> ProviderBatch:
        client = self.adapter._get_client()
        with _mapped_errors(self.adapter.name, handle.model):
            batch = client.messages.batches.retrieve(handle.id)
        return _provider_batch(batch)

    def cancel_batch(self, handle: BatchHandle, items: Sequence[BatchItem]) -> ProviderBatch:
        # A refusal because it has just ended is handled by gw.batches, for every provider.
        client = self.adapter._get_client()
        with _mapped_errors(self.adapter.name, handle.model):
            batch = client.messages.batches.cancel(handle.id)
        return _provider_batch(batch)

    def batch_results(
        self, handle: BatchHandle, items: Sequence[BatchItem]
    ) -> list[BatchItemResult]:
        lines = self._result_lines(handle)
        by_wire_id = dict(zip(wire_custom_ids(items), items, strict=True))
        found: dict[str, BatchItemResult] = {}
        for line in lines:
            item = by_wire_id.get(str(line.get("custom_id")))
            result = line.get("result")
            if item is not None and isinstance(result, Mapping):
                found[item.custom_id] = self._result(handle, item, result)
        return [
            found.get(item.custom_id)
            or BatchItemResult(item.custom_id, "errored", error=MISSING_MESSAGE)
            for item in items
        ]

    def _result_lines(self, handle: BatchHandle) -> list[dict[str, Any]]:
        """The results file's lines as sent (JSON), not through the SDK's models: a succeeded
        line's ``message`` is then read exactly as a chat call's body is."""
        name, model = self.adapter.name, handle.model
        client = self.adapter._get_client()
        try:
            with (
                _mapped_errors(name, model),
                client.messages.batches.with_streaming_response.results(handle.id) as response,
            ):
                lines = (json.loads(line) for line in response.iter_lines() if line.strip())
                return [line for line in lines if isinstance(line, dict)]
        except anthropic.AnthropicError:  # not an API error: the SDK found no results_url
            raise_unchained(
                InvalidRequest(
                    f"Anthropic has no results for batch {handle.id!r} (they are kept 29 days "
                    "after it ends)",
                    provider=name,
                    model=model,
                )
            )

    def _result(
        self, handle: BatchHandle, item: BatchItem, result: Mapping[str, Any]
    ) -> BatchItemResult:
        kind = result.get("type")
        if kind == "succeeded":
            return BatchItemResult(
                item.custom_id, "succeeded", _response(result.get("message") or {}, handle.model)
            )
        if kind == "expired":
            return BatchItemResult(item.custom_id, "expired", error=EXPIRED_MESSAGE)
        if kind == "canceled":
            return BatchItemResult(item.custom_id, "cancelled")
        if kind == "errored":
            error = _error_text(result.get("error"))
            return BatchItemResult(item.custom_id, "errored", error=error)
        return BatchItemResult(
            item.custom_id, "errored", error=f"unknown result type {str(kind)[:40]!r}"
        )
