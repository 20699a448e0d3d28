"""The sandbox's SP-API through unmodified python-amazon-sp-api (and raw HTTP where the wire
matters): Login with Amazon, MCF on the virtual clock, returns, inventory, quotas, and every
response body checked against Amazon's own models (copied into tests/refs/sp-api/)."""

from __future__ import annotations

import copy
import json
import re
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import jsonschema
import pytest
from conftest import Sandbox
from sp_api.api import FulfillmentOutbound, Inventories
from sp_api.auth import AccessTokenClient
from sp_api.auth import access_token_client as lwa_module
from sp_api.auth.exceptions import AuthorizationError
from sp_api.base import (
    SellingApiBadRequestException,
    SellingApiForbiddenException,
    SellingApiRequestThrottledException,
    SellingApiServerException,
)

JST = ZoneInfo("Asia/Tokyo")
REFS = Path(__file__).resolve().parent / "refs" / "sp-api"
"""A copy of the SP-API models (Amazon's models, Apache-2.0, licence beside them)."""
MARKETPLACE = "A1VC38T7YXB528"
CLIENT_ID = "amzn1.application-oa2-client.kuroko-demo"
CLIENT_SECRET = "lwa-demo-client-secret"
REFRESH_TOKEN = "Atzr|kuroko-demo-refresh-token"
DATA_SIM = "SIM-DATA-30D-20GB"
VOICE_SIM = "SIM-VOICE-30D"  # the "stocked" scenario has none of it at FBA
TOKYO = {"name": "佐藤 翔太", "addressLine1": "新宿区西新宿2-8-1 サンハイツ205", "stateOrRegion": "東京都",
         "postalCode": "160-0023", "countryCode": "JP", "phone": "090-1234-5678"}
NAHA = {"name": "比嘉 さくら", "addressLine1": "那覇市泉崎1-2-2", "stateOrRegion": "沖縄県",
        "postalCode": "900-0021", "countryCode": "JP"}
OUTBOUND = "/fba/outbound/2020-07-01"


# --- clients ---------------------------------------------------------------------------------
def credentials(**override: str) -> dict[str, str]:
    return {"lwa_app_id": CLIENT_ID, "lwa_client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN,
            **override}


def token_class(sandbox: Sandbox) -> type[AccessTokenClient]:
    """The library's documented hook: an AccessTokenClient whose scheme/host are the sandbox's."""

    class SandboxLwa(AccessTokenClient):
        scheme = "http://"
        host = sandbox.urls["spapi"].split("://", 1)[1]

    return SandboxLwa


def marketplace(sandbox: Sandbox) -> SimpleNamespace:
    return SimpleNamespace(endpoint=sandbox.urls["spapi"], marketplace_id=MARKETPLACE, region="us-west-2")


def outbound(sandbox: Sandbox, **creds: str) -> FulfillmentOutbound:
    return FulfillmentOutbound(marketplace=marketplace(sandbox), credentials=credentials(**creds),
                               auth_token_client_class=token_class(sandbox))


def access_token(sandbox: Sandbox) -> str:
    r = httpx.post(sandbox.urls["spapi"] + "/auth/o2/token", data={
        "grant_type": "refresh_token", "refresh_token": REFRESH_TOKEN,
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    r.raise_for_status()
    return str(r.json()["access_token"])


def items(sku: str = DATA_SIM, quantity: int = 1) -> list[dict[str, Any]]:
    return [{"sellerSku": sku, "sellerFulfillmentOrderItemId": sku, "quantity": quantity}]


def order_body(seller_id: str, *, sku: str = DATA_SIM, quantity: int = 1, address: dict[str, str] = TOKYO,
               speed: str = "Standard") -> dict[str, Any]:
    return {
        "sellerFulfillmentOrderId": seller_id, "displayableOrderId": seller_id.removeprefix("RKT-"),
        "displayableOrderDate": "2026-11-20T00:00:00Z", "displayableOrderComment": "ご注文ありがとうございます。",
        "shippingSpeedCategory": speed, "destinationAddress": address, "items": items(sku, quantity),
    }


def jst_day(stamp: str) -> Any:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(JST).date()


def package_of(client: FulfillmentOutbound, seller_id: str) -> dict[str, Any]:
    payload = client.get_fulfillment_order(seller_id).payload
    return dict(payload["fulfillmentShipments"][0]["fulfillmentShipmentPackage"][0])


# --- Login with Amazon and access -------------------------------------------------------------
def test_lwa_issues_tokens_only_for_the_configured_app_and_seller(sandbox: Sandbox) -> None:
    url = sandbox.urls["spapi"] + "/auth/o2/token"
    form = {"grant_type": "refresh_token", "refresh_token": REFRESH_TOKEN, "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET}
    ok = httpx.post(url, data=form)
    assert ok.status_code == 200
    assert ok.json()["token_type"] == "bearer" and ok.json()["expires_in"] == 3600
    assert ok.json()["access_token"].startswith("Atza|")

    wrong_secret = httpx.post(url, data={**form, "client_secret": "nope"})
    assert (wrong_secret.status_code, wrong_secret.json()["error"]) == (401, "invalid_client")
    wrong_grant = httpx.post(url, data={**form, "refresh_token": "Atzr|revoked"})
    assert (wrong_grant.status_code, wrong_grant.json()["error"]) == (400, "invalid_grant")
    assert "error_description" in wrong_grant.json()

    sandbox.fault("spapi", refuse_token=True)
    refused = httpx.post(url, data=form)
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")


def test_library_reports_refused_token_and_sp_api_refuses_missing_or_revoked_tokens(sandbox: Sandbox) -> None:
    lwa_module.cache.clear()  # the library caches access tokens per process: an earlier test's would hide the refusal
    with pytest.raises(AuthorizationError) as refused:
        outbound(sandbox, refresh_token="Atzr|somebody-else").list_return_reason_codes(sellerSku=DATA_SIM)
    assert (refused.value.error_code, refused.value.status_code) == ("invalid_grant", 400)
    with pytest.raises(AuthorizationError) as bad_client:
        outbound(sandbox, lwa_client_secret="wrong").list_return_reason_codes(sellerSku=DATA_SIM)
    assert (bad_client.value.error_code, bad_client.value.status_code) == ("invalid_client", 401)

    no_token = httpx.get(sandbox.urls["spapi"] + f"{OUTBOUND}/returnReasonCodes", params={"sellerSku": DATA_SIM})
    assert no_token.status_code == 403
    assert no_token.json()["errors"][0]["code"] == "Unauthorized"

    client = outbound(sandbox)
    assert client.list_return_reason_codes(sellerSku=DATA_SIM).payload["reasonCodeDetails"]
    sandbox.fault("spapi", refuse_token=True)  # the seller revoked the app: its cached token stops working
    with pytest.raises(SellingApiForbiddenException) as denied:
        client.list_return_reason_codes(sellerSku=DATA_SIM)
    assert denied.value.amzn_code == "Unauthorized"
    sandbox.clear_faults()
    sandbox.post("/admin/amazon/tokens/expire")
    with pytest.raises(SellingApiForbiddenException) as expired:
        client.list_return_reason_codes(sellerSku=DATA_SIM)
    assert "expired" in expired.value.error[0]["details"]
    lwa_module.cache.clear()  # a fresh token works again
    assert client.list_return_reason_codes(sellerSku=DATA_SIM).payload["reasonCodeDetails"]


# --- preview ------------------------------------------------------------------------------------
def test_preview_offers_every_speed_when_fba_stock_covers_the_items(sandbox: Sandbox) -> None:
    ordered = sandbox.now()
    previews = outbound(sandbox).get_fulfillment_preview(address=TOKYO, items=items(quantity=2)).payload[
        "fulfillmentPreviews"]
    by_speed = {p["shippingSpeedCategory"]: p for p in previews}
    assert set(by_speed) == {"Standard", "Expedited", "Priority"}
    assert all(p["isFulfillable"] for p in previews)
    standard = by_speed["Standard"]["fulfillmentPreviewShipments"][0]
    assert (jst_day(standard["latestArrivalDate"]) - ordered.astimezone(JST).date()).days == 2
    expedited = by_speed["Expedited"]["fulfillmentPreviewShipments"][0]
    assert expedited["latestArrivalDate"] < standard["latestArrivalDate"]
    assert by_speed["Standard"]["estimatedFees"][0]["amount"]["currencyCode"] == "JPY"


def test_preview_is_unfulfillable_without_fba_stock(sandbox: Sandbox) -> None:
    previews = outbound(sandbox).get_fulfillment_preview(address=TOKYO, items=items(VOICE_SIM)).payload[
        "fulfillmentPreviews"]
    assert len(previews) == 3
    for preview in previews:
        assert preview["isFulfillable"] is False
        assert "fulfillmentPreviewShipments" not in preview
        assert preview["unfulfillablePreviewItems"][0]["itemUnfulfillableReasons"] == ["InventoryUnavailable"]


def test_remote_prefecture_is_promised_later_than_two_days(sandbox: Sandbox) -> None:
    ordered = sandbox.now().astimezone(JST).date()
    previews = outbound(sandbox).get_fulfillment_preview(address=NAHA, items=items(),
                                                         shippingSpeedCategories=["Standard", "Priority"]).payload
    arrival = {p["shippingSpeedCategory"]: jst_day(p["fulfillmentPreviewShipments"][0]["latestArrivalDate"])
               for p in previews["fulfillmentPreviews"]}
    assert (arrival["Standard"] - ordered).days > 2
    assert arrival["Priority"] < arrival["Standard"]


# --- orders on the clock -----------------------------------------------------------------------------
def test_repeated_create_is_refused_and_ships_once(sandbox: Sandbox) -> None:
    client = outbound(sandbox)
    client.create_fulfillment_order(**order_body("RKT-381234-20261120-0000000001"))
    with pytest.raises(SellingApiBadRequestException) as repeat:
        client.create_fulfillment_order(**order_body("RKT-381234-20261120-0000000001", quantity=2))
    assert repeat.value.amzn_code == "InvalidInput"
    assert "already exists" in repeat.value.message
    amazon = sandbox.state()["amazon"]
    assert [o["seller_fulfillment_order_id"] for o in amazon["fulfillment_orders"]] == [
        "RKT-381234-20261120-0000000001"]
    assert amazon["fba_stock"][DATA_SIM] == 4999
    assert sandbox.get("/admin/summary")["mcf_orders"] == 1


def test_create_refuses_what_fba_cannot_ship(sandbox: Sandbox) -> None:
    client = outbound(sandbox)
    with pytest.raises(SellingApiBadRequestException) as no_stock:
        client.create_fulfillment_order(**order_body("RKT-NO-STOCK", sku=VOICE_SIM))
    assert no_stock.value.error[0]["details"] == "InventoryUnavailable"
    with pytest.raises(SellingApiBadRequestException) as too_long:
        client.create_fulfillment_order(**order_body("RKT-" + "9" * 40))
    assert too_long.value.amzn_code == "InvalidInput"
    assert sandbox.state()["amazon"]["fulfillment_orders"] == []


def test_order_moves_through_statuses_and_ships_with_carrier_and_tracking(sandbox: Sandbox) -> None:
    client = outbound(sandbox)
    client.create_fulfillment_order(**order_body("RKT-STATUS"))

    def status() -> str:
        return str(client.get_fulfillment_order("RKT-STATUS").payload["fulfillmentOrder"]["fulfillmentOrderStatus"])

    assert status() == "Received"
    sandbox.advance(minutes=6)
    assert status() == "Planning"
    sandbox.advance(minutes=30)
    assert status() == "Processing"
    pending = client.get_fulfillment_order("RKT-STATUS").payload["fulfillmentShipments"][0]
    assert pending["fulfillmentShipmentStatus"] == "PENDING" and "fulfillmentShipmentPackage" not in pending
    sandbox.advance(days=1)
    payload = client.get_fulfillment_order("RKT-STATUS").payload
    assert payload["fulfillmentOrder"]["fulfillmentOrderStatus"] == "Complete"
    shipment = payload["fulfillmentShipments"][0]
    assert shipment["fulfillmentShipmentStatus"] == "SHIPPED"
    package = shipment["fulfillmentShipmentPackage"][0]
    assert package["carrierCode"] in {"JAPAN_POST", "YAMATO", "SAGAWA"}
    number = package["trackingNumber"]
    assert re.fullmatch(r"\d{12}", number) and int(number[:11]) % 7 == int(number[11])
    assert shipment["fulfillmentShipmentItem"][0]["packageNumber"] == package["packageNumber"]


def test_tracking_reaches_delivered_on_the_promised_date(sandbox: Sandbox) -> None:
    client = outbound(sandbox)
    client.create_fulfillment_order(**order_body("RKT-TRACK"))
    promised = client.get_fulfillment_order("RKT-TRACK").payload["fulfillmentOrderItems"][0]["estimatedArrivalDate"]
    sandbox.advance(hours=23)
    number = package_of(client, "RKT-TRACK")["packageNumber"]
    first = client.get_package_tracking_details(packageNumber=number).payload
    assert first["currentStatus"] == "IN_TRANSIT"
    assert first["trackingEvents"][-1]["eventCode"] == "EVENT_102"  # newest first, pickup last
    sandbox.advance(hours=25)  # the promised day, 09:00 JST
    assert client.get_package_tracking_details(packageNumber=number).payload["currentStatus"] == "OUT_FOR_DELIVERY"
    sandbox.advance(hours=12)
    done = client.get_package_tracking_details(packageNumber=number).payload
    assert done["currentStatus"] == "DELIVERED"
    delivered = done["trackingEvents"][0]
    assert delivered["eventCode"] == "EVENT_301"
    assert jst_day(delivered["eventDate"]) == jst_day(promised)
    assert delivered["eventDate"] <= promised
    assert delivered["eventAddress"]["city"] == "新宿区"


def test_lost_parcel_is_never_delivered(sandbox: Sandbox) -> None:
    client = outbound(sandbox)
    sandbox.post("/admin/amazon/lost", {"next": 1})
    client.create_fulfillment_order(**order_body("RKT-LOST"))
    client.create_fulfillment_order(**order_body("RKT-FINE"))
    sandbox.advance(days=10)
    lost = client.get_package_tracking_details(packageNumber=package_of(client, "RKT-LOST")["packageNumber"])
    fine = client.get_package_tracking_details(packageNumber=package_of(client, "RKT-FINE")["packageNumber"])
    assert lost.payload["currentStatus"] == "IN_TRANSIT"
    assert "EVENT_301" not in [e["eventCode"] for e in lost.payload["trackingEvents"]]
    assert fine.payload["currentStatus"] == "DELIVERED"


def test_next_package_carrier_can_be_forced_to_an_unknown_code(sandbox: Sandbox) -> None:
    client = outbound(sandbox)
    client.create_fulfillment_order(**order_body("RKT-ACME"))
    sandbox.post("/admin/amazon/carrier", {"carrier_code": "ACME_EXPRESS"})
    sandbox.advance(days=1)
    package = package_of(client, "RKT-ACME")
    assert package["carrierCode"] == "ACME_EXPRESS"
    tracking = client.get_package_tracking_details(packageNumber=package["packageNumber"]).payload
    assert tracking["carrierCode"] == "ACME_EXPRESS" and "carrierURL" not in tracking


def test_cancel_before_processing_gives_the_stock_back(sandbox: Sandbox) -> None:
    client = outbound(sandbox)
    client.create_fulfillment_order(**order_body("RKT-CANCEL", quantity=2))
    client.create_fulfillment_order(**order_body("RKT-LATE"))
    assert sandbox.state()["amazon"]["fba_stock"][DATA_SIM] == 4997
    client.cancel_fulfillment_order("RKT-CANCEL")
    assert sandbox.state()["amazon"]["fba_stock"][DATA_SIM] == 4999
    sandbox.advance(minutes=31)
    with pytest.raises(SellingApiBadRequestException) as too_late:
        client.cancel_fulfillment_order("RKT-LATE")
    assert "Processing" in too_late.value.message
    sandbox.advance(days=3)
    cancelled = client.get_fulfillment_order("RKT-CANCEL").payload
    assert cancelled["fulfillmentOrder"]["fulfillmentOrderStatus"] == "Cancelled"
    assert cancelled["fulfillmentOrderItems"][0]["cancelledQuantity"] == 2
    assert "fulfillmentShipments" not in cancelled


# --- returns --------------------------------------------------------------------------------------
def test_return_reason_codes_and_return_authorization(sandbox: Sandbox) -> None:
    client = outbound(sandbox)
    reasons = client.list_return_reason_codes(sellerSku=DATA_SIM, language="ja_JP").payload["reasonCodeDetails"]
    codes = [r["returnReasonCode"] for r in reasons]
    assert "CR-DEFECTIVE" in codes and all(r["translatedDescription"] for r in reasons)
    with pytest.raises(SellingApiBadRequestException):
        client.list_return_reason_codes(sellerSku="NOT-AT-FBA")

    client.create_fulfillment_order(**order_body("RKT-RETURN"))
    item = {"sellerReturnItemId": "RKT-RETURN-1", "sellerFulfillmentOrderItemId": DATA_SIM,
            "amazonShipmentId": "", "returnReasonCode": "CR-DEFECTIVE", "returnComment": "SIMが認識されない"}
    sandbox.advance(minutes=40)
    shipment_id = client.get_fulfillment_order("RKT-RETURN").payload["fulfillmentShipments"][0]["amazonShipmentId"]
    early = client.create_fulfillment_return("RKT-RETURN", items=[{**item, "amazonShipmentId": shipment_id}]).payload
    assert early["invalidReturnItems"][0]["invalidItemReason"]["invalidItemReasonCode"] == "NoCompletedShipItems"
    assert early["returnAuthorizations"] == []

    sandbox.advance(days=3)
    result = client.create_fulfillment_return("RKT-RETURN", items=[{**item, "amazonShipmentId": shipment_id}]).payload
    authorization = result["returnAuthorizations"][0]
    assert authorization["amazonRmaId"] and authorization["returnToAddress"]["countryCode"] == "JP"
    assert result["returnItems"][0]["status"] == "New"
    again = client.create_fulfillment_return("RKT-RETURN", items=[{**item, "amazonShipmentId": shipment_id}]).payload
    assert again["invalidReturnItems"][0]["invalidItemReason"]["invalidItemReasonCode"] == "DuplicateRequest"
    order = client.get_fulfillment_order("RKT-RETURN").payload
    assert [r["returnAuthorizationId"] for r in order["returnItems"]] == [authorization["returnAuthorizationId"]]

    stock = sandbox.state()["amazon"]["fba_stock"][DATA_SIM]
    sandbox.post(f"/admin/amazon/returns/{authorization['returnAuthorizationId']}/receive", {"condition": "Sellable"})
    processed = client.get_fulfillment_order("RKT-RETURN").payload["returnItems"][0]
    assert (processed["status"], processed["returnReceivedCondition"]) == ("Processed", "Sellable")
    assert sandbox.state()["amazon"]["fba_stock"][DATA_SIM] == stock + 1


# --- inventory ---------------------------------------------------------------------------------------
def test_inventory_summaries_show_fulfillable_and_reserved_units(sandbox: Sandbox) -> None:
    outbound(sandbox).create_fulfillment_order(**order_body("RKT-INV", quantity=3))
    inventory = Inventories(marketplace=marketplace(sandbox), credentials=credentials(),
                            auth_token_client_class=token_class(sandbox))
    payload = inventory.get_inventory_summary_marketplace(details=True, sellerSkus=[DATA_SIM, VOICE_SIM]).payload
    assert payload["granularity"] == {"granularityType": "Marketplace", "granularityId": MARKETPLACE}
    by_sku = {s["sellerSku"]: s for s in payload["inventorySummaries"]}
    assert set(by_sku) == {DATA_SIM, VOICE_SIM}
    data = by_sku[DATA_SIM]
    assert data["inventoryDetails"]["fulfillableQuantity"] == 4997
    assert data["inventoryDetails"]["reservedQuantity"]["pendingCustomerOrderQuantity"] == 3
    assert data["totalQuantity"] == 5000
    assert by_sku[VOICE_SIM]["inventoryDetails"]["fulfillableQuantity"] == 0


# --- quotas and faults -----------------------------------------------------------------------------------
def test_a_burst_beyond_thirty_is_throttled_with_quota_exceeded(sandbox: Sandbox) -> None:
    client = outbound(sandbox)
    client.list_return_reason_codes(sellerSku=VOICE_SIM)  # token fetched; 29 tokens left
    started = time.monotonic()
    outcomes: list[str] = []
    for _ in range(40):
        try:
            response = client.list_return_reason_codes(sellerSku=DATA_SIM)
            assert response.headers["x-amzn-RateLimit-Limit"] == "2.0"
            outcomes.append("ok")
        except SellingApiRequestThrottledException as exc:
            assert exc.amzn_code == "QuotaExceeded"
            assert exc.headers["x-amzn-RateLimit-Limit"] == "2.0" and exc.headers["x-amzn-RequestId"]
            outcomes.append("429")
    refilled = 2 * (time.monotonic() - started) + 1
    assert outcomes[:29] == ["ok"] * 29
    assert outcomes.count("ok") <= 29 + refilled
    assert outcomes.count("429") >= 40 - 29 - refilled
    # another operation has its own bucket
    assert client.get_fulfillment_preview(address=TOKYO, items=items()).payload["fulfillmentPreviews"]


def test_fault_knobs_answer_in_sp_api_shapes(sandbox: Sandbox) -> None:
    client = outbound(sandbox)
    client.list_return_reason_codes(sellerSku=DATA_SIM)
    sandbox.fault("spapi", burst_429=1)
    with pytest.raises(SellingApiRequestThrottledException) as throttled:
        client.list_return_reason_codes(sellerSku=DATA_SIM)
    assert throttled.value.amzn_code == "QuotaExceeded"
    sandbox.fault("spapi", error_rate=1.0)
    with pytest.raises(SellingApiServerException) as failed:
        client.list_return_reason_codes(sellerSku=DATA_SIM)
    assert failed.value.amzn_code == "InternalFailure"
    assert failed.value.headers["x-amzn-RequestId"]


# --- the wire against Amazon's models -----------------------------------------------------------------------
def strict(schema: Any) -> Any:
    """The model with every object closed (additionalProperties: false), so invented fields fail."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("date-time")
def _is_date_time(value: object) -> bool:
    return not isinstance(value, str) or bool(DATE_TIME.match(value))


class Models:
    def __init__(self) -> None:
        self.docs = {name: json.loads((REFS / f"{name}.json").read_text())
                     for name in ("fulfillmentOutbound_2020-07-01", "fbaInventory")}
        self.definitions = {name: strict(copy.deepcopy(doc["definitions"])) for name, doc in self.docs.items()}

    def check(self, doc: str, path: str, method: str, response: httpx.Response) -> None:
        declared = self.docs[doc]["paths"][path][method]["responses"][str(response.status_code)]
        schema = {"$ref": declared["schema"]["$ref"], "definitions": self.definitions[doc]}
        jsonschema.Draft4Validator(schema, format_checker=FORMATS).validate(response.json())
        assert response.headers.get("x-amzn-RequestId")
        if response.status_code < 300 or response.status_code in (400, 404):
            assert response.headers.get("x-amzn-RateLimit-Limit") == "2.0"


def test_every_operation_answers_as_amazons_models_say(sandbox: Sandbox) -> None:
    models = Models()
    api = httpx.Client(base_url=sandbox.urls["spapi"], headers={"x-amz-access-token": access_token(sandbox)})
    outbound_doc, inventory_doc = "fulfillmentOutbound_2020-07-01", "fbaInventory"
    orders, one = f"{OUTBOUND}/fulfillmentOrders", f"{OUTBOUND}/fulfillmentOrders/{{sellerFulfillmentOrderId}}"
    seen: list[tuple[str, int]] = []

    def check(doc: str, path: str, method: str, response: httpx.Response, status: int) -> httpx.Response:
        assert response.status_code == status, response.text
        models.check(doc, path, method, response)
        seen.append((models.docs[doc]["paths"][path][method]["operationId"], status))
        return response

    for address, sku in ((TOKYO, DATA_SIM), (NAHA, VOICE_SIM)):
        check(outbound_doc, f"{orders}/preview", "post",
              api.post(f"{orders}/preview", json={"address": address, "items": items(sku)}), 200)
    check(outbound_doc, f"{orders}/preview", "post", api.post(f"{orders}/preview", json={"items": items()}), 400)
    check(outbound_doc, orders, "post", api.post(orders, json=order_body("RKT-WIRE")), 200)
    check(outbound_doc, orders, "post", api.post(orders, json=order_body("RKT-WIRE")), 400)
    check(outbound_doc, orders, "post", api.post(orders, json=order_body("RKT-WIRE-CANCEL")), 200)
    check(outbound_doc, f"{one}/cancel", "put", api.put(f"{orders}/RKT-WIRE-CANCEL/cancel"), 200)
    check(outbound_doc, f"{one}/cancel", "put", api.put(f"{orders}/RKT-NOBODY/cancel"), 404)
    check(outbound_doc, one, "get", api.get(f"{orders}/RKT-WIRE"), 200)  # Received
    check(outbound_doc, one, "get", api.get(f"{orders}/RKT-NOBODY"), 404)
    sandbox.advance(minutes=40)
    check(outbound_doc, one, "get", api.get(f"{orders}/RKT-WIRE"), 200)  # Processing, shipment pending
    check(outbound_doc, orders, "get", api.get(orders), 200)
    check(outbound_doc, f"{OUTBOUND}/tracking", "get", api.get(f"{OUTBOUND}/tracking",
                                                               params={"packageNumber": 1}), 404)
    sandbox.advance(days=3)
    shipped = check(outbound_doc, one, "get", api.get(f"{orders}/RKT-WIRE"), 200).json()["payload"]
    shipment = shipped["fulfillmentShipments"][0]
    number = shipment["fulfillmentShipmentPackage"][0]["packageNumber"]
    tracking = check(outbound_doc, f"{OUTBOUND}/tracking", "get",
                     api.get(f"{OUTBOUND}/tracking", params={"packageNumber": number}), 200)
    assert tracking.json()["payload"]["currentStatus"] == "DELIVERED"
    check(outbound_doc, orders, "get", api.get(orders, params={"queryStartDate": "2026-11-19T00:00:00Z"}), 200)
    check(outbound_doc, f"{OUTBOUND}/returnReasonCodes", "get",
          api.get(f"{OUTBOUND}/returnReasonCodes", params={"sellerSku": DATA_SIM, "language": "ja_JP"}), 200)
    check(outbound_doc, f"{OUTBOUND}/returnReasonCodes", "get", api.get(f"{OUTBOUND}/returnReasonCodes"), 400)
    back = {"items": [{"sellerReturnItemId": "R1", "sellerFulfillmentOrderItemId": DATA_SIM,
                       "amazonShipmentId": shipment["amazonShipmentId"], "returnReasonCode": "CR-UNWANTED_ITEM"},
                      {"sellerReturnItemId": "R2", "sellerFulfillmentOrderItemId": "NOPE",
                       "amazonShipmentId": shipment["amazonShipmentId"], "returnReasonCode": "CR-UNWANTED_ITEM"}]}
    check(outbound_doc, f"{one}/return", "put", api.put(f"{orders}/RKT-WIRE/return", json=back), 200)
    check(outbound_doc, one, "get", api.get(f"{orders}/RKT-WIRE"), 200)  # with its return
    check(outbound_doc, one, "get", api.get(f"{orders}/RKT-WIRE-CANCEL"), 200)  # cancelled
    summaries = "/fba/inventory/v1/summaries"
    check(inventory_doc, summaries, "get", api.get(summaries, params={
        "details": "true", "granularityType": "Marketplace", "granularityId": MARKETPLACE,
        "marketplaceIds": MARKETPLACE}), 200)
    check(inventory_doc, summaries, "get", api.get(summaries, params={
        "granularityType": "Marketplace", "granularityId": "ATVPDKIKX0DER", "marketplaceIds": MARKETPLACE}), 400)
    forbidden = httpx.get(sandbox.urls["spapi"] + f"{orders}/RKT-WIRE", headers={"x-amz-access-token": "Atza|forged"})
    check(outbound_doc, one, "get", forbidden, 403)
    sandbox.fault("spapi", burst_429=1)
    check(outbound_doc, one, "get", api.get(f"{orders}/RKT-WIRE"), 429)
    sandbox.fault("spapi", error_rate=1.0)
    check(outbound_doc, orders, "post", api.post(orders, json=order_body("RKT-WIRE-500")), 500)
    assert {op for op, status in seen if status == 200} == {
        "getFulfillmentPreview", "createFulfillmentOrder", "getFulfillmentOrder", "listAllFulfillmentOrders",
        "getPackageTrackingDetails", "listReturnReasonCodes", "createFulfillmentReturn", "cancelFulfillmentOrder",
        "getInventorySummaries"}
    assert {status for _, status in seen} == {200, 400, 403, 404, 429, 500}
    invented = {"payload": {**shipped, "fulfillmentOrder": {**shipped["fulfillmentOrder"], "priority": "high"}}}
    with pytest.raises(jsonschema.ValidationError):  # the check is strict enough to catch made-up fields
        jsonschema.Draft4Validator({"$ref": "#/definitions/GetFulfillmentOrderResponse",
                                    "definitions": models.definitions[outbound_doc]}).validate(invented)
