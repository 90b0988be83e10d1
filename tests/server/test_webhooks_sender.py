"""The server and webhooks: the lifespan runs the sender on the worker's event loop (an
event the ledger writes reaches a real receiver, signed), and the admin API lists the
deliveries and sends one again."""

from __future__ import annotations

import asyncio
import base64
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2

from gateway.server import create_app
from gateway.webhooks import AsyncSender
from tests.webhooks.receiver import Receiver

ADMIN = "admin-webhooks-0123456789"


def config(tmp_path: Path, hooks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "providers": {"fake": {}},
        "routes": {"r": {"targets": ["fake/m"]}},
        "credits": {"store": f"sqlite:///{tmp_path / 'c.db'}"},
        "webhooks": hooks,
        "server": {"admin_key": ADMIN},
    }


async def admin(app: Any, method: str, path: str, **kw: Any) -> httpx2.Response:
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://gw") as http:
        return await http.request(method, path, headers={"authorization": f"Bearer {ADMIN}"}, **kw)


async def test_the_lifespan_delivers_webhooks_and_the_admin_api_resends_one(
    tmp_path: Path,
) -> None:
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    receiver = Receiver()
    try:
        app = create_app(config(tmp_path, [{"url": receiver.url, "secret": secret}]))
        async with app.router.lifespan_context(app):
            gw = app.state.server.gateway
            await gw.credits.purchase(Decimal("20"))
            (event,) = await asyncio.to_thread(receiver.wait_for, 1)  # the loop runs on
            service = gw._core.billing.service
            assert isinstance(service.webhook_sender, AsyncSender), "the loop's sender"

            # The receiver has it; the sender records the answer just after: wait for that.
            for _ in range(500):
                listed = await admin(app, "GET", "/v1/admin/webhooks/deliveries")
                (row,) = listed.json()["data"]
                if row["status"] == "delivered":
                    break
                await asyncio.sleep(0.01)
            assert (row["type"], row["status"]) == ("purchase.succeeded", "delivered")
            resent = await admin(app, "POST", f"/v1/admin/webhooks/deliveries/{row['id']}/retry")
            assert resent.status_code == 200 and resent.json()["status"] == "pending"
            again = await asyncio.to_thread(receiver.wait_for, 2)
            assert again[1].event_id == again[0].event_id, "the same webhook-id: dedupe on it"
            for _ in range(500):  # let the sender record the second answer before stopping
                listed = await admin(app, "GET", "/v1/admin/webhooks/deliveries")
                if listed.json()["data"][0]["status"] == "delivered":
                    break
                await asyncio.sleep(0.01)

            bad = await admin(app, "GET", "/v1/admin/webhooks/deliveries?status=lost")
            assert (bad.status_code, bad.json()["error"]["param"]) == (400, "status")
            missing = await admin(app, "POST", "/v1/admin/webhooks/deliveries/999/retry")
            assert missing.json()["error"]["code"] == "delivery_not_found"
        assert event.verify(secret)["type"] == "purchase.succeeded"
        assert event.verify(secret)["data"]["amount"] == "20.00"
    finally:
        receiver.close()


async def test_without_webhooks_the_admin_api_says_so(tmp_path: Path) -> None:
    app = create_app(config(tmp_path, []))
    async with app.router.lifespan_context(app):
        answer = await admin(app, "GET", "/v1/admin/webhooks/deliveries")
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "no_webhooks")
