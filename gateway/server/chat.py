"""``POST /v1/chat/completions``: parse, check the key, call the gateway, map the result.

The body is OpenAI's; every argument reaches ``agw.chat.completions.create`` as it came
(the library validates and translates it, and refuses what it cannot express). The account
and the tags come from the key, never from the body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.server._json import json_response, money
from gateway.server.auth import authenticate
from gateway.server.body import read_json, require
from gateway.server.errors import ApiError
from gateway.server.streaming import SSEResponse
from gateway.server.tracing import incoming_trace

if TYPE_CHECKING:
    from gateway import GatewayInfo
    from gateway.server.state import ServerState

__all__ = ["chat_completions", "gateway_headers"]

#: Arguments of the Python API that are not part of OpenAI's HTTP body: who pays and the
#: tags come from the key, and the SDK's client options never reach the wire.
_NOT_FROM_HTTP = frozenset(
    {"account", "tags", "api_key", "timeout", "extra_body", "extra_headers", "extra_query"}
)


def gateway_headers(info: GatewayInfo) -> dict[str, str]:
    return {
        "x-gateway-request-id": info.request_id,
        "x-gateway-provider": info.provider,
        "x-gateway-model": info.model,
        "x-gateway-attempts": str(len(info.attempts)),
    }


async def chat_completions(request: Request) -> Response:
    state: ServerState = request.app.state.server
    caller = await authenticate(request, state)
    settings = state.settings
    body = await read_json(
        request, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s
    )
    model = require(body, "model", str, "a route name or provider/model")
    messages = require(body, "messages", list, "an array of messages")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise ApiError(400, "invalid_request", "'stream' must be true or false", param="stream")
    refused = sorted(_NOT_FROM_HTTP.intersection(body))
    if refused:
        raise ApiError(
            400,
            "invalid_request",
            f"unknown parameter '{refused[0]}' (the paying account and the tags come from the "
            "API key)",
            param=refused[0],
        )
    state.check_model(model)
    args: dict[str, Any] = {
        name: value
        for name, value in body.items()
        if name not in ("model", "messages", "stream") and value is not None
    }
    # A key pays from its own account, within its allow-list, rpm and spend limits (the
    # library checks them all before any provider is called); the admin key names one.
    if caller.key is not None:
        args["api_key"] = caller.key
    else:
        args["account"] = caller.account
    args["tags"] = {"api_key": caller.tag}
    create = state.gateway.chat.completions.create
    with incoming_trace(request, enabled=state.config.telemetry.opentelemetry):
        if stream:
            streamed = await create(model=model, messages=messages, stream=True, **args)
            return SSEResponse(streamed, gateway_headers(streamed.gateway))
        completion = await create(model=model, messages=messages, **args)
    headers = gateway_headers(completion.gateway)
    cost = completion.usage.cost if completion.usage is not None else None
    if cost is not None:
        headers["x-gateway-cost"] = money(cost) or ""
    return json_response(completion.model_dump(exclude_unset=True), headers=headers)
