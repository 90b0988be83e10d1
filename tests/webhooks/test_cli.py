"""``gateway webhooks deliveries [--failed] | retry ID | test URL`` against a real receiver."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from gateway import Gateway
from gateway.testing.clock import ManualClock
from gateway.webhooks import open_outbox
from gateway.webhooks.outbox import Finish
from tests.test_cli import chdir, flat, invoke, one_error_line
from tests.webhooks.receiver import Receiver


@pytest.fixture
def config_file(tmp_path: Path, receiver: Receiver) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "providers: {fake: {}}\n"
        "routes: {r: {targets: [fake/m]}}\n"
        "pricing: {fake/m: {input: '1', output: '1'}}\n"
        "credits: {store: 'sqlite:///credits.db', min_purchase: '1', flush_interval_ms: 0}\n"
        "webhooks:\n"
        f"  - url: {receiver.url}\n"
        "    secret: ${TEST_WEBHOOK_SECRET}\n"
        "    events: [purchase.succeeded, balance.low]\n"
    )
    return path


def test_deliveries_retry_and_test(
    config_file: Path,
    receiver: Receiver,
    secret: str,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", secret)
    env: dict[str, str | None] = {"TEST_WEBHOOK_SECRET": secret}
    with Gateway.from_config(config_file, clock=clock) as gw:  # a test clock: no sender
        gw.credits.purchase(Decimal("5"))
        gw.credits.account("acme").purchase(Decimal("7"))
        store = gw._core.billing.service.store  # type: ignore[union-attr]
        outbox = open_outbox(store)
        first, second = sorted(outbox.deliveries(), key=lambda d: d.id)
        # the second one was given up after a day of failures
        (claimed,) = outbox.claim(
            endpoints=[second.endpoint],
            owner="t",
            now_us=10**18,
            lease_us=1,
            only=second.id,
            limit=1,
        )
        outbox.finish(
            claimed, owner="t", result=Finish("failed", 0, 500, "HTTP 500 (gave up)", 1), now_us=1
        )

    with chdir(config_file.parent):
        listed = invoke("webhooks", "deliveries", env=env)
        assert listed.exit_code == 0, listed.output
        text = flat(listed.stdout)
        assert receiver.url in text and "purchase.succeeded, balance.low" in text
        assert f"{first.id} " in text and "pending" in text and "failed" in text
        assert secret not in listed.output

        failed = invoke("webhooks", "deliveries", "--failed", "--format", "json", env=env)
        data = json.loads(failed.stdout)
        assert [d["id"] for d in data["deliveries"]] == [second.id]
        assert data["deliveries"][0]["account"] == "acme"
        assert data["deliveries"][0]["url"] == receiver.url
        assert data["endpoints"][0]["events"] == ["purchase.succeeded", "balance.low"]

        sent = invoke("webhooks", "retry", str(second.id), env=env)
        assert sent.exit_code == 0, sent.output
        assert (
            f"Delivery {second.id} (purchase.succeeded, account 'acme') delivered (HTTP 200)"
            in (flat(sent.stdout))
        )
        (got,) = receiver.wait_for(1)
        assert got.verify(secret)["data"]["amount"] == "7.00"

        ping = invoke("webhooks", "test", receiver.url, env=env)
        assert ping.exit_code == 0, ping.output
        assert "HTTP 200" in ping.stdout and "signed ping" in flat(ping.stdout)
        payload = receiver.wait_for(2)[1].verify(secret)
        assert payload["type"] == "ping" and payload["data"]["account"] == "default"

        receiver.default = 503
        down = one_error_line(invoke("webhooks", "test", receiver.url, env=env))
        assert "failed" in down and "HTTP 503" in down

        unknown = one_error_line(invoke("webhooks", "test", "https://x.example.com/", env=env))
        assert "not one of the config's webhooks" in unknown
        assert "there is no delivery 999" in one_error_line(
            invoke("webhooks", "retry", "999", env=env)
        )
        assert len(receiver.received) == 3  # deliveries sent nothing; the unknown URL nothing


def test_a_config_without_webhooks_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "gateway.yaml").write_text("credits: {store: 'sqlite:///c.db'}\n")
    with chdir(tmp_path):
        assert "has no webhooks: list" in one_error_line(invoke("webhooks", "deliveries"))
    assert invoke("webhooks", "--help").exit_code == 0
