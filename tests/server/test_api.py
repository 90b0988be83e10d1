"""The rest of the API on a real ``gateway serve``: the admin endpoints (accounts,
purchases, grants, limits, keys), what a key sees of its account (``/v1/credits``,
``/v1/usage``), health, and streams cut short by the client or broken by the provider."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx2
import openai
import pytest
from openai import OpenAI

from tests.server._serve import ADMIN_KEY, Served
from tests.server._upstream import Upstream

pytestmark = pytest.mark.slow
HELLO = [{"role": "user", "content": "Hello"}]


def admin(server: Served) -> httpx2.Client:
    return server.client(ADMIN_KEY)


def test_health_and_readiness_need_no_key(server: Served) -> None:
    with server.client(None) as http:
        assert http.get("/healthz").json()["status"] == "ok"
        assert http.get("/readyz").json() == {"status": "ready"}


def test_the_admin_funds_an_account_and_gives_it_a_key(server: Served) -> None:
    with admin(server) as http:
        grant = http.post(
            "/v1/admin/accounts/acme/grants", json={"amount": "5.00", "note": "trial"}
        )
        assert grant.status_code == 201
        assert (grant.json()["kind"], grant.json()["amount"]) == ("grant", "5.00")
        bought = [
            http.post(
                "/v1/admin/accounts/acme/purchases",
                json={"amount": "20", "idempotency_key": "order-1"},
            )
            for _ in range(2)
        ]
        assert [b.status_code for b in bought] == [201, 201]
        assert bought[0].json()["id"] == bought[1].json()["id"], "a repeat is a no-op"
        conflict = http.post(
            "/v1/admin/accounts/acme/purchases", json={"amount": "30", "idempotency_key": "order-1"}
        )
        assert (conflict.status_code, conflict.json()["error"]["code"]) == (
            409,
            "idempotency_conflict",
        )
        limits = http.put("/v1/admin/accounts/acme/limits", json={"daily": "3.00"})
        assert limits.json() == {"daily": "3.00", "monthly": None}
        account = http.get("/v1/admin/accounts/acme").json()
        assert (account["account"], account["available"], account["held"]) == (
            "acme",
            "25.00",
            "0.00",
        )
        assert account["limits"] == {"daily": "3.00", "monthly": None}
        names = [a["account"] for a in http.get("/v1/admin/accounts").json()["data"]]
        assert "acme" in names and names == sorted(names)
        made = http.post(
            "/v1/admin/keys", json={"account": "acme", "name": "ci", "routes": ["r", "fake/*"]}
        )
        assert made.status_code == 201
        key = made.json()["key"]
        assert key.startswith("gk_") and made.json()["routes"] == ["r", "fake/*"]
        listed = http.get("/v1/admin/keys", params={"account": "acme"})
        assert [k["id"] for k in listed.json()["data"]] == [made.json()["id"]]
        assert key not in listed.text and "key" not in listed.json()["data"][0]

    client = OpenAI(base_url=server.base_url, api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="r", messages=HELLO)
    cost = Decimal(raw.headers["x-gateway-cost"])
    with server.client(key) as http:
        credits = http.get("/v1/credits").json()
        usage = http.get("/v1/usage", params={"group_by": "model,tag:api_key"}).json()
    assert credits["account"] == "acme"
    assert Decimal(credits["posted"]) == Decimal("25") - cost
    assert usage["account"] == "acme"
    (row,) = usage["data"]
    assert (row["model"], row["tag:api_key"], row["requests"]) == ("fake/m", made.json()["id"], 1)
    assert Decimal(row["cost"]) == Decimal(usage["total_cost"]) == cost

    with admin(server) as http:
        assert http.delete(f"/v1/admin/keys/{made.json()['id']}").status_code == 200
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="r", messages=HELLO)


BAD_ADMIN = [
    ("a float amount", "post", "/v1/admin/accounts/acme2/grants", {"amount": 5.5}, 400),
    ("a negative amount", "post", "/v1/admin/accounts/acme2/grants", {"amount": "-5"}, 400),
    ("no amount", "post", "/v1/admin/accounts/acme2/purchases", {}, 400),
    ("an unknown field", "post", "/v1/admin/accounts/acme2/grants", {"amount": "5", "x": 1}, 400),
    (
        "a purchase under the minimum",
        "post",
        "/v1/admin/accounts/acme2/purchases",
        {"amount": "1"},
        400,
    ),
    ("an unknown account", "get", "/v1/admin/accounts/nobody", None, 404),
    ("an unknown key", "get", "/v1/admin/keys/key_0000000000000000", None, 404),
    (
        "a key for an unknown account",
        "post",
        "/v1/admin/keys",
        {"account": "nobody", "name": "x"},
        404,
    ),
    (
        "a key with a bad route",
        "post",
        "/v1/admin/keys",
        {"account": "default", "name": "x", "routes": ["nope"]},
        400,
    ),
    ("a key without a name", "post", "/v1/admin/keys", {"account": "default"}, 400),
    ("limits as numbers", "put", "/v1/admin/accounts/default/limits", {"daily": 3}, 200),
]


@pytest.mark.parametrize(
    ("why", "method", "path", "body", "status"), BAD_ADMIN, ids=[b[0] for b in BAD_ADMIN]
)
def test_bad_admin_input_is_refused_with_its_reason(
    server: Served, why: str, method: str, path: str, body: Any, status: int
) -> None:
    with admin(server) as http:
        answer = http.request(method, path, json=body)
    assert answer.status_code == status, answer.text
    if status >= 400:
        error = answer.json()["error"]
        assert error["message"] and error["code"]
        assert "existing accounts" not in error["message"]  # other customers' names


def stream_lines(
    server: Served, model: str, key: str = ADMIN_KEY, **headers: str
) -> httpx2.Response:
    http = server.client(key, **headers)
    body = {"model": model, "messages": HELLO, "stream": True}
    return http.send(http.build_request("POST", "/v1/chat/completions", json=body), stream=True)


def usage_by_status(server: Served, account: str) -> list[dict[str, Any]]:
    with admin(server) as http:
        answer = http.get(
            "/v1/usage", params={"group_by": "status"}, headers={"x-gateway-account": account}
        )
    return answer.json()["data"]


def test_a_client_that_leaves_mid_stream_stops_the_call_and_pays_for_what_it_got(
    server: Served, upstream: Upstream
) -> None:
    upstream.gate.clear()
    hangups = upstream.hangups
    with admin(server) as http:
        http.post("/v1/admin/accounts/leaver/grants", json={"amount": "5"})
    answer = stream_lines(server, "slow", **{"x-gateway-account": "leaver"})
    lines = answer.iter_lines()
    first = next(line for line in lines if line.startswith("data: "))
    assert json.loads(first[6:])["choices"][0]["delta"]["role"] == "assistant"
    answer.close()  # the client leaves while the provider is still generating
    upstream.wait_for(lambda: upstream.hangups == hangups + 1)
    (row,) = usage_by_status(server, "leaver")
    assert (row["status"], row["requests"]) == ("incomplete", 1)
    assert Decimal(row["cost"]) > 0


def test_a_stream_the_provider_breaks_ends_with_an_error_event_and_is_billed(
    server: Served,
) -> None:
    with admin(server) as http:
        http.post("/v1/admin/accounts/broken/grants", json={"amount": "5"})
    answer = stream_lines(server, "up/breaks", **{"x-gateway-account": "broken"})
    events = [line[6:] for line in answer.iter_lines() if line.startswith("data: ")]
    answer.close()
    assert events[-1] != "[DONE]"
    assert json.loads(events[-1])["error"]["code"] == "stream_interrupted"
    assert json.loads(events[0])["choices"][0]["delta"]["role"] == "assistant"
    (row,) = usage_by_status(server, "broken")
    assert row["status"] == "incomplete" and Decimal(row["cost"]) > 0

    client = OpenAI(
        base_url=server.base_url,
        api_key=ADMIN_KEY,
        max_retries=0,
        default_headers={"x-gateway-account": "broken"},
    )
    with pytest.raises(openai.APIError, match="stream broke"):
        for _ in client.chat.completions.create(model="up/breaks", messages=HELLO, stream=True):
            pass
