"""Fixtures of the server's tests: one real ``gateway serve`` per test module where it can
be shared, over the fake provider and a gated OpenAI-wire upstream (``_upstream.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.server._serve import ADMIN_KEY, Served, free_port, serve
from tests.server._upstream import Upstream

pytest.importorskip("uvicorn", reason="the server's extra: pip install -e '.[server]'")

#: Dollars the default account starts with.
FUNDS = Decimal("50")


def server_config(store: str, upstream: Upstream, **server: Any) -> dict[str, Any]:
    """A config with routes on the fake provider, on the upstream (``slow``: its gated
    model; ``long``: context too long) and on a port nothing listens on (``broken``)."""
    closed = f"http://127.0.0.1:{free_port()}/v1"
    upstream_provider = {"type": "openai", "api_key": "sk-upstream-test-0000", "timeout": 30}
    return {
        "providers": {
            "fake": {},
            "openai": {"type": "fake"},  # offline, priced as OpenAI's models (genai-prices)
            "up": {**upstream_provider, "base_url": upstream.base_url},
            "down": {**upstream_provider, "base_url": closed},
        },
        "routes": {
            "r": {"targets": ["fake/m"]},
            "other": {"targets": ["fake/o"]},
            "slow": {"targets": ["up/gated"]},
            "long": {"targets": ["up/too-long"]},
            "broken": {"targets": ["down/m"], "retry": {"attempts": 1}},
            "limited": {"targets": ["up/limited"], "retry": {"attempts": 1}},
            "badkey": {"targets": ["up/bad-key"], "retry": {"attempts": 1}},
            "embed": {"targets": ["openai/text-embedding-3-small"]},
            "draw": {"targets": ["openai/gpt-image-1"]},
        },
        "credits": {"store": store},
        "pricing": {
            "fake/m": {"input": "1", "output": "2"},
            "fake/o": {"input": "1", "output": "2"},
            "up/plain": {"input": "3", "output": "15"},
            "up/gated": {"input": "3", "output": "15"},
            "up/breaks": {"input": "3", "output": "15"},
            "up/too-long": {"input": "3", "output": "15"},
            "up/limited": {"input": "3", "output": "15"},
            "up/bad-key": {"input": "3", "output": "15"},
            "down/m": {"input": "3", "output": "15"},
        },
        "server": {"admin_key": ADMIN_KEY, "drain_timeout_s": 5, **server},
    }


def fund(config: dict[str, Any], amount: Decimal = FUNDS, account: str | None = None) -> None:
    from gateway import Gateway

    with Gateway(config=config) as gw:
        credits = gw.credits if account is None else gw.credits.account(account)
        credits.grant(amount)


def make_key(config: dict[str, Any], account: str = "default", **settings: Any) -> str:
    """A new API key (made through the library, as `gateway keys create` does)."""
    from gateway import Gateway

    with Gateway(config=config) as gw:
        return gw.keys.create(account=account, name=settings.pop("name", "test"), **settings).key


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream() as running:
        yield running


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server")


@pytest.fixture(scope="module")
def config(module_dir: Path, upstream: Upstream) -> dict[str, Any]:
    config = server_config(f"sqlite:///{module_dir / 'credits.db'}", upstream)
    fund(config)
    return config


@pytest.fixture(scope="module")
def server(config: dict[str, Any], module_dir: Path) -> Iterator[Served]:
    """The module's server; it must stop cleanly (SIGTERM, exit 0) at the end."""
    served = serve(config, module_dir)
    yield served
    code, err = served.stop()
    assert code == 0, err


from tests.credits.conftest import pg_database  # noqa: E402, F401  (the session's PostgreSQL)
