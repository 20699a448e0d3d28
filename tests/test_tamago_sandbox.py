"""The sandbox たまごリピート wing without a browser: the admin API, the store's 要対応 rules (seed 001's
exact messages), releasing and correcting through the screens' forms (login, CSRF), the scenario."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import Sandbox

from sandbox.tamago.store import REASONS

SEED_MESSAGES = {
    "np_ng_1": ("初回注文だったが、選択中の配送方法が「代引き」を指定できないため、"
                "注文ステータスを「与信NG」、「要対応」に変更"),
    "np_ng_2": "注文二回目以降のため、注文ステータスを「与信NG」、「要対応」に変更",
    "np_ng_3": "選択中の配送方法が「代引き」を指定できないため、注文ステータスを「与信NG」、「要対応」に変更",
    "np_ng_4": "注文ステータスを「与信NG」、「要対応」に変更",
    "np_unknown": "与信結果「識別番号」は、識別できないステータスです。",
    "blacklist_candidate": "ブラックリスト客候補",
    "payment_failed": "たまご決済失敗",
    "blacklisted": "ブラックリスト客",
    "remote_island": "離島からのご注文",
    "discount_candidate": "定期割引候補",
}
"""Copied by hand from the たまご manual (要対応とは?), to catch a typo in the store."""


class Tamago:
    """A logged-in たまご user over plain HTTP (what a browser posts, CSRF token included)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.base = sandbox.urls["tamago"]
        self.client = httpx.Client(base_url=self.base, follow_redirects=False, timeout=30)
        page = self.client.get("/login")
        token = csrf(page.text)
        r = self.client.post("/login", data={"csrf_token": token, "user": "tamago-demo",
                                             "password": "tamago-demo-password", "next": "/orders"})
        assert r.status_code == 303, r.text

    def order_page(self, order_id: str) -> str:
        r = self.client.get(f"/orders/{order_id}")
        assert r.status_code == 200, r.text
        return r.text

    def release(self, order_id: str, scope: str = "order", comment: str = "確認済み",
                day: str = "2026-11-20") -> httpx.Response:
        token = csrf(self.order_page(order_id))
        return self.client.post(f"/orders/{order_id}/flag", data={
            "csrf_token": token, "scope": scope, "status": "解除", "date": day, "comment": comment})

    def correct(self, order_id: str, **fields: str) -> httpx.Response:
        page = self.client.get(f"/orders/{order_id}/edit").text
        data = {"csrf_token": csrf(page), "shipping_fee": value(page, "shipping_fee"),
                "ship_date": value(page, "ship_date"), "interval_days": selected(page, "interval_days"),
                "member_discount": selected(page, "member_discount"), **fields}
        return self.client.post(f"/orders/{order_id}/edit", data=data)


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def value(html: str, name: str) -> str:
    found = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html)
    assert found, name
    return found.group(1)


def selected(html: str, name: str) -> str:
    select = re.search(rf'<select[^>]*name="{name}"[^>]*>(.*?)</select>', html, re.S)
    assert select, name
    found = re.search(r'<option value="([^"]*)" selected', select.group(1))
    return found.group(1) if found else ""


@pytest.fixture
def tamago(sandbox: Sandbox) -> Iterator[Tamago]:
    user = Tamago(sandbox)
    yield user
    user.client.close()


def changes(state: dict[str, Any], field: str) -> list[dict[str, Any]]:
    return [h for h in state["history"] if h["field"] == field]


# --- reasons ---------------------------------------------------------------------------------
def test_store_messages_are_the_seeds_word_for_word() -> None:
    for key, message in SEED_MESSAGES.items():
        assert REASONS[key] == message
    assert REASONS["amount_mismatch"] == "入金額【{paid}】が注文金額【{total}】と一致しません。"


@pytest.mark.parametrize("reason", [*SEED_MESSAGES])
def test_each_reason_flags_an_order_with_its_message(sandbox: Sandbox, reason: str) -> None:
    order = sandbox.tamago_order(reason)
    assert order["flagged"]
    assert order["reasons"] == [reason]
    assert order["messages"] == [SEED_MESSAGES[reason]]
    assert order["flag"]["status"] == "設定"
    assert sandbox.audit("tamago", "order_flagged")[-1]["message"] == SEED_MESSAGES[reason]
    if reason.startswith("np_ng"):
        assert order["status"] == "与信NG", "the message says the status became 与信NG"
        assert order["payment_method"] == "NP後払い"
    elif reason != "payment_failed":
        assert order["status"] == "新規受付"


def test_amount_mismatch_names_both_amounts(sandbox: Sandbox) -> None:
    order = sandbox.tamago_order("amount_mismatch", paid_amount=3000)
    assert order["messages"] == [f"入金額【3000】が注文金額【{order['total']}】と一致しません。"]
    assert order["paid_amount"] == 3000


def test_hand_set_flag_has_no_reason_message(sandbox: Sandbox) -> None:
    order = sandbox.tamago_order("manual", comment="在庫確認のため保留")
    assert order["flagged"] and order["messages"] == []
    assert order["flag"] == {"status": "設定", "date": "2026-11-20", "comment": "在庫確認のため保留"}
    assert changes(order, "flag")[0]["by"] == "person"


def test_payment_failure_flags_the_order_before_the_one_not_created(sandbox: Sandbox) -> None:
    order = sandbox.tamago_order("payment_failed", cycle=3)
    sub = sandbox.get(f"/admin/tamago/customers/{order['customer']['customer_id']}")["subscriptions"][0]
    assert order["cycle"] == 3 and order["order_id"] == sub["order_ids"][-1], "the latest existing order"
    assert order["status"] == "出荷済" and not order["overdue"]
    assert order["payment_failed_for_next"] and sub["next_order_failed"]
    assert order["previous_order_id"] == sub["order_ids"][-2]
    assert order["subscription_flag"]["status"] == "設定"


def test_derived_reasons_follow_the_customers(sandbox: Sandbox) -> None:
    """The store's own rules: a blacklisted buyer, a blacklisted look-alike by the configured check
    method, a remote-island postal code, a customer matching by the seed's three discount rules."""
    bad = sandbox.tamago_customer(name="黒田 太郎", phone="090-1111-2222", postal_code="160-0001", blacklisted=True)
    same_phone = sandbox.tamago_order(customer={"name": "白石 花子", "phone": "09011112222",
                                                "postal_code": "530-0002"})
    assert same_phone["reasons"] == ["blacklist_candidate"], "phone matches (hyphens ignored)"
    assert sandbox.tamago_order(customer_id=bad["customer_id"])["reasons"] == ["blacklisted"]
    island = sandbox.tamago_order(customer={"name": "島 一郎", "phone": "090-3333-4444", "postal_code": "907-0004",
                                            "prefecture": "沖縄県", "address": "石垣市登野城1-1"})
    assert island["reasons"] == ["remote_island"]
    sandbox.tamago_customer(name="定期 継続", phone="080-5555-6666", postal_code="812-0011", subscription=True)
    for buyer in ({"name": "定期継続", "phone": "080-0000-0000", "postal_code": "812-0011"},  # name + postal
                  {"name": "別人 です", "phone": "080-5555-6666", "postal_code": "812-0011"},  # phone + postal
                  {"name": "定期 継続", "phone": "080-5555-6666", "postal_code": "100-0001"}):  # name + phone
        assert sandbox.tamago_order(customer=buyer)["reasons"] == ["discount_candidate"], buyer
    only_name = sandbox.tamago_order(customer={"name": "定期 継続", "phone": "03-1234-5678", "postal_code": "999-9999"})
    assert only_name["reasons"] == [] and not only_name["flagged"], "one field alone is no candidate"


def test_blacklist_check_method_is_a_shop_setting(sandbox: Sandbox) -> None:
    sandbox.tamago_customer(name="黒田 太郎", phone="090-1111-2222", postal_code="160-0001", blacklisted=True)
    sandbox.post("/admin/tamago/settings", {"blacklist_check": ["name"]})
    order = sandbox.tamago_order(customer={"name": "黒田太郎", "phone": "090-9999-9999", "postal_code": "530-0002"})
    assert order["reasons"] == ["blacklist_candidate"]
    r = sandbox.client.post(sandbox.admin + "/admin/tamago/settings", json={"blacklist_check": ["email"]})
    assert r.status_code == 400


def test_candidate_cases_build_the_matches_asked_for(sandbox: Sandbox) -> None:
    order = sandbox.tamago_order("discount_candidate", discount_matches=[
        {"rule": "phone+name"}, {"rule": "postal_code+name", "active": False}])
    customers = sandbox.get("/admin/tamago/customers")
    buyer = order["customer"]
    others = [c for c in customers if c["customer_id"] != buyer["customer_id"]]
    assert [[s["active"] for s in c["subscriptions"]] for c in others] == [[True], [False]]
    assert others[0]["phone"] == buyer["phone"] and others[0]["name"] == buyer["name"]
    assert others[1]["postal_code"] == buyer["postal_code"] and others[1]["phone"] != buyer["phone"]
    clean = sandbox.tamago_order("blacklist_candidate", blacklisted_match=False)
    assert clean["reasons"] == ["blacklist_candidate"], "たまご flagged it; the look-alike is not blacklisted"


def test_bad_admin_requests_say_what_is_known(sandbox: Sandbox) -> None:
    r = sandbox.client.post(sandbox.admin + "/admin/tamago/orders", json={"reason": "nope"})
    assert r.status_code == 400 and "remote_island" in r.json()["detail"]
    assert sandbox.client.get(sandbox.admin + "/admin/tamago/orders/1").status_code == 404
    r = sandbox.client.post(sandbox.admin + "/admin/tamago/orders", json={"items": {"X": 1}})
    assert r.status_code == 400 and "TMG-SIM-30D" in r.json()["detail"]


# --- screens over HTTP ------------------------------------------------------------------------
def test_pages_need_a_login_and_posts_a_csrf_token(sandbox: Sandbox, tamago: Tamago) -> None:
    order = sandbox.tamago_order("remote_island")
    anonymous = httpx.get(f"{tamago.base}/orders/{order['order_id']}", follow_redirects=False)
    assert anonymous.status_code == 303 and "/login?next=/orders/" in anonymous.headers["location"]
    r = tamago.client.post(f"/orders/{order['order_id']}/flag", data={
        "csrf_token": "forged", "scope": "order", "status": "解除", "date": "2026-11-20"})
    assert r.status_code == 403 and "不正な操作" in r.text
    assert sandbox.tamago(order["order_id"])["flag"]["status"] == "設定"
    sandbox.fault("tamago", expire_sessions=True)
    r = tamago.client.get("/orders")
    assert r.status_code == 303, "an expired session goes to the login page"


def test_releasing_a_normal_order_sends_it_to_shipping_preparation(sandbox: Sandbox, tamago: Tamago) -> None:
    order_id = sandbox.tamago_order("blacklist_candidate", blacklisted_match=False)["order_id"]
    r = tamago.release(order_id, comment="顧客検索でブラックリスト該当なし")
    assert r.status_code == 303
    state = sandbox.tamago(order_id)
    assert state["status"] == "発送準備中" and not state["flagged"]
    assert state["flag"] == {"status": "解除", "date": "2026-11-20", "comment": "顧客検索でブラックリスト該当なし"}
    assert [len(changes(state, f)) for f in ("flag", "status")] == [2, 1], "set once, released once; moved once"
    [released] = sandbox.audit("tamago", "order_released")
    assert (released["order_id"], released["released_overdue"]) == (order_id, False)
    assert "要対応設定（今回注文分）を更新しました。" in tamago.order_page(order_id)


def test_subscription_order_needs_both_fields_released(sandbox: Sandbox, tamago: Tamago) -> None:
    order_id = sandbox.tamago_order("discount_candidate", subscription=True, cycle=2)["order_id"]
    tamago.release(order_id, "order")
    half = sandbox.tamago(order_id)
    assert half["flagged"] and half["status"] == "新規受付", "定期全体 is still 設定 (the FAQ's trap)"
    flagged_ids = [o["order_id"] for o in sandbox.get("/admin/tamago/orders", flagged=True)]
    assert order_id in flagged_ids
    tamago.release(order_id, "subscription")
    state = sandbox.tamago(order_id)
    assert not state["flagged"] and state["status"] == "発送準備中"
    assert len(changes(state, "subscription_flag")) == 2 and len(changes(state, "status")) == 1
    r = tamago.release(order_id, "subscription")
    assert r.status_code == 303
    assert len(changes(sandbox.tamago(order_id), "subscription_flag")) == 2, "a repeat changes no field"


def test_release_with_an_overdue_ship_date_is_recorded(sandbox: Sandbox, tamago: Tamago) -> None:
    order_id = sandbox.tamago_order("discount_candidate", ship_in_days=-2)["order_id"]
    assert sandbox.tamago(order_id)["overdue"]
    tamago.release(order_id)
    [released] = sandbox.audit("tamago", "order_released")
    assert released["released_overdue"] is True


def test_correction_changes_only_what_differs(sandbox: Sandbox, tamago: Tamago) -> None:
    order = sandbox.tamago_order("remote_island", subscription=True)
    order_id = order["order_id"]
    assert (order["shipping_fee"], order["interval_days"], order["member_discount"]) == (550, 30, False)
    r = tamago.correct(order_id, shipping_fee="1650", ship_date="2026-11-25", interval_days="45",
                       member_discount="1")
    assert r.status_code == 303
    state = sandbox.tamago(order_id)
    assert (state["shipping_fee"], state["ship_date"], state["interval_days"], state["member_discount"]) == (
        1650, "2026-11-25", 45, True)
    assert state["discount_yen"] == 398 and state["total"] == 3980 + 1650 - 398
    assert state["flagged"], "a correction does not release"
    sub = sandbox.get(f"/admin/tamago/customers/{state['customer']['customer_id']}")["subscriptions"][0]
    assert sub["interval_days"] == 45, "the subscription's interval follows"
    tamago.correct(order_id, shipping_fee="1650")
    again = sandbox.tamago(order_id)
    assert [len(changes(again, f)) for f in ("shipping_fee", "ship_date", "interval_days", "member_discount")] == [
        1, 1, 1, 1]
    r = tamago.correct(order_id, shipping_fee="abc")
    assert r.status_code == 400 and "送料は0以上の数値で入力してください。" in r.text


def test_customer_search_matches_every_given_field(sandbox: Sandbox, tamago: Tamago) -> None:
    a = sandbox.tamago_customer(name="山田 花子", phone="090-1234-5678", postal_code="160-0023", subscription=True)
    sandbox.tamago_customer(name="山田 花子", phone="080-0000-1111", postal_code="530-0001", blacklisted=True)
    r = tamago.client.get("/customers", params={"search": 1, "name": "山田花子"})
    assert r.text.count('data-testid="customer-row"') == 2
    r = tamago.client.get("/customers", params={"search": 1, "name": "山田 花子", "phone": "09012345678"})
    assert r.text.count('data-testid="customer-row"') == 1 and a["customer_id"] in r.text and "継続中" in r.text
    r = tamago.client.get("/customers", params={"search": 1})
    assert r.status_code == 400 and "検索条件を1つ以上入力してください。" in r.text


def test_search_pages_twenty_at_a_time(sandbox: Sandbox, tamago: Tamago) -> None:
    for _ in range(45):
        sandbox.tamago_order("remote_island")
    first = tamago.client.get("/orders", params={"flagged": 1}).text
    assert first.count('data-testid="order-row"') == 20 and "全<span data-testid=\"result-total\">45</span>件" in first
    last = tamago.client.get("/orders", params={"flagged": 1, "page": 3}).text
    assert last.count('data-testid="order-row"') == 5 and ">次へ<" not in last


# --- knobs ------------------------------------------------------------------------------------
def test_deleted_order_is_a_japanese_404(sandbox: Sandbox, tamago: Tamago) -> None:
    order_id = sandbox.tamago_order("remote_island")["order_id"]
    sandbox.client.delete(f"{sandbox.admin}/admin/tamago/orders/{order_id}").raise_for_status()
    r = tamago.client.get(f"/orders/{order_id}")
    assert r.status_code == 404 and "注文が見つかりません" in r.text
    assert sandbox.client.get(f"{sandbox.admin}/admin/tamago/orders/{order_id}").status_code == 404
    assert sandbox.audit("tamago", "order_deleted")[0]["order_id"] == order_id


def test_renamed_label_and_hidden_elements(sandbox: Sandbox, tamago: Tamago) -> None:
    order_id = sandbox.tamago_order("remote_island")["order_id"]
    sandbox.post("/admin/tamago/labels", {"label": "要対応を更新する", "to": "要対応を登録する"})
    page = tamago.order_page(order_id)
    assert "要対応を登録する" in page and "要対応を更新する" not in page
    sandbox.client.delete(f"{sandbox.admin}/admin/tamago/labels").raise_for_status()
    sandbox.fault("tamago", hide_elements=["reasons"])
    assert "離島からのご注文" not in tamago.order_page(order_id)
    sandbox.clear_faults()


def test_tamago_scenario_has_every_case(sandbox: Sandbox) -> None:
    flagged_ids = sandbox.reset(seed=3, scenario="tamago")["orders"]
    orders = {o["order_id"]: o for o in sandbox.get("/admin/tamago/orders")}
    flagged = [orders[i] for i in flagged_ids]
    assert all(o["flagged"] for o in flagged)
    reasons = {r for o in flagged for r in o["reasons"]}
    assert reasons == {*SEED_MESSAGES, "amount_mismatch", "manual"}
    assert any(o["overdue"] for o in flagged)
    assert sum(o["subscription_id"] is not None for o in flagged) >= 4
    assert sum("discount_candidate" in o["reasons"] for o in flagged) >= 3
    inactive = [s for c in sandbox.get("/admin/tamago/customers") for s in c["subscriptions"] if not s["active"]]
    assert inactive, "an inactive subscriber"
    assert len(orders) > 40, "注文検索 has more than one page"
    assert sandbox.reset(seed=3, scenario="tamago")["orders"] == flagged_ids, "deterministic"


def test_world_state_and_summary_include_tamago(sandbox: Sandbox) -> None:
    sandbox.tamago_order("remote_island")
    assert sandbox.summary()["tamago_flagged"] == 1
    assert len(sandbox.state()["tamago"]["orders"]) == 1
