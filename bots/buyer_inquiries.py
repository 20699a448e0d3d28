"""Buyers' questions about their order, answered from the real tracking; returns with an Amazon RMA
(docs/procedures/buyer_inquiries.md; SPEC.md section B, seed 002).

    intake (router: bots/routing.py) → answer                       (one item per buyer ticket)
    `kuroko return` / tag kuroko_return → make_return → send_rma → follow_return

``answer`` finds the order (the Rakuten order number in the ticket, NFKC-normalised, else the
buyer's masked address on a known order), and when the buyer asks where the parcel is, drafts the
answer in Japanese from the MCF order (getFulfillmentOrder) and each package's tracking
(getPackageTrackingDetails), within the seed's rules: nothing to track before shipping; within a
day of shipping, allow a day for tracking to appear; some carriers report only the delivery; late
(after the estimated delivery date) → an apology, and the order's after-sales item handed to a
person. The answer is an internal note ready to send (ticket Open), or with
``KUROKO_INQUIRY_REPLY=public`` the public reply. Anything else (an unknown order, a question not
about delivery) goes to a person with what was found.

A return is a person's decision: ``kuroko return ITEM --reason CODE [--item SKU:QTY …]`` or the
ticket's tags ``kuroko_return`` + ``kuroko_return_reason_<code>``. The reason is checked against
listReturnReasonCodes for each SKU; createFulfillmentReturn gets one item per unit, each with a
``sellerReturnItemId`` made of (MCF order, order item, unit number), unit numbers fixed in the
item's facts when the return is asked — so a repeat or a crash finds the same authorization
(DuplicateRequest) instead of making a second. The RMA goes on the ticket; the return items are
followed until Processed: Sellable → "back in stock"; CarrierDamaged/FulfillerDamaged → a damaged
claim; Defective/CustomerDamaged → a person. Refusals (not shipped, nothing returnable, an item not
in the order, a reason not offered) → a clear note, nothing created.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo

import typer
from pydantic import Field

from bots import mcf_aftercare as aftercare
from bots import rakuten_sim_order as order_a
from bots.routing import is_masked, order_numbers, route
from kuroko.errors import ApiError, BusinessRuleError, KurokoError
from kuroko.handover import HandOver, marker
from kuroko.ledger import ClaimKind, ItemState, Ledger, WorkItem, open_claim
from kuroko.procedure import DeskContext, Done, IntakeContext, NotYet, Outcome, Procedure, StepContext
from kuroko.settings import KurokoSettings, load
from services.fulfillment import FULFILLMENT, McfReturnItem, ReturnRefused, SpApiError
from services.helpdesk import HELPDESK

if TYPE_CHECKING:
    from services.fulfillment import McfOrder
    from services.helpdesk import Helpdesk, TicketView

NAME = "buyer_inquiries"
RETURN_TAG = "kuroko_return"
REASON_TAG = "kuroko_return_reason_"
ANSWERED_TAG = "kuroko_answered"
RMA_TAG = "kuroko_rma_sent"
DAMAGED_CONDITIONS = {"CARRIERDAMAGED", "FULFILLERDAMAGED"}
PERSON_CONDITIONS = {"DEFECTIVE", "CUSTOMERDAMAGED"}

DELIVERY_WORDS = re.compile(
    r"届かな|届いてい?な|届きませ|まだ届|いつ届|いつ頃届|届く|届け予定|配送状況|配送状態|配達状況|追跡|発送|出荷|荷物|到着|"
    r"where\s+is\s+my|track|shipped|shipping\s+status|deliver|arriv|not\s+received|hasn'?t\s+(come|arrived)",
    re.IGNORECASE)
"""Words of a "where is my parcel" question (NFKC-normalised text)."""
OTHER_WORDS = re.compile(
    r"返品|返金|交換|破損|壊れ|故障|不良|初期不良|キャンセル|解約|領収書|請求|使えな|開通|設定|APN|"
    r"return|refund|exchange|broken|damaged|defect|cancel|invoice|receipt|activate",
    re.IGNORECASE)
"""Words of another matter: such a question goes to a person even if it also mentions delivery."""

BEFORE_MCF_STEPS = ("check_boss", "verify_physical_sim", "confirm_order", "send_thank_you", "create_mcf_order")
"""Procedure A's steps before the MCF order exists (a question then: nothing has shipped yet)."""
CARRIERS_JA = {"JAPAN_POST": "日本郵便", "YAMATO": "ヤマト運輸", "SAGAWA": "佐川急便", "AMZL_JP": "Amazon配送"}
STATUS_JA = {
    "INTRANSIT": "輸送中", "OUTFORDELIVERY": "配達中", "DELIVERED": "配達完了", "DELAYED": "遅延",
    "DELIVERYATTEMPTED": "ご不在のため持ち戻り", "AVAILABLEFORPICKUP": "受け取り可能", "UNDELIVERABLE": "配達不能",
    "RETURNING": "返送中", "RETURNED": "返送済み", "CUSTOMERACTION": "お客様のご対応待ち", "UNKNOWN": "確認中",
}


class InquiryRules(KurokoSettings):
    """The buyer-question procedure's rules (KUROKO_INQUIRY_* settings)."""

    inquiry_reply: Literal["note", "public"] = "note"
    """How an answer (and an RMA) goes on the buyer's ticket: ``note`` (default) an internal note ready
    to send, the ticket Open, for a person to send; ``public`` the public reply itself. A public reply to
    a masked Rakuten address (…@*.fw.rakuten.ne.jp) reaches the buyer only when the Zendesk account
    sends through Rakuten's mail relay (sub.fw.rakuten.ne.jp:587) from the shop's address registered
    in RMS; from Zendesk's own mail servers Rakuten rejects it and the buyer never sees it."""
    inquiry_allow_hours: float = 24
    """Tracking is not expected before this long after the parcel left (Amazon: allow at least a day)."""
    inquiry_delivery_only_carriers: list[str] = Field(default_factory=list)
    """Carrier codes known to report only the delivery (no scans before it)."""
    inquiry_follow_return_hours: float = 12
    """How often a return's items are read until Amazon has processed them."""


def rules() -> InquiryRules:
    return load(InquiryRules)


procedure = Procedure(NAME, title="Buyer questions and returns", item_label="buyer question", desk=HELPDESK)


class UnknownOrder(BusinessRuleError):
    code = "unknown_order"


class NotAboutDelivery(BusinessRuleError):
    code = "not_about_delivery"


class ReturnOutcome(BusinessRuleError):
    code = "return_needs_person"


# --- small helpers ---------------------------------------------------------------------------
def item_key(ticket_id: int) -> str:
    return f"ticket-{ticket_id}"


def tz(ctx: StepContext | DeskContext | IntakeContext) -> ZoneInfo:
    return ZoneInfo(ctx.settings.timezone)


def jst_day(ctx: StepContext, moment: datetime) -> date:
    return moment.astimezone(tz(ctx)).date()


def ja_date(day: date | None) -> str:
    return f"{day.year}年{day.month}月{day.day}日" if day else "未定"


def handover(ctx: StepContext) -> HandOver:
    return HandOver(ctx.use(HELPDESK), ctx.ledger, ctx.effects, hold_tag=ctx.settings.hold_tag,
                    title=procedure.item_label)


def note(ctx: StepContext, what: str, body: str, *, hold: bool = False) -> int:
    """A note for the desk on the buyer's ticket (or the engine's follow-up ticket), once (its marker)."""
    return handover(ctx).note(ctx.item, ctx.now, body, marker(ctx.key, what), action=f"note_{what}",
                              status="open", hold=hold, reason=what)


def is_delivery_question(text: str) -> bool:
    plain = unicodedata.normalize("NFKC", text)
    return bool(DELIVERY_WORDS.search(plain)) and not OTHER_WORDS.search(plain)


def known_orders(ledger: Ledger) -> tuple[dict[str, WorkItem], dict[str, str]]:
    """Procedure A's orders by number, and their masked buyer addresses → order number."""
    by_number = {item.key: item for item in ledger.items(procedure=order_a.NAME)}
    addresses = {}
    for number, item in by_number.items():
        email = str((item.facts.get("ship_to") or {}).get("email") or "").strip().casefold()
        if is_masked(email):
            addresses[email] = number
    return by_number, addresses


def robot_ticket(ticket: TicketView) -> bool:
    """A ticket the robot opened itself (a hand-over: 'Kuroko: … needs a person')."""
    return ticket.subject.startswith("Kuroko:")


# --- intake ------------------------------------------------------------------------------------
@procedure.intake
def take_in(ctx: IntakeContext) -> None:
    """Every new ticket the router gives this procedure becomes an item (key ``ticket-<id>``), and a
    buyer ticket tagged ``kuroko_return`` asks its item for a return."""
    desk = ctx.use(HELPDESK)
    known = ctx.ledger.known_ticket_ids()
    by_number, addresses = known_orders(ctx.ledger)
    for ticket in desk.unsolved_tickets():
        if ticket.id in known or robot_ticket(ticket):
            continue
        if route(ticket, known_addresses=addresses) != NAME:
            continue
        numbers = order_numbers(ticket)
        sender = (ticket.requester_email or "").strip().casefold()
        facts = {"numbers": numbers, "requester_email": ticket.requester_email,
                 "order_number": next((n for n in numbers if n in by_number), None) or (
                     addresses.get(sender) if not numbers else None),
                 "matched_by": "number" if numbers else "address"}
        item = ctx.take_in(item_key(ticket.id), ticket_id=ticket.id, facts=facts)
        if item is not None:
            ctx.ledger.add_ticket(ticket.id, item.id, "inquiry", ctx.now)
            ctx.taken_in.append(f"ticket {ticket.id}: buyer question ({facts['matched_by']}: "
                                f"{facts['order_number'] or ', '.join(numbers) or sender})")
    for ticket in desk.tagged_tickets(RETURN_TAG):
        item = ctx.ledger.find_item(item_key(ticket.id), NAME)
        if item is None or (item.facts.get("return") and not item.facts["return"].get("refused")):
            continue
        reasons = [t[len(REASON_TAG):] for t in ticket.tags if t.startswith(REASON_TAG)]
        asked = item.facts.get("return_tag_problem")
        try:
            if len(reasons) != 1:
                raise KurokoError(f"ticket {ticket.id} is tagged {RETURN_TAG} but has "
                                  f"{'no' if not reasons else 'more than one'} {REASON_TAG}<code> tag; "
                                  f"add exactly one (e.g. {REASON_TAG}cr-defective)")
            if item.facts.get("return", {}).get("refused") and item.facts["return"].get("by_tag") == reasons[0]:
                continue  # refused already for this very tag: a person changes the tag or runs `kuroko return`
            said = ask_return(ctx.ledger, item, ctx.now, f"{ctx.effects.actor} (tag {RETURN_TAG})",
                              reason=reasons[0], units=None, comment=None, by_tag=reasons[0])
            ctx.taken_in.append(f"ticket {ticket.id}: {said}")
        except KurokoError as exc:
            if asked == exc.message:
                continue
            ctx.ledger.update_item(item.id, ctx.now, facts={"return_tag_problem": exc.message})
            ctx.failed.append(f"ticket {ticket.id}: return not asked: {exc.message}")
            tag_problem_note(ctx, item, exc.message)


def tag_problem_note(ctx: IntakeContext, item: WorkItem, message: str) -> None:
    desk = ctx.use(HELPDESK)
    over = HandOver(desk, ctx.ledger, ctx.effects, hold_tag=ctx.settings.hold_tag, title=procedure.item_label)
    seq = len(ctx.ledger.audit_trail(item.id))
    over.note(item, ctx.now, f"Return not asked: {message}. Nothing was created in Amazon.",
              marker(item.key, f"return-tag-{seq}"), action="note_return_tag", hold=False)


# --- the answer ------------------------------------------------------------------------------
@procedure.step(first=True, final=True, needs_person=(
                    "Answer the buyer by hand (the order's facts are above); for a return run "
                    "`kuroko return ITEM --reason CODE`, or tag the ticket kuroko_return and "
                    "kuroko_return_reason_<code>."))
def answer(ctx: StepContext) -> Outcome:
    desk = ctx.use(HELPDESK)
    ticket = desk.ticket(ctx.ticket_id)
    order_item = find_order(ctx, ticket)
    number = order_item.key
    ctx.facts["order_number"] = number
    mcf_id = order_item.facts.get("mcf_id")
    order = ctx.use(FULFILLMENT).get_order(str(mcf_id)) if mcf_id else None
    found = situation(ctx, order, order_item) if order is not None else None
    if found is None and not mcf_id and order_item.state == ItemState.ACTIVE.value \
            and order_item.step in BEFORE_MCF_STEPS:
        found = {"kind": "not_shipped", "edd": None, "mcf_status": None, "mcf_id": None, "pending_units": 0,
                 "parcels": []}  # procedure A has not sent it to MCF yet: nothing has shipped
    if found is not None:
        ctx.facts["situation"] = {k: v for k, v in found.items() if k != "parcels"}
        ctx.facts["parcels"] = found["parcels"]
    about = f"{ticket.subject}\n{ticket.description}"
    if not is_delivery_question(about):
        raise NotAboutDelivery(f"the buyer's ticket is about order {number} but not (only) about where the parcel "
                               f"is, so Kuroko did not answer it. What Kuroko knows of the order:\n"
                               + order_facts_text(ctx, order_item, found))
    if found is None:
        raise NotAboutDelivery(f"the buyer asks where order {number} is, but it was not sent through Amazon MCF "
                               f"(procedure A: {order_item.state}, {order_item.path or order_item.step}), so "
                               "there is no MCF tracking to answer from.\n" + order_facts_text(ctx, order_item, None))
    text = answer_text(ctx, order_item, found)
    write_for_buyer(ctx, desk, "answer", text, ANSWERED_TAG,
                    lead=f"Kuroko drafted this answer from the real tracking of order {number} "
                         f"(MCF order {mcf_id}, {found['kind']}).")
    if found["kind"] == "late":
        hand_aftercare_to_person(ctx, str(mcf_id), number, found)
    return Done(None, detail=f"answered ({found['kind']}) for order {number}", path=found["kind"])


def find_order(ctx: StepContext, ticket: TicketView) -> WorkItem:
    by_number, addresses = known_orders(ctx.ledger)
    numbers = ctx.facts.get("numbers") or []
    known = [n for n in numbers if n in by_number]
    if len(known) > 1:
        raise UnknownOrder(f"the ticket names several orders ({', '.join(known)}); answer by hand")
    if known:
        return by_number[known[0]]
    if numbers:
        raise UnknownOrder(f"the ticket names Rakuten order {', '.join(numbers)}, which Kuroko does not know (not an "
                           f"order procedure A took in). Sender: {ticket.requester_email or 'unknown'}. Look the "
                           "order up in RMS and answer by hand.")
    sender = (ticket.requester_email or "").strip().casefold()
    if sender in addresses:
        return by_number[addresses[sender]]
    raise UnknownOrder(f"the ticket names no order number and its sender {ticket.requester_email or 'unknown'} is the "
                       "address of no order Kuroko knows. Ask the buyer for the order number.")


def situation(ctx: StepContext, order: McfOrder, order_item: WorkItem) -> dict[str, Any]:
    """Where the order's parcels are, read now from Amazon: kind ∈ not_shipped, just_shipped,
    in_transit, delivered, late; one row per package."""
    fulfillment = ctx.use(FULFILLMENT)
    r = rules()
    edd = jst_day(ctx, order.estimated_arrival) if order.estimated_arrival else None
    today = jst_day(ctx, ctx.now)
    parcels: list[dict[str, Any]] = []
    for shipment in order.shipments:
        if not shipment.shipped:
            continue
        for package in shipment.packages:
            shipped_at = package.shipped_at or shipment.shipped_at or ctx.now
            info = fulfillment.tracking(package.package_number)
            fresh = ctx.now - shipped_at < timedelta(hours=r.inquiry_allow_hours)
            parcels.append({
                "package": package.package_number, "shipment": shipment.shipment_id,
                "carrier_code": package.carrier_code,
                "carrier": CARRIERS_JA.get(package.carrier_code, package.carrier_code),
                "tracking": package.tracking_number, "shipped_on": jst_day(ctx, shipped_at).isoformat(),
                "fresh": fresh, "found": info.found, "status": info.current_status if info.found else None,
                "status_key": info.status_key if info.found else None, "events": len(info.events),
                "link": info.customer_tracking_link, "delivered": info.delivered,
                "delivered_on": jst_day(ctx, info.delivered_at).isoformat() if info.delivered_at else None,
                "delivery_only": package.carrier_code in r.inquiry_delivery_only_carriers
                or (info.found and not fresh and not info.events) or (not info.found and not fresh),
            })
    pending = sum(max(i.quantity - i.shipped - i.not_shipping, 0) for i in order.items)
    if not parcels:
        kind = "late" if edd is not None and today > edd else "not_shipped"
    elif all(p["delivered"] for p in parcels) and not pending:
        kind = "delivered"
    elif edd is not None and today > edd:
        kind = "late"
    elif all(p["fresh"] for p in parcels if not p["delivered"]):
        kind = "just_shipped"
    else:
        kind = "in_transit"
    return {"kind": kind, "edd": edd.isoformat() if edd else None, "mcf_status": order.status,
            "mcf_id": order.seller_fulfillment_order_id, "pending_units": pending, "parcels": parcels}


def answer_text(ctx: StepContext, order_item: WorkItem, found: dict[str, Any]) -> str:
    """The answer to the buyer, in Japanese, within the seed's rules."""
    name = str((order_item.facts.get("ship_to") or {}).get("name") or "お客").strip()
    edd = date.fromisoformat(found["edd"]) if found.get("edd") else None
    lines = [f"{name}様", "", "お問い合わせいただきありがとうございます。",
             f"ご注文（注文番号 {order_item.key}）の配送状況をお知らせいたします。", ""]
    kind = found["kind"]
    parcels = found["parcels"]
    if kind == "late":
        lines += [f"お届け予定日（{ja_date(edd)}）を過ぎてもお届けできておらず、大変申し訳ございません。",
                  "現在、当店にて配送状況を確認しております。確認でき次第、あらためてご連絡いたします。", ""]
    if not parcels:
        lines += ["ご注文の商品はまだ出荷されておりません。",
                  "追跡番号は出荷後にのみお知らせできます。出荷いたしましたら、配送業者と追跡番号をご連絡いたします。"]
    for n, p in enumerate(parcels, 1):
        head = f"【お荷物{n}】" if len(parcels) > 1 else "【お荷物】"
        lines += [head, f"出荷日: {ja_date(date.fromisoformat(p['shipped_on']))}", f"配送業者: {p['carrier']}",
                  f"追跡番号: {p['tracking']}"]
        if p.get("link"):
            lines.append(f"配送状況の確認: {p['link']}")
        if p["delivered"]:
            lines.append(f"配送状況: 配達完了（{ja_date(date.fromisoformat(p['delivered_on']))}）"
                         if p.get("delivered_on") else "配送状況: 配達完了")
        elif p["fresh"]:
            lines.append("出荷から追跡情報が表示されるまで1日ほどかかります。表示されない場合は、1日ほどおいてから"
                         "再度ご確認ください。")
        elif p["delivery_only"]:
            lines.append("この配送業者は配達完了のみをお知らせする方式のため、配達完了までの詳しい追跡情報は"
                         "お伝えできません。")
        elif p.get("status_key"):
            lines.append(f"配送状況: {STATUS_JA.get(p['status_key'], p['status'])}")
        lines.append("")
    if kind != "delivered" and edd is not None:
        lines.append(f"お届け予定日: {ja_date(edd)}")
    if found.get("pending_units") and parcels:
        lines.append("残りの商品は準備ができ次第出荷いたします。")
    lines += ["", "今後ともよろしくお願いいたします。"]
    return "\n".join(line for line in lines).strip()


def order_facts_text(ctx: StepContext, order_item: WorkItem, found: dict[str, Any] | None) -> str:
    facts = order_item.facts
    items = ", ".join(f"{i.get('sku')} × {i.get('quantity')}" for i in facts.get("items") or []) or "unknown"
    lines = [f"- Rakuten order {order_item.key}: procedure A {order_item.state} at {order_item.step}"
             + (f" ({order_item.path})" if order_item.path else ""),
             f"- items: {items}; buyer: {(facts.get('ship_to') or {}).get('name', 'unknown')}"]
    if facts.get("mcf_id"):
        lines.append(f"- MCF order {facts['mcf_id']}"
                     + (f": {found['mcf_status']}, EDD {found['edd'] or 'unknown'}, {found['kind']}" if found else ""))
    for p in (found or {}).get("parcels", []):
        where = f"delivered {p['delivered_on'] or ''}" if p["delivered"] else p["status"] or "no tracking yet"
        lines.append(f"- parcel {p['package']}: {p['carrier']} {p['tracking']}, shipped {p['shipped_on']}, {where}")
    returns = [i for i in ctx.ledger.items(procedure=NAME) if i.facts.get("order_number") == order_item.key
               and i.facts.get("return", {}).get("authorization")]
    for i in returns:
        auth = i.facts["return"]["authorization"]
        lines.append(f"- return {auth['authorization_id']} (RMA {auth['amazon_rma_id']}) asked on {i.key}")
    return "\n".join(lines)


def write_for_buyer(ctx: StepContext, desk: Helpdesk, what: str, text: str, tag: str, *, lead: str) -> None:
    """``text`` for the buyer on the item's ticket, once: by default an internal note ready to send
    (ticket Open), with KUROKO_INQUIRY_REPLY=public the public reply. ``tag`` (added in the same update)
    and the note's marker say it was written."""
    ticket = desk.ticket(ctx.ticket_id)
    mark = marker(ctx.key, what)
    if tag in ticket.tags or any(mark in c.body for c in desk.comments(ctx.ticket_id)):
        ctx.facts[f"{what}_written"] = "found"
        return
    if rules().inquiry_reply == "public":
        ctx.act("zendesk", f"reply_{what}",
                lambda: desk.add_public_reply(ctx.ticket_id, text, status="open", add_tags=[tag]),
                ticket=str(ctx.ticket_id), reply="public")
        ctx.facts[f"{what}_written"] = "public"
        return
    body = (f"{lead}\nReady to send: copy the text between the lines into a public reply (Rakuten's masked "
            f"address is reached only through Rakuten's mail relay from the shop's registered address).\n\n"
            f"---\n{text}\n---\n\n{mark}")
    ctx.act("zendesk", f"draft_{what}",
            lambda: desk.add_internal_note(ctx.ticket_id, body, status="open", add_tags=[tag]),
            ticket=str(ctx.ticket_id), reply="note")
    ctx.facts[f"{what}_written"] = "note"


def hand_aftercare_to_person(ctx: StepContext, mcf_id: str, number: str, found: dict[str, Any]) -> None:
    """A late parcel the buyer asks about: the after-sales item goes to a person (held, with a note)."""
    after = ctx.ledger.find_item(mcf_id, aftercare.NAME)
    if after is None:
        return
    parcels = "; ".join(f"{p['carrier']} {p['tracking']} ({p['status'] or 'no tracking'})" for p in found["parcels"])
    body = (f"The buyer of Rakuten order {number} asks where the parcel is (ticket #{ctx.ticket_id}), and MCF order "
            f"{mcf_id} is late: estimated delivery date {found['edd'] or 'unknown'}, "
            f"{parcels or 'nothing shipped yet'}.\nKuroko drafted an apology on the buyer's ticket saying it is being "
            "checked. Needed: check the parcel with the carrier (or Seller Support if it has not shipped), tell the "
            f"buyer, then `kuroko release {mcf_id}` so Kuroko follows the parcel again.")
    over = HandOver(ctx.use(HELPDESK), ctx.ledger, ctx.effects, hold_tag=ctx.settings.hold_tag,
                    title=aftercare.procedure.item_label)
    over.note(after, ctx.now, body, marker(after.key, f"buyer-late-{ctx.ticket_id}"), action="hand_to_person",
              hold=True, reason="buyer_asked_late")
    after = ctx.ledger.get_item(after.id)
    if after.state == ItemState.ACTIVE.value and not ctx.dry_run:
        ctx.ledger.update_item(after.id, ctx.now, state=ItemState.HELD.value, hold_code="buyer_asked_late",
                               hold_reason=f"late; the buyer asks on ticket #{ctx.ticket_id}")
        ctx.ledger.audit(item_id=after.id, at=ctx.now, actor="robot", system="kuroko", action="handed_over",
                         detail={"code": "buyer_asked_late", "ticket": ctx.ticket_id})
    ctx.facts["aftercare_handed_over"] = after.key


# --- returns: what a person asks --------------------------------------------------------------
def parse_units(values: list[str] | str | None) -> dict[str, int] | None:
    """``--item SKU:QTY`` (repeated), or the console's one field ("SKU:2, SKU2:1")."""
    if isinstance(values, str):
        values = re.split(r"[\s,、]+", values)
    values = [v for v in values or [] if v.strip()]
    if not values:
        return None
    units: dict[str, int] = {}
    for value in values:
        sku, sep, qty = value.strip().rpartition(":")
        if not sep or not sku or not qty.strip().isdigit() or int(qty) < 1:
            raise KurokoError(f"--item {value!r} is not SKU:QTY (e.g. SIM-DATA-30D-20GB:2)")
        units[sku.strip()] = units.get(sku.strip(), 0) + int(qty)
    return units


def ask_return(ledger: Ledger, item: WorkItem, now: datetime, by: str, *, reason: str, units: dict[str, int] | None,
               comment: str | None, by_tag: str | None = None) -> str:
    """Record a return on the buyer question's item and set it going (step make_return). Unit numbers
    are fixed here, per SKU, after those of the order's other returns: the same request asked again
    finds this one."""
    number = item.facts.get("order_number")
    order_item = ledger.find_item(str(number), order_a.NAME) if number else None
    if order_item is None or not order_item.facts.get("mcf_id"):
        raise KurokoError(f"{item.key} is about no Rakuten order Kuroko sent through Amazon MCF; "
                          "create the return in Seller Central by hand.")
    mcf_id = str(order_item.facts["mcf_id"])
    ordered = {str(i["sku"]): int(i["quantity"]) for i in order_item.facts.get("items") or []}
    wanted = units or ordered
    reason = reason.strip()
    if not reason:
        raise KurokoError("give the return reason code (--reason, e.g. CR-DEFECTIVE)")
    existing = item.facts.get("return") or {}
    same = (existing.get("reason", "").casefold() == reason.casefold() and existing.get("wanted") == wanted
            and existing.get("comment") == comment)
    if existing and not existing.get("refused"):
        auth = existing.get("authorization")
        if same:
            return (f"{item.key} already has this return" + (f": authorization {auth['authorization_id']}, RMA "
                    f"{auth['amazon_rma_id']}" if auth else " (being created)") + "; nothing new was asked.")
        raise KurokoError(f"{item.key} already has a return ({existing.get('reason')}, "
                          f"{', '.join(f'{s}:{q}' for s, q in existing.get('wanted', {}).items())}); a further return "
                          "needs its own buyer ticket.")
    used: dict[str, set[int]] = {}
    for other in ledger.items(procedure=NAME):
        r = other.facts.get("return") or {}
        if other.id == item.id or r.get("mcf_id") != mcf_id or r.get("refused"):
            continue
        for sku, numbers in (r.get("units") or {}).items():
            used.setdefault(sku, set()).update(numbers)
    numbered: dict[str, list[int]] = {}
    for sku, qty in wanted.items():
        free = (n for n in range(1, 10_000) if n not in used.get(sku, set()))
        numbered[sku] = [next(free) for _ in range(qty)]
    seq = int(existing.get("seq", 0)) + 1
    request = {"mcf_id": mcf_id, "order_number": number, "reason": reason, "wanted": wanted, "units": numbered,
               "comment": comment, "asked_by": by, "asked_at": now.isoformat(), "seq": seq, "by_tag": by_tag}
    ledger.update_item(item.id, now, facts={"return": request}, step="make_return", state=ItemState.ACTIVE.value,
                       next_due_at=now, attempt=0, hold_code=None, hold_reason=None)
    ledger.audit(item_id=item.id, at=now, actor=by, system="kuroko", action="return_asked",
                 detail={"reason": reason, "units": {s: len(n) for s, n in numbered.items()}})
    return (f"Return asked for order {number} (MCF order {mcf_id}): "
            f"{', '.join(f'{s} × {q}' for s, q in wanted.items())}, reason {reason}. "
            "Kuroko creates it at the next pass.")


def _buyer_item(desk: DeskContext, ref: str) -> WorkItem:
    ref = ref.strip().lstrip("#")
    if ref.isdigit():
        ref = item_key(int(ref))
    found = desk.ledger.find_item(ref, NAME)
    if found is not None:
        return found
    asked = [i for i in desk.ledger.items(procedure=NAME) if i.facts.get("order_number") == ref]
    if len(asked) == 1:
        return asked[0]
    if asked:
        raise KurokoError(f"order {ref} has several buyer tickets ({', '.join(i.key for i in asked)}); name one")
    raise KurokoError(f"no buyer question {ref!r}: give its item (ticket-123), its ticket number or the Rakuten "
                      "order number of a ticket Kuroko took in. `kuroko status` lists them.")


def return_(desk: DeskContext,
            item: Annotated[str, typer.Argument(help="The buyer's ticket: its item (ticket-123), ticket number, or "
                                                     "the Rakuten order number.")],
            reason: Annotated[str, typer.Option("--reason", help="Amazon's return reason code, e.g. CR-DEFECTIVE "
                                                                 "(listReturnReasonCodes of the SKU).")],
            units: Annotated[list[str] | None, typer.Option("--item", help="SKU:QTY to return; repeat for several. "
                                                                           "Default: every unit of the order.")] = None,
            comment: Annotated[str | None, typer.Option("--comment", help="A comment for Amazon (≤ 1000).")] = None
            ) -> str:
    """Return units of an MCF order: Amazon's RMA goes on the buyer's ticket, the return is followed."""
    if comment is not None and len(comment) > 1000:
        raise KurokoError("--comment is longer than Amazon's 1000 characters")
    found = _buyer_item(desk, item)
    return ask_return(desk.ledger, found, desk.now, desk.by, reason=reason, units=parse_units(units), comment=comment)


return_.__name__ = "return"
# The console offers a return on a buyer's question once it is answered or with a person, not on every
# question still in hand (those would all look as if they waited for a person on the Waiting page).
procedure.command(return_, fits=lambda item: item.procedure == NAME and item.state != ItemState.ACTIVE.value)


# --- returns: the steps -----------------------------------------------------------------------
def refuse(ctx: StepContext, code: str, text: str) -> Outcome:
    r = ctx.facts["return"]
    r["refused"] = code
    note(ctx, f"return-refused-{r.get('seq', 1)}",
         f"Return not created for order {r['order_number']} (MCF order {r['mcf_id']}): {text}\n"
         f"Amazon's reason: {code}. Nothing was created in Amazon. If another return is right, run "
         f"`kuroko return {ctx.key} --reason CODE [--item SKU:QTY]`.")
    return Done(None, detail=f"return refused: {code}", path="return_refused")


@procedure.step(then="send_rma", final=True, needs_person=(
                    "Create the return in Seller Central (Manage Orders → the MCF order → Create Customer Return) "
                    "or correct the request with `kuroko return`, then give the buyer the RMA."))
def make_return(ctx: StepContext) -> Outcome:
    r = ctx.facts["return"]
    if r.get("authorization"):
        return Done("send_rma", detail="authorization already recorded", found=True)
    fulfillment = ctx.use(FULFILLMENT)
    order = fulfillment.get_order(r["mcf_id"])
    if order is None:
        raise ApiError(f"Amazon has no MCF order {r['mcf_id']} although the robot created it", code="NotFound")
    lines = {i.seller_sku: i for i in order.items}
    items: list[McfReturnItem] = []
    for sku, numbers in r["units"].items():
        line = lines.get(sku)
        if line is None:
            return refuse(ctx, "InvalidValues", f"the MCF order has no item {sku} (it has "
                                                f"{', '.join(lines) or 'none'}).")
        try:
            offered = {x.code.casefold(): x.code for x in fulfillment.return_reasons(sku)}
        except SpApiError as exc:
            if exc.code not in ("InvalidInput", "InvalidParameterValue", "NotFound"):
                raise
            return refuse(ctx, "InvalidValues", f"Amazon offers no return reasons for {sku}: {exc.message}")
        code = offered.get(r["reason"].casefold())
        if code is None:
            return refuse(ctx, "ReasonNotOffered", f"Amazon does not offer the reason {r['reason']} for {sku}; "
                                                   f"it offers {', '.join(offered.values())}.")
        ids = [f"{r['mcf_id']}-{line.item_id}-{n}"[:80] for n in numbers]
        items.append(McfReturnItem(seller_sku=sku, quantity=len(numbers), reason_code=code, comment=r.get("comment"),
                                   return_item_ids=ids))
    try:
        auth = ctx.act("amazon", "create_return", lambda: fulfillment.create_return(r["mcf_id"], items),
                       order=r["mcf_id"], units=sum(i.quantity for i in items), return_items=",".join(
                           i for x in items for i in x.return_item_ids or []))
    except ReturnRefused as exc:
        return refuse(ctx, exc.code, exc.message)
    if auth is None:  # dry run
        return Done(None, detail="dry run: the return would be created")
    r["authorization"] = {
        "authorization_id": auth.authorization_id, "amazon_rma_id": auth.amazon_rma_id,
        "rma_page_url": auth.rma_page_url, "return_to_address": auth.return_to_address.model_dump(),
        "fulfillment_center_id": auth.fulfillment_center_id, "return_item_ids": auth.return_item_ids,
        "refused": auth.refused}
    return Done("send_rma", detail=f"return authorization {auth.authorization_id} ({len(auth.return_item_ids)} "
                                   f"unit(s))", external_ref=auth.authorization_id)


def rma_text(ctx: StepContext) -> str:
    r = ctx.facts["return"]
    a = r["authorization"]
    to = a["return_to_address"]
    address = " ".join(x for x in (f"〒{to.get('postal_code')}" if to.get("postal_code") else "",
                                   to.get("state_or_region"), to.get("city"), to.get("address_line1"),
                                   to.get("address_line2"), to.get("name")) if x)
    units = ", ".join(f"{sku} × {len(n)}" for sku, n in r["units"].items())
    name = ""
    order_item = ctx.ledger.find_item(str(r["order_number"]), order_a.NAME)
    if order_item is not None:
        name = str((order_item.facts.get("ship_to") or {}).get("name") or "")
    lines = [f"{name or 'お客'}様", "", "返品のお申し出を承りました。以下の手順でご返送ください。", "",
             f"注文番号: {r['order_number']}", f"返品する商品: {units}",
             f"返品承認番号（Return Authorization ID）: {a['authorization_id']}",
             f"RMA番号: {a['amazon_rma_id']}", f"返送先: {address}",
             f"RMA（返品ラベル）: {a['rma_page_url']}", "",
             "RMAのページを印刷し、必ず返品する商品と一緒に箱に入れてください。RMAが同梱されていないと返品を受け付けられません。",
             "返送の送料はお客様のご負担となります（ラベルは送料前払いではありません）。", "",
             "商品が届き次第、あらためてご連絡いたします。よろしくお願いいたします。"]
    if a.get("refused"):
        lines.insert(6, "（一部の商品は返品を受け付けられませんでした。別途ご連絡いたします。）")
    return "\n".join(lines)


@procedure.step(then="follow_return", needs_person="Send the buyer the RMA (the authorization above) by hand.")
def send_rma(ctx: StepContext) -> Outcome:
    r = ctx.facts["return"]
    auth_id = r["authorization"]["authorization_id"]
    write_for_buyer(ctx, ctx.use(HELPDESK), f"rma-{auth_id}", rma_text(ctx), RMA_TAG if r.get("seq", 1) == 1
                    else f"{RMA_TAG}_{r['seq']}",
                    lead=f"Amazon authorized the return {auth_id} of order {r['order_number']} (MCF order "
                         f"{r['mcf_id']}). The RMA for the buyer:")
    if r["authorization"].get("refused"):
        refused = ", ".join(f"{i}: {c}" for i, c in r["authorization"]["refused"].items())
        note(ctx, f"return-partly-{auth_id}", f"Amazon refused part of return {auth_id}: {refused}. "
                                              "Those units were not authorized.")
    return Done("follow_return", detail=f"RMA {auth_id} on ticket {ctx.ticket_id}")


@procedure.step(final=True, needs_person=(
                    "Look at the returned units (Seller Central → Manage Orders → Return Status) and decide: a "
                    "replacement or refund for the buyer, a claim to Amazon, or nothing."))
def follow_return(ctx: StepContext) -> Outcome:
    r = ctx.facts["return"]
    auth = r["authorization"]
    order = ctx.use(FULFILLMENT).get_order(r["mcf_id"])
    if order is None:
        raise ApiError(f"Amazon has no MCF order {r['mcf_id']}", code="NotFound")
    mine = [x for x in order.returns if x.return_item_id in set(auth["return_item_ids"])
            or x.authorization_id == auth["authorization_id"]]
    outcomes: dict[str, str] = r.setdefault("outcomes", {})
    for x in mine:
        if x.processed:
            outcomes[x.return_item_id] = x.received_condition or "unknown"
    waiting = [x.return_item_id for x in mine if not x.processed]
    if waiting or not mine:
        return NotYet(ctx.now + timedelta(hours=rules().inquiry_follow_return_hours),
                      f"return {auth['authorization_id']}: {len(waiting) or len(auth['return_item_ids'])} unit(s) "
                      "not yet processed by Amazon")
    by_condition: dict[str, list[Any]] = {}
    for x in mine:
        by_condition.setdefault(re.sub(r"[\s_-]", "", str(x.received_condition or "unknown")).upper(), []).append(x)
    auth_id = auth["authorization_id"]
    person: list[str] = []
    for condition, units in by_condition.items():
        listing = ", ".join(f"{x.seller_sku or x.item_id} ({x.return_item_id})" for x in units)
        if condition == "SELLABLE":
            note(ctx, f"return-sellable-{auth_id}",
                 f"Return {auth_id} of order {r['order_number']}: Amazon received {len(units)} unit(s) Sellable — "
                 f"back in stock (FBA): {listing}. Needed: the buyer's refund, if promised.")
        elif condition in DAMAGED_CONDITIONS:
            damaged_claims(ctx, order, units, condition)
        elif condition in PERSON_CONDITIONS:
            person.append(f"{len(units)} unit(s) received {units[0].received_condition}: {listing}")
        else:
            person.append(f"{len(units)} unit(s) received in a condition Kuroko has no rule for "
                          f"({units[0].received_condition}): {listing}")
    conditions = sorted({str(x.received_condition) for x in mine})
    r["processed"] = conditions
    if person and not r.get("person_told"):  # once: released by the person, the item completes
        r["person_told"] = True
        ctx.facts["return"] = r
        raise ReturnOutcome(f"return {auth_id} of order {r['order_number']} (MCF order {r['mcf_id']}) was processed "
                            "by Amazon: " + "; ".join(person) + ". Nothing goes back to stock and no claim applies: "
                            "decide with the buyer (replacement, refund) and with the supplier.")
    return Done(None, detail=f"return {auth_id} processed: {', '.join(conditions)}",
                path="returned_" + "_".join(c.lower() for c in conditions)[:24])


def damaged_claims(ctx: StepContext, order: McfOrder, units: list[Any], condition: str) -> None:
    """Units Amazon received CarrierDamaged/FulfillerDamaged: a damaged claim per parcel they came in."""
    r = ctx.facts["return"]
    by_package: dict[int, list[Any]] = {}
    for x in units:
        shipment = next((s for s in order.shipments if s.shipment_id == x.shipment_id), None)
        package = shipment.packages[0].package_number if shipment and shipment.packages else 0
        by_package.setdefault(package, []).append(x)
    for package, rows in by_package.items():
        listing = ", ".join(f"{x.seller_sku or x.item_id} ({x.return_item_id})" for x in rows)
        text = (f"Damaged Multi-Channel Fulfillment return: reimbursement request.\n"
                f"MCF order id: {r['mcf_id']}\nReturn authorization: {r['authorization']['authorization_id']} "
                f"(RMA {r['authorization']['amazon_rma_id']})\nPackage number: {package}\n"
                f"Returned units received {rows[0].received_condition}: {listing}\n"
                f"Return reason given: {r['reason']}\n"
                f"Off-Amazon order: Rakuten order {r['order_number']}.")
        claim, _created = open_claim(ctx.ledger, kind=ClaimKind.DAMAGED.value, item_id=ctx.item.id,
                                     mcf_order_id=r["mcf_id"], package_number=package, text=text, now=ctx.now)
        r.setdefault("claims", {})[str(package)] = claim.id
        note(ctx, f"return-claim-{claim.id}",
             f"Return {r['authorization']['authorization_id']}: Amazon received {len(rows)} unit(s) "
             f"{rows[0].received_condition}: claim {claim.id} prepared (damaged).\nPhoto proof is required: attach "
             "photos of the unit as Amazon received it if you have them.\nNeeded: file it in Seller Central with this "
             f"text, then `kuroko claim {claim.id} --case-id <case id>`.\n\n---\n{claim.text}\n---", hold=True)
