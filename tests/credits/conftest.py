"""Fixtures of the credit-account tests.

The store is parametrised over store kinds: every test that takes ``store_url``,
``new_store_url`` or ``make_service`` runs once per kind, on SQLite and on PostgreSQL.

PostgreSQL: the first test that needs it starts a throwaway server for the session
(``tests/pg_server.py``), or uses the database ``GATEWAY_TEST_PG_DSN`` names; each store is
a schema of its own in it. When no server can be started the PostgreSQL tests are skipped
with the reason, except on CI (``CI=true``), where they fail.
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
from tests.pg_server import PgUnavailable, TestDatabase, in_ci

STORE_KINDS = ["sqlite", "postgresql"]

#: Round prices for the fake provider, so that expected amounts are easy to read.
TEST_PRICING = {
    "fake/small": ModelPrice(input=Decimal("1"), output=Decimal("2")),
    "fake/big": ModelPrice(input=Decimal("10"), output=Decimal("30")),
}

NewStoreUrl = Callable[[], str]
MakeService = Callable[..., CreditService]


def _new_url(kind: str, directory: Path, n: int, pg: TestDatabase | None) -> str:
    if kind == "sqlite":
        return f"sqlite:///{directory / f'credits-{n}.db'}"
    if kind == "postgresql":
        assert pg is not None
        return pg.new_url()
    raise AssertionError(f"unknown store kind {kind}")  # pragma: no cover


#: Tests whose PostgreSQL run takes more than a few seconds (the same code on SQLite is fast).
HEAVY_ON_POSTGRESQL = {"test_ledger_matches_a_reference_model"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or callspec.params.get("store_kind") != "postgresql":
            continue
        if getattr(item, "originalname", item.name) in HEAVY_ON_POSTGRESQL:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[TestDatabase]:
    """The session's PostgreSQL test database (started on first use)."""
    try:
        database = TestDatabase.open()
    except PgUnavailable as exc:
        if in_ci():
            pytest.fail(f"PostgreSQL is required on CI and could not be started: {exc}")
        pytest.skip(f"no PostgreSQL server could be started: {exc}")
    yield database
    database.close()


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_store_url(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> NewStoreUrl:
    """Makes the URL of a new, empty store of the current kind."""
    counter = itertools.count(1)
    pg = request.getfixturevalue("pg_database") if store_kind == "postgresql" else None
    return lambda: _new_url(store_kind, tmp_path, next(counter), pg)


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
