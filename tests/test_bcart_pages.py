"""The Bカート admin screens in a real Chromium, through the page objects (pages/bcart/): template
mails (one per order per template, none on any screen), 帳票 PDFs, 出荷実績インポート with
Shift_JIS/CRLF files and per-row errors, and every selector key of selectors/bcart.yaml."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from conftest import Sandbox, screenshot_path

from kuroko.browser import Browser
from kuroko.errors import OrderMismatch, UnknownValue
from kuroko.settings import Settings
from pages.base import Selectors
from pages.bcart.order_list import BcartOrderList, MailTemplate
from pages.bcart.order_page import BcartOrderPage
from pages.bcart.shipping_import import BcartShippingImport
from pages.bcart.site import BcartSite
from services.bcart_api import BcartSettings, join_tracking_numbers
from services.bcart_csv import HEADER, ShippingResultRow, write_shipping_results_csv

SITE = "bcart"


@dataclass
class Bcart:
    site: BcartSite
    orders: BcartOrderList
    order: BcartOrderPage
    shipping_import: BcartShippingImport
    sandbox: Sandbox
    logins: list[str]

    def shoot(self, name: str) -> Path:
        path = screenshot_path(f"bcart-{name}")
        self.site.page.screenshot(path=str(path), full_page=True)
        return path


def new_order(sandbox: Sandbox, payment: str = "請求書払い", destinations: int = 1) -> dict[str, Any]:
    dests = [{"items": [{"product_no": "BC-SIM30-20G", "quantity": 1}]} for _ in range(destinations)]
    return sandbox.post("/admin/bcart/orders", {"payment": payment, "destinations": dests})


@pytest.fixture(scope="module")
def shared_browser(sandbox_process: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("bcart-data"))
    with Browser(settings, tracing=False) as browser:
        yield browser


@pytest.fixture
def bcart(shared_browser: Browser, sandbox: Sandbox) -> Bcart:
    shared_browser.reset(SITE)
    shared_browser.forget_login(SITE)
    settings = BcartSettings(bcart_url=sandbox.urls["bcart"])
    logins: list[str] = []

    def saved() -> None:
        logins.append(shared_browser.page(SITE).url)
        shared_browser.save_login(SITE)

    site = BcartSite(shared_browser.page(SITE), settings.bcart_url, settings.bcart_user,
                     settings.bcart_password.get_secret_value(), on_login=saved)
    return Bcart(site, BcartOrderList(site), BcartOrderPage(site), BcartShippingImport(site), sandbox, logins)


def mails(sandbox: Sandbox) -> list[tuple[int, str]]:
    return [(m["order_id"], m["template"]) for m in sandbox.get("/admin/bcart/mails")]


def test_send_mail_sends_one_per_order_and_no_screen_shows_it(bcart: Bcart, sandbox: Sandbox) -> None:
    first, second = new_order(sandbox, payment="銀行振込"), new_order(sandbox, payment="銀行振込")
    new_order(sandbox)  # not chosen: gets nothing
    sent = bcart.orders.send_mail([first["id"], second["id"]], MailTemplate.PAYMENT_REQUEST)
    assert sorted(sent) == [first["id"], second["id"]]
    assert sorted(mails(sandbox)) == [(first["id"], "入金案内"), (second["id"], "入金案内")]
    bcart.shoot("mail-sent")
    assert len(bcart.logins) == 1

    bcart.orders.send_mail([first["id"]], "振り込み確認")
    assert mails(sandbox).count((first["id"], "振り込み確認")) == 1 and len(mails(sandbox)) == 3
    for path in (f"/order/{first['id']}", "/order", "/logistics"):
        bcart.site.goto(path)
        assert "入金案内" not in bcart.site.page.content(), f"{path} shows no mail history (B-cart keeps none)"


def test_send_mail_refuses_before_sending(bcart: Bcart, sandbox: Sandbox) -> None:
    order = new_order(sandbox)
    with pytest.raises(UnknownValue, match="欠品のお知らせ"):
        bcart.orders.send_mail([order["id"]], "お詫び")
    with pytest.raises(OrderMismatch, match="999999"):
        bcart.orders.send_mail([order["id"], 999999], MailTemplate.OUT_OF_STOCK)
    assert mails(sandbox) == []


def test_send_mail_after_the_session_expired_sends_once(bcart: Bcart, sandbox: Sandbox) -> None:
    order = new_order(sandbox)
    bcart.site.goto("/order")
    sandbox.fault("bcart", expire_sessions=True)
    bcart.orders.send_mail([order["id"]], MailTemplate.OUT_OF_STOCK)
    assert mails(sandbox) == [(order["id"], "欠品のお知らせ")]
    assert len(bcart.logins) == 2, "logged in again when B-cart asked"


def test_order_page_reads_the_order_and_downloads_its_documents(bcart: Bcart, sandbox: Sandbox,
                                                                tmp_path: Path) -> None:
    order = new_order(sandbox, payment="銀行振込", destinations=2)
    sandbox.post(f"/admin/bcart/orders/{order['id']}/payment", {"date": "2026-11-20"})
    sandbox.post(f"/admin/bcart/orders/{order['id']}/status", {"status": "処理中"})
    view = bcart.order.open(order["id"])
    bcart.shoot("order")
    assert (view.order_id, view.code, view.payment, view.payment_confirmed_on, view.status_label) == (
        order["id"], order["code"], "銀行振込", date(2026, 11, 20), "処理中")
    assert view.total_yen == order["final_price"]
    assert [s.id for s in view.shipments] == [lg["id"] for lg in order["logistics"]]
    assert {i.logistics_id for i in view.items} == {lg["id"] for lg in order["logistics"]}
    assert all(s.status == "未発送" and s.delivery_code == "" and s.shipment_date is None for s in view.shipments)

    files = bcart.order.download_documents(tmp_path / "docs")
    assert [f.name for f in files] == [f"bcart-{order['code']}-delivery_note.pdf", f"bcart-{order['code']}-invoice.pdf"]
    for f in files:
        data = f.read_bytes()
        assert data.startswith(b"%PDF-1.4") and data.rstrip().endswith(b"%%EOF") and b"/HeiseiKakuGo-W5" in data
        assert b"startxref" in data
    assert len(sandbox.audit("bcart", "document")) == 2
    with pytest.raises(OrderMismatch):
        bcart.order.open(999999)


def test_csv_upload_through_the_screen(bcart: Bcart, sandbox: Sandbox, tmp_path: Path) -> None:
    order = new_order(sandbox, destinations=2)
    a, b = (lg["id"] for lg in order["logistics"])
    path = write_shipping_results_csv(tmp_path, [
        ShippingResultRow(a, join_tracking_numbers(["123456789012", "123456789013"]), date(2026, 11, 21),
                          shipment_code=f"BC-{a}"),
        ShippingResultRow(b, "223456789012", date(2026, 11, 21), order_status="処理中"),
    ], name="shipping_results_1.csv")
    result = bcart.shipping_import.upload(path)
    bcart.shoot("import-ok")
    assert result.ok and result.updated == [str(a), str(b)] and result.file_name == "shipping_results_1.csv"
    seen = sandbox.get("/admin/bcart/imports")[-1]
    assert (seen["encoding"], seen["line_endings"], seen["header"]) == ("shift_jis", "CRLF", list(HEADER))
    assert len(seen["rows"]) == 2, "one row per shipment"
    state = sandbox.get(f"/admin/bcart/orders/{order['id']}")
    assert [lg["delivery_code"] for lg in state["logistics"]] == ["123456789012,123456789013", "223456789012"]
    assert {lg["shipment_date"] for lg in state["logistics"]} == {"2026-11-21"}
    assert state["status_label"] == "処理中"
    assert not [h for h in state["history"] if h["field"] in ("delivery_code", "shipment_date") and not h["new"]], \
        "the robot's file blanked nothing"


def test_csv_upload_shows_the_errors_per_row(bcart: Bcart, sandbox: Sandbox, tmp_path: Path) -> None:
    order = new_order(sandbox)
    lid = order["logistics"][0]["id"]
    lines = [",".join(HEADER), f"{lid},１２３４,2026-11-21,,発送済,,,", "999999,1234,2026-11-21,,発送済,,,",
             f"{lid},1234,2026/11/21,,発送済,,,"]
    path = tmp_path / "by_hand.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("shift_jis"))
    result = bcart.shipping_import.upload(path)
    bcart.shoot("import-errors")
    assert result.file_error is None
    assert [(r.line, r.ok) for r in result.rows] == [(2, False), (3, False), (4, True)]
    assert "全角" in result.errors[0].message and "存在しません" in result.errors[1].message
    assert result.errors[0].message.startswith("2行目")

    bad_name = tmp_path / "出荷.csv"
    bad_name.write_bytes(path.read_bytes())
    refused = bcart.shipping_import.upload(bad_name)
    assert refused.file_error and "半角英数字" in refused.file_error and not refused.rows


def test_every_selector_key_resolves(bcart: Bcart, sandbox: Sandbox, tmp_path: Path) -> None:
    order = new_order(sandbox)
    oid = order["id"]
    site, page = bcart.site, bcart.site.page
    keys = set(Selectors.load(SITE).keys())
    checked: set[str] = set()

    def check(screen: str, only: set[str] | None = None, **values: str) -> None:
        for key in sorted(k for k in keys if k.startswith(screen + ".")):
            if only is not None and key.split(".", 1)[1] not in only:
                continue
            assert site.el(key, **values).count() > 0, f"{key} not found on {page.url}"
            checked.add(key)

    def upload(data: bytes, name: str) -> None:
        site.goto("/logistics/import")
        file = tmp_path / name
        file.write_bytes(data)
        site.el("shipping_import.file").set_input_files(str(file))
        with page.expect_navigation():
            site.el("shipping_import.submit").click()

    steps: list[Callable[[], None]] = [
        lambda: (page.goto(site.url("/login")), check("login", {"heading", "user", "password", "submit"})),
        lambda: (site.el("login.user").fill("x"), site.el("login.password").fill("y"),
                 site.el("login.submit").click(), page.wait_for_load_state(), check("login", {"error"})),
        lambda: (site.goto("/order"), check("order_list", {"heading", "table", "row", "row_id", "row_code",
                                                           "row_status", "select_order", "action", "run"},
                                            order_id=str(oid))),
        lambda: (site.submit("order_list.run"), check("order_list", {"error"})),
        lambda: (site.goto(f"/order/mail?ids={oid}"), check("mail", {"heading", "template", "to_confirm"})),
        lambda: (page.goto(site.url(f"/order/mail/confirm?ids={oid}")), check("mail", {"error"})),
        lambda: (site.goto(f"/order/mail/confirm?ids={oid}&template=入金案内"), check("mail_confirm")),
        lambda: (site.submit("mail_confirm.send"), check("order_list", {"mail_sent_message"})),
        lambda: (site.goto(f"/order/{oid}"), check("order")),
        lambda: (site.goto("/order/999999"), check("not_found")),
        lambda: (site.goto("/logistics/import"), check("shipping_import", {"heading", "file", "submit"})),
        lambda: (site.submit("shipping_import.submit"), check("shipping_import", {"error"})),
        lambda: (upload((",".join(HEADER) + "\r\n999999,1,2026-11-21,,,,,\r\n").encode("cp932"), "a.csv"),
                 check("import_result", {"heading", "file_name", "summary", "table", "row", "row_line",
                                         "row_logistics_id", "row_outcome", "row_message"})),
        lambda: (upload(b"\x82\xa0\xff\xfe", "b.csv"), check("import_result", {"file_error"})),
    ]
    for step in steps:
        step()
    assert keys - checked == set(), "every key is checked on a screen that shows it"


def test_japanese_renders_in_screenshots(bcart: Bcart, sandbox: Sandbox) -> None:
    order = new_order(sandbox)
    bcart.site.goto("/order")
    list_shot = bcart.shoot("order-list")
    bcart.site.goto(f"/order/mail/confirm?ids={order['id']}&template=発送のお知らせ")
    confirm_shot = bcart.shoot("mail-confirm")
    bcart.site.goto("/logistics")
    bcart.shoot("logistics")
    assert list_shot.stat().st_size > 10_000 and confirm_shot.stat().st_size > 10_000
    assert mails(sandbox) == [], "looking at the confirmation page sends nothing"


def test_a_changed_page_and_a_dropped_session_are_told_apart(bcart: Bcart, sandbox: Sandbox, tmp_path: Path) -> None:
    from kuroko.errors import PageChanged

    order = new_order(sandbox)
    bcart.order.open(order["id"])
    sandbox.fault("bcart", expire_sessions=True)
    files = bcart.order.download_documents(tmp_path)
    assert len(files) == 2 and len(bcart.logins) == 2, "logged in again, then downloaded"

    sandbox.fault("bcart", hide_elements=["documents"])
    bcart.order.open(order["id"])
    with pytest.raises(PageChanged, match=r"order\.delivery_note"):
        bcart.order.download_documents(tmp_path / "again")

    sandbox.fault("bcart", hide_elements=["send_button"])
    with pytest.raises(PageChanged, match=r"mail_confirm\.send"):
        bcart.orders.send_mail([order["id"]], MailTemplate.SHIPPED)
    assert mails(sandbox) == []
    sandbox.clear_faults()
    path = write_shipping_results_csv(tmp_path, [ShippingResultRow(order["logistics"][0]["id"], "1", "2026-11-21")],
                                      name="one.csv")
    bcart.site.goto("/order")
    sandbox.fault("bcart", expire_sessions=True)
    assert bcart.shipping_import.upload(path).ok
    assert len(sandbox.get("/admin/bcart/imports")) == 1, "imported once"
