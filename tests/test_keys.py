"""The gateway's API keys (gateway/keys.py): ``gw.keys`` and ``agw.keys``, calls made with a
key (``create(..., api_key=key)``), the ``gateway keys`` commands, and the rule that a key
never appears anywhere but in the one answer that creates it.

What must hold across processes (revocation, spend limits, rpm) is tested on both stores in
tests/credits/test_api_keys.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import gateway
from gateway import AsyncGateway, Gateway
from gateway import errors as gateway_errors
from gateway.cli._app import cli
from gateway.errors import (
    ApiKeyError,
    ConfigError,
    InvalidApiKey,
    InvalidKeySettings,
    InvalidRequest,
    KeyNotAllowed,
    KeyRateLimited,
    SpendLimitExceeded,
    UnknownAccount,
    UnknownApiKey,
)
from gateway.keys import ApiKey, AsyncKeys, Keys, NewKey
from gateway.providers.base import TokenUsage
from gateway.providers.fake import FakeAdapter
from gateway.testing.clock import ManualClock

D = Decimal
HI = [{"role": "user", "content": "hi"}]
KEY_SHAPE = re.compile(r"^gk_[A-Za-z0-9_-]{43}$")


def config(tmp_path: Path, **credits: Any) -> dict[str, Any]:
    return {
        "providers": {"fake": {}, "other": {"type": "fake"}},
        "routes": {
            "r": {"targets": ["fake/m"], "retry": {"attempts": 1}},
            "s": {"targets": ["other/m"], "retry": {"attempts": 1}},
        },
        "credits": {"store": f"sqlite:///{tmp_path / 'credits.db'}", **credits},
        "pricing": {
            "fake/m": {"input": "0", "output": "1000"},
            "other/m": {"input": "0", "output": "1000"},
        },
    }


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def gw(tmp_path: Path, clock: ManualClock) -> Iterator[Gateway]:
    gw = Gateway(config=config(tmp_path), clock=clock)
    fake(gw).script.respond("ok", usage=TokenUsage(0, 100), times=1000)
    gw.credits.grant(D("100"))
    yield gw
    gw.close()


def fake(gw: Gateway | AsyncGateway, name: str = "fake") -> FakeAdapter:
    adapter = gw.adapter(name)
    assert isinstance(adapter, FakeAdapter)
    return adapter


# -- creating, listing, revoking --------------------------------------------------------------


def test_create_returns_the_key_once_and_stores_what_was_asked(
    gw: Gateway, clock: ManualClock
) -> None:
    expires = clock.now() + timedelta(days=30)
    new = gw.keys.create(
        account="default",
        name="ci",
        routes=["r", "fake/*"],
        rpm=60,
        daily_limit=D("5"),
        monthly_limit="50.5",  # type: ignore[arg-type]
        expires_at=expires,
    )
    assert isinstance(new, NewKey) and KEY_SHAPE.match(new.key)
    info = new.info
    assert new.id == info.id and re.fullmatch(r"key_[0-9a-f]{16}", info.id)
    assert info.prefix == new.key[:9] and info.account == "default" and info.name == "ci"
    assert info.routes == ("r", "fake/*") and info.rpm == 60
    assert (info.daily_limit, info.monthly_limit) == (D("5"), D("50.5"))
    assert info.expires_at == expires and info.created_at == clock.now()
    assert info.revoked_at is None and not info.revoked
    assert gw.keys.get(info.id) == info
    assert gw.keys.authenticate(new.key) == info
    assert info.as_dict()["daily_limit"] == "5.00" and info.as_dict()["routes"] == ["r", "fake/*"]
    two = gw.keys.create(account="default", name="ci")
    assert two.key != new.key and two.id != new.id


def test_list_get_and_revoke(gw: Gateway, clock: ManualClock) -> None:
    gw.credits.account("team-b").grant(D("1"))
    a = gw.keys.create(account="default", name="a").info
    clock.advance(1)
    b = gw.keys.create(account="team-b", name="b").info
    assert [k.id for k in gw.keys.list()] == [a.id, b.id]
    assert [k.id for k in gw.keys.list(account="team-b")] == [b.id]
    clock.advance(1)
    revoked = gw.keys.revoke(a.id)
    assert revoked.revoked_at == clock.now() and revoked.revoked
    assert [k.id for k in gw.keys.list()] == [b.id]
    assert [k.id for k in gw.keys.list(include_revoked=True)] == [a.id, b.id]
    clock.advance(1)
    assert gw.keys.revoke(a.id).revoked_at == revoked.revoked_at  # a revocation is final
    with pytest.raises(UnknownApiKey, match="no API key key_0000000000000000"):
        gw.keys.get("key_0000000000000000")
    with pytest.raises(UnknownApiKey):
        gw.keys.revoke("key_0000000000000000")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"name": ""}, "name '' is not valid"),
        ({"name": " padded"}, "is not valid"),
        ({"name": "tab\there"}, "is not valid"),
        ({"routes": "r"}, "routes must be a list"),
        ({"routes": ["nope"]}, "'nope' is neither a route of the config"),
        ({"routes": ["nobody/m"]}, "'nobody/m' is neither a route"),
        ({"routes": [""]}, "is not a route name"),
        ({"rpm": 0}, "rpm must be a whole number"),
        ({"rpm": True}, "rpm must be a whole number"),
        ({"rpm": 1.5}, "rpm must be a whole number"),
        ({"daily_limit": 1.5}, "daily_limit"),
        ({"daily_limit": D("-1")}, "daily_limit"),
        ({"monthly_limit": D("0")}, "monthly_limit: must be more than zero"),
        ({"expires_at": datetime(2030, 1, 1)}, "timezone-aware"),
        ({"expires_at": datetime(2020, 1, 1, tzinfo=UTC)}, "is not in the future"),
    ],
)
def test_bad_settings_are_refused_and_write_nothing(
    gw: Gateway, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidKeySettings, match=re.escape(message)) as info:
        gw.keys.create(**{"account": "default", "name": "ci", **arguments})
    assert isinstance(info.value, ValueError) and isinstance(info.value, ApiKeyError)
    assert gw.keys.list(include_revoked=True) == []


def test_a_key_for_an_account_that_does_not_exist_is_refused(gw: Gateway) -> None:
    with pytest.raises(UnknownAccount, match="'typo' does not exist"):
        gw.keys.create(account="typo", name="ci")
    assert gw.keys.list(include_revoked=True) == []


def test_keys_need_a_credit_store(tmp_path: Path) -> None:
    plain = Gateway(config={"providers": {"fake": {}}, "routes": {"r": {"targets": ["fake/m"]}}})
    with pytest.raises(ConfigError, match="API keys are kept in the credit store"):
        plain.keys.list()


@pytest.mark.parametrize(
    "presented",
    ["", "gk_short", "sk-" + "a" * 43, "gk_" + "é" * 43, "gk_" + "A" * 43, None, 42],
)
def test_anything_but_a_valid_key_is_unknown(gw: Gateway, presented: Any) -> None:
    with pytest.raises(InvalidApiKey) as info:
        gw.keys.authenticate(presented)
    assert info.value.reason == "unknown" and info.value.key_id is None
    assert info.value.message == "the API key is not valid"


# -- calls made with a key --------------------------------------------------------------------


def test_a_call_with_a_key_is_paid_by_the_keys_account(gw: Gateway) -> None:
    gw.credits.account("team-b").grant(D("1"))
    key = gw.keys.create(account="team-b", name="ci").info
    resp = gw.chat.completions.create(model="r", messages=HI, max_tokens=100, api_key=key)
    assert resp.usage is not None and resp.usage.cost == D("0.1")
    assert gw.credits.account("team-b").balance().available == D("0.9")
    assert gw.credits.balance().available == D("100")
    with pytest.raises(InvalidRequest, match="pays from account 'team-b'"):
        gw.chat.completions.create(model="r", messages=HI, account="default", api_key=key)
    with pytest.raises(InvalidRequest, match="must be an ApiKey"):
        gw.chat.completions.create(model="r", messages=HI, api_key="gk_x")  # type: ignore[arg-type]


def test_a_key_may_call_only_its_routes(gw: Gateway) -> None:
    key = gw.keys.create(account="default", name="ci", routes=["r", "other/*"]).info
    gw.chat.completions.create(model="r", messages=HI, api_key=key)
    gw.chat.completions.create(model="other/m", messages=HI, api_key=key)
    calls = len(fake(gw).calls)
    for model in ("s", "fake/m"):
        with pytest.raises(KeyNotAllowed) as info:
            gw.chat.completions.create(model=model, messages=HI, api_key=key)
        assert info.value.route == model and info.value.key_id == key.id
        assert "may call: r, other/*" in info.value.message
    assert len(fake(gw).calls) == calls  # no provider contacted
    assert key.allows("r") and not key.allows("s") and key.allows("other/x")
    assert not key.allows("other") and ApiKey.allows(_replace(key, routes=None), "anything")


def _replace(key: ApiKey, **changes: Any) -> ApiKey:
    import dataclasses

    return dataclasses.replace(key, **changes)


def test_a_revoked_or_expired_key_object_is_refused_by_create(
    gw: Gateway, clock: ManualClock
) -> None:
    key = gw.keys.create(
        account="default", name="ci", expires_at=clock.now() + timedelta(hours=1)
    ).info
    clock.advance(3600)
    with pytest.raises(InvalidApiKey, match="is expired"):
        gw.chat.completions.create(model="r", messages=HI, api_key=key)
    other = gw.keys.revoke(gw.keys.create(account="default", name="x").id)
    with pytest.raises(InvalidApiKey, match="is revoked"):
        gw.chat.completions.create(model="r", messages=HI, api_key=other)
    assert fake(gw).calls == []


def test_rpm_refuses_the_call_before_any_provider(gw: Gateway, clock: ManualClock) -> None:
    key = gw.keys.create(account="default", name="ci", rpm=2).info
    clock.advance(50)
    for _ in range(2):
        gw.chat.completions.create(model="r", messages=HI, api_key=key)
    with pytest.raises(KeyRateLimited) as info:
        gw.chat.completions.create(model="r", messages=HI, api_key=key)
    assert info.value.retry_after == 10 and "made its 2 calls this minute" in info.value.message
    assert not isinstance(info.value, gateway_errors.ProviderError)  # never a fallback trigger
    assert len(fake(gw).calls) == 2
    clock.advance(10)
    gw.chat.completions.create(model="r", messages=HI, api_key=key)


def test_a_keys_spend_limit_counts_its_calls_in_flight(gw: Gateway) -> None:
    key = gw.keys.create(account="default", name="ci", daily_limit=D("0.25")).info
    first = gw.chat.completions.create(
        model="r", messages=HI, max_tokens=100, api_key=key, stream=True
    )
    next(iter(first))  # held: $0.10 in flight
    gw.chat.completions.create(model="r", messages=HI, max_tokens=100, api_key=key)
    with pytest.raises(SpendLimitExceeded) as info:
        gw.chat.completions.create(model="r", messages=HI, max_tokens=100, api_key=key)
    assert info.value.api_key == key.id and info.value.limit == "daily"
    assert "$0.20 is spent or on hold with this key" in info.value.message
    assert len(fake(gw).calls) == 2
    first.close()
    # other keys and the account are not limited by this key
    gw.chat.completions.create(model="r", messages=HI, max_tokens=100)
    other = gw.keys.create(account="default", name="other", daily_limit=D("1")).info
    gw.chat.completions.create(model="r", messages=HI, max_tokens=100, api_key=other)
    gw.credits.verify()


def test_check_call_counts_and_check_route_does_not(gw: Gateway) -> None:
    key = gw.keys.create(account="default", name="ci", routes=["r"], rpm=1).info
    gw.keys.check_route(key, "r")
    gw.keys.check_route(key, "r")
    gw.keys.check_call(key, route="r")
    with pytest.raises(KeyRateLimited):
        gw.keys.check_call(key, route="r")
    with pytest.raises(KeyNotAllowed):
        gw.keys.check_call(key, route="s")


# -- async ------------------------------------------------------------------------------------


async def test_async_keys_are_awaitable_and_calls_pay_with_them(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    agw = AsyncGateway(config=config(tmp_path), clock=clock)
    fake(agw).script.respond("ok", usage=TokenUsage(0, 100), times=100)
    await agw.credits.grant(D("10"))
    keys = agw.keys
    assert isinstance(keys, AsyncKeys) and isinstance(keys.sync, Keys)
    new = await keys.create(account="default", name="ci", rpm=3, daily_limit=D("0.2"))
    key = await keys.authenticate(new.key)
    assert [k.id for k in await keys.list()] == [key.id] and await keys.get(key.id) == key

    threads: list[Any] = []
    real_to_thread = asyncio.to_thread

    async def counting(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        threads.append(func)
        return await real_to_thread(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counting)
    assert await keys.authenticate(new.key) == key
    assert threads == []  # read within the last second: no thread, no store
    resp = await agw.chat.completions.create(model="r", messages=HI, max_tokens=100, api_key=key)
    assert resp.usage is not None and resp.usage.cost == D("0.1")
    await agw.chat.completions.create(model="r", messages=HI, max_tokens=100, api_key=key)
    with pytest.raises(SpendLimitExceeded):
        await agw.chat.completions.create(model="r", messages=HI, max_tokens=100, api_key=key)
    with pytest.raises(KeyRateLimited):  # the third call counted too
        await agw.chat.completions.create(model="r", messages=HI, max_tokens=100, api_key=key)
    await keys.revoke(key.id)
    with pytest.raises(InvalidApiKey):
        await keys.authenticate(new.key)
    await agw.close()


# -- a key appears nowhere --------------------------------------------------------------------


def test_a_key_never_appears_in_a_repr_an_error_a_log_line_or_the_store(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gw = Gateway(config=config(tmp_path), clock=clock)
    gw.credits.grant(D("1"))
    new = gw.keys.create(account="default", name="ci", rpm=1, daily_limit=D("0.1"))
    secret = new.key
    seen: list[str] = [repr(new), str(new), repr(new.info), str(new.info.as_dict())]
    seen += [repr(gw.keys), repr(gw), repr(gw.keys.list()), repr(gw.keys.get(new.id))]
    key = gw.keys.authenticate(secret)
    gw.chat.completions.create(model="r", messages=HI, max_tokens=10, api_key=key)
    attempts: list[Any] = [
        lambda: gw.chat.completions.create(model="r", messages=HI, api_key=key),  # rpm
        lambda: gw.keys.get(secret),  # the key where an id belongs
        lambda: gw.keys.revoke(secret),
        lambda: gw.keys.create(account="default", name=secret, routes=[secret]),
        lambda: gw.keys.authenticate(secret[:-1] + ("A" if secret[-1] != "A" else "B")),
        lambda: gw.keys.authenticate(secret + " "),
        lambda: gw.chat.completions.create(model=secret, messages=HI, api_key=key),
    ]
    for attempt in attempts:
        with pytest.raises(gateway_errors.GatewayError) as info:
            attempt()
        seen += [str(info.value), repr(info.value), info.value.message]
    gw.keys.revoke(new.id)
    with pytest.raises(InvalidApiKey) as revoked:
        clock.advance(1)
        gw.keys.authenticate(secret)
    seen += [str(revoked.value), repr(revoked.value)]
    gw.close()
    seen += [record.getMessage() for record in caplog.records]
    seen += [str(record.args) for record in caplog.records]
    stored = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert caplog.records  # the keys' log lines were captured
    for text in seen:
        assert secret not in text and secret[3:] not in text, text
    assert secret.encode() not in stored and secret[3:].encode() not in stored
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in stored
    assert gateway_errors.redact(f"key={secret}") == "key=[REDACTED]"


# -- the command line -------------------------------------------------------------------------


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "providers: {fake: {}}\n"
        "routes: {r: {targets: [fake/m]}}\n"
        "credits: {store: sqlite:///credits.db}\n"
        'pricing: {fake/m: {input: "1", output: "2"}}\n'
    )
    return path


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "100"}, prog_name="gateway")


def test_cli_create_prints_the_key_alone_on_the_last_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = write_config(tmp_path)
    made = run(
        "keys", "create", "--config", str(path), "--name", "ci", "--routes", "r, fake/*",
        "--rpm", "30", "--daily", "2.50", "--monthly", "40", "--expires", "2099-12-31",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    lines = made.stdout.rstrip("\n").split("\n")
    secret = lines[-1]
    assert KEY_SHAPE.match(secret)
    details = " ".join(lines[:-1])
    assert "for account 'default'" in details and "routes: r, fake/*" in details
    assert "rpm 30" in details and "daily $2.50" in details and "monthly $40.00" in details
    assert "expires 2099-12-31 00:00 UTC" in details and "shown only this once" in details
    assert secret not in details and secret not in made.stderr
    assert all(secret not in r.getMessage() for r in caplog.records)

    with Gateway.from_config(path) as gw:
        key = gw.keys.authenticate(secret)
    assert key.daily_limit == D("2.50") and key.routes == ("r", "fake/*")

    listed = run("keys", "list", "--config", str(path))
    assert listed.exit_code == 0 and key.id in listed.stdout and "active" in listed.stdout
    assert secret not in listed.stdout and secret[:9] in listed.stdout
    as_json = run("keys", "list", "--config", str(path), "--format", "json")
    assert secret not in as_json.stdout and f'"id": "{key.id}"' in as_json.stdout

    revoked = run("keys", "revoke", "--config", str(path), key.id)
    assert revoked.exit_code == 0 and f"Revoked API key {key.id}" in revoked.stdout
    assert key.id not in run("keys", "list", "--config", str(path)).stdout
    assert "revoked" in run("keys", "list", "--config", str(path), "--all").stdout


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    bad_route = run("keys", "create", "--config", str(path), "--name", "x", "--routes", "zz")
    assert bad_route.exit_code == 1
    assert bad_route.stderr.startswith("error: routes: 'zz' is neither a route")
    unknown = run("keys", "revoke", "--config", str(path), "key_0123456789abcdef")
    assert unknown.exit_code == 1 and "no API key key_0123456789abcdef" in unknown.stderr
    no_name = run("keys", "create", "--config", str(path))
    assert no_name.exit_code == 2 and "--name" in no_name.stderr
    bad_money = run("keys", "create", "--config", str(path), "--name", "x", "--daily", "-1")
    assert bad_money.exit_code == 2
    assert run("keys", "list", "--config", str(path)).stdout.startswith("No API keys")


# -- the public names -------------------------------------------------------------------------


def test_the_new_errors_are_public_and_drawn_in_the_tree() -> None:
    doc = gateway_errors.__doc__ or ""
    for name in (
        "ApiKeyError",
        "InvalidApiKey",
        "KeyNotAllowed",
        "KeyRateLimited",
        "UnknownApiKey",
        "InvalidKeySettings",
    ):
        assert name in gateway_errors.__all__ and name in doc
        assert issubclass(getattr(gateway_errors, name), ApiKeyError)
    assert issubclass(UnknownApiKey, LookupError) and issubclass(InvalidKeySettings, ValueError)
    assert gateway.ApiKey is ApiKey and gateway.Keys is Keys and gateway.NewKey is NewKey
