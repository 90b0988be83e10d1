"""A library process with webhooks: its Gateway delivers from a background thread on the real
clock, so a receiver that is stuck never slows a chat call, nor the gateway's close()."""

from __future__ import annotations

import time
from decimal import Decimal

from gateway import Gateway
from gateway.webhooks import AsyncSender, Sender
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_delivery import call, gateway_config


def test_a_gateway_sends_its_events_from_a_background_thread(
    store_url: str, receiver: Receiver, secret: str
) -> None:
    with Gateway(config=gateway_config(store_url, receiver.url, secret)) as gw:
        sender = gw._core.billing.service.webhook_sender  # type: ignore[union-attr]
        assert isinstance(sender, Sender) and sender.running
        gw.credits.purchase(Decimal("2"))
        (got,) = receiver.wait_for(1)  # woken by the write: no poll interval to wait out
        assert got.verify(secret)["type"] == "purchase.succeeded"
    assert not sender.running


def test_a_stuck_receiver_never_slows_a_call(store_url: str, secret: str) -> None:
    receiver = Receiver()
    receiver.default = "hang"
    config = gateway_config(store_url, receiver.url, secret, alerts={"balance_below": "1.99"})
    config["webhooks"][0]["timeout"] = 30
    try:
        gw = Gateway(config=config)
        gw.credits.purchase(Decimal("2"))
        receiver.wait_for(1)  # the sender is now stuck in that request
        call(gw)  # the first call loads the provider and the prices
        slowest = 0.0
        for _ in range(20):
            started = time.monotonic()
            call(gw)
            slowest = max(slowest, time.monotonic() - started)
        assert slowest < 2.0  # a call never waits for a webhook (the receiver holds 30 s)
        started = time.monotonic()
        gw.close()
        assert time.monotonic() - started < 5.0
    finally:
        receiver.close()


async def test_an_async_sender_takes_over_in_a_server_lifespan(
    store_url: str, receiver: Receiver, secret: str
) -> None:
    import asyncio

    gw = Gateway(config=gateway_config(store_url, receiver.url, secret))
    service = gw._core.billing.service
    assert service is not None
    thread_sender = service.webhook_sender
    assert isinstance(thread_sender, Sender)
    stop = asyncio.Event()
    sender = AsyncSender(gw, poll_interval_s=30)
    task = asyncio.create_task(sender.run_forever(stop))
    while service.webhook_sender is not sender:
        await asyncio.sleep(0)
    assert not thread_sender.running
    await asyncio.to_thread(gw.credits.purchase, Decimal("2"))  # wakes the async sender
    (got,) = await asyncio.to_thread(receiver.wait_for, 1)
    assert got.verify(secret)["type"] == "purchase.succeeded"
    stop.set()  # ends it at once, though its next look at the outbox is 30 s away
    await asyncio.wait_for(task, 10)
    assert service.webhook_sender is None
    gw.close()
