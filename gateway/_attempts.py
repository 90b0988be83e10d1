"""What the gateway tells the caller about how a call was served: ``resp.gateway``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Attempt", "GatewayInfo"]

Outcome = Literal["ok", "error", "skipped"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one target."""

    #: Provider name as configured, e.g. ``openai``.
    provider: str
    #: Model id at that provider, e.g. ``gpt-4o``.
    model: str
    #: ``ok``, ``error``, or ``skipped`` (not sent: breaker open, rate limit, no window).
    outcome: Outcome
    #: Wall-clock seconds the try took (0 for a skipped target).
    seconds: float = 0.0
    #: The normalised error, for a failed try.
    error: BaseException | None = None
    #: HTTP status of the failure, when there was one.
    status_code: int | None = None
    #: True when this try repeated the previous target (a retry), False for a new target.
    retry: bool = False
    #: Why a target was skipped, in words.
    reason: str | None = None

    @property
    def error_type(self) -> str | None:
        """Class name of the error, e.g. ``RateLimited``."""
        return type(self.error).__name__ if self.error is not None else None

    @property
    def target(self) -> str:
        return f"{self.provider}/{self.model}"

    def describe(self) -> str:
        """One line for logs: ``openai/gpt-4o: RateLimited (HTTP 429) after 0.12s``."""
        how = "retry of " if self.retry else ""
        if self.outcome == "ok":
            return f"{how}{self.target}: ok in {self.seconds:.2f}s"
        if self.outcome == "skipped":
            return f"{self.target}: skipped ({self.reason or 'unavailable'})"
        status = f" (HTTP {self.status_code})" if self.status_code is not None else ""
        detail = ""
        if self.error is not None:
            text = getattr(self.error, "detail", None) or str(self.error)
            detail = f": {text.splitlines()[0]}" if text else ""
        return f"{how}{self.target}: {self.error_type}{status} after {self.seconds:.2f}s{detail}"


@dataclass(frozen=True, slots=True)
class GatewayInfo:
    """Attached to every response as ``resp.gateway``: who answered, and every try it took."""

    #: Provider that produced the answer.
    provider: str
    #: Model id at that provider.
    model: str
    #: The route name the caller asked for (or ``provider/model`` for a direct call).
    route: str
    #: The gateway's own id for this call (also the credit ledger's request id).
    request_id: str
    #: The provider's id for the response, when it gave one.
    provider_request_id: str | None = None
    #: Every try in order, the successful one last.
    attempts: tuple[Attempt, ...] = field(default_factory=tuple)
