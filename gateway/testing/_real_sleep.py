"""A warning when a gateway under test waits for real while the provider mocks are active.

A gateway built without the test clock (``clock=gateway_clock``) runs on the real
:class:`~gateway._clock.SystemClock`: a scripted ``retry_after`` or a retry's backoff then
sleeps for real, and the test is slow for no reason. While a mock is active, the real clock's
``sleep`` and ``asleep`` say so (a warning, once per mock) before they wait.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gateway._clock import SystemClock

__all__ = ["RealSleepWarning", "warn_on_real_sleep"]


class RealSleepWarning(UserWarning):
    """A gateway under test slept for real: it was built without the test clock."""


class _Watch:
    """One active mock: whether it has warned yet."""

    __slots__ = ("warned",)

    def __init__(self) -> None:
        self.warned = False


_lock = threading.Lock()
_watches: list[_Watch] = []
#: SystemClock's own sleep and asleep while they are replaced.
_originals: tuple[Any, Any] | None = None


def _warn(seconds: float) -> None:
    if seconds <= 0:
        return
    with _lock:
        pending = [watch for watch in _watches if not watch.warned]
        for watch in pending:
            watch.warned = True
    if pending:
        warnings.warn(
            f"the gateway under test is about to sleep {seconds:g}s for real (a scripted "
            "retry_after or a retry's backoff): it was built without the test clock. Build it "
            "with clock=gateway_clock (or the ManualClock given to mock_providers) and every "
            "wait is instant. (Said once per mock.)",
            RealSleepWarning,
            stacklevel=_first_frame_outside_gateway(),
        )


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _first_frame_outside_gateway() -> int:
    """The ``stacklevel`` that points the warning at the caller's line (the call in the test),
    however many gateway frames are between."""
    frame = sys._getframe(1)  # _warn, the function that warns: stacklevel 1
    level = 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    return level


def _install() -> None:
    global _originals
    sleep, asleep = SystemClock.sleep, SystemClock.asleep
    _originals = (sleep, asleep)

    def watched_sleep(clock: SystemClock, seconds: float) -> None:
        _warn(seconds)
        sleep(clock, seconds)

    async def watched_asleep(clock: SystemClock, seconds: float) -> None:
        _warn(seconds)
        await asleep(clock, seconds)

    SystemClock.sleep = watched_sleep  # type: ignore[method-assign,assignment]
    SystemClock.asleep = watched_asleep  # type: ignore[method-assign,assignment]


def _uninstall() -> None:
    global _originals
    assert _originals is not None
    SystemClock.sleep, SystemClock.asleep = _originals  # type: ignore[method-assign]
    _originals = None


@contextmanager
def warn_on_real_sleep() -> Iterator[Any]:
    """While active, the real clock warns (once for this block) before it sleeps."""
    watch = _Watch()
    with _lock:
        if not _watches:
            _install()
        _watches.append(watch)
    try:
        yield watch
    finally:
        with _lock:
            _watches.remove(watch)
            if not _watches:
                _uninstall()
