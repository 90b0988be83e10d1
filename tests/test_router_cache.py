"""The router keeps configured routes for good and direct ``provider/model`` routes in a
bounded most-recently-used cache (a server resolves whatever names its callers send)."""

from __future__ import annotations

import pytest

from gateway import routing
from gateway.config import parse_config
from gateway.routing import Router


def make_router() -> Router:
    return Router(
        parse_config({"providers": {"fake": {}}, "routes": {"r": {"targets": ["fake/m"]}}})
    )


def test_direct_routes_are_cached_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routing, "MAX_DIRECT_ROUTES", 3)
    router = make_router()
    first = router.resolve("fake/a")
    assert router.resolve("fake/a") is first  # cached
    for name in ("fake/b", "fake/c", "fake/d"):
        router.resolve(name)
    assert len(router._direct) == 3
    assert router.resolve("fake/a") is not first  # evicted, resolved again


def test_using_a_direct_route_keeps_it_and_configured_routes_never_leave(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(routing, "MAX_DIRECT_ROUTES", 2)
    router = make_router()
    configured = router.resolve("r")
    a = router.resolve("fake/a")
    router.resolve("fake/b")
    assert router.resolve("fake/a") is a  # used last: "fake/b" is now the oldest
    for index in range(100):
        router.resolve(f"fake/x{index}")
    assert len(router._direct) == 2
    assert router.resolve("r") is configured
