"""Observability: what happened during a call, as events and as ``logging`` records.

Every event goes to the ``gateway`` logger (INFO for fallbacks, retries and breaker changes,
DEBUG for attempt start/end) and, if given, to the ``on_event`` callback of the client.
Events carry names, classes, statuses and timings, never request content or secrets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["LEVELS", "EventHook", "EventKind", "GatewayEvent", "emit"]

logger = logging.getLogger("gateway")

EventKind = Literal["attempt_start", "attempt_end", "retry", "fallback", "skipped", "breaker_state"]


@dataclass(frozen=True, slots=True)
class GatewayEvent:
    """One thing that happened while serving a call."""

    kind: EventKind
    route: str
    request_id: str
    #: ``provider/model`` the event is about.
    target: str | None = None
    #: Details by kind: ``outcome``, ``error``, ``status``, ``seconds``, ``next``, ``wait_s``,
    #: ``state``, ``reason``.
    detail: Mapping[str, Any] = field(default_factory=dict)


EventHook = Callable[[GatewayEvent], None]

#: The logging level of each kind of event.
LEVELS: dict[str, int] = {
    "attempt_start": logging.DEBUG,
    "attempt_end": logging.DEBUG,
    "retry": logging.INFO,
    "fallback": logging.INFO,
    "skipped": logging.INFO,
    "breaker_state": logging.WARNING,
}


def emit(hook: EventHook | None, event: GatewayEvent) -> None:
    """Log the event and hand it to the hook; a failing hook is logged, never raised."""
    level = LEVELS[event.kind]
    if logger.isEnabledFor(level):
        details = " ".join(f"{k}={v}" for k, v in event.detail.items())
        logger.log(
            level,
            "%s route=%s target=%s request=%s %s",
            event.kind,
            event.route,
            event.target,
            event.request_id,
            details,
        )
    if hook is not None:
        try:
            hook(event)
        except Exception:
            logger.exception("the on_event hook raised; ignoring it")
