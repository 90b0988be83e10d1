"""OpenAI embeddings and images: requests for the SDK, responses and usage back. No I/O.

Embeddings (``embeddings.create``): ``input``, ``dimensions``, ``user`` as given; the SDK asks
for base64 and decodes it into floats itself. Usage: ``prompt_tokens`` is the input.

Images (``images.generate``): ``prompt``, ``n``, ``size``, ``quality``, ``style``,
``background``, ``output_format``, ``user`` as given. ``response_format`` goes only to DALL-E
models: GPT Image models refuse it and always answer base64, so ``response_format="url"``
there is answered with a ``data:`` URL made from it. Usage (GPT Image models; DALL-E reports
none and is priced per image): ``input_tokens`` with ``input_tokens_details.image_tokens``
(images to edit), ``output_tokens`` with ``output_tokens_details.image_tokens`` (all output
tokens are image tokens when the details are missing).
"""

from __future__ import annotations

from typing import Any

from gateway.errors import ProviderUnavailable
from gateway.providers.base import TokenUsage
from gateway.providers.media import EmbeddingRequest, EmbeddingResult, ImageRequest, ImageResult

__all__ = [
    "embedding_kwargs",
    "embedding_result",
    "image_kwargs",
    "image_result",
    "image_usage",
]

#: MIME type of each ``output_format``, for ``data:`` URLs.
_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}


def embedding_kwargs(model: str, request: EmbeddingRequest) -> dict[str, Any]:
    """The keyword arguments of ``embeddings.create`` (without the timeout)."""
    kwargs: dict[str, Any] = {"model": model, "input": request.inputs}
    if request.dimensions is not None:
        kwargs["dimensions"] = request.dimensions
    if request.user is not None:
        kwargs["user"] = request.user
    return kwargs


def embedding_result(
    response: Any, request: EmbeddingRequest, *, provider: str, model: str
) -> EmbeddingResult:
    """The SDK's ``CreateEmbeddingResponse`` as vectors in the inputs' order and usage."""
    data = sorted(response.data, key=lambda item: item.index)
    if len(data) != len(request.inputs):
        raise ProviderUnavailable(
            f"the response has {len(data)} vectors for {len(request.inputs)} inputs",
            provider=provider,
            model=model,
        )
    usage = response.usage
    tokens = usage.prompt_tokens if usage is not None else 0
    return EmbeddingResult(
        [list(item.embedding) for item in data],
        TokenUsage(input_tokens=tokens),
        response.model or model,
    )


def _is_dall_e(model: str) -> bool:
    return model.startswith("dall-e")


def image_kwargs(model: str, request: ImageRequest) -> dict[str, Any]:
    """The keyword arguments of ``images.generate`` (without the timeout)."""
    kwargs: dict[str, Any] = {"model": model, "prompt": request.prompt, "n": request.n}
    for name in ("size", "quality", "style", "background", "output_format", "user"):
        value = getattr(request, name)
        if value is not None:
            kwargs[name] = value
    if request.response_format is not None and _is_dall_e(model):
        kwargs["response_format"] = request.response_format
    return kwargs


def image_usage(usage: Any) -> TokenUsage:
    """OpenAI's image ``usage`` JSON as TokenUsage (zeros when there is none: DALL-E)."""
    if not isinstance(usage, dict):
        return TokenUsage()
    input_details = usage.get("input_tokens_details") or {}
    output_details = usage.get("output_tokens_details")
    output = usage.get("output_tokens") or 0
    output_images = (
        output if not isinstance(output_details, dict) else output_details.get("image_tokens") or 0
    )
    return TokenUsage(
        input_tokens=usage.get("input_tokens") or 0,
        output_tokens=output,
        input_image_tokens=input_details.get("image_tokens") or 0,
        output_image_tokens=output_images,
    )


def image_result(
    body: dict[str, Any], request: ImageRequest, *, provider: str, model: str
) -> ImageResult:
    """An ``images.generate`` response body as the gateway's result (``data:`` URLs for
    ``response_format="url"`` on GPT Image models)."""
    images = body.get("data")
    if not isinstance(images, list) or not all(isinstance(i, dict) for i in images):
        raise ProviderUnavailable(
            "the response has no list of images", provider=provider, model=model
        )
    if request.response_format == "url" and not _is_dall_e(model):
        mime = _MIME.get(str(body.get("output_format") or "png"), "image/png")
        body = {
            **body,
            "data": [
                {k: v for k, v in image.items() if k != "b64_json"}
                | {"url": f"data:{mime};base64,{image['b64_json']}"}
                if image.get("b64_json")
                else image
                for image in images
            ],
        }
    return ImageResult(body, image_usage(body.get("usage")))
