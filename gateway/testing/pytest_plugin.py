"""pytest plugin: the ``gateway_mock`` and ``gateway_clock`` fixtures.

Registered through the ``pytest11`` entry point, so it is active in every pytest run once the
SDK is installed; nothing to add to a ``conftest.py``::

    def test_survives_an_openai_outage(gateway_mock, gateway_clock):
        gateway_mock.openai.fail(503)            # down for the whole test
        gw = Gateway(config, clock=gateway_clock)
        resp = gw.chat.completions.create(model="smart", messages=[...])
        assert resp.gateway.provider == "anthropic"

- ``gateway_clock``: a :class:`~gateway.testing.clock.ManualClock`. Build the gateway with
  ``clock=gateway_clock`` and its retries, backoff, breakers, holds and expiry run on it:
  nothing sleeps. ``gateway_clock.sleeps`` lists every wait the gateway asked for (backoff,
  Retry-After), in seconds. A gateway built without it sleeps for real; the mock then warns
  (``RealSleepWarning``, once per test).
- ``gateway_mock``: :func:`gateway.testing.mock_providers` bound to ``gateway_clock`` and
  active for the whole test. Needs the ``testing`` extra (respx, pytest-httpx2).

This module loads in every test run of every user who installed the SDK, so it imports
nothing at import time beyond pytest itself; the mocks load when the fixture is first used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from gateway.testing.clock import ManualClock
    from gateway.testing.mock import MockProviders

__all__ = ["gateway_clock", "gateway_mock"]

#: Modules of the ``testing`` extra; a missing one gets a message saying how to install it.
_TESTING_EXTRA = frozenset({"respx", "pytest_httpx2", "httpx", "httpcore"})
_INSTALL_HINT = (
    "pip install -e '.[testing]' from a checkout of the SDK, or pip install "
    "'llm-gateway-sdk[testing]'"
)


@pytest.fixture
def gateway_clock() -> ManualClock:
    """A manual clock for the gateway under test: time moves only when told (or slept)."""
    from gateway.testing.clock import ManualClock

    return ManualClock()


@pytest.fixture
def gateway_mock(gateway_clock: ManualClock) -> Iterator[MockProviders]:
    """OpenAI, Anthropic and Gemini mocked on the wire for this test (see gateway.testing.mock)."""
    try:
        from gateway.testing.mock import mock_providers
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in _TESTING_EXTRA:
            raise
        pytest.fail(
            f"the gateway_mock fixture needs the SDK's testing extra ({missing} is not "
            f"installed): {_INSTALL_HINT}",
            pytrace=False,
        )
    with mock_providers(gateway_clock) as mock:
        yield mock
