"""Every error status of the server produced for real, over raw HTTP: OpenAI's error shape,
the documented status and code, no secret, stack trace or path in a body; bad input at the
HTTP edge is refused with nothing held and nothing written."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest

from gateway.credits.store import open_store
from tests.server._serve import ADMIN_KEY, Served, serve
from tests.server._upstream import Upstream
from tests.server.conftest import fund, server_config

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
    from gateway import Gateway

    with Gateway(config=config) as gw:
        gw.credits.account("capped").set_limits(daily=Decimal("0.001"))
    return config


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


def test_no_key_or_a_wrong_one_is_401(server: Served, module_dir: Path) -> None:
    check_shape(
        chat(server, {"model": "r", "messages": HELLO}, key=None),
        401,
        "invalid_api_key",
        module_dir,
    )
    with server.client(None, **{"x-api-key": "nope"}) as http:
        answer = http.get("/v1/models")
    check_shape(answer, 401, "invalid_api_key", module_dir)


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


def test_every_provider_failing_is_502_with_the_attempts(server: Served, module_dir: Path) -> None:
    answer = chat(server, {"model": "broken", "messages": HELLO})
    error = check_shape(answer, 502, "all_providers_failed", module_dir)
    assert [(a["provider"], a["model"], a["error"]) for a in error["attempts"]] == [
        ("down", "m", "ProviderConnectionError")
    ]
    assert answer.headers["x-gateway-attempts"] == "1"


def test_a_prompt_too_long_is_400_context_length_exceeded(server: Served, module_dir: Path) -> None:
    check_shape(
        chat(server, {"model": "long", "messages": HELLO}),
        400,
        "context_length_exceeded",
        module_dir,
    )


def test_embeddings_and_images_say_not_supported_yet(server: Served, module_dir: Path) -> None:
    with server.client() as http:
        for path in ("/v1/embeddings", "/v1/images/generations"):
            answer = http.post(path, json={"model": "x", "input": "a", "prompt": "b"})
            error = check_shape(answer, 501, "not_supported", module_dir)
            assert "not supported by this gateway yet" in error["message"]


def test_unknown_paths_and_methods(server: Served, module_dir: Path) -> None:
    with server.client() as http:
        check_shape(http.get("/v1/nothing"), 404, "not_found", module_dir)
        check_shape(http.get("/v1/chat/completions"), 405, "method_not_allowed", module_dir)


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
