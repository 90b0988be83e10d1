"""Fixtures of the dashboard's tests: a ledger with calls on two accounts, and (for the
browser tests) a real ``gateway serve`` and Debian's chromium driven by Playwright."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.pg_server import in_ci

pytest.importorskip("uvicorn", reason="the server's extra: pip install -e '.[server]'")
pytest.importorskip("jinja2", reason="the server's extra: pip install -e '.[server]'")

ADMIN_KEY = "admin-dashboard-test-0123456789"
#: The account's time zone: not UTC, so that a page showing UTC would be caught.
TZ = "America/New_York"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Where the browser tests leave a screenshot of every page (gitignored), to look at.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots" / "dashboard"


def dashboard_config(store: str, **server: Any) -> dict[str, Any]:
    return {
        "providers": {"fake": {}, "other": {"type": "fake"}},
        "routes": {
            "smart": {"targets": ["fake/m"], "retry": {"attempts": 1}},
            "cheap": {"targets": ["other/n"], "retry": {"attempts": 1}},
        },
        "credits": {"store": store, "timezone": TZ},
        "pricing": {
            "fake/m": {"input": "1.000000001", "output": "3"},
            "other/n": {"input": "0.15", "output": "0.6"},
        },
        "server": {"admin_key": ADMIN_KEY, "drain_timeout_s": 5, **server},
    }


def fill(config: dict[str, Any], calls: int = 12) -> None:
    """Credit on two accounts and calls with tags on the default one (through the library,
    as a client's calls would be written)."""
    from gateway import Gateway

    with Gateway(config=config) as gw:
        gw.credits.grant(Decimal("20"), note="welcome")
        gw.credits.purchase(Decimal("5"), idempotency_key="order-1")
        gw.credits.account("team-b").grant(Decimal("3"))
        for n in range(calls):
            gw.chat.completions.create(
                model=["smart", "cheap"][n % 2],
                messages=[{"role": "user", "content": "hello " * (n + 1)}],
                max_tokens=50,
                tags={"feature": ["search", "chat", "=cmd"][n % 3]} if n % 4 else None,
            )


@pytest.fixture(scope="module")
def chromium_path() -> str:
    """Debian's chromium (``.ci/run`` installs it); the tests skip without it, except on
    CI, where they fail."""
    pytest.importorskip("playwright", reason="the browser extra: pip install -e '.[browser]'")
    if shutil.which(CHROMIUM) is None:
        if in_ci():
            pytest.fail(f"{CHROMIUM} is required on CI (apt-get install chromium)")
        pytest.skip(f"no {CHROMIUM} (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture
def screenshots() -> Iterator[Path]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield SCREENSHOTS
