"""BOSS: the sandbox back office and its page objects, clicked through in Debian's Chromium."""

from __future__ import annotations

import re
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import Sandbox, screenshot_path
from playwright.sync_api import Dialog, Route

from kuroko.browser import Browser
from kuroko.errors import LoginRefused, PageChanged, SiteUnavailable
from kuroko.settings import Settings
from pages.base import SELECTORS_DIR, Selectors
from pages.boss.order_detail import BossOrderDetail, BossOrderView, OrderNotInBoss
from pages.boss.order_list import BossOrderList
from pages.boss.settings import BossSettings
from pages.boss.site import BossSite

SIM = "SIM-DATA-30D-20GB"
SIM_90 = "SIM-DATA-90D-50GB"
UNKNOWN = "381234-20261120-0000000000"
SECTIONS = ["New Order", "Confirmation to be", "Shipping in Progress", "Shipped", "Deleted", "Cancelled"]


BOSS: list[BossSettings] = []
"""Where the module's BOSS is (set by the ``chromium`` fixture)."""


@dataclass
class Boss:
    browser: Browser
    site: BossSite
    orders: BossOrderList
    detail: BossOrderDetail

    def site_with(self, password: str) -> BossSite:
        settings = BOSS[0]
        return BossSite(self.browser.page("boss"), settings.boss_url, settings.boss_user, password,
                        on_login=lambda: self.browser.save_login("boss"))

    def shot(self, name: str) -> Path:
        path = screenshot_path(name)
        self.site.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture(scope="module")
def chromium(sandbox_process: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """One Chromium for the module (launching it is the slow part); each test gets a fresh context."""
    BOSS[:] = [BossSettings(boss_url=sandbox_process.urls["boss"])]
    settings = Settings(data_dir=tmp_path_factory.mktemp("boss-data"))
    with Browser(settings, tracing=False) as browser:
        yield browser


@pytest.fixture
def boss(chromium: Browser, sandbox: Sandbox, tmp_path: Path) -> Iterator[Boss]:
    chromium.sessions_dir = tmp_path / "sessions"
    settings = BOSS[0]
    site = BossSite(chromium.page("boss"), settings.boss_url, settings.boss_user,
                    settings.boss_password.get_secret_value(), on_login=lambda: chromium.save_login("boss"))
    try:
        yield Boss(chromium, site, BossOrderList(site), BossOrderDetail(site))
    finally:
        chromium.reset("boss")
        sandbox.clear_faults()


def boss_audit(sandbox: Sandbox, action: str, order_number: str) -> list[dict[str, object]]:
    return [e for e in sandbox.audit("boss", action) if e["order_number"] == order_number]


def selector_keys() -> list[str]:
    return Selectors.load("boss").keys()


# --- login ---------------------------------------------------------------------------------------
def test_wrong_password_is_refused_with_the_page_message_and_the_right_one_works(
        boss: Boss, sandbox: Sandbox) -> None:
    wrong = boss.site_with("not-the-password")
    with pytest.raises(LoginRefused) as refused:
        wrong.goto("/orders")
    assert "The user ID or password is incorrect." in str(refused.value)
    assert "not-the-password" not in str(refused.value)
    assert wrong.el("login.error").inner_text() == "The user ID or password is incorrect."
    assert wrong.el("login.user").input_value() == wrong.user
    boss.shot("boss_login_refused")
    assert not boss.browser.storage_state_path("boss").exists()

    boss.site.goto("/orders")
    assert not boss.site.is_login_page()
    boss.site.expect_visible("order_list.heading")
    saved = boss.browser.storage_state_path("boss")
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert [e["action"] for e in sandbox.audit("boss") if "login" in e["action"]] == ["login_failed", "login"]


# --- order list ----------------------------------------------------------------------------------
def test_order_list_shows_each_order_under_its_state(boss: Boss, sandbox: Sandbox) -> None:
    sandbox.set_stock(rsl={SIM_90: 2})
    shipped = sandbox.place_order([SIM_90])["order_number"]
    sandbox.advance(days=1, minutes=1)
    in_progress = sandbox.place_order([SIM_90])["order_number"]
    waiting = sandbox.place_order({SIM: 2})["order_number"]
    unlisted = sandbox.place_order([SIM], boss_listed=False)["order_number"]
    sandbox.advance(minutes=31)

    listing = boss.orders.read()
    boss.shot("boss_order_list")

    assert listing.state_of(shipped) == "Shipped"
    assert listing.state_of(in_progress) == "Shipping in Progress"
    assert listing.state_of(waiting) == "Confirmation to be"
    assert listing.state_of(unlisted) is None
    assert set(listing.orders) == {shipped, in_progress, waiting}
    for number, row in listing.orders.items():
        truth = sandbox.order(number)
        assert row.state == truth["boss_state"]
        assert row.placed_at == datetime.fromisoformat(truth["placed_at"])
        assert row.buyer == truth["buyer"]
    # One long page: every state has its own section, Deleted and Cancelled last.
    assert boss.site.el("order_list.section_state").all_inner_texts() == SECTIONS


def test_order_list_reads_a_thousand_rows_in_one_page_load(boss: Boss, sandbox: Sandbox) -> None:
    sandbox.reset(seed=5, scenario="day", orders=1200)
    truth = {o["order_number"]: o["boss_state"] for o in sandbox.get("/admin/orders") if o["boss_listed"]}
    assert len(truth) > 1000
    boss.site.goto("/orders")  # log in first: the read itself is then one page load
    loads = boss.browser.page_loads["boss"]
    started = time.monotonic()
    listing = boss.orders.read()
    took = time.monotonic() - started
    assert boss.browser.page_loads["boss"] - loads == 1
    assert {n: o.state for n, o in listing.orders.items()} == truth
    assert took < 20, f"reading {len(truth)} rows took {took:.1f} s"


# --- order detail and Order Deletion -------------------------------------------------------------
def test_order_deletion_deletes_the_order_and_never_cancels(boss: Boss, sandbox: Sandbox) -> None:
    number = sandbox.place_order([SIM])["order_number"]
    other = sandbox.place_order([SIM])["order_number"]
    sandbox.advance(minutes=31)

    assert boss.detail.open(number) == BossOrderView(order_number=number, state="Confirmation to be")
    page = boss.site.page
    assert page.get_by_role("button", name="Order Cancellation", exact=True).count() == 1
    boss.shot("boss_order_detail")

    boss.site.goto("/orders")  # delete_order opens the detail itself
    view = boss.detail.delete_order(number)
    assert view == BossOrderView(order_number=number, state="Deleted")
    boss.shot("boss_order_deleted")

    truth = sandbox.order(number)
    assert truth["boss_state"] == "Deleted"
    assert truth["boss_history"] == ["Confirmation to be", "Deleted"]
    assert len(boss_audit(sandbox, "order_deleted", number)) == 1
    assert sandbox.audit("boss", "order_cancelled") == []
    assert sandbox.order(other)["boss_state"] == "Confirmation to be"
    # The buttons are gone; the page says so.
    assert page.get_by_role("button", name="Order Deletion").count() == 0
    assert page.get_by_role("button", name="Order Cancellation").count() == 0
    assert page.get_by_role("status").inner_text() == f"Order {number} was deleted from BOSS."
    assert boss.orders.read().state_of(number) == "Deleted"

    # Asked again (say after a crash), it sees the order already Deleted and clicks nothing.
    assert boss.detail.delete_order(number).state == "Deleted"
    assert len(boss_audit(sandbox, "order_deleted", number)) == 1


def test_a_person_clicking_order_cancellation_really_cancels(boss: Boss, sandbox: Sandbox) -> None:
    cancelled = sandbox.place_order([SIM])["order_number"]
    deleted = sandbox.place_order([SIM])["order_number"]
    boss.detail.delete_order(deleted)

    boss.detail.open(cancelled)
    page = boss.site.page
    asked: list[str] = []

    def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.get_by_role("button", name="Order Cancellation", exact=True).click()
    page.get_by_text(f"Order {cancelled} was cancelled.").wait_for()
    boss.shot("boss_order_cancelled")

    assert asked and asked[0].startswith("Order Cancellation") and f"Cancel order {cancelled}?" in asked[0]
    assert "Order Deletion" not in asked[0]
    assert sandbox.order(cancelled)["boss_state"] == "Cancelled"
    assert sandbox.order(cancelled)["rms_status"] == "キャンセル確定"
    assert sandbox.order(deleted)["rms_status"] == "注文確認待ち"
    assert len(boss_audit(sandbox, "order_cancelled", cancelled)) == 1
    assert boss_audit(sandbox, "order_deleted", cancelled) == []
    summary = sandbox.get("/admin/summary")
    assert (summary["boss_deletions"], summary["boss_cancellations"]) == (1, 1)

    assert boss.detail.read(cancelled).state == "Cancelled"
    listing = boss.orders.read()
    assert (listing.state_of(cancelled), listing.state_of(deleted)) == ("Cancelled", "Deleted")
    # The robot cannot delete what a person cancelled: there is no button, and nothing changes.
    with pytest.raises(PageChanged, match="no 'Order Deletion' button"):
        BossOrderDetail(boss.site, timeout_ms=1_000).delete_order(cancelled)
    assert sandbox.order(cancelled)["boss_state"] == "Cancelled"


def test_deletion_dialog_that_speaks_of_cancelling_is_dismissed(boss: Boss, sandbox: Sandbox) -> None:
    """A changed page whose `Order Deletion` button asks the cancellation question: nothing happens."""
    number = sandbox.place_order([SIM])["order_number"]

    def swap_question(route: Route) -> None:
        response = route.fetch()
        body = response.text()
        cancel_question = re.search(r'data-confirm="Order Cancellation[^"]*"', body)
        if cancel_question is not None:
            body = re.sub(r'data-confirm="Order Deletion[^"]*"', lambda _: cancel_question.group(0), body)
            swapped.append(route.request.url)
        route.fulfill(response=response, body=body)

    swapped: list[str] = []
    boss.site.goto("/orders")
    boss.site.page.route(f"**/orders/{number}", swap_question)
    with pytest.raises(PageChanged, match="not the deletion confirmation"):
        boss.detail.delete_order(number)
    assert swapped, "the changed page was never served"
    assert sandbox.order(number)["boss_state"] == "Confirmation to be"
    assert sandbox.audit("boss", "order_deleted") == []
    assert sandbox.audit("boss", "order_cancelled") == []


def test_unlisted_order_is_a_404_page(boss: Boss, sandbox: Sandbox) -> None:
    unlisted = sandbox.place_order([SIM], boss_listed=False)["order_number"]
    boss.site.goto("/orders")
    response = boss.site.page.goto(boss.site.url(f"/orders/{unlisted}"))
    assert response is not None and response.status == 404
    boss.shot("boss_not_found")
    with pytest.raises(OrderNotInBoss, match=unlisted):
        boss.detail.open(unlisted)
    with pytest.raises(OrderNotInBoss):
        boss.detail.delete_order(unlisted)
    assert sandbox.audit("boss", "order_deleted") == []


# --- sessions, faults, CSRF ----------------------------------------------------------------------
def test_expired_session_logs_in_again_and_rewrites_the_saved_login(boss: Boss, sandbox: Sandbox) -> None:
    number = sandbox.place_order([SIM])["order_number"]
    boss.orders.read()
    saved = boss.browser.storage_state_path("boss")
    first = saved.read_text()
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600

    sandbox.fault("boss", expire_sessions=True)
    assert boss.orders.read().state_of(number) == "Confirmation to be"
    second = saved.read_text()
    assert second != first, "the saved login was not rewritten after logging in again"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600

    # The session ends between opening the order and pressing the button: the POST lands on the
    # login page; the page object logs in and deletes, exactly once.
    boss.detail.open(number)
    sandbox.fault("boss", expire_sessions=True)
    assert boss.detail.delete_order(number).state == "Deleted"
    assert len(boss_audit(sandbox, "order_deleted", number)) == 1
    assert [e["action"] for e in sandbox.audit("boss") if e["action"] == "login"] == ["login"] * 3
    assert saved.read_text() not in (first, second)


def test_session_idle_for_a_night_asks_for_login_again(boss: Boss, sandbox: Sandbox) -> None:
    boss.orders.read()
    sandbox.advance(hours=13)
    boss.site.page.goto(boss.site.url("/orders"))
    assert boss.site.is_login_page()
    assert boss.orders.read().orders == {}


def test_hidden_elements_raise_page_changed(boss: Boss, sandbox: Sandbox) -> None:
    number = sandbox.place_order([SIM])["order_number"]
    quick_detail = BossOrderDetail(boss.site, timeout_ms=1_000)
    quick_list = BossOrderList(boss.site, timeout_ms=1_000)

    sandbox.fault("boss", hide_elements=["order_deletion"])
    with pytest.raises(PageChanged, match=r"no 'Order Deletion' button.*order_detail\.delete_button"):
        quick_detail.delete_order(number)
    assert sandbox.order(number)["boss_state"] == "Confirmation to be"

    sandbox.fault("boss", hide_elements=["order_state"])
    with pytest.raises(PageChanged, match=r"order_detail\.state"):
        quick_detail.open(number)

    sandbox.fault("boss", hide_elements=["state_headings"])
    with pytest.raises(PageChanged, match=r"order_list\.section_state"):
        quick_list.read()

    sandbox.fault("boss", hide_elements=["order_table"])
    with pytest.raises(PageChanged, match=r"order_list\.table"):
        quick_list.read()
    assert sandbox.audit("boss", "order_deleted") == []


def test_server_errors_are_reported_as_site_unavailable(boss: Boss, sandbox: Sandbox) -> None:
    sandbox.fault("boss", error_rate=1.0, error_paths=["/orders"])
    with pytest.raises(SiteUnavailable, match="HTTP 500"):
        boss.orders.read()
    sandbox.clear_faults()
    assert boss.orders.read().orders == {}


def test_forms_need_a_session_and_a_valid_csrf_token(sandbox: Sandbox) -> None:
    number = sandbox.place_order([SIM])["order_number"]
    settings = BossSettings()
    with httpx.Client(base_url=sandbox.urls["boss"]) as http:
        r = http.get(f"/orders/{number}")
        assert (r.status_code, r.headers["location"]) == (303, f"/login?next=/orders/{number}")
        r = http.post(f"/orders/{number}/delete", data={"csrf_token": "x"})
        assert r.headers["location"] == f"/login?next=/orders/{number}"

        login_page = http.get(r.headers["location"])
        token = re.search(r'name="csrf_token" value="([^"]+)"', login_page.text)
        assert token is not None
        r = http.post("/login", data={"user_id": settings.boss_user, "csrf_token": token.group(1),
                                      "password": settings.boss_password.get_secret_value(),
                                      "next": f"/orders/{number}"})
        assert (r.status_code, r.headers["location"]) == (303, f"/orders/{number}")

        detail = http.get(f"/orders/{number}")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', detail.text)
        assert csrf is not None
        assert http.post(f"/orders/{number}/delete", data={"csrf_token": "forged"}).status_code == 403
        assert http.post(f"/orders/{number}/delete", data={}).status_code == 403
        assert sandbox.order(number)["boss_state"] == "Confirmation to be"

        assert http.post(f"/orders/{number}/delete", data={"csrf_token": csrf.group(1)}).status_code == 303
        again = http.post(f"/orders/{number}/cancel", data={"csrf_token": csrf.group(1)})
        assert again.status_code == 409 and "nothing was changed" in again.text
    assert sandbox.order(number)["boss_state"] == "Deleted"
    assert sandbox.audit("boss", "order_cancelled") == []


# --- the selectors file ---------------------------------------------------------------------------
def test_every_selector_resolves_on_its_screen_and_none_reaches_order_cancellation(
        boss: Boss, sandbox: Sandbox) -> None:
    number = sandbox.place_order([SIM])["order_number"]
    site, page = boss.site, boss.site.page
    specs = Selectors.load("boss").specs
    assert set(specs) == {"login", "order_list", "order_detail", "not_found"}

    def resolves(screen: str) -> None:
        for key in specs[screen]:
            assert site.el(f"{screen}.{key}").count() >= 1, f"{screen}.{key} matches nothing on {page.url}"

    page.goto(site.url("/login"))
    site.el("login.user").fill(site.user)
    site.el("login.password").fill("wrong")
    site.el("login.submit").click()
    site.el("login.error").wait_for()
    resolves("login")

    site.goto("/orders")
    resolves("order_list")
    site.goto(f"/orders/{UNKNOWN}")
    resolves("not_found")

    site.goto(f"/orders/{number}")
    resolves("order_detail")
    cancellation = page.get_by_role("button", name="Order Cancellation", exact=True)
    assert cancellation.count() == 1
    target = cancellation.element_handle()
    for key in selector_keys():
        hits = site.el(key).evaluate_all("(els, target) => els.some((el) => el === target)", target)
        assert not hits, f"selectors/boss.yaml '{key}' resolves to the Order Cancellation button"

    raw = yaml.safe_load((SELECTORS_DIR / "boss.yaml").read_text(encoding="utf-8"))
    assert "cancel" not in repr(raw).lower()
    assert [m for m in dir(BossOrderDetail) if "cancel" in m.lower()] == []


def test_page_objects_use_exactly_the_keys_in_the_file(boss: Boss, sandbox: Sandbox) -> None:
    """Drives every page-object path once; the keys they asked for are the keys in the file."""
    number = sandbox.place_order([SIM])["order_number"]
    wrong = boss.site_with("wrong")
    wrong.page.goto(wrong.url("/login"))
    with pytest.raises(LoginRefused):
        wrong.login()
    boss.orders.read()
    boss.detail.delete_order(number)
    with pytest.raises(OrderNotInBoss):
        boss.detail.open(UNKNOWN)
    used = boss.site.selectors.used | wrong.selectors.used
    keys = set(selector_keys())
    assert used - keys == set(), f"page objects use keys missing from selectors/boss.yaml: {used - keys}"
    assert keys - used == set(), f"selectors/boss.yaml has keys no page object uses: {keys - used}"

