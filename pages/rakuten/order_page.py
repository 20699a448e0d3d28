"""The RMS order page (受注詳細) — what the ticket's Purchase History link opens — and the three
things the robot does there: 注文確認, メール送信 (template → 次へ → 送信), and the 発送情報 fields.

The page object reports what RMS shows and clicks only what it is asked to; whether an order is a
physical SIM, or whether a mail was already sent, is the procedure's decision.

発送情報 is a list of 発送明細 rows, one per parcel. ``add_shipping_rows()`` adds only the rows RMS
does not show yet (matched on carrier and tracking number), so a repeat adds nothing; it never
sends a row with a blank 配送会社, 発送日 or お荷物伝票番号 — RMS would store the blank (and a
blank keeps the order from completing) — and never edits a row a person entered.

Every action submits one form and waits for the page it leads to and for RMS's own success
message. If RMS dropped the session before the action reached it (it then answers with its login
page and changes nothing), the page object logs in again and does the action once more; a second
bounce is a SessionExpired.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from playwright.sync_api import Dialog, Locator, Response
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from pydantic import BaseModel

from kuroko.errors import (
    BusinessRuleError,
    OrderMismatch,
    PageChanged,
    SessionExpired,
    SiteUnavailable,
    UnknownValue,
    UnsafeLink,
)
from pages.rakuten.site import RmsSite

JST = ZoneInfo("Asia/Tokyo")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
ORDER_PATH = "/rms/order/"
TEMPLATE_KEYS = ("thank_you", "shipping_jm", "shipping_js")
MAIL_FIELD_KEYS = ("order_number", "ship_date", "carrier", "tracking_number")
ORDER_FIELDS = ("order_number", "placed_at", "status", "buyer_name", "buyer_email", "phone", "postal_code",
                "prefecture", "city", "address")
"""The order page's texts, each read by its selector key ``order.<field>`` (a testid)."""
ITEM_CELLS = {"sku": "order.item_sku", "name": "order.item_name", "quantity": "order.item_quantity",
              "unit_price": "order.item_unit_price"}
MAIL_CELLS = {"id": "order.mail_id", "template": "order.mail_template", "sent_at": "order.mail_sent_at",
              "subject": "order.mail_subject"}
SHIPPING_CELLS = {"detail_id": "order.shipping_detail_id", "company": "order.shipping_row_company",
                  "date": "order.shipping_row_date", "tracking": "order.shipping_row_tracking"}

T = TypeVar("T")


class RmsItem(BaseModel):
    sku: str
    """商品管理番号."""
    name: str
    quantity: int
    unit_price_yen: int


class RmsMailRecord(BaseModel):
    """One row of メール送信履歴, as RMS shows it."""

    mail_id: str
    template: str
    """The template's name as RMS shows it (e.g. サンクスメール)."""
    sent_at: datetime
    subject: str
    template_key: str | None = None
    """send_mail()'s name for that template ("thank_you" …), when selectors/rakuten.yaml knows it."""


class ShippingRow(BaseModel):
    """One 発送明細 row: as RMS shows it (blank values are None), or as the robot wants it added."""

    company: str | None = None
    """配送会社, one of RMS's list."""
    shipping_date: date | None = None
    """発送日."""
    tracking_number: str | None = None
    """お荷物伝票番号."""
    detail_id: str | None = None
    """RMS's 明細番号 (None for a row not added yet)."""

    @property
    def complete(self) -> bool:
        return bool(self.company and self.shipping_date and self.tracking_number)

    def same_parcel(self, other: ShippingRow) -> bool:
        """Same carrier and tracking number (spaces, hyphens and case aside); the date is not compared,
        so a row added on an earlier day is found again."""
        return (self.company or "") == (other.company or "") and \
            _tracking_key(self.tracking_number) == _tracking_key(other.tracking_number)


def _tracking_key(tracking: str | None) -> str:
    return re.sub(r"[\s\-‐－ー]", "", tracking or "").upper()


class RmsOrderView(BaseModel):
    order_number: str
    status: str
    """注文ステータス as shown (注文確認待ち, 発送待ち, 発送後, 完了, キャンセル確定 …)."""
    placed_at: datetime
    """注文日時, Asia/Tokyo."""
    buyer_name: str
    buyer_email: str
    phone: str
    postal_code: str
    """送付先 postal code without the 〒 mark, e.g. 160-0023."""
    prefecture: str
    city: str
    address: str
    items: list[RmsItem]
    can_confirm: bool
    """The 注文確認 button is on the page."""
    shipping_rows: list[ShippingRow]
    """発送明細, in RMS's order."""
    shipping_company: str | None
    """The first 発送明細 row's values (what the order showed when it had one row)."""
    shipping_date: date | None
    tracking_number: str | None
    mails: list[RmsMailRecord]
    """メール送信履歴, oldest first."""


class _LoggedOut(Exception):
    """RMS answered an action with its login page: the action did not happen."""


class RmsOrderPage:
    def __init__(self, site: RmsSite, *, element_timeout_ms: int = 5_000) -> None:
        self.site = site
        self.element_timeout_ms = element_timeout_ms
        """How long an element of an already loaded page may take to show (KUROKO_ELEMENT_TIMEOUT_MS)."""
        self._path: str | None = None

    # --- reading -----------------------------------------------------------------------------
    def open(self, url: str) -> RmsOrderView:
        """Open an order by its Purchase History link (a full URL on the configured RMS) or path."""
        path = self._order_path(url)
        self.site.goto(path)
        if self.site.el("not_found.heading").count():
            raise OrderMismatch(
                f"RMS has no order {path.removeprefix(ORDER_PATH)} (its page says 受注が見つかりません); "
                "check the order number and link in the ticket"
            )
        self._path = path
        view = self.read()
        wanted = path.removeprefix(ORDER_PATH).strip("/")
        if view.order_number != wanted:
            raise OrderMismatch(f"the link names RMS order {wanted} but the page shows {view.order_number}")
        return view

    def read(self) -> RmsOrderView:
        """The order page as it is now (its texts in one round trip to the browser)."""
        site = self.site
        self._visible("order.heading")
        self._visible("order.items_table")
        self._visible("order.shipping_rows")
        self._visible("order.mail_history")
        fields, tables = site.read_test_ids(
            {key: f"order.{key}" for key in ORDER_FIELDS},
            {"items": ("order.item_row", ITEM_CELLS), "mails": ("order.mail_row", MAIL_CELLS),
             "shipping": ("order.shipping_row", SHIPPING_CELLS)},
        )
        shown = {key: self._one(f"order.{key}", texts) for key, texts in fields.items()}
        keys = self._template_keys()
        items = [self._row(row, ITEM_CELLS) for row in tables["items"]]
        mails = [self._row(row, MAIL_CELLS) for row in tables["mails"]]
        rows = [ShippingRow(company=row["company"] or None,
                            shipping_date=self._date(row["date"]) if row["date"] else None,
                            tracking_number=row["tracking"] or None, detail_id=row["detail_id"] or None)
                for row in (self._row(r, SHIPPING_CELLS) for r in tables["shipping"])]
        first = rows[0] if rows else ShippingRow()
        view = RmsOrderView(
            order_number=shown["order_number"],
            status=shown["status"],
            placed_at=self._time(shown["placed_at"], "order.placed_at"),
            buyer_name=shown["buyer_name"],
            buyer_email=shown["buyer_email"],
            phone=shown["phone"],
            postal_code=shown["postal_code"].lstrip("〒").strip(),
            prefecture=shown["prefecture"],
            city=shown["city"],
            address=shown["address"],
            items=[RmsItem(sku=item["sku"], name=item["name"],
                           quantity=self._number(item["quantity"], "order.item_quantity"),
                           unit_price_yen=self._number(item["unit_price"], "order.item_unit_price"))
                   for item in items],
            can_confirm=site.el("order.confirm_button").count() > 0,
            shipping_rows=rows,
            shipping_company=first.company,
            shipping_date=first.shipping_date,
            tracking_number=first.tracking_number,
            mails=[RmsMailRecord(mail_id=mail["id"], template=mail["template"],
                                 sent_at=self._time(mail["sent_at"], "order.mail_sent_at"),
                                 subject=mail["subject"], template_key=keys.get(mail["template"]))
                   for mail in mails],
        )
        self._path = ORDER_PATH + view.order_number
        return view

    # --- actions -----------------------------------------------------------------------------
    def confirm_order(self) -> RmsOrderView:
        """注文確認, accepting its confirm dialog; returns the page once RMS says it is done."""
        return self._act(self._confirm_once)

    def send_mail(self, template: str, fields: dict[str, str] | None = None) -> RmsOrderView:
        """メール送信 → ``template`` (thank_you | shipping_jm | shipping_js) → 次へ → each given field
        typed into the preview → 送信. Returns the page once RMS says the mail was sent."""
        if template not in TEMPLATE_KEYS:
            raise ValueError(f"unknown RMS mail template {template!r}; one of {', '.join(TEMPLATE_KEYS)}")
        unknown = sorted(set(fields or {}) - set(MAIL_FIELD_KEYS))
        if unknown:
            raise ValueError(f"unknown mail field(s) {', '.join(unknown)}; known: {', '.join(MAIL_FIELD_KEYS)}")
        return self._act(lambda: self._send_mail_once(template, dict(fields or {})))

    def set_shipping(self, company: str, ship_date: date, tracking_number: str) -> RmsOrderView:
        """The order's 発送明細 for one parcel: 配送会社 (one of RMS's list), 発送日, お荷物伝票番号 — added
        unless a row with that carrier and tracking number is already there."""
        return self.add_shipping_rows([ShippingRow(company=company, shipping_date=ship_date,
                                                   tracking_number=tracking_number)])

    def add_shipping_rows(self, rows: list[ShippingRow]) -> RmsOrderView:
        """One 発送明細 per parcel: each row not on the order yet is added (発送明細を追加), in the order
        given; rows already there are left as they are, so a repeat adds nothing.

        A row with a blank 配送会社, 発送日 or お荷物伝票番号 is refused before anything is sent (RMS would
        store the blank), and so is a tracking number RMS already holds under another carrier."""
        wanted: list[ShippingRow] = []
        for row in rows:
            blank = [name for name, value in (("配送会社", row.company), ("発送日", row.shipping_date),
                                              ("お荷物伝票番号", row.tracking_number))
                     if value is None or (isinstance(value, str) and not value.strip())]
            if blank:
                raise BusinessRuleError(
                    f"rakuten: a 発送明細 for order {self._order_number()} has no {'・'.join(blank)} "
                    f"({row.company or '-'} {row.shipping_date or '-'} {row.tracking_number or '-'}); RMS would "
                    "store the blank, so nothing was sent. The shipment's carrier, date and tracking number "
                    "are all needed", code="rms_blank_shipping")
            clean = ShippingRow(company=(row.company or "").strip(), shipping_date=row.shipping_date,
                                tracking_number=(row.tracking_number or "").strip())
            if not any(clean.same_parcel(w) for w in wanted):
                wanted.append(clean)
        return self._act(lambda: self._add_rows_once(wanted))

    # --- one attempt of each action ----------------------------------------------------------
    def _confirm_once(self) -> RmsOrderView:
        self._back_on_order()
        button = self.site.el("order.confirm_button")
        if not button.count():
            status = self._text("order.status") if self.site.el("order.status").count() else "unknown"
            raise PageChanged(
                f"rakuten: the 注文確認 button ('order.confirm_button') is not on order {self._order_number()} "
                f"(status shown: {status}); RMS shows it only while the order awaits confirmation"
            )
        self._submit("order.confirm_button", accept_dialog=True)
        self._expect_result("order.confirmed_message", "order.error", "注文確認")
        return self.read()

    def _send_mail_once(self, template: str, fields: dict[str, str]) -> RmsOrderView:
        self._back_on_order()
        self._submit("order.send_mail_button")
        self._visible("mail_template.heading")
        radio = self._visible(f"mail_template.{template}")
        radio.first.check()
        self._submit("mail_template.next_button")
        self._visible("mail_preview.heading")
        for key, value in fields.items():
            box = self._visible(f"mail_preview.{key}")
            box.first.fill(value)
        self._submit("mail_preview.send_button", accept_dialog=True)
        self._expect_result("order.mail_sent_message", "mail_preview.error", "メール送信")
        return self.read()

    def _add_rows_once(self, wanted: list[ShippingRow]) -> RmsOrderView:
        """Reads the rows RMS shows now (a repeat after a bounced click finds what was added), then
        adds the missing ones."""
        self._back_on_order()
        view = self.read()
        missing = [row for row in wanted if not any(row.same_parcel(have) for have in view.shipping_rows)]
        for row in missing:
            other = next((have for have in view.shipping_rows
                          if _tracking_key(have.tracking_number) == _tracking_key(row.tracking_number)), None)
            if other is not None:
                raise BusinessRuleError(
                    f"rakuten: order {view.order_number} already has お荷物伝票番号 {row.tracking_number} under "
                    f"{other.company or '(no carrier)'}, not {row.company}; nothing was changed. A person must "
                    "decide which is right", code="rms_shipping_conflict")
        if not missing:
            return view
        options = self._carrier_options()
        unknown = sorted({row.company for row in missing if row.company not in options}, key=str)
        if unknown:
            raise UnknownValue(
                f"RMS offers no shipping company {', '.join(map(repr, unknown))}; its 配送会社 list is: "
                f"{', '.join(options)}. Map the carrier to one of these (KUROKO_CARRIER_MAP)"
            )
        for row in missing:
            assert row.company and row.shipping_date and row.tracking_number  # checked by add_shipping_rows
            self._back_on_order()
            self._visible("order.shipping_company").first.select_option(value=row.company)
            self._visible("order.shipping_date").first.fill(row.shipping_date.isoformat())
            self._visible("order.tracking_number").first.fill(row.tracking_number)
            self._submit("order.shipping_add", accept_dialog=True)
            self._expect_result("order.shipping_added_message", "order.error", "発送明細の追加")
        return self.read()

    def _carrier_options(self) -> list[str]:
        select = self._visible("order.shipping_company").first
        options: list[str] = select.evaluate("s => Array.from(s.options).map(o => o.value).filter(v => v)")
        return options

    # --- machinery ---------------------------------------------------------------------------
    def _act(self, attempt: Callable[[], T]) -> T:
        """Run one action; if RMS had dropped the session (so did nothing), log in and run it again."""
        try:
            return attempt()
        except _LoggedOut:
            self.site.login()
        try:
            return attempt()
        except _LoggedOut as exc:
            raise SessionExpired(
                "rakuten: RMS sent the robot to its login page again right after logging in; nothing was "
                "changed. Check the KUROKO_RMS_USER / KUROKO_RMS_PASSWORD settings"
            ) from exc

    def _back_on_order(self) -> None:
        """Actions start from the order page of the order last opened."""
        if self._path is None:
            raise RuntimeError("open() an RMS order before acting on it")
        if urlsplit(self.site.page.url).path != self._path:
            self.site.goto(self._path)
            self._visible("order.heading")

    def _submit(self, name: str, *, accept_dialog: bool = False) -> None:
        """Click a button that submits a form, and wait for the page it leads to."""
        page = self.site.page
        button = self._visible(name).first
        dialogs: list[str] = []

        def accept(dialog: Dialog) -> None:
            dialogs.append(dialog.message)
            dialog.accept()

        if accept_dialog:
            page.on("dialog", accept)
        try:
            with page.expect_navigation(wait_until="domcontentloaded") as navigation:
                button.click()
        except PlaywrightTimeout as exc:
            raise PageChanged(
                f"rakuten: clicking '{name}' on {page.url.split('?')[0]} led to no new page"
                + (f" (dialog: {dialogs[-1]!r})" if dialogs else "")
            ) from exc
        finally:
            if accept_dialog:
                page.remove_listener("dialog", accept)
        response: Response | None = navigation.value
        if response is not None and (response.status >= 500 or response.status == 429):
            raise SiteUnavailable(f"rakuten: '{name}' was answered with HTTP {response.status}")
        if self.site.is_login_page():
            raise _LoggedOut(name)

    def _expect_result(self, success: str, error: str, action: str) -> None:
        """RMS's success message, or its error message as a clear error."""
        refused = self.site.el(error)
        if refused.count():
            message = " ".join(t.strip() for t in refused.all_inner_texts())
            raise UnknownValue(f"rakuten: RMS refused {action} on order {self._order_number()}: {message}")
        self._visible(success)

    def _order_path(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme or parts.netloc:
            base = urlsplit(self.site.base_url)
            if (parts.scheme, parts.netloc) != (base.scheme, base.netloc):
                raise UnsafeLink(
                    f"the Purchase History link points at {parts.scheme}://{parts.netloc}, not at the "
                    f"configured RMS ({base.scheme}://{base.netloc}); it was not opened"
                )
        path = parts.path
        if not path.startswith(ORDER_PATH) or not path.removeprefix(ORDER_PATH).strip("/"):
            raise UnsafeLink(f"the link {path!r} is not an RMS order page ({ORDER_PATH}<受注番号>); not opened")
        return path.rstrip("/")

    def _order_number(self) -> str:
        return (self._path or "").removeprefix(ORDER_PATH) or "?"

    def _visible(self, name: str) -> Locator:
        return self.site.expect_visible(name, timeout_ms=self.element_timeout_ms)

    def _missing(self, name: str) -> PageChanged:
        return PageChanged(
            f"rakuten: '{name}' did not appear on {self.site.page.url.split('?')[0]} within "
            f"{self.element_timeout_ms} ms; the page may have changed (selectors/rakuten.yaml)"
        )

    def _text(self, name: str) -> str:
        """A value shown on the page (one round trip: the page is already loaded)."""
        try:
            return self.site.el(name).first.inner_text(timeout=self.element_timeout_ms).strip()
        except PlaywrightTimeout:
            raise self._missing(name) from None

    def _value(self, name: str) -> str:
        try:
            return self.site.el(name).first.input_value(timeout=self.element_timeout_ms).strip()
        except PlaywrightTimeout:
            raise self._missing(name) from None

    def _one(self, name: str, texts: list[str]) -> str:
        if not texts:
            raise PageChanged(f"rakuten: '{name}' did not appear on {self.site.page.url.split('?')[0]}; "
                              "the page may have changed (selectors/rakuten.yaml)")
        return texts[0]

    def _row(self, row: dict[str, list[str]], cells: dict[str, str]) -> dict[str, str]:
        """One table row's cells; a cell missing from the row is a page that changed."""
        for cell, name in cells.items():
            if not row.get(cell):
                raise PageChanged(f"rakuten: '{name}' is missing from a row on "
                                  f"{self.site.page.url.split('?')[0]} (selectors/rakuten.yaml)")
        return {cell: texts[0] for cell, texts in row.items()}

    def _template_keys(self) -> dict[str, str]:
        """RMS template name → send_mail()'s key, from the template radios' labels in the selectors."""
        names = {}
        for key in TEMPLATE_KEYS:
            spec = self.site.selectors.specs.get("mail_template", {}).get(key, {})
            if isinstance(spec.get("name"), str):
                names[spec["name"]] = key
        return names

    def _time(self, text: str, name: str) -> datetime:
        try:
            return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=JST)
        except ValueError:
            raise PageChanged(f"rakuten: '{name}' shows {text!r}, not a time like 2026-11-20 09:00:00") from None

    def _date(self, text: str) -> date:
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise PageChanged(f"rakuten: 発送日 shows {text!r}, not a date like 2026-11-20") from None

    @staticmethod
    def _number(text: str, name: str) -> int:
        digits = re.sub(r"[,円\s]", "", text)
        if not digits.isdigit():
            raise PageChanged(f"rakuten: '{name}' shows {text!r}, not a number")
        return int(digits)
