"""JSON out: money as exact decimal strings (``"0.00000015"``, never ``1.5E-7`` or a float),
times as ISO-8601."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from starlette.responses import Response

__all__ = ["dumps", "json_response", "money"]


def money(amount: Decimal | None) -> str | None:
    """A Decimal as plain digits, or None."""
    return None if amount is None else format(amount, "f")


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(data: Any) -> bytes:
    return json.dumps(data, default=_default, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(
    data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(dumps(data), status_code=status, headers=headers, media_type="application/json")
