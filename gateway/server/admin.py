"""``/v1/admin/...``: accounts, purchases, grants, limits and keys, for the admin key only.

=================================================  ==========================================
``GET /v1/admin/accounts/{account}``               balance, caps and auto-recharge
``POST /v1/admin/accounts/{account}/purchases``    ``{"amount": "20.00", "idempotency_key"}``
``POST /v1/admin/accounts/{account}/grants``       ``{"amount": "2.00", "note", "expires_at"}``
``GET|PUT /v1/admin/accounts/{account}/limits``    ``{"daily": "10.00", "monthly": null}``
``GET /v1/admin/keys?account=&include_revoked=``   the keys (never their secrets)
``POST /v1/admin/keys``                            a new key: the secret, once
``GET|DELETE /v1/admin/keys/{key_id}``             one key; DELETE revokes it
=================================================  ==========================================

Money is given as a decimal string (or an integer), never a JSON float.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.server._json import json_response, money
from gateway.server.account import balance_body, parse_instant
from gateway.server.auth import authenticate, require_admin
from gateway.server.body import read_json
from gateway.server.errors import ApiError

if TYPE_CHECKING:
    from gateway.credits.ledger import LedgerEntry
    from gateway.keys import ApiKey
    from gateway.server.state import AsyncAccount, ServerState
    from gateway.webhooks import AsyncSender

__all__ = ["routes"]


async def _admin(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    require_admin(await authenticate(request, state))
    state.require_credits()
    return state


async def _body(request: Request, state: ServerState) -> dict[str, Any]:
    settings = state.settings
    return await read_json(
        request, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s
    )


def _check_fields(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(
            400,
            "invalid_request",
            f"unknown field '{unknown[0]}' (this endpoint takes: {', '.join(allowed)})",
            param=unknown[0],
        )


def _amount(value: Any, name: str, *, required: bool = True) -> Decimal | None:
    if value is None:
        if required:
            raise ApiError(400, "invalid_request", f"'{name}' is required", param=name)
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ApiError(
            400,
            "invalid_request",
            f"'{name}' must be an amount as a decimal string such as \"20.00\"",
            param=name,
        )
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise ApiError(
            400, "invalid_request", f"'{name}' is not an amount: {str(value)[:40]!r}", param=name
        ) from None
    return amount


def _text(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ApiError(400, "invalid_request", f"'{name}' is required", param=name)
        return None
    if not isinstance(value, str):
        raise ApiError(400, "invalid_request", f"'{name}' must be a string", param=name)
    return value


def _moment(body: dict[str, Any], name: str) -> datetime | None:
    value = _text(body, name)
    instant = parse_instant(value, name)
    if instant is None or isinstance(instant, datetime):
        return instant
    return datetime.combine(instant, time(), tzinfo=UTC)  # a date: its midnight, UTC


def _entry(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "object": "ledger_entry",
        "id": entry.id,
        "account": entry.account,
        "kind": entry.kind,
        "amount": money(entry.amount),
        "lot_id": entry.lot_id,
        "note": entry.note,
    }


async def _account(state: ServerState, name: str) -> tuple[AsyncAccount, bool]:
    account = state.gateway.credits.account(name)
    return account, await account.exists()


async def _existing(state: ServerState, name: str) -> AsyncAccount:
    account, exists = await _account(state, name)
    if not exists:
        raise ApiError(404, "account_not_found", f"no credit account named '{name[:100]}'")
    return account


async def _settings_body(account: AsyncAccount) -> dict[str, Any]:
    settings = await account.settings()
    recharge = settings.auto_recharge
    return {
        "limits": {"daily": money(settings.daily_limit), "monthly": money(settings.monthly_limit)},
        "auto_recharge": None
        if recharge is None
        else {
            "below": money(recharge[0]),
            "amount": money(recharge[1]),
            "monthly_limit": money(recharge[2]),
        },
    }


async def list_accounts(request: Request) -> Response:
    state = await _admin(request)
    names = await state.gateway.credits.accounts()
    return json_response({"object": "list", "data": [{"account": n} for n in names]})


async def get_account(request: Request) -> Response:
    state = await _admin(request)
    account = await _existing(state, request.path_params["account"])
    body = balance_body(await account.balance())
    return json_response({**body, **await _settings_body(account)})


async def purchase(request: Request) -> Response:
    state = await _admin(request)
    body = await _body(request, state)
    _check_fields(body, ("amount", "idempotency_key"))
    amount = _amount(body.get("amount"), "amount")
    assert amount is not None
    key = _text(body, "idempotency_key") or request.headers.get("idempotency-key")
    account, _ = await _account(state, request.path_params["account"])
    entry = await account.purchase(amount, idempotency_key=key)
    return json_response(_entry(entry), status=201)


async def grant(request: Request) -> Response:
    state = await _admin(request)
    body = await _body(request, state)
    _check_fields(body, ("amount", "note", "expires_at"))
    amount = _amount(body.get("amount"), "amount")
    assert amount is not None
    account, _ = await _account(state, request.path_params["account"])
    entry = await account.grant(
        amount, note=_text(body, "note"), expires_at=_moment(body, "expires_at")
    )
    return json_response(_entry(entry), status=201)


async def limits(request: Request) -> Response:
    state = await _admin(request)
    name = request.path_params["account"]
    if request.method == "GET":
        account = await _existing(state, name)
        return json_response((await _settings_body(account))["limits"])
    body = await _body(request, state)
    _check_fields(body, ("daily", "monthly"))
    changes: dict[str, Decimal | None] = {
        label: _amount(body[label], label, required=False) for label in body
    }
    account, _ = await _account(state, name)
    await account.set_limits(**changes)
    return json_response((await _settings_body(account))["limits"])


def _key(key: ApiKey) -> dict[str, Any]:
    return {"object": "api_key", **key.as_dict()}


async def list_keys(request: Request) -> Response:
    state = await _admin(request)
    query = request.query_params
    include_revoked = query.get("include_revoked", "").lower() in ("1", "true", "yes")
    keys = await state.gateway.keys.list(
        account=query.get("account") or None, include_revoked=include_revoked
    )
    return json_response({"object": "list", "data": [_key(k) for k in keys]})


async def create_key(request: Request) -> Response:
    state = await _admin(request)
    body = await _body(request, state)
    fields = ("account", "name", "routes", "rpm", "daily_limit", "monthly_limit", "expires_at")
    _check_fields(body, fields)
    routes = body.get("routes")
    if routes is not None and (
        not isinstance(routes, list) or not all(isinstance(r, str) for r in routes)
    ):
        raise ApiError(
            400, "invalid_request", "'routes' must be an array of strings", param="routes"
        )
    rpm = body.get("rpm")
    if rpm is not None and (isinstance(rpm, bool) or not isinstance(rpm, int)):
        raise ApiError(400, "invalid_request", "'rpm' must be an integer", param="rpm")
    account = _text(body, "account", required=True)
    name = _text(body, "name", required=True)
    assert account is not None and name is not None
    new = await state.gateway.keys.create(
        account=account,
        name=name,
        routes=routes,
        rpm=rpm,
        daily_limit=_amount(body.get("daily_limit"), "daily_limit", required=False),
        monthly_limit=_amount(body.get("monthly_limit"), "monthly_limit", required=False),
        expires_at=_moment(body, "expires_at"),
    )
    return json_response({**_key(new.info), "key": new.key}, status=201)


async def one_key(request: Request) -> Response:
    state = await _admin(request)
    key_id = request.path_params["key_id"]
    keys = state.gateway.keys
    key = await (keys.revoke(key_id) if request.method == "DELETE" else keys.get(key_id))
    return json_response(_key(key))


_DELIVERY_STATUSES = ("pending", "delivered", "failed")


def _webhook_sender(state: ServerState) -> AsyncSender:
    sender = state.webhook_sender
    if sender is None:
        raise ApiError(
            404, "no_webhooks", "this gateway sends no webhooks (its config has no webhooks:)"
        )
    return sender


async def webhook_deliveries(request: Request) -> Response:
    """The outbox, newest first: ``?status=pending|delivered|failed&account=...&limit=50``."""
    state = await _admin(request)
    sender = _webhook_sender(state)
    query = request.query_params
    status = query.get("status") or None
    if status is not None and status not in _DELIVERY_STATUSES:
        raise ApiError(
            400,
            "invalid_request",
            f"status must be one of {', '.join(_DELIVERY_STATUSES)}",
            param="status",
        )
    try:
        limit = int(query.get("limit", "50"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 500:
        raise ApiError(400, "invalid_request", "limit must be 1 to 500", param="limit")
    rows = await asyncio.to_thread(
        sender.outbox.deliveries,
        status=status,  # type: ignore[arg-type]
        account=query.get("account") or None,
        limit=limit,
    )
    return json_response({"object": "list", "data": [row.as_dict() for row in rows]})


async def retry_webhook_delivery(request: Request) -> Response:
    """Make a delivery due again now (its endpoint re-enabled); this worker sends it."""
    state = await _admin(request)
    sender = _webhook_sender(state)
    try:
        delivery_id = int(request.path_params["delivery_id"])
    except ValueError:
        delivery_id = -1
    row = await asyncio.to_thread(sender.retry, delivery_id) if delivery_id > 0 else None
    if row is None:
        raise ApiError(404, "delivery_not_found", "there is no such webhook delivery")
    sender.wake()
    return json_response(row.as_dict())


routes = [
    Route("/v1/admin/accounts", list_accounts, methods=["GET"]),
    Route("/v1/admin/accounts/{account}", get_account, methods=["GET"]),
    Route("/v1/admin/accounts/{account}/purchases", purchase, methods=["POST"]),
    Route("/v1/admin/accounts/{account}/grants", grant, methods=["POST"]),
    Route("/v1/admin/accounts/{account}/limits", limits, methods=["GET", "PUT"]),
    Route("/v1/admin/keys", list_keys, methods=["GET"]),
    Route("/v1/admin/keys", create_key, methods=["POST"]),
    Route("/v1/admin/keys/{key_id}", one_key, methods=["GET", "DELETE"]),
    Route("/v1/admin/webhooks/deliveries", webhook_deliveries, methods=["GET"]),
    Route(
        "/v1/admin/webhooks/deliveries/{delivery_id}/retry",
        retry_webhook_delivery,
        methods=["POST"],
    ),
]
