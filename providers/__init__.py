"""Provider adapters, one module each, imported only when a call first needs one.

``load_adapter_class("openai")`` imports ``gateway.providers.openai`` (and so the ``openai`` SDK) on
first use; ``import gateway`` and ``import providers`` import no SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.providers.base import AdapterFactory

__all__ = ["ADAPTER_PATHS", "load_adapter_class"]

#: Provider type -> (module, class). Every adapter has the same shape (see gateway.providers.base).
ADAPTER_PATHS: dict[str, tuple[str, str]] = {
    "openai": ("gateway.providers.openai", "OpenAIAdapter"),
    "anthropic": ("gateway.providers.anthropic", "AnthropicAdapter"),
    "gemini": ("gateway.providers.gemini", "GeminiAdapter"),
    "fake": ("gateway.providers.fake", "FakeAdapter"),
}


def load_adapter_class(provider_type: str) -> AdapterFactory:
    """Import and return the adapter class for a provider type."""
    module_name, class_name = ADAPTER_PATHS[provider_type]
    module = importlib.import_module(module_name)
    cls: AdapterFactory = getattr(module, class_name)
    return cls
