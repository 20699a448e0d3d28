"""Amazon SP-API in the sandbox: Login with Amazon's token endpoint, Fulfillment Outbound
2020-07-01 (MCF) and FBA inventory summaries, as python-amazon-sp-api expects them unmodified.

Shapes, enums, error bodies and headers follow the SP-API models in tests/refs/sp-api/. Every operation checks
the access token (403 ``Unauthorized``), then its usage plan (token bucket on the wall clock, 429
``QuotaExceeded``), then the request (400 ``InvalidInput``, 404 ``NotFound``).

Fault knobs (``world.faults["spapi"]``, via install_faults): ``burst_429`` and ``error_rate`` answer
in SP-API's error shapes (LWA's on /auth/o2/token); ``refuse_token`` makes LWA refuse the refresh
token and SP-API refuse tokens already issued (the seller revoked the app); ``expire_sessions``
expires every access token issued so far, at the next request.

Reports API 2021-06-30 (createReport, getReport, getReportDocument) serves GET_FBA_REIMBURSEMENTS_DATA;
the document itself is served at /report-documents/{id}, plain (as a presigned URL would).

Admin knobs (``admin_router``), under /admin/amazon/: an order's plan (shipments, packages, fate,
moved estimated dates, unfulfillable units, return outcome; by id before or after creation, or for
the next order created), lost parcels, the next package's carrier (and tracking number), carrier
events injected into a package's tracking, an order's reported status, reimbursements, quotas,
token expiry, a returned parcel reaching the FC, and a read of the fulfillment orders.
"""

from __future__ import annotations

import base64
import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandbox.amazon.store import (
    CARRIER_CONTACTS,
    DEFAULT_PLANS,
    FC_ID,
    FC_RETURN_ADDRESS,
    FEE_PER_UNIT_YEN,
    MARKETPLACE_ID,
    PROCESSING_AFTER,
    REIMBURSEMENT_REPORT,
    RETURN_REASONS,
    SPEEDS,
    UNIT_WEIGHT_KG,
    AmazonStore,
    FulfillmentOrder,
    Line,
    OrderPlan,
    Report,
    ReturnItem,
    asin_for,
    case_view,
    destination_city,
    fnsku_for,
    is_remote,
    iso,
    issue_access_token,
    product_name,
    promise,
    read_access_token,
    return_reasons_for,
)
from sandbox.faults import install_faults

if TYPE_CHECKING:
    from sandbox.server import SandboxState
    from sandbox.world import World

OUTBOUND = "/fba/outbound/2020-07-01"
REPORTS = "/reports/2021-06-30"
DOCUMENTS = "/report-documents"
"""Where the sandbox serves report documents itself (Amazon's are presigned S3 URLs)."""
ALL_SPEEDS = (*SPEEDS, "ScheduledDelivery")
LIST_PAGE_SIZE = 50
LIST_DEFAULT_WINDOW = timedelta(hours=36)
"""listAllFulfillmentOrders without queryStartDate: orders updated in the last 36 hours."""


class SpApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def errors_body(code: str, message: str, details: str = "") -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message, "details": details}]}


def invalid(message: str, details: str = "") -> SpApiError:
    return SpApiError(400, "InvalidInput", message, details)


def not_found(message: str) -> SpApiError:
    return SpApiError(404, "NotFound", message)


def _headers(operation: str | None, status: int, store: AmazonStore | None) -> dict[str, str]:
    """x-amzn-RequestId always; x-amzn-RateLimit-Limit where the usage-plan page says it is sent
    (20x, 400, 404) and on 429 (so a throttled caller can see the plan)."""
    headers = {"x-amzn-RequestId": str(uuid.uuid4())}
    if operation is not None and (200 <= status < 300 or status in (400, 404, 429)):
        rate = store.plan(operation)[0] if store is not None else DEFAULT_PLANS.get(operation, (2.0, 30))[0]
        headers["x-amzn-RateLimit-Limit"] = f"{rate}"
    return headers


def sp_response(status: int, body: dict[str, Any], operation: str | None = None,
                store: AmazonStore | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=_headers(operation, status, store))


def _operation_of(request: Request) -> str | None:
    """Best-effort operation name for fault responses (for their headers)."""
    path, method = request.url.path, request.method
    if path.startswith("/fba/inventory"):
        return "getInventorySummaries"
    if path.startswith(REPORTS):
        if path.startswith(f"{REPORTS}/documents/"):
            return "getReportDocument"
        return "createReport" if method == "POST" else ("getReport" if path.count("/") > 3 else "getReports")
    if not path.startswith(OUTBOUND):
        return None
    rest = path[len(OUTBOUND):]
    if rest == "/fulfillmentOrders/preview":
        return "getFulfillmentPreview"
    if rest == "/fulfillmentOrders":
        return "createFulfillmentOrder" if method == "POST" else "listAllFulfillmentOrders"
    if rest == "/tracking":
        return "getPackageTrackingDetails"
    if rest == "/returnReasonCodes":
        return "listReturnReasonCodes"
    if rest.endswith("/cancel"):
        return "cancelFulfillmentOrder"
    if rest.endswith("/return"):
        return "createFulfillmentReturn"
    return "getFulfillmentOrder"


def _throttled(request: Request) -> Response:
    if request.url.path.startswith("/auth/"):
        return JSONResponse({"error": "server_error", "error_description": "Too many requests, slow down."},
                            status_code=429)
    return sp_response(429, errors_body("QuotaExceeded", "You exceeded your quota for the requested resource."),
                       _operation_of(request))


def _internal_failure(request: Request) -> Response:
    if request.url.path.startswith("/auth/"):
        return JSONResponse({"error": "server_error", "error_description": "Internal server error."},
                            status_code=500)
    return sp_response(500, errors_body("InternalFailure", "We encountered an internal error. Please try again."))


# --- Login with Amazon ----------------------------------------------------------------------
DEMO_CLIENT_ID = "amzn1.application-oa2-client.kuroko-demo"
DEMO_CLIENT_SECRET = "lwa-demo-client-secret"
DEMO_REFRESH_TOKEN = "Atzr|kuroko-demo-refresh-token"
"""The only LWA app and refresh token this Amazon accepts (the sandbox's own)."""


def demo_credentials() -> tuple[str, str, str]:
    return DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REFRESH_TOKEN


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _lwa_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error_description": description, "error": error}, status_code=status,
                        headers={"x-amzn-RequestId": str(uuid.uuid4())})


async def _token(state: SandboxState, request: Request) -> Response:
    world = state.world
    expire_pending_tokens(world)
    form = await request.form()
    values = {k: str(form.get(k) or "") for k in ("grant_type", "client_id", "client_secret", "refresh_token")}
    client_id, client_secret, refresh_token = demo_credentials()
    if values["grant_type"] != "refresh_token":
        return _lwa_error(400, "unsupported_grant_type", "The authorization grant type is not supported by the "
                          "authorization server")
    if not values["client_id"] or not values["client_secret"] or not values["refresh_token"]:
        return _lwa_error(400, "invalid_request", "The request is missing a required parameter : "
                          + next(k for k in ("client_id", "client_secret", "refresh_token") if not values[k]))
    if not (_same(values["client_id"], client_id) and _same(values["client_secret"], client_secret)):
        return _lwa_error(401, "invalid_client", "Client authentication failed")
    if not _same(values["refresh_token"], refresh_token) or world.faults["spapi"].refuse_token:
        return _lwa_error(400, "invalid_grant", "The request has an invalid grant parameter : refresh_token")
    world.record("amazon", "access_token_issued")
    return JSONResponse(
        {"access_token": issue_access_token(values["client_id"], time.time()),
         "refresh_token": values["refresh_token"], "token_type": "bearer", "expires_in": 3600},
        headers={"x-amzn-RequestId": str(uuid.uuid4()), "Cache-Control": "no-cache, no-store"},
    )


def expire_pending_tokens(world: World) -> None:
    """The ``expire_sessions`` knob, as the web apps read it: at the next request (of any kind)
    every access token issued so far expires."""
    knobs = world.faults["spapi"]
    if knobs.expire_sessions:
        knobs.expire_sessions = False
        world.amazon.tokens_valid_after = time.time()


def _check_access(world: World, request: Request) -> SpApiError | None:
    expire_pending_tokens(world)
    denied = "Access to requested resource is denied."
    token = request.headers.get("x-amz-access-token", "")
    if not token:
        return SpApiError(403, "Unauthorized", denied, "The request has no x-amz-access-token header.")
    claims = read_access_token(token)
    if claims is None:
        return SpApiError(403, "Unauthorized", denied, "The access token is not valid.")
    knobs = world.faults["spapi"]
    if knobs.refuse_token:
        return SpApiError(403, "Unauthorized", denied, "The selling partner's authorization has been revoked.")
    now = time.time()
    if float(claims.get("e", 0)) <= now or float(claims.get("i", 0)) < world.amazon.tokens_valid_after:
        return SpApiError(403, "Unauthorized", denied, "The access token you provided has expired.")
    return None


# --- request parsing ------------------------------------------------------------------------
async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise invalid("The request body is not valid JSON.", str(exc)) from None
    if not isinstance(data, dict):
        raise invalid("The request body must be a JSON object.")
    return data


def _text(value: Any, where: str, *, required: bool = True, max_length: int | None = None) -> str:
    if value is None or value == "":
        if required:
            raise invalid(f"Value null at '{where}' failed to satisfy constraint: Member must not be null")
        return ""
    if not isinstance(value, str):
        raise invalid(f"Value at '{where}' must be a string.")
    if max_length is not None and len(value) > max_length:
        raise invalid(f"Value at '{where}' failed to satisfy constraint: Member must have length less than or "
                      f"equal to {max_length}")
    return value


def _order_id(value: Any, where: str) -> str:
    """1–40 characters, ISO 8859-1, no two spaces in a row, outer white space removed."""
    text = _text(value, where, max_length=40).strip()
    if not text:
        raise invalid(f"Value at '{where}' must be 1 to 40 characters long.")
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        raise invalid(f"Value '{text}' at '{where}' must be an alpha-numeric or ISO 8859-1 compliant "
                      "string.") from None
    if "  " in text:
        raise invalid(f"Value '{text}' at '{where}' cannot contain two spaces in a row.")
    return text


def _timestamp(value: Any, where: str) -> datetime:
    text = _text(value, where)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"Value '{text}' at '{where}' is not an ISO 8601 date-time.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _enum(value: Any, where: str, allowed: tuple[str, ...], default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    if value not in allowed:
        raise invalid(f"Value '{value}' at '{where}' failed to satisfy constraint: Member must satisfy enum "
                      f"value set: [{', '.join(allowed)}]")
    return str(value)


def _address(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(f"Value null at '{where}' failed to satisfy constraint: Member must not be null")
    for key in ("name", "addressLine1", "postalCode", "countryCode"):
        _text(value.get(key), f"{where}.{key}")
    fields = ("name", "addressLine1", "addressLine2", "addressLine3", "city", "districtOrCounty",
              "stateOrRegion", "postalCode", "countryCode", "phone")
    return {k: value[k] for k in fields if isinstance(value.get(k), str) and value[k]}


def _marketplace(body: dict[str, Any]) -> None:
    given = body.get("marketplaceId")
    if given is not None and given != MARKETPLACE_ID:
        raise invalid(f"Value '{given}' for parameter marketplaceId is invalid.",
                      f"This seller sells in {MARKETPLACE_ID} (Amazon.co.jp) only.")


def _items(value: Any, where: str) -> list[tuple[str, str, int]]:
    """(sellerSku, sellerFulfillmentOrderItemId, quantity) per line, checked as the model says."""
    if not isinstance(value, list) or not value:
        raise invalid(f"Value null at '{where}' failed to satisfy constraint: Member must not be null or empty")
    if len(value) > 100:
        raise invalid(f"'{where}' has {len(value)} line items; at most 100 are allowed.")
    lines, seen = [], set()
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise invalid(f"'{where}[{i}]' must be an object.")
        sku = _text(item.get("sellerSku"), f"{where}[{i}].sellerSku", max_length=50)
        item_id = _text(item.get("sellerFulfillmentOrderItemId"), f"{where}[{i}].sellerFulfillmentOrderItemId",
                        max_length=50)
        quantity = item.get("quantity")
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
            raise invalid(f"Value '{quantity}' at '{where}[{i}].quantity' must be a positive integer.")
        if item_id in seen:
            raise invalid(f"Duplicate sellerFulfillmentOrderItemId '{item_id}' in '{where}'.")
        seen.add(item_id)
        lines.append((sku, item_id, quantity))
    if sum(q for _, _, q in lines) > 250:
        raise invalid(f"'{where}' has more than 250 units; at most 250 are allowed per order.")
    return lines


def _order(store: AmazonStore, request: Request) -> FulfillmentOrder:
    seller_id = request.path_params["sellerFulfillmentOrderId"]
    if len(seller_id) > 40:
        raise invalid(f"Value '{seller_id}' at 'sellerFulfillmentOrderId' failed to satisfy constraint: Member "
                      "must have length less than or equal to 40")
    order = store.orders.get(seller_id)
    if order is None:
        raise not_found(f"Requested order not found: {seller_id}")
    return order


# --- the operations ---------------------------------------------------------------------------
def _money(yen: int) -> dict[str, str]:
    return {"currencyCode": "JPY", "value": str(yen)}


def _weight(units: int) -> dict[str, str]:
    return {"unit": "KG", "value": f"{units * UNIT_WEIGHT_KG + 0.02:.2f}"}


def get_fulfillment_preview(world: World, body: dict[str, Any], request: Request) -> dict[str, Any]:
    store = world.amazon
    _marketplace(body)
    address = _address(body.get("address"), "address")
    lines = _items(body.get("items"), "items")
    speeds = body.get("shippingSpeedCategories") or list(SPEEDS)
    if not isinstance(speeds, list):
        raise invalid("'shippingSpeedCategories' must be a list.")
    for i, speed in enumerate(speeds):
        _enum(speed, f"shippingSpeedCategories[{i}]", ALL_SPEEDS)
    now = world.now()
    wanted: dict[str, int] = {}
    for sku, _, quantity in lines:
        wanted[sku] = wanted.get(sku, 0) + quantity
    item_reasons: dict[str, list[str]] = {}
    for sku, _, _ in lines:
        if not store.known_sku(sku):
            item_reasons[sku] = ["InvalidSKU"]
        elif store.fba_stock.get(sku, 0) < wanted[sku]:
            item_reasons[sku] = ["InventoryUnavailable"]
    units = sum(q for _, _, q in lines)
    previews = []
    for speed in speeds:
        order_reasons = []
        if address.get("countryCode") != "JP":
            order_reasons.append("InvalidDestinationAddress")
        if speed == "ScheduledDelivery":
            order_reasons.append("DeliverySLAUnavailable")
        preview: dict[str, Any] = {
            "shippingSpeedCategory": speed,
            "isFulfillable": not order_reasons and not item_reasons,
            "isCODCapable": False,
            "marketplaceId": MARKETPLACE_ID,
        }
        if preview["isFulfillable"]:
            p = promise(now, speed, is_remote(address))
            preview.update({
                "estimatedShippingWeight": _weight(units),
                "estimatedFees": [{"name": "FBAPerUnitFulfillmentFee",
                                   "amount": _money(FEE_PER_UNIT_YEN[speed] * units)}],
                "fulfillmentPreviewShipments": [{
                    "earliestShipDate": iso(max(now, p.ship_at - timedelta(hours=4))),
                    "latestShipDate": iso(p.ship_at),
                    "earliestArrivalDate": iso(p.earliest_arrival),
                    "latestArrivalDate": iso(p.latest_arrival),
                    "fulfillmentPreviewItems": [
                        {"sellerSku": sku, "quantity": q, "sellerFulfillmentOrderItemId": item_id,
                         "estimatedShippingWeight": _weight(q), "shippingWeightCalculationMethod": "Package"}
                        for sku, item_id, q in lines
                    ],
                }],
                "unfulfillablePreviewItems": [],
                "orderUnfulfillableReasons": [],
            })
        else:
            preview.update({
                "unfulfillablePreviewItems": [
                    {"sellerSku": sku, "quantity": q, "sellerFulfillmentOrderItemId": item_id,
                     "itemUnfulfillableReasons": item_reasons[sku]}
                    for sku, item_id, q in lines if sku in item_reasons
                ],
                "orderUnfulfillableReasons": order_reasons,
            })
        previews.append(preview)
    return {"payload": {"fulfillmentPreviews": previews}}


def create_fulfillment_order(world: World, body: dict[str, Any], request: Request) -> dict[str, Any]:
    store = world.amazon
    _marketplace(body)
    seller_id = _order_id(body.get("sellerFulfillmentOrderId"), "sellerFulfillmentOrderId")
    displayable_id = _order_id(body.get("displayableOrderId"), "displayableOrderId")
    displayable_date = _timestamp(body.get("displayableOrderDate"), "displayableOrderDate")
    comment = _text(body.get("displayableOrderComment"), "displayableOrderComment", max_length=750)
    speed = _enum(body.get("shippingSpeedCategory"), "shippingSpeedCategory", ALL_SPEEDS)
    address = _address(body.get("destinationAddress"), "destinationAddress")
    action = _enum(body.get("fulfillmentAction"), "fulfillmentAction", ("Ship", "Hold"), "Ship")
    policy = _enum(body.get("fulfillmentPolicy"), "fulfillmentPolicy", ("FillOrKill", "FillAll", "FillAllAvailable"),
                   "FillOrKill")
    emails = body.get("notificationEmails") or []
    if not isinstance(emails, list) or any(not isinstance(e, str) or len(e) > 64 for e in emails):
        raise invalid("'notificationEmails' must be a list of e-mail addresses of at most 64 characters.")
    lines = _items(body.get("items"), "items")
    if seller_id in store.orders:
        raise invalid(f"Fulfillment order with SellerFulfillmentOrderId '{seller_id}' already exists.",
                      "The sellerFulfillmentOrderId must be unique for each fulfillment order; "
                      "use getFulfillmentOrder to read the existing one.")
    if speed == "ScheduledDelivery":
        raise invalid("Shipping speed ScheduledDelivery is not available for these items.",
                      "DeliverySLAUnavailable")
    if address.get("countryCode") != "JP":
        raise invalid(f"The destination country '{address.get('countryCode')}' is not served from this "
                      "marketplace.", "InvalidDestinationAddress")
    wanted: dict[str, int] = {}
    for sku, item_id, quantity in lines:
        if not store.known_sku(sku):
            raise invalid(f"the SellerSKU for Item Id: {item_id} is invalid.")
        wanted[sku] = wanted.get(sku, 0) + quantity
    short = [sku for sku, q in wanted.items() if store.fba_stock.get(sku, 0) < q]
    if short:
        raise invalid(f"The fulfillment order is unfulfillable: not enough fulfillable inventory for "
                      f"SellerSKU {', '.join(short)}.", "InventoryUnavailable")
    store.create_order(
        seller_id=seller_id, displayable_id=displayable_id, displayable_date=iso(displayable_date),
        comment=comment, speed=speed, address=address,
        lines=[Line(sku, item_id, quantity) for sku, item_id, quantity in lines],
        action=action, policy=policy, notification_emails=list(emails),
    )
    return {}


def _order_header(order: FulfillmentOrder, now: datetime) -> dict[str, Any]:
    header: dict[str, Any] = {
        "sellerFulfillmentOrderId": order.seller_id,
        "marketplaceId": MARKETPLACE_ID,
        "displayableOrderId": order.displayable_id,
        "displayableOrderDate": order.displayable_date,
        "displayableOrderComment": order.comment,
        "shippingSpeedCategory": order.speed,
        "destinationAddress": order.address,
        "fulfillmentAction": order.action,
        "fulfillmentPolicy": order.policy,
        "receivedDate": iso(order.received_at),
        "fulfillmentOrderStatus": order.status(now),
        "statusUpdatedDate": iso(order.status_updated(now)),
    }
    if order.notification_emails:
        header["notificationEmails"] = order.notification_emails
    return header


def _order_result(store: AmazonStore, order: FulfillmentOrder) -> dict[str, Any]:
    now = store.world.now()
    status = order.status(now)
    stopped = status in ("Cancelled", "Unfulfillable", "Invalid")
    live = order.live_shipments(now)
    items = []
    for line in order.lines:
        cancelled, unfulfillable = order.quantities(line, now)
        item: dict[str, Any] = {
            "sellerSku": line.sku, "sellerFulfillmentOrderItemId": line.item_id, "quantity": line.quantity,
            "cancelledQuantity": cancelled, "unfulfillableQuantity": unfulfillable,
        }
        mine = [s for s in live if s.units().get(line.item_id)]
        if not stopped and mine:
            item["estimatedShipDate"] = iso(max(s.ship_at for s in mine))
            item["estimatedArrivalDate"] = iso(max(order.shipment_edd(s, now) for s in mine))
        items.append(item)
    result: dict[str, Any] = {
        "fulfillmentOrder": _order_header(order, now),
        "fulfillmentOrderItems": items,
        "returnItems": [_return_item(r) for r in order.returns],
        "returnAuthorizations": [_authorization(a) for a in order.authorizations],
    }
    planned = now - order.received_at >= PROCESSING_AFTER and order.action == "Ship"
    shipments = []
    for shipment in order.shipments:
        if not planned or not shipment.units():
            continue
        gone = shipment.plan.cancelled and shipment.ship_at <= now
        stopped_here = not shipment.shipped and stopped
        if stopped_here and status == "Cancelled":
            continue
        row: dict[str, Any] = {"amazonShipmentId": shipment.shipment_id, "fulfillmentCenterId": FC_ID}
        if gone or stopped_here:
            row["fulfillmentShipmentStatus"] = "CANCELLED_BY_FULFILLER"
        elif shipment.shipped:
            row["fulfillmentShipmentStatus"] = "SHIPPED"
        else:
            row["fulfillmentShipmentStatus"] = "PENDING"
        row["shippingDate"] = iso(shipment.ship_at)
        if row["fulfillmentShipmentStatus"] != "CANCELLED_BY_FULFILLER":
            row["estimatedArrivalDate"] = iso(order.shipment_edd(shipment, now))
        rows: list[dict[str, Any]] = []
        if shipment.packages:
            for package in shipment.packages:
                rows += [{"sellerSku": sku, "sellerFulfillmentOrderItemId": item_id, "quantity": q,
                          "packageNumber": package.number} for item_id, sku, q in package.units]
            row["fulfillmentShipmentPackage"] = [{
                "packageNumber": package.number, "carrierCode": package.carrier,
                "trackingNumber": package.tracking_number,
                "amazonFulfillmentTrackingNumber": package.amazon_tracking_number,
                "estimatedArrivalDate": row["estimatedArrivalDate"],
            } for package in shipment.packages]
        else:
            rows = [{"sellerSku": sku, "sellerFulfillmentOrderItemId": item_id, "quantity": q}
                    for box in shipment.contents for item_id, sku, q in box]
        row["fulfillmentShipmentItem"] = rows
        shipments.append(row)
    if shipments:
        result["fulfillmentShipments"] = shipments
    return result


def _return_item(item: ReturnItem) -> dict[str, Any]:
    row: dict[str, Any] = {
        "sellerReturnItemId": item.return_item_id,
        "sellerFulfillmentOrderItemId": item.item_id,
        "amazonShipmentId": item.shipment_id,
        "sellerReturnReasonCode": item.reason,
        "status": item.status,
        "statusChangedDate": iso(item.status_changed or item.created_at),
        "returnAuthorizationId": item.authorization_id,
        "fulfillmentCenterId": FC_ID,
    }
    if item.comment:
        row["returnComment"] = item.comment
    if item.condition:
        row["returnReceivedCondition"] = item.condition
    return row


def _authorization(auth: Any) -> dict[str, Any]:
    return {
        "returnAuthorizationId": auth.authorization_id,
        "fulfillmentCenterId": FC_ID,
        "returnToAddress": FC_RETURN_ADDRESS,
        "amazonRmaId": auth.rma_id,
        "rmaPageURL": f"https://sellercentral.amazon.co.jp/rma/{auth.rma_id}",
    }


def get_fulfillment_order(world: World, body: dict[str, Any], request: Request) -> dict[str, Any]:
    return {"payload": _order_result(world.amazon, _order(world.amazon, request))}


def list_all_fulfillment_orders(world: World, body: dict[str, Any], request: Request) -> dict[str, Any]:
    now = world.now()
    query = request.query_params
    start = (_timestamp(query["queryStartDate"], "queryStartDate") if query.get("queryStartDate")
             else now - LIST_DEFAULT_WINDOW)
    offset = 0
    if query.get("nextToken"):
        try:
            offset = int(base64.urlsafe_b64decode(query["nextToken"].encode()).decode())
        except (ValueError, UnicodeDecodeError):
            raise invalid(f"Value '{query['nextToken']}' for parameter nextToken is invalid.") from None
    orders = sorted((o for o in world.amazon.orders.values() if o.status_updated(now) >= start),
                    key=lambda o: (o.received_at, o.seller_id))
    page = orders[offset:offset + LIST_PAGE_SIZE]
    payload: dict[str, Any] = {"fulfillmentOrders": [_order_header(o, now) for o in page]}
    if offset + LIST_PAGE_SIZE < len(orders):
        payload["nextToken"] = base64.urlsafe_b64encode(str(offset + LIST_PAGE_SIZE).encode()).decode()
    return {"payload": payload}


STATUS_TEXT = {"IN_TRANSIT": "In transit", "OUT_FOR_DELIVERY": "Out for delivery", "DELIVERED": "Delivered",
               "UNKNOWN": "Unknown", "DELAYED": "Delayed", "UNDELIVERABLE": "Undeliverable",
               "RETURNING": "Returning to the fulfillment center", "RETURNED": "Returned to the fulfillment center",
               "DELIVERY_ATTEMPTED": "Delivery attempted"}


def get_package_tracking_details(world: World, body: dict[str, Any], request: Request) -> dict[str, Any]:
    store = world.amazon
    raw = request.query_params.get("packageNumber")
    if raw is None or raw == "":
        raise invalid("Value null at 'packageNumber' failed to satisfy constraint: Member must not be null")
    try:
        number = int(raw)
    except ValueError:
        raise invalid(f"Value '{raw}' at 'packageNumber' must be an integer.") from None
    found = store.package(number)
    if found is None:
        raise not_found(f"Package {number} not found.")
    order, shipment, package = found
    events = store.tracking_events(order, package)
    status = store.tracking_status(events)
    city = destination_city(order.address)
    details: dict[str, Any] = {
        "packageNumber": package.number,
        "trackingNumber": package.tracking_number,
        "customerTrackingLink": f"https://www.swiship.jp/track?id={package.amazon_tracking_number}",
        "carrierCode": package.carrier,
        "shipDate": iso(package.shipped_at),
        "estimatedArrivalDate": iso(order.shipment_edd(shipment, world.now())),
        "shipToAddress": {"city": city[:150], "state": str(order.address.get("stateOrRegion") or city)[:150],
                          "country": "JP"},
        "currentStatus": status,
        "currentStatusDescription": STATUS_TEXT.get(status, status.replace("_", " ").capitalize()),
        "trackingEvents": [{k: v for k, v in e.items() if k != "status"} for e in reversed(events)],
    }
    if package.carrier in CARRIER_CONTACTS:
        details["carrierURL"], details["carrierPhoneNumber"] = CARRIER_CONTACTS[package.carrier]
    return {"payload": details}


def list_return_reason_codes(world: World, body: dict[str, Any], request: Request) -> dict[str, Any]:
    query = request.query_params
    sku = query.get("sellerSku") or ""
    if not sku:
        raise invalid("Value null at 'sellerSku' failed to satisfy constraint: Member must not be null")
    if not world.amazon.known_sku(sku):
        raise invalid(f"Value '{sku}' for parameter sellerSku is invalid.", "The SKU is not in this seller's "
                      "FBA inventory.")
    given_market = query.get("marketplaceId")
    if given_market and given_market != MARKETPLACE_ID:
        raise invalid(f"Value '{given_market}' for parameter marketplaceId is invalid.")
    seller_id = query.get("sellerFulfillmentOrderId")
    if seller_id and seller_id not in world.amazon.orders:
        raise not_found(f"Requested order not found: {seller_id}")
    japanese = (query.get("language") or "").lower().startswith("ja")
    details = []
    for code in return_reasons_for(sku):
        english, japanese_text = RETURN_REASONS[code]
        row = {"returnReasonCode": code, "description": english}
        if japanese:
            row["translatedDescription"] = japanese_text
        details.append(row)
    return {"payload": {"reasonCodeDetails": details}}


INVALID_TEXT = {
    "InvalidValues": "The item was not found in a fulfillment order.",
    "DuplicateRequest": "A fulfillment return has already been requested for this item.",
    "NoCompletedShipItems": "The fulfillment order containing this item has not yet shipped.",
    "NoReturnableQuantity": "All item quantity available for return has been allocated to other return items.",
}


def create_fulfillment_return(world: World, body: dict[str, Any], request: Request) -> dict[str, Any]:
    """One authorization for the accepted items. A repeated sellerReturnItemId is refused as
    DuplicateRequest and its existing authorization is returned again: never a second one."""
    store = world.amazon
    order = _order(store, request)
    raw_items = body.get("items")
    if not isinstance(raw_items, list) or not raw_items:
        raise invalid("Value null at 'items' failed to satisfy constraint: Member must not be null or empty")
    now = world.now()
    existing = {r.return_item_id: r for r in order.returns}
    accepted: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    again: list[str] = []
    for i, item in enumerate(raw_items):
        if not isinstance(item, dict):
            raise invalid(f"'items[{i}]' must be an object.")
        return_id = _text(item.get("sellerReturnItemId"), f"items[{i}].sellerReturnItemId", max_length=80)
        item_id = _text(item.get("sellerFulfillmentOrderItemId"), f"items[{i}].sellerFulfillmentOrderItemId")
        shipment_id = _text(item.get("amazonShipmentId"), f"items[{i}].amazonShipmentId")
        reason = _text(item.get("returnReasonCode"), f"items[{i}].returnReasonCode")
        comment = _text(item.get("returnComment"), f"items[{i}].returnComment", required=False, max_length=1000)
        line = next((ln for ln in order.lines if ln.item_id == item_id), None)
        shipment = next((s for s in order.shipments if s.shipment_id == shipment_id), None)
        shipped_units = sum(q for p in (shipment.packages if shipment else []) for iid, _, q in p.units
                            if iid == item_id)
        returned = sum(1 for r in order.returns if r.item_id == item_id and r.shipment_id == shipment_id)
        returned += sum(1 for a in accepted if a["sellerFulfillmentOrderItemId"] == item_id
                        and a["amazonShipmentId"] == shipment_id)
        if return_id in existing:
            why = "DuplicateRequest"
            again.append(existing[return_id].authorization_id)
        elif line is None or shipment is None or reason not in return_reasons_for(line.sku):
            why = "InvalidValues"
        elif shipped_units == 0:
            why = "NoCompletedShipItems"
        elif returned >= shipped_units:
            why = "NoReturnableQuantity"
        else:
            existing_ids = {a["sellerReturnItemId"] for a in accepted}
            if return_id in existing_ids:
                why = "DuplicateRequest"
            else:
                accepted.append({"sellerReturnItemId": return_id, "sellerFulfillmentOrderItemId": item_id,
                                 "amazonShipmentId": shipment_id, "reason": reason, "comment": comment or None})
                continue
        rejected.append({"sellerReturnItemId": return_id, "sellerFulfillmentOrderItemId": item_id,
                         "invalidItemReason": {"invalidItemReasonCode": why, "description": INVALID_TEXT[why]}})
    new_items: list[ReturnItem] = []
    authorizations = [a for a in order.authorizations if a.authorization_id in set(again)]
    if accepted:
        auth = store.new_authorization(order)
        authorizations.append(auth)
        for a in accepted:
            item = ReturnItem(a["sellerReturnItemId"], a["sellerFulfillmentOrderItemId"], a["amazonShipmentId"],
                              a["reason"], a["comment"], auth.authorization_id, created_at=now)
            order.returns.append(item)
            new_items.append(item)
        world.record("amazon", "fulfillment_return_created", seller_fulfillment_order_id=order.seller_id,
                     return_authorization_id=auth.authorization_id, items=len(accepted))
    return {"payload": {
        "returnItems": [_return_item(r) for r in new_items],
        "invalidReturnItems": rejected,
        "returnAuthorizations": [_authorization(a) for a in authorizations],
    }}


def cancel_fulfillment_order(world: World, body: dict[str, Any], request: Request) -> dict[str, Any]:
    store = world.amazon
    order = _order(store, request)
    status = order.status(world.now())
    if status == "Cancelled":
        return {}
    if status not in ("Received", "Planning"):
        raise invalid(f"Fulfillment order '{order.seller_id}' cannot be cancelled: its status is {status}.",
                      "Only orders in Received or Planning can be cancelled.")
    store.cancel_order(order)
    return {}


def get_inventory_summaries(world: World, body: dict[str, Any], request: Request) -> dict[str, Any]:
    store = world.amazon
    query = request.query_params
    if query.get("granularityType") != "Marketplace":
        raise invalid(f"Value '{query.get('granularityType')}' for parameter granularityType is invalid.",
                      "Must be Marketplace.")
    if query.get("granularityId") != MARKETPLACE_ID:
        raise invalid(f"Value '{query.get('granularityId')}' for parameter granularityId is invalid.")
    markets = [m for value in query.getlist("marketplaceIds") for m in value.split(",") if m]
    if markets != [MARKETPLACE_ID]:
        raise invalid(f"Value '{','.join(markets)}' for parameter marketplaceIds is invalid.",
                      f"Exactly one marketplace, {MARKETPLACE_ID}, is expected.")
    skus = sorted(store.fba_stock)
    wanted = [s for value in query.getlist("sellerSkus") for s in value.split(",") if s]
    if len(wanted) > 50:
        raise invalid("At most 50 sellerSkus may be given.")
    if query.get("startDateTime"):
        start = _timestamp(query["startDateTime"], "startDateTime")
        skus = [s for s in skus if store.stock_updated.get(s, start) >= start]
    elif wanted:
        skus = [s for s in skus if s in wanted]
    elif query.get("sellerSku"):
        skus = [s for s in skus if s == query["sellerSku"]]
    details = (query.get("details") or "").lower() == "true"
    summaries = []
    for sku in skus:
        fulfillable = max(0, store.fba_stock.get(sku, 0))
        reserved = store.reserved(sku)
        summary: dict[str, Any] = {
            "asin": asin_for(sku), "fnSku": fnsku_for(sku), "sellerSku": sku, "condition": "NewItem",
            "lastUpdatedTime": iso(store.stock_updated.get(sku, world.now())),
            "productName": product_name(sku), "totalQuantity": fulfillable + reserved,
        }
        if details:
            summary["inventoryDetails"] = {
                "fulfillableQuantity": fulfillable, "inboundWorkingQuantity": 0, "inboundShippedQuantity": 0,
                "inboundReceivingQuantity": 0,
                "reservedQuantity": {"totalReservedQuantity": reserved, "pendingCustomerOrderQuantity": reserved,
                                     "pendingTransshipmentQuantity": 0, "fcProcessingQuantity": 0},
                "researchingQuantity": {"totalResearchingQuantity": 0, "researchingQuantityBreakdown": []},
                "unfulfillableQuantity": {"totalUnfulfillableQuantity": 0, "customerDamagedQuantity": 0,
                                          "warehouseDamagedQuantity": 0, "distributorDamagedQuantity": 0,
                                          "carrierDamagedQuantity": 0, "defectiveQuantity": 0,
                                          "expiredQuantity": 0},
            }
        summaries.append(summary)
    return {"payload": {"granularity": {"granularityType": "Marketplace", "granularityId": MARKETPLACE_ID},
                        "inventorySummaries": summaries}}


def create_report(world: World, body: dict[str, Any], request: Request) -> dict[str, Any]:
    report_type = _text(body.get("reportType"), "reportType")
    markets = body.get("marketplaceIds")
    if not isinstance(markets, list) or not markets:
        raise invalid("Value null at 'marketplaceIds' failed to satisfy constraint: Member must not be null")
    if markets != [MARKETPLACE_ID]:
        raise invalid(f"Value '{','.join(map(str, markets))}' for parameter marketplaceIds is invalid.",
                      f"This seller sells in {MARKETPLACE_ID} (Amazon.co.jp) only.")
    if report_type != REIMBURSEMENT_REPORT:
        raise invalid(f"Report type {report_type} is not available to this selling partner in the sandbox.",
                      f"Only {REIMBURSEMENT_REPORT} is served.")
    start = _timestamp(body["dataStartTime"], "dataStartTime") if body.get("dataStartTime") else None
    end = _timestamp(body["dataEndTime"], "dataEndTime") if body.get("dataEndTime") else None
    if start is not None and end is not None and start > end:
        raise invalid("dataStartTime must be before dataEndTime.")
    report = world.amazon.create_report(report_type, start, end)
    world.record("amazon", "report_created", report_id=report.report_id, report_type=report_type)
    return {"reportId": report.report_id}


def _report(world: World, request: Request) -> Report:
    report = world.amazon.reports.get(request.path_params["reportId"])
    if report is None:
        raise not_found(f"Report {request.path_params['reportId']} not found.")
    return report


def get_report(world: World, body: dict[str, Any], request: Request) -> dict[str, Any]:
    report = _report(world, request)
    report.polls += 1
    row: dict[str, Any] = {
        "reportId": report.report_id, "reportType": report.report_type, "marketplaceIds": [MARKETPLACE_ID],
        "dataStartTime": iso(report.start), "dataEndTime": iso(report.end), "createdTime": iso(report.created),
        "processingStatus": report.status,
    }
    if report.status != "IN_QUEUE":
        row["processingStartTime"] = iso(report.created)
    if report.status == "DONE":
        row["processingEndTime"] = iso(report.created)
        row["reportDocumentId"] = report.document_id
    return row


def get_report_document(world: World, body: dict[str, Any], request: Request) -> dict[str, Any]:
    wanted = request.path_params["reportDocumentId"]
    report = next((r for r in world.amazon.reports.values() if r.status == "DONE" and r.document_id == wanted), None)
    if report is None:
        raise not_found(f"Report document {wanted} not found.")
    base = world.urls.get("spapi") or f"{request.url.scheme}://{request.url.netloc}"
    return {"reportDocumentId": wanted, "url": f"{base}{DOCUMENTS}/{wanted}?X-Amz-Expires=300"}


Handler = Callable[["World", dict[str, Any], Request], dict[str, Any]]

ROUTES: list[tuple[str, str, str, Handler]] = [
    ("POST", f"{OUTBOUND}/fulfillmentOrders/preview", "getFulfillmentPreview", get_fulfillment_preview),
    ("POST", f"{OUTBOUND}/fulfillmentOrders", "createFulfillmentOrder", create_fulfillment_order),
    ("GET", f"{OUTBOUND}/fulfillmentOrders", "listAllFulfillmentOrders", list_all_fulfillment_orders),
    ("GET", f"{OUTBOUND}/tracking", "getPackageTrackingDetails", get_package_tracking_details),
    ("GET", f"{OUTBOUND}/returnReasonCodes", "listReturnReasonCodes", list_return_reason_codes),
    ("GET", f"{OUTBOUND}/fulfillmentOrders/{{sellerFulfillmentOrderId}}", "getFulfillmentOrder",
     get_fulfillment_order),
    ("PUT", f"{OUTBOUND}/fulfillmentOrders/{{sellerFulfillmentOrderId}}/return", "createFulfillmentReturn",
     create_fulfillment_return),
    ("PUT", f"{OUTBOUND}/fulfillmentOrders/{{sellerFulfillmentOrderId}}/cancel", "cancelFulfillmentOrder",
     cancel_fulfillment_order),
    ("GET", "/fba/inventory/v1/summaries", "getInventorySummaries", get_inventory_summaries),
    ("POST", f"{REPORTS}/reports", "createReport", create_report),
    ("GET", f"{REPORTS}/reports/{{reportId}}", "getReport", get_report),
    ("GET", f"{REPORTS}/documents/{{reportDocumentId}}", "getReportDocument", get_report_document),
]
CREATED = {"createReport": 202}
"""Operations that answer 202 rather than 200."""


def _endpoint(state: SandboxState, operation: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        world = state.world
        store = world.amazon
        refused = _check_access(world, request)
        if refused is not None:
            return sp_response(refused.status, errors_body(refused.code, refused.message, refused.details))
        if not store.take_quota(operation):
            return sp_response(429, errors_body("QuotaExceeded", "You exceeded your quota for the requested "
                                                "resource."), operation, store)
        try:
            body = await _json_body(request) if request.method in ("POST", "PUT") else {}
            store.tick(world.now())
            result = handler(world, body, request)
        except SpApiError as exc:
            return sp_response(exc.status, errors_body(exc.code, exc.message, exc.details), operation, store)
        return sp_response(CREATED.get(operation, 200), result, operation, store)

    endpoint.__name__ = operation
    return endpoint


def create_app(state: SandboxState) -> FastAPI:
    app = FastAPI(title="Amazon SP-API (Kuroko sandbox)", docs_url=None, redoc_url=None, openapi_url=None)
    install_faults(app, state, "spapi", too_many=_throttled, server_error=_internal_failure)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            return sp_response(405, errors_body("MethodNotAllowed", f"{request.method} is not allowed on "
                                                f"{request.url.path}."))
        return sp_response(exc.status_code, errors_body("NotFound", f"Resource {request.url.path} not found."))

    async def token(request: Request) -> Response:
        return await _token(state, request)

    app.add_api_route("/auth/o2/token", token, methods=["POST"], include_in_schema=False)

    async def document(document_id: str) -> Response:
        """The report's text, as a presigned S3 URL serves it: plain, no access token, Amazon Japan's
        encoding (Windows-31J) named in Content-Type."""
        world = state.world
        report = next((r for r in world.amazon.reports.values()
                       if r.status == "DONE" and r.document_id == document_id), None)
        if report is None:
            return Response("<Error><Code>NoSuchKey</Code></Error>", status_code=404, media_type="application/xml")
        text = world.amazon.report_document(report)
        return Response(text.encode("cp932", errors="replace"),
                        media_type="text/plain", headers={"Content-Type": "text/plain; charset=Windows-31J"})

    app.add_api_route(f"{DOCUMENTS}/{{document_id}}", document, methods=["GET"], include_in_schema=False)
    for method, path, operation, handler in ROUTES:
        app.add_api_route(path, _endpoint(state, operation, handler), methods=[method], name=operation)
    return app


# --- admin knobs ------------------------------------------------------------------------------
class LostParcels(BaseModel):
    skus: list[str] = Field(default_factory=list, description="every package with one of these SKUs is lost")
    next: int = Field(0, ge=0, description="the next N packages to ship are lost")
    clear: bool = Field(False, description="forget earlier lost-parcel settings first")


class ForcedCarrier(BaseModel):
    carrier_code: str
    count: int = Field(1, ge=1)
    tracking_number: str | None = Field(None, description="these packages' tracking number, as given "
                                                         "(e.g. in full-width digits)")


class ReportedStatus(BaseModel):
    status: str | None = Field(None, description="the fulfillmentOrderStatus to report; none: the real one")


class QuotaPlan(BaseModel):
    operation: str | None = Field(None, description="one operation (e.g. getFulfillmentPreview); none: all")
    rate: float = Field(2.0, gt=0)
    burst: int = Field(30, ge=1)


class ReturnReceived(BaseModel):
    condition: str = Field("Sellable", pattern="^(Sellable|Defective|CustomerDamaged|CarrierDamaged|"
                                               "FulfillerDamaged)$")


class MoveEdd(BaseModel):
    days: float = Field(description="move every estimatedArrivalDate of the order by this many days (may be < 0)")


class CarrierEvent(BaseModel):
    code: str = Field(description="eventCode, e.g. EVENT_407 or one the model lacks (EVENT_636)")
    description: str = "Carrier event."
    status: str | None = Field(None, description="the currentStatus it leads to (any text); none: unchanged")


class Reimbursement(BaseModel):
    case_id: str | None = Field(None, description="the Seller Central case id (10–11 digits)")
    order_id: str | None = Field(None, description="amazon-order-id: the MCF order id")
    sku: str | None = None
    amount: int = Field(0, ge=0, description="amount-total in yen")
    quantity: int = Field(1, ge=1)
    reason: str = "Lost_Outbound"
    approved_at: datetime | None = None
    warehouse: int = Field(0, ge=0, description="also add this many of Amazon's own warehouse rows")


class FileCase(BaseModel):
    kind: str = Field(default="lost", pattern="^(lost|damaged)$")
    order_id: str | None = Field(default=None, description="the MCF order id the case is about")
    sku: str | None = None
    quantity: int = Field(default=1, ge=1)
    text: str = ""
    answer: str = Field(default="pay", pattern="^(pay|refuse|ask_more|silent)$",
                        description="what Amazon will answer (silent: never)")
    answer_after_days: float = Field(default=3, ge=0)
    amount: int | None = Field(default=None, ge=0, description="pay: yen (default: the product's price × quantity)")
    language: str = Field(default="en", pattern="^(en|ja)$", description="the language of Amazon's mails")
    phrasing: int = Field(default=0, ge=0, description="which phrasing Amazon's mails use (case_mail.py)")
    forward: str = Field(default="auto", pattern="^(auto|agent|none)$",
                         description="how Amazon's mails reach the claims address: the seller's mailbox forwards "
                                     "them (auto), an agent does (agent), or none come (none)")
    acknowledge: bool = Field(default=False, description="Amazon acknowledges the case by mail at once")
    again_after_days: float | None = Field(default=None, ge=0, description="Amazon writes about the case once "
                                                                          "more this long after answering it")


class CaseAnswer(BaseModel):
    answer: str = Field(pattern="^(pay|refuse|ask_more|silent)$")
    amount: int | None = Field(default=None, ge=0)


def admin_router(state: SandboxState) -> APIRouter:
    router = APIRouter(prefix="/admin/amazon")

    def store() -> AmazonStore:
        amazon = state.world.amazon
        amazon.tick(state.world.now())
        return amazon

    def find(seller_id: str) -> FulfillmentOrder:
        order = store().orders.get(seller_id)
        if order is None:
            raise HTTPException(404, f"no fulfillment order {seller_id}")
        return order

    @router.get("/fulfillment-orders")
    async def orders() -> list[dict[str, Any]]:
        amazon = store()
        return [amazon.order_view(o) for o in amazon.orders.values()]

    @router.get("/fulfillment-orders/{seller_id}")
    async def order(seller_id: str) -> dict[str, Any]:
        return store().order_view(find(seller_id))

    @router.post("/fulfillment-orders/{seller_id}/lose")
    async def lose(seller_id: str) -> dict[str, Any]:
        amazon, target = store(), find(seller_id)
        if target.packages and all(amazon.tracking_status(amazon.tracking_events(target, p)) == "DELIVERED"
                                   for p in target.packages):
            raise HTTPException(409, f"{seller_id} was already delivered")
        amazon.lose(target)
        return amazon.order_view(target)

    @router.post("/fulfillment-orders/{seller_id}/plan")
    async def plan(seller_id: str, body: OrderPlan) -> dict[str, Any]:
        """Script this order's fate: before it exists (kept until it is created) or after."""
        amazon = store()
        target = amazon.orders.get(seller_id)
        try:
            body.check()
            if target is None:
                amazon.pending_plans[seller_id] = body
                return {"seller_fulfillment_order_id": seller_id, "pending": True, "plan": body.model_dump()}
            if "shipments" in body.model_fields_set and any(s.shipped for s in target.shipments):
                raise HTTPException(409, f"{seller_id} has already shipped; its shipments can no longer change")
            amazon.apply_plan(target, body)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc
        return amazon.order_view(target)

    @router.post("/plans/next")
    async def next_plan(body: OrderPlan) -> dict[str, Any]:
        """The next created order (whatever its id) takes this plan; several queue up in turn."""
        try:
            body.check()
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc
        amazon = store()
        amazon.next_order_plans.append(body)
        return {"next_order_plans": [p.model_dump() for p in amazon.next_order_plans]}

    @router.delete("/plans/next")
    async def clear_next_plans() -> dict[str, Any]:
        amazon = store()
        amazon.next_order_plans.clear()
        amazon.pending_plans.clear()
        return {"next_order_plans": []}

    @router.post("/fulfillment-orders/{seller_id}/edd")
    async def move_edd(seller_id: str, body: MoveEdd) -> dict[str, Any]:
        """Amazon moves this order's estimatedArrivalDate (items, shipments, packages) from now on."""
        amazon, target = store(), find(seller_id)
        amazon.shift_edd(target, body.days)
        return amazon.order_view(target)

    @router.post("/packages/{package_number}/events")
    async def add_event(package_number: int, body: CarrierEvent) -> dict[str, Any]:
        """The carrier reports this event now (any code and status, e.g. ones the model lacks)."""
        amazon = store()
        found = amazon.package(package_number)
        if found is None:
            raise HTTPException(404, f"no package {package_number}")
        order, _, package = found
        package.injected.append((state.world.now(), body.code, body.description, body.status))
        return amazon.order_view(order)

    @router.post("/cases")
    async def file_case(body: FileCase) -> dict[str, Any]:
        """A person files a case in Seller Central (no API does): Amazon returns its case id, and
        answers it ``answer_after_days`` later (audit ``case_answered``; pay: a reimbursement row)."""
        case = store().file_case(kind=body.kind, order_id=body.order_id, sku=body.sku, quantity=body.quantity,
                                 text=body.text, answer=body.answer, answer_after_days=body.answer_after_days,
                                 amount=body.amount, language=body.language, phrasing=body.phrasing,
                                 forward=body.forward, acknowledge=body.acknowledge)
        case.again_after_days = body.again_after_days
        return case_view(case)

    @router.get("/cases")
    async def cases() -> list[dict[str, Any]]:
        return [case_view(c) for c in store().cases.values()]

    @router.post("/cases/{case_id}/answer")
    async def answer_case(case_id: str, body: CaseAnswer) -> dict[str, Any]:
        """Amazon answers the case now (again, if it already did: e.g. pays after asking for more)."""
        amazon = store()
        case = amazon.cases.get(case_id)
        if case is None:
            raise HTTPException(404, f"no case {case_id}")
        amazon.answer_case(case, body.answer, amount=body.amount)
        return case_view(case)

    @router.get("/reimbursements")
    async def reimbursements() -> list[dict[str, str]]:
        return list(store().reimbursements)

    @router.post("/reimbursements")
    async def add_reimbursement(body: Reimbursement) -> dict[str, Any]:
        """Amazon pays: a row in GET_FBA_REIMBURSEMENTS_DATA (a case's, or ``warehouse`` rows of
        Amazon's own warehouse losses, with no case and no order)."""
        amazon = store()
        rows = []
        if body.sku:
            rows.append(amazon.add_reimbursement(case_id=body.case_id, order_id=body.order_id, sku=body.sku,
                                                 amount=body.amount, quantity=body.quantity, reason=body.reason,
                                                 approved_at=body.approved_at))
        for i in range(body.warehouse):
            sku = sorted(amazon.fba_stock or {"SIM-DATA-30D-20GB": 0})[i % max(1, len(amazon.fba_stock))]
            rows.append(amazon.add_reimbursement(case_id=None, order_id=None, sku=sku, amount=1500 + 100 * i,
                                                 quantity=1, reason=("Lost_Warehouse", "Damaged_Warehouse")[i % 2]))
        return {"added": rows}

    @router.post("/lost")
    async def lost(body: LostParcels) -> dict[str, Any]:
        amazon = store()
        if body.clear:
            amazon.lost_skus.clear()
            amazon.lose_next = 0
        amazon.lost_skus.update(body.skus)
        amazon.lose_next += body.next
        return {"lost_skus": sorted(amazon.lost_skus), "lose_next": amazon.lose_next}

    @router.post("/carrier")
    async def carrier(body: ForcedCarrier) -> dict[str, Any]:
        amazon = store()
        amazon.forced_carriers.extend([body.carrier_code] * body.count)
        if body.tracking_number is not None:
            amazon.forced_tracking.extend([body.tracking_number] * body.count)
        return {"forced_carriers": list(amazon.forced_carriers), "forced_tracking": list(amazon.forced_tracking)}

    @router.post("/fulfillment-orders/{seller_id}/status")
    async def report_status(seller_id: str, body: ReportedStatus) -> dict[str, Any]:
        """Amazon reports this order in ``status`` from now on (e.g. one the robot has no rule for)."""
        target = find(seller_id)
        target.reported_status = body.status or None
        return store().order_view(target)

    @router.get("/quota")
    async def quota() -> dict[str, Any]:
        return {op: {"rate": r, "burst": b} for op, (r, b) in store().plans.items()}

    @router.post("/quota")
    async def set_quota(body: QuotaPlan) -> dict[str, Any]:
        amazon = store()
        if body.operation is not None and body.operation not in amazon.plans:
            raise HTTPException(400, f"unknown operation {body.operation!r}; one of {sorted(amazon.plans)}")
        amazon.set_plan(body.operation, body.rate, body.burst)
        return await quota()

    @router.delete("/quota")
    async def reset_quota() -> dict[str, Any]:
        amazon = store()
        amazon.plans = dict(DEFAULT_PLANS)
        amazon.buckets.clear()
        return await quota()

    @router.post("/tokens/expire")
    async def expire_tokens() -> dict[str, float]:
        """Every access token issued so far expires now (the robot must fetch a new one)."""
        store().tokens_valid_after = time.time() + 0.001
        return {"tokens_valid_after": store().tokens_valid_after}

    @router.post("/returns/{authorization_id}/receive")
    async def receive(authorization_id: str, body: ReturnReceived) -> dict[str, Any]:
        items = store().receive_return(authorization_id, body.condition)
        if not items:
            raise HTTPException(404, f"no open return items for authorization {authorization_id}")
        return {"processed": [i.return_item_id for i in items], "condition": body.condition}

    return router
