"""``POST /v1/embeddings`` and ``POST /v1/images/generations``: part of the contract, not
served yet (the library has no embeddings or images; they come with batches and images).
Until then they answer 501 in OpenAI's error shape, after the key is checked."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from gateway.server.auth import authenticate
from gateway.server.errors import ApiError

if TYPE_CHECKING:
    from gateway.server.state import ServerState

__all__ = ["embeddings", "images"]


async def _not_supported(request: Request, what: str) -> Response:
    state: ServerState = request.app.state.server
    await authenticate(request, state)
    raise ApiError(501, "not_supported", f"{what} are not supported by this gateway yet")


async def embeddings(request: Request) -> Response:
    return await _not_supported(request, "embeddings")


async def images(request: Request) -> Response:
    return await _not_supported(request, "image generations")
