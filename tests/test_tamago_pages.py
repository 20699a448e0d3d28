"""たまごリピート: the sandbox's Japanese admin, clicked through by the page objects in a real Chromium
(kuroko/browser.py), and compared with the world's truth through the admin API."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pytest
from conftest import Sandbox, screenshot_path

from kuroko.browser import Browser
from kuroko.errors import LoginRefused, PageChanged, SiteUnavailable, UnknownValue
from kuroko.settings import Settings
from pages.base import Selectors
from pages.tamago.customer_search import TamagoCustomerSearch
from pages.tamago.errors import OrderVanished
from pages.tamago.order_page import TamagoOrderPage
from pages.tamago.order_search import TamagoOrderSearch
from pages.tamago.reasons import Reason, classify, mismatch_amounts
from pages.tamago.settings import TamagoSettings
from pages.tamago.site import TamagoSite

SITE = "tamago"
TODAY = date(2026, 11, 20)


@dataclass
class Tamago:
    """A logged-out robot's view of たまご: its site, page objects, and its logins counted."""

    browser: Browser
    site: TamagoSite
    search: TamagoOrderSearch
    order: TamagoOrderPage
    customers: TamagoCustomerSearch
    logins: list[str] = field(default_factory=list)

    def shoot(self, name: str) -> None:
        self.site.page.screenshot(path=str(screenshot_path(f"tamago-{name}")), full_page=True)


def make_tamago(browser: Browser, sandbox: Sandbox, password: str | None = None) -> Tamago:
    settings = TamagoSettings(tamago_url=sandbox.urls["tamago"])
    logins: list[str] = []

    def saved() -> None:
        logins.append(browser.page(SITE).url)
        browser.save_login(SITE)

    site = TamagoSite(browser.page(SITE), settings.tamago_url, settings.tamago_user,
                      password if password is not None else settings.tamago_password.get_secret_value(),
                      on_login=saved)
    return Tamago(browser, site, TamagoOrderSearch(site), TamagoOrderPage(site), TamagoCustomerSearch(site),
                  logins)


@pytest.fixture(scope="module")
def shared_browser(sandbox_process: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("tamago-data"))
    with Browser(settings, tracing=False) as b:
        yield b


@pytest.fixture
def tamago_browser(shared_browser: Browser) -> Browser:
    shared_browser.reset(SITE)
    shared_browser.forget_login(SITE)
    return shared_browser


@pytest.fixture
def tamago(tamago_browser: Browser, sandbox: Sandbox) -> Iterator[Tamago]:
    robot = make_tamago(tamago_browser, sandbox)
    yield robot
    unknown = robot.site.selectors.used - set(robot.site.selectors.keys())
    assert not unknown, f"page objects used keys missing from selectors/tamago.yaml: {sorted(unknown)}"


def changes(state: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [h for h in state["history"] if h["field"] == name]


# --- settings and login -----------------------------------------------------------------------
def test_settings_default_to_the_sandbox_and_read_kuroko_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = TamagoSettings()
    assert (settings.tamago_url, settings.tamago_user) == ("http://127.0.0.1:8105", "tamago-demo")
    assert str(settings.tamago_password) == "**********"
    monkeypatch.setenv("KUROKO_TAMAGO_URL", "http://127.0.0.1:9999")
    assert TamagoSettings().tamago_url == "http://127.0.0.1:9999"


def test_robot_env_points_at_the_wing(sandbox: Sandbox) -> None:
    env = sandbox.robot_env()
    assert env["KUROKO_TAMAGO_URL"] == sandbox.urls["tamago"]
    assert (env["KUROKO_TAMAGO_USER"], env["KUROKO_TAMAGO_PASSWORD"]) == ("tamago-demo", "tamago-demo-password")


def test_wrong_password_is_refused_with_a_clear_message(tamago_browser: Browser, sandbox: Sandbox) -> None:
    robot = make_tamago(tamago_browser, sandbox, password="not-the-password")
    robot.site.page.goto(sandbox.urls["tamago"] + "/login")
    robot.site.expect_visible("login.heading")
    robot.shoot("login")
    with pytest.raises(LoginRefused, match="KUROKO_TAMAGO_PASSWORD"):
        robot.search.flagged()
    assert "ログインIDまたはパスワードが正しくありません" in robot.site.expect_visible("login.error").inner_text()
    assert robot.logins == [] and len(sandbox.audit("tamago", "login_refused")) == 1


# --- 注文検索 ----------------------------------------------------------------------------------
def test_flagged_reads_every_page_once(tamago: Tamago, sandbox: Sandbox) -> None:
    made = [sandbox.tamago_order("remote_island") for _ in range(42)]
    made.append(sandbox.tamago_order("manual", comment="手動"))
    made.append(sandbox.tamago_order("discount_candidate", subscription=True, cycle=2))
    for _ in range(5):
        sandbox.tamago_order(None)  # not flagged
    orders = tamago.search.flagged()
    tamago.shoot("search")
    assert len(tamago.logins) == 1
    truth = {o["order_id"]: o for o in sandbox.get("/admin/tamago/orders", flagged=True)}
    assert sorted(o.order_id for o in orders) == sorted(truth) == sorted(o["order_id"] for o in made)
    by_id = {o.order_id: o for o in orders}
    for order_id, fact in truth.items():
        row = by_id[order_id]
        assert row.reasons == fact["messages"]
        assert (row.status, row.payment_method, row.ship_date.isoformat()) == (
            fact["status"], fact["payment_method"], fact["ship_date"])
        assert row.placed_at == datetime.fromisoformat(fact["placed_at"])
        assert row.subscription_cycle == fact["cycle"]
    assert by_id[made[42]["order_id"]].hand_set
    assert not by_id[made[0]["order_id"]].hand_set
    assert by_id[made[43]["order_id"]].subscription_cycle == 2
    page_loads = [e for e in sandbox.audit("tamago") if e["action"] == "login"]
    assert len(page_loads) == 1


def test_flagged_with_nothing_flagged_is_empty(tamago: Tamago, sandbox: Sandbox) -> None:
    sandbox.tamago_order(None)
    assert tamago.search.flagged() == []


# --- 注文詳細 ----------------------------------------------------------------------------------
def test_order_pages_of_each_kind_show_what_tamago_holds(tamago: Tamago, sandbox: Sandbox) -> None:
    cases = {
        "normal": sandbox.tamago_order("remote_island"),
        "subscription": sandbox.tamago_order("discount_candidate", subscription=True, cycle=2, ship_in_days=-2),
        "payment_failed": sandbox.tamago_order("payment_failed", cycle=3),
        "blacklisted": sandbox.tamago_order("blacklisted"),
        "mismatch": sandbox.tamago_order("amount_mismatch", paid_amount=3000),
        "manual": sandbox.tamago_order("manual", comment="在庫確認のため保留"),
        "np": sandbox.tamago_order("np_ng_2"),
    }
    views = {}
    for kind, fact in cases.items():
        view = tamago.order.open(fact["order_id"])
        views[kind] = view
        if kind in ("normal", "subscription", "payment_failed"):
            tamago.shoot(f"order-{kind}")
        c = fact["customer"]
        assert view.order_id == fact["order_id"]
        assert view.reasons == fact["messages"]
        assert (view.status, view.flagged, view.payment_method) == (fact["status"], True, fact["payment_method"])
        assert view.ship_date.isoformat() == fact["ship_date"]
        assert (view.shipping_fee_yen, view.member_discount, view.discount_yen, view.subtotal_yen, view.total_yen) == (
            fact["shipping_fee"], fact["member_discount"], fact["discount_yen"], fact["subtotal"], fact["total"])
        assert view.interval_days == fact["interval_days"]
        assert (view.customer_id, view.customer_name, view.customer_kana, view.phone, view.postal_code,
                view.prefecture, view.address, view.email, view.blacklisted) == (
            c["customer_id"], c["name"], c["kana"], c["phone"], c["postal_code"], c["prefecture"], c["address"],
            c["email"], c["blacklisted"])
        assert [i.model_dump() for i in view.items] == fact["items"]
        assert view.order_flag.model_dump() == {**fact["flag"], "date": date.fromisoformat(fact["flag"]["date"])}
        assert view.is_subscription == (fact["subscription_id"] is not None)
        if view.subscription is not None:
            assert (view.subscription.subscription_id, view.subscription.cycle) == (
                fact["subscription_id"], fact["cycle"])
            assert view.subscription.previous_order_id == fact["previous_order_id"]
            assert view.subscription_flag is not None and view.subscription_flag.is_set
        else:
            assert view.subscription_flag is None
    assert views["normal"].reason_kinds == [Reason.REMOTE_ISLAND]
    assert views["subscription"].overdue(TODAY) and views["subscription"].interval_days == 30
    failed = views["payment_failed"]
    assert failed.reason_kinds == [Reason.PAYMENT_FAILED] and failed.status == "出荷済"
    assert failed.subscription is not None and failed.subscription.next_order_note == (
        "第4回の定期注文は決済失敗のため作成されていません")
    assert views["blacklisted"].blacklisted
    assert views["mismatch"].reason_kinds == [Reason.AMOUNT_MISMATCH]
    assert mismatch_amounts(views["mismatch"].reasons[0]) == (3000, cases["mismatch"]["total"])
    assert views["manual"].hand_set and views["manual"].order_flag.comment == "在庫確認のため保留"
    assert views["np"].reason_kinds == [Reason.NP_NG_2] and views["np"].status == "与信NG"
    assert classify("ご注文内容に不備があります") is None
    assert len(tamago.logins) == 1


def test_vanished_order_is_a_clear_error_for_a_person(tamago: Tamago, sandbox: Sandbox) -> None:
    order_id = sandbox.tamago_order("remote_island")["order_id"]
    [listed] = tamago.search.flagged()
    assert listed.order_id == order_id
    sandbox.client.delete(f"{sandbox.admin}/admin/tamago/orders/{order_id}").raise_for_status()
    with pytest.raises(OrderVanished, match=f"{order_id} is gone") as caught:
        tamago.order.open(order_id)
    assert caught.value.code == "order_vanished" and caught.value.order_id == order_id
    tamago.shoot("not-found")

    other = sandbox.tamago_order("remote_island")["order_id"]
    tamago.order.open(other)
    sandbox.client.delete(f"{sandbox.admin}/admin/tamago/orders/{other}").raise_for_status()
    with pytest.raises(OrderVanished):
        tamago.order.release("確認済み", TODAY)
    assert sandbox.audit("tamago", "flag_updated") == []


# --- release -----------------------------------------------------------------------------------
def test_release_a_normal_order(tamago: Tamago, sandbox: Sandbox) -> None:
    order_id = sandbox.tamago_order("blacklist_candidate", blacklisted_match=False)["order_id"]
    tamago.order.open(order_id)
    view = tamago.order.release("顧客検索の結果ブラックリスト該当なしのため解除（Kuroko）", TODAY)
    tamago.site.expect_visible("order.updated_message")
    tamago.shoot("order-released")
    assert view.released and not view.flagged and view.status == "発送準備中"
    assert view.order_flag.model_dump() == {"status": "解除", "date": TODAY,
                                            "comment": "顧客検索の結果ブラックリスト該当なしのため解除（Kuroko）"}
    state = sandbox.tamago(order_id)
    assert state["status"] == "発送準備中" and not state["flagged"]
    assert [len(changes(state, f)) for f in ("flag", "flag_date", "flag_comment", "status")] == [2, 1, 1, 1]
    again = tamago.order.release("もう一度", TODAY)
    assert again.order_flag.comment.endswith("（Kuroko）"), "already released: nothing submitted"
    assert len(sandbox.audit("tamago", "flag_updated")) == 1


def test_release_a_subscription_order_both_fields_in_one_visit(tamago: Tamago, sandbox: Sandbox) -> None:
    order_id = sandbox.tamago_order("discount_candidate", subscription=True, cycle=3)["order_id"]
    view = tamago.order.open(order_id)
    assert view.order_flag.is_set and view.subscription_flag is not None and view.subscription_flag.is_set
    loads_before = len(sandbox.audit("tamago", "login"))
    view = tamago.order.release("定期会員なし、割引対象外のため解除", TODAY, both=True)
    assert view.released and view.status == "発送準備中"
    assert view.subscription_flag is not None and view.subscription_flag.status == "解除"
    state = sandbox.tamago(order_id)
    for name in ("flag", "subscription_flag"):
        assert [h["new"] for h in changes(state, name)] == ["設定", "解除"], "each field released once"
    assert len(changes(state, "status")) == 1 and state["status"] == "発送準備中"
    assert [e["order_id"] for e in sandbox.audit("tamago", "order_released")] == [order_id]
    assert len(sandbox.audit("tamago", "login")) == loads_before


def test_release_only_this_order_leaves_the_subscription_flag(tamago: Tamago, sandbox: Sandbox) -> None:
    order_id = sandbox.tamago_order("discount_candidate", subscription=True)["order_id"]
    tamago.order.open(order_id)
    view = tamago.order.release("今回分のみ", TODAY, both=False)
    assert not view.released and view.flagged and view.status == "新規受付"
    assert sandbox.tamago(order_id)["subscription_flag"]["status"] == "設定"


# --- 注文修正 ----------------------------------------------------------------------------------
def test_correct_fee_date_interval_and_discount(tamago: Tamago, sandbox: Sandbox) -> None:
    order_id = sandbox.tamago_order("remote_island", subscription=True, ship_in_days=-1)["order_id"]
    tamago.order.open(order_id)
    tamago.order.element_timeout_ms = 5_000
    view = tamago.order.correct(shipping_fee=1650, ship_date=date(2026, 11, 24), interval=45, member_discount=True)
    tamago.site.expect_visible("order.corrected_message")
    assert (view.shipping_fee_yen, view.ship_date, view.interval_days, view.member_discount) == (
        1650, date(2026, 11, 24), 45, True)
    assert view.discount_yen == 398 and view.total_yen == 3980 + 1650 - 398
    assert view.flagged, "a correction does not release"
    state = sandbox.tamago(order_id)
    assert (state["shipping_fee"], state["ship_date"], state["interval_days"], state["member_discount"]) == (
        1650, "2026-11-24", 45, True)
    same = tamago.order.correct(shipping_fee=1650, ship_date=date(2026, 11, 24), interval=45, member_discount=True)
    assert same == view
    assert len(sandbox.audit("tamago", "order_corrected")) == 1, "nothing to change: nothing submitted"
    tamago.order.correct(shipping_fee=1650, member_discount=False)
    state = sandbox.tamago(order_id)
    assert [len(changes(state, f)) for f in ("shipping_fee", "ship_date", "interval_days", "member_discount")] == [
        1, 1, 1, 2]
    with pytest.raises(UnknownValue, match="お届け間隔 7日ごと is not offered"):
        tamago.order.correct(interval=7)


def test_correct_refuses_an_interval_on_a_normal_order(tamago: Tamago, sandbox: Sandbox) -> None:
    order_id = sandbox.tamago_order("remote_island")["order_id"]
    tamago.order.open(order_id)
    with pytest.raises(UnknownValue, match="not a subscription order"):
        tamago.order.correct(interval=45)
    site = tamago.site
    with site.page.expect_navigation():
        site.el("order.edit_button").click()
    site.expect_visible("edit.heading")
    tamago.shoot("edit")
    assert sandbox.audit("tamago", "order_corrected") == []


# --- 顧客検索 ----------------------------------------------------------------------------------
def test_customer_search_by_each_key(tamago: Tamago, sandbox: Sandbox) -> None:
    a = sandbox.tamago_customer(name="山田 花子", phone="090-1234-5678", postal_code="160-0023", subscription=True)
    b = sandbox.tamago_customer(name="山田 花子", phone="080-0000-1111", postal_code="530-0001", blacklisted=True)
    c = sandbox.tamago_customer(name="川口 次郎", phone="090-1234-5678", postal_code="812-0011", subscription=True,
                                subscription_active=False, interval_days=60)
    by_phone = tamago.customers.find(phone="09012345678")
    tamago.shoot("customers")
    assert sorted(m.customer_id for m in by_phone) == sorted([a["customer_id"], c["customer_id"]])
    jiro = next(m for m in by_phone if m.customer_id == c["customer_id"])
    assert not jiro.active_subscriber and jiro.subscriptions[0].interval_days == 60
    assert not jiro.subscriptions[0].active
    [by_postal] = tamago.customers.find(postal_code="530-0001")
    assert by_postal.customer_id == b["customer_id"] and by_postal.blacklisted and by_postal.subscriptions == []
    by_name = tamago.customers.find(name="山田 花子")
    assert [m.customer_id for m in by_name] == [a["customer_id"], b["customer_id"]]
    hanako = by_name[0]
    assert (hanako.name, hanako.phone, hanako.postal_code, hanako.blacklisted, hanako.active_subscriber) == (
        "山田 花子", "090-1234-5678", "160-0023", False, True)
    [both] = tamago.customers.find(phone="090-1234-5678", name="山田花子")
    assert both.customer_id == a["customer_id"]
    assert tamago.customers.find(phone="000-0000-0000") == []
    with pytest.raises(ValueError, match="at least one"):
        tamago.customers.find()


# --- faults ------------------------------------------------------------------------------------
def test_expired_session_is_logged_in_again(tamago: Tamago, sandbox: Sandbox) -> None:
    order_id = sandbox.tamago_order("discount_candidate", subscription=True)["order_id"]
    tamago.order.open(order_id)
    assert len(tamago.logins) == 1
    sandbox.fault("tamago", expire_sessions=True)
    assert tamago.order.open(order_id).order_id == order_id
    assert len(tamago.logins) == 2
    sandbox.fault("tamago", expire_sessions=True)  # dropped while the robot looks at the page
    view = tamago.order.release("解除", TODAY)
    assert view.released and len(tamago.logins) == 3
    state = sandbox.tamago(order_id)
    assert len(changes(state, "flag")) == 2 and len(changes(state, "subscription_flag")) == 2
    sandbox.fault("tamago", expire_sessions=True)
    assert tamago.search.flagged() == [] and len(tamago.logins) == 4
    sandbox.advance(days=1)
    assert tamago.customers.find(name="誰か") == [] and len(tamago.logins) == 5, "a day idle ends the session"


def test_renamed_label_is_page_changed_and_changes_nothing(tamago: Tamago, sandbox: Sandbox) -> None:
    order_id = sandbox.tamago_order("remote_island")["order_id"]
    tamago.order.element_timeout_ms = 800
    sandbox.post("/admin/tamago/labels", {"label": "要対応を更新する", "to": "要対応を登録する"})
    tamago.order.open(order_id)  # reading needs no label
    tamago.shoot("order-renamed-label")
    with pytest.raises(PageChanged, match=r"'flag_form\.submit' did not appear.*selectors/tamago\.yaml"):
        tamago.order.update_flag("order", "解除", TODAY, "x")
    sandbox.post("/admin/tamago/labels", {"label": "要対応設定", "to": "要対応の設定"})
    tamago.order.open(order_id)
    with pytest.raises(PageChanged, match=r"'order\.flag_form_order' did not appear"):
        tamago.order.release("x", TODAY)
    sandbox.post("/admin/tamago/labels", {"label": "送料", "to": "配送料"})
    with pytest.raises(PageChanged, match=r"'edit\.shipping_fee' did not appear"):
        tamago.order.correct(shipping_fee=1100)
    assert sandbox.tamago(order_id)["flag"]["status"] == "設定"
    assert sandbox.audit("tamago", "flag_updated") == [] and sandbox.audit("tamago", "order_corrected") == []


def test_hidden_elements_are_page_changed(tamago: Tamago, sandbox: Sandbox) -> None:
    order_id = sandbox.tamago_order("remote_island")["order_id"]
    tamago.order.element_timeout_ms = 800
    tamago.search.element_timeout_ms = 800
    sandbox.fault("tamago", hide_elements=["reasons"])
    with pytest.raises(PageChanged, match=r"'order\.reasons' did not appear"):
        tamago.order.open(order_id)
    sandbox.fault("tamago", hide_elements=["order_status"])
    with pytest.raises(PageChanged, match=r"'order\.status' did not appear"):
        tamago.order.open(order_id)
    sandbox.fault("tamago", hide_elements=["search_table"])
    with pytest.raises(PageChanged, match=r"'search\.table' did not appear"):
        tamago.search.flagged()


def test_server_error_is_site_unavailable_and_changes_nothing(tamago: Tamago, sandbox: Sandbox) -> None:
    order_id = sandbox.tamago_order("remote_island")["order_id"]
    tamago.order.open(order_id)
    sandbox.fault("tamago", error_rate=1.0, error_paths=["/flag"])
    with pytest.raises(SiteUnavailable, match="HTTP 500"):
        tamago.order.release("x", TODAY)
    assert sandbox.tamago(order_id)["flag"]["status"] == "設定"
    sandbox.clear_faults()
    assert tamago.order.release("x", TODAY).released


# --- the selectors file --------------------------------------------------------------------------
def test_every_selector_resolves_on_its_screen(tamago: Tamago, sandbox: Sandbox) -> None:
    site, page = tamago.site, tamago.site.page
    checked: set[str] = set()
    every_key = site.selectors.keys()

    def resolves(*names: str, root: Any = None) -> None:
        for name in names:
            found = site.selectors.locate(root, name) if root is not None else site.el(name)
            assert found.count() >= 1, f"{name} matches nothing on {page.url}"
            checked.add(name)

    def screen(prefix: str, *but: str) -> list[str]:
        return [k for k in every_key if k.startswith(prefix + ".") and k not in but]

    def click(name: str) -> None:
        with page.expect_navigation():
            site.el(name).first.click()

    page.goto(sandbox.urls["tamago"] + "/login")
    resolves(*screen("login", "login.error"))
    site.el("login.user").fill("someone")
    site.el("login.password").fill("wrong")
    click("login.submit")
    resolves("login.error")

    for _ in range(21):
        sandbox.tamago_order("remote_island")
    sub = sandbox.tamago_order("payment_failed", cycle=2)["order_id"]
    tamago.search.flagged()
    tamago.site.goto("/orders?flagged=1")
    resolves(*screen("search"))

    tamago.order.open(sub)
    sandbox.tamago_customer(name="黒田 一", phone="090-0000-0001", postal_code="160-0001", blacklisted=True,
                            subscription=True)
    resolves(*screen("order", "order.updated_message", "order.corrected_message", "order.error",
                     "order.not_subscription", "order.blacklisted"))
    resolves(*screen("flag_form"), root=site.el("order.flag_form_subscription"))
    tamago.order.release("x", TODAY)
    resolves("order.updated_message")
    normal = sandbox.tamago_order("blacklisted")["order_id"]
    tamago.order.open(normal)
    resolves("order.not_subscription", "order.blacklisted")
    tamago.order.correct(shipping_fee=990)
    resolves("order.corrected_message")
    click("order.edit_button")
    resolves(*screen("edit", "edit.error"))
    site.el("edit.shipping_fee").fill("abc")
    click("edit.submit")
    resolves("edit.error")
    tamago.order.open(normal)
    form = site.el("order.flag_form_order")
    site.selectors.locate(form, "flag_form.date").fill("")
    with page.expect_navigation():
        site.selectors.locate(form, "flag_form.submit").click()
    resolves("order.error")

    tamago.customers.find(name="黒田 一")
    resolves(*screen("customers", "customers.error"))
    site.goto("/customers?search=1")
    resolves("customers.error")

    site.goto("/orders/999999")
    resolves(*screen("not_found"))

    assert checked == set(every_key), sorted(set(every_key) - checked)
    assert site.selectors.used - set(site.selectors.keys()) == set()


def test_selectors_file_has_no_css() -> None:
    specs = Selectors.load(SITE).specs
    kinds = {kind for keys in specs.values() for spec in keys.values() for kind in spec}
    assert "css" not in kinds
    assert specs["flag_form"]["submit"] == {"role": "button", "name": "要対応を更新する", "exact": True}


def test_the_tamago_scenario_reads_cleanly(tamago: Tamago, sandbox: Sandbox) -> None:
    """The seeded queue, as the procedure will meet it: one search pass, then every flagged order
    opened once; every reason message is known, the hand-set flag has none."""
    flagged_ids = sandbox.reset(seed=5, scenario="tamago")["orders"]
    listed = tamago.search.flagged()
    assert sorted(o.order_id for o in listed) == sorted(flagged_ids)
    kinds: set[Reason] = set()
    hand_set = 0
    for row in listed:
        view = tamago.order.open(row.order_id)
        assert view.flagged and view.reasons == row.reasons
        assert None not in view.reason_kinds, view.reasons
        kinds.update(k for k in view.reason_kinds if k is not None)
        hand_set += view.hand_set
    assert kinds == set(Reason) and hand_set == 1
    assert len(tamago.logins) == 1


def test_release_after_a_half_release_finishes_the_other_field_only(tamago: Tamago, sandbox: Sandbox) -> None:
    """A robot killed between the two 要対応設定 forms: the next visit releases only what is still 設定."""
    order_id = sandbox.tamago_order("discount_candidate", subscription=True)["order_id"]
    tamago.order.open(order_id)
    half = tamago.order.update_flag("order", "解除", TODAY, "今回分")
    assert half.flagged and not half.order_flag.is_set
    view = tamago.order.release("残りを解除", TODAY)
    assert view.released and view.order_flag.comment == "今回分"
    state = sandbox.tamago(order_id)
    assert [len(changes(state, f)) for f in ("flag", "subscription_flag", "status")] == [2, 2, 1]
    assert [e["scope"] for e in sandbox.audit("tamago", "flag_updated")] == ["order", "subscription"]
