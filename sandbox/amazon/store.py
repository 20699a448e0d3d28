"""Amazon's data in the sandbox: FBA inventory, MCF fulfillment orders with their shipments and
packages, per-package tracking, returns, reimbursements (and the report that lists them), Login with
Amazon tokens, and the SP-API usage plans (quotas).

The HTTP API over it is sandbox/spapi.py; the admin knobs are at /admin/amazon/… (same module).

Time: an order's whole life is fixed when it is created (``Promise`` and its ``OrderPlan``: which
shipments leave when, in which packages, and each package's fate) and read against the virtual
clock, so nothing has to run for time to pass. The one thing decided later is the package: it is
made when its shipment ships (``tick``), so that "the next shipped package" knobs (carrier, lost
parcel) apply to the package that actually ships next. A plan can be set for an order before it
exists (by id, or for the next order created) and changed until its first shipment leaves.

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

from pydantic import BaseModel, Field

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
    "CR-DAMAGED_BY_FC": ("Product damaged, shipping box OK", "商品の破損（外箱は無事）"),
    "CR-ORDERED_WRONG_ITEM": ("Bought by mistake", "誤って購入した"),
    "CR-NOT_COMPATIBLE": ("Incompatible or not useful for intended purpose", "互換性がない・目的に合わない"),
    "CR-MISSING_PARTS": ("Missing parts or accessories", "部品・付属品の不足"),
    "CR-SWITCHEROO": ("Inaccurate website description", "商品説明と異なる"),
    "CR-MISSED_ESTIMATED_DELIVERY": ("Item arrived too late", "お届け予定日を過ぎて届いた"),
}
SKU_RETURN_REASONS: dict[str, tuple[str, ...]] = {
    "SIM-DATA-30D-20GB": ("CR-UNWANTED_ITEM", "CR-DEFECTIVE", "CR-DAMAGED_BY_CARRIER", "CR-DAMAGED_BY_FC",
                          "CR-ORDERED_WRONG_ITEM", "CR-MISSED_ESTIMATED_DELIVERY"),
    "SIM-DATA-90D-50GB": ("CR-UNWANTED_ITEM", "CR-DEFECTIVE", "CR-DAMAGED_BY_CARRIER", "CR-MISSING_PARTS",
                          "CR-SWITCHEROO"),
    "SIM-VOICE-30D": ("CR-DEFECTIVE", "CR-NOT_COMPATIBLE", "CR-DAMAGED_BY_CARRIER", "CR-SWITCHEROO"),
}
"""The reason codes Amazon offers per SKU (they differ per SKU and marketplace); other SKUs get all."""


def return_reasons_for(sku: str) -> tuple[str, ...]:
    return SKU_RETURN_REASONS.get(sku, tuple(RETURN_REASONS))


# --- SP-API usage plans (rate per second, burst), from the API models --------------------
OUTBOUND_OPERATIONS = (
    "getFulfillmentPreview", "createFulfillmentOrder", "getFulfillmentOrder", "listAllFulfillmentOrders",
    "getPackageTrackingDetails", "listReturnReasonCodes", "createFulfillmentReturn", "cancelFulfillmentOrder",
)
REPORT_PLANS: dict[str, tuple[float, int]] = {
    "createReport": (0.0167, 15), "getReport": (2.0, 15), "getReportDocument": (0.0167, 15),
    "getReports": (0.0222, 10),
}
"""Reports API 2021-06-30 usage plans."""
DEFAULT_PLANS: dict[str, tuple[float, int]] = {
    **{op: (2.0, 30) for op in OUTBOUND_OPERATIONS},
    "getInventorySummaries": (2.0, 2),
    **REPORT_PLANS,
}
REIMBURSEMENT_REPORT = "GET_FBA_REIMBURSEMENTS_DATA"
REIMBURSEMENT_COLUMNS = (
    "approval-date", "reimbursement-id", "case-id", "amazon-order-id", "reason", "sku", "fnsku", "asin",
    "product-name", "condition", "currency-unit", "amount-per-unit", "amount-total", "quantity-reimbursed-cash",
    "quantity-reimbursed-inventory", "quantity-reimbursed-total", "original-reimbursement-id",
    "original-reimbursement-type",
)
"""GET_FBA_REIMBURSEMENTS_DATA's columns (developer-docs fba-payments-reports-attributes)."""
MCF_DEFAULT_SKU = "SIM-DATA-30D-20GB"

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
FATES = ("delivered", "late", "lost", "lost_by_carrier", "damaged", "undeliverable", "undeliverable_returned",
         "delivered_only", "unknown")
"""What happens to a package on its way (an order's plan, or one package's):

- delivered: scans, out for delivery, EVENT_301 on the estimated day (the default);
- late: EVENT_418 (delayed) on the estimated day, delivered ``deliver_after_days`` after it;
- lost: the scans stop in transit and nothing more ever comes (IN_TRANSIT for ever);
- lost_by_carrier: EVENT_409 on the estimated day, currentStatus UNDELIVERABLE;
- damaged: EVENT_405 in transit, then delivered (damaged) on the estimated day;
- undeliverable: EVENT_416 on the estimated day, currentStatus UNDELIVERABLE, nothing more;
- undeliverable_returned: as undeliverable, then EVENT_408 RETURNING the next day and EVENT_309
  RETURNED three days later (the units are back in FBA stock);
- delivered_only: a carrier that reports only EVENT_301 (no events before it; currentStatus UNKNOWN);
- unknown: an event code and a currentStatus the model does not list (EVENT_444, FORWARDED).
"""
RETURN_CONDITIONS = ("Sellable", "Defective", "CustomerDamaged", "CarrierDamaged", "FulfillerDamaged")


class PackagePlan(BaseModel):
    skus: dict[str, int] | None = Field(default=None, description="units in this package; none: every unit no other "
                                                            "package carries")
    carrier: str | None = Field(default=None, description="its carrierCode (any text)")
    tracking_number: str | None = None
    fate: str | None = Field(default=None, description="this package's fate; none: the order's")


class ShipmentPlan(BaseModel):
    after_hours: float | None = Field(default=None, ge=0, description="leaves the FC this long after the order; none: "
                                                                "as the shipping speed promises")
    packages: list[PackagePlan] = Field(default_factory=lambda: [PackagePlan()], min_length=1)
    cancelled: bool = Field(default=False, description="the FC cancels it at its time (CANCELLED_BY_FULFILLER); its "
                                               "units become unfulfillable")
    edd_follows: bool = Field(default=True, description="a later departure moves its estimated arrival as much; "
                                                        "false: it keeps the order's promise (not shipped by the EDD)")


class OrderPlan(BaseModel):
    """An order's fate, scripted (admin knob). The default plan is one shipment, one package, delivered."""

    shipments: list[ShipmentPlan] = Field(default_factory=lambda: [ShipmentPlan()], min_length=1)
    fate: str = "delivered"
    deliver_after_days: float = Field(default=3, description="late: delivered this many days after the estimated date")
    edd_shift_days: float = Field(default=0, description="once the first shipment has left, Amazon moves every "
                                                 "estimatedArrivalDate by this many days")
    outcome: str | None = Field(default=None, pattern="^(Unfulfillable|Invalid)$",
                                description="the order turns Unfulfillable/Invalid after creation; nothing ships")
    outcome_after_hours: float = Field(default=2, ge=0)
    unfulfillable: dict[str, int] = Field(default_factory=dict, description="units per SKU the FC cannot ship "
                                                                            "(the order ends CompletePartialled)")
    cancelled: dict[str, int] = Field(default_factory=dict, description="units per SKU Amazon cancels")
    return_condition: str | None = Field(default=None, pattern="^(Sellable|Defective|CustomerDamaged|CarrierDamaged|"
                                                       "FulfillerDamaged)$",
                                         description="returns of this order are Processed in this condition")
    return_after_days: float = Field(default=4, ge=0, description="… this many days after the return was authorized")

    def check(self) -> None:
        fates = [self.fate] + [p.fate for s in self.shipments for p in s.packages if p.fate]
        unknown = [f for f in fates if f not in FATES]
        if unknown:
            raise ValueError(f"unknown fate {unknown[0]!r}; one of {', '.join(FATES)}")


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
    units: list[tuple[str, str, int]]
    """(sellerFulfillmentOrderItemId, sellerSku, quantity)."""
    fate: str | None = None
    lost_at: datetime | None = None
    """A lost parcel's tracking stops here and never reaches DELIVERED."""
    injected: list[tuple[datetime, str, str, str | None]] = field(default_factory=list)
    """Events an admin added: (at, eventCode, description, currentStatus or None)."""
    restocked: bool = False


@dataclass
class Shipment:
    shipment_id: str
    ship_at: datetime
    edd_base: datetime
    plan: ShipmentPlan
    contents: list[list[tuple[str, str, int]]]
    """Per planned package: (item id, sku, quantity)."""
    packages: list[Package] = field(default_factory=list)
    shipped: bool = False

    def units(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for box in self.contents:
            for item_id, _, q in box:
                out[item_id] = out.get(item_id, 0) + q
        return out


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
    plan: OrderPlan = field(default_factory=lambda: OrderPlan())
    shipments: list[Shipment] = field(default_factory=list)
    action: str = "Ship"
    policy: str = "FillOrKill"
    notification_emails: list[str] = field(default_factory=list)
    cancelled_at: datetime | None = None
    returns: list[ReturnItem] = field(default_factory=list)
    authorizations: list[ReturnAuthorization] = field(default_factory=list)
    lose_parcel: bool = False
    edd_shifts: list[tuple[datetime, timedelta]] = field(default_factory=list)
    """Moves of the estimated arrival an admin made: (from when, by how much)."""
    reported_status: str | None = None
    """Admin knob: the status Amazon reports instead of the computed one (e.g. a value the robot
    has no rule for)."""

    @property
    def shipment_id(self) -> str:
        return self.shipments[0].shipment_id

    @property
    def packages(self) -> list[Package]:
        return [p for s in self.shipments for p in s.packages]

    def outcome_at(self) -> datetime | None:
        if self.plan.outcome is None:
            return None
        return self.received_at + timedelta(hours=self.plan.outcome_after_hours)

    def live_shipments(self, now: datetime) -> list[Shipment]:
        """The shipments that ship (or shipped): not cancelled, not stopped by an outcome."""
        stop = self.outcome_at()
        return [s for s in self.shipments if not s.plan.cancelled and (stop is None or s.ship_at < stop or s.shipped)]

    def status(self, now: datetime) -> str:
        if self.reported_status:
            return self.reported_status
        if self.cancelled_at is not None:
            return "Cancelled"
        stop = self.outcome_at()
        if stop is not None and now >= stop and not any(s.shipped for s in self.shipments):
            return str(self.plan.outcome)
        age = now - self.received_at
        if self.action == "Hold":
            return "Received" if age < PLANNING_AFTER else "Planning"
        if self.shipments and all(s.ship_at <= now for s in self.shipments):
            if not any(not s.plan.cancelled for s in self.shipments):
                return "Unfulfillable"
            partial = any(s.plan.cancelled for s in self.shipments) or any(
                self.held_back(line, now) for line in self.lines)
            return "CompletePartialled" if partial else "Complete"
        if age >= PROCESSING_AFTER:
            return "Processing"
        if age >= PLANNING_AFTER:
            return "Planning"
        return "Received"

    def held_back(self, line: Line, now: datetime) -> int:
        """Units of ``line`` Amazon will not ship by the plan (cancelled or unfulfillable)."""
        return self.plan.unfulfillable.get(line.sku, 0) + self.plan.cancelled.get(line.sku, 0)

    def quantities(self, line: Line, now: datetime) -> tuple[int, int]:
        """(cancelledQuantity, unfulfillableQuantity) as Amazon reports them now."""
        cancelled, unfulfillable = line.cancelled, 0
        if self.cancelled_at is not None:
            return cancelled, 0
        if now - self.received_at >= PROCESSING_AFTER:
            cancelled += min(self.plan.cancelled.get(line.sku, 0), line.quantity - cancelled)
            unfulfillable += self.plan.unfulfillable.get(line.sku, 0)
        stop = self.outcome_at()
        if stop is not None and now >= stop and self.status(now) == self.plan.outcome:
            return cancelled, line.quantity - cancelled
        for shipment in self.shipments:
            if shipment.plan.cancelled and shipment.ship_at <= now:
                unfulfillable += shipment.units().get(line.item_id, 0)
        return cancelled, min(unfulfillable, line.quantity - cancelled)

    def edd_shift(self, now: datetime) -> timedelta:
        shift = sum((d for at, d in self.edd_shifts if at <= now), timedelta(0))
        first = min((s.ship_at for s in self.shipments if not s.plan.cancelled), default=None)
        if self.plan.edd_shift_days and first is not None and now >= first:
            shift += timedelta(days=self.plan.edd_shift_days)
        return shift

    def shipment_edd(self, shipment: Shipment, now: datetime) -> datetime:
        return shipment.edd_base + self.edd_shift(now)

    def status_updated(self, now: datetime) -> datetime:
        if self.cancelled_at is not None:
            return self.cancelled_at
        steps = [self.received_at, self.received_at + PLANNING_AFTER]
        if self.action != "Hold":
            steps += [self.received_at + PROCESSING_AFTER] + [s.ship_at for s in self.shipments]
        stop = self.outcome_at()
        if stop is not None:
            steps.append(stop)
        return max(s for s in steps if s <= now)

    def units(self, sku: str | None = None) -> int:
        return sum(line.quantity - line.cancelled for line in self.lines if sku is None or line.sku == sku)


CASE_ANSWERS = ("pay", "refuse", "ask_more", "silent")


@dataclass
class Case:
    """A Seller Central case a person filed (no API files one): Amazon answers it on the clock."""

    case_id: str
    kind: str
    """lost | damaged."""
    order_id: str | None
    sku: str | None
    quantity: int
    text: str
    filed_at: datetime
    answer: str = "pay"
    """What Amazon will do: pay (a reimbursement row with this case id), refuse, ask_more, silent."""
    answer_after_days: float = 3.0
    amount: int | None = None
    answered_at: datetime | None = None
    language: str = "en"
    """The language of Amazon's mails about it (en | ja)."""
    phrasing: int = 0
    """Which of the sandbox's phrasings Amazon's mails use (sandbox/amazon/case_mail.py)."""
    forward: str = "auto"
    """How its mails reach the claims address: auto (the seller's mailbox forwards them), agent (an
    agent forwards them by hand), none (no mail: the reimbursements report alone tells)."""
    mails: int = 0
    again_after_days: float | None = None
    """Amazon writes about the case once more this long after answering it (a reply to a closed case)."""
    again_sent: bool = False

    @property
    def due(self) -> datetime:
        return self.filed_at + timedelta(days=self.answer_after_days)


@dataclass
class Report:
    """A report asked for with createReport. It is IN_QUEUE when created, IN_PROGRESS at the first
    getReport and DONE at the second (on no clock, so a poller needs no time to pass)."""

    report_id: str
    report_type: str
    created: datetime
    start: datetime
    end: datetime
    polls: int = 0

    @property
    def status(self) -> str:
        return ("IN_QUEUE", "IN_PROGRESS")[self.polls] if self.polls < 2 else "DONE"

    @property
    def document_id(self) -> str:
        return f"amzn1.spdoc.1.4.fe.{self.report_id}.T{self.created.strftime('%Y%m%d%H%M%S')}"


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
        self.next_order_plans: deque[OrderPlan] = deque()
        """Plans the next created orders take, in turn (admin knob)."""
        self.pending_plans: dict[str, OrderPlan] = {}
        """Plans for orders not created yet, by sellerFulfillmentOrderId (admin knob)."""
        self.reimbursements: list[dict[str, str]] = []
        self.cases: dict[str, Case] = {}
        self.reports: dict[str, Report] = {}
        self._report_ids = itertools.count(self.rng.randrange(50_000_000_000, 60_000_000_000))
        self.plans: dict[str, tuple[float, int]] = dict(DEFAULT_PLANS)
        self.buckets: dict[str, TokenBucket] = {}
        self.tokens_valid_after = 0.0
        """Wall-clock time before which issued access tokens are no longer accepted."""

    # --- time ------------------------------------------------------------------------------
    def tick(self, now: datetime) -> None:
        """Ship every shipment that is due by ``now`` (in the order they ship), process returns
        whose time has come, put parcels that came back into stock."""
        due = sorted(
            ((o, s) for o in self.orders.values() if o.cancelled_at is None and o.action == "Ship"
             for s in o.live_shipments(now) if not s.shipped and s.ship_at <= now),
            key=lambda pair: pair[1].ship_at,  # stable: ties ship in the order they were created
        )
        for order, shipment in due:
            if order.reported_status is None and order.status(shipment.ship_at) in ("Unfulfillable", "Invalid"):
                continue
            self._ship(order, shipment)
        for order in self.orders.values():
            for package in order.packages:
                if not package.restocked and self.package_fate(order, package) == "undeliverable_returned":
                    events = self.tracking_events(order, package, now)
                    if events and events[-1]["eventCode"] == "EVENT_309":
                        package.restocked = True
                        for _, sku, q in package.units:
                            self._take_stock(sku, -q)
                        self.world.record("amazon", "package_returned_to_fc", package_number=package.number,
                                          seller_fulfillment_order_id=order.seller_id)
            condition = order.plan.return_condition
            if condition:
                for item in order.returns:
                    if item.status == "New" and item.created_at + timedelta(days=order.plan.return_after_days) <= now:
                        self._process_return(order, item, condition)
        for case in self.cases.values():
            if case.answered_at is None and case.answer != "silent" and case.due <= now:
                self.answer_case(case, case.answer, at=case.due)
            if (case.answered_at is not None and case.again_after_days is not None and not case.again_sent
                    and case.answered_at + timedelta(days=case.again_after_days) <= now):
                case.again_sent = True
                self.mail_case(case, case.answer, case.amount)

    def _ship(self, order: FulfillmentOrder, shipment: Shipment) -> None:
        shipment.shipped = True
        for box, planned in zip(shipment.contents, shipment.plan.packages, strict=True):
            if not box:
                continue
            carrier = planned.carrier or (self.forced_carriers.popleft() if self.forced_carriers
                                          else self.rng.choice(CARRIERS))
            tracking = planned.tracking_number or (self.forced_tracking.popleft() if self.forced_tracking
                                                   else self._tracking_number())
            lost = order.lose_parcel or any(sku in self.lost_skus for _, sku, _ in box)
            if self.lose_next > 0:
                self.lose_next -= 1
                lost = True
            package = Package(
                number=next(self._package_numbers), carrier=carrier, tracking_number=tracking,
                amazon_tracking_number="TBA" + "".join(self.rng.choices(string.digits, k=12)),
                shipped_at=shipment.ship_at, units=list(box), fate=planned.fate,
                lost_at=shipment.ship_at + timedelta(hours=3) if lost else None,
            )
            shipment.packages.append(package)
            self.world.record("amazon", "package_shipped", seller_fulfillment_order_id=order.seller_id,
                              shipment_id=shipment.shipment_id, package_number=package.number, carrier=carrier,
                              tracking_number=package.tracking_number, lost=lost,
                              fate=self.package_fate(order, package))

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
            action=action, policy=policy, notification_emails=notification_emails,
        )
        plan = self.pending_plans.pop(seller_id, None)
        if plan is None and self.next_order_plans:
            plan = self.next_order_plans.popleft()
        self.apply_plan(order, plan or OrderPlan())
        for line in lines:
            self._take_stock(line.sku, line.quantity)
        self.orders[seller_id] = order
        self.world.record("amazon", "fulfillment_order_created", seller_fulfillment_order_id=seller_id,
                          items={line.sku: line.quantity for line in lines}, speed=speed,
                          scripted=plan is not None)
        return order

    def apply_plan(self, order: FulfillmentOrder, plan: OrderPlan) -> None:
        """Give ``order`` this plan. Shipments are (re)planned only while none has left; the fate,
        dates and return knobs apply at once (also to packages already on their way)."""
        plan.check()
        if any(s.shipped for s in order.shipments):
            order.plan = plan.model_copy(update={"shipments": order.plan.shipments})
            return
        order.plan = plan
        left = {line.item_id: line.quantity - line.cancelled - order.held_back(line, order.received_at)
                for line in order.lines}
        by_sku = {line.sku: line.item_id for line in order.lines}

        def take(sku: str, wanted: int) -> list[tuple[str, str, int]]:
            item_id = by_sku.get(sku)
            if item_id is None:
                raise ValueError(f"{order.seller_id} has no item {sku}")
            got = min(wanted, left[item_id])
            left[item_id] -= got
            return [(item_id, sku, got)] if got else []

        contents: list[list[list[tuple[str, str, int]]]] = [
            [[u for sku, q in (p.skus or {}).items() for u in take(sku, q)] for p in s.packages]
            for s in plan.shipments
        ]
        rest = [(line.item_id, line.sku, left[line.item_id]) for line in order.lines if left[line.item_id] > 0]
        open_boxes = [(i, j) for i, s in enumerate(plan.shipments) for j, p in enumerate(s.packages) if p.skus is None]
        if rest:
            i, j = open_boxes[0] if open_boxes else (len(contents) - 1, len(contents[-1]) - 1)
            contents[i][j] += rest
        order.shipments = []
        for s, boxes in zip(plan.shipments, contents, strict=True):
            ship_at = (order.promise.ship_at if s.after_hours is None
                       else order.received_at + timedelta(hours=s.after_hours))
            late_days = max(0, (ship_at.astimezone(JST).date() - order.promise.ship_at.astimezone(JST).date()).days)
            late_days = late_days if s.edd_follows else 0
            order.shipments.append(Shipment(
                shipment_id="D" + "".join(self.rng.choices(string.ascii_letters + string.digits, k=8)),
                ship_at=ship_at, edd_base=order.promise.latest_arrival + timedelta(days=late_days),
                plan=s, contents=boxes,
            ))

    def cancel_order(self, order: FulfillmentOrder) -> None:
        order.cancelled_at = self.world.now()
        for line in order.lines:
            self._take_stock(line.sku, -(line.quantity - line.cancelled))
            line.cancelled = line.quantity
        self.world.record("amazon", "fulfillment_order_cancelled", seller_fulfillment_order_id=order.seller_id)

    def package(self, number: int) -> tuple[FulfillmentOrder, Shipment, Package] | None:
        for order in self.orders.values():
            for shipment in order.shipments:
                for package in shipment.packages:
                    if package.number == number:
                        return order, shipment, package
        return None

    def lose(self, order: FulfillmentOrder) -> None:
        """This order's parcels get lost (now, if they are already on their way)."""
        order.lose_parcel = True
        for package in order.packages:
            if package.lost_at is None:
                package.lost_at = max(self.world.now(), package.shipped_at + timedelta(hours=3))

    def shift_edd(self, order: FulfillmentOrder, days: float) -> None:
        order.edd_shifts.append((self.world.now(), timedelta(days=days)))
        self.world.record("amazon", "estimated_arrival_moved", seller_fulfillment_order_id=order.seller_id, days=days)

    # --- tracking ------------------------------------------------------------------------------
    @staticmethod
    def package_fate(order: FulfillmentOrder, package: Package) -> str:
        return package.fate or order.plan.fate

    def _delivery_day(self, order: FulfillmentOrder, shipment: Shipment) -> datetime:
        """The estimated arrival the carrier works to: the planned one, moved by the plan's shift
        (an admin's later moves change what Amazon reports, not the parcel)."""
        return shipment.edd_base + timedelta(days=order.plan.edd_shift_days)

    def tracking_events(self, order: FulfillmentOrder, package: Package,
                        now: datetime | None = None) -> list[dict[str, Any]]:
        """The carrier's scans up to now (oldest first), each with the currentStatus it leads to."""
        now = self.world.now() if now is None else now
        shipment = next((s for s in order.shipments if package in s.packages), order.shipments[0])
        fate = self.package_fate(order, package)
        edd = self._delivery_day(order, shipment)
        dest = {"city": destination_city(order.address)[:150], "state": str(order.address.get("stateOrRegion")
                or destination_city(order.address))[:150], "country": "JP"}
        origin = {"city": FC_CITY, "state": FC_STATE, "country": "JP"}
        shipped = package.shipped_at
        Ev = tuple[datetime, str, str, dict[str, str], str]
        events: list[Ev] = [
            (shipped, "EVENT_102", "Shipment picked up from seller's facility.", origin, "IN_TRANSIT"),
            (shipped + timedelta(hours=2), "EVENT_202", "Departure scan.", origin, "IN_TRANSIT"),
        ]
        if order.promise.remote:
            hub_at = shipped + timedelta(hours=20)
            events += [(hub_at, "EVENT_201", "Arrival scan.", dest, "IN_TRANSIT"),
                       (hub_at + timedelta(hours=3), "EVENT_202", "Departure scan.", dest, "IN_TRANSIT")]
        if fate == "damaged":
            events.append((shipped + timedelta(hours=6), "EVENT_405", "Shipment damaged.", origin, "DELAYED"))
        day = edd
        if fate == "late":
            events.append((_jst_at(edd, 18), "EVENT_418", "Delayed.", dest, "DELAYED"))
            day = edd + timedelta(days=order.plan.deliver_after_days)
        if _jst_at(day, 21) < shipped + timedelta(hours=5):  # it left after its estimated arrival
            day = shipped + timedelta(days=1)
        delivery = min(max(_jst_at(day, 14), shipped + timedelta(hours=5)), _jst_at(day, 21))
        if fate == "delivered" and shipment is order.shipments[0] and not order.plan.edd_shift_days:
            delivery = order.promise.delivery_at if shipment.ship_at == order.promise.ship_at else delivery
        arrive = max(_jst_at(delivery, 7), events[-1][0] + timedelta(hours=1))
        out = max(_jst_at(delivery, 8, 30), arrive + timedelta(minutes=30))
        final_at = max(delivery, out + timedelta(hours=1))
        if fate in ("delivered", "late", "damaged"):
            events += [(arrive, "EVENT_201", "Arrival scan.", dest, "IN_TRANSIT"),
                       (out, "EVENT_302", "Out for delivery.", dest, "OUT_FOR_DELIVERY"),
                       (final_at, "EVENT_301", "Delivered.", dest, "DELIVERED")]
        elif fate == "delivered_only":
            events = [(final_at, "EVENT_301", "Delivered.", dest, "DELIVERED")]
        elif fate == "lost_by_carrier":
            events.append((_jst_at(edd, 18), "EVENT_409", "Lost by carrier.", origin, "UNDELIVERABLE"))
        elif fate in ("undeliverable", "undeliverable_returned"):
            events += [(arrive, "EVENT_201", "Arrival scan.", dest, "IN_TRANSIT"),
                       (out, "EVENT_302", "Out for delivery.", dest, "OUT_FOR_DELIVERY"),
                       (final_at, "EVENT_416", "Undeliverable.", dest, "UNDELIVERABLE")]
            if fate == "undeliverable_returned":
                events += [(final_at + timedelta(days=1), "EVENT_408", "Returning to seller.", dest, "RETURNING"),
                           (final_at + timedelta(days=4), "EVENT_309", "Returned to seller.", origin, "RETURNED")]
        elif fate == "unknown":
            events.append((shipped + timedelta(hours=20), "EVENT_444",
                           "Customer requested forward to another address.", dest, "FORWARDED"))
        # fate "lost": the scans simply stop
        cutoff = now if package.lost_at is None else min(now, package.lost_at)
        shown = [e for e in events if e[0] <= cutoff]
        shown += [(at, code, text, dest, status or "") for at, code, text, status in package.injected if at <= now]
        shown.sort(key=lambda e: e[0])
        return [{"eventDate": iso(at), "eventAddress": where, "eventCode": code, "eventDescription": text,
                 "status": status} for at, code, text, where, status in shown]

    @staticmethod
    def tracking_status(events: list[dict[str, Any]]) -> str:
        for event in reversed(events):
            if event.get("status"):
                return str(event["status"])
        return "UNKNOWN"

    # --- returns ------------------------------------------------------------------------------
    def new_authorization(self, order: FulfillmentOrder) -> ReturnAuthorization:
        auth = ReturnAuthorization(
            authorization_id=str(next(self._authorization_ids)),
            rma_id="D" + "".join(self.rng.choices(string.ascii_letters + string.digits, k=9)) + "RMA",
            created_at=self.world.now(),
        )
        order.authorizations.append(auth)
        return auth

    def _process_return(self, order: FulfillmentOrder, item: ReturnItem, condition: str) -> None:
        item.status, item.status_changed, item.condition = "Processed", self.world.now(), condition
        line = next(line for line in order.lines if line.item_id == item.item_id)
        if condition == "Sellable":
            self._take_stock(line.sku, -1)
        self.world.record("amazon", "return_processed", seller_fulfillment_order_id=order.seller_id,
                          seller_return_item_id=item.return_item_id, condition=condition)

    def receive_return(self, authorization_id: str, condition: str) -> list[ReturnItem]:
        """The buyer's parcel reached the FC: its items are processed (sellable ones restocked)."""
        received: list[ReturnItem] = []
        for order in self.orders.values():
            for item in order.returns:
                if item.authorization_id == authorization_id and item.status == "New":
                    self._process_return(order, item, condition)
                    received.append(item)
        return received

    # --- reimbursements and reports -------------------------------------------------------------
    def add_reimbursement(self, *, case_id: str | None, order_id: str | None, sku: str, amount: int,
                          quantity: int, reason: str, approved_at: datetime | None = None) -> dict[str, str]:
        at = approved_at or self.world.now()
        row = {
            "approval-date": iso(at), "reimbursement-id": str(self.rng.randrange(10**9, 10**10)),
            "case-id": case_id or "", "amazon-order-id": order_id or "", "reason": reason, "sku": sku,
            "fnsku": fnsku_for(sku), "asin": asin_for(sku), "product-name": product_name(sku), "condition":
            "New", "currency-unit": "JPY", "amount-per-unit": str(amount // max(1, quantity)),
            "amount-total": str(amount), "quantity-reimbursed-cash": str(quantity),
            "quantity-reimbursed-inventory": "0", "quantity-reimbursed-total": str(quantity),
            "original-reimbursement-id": "", "original-reimbursement-type": "",
        }
        self.reimbursements.append(row)
        self.world.record("amazon", "reimbursement_added", case_id=case_id, order_id=order_id, sku=sku, amount=amount)
        return row

    def file_case(self, *, kind: str, order_id: str | None, sku: str | None, quantity: int, text: str,
                  answer: str, answer_after_days: float, amount: int | None, language: str = "en",
                  phrasing: int = 0, forward: str = "auto", acknowledge: bool = False) -> Case:
        """A person files a case in Seller Central: Amazon gives it a case id (10 or 11 digits)."""
        while True:
            digits = self.rng.choice((10, 11))
            case_id = str(self.rng.randrange(10 ** (digits - 1), 10**digits))
            if case_id not in self.cases:
                break
        case = Case(case_id=case_id, kind=kind, order_id=order_id, sku=sku, quantity=quantity, text=text,
                    filed_at=self.world.now(), answer=answer, answer_after_days=answer_after_days, amount=amount,
                    language=language, phrasing=phrasing, forward=forward)
        self.cases[case_id] = case
        self.world.record("amazon", "case_filed", case_id=case_id, kind=kind, order_id=order_id)
        if acknowledge:
            self.mail_case(case, "ack")
        return case

    def mail_case(self, case: Case, meaning: str, amount: int | None = None) -> None:
        """Amazon's mail about the case, forwarded to the claims address (unless ``forward`` is none)."""
        from sandbox.amazon.case_mail import (
            AMAZON_SENDER,
            CLAIMS_ADDRESS,
            FORWARDING_AGENT,
            REGISTERED_SENDER,
            case_mail,
        )

        if case.forward == "none":
            return
        subject, body = case_mail(meaning, case_id=case.case_id, order=case.order_id or "", amount=amount,
                                  language=case.language, phrasing=case.phrasing + case.mails)
        case.mails += 1
        agent = case.forward == "agent"
        self.world.zendesk.receive_mail(subject=subject, body=body,
                                        sender=AMAZON_SENDER if agent else REGISTERED_SENDER,
                                        recipient=CLAIMS_ADDRESS, forwarded_by=FORWARDING_AGENT if agent else None)

    def answer_case(self, case: Case, answer: str, *, at: datetime | None = None, amount: int | None = None) -> None:
        """Amazon answers the case (its mail is the Zendesk side's to write, from the audit entry);
        ``pay`` also puts a row with the case id in the reimbursements report."""
        case.answer, case.answered_at = answer, at or self.world.now()
        case.amount = amount if amount is not None else case.amount
        paid = None
        if answer == "pay":
            sku = case.sku or MCF_DEFAULT_SKU
            product = PRODUCTS.get(sku)
            paid = case.amount if case.amount is not None else (product.price_yen if product else 1000) * case.quantity
            self.add_reimbursement(case_id=case.case_id, order_id=case.order_id, sku=sku, amount=paid,
                                   quantity=case.quantity, reason=f"{case.kind.capitalize()}_Outbound",
                                   approved_at=case.answered_at)
        self.world.record("amazon", "case_answered", case_id=case.case_id, answer=answer, amount=paid,
                          order_id=case.order_id)
        if answer != "silent":
            self.mail_case(case, answer, paid)

    def create_report(self, report_type: str, start: datetime | None, end: datetime | None) -> Report:
        now = self.world.now()
        report = Report(report_id=str(next(self._report_ids)), report_type=report_type, created=now,
                        start=start or now - timedelta(days=30), end=end or now)
        self.reports[report.report_id] = report
        return report

    def report_document(self, report: Report) -> str:
        """The report's text: tab-separated, a header row, one row per reimbursement approved in
        its data range."""
        rows = [r for r in self.reimbursements
                if report.start <= datetime.fromisoformat(r["approval-date"].replace("Z", "+00:00")) <= report.end]
        lines = ["\t".join(REIMBURSEMENT_COLUMNS)] + ["\t".join(r[c] for c in REIMBURSEMENT_COLUMNS) for r in rows]
        return "\r\n".join(lines) + "\r\n"

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
        packages = []
        for shipment in order.shipments:
            for package in shipment.packages:
                events = self.tracking_events(order, package)
                packages.append({
                    "package_number": package.number, "carrier_code": package.carrier,
                    "tracking_number": package.tracking_number, "shipped_at": package.shipped_at.isoformat(),
                    "shipment_id": shipment.shipment_id, "lost": package.lost_at is not None,
                    "fate": self.package_fate(order, package), "tracking_status": self.tracking_status(events),
                    "units": {sku: q for _, sku, q in package.units},
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
            "fate": order.plan.fate,
            "items": [{"sku": line.sku, "quantity": line.quantity, "cancelled": line.cancelled}
                      for line in order.lines],
            "shipments": [{"shipment_id": s.shipment_id, "ship_at": s.ship_at.isoformat(), "shipped": s.shipped,
                           "cancelled": s.plan.cancelled,
                           "estimated_arrival": order.shipment_edd(s, now).isoformat()} for s in order.shipments],
            "packages": packages,
            "returns": [{"return_item_id": r.return_item_id, "reason": r.reason, "status": r.status,
                         "authorization_id": r.authorization_id, "condition": r.condition} for r in order.returns],
        }

    def snapshot(self) -> dict[str, Any]:
        self.tick(self.world.now())
        return {
            "fba_stock": dict(self.fba_stock),
            "fulfillment_orders": [self.order_view(o) for o in self.orders.values()],
            "reimbursements": list(self.reimbursements),
            "cases": [case_view(c) for c in self.cases.values()],
            "knobs": {
                "lost_skus": sorted(self.lost_skus),
                "lose_next": self.lose_next,
                "forced_carriers": list(self.forced_carriers),
                "next_order_plans": [p.model_dump() for p in self.next_order_plans],
                "pending_plans": {k: p.model_dump() for k, p in self.pending_plans.items()},
                "plans": {op: {"rate": r, "burst": b} for op, (r, b) in self.plans.items()},
            },
        }


def case_view(case: Case) -> dict[str, Any]:
    return {"case_id": case.case_id, "kind": case.kind, "order_id": case.order_id, "sku": case.sku,
            "quantity": case.quantity, "filed_at": case.filed_at.isoformat(), "answer": case.answer,
            "due": case.due.isoformat(), "answered_at": case.answered_at.isoformat() if case.answered_at else None,
            "amount": case.amount}


def product_name(sku: str) -> str:
    product = PRODUCTS.get(sku)
    return product.name if product else sku


def asin_for(sku: str) -> str:
    digest = hashlib.sha1(sku.encode()).hexdigest().upper()  # an id, not security
    return "B0" + digest[:8]


def fnsku_for(sku: str) -> str:
    digest = hashlib.sha1(("fn" + sku).encode()).hexdigest().upper()
    return "X00" + digest[:7]
