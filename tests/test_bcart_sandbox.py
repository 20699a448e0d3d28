"""The sandbox Bカート over plain HTTP: the REST API (token, filters, custom statuses, PATCH, the
300/300 s limit on the virtual clock), the 出荷実績インポート screen's CSV rules, and the admin calls."""

from __future__ import annotations

import re
from contextlib import closing
from typing import Any

import httpx
import pytest
from conftest import Sandbox

TOKEN = "bcart-demo-personal-access-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HEADER = "Bカート発送ID,送り状番号,発送日,出荷管理番号,発送状況,発送メモ,お客様への連絡事項,対応状況"


def new_order(sandbox: Sandbox, payment: str = "請求書払い", destinations: int = 1, **kw: Any) -> dict[str, Any]:
    dests = [{"items": [{"product_no": "BC-SIM30-20G", "quantity": 1 + i}]} for i in range(destinations)]
    return sandbox.post("/admin/bcart/orders", {"payment": payment, "destinations": dests, **kw})


@pytest.fixture
def api(sandbox: Sandbox) -> Any:
    with httpx.Client(base_url=sandbox.urls["bcart"] + "/api/v1", headers=AUTH, timeout=30) as client:
        yield client


def login(sandbox: Sandbox) -> httpx.Client:
    """A logged-in screen session (the login form's CSRF token taken from the page)."""
    client = httpx.Client(base_url=sandbox.urls["bcart"], timeout=30)
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text
    done = client.post("/login", data={"csrf_token": token.group(1), "user": "bcart-demo",
                                       "password": "bcart-demo-password", "next": "/order"})
    assert done.status_code == 303 and done.headers["location"] == "/order"
    return client


def upload(client: httpx.Client, data: bytes, name: str = "shipping.csv") -> httpx.Response:
    form = client.get("/logistics/import")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token
    return client.post("/logistics/import", data={"csrf_token": token.group(1)},
                       files={"csv_file": (name, data, "text/csv")})


def test_the_api_needs_the_token(sandbox: Sandbox, api: httpx.Client) -> None:
    bare = httpx.get(sandbox.urls["bcart"] + "/api/v1/orders", timeout=30)
    assert bare.status_code == 401 and bare.json()["error"] == "Unauthorized"
    wrong = httpx.get(sandbox.urls["bcart"] + "/api/v1/orders", headers={"Authorization": "Bearer nope"}, timeout=30)
    assert wrong.status_code == 401
    assert api.get("/orders").status_code == 200
    sandbox.fault("bcart", refuse_token=True)
    assert api.get("/orders").status_code == 401
    sandbox.clear_faults()
    assert api.get("/orders").status_code == 200


def test_orders_filters_paging_and_complete(sandbox: Sandbox, api: httpx.Client) -> None:
    first = new_order(sandbox)
    sandbox.advance(hours=2)
    second = new_order(sandbox, payment="銀行振込", destinations=2)
    third = new_order(sandbox)
    api.patch(f"/orders/{third['id']}", json={"status": "完了"}).raise_for_status()

    new = api.get("/orders", params={"status": "新規注文"}).json()
    assert [o["id"] for o in new["orders"]] == [first["id"], second["id"]]
    assert new["meta"]["total"] == 2
    assert "logistics" not in new["orders"][0], "without complete=1 no embedded rows"

    full = api.get("/orders", params={"status": "新規注文", "complete": 1}).json()["orders"]
    two = next(o for o in full if o["id"] == second["id"])
    assert two["payment"] == "銀行振込" and two["payment_at"] is None
    assert len(two["logistics"]) == 2 and {lg["status"] for lg in two["logistics"]} == {"未発送"}
    assert {p["logistics_id"] for p in two["order_products"]} == {lg["id"] for lg in two["logistics"]}
    assert two["order_products"][0]["product_no"] == "BC-SIM30-20G"

    page = api.get("/orders", params={"limit": 2, "offset": 2}).json()
    assert [o["id"] for o in page["orders"]] == [third["id"]] and page["meta"]["total"] == 3
    later = api.get("/orders", params={"ordered_at__gte": two["ordered_at"]}).json()["orders"]
    assert [o["id"] for o in later] == [second["id"], third["id"]]
    assert api.get("/orders", params={"code": first["code"]}).json()["orders"][0]["id"] == first["id"]
    assert api.get("/orders", params={"status": "処理中"}).status_code == 400, "labels are not API values"
    assert api.get("/orders", params={"limit": 1000}).status_code == 400
    assert api.get(f"/orders/{first['id']}").json()["order"]["logistics"][0]["order_id"] == first["id"]
    assert api.get("/orders/999999").status_code == 404


def test_custom_statuses_come_back_as_custom_n(sandbox: Sandbox, api: httpx.Client) -> None:
    sandbox.post("/admin/bcart/statuses", {"labels": {"カスタム1": "処理中", "カスタム2": "キャンセル",
                                                       "カスタム3": "保留", "カスタム4": "入金待ち"}})
    statuses = api.get("/order_statuses").json()["order_statuses"]
    assert {s["status"]: s["label"] for s in statuses} == {
        "新規注文": "新規注文", "カスタム1": "処理中", "カスタム2": "キャンセル", "カスタム3": "保留",
        "カスタム4": "入金待ち", "完了": "完了"}
    order = new_order(sandbox)
    changed = api.patch(f"/orders/{order['id']}", json={"status": "カスタム4"}).json()["order"]
    assert changed["status"] == "カスタム4"
    state = sandbox.get(f"/admin/bcart/orders/{order['id']}")
    assert state["status"] == "カスタム4" and state["status_label"] == "入金待ち"
    assert state["history"][-1] == {**state["history"][-1], "field": "status", "old": "新規注文",
                                    "new": "カスタム4", "via": "api"}
    refused = api.patch(f"/orders/{order['id']}", json={"status": "保留"})
    assert refused.status_code == 400 and "カスタム3" in refused.json()["message"]
    assert api.patch(f"/orders/{order['id']}", json={"status": "カスタム9"}).status_code == 400
    assert [o["id"] for o in api.get("/orders", params={"status": "カスタム4"}).json()["orders"]] == [order["id"]]


def test_patch_logistics_sets_and_a_blank_really_blanks(sandbox: Sandbox, api: httpx.Client) -> None:
    order = new_order(sandbox)
    lid = order["logistics"][0]["id"]
    full = api.patch(f"/logistics/{lid}", json={"delivery_code": "123456789012,123456789013",
                                                "shipment_date": "2026-11-21", "status": "発送済"})
    assert full.status_code == 200
    assert full.json()["logistic"] == {**full.json()["logistic"], "delivery_code": "123456789012,123456789013",
                                           "shipment_date": "2026-11-21", "status": "発送済"}
    assert api.get(f"/logistics/{lid}").json()["logistic"]["delivery_code"] == "123456789012,123456789013"

    # Refused values change nothing at all.
    bad = api.patch(f"/logistics/{lid}", json={"delivery_code": "999", "shipment_date": "２０２６-１１-２２"})
    assert bad.status_code == 400
    assert api.patch(f"/logistics/{lid}", json={"status": "出荷済み"}).status_code == 400
    assert api.get(f"/logistics/{lid}").json()["logistic"]["delivery_code"] == "123456789012,123456789013"

    # As on the real B-cart: an empty value overwrites the stored one with nothing.
    api.patch(f"/logistics/{lid}", json={"delivery_code": ""}).raise_for_status()
    api.patch(f"/logistics/{lid}", json={"shipment_date": None}).raise_for_status()
    after = api.get(f"/logistics/{lid}").json()["logistic"]
    assert after["delivery_code"] == "" and after["shipment_date"] is None and after["status"] == "発送済"
    history = [h for h in sandbox.get(f"/admin/bcart/orders/{order['id']}")["history"] if h["target"] == "logistics"]
    assert [(h["field"], h["new"]) for h in history][-2:] == [("delivery_code", ""), ("shipment_date", None)]


def test_csv_import_per_row_errors_and_blanks(sandbox: Sandbox) -> None:
    order = new_order(sandbox, destinations=2)
    other = new_order(sandbox)
    a, b = (lg["id"] for lg in order["logistics"])
    c = other["logistics"][0]["id"]
    with httpx.Client(base_url=sandbox.urls["bcart"] + "/api/v1", headers=AUTH, timeout=30) as sandbox_api:
        sandbox_api.patch(f"/logistics/{b}", json={"delivery_code": "555", "shipment_date": "2026-11-19",
                                                   "status": "発送指示", "memo": "keep"}).raise_for_status()
    rows = [
        HEADER,
        f'"{a}","111122223333","2026-11-21","MCF-1","発送済","","","処理中"',
        f'"{b}","","","","発送済","","",""',  # the trap: both blanks overwrite
        f'"{c}","１２３４","2026-11-21","","発送済","","",""',  # full-width digits: refused
        '"999999","1","2026-11-21","","発送済","","",""',  # no such shipment
        f'"{c}","1234","11月21日","","発送済","","",""',  # Excel turned the date into text
    ]
    data = ("\r\n".join(rows) + "\r\n").encode("cp932")
    with closing(login(sandbox)) as screen:
        page = upload(screen, data)
    assert page.status_code == 200
    for line, text in ((2, "成功"), (3, "成功"), (4, "全角"), (5, "存在しません"), (6, "yyyy-mm-dd")):
        assert re.search(rf"{line}行目：[^<]*{text}" if text != "成功" else rf">{line}<", page.text), (line, text)
    assert "2件を更新しました。エラー3件。" in page.text

    imported = sandbox.get("/admin/bcart/imports")[-1]
    assert imported["encoding"] == "shift_jis" and imported["line_endings"] == "CRLF"
    assert imported["header"] == HEADER.split(",")
    assert [r["ok"] for r in imported["results"]] == [True, True, False, False, False]
    state = sandbox.get(f"/admin/bcart/orders/{order['id']}")
    first, second = state["logistics"]
    assert (first["delivery_code"], first["shipment_date"], first["shipment_code"], first["status"]) == (
        "111122223333", "2026-11-21", "MCF-1", "発送済")
    assert state["status"] == "カスタム1", "対応状況 by its label"
    assert second["delivery_code"] == "" and second["shipment_date"] is None, "blank really blanks"
    assert second["memo"] == "keep", "other blank columns leave the value"
    untouched = sandbox.get(f"/admin/bcart/orders/{other['id']}")["logistics"][0]
    assert untouched["delivery_code"] == "" and untouched["status"] == "未発送"


def test_csv_import_refuses_a_file_it_cannot_read(sandbox: Sandbox) -> None:
    with closing(login(sandbox)) as screen:
        utf8 = upload(screen, (HEADER + "\r\n").encode("utf-8") + b'"8001","1","2026-11-21"\r\n')
        named = upload(screen, (HEADER + "\r\n").encode("cp932"), name="出荷.csv")
        no_csrf = screen.post("/logistics/import", files={"csv_file": ("a.csv", b"x", "text/csv")})
    assert utf8.status_code == 400 and ("見出し行" in utf8.text or "文字コード" in utf8.text)
    assert named.status_code == 400 and "半角英数字" in named.text
    assert no_csrf.status_code == 403
    assert [i["error"] is not None for i in sandbox.get("/admin/bcart/imports")] == [True, True]


def test_rate_limit_300_per_300_seconds_on_the_virtual_clock(sandbox: Sandbox, api: httpx.Client) -> None:
    assert sandbox.get("/admin/bcart/settings")["rate_limit"] == 300
    for _ in range(300):
        assert api.get("/order_statuses").status_code == 200
    locked = api.get("/order_statuses")
    assert locked.status_code == 429 and locked.headers["Retry-After"] == "300"
    sandbox.advance(seconds=299)
    still = api.get("/orders")
    assert still.status_code == 429 and still.headers["Retry-After"] == "1"
    sandbox.advance(seconds=1)
    assert api.get("/orders").status_code == 200, "the lock ends after 300 s"
    assert sandbox.summary()["responses_429"]["bcart"] == 2


def test_the_window_restarts_and_the_knob_changes_it(sandbox: Sandbox, api: httpx.Client) -> None:
    sandbox.post("/admin/bcart/settings", {"rate_limit": 3, "rate_window_seconds": 60, "lock_seconds": 30})
    for _ in range(3):
        api.get("/orders").raise_for_status()
    sandbox.advance(seconds=60)
    for _ in range(3):
        api.get("/orders").raise_for_status()
    refused = api.get("/orders")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "30"
    sandbox.fault("bcart", burst_429=1)
    sandbox.advance(seconds=30)
    burst = api.get("/orders")
    assert burst.status_code == 429 and burst.headers["Retry-After"] == "1"
    assert api.get("/orders").status_code == 200


def test_admin_plays_the_people(sandbox: Sandbox, api: httpx.Client) -> None:
    order = sandbox.bcart_order("銀行振込", items=[{"product_no": "BC-VOICE30", "quantity": 3}])
    assert order["order_products"][0]["order_pro_count"] == 3 and len(order["logistics"]) == 1
    sandbox.advance(days=1)
    seen = sandbox.bcart_payment_seen(order["id"])
    assert seen["payment_at"] == "2026-11-21" == sandbox.bcart_state(order["id"])["payment_at"]
    assert api.get(f"/orders/{order['id']}").json()["order"]["payment_at"] == "2026-11-21"
    sandbox.post(f"/admin/bcart/orders/{order['id']}/status", {"status": "キャンセル"})
    assert api.get(f"/orders/{order['id']}").json()["order"]["status"] == "カスタム2"
    with pytest.raises(httpx.HTTPStatusError):
        sandbox.post("/admin/bcart/orders", {"payment": "現金書留", "items": [{"product_no": "BC-SIM30-20G"}]})
    assert sandbox.bcart_mails() == []


def test_the_bcart_scenario(sandbox: Sandbox) -> None:
    placed = sandbox.reset(scenario="bcart")["orders"]
    kinds = {p.split(":")[2]: int(p.split(":")[1]) for p in placed}
    assert set(kinds) == {"invoice", "bank_transfer", "out_of_stock", "two_destinations"}
    state = sandbox.get("/admin/bcart/state")
    orders = {o["id"]: o for o in state["orders"]}
    assert orders[kinds["bank_transfer"]]["payment"] == "銀行振込"
    assert len(orders[kinds["two_destinations"]]["logistics"]) == 2
    short = orders[kinds["out_of_stock"]]["order_products"][0]["product_no"]
    sku = state["products"][short]["amazon_sku"]
    assert sandbox.state()["amazon"]["fba_stock"][sku] == 0
    stocked = state["products"][orders[kinds["invoice"]]["order_products"][0]["product_no"]]["amazon_sku"]
    assert sandbox.state()["amazon"]["fba_stock"][stocked] > 0


def test_the_window_can_run_on_the_real_clock(sandbox: Sandbox, api: httpx.Client) -> None:
    import time

    sandbox.post("/admin/bcart/settings", {"rate_limit": 2, "rate_window_seconds": 1, "lock_seconds": 1,
                                           "rate_clock": "real"})
    assert [api.get("/orders").status_code for _ in range(3)] == [200, 200, 429]
    time.sleep(1.1)
    assert api.get("/orders").status_code == 200
    with pytest.raises(httpx.HTTPStatusError):
        sandbox.post("/admin/bcart/settings", {"rate_clock": "sundial"})


def test_documents_are_well_formed_pdfs(sandbox: Sandbox) -> None:
    order = new_order(sandbox, destinations=2)
    with closing(login(sandbox)) as screen:
        for kind, title in (("delivery_note", "納品書"), ("invoice", "請求書")):
            pdf = screen.get(f"/order/{order['id']}/document/{kind}")
            assert pdf.headers["content-type"] == "application/pdf"
            assert f"{kind}_{order['code']}.pdf" in pdf.headers["content-disposition"]
            data = pdf.content
            xref = int(data.rsplit(b"startxref", 1)[1].split()[0])
            assert data[xref:xref + 4] == b"xref"
            count = int(data[xref:].split(b"\n")[1].split()[1])
            entries = data[xref:].split(b"\n")[3:3 + count - 1]
            for number, entry in enumerate(entries, start=1):
                offset = int(entry.split()[0])
                assert data[offset:].startswith(f"{number} 0 obj".encode()), number
            assert ("<FEFF" + "".join(f"{ord(c):04X}" for c in title) + ">").encode() in data, "title in Info"
        missing = screen.get(f"/order/{order['id']}/document/receipt")
        assert missing.status_code == 404
    assert httpx.get(sandbox.urls["bcart"] + f"/order/{order['id']}/document/invoice").status_code == 303
