"""What calls return: the OpenAI SDK's own types, with the gateway's extras.

``GatewayChatCompletion`` *is* an ``openai.types.chat.ChatCompletion`` (a subclass), so code
written against the OpenAI SDK keeps working; it adds ``resp.gateway`` (who answered, every
attempt) and ``resp.usage.cost`` (Decimal USD charged). ``GatewayEmbeddingResponse`` and
``GatewayImagesResponse`` do the same for OpenAI's ``CreateEmbeddingResponse`` and
``ImagesResponse`` (whose ``usage`` is then always there, zeros when a model reports none).
This module imports ``openai``; the gateway imports it only when the first call returns.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, TypeVar

from openai.types import CreateEmbeddingResponse, ImagesResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.completion_usage import CompletionUsage
from openai.types.create_embedding_response import Usage as EmbeddingUsage
from openai.types.images_response import Usage as ImagesUsage
from pydantic import BaseModel, PrivateAttr, ValidationError

from gateway._attempts import GatewayInfo
from gateway.providers.base import completion_of

__all__ = [
    "GatewayChatCompletion",
    "GatewayChatCompletionChunk",
    "GatewayEmbeddingResponse",
    "GatewayEmbeddingUsage",
    "GatewayImagesResponse",
    "GatewayImagesUsage",
    "GatewayUsage",
]


class GatewayUsage(CompletionUsage):
    """OpenAI's usage plus what the call cost. Cache writes are in
    ``prompt_tokens_details.cache_write_tokens``, cached reads in ``.cached_tokens``."""

    #: USD charged to the credit account for this call; None when no credit account is set up.
    cost: Decimal | None = None


class GatewayChatCompletion(ChatCompletion):
    """An OpenAI ``ChatCompletion`` with ``.gateway`` attached."""

    usage: GatewayUsage | None = None
    _gateway: GatewayInfo | None = PrivateAttr(default=None)
    #: The gateway's request id, where the OpenAI SDK keeps the ``x-request-id`` it got.
    _request_id: str | None = PrivateAttr(default=None)

    @property
    def gateway(self) -> GatewayInfo:
        """Who answered (provider, model, route), the request id, and every attempt."""
        assert self._gateway is not None, "set by the gateway before the response is returned"
        return self._gateway


class GatewayChatCompletionChunk(ChatCompletionChunk):
    """The last chunk of a gateway stream: OpenAI's chunk whose usage carries ``cost``."""

    usage: GatewayUsage | None = None


class GatewayEmbeddingUsage(EmbeddingUsage):
    """OpenAI's embeddings usage plus what the call cost."""

    #: USD charged to the credit account for this call; None when no credit account is set up
    #: and the model has no known price.
    cost: Decimal | None = None


class GatewayEmbeddingResponse(CreateEmbeddingResponse):
    """An OpenAI ``CreateEmbeddingResponse`` with ``.gateway`` attached; ``usage.cost``."""

    usage: GatewayEmbeddingUsage
    _gateway: GatewayInfo | None = PrivateAttr(default=None)

    @property
    def gateway(self) -> GatewayInfo:
        """Who answered (provider, model, route), the request id, and every attempt. The
        model is the one that made the vectors: vectors of different models do not mix."""
        assert self._gateway is not None, "set by the gateway before the response is returned"
        return self._gateway


class GatewayImagesUsage(ImagesUsage):
    """OpenAI's image usage (tokens; zeros for a model priced per image) plus the cost."""

    #: USD charged to the credit account for this call; None when no credit account is set up
    #: and the model has no known price.
    cost: Decimal | None = None


class GatewayImagesResponse(ImagesResponse):
    """An OpenAI ``ImagesResponse`` with ``.gateway`` attached; ``usage`` is always set."""

    usage: GatewayImagesUsage | None = None
    _gateway: GatewayInfo | None = PrivateAttr(default=None)

    @property
    def gateway(self) -> GatewayInfo:
        """Who answered (provider, model, route), the request id, and every attempt."""
        assert self._gateway is not None, "set by the gateway before the response is returned"
        return self._gateway


def to_embedding_response(
    vectors: list[Any],
    *,
    model: str,
    prompt_tokens: int,
    cost: Decimal | None,
    info: GatewayInfo,
) -> GatewayEmbeddingResponse:
    """The vectors (or their base64 text, for ``encoding_format="base64"``) as OpenAI's
    response, built without validating every number again."""
    from openai.types import Embedding

    # Built field by field: the SDK's model_construct visits every number of every vector
    # (0.6 s for 100 vectors of 1,536), and they are floats already.
    data = [
        _built(Embedding, {"embedding": vector, "index": i, "object": "embedding"})
        for i, vector in enumerate(vectors)
    ]
    usage = _built(
        GatewayEmbeddingUsage,
        {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens, "cost": cost},
    )
    result = _built(
        GatewayEmbeddingResponse, {"data": data, "model": model, "object": "list", "usage": usage}
    )
    _set_private(result, {"_gateway": info})
    return result


def _built(cls: type[_M], fields: dict[str, Any]) -> _M:
    """A ``cls`` holding exactly ``fields`` (already of their types), nothing validated."""
    result = _new(cls)
    _set_dict(result, fields)
    _set_fields_set(result, set(fields))
    _set_extra(result, None)
    _set_private(result, None)
    return result


def to_images_response(
    data: dict[str, Any], usage: dict[str, Any], cost: Decimal | None, info: GatewayInfo
) -> GatewayImagesResponse:
    """OpenAI's ``ImagesResponse`` JSON as a GatewayImagesResponse whose usage is ``usage``
    (OpenAI's image usage shape) with ``cost``."""
    try:
        result = GatewayImagesResponse.model_validate({**data, "usage": {**usage, "cost": cost}})
    except ValidationError:  # a value newer than the SDK's types: kept as it came
        result = GatewayImagesResponse.model_construct(
            **{**data, "usage": GatewayImagesUsage.model_construct(**usage, cost=cost)}
        )
    _set_private(result, {"_gateway": info})
    return result


_M = TypeVar("_M", bound=BaseModel)


def _recast(cls: type[_M], source: BaseModel, updates: dict[str, Any]) -> _M:
    """A ``cls`` instance holding ``source``'s already-validated fields plus ``updates``.

    ``cls`` is a subclass of ``type(source)`` that only adds fields; nothing is validated or
    rebuilt (the OpenAI SDK's ``model_construct`` re-constructs every nested object, which cost
    more than the rest of the gateway's per-call work together).
    """
    result = _new(cls)
    fields = source.__dict__.copy()
    fields.update(updates)
    _set_dict(result, fields)
    _set_fields_set(result, source.__pydantic_fields_set__ | updates.keys())
    extra = source.__pydantic_extra__
    _set_extra(result, extra.copy() if extra is not None else None)
    _set_private(result, None)
    return result


# BaseModel's slots, set through their descriptors: what ``object.__setattr__`` does, without
# looking the name up along the class's long MRO every time (~1 µs per recast).
_new = object.__new__
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


_NO_USAGE = CompletionUsage(prompt_tokens=0, completion_tokens=0, total_tokens=0)


def with_usage(usage: CompletionUsage | None, cost: Decimal | None) -> GatewayUsage:
    """OpenAI's usage as :class:`GatewayUsage` with ``cost``, without re-validating it."""
    return _recast(GatewayUsage, usage if usage is not None else _NO_USAGE, {"cost": cost})


def to_gateway_completion(
    completion: ChatCompletion, info: GatewayInfo, cost: Decimal | None
) -> GatewayChatCompletion:
    """The adapter's ChatCompletion as a GatewayChatCompletion (shallow, no re-validation)."""
    result = _recast(
        GatewayChatCompletion, completion, {"usage": with_usage(completion.usage, cost)}
    )
    _set_private(result, {"_gateway": info, "_request_id": info.request_id})
    return result


_validate_completion = GatewayChatCompletion.__pydantic_validator__.validate_python


def data_to_gateway_completion(
    data: dict[str, Any], info: GatewayInfo, cost: Decimal | None
) -> GatewayChatCompletion:
    """``ChatCompletion.model_validate(data)`` as a GatewayChatCompletion, in one validation.

    The same fields, fields set and values as :func:`to_gateway_completion` of that
    ChatCompletion (``usage.cost`` included in the fields set); ``data`` is not changed.
    """
    usage = data.get("usage")
    if usage is None:
        return to_gateway_completion(completion_of(data), info, cost)
    try:
        result: GatewayChatCompletion = _validate_completion(
            {**data, "usage": {**usage, "cost": cost}}
        )
    except ValidationError:  # kept as it came, as the SDK keeps it (see completion_of)
        return to_gateway_completion(completion_of(data), info, cost)
    _set_private(result, {"_gateway": info, "_request_id": info.request_id})
    return result


def to_gateway_chunk(
    chunk: ChatCompletionChunk, cost: Decimal | None
) -> GatewayChatCompletionChunk:
    """A usage-bearing chunk as a GatewayChatCompletionChunk with ``usage.cost``."""
    return _recast(GatewayChatCompletionChunk, chunk, {"usage": with_usage(chunk.usage, cost)})
