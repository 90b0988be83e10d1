"""OpenAI's embeddings and images wire formats: JSON bodies as the API sends them.

``POST https://api.openai.com/v1/embeddings`` answers (the SDK asks for base64 unless the
caller names ``encoding_format``; each vector is then base64 of little-endian float32)::

    body = embeddings(vectors=[[0.1, 0.2], [0.3, 0.4]], prompt_tokens=8)

``POST https://api.openai.com/v1/images/generations`` answers::

    body = images(b64=[png_bytes], usage=image_usage(50, 4160))   # GPT Image
    body = images(urls=["https://..."], revised_prompt="...")     # DALL-E 3: no usage

Errors are the chat endpoint's (:mod:`gateway.testing.wire.openai`).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.testing.wire.openai import API_BASE

__all__ = [
    "EMBEDDINGS_URL",
    "IMAGES_URL",
    "embeddings",
    "float32_base64",
    "image_usage",
    "images",
]

#: The embeddings endpoint.
EMBEDDINGS_URL = f"{API_BASE}/embeddings"
#: The image generation endpoint.
IMAGES_URL = f"{API_BASE}/images/generations"
_DEFAULT_CREATED = 1_700_000_000


def float32_base64(vector: Sequence[float]) -> str:
    """A vector as OpenAI sends it for ``encoding_format="base64"``."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def embeddings(
    *,
    vectors: Sequence[Sequence[float]] = ((0.25, -0.5, 0.75),),
    prompt_tokens: int = 8,
    model: str = "text-embedding-3-small",
    encoding: str = "base64",
) -> dict[str, Any]:
    """An embeddings body: one ``embedding`` per vector, in order (``encoding="float"`` sends
    the numbers, ``"base64"`` what the SDK asks for by default)."""
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": i,
                "embedding": float32_base64(v) if encoding == "base64" else list(v),
            }
            for i, v in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def image_usage(
    input_tokens: int,
    output_tokens: int,
    *,
    input_image_tokens: int = 0,
    output_text_tokens: int | None = None,
) -> dict[str, Any]:
    """A GPT Image ``usage``: ``input_tokens`` includes ``input_image_tokens``; with
    ``output_text_tokens`` the output is split into text and image tokens (GPT Image 1.5),
    otherwise no output details are sent (GPT Image 1: all output is image tokens)."""
    body: dict[str, Any] = {
        "input_tokens": input_tokens,
        "input_tokens_details": {
            "image_tokens": input_image_tokens,
            "text_tokens": input_tokens - input_image_tokens,
        },
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }
    if output_text_tokens is not None:
        body["output_tokens_details"] = {
            "image_tokens": output_tokens - output_text_tokens,
            "text_tokens": output_text_tokens,
        }
    return body


def images(
    *,
    b64: Sequence[bytes] = (),
    urls: Sequence[str] = (),
    revised_prompt: str | None = None,
    usage: Mapping[str, Any] | None = None,
    size: str | None = None,
    quality: str | None = None,
    output_format: str | None = None,
    background: str | None = None,
    created: int = _DEFAULT_CREATED,
) -> dict[str, Any]:
    """An images body: ``b64`` images as ``b64_json`` (GPT Image), ``urls`` as ``url``
    (DALL-E); GPT Image answers also carry ``usage``, ``size``, ``quality``,
    ``output_format`` and ``background``."""
    data: list[dict[str, Any]] = [{"b64_json": base64.b64encode(raw).decode()} for raw in b64]
    data += [{"url": url} for url in urls]
    if revised_prompt is not None:
        for item in data:
            item["revised_prompt"] = revised_prompt
    body: dict[str, Any] = {"created": created, "data": data}
    for key, value in (
        ("size", size),
        ("quality", quality),
        ("output_format", output_format),
        ("background", background),
    ):
        if value is not None:
            body[key] = value
    if usage is not None:
        body["usage"] = dict(usage)
    return body
