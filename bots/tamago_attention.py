"""たまごリピート 要対応 (SPEC.md section D, seed 001, issue 13): every order たまご flagged 要対応 is
worked through, reason by reason, on its admin screens.

    intake (注文検索 「要対応のみ」, read once per pass; one item per order; escalation of old flags)
    → examine ─┬→ check_blacklist → check_discount → correct_island → tell_island_customer → release
               │   (only the steps the order's reasons call for, in this order; release always last)
               ├→ ask_payment_change | payment_failed | contact_net_protections
               │  | redo_np_authorisation | blacklisted_customer | unknown_reason   (a person)
               └→ wait_for_person                                                 (a flag set by hand)

Rules kept by every step: the order page is read first and what is already as wanted is not done
again (the flag, the fee, the お届け間隔, the date, the discount), so a repeated pass or a crash never
does anything twice; an overdue 発送予定日 is moved to the next shipping day before a release, never
after; both 対応状況 of a subscription order are released in one visit; a flag set by hand and a
ブラックリスト客's order are never released by the robot; nothing is ever cancelled.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NoReturn
from zoneinfo import ZoneInfo

from pydantic import Field

from kuroko.errors import BusinessRuleError, ConfigurationError, UnknownValue
from kuroko.handover import HandOver, marker
from kuroko.ledger import ItemState
from kuroko.procedure import Done, IntakeContext, NotYet, Outcome, Procedure, StepContext
from kuroko.settings import KurokoSettings, load
from pages.tamago.connection import TAMAGO
from pages.tamago.errors import OrderVanished
from pages.tamago.reasons import NP_NG, Reason, mismatch_amounts
from services.helpdesk import HELPDESK

if TYPE_CHECKING:
    from pages.tamago.models import CustomerMatch, FlaggedOrder, TamagoOrderView
    from pages.tamago.order_page import TamagoOrderPage

NAME = "tamago_attention"
CustomerField = Literal["phone", "postal_code", "name"]
FIELD_NAMES: dict[str, str] = {"phone": "電話番号", "postal_code": "郵便番号", "name": "氏名"}
DISCOUNT_RULES: tuple[tuple[CustomerField, tuple[CustomerField, ...]], ...] = (
    ("phone", ("postal_code", "name")), ("postal_code", ("phone", "name")), ("name", ("phone", "postal_code")))
"""Seed 001 §7: the same X and one of Y, Z — i.e. any two of the three fields the same. Two 顧客検索
(by 電話番号, by 郵便番号) find every such customer; the second field is compared here as たまご
compares (without hyphens and spaces)."""
ROBOT_REASONS = {Reason.BLACKLIST_CANDIDATE, Reason.DISCOUNT_CANDIDATE, Reason.REMOTE_ISLAND}
"""Reasons the robot works itself; every other one goes to a person."""
PERSON_ROUTES: tuple[tuple[Reason, str], ...] = (
    (Reason.BLACKLISTED, "blacklisted_customer"),
    (Reason.PAYMENT_FAILED, "payment_failed"),
    (Reason.NP_UNKNOWN, "contact_net_protections"),
    (Reason.AMOUNT_MISMATCH, "redo_np_authorisation"),
    *((r, "ask_payment_change") for r in NP_NG),
)
"""Which person step a reason goes to, the most serious first (an order with several reasons goes
to the first; its note lists every message)."""
WORK_STEPS = ("check_blacklist", "check_discount", "correct_island", "tell_island_customer", "release")
PERSON_STEPS = ("blacklisted_customer", "payment_failed", "contact_net_protections", "redo_np_authorisation",
                "ask_payment_change", "unknown_reason")
RELEASE_BY_HAND = ("release the 要対応 in たまご yourself: if 発送予定日 has passed, move it to the next shipping day "
                   "first (releasing sends the order to 発送準備中 at once), then 対応状況 解除, 対応日 today and a "
                   "対応コメント — on a subscription order both 今回注文分 and 定期全体 — and 「要対応を更新する」")


def _default_holidays() -> list[date]:
    days = [date(2026, 11, 23), date(2027, 1, 11), date(2027, 2, 11), date(2027, 2, 23), date(2027, 3, 22)]
    days += [date(2026, 12, 29) + timedelta(days=n) for n in range(6)]  # 年末年始 12/29–1/3
    return sorted(days)


class TamagoAttentionRules(KurokoSettings):
    """The たまご 要対応 procedure's business rules (KUROKO_TAMAGO_* settings)."""

    tamago_blacklist_check: list[CustomerField] = Field(default_factory=lambda: list[CustomerField](["phone"]))
    """The shop's 重要項目設定「顧客のチェック方法」: which fields of a customer must all match a
    blacklisted customer (phone, postal_code, name). Must be the same as in たまご."""
    tamago_island_shipping_fee_yen: int = 1500
    """送料 of an order delivered to a remote island (離島からのご注文)."""
    tamago_island_interval_days: int = 45
    """お届け間隔 of a remote-island subscription order (one of たまご's: 15, 30, 45, 60, 90)."""
    tamago_shipping_weekdays: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4])
    """Weekdays the warehouse ships (0 = Monday … 6 = Sunday)."""
    tamago_shipping_holidays: list[date] = Field(default_factory=_default_holidays)
    """Days the warehouse does not ship although their weekday ships (public holidays, 年末年始)."""
    tamago_escalate_after_days: int = 3
    """An order 要対応 for this many days while waiting for a person is escalated (its subscription
    is stalled: no next order is created while it is flagged)."""

    def is_shipping_day(self, day: date) -> bool:
        return day.weekday() in self.tamago_shipping_weekdays and day not in self.tamago_shipping_holidays

    def next_shipping_day(self, after: date) -> date:
        """The first shipping day after ``after``."""
        day = after
        for _ in range(366):
            day += timedelta(days=1)
            if self.is_shipping_day(day):
                return day
        raise ConfigurationError("KUROKO_TAMAGO_SHIPPING_WEEKDAYS / _HOLIDAYS leave no shipping day in a year; "
                                 "fix the shipping calendar")


def rules() -> TamagoAttentionRules:
    return load(TamagoAttentionRules)


procedure = Procedure(NAME, title="たまごリピート 要対応", item_label="たまご order", desk=HELPDESK)


# --- errors (each a hand-over) -------------------------------------------------------------------
class NeedsPerson(BusinessRuleError):
    code = "tamago_needs_person"


# --- small helpers -------------------------------------------------------------------------------
def local_today(ctx: StepContext | IntakeContext) -> date:
    return ctx.now.astimezone(ZoneInfo(ctx.settings.timezone)).date()


def next_morning(ctx: StepContext) -> datetime:
    zone = ZoneInfo(ctx.settings.timezone)
    return datetime.combine(local_today(ctx) + timedelta(days=1), time(9, 0), tzinfo=zone)


def open_order(ctx: StepContext, *, fresh: bool = False) -> TamagoOrderView:
    """注文詳細 of the item's order: read now when ``fresh`` (or when the last page read is another
    order's), else as the previous step of this item left it (OrderVanished when たまご no longer
    has it). Every action re-reads the page before it changes anything."""
    return ctx.use(TAMAGO).view(ctx.key, fresh=fresh)


def acted(ctx: StepContext, view: TamagoOrderView | None) -> None:
    """Keep the page an action returned for the next step (forget it in a dry run)."""
    ctx.use(TAMAGO).remember(view)


def hand_over(ctx: StepContext, found: str, code: str) -> NoReturn:
    """Hand the item to a person, with a screenshot of the page Kuroko saw; the step remembers it
    did, so after the person's `kuroko release` it goes on instead of asking again."""
    ctx.facts["handed_over"] = ctx.item.step
    ctx.facts["needed"] = procedure.steps[ctx.item.step].needs_person
    raise NeedsPerson(found + evidence(ctx, ctx.item.step), code=code)


def evidence(ctx: StepContext, what: str) -> str:
    """A screenshot of the page in hand, kept where the runner keeps its evidence; its name for the note."""
    from kuroko.browser import safe_name

    stamp = ctx.now.astimezone(ZoneInfo(ctx.settings.timezone)).strftime("%Y%m%dT%H%M%S")
    shots = ctx.connections.capture(ctx.settings.data_dir / "evidence" / safe_name(ctx.key), f"{stamp}-{what}",
                                    keep_trace=False)
    return f" Screenshot (on the robot's machine): {', '.join(Path(p).name for p in shots)}." if shots else ""


def was_handed_over(ctx: StepContext) -> bool:
    return ctx.facts.get("handed_over") == ctx.item.step


def record_check(ctx: StepContext, what: str, text: str) -> None:
    """What Kuroko checked, for the 対応コメント of the release (one line per reason)."""
    checks = dict(ctx.facts.get("checks", {}))
    checks[what] = text
    ctx.facts["checks"] = checks


def next_in_plan(ctx: StepContext) -> str:
    plan: list[str] = ctx.facts["plan"]
    return plan[plan.index(ctx.item.step) + 1]


def order_summary(view: TamagoOrderView) -> str:
    kind = (f"定期 第{view.subscription.cycle}回 of subscription {view.subscription.subscription_id}"
            if view.subscription else "通常注文")
    messages = "; ".join(f"「{m}」" for m in view.reasons) or "none (flagged by hand)"
    return (f"order {view.order_id} ({kind}), placed {view.placed_at:%Y-%m-%d %H:%M}, customer {view.customer_name} "
            f"(顧客 {view.customer_id}, tel {view.phone}, {view.email}), 支払方法 {view.payment_method}, "
            f"合計 {view.total_yen:,}円, 発送予定日 {view.ship_date}, 注文ステータス {view.status}. "
            f"要対応コメント: {messages}")


def describe_match(match: CustomerMatch) -> str:
    subs = ", ".join(f"定期 {s.subscription_id} {'継続中' if s.active else '停止中'}" for s in match.subscriptions)
    black = " ブラックリスト客" if match.blacklisted else ""
    return (f"顧客 {match.customer_id} {match.name} (tel {match.phone}, 〒{match.postal_code}, {match.address}"
            f"{', ' + subs if subs else ', no subscription'}){black}")


def customer_value(view: TamagoOrderView, field: str) -> str:
    return {"phone": view.phone, "postal_code": view.postal_code, "name": view.customer_name}[field]


def normalised(field: str, value: str) -> str:
    """As たまご compares customers: phone and postal code without hyphens, names without spaces."""
    if field in ("phone", "postal_code"):
        return re.sub(r"[-‐－ー\s]", "", value)
    return re.sub(r"[\s\u3000]", "", value)


def discount_rule_matches(view: TamagoOrderView, match: CustomerMatch) -> bool:
    def same(field: str) -> bool:
        theirs = {"phone": match.phone, "postal_code": match.postal_code, "name": match.name}[field]
        return normalised(field, theirs) == normalised(field, customer_value(view, field))

    return any(same(first) and any(same(o) for o in rest) for first, rest in DISCOUNT_RULES)


def others(view: TamagoOrderView, found: list[CustomerMatch]) -> list[CustomerMatch]:
    """Matches other than the buyer (たまご's 顧客検索 finds the buyer too), each once."""
    seen: dict[str, CustomerMatch] = {}
    for match in found:
        if match.customer_id != view.customer_id:
            seen.setdefault(match.customer_id, match)
    return list(seen.values())


# --- intake ----------------------------------------------------------------------------------------
@procedure.intake
def take_in(ctx: IntakeContext) -> None:
    """One item per order 注文検索 lists as 要対応 (read once per pass); then orders waiting for a
    person longer than KUROKO_TAMAGO_ESCALATE_AFTER_DAYS are escalated."""
    listed = ctx.use(TAMAGO).flagged()
    today = local_today(ctx).isoformat()
    for order in listed:
        facts = {"listed_on": today, "listed_reasons": order.reasons}
        if ctx.take_in(order.order_id, facts=facts) is not None:
            what = "; ".join(order.reasons) or "flagged by hand"
            ctx.taken_in.append(f"{order.order_id}: taken in ({what})")
    for order in listed:
        try:
            escalate(ctx, order)
        except ConfigurationError:
            raise
        except Exception as exc:  # the helpdesk down: tried again at the next pass
            ctx.failed.append(f"{order.order_id}: escalation: {exc}")


def escalate(ctx: IntakeContext, order: FlaggedOrder) -> None:
    """A note (once) on the order's ticket when it has been 要対応 too long while a person has it."""
    item = ctx.ledger.find_item(order.order_id, NAME)
    if item is None or item.facts.get("escalated") or item.state == ItemState.DONE.value:
        return
    if not (item.state == ItemState.HELD.value or item.step == "wait_for_person"):
        return  # the robot is still working it
    since = date.fromisoformat(str(item.facts.get("flagged_on") or item.facts["listed_on"]))
    days = rules().tamago_escalate_after_days
    flagged_days = (local_today(ctx) - since).days
    if flagged_days < days:
        return
    stalled = (f" It is 定期 第{order.subscription_cycle}回 of a subscription: no next subscription order is created "
               "while it is 要対応." if order.subscription_cycle else "")
    why = "; ".join(f"「{m}」" for m in order.reasons) or "flagged by hand (no system reason)"
    needed = (item.facts.get("needed") or "do what the earlier note on this ticket asks")
    body = (f"Escalation: たまご order {order.order_id} has been 要対応 since {since} ({flagged_days} days; "
            f"the limit is {days}). While it is 要対応 it is not shipped and not charged.{stalled}\n"
            f"Reason: {why}.\n"
            f"Needed today: {needed}.")
    handover = HandOver(ctx.use(HELPDESK), ctx.ledger, ctx.effects, hold_tag=ctx.settings.hold_tag,
                        title=procedure.item_label)
    handover.note(item, ctx.now, body, marker(order.order_id, "escalated"), action="escalate", hold=False,
                  reason=f"要対応 for {flagged_days} days")
    if not ctx.dry_run:
        ctx.ledger.update_item(item.id, item.updated_at, facts={"escalated": True})
    ctx.taken_in.append(f"{order.order_id}: escalated (要対応 for {flagged_days} days)")


# --- the steps ------------------------------------------------------------------------------------
@procedure.step(first=True, final=True, then=(*WORK_STEPS, *PERSON_STEPS, "wait_for_person"), needs_person=(
                    "Open the order in たまご by hand and look at what the note above says Kuroko could not read or "
                    "find. If the order is gone, nothing more is needed: solve this ticket. Otherwise work it by "
                    "hand, or run `kuroko release` once its page reads normally again."))
def examine(ctx: StepContext) -> Outcome:
    """Read the order and decide its way by the reasons its 要対応コメント states."""
    try:
        view = open_order(ctx, fresh=True)
    except OrderVanished as exc:
        raise OrderVanished(ctx.key, exc.message + "." + evidence(ctx, "vanished")) from exc
    if view.released:
        return Done(None, detail="no 対応状況 is 設定 any more: released in たまご by someone else",
                    path="released_elsewhere")
    flag_dates = [f.date for f in (view.order_flag, view.subscription_flag) if f is not None and f.is_set and f.date]
    ctx.facts.update(
        reasons=view.reasons, subscription=view.is_subscription, customer_id=view.customer_id,
        ship_date_was=view.ship_date.isoformat(),
        flagged_on=(min(flag_dates) if flag_dates else local_today(ctx)).isoformat(),
    )
    if not view.reasons:
        ctx.facts["needed"] = ("ask whoever set the flag (対応コメント: "
                               f"「{view.order_flag.comment or '－'}」) whether the order may ship, and release or "
                               "handle it in たまご; Kuroko never releases a flag set by hand")
        return Done("wait_for_person", path="hand_set",
                    detail=f"flagged by hand (対応コメント 「{view.order_flag.comment}」): Kuroko never releases it")
    kinds = view.reason_kinds
    unknown = [m for m, k in zip(view.reasons, kinds, strict=True) if k is None]
    if unknown:
        return Done("unknown_reason", path="person", detail=f"a message Kuroko has no rule for: {unknown[0]}")
    if view.blacklisted and Reason.BLACKLISTED not in kinds:
        kinds = [*kinds, Reason.BLACKLISTED]
    for reason, step in PERSON_ROUTES:
        if reason in kinds:
            return Done(step, path="person", detail=f"{reason.value}: a person must act")
    plan = []
    if Reason.BLACKLIST_CANDIDATE in kinds:
        plan.append("check_blacklist")
    if Reason.DISCOUNT_CANDIDATE in kinds:
        plan.append("check_discount")
    if Reason.REMOTE_ISLAND in kinds:
        plan += ["correct_island", "tell_island_customer"]
    plan.append("release")
    ctx.facts["plan"] = plan
    return Done(plan[0], path="island" if Reason.REMOTE_ISLAND in kinds else "release",
                detail="plan: " + " → ".join(plan))


@procedure.step(final=True, then=WORK_STEPS, needs_person=(
                    "Compare the buyer with the customer(s) 顧客検索 found (listed above). If the buyer is a "
                    "ブラックリスト客, decide with the shop whether to ship; if not, " + RELEASE_BY_HAND + ". If "
                    "顧客検索 found nobody, check that KUROKO_TAMAGO_BLACKLIST_CHECK names the fields of 重要項目設定"
                    "「顧客のチェック方法」 and do the check by hand. Kuroko never releases an order with a "
                    "blacklisted match: after `kuroko release` it only waits until たまご shows the order released."))
def check_blacklist(ctx: StepContext) -> Outcome:
    """ブラックリスト客候補: 顧客検索 by the shop's 顧客のチェック方法; no blacklisted match → go on."""
    if was_handed_over(ctx):
        return Done("wait_for_person", detail="a person decides (blacklist candidate)")
    view = open_order(ctx)
    fields = list(dict.fromkeys(rules().tamago_blacklist_check))
    if not fields:
        raise ConfigurationError("KUROKO_TAMAGO_BLACKLIST_CHECK is empty; name the fields of たまご's "
                                 "「顧客のチェック方法」 (phone, postal_code, name)")
    by = "・".join(FIELD_NAMES[f] for f in fields)
    criteria = {f: customer_value(view, f) for f in fields}
    matches = others(view, ctx.use(TAMAGO).customers.find(**criteria))
    blacklisted = [m for m in matches if m.blacklisted]
    if blacklisted:
        hand_over(ctx, f"ブラックリスト客候補: 顧客検索 by {by} finds {len(blacklisted)} blacklisted customer(s): "
                       + "; ".join(describe_match(m) for m in blacklisted) + ". " + order_summary(view),
                  "tamago_blacklist_match")
    if not matches:
        hand_over(ctx, f"ブラックリスト客候補, but 顧客検索 by {by} finds no other customer: たまご's "
                       "顧客のチェック方法 may differ from KUROKO_TAMAGO_BLACKLIST_CHECK. Nothing was changed. "
                       + order_summary(view),
                  "tamago_blacklist_no_match")
    record_check(ctx, "blacklist",
                 f"ブラックリスト客候補: 顧客検索（{by}）で一致{len(matches)}件、ブラックリスト客なし")
    return Done(next_in_plan(ctx), detail=f"顧客検索 by {by}: {len(matches)} match(es), none blacklisted")


@procedure.step(final=True, then=WORK_STEPS, needs_person=(
                    "Decide whether the buyer is one of the customers listed above and an active subscriber (定期 "
                    "継続中). If so, apply 定期会員割引 in たまご (注文修正 →「更新する」); if not, leave the order "
                    "as it is. Then run `kuroko release`: Kuroko goes on and releases the 要対応 (moving an overdue "
                    "発送予定日 first) without touching the discount again."))
def check_discount(ctx: StepContext) -> Outcome:
    """定期割引候補: exactly one matching customer who is an active subscriber → 定期会員割引; no match →
    no discount; several matches or an inactive subscriber → a person."""
    if was_handed_over(ctx):
        record_check(ctx, "discount", "定期割引候補: 担当者が確認済み")
        return Done(next_in_plan(ctx), detail="a person decided the 定期会員割引")
    view = open_order(ctx)
    if view.member_discount:
        record_check(ctx, "discount", "定期割引候補: 定期会員割引は適用済み")
        return Done(next_in_plan(ctx), detail="定期会員割引 already applied", found=True)
    customers = ctx.use(TAMAGO).customers
    found = customers.find(phone=view.phone) + customers.find(postal_code=view.postal_code)
    found = [m for m in found if discount_rule_matches(view, m)]
    matches = others(view, found)
    if not matches:
        record_check(ctx, "discount",
                     "定期割引候補: 電話番号・郵便番号・氏名のうち2つが一致する顧客なし、定期会員割引なし")
        return Done(next_in_plan(ctx), detail="no customer matches by the seed's rules: no discount")
    listed = "; ".join(describe_match(m) for m in matches)
    if len(matches) > 1:
        hand_over(ctx, f"定期割引候補: {len(matches)} customers match the buyer: {listed}. Nothing was changed. "
                       + order_summary(view), "tamago_discount_several")
    match = matches[0]
    if not match.active_subscriber and match.subscriptions:
        hand_over(ctx, f"定期割引候補: the matching customer's subscription is stopped (停止中): {listed}. Nothing "
                       "was changed. " + order_summary(view), "tamago_discount_inactive")
    if not match.active_subscriber:
        record_check(ctx, "discount", f"定期割引候補: 一致した顧客{match.customer_id}は定期会員でないため割引なし")
        return Done(next_in_plan(ctx), detail=f"the matching customer {match.customer_id} has no subscription")
    sub = next(s for s in match.subscriptions if s.active)
    page = ctx.use(TAMAGO).order
    acted(ctx, ctx.act("tamago", "apply_member_discount", lambda: page.correct(member_discount=True),
                       order=ctx.key, customer=match.customer_id, subscription=sub.subscription_id))
    record_check(ctx, "discount", f"定期割引候補: 顧客{match.customer_id}（定期{sub.subscription_id} 継続中）と一致、"
                                  "定期会員割引を適用")
    return Done(next_in_plan(ctx), detail=f"定期会員割引 applied (matches 顧客 {match.customer_id}, "
                                          f"定期 {sub.subscription_id} 継続中)")


@procedure.step(then=WORK_STEPS, needs_person=(
                    "Correct the order in たまご 注文修正 by hand: 送料 to the remote-island fee "
                    "(KUROKO_TAMAGO_ISLAND_SHIPPING_FEE_YEN) and, on a subscription order, お届け間隔 to "
                    "KUROKO_TAMAGO_ISLAND_INTERVAL_DAYS; then run `kuroko release`."))
def correct_island(ctx: StepContext) -> Outcome:
    """離島からのご注文: 送料 and お届け間隔 as configured (the flag stays: a person tells the customer)."""
    view = open_order(ctx)
    fee = rules().tamago_island_shipping_fee_yen
    interval = rules().tamago_island_interval_days if view.is_subscription else None
    ctx.facts.setdefault("island_before", {"fee": view.shipping_fee_yen, "interval": view.interval_days})
    wanted = f"送料 {fee:,}円" + (f", お届け間隔 {interval}日ごと" if interval is not None else "")
    if view.shipping_fee_yen == fee and (interval is None or view.interval_days == interval):
        return Done(next_in_plan(ctx), detail=f"already corrected: {wanted}", found=True)
    page = ctx.use(TAMAGO).order
    acted(ctx, ctx.act("tamago", "correct_island_order", lambda: page.correct(shipping_fee=fee, interval=interval),
                       order=ctx.key, shipping_fee=fee, interval=interval, was_fee=view.shipping_fee_yen,
                       was_interval=view.interval_days))
    return Done(next_in_plan(ctx), detail=f"corrected: {wanted}")


@procedure.step(then=WORK_STEPS, needs_person=(
                    "Tell the customer (tel and e-mail above) that delivery to their island costs the 送料 above and, "
                    "for a subscription, that the お届け間隔 changed as above; the order is not shipped or charged "
                    "until then. Once the customer was told, run `kuroko release`: Kuroko then releases the 要対応 in "
                    "たまご (moving an overdue 発送予定日 first). If the customer does not accept, change or handle "
                    "the order in たまご yourself and do not run `kuroko release`."))
def tell_island_customer(ctx: StepContext) -> Outcome:
    """The flag stays until the person who told the customer releases the item."""
    if was_handed_over(ctx):
        record_check(ctx, "island", "離島からのご注文: 送料・お届け間隔を修正、担当者がお客様へ連絡済み")
        return Done(next_in_plan(ctx), detail="the customer was told (released by a person)")
    view = open_order(ctx)
    before = ctx.facts.get("island_before", {})
    changes = f"送料 {view.shipping_fee_yen:,}円 (was {before.get('fee', '?')}円)"
    if view.is_subscription:
        changes += f", お届け間隔 {view.interval_days}日ごと (was {before.get('interval', '?')}日ごと)"
    hand_over(ctx, f"離島からのご注文 (〒{view.postal_code} {view.prefecture}{view.address}). Kuroko corrected the "
                   f"order: {changes}. It stays 要対応 (not shipped, not charged) until the customer was told. "
                   + order_summary(view), "tamago_remote_island")


@procedure.step(final=True, then=("examine", "wait_for_person"), needs_person=(
                    "Release the order in たまご by hand: " + RELEASE_BY_HAND + ". Or, once what the note above "
                    "reports is put right, run `kuroko release` to let Kuroko try again."))
def release(ctx: StepContext) -> Outcome:
    """An overdue 発送予定日 moved to the next shipping day first; then every 対応状況 still 設定 released
    in this one visit, 対応日 today, 対応コメント saying what Kuroko checked."""
    if was_handed_over(ctx):
        return Done("wait_for_person", detail="a person has it; Kuroko waits until たまご shows it released")
    view = open_order(ctx, fresh=True)
    if view.released:
        return Done(None, detail="already released in たまご", found=True)
    if view.blacklisted:
        hand_over(ctx, "the buyer is now a ブラックリスト客: Kuroko never releases such an order. "
                  + order_summary(view), "tamago_blacklisted")
    if not view.reasons:
        hand_over(ctx, "the order is 要対応 with no system reason any more (a person flagged it by hand): Kuroko "
                       "never releases it. " + order_summary(view), "tamago_hand_set")
    if sorted(view.reasons) != sorted(ctx.facts.get("reasons", [])):
        return Done("examine", detail="the 要対応コメント changed since Kuroko examined the order: examined again")
    today = local_today(ctx)
    page = ctx.use(TAMAGO).order
    if view.overdue(today):
        new_date = rules().next_shipping_day(today)
        moved = ctx.act("tamago", "move_ship_date", lambda: page.correct(ship_date=new_date), order=ctx.key,
                        was=view.ship_date.isoformat(), ship_date=new_date.isoformat())
        acted(ctx, moved)
        view = moved if moved is not None else view
    comment = release_comment(ctx, view)
    scopes: list[Literal["order", "subscription"]] = ["order"]
    if view.subscription_flag is not None:
        scopes.append("subscription")
    for scope in scopes:
        flag = view.order_flag if scope == "order" else view.subscription_flag
        if flag is None or not flag.is_set:
            continue
        changed = ctx.act("tamago", f"release_flag_{scope}", release_scope(page, scope, today, comment),
                          order=ctx.key, day=today.isoformat())
        acted(ctx, changed)
        view = changed if changed is not None else view
    if not ctx.dry_run and not view.released:
        raise UnknownValue(f"たまご still shows a 対応状況 設定 on order {ctx.key} after 要対応を更新する; "
                           "check it by hand")
    return Done(None, detail=f"released: {comment}")


def release_scope(page: TamagoOrderPage, scope: Literal["order", "subscription"], day: date,
                  comment: str) -> Callable[[], TamagoOrderView]:
    return lambda: page.update_flag(scope, "解除", day, comment)


def release_comment(ctx: StepContext, view: TamagoOrderView) -> str:
    """対応コメント: what Kuroko checked, and why it released."""
    lines = list(dict(ctx.facts.get("checks", {})).values())
    was = ctx.facts.get("ship_date_was")
    if was and was != view.ship_date.isoformat():
        lines.append(f"発送予定日が過ぎていたため{was}から{view.ship_date}に変更")
    reasons = "、".join(view.reasons)
    return ("Kuroko: " + "。".join(lines) + ("。" if lines else "")
            + f"要対応理由（{reasons}）を確認し問題なしのため解除。")


@procedure.step(final=True, needs_person=(
                    "Finish the order in たまご and release its 要対応 there if it may ship (Kuroko does not release "
                    "it); Kuroko notices the release and closes its record. If nothing more is needed, solve this "
                    "ticket."))
def wait_for_person(ctx: StepContext) -> Outcome:
    """A person has the order (or set its flag by hand): look once a day until たまご shows it released."""
    view = open_order(ctx, fresh=True)
    if view.released:
        return Done(None, detail="released in たまご by a person")
    return NotYet(next_morning(ctx), "still 要対応 in たまご: a person finishes it there")


# --- the reasons only a person can work ---------------------------------------------------------------
def _person_step(name: str, code: str, needs_person: str, found: str) -> None:
    @procedure.step(name=name, final=True, then="wait_for_person", needs_person=needs_person)
    def run(ctx: StepContext) -> Outcome:
        if was_handed_over(ctx):
            return Done("wait_for_person", detail="a person has it; Kuroko waits until たまご shows it released")
        view = open_order(ctx)
        if view.released:
            return Done(None, detail="released in たまご meanwhile")
        extra = ""
        if Reason.PAYMENT_FAILED in view.reason_kinds and view.subscription is not None:
            note = view.subscription.next_order_note or "the next subscription order was not created"
            extra = (f" This is 定期 第{view.subscription.cycle}回; the charge that failed is the NEXT one's "
                     f"(「{note}」). Never cancel this order.")
        for message in view.reasons:
            amounts = mismatch_amounts(message)
            if amounts:
                extra += f" 入金額 {amounts[0]:,}円 ≠ 注文金額 {amounts[1]:,}円."
        hand_over(ctx, f"{found}{extra} Kuroko changed nothing and never cancels. " + order_summary(view), code)


_person_step(
    "ask_payment_change", "tamago_np_credit_ng",
    "Contact the customer (tel and e-mail above): NP後払い refused the credit check, so ask them to choose another "
    "payment method (クレジットカード, 銀行振込, or 代金引換 where the delivery method allows it). Change 支払方法 in "
    "たまご to their choice, then " + RELEASE_BY_HAND + ". Kuroko does not release this order; after "
    "`kuroko release` it only waits until たまご shows it released.",
    "NP与信NG: NP後払い refused the credit check; the customer must change the payment method.")
_person_step(
    "payment_failed", "tamago_payment_failed",
    "Contact the customer (tel and e-mail above): the card charge for their NEXT subscription order failed, so that "
    "order was never created. Ask them to update the card or choose another payment method, change it in たまご, "
    "then " + RELEASE_BY_HAND + " so the subscription goes on. Do NOT cancel this order: it is the order BEFORE "
    "the one whose charge failed. Kuroko does not release it; after `kuroko release` it only waits until たまご "
    "shows it released.",
    "たまご決済失敗: it concerns the subscription order after this one (flagged on the order before it).")
_person_step(
    "contact_net_protections", "tamago_np_unknown",
    "Contact Net Protections (NP後払い) about this order: its credit result could not be identified. Ask them for "
    "the cause (if it stays unclear, ask たまごコンシェル). When the credit is settled, " + RELEASE_BY_HAND + ". "
    "Kuroko does not release it; after `kuroko release` it only waits until たまご shows it released.",
    "NP与信 result not identifiable (pattern 5).")
_person_step(
    "redo_np_authorisation", "tamago_amount_mismatch",
    "Redo the NP authorisation (与信) for the order's current amount, then report the shipment (出荷報告) to NP "
    "again; then " + RELEASE_BY_HAND + ". Kuroko does not release it; after `kuroko release` it only waits until "
    "たまご shows it released.",
    "NP's 入金額 differs from the order's 注文金額 (the authorisation and the shipping report disagree).")
_person_step(
    "blacklisted_customer", "tamago_blacklisted",
    "Decide with the shop whether to ship to this ブラックリスト客. To ship: " + RELEASE_BY_HAND + ". Not to ship: "
    "handle the order in たまご as the shop decides. Kuroko never releases or cancels it; after `kuroko release` "
    "it only waits until たまご shows it released.",
    "ブラックリスト客: the buyer is on the shop's blacklist.")
_person_step(
    "unknown_reason", "tamago_unknown_reason",
    "Look up the 要対応 message above (たまご's manual, or たまごコンシェル), deal with the order in たまご, and "
    "if it may ship " + RELEASE_BY_HAND + ". Kuroko does not release it; after `kuroko release` it only waits "
    "until たまご shows it released. If this message should be handled automatically, tell the developers.",
    "たまご shows a 要対応 message Kuroko has no rule for.")
