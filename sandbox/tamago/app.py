"""Sandbox たまごリピート: TEMONA's subscription-cart admin, in Japanese, server-rendered.

Screens (all behind a login; a missing or expired session redirects to ``/login?next=…``):

- ``/login``                      ログイン (ログインID + パスワード)
- ``/orders``                     注文検索: 注文番号, 「要対応のみ」, 20 results a page (前へ / 次へ), newest first
- ``/orders/{order_id}``          注文詳細: 注文情報 (status, 要対応, 支払方法, 発送予定日, お届け間隔, 送料,
  定期会員割引, 合計), 要対応コメント (the reason messages), 注文者情報 (with 「ブラックリスト客」),
  商品, 定期情報, and 要対応設定: one form (今回注文分) for a normal order, two (今回注文分, 定期全体)
  for a subscription order, each with 対応状況 (設定/解除), 対応日, 対応コメント and 「要対応を更新する」
- ``/orders/{order_id}/edit``     注文修正: 送料, 発送予定日, お届け間隔 (subscription orders), 定期会員割引
  → 「更新する」
- ``/customers``                  顧客検索 by 電話番号, 郵便番号, 氏名 (every given field must match): ブラックリスト
  flag and the customer's subscriptions (継続中 / 停止中)
- an unknown (or deleted) order → 「注文が見つかりません」 (404)

Every POST carries a hidden ``csrf_token`` checked against the session (the login form: a
double-submit cookie). A POST without a valid session changes nothing and goes to the login page
with ``next`` set to the order page. Sessions end on reset, after ``SESSION_IDLE`` of virtual time,
at logout, and — fault ``expire_sessions`` — all at once at the next request.

``hide_elements`` (``POST /admin/faults {"system": "tamago", ...}``) leaves out, as on a page that
changed: ``login_button``, ``search_table``, ``next_page``, ``order_status``, ``reasons``,
``items_table``, ``flag_form``, ``flag_form_subscription``, ``flag_form_fields`` (the inputs and
button of both 要対応設定 forms), ``edit_button``, ``edit_form``,
``update_button``, ``customer_table``.

Labels can be renamed (``POST /admin/tamago/labels {"label": "要対応を更新する", "to": "…"}``): every
label on these screens goes through ``L()``.

Admin knobs (``admin_router``), under ``/admin/tamago/``: see README, 'Sandbox admin API'.
"""

from __future__ import annotations

import math
import secrets
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

from sandbox.faults import install_faults
from sandbox.tamago.store import (
    AMOUNT_MISMATCH,
    BLACKLIST_CANDIDATE,
    BLACKLISTED,
    DISCOUNT_CANDIDATE,
    FLAG_RELEASED,
    FLAG_SET,
    INTERVALS,
    PAYMENT_FAILED,
    PAYMENTS,
    REASON_KEYS,
    REMOTE_ISLAND,
    Customer,
    Order,
    TamagoError,
    TamagoStore,
    normalise,
)
from sandbox.world import JST, World

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from sandbox.server import SandboxState

HERE = Path(__file__).resolve().parent.parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
STATIC_DIR = HERE / "static"

SESSION_COOKIE = "tamago_session"
LOGIN_CSRF_COOKIE = "tamago_login_csrf"
SESSION_IDLE = timedelta(hours=8)
"""Virtual time without a request after which たまご asks for the password again."""
PAGE_SIZE = 20
SHOP_NAME = "Kuroko SIMストア 定期便"

DEMO_USER = "tamago-demo"
DEMO_PASSWORD = "tamago-demo-password"
"""The one login this たまご accepts (the sandbox's own; `SandboxAdmin.robot_env()` hands it to the robot)."""

STATUS_CLASS = {"新規受付": "new", "与信NG": "ng", "発送準備中": "ready", "出荷済": "done"}


@dataclass
class TamagoSession:
    user: str
    csrf: str
    world: World
    last_seen: datetime
    flashes: list[tuple[str, str]] = field(default_factory=list)


class Sessions:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.by_token: dict[str, TamagoSession] = {}

    def open(self, user: str) -> str:
        world = self.state.world
        token = secrets.token_urlsafe(24)
        self.by_token[token] = TamagoSession(user, secrets.token_urlsafe(24), world, world.now())
        return token

    def current(self, request: Request) -> TamagoSession | None:
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


# --- formatting ----------------------------------------------------------------------------------
def jst(moment: datetime) -> str:
    return moment.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S")


def yen(amount: int) -> str:
    return f"{amount:,}"


TEMPLATES.env.filters["tamago_jst"] = jst
TEMPLATES.env.filters["tamago_yen"] = yen


def same(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode(), expected.encode())


def safe_next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/orders"
    return target


def login_redirect(next_path: str) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(next_path, safe='/?=&')}", status_code=303)


def parse_date(text: str) -> date | None:
    for fmt in ("%Y-%m-%d", "%Y/%m/%d"):
        try:
            return datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    return None


# --- admin API -----------------------------------------------------------------------------------
class NewCustomer(BaseModel):
    name: str
    phone: str
    postal_code: str
    prefecture: str = "東京都"
    address: str = "新宿区西新宿2-8-1"
    kana: str = ""
    email: str = ""
    blacklisted: bool = False
    subscription: bool = Field(default=False, description="true: the customer already has a subscription")
    subscription_active: bool = True
    interval_days: int = 30


class CustomerPatch(BaseModel):
    blacklisted: bool


class NewSubscription(BaseModel):
    customer_id: str
    active: bool = True
    interval_days: int = 30
    past_orders: int = 1


class DiscountMatch(BaseModel):
    rule: str = Field(default="phone+postal_code", description="which fields match the buyer: phone+postal_code, "
                      "phone+name, postal_code+name")
    active: bool = True
    subscription: bool = True


class NewOrder(BaseModel):
    reason: str | None = Field(default=None, description=f"one of {', '.join(REASON_KEYS)}; data is made to fit")
    reasons: list[str] = Field(default_factory=list)
    customer_id: str | None = None
    customer: NewCustomer | None = None
    items: dict[str, int] | None = None
    payment_method: str | None = None
    subscription: bool = False
    subscription_id: str | None = None
    cycle: int = Field(default=1, description="a new subscription order's 定期回数 (earlier ones already shipped)")
    interval_days: int = 30
    shipping_fee: int | None = None
    ship_date: date | None = None
    ship_in_days: int | None = Field(default=None, description="発送予定日 = today + N (negative: overdue)")
    paid_amount: int | None = None
    comment: str = ""
    derive: bool = True
    blacklisted_match: bool = Field(default=True,
                                    description="blacklist_candidate: is the matching customer blacklisted")
    discount_matches: list[DiscountMatch] | None = Field(
        default=None, description="discount_candidate: the customers who match (default: one active subscriber)")


class LabelRename(BaseModel):
    label: str
    to: str


class TamagoSettings(BaseModel):
    blacklist_check: list[str]


FAMILY = [("佐藤", "サトウ"), ("鈴木", "スズキ"), ("高橋", "タカハシ"), ("田中", "タナカ"), ("伊藤", "イトウ"),
          ("渡辺", "ワタナベ"), ("山本", "ヤマモト"), ("中村", "ナカムラ"), ("小林", "コバヤシ"), ("加藤", "カトウ"),
          ("吉田", "ヨシダ"), ("山田", "ヤマダ"), ("松本", "マツモト"), ("井上", "イノウエ"), ("木村", "キムラ"),
          ("林", "ハヤシ"), ("清水", "シミズ"), ("山口", "ヤマグチ"), ("森", "モリ"), ("池田", "イケダ")]
GIVEN = [("翔太", "ショウタ"), ("陽菜", "ヒナ"), ("蓮", "レン"), ("結衣", "ユイ"), ("大輝", "ダイキ"),
         ("美咲", "ミサキ"), ("健一", "ケンイチ"), ("さくら", "サクラ"), ("拓海", "タクミ"), ("葵", "アオイ"),
         ("悠真", "ユウマ"), ("芽依", "メイ"), ("湊", "ミナト"), ("凛", "リン"), ("樹", "イツキ")]
MAINLAND = [("160", "東京都", "新宿区西新宿"), ("530", "大阪府", "大阪市北区梅田"),
            ("450", "愛知県", "名古屋市中村区名駅"),
            ("812", "福岡県", "福岡市博多区博多駅前"), ("980", "宮城県", "仙台市青葉区中央"),
            ("730", "広島県", "広島市中区基町"), ("060", "北海道", "札幌市中央区北一条西"),
            ("220", "神奈川県", "横浜市西区みなとみらい")]
ISLANDS = [("100-0101", "東京都", "大島町元町"), ("100-1401", "東京都", "八丈島八丈町大賀郷"),
           ("952-0011", "新潟県", "佐渡市両津夷"), ("894-0027", "鹿児島県", "奄美市名瀬末広町"),
           ("907-0004", "沖縄県", "石垣市登野城"), ("761-4121", "香川県", "小豆郡土庄町渕崎")]


def random_customer(world: World, *, island: bool = False) -> dict[str, Any]:
    """A made-up buyer (unique phone and postal code, so no rule matches by chance)."""
    rng = world.rng
    family, family_kana = rng.choice(FAMILY)
    given, given_kana = rng.choice(GIVEN)
    if island:
        postal, prefecture, city = rng.choice(ISLANDS)
    else:
        prefix, prefecture, city = rng.choice(MAINLAND)
        postal = f"{prefix}-{rng.randrange(0, 10000):04d}"
    return {
        "name": f"{family} {given}", "kana": f"{family_kana} {given_kana}",
        "phone": f"0{rng.choice([70, 80, 90])}-{rng.randrange(1000, 9999)}-{rng.randrange(1000, 9999)}",
        "postal_code": postal, "prefecture": prefecture,
        "address": f"{city}{rng.randrange(1, 9)}-{rng.randrange(1, 30)}-{rng.randrange(1, 20)}",
        "email": f"tamago{rng.randrange(10_000, 99_999)}@example.jp",
    }


def add_customer(store: TamagoStore, body: NewCustomer) -> Customer:
    customer = store.add_customer(name=body.name, phone=body.phone, postal_code=body.postal_code,
                                  prefecture=body.prefecture, address=body.address, kana=body.kana,
                                  email=body.email, blacklisted=body.blacklisted)
    if body.subscription:
        store.add_subscription(customer.customer_id, interval_days=body.interval_days,
                               active=body.subscription_active)
    return customer


def look_alike(world: World, buyer: Customer, fields: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Another customer who shares exactly ``fields`` with the buyer."""
    other = random_customer(world)
    while any(normalise(f, other[f]) == normalise(f, getattr(buyer, f))
              for f in ("name", "phone", "postal_code") if f not in fields):
        other = random_customer(world)
    for f in fields:
        other[f] = getattr(buyer, f)
    return other


def create_order(world: World, body: NewOrder) -> Order:
    """The admin's order: a customer (given, made, or made to fit the reason) and the order, flagged
    with the reason(s) asked for, the data made so that たまご's own rules agree."""
    store = world.tamago
    reasons = list(body.reasons) + ([body.reason] if body.reason else [])
    bad = [r for r in reasons if r not in REASON_KEYS]
    if bad:
        raise TamagoError(f"unknown reason(s) {', '.join(bad)}; known: {', '.join(REASON_KEYS)}")
    if body.customer_id:
        buyer = store.customer(body.customer_id)
    elif body.customer is not None:
        buyer = add_customer(store, body.customer)
    else:
        buyer = add_customer(store, NewCustomer(**random_customer(world, island=REMOTE_ISLAND in reasons)))
    if BLACKLISTED in reasons and not buyer.blacklisted:
        store.set_blacklisted(buyer.customer_id, True)
    if BLACKLIST_CANDIDATE in reasons:
        twin = look_alike(world, buyer, store.blacklist_check)
        store.add_customer(**twin, blacklisted=body.blacklisted_match)
    if DISCOUNT_CANDIDATE in reasons:
        for match in body.discount_matches if body.discount_matches is not None else [DiscountMatch()]:
            fields = match.rule.split("+")
            if sorted(fields) not in (["phone", "postal_code"], ["name", "phone"], ["name", "postal_code"]):
                raise TamagoError(f"unknown rule {match.rule!r}: phone+postal_code, phone+name or postal_code+name")
            other = store.add_customer(**look_alike(world, buyer, fields))
            if match.subscription:
                store.add_subscription(other.customer_id, active=match.active)
    subscription_id = body.subscription_id
    # A new order's earlier cycles are shipped; たまご決済失敗 flags an existing order (the ``cycle``-th).
    past = max(body.cycle, 1) - (0 if PAYMENT_FAILED in reasons else 1)
    if (body.subscription or PAYMENT_FAILED in reasons) and not subscription_id:
        subscription_id = store.add_subscription(buyer.customer_id, interval_days=body.interval_days,
                                                 past_orders=past).subscription_id
    payment = body.payment_method or ("NP後払い" if any(r.startswith("np_") or r == AMOUNT_MISMATCH
                                                        for r in reasons) else "クレジットカード")
    if payment not in PAYMENTS:
        raise TamagoError(f"unknown payment method {payment!r}; one of {', '.join(PAYMENTS)}")
    ship_date = body.ship_date
    if body.ship_in_days is not None:
        ship_date = store.today() + timedelta(days=body.ship_in_days)
    if PAYMENT_FAILED in reasons:
        # The order before the one that could not be created is the one flagged.
        assert subscription_id is not None
        order = store.fail_next_payment(subscription_id)
        for reason in reasons:
            if reason != PAYMENT_FAILED:
                store._raise(order, reason, comment=body.comment)
        return order
    kwargs: dict[str, Any] = {}
    if body.shipping_fee is not None:
        kwargs["shipping_fee"] = body.shipping_fee
    return store.place_order(
        buyer.customer_id, items=body.items, payment_method=payment, subscription_id=subscription_id,
        ship_date=ship_date, reasons=reasons, paid_amount=body.paid_amount, comment=body.comment,
        derive=body.derive, **kwargs,
    )


def admin_router(state: SandboxState) -> APIRouter:
    router = APIRouter()

    def store() -> TamagoStore:
        return state.world.tamago

    def refused(exc: TamagoError) -> HTTPException:
        return HTTPException(404 if str(exc).startswith("no ") else 400, str(exc))

    @router.post("/admin/tamago/customers")
    async def new_customer(body: NewCustomer) -> dict[str, Any]:
        try:
            return store().customer_state(add_customer(store(), body))
        except TamagoError as exc:
            raise refused(exc) from exc

    @router.get("/admin/tamago/customers")
    async def customers() -> list[dict[str, Any]]:
        return [store().customer_state(c) for c in store().customers.values()]

    @router.get("/admin/tamago/customers/{customer_id}")
    async def customer(customer_id: str) -> dict[str, Any]:
        try:
            return store().customer_state(store().customer(customer_id))
        except TamagoError as exc:
            raise refused(exc) from exc

    @router.patch("/admin/tamago/customers/{customer_id}")
    async def patch_customer(customer_id: str, body: CustomerPatch) -> dict[str, Any]:
        try:
            return store().customer_state(store().set_blacklisted(customer_id, body.blacklisted))
        except TamagoError as exc:
            raise refused(exc) from exc

    @router.post("/admin/tamago/subscriptions")
    async def new_subscription(body: NewSubscription) -> dict[str, Any]:
        try:
            sub = store().add_subscription(body.customer_id, interval_days=body.interval_days,
                                           active=body.active, past_orders=body.past_orders)
        except TamagoError as exc:
            raise refused(exc) from exc
        return store().subscription_state(sub)

    @router.post("/admin/tamago/orders")
    async def new_order(body: NewOrder) -> dict[str, Any]:
        try:
            return store().order_state(create_order(state.world, body))
        except TamagoError as exc:
            raise refused(exc) from exc

    @router.get("/admin/tamago/orders")
    async def orders(flagged: bool | None = None) -> list[dict[str, Any]]:
        return [store().order_state(o) for o in store().orders.values()
                if flagged is None or store().is_flagged(o) == flagged]

    @router.get("/admin/tamago/orders/{order_id}")
    async def order(order_id: str) -> dict[str, Any]:
        try:
            return store().order_state(store().get(order_id))
        except TamagoError as exc:
            raise refused(exc) from exc

    @router.delete("/admin/tamago/orders/{order_id}")
    async def delete_order(order_id: str) -> dict[str, str]:
        try:
            store().delete(order_id)
        except TamagoError as exc:
            raise refused(exc) from exc
        return {"deleted": order_id}

    @router.post("/admin/tamago/labels")
    async def rename_label(body: LabelRename) -> dict[str, str]:
        store().labels[body.label] = body.to
        return store().labels

    @router.delete("/admin/tamago/labels")
    async def restore_labels() -> dict[str, str]:
        store().labels.clear()
        return store().labels

    @router.post("/admin/tamago/settings")
    async def settings(body: TamagoSettings) -> dict[str, Any]:
        unknown = [f for f in body.blacklist_check if f not in ("name", "phone", "postal_code")]
        if unknown or not body.blacklist_check:
            raise HTTPException(400, "blacklist_check: one or more of name, phone, postal_code")
        store().blacklist_check = list(body.blacklist_check)
        return {"blacklist_check": store().blacklist_check}

    @router.get("/admin/tamago/state")
    async def snapshot() -> dict[str, Any]:
        return store().snapshot()

    return router


# --- the web app -----------------------------------------------------------------------------------
def create_app(state: SandboxState) -> FastAPI:
    app = FastAPI(title="たまごリピート (sandbox)", docs_url=None, redoc_url=None, openapi_url=None)
    install_faults(app, state, "tamago")
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    sessions = Sessions(state)

    @app.middleware("http")
    async def expire_sessions(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        knobs = state.world.faults["tamago"]
        if knobs.expire_sessions and not request.url.path.startswith("/static"):
            sessions.by_token.clear()
            knobs.expire_sessions = False
        return await call_next(request)

    def store() -> TamagoStore:
        return state.world.tamago

    def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        world = state.world
        labels = dict(world.tamago.labels)
        context.setdefault("session", None)
        context.setdefault("flashes", [])
        context.update(hidden=set(world.faults["tamago"].hide_elements), now=world.now(), shop_name=SHOP_NAME,
                       status_class=STATUS_CLASS, L=lambda text: labels.get(text, text))
        return TEMPLATES.TemplateResponse(request, f"tamago/{template}", context, status_code=status_code)

    def forbidden(request: Request, session: TamagoSession | None) -> HTMLResponse:
        return render(request, "forbidden.html", 403, session=session)

    def not_found(request: Request, session: TamagoSession, order_id: str) -> HTMLResponse:
        return render(request, "not_found.html", 404, session=session, order_id=order_id)

    async def form_of(request: Request) -> dict[str, str]:
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}

    def opened(request: Request, order_id: str) -> tuple[TamagoSession, Order] | Response:
        session = sessions.current(request)
        if session is None:
            return login_redirect(request.url.path)
        order = store().orders.get(order_id)
        if order is None:
            return not_found(request, session, order_id)
        return session, order

    async def posted(request: Request, order_id: str) -> tuple[TamagoSession, Order, dict[str, str]] | Response:
        session = sessions.current(request)
        if session is None:
            return login_redirect(f"/orders/{order_id}")
        values = await form_of(request)
        if not same(values.get("csrf_token", ""), session.csrf):
            return forbidden(request, session)
        order = store().orders.get(order_id)
        if order is None:
            return not_found(request, session, order_id)
        return session, order, values

    def order_view(request: Request, session: TamagoSession, order: Order, *, status_code: int = 200,
                   flashes: list[tuple[str, str]] | None = None) -> HTMLResponse:
        s = store()
        sub = s.subscription_of(order)
        return render(request, "order.html", status_code, session=session, order=order,
                      customer=s.customers[order.customer_id], subscription=sub, flagged=s.is_flagged(order),
                      flashes=flashes or [], FLAG_SET=FLAG_SET, FLAG_RELEASED=FLAG_RELEASED,
                      next_failed=bool(sub and sub.next_order_failed and sub.order_ids
                                       and sub.order_ids[-1] == order.order_id),
                      today=s.today(), overdue=s.is_overdue(order))

    def edit_view(request: Request, session: TamagoSession, order: Order, *, status_code: int = 200,
                  error: str | None = None) -> HTMLResponse:
        return render(request, "edit.html", status_code, session=session, order=order, intervals=INTERVALS,
                      error=error)

    # --- login ----------------------------------------------------------------------------------
    @app.get("/", response_model=None)
    async def home() -> RedirectResponse:
        return RedirectResponse("/orders", status_code=303)

    @app.get("/login", response_model=None)
    async def login_form(request: Request, next: str = "/orders") -> HTMLResponse:
        token = secrets.token_urlsafe(24)
        response = render(request, "login.html", next=safe_next(next), csrf=token, error=None, user="")
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="lax")
        return response

    @app.post("/login", response_model=None)
    async def login(request: Request) -> Response:
        values = await form_of(request)
        next_path = safe_next(values.get("next"))
        cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not cookie_token or not same(values.get("csrf_token", ""), cookie_token):
            return forbidden(request, None)
        user = values.get("user", "").strip()
        if not (same(user, DEMO_USER) and same(values.get("password", ""), DEMO_PASSWORD)):
            state.world.record("tamago", "login_refused", user=user)
            token = secrets.token_urlsafe(24)
            refused = render(request, "login.html", 401, next=next_path, csrf=token, user=user,
                             error="ログインIDまたはパスワードが正しくありません。")
            refused.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="lax")
            return refused
        session_token = sessions.open(user)
        state.world.record("tamago", "login", user=user)
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(SESSION_COOKIE, session_token, httponly=True, samesite="lax")
        response.delete_cookie(LOGIN_CSRF_COOKIE)
        return response

    @app.get("/logout", response_model=None)
    async def logout(request: Request) -> RedirectResponse:
        sessions.close(request)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    # --- 注文検索 ----------------------------------------------------------------------------------
    @app.get("/orders", response_model=None)
    async def order_search(request: Request, order_id: str = "", flagged: str = "", page: int = 1) -> Response:
        session = sessions.current(request)
        if session is None:
            query = f"?{request.url.query}" if request.url.query else ""
            return login_redirect("/orders" + query)
        s = store()
        found = sorted(s.orders.values(), key=lambda o: (o.placed_at, o.order_id), reverse=True)
        if order_id.strip():
            found = [o for o in found if o.order_id == order_id.strip()]
        if flagged:
            found = [o for o in found if s.is_flagged(o)]
        pages = max(1, math.ceil(len(found) / PAGE_SIZE))
        page = min(max(page, 1), pages)
        shown = found[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]

        def link(n: int) -> str:
            params = {k: v for k, v in {"order_id": order_id, "flagged": flagged}.items() if v}
            return "/orders?" + urlencode({**params, "page": n})

        rows = [(o, s.customers[o.customer_id], s.is_flagged(o)) for o in shown]
        return render(request, "orders.html", session=session, rows=rows, total=len(found), page=page,
                      pages=pages, order_id=order_id, flagged=bool(flagged),
                      prev_link=link(page - 1) if page > 1 else None,
                      next_link=link(page + 1) if page < pages else None)

    # --- 注文詳細 / 要対応設定 ------------------------------------------------------------------------
    @app.get("/orders/{order_id}", response_model=None)
    async def order_page(request: Request, order_id: str) -> Response:
        found = opened(request, order_id)
        if isinstance(found, Response):
            return found
        session, order = found
        flashes, session.flashes = session.flashes, []
        return order_view(request, session, order, flashes=flashes)

    @app.post("/orders/{order_id}/flag", response_model=None)
    async def update_flag(request: Request, order_id: str) -> Response:
        found = await posted(request, order_id)
        if isinstance(found, Response):
            return found
        session, order, values = found
        scope = values.get("scope", "order")
        label = "定期全体" if scope == "subscription" else "今回注文分"
        try:
            store().update_flag(order_id, scope, values.get("status", ""), parse_date(values.get("date", "")),
                                values.get("comment", "").strip())
        except TamagoError as exc:
            return order_view(request, session, order, status_code=400, flashes=[("error", f"{label}：{exc}")])
        session.flashes.append(("success", f"要対応設定（{label}）を更新しました。"))
        return RedirectResponse(f"/orders/{order_id}", status_code=303)

    # --- 注文修正 ----------------------------------------------------------------------------------
    @app.get("/orders/{order_id}/edit", response_model=None)
    async def edit_page(request: Request, order_id: str) -> Response:
        found = opened(request, order_id)
        if isinstance(found, Response):
            return found
        session, order = found
        return edit_view(request, session, order)

    @app.post("/orders/{order_id}/edit", response_model=None)
    async def edit(request: Request, order_id: str) -> Response:
        found = await posted(request, order_id)
        if isinstance(found, Response):
            return found
        session, order, values = found
        errors = []
        fee_text = values.get("shipping_fee", "").replace(",", "").strip()
        fee = int(fee_text) if fee_text.isdigit() else None
        if fee is None:
            errors.append("送料は0以上の数値で入力してください。")
        ship_date = parse_date(values.get("ship_date", ""))
        if ship_date is None:
            errors.append("発送予定日を正しく入力してください（例：2026-11-20）。")
        interval_text = values.get("interval_days", "")
        interval = int(interval_text) if interval_text.isdigit() else None
        if order.subscription_id and interval is None:
            errors.append("お届け間隔を一覧から選択してください。")
        discount = values.get("member_discount", "0") == "1"
        if errors:
            return edit_view(request, session, order, status_code=400, error=" ".join(errors))
        try:
            store().correct(order_id, shipping_fee=fee, ship_date=ship_date,
                            interval_days=interval if order.subscription_id else None, member_discount=discount)
        except TamagoError as exc:
            return edit_view(request, session, order, status_code=400, error=str(exc))
        session.flashes.append(("success", "注文を修正しました。"))
        return RedirectResponse(f"/orders/{order_id}", status_code=303)

    # --- 顧客検索 ----------------------------------------------------------------------------------
    @app.get("/customers", response_model=None)
    async def customer_search(request: Request, phone: str = "", postal_code: str = "", name: str = "",
                              search: str = "") -> Response:
        session = sessions.current(request)
        if session is None:
            query = f"?{request.url.query}" if request.url.query else ""
            return login_redirect("/customers" + query)
        s = store()
        error = None
        rows: list[tuple[Customer, list[Any]]] = []
        if search:
            if not (phone.strip() or postal_code.strip() or name.strip()):
                error = "検索条件を1つ以上入力してください。"
            else:
                rows = [(c, s.subscriptions_of(c.customer_id))
                        for c in s.search_customers(phone=phone, postal_code=postal_code, name=name)]
        return render(request, "customers.html", 400 if error else 200, session=session, rows=rows,
                      searched=bool(search) and not error, error=error, phone=phone, postal_code=postal_code,
                      name=name)

    return app


__all__ = ["DEMO_PASSWORD", "DEMO_USER", "admin_router", "create_app"]
