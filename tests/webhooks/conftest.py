"""Fixtures of the webhook tests: both credit stores (the fixtures of tests/credits), a real
receiver on a loopback port, a signing secret, and services and gateways with webhooks.

The clock is a :class:`ManualClock` that starts at the real time, so that signatures made on
it verify with ``standardwebhooks`` (which refuses a timestamp five minutes off its clock).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from gateway.config import CreditsConfig, ModelPrice, WebhookConfig
from gateway.credits import CreditService, PaymentMethod, PriceBook
from gateway.credits.store import open_store
from gateway.testing.clock import ManualClock
from tests.credits import conftest as credits_fixtures
from tests.webhooks.receiver import Receiver

# The both-stores fixtures of tests/credits: every test that takes store_url runs once on
# SQLite and once on PostgreSQL.
pg_database = credits_fixtures.pg_database
store_kind = credits_fixtures.store_kind
new_store_url = credits_fixtures.new_store_url
store_url = credits_fixtures.store_url
payments = credits_fixtures.payments

PRICING = {"fake/small": ModelPrice(input=Decimal("1"), output=Decimal("2"))}

MakeService = Callable[..., CreditService]


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def endpoint(url: str, secret: str, **settings: Any) -> WebhookConfig:
    return WebhookConfig.model_validate({"url": url, "secret": secret, **settings})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def secret() -> str:
    return new_secret()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def make_service(store_url: str, clock: ManualClock) -> Iterator[MakeService]:
    """``make_service(endpoints, payment_method=..., **credits_config)``: a service on the
    test store with these webhook endpoints (no background sender: tests run rounds)."""
    services: list[CreditService] = []

    def make(
        endpoints: list[WebhookConfig],
        payment_method: PaymentMethod | None = None,
        **settings: Any,
    ) -> CreditService:
        settings.setdefault("flush_interval_ms", 0)
        config = CreditsConfig(store=store_url, **settings)
        service = CreditService(
            config,
            PriceBook.from_config(PRICING, clock=clock),
            clock=clock,
            payment_method=payment_method,
            store=open_store(store_url),
            webhooks=endpoints,
            webhook_sender=False,
        )
        services.append(service)
        return service

    yield make
    for service in services:
        service.close()
