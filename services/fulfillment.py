"""Amazon Multi-Channel Fulfillment (MCF) as the robot sees it: a small Protocol in business words,
and the real implementation over python-amazon-sp-api (unmodified) and Login with Amazon.

- Orders: preview, create (once), read (``McfOrder``: shipments, packages, item quantities, the EDD
  as the latest estimated arrival seen, statuses raw and normalised), cancel.
- After the parcel leaves: per-package tracking (``TrackingInfo``; statuses and event codes are open
  sets, unknown ones are kept and listed, never refused), returns (per-SKU reason codes, one
  authorization per request with the caller's own sellerReturnItemIds, the returned units'
  outcome), and Amazon's reimbursements report (Reports API 2021-06-30 through the library's
  ``Reports`` client: create → poll → download).
- Every SP-API refusal becomes ``SpApiError`` (an ``ApiError``) whose ``code`` is Amazon's error
  code (``QuotaExceeded``, ``InvalidInput``, ``Unauthorized``, ``invalid_grant`` …); a second
  create for the same ``sellerFulfillmentOrderId`` is ``FulfillmentOrderExists``, so the robot can
  reconcile instead of shipping twice.
- Calls are throttled here, per operation, at Amazon's usage plan (token bucket, wall clock), so
  a normal run never sees a 429. A 429 that still happens is raised with a retry hint: the runner
  is the only layer that retries. The one exception is authorization: a 403 makes the client drop
  its access token and ask Login with Amazon for a new one once (as every OAuth client does).
- No message or log line carries a credential.
"""

from __future__ import annotations

import csv
import io
import re
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from json import JSONDecodeError
from types import SimpleNamespace
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

import httpx
from loguru import logger
from pydantic import BaseModel, Field, SecretStr
from sp_api.api import FulfillmentOutbound, Inventories, Reports
from sp_api.auth import AccessTokenClient, AccessTokenResponse
from sp_api.auth.exceptions import AuthorizationError
from sp_api.base import ApiResponse, SellingApiException

from kuroko.connections import CheckLine, Connection, Connections, checked
from kuroko.errors import ApiError, BusinessRuleError, ConfigurationError, SiteUnavailable
from kuroko.settings import KurokoSettings, load, secret_values


class AmazonSettings(KurokoSettings):
    spapi_url: str = "http://127.0.0.1:8104"
    lwa_url: str = "http://127.0.0.1:8104"
    """Login with Amazon token endpoint's origin (the sandbox serves it beside SP-API)."""
    lwa_client_id: str = "amzn1.application-oa2-client.kuroko-demo"
    lwa_client_secret: SecretStr = SecretStr("lwa-demo-client-secret")
    spapi_refresh_token: SecretStr = SecretStr("Atzr|kuroko-demo-refresh-token")
    marketplace_id: str = "A1VC38T7YXB528"
    """Amazon.co.jp."""
    report_poll_seconds: float = 2.0
    """First wait between two getReport polls (it grows by half each time, up to a minute)."""
    report_timeout_seconds: float = 900.0
    """Give up waiting for a report after this long (wall clock)."""
    timezone: str = "Asia/Tokyo"
    """The marketplace's time zone (displayable order dates)."""


SHIPPING_SPEEDS = ("Standard", "Expedited", "Priority")
USAGE_PLANS: dict[str, tuple[float, int]] = {
    **{op: (2.0, 30)
       for op in ("getFulfillmentPreview", "createFulfillmentOrder", "getFulfillmentOrder",
                  "getPackageTrackingDetails", "listReturnReasonCodes", "createFulfillmentReturn",
                  "cancelFulfillmentOrder", "listAllFulfillmentOrders")},
    "createReport": (0.0167, 15), "getReport": (2.0, 15), "getReportDocument": (0.0167, 15),
}
USAGE_PLANS["getInventorySummaries"] = (2.0, 2)
"""Rate (requests/second) and burst per operation, from the Fulfillment Outbound and Reports
2021-06-30 models."""
REIMBURSEMENTS_REPORT = "GET_FBA_REIMBURSEMENTS_DATA"
BURST_MARGIN = 2
"""The client keeps this many of Amazon's burst tokens in reserve, so network jitter never makes
its bucket and Amazon's disagree."""


# --- the robot's words ---------------------------------------------------------------------
class McfAddress(BaseModel):
    name: str
    address_line1: str
    address_line2: str | None = None
    city: str
    state_or_region: str
    """The prefecture (都道府県), e.g. 沖縄県."""
    postal_code: str
    country_code: str = "JP"
    phone: str | None = None


class McfItem(BaseModel):
    seller_sku: str = Field(min_length=1, max_length=50)
    quantity: int = Field(ge=1, le=250)


class McfOrderRequest(BaseModel):
    seller_fulfillment_order_id: str = Field(min_length=1, max_length=40)
    displayable_order_id: str = Field(min_length=1, max_length=40)
    displayable_order_date: datetime
    displayable_order_comment: str = Field(max_length=750)
    shipping_speed: str = "Standard"
    address: McfAddress
    items: list[McfItem] = Field(min_length=1)


class PreviewOption(BaseModel):
    shipping_speed: str
    fulfillable: bool
    unfulfillable_reasons: list[str]
    """Amazon's codes, order-level first (e.g. InvalidDestinationAddress), then item-level
    (e.g. InventoryUnavailable, InvalidSKU)."""
    earliest_arrival: datetime | None
    latest_arrival: datetime | None


def normalized_status(value: str | None) -> str:
    """Amazon's statuses come in several spellings (``CompletePartialled``, ``COMPLETE_PARTIALLED``,
    ``complete partialled``): compare this form (upper case, no underscores, spaces or hyphens)."""
    return re.sub(r"[\s_\-]", "", str(value or "")).upper()


class McfPackage(BaseModel):
    package_number: int
    """The input to ``tracking``."""
    carrier_code: str
    """Amazon's code (JAPAN_POST, YAMATO, SAGAWA …); map it with settings.carrier_map."""
    tracking_number: str
    shipped_at: datetime | None
    shipment_id: str = ""
    estimated_arrival: datetime | None = None
    amazon_tracking_number: str | None = None


class McfShipment(BaseModel):
    shipment_id: str
    """amazonShipmentId (returns name it)."""
    status: str
    """As on the wire: PENDING, SHIPPED, CANCELLED_BY_FULFILLER, CANCELLED_BY_SELLER (or another)."""
    status_key: str
    """``normalized_status(status)``: compare this."""
    shipped_at: datetime | None
    """The actual departure once SHIPPED; None before."""
    planned_ship_date: datetime | None
    """shippingDate as Amazon reports it (the estimated departure while PENDING)."""
    estimated_arrival: datetime | None
    packages: list[McfPackage]
    items: dict[str, int]
    """Units per SKU in this shipment."""

    @property
    def shipped(self) -> bool:
        return self.status_key == "SHIPPED"

    @property
    def cancelled(self) -> bool:
        return self.status_key.startswith("CANCELLED")


class McfOrderItem(BaseModel):
    seller_sku: str
    item_id: str
    """sellerFulfillmentOrderItemId."""
    quantity: int
    cancelled: int
    unfulfillable: int
    shipped: int
    """Units in SHIPPED shipments."""
    estimated_arrival: datetime | None

    @property
    def not_shipping(self) -> int:
        """Units Amazon will not ship (cancelled or unfulfillable)."""
        return min(self.quantity, self.cancelled + self.unfulfillable)


class ReturnAddress(BaseModel):
    name: str
    address_line1: str
    address_line2: str | None = None
    city: str | None = None
    state_or_region: str | None = None
    postal_code: str | None = None
    country_code: str = "JP"


class McfReturnAuthorization(BaseModel):
    authorization_id: str
    """returnAuthorizationId (links return items to it)."""
    amazon_rma_id: str
    rma_page_url: str
    """The RMA page with the label; the postage is not prepaid."""
    return_to_address: ReturnAddress
    fulfillment_center_id: str | None = None
    return_item_ids: list[str] = Field(default_factory=list)
    """Our sellerReturnItemIds it covers (create_return: those of the request)."""
    refused: dict[str, str] = Field(default_factory=dict)
    """create_return: sellerReturnItemId → Amazon's reason, for items of the request Amazon refused
    while accepting others (NoReturnableQuantity …)."""


class McfReturn(BaseModel):
    """One returned unit (a ReturnItem)."""

    return_item_id: str
    item_id: str
    seller_sku: str | None
    shipment_id: str
    reason_code: str
    comment: str | None
    status: str
    """As on the wire: New, Processed (or another spelling)."""
    status_key: str
    status_changed_at: datetime | None
    authorization_id: str | None
    received_condition: str | None
    """returnReceivedCondition once Processed: Sellable, Defective, CustomerDamaged, CarrierDamaged,
    FulfillerDamaged (or a value Amazon adds later: kept as given)."""

    @property
    def processed(self) -> bool:
        return self.status_key == "PROCESSED"


class McfOrder(BaseModel):
    seller_fulfillment_order_id: str
    status: str
    """Amazon's FulfillmentOrderStatus as on the wire: Received, Planning, Processing, Complete,
    CompletePartialled, Cancelled, Unfulfillable, Invalid, New (or another spelling or value)."""
    shipping_speed: str
    received_at: datetime | None
    promised_arrival: datetime | None
    """The same as ``estimated_arrival`` (kept for procedure A)."""
    packages: list[McfPackage]
    """Every package of every shipment."""
    status_key: str = ""
    """``normalized_status(status)``: compare this (COMPLETEPARTIALLED …)."""
    status_updated_at: datetime | None = None
    estimated_arrival: datetime | None = None
    """The EDD: the latest estimatedArrivalDate on the order's items, live shipments and packages
    (Amazon moves it); compare it in calendar days in Japan (``delivery_days``)."""
    shipments: list[McfShipment] = Field(default_factory=list)
    items: list[McfOrderItem] = Field(default_factory=list)
    returns: list[McfReturn] = Field(default_factory=list)
    return_authorizations: list[McfReturnAuthorization] = Field(default_factory=list)
    ship_to: ReturnAddress | None = None
    """destinationAddress as Amazon keeps it (name, addressLine1/2, stateOrRegion, postalCode, phone)."""
    ship_to_phone: str | None = None

    def not_shipping(self) -> dict[str, int]:
        """Units per SKU Amazon will not ship: all unshipped units of an Unfulfillable/Invalid order,
        else the cancelled and unfulfillable ones (CompletePartialled)."""
        if self.status_key in ("UNFULFILLABLE", "INVALID"):
            out = {i.seller_sku: i.quantity - i.shipped for i in self.items}
        else:
            out = {i.seller_sku: min(i.not_shipping, i.quantity - i.shipped) for i in self.items}
        return {sku: n for sku, n in out.items() if n > 0}


class McfOrderHeader(BaseModel):
    """One MCF order as listAllFulfillmentOrders gives it (no shipments: read those with get_order)."""

    seller_fulfillment_order_id: str
    displayable_order_id: str
    status: str
    status_key: str
    received_at: datetime | None
    status_updated_at: datetime | None


class TrackingEvent(BaseModel):
    code: str
    """eventCode as given (EVENT_301 …; codes the model lacks, e.g. EVENT_444, are kept)."""
    at: datetime | None
    description: str
    city: str | None = None
    state: str | None = None
    country: str | None = None


class TrackingInfo(BaseModel):
    package_number: int
    carrier_code: str
    tracking_number: str
    current_status: str
    """Amazon's CurrentStatus as given: IN_TRANSIT, OUT_FOR_DELIVERY, DELIVERED, UNDELIVERABLE,
    RETURNING, RETURNED, DELAYED … or a value the model lacks (kept, never refused)."""
    estimated_arrival: datetime | None
    """The promised (estimated) arrival as tracking reports it."""
    events: list[TrackingEvent]
    """Oldest first."""
    current_status_description: str | None = None
    ship_date: datetime | None = None
    ship_to_city: str | None = None
    ship_to_state: str | None = None
    ship_to_country: str | None = None
    customer_tracking_link: str | None = None
    """Swiship's page for the buyer (URL-decoded)."""
    found: bool = True
    """False when Amazon has no tracking for the package yet (normal within a day of shipping)."""

    @property
    def status_key(self) -> str:
        return normalized_status(self.current_status)

    @property
    def promised_arrival(self) -> datetime | None:
        return self.estimated_arrival

    @property
    def event_codes(self) -> list[str]:
        return [e.code for e in self.events]

    @property
    def delivered(self) -> bool:
        return self.status_key == "DELIVERED" or "EVENT_301" in self.event_codes

    @property
    def delivered_at(self) -> datetime | None:
        return next((e.at for e in reversed(self.events) if e.code == "EVENT_301"), None)

    @property
    def unknown_values(self) -> list[str]:
        """The status and event codes Amazon's model does not list (to record and show)."""
        odd = [] if self.status_key in KNOWN_STATUS_KEYS else [self.current_status]
        return odd + [c for c in dict.fromkeys(self.event_codes) if c not in KNOWN_EVENT_CODES]


KNOWN_STATUS_KEYS = {normalized_status(s) for s in (
    "IN_TRANSIT", "DELIVERED", "RETURNING", "RETURNED", "UNDELIVERABLE", "DELAYED", "AVAILABLE_FOR_PICKUP",
    "CUSTOMER_ACTION", "UNKNOWN", "OUT_FOR_DELIVERY", "DELIVERY_ATTEMPTED", "PICKUP_SUCCESSFUL", "PICKUP_CANCELLED",
    "PICKUP_ATTEMPTED", "PICKUP_SCHEDULED", "RETURN_REQUEST_ACCEPTED", "REFUND_ISSUED", "RETURN_RECEIVED_IN_FC")}
"""CurrentStatus in the 2020-07-01 model (an open set in practice)."""
KNOWN_EVENT_CODES = {f"EVENT_{n}" for n in (
    101, 102, 201, 202, 203, 204, 205, 206, 301, 302, 304, 306, 307, 308, 309, 401, 402, 403, 404, 405, 406, 407,
    408, 409, 411, 412, 413, 414, 415, 416, 417, 418, 419, 801, 804)}
"""EventCode in the 2020-07-01 model (an open set in practice)."""


class ReturnReason(BaseModel):
    code: str
    description: str
    translated: str | None = None
    """The description in the language asked for (Japanese)."""


class McfReturnItem(BaseModel):
    seller_sku: str
    quantity: int = Field(default=1, ge=1)
    reason_code: str
    """One of ``return_reasons(seller_sku)``."""
    comment: str | None = Field(default=None, max_length=1000)
    return_item_ids: list[str] | None = None
    """Our own sellerReturnItemId per unit (``quantity`` of them, each at most 80 characters, the
    same every time the same units are returned, so a repeat never makes a second return). None:
    ``<order id>-<item id>-<n>``."""


class ReimbursementRow(BaseModel):
    """One row of GET_FBA_REIMBURSEMENTS_DATA."""

    approval_date: datetime | None
    reimbursement_id: str
    case_id: str | None
    """The Seller Central case id; None for Amazon's own (warehouse) reimbursements."""
    amazon_order_id: str | None
    reason: str
    sku: str
    fnsku: str | None = None
    asin: str | None = None
    product_name: str | None = None
    condition: str | None = None
    currency: str | None = None
    amount_per_unit: Decimal | None = None
    amount_total: Decimal | None = None
    quantity_cash: int = 0
    quantity_inventory: int = 0
    quantity_total: int = 0
    original_reimbursement_id: str | None = None
    original_reimbursement_type: str | None = None
    raw: dict[str, str] = Field(default_factory=dict)
    """Every column as Amazon wrote it."""


# --- errors ------------------------------------------------------------------------------------
class SpApiError(ApiError):
    """Amazon refused; ``code`` is Amazon's error code, ``retry_after`` a hint in seconds (429)."""

    def __init__(self, message: str, *, code: str, operation: str, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, code=code)
        self.operation = operation
        self.status = status
        self.retry_after = retry_after


class FulfillmentOrderExists(SpApiError):
    """Amazon already has an MCF order with this sellerFulfillmentOrderId: read it, never re-create."""


class ReturnRefused(BusinessRuleError):
    """Amazon accepted none of the return's items (``code`` says why, e.g. NoCompletedShipItems)."""


# --- small pure helpers ------------------------------------------------------------------------
_ID_SAFE = re.compile(r"[0-9A-Za-z-]{1,36}")


def seller_fulfillment_order_id(order_number: str) -> str:
    """The MCF order id for a Rakuten order: ``RKT-`` + the order number (at most 40 ASCII
    characters, as SP-API allows). The same order always gets the same id, so Amazon itself
    refuses a second MCF order for it."""
    number = order_number.strip()
    if not _ID_SAFE.fullmatch(number):
        raise ValueError(f"{order_number!r} is not a Rakuten order number (digits and hyphens, at most 36)")
    return f"RKT-{number}"


def delivery_days(ordered_at: datetime, arrival: datetime, timezone: str = "Asia/Tokyo") -> int:
    """Calendar days from order to arrival in Japan: 2 for an order today that arrives the day
    after tomorrow, whatever the hour."""
    tz = ZoneInfo(timezone)
    return (arrival.astimezone(tz).date() - ordered_at.astimezone(tz).date()).days


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime, timezone: str) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read_address(raw: dict[str, Any]) -> ReturnAddress:
    return ReturnAddress(
        name=str(raw.get("name") or ""), address_line1=str(raw.get("addressLine1") or ""),
        address_line2=raw.get("addressLine2"), city=raw.get("city"), state_or_region=raw.get("stateOrRegion"),
        postal_code=raw.get("postalCode"), country_code=str(raw.get("countryCode") or "JP"),
    )


def _read_authorization(raw: dict[str, Any]) -> McfReturnAuthorization:
    return McfReturnAuthorization(
        authorization_id=str(raw["returnAuthorizationId"]), amazon_rma_id=str(raw.get("amazonRmaId") or ""),
        rma_page_url=str(raw.get("rmaPageURL") or ""), return_to_address=_read_address(raw.get("returnToAddress")
                                                                                        or {}),
        fulfillment_center_id=raw.get("fulfillmentCenterId"),
    )


def _read_return(raw: dict[str, Any], skus: dict[str, str]) -> McfReturn:
    item_id = str(raw.get("sellerFulfillmentOrderItemId") or "")
    return McfReturn(
        return_item_id=str(raw.get("sellerReturnItemId") or ""), item_id=item_id, seller_sku=skus.get(item_id),
        shipment_id=str(raw.get("amazonShipmentId") or ""), reason_code=str(raw.get("sellerReturnReasonCode") or ""),
        comment=raw.get("returnComment"), status=str(raw.get("status") or ""),
        status_key=normalized_status(raw.get("status")), status_changed_at=_parse_time(raw.get("statusChangedDate")),
        authorization_id=raw.get("returnAuthorizationId"), received_condition=raw.get("returnReceivedCondition"),
    )


def _money(value: str | None) -> Decimal | None:
    try:
        return Decimal(value.replace(",", "")) if value else None
    except InvalidOperation:
        return None


def _count(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _read_reimbursements(document: str) -> list[ReimbursementRow]:
    """The report's tab-separated rows by column name (unknown extra columns are kept in ``raw``)."""
    reader = csv.DictReader(io.StringIO(document.lstrip("\ufeff")), delimiter="\t", quoting=csv.QUOTE_NONE)
    rows = []
    for raw in reader:
        row = {str(k).strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(row.values()):
            continue
        try:
            approved = _parse_time(row.get("approval-date"))
        except ValueError:
            approved = None
        rows.append(ReimbursementRow(
            approval_date=approved, reimbursement_id=row.get("reimbursement-id", ""),
            case_id=row.get("case-id") or None, amazon_order_id=row.get("amazon-order-id") or None,
            reason=row.get("reason", ""), sku=row.get("sku", ""), fnsku=row.get("fnsku") or None,
            asin=row.get("asin") or None, product_name=row.get("product-name") or None,
            condition=row.get("condition") or None, currency=row.get("currency-unit") or None,
            amount_per_unit=_money(row.get("amount-per-unit")), amount_total=_money(row.get("amount-total")),
            quantity_cash=_count(row.get("quantity-reimbursed-cash")),
            quantity_inventory=_count(row.get("quantity-reimbursed-inventory")),
            quantity_total=_count(row.get("quantity-reimbursed-total")),
            original_reimbursement_id=row.get("original-reimbursement-id") or None,
            original_reimbursement_type=row.get("original-reimbursement-type") or None,
            raw=row,
        ))
    return rows


class TokenBucket:
    """Client-side usage plan: wait rather than be throttled."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def acquire(self) -> float:
        """Take a token, sleeping until there is one; returns the seconds waited."""
        with self._lock:
            self._refill()
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
        if wait > 0:
            self._sleep(wait)
        return wait

    def drain(self) -> None:
        """Amazon said 429: our idea of the bucket was too generous."""
        with self._lock:
            self._refill()
            self._tokens = min(self._tokens, 0.0)


_BUCKETS: dict[tuple[str, str, str], TokenBucket] = {}
_BUCKETS_LOCK = threading.Lock()


def _bucket(endpoint: str, marketplace_id: str, operation: str) -> TokenBucket:
    """One bucket per endpoint and operation for the whole process (Amazon's is per app and seller)."""
    key = (endpoint, marketplace_id, operation)
    with _BUCKETS_LOCK:
        bucket = _BUCKETS.get(key)
        if bucket is None:
            rate, burst = USAGE_PLANS.get(operation, (2.0, 30))
            bucket = _BUCKETS[key] = TokenBucket(rate, max(1, burst - BURST_MARGIN))
        return bucket


def token_client_class(lwa_url: str, on_request: Callable[[], None] | None = None) -> type[AccessTokenClient]:
    """An ``AccessTokenClient`` for the Login with Amazon at ``lwa_url`` (python-amazon-sp-api's
    documented hook, ``auth_token_client_class``), with its own token cache (so tokens of one
    configuration never leak into another) that ``forget()`` empties."""
    parts = urlsplit(lwa_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"KUROKO_LWA_URL {lwa_url!r} is not an http(s) URL (e.g. https://api.amazon.com)")
    cache: dict[str, tuple[float, dict[str, Any]]] = {}

    class KurokoTokenClient(AccessTokenClient):
        scheme = f"{parts.scheme}://"
        host = parts.netloc
        path = parts.path.rstrip("/") + "/auth/o2/token"

        def get_auth(self) -> AccessTokenResponse:
            key = self._get_cache_key()
            hit = cache.get(key)
            if hit is not None and hit[0] > time.monotonic():
                return AccessTokenResponse(**hit[1])
            if on_request is not None:
                on_request()
            data: dict[str, Any] = self._request(self.scheme + self.host + self.path, self.data, self.headers)
            lifetime = float(data.get("expires_in") or 3600)
            cache[key] = (time.monotonic() + max(30.0, lifetime - 300.0), data)
            return AccessTokenResponse(**data)

        @staticmethod
        def forget() -> None:
            cache.clear()

    return KurokoTokenClient


# --- the interface ------------------------------------------------------------------------------
class Fulfillment(Protocol):
    def preview(self, request: McfOrderRequest) -> list[PreviewOption]:
        """Every shipping speed, fulfillable or not (with Amazon's reasons)."""
        ...

    def create_order(self, request: McfOrderRequest) -> None:
        """Raises ``FulfillmentOrderExists`` when Amazon already has this order."""
        ...

    def get_order(self, seller_fulfillment_order_id: str) -> McfOrder | None:
        """None when Amazon has no such order."""
        ...

    def tracking(self, package_number: int) -> TrackingInfo:
        """The carrier's events for one package (``found`` False when there are none yet)."""
        ...

    def list_orders(self, since: datetime) -> list[McfOrderHeader]:
        """Every MCF order whose status changed at or after ``since`` (listAllFulfillmentOrders,
        every page), oldest received first."""
        ...

    def return_reasons(self, seller_sku: str) -> list[ReturnReason]:
        """The reason codes Amazon offers for this SKU (they differ per SKU)."""
        ...

    def create_return(self, seller_fulfillment_order_id: str,
                      items: Sequence[McfReturnItem]) -> McfReturnAuthorization:
        """One authorization for the units (the RMA goes to the buyer); asking again for the same
        sellerReturnItemIds gives the same authorization. Raises ``ReturnRefused`` when Amazon
        accepts none of them."""
        ...

    def return_items(self, seller_fulfillment_order_id: str) -> list[McfReturn]:
        """The order's returned units and how Amazon received them (empty when none)."""
        ...

    def reimbursements(self, since: datetime, until: datetime | None = None) -> list[ReimbursementRow]:
        """GET_FBA_REIMBURSEMENTS_DATA rows approved in [since, until] (create, poll, download)."""
        ...

    def inventory(self, seller_skus: Sequence[str]) -> dict[str, int]:
        """FBA's fulfillable units per seller SKU (0 for a SKU FBA does not list)."""
        ...

    def request_count(self) -> int:
        """HTTP requests made so far (token requests included)."""
        ...


T = TypeVar("T")


def open_fulfillment(connections: Connections) -> AmazonFulfillment:
    return AmazonFulfillment()


class AmazonFulfillment:
    """MCF through python-amazon-sp-api against ``settings.spapi_url`` / ``settings.lwa_url``."""

    def __init__(self, settings: AmazonSettings | None = None, *, throttle: bool = True) -> None:
        settings = settings or load(AmazonSettings)
        self.settings = settings
        self.throttle = throttle
        self._requests = 0
        self._endpoint = settings.spapi_url.rstrip("/")
        if not urlsplit(self._endpoint).netloc:
            raise ConfigurationError(f"KUROKO_SPAPI_URL {settings.spapi_url!r} is not a URL "
                                     "(e.g. https://sellingpartnerapi-fe.amazon.com)")
        self._secrets = [s for s in {*secret_values(), *settings.own_secrets()} if len(s) >= 4]
        self._token_class = token_client_class(settings.lwa_url, on_request=self._count)
        self._marketplace = SimpleNamespace(endpoint=self._endpoint, marketplace_id=settings.marketplace_id,
                                            region="us-west-2")
        self._credentials = {
            "lwa_app_id": settings.lwa_client_id,
            "lwa_client_secret": settings.lwa_client_secret.get_secret_value(),
            "refresh_token": settings.spapi_refresh_token.get_secret_value(),
        }
        self._client = FulfillmentOutbound(
            marketplace=self._marketplace,
            refresh_token=settings.spapi_refresh_token.get_secret_value(),
            credentials=self._credentials,
            auth_token_client_class=self._token_class,
            timeout=30,
        )
        self._reports: Reports | None = None
        self._inventories: Inventories | None = None

    # --- the Protocol ----------------------------------------------------------------------
    def preview(self, request: McfOrderRequest) -> list[PreviewOption]:
        response = self._call("getFulfillmentPreview", self._client.get_fulfillment_preview,
                              marketplaceId=self.settings.marketplace_id,
                              address=self._address(request.address),
                              items=self._items(request.items),
                              shippingSpeedCategories=list(SHIPPING_SPEEDS))
        options = []
        for preview in (self._payload(response, "getFulfillmentPreview").get("fulfillmentPreviews") or []):
            reasons = list(preview.get("orderUnfulfillableReasons") or [])
            for item in preview.get("unfulfillablePreviewItems") or []:
                reasons += item.get("itemUnfulfillableReasons") or []
            shipments = preview.get("fulfillmentPreviewShipments") or []
            earliest = [t for s in shipments if (t := _parse_time(s.get("earliestArrivalDate")))]
            latest = [t for s in shipments if (t := _parse_time(s.get("latestArrivalDate")))]
            options.append(PreviewOption(
                shipping_speed=preview["shippingSpeedCategory"],
                fulfillable=bool(preview.get("isFulfillable")),
                unfulfillable_reasons=list(dict.fromkeys(reasons)),
                earliest_arrival=min(earliest) if earliest else None,
                latest_arrival=max(latest) if latest else None,
            ))
        return options

    def create_order(self, request: McfOrderRequest) -> None:
        body = {
            "marketplaceId": self.settings.marketplace_id,
            "sellerFulfillmentOrderId": request.seller_fulfillment_order_id,
            "displayableOrderId": request.displayable_order_id,
            "displayableOrderDate": _iso(request.displayable_order_date, self.settings.timezone),
            "displayableOrderComment": request.displayable_order_comment,
            "shippingSpeedCategory": request.shipping_speed,
            "destinationAddress": self._address(request.address),
            "fulfillmentAction": "Ship",
            "fulfillmentPolicy": "FillOrKill",
            "items": self._items(request.items),
        }
        try:
            self._call("createFulfillmentOrder", self._client.create_fulfillment_order, **body)
        except SpApiError as exc:
            if exc.status != 400:
                raise
            duplicate = "already exist" in exc.message.lower() or self.get_order(
                request.seller_fulfillment_order_id) is not None
            if duplicate:
                raise FulfillmentOrderExists(
                    f"Amazon already has MCF order {request.seller_fulfillment_order_id}; it was not created "
                    "again. Read it with get_order and record it.",
                    code=exc.code, operation=exc.operation, status=exc.status,
                ) from None
            raise
        logger.info("MCF order {} created ({})", request.seller_fulfillment_order_id, request.shipping_speed)

    def get_order(self, seller_fulfillment_order_id: str) -> McfOrder | None:
        payload = self._order_payload(seller_fulfillment_order_id)
        if payload is None:
            return None
        return self._read_order(payload)

    def list_orders(self, since: datetime) -> list[McfOrderHeader]:
        start = since.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        found: list[McfOrderHeader] = []
        token: str | None = None
        for _ in range(1000):  # pages of 50 (Amazon's size): far more than a shop's orders in weeks
            params = {"nextToken": token} if token else {"queryStartDate": start}
            response = self._call("listAllFulfillmentOrders", self._client.list_all_fulfillment_orders, **params)
            payload = response.payload if isinstance(response.payload, dict) else {}
            for header in payload.get("fulfillmentOrders") or []:
                found.append(McfOrderHeader(
                    seller_fulfillment_order_id=str(header["sellerFulfillmentOrderId"]),
                    displayable_order_id=str(header.get("displayableOrderId") or ""),
                    status=str(header.get("fulfillmentOrderStatus") or ""),
                    status_key=normalized_status(header.get("fulfillmentOrderStatus")),
                    received_at=_parse_time(header.get("receivedDate")),
                    status_updated_at=_parse_time(header.get("statusUpdatedDate"))))
            token = payload.get("nextToken") or None
            if not token:
                break
        return found

    @staticmethod
    def _read_order(payload: dict[str, Any]) -> McfOrder:
        header = payload["fulfillmentOrder"]
        skus = {str(i.get("sellerFulfillmentOrderItemId")): str(i.get("sellerSku")) for i in
                payload.get("fulfillmentOrderItems") or []}
        shipments: list[McfShipment] = []
        arrivals: list[datetime] = []
        shipped_units: dict[str, int] = {}
        for shipment in payload.get("fulfillmentShipments") or []:
            raw_status = str(shipment.get("fulfillmentShipmentStatus") or "")
            key = normalized_status(raw_status)
            shipped = key == "SHIPPED"
            live = not key.startswith("CANCELLED")
            edd = _parse_time(shipment.get("estimatedArrivalDate"))
            if live and edd:
                arrivals.append(edd)
            packages = []
            for package in shipment.get("fulfillmentShipmentPackage") or []:
                package_edd = _parse_time(package.get("estimatedArrivalDate")) or edd
                if live and package_edd:
                    arrivals.append(package_edd)
                packages.append(McfPackage(
                    package_number=int(package["packageNumber"]),
                    carrier_code=str(package.get("carrierCode") or ""),
                    tracking_number=str(package.get("trackingNumber") or ""),
                    shipped_at=_parse_time(shipment.get("shippingDate")) if shipped else None,
                    shipment_id=str(shipment.get("amazonShipmentId") or ""),
                    estimated_arrival=package_edd,
                    amazon_tracking_number=package.get("amazonFulfillmentTrackingNumber"),
                ))
            units: dict[str, int] = {}
            for row in shipment.get("fulfillmentShipmentItem") or []:
                sku = str(row.get("sellerSku") or skus.get(str(row.get("sellerFulfillmentOrderItemId")), ""))
                units[sku] = units.get(sku, 0) + int(row.get("quantity") or 0)
                if shipped:
                    item_id = str(row.get("sellerFulfillmentOrderItemId"))
                    shipped_units[item_id] = shipped_units.get(item_id, 0) + int(row.get("quantity") or 0)
            shipments.append(McfShipment(
                shipment_id=str(shipment.get("amazonShipmentId") or ""), status=raw_status, status_key=key,
                shipped_at=_parse_time(shipment.get("shippingDate")) if shipped else None,
                planned_ship_date=_parse_time(shipment.get("shippingDate")), estimated_arrival=edd,
                packages=packages, items=units,
            ))
        items = []
        for item in payload.get("fulfillmentOrderItems") or []:
            edd = _parse_time(item.get("estimatedArrivalDate"))
            if edd:
                arrivals.append(edd)
            item_id = str(item.get("sellerFulfillmentOrderItemId"))
            items.append(McfOrderItem(
                seller_sku=str(item.get("sellerSku")), item_id=item_id, quantity=int(item.get("quantity") or 0),
                cancelled=int(item.get("cancelledQuantity") or 0),
                unfulfillable=int(item.get("unfulfillableQuantity") or 0),
                shipped=shipped_units.get(item_id, 0), estimated_arrival=edd,
            ))
        edd_all = max(arrivals) if arrivals else None
        return McfOrder(
            seller_fulfillment_order_id=header["sellerFulfillmentOrderId"],
            status=str(header.get("fulfillmentOrderStatus") or ""),
            status_key=normalized_status(header.get("fulfillmentOrderStatus")),
            status_updated_at=_parse_time(header.get("statusUpdatedDate")),
            shipping_speed=str(header.get("shippingSpeedCategory") or ""),
            received_at=_parse_time(header.get("receivedDate")),
            promised_arrival=edd_all,
            estimated_arrival=edd_all,
            packages=[p for s in shipments for p in s.packages],
            shipments=shipments,
            items=items,
            returns=[_read_return(r, skus) for r in payload.get("returnItems") or []],
            return_authorizations=[_read_authorization(a) for a in payload.get("returnAuthorizations") or []],
            ship_to=_read_address(header["destinationAddress"]) if header.get("destinationAddress") else None,
            ship_to_phone=(header.get("destinationAddress") or {}).get("phone") or None,
        )

    def tracking(self, package_number: int) -> TrackingInfo:
        try:
            response = self._call("getPackageTrackingDetails", self._client.get_package_tracking_details,
                                  packageNumber=package_number)
        except SpApiError as exc:
            if exc.status != 404:
                raise
            return TrackingInfo(package_number=package_number, carrier_code="", tracking_number="",
                                current_status="UNKNOWN", estimated_arrival=None, events=[], found=False)
        details = self._payload(response, "getPackageTrackingDetails")
        events = []
        for event in details.get("trackingEvents") or []:
            where = event.get("eventAddress") or {}
            events.append(TrackingEvent(
                code=str(event.get("eventCode") or ""), at=_parse_time(event.get("eventDate")),
                description=str(event.get("eventDescription") or ""), city=where.get("city"),
                state=where.get("state"), country=where.get("country"),
            ))
        events.sort(key=lambda e: e.at or datetime.min.replace(tzinfo=UTC))
        where = details.get("shipToAddress") or {}
        link = details.get("customerTrackingLink")
        return TrackingInfo(
            package_number=int(details.get("packageNumber", package_number)),
            carrier_code=str(details.get("carrierCode") or ""),
            tracking_number=str(details.get("trackingNumber") or ""),
            current_status=str(details.get("currentStatus") or "UNKNOWN"),
            current_status_description=details.get("currentStatusDescription"),
            estimated_arrival=_parse_time(details.get("estimatedArrivalDate")),
            ship_date=_parse_time(details.get("shipDate")),
            ship_to_city=where.get("city"), ship_to_state=where.get("state"), ship_to_country=where.get("country"),
            customer_tracking_link=unquote(str(link)) if link else None,
            events=events,
        )

    def return_reasons(self, seller_sku: str) -> list[ReturnReason]:
        response = self._call("listReturnReasonCodes", self._client.list_return_reason_codes,
                              sellerSku=seller_sku, marketplaceId=self.settings.marketplace_id, language="ja_JP")
        details = self._payload(response, "listReturnReasonCodes").get("reasonCodeDetails") or []
        return [ReturnReason(code=str(d["returnReasonCode"]), description=str(d.get("description") or ""),
                             translated=d.get("translatedDescription")) for d in details]

    def create_return(self, seller_fulfillment_order_id: str,
                      items: Sequence[McfReturnItem]) -> McfReturnAuthorization:
        """One return authorization for ``items``: each unit is one return item with the caller's
        ``return_item_ids`` (else ``<order id>-<item id>-<n>``), and unit n of an item is returned
        from the shipment that carried it, so asking again for the same units finds the same
        return (Amazon answers DuplicateRequest; the existing authorization is returned)."""
        sfo_id = seller_fulfillment_order_id
        payload = self._order_payload(sfo_id)
        if payload is None:
            raise SpApiError(f"Amazon has no MCF order {sfo_id}; there is nothing to return.", code="NotFound",
                             operation="createFulfillmentReturn", status=404)
        carried: dict[str, list[str]] = {}  # item id → shipment id per shipped unit, in shipment order
        for shipment in payload.get("fulfillmentShipments") or []:
            if normalized_status(shipment.get("fulfillmentShipmentStatus")) == "SHIPPED":
                for row in shipment.get("fulfillmentShipmentItem") or []:
                    carried.setdefault(row["sellerFulfillmentOrderItemId"], []).extend(
                        [shipment["amazonShipmentId"]] * int(row.get("quantity") or 0))
        return_items = []
        for wanted in items:
            lines = [i for i in payload.get("fulfillmentOrderItems") or [] if i["sellerSku"] == wanted.seller_sku]
            if not lines:
                raise ReturnRefused(f"MCF order {sfo_id} has no item {wanted.seller_sku}; nothing was returned.",
                                    code="InvalidValues")
            item_id = lines[0]["sellerFulfillmentOrderItemId"]
            units = carried.get(item_id) or []
            if not units:
                raise ReturnRefused(f"MCF order {sfo_id} has not shipped {wanted.seller_sku} yet, so it cannot be "
                                    "returned; cancel the order instead, or wait until it has shipped.",
                                    code="NoCompletedShipItems")
            ids = wanted.return_item_ids or [f"{sfo_id}-{item_id}-{n}"[:80] for n in range(1, wanted.quantity + 1)]
            if len(ids) != wanted.quantity or len(set(ids)) != len(ids) or any(not i or len(i) > 80 for i in ids):
                raise ValueError(f"{wanted.seller_sku}: give {wanted.quantity} distinct return item ids of 1–80 "
                                 "characters, one per unit")
            for n, return_id in enumerate(ids):
                row = {
                    "sellerReturnItemId": return_id,
                    "sellerFulfillmentOrderItemId": item_id,
                    "amazonShipmentId": units[min(n, len(units) - 1)],
                    "returnReasonCode": wanted.reason_code,
                }
                if wanted.comment:
                    row["returnComment"] = wanted.comment
                return_items.append(row)
        response = self._call("createFulfillmentReturn", self._client.create_fulfillment_return, sfo_id,
                              items=return_items)
        result = self._payload(response, "createFulfillmentReturn")
        ours = [row["sellerReturnItemId"] for row in return_items]
        invalid = result.get("invalidReturnItems") or []
        refused = {str(i["sellerReturnItemId"]): str(i["invalidItemReason"]["invalidItemReasonCode"])
                   for i in invalid if i["invalidItemReason"]["invalidItemReasonCode"] != "DuplicateRequest"}
        accepted = [str(r["sellerReturnItemId"]) for r in result.get("returnItems") or []]
        duplicates = [i for i in ours if i not in accepted and i not in refused]
        authorizations = {str(a["returnAuthorizationId"]): a for a in result.get("returnAuthorizations") or []}
        by_item = {str(r["sellerReturnItemId"]): str(r.get("returnAuthorizationId") or "")
                   for r in result.get("returnItems") or []}
        if duplicates:
            again = self._order_payload(sfo_id) or {}
            for row in again.get("returnItems") or []:
                if row.get("sellerReturnItemId") in duplicates:
                    by_item[str(row["sellerReturnItemId"])] = str(row.get("returnAuthorizationId") or "")
            for auth in again.get("returnAuthorizations") or []:
                authorizations.setdefault(str(auth["returnAuthorizationId"]), auth)
        covered = [i for i in ours if by_item.get(i)]
        if not covered:
            raise ReturnRefused(
                f"Amazon accepted no item of the return for MCF order {sfo_id}: "
                + "; ".join(f"{i['sellerReturnItemId']}: {i['invalidItemReason']['invalidItemReasonCode']} "
                            f"({i['invalidItemReason'].get('description', '')})" for i in invalid),
                code=next(iter(refused.values()), "InvalidValues"),
            )
        chosen = by_item[accepted[0]] if accepted else by_item[covered[0]]
        raw = authorizations.get(chosen)
        if raw is None:
            raise SpApiError(f"Amazon did not return authorization {chosen} for MCF order {sfo_id}; read the "
                             "order again later.", code="EmptyResponse", operation="createFulfillmentReturn")
        authorization = _read_authorization(raw)
        authorization.return_item_ids = [i for i in covered if by_item[i] == chosen]
        authorization.refused = refused
        logger.info("MCF return {} for {}: {} unit(s){}", chosen, sfo_id, len(authorization.return_item_ids),
                    " (found again)" if not accepted else "")
        return authorization

    def return_items(self, seller_fulfillment_order_id: str) -> list[McfReturn]:
        order = self.get_order(seller_fulfillment_order_id)
        return order.returns if order is not None else []

    def reimbursements(self, since: datetime, until: datetime | None = None) -> list[ReimbursementRow]:
        """Create a GET_FBA_REIMBURSEMENTS_DATA report for [since, until], poll it (wall clock, at
        most ``report_timeout_seconds``), download and read the document."""
        reports = self._reports_client()
        body: dict[str, Any] = {"reportType": REIMBURSEMENTS_REPORT, "marketplaceIds": [self.settings.marketplace_id],
                                "dataStartTime": _iso(since, self.settings.timezone)}
        if until is not None:
            body["dataEndTime"] = _iso(until, self.settings.timezone)
        created = self._payload(self._call("createReport", reports.create_report, **body), "createReport")
        report_id = str(created["reportId"])
        deadline = time.monotonic() + self.settings.report_timeout_seconds
        wait = max(0.01, self.settings.report_poll_seconds)
        while True:
            report = self._payload(self._call("getReport", reports.get_report, report_id), "getReport")
            status = normalized_status(report.get("processingStatus"))
            if status == "DONE":
                break
            if status in ("FATAL", "CANCELLED"):
                raise SpApiError(f"Amazon could not make the reimbursements report {report_id} ({status}); try "
                                 "again later.", code=f"Report{status.capitalize()}", operation="getReport")
            if time.monotonic() + wait > deadline:
                raise SpApiError(f"Amazon's reimbursements report {report_id} was not ready within "
                                 f"{self.settings.report_timeout_seconds:g} s ({status}); try again later.",
                                 code="ReportTimeout", operation="getReport")
            time.sleep(wait)
            wait = min(60.0, wait * 1.5)
        document_id = str(report["reportDocumentId"])
        self._requests += 1  # the download itself
        document = self._payload(self._call("getReportDocument", reports.get_report_document, document_id,
                                            download=True), "getReportDocument").get("document")
        if isinstance(document, bytes):
            document = document.decode("utf-8", errors="replace")
        return _read_reimbursements(str(document or ""))

    def cancel_order(self, seller_fulfillment_order_id: str) -> None:
        """Ask Amazon not to ship (possible only before the order is being processed)."""
        self._call("cancelFulfillmentOrder", self._client.cancel_fulfillment_order, seller_fulfillment_order_id)

    def check(self, order: str | None = None) -> list[CheckLine]:
        """`kuroko check`: an access token from Login with Amazon, one read call (listAllFulfillmentOrders
        for the last day), the marketplace, and the quota header Amazon sent. Nothing is created."""
        system = "sp-api"

        def token() -> str:
            try:
                self._client.auth  # noqa: B018 - fetches (and caches) the access token
            except AuthorizationError as exc:
                raise self._token_error("the access token", exc) from None
            except httpx.HTTPError as exc:
                raise SiteUnavailable(f"Login with Amazon ({self.settings.lwa_url}) could not be reached "
                                      f"({type(exc).__name__})") from None
            return f"Login with Amazon issued an access token (app {self.settings.lwa_client_id})"

        lines = [checked(system, "token", token)]
        if not lines[0].ok:
            return lines
        seen: dict[str, str] = {}

        def read_call() -> str:
            since = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
            response = self._call("listAllFulfillmentOrders", self._client.list_all_fulfillment_orders,
                                  queryStartDate=since)
            orders = (response.payload or {}).get("fulfillmentOrders") or []
            headers = getattr(response, "headers", None) or {}
            seen.update({k: str(v) for k, v in headers.items() if k.lower().startswith("x-amzn-ratelimit")})
            return f"listAllFulfillmentOrders answered ({len(orders)} orders in the last day) on {self._endpoint}"

        lines.append(checked(system, "read call", read_call))
        lines.append(CheckLine(system, "marketplace", True, f"{self.settings.marketplace_id}"
                               + (" (Amazon.co.jp)" if self.settings.marketplace_id == "A1VC38T7YXB528" else
                                  " — not Amazon.co.jp (A1VC38T7YXB528): check KUROKO_MARKETPLACE_ID")))
        if lines[1].ok:
            lines.append(CheckLine(system, "quota headers", True,
                                   ", ".join(f"{k}: {v}" for k, v in seen.items()) or
                                   "no x-amzn-RateLimit-Limit header sent (the default usage plans apply)"))
        return lines

    def request_count(self) -> int:
        return self._requests

    def metrics(self) -> dict[str, int]:
        return {"spapi_requests": self._requests}

    def inventory(self, seller_skus: Sequence[str]) -> dict[str, int]:
        """FBA inventory summaries (SP-API FBA Inventory v1, Marketplace granularity) for ``seller_skus``:
        fulfillable units per SKU, 0 for a SKU FBA does not list. At most 50 SKUs per request."""
        skus = list(dict.fromkeys(s for s in seller_skus if s))
        found = {sku: 0 for sku in skus}
        if self._inventories is None:
            self._inventories = Inventories(marketplace=self._marketplace, credentials=self._credentials,
                                            refresh_token=self.settings.spapi_refresh_token.get_secret_value(),
                                            auth_token_client_class=self._token_class, timeout=30)
        inventories = self._inventories
        for start in range(0, len(skus), 50):
            chunk = skus[start:start + 50]
            response = self._call("getInventorySummaries", inventories.get_inventory_summary_marketplace,
                                  details=True, marketplaceIds=[self.settings.marketplace_id], sellerSkus=chunk)
            for summary in self._payload(response, "getInventorySummaries").get("inventorySummaries") or []:
                sku = str(summary.get("sellerSku") or "")
                if sku in found:
                    details = summary.get("inventoryDetails") or {}
                    found[sku] = int(details.get("fulfillableQuantity") or 0)
        return found

    def close(self) -> None:
        self._client.close()
        if self._reports is not None:
            self._reports.close()

        if self._inventories is not None:
            self._inventories.close()

    def _reports_client(self) -> Reports:
        if self._reports is None:
            self._reports = Reports(marketplace=self._marketplace,
                                    refresh_token=self.settings.spapi_refresh_token.get_secret_value(),
                                    credentials=self._credentials, auth_token_client_class=self._token_class,
                                    timeout=30)
        return self._reports

    # --- plumbing -------------------------------------------------------------------------------
    def _count(self) -> None:
        self._requests += 1

    def _order_payload(self, seller_fulfillment_order_id: str) -> dict[str, Any] | None:
        try:
            response = self._call("getFulfillmentOrder", self._client.get_fulfillment_order,
                                  seller_fulfillment_order_id)
        except SpApiError as exc:
            if exc.status == 404 or (exc.status == 400 and "not found" in exc.message.lower()):
                return None
            raise
        return self._payload(response, "getFulfillmentOrder")

    def _address(self, address: McfAddress) -> dict[str, str]:
        """In Japan SP-API does not use ``city``: it goes at the front of addressLine1."""
        line1 = address.address_line1
        if address.country_code == "JP" and not line1.startswith(address.city):
            line1 = address.city + line1
        body = {
            "name": address.name,
            "addressLine1": line1,
            "stateOrRegion": address.state_or_region,
            "postalCode": address.postal_code,
            "countryCode": address.country_code,
        }
        if address.country_code != "JP":
            body["city"] = address.city
        if address.address_line2:
            body["addressLine2"] = address.address_line2
        if address.phone:
            body["phone"] = address.phone
        return body

    @staticmethod
    def _items(items: Sequence[McfItem]) -> list[dict[str, Any]]:
        """sellerFulfillmentOrderItemId is the SKU (numbered when a SKU repeats)."""
        rows: list[dict[str, Any]] = []
        seen: dict[str, int] = {}
        for item in items:
            seen[item.seller_sku] = seen.get(item.seller_sku, 0) + 1
            item_id = item.seller_sku if seen[item.seller_sku] == 1 else f"{item.seller_sku}-{seen[item.seller_sku]}"
            rows.append({"sellerSku": item.seller_sku, "sellerFulfillmentOrderItemId": item_id[-50:],
                         "quantity": item.quantity})
        return rows

    @staticmethod
    def _payload(response: ApiResponse, operation: str) -> dict[str, Any]:
        payload = response.payload
        if not isinstance(payload, dict) or not payload:
            raise SpApiError(f"Amazon SP-API answered {operation} without a payload (an empty or non-JSON "
                             "body); try again later.", code="EmptyResponse", operation=operation)
        return payload

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _call(self, operation: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One SP-API operation: throttled, counted, its errors in the robot's words."""
        bucket = _bucket(self._endpoint, self.settings.marketplace_id, operation)
        for attempt in (1, 2):
            if self.throttle:
                waited = bucket.acquire()
                if waited:
                    logger.debug("throttled {} for {:.2f} s (usage plan {}/s)", operation, waited, bucket.rate)
            self._requests += 1
            try:
                response = fn(*args, **kwargs)
            except SellingApiException as exc:
                error = self._api_error(operation, exc)
                if error.code == "QuotaExceeded":
                    bucket.drain()
                if exc.code == 403 and attempt == 1:
                    self._token_class.forget()
                    logger.info("SP-API denied {} ({}); fetching a new access token once", operation, error.code)
                    continue
                raise error from None
            except AuthorizationError as exc:
                self._requests -= 1  # the operation itself was never sent
                raise self._token_error(operation, exc) from None
            except (httpx.HTTPError, JSONDecodeError) as exc:
                raise SiteUnavailable(
                    f"Amazon ({self._endpoint} / {self.settings.lwa_url}) did not answer {operation} properly "
                    f"({type(exc).__name__}); try again later."
                ) from None
            self._learn_rate(bucket, response)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _learn_rate(bucket: TokenBucket, response: Any) -> None:
        """Amazon's x-amzn-RateLimit-Limit header, when sent, is the rate it grants us."""
        value = getattr(response, "rate_limit", None)
        try:
            rate = float(value) if value is not None else 0.0
        except (TypeError, ValueError):
            return
        if rate > 0:
            bucket.rate = rate

    def _api_error(self, operation: str, exc: SellingApiException) -> SpApiError:
        errors = getattr(exc, "error", None) or [{}]
        first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
        code = str(first.get("code") or getattr(exc, "amzn_code", None) or f"HTTP{exc.code}")
        text = str(first.get("message") or "")
        details = str(first.get("details") or "")
        said = self._scrub(f"{code}: {text}" + (f" ({details})" if details else ""))
        if exc.code == 429 or code == "QuotaExceeded":
            rate = _bucket(self._endpoint, self.settings.marketplace_id, operation).rate
            retry = round(max(1.0, 1.0 / rate), 1)
            return SpApiError(
                f"Amazon SP-API throttled {operation} ({said}). Retry in about {retry:g} s; if this repeats, "
                "another program may be using the same seller account's quota.",
                code="QuotaExceeded", operation=operation, status=429, retry_after=retry,
            )
        if exc.code == 403:
            return SpApiError(
                f"Amazon SP-API denied {operation} ({said}). Check KUROKO_LWA_CLIENT_ID, KUROKO_LWA_CLIENT_SECRET "
                "and KUROKO_SPAPI_REFRESH_TOKEN, and that the seller still authorizes the app in Seller Central.",
                code=code, operation=operation, status=403,
            )
        if exc.code >= 500:
            return SpApiError(f"Amazon SP-API failed on {operation} (HTTP {exc.code}, {said}); try again later.",
                              code=code, operation=operation, status=exc.code)
        return SpApiError(f"Amazon SP-API refused {operation} (HTTP {exc.code}, {said}).", code=code,
                          operation=operation, status=exc.code)

    def _token_error(self, operation: str, exc: AuthorizationError) -> SpApiError:
        code = str(exc.error_code or "token_refused")
        if code == "invalid_client":
            hint = "Check KUROKO_LWA_CLIENT_ID and KUROKO_LWA_CLIENT_SECRET (the app's LWA credentials)."
        elif code == "invalid_grant":
            hint = ("Check KUROKO_SPAPI_REFRESH_TOKEN; if it is right, the seller must authorize the app again in "
                    "Seller Central and the new refresh token must be configured.")
        else:
            hint = f"Check KUROKO_LWA_URL ({self.settings.lwa_url}) and the LWA credentials."
        said = self._scrub(str(exc.message or ""))
        if exc.status_code == 429 or exc.status_code >= 500:
            return SpApiError(
                f"Login with Amazon did not issue an access token for {operation} (HTTP {exc.status_code}, {code}); "
                "try again later.", code=code, operation=operation, status=exc.status_code,
            )
        return SpApiError(
            f"Login with Amazon refused the access-token request for {operation} ({code}"
            + (f": {said}" if said else "") + f", HTTP {exc.status_code}). {hint}",
            code=code, operation=operation, status=exc.status_code,
        )


FULFILLMENT: Connection[Fulfillment] = Connection("fulfillment", open_fulfillment)
"""Amazon MCF (SP-API Fulfillment Outbound)."""
