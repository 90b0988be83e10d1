"""Gemini embeddings and images through google-genai: requests and responses. No I/O.

Embeddings (``models.embed_content``, which sends ``:batchEmbedContents``): each text is one
content; ``dimensions`` -> ``outputDimensionality``; ``user`` is dropped (no per-request
end-user id). Usage: ``usageMetadata.promptTokenCount`` when the answer carries it; an answer
without it is charged the gateway's estimate of the input (three characters a token).

Images (``models.generate_content`` on an image model with ``responseModalities: ["IMAGE"]``):
``size`` -> ``imageConfig.aspectRatio``, the supported ratio nearest to the size's (``auto``:
not sent); ``quality`` and ``user`` are dropped (Gemini image models have neither); ``n`` above
1, ``style``, a ``background`` other than ``auto`` and an ``output_format`` other than ``png``
are refused before the call (:func:`~gateway.providers.media.refusal`). Each ``inlineData`` part
is an image (``b64_json``, or a ``data:`` URL for ``response_format="url"``). Usage:
``promptTokenCount`` -> input, ``candidatesTokenCount`` + ``thoughtsTokenCount`` -> output,
the ``IMAGE`` entry of ``candidatesTokensDetails`` -> image output tokens (and of
``promptTokensDetails`` -> image input tokens). An answer with no image (a blocked prompt, a
safety stop) is an InvalidRequest naming Gemini's reason.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Mapping
from typing import Any

from google.genai import types

from gateway.errors import InvalidRequest, ProviderUnavailable
from gateway.providers._gemini_request import _millis
from gateway.providers.base import TokenUsage
from gateway.providers.media import (
    EmbeddingRequest,
    EmbeddingResult,
    ImageRequest,
    ImageResult,
    estimate_embedding_tokens,
)

__all__ = [
    "aspect_ratio",
    "embed_config",
    "embedding_result",
    "image_config",
    "image_result",
]

#: The aspect ratios Gemini image models take.
_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
_EXTENSION = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp"}


def _http_options(timeout: float | None) -> types.HttpOptions | None:
    return None if timeout is None else types.HttpOptions(timeout=_millis(timeout))


def embed_config(request: EmbeddingRequest) -> types.EmbedContentConfig:
    return types.EmbedContentConfig(
        output_dimensionality=request.dimensions, http_options=_http_options(request.timeout)
    )


def embedding_result(
    response: types.EmbedContentResponse, request: EmbeddingRequest, *, provider: str, model: str
) -> EmbeddingResult:
    vectors = [list(e.values or ()) for e in response.embeddings or ()]
    if len(vectors) != len(request.inputs) or not all(vectors):
        raise ProviderUnavailable(
            f"the response has {len(vectors)} vectors for {len(request.inputs)} inputs",
            provider=provider,
            model=model,
        )
    meta = response.usage_metadata
    tokens = meta.prompt_token_count if meta is not None else None
    if tokens is None:  # not reported: charge what the hold estimated
        usage = TokenUsage(input_tokens=estimate_embedding_tokens(request))
        return EmbeddingResult(vectors, usage, model, estimated=True)
    return EmbeddingResult(vectors, TokenUsage(input_tokens=tokens), model)


def aspect_ratio(size: str | None) -> str | None:
    """The supported aspect ratio nearest to ``WIDTHxHEIGHT`` (None for ``auto`` / none)."""
    if size is None or size == "auto":
        return None
    width, _, height = size.partition("x")
    wanted = math.log(int(width) / int(height))

    def distance(ratio: str) -> float:
        w, _, h = ratio.partition(":")
        return abs(math.log(int(w) / int(h)) - wanted)

    return min(_RATIOS, key=distance)


def image_config(request: ImageRequest) -> types.GenerateContentConfig:
    ratio = aspect_ratio(request.size)
    return types.GenerateContentConfig(
        response_modalities=["IMAGE"],
        image_config=None if ratio is None else types.ImageConfig(aspect_ratio=ratio),
        http_options=_http_options(request.timeout),
    )


def _modality_tokens(details: Any, modality: str) -> int:
    for item in details or ():
        if item.modality is not None and str(item.modality.value) == modality:
            return int(item.token_count or 0)
    return 0


def image_usage(meta: types.GenerateContentResponseUsageMetadata | None) -> TokenUsage:
    if meta is None:
        return TokenUsage()
    thoughts = meta.thoughts_token_count or 0
    return TokenUsage(
        input_tokens=meta.prompt_token_count or 0,
        output_tokens=(meta.candidates_token_count or 0) + thoughts,
        reasoning_tokens=thoughts,
        input_image_tokens=_modality_tokens(meta.prompt_tokens_details, "IMAGE"),
        output_image_tokens=_modality_tokens(meta.candidates_tokens_details, "IMAGE"),
    )


def _no_image_reason(response: types.GenerateContentResponse) -> str:
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        return f"Gemini blocked the prompt: {feedback.block_reason.value}"
    candidates = response.candidates or []
    reason = candidates[0].finish_reason if candidates else None
    if reason is not None:
        return f"Gemini made no image (finish reason {reason.value})"
    return "Gemini made no image"


def image_result(
    response: types.GenerateContentResponse,
    request: ImageRequest,
    *,
    provider: str,
    model: str,
) -> ImageResult:
    images: list[dict[str, Any]] = []
    texts: list[str] = []
    mime = "image/png"
    for candidate in response.candidates or ():
        for part in (candidate.content.parts if candidate.content else None) or ():
            blob = part.inline_data
            if blob is not None and blob.data:
                mime = blob.mime_type or mime
                encoded = base64.b64encode(blob.data).decode()
                if request.response_format == "url":
                    images.append({"url": f"data:{mime};base64,{encoded}"})
                else:
                    images.append({"b64_json": encoded})
            elif part.text and not part.thought:
                texts.append(part.text)
    if not images:
        raise InvalidRequest(_no_image_reason(response), provider=provider, model=model)
    if texts:  # what the model said about its image: OpenAI's place for it
        for image in images:
            image["revised_prompt"] = "\n".join(texts)
    data: Mapping[str, Any] = {
        "created": int(time.time()),
        "data": images,
        "output_format": _EXTENSION.get(mime, "png"),
    }
    return ImageResult(dict(data), image_usage(response.usage_metadata))
