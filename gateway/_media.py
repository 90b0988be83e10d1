"""What an embeddings call and an images call share: checks, the plan, holds, the I/O loop.

Both run like a chat call (docs/ARCHITECTURE.md, "How a call flows"): the route's
:class:`~gateway.routing.CallPlan` decides retries and fallback, each try is held on the credit
account at its worst case before the provider is contacted (:meth:`Billing.hold
<gateway._billing.Billing.hold>`) and settled at its actual cost after, or released when it
fails. What differs is decided before the loop, once per call:

* every target of the route must be able to serve the call (:func:`check_targets`): a model
  that cannot (Claude for embeddings) is an :class:`~gateway.errors.InvalidRequest` before
  anything is held or sent;
* with a credit account, every target must have a price for the call, and what each try holds
  is computed by the operation's own module (:mod:`gateway._embeddings`, :mod:`gateway._images`).

The loop calls the call's telemetry hooks (:mod:`gateway.telemetry`) where chat's loop does:
the trace starts with the plan, each try is an attempt, and the call ends answered or failed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.errors import InvalidRequest, ProviderError
from gateway.providers.base import TokenUsage
from gateway.providers.media import (
    EmbeddingRequest,
    EmbeddingResult,
    ImageRequest,
    ImageResult,
    Operation,
    refusal,
)
from gateway.routing import CallPlan, ResolvedRoute, ResolvedTarget, Wait
from gateway.telemetry import NULL_TRACE, CallTrace

if TYPE_CHECKING:
    from gateway._client import _GatewayCore
    from gateway.config import ModelPrice
    from gateway.keys import ApiKey
    from gateway.telemetry import RequestParams

__all__ = [
    "MediaCall",
    "Priced",
    "arun",
    "check_targets",
    "check_user_timeout",
    "invalid",
    "price_for",
    "run",
    "start",
    "where",
]

logger = logging.getLogger("gateway.credits")

R = TypeVar("R", bound=EmbeddingResult | ImageResult)
#: What a try's result costs: its usage, the exact cost (None: unknown), and whether the
#: usage is an estimate (never charged above the hold).
Priced = tuple[TokenUsage, Decimal | None, bool]


@dataclass(slots=True)
class MediaCall:
    """One embeddings or images call in flight: its plan, who pays, and each target's hold."""

    operation: Operation
    plan: CallPlan
    account: str | None
    tags: dict[str, str] | None
    #: The worst case of one try at a target (None: no price, only without credits).
    hold_of: Callable[[ResolvedTarget], Decimal | None]
    #: The API key the call is made with (it pays from the key's account, within its limits).
    api_key: ApiKey | None = None
    #: The call's telemetry; records nothing unless configured.
    trace: CallTrace = NULL_TRACE
    _holds: dict[str, Decimal | None] = field(default_factory=dict)

    def hold_amount(self, target: ResolvedTarget) -> Decimal | None:
        if target.label not in self._holds:
            self._holds[target.label] = self.hold_of(target)
        return self._holds[target.label]


def invalid(message: str) -> InvalidRequest:
    """Bad input to an embeddings or images call, found by the gateway before any call."""
    return InvalidRequest(message, provider="gateway")


def check_user_timeout(user: Any, timeout: Any) -> None:
    """Raise InvalidRequest unless ``user`` is None or a string and ``timeout`` None or a
    positive number of seconds (the arguments embeddings and images share)."""
    if user is not None and not isinstance(user, str):
        raise invalid("user must be a string")
    if timeout is not None and (
        not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0
    ):
        raise invalid(f"timeout must be a positive number of seconds, not {timeout!r}")


def where(route: ResolvedRoute, target: ResolvedTarget) -> str:
    """How an error names the use of ``target``: ``route 'embed'`` or ``a direct call``."""
    return "a direct call" if route.name == target.label else f"route '{route.name}'"


def price_for(
    core: _GatewayCore, route: ResolvedRoute, target: ResolvedTarget, operation: Operation
) -> ModelPrice | None:
    """``target``'s price for ``operation``; None only without a credit account (the call
    is then not held). With one, a target without a price (or without the rates the
    operation needs) raises the unpriced ConfigError."""
    from gateway.credits.pricing import missing_for, unpriced_error

    billing = core.billing
    price = billing.price_of(target)
    missing = "a price" if price is None else missing_for(price, operation)
    if missing is None and price is not None:
        return price
    if billing.service is None:
        return None
    raise unpriced_error(
        target.label,
        where(route, target),
        file=core.config.source,
        operation=operation,
        missing=None if price is None else missing,
    )


def check_targets(
    core: _GatewayCore,
    route: ResolvedRoute,
    operation: Operation,
    request: EmbeddingRequest | ImageRequest,
) -> None:
    """Raise InvalidRequest, before anything is held or sent, if a target of ``route``
    cannot serve this call (its provider has no such API, its model is another kind of
    model, or the request asks what its provider cannot express)."""
    for target in route.targets:
        provider_type = core.config.providers[target.provider].type
        why = refusal(provider_type, target.model, operation, request)
        if why is not None:
            where = "" if route.name == target.label else f" (route '{route.name}')"
            raise InvalidRequest(
                f"cannot serve this {operation} call{where}: {why}",
                provider=target.provider,
                model=target.model,
            )


def start(
    core: _GatewayCore,
    model: str,
    route: ResolvedRoute,
    operation: Operation,
    *,
    timeout: float | None,
    account: str | None,
    tags: Mapping[str, str] | None,
    api_key: ApiKey | None,
    estimated_tokens: int,
    hold_of: Callable[[ResolvedTarget], Decimal | None],
    request_params: RequestParams | None = None,
) -> MediaCall:
    """The call's plan, after its account and tags are checked (with ``api_key``: the key
    is valid, may call ``model``, and pays) and (with a credit account) every target's hold
    is known: an unpriced target raises here, before any call. Its trace starts last, with
    ``request_params`` (the arguments telemetry records)."""
    from gateway._client import _new_request_id

    if api_key is not None:
        account = core.key_account(api_key, account, model)
    account, clean_tags = core.billing.check_call(account, tags)
    plan = CallPlan(
        route,
        request_id=_new_request_id(),
        clock=core.clock,
        rng=core.rng,
        health=core.health,
        timeout=timeout,
        estimated_tokens=estimated_tokens,
        cost_of=hold_of,
        on_event=core.on_event,
    )
    call = MediaCall(operation, plan, account, clean_tags, hold_of, api_key)
    if core.billing.service is not None:
        for target in route.targets:
            call.hold_amount(target)  # raises for a target without a price
    call.trace = core.telemetry.start_operation(
        operation, model, plan, account, request_params or {}
    )
    return call


def _settle_price(
    price: Callable[[ResolvedTarget, R], Priced], target: ResolvedTarget, result: R
) -> Priced:
    try:
        return price(target, result)
    except Exception:  # the call was answered: charge its hold rather than nothing
        logger.exception("pricing a %s answer failed; its hold is charged", target.label)
        return TokenUsage(), None, False


def run(
    core: _GatewayCore,
    call: MediaCall,
    send: Callable[[Any, ResolvedTarget, float | None], R],
    price: Callable[[ResolvedTarget, R], Priced],
) -> tuple[R, ResolvedTarget, Decimal | None]:
    """The sync loop: try targets as the plan says, holding before and settling after each
    try; returns the result, who served it and what it was charged."""
    try:
        return _run(core, call, send, price)
    except BaseException as error:
        call.trace.failed(error)
        raise


def _run(
    core: _GatewayCore,
    call: MediaCall,
    send: Callable[[Any, ResolvedTarget, float | None], R],
    price: Callable[[ResolvedTarget, R], Priced],
) -> tuple[R, ResolvedTarget, Decimal | None]:
    plan, clock, billing, trace = call.plan, core.clock, core.billing, call.trace
    if call.api_key is not None and call.api_key.rpm is not None:
        core.keys().count_call(call.api_key)  # KeyRateLimited before anything is held
    while True:
        action = plan.next_action()
        if isinstance(action, Wait):
            clock.sleep(action.seconds)
            continue
        target = action.target
        adapter = core.adapter(target.provider)
        bill = billing.hold(
            target,
            call.hold_amount(target),
            request_id=plan.request_id,
            route=plan.route.name,
            account=call.account,
            tags=call.tags,
            attempt=len(plan.attempts) + 1,
            operation=call.operation,
            api_key=call.api_key,
        )
        plan.started(action)
        trace.attempt(action)
        started = clock.monotonic()
        try:
            core.inject_fault(target)
            result = send(adapter, target, action.timeout)
        except ProviderError as error:
            bill.release()
            plan.failed(action, error, clock.monotonic() - started)
            trace.attempt_failed(error)
            continue
        except BaseException:
            bill.release()
            raise
        plan.succeeded(action, clock.monotonic() - started)
        usage, cost, estimated = _settle_price(price, target, result)
        charged = bill.settle_cost(usage, cost, attempts=len(plan.attempts), estimated=estimated)
        trace.answered_media(result, usage, charged)
        return result, target, charged


async def arun(
    core: _GatewayCore,
    call: MediaCall,
    send: Callable[[Any, ResolvedTarget, float | None], Awaitable[R]],
    price: Callable[[ResolvedTarget, R], Priced],
) -> tuple[R, ResolvedTarget, Decimal | None]:
    """The async twin of :func:`run`."""
    try:
        return await _arun(core, call, send, price)
    except BaseException as error:
        call.trace.failed(error)
        raise


async def _arun(
    core: _GatewayCore,
    call: MediaCall,
    send: Callable[[Any, ResolvedTarget, float | None], Awaitable[R]],
    price: Callable[[ResolvedTarget, R], Priced],
) -> tuple[R, ResolvedTarget, Decimal | None]:
    plan, clock, billing, trace = call.plan, core.clock, core.billing, call.trace
    if call.api_key is not None and call.api_key.rpm is not None:
        from gateway.keys import AsyncKeys

        await AsyncKeys(core.keys()).count_call(call.api_key)
    while True:
        action = plan.next_action()
        if isinstance(action, Wait):
            await clock.asleep(action.seconds)
            continue
        target = action.target
        adapter = core.adapter(target.provider)
        bill = await billing.ahold(
            target,
            call.hold_amount(target),
            request_id=plan.request_id,
            route=plan.route.name,
            account=call.account,
            tags=call.tags,
            attempt=len(plan.attempts) + 1,
            operation=call.operation,
            api_key=call.api_key,
        )
        plan.started(action)
        trace.attempt(action)
        started = clock.monotonic()
        try:
            core.inject_fault(target)
            result = await send(adapter, target, action.timeout)
        except ProviderError as error:
            await bill.arelease()
            plan.failed(action, error, clock.monotonic() - started)
            trace.attempt_failed(error)
            continue
        except BaseException:
            await bill.arelease()
            raise
        plan.succeeded(action, clock.monotonic() - started)
        usage, cost, estimated = _settle_price(price, target, result)
        charged = await bill.asettle_cost(
            usage, cost, attempts=len(plan.attempts), estimated=estimated
        )
        trace.answered_media(result, usage, charged)
        return result, target, charged
