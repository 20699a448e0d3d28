"""The robot's after-sales reads and writes (services/fulfillment.py) against the sandbox's Amazon,
through the real python-amazon-sp-api: the multi-shipment read model, a moved EDD, tracking of each
fate (an unknown code included), orders that do not ship in full, returns, and the reimbursements
report. The clock is moved, never slept on."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from conftest import Sandbox
from test_fulfillment import DATA_SIM, TOKYO, mcf, request

from services.fulfillment import (
    AmazonFulfillment,
    Fulfillment,
    McfItem,
    McfOrder,
    McfReturnItem,
    ReturnRefused,
    SpApiError,
    delivery_days,
    normalized_status,
)

DATA_90 = "SIM-DATA-90D-50GB"


def create(sandbox: Sandbox, service: AmazonFulfillment, number: str, lines: dict[str, int],
           **plan: Any) -> str:
    """An MCF order for Rakuten order ``number`` whose fate is scripted first; returns its id."""
    req = request(number)
    req = req.model_copy(update={"items": [McfItem(seller_sku=s, quantity=q) for s, q in lines.items()],
                                 "address": TOKYO})
    if plan:
        sandbox.post(f"/admin/amazon/fulfillment-orders/{req.seller_fulfillment_order_id}/plan", plan)
    service.create_order(req)
    return req.seller_fulfillment_order_id


def read(service: AmazonFulfillment, sfo_id: str) -> McfOrder:
    order = service.get_order(sfo_id)
    assert order is not None
    return order


def test_statuses_are_compared_normalised() -> None:
    assert normalized_status("CompletePartialled") == normalized_status("COMPLETE_PARTIALLED") == "COMPLETEPARTIALLED"
    assert normalized_status("complete partialled") == "COMPLETEPARTIALLED"
    assert normalized_status(None) == ""


def test_two_shipments_with_three_packages_in_business_words(sandbox: Sandbox) -> None:
    service: Fulfillment = mcf(sandbox)
    assert isinstance(service, AmazonFulfillment)
    sfo_id = create(sandbox, service, "381234-20261120-0000000101", {DATA_SIM: 2, DATA_90: 1}, shipments=[
        {"after_hours": 20, "packages": [{"skus": {DATA_SIM: 1}, "carrier": "YAMATO"},
                                         {"skus": {DATA_90: 1}, "carrier": "SAGAWA"}]},
        {"after_hours": 44, "packages": [{"carrier": "JAPAN_POST"}]}])
    sandbox.advance(hours=21)
    first = read(service, sfo_id)
    assert (first.status_key, [s.status for s in first.shipments]) == ("PROCESSING", ["SHIPPED", "PENDING"])
    assert [p.carrier_code for p in first.packages] == ["YAMATO", "SAGAWA"]
    assert first.shipments[0].items == {DATA_SIM: 1, DATA_90: 1} and first.shipments[1].packages == []
    sandbox.advance(days=1)
    order = read(service, sfo_id)
    assert order.status_key == "COMPLETE" and all(s.shipped for s in order.shipments)
    assert [p.carrier_code for p in order.packages] == ["YAMATO", "SAGAWA", "JAPAN_POST"]
    assert len({p.tracking_number for p in order.packages}) == 3
    assert {p.shipment_id for p in order.packages} == {s.shipment_id for s in order.shipments}
    later = order.shipments[1]
    assert later.shipped_at is not None and order.shipments[0].shipped_at is not None
    assert later.shipped_at - order.shipments[0].shipped_at == timedelta(hours=24)
    assert order.estimated_arrival == order.promised_arrival == later.estimated_arrival
    items = {i.seller_sku: i for i in order.items}
    assert (items[DATA_SIM].quantity, items[DATA_SIM].shipped, items[DATA_SIM].not_shipping) == (2, 2, 0)
    assert order.not_shipping() == {}


def test_the_edd_amazon_moves_after_shipping_is_the_latest_seen(sandbox: Sandbox) -> None:
    service = mcf(sandbox)
    ordered = sandbox.now()
    sfo_id = create(sandbox, service, "381234-20261120-0000000102", {DATA_SIM: 1}, edd_shift_days=3)
    first = read(service, sfo_id).estimated_arrival
    assert first is not None and delivery_days(ordered, first) == 2
    sandbox.advance(days=1)
    moved = read(service, sfo_id)
    assert moved.estimated_arrival is not None and delivery_days(ordered, moved.estimated_arrival) == 5
    info = service.tracking(moved.packages[0].package_number)
    assert info.estimated_arrival == moved.estimated_arrival


@pytest.mark.parametrize(("fate", "status", "delivered", "last"), [
    ("delivered", "DELIVERED", True, "EVENT_301"),
    ("lost", "IN_TRANSIT", False, "EVENT_202"),
    ("lost_by_carrier", "UNDELIVERABLE", False, "EVENT_409"),
    ("damaged", "DELIVERED", True, "EVENT_301"),
    ("undeliverable", "UNDELIVERABLE", False, "EVENT_416"),
    ("undeliverable_returned", "RETURNED", False, "EVENT_309"),
    ("delivered_only", "DELIVERED", True, "EVENT_301"),
    ("unknown", "FORWARDED", False, "EVENT_444"),
])
def test_tracking_of_each_fate(sandbox: Sandbox, fate: str, status: str, delivered: bool, last: str) -> None:
    service = mcf(sandbox)
    sfo_id = create(sandbox, service, "381234-20261120-0000000103", {DATA_SIM: 1}, fate=fate)
    sandbox.advance(days=9)
    [package] = read(service, sfo_id).packages
    info = service.tracking(package.package_number)
    assert (info.current_status, info.delivered, info.event_codes[-1]) == (status, delivered, last)
    assert (info.carrier_code, info.tracking_number) == (package.carrier_code, package.tracking_number)
    assert info.ship_date == package.shipped_at and info.ship_to_state == "東京都"
    assert info.customer_tracking_link and info.customer_tracking_link.startswith("https://")
    assert ("EVENT_405" in info.event_codes) == (fate == "damaged")
    assert info.unknown_values == (["FORWARDED", "EVENT_444"] if fate == "unknown" else [])


def test_late_delivery_and_an_event_injected_with_an_unknown_code(sandbox: Sandbox) -> None:
    service = mcf(sandbox)
    sfo_id = create(sandbox, service, "381234-20261120-0000000104", {DATA_SIM: 1}, fate="late",
                    deliver_after_days=6)
    sandbox.advance(days=3)
    order = read(service, sfo_id)
    number = order.packages[0].package_number
    assert service.tracking(number).current_status == "DELAYED"
    sandbox.post(f"/admin/amazon/packages/{number}/events", {"code": "EVENT_637", "status": "RESCHEDULED"})
    odd = service.tracking(number)
    assert (odd.current_status, odd.unknown_values) == ("RESCHEDULED", ["RESCHEDULED", "EVENT_637"])
    sandbox.advance(days=6)
    done = service.tracking(number)
    assert done.delivered and done.delivered_at is not None and order.estimated_arrival is not None
    assert delivery_days(order.estimated_arrival, done.delivered_at) == 6
    nothing = service.tracking(999)
    assert (nothing.found, nothing.current_status, nothing.events) == (False, "UNKNOWN", [])


def test_orders_that_do_not_ship_in_full(sandbox: Sandbox) -> None:
    service = mcf(sandbox)
    unfulfillable = create(sandbox, service, "381234-20261120-0000000105", {DATA_SIM: 2}, outcome="Unfulfillable")
    partial = create(sandbox, service, "381234-20261120-0000000106", {DATA_SIM: 2, DATA_90: 1},
                     cancelled={DATA_SIM: 1})
    sandbox.advance(days=2)
    gone = read(service, unfulfillable)
    assert (gone.status, gone.status_key, gone.packages) == ("Unfulfillable", "UNFULFILLABLE", [])
    assert gone.not_shipping() == {DATA_SIM: 2}
    assert [s.cancelled for s in gone.shipments] == [True]
    part = read(service, partial)
    assert part.status_key == "COMPLETEPARTIALLED"
    assert part.not_shipping() == {DATA_SIM: 1}
    assert {i.seller_sku: i.shipped for i in part.items} == {DATA_SIM: 1, DATA_90: 1}


def test_returns_with_our_own_ids_one_authorization_followed_until_processed(sandbox: Sandbox) -> None:
    service = mcf(sandbox)
    sfo_id = create(sandbox, service, "381234-20261120-0000000107", {DATA_SIM: 2, DATA_90: 1},
                    return_condition="CarrierDamaged", return_after_days=5)
    codes = [r.code for r in service.return_reasons(DATA_SIM)]
    other = [r.code for r in service.return_reasons("SIM-VOICE-30D")]
    assert "CR-UNWANTED_ITEM" in codes and "CR-UNWANTED_ITEM" not in other
    unit_ids = [f"{sfo_id}-R1-{n}" for n in (1, 2)]
    item = McfReturnItem(seller_sku=DATA_SIM, quantity=2, reason_code="CR-DAMAGED_BY_CARRIER",
                         comment="箱が潰れていた", return_item_ids=unit_ids)
    with pytest.raises(ReturnRefused) as early:
        service.create_return(sfo_id, [item])
    assert early.value.code == "NoCompletedShipItems"

    sandbox.advance(days=3)
    rma = service.create_return(sfo_id, [item])
    assert rma.return_item_ids == unit_ids and rma.refused == {}
    assert rma.amazon_rma_id and rma.rma_page_url.startswith("https://")
    assert rma.return_to_address.country_code == "JP" and rma.return_to_address.postal_code
    again = service.create_return(sfo_id, [item])  # a repeat (or a crash after the call) makes no second one
    assert (again.authorization_id, again.return_item_ids) == (rma.authorization_id, unit_ids)
    assert len(sandbox.audit("amazon", "fulfillment_return_created")) == 1
    with pytest.raises(ReturnRefused) as wrong_reason:
        service.create_return(sfo_id, [McfReturnItem(seller_sku=DATA_90, reason_code="CR-ORDERED_WRONG_ITEM",
                                                     return_item_ids=[f"{sfo_id}-R2-1"])])
    assert wrong_reason.value.code == "InvalidValues"
    with pytest.raises(ReturnRefused) as too_many:
        service.create_return(sfo_id, [McfReturnItem(seller_sku=DATA_SIM, reason_code="CR-DEFECTIVE",
                                                     return_item_ids=[f"{sfo_id}-R3-1"])])
    assert too_many.value.code == "NoReturnableQuantity"

    assert [(r.return_item_id, r.seller_sku, r.status_key) for r in service.return_items(sfo_id)] == [
        (unit_ids[0], DATA_SIM, "NEW"), (unit_ids[1], DATA_SIM, "NEW")]
    sandbox.advance(days=5, hours=1)
    returns = service.return_items(sfo_id)
    assert all(r.processed and r.received_condition == "CarrierDamaged" for r in returns)
    assert {r.authorization_id for r in returns} == {rma.authorization_id}
    assert read(service, sfo_id).return_authorizations[0].authorization_id == rma.authorization_id


def test_reimbursements_report_rows_in_business_words(sandbox: Sandbox) -> None:
    since = sandbox.now() - timedelta(days=1)
    sandbox.post("/admin/amazon/reimbursements", {"case_id": "1234567890", "order_id": "RKT-381234-20261120-01",
                                                   "sku": DATA_SIM, "amount": 2980, "warehouse": 1})
    sandbox.advance(days=2)
    sandbox.post("/admin/amazon/reimbursements", {"case_id": "16496946351", "sku": DATA_90, "amount": 5980,
                                                   "quantity": 2})
    service = mcf(sandbox, report_poll_seconds=0.01)
    before = service.request_count()
    rows = service.reimbursements(since, sandbox.now() - timedelta(hours=1))
    assert [(r.case_id, r.amazon_order_id, r.amount_total, r.currency) for r in rows if r.case_id] == [
        ("1234567890", "RKT-381234-20261120-01", Decimal("2980"), "JPY")]
    warehouse = [r for r in rows if r.case_id is None]
    assert len(warehouse) == 1 and warehouse[0].reason == "Lost_Warehouse" and warehouse[0].amazon_order_id is None
    assert rows[0].product_name and rows[0].product_name.startswith("【物理SIM】")
    assert rows[0].approval_date is not None and rows[0].quantity_cash == 1
    assert service.request_count() - before >= 4  # create, two polls, the document (and its download)
    latest = service.reimbursements(sandbox.now() - timedelta(hours=1))
    assert [(r.case_id, r.amount_per_unit, r.quantity_total) for r in latest] == [
        ("16496946351", Decimal("2990"), 2)]


def test_report_refusals_are_api_errors_with_amazons_code(sandbox: Sandbox) -> None:
    service = mcf(sandbox, report_poll_seconds=0.01)
    service.return_reasons(DATA_SIM)  # an access token first (LWA answers failures in its own words)
    sandbox.fault("spapi", error_rate=1.0)
    with pytest.raises(SpApiError) as failed:
        service.reimbursements(sandbox.now() - timedelta(days=1))
    assert (failed.value.code, failed.value.status, failed.value.operation) == ("InternalFailure", 500,
                                                                                "createReport")
    # (a 429 is translated as for every operation; here it would make the client wait a minute:
    # createReport's plan is one request a minute once the burst is spent)
