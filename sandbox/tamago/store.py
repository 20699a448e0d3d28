"""たまごリピート's data: customers, subscriptions (定期), orders and their 要対応 flags.

How an order gets flagged (seed 001, 「各種要対応時の対応方法と理由」): each reason has a key here and
the seed's exact message (``REASONS``). Some reasons come from outside systems (NP credit results,
the NP amount check, the card charge of the next subscription order); the admin API gives them.
The others the store derives from the data when the order is placed (``derived_reasons``):

- ブラックリスト客       the customer is blacklisted
- ブラックリスト客候補   another customer who is blacklisted matches the buyer by the shop's
                         重要項目設定「顧客のチェック方法」 (``settings.blacklist_check``: the fields that must match)
- 離島からのご注文       the postal code is on a remote island (``ISLAND_POSTAL_PREFIXES``)
- 定期割引候補           another customer matches by one of the seed's three rules (same phone and postal
                         code or name; same postal code and phone or name; same name and phone or postal code)

A flag set by hand has no reason message at all.

A subscription order has two 対応状況: 今回注文分 (the order's own flag) and 定期全体 (the subscription's).
While either is 設定 the order is 要対応; when the last one is released the order moves to 発送準備中
at once (an already shipped order stays 出荷済). Releasing with an overdue 発送予定日 is allowed, as in
たまご, and recorded (``released_overdue``) so tests can catch it.

Every change of a field goes into the order's history and into the world's audit
(``world.record("tamago", "field_changed", …)``).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.world import World

# --- the seed's messages ----------------------------------------------------------------------
NP_NG_1 = "np_ng_1"
NP_NG_2 = "np_ng_2"
NP_NG_3 = "np_ng_3"
NP_NG_4 = "np_ng_4"
NP_UNKNOWN = "np_unknown"
AMOUNT_MISMATCH = "amount_mismatch"
BLACKLIST_CANDIDATE = "blacklist_candidate"
PAYMENT_FAILED = "payment_failed"
BLACKLISTED = "blacklisted"
REMOTE_ISLAND = "remote_island"
DISCOUNT_CANDIDATE = "discount_candidate"
MANUAL = "manual"

REASONS: dict[str, str] = {
    NP_NG_1: ("初回注文だったが、選択中の配送方法が「代引き」を指定できないため、"
              "注文ステータスを「与信NG」、「要対応」に変更"),
    NP_NG_2: "注文二回目以降のため、注文ステータスを「与信NG」、「要対応」に変更",
    NP_NG_3: "選択中の配送方法が「代引き」を指定できないため、注文ステータスを「与信NG」、「要対応」に変更",
    NP_NG_4: "注文ステータスを「与信NG」、「要対応」に変更",
    NP_UNKNOWN: "与信結果「識別番号」は、識別できないステータスです。",
    AMOUNT_MISMATCH: "入金額【{paid}】が注文金額【{total}】と一致しません。",
    BLACKLIST_CANDIDATE: "ブラックリスト客候補",
    PAYMENT_FAILED: "たまご決済失敗",
    BLACKLISTED: "ブラックリスト客",
    REMOTE_ISLAND: "離島からのご注文",
    DISCOUNT_CANDIDATE: "定期割引候補",
}
"""Reason key → the message たまご shows (seed 001, word for word; 【金額A】/【金額B】 are the amounts)."""
REASON_KEYS = (*REASONS, MANUAL)
NP_NG = (NP_NG_1, NP_NG_2, NP_NG_3, NP_NG_4)
"""These set the 注文ステータス to 与信NG as well (their messages say so)."""

# --- statuses and fixed lists ------------------------------------------------------------------
STATUS_NEW = "新規受付"
STATUS_CREDIT_NG = "与信NG"
STATUS_PREPARING = "発送準備中"
STATUS_SHIPPED = "出荷済"
STATUSES = (STATUS_NEW, STATUS_CREDIT_NG, STATUS_PREPARING, STATUS_SHIPPED)
FLAG_SET = "設定"
FLAG_RELEASED = "解除"
FLAG_NONE = "なし"
PAYMENTS = ("クレジットカード", "NP後払い", "代金引換", "銀行振込")
INTERVALS = (15, 30, 45, 60, 90)
"""お届け間隔 in days, as たまご offers them (shown 「30日ごと」)."""
DEFAULT_SHIPPING_FEE = 550
MEMBER_DISCOUNT_RATE = 0.10
"""定期会員割引: 10 % off the items, rounded down to the yen."""
SHIP_AFTER_DAYS = 2
"""発送予定日 is this many days after the order, unless given."""
ISLAND_POSTAL_PREFIXES = ("100-01", "100-14", "952-", "894-", "906-", "907-", "761-4")
"""伊豆大島, 八丈島, 佐渡, 奄美, 宮古島, 石垣, 小豆島: the 離島アラート option's list."""
CUSTOMER_FIELDS = ("name", "phone", "postal_code")
DISCOUNT_RULES = (("phone", ("postal_code", "name")), ("postal_code", ("phone", "name")),
                  ("name", ("phone", "postal_code")))
"""Seed 001 §7: the same X and one of the others."""


@dataclass(frozen=True)
class Product:
    code: str
    name: str
    price_yen: int


PRODUCTS = {
    p.code: p
    for p in [
        Product("TMG-SIM-MONTHLY", "【定期便】毎月お届け データSIM 20GB", 3980),
        Product("TMG-SIM-30D", "日本 プリペイドSIM 30日間 20GB", 2980),
        Product("TMG-SIM-90D", "日本 プリペイドSIM 90日間 50GB", 5980),
    ]
}
SUBSCRIPTION_PRODUCT = "TMG-SIM-MONTHLY"


def normalise(field_name: str, value: str) -> str:
    """How たまご compares customers: phone and postal code without hyphens, names without spaces."""
    if field_name in ("phone", "postal_code"):
        return re.sub(r"[-‐－ー\s]", "", value)
    return re.sub(r"[\s\u3000]", "", value)


def is_island(postal_code: str) -> bool:
    return postal_code.startswith(ISLAND_POSTAL_PREFIXES)


@dataclass
class Customer:
    customer_id: str
    name: str
    kana: str
    phone: str
    postal_code: str
    prefecture: str
    address: str
    email: str
    blacklisted: bool = False
    created_at: datetime | None = None

    def matches(self, other: Customer, fields: tuple[str, ...] | list[str]) -> bool:
        return all(normalise(f, getattr(self, f)) == normalise(f, getattr(other, f)) for f in fields)


@dataclass
class Flag:
    """One 対応状況 with its 対応日 and 対応コメント."""

    status: str = FLAG_NONE
    date: date | None = None
    comment: str = ""

    @property
    def is_set(self) -> bool:
        return self.status == FLAG_SET


@dataclass
class Subscription:
    subscription_id: str
    customer_id: str
    interval_days: int
    active: bool = True
    flag: Flag = field(default_factory=Flag)
    order_ids: list[str] = field(default_factory=list)
    next_order_failed: bool = False
    """The card charge for the next order failed (たまご決済失敗): that order was never created."""


@dataclass
class Item:
    code: str
    name: str
    quantity: int
    unit_price_yen: int


@dataclass
class Order:
    order_id: str
    placed_at: datetime
    customer_id: str
    items: list[Item]
    payment_method: str
    shipping_fee: int
    ship_date: date
    status: str = STATUS_NEW
    interval_days: int | None = None
    member_discount: bool = False
    subscription_id: str | None = None
    cycle: int | None = None
    """定期回数: the n-th order of its subscription."""
    previous_order_id: str | None = None
    """The subscription's order before this one."""
    reasons: list[str] = field(default_factory=list)
    """Reason keys, in the order たまご raised them."""
    messages: list[str] = field(default_factory=list)
    """The 要対応コメント lines as shown (REASONS filled in)."""
    flag: Flag = field(default_factory=Flag)
    paid_amount: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def subtotal(self) -> int:
        return sum(i.unit_price_yen * i.quantity for i in self.items)

    @property
    def discount_yen(self) -> int:
        return int(self.subtotal * MEMBER_DISCOUNT_RATE) if self.member_discount else 0

    @property
    def total(self) -> int:
        return self.subtotal + self.shipping_fee - self.discount_yen


class TamagoError(ValueError):
    """A request the store refuses (the admin API answers 400/404 with the message)."""


class TamagoStore:
    def __init__(self, world: World) -> None:
        self.world = world
        self.customers: dict[str, Customer] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.orders: dict[str, Order] = {}
        self.deleted: set[str] = set()
        self.labels: dict[str, str] = {}
        """Screen label → the label shown instead (fault knob: 'a changed page')."""
        self.blacklist_check: list[str] = ["phone"]
        """重要項目設定「顧客のチェック方法」: the fields that must all match a blacklisted customer."""
        self._order_ids = itertools.count(100001)
        self._customer_ids = itertools.count(50001)
        self._subscription_ids = itertools.count(7001)

    # --- time --------------------------------------------------------------------------------
    def today(self) -> date:
        return self.world.clock.today_jst()

    # --- customers ---------------------------------------------------------------------------
    def add_customer(self, *, name: str, phone: str, postal_code: str, prefecture: str = "東京都",
                     address: str = "新宿区西新宿2-8-1", kana: str = "", email: str = "",
                     blacklisted: bool = False) -> Customer:
        customer = Customer(
            customer_id=str(next(self._customer_ids)), name=name, kana=kana, phone=phone,
            postal_code=postal_code, prefecture=prefecture, address=address,
            email=email or f"customer{len(self.customers) + 1}@example.jp", blacklisted=blacklisted,
            created_at=self.world.now(),
        )
        self.customers[customer.customer_id] = customer
        self.world.record("tamago", "customer_created", customer_id=customer.customer_id,
                          blacklisted=blacklisted)
        return customer

    def customer(self, customer_id: str) -> Customer:
        try:
            return self.customers[customer_id]
        except KeyError:
            raise TamagoError(f"no customer {customer_id}") from None

    def set_blacklisted(self, customer_id: str, blacklisted: bool) -> Customer:
        customer = self.customer(customer_id)
        if customer.blacklisted != blacklisted:
            self.world.record("tamago", "customer_changed", customer_id=customer_id, field="blacklisted",
                              old=customer.blacklisted, new=blacklisted)
            customer.blacklisted = blacklisted
        return customer

    def search_customers(self, *, phone: str = "", postal_code: str = "", name: str = "") -> list[Customer]:
        """顧客検索: every given field must match (phone/postal code without hyphens, name without spaces)."""
        given = {k: v for k, v in {"phone": phone, "postal_code": postal_code, "name": name}.items() if v.strip()}
        if not given:
            return []
        return [c for c in self.customers.values()
                if all(normalise(k, getattr(c, k)) == normalise(k, v) for k, v in given.items())]

    def subscriptions_of(self, customer_id: str) -> list[Subscription]:
        return [s for s in self.subscriptions.values() if s.customer_id == customer_id]

    # --- subscriptions -----------------------------------------------------------------------
    def add_subscription(self, customer_id: str, *, interval_days: int = 30, active: bool = True,
                         past_orders: int = 1) -> Subscription:
        """A subscription with ``past_orders`` orders already shipped."""
        self.customer(customer_id)
        if interval_days not in INTERVALS:
            raise TamagoError(f"お届け間隔 {interval_days} is not one of {INTERVALS}")
        sub = Subscription(str(next(self._subscription_ids)), customer_id, interval_days, active)
        self.subscriptions[sub.subscription_id] = sub
        self.world.record("tamago", "subscription_created", subscription_id=sub.subscription_id,
                          customer_id=customer_id, active=active)
        for n in range(past_orders):
            placed = self.world.now() - timedelta(days=interval_days * (past_orders - n))
            order = self._new_order(customer_id, {SUBSCRIPTION_PRODUCT: 1}, "クレジットカード", placed,
                                    subscription=sub)
            order.status = STATUS_SHIPPED
        return sub

    def subscription(self, subscription_id: str) -> Subscription:
        try:
            return self.subscriptions[subscription_id]
        except KeyError:
            raise TamagoError(f"no subscription {subscription_id}") from None

    # --- orders ------------------------------------------------------------------------------
    def _new_order(self, customer_id: str, items: dict[str, int], payment_method: str, placed_at: datetime,
                   *, subscription: Subscription | None = None, shipping_fee: int = DEFAULT_SHIPPING_FEE,
                   ship_date: date | None = None) -> Order:
        unknown = [c for c in items if c not in PRODUCTS]
        if unknown:
            raise TamagoError(f"unknown product(s) {', '.join(unknown)}; known: {', '.join(PRODUCTS)}")
        if payment_method not in PAYMENTS:
            raise TamagoError(f"unknown payment method {payment_method!r}; one of {', '.join(PAYMENTS)}")
        from sandbox.world import JST

        order = Order(
            order_id=str(next(self._order_ids)), placed_at=placed_at, customer_id=customer_id,
            items=[Item(c, PRODUCTS[c].name, q, PRODUCTS[c].price_yen) for c, q in items.items()],
            payment_method=payment_method, shipping_fee=shipping_fee,
            ship_date=ship_date or placed_at.astimezone(JST).date() + timedelta(days=SHIP_AFTER_DAYS),
        )
        if subscription is not None:
            order.subscription_id = subscription.subscription_id
            order.interval_days = subscription.interval_days
            order.cycle = len(subscription.order_ids) + 1
            order.previous_order_id = subscription.order_ids[-1] if subscription.order_ids else None
            subscription.order_ids.append(order.order_id)
        self.orders[order.order_id] = order
        self.world.record("tamago", "order_placed", order_id=order.order_id, customer_id=customer_id,
                          subscription_id=order.subscription_id)
        return order

    def place_order(self, customer_id: str, *, items: dict[str, int] | None = None,
                    payment_method: str = "クレジットカード", subscription_id: str | None = None,
                    new_subscription: bool = False, interval_days: int = 30,
                    shipping_fee: int = DEFAULT_SHIPPING_FEE, ship_date: date | None = None,
                    reasons: list[str] | None = None, paid_amount: int | None = None,
                    comment: str = "", derive: bool = True) -> Order:
        """A customer orders. ``reasons`` are the flags outside systems raise (or ``manual``);
        with ``derive`` the store adds the ones its own rules find (module docstring)."""
        customer = self.customer(customer_id)
        wanted = list(reasons or [])
        bad = [r for r in wanted if r not in REASON_KEYS]
        if bad:
            raise TamagoError(f"unknown reason(s) {', '.join(bad)}; known: {', '.join(REASON_KEYS)}")
        if PAYMENT_FAILED in wanted:
            raise TamagoError("たまご決済失敗 is raised on an existing subscription order: "
                              "use fail_next_payment(subscription_id)")
        sub: Subscription | None = None
        if subscription_id:
            sub = self.subscription(subscription_id)
            if sub.customer_id != customer_id:
                raise TamagoError(f"subscription {subscription_id} belongs to customer {sub.customer_id}")
        elif new_subscription:
            if interval_days not in INTERVALS:
                raise TamagoError(f"お届け間隔 {interval_days} is not one of {INTERVALS}")
            sub = Subscription(str(next(self._subscription_ids)), customer_id, interval_days)
            self.subscriptions[sub.subscription_id] = sub
            self.world.record("tamago", "subscription_created", subscription_id=sub.subscription_id,
                              customer_id=customer_id, active=True)
        if items is None:
            items = {SUBSCRIPTION_PRODUCT: 1} if sub else {"TMG-SIM-30D": 1}
        order = self._new_order(customer_id, items, payment_method, self.world.now(), subscription=sub,
                                shipping_fee=shipping_fee, ship_date=ship_date)
        order.paid_amount = paid_amount
        found = self.derived_reasons(order, customer) if derive else []
        for reason in [*wanted, *found]:
            self._raise(order, reason, comment=comment)
        return order

    def derived_reasons(self, order: Order, customer: Customer) -> list[str]:
        others = [c for c in self.customers.values() if c.customer_id != customer.customer_id]
        found = []
        if any(c.blacklisted and c.matches(customer, self.blacklist_check) for c in others):
            found.append(BLACKLIST_CANDIDATE)
        if customer.blacklisted:
            found.append(BLACKLISTED)
        if is_island(customer.postal_code):
            found.append(REMOTE_ISLAND)
        if self.discount_matches(customer):
            found.append(DISCOUNT_CANDIDATE)
        return found

    def discount_matches(self, customer: Customer) -> list[Customer]:
        """Other customers matching by the seed's three rules (same X and one of Y, Z)."""
        return [c for c in self.customers.values() if c.customer_id != customer.customer_id
                and any(c.matches(customer, (first,)) and any(c.matches(customer, (o,)) for o in rest)
                        for first, rest in DISCOUNT_RULES)]

    def fail_next_payment(self, subscription_id: str) -> Order:
        """The card charge for the subscription's next order failed: that order is not created and
        the order BEFORE it — the latest one — is flagged たまご決済失敗 (seed 001 §4)."""
        sub = self.subscription(subscription_id)
        if not sub.order_ids:
            raise TamagoError(f"subscription {subscription_id} has no order yet")
        sub.next_order_failed = True
        order = self.orders[sub.order_ids[-1]]
        self._raise(order, PAYMENT_FAILED)
        return order

    def _raise(self, order: Order, reason: str, *, comment: str = "") -> None:
        """たまご (or, for ``manual``, a person) flags the order: both 対応状況 of a subscription order."""
        if reason in order.reasons:
            return
        order.reasons.append(reason)
        if reason != MANUAL:
            text = REASONS[reason]
            if reason == AMOUNT_MISMATCH:
                paid = order.paid_amount if order.paid_amount is not None else order.total - 300
                order.paid_amount = paid
                text = text.format(paid=paid, total=order.total)
            order.messages.append(text)
        if reason in NP_NG and order.status == STATUS_NEW:
            self._change(order, "status", STATUS_CREDIT_NG, by="tamago")
        by = "person" if reason == MANUAL else "tamago"
        if not order.flag.is_set:
            self._change(order, "flag", FLAG_SET, by=by)
            self._change(order, "flag_date", self.today(), by=by)
            if comment:
                self._change(order, "flag_comment", comment, by=by)
        sub = self.subscriptions.get(order.subscription_id or "")
        if sub is not None and not sub.flag.is_set:
            self._change(order, "subscription_flag", FLAG_SET, by=by)
            self._change(order, "subscription_flag_date", self.today(), by=by)
        self.world.record("tamago", "order_flagged", order_id=order.order_id, reason=reason,
                          message=order.messages[-1] if reason != MANUAL else "")

    def get(self, order_id: str) -> Order:
        try:
            return self.orders[order_id]
        except KeyError:
            raise TamagoError(f"no order {order_id}") from None

    def delete(self, order_id: str) -> None:
        order = self.get(order_id)
        del self.orders[order_id]
        self.deleted.add(order_id)
        sub = self.subscriptions.get(order.subscription_id or "")
        if sub is not None and order_id in sub.order_ids:
            sub.order_ids.remove(order_id)
        self.world.record("tamago", "order_deleted", order_id=order_id)

    # --- what 要対応 means ----------------------------------------------------------------------
    def subscription_of(self, order: Order) -> Subscription | None:
        return self.subscriptions.get(order.subscription_id or "")

    def is_flagged(self, order: Order) -> bool:
        """要対応: its own 対応状況 is 設定, or it is the latest order of a subscription whose 定期全体 is."""
        if order.flag.is_set:
            return True
        sub = self.subscription_of(order)
        return bool(sub and sub.flag.is_set and sub.order_ids and sub.order_ids[-1] == order.order_id)

    def is_overdue(self, order: Order) -> bool:
        """発送予定日 has passed and the order is not shipped yet."""
        return order.ship_date < self.today() and order.status != STATUS_SHIPPED

    def flagged_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if self.is_flagged(o)]

    # --- what a user changes ------------------------------------------------------------------
    def _field(self, order: Order, name: str) -> Any:
        sub = self.subscription_of(order)
        holders: dict[str, tuple[Any, str]] = {
            "flag": (order.flag, "status"), "flag_date": (order.flag, "date"),
            "flag_comment": (order.flag, "comment"),
        }
        if sub is not None:
            holders |= {"subscription_flag": (sub.flag, "status"), "subscription_flag_date": (sub.flag, "date"),
                        "subscription_flag_comment": (sub.flag, "comment")}
        if name in holders:
            holder, attr = holders[name]
            return holder, attr
        return order, name

    def _change(self, order: Order, name: str, value: Any, *, by: str) -> bool:
        holder, attr = self._field(order, name)
        old = getattr(holder, attr)
        if old == value:
            return False
        setattr(holder, attr, value)
        if name == "interval_days":
            sub = self.subscription_of(order)
            if sub is not None:
                sub.interval_days = value
        entry = {"at": self.world.now().isoformat(), "field": name, "old": _plain(old), "new": _plain(value),
                 "by": by}
        order.history.append(entry)
        self.world.record("tamago", "field_changed", order_id=order.order_id, field=name, old=_plain(old),
                          new=_plain(value), by=by)
        return True

    def update_flag(self, order_id: str, scope: str, status: str, day: date | None, comment: str,
                    *, by: str = "user") -> list[str]:
        """要対応を更新する on one 対応状況 (scope ``order`` = 今回注文分, ``subscription`` = 定期全体).
        Returns the fields that changed."""
        order = self.get(order_id)
        if status not in (FLAG_SET, FLAG_RELEASED):
            raise TamagoError("対応状況を選択してください。")
        if day is None:
            raise TamagoError("対応日を入力してください。")
        if scope == "subscription":
            if self.subscription_of(order) is None:
                raise TamagoError("この注文は定期注文ではありません。")
            prefix = "subscription_flag"
        elif scope == "order":
            prefix = "flag"
        else:
            raise TamagoError(f"unknown scope {scope!r}")
        was_flagged = self.is_flagged(order)
        changed = [name for name, value in ((prefix, status), (f"{prefix}_date", day),
                                            (f"{prefix}_comment", comment))
                   if self._change(order, name, value, by=by)]
        self.world.record("tamago", "flag_updated", order_id=order_id, scope=scope, status=status,
                          date=day.isoformat(), comment=comment, changed=changed)
        if was_flagged and not self.is_flagged(order):
            overdue = self.is_overdue(order)
            if order.status in (STATUS_NEW, STATUS_CREDIT_NG):
                self._change(order, "status", STATUS_PREPARING, by="tamago")
            self.world.record("tamago", "order_released", order_id=order_id, status=order.status,
                              ship_date=order.ship_date.isoformat(), released_overdue=overdue)
        return changed

    def correct(self, order_id: str, *, shipping_fee: int | None = None, ship_date: date | None = None,
                interval_days: int | None = None, member_discount: bool | None = None,
                by: str = "user") -> list[str]:
        """注文修正 → 更新する: only fields that differ change (and are recorded)."""
        order = self.get(order_id)
        if shipping_fee is not None and shipping_fee < 0:
            raise TamagoError("送料は0以上の数値で入力してください。")
        if interval_days is not None:
            if order.subscription_id is None:
                raise TamagoError("お届け間隔は定期注文のみ変更できます。")
            if interval_days not in INTERVALS:
                raise TamagoError("お届け間隔を一覧から選択してください。")
        if order.status == STATUS_SHIPPED:
            raise TamagoError("出荷済の注文は修正できません。")
        changed = [name for name, value in (("shipping_fee", shipping_fee), ("ship_date", ship_date),
                                            ("interval_days", interval_days), ("member_discount", member_discount))
                   if value is not None and self._change(order, name, value, by=by)]
        self.world.record("tamago", "order_corrected", order_id=order_id, changed=changed)
        return changed

    # --- reading it all -----------------------------------------------------------------------
    def customer_state(self, customer: Customer) -> dict[str, Any]:
        return {
            "customer_id": customer.customer_id, "name": customer.name, "kana": customer.kana,
            "phone": customer.phone, "postal_code": customer.postal_code, "prefecture": customer.prefecture,
            "address": customer.address, "email": customer.email, "blacklisted": customer.blacklisted,
            "subscriptions": [self.subscription_state(s) for s in self.subscriptions_of(customer.customer_id)],
        }

    def subscription_state(self, sub: Subscription) -> dict[str, Any]:
        return {
            "subscription_id": sub.subscription_id, "customer_id": sub.customer_id, "active": sub.active,
            "interval_days": sub.interval_days, "order_ids": list(sub.order_ids),
            "next_order_failed": sub.next_order_failed,
            "flag": {"status": sub.flag.status, "date": _plain(sub.flag.date), "comment": sub.flag.comment},
        }

    def order_state(self, order: Order) -> dict[str, Any]:
        sub = self.subscription_of(order)
        customer = self.customers[order.customer_id]
        return {
            "order_id": order.order_id,
            "placed_at": order.placed_at.isoformat(),
            "status": order.status,
            "flagged": self.is_flagged(order),
            "reasons": list(order.reasons),
            "messages": list(order.messages),
            "customer": self.customer_state(customer),
            "items": [{"code": i.code, "name": i.name, "quantity": i.quantity, "unit_price_yen": i.unit_price_yen}
                      for i in order.items],
            "payment_method": order.payment_method,
            "subtotal": order.subtotal,
            "shipping_fee": order.shipping_fee,
            "member_discount": order.member_discount,
            "discount_yen": order.discount_yen,
            "total": order.total,
            "paid_amount": order.paid_amount,
            "ship_date": order.ship_date.isoformat(),
            "overdue": self.is_overdue(order),
            "interval_days": order.interval_days,
            "subscription_id": order.subscription_id,
            "cycle": order.cycle,
            "previous_order_id": order.previous_order_id,
            "payment_failed_for_next": bool(sub and sub.next_order_failed and sub.order_ids
                                            and sub.order_ids[-1] == order.order_id),
            "flag": {"status": order.flag.status, "date": _plain(order.flag.date), "comment": order.flag.comment},
            "subscription_flag": ({"status": sub.flag.status, "date": _plain(sub.flag.date),
                                   "comment": sub.flag.comment} if sub else None),
            "history": list(order.history),
        }

    def snapshot(self) -> dict[str, Any]:
        return {
            "orders": [self.order_state(o) for o in self.orders.values()],
            "customers": [self.customer_state(c) for c in self.customers.values()],
            "blacklist_check": list(self.blacklist_check),
            "labels": dict(self.labels),
            "deleted": sorted(self.deleted),
        }


def _plain(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    return value
