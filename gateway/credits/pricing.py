"""Prices: what one call costs, exactly, in Decimal USD.

Where a price comes from, first match wins:

1. the YAML ``pricing:`` section, keyed ``<provider name>/<model>``, then
   ``<provider type>/<model>``, then the wildcards ``<provider name>/*`` and ``<type>/*``;
2. the ``genai-prices`` package's bundled data (offline; it fetches updates from the network
   only with ``allow_network=True``), for the ``openai``, ``anthropic`` and ``gemini`` types;
3. for the ``fake`` provider type: when the fake stands in for a real provider under that
   provider's name (``anthropic: {type: fake}``), genai-prices' price of the real model;
   otherwise :data:`FAKE_PRICE` (input $1, output $2, cached input $0.50 per 1M tokens), so
   that the offline demo is charged like a real provider.

Anything else has no price, and a route target without one is refused at config load
(:meth:`PriceBook.require` says which YAML to add).

How a cost is computed from :class:`~gateway.providers.base.TokenUsage` (prices are per 1M tokens):

* the long-context tier applies to the whole call when ``input_tokens`` (the whole prompt,
  cached part included) exceeds ``long_context.above_input_tokens``;
* uncached input = ``input - cached_input - cache_write`` at ``input``; cached input at
  ``cached_input``; cache writes at ``cache_write``; a rate not given is charged at the
  tier's ``input`` rate;
* non-reasoning output = ``output - reasoning`` at ``output``; reasoning at ``reasoning``
  (standard tier only; otherwise the tier's ``output``);
* a batch call uses the ``batch`` prices when given, else the whole cost times
  ``batch_discount``, else times :data:`DEFAULT_BATCH_MULTIPLIER` (OpenAI, Anthropic and
  Google all bill batch requests at 50%);
* image tokens (inside the input and output counts) at ``input_image`` / ``output_image``
  when given, else at ``input`` / ``output``; an embedding model has an ``input`` price only;
* a model with ``per_image`` prices is charged per generated image instead of per token
  (:func:`image_cost`: the price of the image's size and quality, see
  :func:`per_image_price`).

What a price must have depends on the call (:func:`missing_for`): embeddings an ``input``
rate; images ``per_image`` or token rates; chat ``input`` and ``output``.

Every step is exact Decimal arithmetic (an ``Inexact`` trap proves it); the result is
rounded only when it is written to the ledger (:mod:`gateway.credits.money`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import (
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)
from typing import TYPE_CHECKING, Any, Literal

from gateway._clock import Clock, SystemClock
from gateway.config import LongContextPrice, ModelPrice
from gateway.errors import ConfigError

if TYPE_CHECKING:
    from gateway.config import GatewayConfig
    from gateway.providers.base import TokenUsage

__all__ = [
    "DEFAULT_BATCH_MULTIPLIER",
    "DEFAULT_IMAGE_SIZE",
    "FAKE_PRICE",
    "PriceBook",
    "PriceSource",
    "Rates",
    "image_cost",
    "image_worst_case",
    "missing_for",
    "per_image_price",
]

logger = logging.getLogger("gateway.credits")

#: Where a price comes from (:meth:`PriceBook.source_of`).
PriceSource = Literal["pricing:", "genai-prices", "fake provider default"]
#: What the built-in fake provider costs unless the YAML prices it.
FAKE_PRICE = ModelPrice(input=Decimal("1"), output=Decimal("2"), cached_input=Decimal("0.50"))
#: Batch multiplier when neither ``batch`` nor ``batch_discount`` is given.
DEFAULT_BATCH_MULTIPLIER = Decimal("0.5")
#: genai-prices provider ids of the gateway's provider types.
_GENAI_PROVIDER = {"openai": "openai", "anthropic": "anthropic", "gemini": "google"}
_PER_TOKENS = Decimal(1_000_000)
_ZERO = Decimal(0)
#: USD per 1M tokens -> nano-dollars per token.
_NANOS_PER_MTOK = Decimal(1000)
_NANOS_PER_USD = Decimal(1_000_000_000)


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per 1M tokens of each kind, for one price tier."""

    input: Decimal
    output: Decimal
    cached_input: Decimal
    cache_write: Decimal
    reasoning: Decimal
    #: The same five rates in nano-dollars per token, when every one is a whole number (a
    #: price with at most three decimals per 1M tokens, as nearly all are): a cost is then
    #: integer arithmetic. None otherwise (the Decimal path, exact all the same).
    nanos: tuple[int, int, int, int, int] | None = None

    @classmethod
    def of(
        cls,
        input: Decimal,
        output: Decimal,
        cached_input: Decimal,
        cache_write: Decimal,
        reasoning: Decimal,
    ) -> Rates:
        rates = (input, output, cached_input, cache_write, reasoning)
        per_token = [rate * _NANOS_PER_MTOK for rate in rates]
        nanos = None
        if all(value == value.to_integral_value() for value in per_token):
            a, b, c, d, e = (int(value) for value in per_token)
            nanos = (a, b, c, d, e)
        return cls(input, output, cached_input, cache_write, reasoning, nanos)

    @classmethod
    def standard(cls, price: ModelPrice) -> Rates:
        # A rate not given is 0 here: a price lacking what an operation needs (``output``
        # for chat) was refused before the call (:func:`missing_for`).
        input, output = _or(price.input, _ZERO), _or(price.output, _ZERO)
        return cls.of(
            input,
            output,
            _or(price.cached_input, input),
            _or(price.cache_write, input),
            _or(price.reasoning, output),
        )

    @classmethod
    def long(cls, tier: LongContextPrice) -> Rates:
        return cls.of(
            tier.input,
            tier.output,
            _or(tier.cached_input, tier.input),
            _or(tier.cache_write, tier.input),
            tier.output,
        )


def _or(value: Decimal | None, default: Decimal) -> Decimal:
    return default if value is None else value


#: Rates made from each price seen (a price object is immutable config): id -> (price, its
#: standard rates, its long-context rates). The price is kept so its id is never reused.
_RATES: dict[int, tuple[ModelPrice, Rates, Rates | None]] = {}


def _rates_for(price: ModelPrice, input_tokens: int) -> Rates:
    known = _RATES.get(id(price))
    if known is None or known[0] is not price:
        tier = price.long_context
        known = (price, Rates.standard(price), None if tier is None else Rates.long(tier))
        _RATES[id(price)] = known
    tier = price.long_context
    if known[2] is not None and tier is not None and input_tokens > tier.above_input_tokens:
        return known[2]
    return known[1]


#: A Decimal context that raises instead of rounding (so a cost is provably exact). Used
#: through its methods, never installed: it is shared by every thread and never changed.
_EXACT = Context(prec=80, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])


def _from_nanos(nanos: int) -> Decimal:
    """Whole nano-dollars as exact USD (the same value the Decimal path gives)."""
    return _EXACT.divide(nanos, _NANOS_PER_USD)


def _exact_price(terms: Iterable[tuple[int, Decimal]], multiplier: Decimal) -> Decimal:
    """``sum(tokens * rate_per_million) * multiplier / 1M``, exactly (or InvalidOperation)."""
    total = _ZERO
    for tokens, rate in terms:
        if tokens:
            total = _EXACT.add(total, _EXACT.multiply(tokens, rate))
    return _EXACT.divide(_EXACT.multiply(total, multiplier), _PER_TOKENS)


class PriceBook:
    """Looks up prices (YAML first, then genai-prices, then the fake default) and prices calls.

    Thread-safe; lookups are cached. ``provider_type`` is ``openai``, ``anthropic``,
    ``gemini`` or ``fake``; ``provider`` is the provider's configured name in the YAML when
    it differs from its type (e.g. ``backup`` with ``type: fake``).
    """

    def __init__(
        self,
        pricing: Mapping[str, ModelPrice] | None = None,
        *,
        allow_network: bool = False,
        clock: Clock | None = None,
    ) -> None:
        self._pricing: dict[str, ModelPrice] = dict(pricing or {})
        self._allow_network = allow_network
        self._clock: Clock = clock or SystemClock()
        self._cache: dict[tuple[str, str, str], ModelPrice | None] = {}
        self._lock = threading.Lock()
        self._updater: Any = None

    @classmethod
    def from_config(
        cls,
        pricing: Mapping[str, ModelPrice],
        *,
        allow_network: bool = False,
        clock: Clock | None = None,
    ) -> PriceBook:
        """A price book over the YAML ``pricing:`` section (``GatewayConfig.pricing``).

        With ``allow_network=True`` genai-prices may fetch its latest price data from
        GitHub (once at first lookup, then hourly in a background thread); by default it
        never touches the network.
        """
        return cls(pricing, allow_network=allow_network, clock=clock)

    # -- lookup -----------------------------------------------------------------------------

    def price_of(
        self, provider_type: str, model: str, *, provider: str | None = None
    ) -> ModelPrice | None:
        """The price of ``model`` on a provider of ``provider_type``, or None if unknown."""
        name = provider or provider_type
        key = (name, provider_type, model)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        price, _ = self._lookup(name, provider_type, model)
        with self._lock:
            self._cache[key] = price
        return price

    def source_of(
        self, provider_type: str, model: str, *, provider: str | None = None
    ) -> PriceSource | None:
        """Where :meth:`price_of` finds the price: the YAML ``pricing:`` section,
        genai-prices, or the fake provider's default; None when the price is unknown."""
        return self._lookup(provider or provider_type, provider_type, model)[1]

    def _lookup(
        self, name: str, provider_type: str, model: str
    ) -> tuple[ModelPrice | None, PriceSource | None]:
        for candidate in (f"{name}/{model}", f"{provider_type}/{model}", f"{name}/*"):
            if candidate in self._pricing:
                return self._pricing[candidate], "pricing:"
        if f"{provider_type}/*" in self._pricing:
            return self._pricing[f"{provider_type}/*"], "pricing:"
        genai_id = _GENAI_PROVIDER.get(provider_type)
        if genai_id is not None:
            price = self._from_genai_prices(genai_id, model)
            return price, None if price is None else "genai-prices"
        if provider_type == "fake":
            # A fake standing in for a real provider (``anthropic: {type: fake}``) costs what
            # the real model would, when genai-prices knows it; otherwise the fake default.
            stand_in = _GENAI_PROVIDER.get(name)
            real = self._from_genai_prices(stand_in, model) if stand_in else None
            if real is not None:
                return real, "genai-prices"
            return FAKE_PRICE, "fake provider default"
        return None, None

    def require(
        self,
        provider_type: str,
        model: str,
        *,
        label: str,
        provider: str | None = None,
        operation: str = "chat",
    ) -> None:
        """Raise :class:`~gateway.errors.ConfigError` (with the YAML to add) if unpriced, or
        priced without what an ``operation`` call needs (:func:`missing_for`).

        ``label`` says where the model is used, e.g. ``route 'smart', target 1``.
        """
        price = self.price_of(provider_type, model, provider=provider)
        missing = "a price" if price is None else missing_for(price, operation)
        if missing is None:
            return
        model_id = f"{provider or provider_type}/{model}"
        raise unpriced_error(
            model_id, label, operation=operation, missing=None if price is None else missing
        )

    def check_config(self, config: GatewayConfig) -> None:
        """:meth:`require` a price for every route target of ``config``, for what its model
        is for (an embedding model needs an input price, an image model per-image or token
        prices, any other model input and output prices)."""
        from gateway.providers.media import model_kind

        for route_name, route in config.routes.items():
            for i, target in enumerate(route.targets):
                settings = config.providers.get(target.provider)
                provider_type = settings.type if settings is not None else target.provider
                try:
                    self.require(
                        provider_type,
                        target.model_name,
                        provider=target.provider,
                        label=f"route '{route_name}', target {i + 1}",
                        operation=model_kind(target.model_name),
                    )
                except ConfigError as exc:
                    raise ConfigError(
                        exc.problem,
                        file=config.source,
                        line=config.line_of("routes", route_name, "targets", i),
                        key=f"routes.{route_name}.targets[{i}]",
                        fix=exc.fix,
                    ) from None

    # -- costs ------------------------------------------------------------------------------

    def cost(
        self,
        provider_type: str,
        model: str,
        usage: TokenUsage,
        *,
        batch: bool = False,
        provider: str | None = None,
    ) -> Decimal:
        """The exact USD cost of ``usage`` (not yet rounded to nano-dollars)."""
        price = self._required(provider_type, model, provider)
        return cost_of(price, usage, batch=batch)

    def worst_case(
        self,
        provider_type: str,
        model: str,
        *,
        input_tokens: int,
        max_output_tokens: int,
        batch: bool = False,
        provider: str | None = None,
    ) -> Decimal:
        """The most a call can cost: every prompt token at the dearest input rate (a cache
        write costs more than plain input at Anthropic), every output token at the dearest
        output rate. What a hold is sized from."""
        price = self._required(provider_type, model, provider)
        return worst_case_of(
            price, input_tokens=input_tokens, max_output_tokens=max_output_tokens, batch=batch
        )

    def _required(self, provider_type: str, model: str, provider: str | None) -> ModelPrice:
        price = self.price_of(provider_type, model, provider=provider)
        if price is None:
            self.require(provider_type, model, provider=provider, label="a call")
        assert price is not None
        return price

    # -- genai-prices -----------------------------------------------------------------------

    def _from_genai_prices(self, genai_id: str, model: str) -> ModelPrice | None:
        from genai_prices import data_snapshot

        if self._allow_network:
            self._start_updates()
        try:
            _, info = data_snapshot.get_snapshot().find_provider_model(model, None, genai_id, None)
        except LookupError:
            return None
        now = self._clock.now()
        try:
            standard = _convert(info.get_prices(now))
            batch_prices = info.get_prices(now, {"processing": "batch"})
            batch = _convert(batch_prices) if batch_prices != info.get_prices(now) else None
        except _Unrepresentable as exc:
            logger.warning("genai-prices price of %s/%s not usable: %s", genai_id, model, exc)
            return None
        if batch is None:
            return standard
        return standard.model_copy(update={"batch": batch})

    def _start_updates(self) -> None:
        with self._lock:
            if self._updater is not None:
                return
            from genai_prices import UpdatePrices

            self._updater = UpdatePrices()
        try:
            self._updater.start(wait=10)
        except Exception as exc:  # a failed fetch keeps the bundled prices
            logger.warning("could not fetch genai-prices updates: %s", exc)

    def close(self) -> None:
        """Stop the background price updates (only running with ``allow_network=True``)."""
        with self._lock:
            updater, self._updater = self._updater, None
        if updater is not None:
            updater.stop()


#: What the ``fix`` of an unpriced model shows, per operation.
_PRICE_EXAMPLES = {
    "chat": ("in USD per 1M tokens", '{input: "1.00", output: "2.00", cached_input: "0.50"}'),
    "embeddings": ("in USD per 1M input tokens", '{input: "0.02"}'),
    "images": (
        "per image, by size (or size/quality), or in USD per 1M tokens",
        '{per_image: {"1024x1024": "0.04", "1024x1024/hd": "0.08"}}',
    ),
}


def unpriced_error(
    model_id: str,
    label: str,
    *,
    file: str | None = None,
    operation: str = "chat",
    missing: str | None = None,
) -> ConfigError:
    """The error for ``model_id`` (``provider/model``) having no known price (or, with
    ``missing``, a price that lacks what an ``operation`` call needs), with the YAML to add.
    ``label`` says where the model is used."""
    unit, example = _PRICE_EXAMPLES.get(operation, _PRICE_EXAMPLES["chat"])
    if missing is None:
        problem = f"{label} uses '{model_id}', which has no known price"
    else:
        problem = f"{label} uses '{model_id}' for {operation}, but its price has no {missing}"
    return ConfigError(
        f"{problem} (the credit account never treats an unknown price as free)",
        file=file,
        key="pricing",
        fix=f"add its price {unit} to the YAML:\npricing:\n  {model_id}: {example}",
    )


def missing_for(price: ModelPrice, operation: str) -> str | None:
    """What ``price`` lacks to price an ``operation`` call, in words; None when it has enough.

    Embeddings need ``input``; images ``per_image``, or ``input`` and an output rate; chat
    (and anything else) ``input`` and ``output``."""
    if operation == "embeddings":
        return None if price.input is not None else "input price per 1M tokens"
    if operation == "images":
        if price.per_image is not None or (
            price.input is not None and (price.output is not None or price.output_image is not None)
        ):
            return None
        return "per_image price, nor input and output prices per 1M tokens"
    if price.input is not None and price.output is not None:
        return None
    return "output price per 1M tokens" if price.input is not None else "input price"


# -- images ----------------------------------------------------------------------------------

#: What OpenAI makes when a call names no size (dall-e-2, dall-e-3); an image whose size is
#: not known is charged at this size's per-image price.
DEFAULT_IMAGE_SIZE = "1024x1024"


def _per_image_matches(
    table: Mapping[str, Decimal], size: str | None, quality: str | None
) -> list[Decimal]:
    """The ``per_image`` prices that may apply to an image of ``size`` and ``quality`` (None:
    any): a key's size is that size or ``*``, its quality that quality or none."""
    found = []
    for key, value in table.items():
        key_size, _, key_quality = key.partition("/")
        if size is not None and key_size not in (size, "*"):
            continue
        if quality is not None and key_quality not in (quality, ""):
            continue
        found.append(value)
    return found


def per_image_worst_case(
    price: ModelPrice, size: str | None, quality: str | None
) -> Decimal | None:
    """The most one image of ``size`` and ``quality`` (None: not named) can cost at ``price``'s
    ``per_image`` prices; None when no price applies to that size."""
    assert price.per_image is not None
    found = _per_image_matches(price.per_image, size, quality)
    return max(found) if found else None


def per_image_price(price: ModelPrice, size: str | None, quality: str | None) -> Decimal:
    """What one image costs at ``price``'s ``per_image`` prices: the most specific key
    (``size/quality``, ``size``, ``*/quality``, ``*``); when the quality is not named (or not
    listed), the lowest price of that size (a provider's default quality is its cheapest). A
    size not known is :data:`DEFAULT_IMAGE_SIZE`. Raises LookupError when nothing applies."""
    table = price.per_image
    assert table is not None
    size = size or DEFAULT_IMAGE_SIZE
    keys = [size, "*"]
    if quality:
        keys = [f"{size}/{quality}", size, f"*/{quality}", "*"]
    for key in keys:
        if key in table:
            return table[key]
    found = _per_image_matches(table, size, None)
    if not found:
        raise LookupError(f"no per_image price for {size}")
    return min(found)


def image_worst_case(
    price: ModelPrice,
    *,
    input_tokens: int,
    images: int,
    size: str | None,
    quality: str | None,
    tokens_per_image: int,
) -> Decimal | None:
    """The most a call for ``images`` images can cost: per image (the dearest price that may
    apply), or the prompt at the dearest input rate plus ``tokens_per_image`` output tokens
    per image at the image output rate. None when no per-image price applies to the size."""
    if price.per_image is not None:
        each = per_image_worst_case(price, size, quality)
        return None if each is None else _EXACT.multiply(each, images)
    rates = _rates_for(price, input_tokens)
    output_rate = _or(price.output_image, rates.output)
    return _exact_price(
        (
            (input_tokens, max(rates.input, rates.cache_write, rates.cached_input)),
            (images * tokens_per_image, max(output_rate, rates.output)),
        ),
        Decimal(1),
    )


def image_cost(
    price: ModelPrice, usage: TokenUsage, *, images: int, size: str | None, quality: str | None
) -> Decimal:
    """The exact cost of an image call: ``images`` times the per-image price when the model
    has ``per_image`` prices (its tokens are then not charged), else its token ``usage``."""
    if price.per_image is not None:
        return _EXACT.multiply(per_image_price(price, size, quality), images)
    return cost_of(price, usage)


def cost_of(price: ModelPrice, usage: TokenUsage, *, batch: bool = False) -> Decimal:
    """The exact cost of ``usage`` at ``price`` (see the module docstring for the rules)."""
    for field in ("input_tokens", "output_tokens", "cached_input_tokens"):
        if getattr(usage, field) < 0:
            raise ValueError(f"usage.{field} is negative: {usage}")
    if usage.cache_write_tokens < 0 or usage.reasoning_tokens < 0:
        raise ValueError(f"usage has a negative token count: {usage}")
    input_images, output_images = usage.input_image_tokens, usage.output_image_tokens
    if input_images < 0 or output_images < 0:
        raise ValueError(f"usage has a negative image token count: {usage}")
    multiplier = Decimal(1)
    if batch:
        if price.batch is not None:
            price = price.batch
        else:
            multiplier = _or(price.batch_discount, DEFAULT_BATCH_MULTIPLIER)
    rates = _rates_for(price, usage.input_tokens)
    # Providers' counts include the cached and reasoning parts; a count that does not add up
    # is still charged in full (never below the total) rather than refused after the call.
    uncached = max(
        0, usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens - input_images
    )
    visible_output = max(0, usage.output_tokens - usage.reasoning_tokens - output_images)
    nanos = rates.nanos
    if nanos is not None and not batch:
        cost = _from_nanos(
            uncached * nanos[0]
            + visible_output * nanos[1]
            + usage.cached_input_tokens * nanos[2]
            + usage.cache_write_tokens * nanos[3]
            + usage.reasoning_tokens * nanos[4]
        )
    else:
        cost = _exact_price(
            (
                (uncached, rates.input),
                (usage.cached_input_tokens, rates.cached_input),
                (usage.cache_write_tokens, rates.cache_write),
                (visible_output, rates.output),
                (usage.reasoning_tokens, rates.reasoning),
            ),
            multiplier,
        )
    if input_images or output_images:  # images in or out: at their own rates, if any
        image_terms = (
            (input_images, _or(price.input_image, rates.input)),
            (output_images, _or(price.output_image, rates.output)),
        )
        cost = _EXACT.add(cost, _exact_price(image_terms, multiplier))
    return cost


def worst_case_of(
    price: ModelPrice, *, input_tokens: int, max_output_tokens: int, batch: bool = False
) -> Decimal:
    """The most a call with this prompt size and output budget can cost at ``price``."""
    if input_tokens < 0 or max_output_tokens < 0:
        raise ValueError("token counts must not be negative")
    multiplier = Decimal(1)
    if batch:
        if price.batch is not None:
            price = price.batch
        else:
            multiplier = _or(price.batch_discount, DEFAULT_BATCH_MULTIPLIER)
    rates = _rates_for(price, input_tokens)
    nanos = rates.nanos
    if nanos is not None and not batch:
        return _from_nanos(
            input_tokens * max(nanos[0], nanos[2], nanos[3])
            + max_output_tokens * max(nanos[1], nanos[4])
        )
    return _exact_price(
        (
            (input_tokens, max(rates.input, rates.cache_write, rates.cached_input)),
            (max_output_tokens, max(rates.output, rates.reasoning)),
        ),
        multiplier,
    )


class _Unrepresentable(Exception):
    pass


def _convert(genai_price: Any) -> ModelPrice:
    """A genai-prices ``ModelPrice`` -> the config's :class:`ModelPrice` (one tier at most)."""
    from genai_prices.types import TieredPrices

    def split(key: str) -> tuple[Decimal | None, tuple[int, Decimal] | None]:
        value = getattr(genai_price, key, None)
        if value is None:
            return None, None
        if isinstance(value, TieredPrices):
            if len(value.tiers) != 1:
                raise _Unrepresentable(f"{key} has {len(value.tiers)} tiers")
            tier = value.tiers[0]
            return value.base, (tier.start, tier.price)
        if isinstance(value, Decimal):
            return value, None
        raise _Unrepresentable(f"{key} is {value!r}")

    fields: dict[str, Any] = {}
    tiers: dict[str, tuple[int, Decimal]] = {}
    for ours, theirs in (
        ("input", "input_mtok"),
        ("output", "output_mtok"),
        ("cached_input", "cache_read_mtok"),
        ("cache_write", "cache_write_mtok"),
        ("reasoning", "output_reasoning_mtok"),
        ("input_image", "input_image_mtok"),
        ("output_image", "output_image_mtok"),
    ):
        base, tier = split(theirs)
        if base is not None:
            fields[ours] = base
        if tier is not None:
            tiers[ours] = tier
    if "input" not in fields:  # no output price: an embedding model (input only)
        raise _Unrepresentable("no input token price")
    if tiers.keys() & {"input_image", "output_image"}:
        raise _Unrepresentable("tiered image prices")
    if tiers:
        starts = {start for start, _ in tiers.values()}
        if len(starts) != 1 or "input" not in tiers or "output" not in tiers:
            raise _Unrepresentable("tiers that do not share one threshold")
        if "reasoning" in tiers:
            raise _Unrepresentable("a tiered reasoning price")
        fields["long_context"] = LongContextPrice(
            above_input_tokens=starts.pop(), **{k: price for k, (_, price) in tiers.items()}
        )
    if "reasoning" in fields and fields["reasoning"] == fields.get("output"):
        del fields["reasoning"]
    return ModelPrice(**fields)


def describe(price: ModelPrice) -> str:
    """One line for messages and docs: ``input $2.50, output $10 per 1M tokens, ...``."""
    if price.per_image is not None and price.input is None:
        each = ", ".join(f"{key} ${value}" for key, value in price.per_image.items())
        return f"per image: {each}"
    parts = [f"input ${price.input}"]
    if price.output is not None:
        parts.append(f"output ${price.output}")
    if price.cached_input is not None:
        parts.append(f"cached input ${price.cached_input}")
    if price.cache_write is not None:
        parts.append(f"cache write ${price.cache_write}")
    if price.reasoning is not None:
        parts.append(f"reasoning ${price.reasoning}")
    if price.input_image is not None:
        parts.append(f"image input ${price.input_image}")
    if price.output_image is not None:
        parts.append(f"image output ${price.output_image}")
    text = ", ".join(parts) + " per 1M tokens"
    if price.long_context is not None:
        text += f" (above {price.long_context.above_input_tokens:,} prompt tokens: "
        text += f"input ${price.long_context.input}, output ${price.long_context.output})"
    return text
