"""What one worker process of the server holds: its config and its one ``AsyncGateway``.

Nothing else is shared in memory: the credit account and the API keys live in the credit
store, so many workers and many hosts serve one account.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from gateway.config import GatewayConfig, ServerConfig
from gateway.routing import Router

if TYPE_CHECKING:
    from gateway import AsyncGateway
    from gateway.credits.async_account import AsyncCreditAccount as AsyncAccount
    from gateway.credits.payment import PaymentMethod
    from gateway.keys import ApiKey
    from gateway.server.auth import Caller
    from gateway.webhooks import AsyncSender

__all__ = ["AsyncAccount", "ServerState"]


class ServerState:
    """The worker's gateway (made on first use: at startup, or by the first request when the
    app is mounted somewhere that does not run its lifespan) and the server's settings."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        gateway: AsyncGateway | None = None,
        payment_method: PaymentMethod | None = None,
    ) -> None:
        self.config = config
        self.settings = config.server or ServerConfig()
        admin = self.settings.admin_key
        self.admin_key: str | None = admin.reveal() if admin is not None else None
        self._gateway = gateway
        self._owns_gateway = gateway is None
        self._payment_method = payment_method
        #: False once the server is shutting down (``/readyz`` says so).
        self.accepting = True
        #: The requests being served (the shutdown lets them settle first).
        self.inflight: set[asyncio.Task[Any]] = set()
        #: This worker's webhook sender (set by the lifespan when the config has webhooks).
        self.webhook_sender: AsyncSender | None = None
        self._router = Router(config)

    @property
    def gateway(self) -> AsyncGateway:
        if self._gateway is None:
            from gateway import AsyncGateway

            self._gateway = AsyncGateway(self.config, payment_method=self._payment_method)
        return self._gateway

    def check_model(self, model: str) -> None:
        """404 unless ``model`` is a route of the config or ``provider/model`` of a configured
        provider (before anything is held)."""
        from gateway.errors import ConfigError
        from gateway.server.errors import ApiError

        try:
            self._router.resolve(model)
        except ConfigError:
            raise ApiError(
                404,
                "model_not_found",
                f"the model '{model[:200]}' does not exist: use a route of this gateway or "
                "provider/model (GET /v1/models lists them)",
                param="model",
            ) from None

    @property
    def has_credits(self) -> bool:
        return self.config.credits is not None

    def require_credits(self) -> None:
        if not self.has_credits:
            from gateway.server.errors import ApiError

            raise ApiError(
                404, "no_credit_account", "this gateway has no credit account (no credits: section)"
            )

    def account_of(self, caller: Caller) -> AsyncAccount:
        """The account ``caller`` pays from (the default one when it names none)."""
        self.require_credits()
        credits = self.gateway.credits
        return credits if caller.account is None else credits.account(caller.account)

    async def authenticate_key(self, presented: str) -> ApiKey:
        """The stored key ``presented`` is (raises InvalidApiKey)."""
        from gateway.server.errors import ApiError

        if not self.has_credits:
            raise ApiError(
                401,
                "invalid_api_key",
                "this gateway has no credit store, so it knows no API keys: use its admin key",
            )
        return await self.gateway.keys.authenticate(presented)

    async def close(self) -> None:
        """Write every settled call and close the gateway (the lifespan's shutdown)."""
        self.accepting = False
        if self._gateway is not None and self._owns_gateway:
            await self._gateway.close()
