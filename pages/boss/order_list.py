"""The BOSS Order List: every order on one long page, under a section heading per state.

A person finds an order with Ctrl+F and looks at the heading above it; the robot reads the whole
page once (one page load, one script over all sections) and looks every order up in what it read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from kuroko.errors import PageChanged
from pages.boss.site import BossSite

BOSS_TIMEZONE = ZoneInfo("Asia/Tokyo")
"""BOSS shows dates in Japan time."""
DATE_FORMATS = ("%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M")

# Reads every section at once: its state name, and per row the cells under the named columns.
_READ_SECTIONS = """
(sections, sel) => sections.map((section) => {
  const title = section.querySelector(sel.state);
  const table = section.querySelector(sel.table);
  const out = {state: title ? title.textContent.trim() : null, missing: [], rows: []};
  if (!title) out.missing.push("state heading");
  if (!table || !table.tHead || !table.tHead.rows.length) { out.missing.push("order table"); return out; }
  const headers = Array.from(table.tHead.rows[0].cells).map((c) => c.textContent.trim());
  const index = {};
  for (const [field, header] of Object.entries(sel.columns)) {
    index[field] = headers.indexOf(header);
    if (index[field] < 0) out.missing.push("column " + JSON.stringify(header));
  }
  if (out.missing.length) return out;
  for (const row of section.querySelectorAll(sel.row)) {
    const cell = (field) => (row.cells[index[field]] || {textContent: ""}).textContent.trim();
    out.rows.push({order_number: cell("order_number"), placed_at: cell("placed_at"), buyer: cell("buyer")});
  }
  return out;
})
"""

COLUMNS = {
    "order_number": "order_list.column_order_number",
    "placed_at": "order_list.column_placed_at",
    "buyer": "order_list.column_buyer",
}


class BossListedOrder(BaseModel):
    order_number: str
    state: str
    """The section heading the order is listed under, as BOSS shows it."""
    placed_at: datetime | None
    """Order date and time (BOSS shows Asia/Tokyo); None when the cell is empty or unreadable."""
    buyer: str


class BossListing(BaseModel):
    """What the Order List showed at one moment."""

    orders: dict[str, BossListedOrder]

    def state_of(self, order_number: str) -> str | None:
        """The section heading the order is under, or None when BOSS does not list it."""
        found = self.orders.get(order_number)
        return found.state if found is not None else None


def parse_placed_at(text: str) -> datetime | None:
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=BOSS_TIMEZONE)
        except ValueError:
            continue
    return None


class BossOrderList:
    def __init__(self, site: BossSite, *, timeout_ms: int = 10_000) -> None:
        self.site = site
        self.timeout_ms = timeout_ms

    def _css(self, name: str) -> str:
        """A CSS selector from the selectors file, for use inside the page's own script."""
        spec = self.site.selectors.spec(name)
        self.site.selectors.used.add(name)
        if "css" not in spec:
            raise PageChanged(f"selectors/boss.yaml '{name}' must be a css selector (it is used inside a script)")
        return str(spec["css"])

    def _header(self, name: str) -> str:
        spec = self.site.selectors.spec(name)
        self.site.selectors.used.add(name)
        if "name" not in spec:
            raise PageChanged(f"selectors/boss.yaml '{name}' must name the column header text")
        return str(spec["name"])

    def read(self) -> BossListing:
        """Open the Order List once and read every row of every section."""
        self.site.goto("/orders")
        for name in ("order_list.heading", "order_list.section_state", "order_list.table"):
            self.site.expect_visible(name, timeout_ms=self.timeout_ms)
        selectors: dict[str, Any] = {
            "state": self._css("order_list.section_state"),
            "table": self._css("order_list.table"),
            "row": self._css("order_list.row"),
            "columns": {field: self._header(key) for field, key in COLUMNS.items()},
        }
        sections: list[dict[str, Any]] = self.site.el("order_list.section").evaluate_all(_READ_SECTIONS, selectors)
        if not sections:
            raise PageChanged("boss: the Order List shows no state sections; the page may have changed "
                              "(selectors/boss.yaml order_list.section)")
        orders: dict[str, BossListedOrder] = {}
        for number, section in enumerate(sections, start=1):
            if section["missing"]:
                raise PageChanged(
                    f"boss: Order List section {number} ({section['state'] or 'no heading'}) has no "
                    f"{', '.join(section['missing'])}; the page may have changed (selectors/boss.yaml order_list)"
                )
            for row in section["rows"]:
                if not row["order_number"]:
                    continue
                orders[row["order_number"]] = BossListedOrder(
                    order_number=row["order_number"],
                    state=section["state"],
                    placed_at=parse_placed_at(row["placed_at"]),
                    buyer=row["buyer"],
                )
        return BossListing(orders=orders)
