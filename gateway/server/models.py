"""``GET /v1/models``: the routes and ``provider/model`` targets this key may call, in
OpenAI's list shape (``owned_by`` is ``gateway`` for a route, the provider for a target)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.server._json import json_response
from gateway.server.auth import authenticate

if TYPE_CHECKING:
    from gateway.server.state import ServerState

__all__ = ["list_models"]


def _model(model_id: str, owner: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": owner}


async def list_models(request: Request) -> Response:
    state: ServerState = request.app.state.server
    caller = await authenticate(request, state)
    key = caller.key
    config = state.config
    found: dict[str, dict[str, Any]] = {}
    for name, route in config.routes.items():
        found[name] = _model(name, "gateway")
        for target in route.targets:
            found.setdefault(target.model, _model(target.model, target.provider))
    for model_id in () if key is None or key.routes is None else key.routes:
        provider, sep, model = model_id.partition("/")
        if sep and model != "*" and provider in config.providers:
            found.setdefault(model_id, _model(model_id, provider))
    data = [m for m in found.values() if key is None or key.allows(m["id"])]
    return json_response({"object": "list", "data": data})
