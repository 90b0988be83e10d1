"""Embeddings and images: the requests and results adapters speak, and which model can do what.

An adapter that makes embeddings has ``embed`` / ``aembed`` (:class:`EmbeddingAdapter`); one
that makes images has ``generate_images`` / ``agenerate_images`` (:class:`ImageAdapter`).
OpenAI, Gemini and the fake provider have both; Anthropic has neither (Claude makes no
embeddings or images).

:func:`refusal` says, before anything is held or sent, why a target cannot serve a call: the
provider has no such API, the model is not that kind of model (by its name: ``*embed*`` for
embeddings; ``gpt-image-*``, ``dall-e-*``, ``chatgpt-image-*``, ``*-image*`` for images), or
the request asks for what that provider cannot express. No SDK is imported here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from gateway.providers.base import TokenUsage

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "EMBEDDING_MIX_FIX",
    "EmbeddingAdapter",
    "EmbeddingRequest",
    "EmbeddingResult",
    "ImageAdapter",
    "ImageRequest",
    "ImageResult",
    "Operation",
    "embedding_mix",
    "estimate_embedding_tokens",
    "image_tokens",
    "model_kind",
    "refusal",
    "worst_case_image_tokens",
]

Operation = Literal["chat", "embeddings", "images"]

#: The size OpenAI makes when a call names none (dall-e-2, dall-e-3).
DEFAULT_IMAGE_SIZE = "1024x1024"
#: Output tokens of one 1024x1024 image at each quality (OpenAI's GPT Image models; other
#: sizes scale with their area). ``auto`` and an unnamed quality may be ``high``.
_IMAGE_TOKENS = {"low": 272, "medium": 1056, "standard": 1056, "high": 4160, "hd": 4160}
#: A quality newer than this table (``xhigh``, ``max``) is held at twice ``high``.
_UNKNOWN_QUALITY_TOKENS = 2 * 4160
#: The largest size OpenAI's ``auto`` picks.
_AUTO_SIZE = (1536, 1024)
#: Most tokens one image costs on Gemini (gemini-3-pro-image at 4K: 2,000; 2.5 Flash: 1,290).
_GEMINI_IMAGE_TOKENS = 2000
_IMAGE_PREFIXES = ("dall-e", "gpt-image", "chatgpt-image", "imagen")


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    """What to embed, validated: always a list of texts, or a list of token-id lists."""

    inputs: list[str] | list[list[int]]
    #: Length of each vector, when the caller (or the target's ``dimensions:``) asks.
    dimensions: int | None = None
    user: str | None = None
    #: Seconds this try may take in total.
    timeout: float | None = None

    @property
    def token_ids(self) -> bool:
        """The inputs are token ids (OpenAI's ``input=[[1, 2, 3]]``), not text."""
        return bool(self.inputs) and not isinstance(self.inputs[0], str)


@dataclass(slots=True)
class EmbeddingResult:
    """One vector per input, in the inputs' order, and the usage to bill."""

    vectors: list[list[float]]
    usage: TokenUsage
    #: The model that made the vectors, as the provider names it.
    model: str
    #: The provider reported no usage and ``usage`` is the gateway's estimate of the input.
    estimated: bool = False


@dataclass(frozen=True, slots=True)
class ImageRequest:
    """An image generation request in OpenAI's terms, validated."""

    prompt: str
    n: int = 1
    #: ``WIDTHxHEIGHT`` or ``auto``; None: the model's default.
    size: str | None = None
    #: ``standard`` / ``hd`` (DALL-E 3), ``low`` / ``medium`` / ``high`` / ``auto`` (GPT Image).
    quality: str | None = None
    #: ``url`` or ``b64_json``; None: the model's default.
    response_format: str | None = None
    style: str | None = None
    background: str | None = None
    output_format: str | None = None
    user: str | None = None
    timeout: float | None = None


@dataclass(slots=True)
class ImageResult:
    """The generated images as OpenAI's ``ImagesResponse`` JSON (``created``, ``data`` with
    ``b64_json`` / ``url`` / ``revised_prompt``, and ``size``, ``quality``, ``output_format``,
    ``background`` when known; OpenAI's own ``usage`` when it sent one), and the usage to
    bill."""

    data: dict[str, Any]
    usage: TokenUsage = field(default_factory=TokenUsage)

    @property
    def images(self) -> int:
        """How many images came back."""
        return len(self.data.get("data") or ())


@runtime_checkable
class EmbeddingAdapter(Protocol):
    """An adapter that makes embeddings."""

    name: str

    def embed(self, model: str, request: EmbeddingRequest) -> EmbeddingResult:
        """Embed with the sync SDK client."""
        ...

    async def aembed(self, model: str, request: EmbeddingRequest) -> EmbeddingResult:
        """Embed with the async SDK client."""
        ...


@runtime_checkable
class ImageAdapter(Protocol):
    """An adapter that generates images."""

    name: str

    def generate_images(self, model: str, request: ImageRequest) -> ImageResult:
        """Generate with the sync SDK client."""
        ...

    async def agenerate_images(self, model: str, request: ImageRequest) -> ImageResult:
        """Generate with the async SDK client."""
        ...


def model_kind(model: str) -> Operation:
    """What a model is for, by its name: ``embeddings``, ``images`` or ``chat``."""
    name = model.lower().rsplit("/", 1)[-1]
    if "embed" in name:
        return "embeddings"
    if name.startswith(_IMAGE_PREFIXES) or "-image" in name:
        return "images"
    return "chat"


_EXAMPLES = {
    "embeddings": "openai/text-embedding-3-small or gemini/gemini-embedding-001",
    "images": "openai/gpt-image-1, openai/dall-e-3 or gemini/gemini-2.5-flash-image",
}


def refusal(
    provider_type: str,
    model: str,
    operation: Operation,
    request: EmbeddingRequest | ImageRequest | None = None,
) -> str | None:
    """Why ``provider_type``/``model`` cannot serve this ``operation`` (and ``request``), in
    words that name the fix; None when it can. Chat is not checked here."""
    if operation == "chat":
        return None
    if provider_type == "anthropic":
        return (
            f"Anthropic has no {operation} API; route {operation} to a model that makes "
            f"them, e.g. {_EXAMPLES[operation]}"
        )
    if provider_type != "fake" and model_kind(model) != operation:
        return (
            f"'{model}' is not an {'embedding' if operation == 'embeddings' else 'image'} "
            f"model; use one, e.g. {_EXAMPLES[operation]}"
        )
    if provider_type == "gemini":
        if isinstance(request, EmbeddingRequest) and request.token_ids:
            return "input as token ids has no equivalent on Gemini; send the texts"
        if isinstance(request, ImageRequest):
            return _gemini_image_refusal(request)
    return None


def _gemini_image_refusal(request: ImageRequest) -> str | None:
    if request.n > 1:
        return (
            f"n={request.n} has no equivalent on Gemini image models (one image per call); "
            "ask for one image per call"
        )
    for name, allowed in (("style", None), ("background", "auto"), ("output_format", "png")):
        value = getattr(request, name)
        if value is not None and value != allowed:
            return f"{name}={value!r} has no equivalent on Gemini; leave it out for this target"
    return None


def estimate_embedding_tokens(request: EmbeddingRequest) -> int:
    """An upper-leaning estimate of an embeddings request's tokens, without a tokenizer: three
    characters a token (tokenizers average nearer four), a token id one. What a hold is
    sized from, and what a provider that reports no usage is charged."""
    return sum(
        len(item) // 3 + 1 if isinstance(item, str) else len(item) for item in request.inputs
    )


def embedding_mix(targets: Sequence[tuple[str, str, int | None]]) -> str | None:
    """Why these embedding targets (``(label, model, declared dimensions)`` each) must not
    fall back to one another, or None when they may: they are one model (at any providers),
    or every one declares the same ``dimensions`` (the config saying their vectors mix)."""
    if len({model for _, model, _ in targets}) <= 1:
        return None
    declared = {dimensions for _, _, dimensions in targets}
    if len(declared) == 1 and None not in declared:
        return None
    labels = ", ".join(label for label, _, _ in targets)
    return (
        f"its targets are different embedding models ({labels}) and vectors of different "
        "models are not comparable, so a call must not fall back from one to another"
    )


#: The fix :func:`embedding_mix` problems name.
EMBEDDING_MIX_FIX = (
    "give the route one embedding model (the same model at several providers may fall back), "
    "or, if your vectors may mix, declare the same dimensions: on every target, e.g. "
    "{model: openai/text-embedding-3-large, dimensions: 1024}"
)


def _area(size: str | None) -> tuple[int, int]:
    if size is None or size == "auto":
        return _AUTO_SIZE
    width, _, height = size.partition("x")
    return int(width), int(height)


def image_tokens(size: str | None, quality: str | None) -> int:
    """Output tokens of one image on OpenAI's GPT Image models (the fake provider reports the
    same): 272 / 1,056 / 4,160 at low / medium / high for 1024x1024, other sizes in
    proportion to their area (rounded up). ``auto`` and no size: 1536x1024; ``auto`` and no
    quality: ``high``; a quality not in the table: twice ``high``."""
    per_megapixel = (
        _IMAGE_TOKENS["high"]
        if quality is None or quality == "auto"
        else _IMAGE_TOKENS.get(quality, _UNKNOWN_QUALITY_TOKENS)
    )
    width, height = _area(size)
    return math.ceil(per_megapixel * width * height / (1024 * 1024))


def worst_case_image_tokens(provider_type: str, size: str | None, quality: str | None) -> int:
    """The most output tokens one image can cost, for a hold."""
    if provider_type == "gemini":
        return _GEMINI_IMAGE_TOKENS
    return image_tokens(size, quality)
