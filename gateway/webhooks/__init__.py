"""Webhooks: the credit account's events, signed per Standard Webhooks, delivered from a
durable outbox at least once.

* :mod:`.events`: which events a ledger write causes (pure decisions);
* :mod:`.outbox`: the outbox rows and the :class:`Outbox` protocol (SQL in :mod:`._sqlite`
  and :mod:`._postgres`; the tables come with the credit store's migration 005);
* :mod:`.signing`: ``webhook-id`` / ``webhook-timestamp`` / ``webhook-signature``;
* :mod:`.schedule`: delivered, retried later (backoff for up to a day), given up, or the
  endpoint disabled (410);
* :mod:`.sender`: :class:`Sender` (threads) and :class:`AsyncSender` (an event loop).

A Gateway whose config has ``webhooks:`` runs a :class:`Sender` in a background thread; a
server runs ``await AsyncSender(gw).run_forever()`` in its lifespan instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway._lazy import lazy_exports

if TYPE_CHECKING:
    from gateway.webhooks.events import Alerts, WebhookEvent
    from gateway.webhooks.outbox import Delivery, Outbox, endpoint_id, open_outbox
    from gateway.webhooks.sender import AsyncSender, PingResult, Sender
    from gateway.webhooks.signing import signed_headers

_HOMES = {
    "Alerts": "gateway.webhooks.events",
    "WebhookEvent": "gateway.webhooks.events",
    "Delivery": "gateway.webhooks.outbox",
    "Outbox": "gateway.webhooks.outbox",
    "endpoint_id": "gateway.webhooks.outbox",
    "open_outbox": "gateway.webhooks.outbox",
    "AsyncSender": "gateway.webhooks.sender",
    "PingResult": "gateway.webhooks.sender",
    "Sender": "gateway.webhooks.sender",
    "signed_headers": "gateway.webhooks.signing",
}

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)

__all__ = [
    "Alerts",
    "AsyncSender",
    "Delivery",
    "Outbox",
    "PingResult",
    "Sender",
    "WebhookEvent",
    "endpoint_id",
    "open_outbox",
    "signed_headers",
]
