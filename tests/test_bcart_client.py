"""The robot's Bカート API client (services/bcart_api.py) against the sandbox, and the 出荷実績
インポート CSV writer (services/bcart_csv.py): reads, updates, never a blank, 429s waited out."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from conftest import Sandbox

from kuroko.errors import ApiError, ConfigurationError, SiteUnavailable, UnknownValue
from services.bcart_api import (
    BcartHttpApi,
    BcartSettings,
    BlankShippingField,
    join_tracking_numbers,
    split_tracking_numbers,
)
from services.bcart_csv import HEADER, ShippingResultRow, shipping_results_csv, write_shipping_results_csv


def new_order(sandbox: Sandbox, payment: str = "請求書払い", destinations: int = 1) -> dict[str, Any]:
    dests = [{"items": [{"product_no": "BC-SIM30-20G", "quantity": 1}, {"product_no": "BC-SIM90-50G", "quantity": 2}]}
             for _ in range(destinations)]
    return sandbox.post("/admin/bcart/orders", {"payment": payment, "destinations": dests})


class Sleeper:
    """Waits by moving the sandbox clock (the rate limit runs on it), and remembers each wait."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.sandbox.advance(seconds=seconds)


@pytest.fixture
def sleeper(sandbox: Sandbox) -> Sleeper:
    return Sleeper(sandbox)


def settings_for(sandbox: Sandbox, **kw: Any) -> BcartSettings:
    return BcartSettings(bcart_url=sandbox.urls["bcart"], **kw)


@pytest.fixture
def client(sandbox: Sandbox, sleeper: Sleeper) -> Iterator[BcartHttpApi]:
    api = BcartHttpApi(settings_for(sandbox), sleep=sleeper)
    yield api
    api.close()


def bcart_requests(sandbox: Sandbox) -> int:
    return int(sandbox.summary()["request_counts"]["bcart"])


def test_settings_default_to_the_sandbox_demo_values(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in sandbox.robot_env().items():
        monkeypatch.setenv(name, value)
    loaded = BcartSettings()
    assert loaded.bcart_url == sandbox.urls["bcart"]
    defaults = BcartSettings.model_fields
    env = sandbox.robot_env()
    assert env["KUROKO_BCART_USER"] == defaults["bcart_user"].default
    assert env["KUROKO_BCART_PASSWORD"] == defaults["bcart_password"].default.get_secret_value()
    assert env["KUROKO_BCART_API_TOKEN"] == defaults["bcart_api_token"].default.get_secret_value()
    assert "bcart-demo-personal-access-token" not in repr(loaded)


def test_reads_orders_shipments_and_labels(sandbox: Sandbox, client: BcartHttpApi) -> None:
    first = new_order(sandbox, payment="銀行振込")
    sandbox.advance(minutes=5)
    second = new_order(sandbox, destinations=2)
    done = new_order(sandbox)
    sandbox.post(f"/admin/bcart/orders/{done['id']}/status", {"status": "完了"})

    labels = client.status_labels()
    assert labels["カスタム1"] == "処理中" and labels["カスタム3"] == "保留" and labels["新規注文"] == "新規注文"
    orders = client.new_orders()
    assert [o.id for o in orders] == [first["id"], second["id"]]
    bank, two = orders
    assert bank.payment == "銀行振込" and bank.payment_confirmed_on is None and bank.status_label == "新規注文"
    assert [(i.product_no, i.quantity) for i in bank.items] == [("BC-SIM30-20G", 1), ("BC-SIM90-50G", 2)]
    assert bank.total_yen == first["final_price"] and bank.code == first["code"]
    assert len(two.shipments) == 2
    for shipment in two.shipments:
        assert shipment.status == "未発送" and shipment.delivery_code == "" and shipment.shipment_date is None
        assert [i.product_no for i in shipment.items] == ["BC-SIM30-20G", "BC-SIM90-50G"]
    assert client.order(done["id"]).status_label == "完了"
    one = client.logistics(two.shipments[1].id)
    assert one.id == two.shipments[1].id and one.order_id == second["id"] and one.pref == "東京都"

    sandbox.post(f"/admin/bcart/orders/{first['id']}/payment", {"date": "2026-11-21"})
    assert client.order(first["id"]).payment_confirmed_on == date(2026, 11, 21)


def test_paging_reads_every_new_order(sandbox: Sandbox, client: BcartHttpApi) -> None:
    sandbox.post("/admin/bcart/settings", {"page_limit_max": 2})
    import services.bcart_api as module

    ids = [new_order(sandbox)["id"] for _ in range(5)]
    original = module.PAGE_SIZE
    module.PAGE_SIZE = 2
    try:
        assert [o.id for o in client.new_orders()] == ids
    finally:
        module.PAGE_SIZE = original


def test_sets_status_by_label(sandbox: Sandbox, client: BcartHttpApi) -> None:
    order = new_order(sandbox)
    changed = client.set_order_status(order["id"], "保留")
    assert changed.status == "カスタム3" and changed.status_label == "保留"
    assert sandbox.get(f"/admin/bcart/orders/{order['id']}")["status"] == "カスタム3"
    assert client.orders("保留")[0].id == order["id"]
    # A label the shop adds later is found (the map is read again once).
    sandbox.post("/admin/bcart/statuses", {"labels": {"カスタム1": "処理中", "カスタム2": "キャンセル",
                                                       "カスタム3": "保留", "カスタム4": "入金待ち"}})
    assert client.set_order_status(order["id"], "入金待ち").status == "カスタム4"
    patches = len(sandbox.get("/admin/bcart/requests"))
    with pytest.raises(UnknownValue, match="発送待ち"):
        client.set_order_status(order["id"], "発送待ち")
    assert not [r for r in sandbox.get("/admin/bcart/requests")[patches:] if r["method"] == "PATCH"]


def test_updates_logistics_with_every_tracking_number(sandbox: Sandbox, client: BcartHttpApi) -> None:
    order = new_order(sandbox)
    lid = order["logistics"][0]["id"]
    code = join_tracking_numbers(["123456789012", "123456789013", "123456789012"])
    assert code == "123456789012,123456789013"
    shipment = client.update_logistics(lid, delivery_code=code, shipment_date=date(2026, 11, 21), status="発送済")
    assert shipment.tracking_numbers == ["123456789012", "123456789013"]
    stored = sandbox.get(f"/admin/bcart/logistics/{lid}")
    assert (stored["delivery_code"], stored["shipment_date"], stored["status"]) == (code, "2026-11-21", "発送済")
    body = sandbox.get("/admin/bcart/requests")[-1]
    assert body["method"] == "PATCH" and json.loads(body["body"])["shipment_date"] == "2026-11-21"


@pytest.mark.parametrize(
    ("delivery_code", "shipment_date", "status", "why"),
    [
        ("", date(2026, 11, 21), "発送済", "送り状番号 is blank"),
        ("   ", date(2026, 11, 21), "発送済", "送り状番号 is blank"),
        (None, date(2026, 11, 21), "発送済", "送り状番号 is blank"),
        ("123456789012,", date(2026, 11, 21), "発送済", "blank"),
        ("123,,456", date(2026, 11, 21), "発送済", "blank"),
        ("１２３４５", date(2026, 11, 21), "発送済", "half-width"),
        ("123 456", date(2026, 11, 21), "発送済", "half-width"),
        ("123456789012", "", "発送済", "発送日 is blank"),
        ("123456789012", None, "発送済", "発送日 is blank"),
        ("123456789012", "2026-11", "発送済", "not a whole date"),
        ("123456789012", "２０２６-１１-２１", "発送済", "not a whole date"),
        ("123456789012", "2026-11-21", "", "発送状況"),
        ("123456789012", "2026-11-21", "出荷済み", "発送状況"),
    ],
)
def test_refuses_a_blank_or_partial_value_without_sending(sandbox: Sandbox, client: BcartHttpApi,
                                                           delivery_code: Any, shipment_date: Any, status: str,
                                                           why: str) -> None:
    order = new_order(sandbox)
    lid = order["logistics"][0]["id"]
    client.update_logistics(lid, delivery_code="999999999999", shipment_date="2026-11-20", status="発送指示")
    before_requests, before_count = bcart_requests(sandbox), client.request_count()
    with pytest.raises(BlankShippingField, match=why) as refused:
        client.update_logistics(lid, delivery_code=delivery_code, shipment_date=shipment_date, status=status)
    assert str(lid) in str(refused.value) and "nothing was sent" in str(refused.value)
    assert bcart_requests(sandbox) == before_requests, "the sandbox saw no request"
    assert client.request_count() == before_count
    stored = sandbox.get(f"/admin/bcart/logistics/{lid}")
    assert (stored["delivery_code"], stored["shipment_date"]) == ("999999999999", "2026-11-20")


def test_waits_out_a_burst_of_429s(sandbox: Sandbox, client: BcartHttpApi, sleeper: Sleeper) -> None:
    order = new_order(sandbox)
    sandbox.fault("bcart", burst_429=3)
    assert client.order(order["id"]).id == order["id"]
    assert sleeper.waits == [1, 1, 1] and client.request_count() == 5, "3 refused + the order + the label map"
    assert sandbox.summary()["responses_429"]["bcart"] == 3


def test_waits_out_the_300_second_lock_never_dropping_a_request(sandbox: Sandbox, client: BcartHttpApi,
                                                                sleeper: Sleeper) -> None:
    sandbox.post("/admin/bcart/settings", {"rate_limit": 5})
    orders = [new_order(sandbox) for _ in range(3)]
    for order in orders:  # 6 reads + 3 PATCHes against a quota of 5
        client.order(order["id"])
        client.update_logistics(order["logistics"][0]["id"], delivery_code="1234", shipment_date="2026-11-21",
                                status="発送済")
        client.logistics(order["logistics"][0]["id"])
    assert sleeper.waits == [300], "one lock, waited out once"
    for order in orders:
        assert sandbox.get(f"/admin/bcart/logistics/{order['logistics'][0]['id']}")["delivery_code"] == "1234"
    assert client.request_count() == 11, "9 calls + the label map + the one refused"


def test_gives_up_after_its_wait_budget(sandbox: Sandbox, sleeper: Sleeper) -> None:
    sandbox.post("/admin/bcart/settings", {"rate_limit": 1})
    api = BcartHttpApi(settings_for(sandbox, bcart_rate_limit_wait_seconds=60), sleep=sleeper)
    api.status_labels()
    with pytest.raises(ApiError) as refused:
        api.status_labels()
    assert refused.value.code == "429" and "300" in str(refused.value)
    assert sleeper.waits == []
    api.close()


def test_errors_are_translated(sandbox: Sandbox, client: BcartHttpApi) -> None:
    with pytest.raises(ApiError) as missing:
        client.order(999999)
    assert missing.value.code == "404"
    wrong = BcartHttpApi(settings_for(sandbox, bcart_api_token="not-the-token"))
    with pytest.raises(ConfigurationError, match="KUROKO_BCART_API_TOKEN") as refused:
        wrong.new_orders()
    assert "not-the-token" not in str(refused.value)
    wrong.close()
    with pytest.raises(ConfigurationError):
        BcartHttpApi(settings_for(sandbox, bcart_api_token=""))
    down = BcartHttpApi(BcartSettings(bcart_url="http://127.0.0.1:9"))
    with pytest.raises(SiteUnavailable):
        down.new_orders()
    down.close()
    sandbox.fault("bcart", error_rate=1.0)
    with pytest.raises(ApiError) as failed:
        client.status_labels()
    assert failed.value.code == "500"


# --- the CSV ----------------------------------------------------------------------------------------
def test_csv_is_shift_jis_crlf_quoted_with_the_eight_columns(tmp_path: Path) -> None:
    rows = [
        ShippingResultRow(8001, join_tracking_numbers(["123456789012", "123456789013"]), date(2026, 11, 21),
                          shipment_code="BC-8001"),
        ShippingResultRow(8002, "987654321098", "2026-11-22", status="発送指示", order_status="処理中",
                          admin_message="本日発送いたしました"),
    ]
    data = shipping_results_csv(rows)
    assert data.count(b"\r\n") == 3 and data.count(b"\n") == 3, "CRLF only"
    text = data.decode("shift_jis")
    lines = text.split("\r\n")
    assert lines[0] == ",".join(f'"{h}"' for h in HEADER)
    assert HEADER == ("Bカート発送ID", "送り状番号", "発送日", "出荷管理番号", "発送状況", "発送メモ",
                      "お客様への連絡事項", "対応状況")
    assert lines[1] == '"8001","123456789012,123456789013","2026-11-21","BC-8001","発送済",,,'
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert parsed[2] == ["8002", "987654321098", "2026-11-22", "", "発送指示", "", "本日発送いたしました", "処理中"]
    path = write_shipping_results_csv(tmp_path, rows, name="shipping_results_1.csv")
    assert path.read_bytes() == data


@pytest.mark.parametrize(
    ("row", "why"),
    [
        (ShippingResultRow(8002, "", date(2026, 11, 21)), "送り状番号 is blank"),
        (ShippingResultRow(8002, "123,", date(2026, 11, 21)), "blank"),
        (ShippingResultRow(8002, "１２３", date(2026, 11, 21)), "half-width"),
        (ShippingResultRow(8002, "123", ""), "発送日 is blank"),
        (ShippingResultRow(8002, "123", "11月21日"), "not a whole date"),
        (ShippingResultRow(8002, "123", date(2026, 11, 21), status=""), "発送状況"),
        (ShippingResultRow(8001, "123", date(2026, 11, 21)), "twice"),
    ],
)
def test_csv_refuses_a_row_with_a_blank(tmp_path: Path, row: ShippingResultRow, why: str) -> None:
    good = ShippingResultRow(8001, "111", date(2026, 11, 21))
    with pytest.raises(BlankShippingField, match=why) as refused:
        write_shipping_results_csv(tmp_path, [good, row], name="results.csv")
    assert "row 2" in str(refused.value) and f"発送ID {row.logistics_id}" in str(refused.value)
    assert not list(tmp_path.iterdir()), "no file written"


def test_tracking_numbers_join_and_split() -> None:
    assert join_tracking_numbers(["A-1", "B-2"]) == "A-1,B-2"
    assert split_tracking_numbers("A-1,B-2") == ["A-1", "B-2"] and split_tracking_numbers("") == []
    for bad in ([], [""], ["ok", " "], ["１"], ["a,b"]):
        with pytest.raises(BlankShippingField):
            join_tracking_numbers(bad)
