"""The Gemini API's embeddings and image wire formats, as JSON-able dicts.

google-genai's ``models.embed_content`` posts every text at once to
``.../models/<model>:batchEmbedContents`` and reads ``{"embeddings": [{"values": [...]}],
"usageMetadata": {...}}``. An image model answers ``:generateContent`` with ``inlineData`` parts
(base64 ``data`` and a ``mimeType``) and ``candidatesTokensDetails`` giving the image tokens::

    body = batch_embed_response(vectors=[[0.1, 0.2]], prompt_tokens=6)
    body = image_response(images=[png_bytes], prompt_tokens=12, image_tokens=1290)

Errors are the chat endpoint's (:mod:`gateway.testing.wire.gemini`).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from gateway.testing.wire.gemini import DEFAULT_BASE_URL

__all__ = ["batch_embed_response", "batch_embed_url", "blocked_image_response", "image_response"]


def batch_embed_url(
    model: str, *, base_url: str = DEFAULT_BASE_URL, api_version: str = "v1"
) -> str:
    """The URL google-genai posts embeddings to."""
    return f"{base_url.rstrip('/')}/{api_version}/models/{model}:batchEmbedContents"


def batch_embed_response(
    *, vectors: Sequence[Sequence[float]] = ((0.25, -0.5, 0.75),), prompt_tokens: int | None = 6
) -> dict[str, Any]:
    """A ``batchEmbedContents`` body; ``prompt_tokens=None`` sends no ``usageMetadata``."""
    body: dict[str, Any] = {"embeddings": [{"values": list(v)} for v in vectors]}
    if prompt_tokens is not None:
        body["usageMetadata"] = {
            "promptTokenCount": prompt_tokens,
            "totalTokenCount": prompt_tokens,
        }
    return body


def image_response(
    *,
    images: Sequence[bytes] = (b"\x89PNG\r\n\x1a\n",),
    mime_type: str = "image/png",
    text: str | None = None,
    prompt_tokens: int = 12,
    image_tokens: int = 1290,
    text_tokens: int = 0,
    thoughts_tokens: int = 0,
    model_version: str = "gemini-2.5-flash-image",
) -> dict[str, Any]:
    """A ``generateContent`` body of an image model: an optional text part, then one
    ``inlineData`` part per image; ``candidatesTokenCount`` is ``image_tokens`` +
    ``text_tokens``, split by modality in ``candidatesTokensDetails``."""
    parts: list[dict[str, Any]] = [{"text": text}] if text is not None else []
    parts += [
        {"inlineData": {"mimeType": mime_type, "data": base64.b64encode(raw).decode()}}
        for raw in images
    ]
    details = [{"modality": "IMAGE", "tokenCount": image_tokens}]
    if text_tokens:
        details.append({"modality": "TEXT", "tokenCount": text_tokens})
    usage: dict[str, Any] = {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": image_tokens + text_tokens,
        "totalTokenCount": prompt_tokens + image_tokens + text_tokens + thoughts_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
        "candidatesTokensDetails": details,
    }
    if thoughts_tokens:
        usage["thoughtsTokenCount"] = thoughts_tokens
    return {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": usage,
        "modelVersion": model_version,
    }


def blocked_image_response(
    *, finish_reason: str = "IMAGE_SAFETY", prompt_tokens: int = 12
) -> dict[str, Any]:
    """An image model's answer with no image (a safety stop)."""
    return {
        "candidates": [
            {"content": {"role": "model", "parts": []}, "finishReason": finish_reason, "index": 0}
        ],
        "usageMetadata": {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens},
    }
