"""Amazon Multi-Channel Fulfillment (MCF) as the robot sees it: a small Protocol in business words,
and the real implementation over python-amazon-sp-api (unmodified) and Login with Amazon.

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

import re
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from json import JSONDecodeError
from types import SimpleNamespace
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
from loguru import logger
from pydantic import BaseModel, Field, SecretStr
from sp_api.api import FulfillmentOutbound
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
    timezone: str = "Asia/Tokyo"
    """The marketplace's time zone (displayable order dates)."""


SHIPPING_SPEEDS = ("Standard", "Expedited", "Priority")
USAGE_PLANS: dict[str, tuple[float, int]] = {
    op: (2.0, 30)
    for op in ("getFulfillmentPreview", "createFulfillmentOrder", "getFulfillmentOrder",
               "getPackageTrackingDetails", "listReturnReasonCodes", "createFulfillmentReturn",
               "cancelFulfillmentOrder", "listAllFulfillmentOrders")
}
"""Rate (requests/second) and burst per operation, from the Fulfillment Outbound model."""
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


class McfPackage(BaseModel):
    package_number: int
    carrier_code: str
    """Amazon's code (JAPAN_POST, YAMATO, SAGAWA …); map it with settings.carrier_map."""
    tracking_number: str
    shipped_at: datetime | None


class McfOrder(BaseModel):
    seller_fulfillment_order_id: str
    status: str
    """Amazon's FulfillmentOrderStatus: Received, Planning, Processing, Complete (shipped),
    CompletePartialled, Cancelled, Unfulfillable, Invalid, New."""
    shipping_speed: str
    received_at: datetime | None
    promised_arrival: datetime | None
    """The latest promised arrival; compare it in calendar days (``delivery_days``)."""
    packages: list[McfPackage]


class TrackingInfo(BaseModel):
    package_number: int
    carrier_code: str
    tracking_number: str
    current_status: str
    """Amazon's CurrentStatus: IN_TRANSIT, OUT_FOR_DELIVERY, DELIVERED, UNDELIVERABLE, DELAYED …"""
    estimated_arrival: datetime | None
    events: list[dict[str, Any]]
    """Oldest first: ``{"at": datetime, "code": "EVENT_301", "description", "city", "state", "country"}``."""


class McfReturnItem(BaseModel):
    seller_sku: str
    quantity: int = Field(default=1, ge=1)
    reason_code: str
    """One of ``return_reasons(seller_sku)``."""
    comment: str | None = Field(default=None, max_length=1000)


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

    def tracking(self, package_number: int) -> TrackingInfo: ...

    def return_reasons(self, seller_sku: str) -> list[str]: ...

    def create_return(self, seller_fulfillment_order_id: str, items: Sequence[McfReturnItem]) -> str:
        """The return authorization id (the RMA goes to the buyer)."""
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
        marketplace = SimpleNamespace(endpoint=self._endpoint, marketplace_id=settings.marketplace_id,
                                      region="us-west-2")
        self._client = FulfillmentOutbound(
            marketplace=marketplace,
            refresh_token=settings.spapi_refresh_token.get_secret_value(),
            credentials={
                "lwa_app_id": settings.lwa_client_id,
                "lwa_client_secret": settings.lwa_client_secret.get_secret_value(),
                "refresh_token": settings.spapi_refresh_token.get_secret_value(),
            },
            auth_token_client_class=self._token_class,
            timeout=30,
        )

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
        header = payload["fulfillmentOrder"]
        packages: list[McfPackage] = []
        arrivals: list[datetime] = []
        for shipment in payload.get("fulfillmentShipments") or []:
            shipped = shipment.get("fulfillmentShipmentStatus") == "SHIPPED"
            if shipment.get("fulfillmentShipmentStatus") not in ("CANCELLED_BY_FULFILLER", "CANCELLED_BY_SELLER"):
                arrivals += [t for t in [_parse_time(shipment.get("estimatedArrivalDate"))] if t]
            for package in shipment.get("fulfillmentShipmentPackage") or []:
                packages.append(McfPackage(
                    package_number=int(package["packageNumber"]),
                    carrier_code=str(package["carrierCode"]),
                    tracking_number=str(package.get("trackingNumber") or ""),
                    shipped_at=_parse_time(shipment.get("shippingDate")) if shipped else None,
                ))
                arrivals += [t for t in [_parse_time(package.get("estimatedArrivalDate"))] if t]
        for item in payload.get("fulfillmentOrderItems") or []:
            arrivals += [t for t in [_parse_time(item.get("estimatedArrivalDate"))] if t]
        return McfOrder(
            seller_fulfillment_order_id=header["sellerFulfillmentOrderId"],
            status=header["fulfillmentOrderStatus"],
            shipping_speed=header["shippingSpeedCategory"],
            received_at=_parse_time(header.get("receivedDate")),
            promised_arrival=max(arrivals) if arrivals else None,
            packages=packages,
        )

    def tracking(self, package_number: int) -> TrackingInfo:
        response = self._call("getPackageTrackingDetails", self._client.get_package_tracking_details,
                              packageNumber=package_number)
        details = self._payload(response, "getPackageTrackingDetails")
        events = []
        for event in details.get("trackingEvents") or []:
            where = event.get("eventAddress") or {}
            events.append({
                "at": _parse_time(event.get("eventDate")), "code": event.get("eventCode"),
                "description": event.get("eventDescription"), "city": where.get("city"),
                "state": where.get("state"), "country": where.get("country"),
            })
        events.sort(key=lambda e: e["at"] or datetime.min.replace(tzinfo=UTC))
        return TrackingInfo(
            package_number=int(details.get("packageNumber", package_number)),
            carrier_code=str(details.get("carrierCode") or ""),
            tracking_number=str(details.get("trackingNumber") or ""),
            current_status=str(details.get("currentStatus") or "UNKNOWN"),
            estimated_arrival=_parse_time(details.get("estimatedArrivalDate")),
            events=events,
        )

    def return_reasons(self, seller_sku: str) -> list[str]:
        response = self._call("listReturnReasonCodes", self._client.list_return_reason_codes,
                              sellerSku=seller_sku, marketplaceId=self.settings.marketplace_id, language="ja_JP")
        details = self._payload(response, "listReturnReasonCodes").get("reasonCodeDetails") or []
        return [str(d["returnReasonCode"]) for d in details]

    def create_return(self, seller_fulfillment_order_id: str, items: Sequence[McfReturnItem]) -> str:
        """One return authorization for ``items`` (each unit is one return item, identified as
        ``<order id>-<item id>-<n>``, so asking again for the same units finds the same return)."""
        sfo_id = seller_fulfillment_order_id
        payload = self._order_payload(sfo_id)
        if payload is None:
            raise SpApiError(f"Amazon has no MCF order {sfo_id}; there is nothing to return.", code="NotFound",
                             operation="createFulfillmentReturn", status=404)
        shipped_in: dict[str, str] = {}
        for shipment in payload.get("fulfillmentShipments") or []:
            if shipment.get("fulfillmentShipmentStatus") == "SHIPPED":
                for row in shipment.get("fulfillmentShipmentItem") or []:
                    shipped_in.setdefault(row["sellerFulfillmentOrderItemId"], shipment["amazonShipmentId"])
        return_items = []
        for wanted in items:
            lines = [i for i in payload.get("fulfillmentOrderItems") or [] if i["sellerSku"] == wanted.seller_sku]
            if not lines:
                raise ReturnRefused(f"MCF order {sfo_id} has no item {wanted.seller_sku}; nothing was returned.",
                                    code="InvalidValues")
            line = lines[0]
            shipment_id = shipped_in.get(line["sellerFulfillmentOrderItemId"])
            if shipment_id is None:
                raise ReturnRefused(f"MCF order {sfo_id} has not shipped {wanted.seller_sku} yet, so it cannot be "
                                    "returned; cancel the order instead, or wait until it has shipped.",
                                    code="NoCompletedShipItems")
            for n in range(1, wanted.quantity + 1):
                row = {
                    "sellerReturnItemId": f"{sfo_id}-{line['sellerFulfillmentOrderItemId']}-{n}"[:80],
                    "sellerFulfillmentOrderItemId": line["sellerFulfillmentOrderItemId"],
                    "amazonShipmentId": shipment_id,
                    "returnReasonCode": wanted.reason_code,
                }
                if wanted.comment:
                    row["returnComment"] = wanted.comment
                return_items.append(row)
        response = self._call("createFulfillmentReturn", self._client.create_fulfillment_return, sfo_id,
                              items=return_items)
        result = self._payload(response, "createFulfillmentReturn")
        authorizations = result.get("returnAuthorizations") or []
        if authorizations:
            return str(authorizations[0]["returnAuthorizationId"])
        invalid = result.get("invalidReturnItems") or []
        reasons = [i["invalidItemReason"]["invalidItemReasonCode"] for i in invalid]
        if reasons and all(r == "DuplicateRequest" for r in reasons):
            ours = {row["sellerReturnItemId"] for row in return_items}
            again = self._order_payload(sfo_id) or {}
            for item in again.get("returnItems") or []:
                if item.get("sellerReturnItemId") in ours and item.get("returnAuthorizationId"):
                    return str(item["returnAuthorizationId"])
        raise ReturnRefused(
            f"Amazon accepted no item of the return for MCF order {sfo_id}: "
            + "; ".join(f"{i['sellerReturnItemId']}: {i['invalidItemReason']['invalidItemReasonCode']} "
                        f"({i['invalidItemReason'].get('description', '')})" for i in invalid),
            code=reasons[0] if reasons else "InvalidValues",
        )

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

    def close(self) -> None:
        self._client.close()

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
