"""Fixtures of the credit-account tests.

The store is parametrised over store kinds: every test that takes ``store_url``,
``new_store_url`` or ``make_service`` runs once per kind. Issue 5 (PostgreSQL) adds
"postgresql" to ``STORE_KINDS`` and a branch to ``_new_url``, and nothing else.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.config import CreditsConfig, ModelPrice
from gateway.credits import CreditService, InMemoryPaymentMethod, PaymentMethod, PriceBook
from gateway.credits.store import open_store
from gateway.testing.clock import ManualClock

STORE_KINDS = ["sqlite"]

#: Round prices for the fake provider, so that expected amounts are easy to read.
TEST_PRICING = {
    "fake/small": ModelPrice(input=Decimal("1"), output=Decimal("2")),
    "fake/big": ModelPrice(input=Decimal("10"), output=Decimal("30")),
}

NewStoreUrl = Callable[[], str]
MakeService = Callable[..., CreditService]


def _new_url(kind: str, directory: Path, n: int) -> str:
    if kind == "sqlite":
        return f"sqlite:///{directory / f'credits-{n}.db'}"
    raise AssertionError(f"unknown store kind {kind}")  # pragma: no cover


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_store_url(store_kind: str, tmp_path: Path) -> NewStoreUrl:
    """Makes the URL of a new, empty store of the current kind."""
    counter = itertools.count(1)
    return lambda: _new_url(store_kind, tmp_path, next(counter))


@pytest.fixture
def store_url(new_store_url: NewStoreUrl) -> str:
    return new_store_url()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def payments() -> InMemoryPaymentMethod:
    return InMemoryPaymentMethod()


@pytest.fixture
def make_service(store_url: str, clock: ManualClock) -> Iterator[MakeService]:
    """``make_service(payment_method=..., **credits_config)``: a service on the test store."""
    services: list[CreditService] = []

    def make(payment_method: PaymentMethod | None = None, **settings: Any) -> CreditService:
        config = CreditsConfig(store=store_url, **settings)
        service = CreditService(
            config,
            PriceBook.from_config(TEST_PRICING, clock=clock),
            clock=clock,
            payment_method=payment_method,
            store=open_store(store_url),
        )
        services.append(service)
        return service

    yield make
    for service in services:
        service.close()
