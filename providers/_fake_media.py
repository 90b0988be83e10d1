"""The fake provider's embeddings and images: deterministic, offline, stdlib only.

Vectors are unit vectors drawn from SHAKE-256 of the model and the input, so the same text
gives the same vector on the same model and a different one on another model (as real models
do: vectors of different models are not comparable). An image is a small PNG (1/64 of the
asked size on each side, a colour and a stripe from the prompt's hash), made with ``zlib``.
Usage: one token per four characters of input; images report the output tokens OpenAI's GPT
Image models would (:func:`~gateway.providers.media.image_tokens`, ``medium`` unless another
quality is asked).
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
import time
import zlib
from typing import Any

from gateway.providers.base import TokenUsage
from gateway.providers.media import (
    DEFAULT_IMAGE_SIZE,
    EmbeddingRequest,
    EmbeddingResult,
    ImageRequest,
    ImageResult,
    image_tokens,
)
from gateway.testing._mock_script import estimate_tokens

__all__ = ["fake_embeddings", "fake_images", "fake_png"]

#: Vector length per model when a call names none (the real models' defaults), else 256.
_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
    "gemini-embedding-001": 3072,
}
_DEFAULT_DIMENSIONS = 256
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _vector(model: str, text: str, dimensions: int) -> list[float]:
    raw = hashlib.shake_256(f"{model}\x00{text}".encode()).digest(2 * dimensions)
    values = [(n - 32767.5) / 32767.5 for n in struct.unpack(f"<{dimensions}H", raw)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _text(item: str | list[int]) -> str:
    return item if isinstance(item, str) else " ".join(map(str, item))


def fake_embeddings(
    model: str, request: EmbeddingRequest, usage: TokenUsage | None = None
) -> EmbeddingResult:
    """One deterministic unit vector per input; ``usage`` (scripted) or one token per four
    characters (per token id for token-id input)."""
    dimensions = request.dimensions or _DIMENSIONS.get(model, _DEFAULT_DIMENSIONS)
    vectors = [_vector(model, _text(item), dimensions) for item in request.inputs]
    if usage is None:
        tokens = sum(
            estimate_tokens(item) if isinstance(item, str) else max(1, len(item))
            for item in request.inputs
        )
        usage = TokenUsage(input_tokens=tokens)
    return EmbeddingResult(vectors, usage, model)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def fake_png(prompt: str, width: int = 16, height: int = 16) -> bytes:
    """A valid RGB PNG of ``width`` x ``height`` pixels: a colour and a diagonal stripe
    chosen by the prompt."""
    seed = hashlib.sha256(prompt.encode()).digest()
    background, stripe = seed[0:3], seed[3:6]
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type: none
        for x in range(width):
            rows += stripe if (x + y) % 8 < 2 else background
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        _PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + _chunk(b"IEND", b"")
    )


def _png_size(size: str | None) -> tuple[int, int]:
    width, _, height = (DEFAULT_IMAGE_SIZE if size is None or size == "auto" else size).partition(
        "x"
    )
    return max(1, int(width) // 64), max(1, int(height) // 64)


def fake_images(request: ImageRequest, usage: TokenUsage | None = None) -> ImageResult:
    """``request.n`` PNGs in OpenAI's ``ImagesResponse`` shape, as base64 (a ``data:`` URL for
    ``response_format="url"``), with GPT Image's usage shape."""
    size = request.size if request.size not in (None, "auto") else DEFAULT_IMAGE_SIZE
    quality = request.quality if request.quality not in (None, "auto") else "medium"
    images: list[dict[str, Any]] = []
    for i in range(request.n):
        encoded = base64.b64encode(fake_png(f"{request.prompt}#{i}", *_png_size(size))).decode()
        if request.response_format == "url":
            images.append({"url": f"data:image/png;base64,{encoded}"})
        else:
            images.append({"b64_json": encoded})
    if usage is None:
        per_image = image_tokens(size, quality)
        usage = TokenUsage(
            input_tokens=estimate_tokens(request.prompt),
            output_tokens=per_image * request.n,
            output_image_tokens=per_image * request.n,
        )
    data = {
        "created": int(time.time()),
        "data": images,
        "size": size,
        "quality": quality,
        "output_format": "png",
        "background": "opaque",
    }
    return ImageResult(data, usage)
