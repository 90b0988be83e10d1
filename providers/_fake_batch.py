"""The fake provider's batches: offline, deterministic, paced by the injected clock.

Item ``i`` (from 0) of a batch finishes :data:`FAKE_ITEM_SECONDS` × (i + 1) after the batch
was created, answered by :meth:`FakeAdapter.complete <gateway.providers.fake.FakeAdapter.complete>`
(the same answer a chat call would get, so the fake's script applies: a scripted failure
makes that item ``errored``, a scripted timeout ``expired``). The batch is ``pending`` until
its first item finishes, then ``running``, and ``ended`` when the last one has, or when it
was cancelled: items not finished by then are ``cancelled``. An item's outcome is decided
once per adapter and kept, so collecting twice sees the same results.

The adapter's :class:`~gateway.testing._batch_script.BatchScript` (``fake.batch_script``)
says which items error or expire whatever their answer would be, the same in every process
that scripts it: ``error("q2", "...")``, ``expire(2)``, ``expires_after(seconds)`` (the batch
ends then, provider status ``expired``, its unfinished items ``expired``).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from weakref import WeakKeyDictionary

from gateway.errors import GatewayError, ProviderTimeout
from gateway.providers.batch import (
    BatchCounts,
    BatchHandle,
    BatchItem,
    BatchItemResult,
    ProviderBatch,
)
from gateway.providers.fake import FakeAdapter

__all__ = ["FAKE_ITEM_SECONDS", "FakeBatches"]

#: Simulated seconds each item of a fake batch takes, one after the other.
FAKE_ITEM_SECONDS = 10.0
_EXPIRED = "the batch expired before this request ran"

_ids = itertools.count(1)
_outcomes: WeakKeyDictionary[FakeAdapter, dict[tuple[str, str], BatchItemResult]] = (
    WeakKeyDictionary()
)
_lock = threading.Lock()


class FakeBatches:
    """The batch API of one :class:`FakeAdapter`."""

    def __init__(self, adapter: FakeAdapter) -> None:
        self.adapter = adapter
        with _lock:
            self._outcomes = _outcomes.setdefault(adapter, {})

    def create_batch(self, model: str, items: Sequence[BatchItem]) -> ProviderBatch:
        batch_id = f"fakebatch-{next(_ids)}"
        return ProviderBatch(batch_id, "pending", "validating", BatchCounts(processing=len(items)))

    def _expiry_us(self, handle: BatchHandle) -> int | None:
        """When the script makes the batch expire (None: never)."""
        seconds = self.adapter.batch_script.expiry_seconds
        return None if seconds is None else handle.created_us + round(seconds * 1_000_000)

    def _expired(self, handle: BatchHandle) -> bool:
        expiry_us = self._expiry_us(handle)
        stopped_us = handle.cancelled_us
        return (
            expiry_us is not None
            and expiry_us <= handle.now_us
            and (stopped_us is None or expiry_us < stopped_us)
        )

    def _finished(self, handle: BatchHandle, index: int) -> bool:
        done_us = handle.created_us + round(FAKE_ITEM_SECONDS * 1_000_000) * (index + 1)
        stops = [handle.now_us]
        if handle.cancelled_us is not None:
            stops.append(handle.cancelled_us)
        expiry_us = self._expiry_us(handle)
        if expiry_us is not None:
            stops.append(expiry_us)
        return done_us <= min(stops)

    def _outcome(self, handle: BatchHandle, item: BatchItem, index: int) -> BatchItemResult:
        key = (handle.id, item.custom_id)
        with _lock:
            known = self._outcomes.get(key)
        if known is not None:
            return known
        scripted = self.adapter.batch_script.outcome_for(index, item.custom_id)
        if scripted is not None:
            result = BatchItemResult(item.custom_id, scripted.outcome, error=scripted.error)
            with _lock:
                return self._outcomes.setdefault(key, result)
        try:
            response = self.adapter.complete(handle.model, item.request)
            result = BatchItemResult(item.custom_id, "succeeded", response)
        except ProviderTimeout as exc:
            result = BatchItemResult(item.custom_id, "expired", error=str(exc))
        except GatewayError as exc:
            result = BatchItemResult(item.custom_id, "errored", error=str(exc))
        with _lock:
            return self._outcomes.setdefault(key, result)

    def _results(self, handle: BatchHandle, items: Sequence[BatchItem]) -> list[BatchItemResult]:
        results = []
        unfinished = "expired" if self._expired(handle) else "cancelled"
        for index, item in enumerate(items):
            if self._finished(handle, index):
                results.append(self._outcome(handle, item, index))
            elif unfinished == "expired":
                results.append(BatchItemResult(item.custom_id, "expired", error=_EXPIRED))
            else:  # the batch ended (results are read only then): cancelled unfinished
                results.append(BatchItemResult(item.custom_id, "cancelled"))
        return results

    def retrieve_batch(self, handle: BatchHandle, items: Sequence[BatchItem]) -> ProviderBatch:
        counts = BatchCounts()
        finished = 0
        expired = self._expired(handle)
        ran_out = False
        for index, item in enumerate(items):
            if self._finished(handle, index):
                finished += 1
                outcome = self._outcome(handle, item, index).outcome
                setattr(counts, outcome, getattr(counts, outcome) + 1)
            elif expired:
                counts.expired += 1
                ran_out = True
            elif handle.cancelled_us is not None:
                counts.cancelled += 1
            else:
                counts.processing += 1
        if counts.processing == 0:
            status = "completed"
            if ran_out:
                status = "expired"
            elif handle.cancelled_us is not None:
                status = "cancelled"
            return ProviderBatch(handle.id, "ended", status, counts)
        if finished == 0:
            return ProviderBatch(handle.id, "pending", "validating", counts)
        return ProviderBatch(handle.id, "running", "in_progress", counts)

    def cancel_batch(self, handle: BatchHandle, items: Sequence[BatchItem]) -> ProviderBatch:
        return self.retrieve_batch(handle, items)

    def batch_results(
        self, handle: BatchHandle, items: Sequence[BatchItem]
    ) -> list[BatchItemResult]:
        return self._results(handle, items)
