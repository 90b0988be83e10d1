"""``GET /v1/credits`` and ``GET /v1/usage``: the caller's account (with the admin key, the
one ``x-gateway-account`` names), money as exact decimal strings."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.server._json import json_response, money
from gateway.server.auth import Caller, authenticate
from gateway.server.errors import ApiError

if TYPE_CHECKING:
    from gateway.credits.account import Balance
    from gateway.credits.reports import UsageRow
    from gateway.server.state import ServerState

__all__ = ["balance_body", "credits", "parse_instant", "usage"]


def balance_body(balance: Balance) -> dict[str, Any]:
    return {
        "object": "credits",
        "account": balance.account,
        "available": money(balance.available),
        "posted": money(balance.posted),
        "held": money(balance.held),
        "debt": money(balance.debt),
        "next_expiry": balance.next_expiry.isoformat() if balance.next_expiry else None,
        "expiring_next": money(balance.expiring_next),
    }


def _empty_balance(name: str) -> dict[str, Any]:
    zero = "0.00"
    return {
        "object": "credits",
        "account": name,
        "available": zero,
        "posted": zero,
        "held": zero,
        "debt": zero,
        "next_expiry": None,
        "expiring_next": zero,
    }


async def credits(request: Request) -> Response:
    state: ServerState = request.app.state.server
    caller = await authenticate(request, state)
    account = state.account_of(caller)
    if not await account.exists():
        return json_response(_empty_balance(account.name))
    return json_response(balance_body(await account.balance()))


def parse_instant(value: str | None, name: str) -> datetime | date | None:
    """``2026-01-15`` (a date: midnight in the account's time zone) or an ISO date-time (UTC
    unless it carries an offset)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(
            400,
            "invalid_request",
            f"'{name}' must be a date (2026-01-15) or an ISO date-time",
            param=name,
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def usage(request: Request) -> Response:
    state: ServerState = request.app.state.server
    caller: Caller = await authenticate(request, state)
    query = request.query_params
    group_by = [part.strip() for part in query.get("group_by", "model").split(",") if part.strip()]
    if not group_by:
        raise ApiError(400, "invalid_request", "'group_by' names no key", param="group_by")
    since = parse_instant(query.get("since"), "since")
    until = parse_instant(query.get("until"), "until")
    all_accounts = query.get("all_accounts", "").lower() in ("1", "true", "yes")
    if all_accounts and not caller.is_admin:
        raise ApiError(403, "permission_denied", "all_accounts needs the gateway's admin key")
    account = state.account_of(caller)
    rows: list[UsageRow] = []
    if all_accounts or await account.exists():
        rows = await account.usage(
            group_by=group_by, since=since, until=until, all_accounts=all_accounts
        )
    data = [{**row.group, **_totals(row)} for row in rows]
    total = sum((row.cost for row in rows), start=Decimal("0.00"))
    return json_response(
        {
            "object": "list",
            "account": None if all_accounts else account.name,
            "group_by": group_by,
            "data": data,
            "total_cost": money(total),
        }
    )


def _totals(row: UsageRow) -> dict[str, Any]:
    return {
        "requests": row.requests,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "cached_input_tokens": row.cached_input_tokens,
        "cache_write_tokens": row.cache_write_tokens,
        "reasoning_tokens": row.reasoning_tokens,
        "cost": money(row.cost),
    }
