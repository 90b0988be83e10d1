"""``gw.embeddings`` / ``agw.embeddings``: vectors, held, priced and billed like chat calls.

``create(model=, input=, dimensions=, encoding_format=, user=, timeout=, account=, tags=)``
returns a :class:`~gateway.types.GatewayEmbeddingResponse` (OpenAI's
``CreateEmbeddingResponse`` with ``.gateway`` and ``usage.cost``). ``model`` is a route or
``provider/model``; OpenAI (``text-embedding-3-*``), Gemini (``gemini-embedding-*``) and the
fake provider make embeddings.

Vectors of different models are not comparable, so a route falls back only between targets
whose vectors may mix: one model (at any providers), or targets that all declare the same
``dimensions:`` (the config saying so; :func:`~gateway.providers.media.embedding_mix`). A
route that mixes others is refused (at load when every target is an embedding model, else
here, before any call). ``resp.gateway.model`` always says which model made the vectors.

A try holds its prompt estimate (three characters a token, leaning high; a token id counts
one) at the model's input price and is settled at the tokens the provider reports (Gemini
answers that report none are charged the estimate).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping, Sequence
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
from gateway.errors import ConfigError
from gateway.providers.media import (
    EMBEDDING_MIX_FIX,
    EmbeddingRequest,
    EmbeddingResult,
    embedding_mix,
    estimate_embedding_tokens,
)

if TYPE_CHECKING:
    from gateway._client import _GatewayCore
    from gateway.keys import ApiKey
    from gateway.routing import ResolvedRoute, ResolvedTarget
    from gateway.types import GatewayEmbeddingResponse

__all__ = ["AsyncEmbeddings", "Embeddings"]

EmbeddingInput = str | Sequence[str] | Sequence[int] | Sequence[Sequence[int]]
#: OpenAI's limit on inputs per request.
MAX_INPUTS = 2048


def _inputs(value: Any) -> list[str] | list[list[int]]:
    """OpenAI's ``input`` as a list of texts or of token-id lists, or InvalidRequest."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, bytes | bytearray):
        raise invalid(f"input must be a string or a list of strings, not {type(value).__name__}")
    items = list(value)
    if not items:
        raise invalid("input is empty; give at least one text")
    if len(items) > MAX_INPUTS:
        raise invalid(f"input has {len(items)} items; at most {MAX_INPUTS} per call")
    if all(isinstance(item, int) and not isinstance(item, bool) for item in items):
        return [list(items)]  # one text as token ids
    if all(isinstance(item, str) for item in items):
        if any(not item for item in items):
            raise invalid("input has an empty string; every text must have content")
        return items
    token_lists: list[list[int]] = []
    for item in items:
        if not isinstance(item, Sequence) or isinstance(item, str | bytes) or not item:
            raise invalid("input mixes kinds; give strings, or lists of token ids")
        if not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in item):
            raise invalid("a token-id input must be a list of non-negative integers")
        token_lists.append(list(item))
    return token_lists


def _request(
    input: Any, dimensions: Any, encoding_format: Any, user: Any, timeout: Any
) -> EmbeddingRequest:
    if dimensions is not None and (
        not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1
    ):
        raise invalid(f"dimensions must be a positive integer, not {dimensions!r}")
    if encoding_format not in (None, "float", "base64"):
        raise invalid(f"encoding_format must be 'float' or 'base64', not {encoding_format!r}")
    check_user_timeout(user, timeout)
    return EmbeddingRequest(_inputs(input), dimensions, user, timeout)


def _check_mix(core: _GatewayCore, route: ResolvedRoute) -> None:
    problem = embedding_mix([(t.label, t.model, t.config.dimensions) for t in route.targets])
    if problem is not None:
        raise ConfigError(
            f"route '{route.name}': {problem}",
            file=core.config.source,
            line=core.config.line_of("routes", route.name, "targets"),
            key=f"routes.{route.name}.targets",
            fix=EMBEDDING_MIX_FIX,
        )


class _Call:
    """One embeddings call: checked, planned, and how to send, price and answer each try."""

    def __init__(
        self,
        core: _GatewayCore,
        model: str,
        request: EmbeddingRequest,
        encoding_format: str | None,
        account: str | None,
        tags: Mapping[str, str] | None,
        api_key: ApiKey | None,
    ) -> None:
        self.core = core
        self.request = request
        self.encoding_format = encoding_format
        self.route = route = core.router.resolve(model)
        check_targets(core, route, "embeddings", request)
        _check_mix(core, route)
        self.tokens = estimate_embedding_tokens(request)
        self.call: MediaCall = start(
            core,
            model,
            route,
            "embeddings",
            timeout=request.timeout,
            account=account,
            tags=tags,
            api_key=api_key,
            estimated_tokens=self.tokens,
            hold_of=self.hold_of,
            request_params={"dimensions": request.dimensions, "encoding_format": encoding_format},
        )

    def hold_of(self, target: ResolvedTarget) -> Decimal | None:
        from gateway.credits.pricing import worst_case_of

        price = price_for(self.core, self.route, target, "embeddings")
        if price is None:
            return None
        return worst_case_of(price, input_tokens=self.tokens, max_output_tokens=0)

    def target_request(self, target: ResolvedTarget, timeout: float | None) -> EmbeddingRequest:
        dimensions = self.request.dimensions or target.config.dimensions
        return EmbeddingRequest(self.request.inputs, dimensions, self.request.user, timeout)

    def send(self, adapter: Any, target: ResolvedTarget, timeout: float | None) -> Any:
        return adapter.embed(target.model, self.target_request(target, timeout))

    async def asend(self, adapter: Any, target: ResolvedTarget, timeout: float | None) -> Any:
        return await adapter.aembed(target.model, self.target_request(target, timeout))

    def price(self, target: ResolvedTarget, result: EmbeddingResult) -> Priced:
        from gateway.credits.pricing import cost_of

        price = self.core.billing.price_of(target)
        if price is None or price.input is None:
            return result.usage, None, result.estimated
        return result.usage, cost_of(price, result.usage), result.estimated

    def answer(
        self, result: EmbeddingResult, target: ResolvedTarget, cost: Decimal | None
    ) -> GatewayEmbeddingResponse:
        from gateway.types import to_embedding_response

        vectors: list[Any] = result.vectors
        if self.encoding_format == "base64":  # what OpenAI sends: little-endian float32
            vectors = [base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() for v in vectors]
        return to_embedding_response(
            vectors,
            model=result.model,
            prompt_tokens=result.usage.input_tokens,
            cost=cost,
            info=self.core.info(self.call.plan, target, None),
        )


_CREATE_DOC = """Create embeddings, like ``OpenAI().embeddings.create``.

``model`` is a route name from the config or a direct ``provider/model``; ``input`` a text, a
list of texts, or token ids (OpenAI only). ``dimensions`` shortens the vectors (sent to every
target; a target's own ``dimensions:`` is used when the call names none); ``encoding_format``
``"base64"`` returns each vector as base64 of little-endian float32, as OpenAI does. The
gateway adds ``account`` (which credit account pays), ``tags`` (labels for usage reports) and
``api_key`` (an :class:`~gateway.keys.ApiKey` from ``gw.keys.authenticate``: the call is paid
from the key's account, within its allow-list, rpm and spend limits).

Returns a :class:`~gateway.types.GatewayEmbeddingResponse` (``usage.cost``, ``.gateway``).
Raises a :class:`~gateway.errors.GatewayError`: ``InvalidRequest`` before any call when a
target cannot make embeddings (Claude), ``ConfigError`` when the route mixes embedding
models that are not declared interchangeable.
"""


class Embeddings:
    """``gw.embeddings``."""

    def __init__(self, core: _GatewayCore) -> None:
        self._core = core

    def create(
        self,
        *,
        model: str,
        input: EmbeddingInput,
        dimensions: int | None = None,
        encoding_format: Literal["float", "base64"] | None = None,
        user: str | None = None,
        timeout: float | None = None,
        account: str | None = None,
        tags: Mapping[str, str] | None = None,
        api_key: ApiKey | None = None,
    ) -> GatewayEmbeddingResponse:
        request = _request(input, dimensions, encoding_format, user, timeout)
        call = _Call(self._core, model, request, encoding_format, account, tags, api_key)
        result, target, cost = run(self._core, call.call, call.send, call.price)
        return call.answer(result, target, cost)

    create.__doc__ = _CREATE_DOC


class AsyncEmbeddings:
    """``agw.embeddings``."""

    def __init__(self, core: _GatewayCore) -> None:
        self._core = core

    async def create(
        self,
        *,
        model: str,
        input: EmbeddingInput,
        dimensions: int | None = None,
        encoding_format: Literal["float", "base64"] | None = None,
        user: str | None = None,
        timeout: float | None = None,
        account: str | None = None,
        tags: Mapping[str, str] | None = None,
        api_key: ApiKey | None = None,
    ) -> GatewayEmbeddingResponse:
        request = _request(input, dimensions, encoding_format, user, timeout)
        call = _Call(self._core, model, request, encoding_format, account, tags, api_key)
        result, target, cost = await arun(self._core, call.call, call.asend, call.price)
        return call.answer(result, target, cost)

    create.__doc__ = _CREATE_DOC
