"""``POST /v1/embeddings`` and ``POST /v1/images/generations``: parse, check the key, call
the gateway (``agw.embeddings.create`` / ``agw.images.generate``, held, priced and billed
like chat), map the result. As for chat, the account and the tags come from the key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.server._json import json_response, money
from gateway.server.auth import authenticate
from gateway.server.body import read_json, require
from gateway.server.chat import gateway_headers
from gateway.server.errors import ApiError
from gateway.server.tracing import incoming_trace

if TYPE_CHECKING:
    from gateway.server.state import ServerState

__all__ = ["embeddings", "images"]

#: OpenAI's body fields each endpoint passes on (anything else is refused by name).
_EMBEDDING_FIELDS = frozenset({"input", "dimensions", "encoding_format", "user"})
_IMAGE_FIELDS = frozenset(
    {
        "prompt",
        "n",
        "size",
        "quality",
        "response_format",
        "style",
        "background",
        "output_format",
        "user",
    }
)


async def _serve(
    request: Request,
    required: str,
    what: str,
    fields: frozenset[str],
    call: Callable[..., Awaitable[Any]],
) -> Response:
    state: ServerState = request.app.state.server
    caller = await authenticate(request, state)
    settings = state.settings
    body = await read_json(
        request, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s
    )
    model = require(body, "model", str, "a route name or provider/model")
    require(body, required, (str, list), what)
    unknown = sorted(set(body) - fields - {"model"})
    if unknown:
        raise ApiError(
            400,
            "invalid_request",
            f"unknown parameter '{unknown[0]}' (the paying account and the tags come from the "
            "API key)",
            param=unknown[0],
        )
    state.check_model(model)
    args: dict[str, Any] = {k: v for k, v in body.items() if k != "model" and v is not None}
    if caller.key is not None:
        args["api_key"] = caller.key
    else:
        args["account"] = caller.account
    args["tags"] = {"api_key": caller.tag}
    with incoming_trace(request, enabled=state.config.telemetry.opentelemetry):
        result = await call(state, model=model, **args)
    headers = gateway_headers(result.gateway)
    cost = result.usage.cost if result.usage is not None else None
    if cost is not None:
        headers["x-gateway-cost"] = money(cost) or ""
    return json_response(result.model_dump(exclude_unset=True), headers=headers)


async def embeddings(request: Request) -> Response:
    async def create(state: ServerState, **args: Any) -> Any:
        return await state.gateway.embeddings.create(**args)

    return await _serve(request, "input", "text or an array of texts", _EMBEDDING_FIELDS, create)


async def images(request: Request) -> Response:
    async def generate(state: ServerState, **args: Any) -> Any:
        if not isinstance(args.get("prompt"), str):
            raise ApiError(400, "invalid_request", "'prompt' must be a string", param="prompt")
        return await state.gateway.images.generate(**args)

    return await _serve(request, "prompt", "a text prompt", _IMAGE_FIELDS, generate)
