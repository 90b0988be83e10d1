"""Shared fixtures."""

from __future__ import annotations

import pytest

from gateway.config import ProviderConfig

#: A fake API key that must never show up in any error, repr or log line.
CANARY_KEY = "sk-canary-7f3a9c1e5b2d4f6a8c0e"


@pytest.fixture
def provider_config() -> type[ProviderConfig]:
    return ProviderConfig
