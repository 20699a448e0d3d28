"""After the parcel leaves: every Amazon MCF order the robot created, followed until each of its
parcels is delivered or settled (docs/procedures/mcf_aftercare.md).

    intake (per pass: every MCF order procedure A created; once a day, and at once on a new or
    lost ledger: every RKT- MCF order Amazon lists that the ledger does not know) → follow ⟲ → finish

``follow`` reads the MCF order (getFulfillmentOrder) on every visit and each package's tracking
(getPackageTrackingDetails) on the package's own schedule, and does what the order desk does:

- a later shipment (the second, third …) gets its own 発送メール naming its packages, and RMS a
  発送明細 row per package (procedure A sends the first shipment's);
- not shipped by the estimated delivery date (EDD) → a note with the text for Seller Support;
- lost (no delivery when today is later than EDD + ``lost_after_days``, or UNDELIVERABLE /
  EVENT_409 / EVENT_416 not followed by RETURNING/RETURNED within ``returned_within_days``) → a lost
  claim in the ledger and a note with the text to paste into Seller Central;
- damaged (EVENT_405) → a damaged claim, the note asking for the photo;
- returned to Amazon → a note, no claim;
- units Amazon will not ship after all (Unfulfillable, Invalid, CompletePartialled) → an office
  shipment (a note, then `kuroko ship`), never a second MCF order;
- delivered → the date on the item, no note.

Notes go on the Rakuten order's ticket while Zendesk takes changes there, else on the follow-up
ticket the engine opens (kuroko/handover.py). Every note carries its marker, every claim is unique
per (kind, order, package) and every 発送メール is counted in RMS's mail history: a run stopped
half-way does nothing twice.

A lost ledger (deleted, or a new empty database): the intake lists Amazon's MCF orders
(``rebuild_from_amazon``) and takes in again every ``RKT-<order>`` order it does not know, its facts
from the systems of record (the order number from the id, items, ship-to and dates from
getFulfillmentOrder, the order's ticket by the robot's fulfillment note) and ``rebuilt: True``.
Such an item looks for each note's marker on every ticket of the order before writing it; a claim
whose note was written before the item existed goes to a person (its case id, if it was filed,
only the old ledger knew) and is never prepared blind a second time.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer

from bots import rakuten_sim_order as order_a
from kuroko.errors import ApiError, KurokoError
from kuroko.handover import HandOver, handover_external_id, marker
from kuroko.ledger import (
    ClaimKind,
    ClaimStatus,
    ItemState,
    Ledger,
    WorkItem,
    get_claim,
    list_claims,
    open_claim,
    record_claim_case,
    update_claim,
)
from kuroko.procedure import DeskContext, Done, IntakeContext, NotYet, Outcome, Procedure, StepContext
from kuroko.settings import KurokoSettings, load
from pages.rakuten.connection import RMS
from services.fulfillment import FULFILLMENT, seller_fulfillment_order_id
from services.helpdesk import HELPDESK

if TYPE_CHECKING:
    from pages.rakuten.order_page import RmsOrderView
    from services.fulfillment import McfOrder, McfPackage, McfShipment, TrackingInfo

NAME = "mcf_aftercare"
SOURCES = {order_a.NAME: "Rakuten order"}
"""Procedures whose items create MCF orders (an ``mcf_id`` fact): each MCF order becomes an item here."""
FINAL = {"COMPLETE", "COMPLETEPARTIALLED", "UNFULFILLABLE", "INVALID", "CANCELLED"}
"""Order statuses after which Amazon ships nothing more."""
RETURN_STATUSES = {"RETURNING", "RETURNED", "RETURNRECEIVEDINFC"}
RETURN_EVENTS = {"EVENT_408", "EVENT_309"}
UNDELIVERABLE_EVENTS = {"EVENT_409", "EVENT_416"}
DAMAGED_EVENT = "EVENT_405"


class AftercareRules(KurokoSettings):
    """The after-sales procedure's rules (KUROKO_AFTERCARE_* settings)."""

    aftercare_poll_hours: float = 12
    """How often one package's tracking is read (each package on its own schedule)."""
    aftercare_first_look_hours: float = 24
    """Tracking is not expected before this long after the shipment left (Amazon: allow a day)."""
    aftercare_lost_after_days: int = 7
    """A parcel not delivered when today (Japan) is later than EDD + this many days is lost."""
    aftercare_returned_within_days: int = 5
    """UNDELIVERABLE / EVENT_409 / EVENT_416 not followed by RETURNING/RETURNED within this many days
    is lost (a parcel going back to Amazon is back in stock: no claim)."""
    aftercare_transit_days: int = 14
    """The longest from an MCF order's last status change (its last shipment leaving) to its
    estimated delivery date; with the two rules above it says how far back ``rebuild_window`` looks."""
    aftercare_relist_hours: float = 24
    """How often the intake lists Amazon's MCF orders for ones the ledger does not know: at the
    first pass of a ledger that never listed them (a new or lost ledger), then at most this often."""


def rules() -> AftercareRules:
    return load(AftercareRules)


LISTED = "list_mcf_orders"
"""The audit action (no item) that marks when the intake last listed Amazon's MCF orders."""
RAKUTEN_PREFIX = seller_fulfillment_order_id("0").removesuffix("0")
"""``RKT-``: the MCF orders procedure A creates."""


def rebuild_window(r: AftercareRules) -> timedelta:
    """How far back (by an MCF order's last status change) a parcel may still be followed: the
    transit to its EDD (``aftercare_transit_days``), the lost rule (``aftercare_lost_after_days`` + 1
    day) and the wait for a return after UNDELIVERABLE (``aftercare_returned_within_days``)."""
    return timedelta(days=r.aftercare_transit_days + r.aftercare_lost_after_days + 1
                     + r.aftercare_returned_within_days)


procedure = Procedure(NAME, title="MCF after-sales", item_label="MCF parcel", desk=HELPDESK)


# --- small helpers ---------------------------------------------------------------------------
def tz(ctx: StepContext | DeskContext) -> ZoneInfo:
    return ZoneInfo(ctx.settings.timezone)


def jst_day(ctx: StepContext, moment: datetime) -> date:
    return moment.astimezone(tz(ctx)).date()


def day_start(ctx: StepContext, day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=tz(ctx))


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def local_time(ctx: StepContext, moment: datetime | None) -> str:
    return moment.astimezone(tz(ctx)).strftime("%Y-%m-%d %H:%M") if moment else "unknown"


def handover(ctx: StepContext) -> HandOver:
    return HandOver(ctx.use(HELPDESK), ctx.ledger, ctx.effects, hold_tag=ctx.settings.hold_tag,
                    title=procedure.item_label)


def write_note(ctx: StepContext, what: str, body: str, *, hold: bool = False) -> int:
    """A note where a person sees it (the order's ticket, or the engine's follow-up ticket when Zendesk
    closed it), once: its marker is looked for first — by a rebuilt item on every ticket of the order,
    since its ledger no longer says where an earlier note went."""
    tag = marker(ctx.key, what)
    if ctx.facts.get("rebuilt"):
        earlier = noted_before(ctx, tag)
        if earlier is not None:
            ctx.facts.setdefault("notes", {})[what] = earlier
            return earlier
    ticket = handover(ctx).note(ctx.item, ctx.now, body, tag, action=f"note_{what}",
                                status="open", hold=hold, reason=what)
    ctx.facts.setdefault("notes", {})[what] = ticket
    return ticket


def items_text(units: dict[str, int]) -> str:
    return ", ".join(f"{sku} × {n}" for sku, n in units.items()) or "(none)"


def buyer_text(ctx: StepContext) -> str:
    to = ctx.facts.get("ship_to") or {}
    return (f"{to.get('name', '?')}, 〒{to.get('postal_code', '?')} {to.get('prefecture', '')}{to.get('city', '')}"
            f"{to.get('address', '')}, tel. {to.get('phone') or '-'}")


# --- intake ------------------------------------------------------------------------------------
@procedure.intake
def take_in(ctx: IntakeContext) -> None:
    """Every MCF order another procedure created (an ``mcf_id`` fact on its item) becomes an item,
    keyed by the MCF order id, carrying the order's ticket (notes go there while it is open)."""
    known = {item.key for item in ctx.ledger.items(procedure=NAME)}
    for source, label in SOURCES.items():
        for item in ctx.ledger.items(procedure=source):
            mcf_id = item.facts.get("mcf_id")
            if not mcf_id or mcf_id in known:
                continue
            facts = {"source": source, "source_label": label, "order_number": item.key, "source_item": item.id,
                     "purchase_history_url": item.facts.get("purchase_history_url"),
                     "ship_to": item.facts.get("ship_to"), "items": item.facts.get("items"),
                     "promised_arrival": item.facts.get("promised_arrival")}
            if ctx.take_in(mcf_id, ticket_id=item.ticket_id, facts=facts) is not None:
                known.add(mcf_id)
                ctx.taken_in.append(f"{mcf_id}: MCF order of {label} {item.key} followed")
    rebuild_from_amazon(ctx, known)


def rebuild_from_amazon(ctx: IntakeContext, known: set[str]) -> None:
    """Amazon's own list of our MCF orders, read when the ledger never did (new, or lost mid-day)
    and then once every ``aftercare_relist_hours``: each ``RKT-<order>`` order whose status changed
    within ``rebuild_window`` and that the ledger does not follow is taken in again, ``rebuilt``.
    Its ticket is the one carrying procedure A's fulfillment note; the rest of its facts the
    follow step reads from getFulfillmentOrder. Normal passes make no listing call."""
    r = rules()
    last = ctx.ledger.last_audit_at(LISTED)
    if last is not None and ctx.now - last < timedelta(hours=r.aftercare_relist_hours):
        return
    since = min(last or ctx.now, ctx.now) - rebuild_window(r)
    orders = ctx.use(FULFILLMENT).list_orders(since)
    known = known | {i.key for i in ctx.ledger.items(procedure=NAME)}
    taken = 0
    for header in orders:
        mcf_id = header.seller_fulfillment_order_id
        if not mcf_id.startswith(RAKUTEN_PREFIX) or mcf_id in known:
            continue
        number = mcf_id.removeprefix(RAKUTEN_PREFIX)
        ticket = order_ticket(ctx, number)
        facts = {"source": order_a.NAME, "source_label": SOURCES[order_a.NAME], "order_number": number,
                 "rebuilt": True, "mcf_status": header.status}
        if ctx.take_in(mcf_id, ticket_id=ticket, facts=facts) is not None:
            known.add(mcf_id)
            taken += 1
            ctx.taken_in.append(f"{mcf_id}: MCF order of Rakuten order {number} followed again (the ledger did "
                                f"not know it; ticket {f'#{ticket}' if ticket else 'not found'})")
    # A read, not a side effect: the robot's own marker, in a dry run's throwaway ledger too.
    ctx.ledger.audit(item_id=None, at=ctx.now, actor="robot", system="amazon", action=LISTED,
                     detail={"since": since.isoformat(), "orders": len(orders), "taken_in": taken})


def order_ticket(ctx: IntakeContext, number: str) -> int | None:
    """The Rakuten order's ticket: the one with procedure A's fulfillment note (any status)."""
    found = ctx.use(HELPDESK).tickets_with_note(marker(number, "fulfillment"))
    return found[0].id if found else None


# --- the steps ---------------------------------------------------------------------------------
@procedure.step(first=True, then="finish", needs_person=(
                    "Look at the MCF order in Seller Central and at the parcels' tracking; put right what is "
                    "needed (a 発送メール, an RMS 発送明細, a claim), then let Kuroko continue."))
def follow(ctx: StepContext) -> Outcome:
    """Read the order, mail later shipments, apply the EDD rules, read each package's tracking when due."""
    order = ctx.use(FULFILLMENT).get_order(ctx.key)
    if order is None and ctx.dry_run:
        return NotYet(ctx.now + timedelta(hours=1), "dry run: the MCF order was not really created")
    if order is None:
        raise ApiError(f"Amazon has no MCF order {ctx.key} although the robot created it", code="NotFound")
    status = order.status_key
    ctx.facts["mcf_status"] = order.status
    if ctx.facts.get("rebuilt") and "items" not in ctx.facts:
        rebuilt_facts(ctx, order)
    edd = remember_edd(ctx, order)
    shipped = order_a.shipped_shipments(order)
    if not shipped and status in order_a.MCF_NOT_SHIPPING:
        ctx.facts["outcome"] = "office"
        return Done("finish", detail=f"MCF order {order.status} before anything shipped: procedure A ships it from "
                                     "the office")
    if not shipped and status == "CANCELLED":
        ctx.facts["outcome"] = "cancelled"
        return Done("finish", detail="MCF order cancelled before anything shipped")
    waits: list[datetime] = [ctx.now + timedelta(hours=rules().aftercare_poll_hours)]
    said: list[str] = []
    mailing = mail_later_shipments(ctx, shipped)
    if mailing:
        said.append(mailing)
    late = not_shipped_by_edd(ctx, order, edd)
    if late is not None:
        waits.append(late)
    office = missing_units(ctx, order, shipped)
    if office:
        said.append(office)
    for shipment in shipped:
        for package in shipment.packages:
            due = follow_package(ctx, order, shipment, package, edd)
            if due is not None:
                waits.append(due)
    packages = ctx.facts.get("packages", {})
    unknown = sorted({v for p in packages.values() for v in p.get("unknown", [])})
    if unknown:
        ctx.facts["unknown_values"] = unknown
        said.append("values with no rule (recorded): " + ", ".join(unknown))
    summary = "; ".join([f"{n}: {p.get('outcome') or p.get('status') or 'shipped'}" for n, p in packages.items()]
                        + said)
    settled = (status in FINAL and packages and all(p.get("settled") for p in packages.values())
               and len(packages) == sum(len(s.packages) for s in shipped)
               and ctx.facts.get("mailed_shipments", 1) >= len(shipped)
               and (not ctx.facts.get("office_units") or ctx.facts.get("office_mailed")))
    if settled:
        ctx.facts["outcome"] = overall_outcome(packages)
        return Done("finish", detail=f"every parcel settled: {summary}", path=ctx.facts["outcome"])
    until = max(min(waits), ctx.now + timedelta(minutes=10))
    return NotYet(until, f"MCF order {order.status}, EDD {edd.isoformat() if edd else 'unknown'}: "
                         f"{summary or 'nothing shipped yet'}")


@procedure.step(final=True, needs_person="Look at the MCF order's parcels and close the follow-up by hand.")
def finish(ctx: StepContext) -> Outcome:
    outcome = ctx.facts.get("outcome") or "settled"
    delivered = [p.get("delivered_on") for p in ctx.facts.get("packages", {}).values() if p.get("delivered_on")]
    if delivered:
        ctx.facts["delivered_on"] = max(delivered)
    return Done(None, detail=f"after-sales finished: {outcome}"
                + (f", delivered {ctx.facts['delivered_on']}" if delivered else ""), path=outcome)


def rebuilt_facts(ctx: StepContext, order: McfOrder) -> None:
    """What procedure A's item would have given a rebuilt item, read from Amazon's order."""
    ctx.facts["items"] = [{"sku": i.seller_sku, "quantity": i.quantity} for i in order.items]
    to = order.ship_to
    if to is not None:
        ctx.facts["ship_to"] = {"name": to.name, "postal_code": to.postal_code, "prefecture": to.state_or_region,
                                "city": to.city or "", "address": to.address_line1 + (to.address_line2 or ""),
                                "phone": order.ship_to_phone}
    if order.received_at is not None:
        ctx.facts["mcf_received_at"] = order.received_at.isoformat()
    if order.estimated_arrival is not None:
        ctx.facts["promised_arrival"] = order.estimated_arrival.isoformat()


def overall_outcome(packages: dict[str, dict[str, Any]]) -> str:
    outcomes = {p.get("outcome") for p in packages.values()}
    for worst in ("lost", "damaged", "returned", "late", "delivered"):
        if worst in outcomes:
            return worst
    return "settled"


# --- the EDD -----------------------------------------------------------------------------------
def remember_edd(ctx: StepContext, order: McfOrder) -> date | None:
    """The EDD: the latest estimatedArrivalDate seen on the order (Amazon moves it), as a day in Japan."""
    seen = [m for m in (order.estimated_arrival, _dt(ctx.facts.get("edd_at")), _dt(ctx.facts.get("promised_arrival")))
            if m is not None]
    if not seen:
        return None
    latest = max(seen)
    previous = ctx.facts.get("edd")
    ctx.facts["edd_at"] = latest.isoformat()
    ctx.facts["edd"] = jst_day(ctx, latest).isoformat()
    if previous and previous != ctx.facts["edd"]:
        ctx.facts.setdefault("edd_moves", []).append({"from": previous, "to": ctx.facts["edd"],
                                                      "seen": ctx.now.isoformat()})
    return jst_day(ctx, latest)


def not_shipped_by_edd(ctx: StepContext, order: McfOrder, edd: date | None) -> datetime | None:
    """Units still to ship when the EDD has passed (a day in Japan): a person, once, with the text for
    Seller Support. Returns when to look again for it."""
    pending = {i.seller_sku: i.quantity - i.shipped - i.not_shipping for i in order.items}
    pending = {sku: n for sku, n in pending.items() if n > 0}
    if not pending or order.status_key in FINAL or edd is None:
        return None
    if jst_day(ctx, ctx.now) <= edd:
        return day_start(ctx, edd + timedelta(days=1))
    if ctx.facts.get("late_shipping_noted"):
        return None
    shipments = "\n".join(
        f"  - shipment {s.shipment_id}: {s.status}, planned departure {local_time(ctx, s.planned_ship_date)}, "
        f"estimated arrival {local_time(ctx, s.estimated_arrival)}, items {items_text(s.items)}"
        for s in order.shipments) or "  - no shipment yet"
    text = (
        f"Multi-Channel Fulfillment order {order.seller_fulfillment_order_id} has not shipped by its estimated "
        f"delivery date.\n"
        f"Order received: {local_time(ctx, order.received_at)}; estimated delivery date: {edd.isoformat()}.\n"
        f"Items not shipped: {items_text(pending)} (ordered: "
        f"{items_text({i.seller_sku: i.quantity for i in order.items})}).\n"
        f"Amazon reports the order as {order.status}:\n{shipments}\n"
        "Please tell us when these items will ship, or cancel them so we can ship them another way."
    )
    body = (
        f"MCF order {order.seller_fulfillment_order_id} ({ctx.facts.get('source_label', 'order')} "
        f"{ctx.facts.get('order_number')}) has not shipped by its estimated delivery date {edd.isoformat()}.\n"
        "Needed: contact Seller Support (Seller Central → Help → Get support) with this text:\n\n"
        f"---\n{text}\n---\n\n"
        "Kuroko keeps following the order: once it ships, the 発送メール goes out as usual."
    )
    write_note(ctx, "not-shipped-by-edd", body, hold=True)
    ctx.facts["late_shipping_noted"] = True
    ctx.facts["seller_support_text"] = text
    return None


# --- later shipments: 発送メール and RMS rows -----------------------------------------------------
def rms_view(ctx: StepContext, *, fresh: bool = False) -> RmsOrderView:
    number = str(ctx.facts["order_number"])
    url = ctx.facts.get("purchase_history_url") or ctx.use(RMS).order_url(number)
    view = ctx.use(RMS).order(str(url), number, fresh=fresh)
    if view.order_number != number:
        from kuroko.errors import OrderMismatch

        raise OrderMismatch(f"RMS opened order {view.order_number} instead of {number}; nothing was clicked")
    return view


def shipping_mails(view: RmsOrderView) -> int:
    return sum(1 for m in view.mails if m.template in order_a.SHIPPING_TEMPLATES.values())


def mail_later_shipments(ctx: StepContext, shipped: list[McfShipment]) -> str:
    """The second, third … shipment each gets its own 発送メール and a 発送明細 row per package. RMS's
    mail history is the record: the n-th shipping mail is the n-th shipment's (procedure A's is the
    first), so a mail sent by a run that stopped before writing it down is found, not sent again."""
    if ctx.facts.get("source") != order_a.NAME:
        return ""
    mailed = int(ctx.facts.get("mailed_shipments", 1))
    if len(shipped) <= mailed:
        return ""
    view = rms_view(ctx, fresh=True)
    count = shipping_mails(view)
    if count < 1:
        return "waiting for procedure A's first 発送メール"
    done: list[str] = []
    for index, shipment in enumerate(shipped[1:], 1):
        if index < mailed:
            continue
        parcels = order_a.shipment_parcels(shipment)
        ship_date = jst_day(ctx, shipment.shipped_at or ctx.now)
        if count <= index:
            send_parcel_mail(ctx, parcels, ship_date)
            count += 1
            done.append(f"発送メール for shipment {shipment.shipment_id}")
        add_rows(ctx, parcels, ship_date)
        ctx.facts["mailed_shipments"] = index + 1
    return ", ".join(done)


def send_parcel_mail(ctx: StepContext, parcels: list[dict[str, Any]], ship_date: date) -> None:
    carrier = ", ".join(dict.fromkeys(p["carrier"] for p in parcels))
    template = order_a.shipping_template(parcels[0]["carrier"])
    fields = {"order_number": str(ctx.facts["order_number"]), "ship_date": ship_date.isoformat(), "carrier": carrier,
              "tracking_number": ", ".join(p["tracking"] for p in parcels)}
    new_view = ctx.act("rms", "send_shipping_mail", lambda: ctx.use(RMS).page.send_mail(template, fields),
                       template=order_a.SHIPPING_TEMPLATES[template], **fields)
    ctx.use(RMS).remember(new_view)


def add_rows(ctx: StepContext, parcels: list[dict[str, Any]], ship_date: date) -> None:
    from pages.rakuten.order_page import ShippingRow

    wanted = [ShippingRow(company=p["carrier"], shipping_date=ship_date, tracking_number=p["tracking"])
              for p in parcels]
    view = rms_view(ctx)
    if all(any(r.complete and r.same_parcel(w) for r in view.shipping_rows) for w in wanted):
        return
    new_view = ctx.act("rms", "set_shipping", lambda: ctx.use(RMS).page.add_shipping_rows(wanted),
                       rows=[f"{w.company} {w.tracking_number}" for w in wanted], date=ship_date.isoformat())
    ctx.use(RMS).remember(new_view)


# --- units Amazon will not ship: an office shipment -----------------------------------------------
def missing_units(ctx: StepContext, order: McfOrder, shipped: list[McfShipment]) -> str:
    """Units Amazon will not ship after all (CompletePartialled, or Unfulfillable/Invalid after a
    first shipment left) go from the office: a note, then `kuroko ship ORDER …`, then their 発送メール
    and 発送明細 — never a second MCF order for units already shipped."""
    if order.status_key not in FINAL or not shipped:
        return ""
    units = order.not_shipping()
    if not units:
        return ""
    ctx.facts["office_units"] = units
    number = ctx.facts.get("order_number")
    body = (
        f"Amazon MCF will not ship part of {ctx.facts.get('source_label', 'order')} {number}: MCF order "
        f"{order.seller_fulfillment_order_id} is {order.status}. Units that did not ship: {items_text(units)}.\n"
        "The units Amazon did ship are not sent again, and no second MCF order is created.\n"
        f"Needed: ship {items_text(units)} from the office, then run "
        f"`kuroko ship {number} --carrier <carrier> --tracking <number>`."
    )
    write_note(ctx, "office-units", body)
    parcel = ctx.facts.get("office_parcel")
    if not parcel and ctx.facts.get("rebuilt") and shipping_mails(rms_view(ctx, fresh=True)) > len(shipped):
        ctx.facts["office_mailed"] = True  # its 発送メール went out before the ledger was lost (RMS's record)
        return ""
    if not parcel:
        return f"office shipment of {items_text(units)}: waiting for `kuroko ship`"
    if ctx.facts.get("office_mailed"):
        return ""
    parcels = [{"carrier": parcel["carrier"], "tracking": parcel["tracking"]}]
    ship_date = date.fromisoformat(parcel["ship_date"])
    view = rms_view(ctx, fresh=True)
    if shipping_mails(view) < len(shipped) + 1:
        if shipping_mails(view) < len(shipped):
            return "office shipment: waiting for the shipments' 発送メール"
        send_parcel_mail(ctx, parcels, ship_date)
    add_rows(ctx, parcels, ship_date)
    ctx.facts["office_mailed"] = True
    return f"office shipment {parcel['carrier']} {parcel['tracking']}: 発送メール sent"


# --- one package's tracking ---------------------------------------------------------------------
def follow_package(ctx: StepContext, order: McfOrder, shipment: McfShipment, package: McfPackage,
                   edd: date | None) -> datetime | None:
    """Read the package's tracking when due and apply the rules. Returns when to look again (None: settled)."""
    packages: dict[str, dict[str, Any]] = ctx.facts.setdefault("packages", {})
    p = packages.setdefault(str(package.package_number), {
        "shipment": shipment.shipment_id, "carrier_code": package.carrier_code,
        "tracking": package.tracking_number, "shipped_at": (package.shipped_at or ctx.now).isoformat()})
    if p.get("settled"):
        return None
    r = rules()
    shipped_at = datetime.fromisoformat(p["shipped_at"])
    first_look = shipped_at + timedelta(hours=r.aftercare_first_look_hours)
    due = max(first_look, _dt(p.get("next_check")) or first_look)
    lost_day = edd + timedelta(days=r.aftercare_lost_after_days + 1) if edd else None
    lost_rule = lost_day is not None and jst_day(ctx, ctx.now) >= lost_day
    if ctx.now < due and not (lost_rule and p.get("checked_on") != jst_day(ctx, ctx.now).isoformat()):
        return min(due, day_start(ctx, lost_day)) if lost_day and not lost_rule else due
    info = ctx.use(FULFILLMENT).tracking(package.package_number)
    p["checked_on"] = jst_day(ctx, ctx.now).isoformat()
    p["next_check"] = (ctx.now + timedelta(hours=r.aftercare_poll_hours)).isoformat()
    p["checks"] = int(p.get("checks", 0)) + 1
    if info.found:
        p["status"] = info.current_status
        p["events"] = info.event_codes
        for value in info.unknown_values:
            if value not in p.setdefault("unknown", []):
                p["unknown"].append(value)
    else:
        p["status"] = "no tracking yet"
    if DAMAGED_EVENT in info.event_codes and not p.get("damaged"):
        open_parcel_claim(ctx, ClaimKind.DAMAGED, order, shipment, package, edd, info)
        p["damaged"] = True
    if info.delivered:
        delivered_at = info.delivered_at or ctx.now
        p["delivered_on"] = jst_day(ctx, delivered_at).isoformat()
        late = edd is not None and jst_day(ctx, delivered_at) > edd
        p["outcome"] = "damaged" if p.get("damaged") else ("late" if late else "delivered")
        p["settled"] = True
        return None
    undeliverable = next((e for e in info.events if e.code in UNDELIVERABLE_EVENTS), None)
    if info.status_key == "UNDELIVERABLE" or undeliverable is not None:
        since = (undeliverable.at if undeliverable and undeliverable.at else None) or _dt(p.get("undeliverable_at")) \
            or ctx.now
        p.setdefault("undeliverable_at", since.isoformat())
        since = datetime.fromisoformat(p["undeliverable_at"])
        returning = info.status_key in RETURN_STATUSES or any(
            e.code in RETURN_EVENTS and (e.at is None or e.at >= since) for e in info.events)
        if not returning:
            deadline = since + timedelta(days=r.aftercare_returned_within_days)
            if ctx.now >= deadline:
                open_parcel_claim(ctx, ClaimKind.LOST, order, shipment, package, edd, info)
                p.update(outcome="lost", settled=True)
                return None
            return min(deadline, ctx.now + timedelta(hours=r.aftercare_poll_hours))
    if info.status_key in RETURN_STATUSES or any(e.code in RETURN_EVENTS for e in info.events):
        if not p.get("returned_noted"):
            returned_note(ctx, order, package, info)
            p["returned_noted"] = True
        p["outcome"] = "returned"
        if info.status_key in ("RETURNED", "RETURNRECEIVEDINFC") or "EVENT_309" in info.event_codes:
            p["settled"] = True
            return None
        return ctx.now + timedelta(hours=r.aftercare_poll_hours)
    if lost_rule:
        open_parcel_claim(ctx, ClaimKind.LOST, order, shipment, package, edd, info)
        p.update(outcome="lost", settled=True)
        return None
    following = ctx.now + timedelta(hours=r.aftercare_poll_hours)
    return min(following, day_start(ctx, lost_day)) if lost_day else following


def returned_note(ctx: StepContext, order: McfOrder, package: McfPackage, info: TrackingInfo) -> None:
    body = (
        f"Parcel {package.package_number} of MCF order {order.seller_fulfillment_order_id} "
        f"({ctx.facts.get('source_label', 'order')} {ctx.facts.get('order_number')}) could not be delivered and is "
        f"going back to Amazon ({info.current_status}; carrier {package.carrier_code}, tracking "
        f"{package.tracking_number}). Returned units go back into FBA stock: no claim.\n"
        "Needed: ask the buyer whether to send it again (a new order) or refund; Kuroko does neither."
    )
    write_note(ctx, f"returned-{package.package_number}", body)


def open_parcel_claim(ctx: StepContext, kind: ClaimKind, order: McfOrder, shipment: McfShipment, package: McfPackage,
                      edd: date | None, info: TrackingInfo) -> None:
    """A claim record in the ledger (once per kind and parcel) and the note with its text."""
    what = "Lost" if kind == ClaimKind.LOST else "Damaged"
    reason = (f"not delivered {rules().aftercare_lost_after_days} days after the estimated delivery date"
              if kind == ClaimKind.LOST and info.status_key != "UNDELIVERABLE" else
              f"the carrier reports {info.current_status}" + (
                  f" ({', '.join(c for c in info.event_codes if c in UNDELIVERABLE_EVENTS)})"
                  if kind == ClaimKind.LOST else f" and event {DAMAGED_EVENT} (shipment damaged)"))
    text = (
        f"{what} Multi-Channel Fulfillment parcel: reimbursement request.\n"
        f"MCF order id: {order.seller_fulfillment_order_id}\n"
        f"Package number: {package.package_number} (shipment {shipment.shipment_id}, shipped "
        f"{local_time(ctx, shipment.shipped_at)})\n"
        f"Carrier: {package.carrier_code}; tracking number: {package.tracking_number}\n"
        f"Estimated delivery date: {edd.isoformat() if edd else 'unknown'}\n"
        f"Items (SKU × quantity) in the shipment: {items_text(shipment.items)}\n"
        f"What happened: {reason}; last status {info.current_status}, events "
        f"{', '.join(info.event_codes) or 'none'}.\n"
        f"Off-Amazon order: {ctx.facts.get('source_label', 'order')} {ctx.facts.get('order_number')}; buyer "
        f"{buyer_text(ctx)}."
    )
    claim, created = open_claim(ctx.ledger, kind=kind.value, item_id=ctx.item.id, mcf_order_id=ctx.key,
                                 package_number=package.package_number, text=text, now=ctx.now)
    ctx.facts.setdefault("claims", {})[f"{kind.value}-{package.package_number}"] = claim.id
    proof = ("Photo proof is required for a damaged claim: ask the buyer for photos of the item, the box and its "
             "labels, and attach them to this ticket before filing.\n" if kind == ClaimKind.DAMAGED else
             "Attach proof of the refund or replacement to the buyer when filing.\n")
    body = (
        f"{what} parcel: claim {claim.id} prepared for MCF order {ctx.key}, package {package.package_number}.\n"
        f"{proof}"
        "Needed: file it in Seller Central (Help → Get support → Fulfillment by Amazon → Multi-Channel "
        "Fulfillment) with this text, then record Amazon's case id with "
        f"`kuroko claim {claim.id} --case-id <case id>`.\n\n---\n{claim.text}\n---"
    )
    what_note = f"claim-{kind.value}-{package.package_number}"
    if (created or ctx.facts.get("rebuilt")) and noted_before(ctx, marker(ctx.key, what_note),
                                                               before=ctx.item.created_at) is not None:
        # A claim note with no claim behind it: the ledger was lost (or is new). Whether the claim was
        # filed, and its case id, only Seller Central knows now: a person looks, never the robot on blind.
        write_note(ctx, f"{what_note}-rebuilt", (
            f"The robot's ledger no longer knew the {what.lower()} claim for MCF order {ctx.key}, package "
            f"{package.package_number} (the ledger was lost or is new); its earlier note on this ticket prepared it. "
            "It may already be filed: look for the case in Seller Central, then record it as "
            f"`kuroko claim {claim.id} --case-id <case id>` (claim {claim.id} is its new number), or file it "
            "with the text of the earlier note if it never was."), hold=True)
        return
    write_note(ctx, what_note, body, hold=True)


def noted_before(ctx: StepContext, tag: str, *, before: datetime | None = None) -> int | None:
    """The ticket with a robot note carrying ``tag`` (written before ``before``, if given): the
    order's ticket or the follow-up ticket the robot opened for this item (found by its external id,
    which a lost ledger does not take away). None: no such note."""
    desk = ctx.use(HELPDESK)
    places = {ctx.ticket_id, ctx.item.handover_ticket_id, desk.ticket_by_external_id(handover_external_id(ctx.item))}
    for ticket in sorted(t for t in places if t is not None):
        if any(tag in c.body and (before is None or c.created_at < before) for c in desk.comments(ticket)):
            return ticket
    return None


# --- what a person does ------------------------------------------------------------------------
def _new_claims(ledger: Ledger, item: WorkItem) -> dict[str, list[str]]:
    """The console offers `claim` on an item for its claims not filed yet (status New)."""
    return {"claim_id": [str(c.id) for c in list_claims(ledger, item_id=item.id) if c.status == ClaimStatus.NEW]}


@procedure.command(fits=lambda item: item.procedure == NAME and item.state == ItemState.HELD.value
                   and bool(item.facts.get("claims")), keyed=False, item_choices=_new_claims)
def claim(desk: DeskContext,
          claim_id: Annotated[int, typer.Argument(help="The claim's number, as in the robot's note.")],
          case_id: Annotated[str, typer.Option("--case-id", help="The case id Seller Central gave.")],
          amount: Annotated[str | None, typer.Option("--amount", help="The amount claimed (e.g. 1980).")] = None,
          currency: Annotated[str, typer.Option("--currency", help="The amount's currency.")] = "JPY") -> str:
    """Record the case id of a claim a person filed in Seller Central (and the amount claimed)."""
    found = get_claim(desk.ledger, claim_id)
    if found is None:
        raise KurokoError(f"the ledger has no claim {claim_id}; the robot's note names it.")
    case = case_id.strip()
    if not case.isdigit():
        raise KurokoError(f"{case_id!r} is not a Seller Central case id (digits only).")
    if found.case_id and found.case_id != case:
        raise KurokoError(f"claim {claim_id} already has case id {found.case_id}.")
    claimed = None
    if amount is not None:
        try:
            claimed = Decimal(amount.replace(",", "").strip())
        except InvalidOperation:
            raise KurokoError(f"--amount {amount!r} is not an amount.") from None
    record_claim_case(desk.ledger, claim_id, case, now=desk.now)
    if claimed is not None:
        update_claim(desk.ledger, claim_id, amount_claimed=claimed, currency=currency.strip().upper())
    desk.ledger.audit(item_id=found.item_id, at=desk.now, actor=desk.by, system="kuroko", action="claim_filed",
                      detail={"claim": claim_id, "case_id": case, "kind": found.kind})
    return f"Recorded: claim {claim_id} ({found.kind}, MCF order {found.mcf_order_id}) filed as case {case}."
