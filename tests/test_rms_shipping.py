"""RMS 発送明細: one row per parcel, added by the page object in a real Chromium — only the rows not
there yet, never a row with a blank (RMS stores a blank, and a blank row keeps the order from
completing)."""

from __future__ import annotations

from datetime import date

import pytest
import test_rms
from conftest import Sandbox
from test_rms import SIM, Rms, truth

from kuroko.errors import BusinessRuleError
from pages.rakuten.order_page import ShippingRow

# test_rms.py's fixtures: one Chromium for the module, a fresh RMS context and robot per test.
shared_browser = test_rms.shared_browser
rms_browser = test_rms.rms_browser
rms = test_rms.rms

DAY = date(2026, 11, 20)
PACKAGES = [
    ShippingRow(company="ヤマト運輸", shipping_date=DAY, tracking_number="4471-2033-5100"),
    ShippingRow(company="ヤマト運輸", shipping_date=DAY, tracking_number="4471-2033-5111"),
    ShippingRow(company="日本郵便", shipping_date=date(2026, 11, 21), tracking_number="1234-5678-9012"),
]


def rms_requests(sandbox: Sandbox) -> int:
    return int(sandbox.summary()["request_counts"]["rms"])


def confirmed_order(rms: Rms, sandbox: Sandbox) -> str:
    number = sandbox.place_order([SIM])["order_number"]
    rms.page.open(rms.url(number))
    rms.page.confirm_order()
    return number


def test_three_packages_make_three_rows_and_the_order_completes_the_next_day(rms: Rms, sandbox: Sandbox) -> None:
    number = confirmed_order(rms, sandbox)
    view = rms.page.add_shipping_rows(PACKAGES)
    rms.shoot("rms_shipping_rows")
    shown = [(r.company, r.shipping_date, r.tracking_number) for r in view.shipping_rows]
    assert shown == [(p.company, p.shipping_date, p.tracking_number) for p in PACKAGES]
    assert all(r.detail_id for r in view.shipping_rows)
    assert (view.shipping_company, view.shipping_date, view.tracking_number) == (
        "ヤマト運輸", DAY, "4471-2033-5100"), "the first row, as when the order had one"
    rows = truth(sandbox, number)["shipping_rows"]
    assert [(r["company"], r["date"], r["tracking_number"]) for r in rows] == [
        ("ヤマト運輸", "2026-11-20", "4471-2033-5100"), ("ヤマト運輸", "2026-11-20", "4471-2033-5111"),
        ("日本郵便", "2026-11-21", "1234-5678-9012")]
    assert sandbox.order(number)["shipping"]["tracking_number"] == "4471-2033-5100"
    assert view.status == "発送後"
    sandbox.advance(days=1)
    assert rms.page.open(rms.url(number)).status == "完了"


def test_a_repeat_adds_nothing_and_a_new_parcel_adds_one_row(rms: Rms, sandbox: Sandbox) -> None:
    number = confirmed_order(rms, sandbox)
    rms.page.add_shipping_rows(PACKAGES[:2])
    assert len(sandbox.audit("rms", "shipping_set")) == 2

    sandbox.advance(days=1)  # the next pass, on the next day: the rows are found whatever their date
    again = [row.model_copy(update={"shipping_date": date(2026, 11, 21)}) for row in PACKAGES[:2]]
    again[1] = again[1].model_copy(update={"tracking_number": "447120335111"})  # spelt without hyphens
    view = rms.page.add_shipping_rows(again)
    assert len(view.shipping_rows) == 2
    assert len(sandbox.audit("rms", "shipping_set")) == 2, "nothing sent again"

    view = rms.page.add_shipping_rows(PACKAGES)
    assert [r.tracking_number for r in view.shipping_rows] == [p.tracking_number for p in PACKAGES]
    assert [e["tracking"] for e in sandbox.audit("rms", "shipping_set")][-1] == "1234-5678-9012"
    assert len(sandbox.audit("rms", "shipping_set")) == 3
    view = rms.page.set_shipping("日本郵便", DAY, "1234-5678-9012")
    assert len(view.shipping_rows) == 3 and len(sandbox.audit("rms", "shipping_set")) == 3
    assert len(truth(sandbox, number)["shipping_rows"]) == 3


@pytest.mark.parametrize("blank", [
    {"company": ""}, {"company": None}, {"shipping_date": None}, {"tracking_number": ""},
    {"tracking_number": "   "},
])
def test_a_row_with_a_blank_is_refused_without_any_request(blank: dict[str, object], rms: Rms,
                                                           sandbox: Sandbox) -> None:
    number = confirmed_order(rms, sandbox)
    before = rms_requests(sandbox)
    rows = [PACKAGES[0], PACKAGES[1].model_copy(update=blank)]
    with pytest.raises(BusinessRuleError, match="RMS would store the blank, so nothing was sent") as raised:
        rms.page.add_shipping_rows(rows)
    assert raised.value.code == "rms_blank_shipping"
    assert rms_requests(sandbox) == before, "not one request: not even the good row was sent"
    assert truth(sandbox, number)["shipping_rows"] == []


def test_a_tracking_number_under_another_carrier_is_left_to_a_person(rms: Rms, sandbox: Sandbox) -> None:
    number = confirmed_order(rms, sandbox)
    rms.page.add_shipping_rows([PACKAGES[0]])
    with pytest.raises(BusinessRuleError, match="already has お荷物伝票番号 4471-2033-5100 under ヤマト運輸"):
        rms.page.set_shipping("佐川急便", DAY, "4471-2033-5100")
    assert len(truth(sandbox, number)["shipping_rows"]) == 1


def test_rows_are_added_once_when_the_session_drops_before_the_click(rms: Rms, sandbox: Sandbox) -> None:
    number = confirmed_order(rms, sandbox)
    sandbox.fault("rms", expire_sessions=True)
    view = rms.page.add_shipping_rows(PACKAGES)
    assert len(view.shipping_rows) == 3
    assert len(truth(sandbox, number)["shipping_rows"]) == 3
    assert len(rms.logins) == 2


def test_the_sandbox_stores_a_blank_sent_by_hand_and_the_order_never_completes(rms: Rms, sandbox: Sandbox) -> None:
    """Why the page object refuses blanks: RMS overwrites with them (as its own note says)."""
    number = confirmed_order(rms, sandbox)
    rms.page.add_shipping_rows(PACKAGES[:2])
    site, page = rms.site, rms.site.page
    with page.expect_navigation():
        site.el("order.shipping_edit_link").nth(1).click()
    site.el("shipping_edit.tracking_number").fill("")
    with page.expect_navigation():
        site.el("shipping_edit.save").click()
    site.expect_visible("order.shipping_updated_message")
    rows = truth(sandbox, number)["shipping_rows"]
    assert rows[1]["tracking_number"] is None, "the blank overwrote the number"
    view = rms.page.read()
    assert view.shipping_rows[1].tracking_number is None and not view.shipping_rows[1].complete
    sandbox.advance(days=2)
    assert rms.page.open(rms.url(number)).status == "発送待ち", "a row without its number keeps it from 完了"
