"""The Gemini API's batch mode on the wire (v1beta), as JSON-able dicts, bytes and URLs.

What google-genai 3.6 sends and reads:

- create: ``POST /v1beta/models/<model>:batchGenerateContent`` with ``{"batch": {"displayName",
  "inputConfig": {"requests": {"requests": [{"request": <generateContent body>, "metadata":
  {"key"}}]}}}}`` or ``"inputConfig": {"fileName": "files/<id>"}``; the answer is a
  long-running operation ``{"name": "batches/<id>", "metadata": {"@type": ...GenerateContentBatch,
  "state": "BATCH_STATE_*", "batchStats": {...counts as strings...}, "output": ...}}`` (with
  ``"done": true`` and the same ``output`` as ``"response"`` once it has ended);
- poll: ``GET /v1beta/batches/<id>`` (the same operation); cancel: ``POST
  /v1beta/batches/<id>:cancel`` (an empty object);
- output: ``{"inlinedResponses": {"inlinedResponses": [{"response": {...}} | {"error":
  {"code", "message"}}]}}`` in request order, or ``{"responsesFile": "files/<id>"}``: JSONL
  lines ``{"key", "response" | "error"}``, downloaded from ``GET /v1beta/files/<id>:download
  ?alt=media``;
- upload (resumable): ``POST /upload/v1beta/files`` (``x-goog-upload-command: start``, body
  ``{"file": {"display_name", "mime_type", "size_bytes"}}``) answers the upload URL in the
  ``x-goog-upload-url`` header; the bytes go there (``upload, finalize``), which answers
  ``{"file": {...}}`` with ``x-goog-upload-status: final``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.testing.wire.gemini import DEFAULT_BASE_URL

__all__ = [
    "API_VERSION",
    "batch_operation",
    "cancel_url",
    "create_url",
    "download_url",
    "inline_error",
    "inline_response",
    "jsonl",
    "operation_url",
    "result_line",
    "upload_finished_headers",
    "upload_start_headers",
    "upload_url",
    "uploaded_file",
]

#: The API version of Gemini's batch mode.
API_VERSION = "v1beta"
_OPERATION_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
_OUTPUT_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"
_ENDED = {
    "BATCH_STATE_SUCCEEDED",
    "BATCH_STATE_FAILED",
    "BATCH_STATE_CANCELLED",
    "BATCH_STATE_EXPIRED",
}


def _base(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/{API_VERSION}"


def create_url(model: str, *, base_url: str = DEFAULT_BASE_URL) -> str:
    return f"{_base(base_url)}/models/{model}:batchGenerateContent"


def operation_url(name: str, *, base_url: str = DEFAULT_BASE_URL) -> str:
    """``name`` is ``batches/<id>``."""
    return f"{_base(base_url)}/{name}"


def cancel_url(name: str, *, base_url: str = DEFAULT_BASE_URL) -> str:
    return f"{_base(base_url)}/{name}:cancel"


def upload_url(*, base_url: str = DEFAULT_BASE_URL) -> str:
    """Where the resumable upload starts."""
    return f"{base_url.rstrip('/')}/upload/{API_VERSION}/files"


def download_url(file_name: str, *, base_url: str = DEFAULT_BASE_URL) -> str:
    """``file_name`` is ``files/<id>``."""
    return f"{_base(base_url)}/{file_name}:download?alt=media"


def upload_start_headers(session_url: str) -> dict[str, str]:
    return {"x-goog-upload-url": session_url, "x-goog-upload-status": "active"}


def upload_finished_headers() -> dict[str, str]:
    return {"x-goog-upload-status": "final", "content-type": "application/json"}


def uploaded_file(name: str, size: int) -> dict[str, Any]:
    """The answer to the upload's last chunk."""
    return {
        "file": {
            "name": name,
            "mimeType": "application/jsonl",
            "sizeBytes": str(size),
            "state": "ACTIVE",
            "source": "UPLOADED",
        }
    }


def inline_response(response: Mapping[str, Any], key: str | None = None) -> dict[str, Any]:
    """An inline answer: a ``generateContent`` body (``metadata.key`` when given)."""
    answer: dict[str, Any] = {"response": dict(response)}
    if key is not None:
        answer["metadata"] = {"key": key}
    return answer


def inline_error(code: int, message: str) -> dict[str, Any]:
    """An inline answer that failed: a google.rpc ``Status`` (3 INVALID_ARGUMENT, 1 CANCELLED,
    4 DEADLINE_EXCEEDED...)."""
    return {"error": {"code": code, "message": message}}


def result_line(
    key: str, response: Mapping[str, Any] | None = None, *, error: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A line of the result file: the request's key and its ``response`` or ``error``."""
    line: dict[str, Any] = {"key": key}
    if response is not None:
        line["response"] = dict(response)
    if error is not None:
        line["error"] = dict(error)
    return line


def jsonl(lines: Sequence[Mapping[str, Any]]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def batch_operation(
    name: str = "batches/b-1",
    state: str = "BATCH_STATE_PENDING",
    *,
    model: str = "gemini-2.5-flash",
    requests: int = 1,
    succeeded: int = 0,
    failed: int = 0,
    inline: Sequence[Mapping[str, Any]] | None = None,
    responses_file: str | None = None,
    error: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The batch's long-running operation, as create and poll answer it. ``inline`` or
    ``responses_file`` is its output (an ended batch); ``error`` a failed batch's Status."""
    pending = requests - succeeded - failed if state not in _ENDED else 0
    stats = {"requestCount": str(requests)}
    if succeeded:
        stats["successfulRequestCount"] = str(succeeded)
    if failed:
        stats["failedRequestCount"] = str(failed)
    if pending:
        stats["pendingRequestCount"] = str(pending)
    metadata: dict[str, Any] = {
        "@type": _OPERATION_TYPE,
        "model": f"models/{model}",
        "displayName": "gateway batch",
        "createTime": "2026-11-02T10:00:00.000000Z",
        "updateTime": "2026-11-02T10:00:05.000000Z",
        "batchStats": stats,
        "state": state,
        "name": name,
    }
    output: dict[str, Any] | None = None
    if inline is not None:
        output = {"inlinedResponses": {"inlinedResponses": [dict(a) for a in inline]}}
    elif responses_file is not None:
        output = {"responsesFile": responses_file}
    if output is not None:
        metadata["output"] = output
    operation: dict[str, Any] = {"name": name, "metadata": metadata}
    if state in _ENDED:
        metadata["endTime"] = "2026-11-02T11:00:00.000000Z"
        operation["done"] = True
        if error is not None:
            operation["error"] = dict(error)
        elif output is not None:
            operation["response"] = {"@type": _OUTPUT_TYPE, **output}
    return operation
