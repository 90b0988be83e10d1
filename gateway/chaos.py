"""Fault injection for staging: fail a share of the calls to a target, on purpose.

Configured under ``chaos:`` in the YAML, off unless ``enabled: true``::

    chaos:
      enabled: true
      faults:
        - {target: "openai/*", rate: 0.1, error: rate_limited, retry_after: 2}
        - {target: "anthropic/claude-sonnet-4-5", rate: 0.05, error: server_error, status: 503}
        - {target: "*", rate: 0.01, error: timeout}

Before each attempt the client asks :meth:`ChaosMonkey.fault_for` whether to fail it; an
injected fault is the same normalised :class:`~gateway.errors.ProviderError` a real failure
would be (so retries, fallback and breakers react to it exactly as in production), raised
instead of calling the provider: no request is sent and nothing is billed. Its ``code`` is
``"chaos"`` and its message says it was injected, so it is never mistaken for a real outage.

Loud on purpose: a WARNING on the ``gateway`` logger when chaos is switched on (listing the
faults) and for every injected fault. The decision is pure apart from that logging: the same
random source in the same state gives the same faults.
"""

from __future__ import annotations

import fnmatch
import logging
import random
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderOverloaded,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)

__all__ = ["CHAOS_CODE", "ChaosConfig", "ChaosErrorKind", "ChaosFault", "ChaosMonkey"]

logger = logging.getLogger("gateway")

ChaosErrorKind = Literal["rate_limited", "server_error", "overloaded", "timeout", "connection"]

#: The status each error kind carries unless the fault sets one.
_DEFAULT_STATUS: dict[str, int | None] = {
    "rate_limited": 429,
    "server_error": 503,
    "overloaded": 529,
    "timeout": None,
    "connection": None,
}
_ERROR_CLASSES: dict[str, type[ProviderError]] = {
    "rate_limited": RateLimited,
    "server_error": ProviderUnavailable,
    "overloaded": ProviderOverloaded,
    "timeout": ProviderTimeout,
    "connection": ProviderConnectionError,
}
#: The ``code`` of every injected error.
CHAOS_CODE = "chaos"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChaosFault(_Model):
    """Fail ``rate`` of the calls to ``target`` with ``error``."""

    #: ``provider/model``, a glob over it (``openai/*``, ``*/gpt-4o*``), or ``*`` for all.
    target: str
    #: Share of the matching attempts to fail, from 0 to 1.
    rate: Annotated[float, Field(ge=0, le=1)]
    error: ChaosErrorKind
    #: HTTP status of the injected error: 429 for rate_limited, 5xx for server_error (503 by
    #: default), 503 or 529 for overloaded (529 by default); none for timeout and connection.
    status: int | None = None
    #: Seconds the injected error asks the gateway to wait (Retry-After).
    retry_after: Annotated[float, Field(ge=0)] | None = None

    @field_validator("target")
    @classmethod
    def _target_pattern(cls, value: str) -> str:
        value = value.strip()
        if value != "*" and ("/" not in value or value.startswith("/") or value.endswith("/")):
            raise ValueError(
                f"'{value}' is not a target; write provider/model, a glob such as openai/*, "
                "or * for every target"
            )
        return value

    @field_validator("rate", mode="before")
    @classmethod
    def _rate_number(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be a share between 0 and 1, such as 0.1, not true/false")
        return value

    @model_validator(mode="after")
    def _status_fits_error(self) -> ChaosFault:
        status = self.status
        if status is None:
            return self
        allowed = {
            "rate_limited": status == 429,
            "server_error": 500 <= status <= 599,
            "overloaded": status in (503, 529),
            "timeout": False,
            "connection": False,
        }[self.error]
        if not allowed:
            expected = {
                "rate_limited": "429",
                "server_error": "a 5xx status",
                "overloaded": "503 or 529",
                "timeout": "no status",
                "connection": "no status",
            }[self.error]
            raise ValueError(f"status {status} does not fit error {self.error}; use {expected}")
        return self

    def matches(self, target_label: str) -> bool:
        """Whether this fault applies to ``provider/model``."""
        return fnmatch.fnmatchcase(target_label, self.target)

    def describe(self) -> str:
        status = self.status if self.status is not None else _DEFAULT_STATUS[self.error]
        details = f" {status}" if status is not None else ""
        after = f" retry_after={self.retry_after:g}s" if self.retry_after is not None else ""
        return f"{self.target}: {self.rate:.2%} {self.error}{details}{after}"


class ChaosConfig(_Model):
    """The ``chaos:`` section: injected failures for staging. Off by default."""

    enabled: bool = False
    faults: list[ChaosFault] = Field(default_factory=list)


class ChaosMonkey:
    """Decides, per attempt, whether to inject a fault. Build one per gateway."""

    def __init__(self, config: ChaosConfig) -> None:
        self.config = config
        self.enabled = config.enabled
        self._faults: Sequence[ChaosFault] = tuple(config.faults) if config.enabled else ()
        if self.enabled:
            listed = "; ".join(f.describe() for f in self._faults) or "no faults configured"
            logger.warning(
                "CHAOS fault injection is ON: calls will fail on purpose (%s). "
                "Never enable this in production.",
                listed,
            )

    @classmethod
    def from_config(cls, config: ChaosConfig | None) -> ChaosMonkey | None:
        """A monkey when chaos is enabled, else None (nothing to ask on the hot path)."""
        if config is None or not config.enabled:
            return None
        return cls(config)

    def fault_for(self, target_label: str, rng: random.Random) -> ProviderError | None:
        """The error to raise instead of calling ``target_label`` (``provider/model``), or None.

        Each matching fault, in config order, draws once from ``rng``; the first that fires
        wins. Draws nothing when chaos is off or no fault matches.
        """
        for fault in self._faults:
            if not fault.matches(target_label):
                continue
            if rng.random() < fault.rate:
                error = _injected(fault, target_label)
                logger.warning(
                    "CHAOS injected %s into %s (fault %s)",
                    error.kind,
                    target_label,
                    fault.describe(),
                )
                return error
        return None

    def __repr__(self) -> str:
        state = "on" if self.enabled else "off"
        return f"ChaosMonkey({state}, faults={len(self._faults)})"


def _injected(fault: ChaosFault, target_label: str) -> ProviderError:
    provider, _, model = target_label.partition("/")
    status = fault.status if fault.status is not None else _DEFAULT_STATUS[fault.error]
    return _ERROR_CLASSES[fault.error](
        f"injected by chaos ({fault.error}); not a real provider failure",
        provider=provider,
        model=model or None,
        status_code=status,
        retry_after=fault.retry_after,
        code=CHAOS_CODE,
    )
