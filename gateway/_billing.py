"""Paying for one call: hold before each try, settle or release after it.

:class:`Billing` belongs to a gateway; :class:`AttemptBill` to one try of one call. With no
``credits:`` section the bill only prices the call (``usage.cost`` from the price book, or
None when the model has no known price) and holds nothing.

A stream is settled when its usage arrives; if it breaks or the caller stops reading first,
it is settled from what is known: the provider's usage if it reported any, otherwise an
estimate (the prompt estimate plus the delivered text at three characters a token), never
more than the hold. Such rows have ``status="incomplete"``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

from gateway.config import GatewayConfig
from gateway.credits.money import from_nanos, to_nanos
from gateway.errors import ConfigError
from gateway.providers.base import TokenUsage

if TYPE_CHECKING:
    from gateway._clock import Clock
    from gateway.config import ModelPrice
    from gateway.credits.account import CreditAccount
    from gateway.credits.ledger import Limits
    from gateway.credits.payment import PaymentMethod
    from gateway.credits.pricing import PriceBook
    from gateway.credits.service import CreditService, Hold
    from gateway.credits.spender import LocalHold
    from gateway.keys import ApiKey
    from gateway.routing import ResolvedTarget

__all__ = ["AttemptBill", "Billing"]

logger = logging.getLogger("gateway.credits")

#: Output budget a hold assumes when the caller sets no max_tokens (the call itself is not
#: limited; a longer answer settles above its hold, which the ledger allows).
DEFAULT_HOLD_OUTPUT_TOKENS = 4096
_NANO = Decimal("1e-9")
_UNSET = object()


class Billing:
    """Prices and (with a credit account) holds and settles every call of one gateway."""

    def __init__(
        self, config: GatewayConfig, clock: Clock, payment_method: PaymentMethod | None
    ) -> None:
        self._config = config
        self._clock = clock
        self._prices: PriceBook | None = None
        self._target_prices: dict[str, ModelPrice | object | None] = {}
        self._cost_of: Callable[[ModelPrice, TokenUsage], Decimal]
        self._worst_case_of: Callable[..., Decimal]
        self.service: CreditService | None = None
        self._local_hold_type: type[LocalHold] | None = None
        if config.credits is not None:
            from gateway.credits.service import CreditService
            from gateway.credits.spender import LocalHold

            self._local_hold_type = LocalHold

            prices = self.prices
            prices.check_config(config)
            self.service = CreditService(
                config.credits,
                prices,
                clock=clock,
                payment_method=payment_method,
                webhooks=config.webhooks,
            )

    @property
    def prices(self) -> PriceBook:
        """The price book (YAML ``pricing:`` first, then genai-prices), made on first use."""
        if self._prices is None:
            from gateway.credits.pricing import PriceBook

            self._prices = PriceBook.from_config(self._config.pricing, clock=self._clock)
        return self._prices

    def account(self) -> CreditAccount:
        if self.service is None:
            raise ConfigError(
                "this gateway has no credit account",
                file=self._config.source,
                key="credits",
                fix="add a credits: section (e.g. credits: {store: sqlite:///credits.db})",
            )
        return self.service.account()

    def _price(self, target: ResolvedTarget) -> ModelPrice | None:
        """The price of ``target`` (None if unknown), looked up once per target: the price
        book never changes a price it has answered with."""
        known = self._target_prices.get(target.label, _UNSET)
        if known is _UNSET:
            from gateway.credits import pricing

            self._cost_of, self._worst_case_of = pricing.cost_of, pricing.worst_case_of
            known = self.price_of(target)
            if known is not None and pricing.missing_for(known, "chat") is not None:
                known = None  # e.g. an embedding model's price: no output rate
            self._target_prices[target.label] = known
        return known  # type: ignore[return-value]

    def price_of(self, target: ResolvedTarget) -> ModelPrice | None:
        """``target``'s price as the price book has it (None: unknown), whatever it prices:
        what embeddings and images are priced from (:mod:`gateway._media`)."""
        provider_type = self._config.providers[target.provider].type
        return self.prices.price_of(provider_type, target.model, provider=target.provider)

    def estimate(
        self, target: ResolvedTarget, input_tokens: int, max_tokens: int | None
    ) -> Decimal | None:
        """The worst-case cost of a call at ``target``; None when its price is unknown."""
        price = self._price(target)
        if price is None:
            return None
        return self._worst_case_of(
            price,
            input_tokens=input_tokens,
            max_output_tokens=max_tokens or DEFAULT_HOLD_OUTPUT_TOKENS,
        )

    def cost(self, target: ResolvedTarget, usage: TokenUsage) -> Decimal | None:
        """The exact cost of ``usage`` at ``target`` (None when the price is unknown)."""
        price = self._price(target)
        return None if price is None else self._cost_of(price, usage)

    def check_call(
        self, account: str | None, tags: Mapping[str, str] | None
    ) -> tuple[str | None, dict[str, str] | None]:
        """Validate a call's ``account`` and ``tags`` before anything else happens, the same
        way for every store (a value one store cannot keep, such as a NUL character or a lone
        surrogate, would otherwise be answered and then fail to be written); returns them
        as they are held. Raises InvalidRequest, with nothing held and no provider called."""
        if account is not None and self.service is None:
            raise ConfigError(
                f"account={account!r} was given but this gateway has no credit account",
                file=self._config.source,
                key="credits",
                fix="add a credits: section, or drop the account argument",
            )
        if tags is None and account is None:
            return None, None
        from gateway.credits.service import check_tags
        from gateway.errors import InvalidCreditsInput, InvalidRequest

        try:
            clean = None if tags is None else check_tags(tags)
            if account is not None and self.service is not None:
                account = self.service.account_name(account)
        except InvalidCreditsInput as exc:
            raise InvalidRequest(str(exc), provider="gateway") from None
        return account, clean

    def bill(
        self,
        target: ResolvedTarget,
        *,
        request_id: str,
        route: str,
        input_tokens: int,
        max_tokens: int | None,
        account: str | None,
        tags: Mapping[str, str] | None,
        attempt: int | None = None,
        api_key: ApiKey | None = None,
    ) -> AttemptBill:
        """Hold the worst case of this try (raises InsufficientCredits / SpendLimitExceeded
        before any provider is contacted). ``attempt`` numbers the tries of one call;
        ``api_key``: the call counts towards that key's spend limits, if it has any."""
        service = self.service
        if service is None:
            return AttemptBill(self, target, input_tokens, self._clock.monotonic())
        amount = self._hold_amount(target, input_tokens, max_tokens)
        key_id, key_limits = _key_limits(api_key)
        spender = service.spender
        if spender is not None and attempt is not None:
            local = self._local_hold(target, request_id, route, account, amount, tags, attempt)
            if key_id is not None:
                local.api_key, local.key_limits = key_id, key_limits
            if not spender.try_hold(local):
                spender.hold(local, target=f"{target.provider}/{target.model}")
            return AttemptBill(self, target, input_tokens, self._clock.monotonic(), local=local)
        hold = service.hold(
            account=account,
            request_id=request_id,
            amount=amount,
            route=route,
            provider=target.provider,
            model=target.model,
            tags=tags,
            attempt=attempt,
            api_key=key_id,
            key_limits=key_limits,
        )
        return AttemptBill(self, target, input_tokens, self._clock.monotonic(), hold=hold)

    def _hold_amount(
        self, target: ResolvedTarget, input_tokens: int, max_tokens: int | None
    ) -> Decimal:
        """The worst case to hold. Route targets were priced when the config loaded; a direct
        ``provider/model`` call is checked here, with the same error and the YAML to add."""
        amount = self.estimate(target, input_tokens, max_tokens)
        if amount is not None:
            return amount
        from gateway.credits.pricing import missing_for, unpriced_error

        price = self.price_of(target)
        raise unpriced_error(
            target.label,
            "a direct call",
            file=self._config.source,
            missing=None if price is None else missing_for(price, "chat"),
        )

    def _local_hold(
        self,
        target: ResolvedTarget,
        request_id: str,
        route: str,
        account: str | None,
        amount: Decimal,
        tags: Mapping[str, str] | None,
        attempt: int,
    ) -> LocalHold:
        """A batched hold (its account and tags validated by :meth:`check_call`)."""
        service, local_hold = self.service, self._local_hold_type
        assert service is not None and local_hold is not None
        return local_hold(
            f"{request_id}#{attempt}",
            service.default_account if account is None else service.account_name(account),
            request_id,
            to_nanos(amount),
            route,
            target.provider,
            target.model,
            {} if tags is None else dict(tags),  # checked by check_call
        )

    async def abill(
        self,
        target: ResolvedTarget,
        *,
        request_id: str,
        route: str,
        input_tokens: int,
        max_tokens: int | None,
        account: str | None,
        tags: Mapping[str, str] | None,
        attempt: int | None = None,
        api_key: ApiKey | None = None,
    ) -> AttemptBill:
        """:meth:`bill` without blocking the event loop on the store (a hold against this
        process's lease needs no store and is taken on the loop)."""
        service = self.service
        if service is None:
            return AttemptBill(self, target, input_tokens, self._clock.monotonic())
        spender = service.spender
        if spender is not None and attempt is not None:
            amount = self._hold_amount(target, input_tokens, max_tokens)
            local = self._local_hold(target, request_id, route, account, amount, tags, attempt)
            key_id, key_limits = _key_limits(api_key)
            if key_id is not None:
                local.api_key, local.key_limits = key_id, key_limits
            if not spender.try_hold(local):  # the lease needs the store: off the loop
                await asyncio.to_thread(
                    spender.hold, local, target=f"{target.provider}/{target.model}"
                )
            return AttemptBill(self, target, input_tokens, self._clock.monotonic(), local=local)
        return await asyncio.to_thread(
            self.bill,
            target,
            request_id=request_id,
            route=route,
            input_tokens=input_tokens,
            max_tokens=max_tokens,
            account=account,
            tags=tags,
            attempt=attempt,
            api_key=api_key,
        )

    def hold(
        self,
        target: ResolvedTarget,
        amount: Decimal | None,
        *,
        request_id: str,
        route: str,
        account: str | None,
        tags: Mapping[str, str] | None,
        attempt: int,
        operation: str,
        api_key: ApiKey | None = None,
    ) -> AttemptBill:
        """Hold ``amount`` (a worst case the caller computed: embeddings, images) for one try,
        the way :meth:`bill` holds a chat call's; None (no price) only without a credit
        account. Raises InsufficientCredits / SpendLimitExceeded before any provider is
        contacted."""
        service = self.service
        started = self._clock.monotonic()
        if service is None:
            return AttemptBill(self, target, 0, started)
        assert amount is not None, "a price is required with a credit account"
        spender = service.spender
        if spender is not None:
            local = self._media_hold(
                target, request_id, route, account, amount, tags, attempt, operation, api_key
            )
            if not spender.try_hold(local):
                spender.hold(local, target=target.label)
            return AttemptBill(self, target, 0, started, local=local)
        key_id, key_limits = _key_limits(api_key)
        held = service.hold(
            account=account,
            request_id=request_id,
            amount=amount,
            route=route,
            provider=target.provider,
            model=target.model,
            tags=tags,
            attempt=attempt,
            api_key=key_id,
            key_limits=key_limits,
            operation=operation,
        )
        return AttemptBill(self, target, 0, started, hold=held)

    def _media_hold(
        self,
        target: ResolvedTarget,
        request_id: str,
        route: str,
        account: str | None,
        amount: Decimal,
        tags: Mapping[str, str] | None,
        attempt: int,
        operation: str,
        api_key: ApiKey | None,
    ) -> LocalHold:
        local = self._local_hold(target, request_id, route, account, amount, tags, attempt)
        local.operation = operation
        key_id, key_limits = _key_limits(api_key)
        if key_id is not None:
            local.api_key, local.key_limits = key_id, key_limits
        return local

    async def ahold(
        self,
        target: ResolvedTarget,
        amount: Decimal | None,
        *,
        request_id: str,
        route: str,
        account: str | None,
        tags: Mapping[str, str] | None,
        attempt: int,
        operation: str,
        api_key: ApiKey | None = None,
    ) -> AttemptBill:
        """:meth:`hold` without blocking the event loop on the store."""
        service = self.service
        if service is not None and service.spender is not None and amount is not None:
            local = self._media_hold(
                target, request_id, route, account, amount, tags, attempt, operation, api_key
            )
            if service.spender.try_hold(local):  # against the lease: no store, on the loop
                return AttemptBill(self, target, 0, self._clock.monotonic(), local=local)
        return await asyncio.to_thread(
            self.hold,
            target,
            amount,
            request_id=request_id,
            route=route,
            account=account,
            tags=tags,
            attempt=attempt,
            operation=operation,
            api_key=api_key,
        )

    def close(self) -> None:
        if self.service is not None:
            self.service.close()
        if self._prices is not None:
            self._prices.close()


def _key_limits(api_key: ApiKey | None) -> tuple[str | None, Limits | None]:
    """``(key id, its spend limits)`` when a call is made with a key that has spend limits
    (the call is then held and counted for that key), else ``(None, None)``."""
    if api_key is None:
        return None, None
    from gateway.keys import key_spend_limits

    limits = key_spend_limits(api_key)
    return (None, None) if limits is None else (api_key.id, limits)


class AttemptBill:
    """The money side of one try: settle it, or release it. Both are idempotent."""

    __slots__ = (
        "_billing",
        "_done",
        "_hold",
        "_input_tokens",
        "_local",
        "_started",
        "_target",
        "charged",
    )

    def __init__(
        self,
        billing: Billing,
        target: ResolvedTarget,
        input_tokens: int,
        started: float,
        *,
        hold: Hold | None = None,
        local: LocalHold | None = None,
    ) -> None:
        self._billing = billing
        self._target = target
        #: Held through the store (``flush_interval_ms: 0``), or in memory against the lease.
        self._hold = hold
        self._local = local
        self._input_tokens = input_tokens
        self._started = started
        self._done = False
        #: What the call was charged (or priced at, without a credit account).
        self.charged: Decimal | None = None

    @property
    def _held(self) -> Decimal | None:
        held = self._hold or self._local
        return None if held is None else held.amount

    def settle(
        self, usage: TokenUsage, *, attempts: int, status: str = "ok", estimated: bool = False
    ) -> Decimal | None:
        """Charge the actual cost of ``usage``; returns it (rounded to 1e-9 USD).

        ``estimated`` usage (a stream cut short with no usage reported) is never charged
        more than the hold."""
        if self._done:
            return self.charged
        cost = self._billing.cost(self._target, usage)
        return self.settle_cost(usage, cost, attempts=attempts, status=status, estimated=estimated)

    def settle_cost(
        self,
        usage: TokenUsage,
        cost: Decimal | None,
        *,
        attempts: int,
        status: str = "ok",
        estimated: bool = False,
    ) -> Decimal | None:
        """:meth:`settle` at a ``cost`` the caller computed from ``usage`` (images priced
        per image, embeddings); None: the price is unknown (the hold is charged)."""
        if self._done:
            return self.charged
        self._done = True
        billing = self._billing
        if estimated and cost is not None:
            held = self._held
            if held is not None:
                cost = min(cost, held)
        service = billing.service
        if (self._hold is None and self._local is None) or service is None:
            self.charged = None if cost is None else cost.quantize(_NANO)
            return self.charged
        latency_us = max(0, round((billing._clock.monotonic() - self._started) * 1_000_000))
        local = self._local
        if local is not None:
            nanos = local.amount_nanos if cost is None else to_nanos(cost)
            assert service.spender is not None
            service.spender.settle(
                local,
                cost=nanos,
                usage=usage,
                status=status,
                latency_us=latency_us,
                attempts=attempts,
            )
            self.charged = from_nanos(nanos)
            return self.charged
        assert self._hold is not None
        self.charged = service.settle(
            self._hold,
            cost=cost if cost is not None else self._hold.amount,
            usage=usage,
            status=status,
            latency_us=latency_us,
            attempts=attempts,
        )
        return self.charged

    async def asettle(
        self, usage: TokenUsage, *, attempts: int, status: str = "ok", estimated: bool = False
    ) -> Decimal | None:
        if self._hold is None or self._done:  # nothing held in the store: no I/O
            return self.settle(usage, attempts=attempts, status=status, estimated=estimated)
        return await asyncio.to_thread(
            self.settle, usage, attempts=attempts, status=status, estimated=estimated
        )

    async def asettle_cost(
        self, usage: TokenUsage, cost: Decimal | None, *, attempts: int, estimated: bool = False
    ) -> Decimal | None:
        if self._hold is None or self._done:
            return self.settle_cost(usage, cost, attempts=attempts, estimated=estimated)
        return await asyncio.to_thread(
            self.settle_cost, usage, cost, attempts=attempts, estimated=estimated
        )

    def release(self) -> None:
        """The try failed before producing usage: give the hold back."""
        if self._done:
            return
        self._done = True
        service = self._billing.service
        if service is None:
            return
        if self._local is not None:
            assert service.spender is not None
            service.spender.release(self._local)
        elif self._hold is not None:
            service.release(self._hold)

    async def arelease(self) -> None:
        if self._hold is None or self._done:
            self.release()
            return
        await asyncio.to_thread(self.release)

    def _incomplete_usage(self, reported: TokenUsage | None, delivered_chars: int) -> TokenUsage:
        """Best knowledge of a stream that ended early (see the module docstring)."""
        if reported is not None:
            return reported
        return TokenUsage(input_tokens=self._input_tokens, output_tokens=delivered_chars // 3 + 1)

    def settle_incomplete(
        self, reported: TokenUsage | None, delivered_chars: int, *, attempts: int
    ) -> None:
        """Settle a stream that broke or was abandoned before its usage arrived."""
        if self._done:
            return
        usage = self._incomplete_usage(reported, delivered_chars)
        try:
            self.settle(usage, attempts=attempts, status="incomplete", estimated=reported is None)
        except Exception:  # never let billing mask the caller's own error
            logger.exception("settling an interrupted stream failed; its hold lapses by TTL")

    async def asettle_incomplete(
        self, reported: TokenUsage | None, delivered_chars: int, *, attempts: int
    ) -> None:
        if self._done:
            return
        usage = self._incomplete_usage(reported, delivered_chars)
        try:
            await self.asettle(
                usage, attempts=attempts, status="incomplete", estimated=reported is None
            )
        except Exception:
            logger.exception("settling an interrupted stream failed; its hold lapses by TTL")
