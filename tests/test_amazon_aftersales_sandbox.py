"""The sandbox's Amazon after the parcel leaves, on the wire (python-amazon-sp-api unmodified, raw
HTTP where shapes matter): scripted shipments and packages, each tracking fate on the virtual
clock, moved estimated dates, orders that turn Unfulfillable/Invalid/CompletePartialled, per-SKU
return reasons, idempotent returns processed on the clock, and the reimbursements report — every
body checked against Amazon's models in tests/refs/sp-api/."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import jsonschema
import pytest
from conftest import Sandbox
from sp_api.api import FulfillmentOutbound, Reports
from test_spapi_sandbox import (
    DATA_SIM,
    FORMATS,
    NAHA,
    OUTBOUND,
    REFS,
    access_token,
    credentials,
    jst_day,
    marketplace,
    order_body,
    outbound,
    strict,
    token_class,
)

DATA_90 = "SIM-DATA-90D-50GB"
VOICE_SIM = "SIM-VOICE-30D"


def create(client: FulfillmentOutbound, seller_id: str, lines: dict[str, int], **kw: Any) -> None:
    body = order_body(seller_id, **kw)
    body["items"] = [{"sellerSku": sku, "sellerFulfillmentOrderItemId": sku, "quantity": q} for sku, q in lines.items()]
    client.create_fulfillment_order(**body)


def order(client: FulfillmentOutbound, seller_id: str) -> dict[str, Any]:
    return dict(client.get_fulfillment_order(seller_id).payload)


def tracking(client: FulfillmentOutbound, number: int) -> dict[str, Any]:
    return dict(client.get_package_tracking_details(packageNumber=number).payload)


def codes(details: dict[str, Any]) -> list[str]:
    return [e["eventCode"] for e in reversed(details.get("trackingEvents") or [])]  # oldest first


def plan(sandbox: Sandbox, seller_id: str, **body: Any) -> Any:
    return sandbox.post(f"/admin/amazon/fulfillment-orders/{seller_id}/plan", body)


def only_package(client: FulfillmentOutbound, seller_id: str) -> int:
    [shipment] = order(client, seller_id)["fulfillmentShipments"]
    return int(shipment["fulfillmentShipmentPackage"][0]["packageNumber"])


# --- shipments and packages -------------------------------------------------------------------
def test_two_shipments_on_two_days_one_with_two_packages(sandbox: Sandbox) -> None:
    client = outbound(sandbox)
    plan(sandbox, "RKT-SPLIT", shipments=[
        {"after_hours": 20, "packages": [{"skus": {DATA_SIM: 1}, "carrier": "YAMATO"},
                                         {"skus": {DATA_90: 1}, "carrier": "SAGAWA"}]},
        {"after_hours": 44, "packages": [{"carrier": "JAPAN_POST"}]},  # the rest
    ])
    create(client, "RKT-SPLIT", {DATA_SIM: 2, DATA_90: 1})
    sandbox.advance(hours=1)
    pending = order(client, "RKT-SPLIT")
    assert [s["fulfillmentShipmentStatus"] for s in pending["fulfillmentShipments"]] == ["PENDING", "PENDING"]
    assert pending["fulfillmentOrder"]["fulfillmentOrderStatus"] == "Processing"

    sandbox.advance(hours=20)
    first, second = order(client, "RKT-SPLIT")["fulfillmentShipments"]
    assert (first["fulfillmentShipmentStatus"], second["fulfillmentShipmentStatus"]) == ("SHIPPED", "PENDING")
    assert [p["carrierCode"] for p in first["fulfillmentShipmentPackage"]] == ["YAMATO", "SAGAWA"]
    numbers = {p["packageNumber"] for p in first["fulfillmentShipmentPackage"]}
    assert {i["packageNumber"] for i in first["fulfillmentShipmentItem"]} == numbers and len(numbers) == 2
    assert order(client, "RKT-SPLIT")["fulfillmentOrder"]["fulfillmentOrderStatus"] == "Processing"

    sandbox.advance(days=1)
    done = order(client, "RKT-SPLIT")
    assert done["fulfillmentOrder"]["fulfillmentOrderStatus"] == "Complete"
    first, second = done["fulfillmentShipments"]
    assert jst_day(second["shippingDate"]) > jst_day(first["shippingDate"])
    assert second["fulfillmentShipmentPackage"][0]["carrierCode"] == "JAPAN_POST"
    assert second["fulfillmentShipmentItem"] == [{"sellerSku": DATA_SIM, "sellerFulfillmentOrderItemId": DATA_SIM,
                                                  "quantity": 1, "packageNumber": second[
                                                      "fulfillmentShipmentPackage"][0]["packageNumber"]}]
    assert second["estimatedArrivalDate"] > first["estimatedArrivalDate"]
    item = next(i for i in done["fulfillmentOrderItems"] if i["sellerSku"] == DATA_SIM)
    assert item["estimatedArrivalDate"] == second["estimatedArrivalDate"]  # the latest of its shipments
    trackings = {p["trackingNumber"] for s in done["fulfillmentShipments"] for p in s["fulfillmentShipmentPackage"]}
    assert len(trackings) == 3


def test_plan_for_the_next_order_and_the_default_stays_one_package(sandbox: Sandbox) -> None:
    client = outbound(sandbox)
    sandbox.post("/admin/amazon/plans/next", {"fate": "lost_by_carrier"})
    create(client, "RKT-NEXT", {DATA_SIM: 1})
    create(client, "RKT-PLAIN", {DATA_SIM: 1})
    sandbox.advance(days=4)
    assert tracking(client, only_package(client, "RKT-NEXT"))["currentStatus"] == "UNDELIVERABLE"
    plain = order(client, "RKT-PLAIN")
    assert len(plain["fulfillmentShipments"]) == 1 and len(plain["fulfillmentShipments"][0][
        "fulfillmentShipmentPackage"]) == 1
    assert tracking(client, only_package(client, "RKT-PLAIN"))["currentStatus"] == "DELIVERED"
    with pytest.raises(httpx.HTTPStatusError):  # a shipped order's shipments can no longer change
        plan(sandbox, "RKT-PLAIN", shipments=[{"after_hours": 1}])
    with pytest.raises(httpx.HTTPStatusError):
        sandbox.post("/admin/amazon/plans/next", {"fate": "eaten_by_goats"})


# --- tracking fates -------------------------------------------------------------------------------
FATES = {
    "delivered": (["EVENT_102", "EVENT_202", "EVENT_201", "EVENT_302", "EVENT_301"], "DELIVERED"),
    "lost": (["EVENT_102", "EVENT_202"], "IN_TRANSIT"),
    "lost_by_carrier": (["EVENT_102", "EVENT_202", "EVENT_409"], "UNDELIVERABLE"),
    "damaged": (["EVENT_102", "EVENT_202", "EVENT_405", "EVENT_201", "EVENT_302", "EVENT_301"], "DELIVERED"),
    "undeliverable": (["EVENT_102", "EVENT_202", "EVENT_201", "EVENT_302", "EVENT_416"], "UNDELIVERABLE"),
    "undeliverable_returned": (["EVENT_102", "EVENT_202", "EVENT_201", "EVENT_302", "EVENT_416", "EVENT_408",
                                "EVENT_309"], "RETURNED"),
    "delivered_only": (["EVENT_301"], "DELIVERED"),
    "unknown": (["EVENT_102", "EVENT_202", "EVENT_444"], "FORWARDED"),
}


@pytest.mark.parametrize("fate", list(FATES))
def test_each_fate_ends_as_the_carrier_reports_it(sandbox: Sandbox, fate: str) -> None:
    client = outbound(sandbox)
    plan(sandbox, "RKT-FATE", fate=fate)
    create(client, "RKT-FATE", {DATA_SIM: 1})
    sandbox.advance(days=9)
    details = tracking(client, only_package(client, "RKT-FATE"))
    assert (codes(details), details["currentStatus"]) == FATES[fate]


def test_late_delivery_and_carriers_that_report_only_delivery_on_the_clock(sandbox: Sandbox) -> None:
    client = outbound(sandbox)
    plan(sandbox, "RKT-LATE", fate="late", deliver_after_days=6)
    plan(sandbox, "RKT-QUIET", fate="delivered_only")
    create(client, "RKT-LATE", {DATA_SIM: 1})
    create(client, "RKT-QUIET", {DATA_SIM: 1})
    sandbox.advance(days=1)
    quiet = tracking(client, only_package(client, "RKT-QUIET"))
    assert (quiet["currentStatus"], quiet["trackingEvents"]) == ("UNKNOWN", [])
    sandbox.advance(days=2)
    late = tracking(client, only_package(client, "RKT-LATE"))
    assert late["currentStatus"] == "DELAYED" and codes(late)[-1] == "EVENT_418"
    edd = jst_day(late["estimatedArrivalDate"])
    sandbox.advance(days=6)
    late = tracking(client, only_package(client, "RKT-LATE"))
    assert late["currentStatus"] == "DELIVERED"
    assert (jst_day(late["trackingEvents"][0]["eventDate"]) - edd).days == 6
    assert tracking(client, only_package(client, "RKT-QUIET"))["currentStatus"] == "DELIVERED"


def test_undeliverable_parcel_returns_to_stock(sandbox: Sandbox) -> None:
    client = outbound(sandbox)
    plan(sandbox, "RKT-BACK", fate="undeliverable_returned")
    create(client, "RKT-BACK", {DATA_SIM: 2})
    stock = sandbox.state()["amazon"]["fba_stock"][DATA_SIM]
    sandbox.advance(days=4)
    assert tracking(client, only_package(client, "RKT-BACK"))["currentStatus"] == "RETURNING"
    sandbox.advance(days=4)
    assert tracking(client, only_package(client, "RKT-BACK"))["currentStatus"] == "RETURNED"
    assert sandbox.state()["amazon"]["fba_stock"][DATA_SIM] == stock + 2
    assert len(sandbox.audit("amazon", "package_returned_to_fc")) == 1


def test_an_injected_unknown_event_and_status(sandbox: Sandbox) -> None:
    client = outbound(sandbox)
    create(client, "RKT-ODD", {DATA_SIM: 1})
    sandbox.advance(hours=23)
    number = only_package(client, "RKT-ODD")
    sandbox.post(f"/admin/amazon/packages/{number}/events",
                 {"code": "EVENT_636", "description": "Held at depot.", "status": "HELD_AT_DEPOT"})
    details = tracking(client, number)
    assert (codes(details)[-1], details["currentStatus"]) == ("EVENT_636", "HELD_AT_DEPOT")


def test_amazon_moves_the_estimated_date_after_shipping(sandbox: Sandbox) -> None:
    client = outbound(sandbox)
    plan(sandbox, "RKT-EDD", edd_shift_days=2, fate="lost")
    create(client, "RKT-EDD", {DATA_SIM: 1})
    before = order(client, "RKT-EDD")["fulfillmentOrderItems"][0]["estimatedArrivalDate"]
    sandbox.advance(days=1)
    after = order(client, "RKT-EDD")
    shipment = after["fulfillmentShipments"][0]
    moved = [after["fulfillmentOrderItems"][0]["estimatedArrivalDate"], shipment["estimatedArrivalDate"],
             shipment["fulfillmentShipmentPackage"][0]["estimatedArrivalDate"],
             tracking(client, only_package(client, "RKT-EDD"))["estimatedArrivalDate"]]
    assert {(jst_day(m) - jst_day(before)).days for m in moved} == {2}
    sandbox.post("/admin/amazon/fulfillment-orders/RKT-EDD/edd", {"days": 1})  # and again, by an admin
    again = order(client, "RKT-EDD")["fulfillmentOrderItems"][0]["estimatedArrivalDate"]
    assert (jst_day(again) - jst_day(before)).days == 3


def test_an_order_not_shipped_by_its_estimated_date(sandbox: Sandbox) -> None:
    client = outbound(sandbox)
    plan(sandbox, "RKT-STUCK", shipments=[{"after_hours": 24 * 4, "edd_follows": False}])
    create(client, "RKT-STUCK", {DATA_SIM: 1})
    sandbox.advance(days=3)
    stuck = order(client, "RKT-STUCK")
    [shipment] = stuck["fulfillmentShipments"]
    assert shipment["fulfillmentShipmentStatus"] == "PENDING" and stuck["fulfillmentOrder"][
        "fulfillmentOrderStatus"] == "Processing"
    assert shipment["estimatedArrivalDate"] < sandbox.now().isoformat().replace("+00:00", "Z")
    sandbox.advance(days=3)
    details = tracking(client, only_package(client, "RKT-STUCK"))
    assert details["currentStatus"] == "DELIVERED" and details["trackingEvents"][0]["eventDate"] > details["shipDate"]


# --- orders that do not ship in full ------------------------------------------------------------------
def test_unfulfillable_and_invalid_after_creation(sandbox: Sandbox) -> None:
    client = outbound(sandbox)
    plan(sandbox, "RKT-UNF", outcome="Unfulfillable", outcome_after_hours=3)
    plan(sandbox, "RKT-INV", outcome="Invalid", outcome_after_hours=0.1)
    create(client, "RKT-UNF", {DATA_SIM: 2})
    create(client, "RKT-INV", {DATA_SIM: 1})
    sandbox.advance(hours=1)
    assert order(client, "RKT-UNF")["fulfillmentOrder"]["fulfillmentOrderStatus"] == "Processing"
    assert order(client, "RKT-INV")["fulfillmentOrder"]["fulfillmentOrderStatus"] == "Invalid"
    sandbox.advance(days=3)
    unf = order(client, "RKT-UNF")
    assert unf["fulfillmentOrder"]["fulfillmentOrderStatus"] == "Unfulfillable"
    assert unf["fulfillmentOrderItems"][0]["unfulfillableQuantity"] == 2
    assert [s["fulfillmentShipmentStatus"] for s in unf["fulfillmentShipments"]] == ["CANCELLED_BY_FULFILLER"]
    assert sandbox.audit("amazon", "package_shipped") == []


def test_complete_partialled_with_cancelled_and_unfulfillable_units(sandbox: Sandbox) -> None:
    client = outbound(sandbox)
    plan(sandbox, "RKT-PART", cancelled={DATA_SIM: 1}, unfulfillable={DATA_90: 1})
    plan(sandbox, "RKT-DROP", shipments=[{"after_hours": 20, "packages": [{"skus": {DATA_SIM: 1}}]},
                                         {"after_hours": 30, "cancelled": True}])
    create(client, "RKT-PART", {DATA_SIM: 2, DATA_90: 1})
    create(client, "RKT-DROP", {DATA_SIM: 2})
    sandbox.advance(days=2)
    part = order(client, "RKT-PART")
    assert part["fulfillmentOrder"]["fulfillmentOrderStatus"] == "CompletePartialled"
    by_sku = {i["sellerSku"]: i for i in part["fulfillmentOrderItems"]}
    assert (by_sku[DATA_SIM]["cancelledQuantity"], by_sku[DATA_SIM]["unfulfillableQuantity"]) == (1, 0)
    assert (by_sku[DATA_90]["cancelledQuantity"], by_sku[DATA_90]["unfulfillableQuantity"]) == (0, 1)
    shipped = part["fulfillmentShipments"][0]["fulfillmentShipmentItem"]
    assert [(i["sellerSku"], i["quantity"]) for i in shipped] == [(DATA_SIM, 1)]
    drop = order(client, "RKT-DROP")
    assert drop["fulfillmentOrder"]["fulfillmentOrderStatus"] == "CompletePartialled"
    assert [s["fulfillmentShipmentStatus"] for s in drop["fulfillmentShipments"]] == [
        "SHIPPED", "CANCELLED_BY_FULFILLER"]
    assert drop["fulfillmentOrderItems"][0]["unfulfillableQuantity"] == 1


# --- returns ----------------------------------------------------------------------------------------------
def test_return_reasons_differ_per_sku(sandbox: Sandbox) -> None:
    client = outbound(sandbox)
    data = [r["returnReasonCode"] for r in client.list_return_reason_codes(sellerSku=DATA_SIM).payload[
        "reasonCodeDetails"]]
    voice = [r["returnReasonCode"] for r in client.list_return_reason_codes(sellerSku=VOICE_SIM).payload[
        "reasonCodeDetails"]]
    assert "CR-DEFECTIVE" in data and "CR-DEFECTIVE" in voice
    assert "CR-UNWANTED_ITEM" in data and "CR-UNWANTED_ITEM" not in voice


def _return(seller_id: str, shipment_id: str, rid: str, reason: str = "CR-DEFECTIVE",
            item: str = DATA_SIM) -> dict[str, str]:
    return {"sellerReturnItemId": rid, "sellerFulfillmentOrderItemId": item, "amazonShipmentId": shipment_id,
            "returnReasonCode": reason}


def test_returns_are_idempotent_refuse_what_cannot_return_and_are_processed_on_the_clock(sandbox: Sandbox) -> None:
    client = outbound(sandbox)
    plan(sandbox, "RKT-RET", return_condition="CarrierDamaged", return_after_days=5)
    create(client, "RKT-RET", {DATA_SIM: 2})
    sandbox.advance(days=3)
    shipment = order(client, "RKT-RET")["fulfillmentShipments"][0]["amazonShipmentId"]
    units = [_return("RKT-RET", shipment, f"RKT-RET-{DATA_SIM}-{n}") for n in (1, 2)]
    first = client.create_fulfillment_return("RKT-RET", items=units).payload
    [auth] = first["returnAuthorizations"]
    assert len(first["returnItems"]) == 2 and first["invalidReturnItems"] == []
    again = client.create_fulfillment_return("RKT-RET", items=units).payload
    assert [a["returnAuthorizationId"] for a in again["returnAuthorizations"]] == [auth["returnAuthorizationId"]]
    assert {i["invalidItemReason"]["invalidItemReasonCode"] for i in again["invalidReturnItems"]} == {
        "DuplicateRequest"}
    assert len(order(client, "RKT-RET")["returnAuthorizations"]) == 1

    refused = client.create_fulfillment_return("RKT-RET", items=[
        _return("RKT-RET", shipment, "X-3"),  # both units already returned
        _return("RKT-RET", shipment, "X-4", reason="CR-SWITCHEROO"),  # not offered for this SKU
        _return("RKT-RET", shipment, "X-5", item="NOT-IN-ORDER"),
    ]).payload
    assert [i["invalidItemReason"]["invalidItemReasonCode"] for i in refused["invalidReturnItems"]] == [
        "NoReturnableQuantity", "InvalidValues", "InvalidValues"]
    assert refused["returnAuthorizations"] == []

    sandbox.advance(days=4)
    assert {r["status"] for r in order(client, "RKT-RET")["returnItems"]} == {"New"}
    sandbox.advance(days=1, hours=1)
    items = order(client, "RKT-RET")["returnItems"]
    assert {(r["status"], r["returnReceivedCondition"]) for r in items} == {("Processed", "CarrierDamaged")}


# --- reports --------------------------------------------------------------------------------------------------
def reports_client(sandbox: Sandbox) -> Reports:
    return Reports(marketplace=marketplace(sandbox), credentials=credentials(),
                   auth_token_client_class=token_class(sandbox))


def test_reimbursements_report_create_poll_download(sandbox: Sandbox) -> None:
    sandbox.post("/admin/amazon/reimbursements", {"case_id": "16496946351", "order_id": "RKT-381234-20261120-01",
                                                   "sku": DATA_SIM, "amount": 2980, "warehouse": 2})
    client = reports_client(sandbox)
    report_id = client.create_report(reportType="GET_FBA_REIMBURSEMENTS_DATA",
                                     dataStartTime="2026-11-01T00:00:00Z").payload["reportId"]
    statuses = [client.get_report(report_id).payload["processingStatus"] for _ in range(2)]
    assert statuses == ["IN_PROGRESS", "DONE"]
    document_id = client.get_report(report_id).payload["reportDocumentId"]
    document = client.get_report_document(document_id, download=True).payload["document"]
    header, *rows = [line.split("\t") for line in document.splitlines() if line]
    assert header[:4] == ["approval-date", "reimbursement-id", "case-id", "amazon-order-id"]
    assert len(header) == 18 and "quantity-reimbursed-cash" in header
    table = [dict(zip(header, row, strict=True)) for row in rows]
    ours = [r for r in table if r["case-id"]]
    assert [(r["case-id"], r["amazon-order-id"], r["amount-total"], r["currency-unit"]) for r in ours] == [
        ("16496946351", "RKT-381234-20261120-01", "2980", "JPY")]
    assert ours[0]["product-name"].startswith("【物理SIM】")  # decoded as the document says (Windows-31J)
    assert sorted(r["reason"] for r in table if not r["case-id"]) == ["Damaged_Warehouse", "Lost_Warehouse"]


def test_a_filed_case_gets_an_id_and_is_answered_on_the_clock(sandbox: Sandbox) -> None:
    paid = sandbox.post("/admin/amazon/cases", {"kind": "lost", "order_id": "RKT-1", "sku": DATA_SIM,
                                                 "answer": "pay", "answer_after_days": 3})
    silent = sandbox.post("/admin/amazon/cases", {"kind": "damaged", "order_id": "RKT-2", "answer": "silent"})
    assert paid["case_id"].isdigit() and len(paid["case_id"]) in (10, 11) and paid["case_id"] != silent["case_id"]
    sandbox.advance(days=2)
    assert sandbox.get("/admin/amazon/reimbursements") == []
    sandbox.advance(days=2)
    [row] = sandbox.get("/admin/amazon/reimbursements")
    assert (row["case-id"], row["amazon-order-id"], row["amount-total"], row["reason"]) == (
        paid["case_id"], "RKT-1", "2980", "Lost_Outbound")
    assert [(a["case_id"], a["answer"]) for a in sandbox.audit("amazon", "case_answered")] == [
        (paid["case_id"], "pay")]
    sandbox.post(f"/admin/amazon/cases/{silent['case_id']}/answer", {"answer": "ask_more"})
    answered = {c["case_id"]: c["answered_at"] is not None for c in sandbox.get("/admin/amazon/cases")}
    assert answered == {paid["case_id"]: True, silent["case_id"]: True}


# --- the wire against Amazon's models --------------------------------------------------------------------------
def _validator(doc: str) -> tuple[dict[str, Any], dict[str, Any]]:
    loaded = json.loads((REFS / f"{doc}.json").read_text())
    return loaded, strict(copy.deepcopy(loaded["definitions"]))


def test_after_sales_answers_validate_against_amazons_models(sandbox: Sandbox) -> None:
    api = httpx.Client(base_url=sandbox.urls["spapi"], headers={"x-amz-access-token": access_token(sandbox)})
    checked: list[str] = []

    def check(doc: str, path: str, method: str, response: httpx.Response) -> dict[str, Any]:
        model, definitions = _validator(doc)
        declared = model["paths"][path][method]["responses"][str(response.status_code)]
        schema = {"$ref": declared["schema"]["$ref"], "definitions": definitions}
        jsonschema.Draft4Validator(schema, format_checker=FORMATS).validate(response.json())
        checked.append(model["paths"][path][method]["operationId"] + f" {response.status_code}")
        return dict(response.json())

    outbound_doc, reports_doc = "fulfillmentOutbound_2020-07-01", "reports_2021-06-30"
    one = f"{OUTBOUND}/fulfillmentOrders/{{sellerFulfillmentOrderId}}"
    client = outbound(sandbox)
    plan(sandbox, "RKT-W1", shipments=[{"after_hours": 20, "packages": [{"skus": {DATA_SIM: 1}}, {}]},
                                       {"after_hours": 50, "cancelled": True, "packages": [{"skus": {DATA_90: 1}}]}],
         fate="undeliverable_returned", edd_shift_days=1)
    plan(sandbox, "RKT-W2", outcome="Unfulfillable")
    plan(sandbox, "RKT-W3", fate="damaged", cancelled={DATA_SIM: 1})
    create(client, "RKT-W1", {DATA_SIM: 2, DATA_90: 1})
    create(client, "RKT-W2", {DATA_SIM: 1}, address=NAHA)
    create(client, "RKT-W3", {DATA_SIM: 2})
    sandbox.advance(hours=21)
    check(outbound_doc, one, "get", api.get(f"{OUTBOUND}/fulfillmentOrders/RKT-W1"))  # one shipped, one pending
    sandbox.advance(days=6)
    for seller_id in ("RKT-W1", "RKT-W2", "RKT-W3"):
        payload = check(outbound_doc, one, "get", api.get(f"{OUTBOUND}/fulfillmentOrders/{seller_id}"))["payload"]
        for shipment in payload.get("fulfillmentShipments") or []:
            for package in shipment.get("fulfillmentShipmentPackage") or []:
                check(outbound_doc, f"{OUTBOUND}/tracking", "get",
                      api.get(f"{OUTBOUND}/tracking", params={"packageNumber": package["packageNumber"]}))
    shipment = check(outbound_doc, one, "get", api.get(f"{OUTBOUND}/fulfillmentOrders/RKT-W3"))["payload"][
        "fulfillmentShipments"][0]["amazonShipmentId"]
    body = {"items": [_return("RKT-W3", shipment, "W3-1"), _return("RKT-W3", shipment, "W3-2")]}
    check(outbound_doc, f"{one}/return", "put", api.put(f"{OUTBOUND}/fulfillmentOrders/RKT-W3/return", json=body))
    check(outbound_doc, f"{one}/return", "put", api.put(f"{OUTBOUND}/fulfillmentOrders/RKT-W3/return", json=body))
    sandbox.post("/admin/amazon/returns/" + client.get_fulfillment_order("RKT-W3").payload["returnItems"][0][
        "returnAuthorizationId"] + "/receive", {"condition": "Defective"})
    check(outbound_doc, one, "get", api.get(f"{OUTBOUND}/fulfillmentOrders/RKT-W3"))

    reports = "/reports/2021-06-30/reports"
    created = api.post(reports, json={"reportType": "GET_FBA_REIMBURSEMENTS_DATA", "marketplaceIds": [
        "A1VC38T7YXB528"]})
    assert created.status_code == 202 and created.headers["x-amzn-RateLimit-Limit"] == "0.0167"
    report_id = check(reports_doc, reports, "post", created)["reportId"]
    for _ in range(2):
        report = check(reports_doc, f"{reports}/{{reportId}}", "get", api.get(f"{reports}/{report_id}"))
    document = check(reports_doc, "/reports/2021-06-30/documents/{reportDocumentId}", "get",
                     api.get(f"/reports/2021-06-30/documents/{report['reportDocumentId']}"))
    assert httpx.get(document["url"]).status_code == 200
    wrong = api.post(reports, json={"reportType": "GET_FLAT_FILE_OPEN_LISTINGS_DATA",
                                    "marketplaceIds": ["A1VC38T7YXB528"]})
    assert wrong.status_code == 400
    check(reports_doc, reports, "post", wrong)
    check(reports_doc, f"{reports}/{{reportId}}", "get", api.get(f"{reports}/404404"))
    assert len(checked) >= 14


# --- the seeded scenario ---------------------------------------------------------------------------------------
def test_aftersales_scenario_scripts_every_case_for_the_orders_the_robot_will_send(sandbox: Sandbox) -> None:
    placed = sandbox.reset(seed=3, scenario="aftersales")["orders"]
    cases = {e["order_number"]: e["case"] for e in sandbox.audit("sandbox", "aftersales_case")}
    assert len(placed) == len(cases) >= 19
    client = outbound(sandbox)
    for number in placed:  # what procedure A does for each: one MCF order RKT-<number>
        lines = {i["sku"]: i["quantity"] for i in sandbox.order(number)["items"]}
        create(client, f"RKT-{number}", lines)
    sandbox.advance(days=12)
    views = {o["seller_fulfillment_order_id"]: o for o in sandbox.get("/admin/amazon/fulfillment-orders")}
    by_case = {cases[number]: views[f"RKT-{number}"] for number in placed}
    assert [len(by_case["split"]["shipments"]), len(by_case["split"]["packages"])] == [2, 3]
    assert by_case["delivered"]["packages"][0]["tracking_status"] == "DELIVERED"
    assert by_case["lost_by_carrier"]["packages"][0]["tracking_status"] == "UNDELIVERABLE"
    assert by_case["undeliverable_returned"]["packages"][0]["tracking_status"] == "RETURNED"
    assert by_case["unknown_tracking"]["packages"][0]["tracking_status"] == "FORWARDED"
    assert (by_case["unfulfillable"]["status"], by_case["partial"]["status"]) == ("Unfulfillable",
                                                                                  "CompletePartialled")
    rows = sandbox.get("/admin/amazon/reimbursements")
    assert sorted(r["reason"] for r in rows) == ["Damaged_Warehouse", "Lost_Outbound", "Lost_Warehouse"]
