"""The sandbox's one world: a clock, the Rakuten orders that BOSS and RMS show, and the
Zendesk and Amazon stores, all in memory and all moved by one virtual clock.

Everything runs on one asyncio loop (the apps use ``async def`` handlers only), so the world
needs no locks: a handler reads and changes it without awaiting in between.
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.catalog import PRODUCTS, RMS_TEMPLATES, Buyer, ProductKind, make_buyer

JST = ZoneInfo("Asia/Tokyo")
DEFAULT_START = datetime(2026, 11, 20, 9, 0, tzinfo=JST).astimezone(UTC)
SHOP_ID = "381234"

ORDER_DETAILS_SUBJECT = "[Rakuten Marketplace] Order Details Confirmation (automatic email)"
ORDER_CONFIRMATION_SUBJECT = "[Rakuten Marketplace] Order Confirmation (automatic email)"
RAKUTEN_SENDER = ("楽天市場", "order@rakuten.co.jp")

RSL_CONFIRMATION_MINUTES = 30
"""RSL confirms an order it has stock for, and Rakuten mails `Order Confirmation`, this long after
the order (seed 000: 'followed by the order confirmation email 30 minutes later')."""


class BossState(StrEnum):
    NEW = "New Order"
    CONFIRMATION_TO_BE = "Confirmation to be"
    SHIPPING_IN_PROGRESS = "Shipping in Progress"
    SHIPPED = "Shipped"
    DELETED = "Deleted"
    CANCELLED = "Cancelled"


class VirtualClock:
    """Stands still until moved: tests and the demo say when time passes."""

    def __init__(self, start: datetime = DEFAULT_START) -> None:
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        if delta < timedelta(0):
            raise ValueError("the clock only moves forward")
        self._now += delta

    def set(self, moment: datetime) -> None:
        moment = moment.astimezone(UTC)
        if moment < self._now:
            raise ValueError("the clock only moves forward")
        self._now = moment

    def today_jst(self) -> date:
        return self._now.astimezone(JST).date()


@dataclass
class OrderItem:
    sku: str
    name: str
    kind: ProductKind
    quantity: int
    price_yen: int


@dataclass
class RmsMail:
    mail_id: str
    template: str
    subject: str
    body: str
    sent_at: datetime
    fields: dict[str, str]


@dataclass
class ShippingRow:
    """One 発送明細 row. A value sent blank is stored blank (None), as the real RMS does."""

    detail_id: str
    company: str | None
    date: date | None
    tracking_number: str | None
    set_at: datetime

    @property
    def complete(self) -> bool:
        return bool(self.company and self.date and self.tracking_number)


@dataclass
class RakutenOrder:
    order_number: str
    placed_at: datetime
    buyer: Buyer
    items: list[OrderItem]
    boss_listed: bool = True
    boss_state: BossState = BossState.CONFIRMATION_TO_BE
    boss_history: list[tuple[datetime, str]] = field(default_factory=list)
    confirmed_at: datetime | None = None
    confirmed_by: str | None = None
    confirm_clicks: int = 0
    mails: list[RmsMail] = field(default_factory=list)
    shipping_rows: list[ShippingRow] = field(default_factory=list)
    """RMS's 発送明細, in the order they were added (one per parcel)."""

    @property
    def total_yen(self) -> int:
        return sum(i.price_yen * i.quantity for i in self.items)

    # The first row's values: what the order showed when it had one row (admin state, procedure A).
    @property
    def shipping_company(self) -> str | None:
        return self.shipping_rows[0].company if self.shipping_rows else None

    @property
    def shipping_date(self) -> date | None:
        return self.shipping_rows[0].date if self.shipping_rows else None

    @property
    def tracking_number(self) -> str | None:
        return self.shipping_rows[0].tracking_number if self.shipping_rows else None

    @property
    def shipping_set_at(self) -> datetime | None:
        """When a row was last added or changed."""
        return max((r.set_at for r in self.shipping_rows), default=None)

    def rms_status(self, now: datetime) -> str:
        """RMS's 注文ステータス. Every 発送明細 row complete → 完了 from the day (JST) after the last
        change on; a row missing 配送会社, 発送日 or お荷物伝票番号 keeps the order from completing."""
        if self.boss_state is BossState.CANCELLED:
            return "キャンセル確定"
        if self.shipping_complete and self.shipping_set_at is not None:
            set_day = self.shipping_set_at.astimezone(JST).date()
            if now.astimezone(JST).date() > set_day:
                return "完了"
            return "発送後"
        if self.confirmed_at is not None:
            return "発送待ち"
        return "注文確認待ち"

    @property
    def shipping_complete(self) -> bool:
        return bool(self.shipping_rows) and all(r.complete for r in self.shipping_rows)


@dataclass
class FaultSettings:
    """Per-system fault knobs (admin API: POST /admin/faults)."""

    latency_ms: int = 0
    error_rate: float = 0.0
    burst_429: int = 0
    """The next N requests get 429."""
    expire_sessions: bool = False
    """Web apps: every current login session is dropped at the next request."""
    refuse_token: bool = False
    """SP-API: the token endpoint refuses the refresh token."""
    hide_elements: list[str] = field(default_factory=list)
    """Web apps: names of page elements not rendered (a page that changed)."""
    error_paths: list[str] = field(default_factory=list)
    """Only requests whose path contains one of these get the 5xx (empty: every path)."""
    rename_labels: dict[str, str] = field(default_factory=dict)
    """Web apps: button and field labels shown under another name (e.g. {"次へ": "進む"})."""


SYSTEMS = ("boss", "rms", "zendesk", "spapi", "tamago", "bcart")


@dataclass(order=True)
class _Event:
    due: datetime
    seq: int
    kind: str = field(compare=False)
    order_number: str = field(compare=False)


class World:
    def __init__(self, seed: int = 0, start: datetime = DEFAULT_START) -> None:
        from sandbox.amazon.store import AmazonStore
        from sandbox.bcart.store import BcartStore
        from sandbox.tamago.store import TamagoStore
        from sandbox.zendesk.store import ZendeskStore

        self.seed = seed
        self.rng = random.Random(seed)
        self.fault_rng = random.Random(seed + 1)
        self.clock = VirtualClock(start)
        self.orders: dict[str, RakutenOrder] = {}
        self.rsl_stock: dict[str, int] = {}
        self.faults: dict[str, FaultSettings] = {s: FaultSettings() for s in SYSTEMS}
        self.request_counts: dict[str, int] = {s: 0 for s in SYSTEMS}
        self.responses_429: dict[str, int] = {s: 0 for s in SYSTEMS}
        self.urls: dict[str, str] = {}
        self.audit: list[dict[str, Any]] = []
        self._events: list[_Event] = []
        self._seq = itertools.count()
        self._mail_ids = itertools.count(1)
        self.zendesk = ZendeskStore(self)
        self.amazon = AmazonStore(self)
        self.tamago = TamagoStore(self)
        self.bcart = BcartStore(self)

    # --- time ------------------------------------------------------------------------------
    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, delta: timedelta) -> None:
        """Move time forward, letting everything that falls due on the way happen in order."""
        target = self.clock.now() + delta
        while self._events and self._events[0].due <= target:
            event = heapq.heappop(self._events)
            self.clock.set(max(event.due, self.clock.now()))
            self._fire(event)
        self.clock.set(target)
        self.amazon.tick(self.clock.now())

    def schedule(self, due: datetime, kind: str, order_number: str) -> None:
        heapq.heappush(self._events, _Event(due, next(self._seq), kind, order_number))

    def _fire(self, event: _Event) -> None:
        order = self.orders.get(event.order_number)
        if order is None:
            return
        if event.kind == "rsl_confirm" and order.boss_state is BossState.CONFIRMATION_TO_BE:
            self._set_boss_state(order, BossState.SHIPPING_IN_PROGRESS, "RSL")
            self._confirm(order, by="RSL")
        elif event.kind == "rsl_ship" and order.boss_state is BossState.SHIPPING_IN_PROGRESS:
            self._set_boss_state(order, BossState.SHIPPED, "RSL")

    def record(self, system: str, action: str, **details: Any) -> None:
        """What happened, as the admin API reports it (tests count side effects here)."""
        self.audit.append({"at": self.now().isoformat(), "system": system, "action": action, **details})

    # --- Rakuten orders (BOSS and RMS show the same orders) -------------------------------
    def new_order_number(self, placed_at: datetime) -> str:
        day = placed_at.astimezone(JST).strftime("%Y%m%d")
        while True:
            number = f"{SHOP_ID}-{day}-{self.rng.randrange(10**9, 10**10):010d}"
            if number not in self.orders:
                return number

    def place_order(
        self,
        skus: list[str] | dict[str, int],
        *,
        buyer: Buyer | None = None,
        remote: bool | None = None,
        boss_listed: bool = True,
        order_number: str | None = None,
        send_mail: bool = True,
    ) -> RakutenOrder:
        """A buyer orders on Rakuten Ichiba: RMS holds it, BOSS lists it, Zendesk gets the mail."""
        quantities = dict.fromkeys(skus, 1) if isinstance(skus, list) else dict(skus)
        unknown = [s for s in quantities if s not in PRODUCTS]
        if unknown:
            raise ValueError(f"unknown SKU(s): {', '.join(unknown)}; known: {', '.join(PRODUCTS)}")
        now = self.now()
        items = [
            OrderItem(sku, PRODUCTS[sku].name, PRODUCTS[sku].kind, qty, PRODUCTS[sku].price_yen)
            for sku, qty in quantities.items()
        ]
        order = RakutenOrder(
            order_number=order_number or self.new_order_number(now),
            placed_at=now,
            buyer=buyer or make_buyer(self.rng, remote=remote),
            items=items,
            boss_listed=boss_listed,
        )
        order.boss_history.append((now, BossState.CONFIRMATION_TO_BE.value))
        self.orders[order.order_number] = order
        self.record("rakuten", "order_placed", order_number=order.order_number)
        if send_mail:
            self.zendesk.receive_mail(
                subject=ORDER_DETAILS_SUBJECT,
                body=self.order_details_mail(order),
                sender=RAKUTEN_SENDER,
            )
        if all(self.rsl_stock.get(i.sku, 0) >= i.quantity for i in items):
            for i in items:
                self.rsl_stock[i.sku] -= i.quantity
            self.schedule(now + timedelta(minutes=RSL_CONFIRMATION_MINUTES), "rsl_confirm", order.order_number)
            self.schedule(now + timedelta(days=1), "rsl_ship", order.order_number)
        return order

    def purchase_history_url(self, order_number: str) -> str:
        return f"{self.urls.get('rms', 'http://127.0.0.1:8102')}/rms/order/{order_number}"

    def order_details_mail(self, order: RakutenOrder) -> str:
        placed = order.placed_at.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S")
        lines = [
            f"{order.buyer.name} 様",
            "",
            "この度は楽天市場でのご注文、誠にありがとうございます。",
            "以下の内容でご注文を承りました。",
            "",
            "[Order Details Confirmation]",
            f"[受注番号] {order.order_number}",
            f"[日時] {placed}",
            f"[注文者] {order.buyer.name} 様",
            "",
            "[商品]",
        ]
        for item in order.items:
            lines.append(f"  {item.name} ({item.sku}) × {item.quantity}  {item.price_yen:,}円")
        lines += [
            f"[合計] {order.total_yen:,}円",
            "",
            "ご注文内容は購入履歴からご確認いただけます。",
            f"Purchase History: {self.purchase_history_url(order.order_number)}",
        ]
        return "\n".join(lines)

    def order_confirmation_mail(self, order: RakutenOrder) -> str:
        return "\n".join(
            [
                f"{order.buyer.name} 様",
                "",
                "ご注文が確定いたしました。[Order Confirmation]",
                f"[受注番号] {order.order_number}",
                f"Purchase History: {self.purchase_history_url(order.order_number)}",
            ]
        )

    def get_order(self, order_number: str) -> RakutenOrder:
        try:
            return self.orders[order_number]
        except KeyError:
            raise KeyError(f"no Rakuten order {order_number}") from None

    def _set_boss_state(self, order: RakutenOrder, state: BossState, by: str) -> None:
        order.boss_state = state
        order.boss_history.append((self.now(), state.value))
        self.record("boss", "state_changed", order_number=order.order_number, state=state.value, by=by)

    def _confirm(self, order: RakutenOrder, *, by: str) -> None:
        if order.confirmed_at is not None:
            return
        order.confirmed_at = self.now()
        order.confirmed_by = by
        self.zendesk.receive_mail(
            subject=ORDER_CONFIRMATION_SUBJECT,
            body=self.order_confirmation_mail(order),
            sender=RAKUTEN_SENDER,
        )

    # --- what BOSS and RMS users do ----------------------------------------------------------
    def confirm_order_in_rms(self, order_number: str) -> None:
        """注文確認. A second click on a confirmed order changes nothing (RMS hides the button)."""
        order = self.get_order(order_number)
        order.confirm_clicks += 1
        self.record("rms", "confirm_order", order_number=order_number, first=order.confirmed_at is None)
        self._confirm(order, by="RMS")

    def send_rms_mail(self, order_number: str, template_key: str, fields: dict[str, str]) -> RmsMail:
        order = self.get_order(order_number)
        template = RMS_TEMPLATES[template_key]
        mail = RmsMail(
            mail_id=f"M{next(self._mail_ids):07d}",
            template=template,
            subject=f"【楽天市場】{template}（受注番号：{fields.get('order_number', order.order_number)}）",
            body=render_mail_body(template_key, order, fields),
            sent_at=self.now(),
            fields=dict(fields),
        )
        order.mails.append(mail)
        self.record("rms", "mail_sent", order_number=order_number, template=template, mail_id=mail.mail_id,
                    fields=dict(fields))
        return mail

    def set_shipping(self, order_number: str, company: str, ship_date: date, tracking: str) -> None:
        """The first 発送明細 row set to these values (added if the order has none)."""
        order = self.get_order(order_number)
        if order.shipping_rows:
            self.update_shipping_row(order_number, order.shipping_rows[0].detail_id, company, ship_date, tracking)
        else:
            self.add_shipping_row(order_number, company, ship_date, tracking)

    def add_shipping_row(self, order_number: str, company: str | None, ship_date: date | None,
                         tracking: str | None) -> ShippingRow:
        """発送明細を追加: a new row, blanks stored as blanks."""
        order = self.get_order(order_number)
        number = max((int(r.detail_id.rsplit("-", 1)[1]) for r in order.shipping_rows), default=0) + 1
        row = ShippingRow(detail_id=f"{order_number}-{number}", company=company or None, date=ship_date,
                          tracking_number=tracking or None, set_at=self.now())
        order.shipping_rows.append(row)
        self.record("rms", "shipping_set", order_number=order_number, detail_id=row.detail_id, added=True,
                    company=row.company, date=ship_date.isoformat() if ship_date else None,
                    tracking=row.tracking_number)
        return row

    def update_shipping_row(self, order_number: str, detail_id: str, company: str | None, ship_date: date | None,
                            tracking: str | None) -> ShippingRow:
        """A row's three values overwritten with what was sent — a blank overwrites with nothing."""
        order = self.get_order(order_number)
        row = next((r for r in order.shipping_rows if r.detail_id == detail_id), None)
        if row is None:
            raise KeyError(f"order {order_number} has no 発送明細 {detail_id}")
        row.company, row.date, row.tracking_number = company or None, ship_date, tracking or None
        row.set_at = self.now()
        self.record("rms", "shipping_set", order_number=order_number, detail_id=detail_id, added=False,
                    company=row.company, date=ship_date.isoformat() if ship_date else None,
                    tracking=row.tracking_number)
        return row

    def delete_in_boss(self, order_number: str) -> None:
        self._set_boss_state(self.get_order(order_number), BossState.DELETED, "user")
        self.record("boss", "order_deleted", order_number=order_number)

    def cancel_in_boss(self, order_number: str) -> None:
        self._set_boss_state(self.get_order(order_number), BossState.CANCELLED, "user")
        self.record("boss", "order_cancelled", order_number=order_number)

    # --- reading it all ----------------------------------------------------------------------
    def order_state(self, order: RakutenOrder) -> dict[str, Any]:
        now = self.now()
        return {
            "order_number": order.order_number,
            "placed_at": order.placed_at.isoformat(),
            "buyer": order.buyer.name,
            "prefecture": order.buyer.prefecture,
            "items": [{"sku": i.sku, "kind": i.kind.value, "quantity": i.quantity} for i in order.items],
            "boss_listed": order.boss_listed,
            "boss_state": order.boss_state.value,
            "boss_history": [s for _, s in order.boss_history],
            "rms_status": order.rms_status(now),
            "confirmed_by": order.confirmed_by,
            "confirm_clicks": order.confirm_clicks,
            "mails": [
                {"mail_id": m.mail_id, "template": m.template, "sent_at": m.sent_at.isoformat(), "fields": m.fields}
                for m in order.mails
            ],
            "shipping": {
                "company": order.shipping_company,
                "date": order.shipping_date.isoformat() if order.shipping_date else None,
                "tracking_number": order.tracking_number,
            },
            "shipping_rows": shipping_rows_state(order),
        }


def shipping_rows_state(order: RakutenOrder) -> list[dict[str, Any]]:
    return [{"detail_id": r.detail_id, "company": r.company, "date": r.date.isoformat() if r.date else None,
             "tracking_number": r.tracking_number} for r in order.shipping_rows]


def render_mail_body(template_key: str, order: RakutenOrder, fields: dict[str, str]) -> str:
    number = fields.get("order_number", order.order_number)
    if template_key == "thank_you":
        return (
            f"{order.buyer.name} 様\n\nこの度はご注文いただき誠にありがとうございます。\n"
            f"受注番号：{number}\n商品の発送準備が整い次第、改めてご連絡いたします。"
        )
    return (
        f"{order.buyer.name} 様\n\nご注文の商品を発送いたしました。\n"
        f"① 受注番号：{number}\n② 発送日：{fields.get('ship_date', '')}\n"
        f"③ 配送会社：{fields.get('carrier', '')}\n④ お問い合わせ番号：{fields.get('tracking_number', '')}"
    )
