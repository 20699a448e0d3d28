"""注文検索: the orders flagged 要対応, every page of them, read once per pass."""

from __future__ import annotations

import re

from kuroko.errors import PageChanged
from pages.tamago.models import FlaggedOrder
from pages.tamago.page import TamagoPage

ROW_CELLS = {
    "order_id": "search.row_order_id", "placed_at": "search.row_placed_at", "customer": "search.row_customer",
    "payment": "search.row_payment", "status": "search.row_status", "flagged": "search.row_flagged",
    "reasons": "search.row_reason", "ship_date": "search.row_ship_date", "subscription": "search.row_subscription",
}
OPTIONAL_CELLS = {"reasons"}
MAX_PAGES = 500


class TamagoOrderSearch(TamagoPage):
    def flagged(self) -> list[FlaggedOrder]:
        """Every order 注文検索 lists with 「要対応のみ」, all pages (newest first, as たまご lists them;
        an order that moved between pages while reading is listed once)."""
        return self._act(self._flagged_once)

    def _flagged_once(self) -> list[FlaggedOrder]:
        self.site.goto("/orders")
        self._visible("search.heading")
        self._visible("search.flagged_only").first.check()
        self._submit("search.submit")
        found: dict[str, FlaggedOrder] = {}
        for _ in range(MAX_PAGES):
            self._visible("search.table")
            fields, tables = self.site.read_test_ids(
                {"page": "search.page", "pages": "search.pages"}, {"rows": ("search.row", ROW_CELLS)})
            page = self._int(self._one("search.page", fields["page"]), "search.page")
            pages = self._int(self._one("search.pages", fields["pages"]), "search.pages")
            for row in tables["rows"]:
                order = self._order(row)
                found.setdefault(order.order_id, order)
            if page >= pages:
                return list(found.values())
            self._submit("search.next_page")
        raise PageChanged(f"tamago: 注文検索 still had a next page after {MAX_PAGES} pages")

    def _order(self, row: dict[str, list[str]]) -> FlaggedOrder:
        for cell, name in ROW_CELLS.items():
            if cell not in OPTIONAL_CELLS and not row.get(cell):
                raise PageChanged(f"tamago: '{name}' is missing from a row of 注文検索 (selectors/tamago.yaml)")
        kind = row["subscription"][0]
        cycle = re.fullmatch(r"定期\s*第(\d+)回", kind)
        if cycle is None and kind != "通常":
            raise PageChanged(f"tamago: 注文検索's 定期 column shows {kind!r}, not 「通常」 or 「定期 第n回」")
        return FlaggedOrder(
            order_id=row["order_id"][0],
            placed_at=self._time(row["placed_at"][0], "search.row_placed_at"),
            customer_name=row["customer"][0],
            payment_method=row["payment"][0],
            status=row["status"][0],
            reasons=list(row.get("reasons", [])),
            ship_date=self._date(row["ship_date"][0], "search.row_ship_date"),
            subscription_cycle=int(cycle.group(1)) if cycle else None,
        )
