"""What a provider's batch API speaks to the gateway (no SDK, no I/O).

A batch adapter submits a list of chat requests, each already translated by
:func:`gateway._request.build_request` exactly as a chat call's would be, reports the batch's
status in the gateway's terms (``pending``, ``running``, ``ended``, with the provider's own
status kept alongside) and hands back each item's outcome: ``succeeded`` with an
OpenAI-shaped :class:`~gateway.providers.base.ProviderResponse`, or ``errored``, ``expired``
or ``cancelled`` (which cost nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from gateway.providers.base import ChatRequest, ProviderResponse

__all__ = [
    "BatchAdapter",
    "BatchCounts",
    "BatchHandle",
    "BatchItem",
    "BatchItemResult",
    "BatchState",
    "ItemOutcome",
    "ProviderBatch",
]

BatchState = Literal["pending", "running", "ended"]
ItemOutcome = Literal["succeeded", "errored", "expired", "cancelled"]


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One request of a batch: the caller's ``custom_id`` and the translated request."""

    custom_id: str
    request: ChatRequest


@dataclass(slots=True)
class BatchCounts:
    """How many items are in each state (``processing``: not finished yet)."""

    processing: int = 0
    succeeded: int = 0
    errored: int = 0
    expired: int = 0
    cancelled: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "processing": self.processing,
            "succeeded": self.succeeded,
            "errored": self.errored,
            "expired": self.expired,
            "cancelled": self.cancelled,
        }


@dataclass(frozen=True, slots=True)
class BatchHandle:
    """What the gateway knows of a submitted batch, handed back to its adapter."""

    #: The provider's batch id.
    id: str
    model: str
    created_us: int
    #: When the gateway asked the provider to cancel it (None: never).
    cancelled_us: int | None
    #: The injected clock's wall time now (microseconds since the epoch).
    now_us: int


@dataclass(slots=True)
class ProviderBatch:
    """A batch as its provider reports it."""

    id: str
    state: BatchState
    #: The provider's own word for it (OpenAI ``in_progress``, Anthropic ``ended``, ...).
    provider_status: str
    counts: BatchCounts = field(default_factory=BatchCounts)


@dataclass(slots=True)
class BatchItemResult:
    """One item's outcome, by ``custom_id``."""

    custom_id: str
    outcome: ItemOutcome
    response: ProviderResponse | None = None
    #: What went wrong (errored or expired), as the provider said it.
    error: str | None = None


class BatchAdapter(Protocol):
    """A provider's batch API. ``items`` are the batch's requests in submission order."""

    def create_batch(self, model: str, items: Sequence[BatchItem]) -> ProviderBatch:
        """Submit the batch (upload what the provider needs first)."""
        ...

    def retrieve_batch(self, handle: BatchHandle, items: Sequence[BatchItem]) -> ProviderBatch:
        """Poll its status and counts."""
        ...

    def cancel_batch(self, handle: BatchHandle, items: Sequence[BatchItem]) -> ProviderBatch:
        """Ask the provider to stop it; finished items keep their results."""
        ...

    def batch_results(
        self, handle: BatchHandle, items: Sequence[BatchItem]
    ) -> list[BatchItemResult]:
        """Every item's outcome, once the batch has ended."""
        ...
