"""A batch input file (JSONL) read into ``gw.batches.create``'s requests, checked line by line.

One JSON object per line: ``{"custom_id": ..., "body": {chat arguments}}``, or OpenAI's batch
line ``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}``, so a file
made for OpenAI's Batch API works unchanged (its body's ``model`` is left out: ``--model``
decides where the batch runs). Blank lines are skipped. Every line is checked, its body
through the chat path's own :func:`~gateway._request.build_request`, before anything is
held or sent; a problem is an :class:`~gateway.errors.InvalidRequest` naming the file and
the line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import InvalidRequest

__all__ = ["BatchFile", "read_batch_file"]

_KEYS = frozenset({"custom_id", "body", "method", "url"})
_CHAT_URL = "/v1/chat/completions"
#: What a batch item's body may not carry (given once to the batch, or not batchable).
_PER_BATCH = ("stream", "account", "tags")
_MAX_CUSTOM_ID = 64
#: The most requests one batch takes (gateway._batches.MAX_ITEMS, checked again there).
_MAX_ITEMS = 50_000


@dataclass(slots=True)
class BatchFile:
    """What a batch input file holds."""

    #: ``{"custom_id", "body"}`` per line, in order, for ``gw.batches.create``.
    requests: list[dict[str, Any]] = field(default_factory=list)
    #: The models named in bodies (OpenAI's line shape), left out of the requests.
    body_models: set[str] = field(default_factory=set)


def _problem(path: Path, line: int, what: str) -> InvalidRequest:
    return InvalidRequest(
        f"{path} line {line}: {what}; nothing was submitted or held", provider="gateway"
    )


def read_batch_file(path: Path) -> BatchFile:
    """Every request of ``path``, or InvalidRequest naming the first bad line."""
    from gateway._request import build_request

    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise InvalidRequest(
            f"cannot read {path}: {exc.strerror or exc}", provider="gateway"
        ) from None
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"{path} is not UTF-8 text (byte {exc.start}); a batch file is JSON lines",
            provider="gateway",
        ) from None
    found = BatchFile()
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _problem(path, number, f"not JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(entry, dict):
            raise _problem(path, number, 'not a JSON object {"custom_id": ..., "body": {...}}')
        unknown = sorted(set(entry) - _KEYS)
        if unknown:
            raise _problem(
                path,
                number,
                f"unknown key(s) {', '.join(map(repr, unknown))}; a line has custom_id and "
                "body (and OpenAI's method and url)",
            )
        custom_id = entry.get("custom_id")
        if custom_id is None:
            raise _problem(path, number, "custom_id is missing")
        if not isinstance(custom_id, str) or not 0 < len(custom_id) <= _MAX_CUSTOM_ID:
            raise _problem(path, number, "custom_id must be a string of 1 to 64 characters")
        if custom_id in first_line:
            raise _problem(
                path,
                number,
                f"custom_id {custom_id!r} is already used on line {first_line[custom_id]}",
            )
        first_line[custom_id] = number
        _check_openai_keys(path, number, entry)
        body = entry.get("body")
        if body is None:
            raise _problem(path, number, "body is missing")
        if not isinstance(body, Mapping):
            raise _problem(path, number, "body must be a JSON object of chat arguments")
        body = dict(body)
        model = body.pop("model", None)
        if isinstance(model, str):
            found.body_models.add(model)
        for name in _PER_BATCH:
            if body.get(name):
                raise _problem(
                    path,
                    number,
                    f"body has {name!r}: a batch's account and tags are given once "
                    "(--account, --tag), and batch items do not stream",
                )
        try:
            build_request(**body)
        except InvalidRequest as exc:
            raise _problem(path, number, f"custom_id {custom_id!r}: {exc.message}") from None
        found.requests.append({"custom_id": custom_id, "body": body})
        if len(found.requests) > _MAX_ITEMS:
            raise _problem(path, number, f"more than {_MAX_ITEMS} requests in one batch")
    if not found.requests:
        raise InvalidRequest(
            f"{path} has no requests; a batch file has one JSON object per line, "
            '{"custom_id": "q1", "body": {"messages": [...]}}',
            provider="gateway",
        )
    return found


def _check_openai_keys(path: Path, number: int, entry: Mapping[str, Any]) -> None:
    """OpenAI's ``method`` and ``url``, when given, must be a chat completion's."""
    method, url = entry.get("method"), entry.get("url")
    if method is not None and method != "POST":
        raise _problem(path, number, f"method {method!r}: batch lines are POST requests")
    if url is not None and url != _CHAT_URL:
        raise _problem(
            path, number, f"url {url!r}: only chat completions ({_CHAT_URL}) can be batched here"
        )
