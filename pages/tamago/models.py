"""What the たまご page objects read, in business words."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel

from pages.tamago.reasons import Reason, classify

FlagStatus = Literal["設定", "解除", "なし"]
"""対応状況: 設定 (flagged), 解除 (released), なし (never flagged)."""


class FlaggedOrder(BaseModel):
    """One row of 注文検索 (要対応のみ)."""

    order_id: str
    placed_at: datetime
    customer_name: str
    payment_method: str
    status: str
    """注文ステータス: 新規受付, 与信NG, 発送準備中, 出荷済."""
    reasons: list[str]
    """The 要対応コメント lines (empty: flagged by hand)."""
    ship_date: date
    subscription_cycle: int | None
    """定期 第n回; None for a normal order."""

    @property
    def hand_set(self) -> bool:
        return not self.reasons


class TamagoItem(BaseModel):
    code: str
    name: str
    quantity: int
    unit_price_yen: int


class FlagState(BaseModel):
    """One 対応状況 as the page shows it, with its 対応日 and 対応コメント."""

    status: FlagStatus
    date: date | None
    comment: str

    @property
    def is_set(self) -> bool:
        return self.status == "設定"


class SubscriptionInfo(BaseModel):
    """定期情報 of a subscription order."""

    subscription_id: str
    cycle: int
    active: bool
    """定期状況 継続中 (True) or 停止中."""
    previous_order_id: str | None
    next_order_note: str | None
    """E.g. 「第3回の定期注文は決済失敗のため作成されていません」 (たまご決済失敗 on this order)."""


class TamagoOrderView(BaseModel):
    """注文詳細, read in one round trip."""

    order_id: str
    placed_at: datetime
    status: str
    flagged: bool
    """The 要対応 mark."""
    reasons: list[str]
    """要対応コメント: たまご's reason messages, as shown (empty: a flag set by hand, or none)."""
    payment_method: str
    ship_date: date
    """発送予定日."""
    interval_days: int | None
    """お届け間隔 in days (subscription orders)."""
    shipping_fee_yen: int
    member_discount: bool
    """定期会員割引 applied."""
    discount_yen: int
    subtotal_yen: int
    total_yen: int
    customer_id: str
    customer_name: str
    customer_kana: str
    phone: str
    postal_code: str
    """Without the 〒 mark, e.g. 160-0023."""
    prefecture: str
    address: str
    email: str
    blacklisted: bool
    """注文者情報 shows 「ブラックリスト客」."""
    items: list[TamagoItem]
    subscription: SubscriptionInfo | None
    order_flag: FlagState
    """対応状況 (今回注文分)."""
    subscription_flag: FlagState | None
    """対応状況 (定期全体); None for a normal order."""

    @property
    def is_subscription(self) -> bool:
        return self.subscription is not None

    @property
    def reason_kinds(self) -> list[Reason | None]:
        """Each message's reason (None: a message no rule knows)."""
        return [classify(m) for m in self.reasons]

    @property
    def hand_set(self) -> bool:
        """Flagged, with no system reason: a person set it."""
        return self.flagged and not self.reasons

    @property
    def released(self) -> bool:
        """No 対応状況 is 設定 any more."""
        return not self.order_flag.is_set and not (self.subscription_flag and self.subscription_flag.is_set)

    def overdue(self, today: date) -> bool:
        return self.ship_date < today and self.status != "出荷済"


class CustomerSubscription(BaseModel):
    subscription_id: str
    active: bool
    interval_days: int


class CustomerMatch(BaseModel):
    """One row of 顧客検索."""

    customer_id: str
    name: str
    phone: str
    postal_code: str
    address: str
    blacklisted: bool
    subscriptions: list[CustomerSubscription]

    @property
    def active_subscriber(self) -> bool:
        return any(s.active for s in self.subscriptions)
