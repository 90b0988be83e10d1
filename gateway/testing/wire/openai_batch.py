"""OpenAI's batch API on the wire, as JSON-able dicts and bytes (what the ``openai`` SDK reads).

- upload: ``POST /v1/files`` (multipart: ``purpose=batch`` and the JSONL ``file``) answers a
  :func:`file_object`; each input line is ``{"custom_id", "method": "POST", "url":
  "/v1/chat/completions", "body"}``;
- create: ``POST /v1/batches`` (``{"input_file_id", "endpoint", "completion_window"}``), poll:
  ``GET /v1/batches/<id>``, cancel: ``POST /v1/batches/<id>/cancel``: each answers a
  :func:`batch_object`;
- results: ``GET /v1/files/<id>/content`` of the batch's ``output_file_id`` (lines of
  :func:`ok_line`) and ``error_file_id`` (:func:`http_error_line` for a request OpenAI answered
  with an HTTP error, :func:`batch_error_line` for one that never ran: ``batch_expired``,
  ``batch_cancelled``), as :func:`jsonl`.

:func:`multipart` reads an upload's fields back (a test's assertions, the mock's input file).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import httpx

from gateway.testing.wire.openai import API_BASE, WireError

__all__ = [
    "BATCHES_URL",
    "FILES_URL",
    "batch_error_line",
    "batch_object",
    "file_object",
    "http_error_line",
    "jsonl",
    "multipart",
    "ok_line",
]

#: Where the SDK uploads a file and creates a batch, with the default base URL.
FILES_URL = f"{API_BASE}/files"
BATCHES_URL = f"{API_BASE}/batches"
#: The timestamps the builders report unless told otherwise (2025-12-29).
_CREATED_AT = 1_767_000_000
_WINDOW_S = 24 * 3600


def file_object(
    file_id: str, size: int, purpose: str = "batch", *, filename: str = "batch.jsonl"
) -> dict[str, Any]:
    """A ``FileObject``, as the upload answers it."""
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": _CREATED_AT,
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
        "status_details": None,
        "expires_at": None,
    }


def batch_object(
    status: str,
    *,
    batch_id: str = "batch_67d3a1b2c3",
    model: str = "gpt-4o-mini",
    input_file_id: str = "file-in-1",
    total: int = 3,
    completed: int = 0,
    failed: int = 0,
    output_file_id: str | None = None,
    error_file_id: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    created_at: int = _CREATED_AT,
) -> dict[str, Any]:
    """A ``Batch`` in ``status`` (``validating``, ``in_progress``, ``finalizing``,
    ``completed``, ``failed``, ``expired``, ``cancelling``, ``cancelled``); ``errors`` are a
    failed batch's ``errors.data``."""
    return {
        "id": batch_id,
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "model": model,
        "errors": None if errors is None else {"object": "list", "data": errors},
        "input_file_id": input_file_id,
        "completion_window": "24h",
        "status": status,
        "output_file_id": output_file_id,
        "error_file_id": error_file_id,
        "created_at": created_at,
        "in_progress_at": None,
        "expires_at": created_at + _WINDOW_S,
        "finalizing_at": None,
        "completed_at": None,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {"total": total, "completed": completed, "failed": failed},
        "metadata": None,
    }


def ok_line(custom_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """An output file line: the item's chat completion, HTTP 200."""
    return {
        "id": f"batch_req_{custom_id}",
        "custom_id": custom_id,
        "response": {"status_code": 200, "request_id": f"req_{custom_id}", "body": dict(body)},
        "error": None,
    }


def http_error_line(custom_id: str, error: WireError) -> dict[str, Any]:
    """An error file line of a request OpenAI answered with an HTTP error."""
    return {
        "id": f"batch_req_{custom_id}",
        "custom_id": custom_id,
        "response": {
            "status_code": error.status,
            "request_id": f"req_{custom_id}",
            "body": error.body,
        },
        "error": None,
    }


def batch_error_line(custom_id: str, code: str, message: str) -> dict[str, Any]:
    """An error file line of a request that never ran (``batch_expired``, ...)."""
    return {
        "id": f"batch_req_{custom_id}",
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }


def jsonl(lines: Sequence[Mapping[str, Any]]) -> bytes:
    """A result file: one JSON line per result, each ending with a newline."""
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def multipart(request: httpx.Request) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data request: name -> (filename, bytes)."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + request.read())
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            raise ValueError("a multipart field without a name or a body")
        fields[name] = (part.get_filename(), payload)
    return fields
