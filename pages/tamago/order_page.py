"""注文詳細 — one order's page — and what the robot does there: read it, release its 要対応 (both
対応状況 of a subscription order), correct it through 注文修正.

The page object reports what たまご shows and changes only what it is asked to, and only what is
not already so: releasing a 対応状況 already 解除 submits nothing, a correction to values the order
already has submits nothing. Which order to release, and when, is the procedure's decision.
Releasing sends the order to 発送準備中 at once (seed 001): move an overdue 発送予定日 first.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Literal
from urllib.parse import urlsplit

from kuroko.errors import OrderMismatch, PageChanged, UnknownValue
from pages.tamago.errors import OrderVanished
from pages.tamago.models import FlagState, SubscriptionInfo, TamagoItem, TamagoOrderView
from pages.tamago.page import EMPTY, TamagoPage

ORDER_PATH = "/orders/"
Scope = Literal["order", "subscription"]
SCOPE_NAMES = {"order": "今回注文分", "subscription": "定期全体"}
FIELDS = (
    "order_id", "placed_at", "status", "flagged", "payment_method", "ship_date", "interval", "shipping_fee",
    "member_discount", "discount_yen", "total", "subtotal", "blacklisted", "customer_id", "customer_name",
    "customer_kana", "customer_phone", "customer_postal_code", "customer_prefecture", "customer_address",
    "customer_email", "subscription_id", "subscription_cycle", "subscription_status", "previous_order_id",
    "next_order_note", "flag_order_status", "flag_order_date", "flag_order_comment", "flag_subscription_status",
    "flag_subscription_date", "flag_subscription_comment",
)
"""The order page's values, each read by its selector key ``order.<field>`` (a testid)."""
REQUIRED = ("order_id", "placed_at", "status", "flagged", "payment_method", "ship_date", "interval",
            "shipping_fee", "member_discount", "discount_yen", "total", "subtotal", "customer_id", "customer_name",
            "customer_kana", "customer_phone", "customer_postal_code", "customer_prefecture", "customer_address",
            "customer_email", "flag_order_status", "flag_order_date", "flag_order_comment")
ITEM_CELLS = {"code": "order.item_code", "name": "order.item_name", "quantity": "order.item_quantity",
              "unit_price": "order.item_unit_price"}
FLAG_STATUSES = ("設定", "解除", "なし")


class TamagoOrderPage(TamagoPage):
    _order_id: str | None = None

    # --- reading -------------------------------------------------------------------------------
    def open(self, order_id: str) -> TamagoOrderView:
        """Open 注文詳細 of ``order_id``; OrderVanished when たまご no longer has it."""
        if not re.fullmatch(r"[0-9A-Za-z-]+", order_id):
            raise OrderMismatch(f"{order_id!r} is not a たまご order number")
        self.site.goto(ORDER_PATH + order_id)
        if self.site.el("not_found.heading").count():
            raise OrderVanished(order_id)
        self._order_id = order_id
        view = self.read()
        if view.order_id != order_id:
            raise OrderMismatch(f"たまご was asked for order {order_id} but its page shows {view.order_id}")
        return view

    def read(self) -> TamagoOrderView:
        """注文詳細 as it is now, in one round trip to the browser."""
        self._visible("order.heading")
        self._visible("order.items_table")
        self._visible("order.reasons")
        fields, tables = self.site.read_test_ids(
            {key: f"order.{key}" for key in FIELDS} | {"reasons": "order.reason_message"},
            {"items": ("order.item_row", ITEM_CELLS)},
        )
        shown = {key: self._one(f"order.{key}", fields[key]) for key in REQUIRED}
        subscription = None
        if fields["subscription_id"]:
            subscription = SubscriptionInfo(
                subscription_id=fields["subscription_id"][0],
                cycle=self._int(self._one("order.subscription_cycle", fields["subscription_cycle"]),
                                "order.subscription_cycle"),
                active=self._one("order.subscription_status", fields["subscription_status"]) == "継続中",
                previous_order_id=self._optional(fields["previous_order_id"]),
                next_order_note=self._optional(fields["next_order_note"]),
            )
        interval = shown["interval"]
        days = re.fullmatch(r"(\d+)日ごと", interval)
        if days is None and interval != EMPTY:
            raise PageChanged(f"tamago: お届け間隔 shows {interval!r}, not 「30日ごと」 or 「－」")
        view = TamagoOrderView(
            order_id=shown["order_id"],
            placed_at=self._time(shown["placed_at"], "order.placed_at"),
            status=shown["status"],
            flagged=shown["flagged"] == "要対応",
            reasons=list(fields["reasons"]),
            payment_method=shown["payment_method"],
            ship_date=self._date(shown["ship_date"], "order.ship_date"),
            interval_days=int(days.group(1)) if days else None,
            shipping_fee_yen=self._int(shown["shipping_fee"], "order.shipping_fee"),
            member_discount=shown["member_discount"] == "適用",
            discount_yen=self._int(shown["discount_yen"], "order.discount_yen"),
            subtotal_yen=self._int(shown["subtotal"], "order.subtotal"),
            total_yen=self._int(shown["total"], "order.total"),
            customer_id=shown["customer_id"],
            customer_name=shown["customer_name"],
            customer_kana=shown["customer_kana"],
            phone=shown["customer_phone"],
            postal_code=shown["customer_postal_code"].lstrip("〒").strip(),
            prefecture=shown["customer_prefecture"],
            address=shown["customer_address"],
            email=shown["customer_email"],
            blacklisted=bool(fields["blacklisted"]),
            items=[self._item(row) for row in tables["items"]],
            subscription=subscription,
            order_flag=self._flag("order", fields),
            subscription_flag=self._flag("subscription", fields) if subscription else None,
        )
        self._order_id = view.order_id
        return view

    # --- actions -------------------------------------------------------------------------------
    def release(self, comment: str, day: date, both: bool = True) -> TamagoOrderView:
        """解除 → 対応日 ``day`` → 対応コメント ``comment`` → 要対応を更新する, on 今回注文分 and — ``both``, a
        subscription order — 定期全体, in this visit. A 対応状況 already 解除 is left alone. Returns the
        page afterwards (``released`` tells whether nothing is 設定 any more)."""
        view = self.read_current()
        scopes: list[Scope] = ["order"]
        if both and view.is_subscription:
            scopes.append("subscription")
        for scope in scopes:
            flag = view.order_flag if scope == "order" else view.subscription_flag
            if flag is not None and flag.is_set:
                view = self.update_flag(scope, "解除", day, comment)
        return view

    def update_flag(self, scope: Scope, status: Literal["設定", "解除"], day: date,
                    comment: str) -> TamagoOrderView:
        """One 要対応設定 form: 対応状況, 対応日, 対応コメント, 「要対応を更新する」."""
        return self._act(lambda: self._update_flag_once(scope, status, day, comment))

    def correct(self, *, shipping_fee: int | None = None, ship_date: date | None = None,
                interval: int | None = None, member_discount: bool | None = None) -> TamagoOrderView:
        """注文修正 → the given fields → 「更新する». Fields already as wanted are not typed; when every
        given field already is, nothing is submitted. ``interval`` is お届け間隔 in days (subscription
        orders only)."""
        view = self.read_current()
        wanted: dict[str, object] = {}
        if shipping_fee is not None and shipping_fee != view.shipping_fee_yen:
            if shipping_fee < 0:
                raise ValueError("shipping_fee must be 0 or more")
            wanted["shipping_fee"] = shipping_fee
        if ship_date is not None and ship_date != view.ship_date:
            wanted["ship_date"] = ship_date
        if interval is not None and interval != view.interval_days:
            if not view.is_subscription:
                raise UnknownValue(f"tamago: order {view.order_id} is not a subscription order; it has no お届け間隔")
            wanted["interval"] = interval
        if member_discount is not None and member_discount != view.member_discount:
            wanted["member_discount"] = member_discount
        if not wanted:
            return view
        return self._act(lambda: self._correct_once(wanted))

    def read_current(self) -> TamagoOrderView:
        """The page of the order last opened, reloaded when the browser is elsewhere."""
        self._back_on_order()
        return self.read()

    # --- one attempt of each action ------------------------------------------------------------
    def _update_flag_once(self, scope: Scope, status: str, day: date, comment: str) -> TamagoOrderView:
        self._back_on_order()
        form = self._visible(f"order.flag_form_{scope}").first
        select = self._within(form, "flag_form.status")
        options: list[str] = select.evaluate("s => Array.from(s.options).map(o => o.value)")
        if status not in options:
            raise PageChanged(f"tamago: 対応状況 ({SCOPE_NAMES[scope]}) offers {options}, not {status!r}")
        select.select_option(value=status)
        self._within(form, "flag_form.date").fill(day.isoformat())
        self._within(form, "flag_form.comment").fill(comment)
        self._submit("flag_form.submit", self._within(form, "flag_form.submit"))
        self._expect_result("order.updated_message", "order.error", f"要対応を更新する ({SCOPE_NAMES[scope]})",
                            f"order {self._order_id}")
        return self.read()

    def _correct_once(self, wanted: dict[str, object]) -> TamagoOrderView:
        self._back_on_order()
        self._submit("order.edit_button")
        self._visible("edit.heading")
        if "shipping_fee" in wanted:
            self._visible("edit.shipping_fee").first.fill(str(wanted["shipping_fee"]))
        if "ship_date" in wanted:
            value = wanted["ship_date"]
            assert isinstance(value, date)
            self._visible("edit.ship_date").first.fill(value.isoformat())
        if "interval" in wanted:
            select = self._visible("edit.interval").first
            options: list[str] = select.evaluate("s => Array.from(s.options).map(o => o.value).filter(v => v)")
            if str(wanted["interval"]) not in options:
                raise UnknownValue(f"tamago: お届け間隔 {wanted['interval']}日ごと is not offered; たまご offers "
                                   + ", ".join(f"{o}日ごと" for o in options))
            select.select_option(value=str(wanted["interval"]))
        if "member_discount" in wanted:
            self._visible("edit.member_discount").first.select_option(value="1" if wanted["member_discount"] else "0")
        self._submit("edit.submit")
        self._expect_result("order.corrected_message", "edit.error", "注文修正", f"order {self._order_id}")
        return self.read()

    # --- machinery -----------------------------------------------------------------------------
    def _landed(self) -> None:
        if self._order_id is not None and self.site.el("not_found.heading").count():
            raise OrderVanished(self._order_id)

    def _back_on_order(self) -> None:
        if self._order_id is None:
            raise RuntimeError("open() a たまご order before acting on it")
        path = ORDER_PATH + self._order_id
        if urlsplit(self.site.page.url).path != path:
            self.site.goto(path)
            if self.site.el("not_found.heading").count():
                raise OrderVanished(self._order_id)
        elif self.site.el("not_found.heading").count():
            raise OrderVanished(self._order_id)

    def _item(self, row: dict[str, list[str]]) -> TamagoItem:
        for cell, name in ITEM_CELLS.items():
            if not row.get(cell):
                raise PageChanged(f"tamago: '{name}' is missing from a row of 商品 (selectors/tamago.yaml)")
        return TamagoItem(code=row["code"][0], name=row["name"][0],
                          quantity=self._int(row["quantity"][0], "order.item_quantity"),
                          unit_price_yen=self._int(row["unit_price"][0], "order.item_unit_price"))

    def _flag(self, scope: Scope, fields: dict[str, list[str]]) -> FlagState:
        status = self._one(f"order.flag_{scope}_status", fields[f"flag_{scope}_status"])
        if status not in FLAG_STATUSES:
            raise PageChanged(f"tamago: 対応状況 ({SCOPE_NAMES[scope]}) shows {status!r}, not 設定, 解除 or なし")
        day = self._optional(fields[f"flag_{scope}_date"])
        return FlagState(status=status,  # type: ignore[arg-type]
                         date=self._date(day, f"order.flag_{scope}_date") if day else None,
                         comment=self._optional(fields[f"flag_{scope}_comment"]) or "")
