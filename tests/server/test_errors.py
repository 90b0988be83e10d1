"""Every error status of the server produced for real, over raw HTTP: OpenAI's error shape,
the documented status and code, no secret, stack trace or path in a body; bad input at the
HTTP edge is refused with nothing held and nothing written."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest

from gateway.credits.store import open_store
from tests.server._serve import ADMIN_KEY, Served, serve
from tests.server._upstream import Upstream
from tests.server.conftest import fund, make_key, server_config

pytestmark = pytest.mark.slow
HELLO = [{"role": "user", "content": "Hello"}]
#: Limits of this module's server: small, so that the tests stay small.
MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def config(module_dir: Path, upstream: Upstream) -> dict[str, Any]:
    config = server_config(
        f"sqlite:///{module_dir / 'credits.db'}",
        upstream,
        max_body_bytes=MAX_BODY,
        body_timeout_s=1,
    )
    fund(config)
    fund(config, Decimal("0.0001"), account="poor")
    fund(config, Decimal("10"), account="capped")
    fund(config, Decimal("10"), account="untouched")
    fund(config, Decimal("10"), account="team")
    from gateway import Gateway

    with Gateway(config=config) as gw:
        gw.credits.account("capped").set_limits(daily=Decimal("0.001"))
    return config


@pytest.fixture(scope="module")
def keys(config: dict[str, Any]) -> dict[str, str]:
    """Keys of every kind, made before the server starts."""
    from gateway import Gateway
    from gateway.testing.clock import ManualClock

    made = {
        "team": make_key(config, "team"),
        "poor": make_key(config, "poor"),
        "only-other": make_key(config, "team", routes=["other"]),
        "rpm": make_key(config, "team", rpm=1),
        "daily": make_key(config, "team", daily_limit=Decimal("0.001")),
        "revoked": make_key(config, "team"),
    }
    with Gateway(config=config) as gw:
        revoked = gw.keys.authenticate(made["revoked"])
        gw.keys.revoke(revoked.id)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    with Gateway(config=config, clock=ManualClock(yesterday)) as gw:
        made["expired"] = gw.keys.create(
            account="team", name="expired", expires_at=yesterday + timedelta(hours=1)
        ).key
    return made


@pytest.fixture(scope="module")
def server(config: dict[str, Any], module_dir: Path) -> Iterator[Served]:
    served = serve(config, module_dir)
    yield served
    code, err = served.stop()
    assert code == 0, err


def entries(config: dict[str, Any], account: str) -> list[Any]:
    store = open_store(config["credits"]["store"])
    try:
        return store.entries(account)
    finally:
        store.close()


def check_shape(
    response: httpx2.Response, status: int, code: str, module_dir: Path
) -> dict[str, Any]:
    """The OpenAI error shape with this status and code, and nothing that must not be there."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-gateway-request-id"].startswith("gw-")
    body = response.json()
    error = body["error"]
    assert set(error) >= {"message", "type", "code", "param"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    text = response.text
    for forbidden in (ADMIN_KEY, "sk-upstream-test-0000", "Traceback", str(module_dir), ".py"):
        assert forbidden not in text, f"{forbidden!r} in {text}"
    return error


def chat(server: Served, body: Any, key: str | None = ADMIN_KEY, **headers: str) -> httpx2.Response:
    with server.client(key, **headers) as http:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return http.post("/v1/chat/completions", content=content)


def test_no_key_or_a_wrong_one_is_401(
    server: Served, module_dir: Path, keys: dict[str, str]
) -> None:
    check_shape(
        chat(server, {"model": "r", "messages": HELLO}, key=None),
        401,
        "invalid_api_key",
        module_dir,
    )
    team = keys["team"]
    near_miss = team[:-1] + ("x" if team[-1] != "x" else "y")
    for presented in ("nope", "gk_" + "A" * 43, near_miss):
        with server.client(None, **{"x-api-key": presented}) as http:
            answer = http.get("/v1/models")
        check_shape(answer, 401, "invalid_api_key", module_dir)
        assert presented not in answer.text


def test_out_of_credit_is_402(server: Served, module_dir: Path) -> None:
    answer = chat(server, {"model": "r", "messages": HELLO}, **{"x-gateway-account": "poor"})
    error = check_shape(answer, 402, "insufficient_credits", module_dir)
    assert "No provider was called" in error["message"]
    assert answer.headers["x-should-retry"] == "false"


def test_an_account_cap_is_429_spend_limit_exceeded(server: Served, module_dir: Path) -> None:
    answer = chat(server, {"model": "r", "messages": HELLO}, **{"x-gateway-account": "capped"})
    check_shape(answer, 429, "spend_limit_exceeded", module_dir)


def test_unknown_model_is_404(server: Served, module_dir: Path) -> None:
    for model in ("nope", "nobody/gpt-4o", ""):
        error = check_shape(
            chat(server, {"model": model, "messages": HELLO}), 404, "model_not_found", module_dir
        )
        assert error["param"] == "model"


def test_a_direct_call_to_a_model_without_a_price_is_404(server: Served, module_dir: Path) -> None:
    answer = chat(server, {"model": "up/no-price-known", "messages": HELLO})
    error = check_shape(answer, 404, "model_not_found", module_dir)
    assert "no price" in error["message"] and "pricing:" not in error["message"]


def test_every_provider_failing_is_502_with_the_attempts(server: Served, module_dir: Path) -> None:
    answer = chat(server, {"model": "broken", "messages": HELLO})
    error = check_shape(answer, 502, "all_providers_failed", module_dir)
    assert [(a["provider"], a["model"], a["error"]) for a in error["attempts"]] == [
        ("down", "m", "ProviderConnectionError")
    ]
    assert answer.headers["x-gateway-attempts"] == "1"


def test_every_try_rate_limited_is_429_with_the_providers_wait(
    server: Served, module_dir: Path
) -> None:
    """The same status and code as the in-process client (one shared table): the caller's
    SDK sees a 429 it can wait out, not a 502."""
    answer = chat(server, {"model": "limited", "messages": HELLO})
    error = check_shape(answer, 429, "rate_limited", module_dir)
    assert answer.headers["retry-after"] == "7"
    assert [(a["provider"], a["error"]) for a in error["attempts"]] == [("up", "RateLimited")]
    assert answer.headers["x-gateway-attempts"] == "1"


def test_a_provider_refusing_the_gateways_own_key_is_502_not_401(
    server: Served, module_dir: Path
) -> None:
    """A 401 would tell the caller's SDK its gateway key is wrong; it is the operator's."""
    answer = chat(server, {"model": "badkey", "messages": HELLO})
    error = check_shape(answer, 502, "all_providers_failed", module_dir)
    assert "operator" in error["message"] and "sk-" not in error["message"]
    assert [(a["provider"], a["error"]) for a in error["attempts"]] == [
        ("up", "AuthenticationFailed")
    ]


def test_a_prompt_too_long_is_400_context_length_exceeded(server: Served, module_dir: Path) -> None:
    check_shape(
        chat(server, {"model": "long", "messages": HELLO}),
        400,
        "context_length_exceeded",
        module_dir,
    )


def test_bad_embeddings_and_image_requests(server: Served, module_dir: Path) -> None:
    with server.client() as http:
        cases = [
            ("/v1/embeddings", {"model": "embed"}, 400, "invalid_request", "'input' is required"),
            (
                "/v1/embeddings",
                {"model": "embed", "input": "a", "tags": {}},
                400,
                "invalid_request",
                "unknown parameter 'tags'",
            ),
            ("/v1/embeddings", {"model": "nope", "input": "a"}, 404, "model_not_found", ""),
            (
                "/v1/images/generations",
                {"model": "draw", "prompt": ["a"]},
                400,
                "invalid_request",
                "'prompt' must be a string",
            ),
        ]
        for path, body, status, code, words in cases:
            error = check_shape(http.post(path, json=body), status, code, module_dir)
            assert words in error["message"], (path, body, error)


def test_unknown_paths_and_methods(server: Served, module_dir: Path) -> None:
    with server.client() as http:
        check_shape(http.get("/v1/nothing"), 404, "not_found", module_dir)
        check_shape(http.get("/v1/chat/completions"), 405, "method_not_allowed", module_dir)


def test_revoked_and_expired_keys_are_401(
    server: Served, module_dir: Path, keys: dict[str, str]
) -> None:
    for kind in ("revoked", "expired"):
        answer = chat(server, {"model": "r", "messages": HELLO}, key=keys[kind])
        error = check_shape(answer, 401, "invalid_api_key", module_dir)
        assert kind in error["message"]
        assert keys[kind] not in answer.text


def test_a_key_revoked_while_the_server_runs_is_refused_at_once(
    server: Served, module_dir: Path, config: dict[str, Any]
) -> None:
    key = make_key(config, "team", name="short-lived")
    assert chat(server, {"model": "r", "messages": HELLO}, key=key).status_code == 200
    with server.client() as http:
        (listed,) = [
            k for k in http.get("/v1/admin/keys").json()["data"] if k["name"] == "short-lived"
        ]
        assert http.delete(f"/v1/admin/keys/{listed['id']}").json()["revoked_at"] is not None
    answer = chat(server, {"model": "r", "messages": HELLO}, key=key)
    assert "revoked" in check_shape(answer, 401, "invalid_api_key", module_dir)["message"]


def test_a_route_outside_the_keys_allow_list_is_404(
    server: Served, module_dir: Path, keys: dict[str, str]
) -> None:
    key = keys["only-other"]
    error = check_shape(
        chat(server, {"model": "r", "messages": HELLO}, key=key), 404, "model_not_found", module_dir
    )
    assert error["param"] == "model"
    assert chat(server, {"model": "other", "messages": HELLO}, key=key).status_code == 200
    with server.client(key) as http:
        listed = [m["id"] for m in http.get("/v1/models").json()["data"]]
    assert listed == ["other"]


def test_a_keys_rpm_is_429_rate_limited_with_retry_after(
    server: Served, module_dir: Path, keys: dict[str, str]
) -> None:
    body = {"model": "r", "messages": HELLO}
    first = chat(server, body, key=keys["rpm"])
    second = chat(server, body, key=keys["rpm"])
    if first.status_code == 429:  # the first landed at the very end of a clock minute
        first, second = second, chat(server, body, key=keys["rpm"])
    assert first.status_code == 200
    check_shape(second, 429, "rate_limited", module_dir)
    assert 1 <= int(second.headers["retry-after"]) <= 60


def test_a_keys_daily_limit_is_429_spend_limit_exceeded(
    server: Served, module_dir: Path, keys: dict[str, str]
) -> None:
    answer = chat(server, {"model": "r", "messages": HELLO}, key=keys["daily"])
    error = check_shape(answer, 429, "spend_limit_exceeded", module_dir)
    assert "No provider was called" in error["message"]


def test_a_keys_account_out_of_credit_is_402(
    server: Served, module_dir: Path, keys: dict[str, str]
) -> None:
    answer = chat(server, {"model": "r", "messages": HELLO}, key=keys["poor"])
    check_shape(answer, 402, "insufficient_credits", module_dir)


def test_a_key_cannot_reach_admin_endpoints_or_another_account(
    server: Served, module_dir: Path, keys: dict[str, str]
) -> None:
    with server.client(keys["team"]) as http:
        check_shape(http.get("/v1/admin/keys"), 403, "permission_denied", module_dir)
        check_shape(
            http.post("/v1/admin/accounts/team/grants", json={"amount": "5"}),
            403,
            "permission_denied",
            module_dir,
        )
    answer = chat(
        server, {"model": "r", "messages": HELLO}, key=keys["team"], **{"x-gateway-account": "poor"}
    )
    check_shape(answer, 403, "permission_denied", module_dir)


BAD_BODIES: list[tuple[str, Any, str | None]] = [
    ("malformed JSON", b'{"model": "r", "messages": [', None),
    ("not an object", b"[1, 2]", None),
    ("empty", b"", None),
    ("not UTF-8", b'{"model": "\xff"}', None),
    ("NaN", b'{"model": "r", "messages": [], "temperature": NaN}', None),
    ("missing model", {"messages": HELLO}, "model"),
    ("missing messages", {"model": "r"}, "messages"),
    ("model not a string", {"model": 5, "messages": HELLO}, "model"),
    ("messages not a list", {"model": "r", "messages": "hi"}, "messages"),
    ("stream not a boolean", {"model": "r", "messages": HELLO, "stream": "yes"}, "stream"),
    ("max_tokens a string", {"model": "r", "messages": HELLO, "max_tokens": "ten"}, None),
    ("a message not an object", {"model": "r", "messages": [1]}, None),
    ("no messages", {"model": "r", "messages": []}, None),
    ("n above 1", {"model": "r", "messages": HELLO, "n": 2}, None),
    ("an unknown parameter", {"model": "r", "messages": HELLO, "colour": "red"}, None),
    ("who pays, from the body", {"model": "r", "messages": HELLO, "account": "poor"}, "account"),
    ("tags, from the body", {"model": "r", "messages": HELLO, "tags": {"a": "b"}}, "tags"),
]


@pytest.mark.parametrize(("why", "body", "param"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_input_is_400_and_writes_nothing(
    server: Served, config: dict[str, Any], module_dir: Path, why: str, body: Any, param: str | None
) -> None:
    before = entries(config, "untouched")
    answer = chat(server, body, **{"x-gateway-account": "untouched"})
    error = check_shape(answer, 400, "invalid_request", module_dir)
    if param is not None:
        assert error["param"] == param
    assert entries(config, "untouched") == before


def test_a_huge_body_is_413_before_it_is_read(
    server: Served, config: dict[str, Any], module_dir: Path
) -> None:
    before = entries(config, "untouched")
    huge = {"model": "r", "messages": [{"role": "user", "content": "x" * (MAX_BODY + 1)}]}
    answer = chat(server, huge, **{"x-gateway-account": "untouched"})
    error = check_shape(answer, 413, "request_too_large", module_dir)
    assert f"{MAX_BODY:,}" in error["message"]

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"model": "r", "messages": [{"role": "user", "content": "'
        for _ in range(MAX_BODY // 1024 + 1):
            yield b"x" * 1024
        yield b'"}]}'

    with server.client(**{"x-gateway-account": "untouched"}) as http:
        answer = http.post("/v1/chat/completions", content=chunked())
    check_shape(answer, 413, "request_too_large", module_dir)
    assert entries(config, "untouched") == before


def test_a_client_too_slow_to_send_its_body_is_408(server: Served, module_dir: Path) -> None:
    body = json.dumps({"model": "r", "messages": HELLO}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"authorization: Bearer {ADMIN_KEY}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
            + body[:10]
        )
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            data = sock.recv(65536)  # the server answers after body_timeout_s (1 s)
            if not data:
                break
            reply += data
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert json.loads(payload)["error"]["code"] == "request_timeout"
