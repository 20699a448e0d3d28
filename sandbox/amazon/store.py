"""Amazon's data in the sandbox: FBA inventory, MCF fulfillment orders with their packages,
tracking and returns, Login with Amazon tokens, and the SP-API usage plans (quotas).

The HTTP API over it is sandbox/spapi.py; the admin knobs are at /admin/amazon/… (same module).

Time: an order's whole life is fixed when it is created (``Promise``) and read against the
virtual clock, so nothing has to run for time to pass. The one thing decided later is the package:
it is made when the order ships (``tick``), so that "the next shipped package" knobs (carrier,
lost parcel) apply to the package that actually ships next.

Quotas are the one thing on the wall clock: SP-API's token buckets refill in real seconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import random
import re
import secrets
import string
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sandbox.catalog import PHYSICAL_SKUS, PRODUCTS, REMOTE_PREFECTURES

if TYPE_CHECKING:
    from sandbox.world import World

from zoneinfo import ZoneInfo

JST = ZoneInfo("Asia/Tokyo")
MARKETPLACE_ID = "A1VC38T7YXB528"
"""Amazon.co.jp."""

SPEEDS = ("Standard", "Expedited", "Priority")
"""The shipping speeds MCF offers here (ScheduledDelivery is not offered for these items)."""
CARRIERS = ("JAPAN_POST", "YAMATO", "SAGAWA")

# --- the delivery promise, per speed -------------------------------------------------------
SHIP_AFTER = {"Standard": timedelta(hours=22), "Expedited": timedelta(hours=8), "Priority": timedelta(hours=4)}
"""How long after the order the package leaves the fulfillment center (FCs work every day)."""
ARRIVAL_DAYS = {"Standard": (2, 4), "Expedited": (1, 3), "Priority": (1, 2)}
"""Calendar days (JST) from the order date to the delivery date: (most prefectures, remote ones)."""
PLANNING_AFTER = timedelta(minutes=5)
PROCESSING_AFTER = timedelta(minutes=30)
FEE_PER_UNIT_YEN = {"Standard": 490, "Expedited": 590, "Priority": 690}
UNIT_WEIGHT_KG = 0.05

FC_ID, FC_CITY, FC_STATE = "NRT5", "川口市", "埼玉県"
"""The fulfillment center that ships every order here, and takes returns back."""
FC_RETURN_ADDRESS = {
    "name": "Amazon.co.jp 川口FC 返品受付",
    "addressLine1": "川口市領家5-14-35",
    "stateOrRegion": FC_STATE,
    "postalCode": "332-0004",
    "countryCode": "JP",
}

CARRIER_CONTACTS = {
    "JAPAN_POST": ("https://www.post.japanpost.jp/", "0570-046-666"),
    "YAMATO": ("https://www.kuronekoyamato.co.jp/", "0120-01-9625"),
    "SAGAWA": ("https://www.sagawa-exp.co.jp/", "0120-18-9595"),
}

RETURN_REASONS: dict[str, tuple[str, str]] = {
    "CR-UNWANTED_ITEM": ("No longer needed/wanted", "不要になった"),
    "CR-DEFECTIVE": ("Item defective or doesn't work", "商品の不具合・故障"),
    "CR-DAMAGED_BY_CARRIER": ("Product and shipping box both damaged", "配送中の破損（外箱も破損）"),
    "CR-ORDERED_WRONG_ITEM": ("Bought by mistake", "誤って購入した"),
    "CR-NOT_COMPATIBLE": ("Incompatible or not useful for intended purpose", "互換性がない・目的に合わない"),
    "CR-MISSING_PARTS": ("Missing parts or accessories", "部品・付属品の不足"),
    "CR-SWITCHEROO": ("Inaccurate website description", "商品説明と異なる"),
}

# --- SP-API usage plans (rate per second, burst), from the API models --------------------
OUTBOUND_OPERATIONS = (
    "getFulfillmentPreview", "createFulfillmentOrder", "getFulfillmentOrder", "listAllFulfillmentOrders",
    "getPackageTrackingDetails", "listReturnReasonCodes", "createFulfillmentReturn", "cancelFulfillmentOrder",
)
DEFAULT_PLANS: dict[str, tuple[float, int]] = {
    **{op: (2.0, 30) for op in OUTBOUND_OPERATIONS},
    "getInventorySummaries": (2.0, 2),
}

# --- Login with Amazon ----------------------------------------------------------------------
TOKEN_LIFETIME_SECONDS = 3600
_TOKEN_KEY = secrets.token_bytes(32)
"""LWA's signing key. It outlives a world reset, as a real access token outlives a sandbox reset."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_access_token(client_id: str, issued_at: float) -> str:
    body = _b64(json.dumps({"c": client_id, "i": issued_at, "e": issued_at + TOKEN_LIFETIME_SECONDS}).encode())
    sig = hmac.new(_TOKEN_KEY, body.encode(), hashlib.sha256).hexdigest()[:40]
    return f"Atza|{body}.{sig}"


def read_access_token(token: str) -> dict[str, Any] | None:
    """The token's claims when LWA signed it, else None (expiry is the caller's to check)."""
    if not token.startswith("Atza|") or "." not in token:
        return None
    body, _, sig = token[5:].rpartition(".")
    expected = hmac.new(_TOKEN_KEY, body.encode(), hashlib.sha256).hexdigest()[:40]
    if not hmac.compare_digest(sig, expected):
        return None
    try:
        claims: dict[str, Any] = json.loads(_unb64(body))
    except (ValueError, json.JSONDecodeError):
        return None
    return claims


# --- dates ----------------------------------------------------------------------------------
def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _jst_at(day: datetime, hour: int, minute: int = 0) -> datetime:
    local = day.astimezone(JST)
    return local.replace(hour=hour, minute=minute, second=0, microsecond=0).astimezone(UTC)


def is_remote(address: dict[str, Any]) -> bool:
    """Okinawa and Hokkaido (by prefecture, else by postal code) get the slow promise."""
    state = str(address.get("stateOrRegion") or "")
    if state:
        return state in REMOTE_PREFECTURES or state.rstrip("県道").lower() in {"沖縄", "北海", "okinawa", "hokkaido"}
    postal = re.sub(r"\D", "", str(address.get("postalCode") or ""))
    return postal.startswith("90") or postal[:2] in {"00", "04", "05", "06", "07", "08", "09"}


def destination_city(address: dict[str, Any]) -> str:
    """In Japan the city lives in addressLine1 (SP-API: `city` is not used in Japan)."""
    if address.get("city"):
        return str(address["city"])
    line = str(address.get("addressLine1") or "")
    found = re.match(r"^(.+?[市区町村])", line)
    return found.group(1) if found else str(address.get("stateOrRegion") or "")


@dataclass(frozen=True)
class Promise:
    """When an order placed at ``placed`` with ``speed`` ships and arrives."""

    placed: datetime
    speed: str
    remote: bool
    ship_at: datetime
    earliest_arrival: datetime
    latest_arrival: datetime
    delivery_at: datetime
    """When the carrier actually delivers (within the promised window)."""


def promise(placed: datetime, speed: str, remote: bool) -> Promise:
    ship_at = placed + SHIP_AFTER[speed]
    days = ARRIVAL_DAYS[speed][1 if remote else 0]
    arrival_day = placed.astimezone(JST) + timedelta(days=days)
    earliest, latest = _jst_at(arrival_day, 8), _jst_at(arrival_day, 21)
    delivery = max(_jst_at(arrival_day, 14), ship_at + timedelta(hours=5))
    return Promise(placed, speed, remote, ship_at, earliest, latest, min(delivery, latest))


# --- what Amazon keeps ----------------------------------------------------------------------
@dataclass
class Line:
    sku: str
    item_id: str
    quantity: int
    cancelled: int = 0


@dataclass
class Package:
    number: int
    carrier: str
    tracking_number: str
    amazon_tracking_number: str
    shipped_at: datetime
    lost_at: datetime | None = None
    """A lost parcel's tracking stops here and never reaches DELIVERED."""


@dataclass
class ReturnItem:
    return_item_id: str
    item_id: str
    shipment_id: str
    reason: str
    comment: str | None
    authorization_id: str
    created_at: datetime
    status: str = "New"
    status_changed: datetime | None = None
    condition: str | None = None


@dataclass
class ReturnAuthorization:
    authorization_id: str
    rma_id: str
    created_at: datetime


@dataclass
class FulfillmentOrder:
    seller_id: str
    displayable_id: str
    displayable_date: str
    comment: str
    speed: str
    address: dict[str, Any]
    lines: list[Line]
    received_at: datetime
    promise: Promise
    shipment_id: str
    action: str = "Ship"
    policy: str = "FillOrKill"
    notification_emails: list[str] = field(default_factory=list)
    cancelled_at: datetime | None = None
    package: Package | None = None
    returns: list[ReturnItem] = field(default_factory=list)
    authorizations: list[ReturnAuthorization] = field(default_factory=list)
    lose_parcel: bool = False
    reported_status: str | None = None
    """Admin knob: the status Amazon reports instead of the computed one (e.g. a value the robot
    has no rule for)."""

    def status(self, now: datetime) -> str:
        if self.reported_status:
            return self.reported_status
        if self.cancelled_at is not None:
            return "Cancelled"
        if self.package is not None:
            return "Complete"
        age = now - self.received_at
        if self.action == "Hold":
            return "Received" if age < PLANNING_AFTER else "Planning"
        if now >= self.promise.ship_at:
            return "Complete"  # shipping now; the package is made at the next tick
        if age >= PROCESSING_AFTER:
            return "Processing"
        if age >= PLANNING_AFTER:
            return "Planning"
        return "Received"

    def status_updated(self, now: datetime) -> datetime:
        if self.cancelled_at is not None:
            return self.cancelled_at
        if self.package is not None:
            return self.package.shipped_at
        steps = [self.received_at, self.received_at + PLANNING_AFTER]
        if self.action != "Hold":
            steps += [self.received_at + PROCESSING_AFTER, self.promise.ship_at]
        return max(s for s in steps if s <= now)

    def units(self, sku: str | None = None) -> int:
        return sum(line.quantity - line.cancelled for line in self.lines if sku is None or line.sku == sku)


@dataclass
class TokenBucket:
    """SP-API's usage plan: ``rate`` tokens a second, at most ``burst`` saved (wall clock)."""

    rate: float
    burst: int
    tokens: float = -1.0
    stamp: float = 0.0

    def take(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if self.tokens < 0:
            self.tokens, self.stamp = float(self.burst), now
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class AmazonStore:
    def __init__(self, world: World) -> None:
        self.world = world
        self.rng = random.Random(f"amazon-{world.seed}")
        self.fba_stock: dict[str, int] = {}
        self.stock_updated: dict[str, datetime] = {}
        self.orders: dict[str, FulfillmentOrder] = {}
        self._package_numbers = itertools.count(self.rng.randrange(100_000_000, 200_000_000))
        self._authorization_ids = itertools.count(self.rng.randrange(10_000_000, 20_000_000))
        # knobs (admin API)
        self.lost_skus: set[str] = set()
        self.lose_next = 0
        self.forced_carriers: deque[str] = deque()
        self.forced_tracking: deque[str] = deque()
        """Tracking numbers the next packages get instead of generated ones (admin knob)."""
        self.plans: dict[str, tuple[float, int]] = dict(DEFAULT_PLANS)
        self.buckets: dict[str, TokenBucket] = {}
        self.tokens_valid_after = 0.0
        """Wall-clock time before which issued access tokens are no longer accepted."""

    # --- time ------------------------------------------------------------------------------
    def tick(self, now: datetime) -> None:
        """Ship every order that is due by ``now``, in the order they ship."""
        due = sorted(
            (o for o in self.orders.values()
             if o.package is None and o.cancelled_at is None and o.action == "Ship" and o.promise.ship_at <= now),
            key=lambda o: o.promise.ship_at,  # stable: ties ship in the order they were created
        )
        for order in due:
            self._ship(order)

    def _ship(self, order: FulfillmentOrder) -> None:
        shipped_at = order.promise.ship_at
        carrier = self.forced_carriers.popleft() if self.forced_carriers else self.rng.choice(CARRIERS)
        lost = order.lose_parcel or any(line.sku in self.lost_skus for line in order.lines)
        if self.lose_next > 0:
            self.lose_next -= 1
            lost = True
        order.package = Package(
            number=next(self._package_numbers),
            carrier=carrier,
            tracking_number=self.forced_tracking.popleft() if self.forced_tracking else self._tracking_number(),
            amazon_tracking_number="TBA" + "".join(self.rng.choices(string.digits, k=12)),
            shipped_at=shipped_at,
            lost_at=shipped_at + timedelta(hours=3) if lost else None,
        )
        self.world.record("amazon", "package_shipped", seller_fulfillment_order_id=order.seller_id,
                          package_number=order.package.number, carrier=carrier,
                          tracking_number=order.package.tracking_number, lost=lost)

    def _tracking_number(self) -> str:
        """Twelve digits, the last a mod-7 check digit (as Yamato, Sagawa and Japan Post use)."""
        body = self.rng.randrange(10**10, 10**11)
        return f"{body:011d}{body % 7}"

    # --- inventory -------------------------------------------------------------------------
    def known_sku(self, sku: str) -> bool:
        return sku in self.fba_stock or sku in PHYSICAL_SKUS

    def set_stock(self, stock: dict[str, int]) -> None:
        now = self.world.now()
        for sku, quantity in stock.items():
            self.fba_stock[sku] = quantity
            self.stock_updated[sku] = now

    def reserved(self, sku: str) -> int:
        now = self.world.now()
        return sum(o.units(sku) for o in self.orders.values()
                   if o.status(now) in ("Received", "Planning", "Processing"))

    def _take_stock(self, sku: str, quantity: int) -> None:
        self.fba_stock[sku] = self.fba_stock.get(sku, 0) - quantity
        self.stock_updated[sku] = self.world.now()

    # --- orders ------------------------------------------------------------------------------
    def create_order(self, *, seller_id: str, displayable_id: str, displayable_date: str, comment: str,
                     speed: str, address: dict[str, Any], lines: list[Line], action: str, policy: str,
                     notification_emails: list[str]) -> FulfillmentOrder:
        now = self.world.now()
        order = FulfillmentOrder(
            seller_id=seller_id, displayable_id=displayable_id, displayable_date=displayable_date,
            comment=comment, speed=speed, address=address, lines=lines, received_at=now,
            promise=promise(now, speed, is_remote(address)),
            shipment_id="D" + "".join(self.rng.choices(string.ascii_letters + string.digits, k=8)),
            action=action, policy=policy, notification_emails=notification_emails,
        )
        for line in lines:
            self._take_stock(line.sku, line.quantity)
        self.orders[seller_id] = order
        self.world.record("amazon", "fulfillment_order_created", seller_fulfillment_order_id=seller_id,
                          items={line.sku: line.quantity for line in lines}, speed=speed)
        return order

    def cancel_order(self, order: FulfillmentOrder) -> None:
        order.cancelled_at = self.world.now()
        for line in order.lines:
            self._take_stock(line.sku, -(line.quantity - line.cancelled))
            line.cancelled = line.quantity
        self.world.record("amazon", "fulfillment_order_cancelled", seller_fulfillment_order_id=order.seller_id)

    def package(self, number: int) -> tuple[FulfillmentOrder, Package] | None:
        for order in self.orders.values():
            if order.package is not None and order.package.number == number:
                return order, order.package
        return None

    def lose(self, order: FulfillmentOrder) -> None:
        """This order's parcel gets lost (now, if it is already on its way)."""
        order.lose_parcel = True
        package = order.package
        if package is not None and package.lost_at is None:
            package.lost_at = max(self.world.now(), package.shipped_at + timedelta(hours=3))

    # --- tracking ------------------------------------------------------------------------------
    def tracking_events(self, order: FulfillmentOrder, package: Package) -> list[dict[str, Any]]:
        """The carrier's scans up to now (oldest first)."""
        now = self.world.now()
        p = order.promise
        dest = {"city": destination_city(order.address)[:150], "state": str(order.address.get("stateOrRegion")
                or destination_city(order.address))[:150], "country": "JP"}
        origin = {"city": FC_CITY, "state": FC_STATE, "country": "JP"}
        events: list[tuple[datetime, str, str, dict[str, str]]] = [
            (package.shipped_at, "EVENT_102", "Shipment picked up from seller's facility.", origin),
            (package.shipped_at + timedelta(hours=2), "EVENT_202", "Departure scan.", origin),
        ]
        if p.remote:
            hub_at = package.shipped_at + timedelta(hours=20)
            events += [(hub_at, "EVENT_201", "Arrival scan.", dest), (hub_at + timedelta(hours=3), "EVENT_202",
                                                                       "Departure scan.", dest)]
        arrive = max(_jst_at(p.delivery_at, 7), events[-1][0] + timedelta(hours=1))
        out = max(_jst_at(p.delivery_at, 8, 30), arrive + timedelta(minutes=30))
        events += [
            (arrive, "EVENT_201", "Arrival scan.", dest),
            (out, "EVENT_302", "Out for delivery.", dest),
            (max(p.delivery_at, out + timedelta(hours=1)), "EVENT_301", "Delivered.", dest),
        ]
        cutoff = now if package.lost_at is None else min(now, package.lost_at)
        return [
            {"eventDate": iso(at), "eventAddress": where, "eventCode": code, "eventDescription": text}
            for at, code, text, where in events if at <= cutoff
        ]

    @staticmethod
    def tracking_status(events: list[dict[str, Any]]) -> str:
        if not events:
            return "UNKNOWN"
        return {"EVENT_301": "DELIVERED", "EVENT_302": "OUT_FOR_DELIVERY"}.get(events[-1]["eventCode"], "IN_TRANSIT")

    # --- returns ------------------------------------------------------------------------------
    def new_authorization(self, order: FulfillmentOrder) -> ReturnAuthorization:
        auth = ReturnAuthorization(
            authorization_id=str(next(self._authorization_ids)),
            rma_id="D" + "".join(self.rng.choices(string.ascii_letters + string.digits, k=9)) + "RMA",
            created_at=self.world.now(),
        )
        order.authorizations.append(auth)
        return auth

    def receive_return(self, authorization_id: str, condition: str) -> list[ReturnItem]:
        """The buyer's parcel reached the FC: its items are processed (sellable ones restocked)."""
        received: list[ReturnItem] = []
        for order in self.orders.values():
            for item in order.returns:
                if item.authorization_id == authorization_id and item.status == "New":
                    item.status, item.status_changed, item.condition = "Processed", self.world.now(), condition
                    received.append(item)
                    line = next(line for line in order.lines if line.item_id == item.item_id)
                    if condition == "Sellable":
                        self._take_stock(line.sku, -1)
        return received

    # --- quotas ------------------------------------------------------------------------------
    def plan(self, operation: str) -> tuple[float, int]:
        return self.plans.get(operation, (2.0, 30))

    def take_quota(self, operation: str) -> bool:
        bucket = self.buckets.get(operation)
        if bucket is None:
            rate, burst = self.plan(operation)
            bucket = self.buckets[operation] = TokenBucket(rate, burst)
        return bucket.take()

    def set_plan(self, operation: str | None, rate: float, burst: int) -> None:
        for op in ([operation] if operation else list(self.plans)):
            self.plans[op] = (rate, burst)
            self.buckets.pop(op, None)

    # --- reading it all ------------------------------------------------------------------------
    def order_view(self, order: FulfillmentOrder) -> dict[str, Any]:
        now = self.world.now()
        package = order.package
        packages = []
        if package is not None:
            events = self.tracking_events(order, package)
            packages.append({
                "package_number": package.number, "carrier_code": package.carrier,
                "tracking_number": package.tracking_number, "shipped_at": package.shipped_at.isoformat(),
                "lost": package.lost_at is not None, "tracking_status": self.tracking_status(events),
            })
        return {
            "seller_fulfillment_order_id": order.seller_id,
            "displayable_order_id": order.displayable_id,
            "status": order.status(now),
            "shipping_speed": order.speed,
            "received_at": order.received_at.isoformat(),
            "ship_at": order.promise.ship_at.isoformat(),
            "promised_arrival": order.promise.latest_arrival.isoformat(),
            "remote": order.promise.remote,
            "items": [{"sku": line.sku, "quantity": line.quantity, "cancelled": line.cancelled}
                      for line in order.lines],
            "packages": packages,
            "returns": [{"return_item_id": r.return_item_id, "reason": r.reason, "status": r.status,
                         "authorization_id": r.authorization_id} for r in order.returns],
        }

    def snapshot(self) -> dict[str, Any]:
        self.tick(self.world.now())
        return {
            "fba_stock": dict(self.fba_stock),
            "fulfillment_orders": [self.order_view(o) for o in self.orders.values()],
            "knobs": {
                "lost_skus": sorted(self.lost_skus),
                "lose_next": self.lose_next,
                "forced_carriers": list(self.forced_carriers),
                "plans": {op: {"rate": r, "burst": b} for op, (r, b) in self.plans.items()},
            },
        }


def product_name(sku: str) -> str:
    product = PRODUCTS.get(sku)
    return product.name if product else sku


def asin_for(sku: str) -> str:
    digest = hashlib.sha1(sku.encode()).hexdigest().upper()  # an id, not security
    return "B0" + digest[:8]


def fnsku_for(sku: str) -> str:
    digest = hashlib.sha1(("fn" + sku).encode()).hexdigest().upper()
    return "X00" + digest[:7]
