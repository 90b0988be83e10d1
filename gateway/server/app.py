"""The ASGI app: ``create_app(config)`` builds a Starlette app over one ``AsyncGateway``.

Routes, one module per endpoint group (each handler parses, calls the library and maps the
result; billing and routing stay in the library):

* :mod:`.chat`: ``POST /v1/chat/completions`` (SSE through :mod:`.streaming`);
* :mod:`.models`: ``GET /v1/models``;
* :mod:`.account`: ``GET /v1/credits``, ``GET /v1/usage``;
* :mod:`.admin`: ``/v1/admin/...``;
* :mod:`.health`: ``GET /healthz``, ``GET /readyz``;
* :mod:`.media`: ``POST /v1/embeddings``, ``POST /v1/images/generations``;
* :mod:`.dashboard`: the billing dashboard, HTML pages at ``/`` for a browser.

Every response carries ``x-gateway-request-id`` (the gateway's request id for a chat call,
which is also the ledger's; a fresh one otherwise). Errors: :mod:`.errors`, the one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.config import GatewayConfig, load_config, parse_config
from gateway.errors import GatewayError
from gateway.server import account, admin, chat, dashboard, health, media, models
from gateway.server.errors import ApiError, api_error, error_response, handle_error
from gateway.server.state import ServerState

if TYPE_CHECKING:
    from gateway import AsyncGateway
    from gateway.credits.payment import PaymentMethod

__all__ = ["CONFIG_ENV", "app_from_environment", "create_app"]

logger = logging.getLogger("gateway.server")

#: Where ``gateway serve --workers N`` tells each worker process its config file.
CONFIG_ENV = "GATEWAY_SERVER_CONFIG"
#: How long the shutdown waits for calls the drain timeout cut to settle what they used.
_SETTLE_GRACE_S = 10.0


class _RequestTracking:
    """Pure ASGI middleware: an ``x-gateway-request-id`` on every response, and the set of
    requests in flight (the shutdown lets them settle before closing the gateway)."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                if not any(name == b"x-gateway-request-id" for name, _ in headers):
                    headers.append((b"x-gateway-request-id", _request_id()))
            await send(message)

        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = True
            await send_with_id(message)

        task = asyncio.current_task()
        inflight = self.state.inflight
        if task is not None:
            inflight.add(task)
        try:
            await self.app(scope, receive, send_tracked)
        except Exception as exc:
            if started:
                raise  # the response is under way: the server closes the connection
            logger.exception("%s %s failed", scope.get("method"), scope.get("path"))
            await error_response(api_error(exc))(scope, receive, send_with_id)
        finally:
            if task is not None:
                inflight.discard(task)


def _request_id() -> bytes:
    return b"gw-" + secrets.token_hex(16).encode()


def _routes() -> list[Route]:
    return [
        Route("/v1/chat/completions", chat.chat_completions, methods=["POST"]),
        Route("/v1/models", models.list_models, methods=["GET"]),
        Route("/v1/credits", account.credits, methods=["GET"]),
        Route("/v1/usage", account.usage, methods=["GET"]),
        Route("/v1/embeddings", media.embeddings, methods=["POST"]),
        Route("/v1/images/generations", media.images, methods=["POST"]),
        Route("/healthz", health.healthz, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
        *admin.routes,
    ]


def create_app(
    config: GatewayConfig | Mapping[str, Any] | str | os.PathLike[str],
    *,
    gateway: AsyncGateway | None = None,
    payment_method: PaymentMethod | None = None,
) -> Starlette:
    """The gateway's HTTP API as an ASGI app.

    ``config`` is a :class:`~gateway.config.GatewayConfig`, a dict in the YAML's shape, or a
    path to a YAML file. The app makes its ``AsyncGateway`` when it starts (or on the first
    request, when mounted where its lifespan does not run) and closes it when it stops,
    after the calls in flight have settled; pass ``gateway`` to use your own (then you close
    it). ``payment_method`` pays for purchases made through the admin API.
    """
    if isinstance(config, str | os.PathLike):
        loaded = load_config(Path(config))
    else:
        loaded = parse_config(config)
    state = ServerState(loaded, gateway=gateway, payment_method=payment_method)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gw = state.gateway  # made now, in the worker's own process and loop
        # Webhooks are delivered from this worker's event loop (it takes over from the
        # gateway's own sender thread); an outbox shared by workers is leased per event.
        sender: asyncio.Task[None] | None = None
        stop = asyncio.Event()
        if loaded.webhooks and loaded.credits is not None:
            from gateway.webhooks import AsyncSender

            state.webhook_sender = AsyncSender(gw)
            sender = asyncio.create_task(state.webhook_sender.run_forever(stop))
        try:
            yield
        finally:
            stop.set()
            if sender is not None:  # done with the store before the gateway closes it
                await asyncio.wait([sender], timeout=_SETTLE_GRACE_S)
            await _shut_down(state)

    app = Starlette(
        routes=[*_routes(), *dashboard.routes(state)],
        exception_handlers={
            ApiError: handle_error,
            GatewayError: handle_error,
            HTTPException: handle_error,
        },
        lifespan=lifespan,
    )
    app.state.server = state
    app.add_middleware(_RequestTracking, state=state)
    return app


async def _shut_down(state: ServerState) -> None:
    """Let requests the drain timeout cancelled settle what they used, then close the
    gateway, which writes every settled call."""
    state.accepting = False
    pending = [task for task in state.inflight if not task.done()]
    if pending:
        _, still = await asyncio.wait(pending, timeout=_SETTLE_GRACE_S)
        if still:
            logger.error("%d request(s) still running at shutdown", len(still))
    await state.close()


def app_from_environment() -> Starlette:
    """The app of a worker process started by ``gateway serve --workers N`` (a uvicorn
    factory): its config file is named by ``$GATEWAY_SERVER_CONFIG``."""
    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise RuntimeError(f"{CONFIG_ENV} names no config file")
    return create_app(path)
