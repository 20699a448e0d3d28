"""Sandbox Bカート (B-cart): the shop's admin screens, in Japanese as the real ones are, and the
REST API (sandbox/bcart/api.py) on the same port.

Screens (behind a login; a missing or expired session redirects to ``/login?next=…``):

- ``/login``                          ログイン (ログインID + パスワード)
- ``/order``                          受注一覧: a checkbox per order, 「処理を選択」 (メール送信) → 実行;
  ``?ids=5001,5002`` shows only those orders, ``?status=<label>`` one 対応状況
- ``/order/mail?ids=…``               メール送信: メールテンプレート (required) → 確認画面へ
- ``/order/mail/confirm?ids=…&template=…``  送信内容の確認 → 送信する
- ``/order/{id}``                     受注詳細: 対応状況 (select + 更新), 決済方法, 決済確認日, 帳票
  (納品書 / 請求書 PDF downloads), 商品, 配送先 (one per logistics)
- ``/order/{id}/document/{delivery_note|invoice}``  the PDF
- ``/logistics``                      出荷一覧 (one row per logistics)
- ``/logistics/import``               出荷実績インポート: upload a CSV → 取込結果 with an error per row

Every POST carries a hidden ``csrf_token`` checked against the session (the login form uses a
double-submit cookie). Sessions end after ``SESSION_IDLE`` of virtual time, at logout, at a reset,
and — fault knob ``expire_sessions`` — all at once at the next request. ``hide_elements`` names:
``mail_button`` (実行), ``template_select``, ``send_button``, ``documents`` (the 帳票 links),
``import_button``.

B-cart keeps no mail history: no screen shows the mails sent. ``GET /admin/bcart/mails`` does,
for tests only.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from sandbox.bcart.api import DEMO_API_TOKEN, install_api, too_many
from sandbox.bcart.pdf import make_pdf
from sandbox.bcart.store import (
    MAIL_TEMPLATES,
    PAYMENT_METHODS,
    SHIPMENT_STATUSES,
    SHOP_NAME,
    BcartError,
    BcartOrder,
    BcartStore,
    parse_day,
)
from sandbox.faults import install_faults
from sandbox.world import JST, World

if TYPE_CHECKING:
    from sandbox.server import SandboxState

HERE = Path(__file__).resolve().parent.parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
STATIC_DIR = HERE / "static"

SESSION_COOKIE = "bcart_session"
LOGIN_CSRF_COOKIE = "bcart_login_csrf"
SESSION_IDLE = timedelta(hours=2)
"""Virtual time without a request after which the admin asks for the password again."""

DEMO_USER = "bcart-demo"
DEMO_PASSWORD = "bcart-demo-password"
"""The one admin login this B-cart accepts (handed to the robot by `SandboxAdmin.robot_env()`)."""

DOCUMENTS = {"delivery_note": "納品書", "invoice": "請求書"}


def demo_credentials() -> dict[str, str]:
    return {"user": DEMO_USER, "password": DEMO_PASSWORD, "api_token": DEMO_API_TOKEN}


@dataclass
class BcartSession:
    user: str
    csrf: str
    world: World
    last_seen: datetime
    flashes: list[tuple[str, str]] = field(default_factory=list)


class Sessions:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.by_token: dict[str, BcartSession] = {}

    def open(self, user: str) -> str:
        world = self.state.world
        token = secrets.token_urlsafe(24)
        self.by_token[token] = BcartSession(user, secrets.token_urlsafe(24), world, world.now())
        return token

    def current(self, request: Request) -> BcartSession | None:
        token = request.cookies.get(SESSION_COOKIE) or ""
        session = self.by_token.get(token)
        if session is None:
            return None
        world = self.state.world
        if session.world is not world or world.now() - session.last_seen > SESSION_IDLE:
            self.by_token.pop(token, None)
            return None
        session.last_seen = world.now()
        return session

    def close(self, request: Request) -> None:
        self.by_token.pop(request.cookies.get(SESSION_COOKIE) or "", None)


def jst(moment: datetime) -> str:
    return moment.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S")


def day(value: date | None) -> str:
    return value.isoformat() if value else ""


TEMPLATES.env.filters["jst"] = jst
TEMPLATES.env.filters["day"] = day
TEMPLATES.env.filters["yen"] = lambda n: f"{n:,}"


def same(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode(), expected.encode())


def safe_next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/order"
    return target


def login_redirect(next_path: str) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(next_path, safe='/?=&,')}", status_code=303)


def parse_ids(text: str) -> list[int]:
    ids: list[int] = []
    for part in text.replace(" ", "").split(","):
        if part.isascii() and part.isdigit() and int(part) not in ids:
            ids.append(int(part))
    return ids


def document_pdf(store: BcartStore, order: BcartOrder, kind: str) -> bytes:
    title = DOCUMENTS[kind]
    lines = [
        f"{order.customer_comp_name} {order.customer_department}",
        f"{order.customer_name} 様",
        "",
        f"受注番号：{order.code}　受注日：{order.ordered_at.astimezone(JST).strftime('%Y-%m-%d')}",
        f"発行日：{store.today().isoformat()}　発行元：{SHOP_NAME}",
        f"決済方法：{order.payment}",
        "",
        "品番 / 商品名 / 単価 / 数量 / 金額",
    ]
    for p in order.products:
        lines.append(f"{p.product_no} / {p.product_name} / {p.unit_price:,}円 / {p.quantity} / "
                     f"{p.unit_price * p.quantity:,}円")
    lines += ["", f"小計：{order.total_price:,}円　送料：{order.shipping_cost:,}円　消費税：{order.tax:,}円",
              f"合計：{order.grand_total:,}円（税込）"]
    if kind == "delivery_note":
        lines += ["", *[f"お届け先（発送ID {lg.id}）：{lg.comp_name} {lg.name} 〒{lg.zip} {lg.pref}{lg.address1}"
                        f"{lg.address2}" for lg in order.logistics]]
    else:
        lines += ["", "お支払期限：請求書発行日より30日以内"]
    return make_pdf(title, lines)


# --- admin knobs ------------------------------------------------------------------------------
class NewItem(BaseModel):
    product_no: str
    quantity: int = 1
    product_name: str | None = None
    unit_price: int | None = None


class Destination(BaseModel):
    comp_name: str | None = None
    name: str | None = None
    zip: str | None = None
    pref: str | None = None
    address1: str | None = None
    address2: str | None = None
    tel: str | None = None
    due_date: str | None = None
    items: list[NewItem] = Field(default_factory=list)


class NewOrder(BaseModel):
    payment: str = Field("請求書払い", description=f"one of {', '.join(PAYMENT_METHODS)}")
    items: list[NewItem] = Field(default_factory=list, description="one destination: its items")
    destinations: list[Destination] = Field(default_factory=list, description="several destinations, each with items")
    customer: dict[str, str] = Field(default_factory=dict)
    shipping_cost: int = 0


class PaymentSeen(BaseModel):
    date: str | None = None
    """yyyy-mm-dd; default today (JST, sandbox clock)."""


class StatusLabels(BaseModel):
    labels: dict[str, str]
    """{"カスタム1": "処理中", ...}: replaces the shop's custom statuses."""


class SettingsChange(BaseModel):
    rate_limit: int | None = None
    rate_window_seconds: float | None = None
    lock_seconds: float | None = None
    rate_clock: str | None = None
    page_limit_max: int | None = None


def admin_router(state: SandboxState) -> APIRouter:
    """``/admin/bcart/...`` on the sandbox's admin port: what the customer and the shop's people
    do, and the whole truth for tests (README, 'Sandbox Bカート')."""
    router = APIRouter(prefix="/admin/bcart")

    def store() -> BcartStore:
        return state.world.bcart

    def found(order_id: int) -> BcartOrder:
        order = store().orders.get(order_id)
        if order is None:
            raise HTTPException(404, f"no B-cart order {order_id}")
        return order

    @router.post("/orders")
    async def create_order(body: NewOrder) -> dict[str, Any]:
        """A business customer orders (payment method, items with 品番, one or more destinations)."""
        destinations = [d.model_dump(exclude_none=True) for d in body.destinations]
        if body.items:
            destinations.insert(0, {"items": [i.model_dump(exclude_none=True) for i in body.items]})
        try:
            order = store().create_order(payment=body.payment, destinations=destinations, customer=body.customer,
                                         shipping_cost=body.shipping_cost)
        except (ValueError, KeyError) as exc:
            raise HTTPException(400, str(exc)) from exc
        return store().order_state(order)

    @router.get("/orders")
    async def orders() -> list[dict[str, Any]]:
        return [store().order_state(o) for o in store().orders.values()]

    @router.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, Any]:
        """The order as the API shows it, plus its label, field-change history and mails."""
        return store().order_state(found(order_id))

    @router.post("/orders/{order_id}/payment")
    async def payment_seen(order_id: int, body: PaymentSeen) -> dict[str, Any]:
        """A person saw the money arrive and enters 決済確認日."""
        seen = parse_day(body.date) if body.date else None
        if body.date and seen is None:
            raise HTTPException(400, "date: yyyy-mm-dd")
        return store().order_state(store().confirm_payment(found(order_id).id, seen))

    @router.post("/orders/{order_id}/status")
    async def set_status(order_id: int, body: dict[str, str]) -> dict[str, Any]:
        """A person changes 対応状況 on the screen (value or label)."""
        try:
            store().set_order_status(found(order_id).id, body.get("status", ""), via="admin")
        except BcartError as exc:
            raise HTTPException(exc.status, exc.message) from exc
        return store().order_state(found(order_id))

    @router.get("/statuses")
    async def statuses() -> dict[str, Any]:
        return {"labels": dict(store().custom_labels), "values": store().status_values()}

    @router.post("/statuses")
    async def set_statuses(body: StatusLabels) -> dict[str, Any]:
        try:
            store().set_custom_labels(body.labels)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc
        return await statuses()

    @router.get("/logistics/{logistics_id}")
    async def logistics(logistics_id: int) -> dict[str, Any]:
        logi = store().logistics.get(logistics_id)
        if logi is None:
            raise HTTPException(404, f"no B-cart logistics {logistics_id}")
        return store().logistics_json(logi)

    @router.get("/mails")
    async def mails(order_id: int | None = None, template: str | None = None) -> list[dict[str, Any]]:
        """Every template mail sent (B-cart itself keeps none: tests only)."""
        return [store().mail_json(m) for m in store().mails
                if (order_id is None or m.order_id == order_id) and (template is None or m.template == template)]

    @router.get("/imports")
    async def imports() -> list[dict[str, Any]]:
        """Every 出荷実績インポート file seen: encoding, line endings, header, rows, per-row results."""
        return [store().import_json(i) for i in store().imports]

    @router.get("/history")
    async def history() -> list[dict[str, Any]]:
        return [store().change_json(c) for c in store().history]

    @router.get("/requests")
    async def api_requests() -> list[dict[str, Any]]:
        """Every API request that passed the quota and the token."""
        return list(store().api_requests)

    @router.get("/state")
    async def snapshot() -> dict[str, Any]:
        return store().snapshot()

    @router.get("/settings")
    async def settings() -> dict[str, Any]:
        return vars(store().settings).copy()

    @router.post("/settings")
    async def change_settings(body: SettingsChange) -> dict[str, Any]:
        """Rate limit knobs (a reset brings the defaults back); changing them restarts the window."""
        current = store().settings
        for name, value in body.model_dump(exclude_none=True).items():
            if name == "rate_clock" and value not in ("virtual", "real"):
                raise HTTPException(400, "rate_clock: virtual or real")
            if name != "rate_clock" and value <= 0:
                raise HTTPException(400, f"{name} must be positive")
            setattr(current, name, value)
        from sandbox.bcart.store import ApiLimiter

        store().limiter = ApiLimiter()
        return vars(current).copy()

    return router


# --- the app ----------------------------------------------------------------------------------
def create_app(state: SandboxState) -> FastAPI:
    app = FastAPI(title="Bカート (sandbox)", docs_url=None, redoc_url=None, openapi_url=None)
    install_api(app, state)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    sessions = Sessions(state)

    @app.middleware("http")
    async def expire_sessions(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        knobs = state.world.faults["bcart"]
        if knobs.expire_sessions and not request.url.path.startswith(("/static", "/api/")):
            sessions.by_token.clear()
            knobs.expire_sessions = False
        return await call_next(request)

    def fault_429(request: Request) -> Response:
        return too_many(1, "Too many requests (sandbox fault knob burst_429)")

    install_faults(app, state, "bcart", too_many=fault_429)

    def store() -> BcartStore:
        return state.world.bcart

    def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("session", None)
        context.update(hidden=set(state.world.faults["bcart"].hide_elements), shop_name=SHOP_NAME,
                       label=store().label)
        return TEMPLATES.TemplateResponse(request, f"bcart/{name}", context, status_code=status_code)

    def here(request: Request) -> str:
        return request.url.path + (f"?{request.url.query}" if request.url.query else "")

    async def form_of(request: Request, session: BcartSession) -> dict[str, Any] | None:
        form = await request.form()
        values: dict[str, Any] = {}
        for key, value in form.multi_items():
            if key in values:
                values[key] = [*values[key], value] if isinstance(values[key], list) else [values[key], value]
            else:
                values[key] = value
        token = values.get("csrf_token")
        if not isinstance(token, str) or not same(token, session.csrf):
            return None
        return values

    def forbidden(request: Request, session: BcartSession | None) -> HTMLResponse:
        return render(request, "message.html", 403, session=session, title="不正な操作です",
                      message="画面の有効期限が切れたか、不正な操作が行われました。もう一度操作してください。")

    def not_found(request: Request, session: BcartSession, order_id: int) -> HTMLResponse:
        return render(request, "message.html", 404, session=session, title="受注が見つかりません",
                      message=f"受注ID {order_id} の受注は存在しません。")

    # --- login -------------------------------------------------------------------------------
    @app.get("/", response_model=None)
    async def home() -> RedirectResponse:
        return RedirectResponse("/order", status_code=303)

    @app.get("/login", response_model=None)
    async def login_form(request: Request, next: str = "/order") -> HTMLResponse:
        token = secrets.token_urlsafe(24)
        response = render(request, "login.html", next=safe_next(next), csrf=token, error=None, user="")
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="lax")
        return response

    @app.post("/login", response_model=None)
    async def login(request: Request) -> Response:
        form = await request.form()
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        next_path = safe_next(values.get("next"))
        cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not cookie_token or not same(values.get("csrf_token", ""), cookie_token):
            return forbidden(request, None)
        user = values.get("user", "").strip()
        if not (same(user, DEMO_USER) and same(values.get("password", ""), DEMO_PASSWORD)):
            state.world.record("bcart", "login_refused", user=user)
            token = secrets.token_urlsafe(24)
            refused = render(request, "login.html", 401, next=next_path, csrf=token, user=user,
                             error="ログインIDまたはパスワードが正しくありません。")
            refused.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="lax")
            return refused
        state.world.record("bcart", "login", user=user)
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(SESSION_COOKIE, sessions.open(user), httponly=True, samesite="lax")
        response.delete_cookie(LOGIN_CSRF_COOKIE)
        return response

    @app.get("/logout", response_model=None)
    async def logout(request: Request) -> RedirectResponse:
        sessions.close(request)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    # --- 受注一覧 and メール送信 ----------------------------------------------------------------
    def list_page(request: Request, session: BcartSession, ids: str, status: str, *, error: str | None = None,
                  status_code: int = 200) -> HTMLResponse:
        orders = sorted(store().orders.values(), key=lambda o: o.id, reverse=True)
        wanted = parse_ids(ids)
        if ids:
            orders = [o for o in orders if o.id in wanted]
        if status:
            orders = [o for o in orders if store().label(o.status) == status]
        flashes, session.flashes = session.flashes, []
        labels = [store().label(v) for v in store().status_values()]
        return render(request, "order_list.html", status_code, session=session, orders=orders, ids=ids,
                      status=status, labels=labels, flashes=flashes, error=error)

    @app.get("/order", response_model=None)
    async def order_list(request: Request, ids: str = "", status: str = "") -> Response:
        session = sessions.current(request)
        if session is None:
            return login_redirect(here(request))
        return list_page(request, session, ids, status)

    @app.post("/order/bulk", response_model=None)
    async def order_bulk(request: Request) -> Response:
        session = sessions.current(request)
        if session is None:
            return login_redirect("/order")
        values = await form_of(request, session)
        if values is None:
            return forbidden(request, session)
        chosen = values.get("order_ids", [])
        ids = parse_ids(",".join(chosen if isinstance(chosen, list) else [chosen]))
        back_ids = values.get("ids", "") if isinstance(values.get("ids"), str) else ""
        if not ids:
            return list_page(request, session, back_ids, "", error="受注を選択してください。", status_code=400)
        if values.get("action") != "mail":
            return list_page(request, session, back_ids, "", error="処理を選択してください。", status_code=400)
        return RedirectResponse("/order/mail?" + urlencode({"ids": ",".join(map(str, ids))}), status_code=303)

    def chosen_orders(ids: str) -> list[BcartOrder]:
        return [store().orders[i] for i in parse_ids(ids) if i in store().orders]

    @app.get("/order/mail", response_model=None)
    async def mail_choose(request: Request, ids: str = "") -> Response:
        session = sessions.current(request)
        if session is None:
            return login_redirect(here(request))
        return render(request, "mail_choose.html", session=session, orders=chosen_orders(ids), ids=ids,
                      templates=MAIL_TEMPLATES, error=None)

    @app.get("/order/mail/confirm", response_model=None)
    async def mail_confirm(request: Request, ids: str = "", template: str = "") -> Response:
        session = sessions.current(request)
        if session is None:
            return login_redirect(here(request))
        orders = chosen_orders(ids)
        if template not in MAIL_TEMPLATES or not orders:
            return render(request, "mail_choose.html", 400, session=session, orders=orders, ids=ids,
                          templates=MAIL_TEMPLATES,
                          error="メールテンプレートを選択してください。" if orders else "受注を選択してください。")
        previews = [(o, f"【{SHOP_NAME}】{template}（受注番号：{o.code}）") for o in orders]
        return render(request, "mail_confirm.html", session=session, previews=previews, template=template,
                      ids=",".join(str(o.id) for o in orders), csrf=session.csrf)

    @app.post("/order/mail/send", response_model=None)
    async def mail_send(request: Request) -> Response:
        session = sessions.current(request)
        if session is None:
            return login_redirect("/order")
        values = await form_of(request, session)
        if values is None:
            return forbidden(request, session)
        template = values.get("template", "")
        orders = chosen_orders(values.get("ids", "") if isinstance(values.get("ids"), str) else "")
        if template not in MAIL_TEMPLATES or not orders:
            return render(request, "mail_choose.html", 400, session=session, orders=orders, ids="",
                          templates=MAIL_TEMPLATES, error="メールテンプレートを選択してください。")
        for order in orders:
            store().send_mail(order.id, template)
        codes = "、".join(o.code for o in orders)
        session.flashes.append(("success", f"メールを送信しました。（{template}：{len(orders)}件、受注番号：{codes}）"))
        return RedirectResponse("/order?" + urlencode({"ids": ",".join(str(o.id) for o in orders)}),
                                status_code=303)

    # --- 受注詳細 ---------------------------------------------------------------------------------
    @app.get("/order/{order_id}", response_model=None)
    async def order_page(request: Request, order_id: int) -> Response:
        session = sessions.current(request)
        if session is None:
            return login_redirect(here(request))
        order = store().orders.get(order_id)
        if order is None:
            return not_found(request, session, order_id)
        flashes, session.flashes = session.flashes, []
        labels = [(v, store().label(v)) for v in store().status_values()]
        by_logistics = {lg.id: [p for p in order.products if p.logistics_id == lg.id] for lg in order.logistics}
        return render(request, "order.html", session=session, order=order, labels=labels, flashes=flashes,
                      documents=DOCUMENTS, by_logistics=by_logistics, csrf=session.csrf)

    @app.post("/order/{order_id}/status", response_model=None)
    async def order_status(request: Request, order_id: int) -> Response:
        session = sessions.current(request)
        if session is None:
            return login_redirect(f"/order/{order_id}")
        values = await form_of(request, session)
        if values is None:
            return forbidden(request, session)
        if order_id not in store().orders:
            return not_found(request, session, order_id)
        try:
            store().set_order_status(order_id, str(values.get("status", "")), via="screen")
        except BcartError as exc:
            session.flashes.append(("error", exc.message))
        else:
            session.flashes.append(("success", "対応状況を更新しました。"))
        return RedirectResponse(f"/order/{order_id}", status_code=303)

    @app.get("/order/{order_id}/document/{kind}", response_model=None)
    async def document(request: Request, order_id: int, kind: str) -> Response:
        session = sessions.current(request)
        if session is None:
            return login_redirect(here(request))
        order = store().orders.get(order_id)
        if order is None:
            return not_found(request, session, order_id)
        if kind not in DOCUMENTS:
            return render(request, "message.html", 404, session=session, title="帳票が見つかりません",
                          message="指定された帳票はありません。")
        state.world.record("bcart", "document", order_id=order_id, kind=kind)
        filename = f"{kind}_{order.code}.pdf"
        return Response(document_pdf(store(), order, kind), media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    # --- 出荷一覧 and 出荷実績インポート ------------------------------------------------------------
    @app.get("/logistics", response_model=None)
    async def logistics_list(request: Request, status: str = "") -> Response:
        session = sessions.current(request)
        if session is None:
            return login_redirect(here(request))
        rows = sorted(store().logistics.values(), key=lambda lg: lg.id, reverse=True)
        if status:
            rows = [lg for lg in rows if lg.status == status]
        return render(request, "logistics_list.html", session=session, rows=rows, orders=store().orders,
                      statuses=SHIPMENT_STATUSES, status=status)

    @app.get("/logistics/import", response_model=None)
    async def import_form(request: Request) -> Response:
        session = sessions.current(request)
        if session is None:
            return login_redirect(here(request))
        return render(request, "import.html", session=session, csrf=session.csrf, error=None)

    @app.post("/logistics/import", response_model=None)
    async def import_upload(request: Request) -> Response:
        session = sessions.current(request)
        if session is None:
            return login_redirect("/logistics/import")
        values = await form_of(request, session)
        if values is None:
            return forbidden(request, session)
        upload = values.get("csv_file")
        if upload is None or isinstance(upload, str | list) or not upload.filename:
            return render(request, "import.html", 400, session=session, csrf=session.csrf,
                          error="CSVファイルを選択してください。")
        raw = await upload.read()
        record = store().import_shipping_csv(upload.filename, raw)
        return render(request, "import_result.html", 400 if record.error else 200, session=session,
                      record=record, errors=sum(1 for r in record.results if not r.ok))

    return app
