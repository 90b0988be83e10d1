"""``gw.batches`` / ``agw.batches``: a provider's batch API at the batch rate, from the account.

``create(model=, requests=[{"custom_id", "body"}], account=, tags=)`` submits every request
to one target: ``model`` is ``provider/model`` or a route, whose first healthy target takes
the whole batch (no fallback inside a batch: a provider's batch either runs there or not).
Each ``body`` is a chat call's arguments, validated and translated on the chat path
(:func:`~gateway._request.build_request`, then the target's overrides).

Money: every item holds its worst case at the batch rate (half the standard price unless
``pricing:`` gives ``batch`` or ``batch_discount``), all in one ledger write before anything
is sent, so a batch the account cannot cover is refused whole. ``results(id)`` settles each
succeeded item at its actual batch cost and releases the hold of every errored, expired or
cancelled item; both are idempotent per item, so whoever collects (another process, the CLI,
twice) charges each item once. The batch's rows live in the credit store
(:mod:`gateway.credits.batch_store`).
"""

from __future__ import annotations

import asyncio
import builtins
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from gateway.errors import ConfigError, CreditsError, InvalidRequest

if TYPE_CHECKING:
    from gateway._client import _GatewayCore
    from gateway.credits.batch_store import BatchItemRecord, BatchRecord, BatchStore
    from gateway.credits.service import CreditService
    from gateway.providers.batch import BatchAdapter, BatchItem, ProviderBatch
    from gateway.routing import ResolvedTarget
    from gateway.types import GatewayChatCompletion

__all__ = ["AsyncBatches", "Batch", "BatchResult", "Batches"]

#: A batch item's hold lasts this long unsettled (providers end a batch within 24 h,
#: Gemini within 48 h); past it the hold lapses but its item is still charged when collected.
BATCH_HOLD_TTL_S = 72 * 3600
#: Most requests in one batch (OpenAI's limit is 50,000, Anthropic's 100,000).
MAX_ITEMS = 50_000
_MAX_CUSTOM_ID = 64


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(message, provider="gateway")


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch as the gateway knows it."""

    #: The gateway's id (``batch_...``); the provider's is ``provider_batch_id``.
    id: str
    #: ``pending``, ``running`` or ``ended``.
    status: str
    #: The provider's own status (``in_progress``, ``ended``, ``JOB_STATE_SUCCEEDED``, ...).
    provider_status: str
    #: Items by state: processing, succeeded, errored, expired, cancelled.
    counts: dict[str, int]
    provider: str
    model: str
    route: str
    account: str
    provider_batch_id: str
    created_at: datetime
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One item of an ended batch."""

    custom_id: str
    #: ``succeeded``, ``errored``, ``expired`` or ``cancelled``.
    outcome: str
    #: The answer (succeeded items only).
    response: GatewayChatCompletion | None
    #: What went wrong, as the provider said it (errored and expired items).
    error: str | None
    #: What the account was charged for this item (zero unless it succeeded).
    cost: Decimal


def _batch_of(record: BatchRecord) -> Batch:
    from gateway.credits.money import from_micros

    return Batch(
        id=record.id,
        status=record.status,
        provider_status=record.provider_status,
        counts=dict(record.counts),
        provider=record.provider,
        model=record.model,
        route=record.route,
        account=record.account,
        provider_batch_id=record.provider_batch_id,
        created_at=from_micros(record.created_us),
        tags=dict(record.tags),
    )


def batch_adapter(core: _GatewayCore, provider: str) -> BatchAdapter:
    """The batch API of a configured provider, or InvalidRequest if it has none here yet."""
    provider_type = core.config.providers[provider].type
    if provider_type == "fake":
        from gateway.providers._fake_batch import FakeBatches
        from gateway.providers.fake import FakeAdapter

        adapter = core.adapter(provider)
        assert isinstance(adapter, FakeAdapter)
        return FakeBatches(adapter)
    if provider_type == "openai":
        from gateway.providers._openai_batch import OpenAIBatches

        return OpenAIBatches(core.adapter(provider))
    if provider_type == "anthropic":
        from gateway.providers._anthropic_batch import AnthropicBatches
        from gateway.providers.anthropic import AnthropicAdapter

        anthropic_adapter = core.adapter(provider)
        assert isinstance(anthropic_adapter, AnthropicAdapter)
        return AnthropicBatches(anthropic_adapter)
    if provider_type == "gemini":
        from gateway.providers._gemini_batch import GeminiBatches
        from gateway.providers.gemini import GeminiAdapter

        gemini = core.adapter(provider)
        assert isinstance(gemini, GeminiAdapter)
        return GeminiBatches(gemini)
    raise InvalidRequest(
        f"batches at {provider_type} are not supported by this gateway yet",
        provider=provider,
    )


def _items(requests: Any) -> list[tuple[str, dict[str, Any]]]:
    """``requests`` as ``(custom_id, body)`` pairs, or InvalidRequest naming the bad one."""
    if isinstance(requests, str | bytes | Mapping) or not isinstance(requests, Sequence):
        raise _invalid("requests must be a list of {'custom_id': ..., 'body': {...}} dicts")
    if not requests:
        raise _invalid("requests is empty; a batch needs at least one request")
    if len(requests) > MAX_ITEMS:
        raise _invalid(f"requests has {len(requests)} items; at most {MAX_ITEMS} per batch")
    seen: set[str] = set()
    items = []
    for i, entry in enumerate(requests):
        if not isinstance(entry, Mapping) or set(entry) - {"custom_id", "body"}:
            raise _invalid(f"requests[{i}] must be a dict with only custom_id and body")
        custom_id, body = entry.get("custom_id"), entry.get("body")
        if not isinstance(custom_id, str) or not 0 < len(custom_id) <= _MAX_CUSTOM_ID:
            raise _invalid(f"requests[{i}].custom_id must be a string of 1 to 64 characters")
        if custom_id in seen:
            raise _invalid(f"requests[{i}].custom_id {custom_id!r} is used twice")
        seen.add(custom_id)
        if not isinstance(body, Mapping):
            raise _invalid(f"requests[{i}].body must be a dict of chat arguments")
        for name in ("model", "stream", "account", "tags"):
            if body.get(name):
                raise _invalid(
                    f"requests[{i}].body has {name!r}: a batch's model, account and tags are "
                    "given once to batches.create, and batch items do not stream"
                )
        items.append((custom_id, dict(body)))
    return items


class _BatchCore:
    """What the sync and async surfaces share: every step, blocking on the store."""

    def __init__(self, core: _GatewayCore) -> None:
        self.core = core

    @property
    def service(self) -> CreditService:
        service = self.core.billing.service
        if service is None:
            raise ConfigError(
                "batches need a credit account: their state lives in the credit store",
                file=self.core.config.source,
                key="credits",
                fix="add a credits: section (e.g. credits: {store: sqlite:///credits.db})",
            )
        return service

    @property
    def store(self) -> BatchStore:
        from gateway.credits.batch_store import BatchStore

        return BatchStore(self.service.store)  # type: ignore[arg-type]

    def _target(self, model: str) -> tuple[str, ResolvedTarget]:
        from gateway.routing import CallPlan, Try

        route = self.core.router.resolve(model)
        plan = CallPlan(
            route,
            request_id="batch",
            clock=self.core.clock,
            rng=self.core.rng,
            health=self.core.health,
            timeout=None,
            estimated_tokens=0,
            on_event=None,
        )
        action = plan.next_action()  # the first target the route would try now
        target = action.target if isinstance(action, Try) else route.targets[0]
        return route.name, target

    def _requests(
        self, target: ResolvedTarget, items: list[tuple[str, dict[str, Any]]]
    ) -> list[BatchItem]:
        from gateway._request import build_request
        from gateway.providers.batch import BatchItem
        from gateway.routing import request_for_target

        built = []
        for i, (custom_id, body) in enumerate(items):
            try:
                request = build_request(**body)
            except InvalidRequest as exc:
                raise _invalid(f"requests[{i}] ({custom_id!r}): {exc.message}") from None
            built.append(BatchItem(custom_id, request_for_target(request, target.config, None)))
        return built

    def _worst_cases(self, target: ResolvedTarget, items: Sequence[BatchItem]) -> list[int]:
        from gateway._billing import DEFAULT_HOLD_OUTPUT_TOKENS
        from gateway._request import estimate_prompt_tokens
        from gateway.credits.money import to_nanos

        provider_type = self.core.config.providers[target.provider].type
        prices = self.core.billing.prices
        return [
            to_nanos(
                prices.worst_case(
                    provider_type,
                    target.model,
                    input_tokens=estimate_prompt_tokens(item.request),
                    max_output_tokens=item.request.max_tokens or DEFAULT_HOLD_OUTPUT_TOKENS,
                    batch=True,
                    provider=target.provider,
                )
            )
            for item in items
        ]

    def _hold_all(
        self,
        batch_id: str,
        account: str | None,
        route: str,
        target: ResolvedTarget,
        amounts: Sequence[int],
        tags: dict[str, str],
    ) -> tuple[str, list[str]]:
        """Hold every item in one ledger write: all of them, or (refused) none."""
        from gateway.credits import ledger

        service = self.service
        name = service.account_name(account)
        prepaid = service.config.mode == "prepaid"
        ttl_us = BATCH_HOLD_TTL_S * 1_000_000

        def decide(step: Any) -> list[str]:
            limits = ledger.effective_limits(step.state, service.default_limits)
            # The whole batch checked first (the entries are discarded): a refusal then names
            # the batch's worst case, not the one item that did not fit after the others.
            ledger.place_hold(
                step.state,
                step.now_us,
                hold_id=f"{batch_id}/check",
                request_id=batch_id,
                amount=sum(amounts),
                ttl_us=ttl_us,
                prepaid=prepaid,
                limits=limits,
                meta={"target": f"a batch of {len(amounts)} items at {target.label}"},
            )
            hold_ids = []
            for index, amount in enumerate(amounts):
                request_id = f"{batch_id}/{index}"
                meta = {
                    "attempt": 1,
                    "route": route,
                    "provider": target.provider,
                    "model": target.model,
                    "tags": tags,
                    "target": target.label,
                    "operation": "batch",
                }
                (entry,) = step.add(
                    ledger.place_hold(
                        step.state,
                        step.now_us,
                        hold_id=f"{request_id}#1",
                        request_id=request_id,
                        amount=amount,
                        ttl_us=ttl_us,
                        prepaid=prepaid,
                        limits=limits,
                        meta=meta,
                    )
                )
                hold_ids.append(str(entry.hold_id))
            return hold_ids

        create = name == service.default_account or not prepaid
        return name, service.write(name, decide, create=create)

    def _release(self, account: str, hold_ids: Sequence[str]) -> None:
        from gateway.credits.service import _hold_from_entry

        service = self.service
        for hold_id in hold_ids:
            entry = service.store.find_entry(account, f"hold:{hold_id}")
            if entry is not None:
                service.release(_hold_from_entry(entry))

    def create(
        self,
        model: str,
        requests: Any,
        account: str | None,
        tags: Mapping[str, str] | None,
    ) -> Batch:
        from gateway.credits.batch_store import BatchItemRecord, BatchRecord

        service = self.service
        items = _items(requests)
        account, clean_tags = self.core.billing.check_call(account, tags)
        route, target = self._target(model)
        adapter = batch_adapter(self.core, target.provider)
        built = self._requests(target, items)
        amounts = self._worst_cases(target, built)
        batch_id = f"batch_{os.urandom(12).hex()}"
        name, hold_ids = self._hold_all(batch_id, account, route, target, amounts, clean_tags or {})
        try:
            submitted = adapter.create_batch(target.model, built)
            record = BatchRecord(
                id=batch_id,
                account=name,
                route=route,
                provider=target.provider,
                model=target.model,
                provider_batch_id=submitted.id,
                status=submitted.state,
                provider_status=submitted.provider_status,
                counts=submitted.counts.as_dict(),
                tags=clean_tags or {},
                created_us=service.now_us(),
            )
            self.store.insert(
                record,
                [
                    BatchItemRecord(i, custom_id, hold_id, body)
                    for i, ((custom_id, body), hold_id) in enumerate(
                        zip(items, hold_ids, strict=True)
                    )
                ],
            )
        except BaseException:
            self._release(name, hold_ids)
            raise
        return _batch_of(record)

    def _record(self, batch_id: str) -> BatchRecord:
        if not isinstance(batch_id, str):
            raise _invalid("a batch id is a string such as 'batch_...'")
        record = self.store.get(batch_id)
        if record is None:
            raise _invalid(f"no batch {batch_id!r} in this credit store")
        return record

    def _handle_and_items(
        self, record: BatchRecord
    ) -> tuple[BatchAdapter, Any, list[BatchItemRecord], list[BatchItem]]:
        from gateway.providers.batch import BatchHandle

        target = self.core.router.resolve(f"{record.provider}/{record.model}").targets[0]
        stored = self.store.items(record.id)
        built = self._requests(target, [(item.custom_id, item.body) for item in stored])
        handle = BatchHandle(
            record.provider_batch_id,
            record.model,
            record.created_us,
            record.cancelled_us,
            self.service.now_us(),
        )
        return batch_adapter(self.core, record.provider), handle, stored, built

    def _update(self, record: BatchRecord, polled: ProviderBatch) -> Batch:
        record.status = polled.state
        record.provider_status = polled.provider_status
        record.counts = polled.counts.as_dict()
        if polled.state == "ended" and record.ended_us is None:
            record.ended_us = self.service.now_us()
        self.store.update(record)
        return _batch_of(record)

    def retrieve(self, batch_id: str) -> Batch:
        record = self._record(batch_id)
        if record.status == "ended":
            return _batch_of(record)
        adapter, handle, _, built = self._handle_and_items(record)
        return self._update(record, adapter.retrieve_batch(handle, built))

    def list(self, account: str | None, limit: int) -> list[Batch]:
        if account is not None:
            account = self.service.account_name(account)
        return [_batch_of(record) for record in self.store.select(account=account, limit=limit)]

    def cancel(self, batch_id: str) -> Batch:
        record = self._record(batch_id)
        if record.status == "ended":
            return _batch_of(record)
        if record.cancelled_us is None:
            record.cancelled_us = self.service.now_us()
        adapter, handle, _, built = self._handle_and_items(record)
        try:
            polled = adapter.cancel_batch(handle, built)
        except InvalidRequest as exc:
            # A provider refuses to cancel a batch that ended since the gateway last looked
            # (OpenAI and Anthropic answer 4xx): then there is nothing left to stop.
            if exc.status_code in (None, 404):
                raise
            polled = adapter.retrieve_batch(handle, built)
            if polled.state != "ended":
                raise
        return self._update(record, polled)

    def results(self, batch_id: str) -> builtins.list[BatchResult]:
        from gateway._attempts import GatewayInfo
        from gateway.credits.service import _hold_from_entry
        from gateway.types import data_to_gateway_completion, to_gateway_completion

        record = self._record(batch_id)
        adapter, handle, stored, built = self._handle_and_items(record)
        if record.status != "ended":
            batch = self._update(record, adapter.retrieve_batch(handle, built))
            if batch.status != "ended":
                raise _invalid(
                    f"batch {batch_id!r} has not ended (status {batch.status}, provider status "
                    f"{batch.provider_status}); collect its results when it has"
                )
        service = self.service
        provider_type = self.core.config.providers[record.provider].type
        prices = self.core.billing.prices
        by_id = {item.custom_id: item for item in stored}
        out = []
        for result in adapter.batch_results(handle, built):
            item = by_id[result.custom_id]
            entry = service.store.find_entry(record.account, f"hold:{item.hold_id}")
            if entry is None:  # the ledger lost a row the batch wrote: never guess a charge
                raise CreditsError(
                    f"batch {batch_id}: item {item.custom_id!r} has no hold in the ledger "
                    f"({item.hold_id}), so it cannot be charged; items before it were settled "
                    "(once each)"
                )
            hold = _hold_from_entry(entry)
            response = None
            if result.outcome == "succeeded" and result.response is not None:
                usage = result.response.usage
                cost = prices.cost(
                    provider_type, record.model, usage, batch=True, provider=record.provider
                )
                charged = service.settle(hold, cost=cost, usage=usage)
                info = GatewayInfo(
                    provider=record.provider,
                    model=record.model,
                    route=record.route,
                    request_id=hold.request_id,
                )
                data = result.response.data
                response = (
                    data_to_gateway_completion(data, info, charged)
                    if data is not None
                    else to_gateway_completion(result.response.completion, info, charged)
                )
            else:
                service.release(hold)
                charged = Decimal(0)
            outcome, error = result.outcome, result.error
            out.append(BatchResult(result.custom_id, outcome, response, error, charged))
        return out


class Batches:
    """``gw.batches``: create, retrieve, list, cancel, results."""

    def __init__(self, core: _GatewayCore) -> None:
        self._batches = _BatchCore(core)

    def create(
        self,
        *,
        model: str,
        requests: Sequence[Mapping[str, Any]],
        account: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Batch:
        """Hold every item's worst case at the batch rate, then submit the batch to the
        first healthy target of ``model``. InsufficientCredits / SpendLimitExceeded before
        anything is sent."""
        return self._batches.create(model, requests, account, tags)

    def retrieve(self, batch_id: str) -> Batch:
        """The batch's status now (polls the provider until it has ended)."""
        return self._batches.retrieve(batch_id)

    def list(self, *, account: str | None = None, limit: int = 100) -> list[Batch]:
        """Batches newest first, of one account or of all."""
        return self._batches.list(account, limit)

    def cancel(self, batch_id: str) -> Batch:
        """Ask the provider to stop; finished items are still billed when collected."""
        return self._batches.cancel(batch_id)

    def results(self, batch_id: str) -> Iterator[BatchResult]:
        """Every item of an ended batch, settled (once, whoever collects) as it is read."""
        return iter(self._batches.results(batch_id))


class AsyncBatches:
    """``agw.batches``: the same, awaitable (the store and provider reached in a thread)."""

    def __init__(self, core: _GatewayCore) -> None:
        self._batches = _BatchCore(core)

    async def create(
        self,
        *,
        model: str,
        requests: Sequence[Mapping[str, Any]],
        account: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Batch:
        return await asyncio.to_thread(self._batches.create, model, requests, account, tags)

    async def retrieve(self, batch_id: str) -> Batch:
        return await asyncio.to_thread(self._batches.retrieve, batch_id)

    async def list(self, *, account: str | None = None, limit: int = 100) -> list[Batch]:
        return await asyncio.to_thread(self._batches.list, account, limit)

    async def cancel(self, batch_id: str) -> Batch:
        return await asyncio.to_thread(self._batches.cancel, batch_id)

    async def results(self, batch_id: str) -> builtins.list[BatchResult]:
        return await asyncio.to_thread(self._batches.results, batch_id)
