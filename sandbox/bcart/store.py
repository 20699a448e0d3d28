"""The sandbox's Bカート (B-cart) shop: wholesale orders, their shipments (``logistics``), the
shop's custom order statuses, the template mails sent from the admin screens, and the 出荷実績
インポート CSVs seen — all in memory, on the world's virtual clock.

Facts followed (Bカート's user guide: 受注を処理する, 出荷実績インポート):

- 対応状況 (order ``status``): 新規注文 and 完了 are built in; every other status is a shop-defined
  custom status, stored and reported by the API as ``カスタムN`` and shown on the screens by its label.
- 発送状況 (logistics ``status``): 未発送 / 発送指示 / 発送済.
- A blank 送り状番号 (``delivery_code``) or 発送日 (``shipment_date``) — in the CSV or in a PATCH —
  really overwrites the stored value with nothing.
- B-cart keeps no history of the template mails; the sandbox records them for tests only
  (``GET /admin/bcart/mails``), never on a screen.
- The API allows 300 requests per 300 s, then locks for 300 s (429 + Retry-After).
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import re
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sandbox.world import JST

if TYPE_CHECKING:
    from sandbox.world import World

NEW_ORDER = "新規注文"
COMPLETED = "完了"
BUILTIN_STATUSES = (NEW_ORDER, COMPLETED)
DEFAULT_CUSTOM_LABELS = {"カスタム1": "処理中", "カスタム2": "キャンセル", "カスタム3": "保留"}
"""The shop's custom 対応状況 as most shops set them up (カスタム1 処理中 and カスタム2 キャンセル as in
the integration the notes cite; 保留 added third). ``POST /admin/bcart/statuses`` changes them."""
CUSTOM_STATUS = re.compile(r"^カスタム([1-9][0-9]*)$")

NOT_SHIPPED, SHIP_INSTRUCTED, SHIPPED = "未発送", "発送指示", "発送済"
SHIPMENT_STATUSES = (NOT_SHIPPED, SHIP_INSTRUCTED, SHIPPED)

MAIL_TEMPLATES = ("欠品のお知らせ", "入金案内", "振り込み確認", "発送のお知らせ")
PAYMENT_METHODS = ("銀行振込", "後払い（Paid）", "クレジットカード", "代金引換", "請求書払い")
PREPAYMENT_METHODS = ("銀行振込",)
"""Methods where the shop waits for the money before shipping (seed 003: 入金案内 → 決済確認日)."""

IMPORT_COLUMNS = ("Bカート発送ID", "送り状番号", "発送日", "出荷管理番号", "発送状況", "発送メモ",
                  "お客様への連絡事項", "対応状況")
"""出荷実績インポート's columns (notes §1.1), matched by header name."""
BLANK_OVERWRITES = ("送り状番号", "発送日")
"""Blank in these columns overwrites the stored value with nothing (「空の内容で上書きされます」).
The other columns, when blank, leave the stored value as it was."""
DELIVERY_CODE = re.compile(r"^[0-9A-Za-z,\-]*$")
"""送り状番号: half-width letters, digits, hyphens; several numbers joined by commas."""

SHOP_NAME = "Kuroko SIM 卸売センター"
SHOP_EMAIL = "wholesale@kuroko-sim.example"


@dataclass(frozen=True)
class BcartProduct:
    product_no: str
    """品番."""
    name: str
    unit_price: int
    amazon_sku: str
    """The Amazon seller SKU the shop's configuration maps this 品番 to (the robot has its own map;
    this is the sandbox's suggestion, shown by GET /admin/bcart/state)."""


PRODUCTS: dict[str, BcartProduct] = {
    p.product_no: p
    for p in [
        BcartProduct("BC-SIM30-20G", "【卸】物理SIM 30日間 20GB ドコモ回線（10枚セット）", 19800, "SIM-DATA-30D-20GB"),
        BcartProduct("BC-SIM90-50G", "【卸】物理SIM 90日間 50GB ドコモ回線（10枚セット）", 39800, "SIM-DATA-90D-50GB"),
        BcartProduct("BC-VOICE30", "【卸】音声通話付き SIM 30日間（5枚セット）", 16800, "SIM-VOICE-30D"),
    ]
}


@dataclass
class FieldChange:
    at: datetime
    target: str
    """"order" or "logistics"."""
    target_id: int
    name: str
    old: Any
    new: Any
    via: str
    """"api", "screen", "csv" or "admin"."""


@dataclass
class OrderProduct:
    id: int
    order_id: int
    logistics_id: int
    product_no: str
    product_name: str
    unit_price: int
    quantity: int


@dataclass
class Logistics:
    id: int
    order_id: int
    comp_name: str
    name: str
    zip: str
    pref: str
    address1: str
    address2: str
    address3: str = ""
    tel: str = ""
    department: str = ""
    due_date: date | None = None
    due_time: str = ""
    shipment_code: str = ""
    delivery_code: str = ""
    shipment_date: date | None = None
    arrival_date: date | None = None
    memo: str = ""
    status: str = NOT_SHIPPED


@dataclass
class BcartOrder:
    id: int
    code: str
    ordered_at: datetime
    customer_id: int
    customer_comp_name: str
    customer_department: str
    customer_name: str
    customer_email: str
    customer_tel: str
    payment: str
    payment_at: date | None = None
    status: str = NEW_ORDER
    admin_message: str = ""
    customer_message: str = ""
    shipping_cost: int = 0
    products: list[OrderProduct] = field(default_factory=list)
    logistics: list[Logistics] = field(default_factory=list)

    @property
    def total_price(self) -> int:
        return sum(p.unit_price * p.quantity for p in self.products)

    @property
    def tax(self) -> int:
        return (self.total_price + self.shipping_cost) // 10

    @property
    def grand_total(self) -> int:
        return self.total_price + self.shipping_cost + self.tax


@dataclass
class SentMail:
    id: int
    order_id: int
    template: str
    to: str
    subject: str
    body: str
    sent_at: datetime
    via: str = "screen"


@dataclass
class ImportRowResult:
    line: int
    """The file's line number (the header is line 1)."""
    logistics_id: str
    ok: bool
    message: str


@dataclass
class CsvImport:
    id: int
    at: datetime
    filename: str
    encoding: str
    """"shift_jis" when the bytes decode as Shift_JIS (CP932), else "unreadable"."""
    line_endings: str
    """"CRLF", "LF", "mixed" or "none"."""
    header: list[str]
    rows: list[list[str]]
    results: list[ImportRowResult]
    error: str | None = None
    """A whole-file error (nothing imported)."""

    @property
    def updated(self) -> int:
        return sum(1 for r in self.results if r.ok)


@dataclass
class BcartSettings:
    rate_limit: int = 300
    rate_window_seconds: float = 300
    lock_seconds: float = 300
    rate_clock: str = "virtual"
    """"virtual": the window and the lock run on the sandbox clock (tests move it);
    "real": on the machine's monotonic clock."""
    page_limit_max: int = 100


class ApiLimiter:
    """300 requests per 300-second window; the next one starts a lock of ``lock_seconds``."""

    def __init__(self) -> None:
        self.window_start: float | None = None
        self.count = 0
        self.locked_until: float | None = None

    def hit(self, now: float, s: BcartSettings) -> tuple[bool, int, int]:
        """Count one request at ``now`` (seconds). Returns (allowed, remaining, retry_after)."""
        if self.locked_until is not None:
            if now < self.locked_until:
                return False, 0, max(1, math.ceil(self.locked_until - now))
            self.locked_until, self.window_start, self.count = None, None, 0
        if self.window_start is None or now - self.window_start >= s.rate_window_seconds:
            self.window_start, self.count = now, 0
        if self.count >= s.rate_limit:
            self.locked_until = now + s.lock_seconds
            return False, 0, max(1, math.ceil(s.lock_seconds))
        self.count += 1
        return True, s.rate_limit - self.count, 0


class BcartError(Exception):
    """A refusal the API answers with ``{"error": ..., "message": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _half_width_digits(text: str) -> bool:
    return all(c.isascii() for c in text)


def parse_day(text: str) -> date | None:
    """yyyy-mm-dd or yyyy/mm/dd, half-width only."""
    if not _half_width_digits(text):
        return None
    for fmt in ("%Y-%m-%d", "%Y/%m/%d"):
        try:
            return datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    return None


class BcartStore:
    def __init__(self, world: World) -> None:
        self.world = world
        self.settings = BcartSettings()
        self.limiter = ApiLimiter()
        self.orders: dict[int, BcartOrder] = {}
        self.logistics: dict[int, Logistics] = {}
        self.custom_labels: dict[str, str] = dict(DEFAULT_CUSTOM_LABELS)
        self.mails: list[SentMail] = []
        self.imports: list[CsvImport] = []
        self.history: list[FieldChange] = []
        self.api_requests: list[dict[str, Any]] = []
        """Every API request that passed the gate (method, path, query, body), for tests."""
        self._order_ids = itertools.count(5001)
        self._logistics_ids = itertools.count(8001)
        self._product_ids = itertools.count(30001)
        self._mail_ids = itertools.count(1)
        self._import_ids = itertools.count(1)
        self._customer_ids = itertools.count(701)

    # --- time ------------------------------------------------------------------------------
    def now(self) -> datetime:
        return self.world.now()

    def today(self) -> date:
        return self.world.clock.today_jst()

    def limiter_now(self) -> float:
        if self.settings.rate_clock == "real":
            return time.monotonic()
        return self.now().timestamp()

    # --- statuses --------------------------------------------------------------------------
    def status_values(self) -> list[str]:
        return [NEW_ORDER, *sorted(self.custom_labels, key=lambda k: int(k.removeprefix("カスタム"))), COMPLETED]

    def label(self, status: str) -> str:
        return self.custom_labels.get(status, status)

    def status_for(self, text: str) -> str | None:
        """A status value from its API value (新規注文, カスタム2 …) or the label the screens show."""
        text = text.strip()
        if text in BUILTIN_STATUSES or text in self.custom_labels:
            return text
        for value, label in self.custom_labels.items():
            if label == text:
                return value
        return None

    def set_custom_labels(self, labels: dict[str, str]) -> None:
        for key, label in labels.items():
            if not CUSTOM_STATUS.match(key):
                raise ValueError(f"{key!r} is not a custom status; use カスタム1, カスタム2 …")
            if not label.strip() or label.strip() in BUILTIN_STATUSES:
                raise ValueError(f"{key}: a label must be non-empty and not {' / '.join(BUILTIN_STATUSES)}")
        self.custom_labels = {k: v.strip() for k, v in labels.items()}

    # --- orders ----------------------------------------------------------------------------
    def create_order(
        self,
        *,
        payment: str,
        destinations: list[dict[str, Any]],
        customer: dict[str, str] | None = None,
        shipping_cost: int = 0,
        customer_message: str = "",
    ) -> BcartOrder:
        """An order placed by a business customer; each destination (配送先) becomes one logistics
        with its own items ``[{"product_no", "quantity", "unit_price"?}]``."""
        if not destinations:
            raise ValueError("an order needs at least one destination with items")
        if payment not in PAYMENT_METHODS:
            raise ValueError(f"unknown payment method {payment!r}; one of {', '.join(PAYMENT_METHODS)}")
        cust = {
            "comp_name": "株式会社トラベルモバイル", "department": "仕入部", "name": "山田 太郎",
            "email": "buyer@travel-mobile.example", "tel": "03-1234-5678", **(customer or {}),
        }
        now = self.now()
        order_id = next(self._order_ids)
        order = BcartOrder(
            id=order_id,
            code=f"{order_id + 10_000_000}",
            ordered_at=now,
            customer_id=next(self._customer_ids),
            customer_comp_name=cust["comp_name"],
            customer_department=cust["department"],
            customer_name=cust["name"],
            customer_email=cust["email"],
            customer_tel=cust["tel"],
            payment=payment,
            shipping_cost=shipping_cost,
            customer_message=customer_message,
        )
        for dest in destinations:
            items = dest.get("items") or []
            if not items:
                raise ValueError("every destination needs items")
            logi = Logistics(
                id=next(self._logistics_ids), order_id=order_id,
                comp_name=dest.get("comp_name", cust["comp_name"]), name=dest.get("name", cust["name"]),
                department=dest.get("department", ""),
                zip=dest.get("zip", "160-0023"), pref=dest.get("pref", "東京都"),
                address1=dest.get("address1", "新宿区"), address2=dest.get("address2", "西新宿2-8-1"),
                address3=dest.get("address3", ""), tel=dest.get("tel", cust["tel"]),
                due_date=parse_day(dest["due_date"]) if dest.get("due_date") else None,
                due_time=dest.get("due_time", ""),
            )
            for item in items:
                product = PRODUCTS.get(item["product_no"])
                name = item.get("product_name") or (product.name if product else None)
                price = item.get("unit_price") or (product.unit_price if product else None)
                if name is None or price is None:
                    raise ValueError(f"unknown 品番 {item['product_no']!r}: give product_name and unit_price, "
                                     f"or use one of {', '.join(PRODUCTS)}")
                quantity = int(item.get("quantity", 1))
                if quantity < 1:
                    raise ValueError("quantity must be at least 1")
                order.products.append(OrderProduct(
                    id=next(self._product_ids), order_id=order_id, logistics_id=logi.id,
                    product_no=item["product_no"], product_name=name, unit_price=int(price), quantity=quantity))
            order.logistics.append(logi)
            self.logistics[logi.id] = logi
        self.orders[order_id] = order
        self.world.record("bcart", "order_placed", order_id=order_id, payment=payment,
                          logistics=[lg.id for lg in order.logistics])
        return order

    def get_order(self, order_id: int) -> BcartOrder:
        order = self.orders.get(order_id)
        if order is None:
            raise BcartError(404, f"受注ID {order_id} は存在しません。")
        return order

    def get_logistics(self, logistics_id: int) -> Logistics:
        logi = self.logistics.get(logistics_id)
        if logi is None:
            raise BcartError(404, f"発送ID {logistics_id} は存在しません。")
        return logi

    def _change(self, target: str, obj: Any, name: str, new: Any, via: str) -> None:
        old = getattr(obj, name)
        if old == new:
            return
        setattr(obj, name, new)
        self.history.append(FieldChange(self.now(), target, obj.id, name, old, new, via))
        self.world.record("bcart", f"{target}_changed", id=obj.id, field=name,
                          old=old.isoformat() if isinstance(old, date) else old,
                          new=new.isoformat() if isinstance(new, date) else new, via=via)

    def set_order_status(self, order_id: int, status: str, via: str) -> BcartOrder:
        order = self.get_order(order_id)
        value = self.status_for(status)
        if value is None or (via == "api" and value != status):
            raise BcartError(400, f"status: {status!r} は対応状況として使用できません。"
                                  f"使用できる値: {', '.join(self.status_values())}")
        self._change("order", order, "status", value, via)
        return order

    def set_admin_message(self, order_id: int, message: str, via: str) -> None:
        self._change("order", self.get_order(order_id), "admin_message", message, via)

    def confirm_payment(self, order_id: int, day: date | None = None) -> BcartOrder:
        """A person saw the money arrive and enters 決済確認日 (B-cart cannot see payments)."""
        order = self.get_order(order_id)
        self._change("order", order, "payment_at", day or self.today(), "admin")
        return order

    def update_logistics(self, logistics_id: int, changes: dict[str, Any], via: str) -> Logistics:
        """Apply ``changes`` (delivery_code, shipment_date, status, shipment_code, memo): every key
        given is written — an empty ``delivery_code`` or ``shipment_date`` blanks the stored value,
        as the real B-cart does. Validation first: nothing changes if one value is refused."""
        logi = self.get_logistics(logistics_id)
        new: dict[str, Any] = {}
        errors: list[str] = []
        for key, value in changes.items():
            text = "" if value is None else str(value).strip()
            if key == "delivery_code":
                if not DELIVERY_CODE.match(text):
                    errors.append("送り状番号は半角英数字・ハイフン（複数はカンマ区切り）で入力してください。")
                new[key] = text
            elif key == "shipment_date":
                day = parse_day(text) if text else None
                if text and day is None:
                    errors.append("発送日はyyyy-mm-dd形式（半角）で入力してください。")
                new[key] = day
            elif key == "status":
                if text not in SHIPMENT_STATUSES:
                    errors.append(f"発送状況は{'・'.join(SHIPMENT_STATUSES)}のいずれかを指定してください。")
                new[key] = text
            elif key in ("shipment_code", "memo"):
                new[key] = text
            else:
                errors.append(f"{key} は更新できない項目です。")
        if errors:
            raise BcartError(400, " ".join(errors))
        for key, value in new.items():
            self._change("logistics", logi, key, value, via)
        if via == "screen" and new.get("status") == SHIPPED and "shipment_date" not in new \
                and logi.shipment_date is None:
            # 発送済 on the screen fills 発送日 with today (userguide news/4146).
            self._change("logistics", logi, "shipment_date", self.today(), via)
        return logi

    # --- mails -----------------------------------------------------------------------------
    def send_mail(self, order_id: int, template: str, via: str = "screen") -> SentMail:
        if template not in MAIL_TEMPLATES:
            raise BcartError(400, f"メールテンプレート {template!r} は存在しません。")
        order = self.get_order(order_id)
        mail = SentMail(
            id=next(self._mail_ids), order_id=order_id, template=template, to=order.customer_email,
            subject=f"【{SHOP_NAME}】{template}（受注番号：{order.code}）",
            body=self.mail_body(order, template), sent_at=self.now(), via=via,
        )
        self.mails.append(mail)
        self.world.record("bcart", "mail_sent", order_id=order_id, template=template, mail_id=mail.id)
        return mail

    def mail_body(self, order: BcartOrder, template: str) -> str:
        head = f"{order.customer_comp_name}\n{order.customer_name} 様\n\n{SHOP_NAME}でございます。\n"
        if template == "欠品のお知らせ":
            text = "ご注文の商品が現在欠品しております。入荷次第あらためてご連絡いたします。"
        elif template == "入金案内":
            text = f"ご注文金額 {order.grand_total:,}円（税込）を下記口座へお振り込みください。"
        elif template == "振り込み確認":
            text = "お振り込みを確認いたしました。商品の発送準備に入ります。"
        else:
            lines = [f"  発送ID {lg.id}：送り状番号 {lg.delivery_code or '（未登録）'}"
                     f"　発送日 {lg.shipment_date.isoformat() if lg.shipment_date else '（未登録）'}"
                     for lg in order.logistics]
            text = "ご注文の商品を発送いたしました。\n" + "\n".join(lines)
        return f"{head}\n{text}\n\n受注番号：{order.code}\n"

    # --- 出荷実績インポート ----------------------------------------------------------------------
    def import_shipping_csv(self, filename: str, raw: bytes) -> CsvImport:
        """Read a 出荷実績インポート file as the real screen does: Shift_JIS, a header row, rows matched
        on Bカート発送ID; each row checked on its own (errors per row, good rows applied)."""
        crlf = raw.count(b"\r\n")
        lf = raw.count(b"\n") - crlf
        endings = "none" if crlf == lf == 0 else "CRLF" if lf == 0 else "LF" if crlf == 0 else "mixed"
        record = CsvImport(id=next(self._import_ids), at=self.now(), filename=filename, encoding="shift_jis",
                           line_endings=endings, header=[], rows=[], results=[])
        self.imports.append(record)
        if not re.fullmatch(r"[0-9A-Za-z._-]+", filename or ""):
            record.error = "ファイル名は半角英数字で指定してください。"
            return record
        try:
            text = raw.decode("cp932")
        except UnicodeDecodeError:
            record.encoding = "unreadable"
            record.error = "ファイルの文字コードが正しくありません。Shift_JISで保存したCSVファイルを指定してください。"
            return record
        table = list(csv.reader(io.StringIO(text, newline="")))
        if not table:
            record.error = "ファイルが空です。"
            return record
        record.header = [h.strip().lstrip("\ufeff") for h in table[0]]
        record.rows = table[1:]
        unknown = [h for h in record.header if h not in IMPORT_COLUMNS]
        if "Bカート発送ID" not in record.header or unknown:
            record.error = ("1行目（見出し行）が正しくありません。"
                            + (f"不明な項目：{'、'.join(unknown)}。" if unknown else "「Bカート発送ID」がありません。"))
            return record
        for number, row in enumerate(record.rows, start=2):
            if not any(cell.strip() for cell in row):
                continue
            record.results.append(self._import_row(number, dict(zip(record.header, row, strict=False)),
                                                   len(row) == len(record.header)))
        self.world.record("bcart", "csv_imported", import_id=record.id, rows=len(record.results),
                          updated=record.updated)
        return record

    def _import_row(self, line: int, cells: dict[str, str], width_ok: bool) -> ImportRowResult:
        raw_id = cells.get("Bカート発送ID", "").strip()
        if not width_ok:
            return ImportRowResult(line, raw_id, False, "項目数が見出し行と一致しません。")
        if not raw_id or not raw_id.isascii() or not raw_id.isdigit():
            return ImportRowResult(line, raw_id, False, "Bカート発送IDは半角数字で入力してください。")
        logi = self.logistics.get(int(raw_id))
        if logi is None:
            return ImportRowResult(line, raw_id, False, f"Bカート発送ID {raw_id} は存在しません。")
        errors: list[str] = []
        changes: dict[str, Any] = {}
        for column, key in (("送り状番号", "delivery_code"), ("発送日", "shipment_date"),
                            ("出荷管理番号", "shipment_code"), ("発送状況", "status"), ("発送メモ", "memo")):
            if column not in cells:
                continue  # a column the file leaves out changes nothing
            value = cells[column].strip()
            if column == "発送日" and not value.isascii():
                errors.append("発送日はyyyy-mm-dd形式の半角数字で入力してください（全角文字や「○月△日」は使用できません）。")
            elif column in ("送り状番号", "出荷管理番号") and not value.isascii():
                errors.append(f"{column}に全角文字が含まれています。半角で入力してください。")
            elif value or column in BLANK_OVERWRITES:
                changes[key] = value  # blank 送り状番号 / 発送日: overwritten with nothing
        order_status: str | None = None
        if cells.get("対応状況", "").strip():
            order_status = self.status_for(cells["対応状況"])
            if order_status is None:
                errors.append(f"対応状況「{cells['対応状況'].strip()}」は存在しません。")
        message_text = cells.get("お客様への連絡事項", "").strip()
        if not errors:
            try:
                self.update_logistics(logi.id, changes, via="csv")
            except BcartError as exc:
                errors.append(exc.message)
        if errors:
            return ImportRowResult(line, raw_id, False, " ".join(errors))
        if order_status is not None:
            self._change("order", self.orders[logi.order_id], "status", order_status, "csv")
        if message_text:
            self._change("order", self.orders[logi.order_id], "admin_message", message_text, "csv")
        return ImportRowResult(line, raw_id, True, "更新しました。")

    # --- JSON ------------------------------------------------------------------------------
    def logistics_json(self, logi: Logistics) -> dict[str, Any]:
        return {
            "id": logi.id, "order_id": logi.order_id, "shipment_code": logi.shipment_code,
            "delivery_code": logi.delivery_code, "destination_code": None, "shipping_group_id": 1,
            "comp_name": logi.comp_name, "department": logi.department, "name": logi.name,
            "zip": logi.zip, "pref": logi.pref, "address1": logi.address1, "address2": logi.address2,
            "address3": logi.address3, "tel": logi.tel,
            "due_date": logi.due_date.isoformat() if logi.due_date else None, "due_time": logi.due_time,
            "memo": logi.memo, "shipment_date": logi.shipment_date.isoformat() if logi.shipment_date else None,
            "arrival_date": logi.arrival_date.isoformat() if logi.arrival_date else None, "status": logi.status,
        }

    def product_json(self, p: OrderProduct) -> dict[str, Any]:
        return {"id": p.id, "order_id": p.order_id, "logistics_id": p.logistics_id, "product_no": p.product_no,
                "product_name": p.product_name, "unit_price": p.unit_price, "set_quantity": 1,
                "order_pro_count": p.quantity, "tax_rate": 0.1, "item_type": "product"}

    def order_json(self, order: BcartOrder, complete: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": order.id, "code": order.code, "customer_id": order.customer_id,
            "customer_comp_name": order.customer_comp_name, "customer_department": order.customer_department,
            "customer_name": order.customer_name, "customer_email": order.customer_email,
            "customer_tel": order.customer_tel,
            "total_price": order.total_price, "shipping_cost": order.shipping_cost, "tax": order.tax,
            "final_price": order.grand_total, "payment": order.payment,
            "payment_at": order.payment_at.isoformat() if order.payment_at else None,
            "customer_message": order.customer_message, "admin_message": order.admin_message,
            "ordered_at": order.ordered_at.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S"),
            "status": order.status,
        }
        if complete:
            data["order_products"] = [self.product_json(p) for p in order.products]
            data["logistics"] = [self.logistics_json(lg) for lg in order.logistics]
        return data

    def order_state(self, order: BcartOrder) -> dict[str, Any]:
        """Everything about one order, for tests: what the API shows, the label, the field history
        and the mails sent."""
        logistics_ids = {lg.id for lg in order.logistics}
        return {
            **self.order_json(order, complete=True),
            "status_label": self.label(order.status),
            "history": [self.change_json(c) for c in self.history
                        if (c.target == "order" and c.target_id == order.id)
                        or (c.target == "logistics" and c.target_id in logistics_ids)],
            "mails": [self.mail_json(m) for m in self.mails if m.order_id == order.id],
        }

    @staticmethod
    def change_json(c: FieldChange) -> dict[str, Any]:
        def plain(v: Any) -> Any:
            return v.isoformat() if isinstance(v, date) else v

        return {"at": c.at.isoformat(), "target": c.target, "id": c.target_id, "field": c.name,
                "old": plain(c.old), "new": plain(c.new), "via": c.via}

    @staticmethod
    def mail_json(m: SentMail) -> dict[str, Any]:
        return {"id": m.id, "order_id": m.order_id, "template": m.template, "to": m.to, "subject": m.subject,
                "body": m.body, "sent_at": m.sent_at.isoformat(), "via": m.via}

    @staticmethod
    def import_json(i: CsvImport) -> dict[str, Any]:
        return {"id": i.id, "at": i.at.isoformat(), "filename": i.filename, "encoding": i.encoding,
                "line_endings": i.line_endings, "header": i.header, "rows": i.rows, "error": i.error,
                "updated": i.updated,
                "results": [{"line": r.line, "logistics_id": r.logistics_id, "ok": r.ok, "message": r.message}
                            for r in i.results]}

    def snapshot(self) -> dict[str, Any]:
        return {
            "orders": [self.order_state(o) for o in self.orders.values()],
            "status_labels": dict(self.custom_labels),
            "mails": [self.mail_json(m) for m in self.mails],
            "imports": [self.import_json(i) for i in self.imports],
            "products": {p.product_no: {"name": p.name, "unit_price": p.unit_price, "amazon_sku": p.amazon_sku}
                         for p in PRODUCTS.values()},
            "settings": vars(self.settings).copy(),
            "api_requests": len(self.api_requests),
        }
