"""Writing settled calls when the process is told to stop.

Python's default SIGTERM ends the process without running ``atexit``, so a gateway's
pending batch would only reach the store when another process replays its journal. When a
gateway with batched settlement is made (in the main thread), SIGTERM and SIGINT get a
handler that first writes what is pending (best effort: never from inside a write this
thread was interrupted in), then does exactly what was there before: calls the
application's own handler, raises KeyboardInterrupt for SIGINT, or, for a default SIGTERM,
ends the process with that same signal. A handler the application installs later replaces
this one; the journal still keeps every call. ``credits.flush_on_signals: false`` turns
this off.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from types import FrameType
from typing import Any

__all__ = ["install", "installed"]

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: signal number -> the handler that was there before ours.
_previous: dict[int, Any] = {}
_guard = threading.Lock()


def install() -> None:
    """Put the flushing handler in front of SIGTERM's and SIGINT's current ones (once; only
    from the main thread; a signal that is ignored, or handled outside Python, is left)."""
    if threading.current_thread() is not threading.main_thread():
        return
    with _guard:
        for signum in _SIGNALS:
            if signum in _previous:
                continue
            current = signal.getsignal(signum)
            if current is signal.SIG_IGN or current is None:
                continue
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signum, _handle)
                _previous[signum] = current


def installed(signum: int) -> bool:
    """Whether ``signum`` goes through the flushing handler now."""
    return signum in _previous and signal.getsignal(signum) is _handle


def _handle(signum: int, frame: FrameType | None) -> Any:
    from gateway.credits.spender import flush_all_on_signal

    flush_all_on_signal()
    previous = _previous.get(signum, signal.SIG_DFL)
    if callable(previous):
        return previous(signum, frame)
    # The default action: end the process with this very signal, as it would have ended.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    return None
