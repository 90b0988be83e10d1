"""One client for OpenAI, Anthropic and Gemini: YAML routing, fallback, one credit account.

    from gateway import Gateway

    gw = Gateway.from_config("gateway.yaml")
    resp = gw.chat.completions.create(model="smart", messages=[{"role": "user", "content": "Hi"}])

``import gateway`` is cheap and imports no provider SDK: the public names below load their
modules on first access (PEP 562), and each SDK is imported when a call first uses it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gateway._lazy import lazy_exports

# A library logs, the application decides where records go: without this, Python's "last
# resort" handler prints the gateway's WARNINGs (breaker changes) to an app's stderr.
logging.getLogger("gateway").addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from gateway import errors
    from gateway._attempts import Attempt, GatewayInfo
    from gateway._client import AsyncGateway, Gateway
    from gateway._clock import Clock, SystemClock
    from gateway._streams import AsyncGatewayStream, GatewayStream
    from gateway.config import GatewayConfig, load_config
    from gateway.errors import (
        AllProvidersFailed,
        AuthenticationFailed,
        ConfigError,
        ContextTooLong,
        GatewayError,
        InsufficientCredits,
        InvalidRequest,
        ProviderError,
        ProviderUnavailable,
        RateLimited,
        SpendLimitExceeded,
    )
    from gateway.keys import ApiKey, AsyncKeys, Keys, NewKey
    from gateway.providers.base import TokenUsage

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "errors": "gateway.errors",
    "Attempt": "gateway._attempts",
    "GatewayInfo": "gateway._attempts",
    "AsyncGateway": "gateway._client",
    "Gateway": "gateway._client",
    "Clock": "gateway._clock",
    "SystemClock": "gateway._clock",
    "AsyncGatewayStream": "gateway._streams",
    "GatewayStream": "gateway._streams",
    "GatewayConfig": "gateway.config",
    "load_config": "gateway.config",
    "AllProvidersFailed": "gateway.errors",
    "AuthenticationFailed": "gateway.errors",
    "ConfigError": "gateway.errors",
    "ContextTooLong": "gateway.errors",
    "GatewayError": "gateway.errors",
    "InsufficientCredits": "gateway.errors",
    "InvalidRequest": "gateway.errors",
    "ProviderError": "gateway.errors",
    "ProviderUnavailable": "gateway.errors",
    "RateLimited": "gateway.errors",
    "SpendLimitExceeded": "gateway.errors",
    "ApiKey": "gateway.keys",
    "AsyncKeys": "gateway.keys",
    "Keys": "gateway.keys",
    "NewKey": "gateway.keys",
    "TokenUsage": "gateway.providers.base",
}

__all__ = [
    "AllProvidersFailed",
    "ApiKey",
    "AsyncGateway",
    "AsyncGatewayStream",
    "AsyncKeys",
    "Attempt",
    "AuthenticationFailed",
    "Clock",
    "ConfigError",
    "ContextTooLong",
    "Gateway",
    "GatewayConfig",
    "GatewayError",
    "GatewayInfo",
    "GatewayStream",
    "InsufficientCredits",
    "InvalidRequest",
    "Keys",
    "NewKey",
    "ProviderError",
    "ProviderUnavailable",
    "RateLimited",
    "SpendLimitExceeded",
    "SystemClock",
    "TokenUsage",
    "__version__",
    "errors",
    "load_config",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
