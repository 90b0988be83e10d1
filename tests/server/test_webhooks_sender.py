"""The server's lifespan runs the webhook sender on the worker's event loop: an event the
ledger writes while the app runs reaches a real receiver, signed."""

from __future__ import annotations

import asyncio
import base64
import os
from decimal import Decimal
from pathlib import Path

from gateway.server import create_app
from gateway.webhooks import AsyncSender
from tests.webhooks.receiver import Receiver


async def test_the_lifespan_delivers_webhooks_from_the_event_loop(tmp_path: Path) -> None:
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    receiver = Receiver()
    try:
        app = create_app(
            {
                "providers": {"fake": {}},
                "routes": {"r": {"targets": ["fake/m"]}},
                "credits": {"store": f"sqlite:///{tmp_path / 'c.db'}"},
                "webhooks": [{"url": receiver.url, "secret": secret}],
            }
        )
        async with app.router.lifespan_context(app):
            gw = app.state.server.gateway
            await gw.credits.purchase(Decimal("20"))
            (event,) = await asyncio.to_thread(receiver.wait_for, 1)  # the loop runs on
            service = gw._core.billing.service
            assert isinstance(service.webhook_sender, AsyncSender), "the loop's sender"
        assert event.verify(secret)["type"] == "purchase.succeeded"
        assert event.verify(secret)["data"]["amount"] == "20.00"
    finally:
        receiver.close()
