"""The Bカート (B-cart) wholesale order, from 新規注文 to 完了 (SPEC.md section E, seed 003), as
named steps. Documentation: docs/procedures/bcart_orders.md.

    intake (per pass: the 新規注文 orders via the API) → check_order → check_stock
      check_stock ─┬→ mail_out_of_stock (欠品のお知らせ) → check_stock: 保留, looked at again on a schedule
                   ├→ mail_payment_request (入金案内) → wait_for_payment (処理中, 決済確認日)
                   │    → mail_payment_confirmed (振り込み確認) → set_processing
                   └→ set_processing (処理中)
      set_processing → save_documents (納品書/請求書 PDFs) → create_mcf_order (one per logistics, BC-<id>)
      → wait_for_tracking → register_shipping (送り状番号, 発送日, 発送済: API or 出荷実績インポート CSV)
      → mail_shipped (発送のお知らせ) → complete_order (完了)
    An order a person cancelled (キャンセル) before anything shipped → close_without_shipping.

B-cart keeps no history of its template mails, so Kuroko keeps its own record in the item's facts
(``mails``: template → ``sending`` | ``sent``). ``sending`` is committed to the ledger *before* the
send and ``sent`` after it: a mail found ``sending`` (a crash, or an error, between the two) is
never sent again — the item goes to a person, who checks the customer's inbox or B-cart and says
what happened with ``kuroko bcart_mail``.

Every other side effect reconciles first with the system of record: 対応状況 is read and only ever
moved forward (新規注文 → 保留 → 処理中 → 完了), the MCF order is looked up by its id before it is
created, each logistics is read before its shipping result is registered.
"""

from __future__ import annotations

import contextlib
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from pydantic import Field

from kuroko.errors import ApiError, BusinessRuleError, ConfigurationError, KurokoError, UnknownValue
from kuroko.procedure import DeskContext, Done, IntakeContext, NotYet, Outcome, Procedure, StepContext
from kuroko.settings import KurokoSettings, load
from pages.bcart.connection import BCART
from services.bcart_api import (
    BCART_API,
    COMPLETED,
    NEW_ORDER,
    BcartOrder,
    BlankShippingField,
    checked_delivery_code,
    checked_shipment_date,
    join_tracking_numbers,
)
from services.fulfillment import FULFILLMENT
from services.helpdesk import HELPDESK

if TYPE_CHECKING:
    from services.fulfillment import McfOrderRequest

NAME = "bcart_orders"
SHIPPED = "発送済"
OUT_OF_STOCK_MAIL = "欠品のお知らせ"
PAYMENT_REQUEST_MAIL = "入金案内"
PAYMENT_CONFIRMED_MAIL = "振り込み確認"
SHIPPED_MAIL = "発送のお知らせ"
MAILS = (OUT_OF_STOCK_MAIL, PAYMENT_REQUEST_MAIL, PAYMENT_CONFIRMED_MAIL, SHIPPED_MAIL)
SENDING, SENT = "sending", "sent"
MCF_SHIPPED = {"COMPLETE", "COMPLETEPARTIALLED"}
MCF_GOING = {"NEW", "RECEIVED", "PLANNING", "PROCESSING"}
MCF_STOPPED = {"CANCELLED", "UNFULFILLABLE", "INVALID"}


class BcartOrderRules(KurokoSettings):
    """The Bカート procedure's business rules (``KUROKO_BCART_*`` settings)."""

    bcart_sku_map: dict[str, str] = Field(default_factory=lambda: {
        "BC-SIM30-20G": "SIM-DATA-30D-20GB", "BC-SIM90-50G": "SIM-DATA-90D-50GB", "BC-VOICE30": "SIM-VOICE-30D"})
    """B-cart 品番 → Amazon seller SKU. A 品番 not in the map sends the order to a person."""
    bcart_prepayment_methods: list[str] = Field(default_factory=lambda: ["銀行振込"])
    """決済方法 where the shop waits for the money before shipping (入金案内 → 決済確認日 → 振り込み確認)."""
    bcart_unpaid_days: int = 7
    """Days after 入金案内 without 決済確認日 before a person is asked."""
    bcart_payment_check_hours: int = 4
    """How often B-cart is read for 決済確認日 while an order waits for its money."""
    bcart_stock_check_minutes: int = 60
    """How often FBA stock is looked at again for an order on 保留 (out of stock)."""
    bcart_tracking_check_hours: int = 2
    bcart_shipping_results: str = "api"
    """How 送り状番号 / 発送日 / 発送済 are registered: ``api`` (PATCH /logistics/{id}) or ``csv``
    (the 出荷実績インポート screen)."""
    bcart_mcf_shipping_speed: str = "Standard"
    bcart_status_on_hold: str = "保留"
    bcart_status_processing: str = "処理中"
    bcart_status_cancelled: str = "キャンセル"
    """The shop's labels of its custom 対応状況 (B-cart's API reports them as カスタムN)."""


def rules() -> BcartOrderRules:
    return load(BcartOrderRules)


class UnmappedProduct(BusinessRuleError):
    code = "bcart_unmapped_product"


class MailUnconfirmed(BusinessRuleError):
    """A template mail was about to be sent (recorded) but its sending was never confirmed."""

    code = "bcart_mail_unconfirmed"


class NotInLedger(BusinessRuleError):
    code = "bcart_not_in_ledger"


class OrderUnpaid(BusinessRuleError):
    code = "bcart_unpaid"


class StatusConflict(BusinessRuleError):
    code = "bcart_status_conflict"


class McfCannotShip(BusinessRuleError):
    code = "bcart_mcf_cannot_ship"


class ShippingResultRefused(BusinessRuleError):
    code = "bcart_shipping_result_refused"


procedure = Procedure(NAME, title="Bカート order", item_label="Bカート order", desk=HELPDESK)
procedure.forget_on_release = ("payment_wait_since", "not_in_ledger")


# --- small helpers ----------------------------------------------------------------------------------
def tz(ctx: StepContext) -> ZoneInfo:
    return ZoneInfo(ctx.settings.timezone)


def local_date(ctx: StepContext, moment: datetime | None = None) -> str:
    return (moment or ctx.now).astimezone(tz(ctx)).date().isoformat()


def order_id(ctx: StepContext) -> int:
    return int(ctx.facts.get("order_id") or ctx.key)


def read_order(ctx: StepContext) -> BcartOrder:
    order = ctx.use(BCART_API).order(order_id(ctx))
    ctx.facts["status_label"] = order.status_label
    return order


def cancelled(order: BcartOrder) -> bool:
    return order.status_label == rules().bcart_status_cancelled


def status_rank(label: str) -> int | None:
    """Where a 対応状況 stands on the way; None for one the robot has no rule for."""
    r = rules()
    return {NEW_ORDER: 0, r.bcart_status_on_hold: 1, r.bcart_status_processing: 2, COMPLETED: 3}.get(label)


def move_status(ctx: StepContext, order: BcartOrder, label: str) -> bool:
    """Set 対応状況 to ``label`` unless it is there already or further on (never backwards).
    True when it was written."""
    current, wanted = status_rank(order.status_label), status_rank(label)
    assert wanted is not None, label
    if current is None:
        raise StatusConflict(f"B-cart order {order.id} ({order.code}) shows 対応状況 {order.status_label!r}, which the "
                             f"robot has no rule for; it did not set {label!r} over it")
    if current >= wanted:
        return False
    ctx.act("bcart", "set_order_status", lambda: ctx.use(BCART_API).set_order_status(order.id, label),
            status=label, was=order.status_label)
    ctx.facts["status_label"] = label
    return True


def mails(ctx: StepContext) -> dict[str, str]:
    return dict(ctx.facts.get("mails") or {})


def _record_mails(ctx: StepContext, record: dict[str, str]) -> None:
    """Kuroko's own mail record, written to the ledger at once (not only with the step's outcome)."""
    ctx.facts["mails"] = record
    if not ctx.dry_run:
        ctx.ledger.update_item(ctx.item.id, ctx.now, facts={"mails": record})


def send_mail_once(ctx: StepContext, template: str, then: str) -> Done:
    """Send ``template`` to the order's customer at most once, ever: ``sending`` is recorded in the
    ledger before the click, ``sent`` after. A record still saying ``sending`` means an earlier
    attempt may have sent it: a person decides, the robot never sends it again by itself."""
    record = mails(ctx)
    state = record.get(template)
    if state == SENT:
        return Done(then, detail=f"「{template}」 already sent (Kuroko's mail record)", found=True)
    if state == SENDING:
        raise MailUnconfirmed(
            f"「{template}」 to the customer of B-cart order {order_id(ctx)} was about to be sent by an earlier "
            "attempt, which stopped before confirming it; it may or may not have gone out, and B-cart keeps no "
            "mail history. It is not sent again by the robot. Check the customer's inbox or B-cart, then run "
            f"`kuroko bcart_mail {ctx.key} {template} --sent` (it went out) or `--not-sent` (it did not)")
    record[template] = SENDING
    _record_mails(ctx, record)
    try:
        ctx.act("bcart", "send_mail", lambda: ctx.use(BCART).orders.send_mail([order_id(ctx)], template),
                template=template)
    except KurokoError as exc:
        if "nothing was sent" in exc.message or "no mail was sent" in exc.message:
            record.pop(template, None)  # refused before sending: nothing to doubt
            _record_mails(ctx, record)
        raise
    record[template] = SENT
    _record_mails(ctx, record)
    ctx.facts.setdefault("mail_log", []).append({"template": template, "sent_at": ctx.now.isoformat()})
    return Done(then, detail=f"「{template}」 sent")


def shipments(ctx: StepContext) -> list[dict[str, Any]]:
    return list(ctx.facts.get("shipments") or [])


def mcf_id(logistics_id: int | str) -> str:
    """The MCF order id of one B-cart shipment (logistics): the same shipment always gets the same id,
    so Amazon itself refuses a second MCF order for it."""
    return f"BC-{int(logistics_id)}"


def data_dir_of(ctx: StepContext) -> Path:
    return Path(ctx.settings.data_dir) / "bcart" / str(order_id(ctx))


# --- intake -------------------------------------------------------------------------------------------
@procedure.intake
def take_in(ctx: IntakeContext) -> None:
    """One work item per B-cart order in 新規注文 (read once per pass through the API)."""
    for order in ctx.use(BCART_API).new_orders():
        facts = {"order_id": order.id, "code": order.code, "payment": order.payment,
                 "ordered_at": order.ordered_at.isoformat()}
        if ctx.take_in(str(order.id), facts=facts) is not None:
            ctx.taken_in.append(f"B-cart order {order.id} ({order.code}, {order.payment}): taken in")
    # An order the robot had already moved on (保留, 処理中) that the ledger does not know: the ledger
    # was lost or is new. B-cart keeps no record of the mails sent, so it goes to a person, never on blind.
    for label in (rules().bcart_status_on_hold, rules().bcart_status_processing):
        for order in ctx.use(BCART_API).orders(label):
            if ctx.ledger.find_item(str(order.id), NAME) is not None:
                continue
            facts = {"order_id": order.id, "code": order.code, "payment": order.payment,
                     "ordered_at": order.ordered_at.isoformat(), "not_in_ledger": label}
            if ctx.take_in(str(order.id), facts=facts) is not None:
                ctx.taken_in.append(f"B-cart order {order.id} ({order.code}) is {label} but not in the ledger: "
                                    "to a person")


# --- the steps ----------------------------------------------------------------------------------------
@procedure.step(first=True, then=("check_stock", "close_without_shipping"), needs_person=(
                    "Look at the order in B-cart: map its 品番 to an Amazon seller SKU in KUROKO_BCART_SKU_MAP "
                    "(then release it), or handle it by hand."))
def check_order(ctx: StepContext) -> Outcome:
    """Read the order: its shipments (logistics) and their items, each 品番 mapped to a seller SKU."""
    if label := ctx.facts.get("not_in_ledger"):
        raise NotInLedger(
            f"B-cart order {ctx.key} ({ctx.facts.get('code')}) is {label}, but the robot's ledger has no record of it "
            "(the ledger was lost or is new). Which mails (" + " / ".join(MAILS) + ") went out is known only to the "
            f"customer's inbox: record each one sent with `kuroko bcart_mail {ctx.key} <mail> --sent`, then release "
            "the order; nothing was done")
    order = read_order(ctx)
    if cancelled(order) or order.status_label == COMPLETED:
        return Done("close_without_shipping", detail=f"B-cart shows {order.status_label}", path="closed")
    sku_map = rules().bcart_sku_map
    unmapped = sorted({i.product_no for i in order.items if i.product_no not in sku_map})
    if unmapped:
        raise UnmappedProduct(f"B-cart order {order.id} ({order.code}) has 品番 {', '.join(unmapped)} with no Amazon "
                              "seller SKU in KUROKO_BCART_SKU_MAP; nothing was done")
    found: list[dict[str, Any]] = []
    for shipment in order.shipments:
        if not shipment.items:
            continue
        found.append({
            "id": shipment.id, "name": f"{shipment.comp_name} {shipment.name}".strip(), "zip": shipment.zip,
            "pref": shipment.pref, "address": shipment.address, "tel": shipment.tel,
            "items": [{"product_no": i.product_no, "sku": sku_map[i.product_no], "quantity": i.quantity}
                      for i in shipment.items],
        })
    if not found:
        raise BusinessRuleError(f"B-cart order {order.id} ({order.code}) has no shipment with items",
                                code="bcart_no_shipment")
    ctx.facts.update(shipments=found, code=order.code, payment=order.payment,
                     prepayment=order.payment in rules().bcart_prepayment_methods)
    return Done("check_stock", detail=f"{len(found)} shipment(s), {order.payment}")


def needs(ctx: StepContext) -> dict[str, int]:
    total: dict[str, int] = {}
    for shipment in shipments(ctx):
        for item in shipment["items"]:
            total[item["sku"]] = total.get(item["sku"], 0) + int(item["quantity"])
    return total


@procedure.step(then=("mail_out_of_stock", "mail_payment_request", "set_processing", "close_without_shipping"),
                needs_person=("Look at the order and FBA stock: set 保留 or キャンセル in B-cart by hand, or release "
                              "the order to let Kuroko look again."))
def check_stock(ctx: StepContext) -> Outcome:
    """FBA inventory for every SKU of the order. Short: 「欠品のお知らせ」 once, 保留, look again later."""
    order = read_order(ctx)
    if cancelled(order):
        return Done("close_without_shipping", detail="cancelled in B-cart", path="cancelled")
    wanted = needs(ctx)
    stock = ctx.use(FULFILLMENT).inventory(sorted(wanted))
    short = {sku: (n, stock.get(sku, 0)) for sku, n in wanted.items() if stock.get(sku, 0) < n}
    if short:
        ctx.facts.setdefault("out_of_stock_since", ctx.now.isoformat())
        ctx.facts["short"] = {sku: {"needed": n, "fba": have} for sku, (n, have) in short.items()}
        said = ", ".join(f"{sku} needs {n}, FBA has {have}" for sku, (n, have) in short.items())
        if mails(ctx).get(OUT_OF_STOCK_MAIL) != SENT:
            return Done("mail_out_of_stock", detail=f"out of stock: {said}", path="out_of_stock")
        move_status(ctx, order, rules().bcart_status_on_hold)
        return NotYet(ctx.now + timedelta(minutes=rules().bcart_stock_check_minutes), f"out of stock ({said}), 保留")
    ctx.facts.pop("short", None)
    if ctx.facts.get("prepayment"):
        return Done("mail_payment_request", detail="in stock; prepayment", path="prepayment")
    return Done("set_processing", detail="in stock", path=ctx.item.path or "in_stock")


@procedure.step(then="check_stock", needs_person=(
                    "Check whether the customer received 「欠品のお知らせ」 (their inbox, or ask B-cart); send it "
                    "from 受注一覧 by hand if not, then run `kuroko bcart_mail` as the note says and release."))
def mail_out_of_stock(ctx: StepContext) -> Outcome:
    return send_mail_once(ctx, OUT_OF_STOCK_MAIL, "check_stock")


@procedure.step(then="wait_for_payment", needs_person=(
                    "Check whether the customer received 「入金案内」; send it from 受注一覧 by hand if not, then "
                    "run `kuroko bcart_mail` as the note says and release."))
def mail_payment_request(ctx: StepContext) -> Outcome:
    return send_mail_once(ctx, PAYMENT_REQUEST_MAIL, "wait_for_payment")


@procedure.step(then=("mail_payment_confirmed", "close_without_shipping"), needs_person=(
                    "The customer has not paid: ask them, then enter 決済確認日 in B-cart when the money arrives "
                    "(or set キャンセル) and release the order."))
def wait_for_payment(ctx: StepContext) -> Outcome:
    """処理中 while the money is awaited; B-cart cannot see payments: a person enters 決済確認日."""
    order = read_order(ctx)
    if cancelled(order):
        return Done("close_without_shipping", detail="cancelled in B-cart while unpaid", path="cancelled")
    if order.payment_confirmed_on is not None:
        ctx.facts["paid_on"] = order.payment_confirmed_on.isoformat()
        return Done("mail_payment_confirmed", detail=f"決済確認日 {order.payment_confirmed_on.isoformat()}")
    check = ctx.now + timedelta(hours=rules().bcart_payment_check_hours)
    if move_status(ctx, order, rules().bcart_status_processing):
        return NotYet(check, "処理中: waiting for 決済確認日")
    since = datetime.fromisoformat(ctx.facts.setdefault("payment_wait_since", ctx.now.isoformat()))
    limit = timedelta(days=rules().bcart_unpaid_days)
    if ctx.now - since >= limit:
        raise OrderUnpaid(f"B-cart order {order.id} ({order.code}, {order.payment}) has had no 決済確認日 for "
                          f"{rules().bcart_unpaid_days} days after 「入金案内」")
    return NotYet(min(check, since + limit), "waiting for 決済確認日")


@procedure.step(then="set_processing", needs_person=(
                    "Check whether the customer received 「振り込み確認」; send it from 受注一覧 by hand if not, "
                    "then run `kuroko bcart_mail` as the note says and release."))
def mail_payment_confirmed(ctx: StepContext) -> Outcome:
    return send_mail_once(ctx, PAYMENT_CONFIRMED_MAIL, "set_processing")


@procedure.step(then="save_documents", needs_person="Set 対応状況 to 処理中 in B-cart by hand, then release.")
def set_processing(ctx: StepContext) -> Outcome:
    order = read_order(ctx)
    if cancelled(order):
        raise StatusConflict(f"B-cart order {order.id} ({order.code}) was cancelled; nothing was shipped")
    written = move_status(ctx, order, rules().bcart_status_processing)
    return Done("save_documents", detail="対応状況 処理中" if written else f"対応状況 already {order.status_label}",
                found=not written)


@procedure.step(then="create_mcf_order", needs_person=(
                    "Download 納品書 and 請求書 from the order's 受注詳細 by hand, then release."))
def save_documents(ctx: StepContext) -> Outcome:
    """The 帳票 (納品書, 請求書) saved with the item: MCF cannot put papers in the parcel, the desk
    sends them."""
    saved = [Path(p) for p in ctx.facts.get("documents") or []]
    if saved and all(p.is_file() for p in saved):
        return Done("create_mcf_order", detail="帳票 already saved", found=True)
    page = ctx.use(BCART).order_page
    page.open(order_id(ctx))
    paths = page.download_documents(data_dir_of(ctx))
    ctx.facts["documents"] = [str(p) for p in paths]
    return Done("create_mcf_order", detail="帳票 saved: " + ", ".join(p.name for p in paths))


def mcf_request(ctx: StepContext, shipment: dict[str, Any]) -> McfOrderRequest:
    from services.fulfillment import McfAddress, McfItem, McfOrderRequest

    quantities: dict[str, int] = {}
    for item in shipment["items"]:
        quantities[item["sku"]] = quantities.get(item["sku"], 0) + int(item["quantity"])
    return McfOrderRequest(
        seller_fulfillment_order_id=mcf_id(shipment["id"]),
        displayable_order_id=str(ctx.facts.get("code") or order_id(ctx))[:40],
        displayable_order_date=datetime.fromisoformat(ctx.facts.get("ordered_at") or ctx.now.isoformat()),
        displayable_order_comment="ご注文ありがとうございます。",
        shipping_speed=rules().bcart_mcf_shipping_speed,
        address=McfAddress(name=shipment["name"][:50], address_line1=shipment["address"], city="",
                           state_or_region=shipment["pref"], postal_code=shipment["zip"],
                           phone=shipment.get("tel") or None),
        items=[McfItem(seller_sku=sku, quantity=n) for sku, n in quantities.items()],
    )


@procedure.step(then=("create_mcf_order", "wait_for_tracking"), needs_person=(
                    "Check the shipments in Seller Central (MCF orders BC-<発送ID>) and create the missing one by "
                    "hand, or ship from the office; then release."))
def create_mcf_order(ctx: StepContext) -> Outcome:
    """One MCF order per B-cart shipment, ``BC-<logistics id>``, looked up before it is created."""
    from services.fulfillment import FulfillmentOrderExists

    fulfillment = ctx.use(FULFILLMENT)
    created: dict[str, str] = dict(ctx.facts.get("mcf") or {})
    for shipment in shipments(ctx):
        key = str(shipment["id"])
        if key in created:
            continue
        sfo_id = mcf_id(key)
        if fulfillment.get_order(sfo_id) is not None:
            created[key] = sfo_id
            ctx.facts["mcf"] = created
            continue
        order = read_order(ctx)
        if cancelled(order):
            raise StatusConflict(f"B-cart order {order.id} ({order.code}) was cancelled while being shipped; MCF "
                                 f"orders so far: {', '.join(created.values()) or 'none'}")
        request = mcf_request(ctx, shipment)
        options = fulfillment.preview(request)
        option = next((o for o in options if o.shipping_speed == request.shipping_speed), None)
        if option is None or not option.fulfillable:
            reasons = option.unfulfillable_reasons if option else [f"no {request.shipping_speed} option"]
            raise McfCannotShip(f"Amazon MCF cannot ship B-cart shipment (発送ID) {key}: {', '.join(reasons)}")
        with contextlib.suppress(FulfillmentOrderExists):  # created by a run that stopped before recording it
            ctx.act("amazon", "create_mcf_order", lambda request=request: fulfillment.create_order(request),  # type: ignore[misc]
                    seller_fulfillment_order_id=sfo_id)
        created[key] = sfo_id
        ctx.facts["mcf"] = created
        return Done("create_mcf_order", detail=f"MCF order {sfo_id} created", external_ref=sfo_id, path=ctx.item.path)
    return Done("wait_for_tracking", detail="MCF orders: " + ", ".join(created.values()), found=True)


@procedure.step(then="register_shipping", needs_person=(
                    "Check the MCF orders (BC-<発送ID>) in Seller Central; register 送り状番号 and 発送日 in B-cart "
                    "by hand when they ship, then release."))
def wait_for_tracking(ctx: StepContext) -> Outcome:
    """Every MCF order shipped, with every package's tracking number and the ship date."""
    fulfillment = ctx.use(FULFILLMENT)
    tracking: dict[str, Any] = dict(ctx.facts.get("tracking") or {})
    waiting: list[str] = []
    for key, sfo_id in (ctx.facts.get("mcf") or {}).items():
        if key in tracking:
            continue
        order = fulfillment.get_order(sfo_id)
        if order is None:
            if ctx.dry_run:
                return NotYet(ctx.now + timedelta(hours=1), "dry run: the MCF order was not really created")
            raise ApiError(f"Amazon has no MCF order {sfo_id} although it was created", code="NotFound")
        status = order.status.upper()
        if status in MCF_STOPPED:
            raise BusinessRuleError(f"Amazon reports MCF order {sfo_id} as {order.status}", code="mcf_not_shipping")
        if status in MCF_SHIPPED and order.packages:
            shipped = [p.shipped_at for p in order.packages if p.shipped_at is not None]
            tracking[key] = {"numbers": [p.tracking_number for p in order.packages],
                             "date": local_date(ctx, max(shipped) if shipped else ctx.now),
                             "carriers": sorted({p.carrier_code for p in order.packages})}
            continue
        if status not in MCF_GOING and status not in MCF_SHIPPED:
            raise UnknownValue(f"Amazon reports MCF order {sfo_id} as {order.status!r}, a status the robot has no "
                               "rule for; nothing was registered in B-cart")
        if order.promised_arrival is not None and ctx.now > order.promised_arrival:
            raise BusinessRuleError(f"MCF order {sfo_id} has not shipped by its promised delivery date: contact "
                                    "Seller Support", code="mcf_late")
        waiting.append(f"{sfo_id} {order.status}")
    ctx.facts["tracking"] = tracking
    if waiting:
        return NotYet(ctx.now + timedelta(hours=rules().bcart_tracking_check_hours),
                      "not shipped yet: " + ", ".join(waiting))
    return Done("register_shipping", detail="shipped: " + "; ".join(
        f"{mcf_id(k)} {','.join(v['numbers'])}" for k, v in tracking.items()))


def wanted_result(ctx: StepContext, key: str) -> tuple[str, date]:
    """送り状番号 (every package's number, comma-joined) and 発送日 of one shipment, checked: a blank
    or partial value is refused (BlankShippingField) before anything is sent."""
    where = f"B-cart shipment (発送ID) {key}"
    got = (ctx.facts.get("tracking") or {}).get(key) or {}
    code = checked_delivery_code(join_tracking_numbers(got.get("numbers") or [], where=f"{where} 送り状番号"),
                                 where=where)
    return code, checked_shipment_date(got.get("date"), where=where)


@procedure.step(then=("register_shipping", "mail_shipped"), needs_person=(
                    "Register 送り状番号, 発送日 and 発送状況 発送済 of the shipments named above in B-cart by hand "
                    "(never leave 送り状番号 or 発送日 blank), then release."))
def register_shipping(ctx: StepContext) -> Outcome:
    """送り状番号, 発送日 and 発送済 for each shipment not showing them yet: through the API (one
    shipment per step) or one 出荷実績インポート file (KUROKO_BCART_SHIPPING_RESULTS)."""
    mode = rules().bcart_shipping_results.strip().lower()
    if mode not in ("api", "csv"):
        raise ConfigurationError(f"KUROKO_BCART_SHIPPING_RESULTS is {rules().bcart_shipping_results!r}; use api or csv")
    api = ctx.use(BCART_API)
    pending: list[tuple[str, str, date]] = []
    for key in (ctx.facts.get("mcf") or {}):
        code, day = wanted_result(ctx, key)
        current = api.logistics(int(key))
        if current.status == SHIPPED and current.delivery_code == code and current.shipment_date == day:
            continue
        if current.status == SHIPPED and (current.delivery_code or current.shipment_date):
            raise StatusConflict(f"B-cart shipment (発送ID) {key} already shows 発送済 with 送り状番号 "
                                 f"{current.delivery_code!r} and 発送日 {current.shipment_date}, not {code!r} / {day}; "
                                 "the robot does not overwrite it")
        pending.append((key, code, day))
    if not pending:
        return Done("mail_shipped", detail="送り状番号, 発送日 and 発送済 registered for every shipment", found=True)
    if mode == "api":
        key, code, day = pending[0]
        ctx.act("bcart", "update_logistics",
                lambda: api.update_logistics(int(key), delivery_code=code, shipment_date=day, status=SHIPPED),
                logistics_id=key, delivery_code=code, shipment_date=day.isoformat())
        return Done("register_shipping", detail=f"発送ID {key}: 送り状番号 {code}, 発送日 {day}, 発送済 (API)")
    return import_shipping_results(ctx, pending)


def import_shipping_results(ctx: StepContext, pending: list[tuple[str, str, date]]) -> Outcome:
    from services.bcart_csv import ShippingResultRow, write_shipping_results_csv

    rows = [ShippingResultRow(logistics_id=int(key), delivery_code=code, shipment_date=day, status=SHIPPED,
                              shipment_code=mcf_id(key)) for key, code, day in pending]
    stamp = ctx.now.astimezone(tz(ctx)).strftime("%Y%m%d_%H%M%S")
    path = write_shipping_results_csv(data_dir_of(ctx), rows, name=f"shipping_results_{order_id(ctx)}_{stamp}.csv")
    result = ctx.act("bcart", "shipping_import", lambda: ctx.use(BCART).shipping_import.upload(path),
                     file=path.name, logistics=[k for k, _, _ in pending])
    if result is not None and not result.ok:
        said = result.file_error or "; ".join(f"line {r.line} (発送ID {r.logistics_id}): {r.message}"
                                              for r in result.errors)
        raise ShippingResultRefused(f"B-cart's 出荷実績インポート refused {path.name}: {said}")
    return Done("register_shipping", detail=f"出荷実績インポート {path.name}: {len(rows)} row(s)")


@procedure.step(then="complete_order", needs_person=(
                    "Check whether the customer received 「発送のお知らせ」; send it from 受注一覧 by hand if not, "
                    "then run `kuroko bcart_mail` as the note says and release."))
def mail_shipped(ctx: StepContext) -> Outcome:
    return send_mail_once(ctx, SHIPPED_MAIL, "complete_order")


@procedure.step(final=True, needs_person="Set 対応状況 to 完了 in B-cart by hand.")
def complete_order(ctx: StepContext) -> Outcome:
    order = read_order(ctx)
    written = move_status(ctx, order, COMPLETED)
    return Done(None, detail="対応状況 完了" if written else "already 完了", found=not written)


@procedure.step(final=True, needs_person="Look at the order in B-cart.")
def close_without_shipping(ctx: StepContext) -> Outcome:
    return Done(None, detail=f"B-cart shows {ctx.facts.get('status_label')}: nothing shipped")


# --- what a person does --------------------------------------------------------------------------------
@procedure.command
def bcart_mail(desk: DeskContext,
               order: Annotated[str, typer.Argument(help="The B-cart order (受注ID), as Kuroko names it.")],
               template: Annotated[str, typer.Argument(help="The template: " + " / ".join(MAILS))],
               sent: Annotated[bool, typer.Option("--sent/--not-sent", help="Whether the customer got it.")]) -> str:
    """Say whether a B-cart template mail Kuroko could not confirm went out (then release the order)."""
    item = desk.item(order, NAME)
    if template not in MAILS:
        raise KurokoError(f"unknown template {template!r}; one of: {', '.join(MAILS)}")
    record = dict(item.facts.get("mails") or {})
    if record.get(template) != SENDING and not item.facts.get("not_in_ledger"):
        raise KurokoError(f"Kuroko's record of order {order} does not show 「{template}」 as unconfirmed "
                          f"(it shows {record.get(template) or 'nothing'}); nothing was changed")
    if sent:
        record[template] = SENT
    else:
        record.pop(template, None)
    desk.ledger.update_item(item.id, desk.now, facts={"mails": record})
    desk.ledger.audit(item_id=item.id, at=desk.now, actor=desk.by, system="kuroko", action="mail_confirmed",
                      detail={"template": template, "sent": sent})
    then = "it is not sent again" if sent else "the robot sends it"
    return (f"Recorded: 「{template}」 for B-cart order {order} {'was' if sent else 'was not'} sent; {then}. "
            f"Run `kuroko release {order} --procedure {NAME}` to let Kuroko go on.")


__all__ = ["BcartOrderRules", "BlankShippingField", "procedure", "rules"]
