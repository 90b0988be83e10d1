"""The app in-process (``create_app`` over httpx2's ASGI transport), the error table of
``gateway/server/errors.py`` class by class, the ``server:`` config section, and the layering:
``import gateway`` never imports Starlette, and no library module imports the server."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest

from gateway import errors
from gateway.config import parse_config
from gateway.server import create_app
from gateway.server.errors import api_error

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "admin-in-process-0123456789"
NO_CREDITS = {
    "providers": {"fake": {}},
    "routes": {"r": {"targets": ["fake/m"]}},
    "server": {"admin_key": ADMIN},
}
HELLO = [{"role": "user", "content": "Hi"}]


def test_import_gateway_imports_no_web_framework() -> None:
    code = (
        "import sys, json, gateway\n"
        "from gateway import Gateway, AsyncGateway\n"
        "Gateway(config={'providers': {'fake': {}}, 'routes': {'r': {'targets': ['fake/m']}}})\n"
        "print(json.dumps([m for m in ('starlette', 'uvicorn', 'gateway.server')"
        " if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert json.loads(out.stdout) == []


def test_no_library_module_imports_the_server() -> None:
    for path in (ROOT / "gateway").rglob("*.py"):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(("gateway/server/", "gateway/cli/serve.py")):
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=relative)):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(
                n.startswith(("gateway.server", "starlette", "uvicorn")) for n in names
            ), relative


def test_the_server_section_is_checked_like_the_rest_of_the_config() -> None:
    settings = parse_config({"server": {"admin_key": "k" * 16, "max_body_bytes": 4096}}).server
    assert settings is not None and settings.max_body_bytes == 4096
    assert "k" * 16 not in repr(settings)
    for bad, words in [
        ({"admin_key": "too-short"}, "at least 16 characters"),
        ({"max_body_bytes": 10}, r"server\.max_body_bytes"),
        ({"drain_timeout_s": 0}, r"server\.drain_timeout_s"),
        ({"admin_kee": "k" * 16}, "unknown key 'admin_kee'"),
    ]:
        with pytest.raises(errors.ConfigError, match=words):
            parse_config({"server": bad})
    with pytest.raises(errors.ConfigError, match="GATEWAY_ADMIN_KEY is not set"):
        parse_config("server: {admin_key: ${GATEWAY_ADMIN_KEY}}\n", env={})


async def call(app: Any, method: str, path: str, key: str | None = ADMIN, **kw: Any) -> Any:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    headers.update(kw.pop("headers", {}))
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://gw") as http:
        return await http.request(method, path, headers=headers, **kw)


async def test_without_a_credit_store_only_the_admin_key_is_known() -> None:
    app = create_app(NO_CREDITS)
    answer = await call(app, "POST", "/v1/chat/completions", json={"model": "r", "messages": HELLO})
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == "[fake/m] You said: Hi"
    assert answer.headers["x-gateway-cost"]  # priced, not charged
    refused = await call(app, "GET", "/v1/models", key="gk_" + "a" * 43)
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "invalid_api_key")
    no_account = await call(app, "GET", "/v1/credits")
    assert (no_account.status_code, no_account.json()["error"]["code"]) == (
        404,
        "no_credit_account",
    )
    await app.state.server.close()


def test_a_bad_config_is_refused_when_the_app_is_made(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match=r"routes\.r\.strategy"):
        create_app(
            {"providers": {"fake": {}}, "routes": {"r": {"targets": ["fake/m"], "strategy": "x"}}}
        )
    with pytest.raises(errors.ConfigError, match="file not found"):
        create_app(tmp_path / "missing.yaml")


def _attempt_error() -> errors.AllProvidersFailed:
    from gateway._attempts import Attempt

    failure = errors.ProviderUnavailable(
        "HTTP 503", provider="openai", model="gpt-4o", status_code=503
    )
    attempt = Attempt("openai", "gpt-4o", "error", 0.25, failure, 503)
    return errors.AllProvidersFailed("smart", [attempt])


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (errors.InvalidApiKey("key_1 is revoked", reason="revoked"), 401, "invalid_api_key"),
        (errors.KeyNotAllowed("no", key_id="key_1", route="smart"), 404, "model_not_found"),
        (errors.KeyRateLimited("slow down", key_id="key_1", retry_after=12.5), 429, "rate_limited"),
        (errors.InsufficientCredits("no credit"), 402, "insufficient_credits"),
        (errors.SpendLimitExceeded("cap", limit="daily"), 429, "spend_limit_exceeded"),
        (errors.InvalidRequest("bad", provider="gateway"), 400, "invalid_request"),
        (errors.ContextTooLong("long", provider="openai"), 400, "context_length_exceeded"),
        (_attempt_error(), 502, "all_providers_failed"),
        (errors.AuthenticationFailed("bad key", provider="openai"), 502, "all_providers_failed"),
        (errors.UnknownAccount("existing accounts: a, b"), 404, "account_not_found"),
        (errors.IdempotencyConflict("other amount"), 409, "idempotency_conflict"),
        (
            errors.CreditStoreUnavailable("postgresql://db.internal:5432 refused"),
            503,
            "credit_store_unavailable",
        ),
        (errors.ConfigError("oops", file="/etc/secret/gateway.yaml"), 500, "gateway_misconfigured"),
        (RuntimeError("/srv/app/gateway/x.py line 3"), 500, "internal_error"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_each_error_class_has_its_status_and_code(
    error: BaseException, status: int, code: str
) -> None:
    mapped = api_error(error)
    assert (mapped.status, mapped.code) == (status, code)
    body = json.dumps(mapped.body())
    for hidden in ("/etc/secret", "db.internal", "/srv/app", "existing accounts"):
        assert hidden not in body
    if isinstance(error, errors.KeyRateLimited):
        assert mapped.headers["retry-after"] == "13"
    if isinstance(error, errors.AllProvidersFailed):
        assert mapped.body()["error"]["attempts"] == [
            {
                "provider": "openai",
                "model": "gpt-4o",
                "outcome": "error",
                "error": "ProviderUnavailable",
                "status": 503,
                "seconds": 0.25,
            }
        ]


async def test_an_incoming_traceparent_is_the_parent_of_the_call_span() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from gateway.telemetry._otel import OpenTelemetry

    app = create_app({**NO_CREDITS, "telemetry": {"opentelemetry": True}})
    gw = app.state.server.gateway
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    gw._core.telemetry = OpenTelemetry(  # this test's providers, not the global ones
        gw.config, gw._core.clock, tracer_provider=tracer_provider, meter_provider=MeterProvider()
    )
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    body = {"model": "r", "messages": HELLO}
    for stream in (False, True):
        answer = await call(
            app,
            "POST",
            "/v1/chat/completions",
            json={**body, "stream": stream},
            headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
        )
        assert answer.status_code == 200
    untraced = await call(app, "POST", "/v1/chat/completions", json=body)
    assert untraced.status_code == 200
    calls = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert len(calls) == 3
    for span in calls[:2]:
        assert span.context.trace_id == int(trace_id, 16)
        assert span.parent is not None and span.parent.span_id == 0x00F067AA0BA902B7
    assert calls[2].context.trace_id != int(trace_id, 16) and calls[2].parent is None
    await app.state.server.close()
