"""An incoming ``traceparent`` becomes the parent of the call's span (issue 19).

Only when the config turns telemetry on (``telemetry: {opentelemetry: true}``) and the
request carries trace context: the extracted context is made current around the library
call, which starts its span in the current context (gateway/telemetry). With telemetry off
nothing from OpenTelemetry is imported.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from starlette.requests import Request

__all__ = ["incoming_trace"]


@contextmanager
def incoming_trace(request: Request, *, enabled: bool) -> Iterator[None]:
    """Make the request's W3C trace context (``traceparent`` / ``tracestate``, through the
    application's configured propagator) current for the block."""
    if not enabled or "traceparent" not in request.headers:
        yield
        return
    from opentelemetry import context, propagate

    token = context.attach(propagate.extract(dict(request.headers)))
    try:
        yield
    finally:
        context.detach(token)
