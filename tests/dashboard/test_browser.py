"""The dashboard in a real browser: Debian's chromium driven by Playwright, against a real
``gateway serve`` process. Signs in with each kind of key, reads numbers against the ledger,
changes a setting and sees a call refused for it, creates and revokes a key and uses it with
the OpenAI SDK, and checks that a key is never in a URL, that a form without its CSRF token
is refused, that a phone's width needs no sideways scrolling and that the keyboard reaches
the forms. Screenshots of every page, at desktop and phone widths, go to screenshots/."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway import Gateway
from tests.dashboard.conftest import ADMIN_KEY, CHROMIUM_ARGS, TZ, dashboard_config, fill
from tests.server._serve import Served, serve

pytestmark = pytest.mark.slow

PAGES = ["/", "/usage", "/requests", "/credits", "/settings", "/keys", "/webhooks"]
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("dashboard")
    config = dashboard_config(f"sqlite:///{folder / 'credits.db'}")
    fill(config)
    return config


@pytest.fixture(scope="module")
def gw(config: dict[str, Any]) -> Iterator[Gateway]:
    with Gateway(config=config) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def server(config: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = serve(config, tmp_path_factory.mktemp("serve"))
    yield served
    code, err = served.stop()
    assert code == 0, err
    assert "Traceback" not in err, err


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Visit:
    """One browser context (its own cookies) on the server, recording every URL requested."""

    def __init__(self, browser: Any, server: Served, viewport: dict[str, int] = DESKTOP) -> None:
        self.server = server
        self.context = browser.new_context(viewport=viewport, base_url=server.url)
        self.page = self.context.new_page()
        self.page.set_default_timeout(10_000)
        self.urls: list[str] = []
        self.page.on("request", lambda request: self.urls.append(request.url))
        self.page.on("dialog", lambda dialog: dialog.accept())

    def sign_in(self, key: str) -> None:
        self.page.goto("/")
        assert self.page.url.endswith("/signin")  # no session: the sign-in page
        self.page.fill("#key", key)
        self.page.press("#key", "Enter")
        self.page.wait_for_url(f"{self.server.url}/")

    def text(self, selector: str) -> str:
        return str(self.page.locator(selector).inner_text()).strip()

    def no_key_in_any_url(self, *keys: str) -> None:
        history = self.page.evaluate("() => [location.href, document.referrer, history.length]")
        for key in keys:
            assert all(key not in url for url in self.urls), key[:6]
            assert key not in str(history)

    def close(self) -> None:
        self.context.close()


def money(text: str) -> Decimal:
    return Decimal(text.replace("$", "").replace(",", ""))


def test_admin_reads_numbers_that_equal_the_ledger_on_every_page(
    browser: Any, server: Served, gw: Gateway, screenshots: Path
) -> None:
    visit = Visit(browser, server)
    try:
        visit.sign_in(ADMIN_KEY)
        page = visit.page
        balance = gw.credits.balance()
        assert money(visit.text("#available")) == balance.available
        assert money(visit.text("#held")) == balance.held
        assert TZ in page.inner_text("footer")

        page.goto("/usage?since=2000-01-01&until=2100-12-31")
        assert "at most 366 days" in page.inner_text("main")  # an error on the page
        page.goto("/usage")
        total = sum((r.cost for r in gw.credits.usage(group_by="model")), Decimal(0))
        assert total > 0
        for cell in ("#usage-total", "#chart-total", "#model-total", "#tag-total"):
            assert money(visit.text(cell)) == total, cell
        assert page.locator("#chart rect").count() >= 2  # bars (and no script drew them)

        page.goto("/requests")
        assert page.locator("#requests tbody tr").count() == len(gw.credits.requests())
        assert f"Time ({TZ})" in visit.text("#requests thead")
        page.fill("#f-model", "other/n")
        page.click("form.filters button[type=submit]")
        page.wait_for_url(re.compile(r"model=other%2Fn"))
        shown = page.locator("#requests tbody tr")
        assert shown.count() == len([r for r in gw.credits.requests() if r.model == "n"]) > 0
        assert all("other/n" in row for row in shown.all_inner_texts())

        for width, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            page.set_viewport_size(viewport)
            for path in PAGES:
                page.goto(path)
                assert "Traceback" not in page.content()
                name = path.strip("/") or "overview"
                page.screenshot(path=str(screenshots / f"{name}-{width}.png"), full_page=True)
                if width == "phone":
                    overflow = page.evaluate(
                        "() => document.documentElement.scrollWidth - window.innerWidth"
                    )
                    assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 375px"
        visit.no_key_in_any_url(ADMIN_KEY)
    finally:
        visit.close()


def test_admin_sets_a_daily_limit_that_is_audited_and_refuses_the_next_call(
    browser: Any, server: Served, gw: Gateway
) -> None:
    from openai import OpenAI, RateLimitError

    key = gw.keys.create(account="team-b", name="b").key
    client = OpenAI(base_url=server.base_url, api_key=key, max_retries=0)
    client.chat.completions.create(model="smart", messages=[{"role": "user", "content": "hi"}])

    visit = Visit(browser, server)
    try:
        visit.sign_in(ADMIN_KEY)
        page = visit.page
        page.select_option("#account-picker", "team-b")  # the picker submits itself
        page.wait_for_url(re.compile(r"account=team-b"))
        page.click("nav >> text=Settings")
        page.fill("#daily", "abc")
        page.click("text=Save limits")
        assert "not an amount" in visit.text("#limits-error")  # the API's own words
        page.fill("#daily", "0.000001")
        page.click("text=Save limits")
        page.wait_for_url(re.compile(r"saved=limits"))
        assert visit.text("#daily-limit") == "$0.000001"
        assert "daily cap: $0.000001" in visit.text("#settings-history")
    finally:
        visit.close()
    changes = gw.credits.account("team-b").history(kinds=["settings"])
    assert changes[0].meta["daily"] == 1000  # nano-dollars, written through the ledger
    with pytest.raises(RateLimitError) as refused:
        client.chat.completions.create(model="smart", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.code == "spend_limit_exceeded"


def test_admin_creates_a_key_shown_once_uses_it_and_revokes_it(
    browser: Any, server: Served, gw: Gateway
) -> None:
    from openai import AuthenticationError, OpenAI

    visit = Visit(browser, server)
    try:
        visit.sign_in(ADMIN_KEY)
        page = visit.page
        page.click("nav >> text=Keys")
        page.fill("#k-name", "from the browser")
        page.fill("#k-daily", "2")
        page.click("text=Create key")
        new_key = visit.text("#new-key")
        assert new_key.startswith("gk_")
        client = OpenAI(base_url=server.base_url, api_key=new_key, max_retries=0)
        answer = client.chat.completions.create(
            model="cheap", messages=[{"role": "user", "content": "hi"}]
        )
        assert answer.choices[0].message.content

        page.reload()  # a reload GETs the page: the key is not shown again
        assert new_key not in page.content()
        made = next(k for k in gw.keys.list() if k.name == "from the browser")
        assert made.daily_limit == Decimal("2")
        page.click(f"tr[data-key-id='{made.id}'] button:has-text('Revoke')")  # confirm: yes
        page.wait_for_url(re.compile(r"revoked="))
        assert "revoked" in visit.text(f"tr[data-key-id='{made.id}']")
        assert gw.keys.get(made.id).revoked
        visit.no_key_in_any_url(ADMIN_KEY, new_key)
    finally:
        visit.close()
    deadline = time.monotonic() + 10  # every worker refuses it within a second
    while True:
        try:
            client.chat.completions.create(
                model="cheap", messages=[{"role": "user", "content": "x"}]
            )
        except AuthenticationError:
            break
        assert time.monotonic() < deadline, "a revoked key was still accepted after 10 s"
        time.sleep(0.1)


def test_an_account_key_sees_its_own_account_read_only(
    browser: Any, server: Served, gw: Gateway
) -> None:
    key = gw.keys.create(account="default", name="reader").key
    visit = Visit(browser, server, viewport=PHONE)
    try:
        visit.sign_in(key)
        page = visit.page
        assert "read only" in visit.text("header")
        assert money(visit.text("#available")) == gw.credits.balance().available
        assert page.locator("#account-picker").count() == 0
        page.goto("/settings")
        assert page.locator("form[action^='/settings/limits']").count() == 0
        page.goto("/keys")
        assert page.locator("text=Create a key").count() == 0
        page.goto("/?account=team-b")
        assert "its own account only" in page.inner_text("main")
        page.goto("/")
        page.click("text=Sign out")
        page.wait_for_url(f"{server.url}/signin")
        page.goto("/usage")
        assert page.url.endswith("/signin")
        visit.no_key_in_any_url(key)
    finally:
        visit.close()


def test_a_form_without_its_csrf_token_is_refused(
    browser: Any, server: Served, gw: Gateway
) -> None:
    visit = Visit(browser, server)
    try:
        visit.sign_in(ADMIN_KEY)
        before = gw.credits.settings().monthly_limit
        # The session's own cookie goes along, but not the form's token.
        answer = visit.context.request.post("/settings/limits", form={"monthly": "1"})
        assert answer.status == 403
        assert "reload the page" in answer.text()
        forged = visit.context.request.post(
            "/settings/limits", form={"monthly": "1", "csrf": "not-the-token"}
        )
        assert forged.status == 403
        assert gw.credits.settings().monthly_limit == before
    finally:
        visit.close()


def test_the_keyboard_reaches_every_form(browser: Any, server: Served) -> None:
    visit = Visit(browser, server)
    try:
        page = visit.page
        page.goto("/signin")
        assert page.evaluate("() => document.activeElement.id") == "key"  # focused at once
        page.keyboard.type(ADMIN_KEY)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{server.url}/")
        for path, target in (("/settings", "daily"), ("/keys", "k-name"), ("/requests", "f-route")):
            page.goto(path)
            page.keyboard.press("Tab")  # the skip link first
            assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
            reached = False
            for _ in range(40):
                page.keyboard.press("Tab")
                if page.evaluate("() => document.activeElement.id") == target:
                    reached = True
                    break
            assert reached, f"Tab never reached #{target} on {path}"
            visible = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
            assert visible != "none"  # the focus is visible
    finally:
        visit.close()
