"""The JSON body of a Gemini ``generateContent`` / ``streamGenerateContent`` call, built
without the SDK's per-call work.

``Models.generate_content`` validates ``contents`` and ``config`` into models and converts both
field by field (``_GenerateContentParameters_to_mldev``, ``get_value_by_path``): about 600 µs
a call, a third of the gateway's CPU on a Gemini call. Here:

- ``contents`` (the snake_case dicts :mod:`gateway.providers._gemini_request` builds, of a few
  known keys) are renamed to the wire's camelCase directly, bytes base64-encoded as the SDK
  does (URL-safe); the values inside ``args`` / ``response`` are the caller's JSON, untouched.
- the ``config`` part (``systemInstruction``, ``generationConfig``, ``tools``, ``toolConfig``,
  ...) is converted by the SDK's own converter, once per config instance (the common configs
  are shared instances, see ``_plain_config``) and, for the configs made per call (tools,
  ``response_format``, a timeout, ...), once per distinct config value (its JSON, ~40 µs
  against ~1-3 ms for the conversion of a config with tools); both caches are per client and
  bounded.

The body goes out through the client's ``request`` / ``async_request`` (streams:
``request_streamed`` / ``async_request_streamed``), the layer under ``generate_content``, which
sends, retries (off) and raises ``errors.APIError`` as before.
``tests/providers/test_gemini_wire.py`` checks the body equals what the SDK itself sends.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from google.genai import _common, models, types
from google.genai import _transformers as transformers

__all__ = ["ConfigFragments", "body", "contents_json", "model_path"]

#: The SDK's own converter of a config to its part of the request (private to google-genai).
_config_to_mldev = models._GenerateContentConfig_to_mldev

#: Part keys on the wire (other keys, such as ``mime_type``, keep their name).
_RENAMES = {
    "text": "text",
    "thought": "thought",
    "inline_data": "inlineData",
    "file_data": "fileData",
    "function_call": "functionCall",
    "function_response": "functionResponse",
    "thought_signature": "thoughtSignature",
    # The SDK sends the fields of inlineData / fileData in proto (snake_case) names, which
    # the API accepts like the camelCase ones; so do we.
}
#: Keys whose value is the caller's JSON: copied as is.
_OPAQUE = frozenset({"args", "response"})
_MAX_FRAGMENTS = 256


def _b64(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).decode("ascii")


def _object_json(obj: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if value is None:
            continue
        if key in _OPAQUE:
            out[key] = value
        elif isinstance(value, bytes):
            out[_RENAMES.get(key, key)] = _b64(value)
        elif isinstance(value, Mapping):
            out[_RENAMES.get(key, key)] = _object_json(value)
        else:
            out[_RENAMES.get(key, key)] = value
    return out


def contents_json(
    contents: list[types.ContentDict] | types.ContentDict,
) -> list[dict[str, Any]]:
    """``contents`` as the wire's JSON (one turn or a list of turns, as ``build_request`` gives)."""
    turns = contents if isinstance(contents, list) else [contents]
    return [
        {"role": turn["role"], "parts": [_object_json(part) for part in turn.get("parts") or ()]}
        for turn in turns
    ]


def model_path(client: Any, model: str, *, stream: bool = False) -> str:
    """The path of ``generateContent`` for ``model`` (``models/<id>:generateContent``; a stream:
    ``models/<id>:streamGenerateContent?alt=sse``); raises ValueError for a model name the SDK
    refuses, as ``generate_content`` does."""
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"{transformers.t_model(client, model)}:{method}"


def _shape(config: types.GenerateContentConfig) -> str | None:
    """What the request fields of ``config`` depend on, as one string (None: not cacheable).

    ``http_options`` is not among them: it travels beside the body, not in it."""
    try:
        return config.model_dump_json(exclude_none=True, exclude=_NOT_IN_BODY)
    except ValueError:  # pydantic_core.PydanticSerializationError: a value JSON cannot hold
        return None


#: Config fields the converter does not put in the body (sent another way, or read by us).
_NOT_IN_BODY = {"http_options", "should_return_http_response"}


class ConfigFragments:
    """The request fields of each config, converted once by the SDK (one per API client):
    per config instance, and per config value for the instances made per call."""

    __slots__ = ("_by_shape", "_client", "_fragments")

    def __init__(self, client: Any) -> None:
        self._client = client
        # id(config) -> (config, fragment): holding the config keeps its id from being reused.
        self._fragments: dict[int, tuple[types.GenerateContentConfig, dict[str, Any]]] = {}
        self._by_shape: dict[str, dict[str, Any]] = {}

    def get(self, config: types.GenerateContentConfig) -> dict[str, Any]:
        """The body fields of ``config``; shared, never to be changed by the caller."""
        entry = self._fragments.get(id(config))
        if entry is not None:
            return entry[1]
        shape = _shape(config)
        fragment = self._by_shape.get(shape) if shape is not None else None
        if fragment is None:
            fragment = self._convert(config)
            if shape is not None:
                if len(self._by_shape) >= _MAX_FRAGMENTS:
                    self._by_shape.clear()
                self._by_shape[shape] = fragment
        if len(self._fragments) >= _MAX_FRAGMENTS:
            self._fragments.clear()
        self._fragments[id(config)] = (config, fragment)
        return fragment

    def _convert(self, config: types.GenerateContentConfig) -> dict[str, Any]:
        fragment: dict[str, Any] = {}
        generation = _config_to_mldev(self._client, config, fragment, None)
        fragment["generationConfig"] = generation
        converted: dict[str, Any] = _common.encode_unserializable_types(
            _common.convert_to_dict(fragment)
        )
        return converted


def body(
    contents: list[types.ContentDict] | types.ContentDict, fragment: Mapping[str, Any]
) -> dict[str, Any]:
    """The request body: the contents, then the config's fields."""
    return {"contents": contents_json(contents), **fragment}
