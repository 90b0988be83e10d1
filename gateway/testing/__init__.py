"""Testing aids that ship with the SDK: provider wire formats, mocks, the fake provider.

- :func:`mock_providers` (:mod:`gateway.testing.mock`): OpenAI, Anthropic and Gemini mocked on
  the wire, with scripted faults; needs the ``testing`` extra
  (``pip install -e '.[testing]'`` from a checkout).
- :class:`ManualClock` (:mod:`gateway.testing.clock`): time that moves only when told.
- :class:`BatchScript` (:mod:`gateway.testing._batch_script`): which items of a provider's
  batches error or expire (the fake provider's is ``gw.adapter("fake").batch_script``).
- :class:`RealSleepWarning`: a gateway under a mock slept for real (built without the clock).
- the pytest plugin (:mod:`gateway.testing.pytest_plugin`): fixtures ``gateway_mock`` and
  ``gateway_clock``, registered automatically.

Names load on first access, so importing this package (the pytest plugin does, in every test
run) costs nothing and does not need respx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway._lazy import lazy_exports

if TYPE_CHECKING:
    from gateway.testing._batch_script import BatchScript
    from gateway.testing._real_sleep import RealSleepWarning
    from gateway.testing.clock import ManualClock
    from gateway.testing.mock import MockCall, MockProviders, mock_providers

__all__ = [
    "BatchScript",
    "ManualClock",
    "MockCall",
    "MockProviders",
    "RealSleepWarning",
    "mock_providers",
]

_LAZY = {
    "BatchScript": "gateway.testing._batch_script",
    "ManualClock": "gateway.testing.clock",
    "MockCall": "gateway.testing.mock",
    "MockProviders": "gateway.testing.mock",
    "mock_providers": "gateway.testing.mock",
    "RealSleepWarning": "gateway.testing._real_sleep",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
