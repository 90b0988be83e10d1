"""What calls return: the OpenAI SDK's own types, with the gateway's extras.

``GatewayChatCompletion`` *is* an ``openai.types.chat.ChatCompletion`` (a subclass), so code
written against the OpenAI SDK keeps working; it adds ``resp.gateway`` (who answered, every
attempt) and ``resp.usage.cost`` (Decimal USD charged). This module imports ``openai``;
the gateway imports it only when the first call returns.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.completion_usage import CompletionUsage
from pydantic import PrivateAttr

from gateway._attempts import GatewayInfo

__all__ = ["GatewayChatCompletion", "GatewayChatCompletionChunk", "GatewayUsage"]


class GatewayUsage(CompletionUsage):
    """OpenAI's usage plus what the call cost. Cache writes are in
    ``prompt_tokens_details.cache_write_tokens``, cached reads in ``.cached_tokens``."""

    #: USD charged to the credit account for this call; None when no credit account is set up.
    cost: Decimal | None = None


class GatewayChatCompletion(ChatCompletion):
    """An OpenAI ``ChatCompletion`` with ``.gateway`` attached."""

    usage: GatewayUsage | None = None
    _gateway: GatewayInfo | None = PrivateAttr(default=None)

    @property
    def gateway(self) -> GatewayInfo:
        """Who answered (provider, model, route), the request id, and every attempt."""
        assert self._gateway is not None, "set by the gateway before the response is returned"
        return self._gateway


class GatewayChatCompletionChunk(ChatCompletionChunk):
    """The last chunk of a gateway stream: OpenAI's chunk whose usage carries ``cost``."""

    usage: GatewayUsage | None = None


def with_usage(usage: CompletionUsage | None, cost: Decimal | None) -> GatewayUsage:
    """Rebuild OpenAI usage as :class:`GatewayUsage` without re-validating it."""
    fields: dict[str, Any] = (
        dict(usage)
        if usage is not None
        else {
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "total_tokens": 0,
        }
    )
    fields["cost"] = cost
    return GatewayUsage.model_construct(**fields)


def to_gateway_completion(
    completion: ChatCompletion, info: GatewayInfo, cost: Decimal | None
) -> GatewayChatCompletion:
    """The adapter's ChatCompletion as a GatewayChatCompletion (shallow, no re-validation)."""
    fields = dict(completion)
    fields["usage"] = with_usage(completion.usage, cost)
    result = GatewayChatCompletion.model_construct(**fields)
    extra = completion.model_extra
    if extra:
        result.__pydantic_extra__ = dict(extra)
    result._gateway = info
    return result


def to_gateway_chunk(
    chunk: ChatCompletionChunk, cost: Decimal | None
) -> GatewayChatCompletionChunk:
    """A usage-bearing chunk as a GatewayChatCompletionChunk with ``usage.cost``."""
    fields = dict(chunk)
    fields["usage"] = with_usage(chunk.usage, cost)
    return GatewayChatCompletionChunk.model_construct(**fields)
