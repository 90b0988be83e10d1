"""The package surface: cheap import, no SDK imported eagerly, a pinned public API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gateway

SDKS = ("openai", "anthropic", "google.genai", "google.generativeai")


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout


def test_import_gateway_imports_no_provider_sdk() -> None:
    out = run_python(
        f"import sys, json, gateway\nprint(json.dumps([m for m in {SDKS!r} if m in sys.modules]))"
    )
    assert json.loads(out) == []


def test_building_a_gateway_imports_no_provider_sdk() -> None:
    out = run_python(
        "import sys, json\n"
        "from gateway import Gateway\n"
        "gw = Gateway(config={'providers': {'openai': {'api_key': 'k-1234'}, 'fake': {}},"
        " 'routes': {'r': {'targets': ['openai/gpt-4o']}}})\n"
        f"print(json.dumps([m for m in {SDKS!r} if m in sys.modules]))"
    )
    assert json.loads(out) == []


def test_a_gateway_without_credits_loads_no_credit_layer() -> None:
    layers = ("ledger", "store", "sqlite_store", "service", "account", "spender", "reports")
    out = run_python(
        "import sys, json\n"
        "from gateway import Gateway\n"
        "config = {'providers': {'fake': {}}, 'routes': {'r': {'targets': ['fake/m']}}}\n"
        "gw = Gateway(config=config)\n"
        "gw.chat.completions.create(model='r', messages=[{'role': 'user', 'content': 'hi'}])\n"
        f"print(json.dumps([m for m in {layers!r} if 'gateway.credits.' + m in sys.modules]))"
    )
    assert json.loads(out) == []


def test_sdk_is_imported_only_for_the_provider_a_call_uses() -> None:
    out = run_python(
        "import sys, json\n"
        "from gateway import Gateway\n"
        "gw = Gateway(config={'providers': {'anthropic': {'api_key': 'k-1234'}, 'fake': {}},"
        " 'routes': {'r': {'targets': ['fake/m']}}})\n"
        "gw.chat.completions.create(model='r', messages=[{'role': 'user', 'content': 'x'}])\n"
        f"print(json.dumps([m for m in {SDKS!r} if m in sys.modules]))"
    )
    # The response type is the OpenAI SDK's own ChatCompletion, so its types load; the
    # providers the call did not use stay unimported.
    assert json.loads(out) == ["openai"]


def test_public_names_are_pinned() -> None:
    assert gateway.__all__ == [
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
    for name in gateway.__all__:
        assert getattr(gateway, name) is not None


def test_error_classes_all_derive_from_gateway_error() -> None:
    from gateway import errors

    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, errors.GatewayError), name


def test_the_distribution_installs_one_top_level_name() -> None:
    """The adapters live in the repo's providers/ folder but install as gateway.providers:
    no generic top-level ``providers`` module to collide with an application's own."""
    from importlib.metadata import distribution

    top_level = distribution("llm-gateway-sdk").read_text("top_level.txt") or ""
    assert top_level.split() == ["gateway"]
    import gateway.providers.base

    assert gateway.providers.base.TokenUsage is gateway.TokenUsage


def test_an_application_package_named_providers_does_not_shadow_ours(tmp_path: Path) -> None:
    mine = tmp_path / "providers"
    mine.mkdir()
    (mine / "__init__.py").write_text("WHOSE = 'the application'\n")
    code = (
        "import providers, gateway\n"
        "gw = gateway.Gateway(config={'providers': {'fake': {}}, "
        "'routes': {'r': {'targets': ['fake/m']}}})\n"
        "hi = [{'role': 'user', 'content': 'hi'}]\n"
        "resp = gw.chat.completions.create(model='r', messages=hi)\n"
        "print(providers.WHOSE, '|', resp.gateway.provider)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,  # the application's folder comes first on sys.path
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "the application | fake"
