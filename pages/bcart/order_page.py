"""受注詳細: what the screen shows of one order, and its 帳票 (納品書 / 請求書) as PDF files."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.sync_api import TimeoutError as PlaywrightTimeout
from pydantic import BaseModel

from kuroko.errors import OrderMismatch, PageChanged
from pages.bcart.site import BcartSite, LoggedOut

JST = ZoneInfo("Asia/Tokyo")
FIELDS = ("order_id", "code", "ordered_at", "customer_comp_name", "customer_name", "customer_email", "payment",
          "payment_at", "grand_total", "status")
ITEM_CELLS = {"product_no": "order.item_product_no", "name": "order.item_name",
              "unit_price": "order.item_unit_price", "quantity": "order.item_quantity",
              "logistics_id": "order.item_logistics_id"}
SHIPMENT_CELLS = {"id": "order.logistics_id", "name": "order.logistics_name", "delivery_code": "order.delivery_code",
                  "shipment_date": "order.shipment_date", "status": "order.shipment_status"}
DOCUMENTS = {"delivery_note": "order.delivery_note", "invoice": "order.invoice"}
"""File-name kind → the link's selector key (納品書, 請求書)."""


class BcartPageItem(BaseModel):
    product_no: str
    name: str
    unit_price_yen: int
    quantity: int
    logistics_id: int


class BcartPageShipment(BaseModel):
    id: int
    name: str
    delivery_code: str
    shipment_date: date | None
    status: str


class BcartOrderView(BaseModel):
    order_id: int
    code: str
    ordered_at: datetime
    customer_comp_name: str
    customer_name: str
    customer_email: str
    payment: str
    payment_confirmed_on: date | None
    total_yen: int
    status_label: str
    """対応状況 as the screen shows it (label)."""
    items: list[BcartPageItem]
    shipments: list[BcartPageShipment]


class BcartOrderPage:
    def __init__(self, site: BcartSite, download_dir: Path | None = None) -> None:
        self.site = site
        self.download_dir = download_dir
        """Where download_documents() saves the PDFs unless told otherwise."""
        self._view: BcartOrderView | None = None

    def open(self, order_id: int) -> BcartOrderView:
        self.site.goto(f"/order/{int(order_id)}")
        if self.site.el("not_found.heading").count():
            raise OrderMismatch(f"bcart: there is no order {order_id} (its page says 受注が見つかりません)")
        view = self.read()
        if view.order_id != int(order_id):
            raise OrderMismatch(f"bcart: asked for order {order_id} but the page shows {view.order_id}")
        return view

    def read(self) -> BcartOrderView:
        site = self.site
        site.visible("order.heading")
        site.visible("order.items_table")
        fields, tables = site.read_test_ids(
            {key: f"order.{key}" for key in FIELDS},
            {"items": ("order.item_row", ITEM_CELLS), "shipments": ("order.logistics_row", SHIPMENT_CELLS)},
        )
        shown = {}
        for key, texts in fields.items():
            if not texts:
                raise PageChanged(f"bcart: 'order.{key}' is not on {site.page.url.split('?')[0]} "
                                  "(selectors/bcart.yaml)")
            shown[key] = texts[0]
        items = [self._cells(row, ITEM_CELLS) for row in tables["items"]]
        shipments = [self._cells(row, SHIPMENT_CELLS) for row in tables["shipments"]]
        self._view = BcartOrderView(
            order_id=self._number(shown["order_id"], "order.order_id"),
            code=shown["code"],
            ordered_at=self._time(shown["ordered_at"]),
            customer_comp_name=shown["customer_comp_name"],
            customer_name=shown["customer_name"],
            customer_email=shown["customer_email"],
            payment=shown["payment"],
            payment_confirmed_on=self._date(shown["payment_at"]),
            total_yen=self._number(shown["grand_total"], "order.grand_total"),
            status_label=shown["status"],
            items=[BcartPageItem(product_no=i["product_no"], name=i["name"],
                                 unit_price_yen=self._number(i["unit_price"], "order.item_unit_price"),
                                 quantity=self._number(i["quantity"], "order.item_quantity"),
                                 logistics_id=self._number(i["logistics_id"], "order.item_logistics_id"))
                   for i in items],
            shipments=[BcartPageShipment(id=self._number(s["id"], "order.logistics_id"), name=s["name"],
                                         delivery_code=s["delivery_code"],
                                         shipment_date=self._date(s["shipment_date"]), status=s["status"])
                       for s in shipments],
        )
        return self._view

    def download_documents(self, directory: Path | None = None) -> list[Path]:
        """納品書 and 請求書 of the order last opened, saved as
        ``{directory or download_dir}/bcart-{受注番号}-{delivery_note|invoice}.pdf`` (replacing an
        older copy); each checked to be a PDF."""
        if self._view is None:
            raise RuntimeError("open() a B-cart order before downloading its documents")
        directory = directory or self.download_dir
        if directory is None:
            raise ValueError("download_documents needs a directory (or BcartOrderPage(download_dir=...))")
        view = self._view
        directory.mkdir(parents=True, exist_ok=True)
        saved = []
        for kind, key in DOCUMENTS.items():
            target = directory / f"bcart-{view.code}-{kind}.pdf"

            def once(key: str = key, target: Path = target) -> None:
                self._download(view.order_id, key, target)

            self.site.act(once, f"帳票 {kind}")
            saved.append(target)
        return saved

    def _download(self, order_id: int, key: str, target: Path) -> None:
        site = self.site
        if site.page.url.split("?")[0].rstrip("/") != site.url(f"/order/{order_id}"):
            site.goto(f"/order/{order_id}")
        link = site.visible(key).first
        try:
            with site.page.expect_download(timeout=site.element_timeout_ms * 2) as download:
                link.click()
        except PlaywrightTimeout:
            site.page.wait_for_load_state("domcontentloaded")
            if site.is_login_page():
                raise LoggedOut(key) from None
            raise PageChanged(f"bcart: '{key}' on order {order_id} gave no file (selectors/bcart.yaml)") from None
        tmp = target.with_suffix(".part")
        download.value.save_as(str(tmp))
        head = tmp.read_bytes()[:5]
        if head != b"%PDF-":
            tmp.unlink(missing_ok=True)
            # A link with a download attribute saves whatever comes back: after a dropped session that
            # is the login page. Look at the order page to tell a dropped session from a changed page.
            site.page.goto(site.url(f"/order/{order_id}"), wait_until="domcontentloaded")
            if site.is_login_page():
                raise LoggedOut(key)
            raise PageChanged(f"bcart: '{key}' on order {order_id} gave a file that is not a PDF ({head!r})")
        tmp.replace(target)

    # --- reading helpers --------------------------------------------------------------------------
    def _cells(self, row: dict[str, list[str]], cells: dict[str, str]) -> dict[str, str]:
        out = {}
        for cell, name in cells.items():
            texts = row.get(cell)
            if texts is None or not texts:
                raise PageChanged(f"bcart: '{name}' is missing from a row on {self.site.page.url.split('?')[0]}")
            out[cell] = texts[0]
        return out

    @staticmethod
    def _number(text: str, name: str) -> int:
        digits = re.sub(r"[,円\s]", "", text)
        if not digits.isdigit():
            raise PageChanged(f"bcart: '{name}' shows {text!r}, not a number")
        return int(digits)

    @staticmethod
    def _date(text: str) -> date | None:
        if not text.strip():
            return None
        try:
            return date.fromisoformat(text.strip())
        except ValueError:
            raise PageChanged(f"bcart: a date shows {text!r}, not like 2026-11-20") from None

    @staticmethod
    def _time(text: str) -> datetime:
        try:
            return datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=JST)
        except ValueError:
            raise PageChanged(f"bcart: 受注日時 shows {text!r}, not like 2026-11-20 09:00:00") from None
