"""Reading a request body at the HTTP edge: bounded in size and in time, JSON, an object.

Every refusal here happens before anything is held or written: 413 for a body over
``server.max_body_bytes`` (from its Content-Length when it has one, else as it arrives),
408 for a client that takes longer than ``server.body_timeout_s`` to send it, 400 for
anything that is not a JSON object.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import ClientDisconnect, Request

from gateway.server.errors import ApiError

__all__ = ["read_json", "require"]


async def _read(request: Request, max_bytes: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(
        413,
        "request_too_large",
        f"the request body is larger than this gateway accepts ({max_bytes:,} bytes)",
        headers={"connection": "close"},
    )


async def read_json(request: Request, *, max_bytes: int, timeout_s: float) -> dict[str, Any]:
    """The body as a JSON object."""
    try:
        async with asyncio.timeout(timeout_s):
            raw = await _read(request, max_bytes)
    except TimeoutError:
        raise ApiError(
            408,
            "request_timeout",
            f"the request body did not arrive within {timeout_s:g}s",
            headers={"connection": "close"},
        ) from None
    except ClientDisconnect:
        raise ApiError(400, "invalid_request", "the client went away while sending") from None
    if not raw.strip():
        raise ApiError(400, "invalid_request", "the request body is empty; send a JSON object")
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_request", "the request body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            "invalid_request",
            f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} column "
            f"{exc.colno}",
        ) from None
    except RecursionError:
        raise ApiError(400, "invalid_request", "the request body is nested too deeply") from None
    except ValueError:  # NaN / Infinity, or an integer of thousands of digits
        raise ApiError(
            400,
            "invalid_request",
            "the request body is not valid JSON (NaN, Infinity, or a number thousands of "
            "digits long)",
        ) from None
    if not isinstance(data, dict):
        raise ApiError(
            400,
            "invalid_request",
            f"the request body must be a JSON object, not {_json_type(data)}",
        )
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def require(data: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    """``data[name]``, which must be present and of ``kind`` (``what`` says it in words)."""
    if name not in data or data[name] is None:
        raise ApiError(400, "invalid_request", f"'{name}' is required: {what}", param=name)
    value = data[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        raise ApiError(
            400,
            "invalid_request",
            f"'{name}' must be {what}, not {_json_type(value)}",
            param=name,
        )
    return value


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
