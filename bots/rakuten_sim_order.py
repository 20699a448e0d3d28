"""Procedure A of SPEC.md: a Rakuten physical-SIM order, from the Zendesk ticket to the solved
ticket, as named steps.

    intake (per pass) → check_boss ─┬→ close_in_stock                                  (RSL stock)
                                    └→ verify_physical_sim → confirm_order → send_thank_you
                                       → create_mcf_order → note_fulfillment → delete_in_boss
                                       → wait_for_tracking → send_shipping_mail → set_rms_shipping
                                       → check_completion → close_completed

Every step that changes something first looks at the system of record (RMS mail history and
status, the BOSS state, getFulfillmentOrder by our own id, the ticket's comments with a marker) and
records what it finds instead of doing it twice.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from pydantic import Field

from bots.routing import route
from kuroko.connections import checked
from kuroko.errors import (
    ApiError,
    BusinessRuleError,
    KurokoError,
    OrderMismatch,
    PageChanged,
    UnknownValue,
)
from kuroko.handover import marker
from kuroko.procedure import DeskContext, Done, IntakeContext, NotYet, Outcome, Procedure, StepContext
from kuroko.settings import KurokoSettings, load
from pages.boss.connection import BOSS
from pages.boss.order_detail import OrderNotInBoss
from pages.rakuten.connection import RMS
from services.fulfillment import FULFILLMENT
from services.helpdesk import HELPDESK
from services.rakuten_mail import UnreadableTicket, normalize_tracking_number, read_order_mail

if TYPE_CHECKING:
    from kuroko.connections import CheckLine, Connections
    from kuroko.ledger import WorkItem
    from pages.rakuten.order_page import RmsOrderView
    from services.fulfillment import McfOrder, McfShipment
    from services.helpdesk import Helpdesk, TicketView

NAME = "rakuten_sim_order"
AFTERCARE = "mcf_aftercare"
"""The after-sales procedure (bots/mcf_aftercare.py): `kuroko ship` also records its office parcels."""
IN_STOCK_NOTE = "Boss in progress"
BOSS_SHIPPING = ("Shipping in Progress", "Shipped")
BOSS_WAITING = ("Confirmation to be", "New Order")
BOSS_DELETED = "Deleted"
RMS_AWAITING_CONFIRMATION = "注文確認待ち"
RMS_COMPLETE = "完了"
THANK_YOU_TEMPLATE = "サンクスメール"
SHIPPING_TEMPLATES = {"shipping_jm": "発送メール JM", "shipping_js": "発送メール JS"}
JAPAN_POST_CARRIERS = {"日本郵便"}
MCF_GOING = {"NEW", "RECEIVED", "PLANNING", "PROCESSING", "COMPLETE", "COMPLETEPARTIALLED"}
MCF_STOPPED = {"CANCELLED", "UNFULFILLABLE", "INVALID"}
"""Amazon's FulfillmentOrderStatus values (2020-07-01); any other is a value with no rule."""


class RakutenOrderRules(KurokoSettings):
    """Procedure A's business rules (KUROKO_* settings)."""

    confirmation_wait_minutes: int = 30
    """How long an order may sit in `Confirmation to be` before it means 'no RSL stock'."""
    boss_missing_wait_minutes: int = 120
    """How long an order may be missing from the BOSS list before a person is asked."""
    slow_delivery_days: int = 2
    """MCF deliveries promised later than this many days @mention the Japan-office staff member."""
    japan_office_staff: str = "Japan Office"
    """Name of the Zendesk user @mentioned on slow deliveries."""
    shipping_mail_rule: str = "JM"
    """`JM`, `JS`, or `by-carrier` (Japan Post carriers get JM, the others JS)."""
    carrier_map: dict[str, str] = Field(
        default_factory=lambda: {"JAPAN_POST": "日本郵便", "YAMATO": "ヤマト運輸", "SAGAWA": "佐川急便",
                                 "AMZL_JP": "その他"})
    """Amazon carrier code → RMS shipping company (RMS offers a fixed list)."""
    mcf_shipping_speed: str = "Standard"
    esim_markers: list[str] = Field(default_factory=lambda: ["eSIM", "ESIM-"])
    """An item whose name or SKU contains one of these is an eSIM."""
    physical_sim_markers: list[str] = Field(default_factory=lambda: ["物理SIM", "SIM-"])
    """An item is a physical SIM only when it matches one of these and no eSIM marker."""
    tracking_check_hours: int = 2
    completion_wait_days: int = 3
    """Days after the shipping fields were set before a not-complete RMS order goes to a person."""


def rules() -> RakutenOrderRules:
    return load(RakutenOrderRules)


class NotPhysicalSim(BusinessRuleError):
    """An eSIM or mixed order: this procedure ships physical SIMs only."""

    code = "not_physical_sim"


procedure = Procedure(NAME, title="Rakuten physical-SIM order", item_label="Rakuten order", desk=HELPDESK)
procedure.forget_on_release = ("boss_missing_since",)


# --- small helpers ---------------------------------------------------------------------------
def tz(ctx: StepContext) -> ZoneInfo:
    return ZoneInfo(ctx.settings.timezone)


def local_date(ctx: StepContext, moment: datetime | None = None) -> str:
    return (moment or ctx.now).astimezone(tz(ctx)).date().isoformat()


def local_time(ctx: StepContext, moment: datetime | None) -> str:
    return moment.astimezone(tz(ctx)).strftime("%Y-%m-%d %H:%M") if moment else "unknown"


def note_exists(ctx: StepContext, tag: str) -> bool:
    return any(tag in c.body for c in ctx.use(HELPDESK).comments(ctx.ticket_id))


def write_note(ctx: StepContext, what: str, body: str, *, status: str | None,
               add_tags: tuple[str, ...] = (), mention: str | None = None) -> bool:
    """Write the robot's note once. True when a note with this marker was already there (then
    only the status is put right)."""
    tag = marker(ctx.key, what)
    if note_exists(ctx, tag):
        ticket = ctx.use(HELPDESK).ticket(ctx.ticket_id)
        if status is not None and ticket.status != status:
            ctx.act("zendesk", "set_status", lambda: ctx.use(HELPDESK).set_status(ctx.ticket_id, status),
                    status=status)
        return True
    mention_ids: list[int] = []
    if mention:
        user_id = ctx.use(HELPDESK).user_id(mention)
        if user_id is None:
            raise UnknownValue(f"no Zendesk user named {mention!r} to @mention (KUROKO_JAPAN_OFFICE_STAFF)")
        mention_ids = [user_id]
    comment_id = ctx.act(
        "zendesk", f"note_{what}",
        lambda: ctx.use(HELPDESK).add_internal_note(ctx.ticket_id, f"{body}\n\n{tag}", status=status,
                                                       add_tags=add_tags, mention_user_ids=mention_ids),
        ticket=ctx.ticket_id, status=status,
    )
    ctx.external_ref = f"zendesk comment {comment_id}" if comment_id else None
    return False


def order_page_url(ctx: StepContext) -> str:
    url = ctx.facts.get("purchase_history_url")
    if url:
        return str(url)
    return ctx.use(RMS).order_url(ctx.key)


def rms_view(ctx: StepContext, *, fresh: bool = False) -> RmsOrderView:
    view = ctx.use(RMS).order(order_page_url(ctx), ctx.key, fresh=fresh)
    if view.order_number != ctx.key:
        raise OrderMismatch(
            f"the Purchase History link opened RMS order {view.order_number}, but the ticket is about "
            f"{ctx.key}; nothing was clicked"
        )
    return view


def item_kind(sku: str, name: str) -> str:
    text = f"{sku} {name}"
    if any(m in text for m in rules().esim_markers):
        return "esim"
    if any(m in text for m in rules().physical_sim_markers):
        return "physical"
    return "unknown"


def shipping_template(carrier: str) -> str:
    rule = rules().shipping_mail_rule.upper()
    if rule == "JM":
        return "shipping_jm"
    if rule == "JS":
        return "shipping_js"
    if rule == "BY-CARRIER":
        return "shipping_jm" if carrier in JAPAN_POST_CARRIERS else "shipping_js"
    raise UnknownValue(f"KUROKO_SHIPPING_MAIL_RULE is {rules().shipping_mail_rule!r}; use JM, JS or by-carrier")


# --- intake (once per pass, before the steps) --------------------------------------------------
@procedure.intake
def take_in(ctx: IntakeContext) -> None:
    """Take in the new Rakuten order tickets: one item per order number, later tickets merged
    into the earliest. Unreadable tickets are handed to a person. One order's failure (Zendesk
    refusing a merge) does not keep the other orders out."""
    helpdesk = ctx.use(HELPDESK)
    known = ctx.ledger.known_ticket_ids()
    # The router decides (bots/routing.py): only Rakuten's own order mails, never a buyer's reply to one.
    new = [t for t in helpdesk.order_mail_tickets() if t.id not in known and route(t) == NAME]
    by_order: dict[str, list[Any]] = defaultdict(list)
    links: dict[str, str | None] = {}
    for ticket in sorted(new, key=lambda t: (t.created_at, t.id)):
        try:
            mail = read_order_mail(ticket.subject, ticket.description)
        except UnreadableTicket as exc:
            ctx.taken_in.append(hold_unreadable_ticket(ctx, ticket.id, exc))
            continue
        if finished_before(helpdesk, ticket, mail.order_number):
            ctx.ledger.add_ticket(ticket.id, None, "finished", ctx.now)
            ctx.taken_in.append(f"{mail.order_number}: ticket {ticket.id} not taken in again (the robot finished "
                                "the order before; a later note reopened the ticket for a person)")
            continue
        by_order[mail.order_number].append(ticket)
        links.setdefault(mail.order_number, mail.purchase_history_url)
    for number, tickets in by_order.items():
        primary, later = tickets[0], tickets[1:]
        facts = {"purchase_history_url": links[number], "ticket_created_at": primary.created_at.isoformat()}
        item = ctx.take_in(number, ticket_id=primary.id, facts=facts)
        if item is not None:
            ctx.ledger.add_ticket(primary.id, item.id, "primary", ctx.now)
            ctx.taken_in.append(f"{number}: taken in from ticket {primary.id}")
        else:
            found = ctx.ledger.find_item(number, NAME)
            if found is None:
                continue
            item = found
            # The item's own ticket is never merged into itself: a run stopped between writing the
            # item and its ticket record finds that ticket 'new' here again.
            later = [t for t in tickets if t.id != item.ticket_id]
            if len(later) < len(tickets) and item.ticket_id is not None:
                ctx.ledger.add_ticket(item.ticket_id, item.id, "primary", ctx.now)
        if later and item.ticket_id is not None:
            try:
                ctx.taken_in.append(merge_later_mails(ctx, item, [t.id for t in later]))
            except KurokoError as exc:
                ctx.failed.append(f"{number}: {exc.message}")


FINISHED_NOTES = ("completed", "in_stock")
"""The notes that solve an order's ticket: the order is done."""


def finished_before(helpdesk: Helpdesk, ticket: TicketView, number: str) -> bool:
    """A ticket the ledger does not know that already carries the note finishing its order (the
    ledger was lost or is new; an after-sales note or a person reopened the ticket since): it is
    not the robot's to take in and solve again. A new mail (status new) is never read for this."""
    if ticket.status == "new":
        return False
    tags = [marker(number, what) for what in FINISHED_NOTES]
    return any(tag in c.body for c in helpdesk.comments(ticket.id) for tag in tags)


def merge_later_mails(ctx: IntakeContext, item: WorkItem, sources: list[int]) -> str:
    """Merge later mails for a known order into its ticket. Zendesk cannot merge into a closed
    ticket (solved tickets close after some days): then each late mail goes to a person."""
    assert item.ticket_id is not None
    helpdesk, number, target = ctx.use(HELPDESK), item.key, item.ticket_id
    if helpdesk.ticket(target).status == "closed":
        for source in sources:  # in a dry run the ledger is the dry run's own: it remembers what would be
            hand_over_late_mail(ctx, item, source)
            ctx.ledger.add_ticket(source, item.id, "late", ctx.now)
        return f"{number}: {sources} handed to a person (ticket #{target} is closed, nothing to merge into)"
    note = f"Merged into #{target}: another automatic mail for Rakuten order {number}."
    ctx.act("zendesk", "merge_tickets", lambda: helpdesk.merge(target, sources, note=note), item=item,
            target=target, sources=sources)
    for source in sources:  # in a dry run, in the dry run's own ledger (not said again at the next pass)
        ctx.ledger.add_ticket(source, item.id, "merged", ctx.now)
    return f"{number}: {'would merge' if ctx.dry_run else 'merged'} tickets {sources} into {target}"


def hand_over_late_mail(ctx: IntakeContext, item: WorkItem, ticket_id: int) -> None:
    """A note on the late mail's own ticket (once: its marker is looked for first)."""
    tag = marker(item.key, f"late-{ticket_id}")
    helpdesk = ctx.use(HELPDESK)
    if any(tag in c.body for c in helpdesk.comments(ticket_id)):
        return
    where = {"done": "finished", "held": "waiting for a person"}.get(item.state, f"at step {item.step}")
    body = (
        f"Another automatic mail for Rakuten order {item.key}. The order's ticket #{item.ticket_id} "
        "is closed, and Zendesk cannot merge into a closed ticket.\n"
        f"Kuroko's record of this order: {where}. Nothing was done for this mail.\n"
        "Needed: look at the order in RMS; if nothing more is needed, solve this ticket."
    )
    ctx.act("zendesk", "hand_to_person",
            lambda: helpdesk.add_internal_note(ticket_id, f"{body}\n\n{tag}", status="open",
                                               add_tags=[ctx.settings.hold_tag]),
            item=item, ticket=ticket_id, reason=f"late mail; ticket #{item.ticket_id} is closed")


def hold_unreadable_ticket(ctx: IntakeContext, ticket_id: int, error: UnreadableTicket) -> str:
    """A ticket the robot cannot read becomes a held work item named after the ticket."""
    name = f"ticket-{ticket_id}"
    item = ctx.take_in(name, ticket_id=ticket_id, held=(error.code, error.message)) or ctx.ledger.find_item(name, NAME)
    assert item is not None
    body = (
        f"Kuroko could not read this ticket: {error.message}.\n"
        "Nothing was done in BOSS, RMS or Amazon.\n"
        "Needed: find the order by hand. If this is a real order, handle it by hand, or re-send the mail "
        "with the order number."
    )
    tag = marker(name, "unreadable")
    helpdesk = ctx.use(HELPDESK)
    if ctx.dry_run or not any(tag in c.body for c in helpdesk.comments(ticket_id)):
        ctx.act("zendesk", "hand_to_person",
                lambda: helpdesk.add_internal_note(ticket_id, f"{body}\n\n{tag}", status="open",
                                                   add_tags=[ctx.settings.hold_tag]),
                item=item, reason=error.message)
    ctx.ledger.add_ticket(ticket_id, item.id, "unreadable", ctx.now)  # a dry run's: its own ledger
    return f"ticket {ticket_id}: held ({error.message})"


# --- the steps ----------------------------------------------------------------------------
@procedure.step(first=True, then=("close_in_stock", "verify_physical_sim"), needs_person=(
                    "Find the order in BOSS by hand and decide whether it ships from RSL or "
                    "needs MCF."))
def check_boss(ctx: StepContext) -> Outcome:
    """Where is the order on the BOSS list (read once per pass)?"""
    listing = ctx.use(BOSS).listing()
    listed = listing.orders.get(ctx.key)
    if listed is None:
        since = datetime.fromisoformat(ctx.facts.setdefault("boss_missing_since", ctx.now.isoformat()))
        wait = timedelta(minutes=rules().boss_missing_wait_minutes)
        if ctx.now - since >= wait:
            raise OrderNotInBoss(
                f"order {ctx.key} has not been on the BOSS order list since "
                f"{local_time(ctx, since)} ({rules().boss_missing_wait_minutes} minutes)"
            )
        return NotYet(min(ctx.now + timedelta(minutes=10), since + wait), "not on the BOSS list yet")
    ctx.facts.pop("boss_missing_since", None)
    if listed.state in BOSS_SHIPPING:
        return Done("close_in_stock", detail=f"BOSS: {listed.state} (RSL has stock)", path="in_stock")
    if listed.state in BOSS_WAITING:
        placed = listed.placed_at or datetime.fromisoformat(ctx.facts["ticket_created_at"])
        ctx.facts["placed_at"] = placed.isoformat()
        due = placed + timedelta(minutes=rules().confirmation_wait_minutes)
        if ctx.now < due:
            return NotYet(due, f"BOSS: {listed.state} for less than {rules().confirmation_wait_minutes} min")
        return Done("verify_physical_sim", detail=f"BOSS: {listed.state} since {local_time(ctx, placed)}: "
                                                  "no RSL stock")
    if listed.state == BOSS_DELETED and ctx.facts.get("boss_deleted"):
        # Replaying an order the robot already took through BOSS: go on, reconciling step by step.
        return Done("verify_physical_sim", detail="BOSS: deleted by the robot earlier", found=True)
    if listed.state == BOSS_DELETED and (evidence := robot_deleted_it(ctx)):
        # A ledger lost (or started anew) mid-day forgot the deletion; the systems of record did not.
        ctx.facts["boss_deleted"] = True
        return Done("verify_physical_sim", detail=f"BOSS: deleted by the robot earlier ({evidence}); "
                                                  "the order is rebuilt from RMS, Zendesk and Amazon", found=True)
    raise BusinessRuleError(f"BOSS shows order {ctx.key} as {listed.state!r}, which the robot did not do; "
                            "nothing else was touched", code="unexpected_boss_state")


def robot_deleted_it(ctx: StepContext) -> str | None:
    """Why the robot knows it deleted this order in BOSS, though its ledger does not say so (the
    ledger was lost mid-day, or is new): it writes the fulfillment note (MCF or office) and creates the
    MCF order before it deletes, so either one on record is its own trace. None: someone else did."""
    from services.fulfillment import seller_fulfillment_order_id

    if ctx.ticket_id is not None and note_exists(ctx, marker(ctx.key, "fulfillment")):
        return f"its fulfillment note is on ticket #{ctx.ticket_id}"
    sfo_id = seller_fulfillment_order_id(ctx.key)
    if ctx.use(FULFILLMENT).get_order(sfo_id) is not None:
        return f"its MCF order {sfo_id} exists"
    return None


@procedure.step(final=True,
                needs_person="RSL ships this order: check the ticket and solve it by hand.")
def close_in_stock(ctx: StepContext) -> Outcome:
    found = write_note(ctx, "in_stock", IN_STOCK_NOTE, status="solved")
    return Done(None, detail="note 'Boss in progress', ticket solved", external_ref=ctx.external_ref, found=found)


@procedure.step(then="confirm_order", needs_person=(
                    "Handle this order by hand (eSIM or mixed orders are not shipped by "
                    "this procedure); nothing was clicked in RMS or Amazon."))
def verify_physical_sim(ctx: StepContext) -> Outcome:
    view = rms_view(ctx, fresh=True)
    kinds = {item.sku: item_kind(item.sku, item.name) for item in view.items}
    if not view.items:
        raise NotPhysicalSim("RMS shows no items on this order")
    if set(kinds.values()) != {"physical"}:
        listing = ", ".join(f"{sku} ({kind})" for sku, kind in kinds.items())
        what = "an eSIM order" if set(kinds.values()) == {"esim"} else "not only physical SIMs"
        raise NotPhysicalSim(f"RMS shows {what}: {listing}. This procedure ships physical SIMs only; "
                             "nothing was clicked in RMS and nothing was created in Amazon")
    ctx.facts["items"] = [{"sku": i.sku, "quantity": i.quantity} for i in view.items]
    ctx.facts["ship_to"] = {
        "name": view.buyer_name, "postal_code": view.postal_code, "prefecture": view.prefecture,
        "city": view.city, "address": view.address, "phone": view.phone, "email": view.buyer_email,
    }
    return Done("confirm_order", detail="physical SIM: " + ", ".join(kinds))


@procedure.step(then="send_thank_you", needs_person=(
                    "Open the order in RMS and click 注文確認 by hand if it is still waiting "
                    "for confirmation."))
def confirm_order(ctx: StepContext) -> Outcome:
    view = rms_view(ctx)
    if view.status != RMS_AWAITING_CONFIRMATION:
        return Done("send_thank_you", detail=f"already confirmed (RMS: {view.status})", found=True)
    if not view.can_confirm:
        raise PageChanged(f"RMS shows {view.status} for {ctx.key} but no 注文確認 button; the page may have "
                          "changed (selectors/rakuten.yaml)")
    new_view = ctx.act("rms", "confirm_order", ctx.use(RMS).page.confirm_order)
    ctx.use(RMS).remember(new_view)
    return Done("send_thank_you", detail="注文確認 clicked")


@procedure.step(then="create_mcf_order", needs_person=(
                    "Check the order's mail history in RMS; send the サンクスメール by hand if it "
                    "is missing."))
def send_thank_you(ctx: StepContext) -> Outcome:
    view = rms_view(ctx)
    sent = [m for m in view.mails if m.template == THANK_YOU_TEMPLATE]
    if sent:
        return Done("create_mcf_order", detail=f"サンクスメール already sent ({sent[0].mail_id})",
                    external_ref=sent[0].mail_id, found=True)
    new_view = ctx.act("rms", "send_thank_you_mail",
                       lambda: ctx.use(RMS).page.send_mail("thank_you", {"order_number": ctx.key}))
    ctx.use(RMS).remember(new_view)
    ref = next((m.mail_id for m in (new_view.mails if new_view else []) if m.template == THANK_YOU_TEMPLATE), None)
    return Done("create_mcf_order", detail="サンクスメール sent", external_ref=ref)


def mcf_request(ctx: StepContext) -> Any:
    from services.fulfillment import McfAddress, McfItem, McfOrderRequest, seller_fulfillment_order_id

    ship_to = ctx.facts["ship_to"]
    placed = datetime.fromisoformat(ctx.facts.get("placed_at") or ctx.facts["ticket_created_at"])
    return McfOrderRequest(
        seller_fulfillment_order_id=seller_fulfillment_order_id(ctx.key),
        displayable_order_id=ctx.key,
        displayable_order_date=placed,
        displayable_order_comment="ご注文ありがとうございます。",
        shipping_speed=rules().mcf_shipping_speed,
        address=McfAddress(name=ship_to["name"], address_line1=ship_to["address"], city=ship_to["city"],
                           state_or_region=ship_to["prefecture"], postal_code=ship_to["postal_code"],
                           phone=ship_to.get("phone")),
        items=[McfItem(seller_sku=i["sku"], quantity=i["quantity"]) for i in ctx.facts["items"]],
    )


def _record_mcf(ctx: StepContext, sfo_id: str, speed: str, arrival: datetime | None,
                ordered_at: datetime | None = None) -> None:
    """Keep the MCF facts; delivery 'takes more than N days' counts calendar days in Japan."""
    from services.fulfillment import delivery_days

    days = delivery_days(ordered_at or ctx.now, arrival, ctx.settings.timezone) if arrival else None
    ctx.facts.update(mcf_id=sfo_id, mcf_speed=speed, promised_arrival=arrival.isoformat() if arrival else None,
                     delivery_days=days, slow_delivery=bool(days and days > rules().slow_delivery_days),
                     shipment="mcf")


@procedure.step(then="note_fulfillment", needs_person=(
                    "Check the order in Seller Central (MCF) and create it by hand, or "
                    "arrange an office shipment."))
def create_mcf_order(ctx: StepContext) -> Outcome:
    from services.fulfillment import FulfillmentOrderExists

    fulfillment = ctx.use(FULFILLMENT)
    request = mcf_request(ctx)
    sfo_id = request.seller_fulfillment_order_id
    existing = fulfillment.get_order(sfo_id)
    if existing is not None:
        _record_mcf(ctx, sfo_id, existing.shipping_speed, existing.promised_arrival, existing.received_at)
        return Done("note_fulfillment", detail=f"MCF order {sfo_id} already exists ({existing.status})",
                    external_ref=sfo_id, found=True, path="mcf")
    options = fulfillment.preview(request)
    option = next((o for o in options if o.shipping_speed == request.shipping_speed), None)
    if option is None or not option.fulfillable:
        reasons = option.unfulfillable_reasons if option else [f"no {request.shipping_speed} option"]
        ctx.facts.update(shipment="office", mcf_unfulfillable=reasons)
        return Done("note_fulfillment", detail="MCF cannot ship: " + ", ".join(reasons) + " → office shipment",
                    path="office")
    with contextlib.suppress(FulfillmentOrderExists):  # created by a run that stopped before writing it down
        ctx.act("amazon", "create_mcf_order", lambda: fulfillment.create_order(request),
                seller_fulfillment_order_id=sfo_id)
    _record_mcf(ctx, sfo_id, request.shipping_speed, option.latest_arrival)
    return Done("note_fulfillment", detail=f"MCF order {sfo_id} created, promised by "
                                           f"{local_time(ctx, option.latest_arrival)}",
                external_ref=sfo_id, path="mcf")


@procedure.step(then="delete_in_boss",
                needs_person="Write the FBA information on the ticket by hand.")
def note_fulfillment(ctx: StepContext) -> Outcome:
    if ctx.facts.get("shipment") == "office":
        body = (
            "Thank You email (サンクスメール) sent.\n"
            f"Amazon MCF cannot ship this order ({', '.join(ctx.facts.get('mcf_unfulfillable', []))}): it is "
            "to be shipped from the office.\n"
            f"Needed: ship it, then run `kuroko ship {ctx.key} --carrier <carrier> --tracking <number>`."
        )
        found = write_note(ctx, "fulfillment", body, status="open", add_tags=("kuroko_office_shipment",))
        return Done("delete_in_boss", detail="office-shipment note", found=found,
                    external_ref=ctx.external_ref)
    slow = bool(ctx.facts.get("slow_delivery"))
    staff = rules().japan_office_staff
    body = (
        ("@" + staff + f" delivery will take {ctx.facts.get('delivery_days')} days (more than "
         f"{rules().slow_delivery_days}); please keep an eye on this order.\n\n" if slow else "")
        + "Thank You email (サンクスメール) sent.\n"
        "FBA information (Amazon MCF):\n"
        f"- MCF order id: {ctx.facts['mcf_id']}\n"
        f"- shipping speed: {ctx.facts['mcf_speed']}\n"
        f"- promised delivery by: {local_time(ctx, _dt(ctx.facts.get('promised_arrival')))}"
    )
    found = write_note(ctx, "fulfillment", body, status="open", mention=staff if slow else None)
    return Done("delete_in_boss", detail="FBA note" + (f", @{staff}" if slow else ""), found=found,
                external_ref=ctx.external_ref)


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@procedure.step(then="wait_for_tracking", needs_person=(
                    "Delete the order in BOSS by hand with Order Deletion (never Order "
                    "Cancellation)."))
def delete_in_boss(ctx: StepContext) -> Outcome:
    detail = ctx.use(BOSS).detail
    view = detail.open(ctx.key)
    if view.order_number != ctx.key:
        raise OrderMismatch(f"BOSS opened order {view.order_number} instead of {ctx.key}")
    if view.state == BOSS_DELETED:
        ctx.facts["boss_deleted"] = True
        return Done("wait_for_tracking", detail="already deleted in BOSS", found=True)
    ctx.act("boss", "order_deletion", lambda: detail.delete_order(ctx.key))
    ctx.facts["boss_deleted"] = True
    return Done("wait_for_tracking", detail="Order Deletion in BOSS")


@procedure.step(then="send_shipping_mail", needs_person=(
                    "Check the shipment in Seller Central and fill in the shipping details "
                    "by hand, or fix the setting named above and release the order."))
def wait_for_tracking(ctx: StepContext) -> Outcome:
    if ctx.facts.get("shipment") == "office":
        if not ctx.facts.get("tracking_number"):
            return NotYet(ctx.now + timedelta(days=1),
                          f"office shipment: waiting for `kuroko ship {ctx.key} --carrier … --tracking …`")
        return Done("send_shipping_mail", detail="office shipment: tracking given by a person")
    order = ctx.use(FULFILLMENT).get_order(ctx.facts["mcf_id"])
    if order is None and ctx.dry_run:
        return NotYet(ctx.now + timedelta(hours=1), "dry run: the MCF order was not really created")
    if order is None:
        raise ApiError(f"Amazon has no MCF order {ctx.facts['mcf_id']} although it was created", code="NotFound")
    status = order.status_key or order.status.upper()
    shipment = first_shipment(order)
    if shipment is None and status in MCF_NOT_SHIPPING:
        return switch_to_office(ctx, order)
    if status in MCF_STOPPED - MCF_NOT_SHIPPING:
        raise BusinessRuleError(f"Amazon reports MCF order {order.seller_fulfillment_order_id} as {order.status}",
                                code="mcf_not_shipping")
    if status not in MCF_GOING and status not in MCF_NOT_SHIPPING:
        raise UnknownValue(f"Amazon reports MCF order {order.seller_fulfillment_order_id} as {order.status!r}, a "
                           "status the robot has no rule for; nothing was sent to the buyer. Check the order in "
                           "Seller Central")
    if shipment is None:
        # Not shipped by the estimated delivery date is the after-sales procedure's hand-over
        # (mcf_aftercare, with the Seller Support text): this step only keeps looking.
        return NotYet(ctx.now + timedelta(hours=rules().tracking_check_hours),
                      f"MCF order {order.status}: not shipped yet")
    parcels = shipment_parcels(shipment)
    ctx.facts.update(carrier_code=shipment.packages[0].carrier_code,
                     carrier=", ".join(dict.fromkeys(p["carrier"] for p in parcels)),
                     tracking_number=", ".join(p["tracking"] for p in parcels),
                     ship_date=local_date(ctx, shipment.shipped_at or ctx.now),
                     first_shipment=shipment.shipment_id, packages=parcels)
    return Done("send_shipping_mail", detail=f"shipped: {ctx.facts['carrier']} {ctx.facts['tracking_number']}",
                external_ref=f"shipment {shipment.shipment_id}")


MCF_NOT_SHIPPING = {"UNFULFILLABLE", "INVALID"}


def shipped_shipments(order: McfOrder) -> list[McfShipment]:
    """The order's shipments that have left, first shipped first (each its own 発送メール)."""
    far = datetime.max.replace(tzinfo=UTC)
    return sorted((s for s in order.shipments if s.shipped and any(p.tracking_number for p in s.packages)),
                  key=lambda s: (s.shipped_at or far, s.shipment_id))


def first_shipment(order: McfOrder) -> McfShipment | None:
    shipped = shipped_shipments(order)
    return shipped[0] if shipped else None


def shipment_parcels(shipment: McfShipment) -> list[dict[str, Any]]:
    """Each package of a shipment as an RMS 発送明細 wants it: RMS's carrier name and the number."""
    parcels = []
    for package in shipment.packages:
        if not package.tracking_number:
            continue
        carrier = rules().carrier_map.get(package.carrier_code)
        if carrier is None:
            raise UnknownValue(f"Amazon's carrier code {package.carrier_code!r} has no RMS shipping company in "
                               "KUROKO_CARRIER_MAP; add it, then release the order")
        parcels.append({"package_number": package.package_number, "carrier_code": package.carrier_code,
                        "carrier": carrier, "tracking": normalize_tracking_number(package.tracking_number)})
    return parcels


def switch_to_office(ctx: StepContext, order: McfOrder) -> Outcome:
    """Amazon gave up on the order after it was created (Unfulfillable, Invalid) before anything left:
    the office ships it — never a second MCF order."""
    units = order.not_shipping() or {i["sku"]: i["quantity"] for i in ctx.facts.get("items", [])}
    listing = ", ".join(f"{sku} × {n}" for sku, n in units.items())
    ctx.facts.update(shipment="office", office_units=units,
                     mcf_unfulfillable=[f"MCF order {order.seller_fulfillment_order_id} became {order.status}"])
    body = (
        f"Amazon MCF will not ship this order after all: MCF order {order.seller_fulfillment_order_id} is "
        f"{order.status}. Nothing was shipped by Amazon, and no second MCF order will be created.\n"
        f"To ship from the office: {listing}.\n"
        f"Needed: ship it, then run `kuroko ship {ctx.key} --carrier <carrier> --tracking <number>`."
    )
    write_note(ctx, "mcf-office", body, status="open", add_tags=("kuroko_office_shipment",))
    return NotYet(ctx.now + timedelta(hours=rules().tracking_check_hours),
                  f"MCF order {order.status}: office shipment ({listing}), waiting for `kuroko ship`")


@procedure.step(then="set_rms_shipping",
                needs_person="Send the 発送メール from RMS by hand with the carrier and tracking number.")
def send_shipping_mail(ctx: StepContext) -> Outcome:
    template = shipping_template(ctx.facts["carrier"])
    view = rms_view(ctx, fresh=True)
    sent = [m for m in view.mails if m.template in SHIPPING_TEMPLATES.values()]
    if sent:
        return Done("set_rms_shipping", detail=f"{sent[0].template} already sent", external_ref=sent[0].mail_id,
                    found=True)
    ship_date = ctx.facts.setdefault("ship_date", local_date(ctx))
    fields = {"order_number": ctx.key, "ship_date": ship_date, "carrier": ctx.facts["carrier"],
              "tracking_number": ctx.facts["tracking_number"]}
    new_view = ctx.act("rms", "send_shipping_mail", lambda: ctx.use(RMS).page.send_mail(template, fields),
                       template=SHIPPING_TEMPLATES[template], **fields)
    ctx.use(RMS).remember(new_view)
    ctx.facts["shipping_template"] = SHIPPING_TEMPLATES[template]
    return Done("set_rms_shipping", detail=f"{SHIPPING_TEMPLATES[template]} sent")


@procedure.step(then="check_completion",
                needs_person="Fill in 配送会社, 発送日 and お荷物伝票番号 in RMS by hand.")
def set_rms_shipping(ctx: StepContext) -> Outcome:
    from datetime import date

    from pages.rakuten.order_page import ShippingRow

    view = rms_view(ctx)
    today = local_date(ctx)
    parcels = ctx.facts.get("packages") or [{"carrier": ctx.facts["carrier"], "tracking": ctx.facts["tracking_number"]}]
    wanted = [ShippingRow(company=p["carrier"], shipping_date=date.fromisoformat(today), tracking_number=p["tracking"])
              for p in parcels]
    if all(any(row.complete and row.same_parcel(w) for row in view.shipping_rows) for w in wanted):
        ctx.facts.setdefault("shipping_set_on", (view.shipping_date or date.fromisoformat(today)).isoformat())
        return Done("check_completion", detail="shipping fields already set", found=True)
    new_view = ctx.act("rms", "set_shipping", lambda: ctx.use(RMS).page.add_shipping_rows(wanted),
                       rows=[f"{w.company} {w.tracking_number}" for w in wanted], date=today)
    ctx.use(RMS).remember(new_view)
    ctx.facts["shipping_set_on"] = today
    if ctx.dry_run:
        ctx.facts["shipping_set_in_dry_run"] = True
    return Done("check_completion", detail=f"発送明細 {len(wanted)}: " + ", ".join(
        f"{w.company} {w.tracking_number}" for w in wanted) + f", 発送日 {today}")


@procedure.step(then="close_completed", needs_person=(
                    "Look at the order in RMS: the shipping fields are set but it is not "
                    "完了."))
def check_completion(ctx: StepContext) -> Outcome:
    zone = tz(ctx)
    set_on = datetime.fromisoformat(ctx.facts["shipping_set_on"]).date()
    next_day = datetime.combine(set_on + timedelta(days=1), time(9, 0), tzinfo=zone)
    if ctx.now < next_day:
        return NotYet(next_day, "RMS reflects the shipment the next day")
    view = rms_view(ctx, fresh=True)
    if view.status == RMS_COMPLETE:
        return Done("close_completed", detail="RMS: 完了")
    if ctx.dry_run and ctx.facts.get("shipping_set_in_dry_run"):
        # The fields were only set in the dry run: RMS cannot complete the order, and that is no hold.
        return NotYet(ctx.now + timedelta(days=1), f"dry run: the shipping fields were not really set (RMS shows "
                                                   f"{view.status!r})")
    if ctx.now - next_day > timedelta(days=rules().completion_wait_days):
        raise BusinessRuleError(f"RMS still shows {view.status!r} {rules().completion_wait_days} days after "
                                "the shipping fields were set", code="rms_not_complete")
    return NotYet(ctx.now + timedelta(days=1), f"RMS shows {view.status!r}, not 完了 yet")


@procedure.step(final=True,
                needs_person="Write the completion note and solve the ticket by hand.")
def close_completed(ctx: StepContext) -> Outcome:
    body = (
        f"Shipping notification ({ctx.facts.get('shipping_template', '発送メール')}) sent: "
        f"{ctx.facts.get('carrier')} {ctx.facts.get('tracking_number')}, shipped {ctx.facts.get('ship_date')}.\n"
        "Shipment completion confirmed in RMS (完了)."
    )
    if ctx.settings.hold_tag in ctx.use(HELPDESK).ticket(ctx.ticket_id).tags:
        # Another item's hand-over (a late parcel, a claim) is on this ticket: solving it would put
        # that person's note out of sight. The order is done; the person solves the ticket.
        found = write_note(ctx, "completed", body, status=None)
        return Done(None, detail=f"completion note; ticket left open: it carries {ctx.settings.hold_tag} (a person's "
                    "work is on it)", external_ref=ctx.external_ref, found=found)
    found = write_note(ctx, "completed", body, status="solved")
    return Done(None, detail="completion note, ticket solved", external_ref=ctx.external_ref, found=found)


@procedure.preflight
def mention_user_exists(connections: Connections) -> list[CheckLine]:
    """`kuroko check`: the Zendesk user slow deliveries @mention exists."""
    name = rules().japan_office_staff

    def look() -> str:
        user_id = connections.use(HELPDESK).user_id(name)
        if user_id is None:
            raise UnknownValue(f"no active Zendesk user named {name!r} to @mention on slow deliveries: create "
                               "the user or set KUROKO_JAPAN_OFFICE_STAFF to an existing user's name")
        return f"@mention user {name!r} exists (user {user_id})"

    return [checked("zendesk", "@mention user", look)]


@procedure.per_pass
def prepare_pass(connections: Connections, due: list[WorkItem]) -> None:
    """Read the BOSS list once for every due order that needs it."""
    if any(item.step == "check_boss" for item in due):
        connections.use(BOSS).listing()


# --- what a person does ------------------------------------------------------------------------
def _awaits_office_tracking(item: WorkItem) -> bool:
    return (item.state != "done" and item.facts.get("shipment") == "office"
            and not item.facts.get("tracking_number"))


def _rms_carriers() -> list[str]:
    return list(dict.fromkeys(rules().carrier_map.values()))


@procedure.command(fits=_awaits_office_tracking, choices={"carrier": _rms_carriers})
def ship(desk: DeskContext,
         order_number: Annotated[str, typer.Argument(help="The Rakuten order number.")],
         carrier: Annotated[str, typer.Option(help="RMS shipping company (e.g. 日本郵便) or carrier code.")],
         tracking: Annotated[str, typer.Option(help="The parcel's tracking number.")]) -> str:
    """Give an office shipment its carrier and tracking number; the robot then sends the shipping mail."""
    from services.fulfillment import seller_fulfillment_order_id

    item = desk.ledger.find_item(order_number, NAME)
    mcf_key = ""
    if item is None:  # after a lost ledger only the after-sales item may know the order (its MCF order id)
        with contextlib.suppress(ValueError):
            mcf_key = seller_fulfillment_order_id(order_number)
        if not mcf_key or desk.ledger.find_item(mcf_key, AFTERCARE) is None:
            item = desk.item(order_number, NAME)  # says the ledger has no such order
    carriers = rules().carrier_map
    rms_carrier = carriers.get(carrier, carrier)
    if rms_carrier not in set(carriers.values()):
        raise KurokoError(f"unknown carrier {carrier!r}; use one of: {', '.join(sorted(set(carriers.values())))}")
    number = normalize_tracking_number(tracking)
    ship_date = desk.now.astimezone(ZoneInfo(desk.settings.timezone)).date().isoformat()
    if item is None or item.facts.get("shipment") != "office":
        mcf_id = item.facts.get("mcf_id") if item is not None else mcf_key
        after = desk.ledger.find_item(str(mcf_id), AFTERCARE) if mcf_id else None
        if after is None or not after.facts.get("office_units"):
            raise KurokoError(f"order {order_number} is not an office shipment (Amazon ships it).")
        # Units Amazon did not ship after all (mcf_aftercare): the office parcel goes on that item.
        desk.ledger.update_item(after.id, desk.now, next_due_at=desk.now, facts={
            "office_parcel": {"carrier": rms_carrier, "tracking": number, "ship_date": ship_date}})
        desk.ledger.audit(item_id=after.id, at=desk.now, actor=desk.by, system="kuroko", action="office_shipped",
                          detail={"carrier": rms_carrier, "tracking": number})
        units = ", ".join(f"{sku} × {n}" for sku, n in after.facts["office_units"].items())
        return (f"Recorded: the units Amazon did not ship ({units}) of {order_number} shipped by {rms_carrier}, "
                f"tracking {number}. Their shipping mail goes out at the next after-sales pass.")
    desk.ledger.update_item(item.id, desk.now, next_due_at=desk.now,
                            facts={"carrier": rms_carrier, "tracking_number": number, "ship_date": ship_date})
    desk.ledger.audit(item_id=item.id, at=desk.now, actor=desk.by, system="kuroko", action="office_shipped",
                      detail={"carrier": rms_carrier, "tracking": number})
    return (f"Recorded: {order_number} shipped by {rms_carrier}, tracking {number}. "
            "The shipping mail goes out at the next pass.")
