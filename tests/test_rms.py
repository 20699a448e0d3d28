"""Rakuten RMS: the sandbox's Japanese back office, clicked through by the page objects in a real
Chromium (kuroko/browser.py), and compared with the world's truth through the admin API."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import Sandbox, screenshot_path

from kuroko.browser import Browser
from kuroko.errors import LoginRefused, OrderMismatch, PageChanged, SiteUnavailable, UnknownValue, UnsafeLink
from kuroko.settings import Settings
from pages.base import Selectors
from pages.rakuten.order_page import RmsOrderPage
from pages.rakuten.settings import RmsSettings
from pages.rakuten.site import RmsSite

OC = "[Rakuten Marketplace] Order Confirmation (automatic email)"
SIM = "SIM-DATA-30D-20GB"
SITE = "rakuten"
SIGN_IN_SCREENS = ("member_login", "notice", "password_change", "verify", "locked")
"""The sign-in screens after stage 1, walked by tests/test_rms_login.py."""


@dataclass
class Rms:
    """A logged-out robot's view of RMS: its browser, site, order page, and its logins counted."""

    browser: Browser
    site: RmsSite
    page: RmsOrderPage
    sandbox: Sandbox
    logins: list[str] = field(default_factory=list)

    @property
    def saved_login(self) -> Path:
        return self.browser.storage_state_path(SITE)

    def url(self, order_number: str) -> str:
        return f"{self.sandbox.urls['rms']}/rms/order/{order_number}"

    def shoot(self, name: str) -> None:
        self.site.page.screenshot(path=str(screenshot_path(name)), full_page=True)


RMS: list[RmsSettings] = []
"""Where the module's RMS is (set by the ``shared_browser`` fixture)."""


def make_rms(browser: Browser, sandbox: Sandbox, password: str | None = None) -> Rms:
    settings = RMS[0]
    rms = Rms(browser=browser, site=None, page=None, sandbox=sandbox)  # type: ignore[arg-type]

    def saved() -> None:
        rms.logins.append(browser.page(SITE).url)
        browser.save_login(SITE)

    rms.site = RmsSite(browser.page(SITE), settings.rms_url, settings.rms_user,
                       password if password is not None else settings.rms_password.get_secret_value(),
                       on_login=saved, member_user=settings.rms_member_user,
                       member_password=settings.rms_member_password.get_secret_value())
    rms.page = RmsOrderPage(rms.site)
    return rms


@pytest.fixture(scope="module")
def shared_browser(sandbox_process: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """One Chromium for the module (starting one costs seconds on a busy machine)."""
    RMS[:] = [RmsSettings(rms_url=sandbox_process.urls["rms"])]
    settings = Settings(data_dir=tmp_path_factory.mktemp("rms-data"))
    with Browser(settings, tracing=False) as b:
        yield b


@pytest.fixture
def rms_browser(shared_browser: Browser) -> Browser:
    """The shared Chromium with a fresh RMS context: no cookies, no saved login."""
    shared_browser.reset(SITE)
    shared_browser.forget_login(SITE)
    return shared_browser


@pytest.fixture
def rms(rms_browser: Browser, sandbox: Sandbox) -> Iterator[Rms]:
    robot = make_rms(rms_browser, sandbox)
    yield robot
    unknown = robot.site.selectors.used - set(robot.site.selectors.keys())
    assert not unknown, f"page objects used keys missing from selectors/rakuten.yaml: {sorted(unknown)}"


def truth(sandbox: Sandbox, order_number: str) -> dict[str, Any]:
    return sandbox.get(f"/admin/rms/orders/{order_number}")


def purchase_history_link(sandbox: Sandbox, order_number: str) -> str:
    """The link as the robot gets it: from the Rakuten mail in Zendesk."""
    for ticket in sandbox.state()["zendesk"]["tickets"]:
        body = ticket["comments"][0]["body"]
        if order_number in body:
            found = re.search(r"Purchase History: (\S+)", body)
            assert found, body
            return found.group(1)
    raise AssertionError(f"no ticket names {order_number}")


# --- login ----------------------------------------------------------------------------------
def test_wrong_password_is_refused_with_a_clear_message(rms_browser: Browser, sandbox: Sandbox) -> None:
    robot = make_rms(rms_browser, sandbox, password="not-the-password")
    number = sandbox.place_order([SIM])["order_number"]
    robot.site.page.goto(robot.sandbox.urls["rms"] + "/login")
    robot.site.expect_visible("login.heading")
    robot.shoot("rms_login")
    with pytest.raises(LoginRefused, match="KUROKO_RMS_PASSWORD"):
        robot.page.open(robot.url(number))
    alert = robot.site.expect_visible("login.error")
    assert "R-Login IDまたはパスワードが正しくありません" in alert.inner_text()
    robot.shoot("rms_login_refused")
    assert not robot.saved_login.exists()
    assert robot.logins == []
    assert sandbox.audit("rms", "login") == []
    assert len(sandbox.audit("rms", "login_refused")) == 1


def test_right_password_logs_in_once_and_keeps_the_login_private(rms: Rms, sandbox: Sandbox) -> None:
    number = sandbox.place_order([SIM])["order_number"]
    view = rms.page.open(rms.url(number))
    assert view.order_number == number
    assert len(rms.logins) == 1
    assert stat.S_IMODE(os.stat(rms.saved_login).st_mode) == 0o600
    cookies = {c["name"] for c in json.loads(rms.saved_login.read_text())["cookies"]}
    assert "rms_session" in cookies
    rms.page.open(rms.url(number))
    assert len(rms.logins) == 1, "a live session is reused, not logged in again"


# --- reading --------------------------------------------------------------------------------
def test_order_page_shows_what_rms_holds(rms: Rms, sandbox: Sandbox) -> None:
    number = sandbox.place_order({SIM: 2, "ESIM-DATA-7D-5GB": 1})["order_number"]
    view = rms.page.open(purchase_history_link(sandbox, number))
    rms.shoot("rms_order")
    facts = truth(sandbox, number)
    buyer = facts["buyer"]
    assert view.order_number == number
    assert view.status == "注文確認待ち"
    assert view.can_confirm
    assert view.placed_at == datetime.fromisoformat(facts["placed_at"])
    assert (view.buyer_name, view.buyer_email, view.phone) == (buyer["name"], buyer["email"], buyer["phone"])
    assert (view.postal_code, view.prefecture, view.city, view.address) == (
        buyer["postal_code"], buyer["prefecture"], buyer["city"], buyer["address"])
    assert [i.model_dump() for i in view.items] == facts["items"]
    assert [i.quantity for i in view.items] == [2, 1]
    assert (view.shipping_company, view.shipping_date, view.tracking_number) == (None, None, None)
    assert view.mails == []


def test_unknown_order_is_a_japanese_404(rms: Rms, sandbox: Sandbox) -> None:
    missing = "381234-20261120-0000000000"
    with pytest.raises(OrderMismatch, match=missing):
        rms.page.open(f"/rms/order/{missing}")
    assert "ご指定の受注番号" in rms.site.page.content()
    rms.shoot("rms_not_found")


def test_link_to_another_host_is_never_opened(rms: Rms) -> None:
    with pytest.raises(UnsafeLink, match=r"evil\.example"):
        rms.page.open("http://evil.example/rms/order/381234-20261120-1234567890")
    assert rms.site.page.url == "about:blank"
    with pytest.raises(UnsafeLink, match="not an RMS order page"):
        rms.page.open(rms.sandbox.urls["rms"] + "/logout")


# --- actions --------------------------------------------------------------------------------
def test_confirm_order_accepts_its_dialog_and_confirms_once(rms: Rms, sandbox: Sandbox) -> None:
    number = sandbox.place_order([SIM])["order_number"]
    rms.page.open(rms.url(number))
    view = rms.page.confirm_order()
    assert view.status == "発送待ち"
    assert not view.can_confirm
    order = sandbox.order(number)
    assert (order["confirmed_by"], order["confirm_clicks"]) == ("RMS", 1)
    subjects = [t["subject"] for t in sandbox.state()["zendesk"]["tickets"]]
    assert subjects.count(OC) == 1, "Rakuten's Order Confirmation mail follows the click"
    with pytest.raises(PageChanged, match="only while the order awaits confirmation"):
        rms.page.confirm_order()
    assert sandbox.order(number)["confirm_clicks"] == 1


def test_thank_you_mail_is_sent_and_listed(rms: Rms, sandbox: Sandbox) -> None:
    number = sandbox.place_order([SIM])["order_number"]
    rms.page.open(rms.url(number))
    view = rms.page.send_mail("thank_you", {"order_number": number})
    rms.site.expect_visible("order.mail_sent_message")
    rms.shoot("rms_order_after_mail")
    [sent] = truth(sandbox, number)["mails"]
    [mail] = view.mails
    assert (mail.mail_id, mail.template, mail.template_key) == (sent["mail_id"], "サンクスメール", "thank_you")
    assert mail.subject == sent["subject"] == f"【楽天市場】サンクスメール（受注番号：{number}）"
    assert mail.sent_at == datetime.fromisoformat(sent["sent_at"])
    assert sent["fields"] == {"order_number": number}
    assert view.status == "注文確認待ち", "a mail does not confirm the order"


def test_shipping_mail_carries_the_typed_fields(rms: Rms, sandbox: Sandbox) -> None:
    number = sandbox.place_order([SIM])["order_number"]
    rms.page.open(rms.url(number))
    view = rms.page.send_mail("shipping_js", {"carrier": "ヤマト運輸", "tracking_number": "4567-8901-2345"})
    [sent] = truth(sandbox, number)["mails"]
    assert sent["fields"] == {"order_number": number, "ship_date": "2026-11-20", "carrier": "ヤマト運輸",
                              "tracking_number": "4567-8901-2345"}, "untyped fields keep RMS's defaults"
    assert "③ 配送会社：ヤマト運輸" in sent["body"]
    assert [(m.template, m.template_key) for m in view.mails] == [("発送メール JS", "shipping_js")]

    view = rms.page.send_mail("shipping_jm", {"order_number": number, "ship_date": "2026-11-21",
                                              "carrier": "日本郵便", "tracking_number": "1234-5678-9012"})
    assert [m.template for m in view.mails] == ["発送メール JS", "発送メール JM"], "history is oldest first"
    assert truth(sandbox, number)["mails"][1]["fields"]["ship_date"] == "2026-11-21"


def test_refused_mail_is_reported_and_not_sent(rms: Rms, sandbox: Sandbox) -> None:
    number = sandbox.place_order([SIM])["order_number"]
    rms.page.open(rms.url(number))
    with pytest.raises(UnknownValue, match="配送会社・お荷物伝票番号を入力してください"):
        rms.page.send_mail("shipping_jm", {"order_number": number})
    assert truth(sandbox, number)["mails"] == []
    with pytest.raises(ValueError, match="thank_you"):
        rms.page.send_mail("thanks")


def test_shipping_fields_complete_the_order_the_next_day(rms: Rms, sandbox: Sandbox) -> None:
    number = sandbox.place_order([SIM])["order_number"]
    rms.page.open(rms.url(number))
    rms.page.confirm_order()
    view = rms.page.set_shipping("佐川急便", date(2026, 11, 20), "3600-1234-5678")
    rms.site.expect_visible("order.shipping_added_message")
    assert [(r.company, r.tracking_number) for r in view.shipping_rows] == [("佐川急便", "3600-1234-5678")]
    assert (view.shipping_company, view.shipping_date, view.tracking_number) == (
        "佐川急便", date(2026, 11, 20), "3600-1234-5678")
    assert view.status == "発送後"
    assert truth(sandbox, number)["shipping"] == {"company": "佐川急便", "date": "2026-11-20",
                                                 "tracking_number": "3600-1234-5678"}
    sandbox.advance(days=1)
    later = rms.page.open(rms.url(number))
    assert later.status == "完了"
    assert len(rms.logins) == 2, "a day without requests ends the session; the site logs in again"


def test_unknown_shipping_company_is_refused_before_anything_changes(rms: Rms, sandbox: Sandbox) -> None:
    number = sandbox.place_order([SIM])["order_number"]
    rms.page.open(rms.url(number))
    with pytest.raises(UnknownValue, match=r"DHL.*日本郵便, ヤマト運輸, 佐川急便"):
        rms.page.set_shipping("DHL", date(2026, 11, 20), "1234")
    assert sandbox.audit("rms", "shipping_set") == []
    assert truth(sandbox, number)["shipping"]["company"] is None


# --- faults ---------------------------------------------------------------------------------
def test_expired_session_is_logged_in_again_transparently(rms: Rms, sandbox: Sandbox) -> None:
    number = sandbox.place_order([SIM])["order_number"]
    rms.page.open(rms.url(number))
    first_cookie = rms.saved_login.read_text()

    sandbox.fault("rms", expire_sessions=True)
    view = rms.page.open(rms.url(number))
    assert view.order_number == number
    assert len(rms.logins) == 2
    assert stat.S_IMODE(os.stat(rms.saved_login).st_mode) == 0o600
    assert rms.saved_login.read_text() != first_cookie, "the saved login is rewritten with the new session"

    sandbox.fault("rms", expire_sessions=True)  # dropped while the robot looks at the page
    view = rms.page.confirm_order()
    assert view.status == "発送待ち"
    assert len(rms.logins) == 3
    assert sandbox.order(number)["confirm_clicks"] == 1, "the bounced click changed nothing; done once"


def test_hidden_element_is_a_clear_page_changed(rms: Rms, sandbox: Sandbox) -> None:
    number = sandbox.place_order([SIM])["order_number"]
    rms.page.open(rms.url(number))
    rms.page.element_timeout_ms = 800
    sandbox.fault("rms", hide_elements=["send_button"])
    with pytest.raises(PageChanged, match=r"'mail_preview\.send_button' did not appear.*selectors/rakuten\.yaml"):
        rms.page.send_mail("thank_you")
    sandbox.fault("rms", hide_elements=["mail_history"])
    with pytest.raises(PageChanged, match=r"'order\.mail_history' did not appear"):
        rms.page.open(rms.url(number))
    assert truth(sandbox, number)["mails"] == []


def test_server_error_on_send_is_reported_and_sends_nothing(rms: Rms, sandbox: Sandbox) -> None:
    number = sandbox.place_order([SIM])["order_number"]
    rms.page.open(rms.url(number))
    sandbox.fault("rms", error_rate=1.0, error_paths=["/mail/send"])
    with pytest.raises(SiteUnavailable, match="HTTP 500"):
        rms.page.send_mail("thank_you")
    assert truth(sandbox, number)["mails"] == []
    sandbox.clear_faults()
    view = rms.page.send_mail("thank_you")
    assert len(view.mails) == len(truth(sandbox, number)["mails"]) == 1

# --- the selectors file ---------------------------------------------------------------------
def test_every_selector_resolves_on_its_screen(rms: Rms, sandbox: Sandbox) -> None:
    """Walk every screen into the state that shows each key; every key must match, and every key
    the page objects used must be in the file."""
    site, page = rms.site, rms.site.page
    checked: set[str] = set()
    all_keys = site.selectors.keys()
    every_key = [k for k in all_keys if k.split(".")[0] not in SIGN_IN_SCREENS]

    def resolves(*names: str) -> None:
        for name in names:
            assert site.el(name).count() >= 1, f"{name} matches nothing on {page.url}"
            checked.add(name)

    def screen(prefix: str, *but: str) -> list[str]:
        return [k for k in every_key if k.startswith(prefix + ".") and k not in but]

    def click(name: str, accept: bool = False) -> None:
        if accept:
            page.once("dialog", lambda d: d.accept())
        with page.expect_navigation():
            site.el(name).first.click()

    page.goto(sandbox.urls["rms"] + "/login")
    resolves(*screen("login", "login.error"))
    site.el("login.user").fill("someone")
    site.el("login.password").fill("wrong")
    click("login.submit")
    resolves("login.error")

    number = sandbox.place_order([SIM])["order_number"]
    rms.page.open(rms.url(number))
    rms.page.send_mail("thank_you")
    row_keys = ("order.shipping_row", "order.shipping_detail_id", "order.shipping_row_company",
                "order.shipping_row_date", "order.shipping_row_tracking", "order.shipping_edit_link")
    resolves(*screen("order", "order.confirmed_message", "order.shipping_added_message",
                     "order.shipping_updated_message", "order.error", *row_keys))
    rms.page.confirm_order()
    resolves("order.confirmed_message")
    rms.page.set_shipping("日本郵便", date(2026, 11, 20), "1234-5678-9012")
    resolves("order.shipping_added_message", *row_keys)
    click("order.shipping_add")  # an empty row: RMS refuses it
    resolves("order.error")
    click("order.shipping_edit_link")
    resolves(*screen("shipping_edit", "shipping_edit.error"))
    site.el("shipping_edit.tracking_number").fill("伝票")
    click("shipping_edit.save")
    resolves("shipping_edit.error")
    rms.shoot("rms_shipping_edit")
    site.el("shipping_edit.tracking_number").fill("1234-5678-9013")
    click("shipping_edit.save")
    resolves("order.shipping_updated_message")
    assert truth(sandbox, number)["shipping"]["tracking_number"] == "1234-5678-9013"

    click("order.send_mail_button")
    resolves(*screen("mail_template", "mail_template.error"))
    rms.shoot("rms_mail_template")
    click("mail_template.next_button")
    resolves("mail_template.error")
    site.el("mail_template.shipping_jm").check()
    click("mail_template.next_button")
    resolves(*screen("mail_preview", "mail_preview.error"))
    site.el("mail_preview.tracking_number").fill("9999-8888-7777")
    assert "9999-8888-7777" in site.el("mail_preview.body").inner_text(), "the preview follows the fields"
    rms.shoot("rms_mail_preview")
    site.el("mail_preview.order_number").fill("")
    click("mail_preview.send_button", accept=True)
    resolves("mail_preview.error")

    page.goto(sandbox.urls["rms"] + "/rms/order")  # the landing page (`kuroko check` recognises it)
    resolves(*screen("order_list"))

    page.goto(rms.url("381234-20261120-0000000000"))
    resolves(*screen("not_found"))

    assert checked == set(every_key)
    assert set(all_keys) - checked <= {k for k in all_keys if k.split(".")[0] in SIGN_IN_SCREENS}
    assert site.selectors.used - set(site.selectors.keys()) == set()
    assert {"order.confirm_button", "mail_template.thank_you", "mail_preview.send_button"} <= site.selectors.used


def test_selectors_file_reaches_rms_labels_without_css() -> None:
    specs = Selectors.load(SITE).specs
    kinds = {kind for keys in specs.values() for spec in keys.values() for kind in spec}
    assert "css" not in kinds
    assert specs["order"]["confirm_button"] == {"role": "button", "name": "注文確認", "exact": True}

