"""``gw.images`` / ``agw.images``: image generation, held, priced and billed like chat calls.

``generate(model=, prompt=, n=, size=, quality=, response_format=, style=, background=,
output_format=, user=, timeout=, account=, tags=)`` returns a
:class:`~gateway.types.GatewayImagesResponse` (OpenAI's ``ImagesResponse`` with ``.gateway``
and ``usage.cost``; ``usage`` is always set). OpenAI (``gpt-image-*``, ``dall-e-*``), Gemini
(``gemini-*-image*`` through ``generateContent``) and the fake provider make images.

Price and hold, per try:

* a model with ``per_image`` prices in the YAML (``dall-e-3``) holds ``n`` images at the
  dearest price that may apply to the size and quality asked (any size or quality when not
  named) and is charged ``n`` times the price of the size and quality made
  (:func:`~gateway.credits.pricing.per_image_price`); a size it has no price for is refused
  before the call;
* a model priced by tokens (GPT Image, Gemini; from genai-prices) holds the prompt estimate at
  the input rate plus ``n`` times the most output tokens an image of that size and quality can
  take (:func:`~gateway.providers.media.worst_case_image_tokens`) at the image output rate, and
  is charged the tokens the provider reports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from gateway._media import (
    MediaCall,
    Priced,
    arun,
    check_targets,
    check_user_timeout,
    invalid,
    price_for,
    run,
    start,
)
from gateway.errors import InvalidRequest
from gateway.providers.media import ImageRequest, ImageResult, worst_case_image_tokens

if TYPE_CHECKING:
    from gateway._client import _GatewayCore
    from gateway.keys import ApiKey
    from gateway.providers.base import TokenUsage
    from gateway.routing import ResolvedTarget
    from gateway.types import GatewayImagesResponse

__all__ = ["AsyncImages", "Images"]

#: OpenAI's limit on images per request.
MAX_IMAGES = 10
_SIZE = re.compile(r"auto|[1-9][0-9]{0,4}x[1-9][0-9]{0,4}")
_WORD = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def _word(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _WORD.fullmatch(value):
        raise invalid(f"{name} must be a lowercase word such as 'auto', not {value!r}")
    return value


def _request(
    prompt: Any,
    n: Any,
    size: Any,
    quality: Any,
    response_format: Any,
    style: Any,
    background: Any,
    output_format: Any,
    user: Any,
    timeout: Any,
) -> ImageRequest:
    if not isinstance(prompt, str) or not prompt.strip():
        raise invalid("prompt must be a non-empty string")
    count = 1 if n is None else n
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_IMAGES:
        raise invalid(f"n must be an integer from 1 to {MAX_IMAGES}, not {n!r}")
    if size is not None and (not isinstance(size, str) or not _SIZE.fullmatch(size)):
        raise invalid(f"size must be WIDTHxHEIGHT (e.g. 1024x1024) or 'auto', not {size!r}")
    if response_format not in (None, "url", "b64_json"):
        raise invalid(f"response_format must be 'url' or 'b64_json', not {response_format!r}")
    check_user_timeout(user, timeout)
    return ImageRequest(
        prompt=prompt,
        n=count,
        size=size,
        quality=_word(quality, "quality"),
        response_format=response_format,
        style=_word(style, "style"),
        background=_word(background, "background"),
        output_format=_word(output_format, "output_format"),
        user=user,
        timeout=timeout,
    )


def _usage_body(usage: TokenUsage) -> dict[str, Any]:
    """OpenAI's image usage shape for ``usage``."""
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "image_tokens": usage.input_image_tokens,
            "text_tokens": max(0, usage.input_tokens - usage.input_image_tokens),
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {
            "image_tokens": usage.output_image_tokens,
            "text_tokens": max(0, usage.output_tokens - usage.output_image_tokens),
        },
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


class _Call:
    """One images call: checked, planned, and how to send, price and answer each try."""

    def __init__(
        self,
        core: _GatewayCore,
        model: str,
        request: ImageRequest,
        account: str | None,
        tags: Mapping[str, str] | None,
        api_key: ApiKey | None,
    ) -> None:
        self.core = core
        self.request = request
        self.route = route = core.router.resolve(model)
        check_targets(core, route, "images", request)
        self.tokens = len(request.prompt) // 3 + 1
        self.call: MediaCall = start(
            core,
            model,
            route,
            "images",
            timeout=request.timeout,
            account=account,
            tags=tags,
            api_key=api_key,
            estimated_tokens=self.tokens,
            hold_of=self.hold_of,
            request_params={"n": request.n, "size": request.size, "quality": request.quality},
        )

    def hold_of(self, target: ResolvedTarget) -> Decimal | None:
        from gateway.credits.pricing import image_worst_case

        request = self.request
        price = price_for(self.core, self.route, target, "images")
        if price is None:
            return None
        provider_type = self.core.config.providers[target.provider].type
        amount = image_worst_case(
            price,
            input_tokens=self.tokens,
            images=request.n,
            size=request.size,
            quality=request.quality,
            tokens_per_image=worst_case_image_tokens(provider_type, request.size, request.quality),
        )
        if amount is None:
            assert price.per_image is not None
            priced = ", ".join(price.per_image)
            raise InvalidRequest(
                f"no per-image price for size {request.size} "
                f"(pricing: has {priced}); ask for a priced size, or add its price under "
                "pricing:",
                provider=target.provider,
                model=target.model,
            )
        return amount

    def target_request(self, timeout: float | None) -> ImageRequest:
        request = self.request
        return request if timeout == request.timeout else replace(request, timeout=timeout)

    def send(self, adapter: Any, target: ResolvedTarget, timeout: float | None) -> Any:
        return adapter.generate_images(target.model, self.target_request(timeout))

    async def asend(self, adapter: Any, target: ResolvedTarget, timeout: float | None) -> Any:
        return await adapter.agenerate_images(target.model, self.target_request(timeout))

    def price(self, target: ResolvedTarget, result: ImageResult) -> Priced:
        from gateway.credits.pricing import image_cost

        price = self.core.billing.price_of(target)
        if price is None:
            return result.usage, None, False
        data, request = result.data, self.request
        size = request.size if request.size not in (None, "auto") else data.get("size")
        quality = data.get("quality") or request.quality
        cost = image_cost(price, result.usage, images=result.images, size=size, quality=quality)
        return result.usage, cost, False

    def answer(
        self, result: ImageResult, target: ResolvedTarget, cost: Decimal | None
    ) -> GatewayImagesResponse:
        from gateway.types import to_images_response

        data = dict(result.data)
        usage = data.pop("usage", None)
        if not isinstance(usage, dict):
            usage = _usage_body(result.usage)
        return to_images_response(data, usage, cost, self.core.info(self.call.plan, target, None))


_GENERATE_DOC = """Generate images, like ``OpenAI().images.generate``.

``model`` is a route name from the config or a direct ``provider/model``. ``n`` (1-10),
``size`` (``WIDTHxHEIGHT`` or ``auto``), ``quality``, ``response_format`` (``url`` or
``b64_json``; providers that make no URLs answer ``url`` with a ``data:`` URL), ``style``,
``background``, ``output_format`` and ``user`` mean what they mean at OpenAI. The gateway adds
``account`` (which credit account pays), ``tags`` (labels for usage reports) and ``api_key``
(an :class:`~gateway.keys.ApiKey`: paid from the key's account, within its limits).

Returns a :class:`~gateway.types.GatewayImagesResponse` (``usage.cost``, ``.gateway``).
Raises a :class:`~gateway.errors.GatewayError`: ``InvalidRequest`` before any call when a
target cannot make images (Claude) or cannot take the request (``n`` above 1 on Gemini).
"""


class Images:
    """``gw.images``."""

    def __init__(self, core: _GatewayCore) -> None:
        self._core = core

    def generate(
        self,
        *,
        model: str,
        prompt: str,
        n: int | None = None,
        size: str | None = None,
        quality: str | None = None,
        response_format: Literal["url", "b64_json"] | None = None,
        style: str | None = None,
        background: str | None = None,
        output_format: str | None = None,
        user: str | None = None,
        timeout: float | None = None,
        account: str | None = None,
        tags: Mapping[str, str] | None = None,
        api_key: ApiKey | None = None,
    ) -> GatewayImagesResponse:
        request = _request(
            prompt,
            n,
            size,
            quality,
            response_format,
            style,
            background,
            output_format,
            user,
            timeout,
        )
        call = _Call(self._core, model, request, account, tags, api_key)
        result, target, cost = run(self._core, call.call, call.send, call.price)
        return call.answer(result, target, cost)

    generate.__doc__ = _GENERATE_DOC


class AsyncImages:
    """``agw.images``."""

    def __init__(self, core: _GatewayCore) -> None:
        self._core = core

    async def generate(
        self,
        *,
        model: str,
        prompt: str,
        n: int | None = None,
        size: str | None = None,
        quality: str | None = None,
        response_format: Literal["url", "b64_json"] | None = None,
        style: str | None = None,
        background: str | None = None,
        output_format: str | None = None,
        user: str | None = None,
        timeout: float | None = None,
        account: str | None = None,
        tags: Mapping[str, str] | None = None,
        api_key: ApiKey | None = None,
    ) -> GatewayImagesResponse:
        request = _request(
            prompt,
            n,
            size,
            quality,
            response_format,
            style,
            background,
            output_format,
            user,
            timeout,
        )
        call = _Call(self._core, model, request, account, tags, api_key)
        result, target, cost = await arun(self._core, call.call, call.asend, call.price)
        return call.answer(result, target, cost)

    generate.__doc__ = _GENERATE_DOC
