"""``GET /healthz`` (the process answers) and ``GET /readyz`` (it can serve calls: the
credit store answers, and the server is not shutting down). Neither needs a key."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import GatewayError
from gateway.server._json import json_response

if TYPE_CHECKING:
    from gateway.server.state import ServerState

__all__ = ["healthz", "readyz"]

logger = logging.getLogger("gateway.server")


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok", "pid": os.getpid()})


async def readyz(request: Request) -> Response:
    state: ServerState = request.app.state.server
    if not state.accepting:
        return json_response({"status": "shutting down"}, status=503)
    if state.has_credits:
        try:
            await state.gateway.credits.balance()
        except GatewayError as exc:
            logger.warning("readyz: the credit store does not answer: %s", exc)
            return json_response({"status": "credit store unreachable"}, status=503)
    return json_response({"status": "ready"})
