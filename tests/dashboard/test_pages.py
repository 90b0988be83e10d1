"""The dashboard's pages in-process (``create_app`` over httpx2's ASGI transport), at the HTML
level: sessions and their cookie, CSRF, who may see and change what, numbers against the
ledger, CSV, paging, empty states, errors on the page, headers and local assets."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest

from gateway import Gateway
from gateway.credits.reports import to_csv
from gateway.server import create_app
from tests.dashboard.conftest import ADMIN_KEY, TZ, dashboard_config, fill

ORIGIN = "http://dash.test"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("pages")
    config = dashboard_config(f"sqlite:///{folder / 'credits.db'}")
    fill(config, calls=60)
    return config


@pytest.fixture(scope="module")
def gw(config: dict[str, Any]) -> Iterator[Gateway]:
    with Gateway(config=config) as gateway:
        yield gateway


class Browser:
    """A cookie jar over the app, in this process: ``get`` / ``post`` return responses."""

    def __init__(self, config: dict[str, Any], base_url: str = ORIGIN) -> None:
        self.app = create_app(config)
        self.base_url = base_url
        self.cookies = httpx2.Cookies()

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        transport = httpx2.ASGITransport(app=self.app)
        async with httpx2.AsyncClient(
            transport=transport, base_url=self.base_url, cookies=self.cookies
        ) as client:
            answer = await client.request(method, path, **kwargs)
            self.cookies = client.cookies
            return answer

    def get(self, path: str) -> httpx2.Response:
        return asyncio.run(self._call("GET", path))

    def post(self, path: str, data: dict[str, str], **headers: str) -> httpx2.Response:
        return asyncio.run(self._call("POST", path, data=data, headers=headers))

    def csrf(self, path: str) -> str:
        return token_of(self.get(path).text)

    def sign_in(self, key: str) -> httpx2.Response:
        return self.post("/signin", {"key": key, "csrf": self.csrf("/signin")})


def token_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def text_of(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', html)
    assert found, element_id
    return found.group(1).strip()


def money(text: str) -> Decimal:
    return Decimal(text.replace("$", "").replace(",", ""))


@pytest.fixture
def admin(config: dict[str, Any]) -> Browser:
    browser = Browser(config)
    assert browser.sign_in(ADMIN_KEY).status_code == 303
    return browser


# -- sessions -------------------------------------------------------------------------------


def test_the_session_cookie_is_signed_httponly_strict_and_never_holds_the_key(
    config: dict[str, Any],
) -> None:
    browser = Browser(config, base_url="https://dash.test")
    answer = browser.sign_in(ADMIN_KEY)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if "gateway_session=" in c)
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "secure", "path=/"} <= flags
    assert ADMIN_KEY not in cookie
    assert browser.get("/").status_code == 200


def test_no_session_goes_to_sign_in_and_a_tampered_cookie_is_no_session(
    config: dict[str, Any],
) -> None:
    browser = Browser(config)
    for path in ("/", "/usage", "/requests", "/credits", "/settings", "/keys", "/usage.csv"):
        answer = browser.get(path)
        assert (answer.status_code, answer.headers["location"]) == (303, "/signin"), path
    browser.sign_in(ADMIN_KEY)
    value = browser.cookies["gateway_session"]
    assert browser.get("/").status_code == 200
    body, _, mac = value.partition(".")
    for forged in (
        f"{body}.{mac[:10]}{'B' if mac[10] == 'A' else 'A'}{mac[11:]}",  # another signature
        f"{body[:-2]}{'B' if body[-2] == 'A' else 'A'}{body[-1]}.{mac}",  # another payload
        "garbage",
    ):
        browser.cookies = httpx2.Cookies()
        browser.cookies.set("gateway_session", forged)
        assert browser.get("/").headers["location"] == "/signin", forged


def test_every_worker_accepts_the_cookie_and_another_secret_does_not(
    config: dict[str, Any],
) -> None:
    first = Browser(config)
    first.sign_in(ADMIN_KEY)
    other_worker = Browser(config)
    other_worker.cookies = first.cookies
    assert other_worker.get("/").status_code == 200
    rotated = Browser({**config, "server": {**config["server"], "session_secret": "x" * 32}})
    rotated.cookies = first.cookies
    assert rotated.get("/").headers["location"] == "/signin"


def test_a_wrong_key_is_shown_on_the_page_and_nothing_is_set(config: dict[str, Any]) -> None:
    browser = Browser(config)
    answer = browser.sign_in("gk_" + "x" * 43)
    assert answer.status_code == 401
    assert "That key is not valid" in answer.text
    assert "gateway_session" not in answer.headers.get("set-cookie", "")
    assert "gk_xxxx" not in answer.text  # the key typed is not echoed back


def test_sign_in_needs_its_form_token(config: dict[str, Any]) -> None:
    browser = Browser(config)
    token = browser.csrf("/signin")
    answer = browser.post("/signin", {"key": ADMIN_KEY})
    assert answer.status_code == 403 and "gateway_session" not in str(answer.headers)
    as_json = asyncio.run(
        browser._call(
            "POST", "/signin", json={"key": ADMIN_KEY, "csrf": token}
        )  # not a form: refused as a page, not a JSON error
    )
    assert as_json.status_code == 403 and as_json.headers["content-type"].startswith("text/html")


def test_without_a_secret_the_dashboard_says_what_to_configure(tmp_path: Path) -> None:
    config = dashboard_config(f"sqlite:///{tmp_path / 'c.db'}")
    del config["server"]["admin_key"]
    browser = Browser(config)
    page = browser.get("/signin")
    assert "server.session_secret" in page.text
    assert browser.get("/").headers["location"] == "/signin"


def test_a_revoked_key_ends_its_sessions(config: dict[str, Any], gw: Gateway) -> None:
    new = gw.keys.create(account="default", name="short-lived")
    browser = Browser(config)
    assert browser.sign_in(new.key).status_code == 303
    assert browser.get("/").status_code == 200
    gw.keys.revoke(new.id)
    assert browser.get("/").headers["location"] == "/signin"
    assert browser.get("/signin").status_code == 200  # the form, not a loop back to /


def test_sign_out_forgets_the_session(admin: Browser) -> None:
    answer = admin.post("/signout", {"csrf": admin.csrf("/")})
    assert answer.headers["location"] == "/signin"
    assert admin.get("/").headers["location"] == "/signin"


# -- CSRF and permissions -------------------------------------------------------------------


def test_every_form_is_refused_without_its_token_or_from_another_origin(
    admin: Browser, gw: Gateway
) -> None:
    before = gw.credits.settings()
    token = admin.csrf("/settings")
    for path, fields in (
        ("/settings/limits", {"daily": "1"}),
        ("/settings/auto-recharge", {"below": "1", "amount": "5", "monthly_limit": "10"}),
        ("/keys", {"name": "csrf"}),
        ("/signout", {}),
    ):
        assert admin.post(path, fields).status_code == 403, path
        assert admin.post(path, {**fields, "csrf": "wrong"}).status_code == 403, path
        other_site = admin.post(path, {**fields, "csrf": token}, origin="https://evil.example")
        assert other_site.status_code == 403, path
    assert gw.credits.settings() == before
    assert not [k for k in gw.keys.list() if k.name == "csrf"]
    assert admin.get("/").status_code == 200  # still signed in


def test_a_key_session_is_read_only_and_sees_only_its_account(
    config: dict[str, Any], gw: Gateway
) -> None:
    key = gw.keys.create(account="team-b", name="viewer").key
    browser = Browser(config)
    browser.sign_in(key)
    overview = browser.get("/")
    assert "team-b" in overview.text and "read only" in overview.text
    assert 'id="account-picker"' not in overview.text
    assert browser.get("/?account=default").status_code == 403
    settings = browser.get("/settings")
    assert "Save limits" not in settings.text
    token = token_of(settings.text)
    refused = browser.post("/settings/limits", {"daily": "1", "csrf": token})
    assert refused.status_code == 403 and "read only" in refused.text
    assert browser.post("/keys", {"name": "mine", "csrf": token}).status_code == 403
    assert gw.credits.account("team-b").settings().daily_limit is None


# -- numbers --------------------------------------------------------------------------------


def test_usage_totals_and_csv_equal_the_ledger(admin: Browser, gw: Gateway) -> None:
    page = admin.get("/usage").text
    total = sum((r.cost for r in gw.credits.usage(group_by="model")), Decimal(0))
    for element in ("usage-total", "chart-total", "model-total", "tag-total"):
        assert money(text_of(page, element)) == total, element
    assert f"({TZ})" in page
    csv = admin.get("/usage.csv?table=model").text
    assert csv == to_csv(gw.credits.usage(group_by="model"))
    tag_csv = admin.get("/usage.csv?table=tag&tag=feature").text
    assert tag_csv == to_csv(gw.credits.usage(group_by="tag:feature"))
    assert "'=cmd" in tag_csv  # a formula-looking tag is neutralised, as every CSV export
    chart_csv = admin.get("/usage.csv?table=chart&by=provider").text
    assert chart_csv == to_csv(gw.credits.usage(group_by=["day", "provider"]))


def test_overview_balance_and_month_equal_the_ledger(admin: Browser, gw: Gateway) -> None:
    page = admin.get("/").text
    balance = gw.credits.balance()
    assert money(text_of(page, "available")) == balance.available
    assert money(text_of(page, "posted")) == balance.posted
    month = sum((r.cost for r in gw.credits.usage(group_by="month")), Decimal(0))
    assert money(text_of(page, "spent-month")) == month


def test_requests_are_paged_newest_first_and_filtered(admin: Browser, gw: Gateway) -> None:
    every = list(reversed(gw.credits.requests()))
    first = admin.get("/requests").text
    ids = re.findall(r"<code>(gw-[0-9a-f]+|[^<]+)</code></td></tr>", first)
    assert ids == [r.request_id for r in every[:50]]
    older = re.search(r'href="([^"]+)" rel="next"', first)
    assert older
    second = admin.get(older.group(1).replace("&amp;", "&")).text
    assert re.findall(r"<code>([^<]+)</code></td></tr>", second) == [
        r.request_id for r in every[50:]
    ]
    assert 'rel="next"' not in second
    tagged = admin.get("/requests?tag=feature%3D%3Dcmd").text
    expected = [r.request_id for r in every if r.tags.get("feature") == "=cmd"]
    assert re.findall(r"<code>([^<]+)</code></td></tr>", tagged) == expected
    nothing = admin.get("/requests?model=fake%2Fnone").text
    assert "No call matches these filters" in nothing


def test_settings_are_validated_as_the_api_validates_and_written_to_the_ledger(
    config: dict[str, Any], admin: Browser, gw: Gateway
) -> None:
    token = admin.csrf("/settings?account=team-b")
    for value in ("abc", "-1", "0.0000000001", "1e400"):
        page = admin.post("/settings/limits?account=team-b", {"daily": value, "csrf": token})
        api = _api_limits(config, value)
        assert page.status_code == api.status_code == 400, value
        assert api.json()["error"]["message"] in page.text.replace("&#39;", "'"), value
    saved = admin.post(
        "/settings/limits?account=team-b", {"daily": "7.5", "monthly": "", "csrf": token}
    )
    assert saved.headers["location"] == "/settings?account=team-b&saved=limits"
    assert gw.credits.account("team-b").settings().daily_limit == Decimal("7.5")
    recharge = admin.post(
        "/settings/auto-recharge?account=team-b",
        {"below": "1", "amount": "1", "monthly_limit": "10", "csrf": token},
    )
    assert recharge.status_code == 400 and "is below the minimum of $5" in recharge.text
    history = admin.get("/settings?account=team-b").text
    assert "daily cap: $7.50" in history


def _api_limits(config: dict[str, Any], value: str) -> httpx2.Response:
    app = create_app(config)

    async def call() -> httpx2.Response:
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=ORIGIN) as client:
            return await client.put(
                "/v1/admin/accounts/team-b/limits",
                json={"daily": value},
                headers={"authorization": f"Bearer {ADMIN_KEY}"},
            )

    return asyncio.run(call())


def test_a_new_key_is_shown_once_and_never_stored(admin: Browser, gw: Gateway) -> None:
    token = admin.csrf("/keys")
    made = admin.post("/keys", {"name": "shown once", "rpm": "60", "csrf": token})
    assert made.status_code == 201
    assert made.headers["cache-control"] == "no-store"
    key = text_of(made.text, "new-key")
    assert gw.keys.authenticate(key).name == "shown once"
    assert key not in admin.get("/keys").text
    bad = admin.post("/keys", {"name": "", "csrf": token})
    assert bad.status_code == 400 and 'id="key-error"' in bad.text


# -- empty states, errors, headers ----------------------------------------------------------


def test_a_new_account_has_empty_states_that_make_sense(tmp_path: Path) -> None:
    config = dashboard_config(f"sqlite:///{tmp_path / 'c.db'}")
    browser = Browser(config)
    browser.sign_in(ADMIN_KEY)
    assert "no credit and no calls yet" in browser.get("/").text
    assert "No calls in this range" in browser.get("/usage").text
    assert "No calls yet" in browser.get("/requests").text
    assert "No credit left" in browser.get("/credits").text
    assert "No keys yet" in browser.get("/keys").text


def test_errors_are_pages_not_tracebacks(admin: Browser) -> None:
    for path, status in (
        ("/usage?since=tomorrow", 400),
        ("/usage?since=2026-02-01&until=2026-01-01", 400),
        ("/requests?before=12", 400),
        ("/requests?tag=novalue", 400),
        ("/?account=nobody", 404),
    ):
        answer = admin.get(path)
        assert answer.status_code == status, path
        assert answer.headers["content-type"].startswith("text/html")
        assert "Traceback" not in answer.text and 'class="error"' in answer.text


def test_a_gateway_without_credits_says_so(tmp_path: Path) -> None:
    config = dashboard_config("sqlite://")
    del config["credits"]
    browser = Browser(config)
    browser.sign_in(ADMIN_KEY)
    page = browser.get("/")
    assert page.status_code == 404 and "no credit account" in page.text


def test_every_page_is_no_store_unframed_and_loads_only_the_gateways_assets(
    admin: Browser,
) -> None:
    signed_out = Browser(admin.app.state.server.config)
    for path in ("/", "/usage", "/requests", "/credits", "/settings", "/keys", "/signin"):
        answer = signed_out.get(path) if path == "/signin" else admin.get(path)
        assert answer.headers["cache-control"] == "no-store", path
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assets = re.findall(r'(?:src|href)="([^"]+)"', answer.text)
        assert assets and all(a.startswith(("/", "#")) for a in assets), (path, assets)
    for asset in ("/-/static/dashboard.css", "/-/static/dashboard.js"):
        assert admin.get(asset).status_code == 200


# -- webhooks -------------------------------------------------------------------------------


def test_webhooks_list_the_accounts_deliveries_and_the_admin_sends_one_again(
    tmp_path: Path,
) -> None:
    import base64
    import os

    from tests.server._serve import free_port

    hook = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: deliveries stay pending
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    config = dashboard_config(f"sqlite:///{tmp_path / 'c.db'}")
    config["webhooks"] = [{"url": hook, "secret": secret}]
    with Gateway(config=config) as gw:
        gw.credits.purchase(Decimal("5"))
        gw.credits.account("team-b").purchase(Decimal("5"))
    browser = Browser(config)
    browser.sign_in(ADMIN_KEY)
    page = browser.get("/webhooks").text
    assert hook in page and "purchase.succeeded" in page
    ids = re.findall(r'data-delivery-id="(\d+)"', page)
    assert len(ids) == 1  # the default account's, not team-b's
    token = token_of(page)
    resent = browser.post(f"/webhooks/{ids[0]}/retry", {"csrf": token})
    assert resent.headers["location"] == f"/webhooks?account=default&resent={ids[0]}"
    other = re.findall(r'data-delivery-id="(\d+)"', browser.get("/webhooks?account=team-b").text)
    assert browser.post(f"/webhooks/{other[0]}/retry", {"csrf": token}).status_code == 404
    assert browser.post(f"/webhooks/{ids[0]}/retry", {}).status_code == 403


def test_without_webhooks_the_page_says_how_to_add_them(admin: Browser) -> None:
    page = admin.get("/webhooks")
    assert page.status_code == 200 and "no <code>webhooks:</code> list" in page.text


def test_a_declined_recharge_shows_on_the_overview_and_the_credits_page(tmp_path: Path) -> None:
    config = dashboard_config(f"sqlite:///{tmp_path / 'c.db'}")
    with Gateway(config=config) as gw:  # no payment method: a recharge is declined
        gw.credits.grant(Decimal("5"))
        gw.credits.set_auto_recharge(
            below=Decimal("10"), amount=Decimal("20"), monthly_limit=Decimal("100")
        )
        declined = gw.credits.history(kinds=["recharge_declined"])
    assert declined
    browser = Browser(config)
    browser.sign_in(ADMIN_KEY)
    overview = browser.get("/").text
    assert "auto-recharge declined" in overview and "$20.00" in overview
    credits = browser.get("/credits").text
    assert 'class="declined"' in credits and "auto-recharge declined" in credits
    assert "grant" in credits
