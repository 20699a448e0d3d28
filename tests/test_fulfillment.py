"""The robot's MCF service (services/fulfillment.py) against the sandbox's SP-API, through the
real python-amazon-sp-api: preview, create once, follow the order to the buyer's door, returns,
refused credentials, throttling, and errors in the robot's words without secrets."""

from __future__ import annotations

import socket
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import Sandbox
from pydantic import SecretStr

from kuroko.errors import ApiError, ApplicationError, BusinessRuleError, SiteUnavailable
from services.fulfillment import (
    AmazonFulfillment,
    AmazonSettings,
    Fulfillment,
    FulfillmentOrderExists,
    McfAddress,
    McfItem,
    McfOrderRequest,
    McfReturnItem,
    ReturnRefused,
    SpApiError,
    TokenBucket,
    delivery_days,
    seller_fulfillment_order_id,
)

JST = ZoneInfo("Asia/Tokyo")
DATA_SIM = "SIM-DATA-30D-20GB"
VOICE_SIM = "SIM-VOICE-30D"  # none at FBA in the "stocked" scenario
TOKYO = McfAddress(name="佐藤 翔太", address_line1="西新宿2-8-1", city="新宿区", state_or_region="東京都",
                   postal_code="160-0023", phone="090-1234-5678")
NAHA = McfAddress(name="比嘉 さくら", address_line1="泉崎1-2-2", city="那覇市", state_or_region="沖縄県",
                  postal_code="900-0021")


def settings_for(sandbox: Sandbox, **override: object) -> AmazonSettings:
    values: dict[str, Any] = {"spapi_url": sandbox.urls["spapi"], "lwa_url": sandbox.urls["spapi"], **override}
    return AmazonSettings(_env_file=None, **values)  # type: ignore[call-arg]


def mcf(sandbox: Sandbox, **override: object) -> AmazonFulfillment:
    return AmazonFulfillment(settings_for(sandbox, **override))


def request(order_number: str, *, sku: str = DATA_SIM, quantity: int = 1, address: McfAddress = TOKYO,
            speed: str = "Standard", placed: datetime | None = None) -> McfOrderRequest:
    return McfOrderRequest(
        seller_fulfillment_order_id=seller_fulfillment_order_id(order_number),
        displayable_order_id=order_number,
        displayable_order_date=placed or datetime(2026, 11, 20, 9, 0, tzinfo=JST),
        displayable_order_comment="楽天市場でのご注文ありがとうございます。",
        shipping_speed=speed,
        address=address,
        items=[McfItem(seller_sku=sku, quantity=quantity)],
    )


# --- pure helpers ------------------------------------------------------------------------------
def test_mcf_order_id_is_derived_from_the_rakuten_order_number() -> None:
    first = seller_fulfillment_order_id("381234-20261120-0000000001")
    assert first == seller_fulfillment_order_id(" 381234-20261120-0000000001 ")
    assert first != seller_fulfillment_order_id("381234-20261120-0000000002")
    assert len(first) <= 40 and first.isascii() and "  " not in first
    for junk in ("", "381234 20261120", "注文-1", "9" * 37):
        with pytest.raises(ValueError):
            seller_fulfillment_order_id(junk)


def test_delivery_days_count_calendar_days_in_japan() -> None:
    ordered = datetime(2026, 11, 20, 23, 30, tzinfo=JST)
    assert delivery_days(ordered, datetime(2026, 11, 22, 21, 0, tzinfo=JST)) == 2
    assert delivery_days(ordered, datetime(2026, 11, 23, 8, 0, tzinfo=JST)) == 3


def test_client_bucket_waits_instead_of_overrunning_the_plan() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(2.0, 3, clock=lambda: now[0], sleep=sleep)
    assert [bucket.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.acquire() == pytest.approx(0.5)
    now[0] += 10
    bucket.drain()
    assert bucket.acquire() == pytest.approx(0.5)
    assert slept == [pytest.approx(0.5), pytest.approx(0.5)]


# --- preview ------------------------------------------------------------------------------------------
def test_preview_in_business_words(sandbox: Sandbox) -> None:
    service: Fulfillment = mcf(sandbox)
    ordered = sandbox.now()
    options = {o.shipping_speed: o for o in service.preview(request("381234-20261120-0000000010"))}
    assert set(options) == {"Standard", "Expedited", "Priority"}
    standard = options["Standard"]
    assert standard.fulfillable and standard.unfulfillable_reasons == []
    assert standard.latest_arrival is not None and standard.earliest_arrival is not None
    assert delivery_days(ordered, standard.latest_arrival) == 2
    slow = {o.shipping_speed: o for o in service.preview(request("381234-20261120-0000000011", address=NAHA))}
    assert slow["Standard"].latest_arrival is not None
    assert delivery_days(ordered, slow["Standard"].latest_arrival) > 2
    none = service.preview(request("381234-20261120-0000000012", sku=VOICE_SIM))
    assert [o.fulfillable for o in none] == [False, False, False]
    assert all(o.unfulfillable_reasons == ["InventoryUnavailable"] and o.latest_arrival is None for o in none)


# --- create once, follow it home -------------------------------------------------------------------------
def test_create_then_follow_the_order_to_delivery(sandbox: Sandbox) -> None:
    service = mcf(sandbox)
    req = request("381234-20261120-0000000020")
    assert service.get_order(req.seller_fulfillment_order_id) is None
    service.create_order(req)
    order = service.get_order(req.seller_fulfillment_order_id)
    assert order is not None
    assert (order.status, order.shipping_speed, order.packages) == ("Received", "Standard", [])
    assert order.received_at == sandbox.now()
    assert order.promised_arrival is not None and delivery_days(sandbox.now(), order.promised_arrival) == 2
    sent = sandbox.state()["amazon"]["fulfillment_orders"][0]
    assert sent["displayable_order_id"] == "381234-20261120-0000000020"

    sandbox.advance(days=1)
    shipped = service.get_order(req.seller_fulfillment_order_id)
    assert shipped is not None and shipped.status == "Complete"
    [package] = shipped.packages
    assert package.carrier_code in {"JAPAN_POST", "YAMATO", "SAGAWA"}
    assert len(package.tracking_number) == 12 and package.shipped_at is not None

    moving = service.tracking(package.package_number)
    assert moving.current_status == "IN_TRANSIT"
    assert (moving.carrier_code, moving.tracking_number) == (package.carrier_code, package.tracking_number)
    assert moving.event_codes[:1] == ["EVENT_102"]
    sandbox.advance(days=2)
    arrived = service.tracking(package.package_number)
    assert arrived.current_status == "DELIVERED"
    assert arrived.events[-1].code == "EVENT_301" and arrived.events[-1].city == "新宿区"
    assert arrived.delivered and arrived.delivered_at is not None and shipped.promised_arrival is not None
    assert arrived.delivered_at <= shipped.promised_arrival


def test_a_second_create_is_recognised_and_ships_nothing_more(sandbox: Sandbox) -> None:
    service = mcf(sandbox)
    req = request("381234-20261120-0000000030")
    service.create_order(req)
    with pytest.raises(FulfillmentOrderExists) as again:
        service.create_order(req.model_copy(update={"items": [McfItem(seller_sku=DATA_SIM, quantity=2)]}))
    assert isinstance(again.value, ApiError) and again.value.code == "InvalidInput"
    assert req.seller_fulfillment_order_id in again.value.message
    amazon = sandbox.state()["amazon"]
    assert len(amazon["fulfillment_orders"]) == 1
    assert amazon["fba_stock"][DATA_SIM] == 4999
    assert len(sandbox.audit("amazon", "fulfillment_order_created")) == 1


def test_create_without_stock_is_an_api_error_with_amazons_code(sandbox: Sandbox) -> None:
    with pytest.raises(SpApiError) as refused:
        mcf(sandbox).create_order(request("381234-20261120-0000000031", sku=VOICE_SIM))
    assert not isinstance(refused.value, FulfillmentOrderExists)
    assert refused.value.code == "InvalidInput" and refused.value.status == 400
    assert "InventoryUnavailable" in refused.value.message


def test_a_lost_parcel_stays_in_transit(sandbox: Sandbox) -> None:
    service = mcf(sandbox)
    req = request("381234-20261120-0000000040")
    service.create_order(req)
    sandbox.post(f"/admin/amazon/fulfillment-orders/{req.seller_fulfillment_order_id}/lose")
    sandbox.advance(days=12)
    order = service.get_order(req.seller_fulfillment_order_id)
    assert order is not None and order.status == "Complete"
    info = service.tracking(order.packages[0].package_number)
    assert info.current_status == "IN_TRANSIT"
    assert "EVENT_301" not in info.event_codes and not info.delivered


# --- returns ----------------------------------------------------------------------------------------------
def test_return_authorization_for_a_shipped_order(sandbox: Sandbox) -> None:
    service = mcf(sandbox)
    req = request("381234-20261120-0000000050", quantity=2)
    service.create_order(req)
    reasons = service.return_reasons(DATA_SIM)
    assert "CR-DEFECTIVE" in [r.code for r in reasons] and all(r.translated for r in reasons)
    with pytest.raises(ReturnRefused) as early:
        service.create_return(req.seller_fulfillment_order_id, [McfReturnItem(seller_sku=DATA_SIM,
                                                                            reason_code="CR-DEFECTIVE")])
    assert early.value.code == "NoCompletedShipItems" and isinstance(early.value, BusinessRuleError)

    sandbox.advance(days=3)
    item = McfReturnItem(seller_sku=DATA_SIM, reason_code="CR-DEFECTIVE", comment="SIMが認識されない")
    rma = service.create_return(req.seller_fulfillment_order_id, [item]).authorization_id
    assert rma
    again = service.create_return(req.seller_fulfillment_order_id, [item])
    assert again.authorization_id == rma  # the same return, found again
    returns = sandbox.get(f"/admin/amazon/fulfillment-orders/{req.seller_fulfillment_order_id}")["returns"]
    assert [(r["reason"], r["authorization_id"]) for r in returns] == [("CR-DEFECTIVE", rma)]
    with pytest.raises(ReturnRefused) as bad_reason:
        service.create_return(req.seller_fulfillment_order_id,
                              [McfReturnItem(seller_sku=DATA_SIM, reason_code="CR-MADE-UP",
                                             return_item_ids=["RKT-X-NEW-1"])])
    assert bad_reason.value.code == "InvalidValues"


# --- credentials ------------------------------------------------------------------------------------------
def test_refused_refresh_token_says_which_setting_to_check_and_never_shows_it(sandbox: Sandbox) -> None:
    secret = "Atzr|my-very-secret-refresh-token"
    service = mcf(sandbox, spapi_refresh_token=SecretStr(secret))
    with pytest.raises(SpApiError) as refused:
        service.get_order("RKT-ANYTHING")
    assert refused.value.code == "invalid_grant"
    assert "KUROKO_SPAPI_REFRESH_TOKEN" in refused.value.message
    assert secret not in str(refused.value) and "lwa-demo-client-secret" not in str(refused.value)

    wrong_app = mcf(sandbox, lwa_client_secret=SecretStr("not-the-secret"))
    with pytest.raises(SpApiError) as client_refused:
        wrong_app.get_order("RKT-ANYTHING")
    assert client_refused.value.code == "invalid_client"
    assert "KUROKO_LWA_CLIENT_SECRET" in client_refused.value.message
    assert "not-the-secret" not in str(client_refused.value)


def test_revoked_authorization_is_reported_after_one_fresh_token_attempt(sandbox: Sandbox) -> None:
    service = mcf(sandbox)
    assert service.get_order("RKT-NONE") is None
    sandbox.fault("spapi", refuse_token=True)
    before = len(sandbox.audit("amazon", "access_token_issued"))
    with pytest.raises(SpApiError) as revoked:
        service.get_order("RKT-NONE")
    assert revoked.value.code == "invalid_grant"
    assert len(sandbox.audit("amazon", "access_token_issued")) == before
    sandbox.clear_faults()
    sandbox.fault("spapi", expire_sessions=True)  # an expired token is simply renewed
    assert service.get_order("RKT-NONE") is None
    assert len(sandbox.audit("amazon", "access_token_issued")) == before + 1


# --- throttling and failures ---------------------------------------------------------------------------------
def test_own_throttle_keeps_a_long_burst_under_amazons_quota(sandbox: Sandbox) -> None:
    service = mcf(sandbox)
    started = time.monotonic()
    for _ in range(36):
        assert service.get_order("RKT-NOT-THERE") is None  # never a 429: the client waits instead
    # 36 tokens from a bucket of 28 that refills at 2/s cannot take less than 4 s, however fast Amazon is
    assert time.monotonic() - started >= 3.9
    assert service.request_count() == 36 + 1  # and one token request


def test_a_429_that_still_happens_is_quota_exceeded_with_a_retry_hint(sandbox: Sandbox) -> None:
    service = mcf(sandbox)
    service.return_reasons(DATA_SIM)
    sandbox.fault("spapi", burst_429=1)
    with pytest.raises(SpApiError) as throttled:
        service.return_reasons(DATA_SIM)
    assert throttled.value.code == "QuotaExceeded" and throttled.value.retry_after
    assert isinstance(throttled.value, ApplicationError)
    assert "Retry in about" in throttled.value.message
    assert service.return_reasons(DATA_SIM)  # the next call goes through (after the client's wait)


def test_amazon_failures_and_an_unreachable_endpoint(sandbox: Sandbox) -> None:
    service = mcf(sandbox)
    service.return_reasons(DATA_SIM)
    sandbox.fault("spapi", error_rate=1.0)
    with pytest.raises(SpApiError) as failed:
        service.return_reasons(DATA_SIM)
    assert (failed.value.code, failed.value.status) == ("InternalFailure", 500)
    sandbox.clear_faults()

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{free.getsockname()[1]}"
    with pytest.raises(SiteUnavailable):
        mcf(sandbox, spapi_url=dead, lwa_url=dead).get_order("RKT-X")
