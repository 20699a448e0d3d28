"""The robot's view of the Bカート REST API: a Protocol in business words, and the real client
behind it (httpx, ``Authorization: Bearer <personal access token>``).

What goes through the API: reading orders (with their items and shipments), the shop's 対応状況
labels, changing an order's 対応状況, reading and updating a shipment (``logistics``: 送り状番号,
発送日, 発送状況). The template mails and the 帳票 are screen-only (pages/bcart/).

Never a blank: B-cart overwrites a stored 送り状番号 or 発送日 with nothing when it is sent empty.
``update_logistics`` therefore refuses — before any request — a missing, blank or partial
delivery code (an empty number between commas, whitespace, full-width characters) or shipment
date, raising ``BlankShippingField`` that says which field and why.

Several tracking numbers (one shipment, several parcels) go into the one 送り状番号 field joined
by a comma without spaces: ``join_tracking_numbers(["1234", "5678"]) == "1234,5678"``.

Rate limit: B-cart allows 300 requests per 300 s, then locks the shop out for 300 s, answering
429 with ``Retry-After``. The client sleeps for ``Retry-After`` and asks again, spending at most
``rate_limit_wait_seconds`` (default 330 s) per operation; beyond that — or a 429 without
``Retry-After`` — it fails with ``ApiError`` code ``429`` and the runner's retry takes over.

Errors: a refused token (401) or missing scope (403) is a ``ConfigurationError`` (fix the
setting); other refusals are ``ApiError`` with the HTTP status as ``code`` ("400", "404", "500" …);
connection failures and timeouts are ``SiteUnavailable``. Messages never carry the token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import httpx
from pydantic import BaseModel, SecretStr

from kuroko.connections import CheckLine, Connection, Connections, checked
from kuroko.errors import ApiError, BusinessRuleError, ConfigurationError, SiteUnavailable, UnknownValue
from kuroko.settings import KurokoSettings, load

JST = ZoneInfo("Asia/Tokyo")
NEW_ORDER = "新規注文"
COMPLETED = "完了"
SHIPMENT_STATUSES = ("未発送", "発送指示", "発送済")
TRACKING_SEPARATOR = ","
PAGE_SIZE = 100


class BcartSettings(KurokoSettings):
    """``KUROKO_BCART_*``: where the shop's B-cart is and how the robot gets in. The defaults are
    the sandbox's demo values (sandbox/bcart/app.py)."""

    bcart_url: str = "http://127.0.0.1:8106"
    """The admin screens' origin; the API is under ``{bcart_api_url or bcart_url}/api/v1``."""
    bcart_api_url: str | None = None
    """The real B-cart serves its API elsewhere (https://api.bcart.jp); unset: same as bcart_url."""
    bcart_user: str = "bcart-demo"
    bcart_password: SecretStr = SecretStr("bcart-demo-password")
    bcart_api_token: SecretStr = SecretStr("bcart-demo-personal-access-token")
    bcart_rate_limit_wait_seconds: float = 330.0
    """How long one operation may wait out 429s (B-cart's lock lasts 300 s)."""
    bcart_timeout_seconds: float = 30.0


class BlankShippingField(BusinessRuleError):
    """A shipping result with a blank or partial 送り状番号 / 発送日 was about to be sent. B-cart would
    overwrite the stored value with nothing, so it is never sent; a person looks at the shipment."""

    code = "blank_shipping_field"


# --- the business view ----------------------------------------------------------------------------
class BcartItem(BaseModel):
    id: int
    product_no: str
    """品番 (mapped to an Amazon seller SKU by configuration)."""
    name: str
    quantity: int
    unit_price: int
    logistics_id: int | None


class BcartShipment(BaseModel):
    """One B-cart ``logistics``: one destination of an order, its 発送ID (Bカート発送ID)."""

    id: int
    order_id: int | None
    status: str
    """発送状況: 未発送 / 発送指示 / 発送済."""
    delivery_code: str
    """送り状番号 ("" when none); several numbers are comma-joined."""
    shipment_date: date | None
    shipment_code: str
    comp_name: str
    name: str
    zip: str
    pref: str
    address: str
    """address1 + address2 + address3."""
    tel: str
    due_date: date | None
    memo: str
    items: list[BcartItem] = []

    @property
    def tracking_numbers(self) -> list[str]:
        return split_tracking_numbers(self.delivery_code)


class BcartOrder(BaseModel):
    id: int
    code: str
    """受注番号."""
    status: str
    """対応状況 as the API reports it (新規注文, カスタムN, 完了)."""
    status_label: str
    """対応状況 as the screens show it (処理中, 保留 …), from the shop's label map."""
    ordered_at: datetime
    customer_comp_name: str
    customer_name: str
    customer_email: str
    payment: str
    """決済方法 (銀行振込, 後払い（Paid）…)."""
    payment_confirmed_on: date | None
    """決済確認日: entered by a person when the money arrived (B-cart cannot see payments)."""
    total_yen: int
    admin_message: str
    items: list[BcartItem]
    shipments: list[BcartShipment]


class BcartApi(Protocol):
    def new_orders(self) -> list[BcartOrder]:
        """Every order in 新規注文, oldest first, with items and shipments."""
        ...

    def orders(self, status_label: str) -> list[BcartOrder]:
        """Every order whose 対応状況 shows ``status_label`` (保留, 処理中 …), oldest first."""
        ...

    def order(self, order_id: int) -> BcartOrder: ...

    def status_labels(self) -> dict[str, str]:
        """The shop's 対応状況: API value → label (新規注文 → 新規注文, カスタム1 → 処理中 …)."""
        ...

    def set_order_status(self, order_id: int, label: str) -> BcartOrder:
        """Set 対応状況 by its label (or built-in name); an unknown label is an UnknownValue."""
        ...

    def logistics(self, logistics_id: int) -> BcartShipment: ...

    def update_logistics(self, logistics_id: int, *, delivery_code: str, shipment_date: date | str,
                         status: str) -> BcartShipment:
        """Register the shipping result: 送り状番号, 発送日, 発送状況 — all three, never blank."""
        ...

    def request_count(self) -> int:
        """HTTP requests made so far (for the benchmark and tests)."""
        ...


# --- values that must never go out blank --------------------------------------------------------
def _check_tracking_number(number: str, where: str) -> str:
    text = number.strip() if isinstance(number, str) else ""
    if not text:
        raise BlankShippingField(f"{where}: a tracking number is blank; B-cart would blank the stored 送り状番号, "
                                 "so nothing was sent")
    if not text.isascii() or not all(c.isalnum() or c == "-" for c in text):
        raise BlankShippingField(f"{where}: tracking number {text!r} is not half-width letters, digits and "
                                 "hyphens; nothing was sent")
    return text


def join_tracking_numbers(numbers: Sequence[str], *, where: str = "送り状番号") -> str:
    """Every parcel's tracking number in the one 送り状番号 field, comma-joined (no spaces), each
    once, in the given order. Refuses an empty list and any blank or malformed number."""
    if isinstance(numbers, str):
        numbers = [numbers]
    if not numbers:
        raise BlankShippingField(f"{where}: no tracking number at all; nothing was sent")
    joined: list[str] = []
    for number in numbers:
        text = _check_tracking_number(number, where)
        if text not in joined:
            joined.append(text)
    return TRACKING_SEPARATOR.join(joined)


def split_tracking_numbers(delivery_code: str) -> list[str]:
    return [p.strip() for p in (delivery_code or "").split(TRACKING_SEPARATOR) if p.strip()]


def checked_delivery_code(delivery_code: str | None, *, where: str) -> str:
    """A complete 送り状番号 as it will be sent: no blank, no empty part between commas."""
    if delivery_code is None or not str(delivery_code).strip():
        raise BlankShippingField(f"{where}: 送り状番号 is blank; B-cart would overwrite the stored value with "
                                 "nothing, so nothing was sent")
    parts = str(delivery_code).strip().split(TRACKING_SEPARATOR)
    return TRACKING_SEPARATOR.join(_check_tracking_number(p, f"{where} 送り状番号 {delivery_code!r}") for p in parts)


def checked_shipment_date(shipment_date: date | str | None, *, where: str) -> date:
    """A complete 発送日 (a date, or yyyy-mm-dd)."""
    if isinstance(shipment_date, datetime):
        return shipment_date.date()
    if isinstance(shipment_date, date):
        return shipment_date
    text = (shipment_date or "").strip() if isinstance(shipment_date, str) else ""
    if not text:
        raise BlankShippingField(f"{where}: 発送日 is blank; B-cart would overwrite the stored value with nothing, "
                                 "so nothing was sent")
    try:
        if not text.isascii():
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise BlankShippingField(f"{where}: 発送日 {text!r} is not a whole date like 2026-11-20 (half-width); "
                                 "nothing was sent") from None


def checked_shipment_status(status: str | None, *, where: str) -> str:
    text = (status or "").strip()
    if text not in SHIPMENT_STATUSES:
        raise BlankShippingField(f"{where}: 発送状況 {status!r} is not one of {' / '.join(SHIPMENT_STATUSES)}; "
                                 "nothing was sent")
    return text


# --- JSON → views -------------------------------------------------------------------------------
def _day(value: Any) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _ordered_at(value: Any) -> datetime:
    text = str(value or "")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(f"B-cart answered an order with ordered_at {text!r}, not a time", code="unreadable_response") \
            from None
    return moment if moment.tzinfo else moment.replace(tzinfo=JST)


def _item(data: dict[str, Any]) -> BcartItem:
    return BcartItem(id=int(data["id"]), product_no=str(data.get("product_no") or ""),
                     name=str(data.get("product_name") or ""),
                     quantity=int(data.get("order_pro_count") or 0) * int(data.get("set_quantity") or 1),
                     unit_price=int(data.get("unit_price") or 0),
                     logistics_id=int(data["logistics_id"]) if data.get("logistics_id") else None)


def _shipment(data: dict[str, Any], items: Sequence[BcartItem] = ()) -> BcartShipment:
    logistics_id = int(data["id"])
    return BcartShipment(
        id=logistics_id, order_id=int(data["order_id"]) if data.get("order_id") else None,
        status=str(data.get("status") or ""), delivery_code=str(data.get("delivery_code") or ""),
        shipment_date=_day(data.get("shipment_date")), shipment_code=str(data.get("shipment_code") or ""),
        comp_name=str(data.get("comp_name") or ""), name=str(data.get("name") or ""), zip=str(data.get("zip") or ""),
        pref=str(data.get("pref") or ""),
        address="".join(str(data.get(k) or "") for k in ("address1", "address2", "address3")),
        tel=str(data.get("tel") or ""), due_date=_day(data.get("due_date")), memo=str(data.get("memo") or ""),
        items=[i for i in items if i.logistics_id == logistics_id],
    )


# --- the real client ------------------------------------------------------------------------------
ADVICE = {
    400: "B-cart would not accept the values; look at the order in B-cart.",
    404: "It may have been deleted; look it up in B-cart.",
    429: "B-cart's API quota (300 requests / 300 s) is used up; it will be tried again later.",
}


class BcartHttpApi:
    """``BcartApi`` over httpx. ``sleep`` is how it waits out a 429 (tests pass one that moves the
    sandbox clock instead). Not shared between threads."""

    def __init__(self, settings: BcartSettings, *, sleep: Callable[[float], None] = time.sleep,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._settings = settings
        token = settings.bcart_api_token.get_secret_value().strip()
        if not token:
            raise ConfigurationError("KUROKO_BCART_API_TOKEN is not set: give the shop's B-cart personal access "
                                     "token (Bカートデベロッパー > プライベートアプリ管理)")
        base = (settings.bcart_api_url or settings.bcart_url or "").rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise ConfigurationError(f"KUROKO_BCART_URL {settings.bcart_url!r} is not a URL; give e.g. "
                                     "http://127.0.0.1:8106")
        self.base_url = base + "/api/v1"
        self.rate_limit_wait_seconds = settings.bcart_rate_limit_wait_seconds
        self._sleep = sleep
        self._count = 0
        self._lock = threading.Lock()
        self._labels: dict[str, str] | None = None
        self._token = token
        self._client = httpx.Client(base_url=self.base_url, timeout=settings.bcart_timeout_seconds,
                                    headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                                    transport=transport)

    def close(self) -> None:
        self._client.close()

    def request_count(self) -> int:
        return self._count

    def metrics(self) -> dict[str, int]:
        return {"bcart_api_requests": self._count}

    # --- the one way in ---------------------------------------------------------------------------
    def _call(self, what: str, method: str, path: str, *, params: dict[str, Any] | None = None,
              json: dict[str, Any] | None = None) -> dict[str, Any]:
        waited = 0.0
        while True:
            try:
                with self._lock:
                    self._count += 1
                response = self._client.request(method, path, params=params, json=json)
            except (httpx.ConnectError, httpx.TimeoutException, httpx.RemoteProtocolError) as exc:
                raise SiteUnavailable(f"B-cart could not be reached to {what} ({type(exc).__name__}); is "
                                      f"{self.base_url} up? It will be tried again.") from exc
            except httpx.HTTPError as exc:
                raise SiteUnavailable(self._redact(f"B-cart could not be asked to {what}: {exc}")) from exc
            if response.status_code == 429:
                retry = self._retry_after(response)
                if retry is None or waited + retry > self.rate_limit_wait_seconds:
                    raise ApiError(f"B-cart kept answering 429 (rate limited) while trying to {what}"
                                   f"{'' if retry is not None else ' and said not when to retry'}; waited "
                                   f"{waited:g} s of at most {self.rate_limit_wait_seconds:g} s. {ADVICE[429]}",
                                   code="429")
                self._sleep(retry)
                waited += retry
                continue
            if response.status_code >= 400:
                raise self._refused(what, response)
            try:
                data = response.json()
            except ValueError:
                raise ApiError(f"B-cart's answer to {what} is not JSON (HTTP {response.status_code})",
                               code="unreadable_response") from None
            if not isinstance(data, dict):
                raise ApiError(f"B-cart's answer to {what} is not a JSON object", code="unreadable_response")
            return data

    @staticmethod
    def _retry_after(response: httpx.Response) -> float | None:
        value = response.headers.get("Retry-After", "").strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            return None

    def _refused(self, what: str, response: httpx.Response) -> Exception:
        status = response.status_code
        try:
            body = response.json()
            detail = ": ".join(str(x) for x in (body.get("error"), body.get("message")) if x)
        except (ValueError, AttributeError):
            detail = response.text[:200]
        if status in (401, 403):
            return ConfigurationError(self._redact(
                f"B-cart refused the API token while trying to {what} (HTTP {status}{' ' + detail if detail else ''}). "
                "Check KUROKO_BCART_API_TOKEN (a personal access token with the orders, logistics and "
                "order_statuses scopes)."))
        advice = ADVICE.get(status, "B-cart had a problem; it will be tried again." if status >= 500 else "")
        return ApiError(self._redact(f"B-cart refused to {what} (HTTP {status}{' ' + detail if detail else ''}). "
                                     f"{advice}".strip()), code=str(status))

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***")

    # --- reading ------------------------------------------------------------------------------------
    def check(self, order: str | None = None) -> list[CheckLine]:
        """`kuroko check`: the token is accepted (the shop's 対応状況 labels read) and new orders can
        be listed. Reads only."""

        def labels() -> str:
            found = self.status_labels()
            return f"token accepted; 対応状況: {', '.join(sorted(set(found.values())))}"

        lines = [checked("bcart_api", "token", labels)]
        if lines[0].ok:
            lines.append(checked("bcart_api", "new orders", lambda: f"{len(self.new_orders())} new orders listed"))
        return lines

    def status_labels(self) -> dict[str, str]:
        data = self._call("read the shop's 対応状況", "GET", "/order_statuses")
        labels = {str(s["status"]): str(s.get("label") or s["status"]) for s in data.get("order_statuses", [])}
        labels.setdefault(NEW_ORDER, NEW_ORDER)
        labels.setdefault(COMPLETED, COMPLETED)
        self._labels = labels
        return dict(labels)

    def _label_map(self) -> dict[str, str]:
        return self._labels if self._labels is not None else self.status_labels()

    def _order(self, data: dict[str, Any]) -> BcartOrder:
        items = [_item(p) for p in data.get("order_products") or []]
        status = str(data.get("status") or "")
        return BcartOrder(
            id=int(data["id"]), code=str(data.get("code") or ""), status=status,
            status_label=self._label_map().get(status, status), ordered_at=_ordered_at(data.get("ordered_at")),
            customer_comp_name=str(data.get("customer_comp_name") or ""),
            customer_name=str(data.get("customer_name") or ""), customer_email=str(data.get("customer_email") or ""),
            payment=str(data.get("payment") or ""), payment_confirmed_on=_day(data.get("payment_at")),
            total_yen=int(data.get("final_price") or data.get("total_price") or 0),
            admin_message=str(data.get("admin_message") or ""), items=items,
            shipments=[_shipment(lg, items) for lg in data.get("logistics") or []],
        )

    def _orders_with(self, status: str, what: str) -> list[BcartOrder]:
        found: list[BcartOrder] = []
        offset = 0
        while True:
            data = self._call(what, "GET", "/orders",
                              params={"status": status, "complete": 1, "limit": PAGE_SIZE, "offset": offset})
            page = data.get("orders") or []
            found += [self._order(o) for o in page]
            total = int((data.get("meta") or {}).get("total") or 0)
            offset += len(page)
            if not page or offset >= total:
                break
        return sorted(found, key=lambda o: (o.ordered_at, o.id))

    def new_orders(self) -> list[BcartOrder]:
        return self._orders_with(NEW_ORDER, "read the new orders")

    def orders(self, status_label: str) -> list[BcartOrder]:
        return self._orders_with(self._status_value(status_label), f"read the orders in {status_label}")

    def order(self, order_id: int) -> BcartOrder:
        data = self._call(f"read order {order_id}", "GET", f"/orders/{int(order_id)}")
        return self._order(data.get("order") or {})

    def logistics(self, logistics_id: int) -> BcartShipment:
        data = self._call(f"read shipment (発送ID) {logistics_id}", "GET", f"/logistics/{int(logistics_id)}")
        return _shipment(data.get("logistic") or {})

    # --- writing ------------------------------------------------------------------------------------
    def _status_value(self, label: str) -> str:
        labels = self._label_map()
        wanted = label.strip()
        if wanted in labels:
            return wanted
        for value, shown in labels.items():
            if shown == wanted:
                return value
        labels = self.status_labels()  # the shop may have just added it
        for value, shown in labels.items():
            if shown == wanted:
                return value
        raise UnknownValue(f"B-cart has no 対応状況 {label!r}; this shop's are: {', '.join(labels.values())}. "
                           "Add it in B-cart (各種設定 > 受注の対応状況) or fix the procedure's setting")

    def set_order_status(self, order_id: int, label: str) -> BcartOrder:
        value = self._status_value(label)
        data = self._call(f"set order {order_id} to {label}", "PATCH", f"/orders/{int(order_id)}",
                          json={"status": value})
        return self._order(data.get("order") or {})

    def update_logistics(self, logistics_id: int, *, delivery_code: str, shipment_date: date | str,
                         status: str) -> BcartShipment:
        where = f"B-cart shipment (発送ID) {logistics_id}"
        body = {
            "delivery_code": checked_delivery_code(delivery_code, where=where),
            "shipment_date": checked_shipment_date(shipment_date, where=where).isoformat(),
            "status": checked_shipment_status(status, where=where),
        }
        data = self._call(f"register the shipping result of shipment {logistics_id}", "PATCH",
                          f"/logistics/{int(logistics_id)}", json=body)
        return _shipment(data.get("logistic") or {})


# --- the run's connection -----------------------------------------------------------------------
def open_bcart_api(connections: Connections) -> BcartHttpApi:
    return BcartHttpApi(load(BcartSettings))


BCART_API: Connection[BcartHttpApi] = Connection("bcart_api", open_bcart_api)
"""The Bカート REST API (orders, 対応状況, logistics)."""
