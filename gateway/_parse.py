"""``chat.completions.parse``: structured output into a pydantic model, as the OpenAI SDK's
helper does it, and with the SDK's own code (``openai.lib._parsing``): the model becomes a
strict ``json_schema`` response format, strict function tools are checked, and the answer
comes back as a ``ParsedChatCompletion`` whose ``message.parsed`` is the model instance
(``tool_calls[i].function.parsed_arguments`` for tools).

The result keeps the gateway's extras: ``resp.gateway`` and ``resp.usage.cost``. This module
imports ``openai``; the client imports it only when ``parse`` is called.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from openai import omit
from openai.lib._parsing import (
    parse_chat_completion,
    type_to_response_format_param,
    validate_input_tools,
)
from openai.types.chat import ParsedChatCompletion
from pydantic import PrivateAttr

from gateway._attempts import GatewayInfo
from gateway.types import GatewayChatCompletion, GatewayUsage

__all__ = ["GatewayParsedChatCompletion", "parse_arguments", "parsed_completion"]

ContentT = TypeVar("ContentT")


class GatewayParsedChatCompletion(ParsedChatCompletion[ContentT], Generic[ContentT]):
    """The SDK's ``ParsedChatCompletion`` with ``.gateway`` and ``usage.cost`` attached."""

    usage: GatewayUsage | None = None
    _gateway: GatewayInfo | None = PrivateAttr(default=None)
    _request_id: str | None = PrivateAttr(default=None)

    @property
    def gateway(self) -> GatewayInfo:
        """Who answered (provider, model, route), the request id, and every attempt."""
        assert self._gateway is not None, "set by the gateway before the response is returned"
        return self._gateway


def parse_arguments(arguments: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    """``(response_format, tools, create_arguments)`` for the ``parse`` call's keyword
    arguments: the model class as its strict JSON schema, the tools checked as the SDK does
    (only strict function tools can be parsed; ValueError otherwise)."""
    if "stream" in arguments:
        raise TypeError("parse() got an unexpected keyword argument 'stream' (use create)")
    response_format = arguments.pop("response_format", omit)
    tools = validate_input_tools(arguments.pop("tools", omit))
    create = dict(arguments)
    if response_format is not None and response_format is not omit:
        create["response_format"] = type_to_response_format_param(response_format)
    if tools is not omit:
        create["tools"] = tools
    return response_format, tools, create


def parsed_completion(
    completion: GatewayChatCompletion, response_format: Any, tools: Any
) -> GatewayParsedChatCompletion[Any]:
    """The completion parsed by the SDK's own parser, as a GatewayParsedChatCompletion."""
    parsed = parse_chat_completion(
        response_format=response_format if response_format is not None else omit,
        chat_completion=completion,
        input_tools=tools,
    )
    result = GatewayParsedChatCompletion[Any].model_construct(
        **{**parsed.__dict__, "usage": completion.usage}
    )
    result._gateway = completion.gateway
    result._request_id = completion.gateway.request_id
    return result
