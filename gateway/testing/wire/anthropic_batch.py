"""Anthropic's Message Batches on the wire, as JSON-able dicts and bytes (what the ``anthropic``
SDK reads).

- create: ``POST /v1/messages/batches`` with ``{"requests": [{"custom_id", "params"}]}``;
  poll: ``GET /v1/messages/batches/<id>``; cancel: ``POST /v1/messages/batches/<id>/cancel``:
  each answers a :func:`batch_body` (a ``MessageBatch``);
- results: ``GET`` the batch's ``results_url`` (``/v1/messages/batches/<id>/results``), JSON
  lines in no particular order (:func:`jsonl`), each a :func:`succeeded` message, an
  :func:`errored` error body, or a request that :func:`ended_without_answer` (``expired``,
  ``canceled``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.testing.wire.anthropic import MESSAGES_URL, error_body

__all__ = [
    "BATCHES_URL",
    "batch_body",
    "batch_url",
    "cancel_url",
    "ended_without_answer",
    "errored",
    "jsonl",
    "results_url",
    "succeeded",
]

#: Where the SDK creates a message batch, with the default base URL.
BATCHES_URL = f"{MESSAGES_URL}/batches"
_DEFAULT_ID = "msgbatch_013Zva2CMHLNnXjNJJKqJ2EF"


def batch_url(batch_id: str = _DEFAULT_ID, *, base: str = BATCHES_URL) -> str:
    return f"{base}/{batch_id}"


def cancel_url(batch_id: str = _DEFAULT_ID, *, base: str = BATCHES_URL) -> str:
    return f"{base}/{batch_id}/cancel"


def results_url(batch_id: str = _DEFAULT_ID, *, base: str = BATCHES_URL) -> str:
    return f"{base}/{batch_id}/results"


def batch_body(
    status: str = "in_progress",
    *,
    processing: int = 0,
    succeeded: int = 0,
    errored: int = 0,
    canceled: int = 0,
    expired: int = 0,
    batch_id: str = _DEFAULT_ID,
    base: str = BATCHES_URL,
) -> dict[str, Any]:
    """A MessageBatch in ``status`` (``in_progress``, ``canceling``, ``ended``), as ``POST
    /v1/messages/batches`` and its GET / cancel send it; ``results_url`` once ended."""
    ended = status == "ended"
    return {
        "id": batch_id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": {
            "processing": processing,
            "succeeded": succeeded,
            "errored": errored,
            "canceled": canceled,
            "expired": expired,
        },
        "created_at": "2026-11-20T10:00:00.000000Z",
        "expires_at": "2026-11-21T10:00:00.000000Z",
        "ended_at": "2026-11-20T11:00:00.000000Z" if ended else None,
        "cancel_initiated_at": "2026-11-20T10:30:00Z" if status == "canceling" else None,
        "archived_at": None,
        "results_url": results_url(batch_id, base=base) if ended else None,
    }


def succeeded(custom_id: str, **message: Any) -> dict[str, Any]:
    """A result line of a request answered with ``message`` (a :func:`~gateway.testing.wire.
    anthropic.message` body)."""
    return {"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}


def errored(custom_id: str, error_type: str, message: str) -> dict[str, Any]:
    """A result line of a request Anthropic refused (``invalid_request_error``, ...)."""
    error = error_body(error_type, message)
    return {"custom_id": custom_id, "result": {"type": "errored", "error": error}}


def ended_without_answer(custom_id: str, kind: str) -> dict[str, Any]:
    """A result line of a request that never ran: ``kind`` is ``expired`` or ``canceled``."""
    return {"custom_id": custom_id, "result": {"type": kind}}


def jsonl(lines: Sequence[Mapping[str, Any]]) -> bytes:
    """The results file: one JSON line per request."""
    return "".join(json.dumps(line) + "\n" for line in lines).encode()
