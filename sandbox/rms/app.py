"""Sandbox Rakuten RMS: Rakuten's merchant back office, in Japanese as the real one is.

Screens (all behind an R-Login style login; a missing or expired session redirects to
``/login?next=…``):

- ``/login`` …                             sign-in in two stages with notices (sandbox/rms/login.py)
- ``/rms/order``                           受注一覧, newest first
- ``/rms/order/{order_number}``            受注詳細 — what the ticket's "Purchase History" link opens:
  基本情報, 注文確認 (only while 注文確認待ち, behind a confirm dialog), メール送信, 注文者情報,
  送付先情報, 商品, 発送情報 (the 発送明細 rows — 配送会社, 発送日, お荷物伝票番号, 編集 — and a form to
  add one: 発送明細を追加), メール送信履歴
- ``/rms/order/{order_number}/shipping/{detail_id}``  発送明細の編集 → 更新 (a blank overwrites the value)
- ``/rms/order/{order_number}/mail``       メールテンプレートの選択 → 次へ
- ``/rms/order/{order_number}/mail/preview?template=KEY``  editable fields + body preview → 送信
- unknown order → a 404 page in Japanese

Every POST carries a hidden ``csrf_token`` checked against the session (the login form uses a
double-submit cookie). A POST without a valid session changes nothing and redirects to the login
page with ``next`` set to the order page.

Sessions live in this app's memory, keyed by a random cookie. They end when the world is reset,
after ``SESSION_IDLE`` of *virtual* time without a request, at logout, and — fault knob
``expire_sessions`` — all at once at the next request.

``hide_elements`` names (``POST /admin/faults {"system": "rms", "hide_elements": [...]}``); each
named element is simply not rendered, as on a page that changed:

    login_button      次へ button of stage 1 (R-Login)
    member_login_button  ログイン button of stage 2 (楽天会員)
    notice_button     確認しました / 次へ on a notice
    order_status      the 注文ステータス value on the order page
    items_table       the 商品 table
    confirm_button    注文確認
    send_mail_button  メール送信
    shipping_rows     the 発送明細 table
    shipping_form     the form that adds a 発送明細
    mail_history      the メール送信履歴 table
    template_list     the template radio buttons on the template choice page
    next_button       次へ
    preview_fields    the editable fields on the preview page
    send_button       送信

``rename_labels`` (``{"system": "rms", "rename_labels": {"次へ": "進む"}}``) shows buttons and field
labels under another name, as after an RMS release.

Admin extras (``admin_router``): the sign-in knobs and counts (sandbox/rms/login.py), and
``GET /admin/rms/orders/{order_number}``, everything the order page shows (buyer details and
発送明細 rows included), for tests to compare a page with the truth.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from sandbox.catalog import RMS_CARRIERS, RMS_TEMPLATES
from sandbox.faults import install_faults
from sandbox.rms.login import NOTICES, LoginFlow, LoginFlows, Stage, admin_routes, ledger
from sandbox.world import JST, BossState, RakutenOrder, ShippingRow, World, render_mail_body, shipping_rows_state

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from sandbox.server import SandboxState

HERE = Path(__file__).resolve().parent.parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
STATIC_DIR = HERE / "static"

SESSION_COOKIE = "rms_session"
LOGIN_CSRF_COOKIE = "rms_login_csrf"
FLOW_COOKIE = "rms_login_flow"
SESSION_IDLE = timedelta(hours=12)
"""Virtual time without a request after which R-Login asks for the password again."""

SHOP_NAME = "Kuroko SIMストア"
MAX_SHIPPING_ROWS = 20
"""発送明細 per order (RMS's limit per basket)."""
MAIL_FIELDS = {
    "thank_you": ["order_number"],
    "shipping_jm": ["order_number", "ship_date", "carrier", "tracking_number"],
    "shipping_js": ["order_number", "ship_date", "carrier", "tracking_number"],
}
FIELD_LABELS = {
    "order_number": "受注番号",
    "ship_date": "発送日",
    "carrier": "配送会社",
    "tracking_number": "お荷物伝票番号",
}
STATUS_CLASS = {
    "注文確認待ち": "wait",
    "発送待ち": "ready",
    "発送後": "shipped",
    "完了": "done",
    "キャンセル確定": "cancel",
}


@dataclass
class RmsSession:
    user: str
    csrf: str
    world: World
    last_seen: datetime
    flashes: list[tuple[str, str]] = field(default_factory=list)
    """(kind, message) shown once on the next order page: kind is "success" or "error"."""


class Sessions:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.by_token: dict[str, RmsSession] = {}

    def open(self, user: str) -> tuple[str, RmsSession]:
        world = self.state.world
        token = secrets.token_urlsafe(24)
        session = RmsSession(user=user, csrf=secrets.token_urlsafe(24), world=world, last_seen=world.now())
        self.by_token[token] = session
        return token, session

    def current(self, request: Request) -> RmsSession | None:
        token = request.cookies.get(SESSION_COOKIE)
        session = self.by_token.get(token or "")
        if session is None:
            return None
        world = self.state.world
        if session.world is not world or world.now() - session.last_seen > SESSION_IDLE:
            self.by_token.pop(token or "", None)
            return None
        session.last_seen = world.now()
        return session

    def close(self, request: Request) -> None:
        self.by_token.pop(request.cookies.get(SESSION_COOKIE) or "", None)


# --- formatting --------------------------------------------------------------------------------
def jst(moment: datetime) -> str:
    return moment.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S")


def yen(amount: int) -> str:
    return f"{amount:,}"


TEMPLATES.env.filters["jst"] = jst
TEMPLATES.env.filters["yen"] = yen


def same(given: str, expected: str) -> bool:
    """Constant-time comparison that also takes non-ASCII input (a Japanese user id)."""
    return secrets.compare_digest(given.encode(), expected.encode())


def safe_next(target: str | None) -> str:
    """Only a path on this site: never an absolute or scheme-relative URL."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/rms/order"
    return target


def login_redirect(next_path: str) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(next_path, safe='/')}", status_code=303)


def mail_subject(template_key: str, order_number: str) -> str:
    """The subject as world.send_rms_mail will write it."""
    return f"【楽天市場】{RMS_TEMPLATES[template_key]}（受注番号：{order_number}）"


def preview_html(template_key: str, order: RakutenOrder, fields: dict[str, str]) -> Markup:
    """The mail body with each editable value in a ``<span data-field>`` the page's script updates."""
    marks = {k: f"\x00{k}\x00" for k in MAIL_FIELDS[template_key]}
    text = str(escape(render_mail_body(template_key, order, marks)))
    for key in marks:
        value = escape(fields.get(key, ""))
        text = text.replace(f"\x00{key}\x00", f'<span class="field" data-field="{key}">{value}</span>')
    return Markup(text)


def parse_date(text: str) -> date | None:
    for fmt in ("%Y-%m-%d", "%Y/%m/%d"):
        try:
            return datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    return None


def order_facts(world: World, order: RakutenOrder) -> dict[str, Any]:
    """Everything the order page shows, as data (admin API)."""
    b = order.buyer
    return {
        "order_number": order.order_number,
        "placed_at": order.placed_at.isoformat(),
        "status": order.rms_status(world.now()),
        "buyer": {"name": b.name, "kana": b.kana, "email": b.email, "phone": b.phone,
                  "postal_code": b.postal_code, "prefecture": b.prefecture, "city": b.city,
                  "address": b.address},
        "items": [{"sku": i.sku, "name": i.name, "quantity": i.quantity, "unit_price_yen": i.price_yen}
                  for i in order.items],
        "total_yen": order.total_yen,
        "shipping": {"company": order.shipping_company,
                     "date": order.shipping_date.isoformat() if order.shipping_date else None,
                     "tracking_number": order.tracking_number},
        "shipping_rows": shipping_rows_state(order),
        "mails": [{"mail_id": m.mail_id, "template": m.template, "subject": m.subject,
                   "sent_at": m.sent_at.isoformat(), "fields": m.fields, "body": m.body}
                  for m in order.mails],
    }


DEMO_USER = "rms-demo"
DEMO_PASSWORD = "rms-demo-password"
"""The one R-Login this RMS accepts (the sandbox's own; `SandboxAdmin.robot_env()` hands it to the robot)."""
DEMO_MEMBER_USER = "rakuten-member-demo"
DEMO_MEMBER_PASSWORD = "rakuten-member-demo-password"
"""The one 楽天会員 login of stage 2 (handed over the same way)."""


def demo_credentials() -> tuple[str, str]:
    return DEMO_USER, DEMO_PASSWORD


def admin_router(state: SandboxState) -> APIRouter:
    router = APIRouter()
    admin_routes(router, lambda: state.world)

    @router.get("/admin/rms/orders/{order_number}")
    async def rms_order(order_number: str) -> dict[str, Any]:
        order = state.world.orders.get(order_number)
        if order is None:
            raise HTTPException(404, f"no order {order_number}")
        return order_facts(state.world, order)

    return router


def create_app(state: SandboxState) -> FastAPI:
    app = FastAPI(title="Rakuten RMS (sandbox)", docs_url=None, redoc_url=None, openapi_url=None)
    install_faults(app, state, "rms")
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    sessions = Sessions(state)
    flows = LoginFlows()
    demo_user, demo_password = demo_credentials()
    member_user, member_password = DEMO_MEMBER_USER, DEMO_MEMBER_PASSWORD

    @app.middleware("http")
    async def expire_sessions(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        knobs = state.world.faults["rms"]
        if knobs.expire_sessions and not request.url.path.startswith("/static"):
            sessions.by_token.clear()
            flows.by_token.clear()
            knobs.expire_sessions = False
        return await call_next(request)

    def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        world = state.world
        context.setdefault("session", None)
        renamed = dict(world.faults["rms"].rename_labels)
        context.update(
            label=lambda text: renamed.get(text, text),
            hidden=set(world.faults["rms"].hide_elements),
            now=world.now(),
            shop_name=SHOP_NAME,
            status_class=STATUS_CLASS,
        )
        return TEMPLATES.TemplateResponse(request, f"rms/{name}", context, status_code=status_code)

    def find_order(order_number: str) -> RakutenOrder | None:
        return state.world.orders.get(order_number)

    def not_found(request: Request, session: RmsSession, order_number: str) -> HTMLResponse:
        return render(request, "not_found.html", 404, session=session, order_number=order_number)

    async def checked_form(request: Request, session: RmsSession) -> dict[str, str] | None:
        form = await request.form()
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        if not same(values.get("csrf_token", ""), session.csrf):
            return None
        return values

    def forbidden(request: Request, session: RmsSession | None) -> HTMLResponse:
        return render(request, "forbidden.html", 403, session=session)

    def opened(request: Request, order_number: str, login_to: str) -> tuple[RmsSession, RakutenOrder] | Response:
        """A page of one order: the session and the order, or the login page / 受注が見つかりません."""
        session = sessions.current(request)
        if session is None:
            return login_redirect(login_to)
        order = find_order(order_number)
        if order is None:
            return not_found(request, session, order_number)
        return session, order

    async def posted(request: Request, order_number: str,
                     ) -> tuple[RmsSession, RakutenOrder, dict[str, str]] | Response:
        """A form posted on one order: session, CSRF token and order checked, in that order. A post
        without a session changes nothing and goes to the login page (then back to the order)."""
        session = sessions.current(request)
        if session is None:
            return login_redirect(f"/rms/order/{order_number}")
        values = await checked_form(request, session)
        if values is None:
            return forbidden(request, session)
        order = find_order(order_number)
        if order is None:
            return not_found(request, session, order_number)
        return session, order, values

    def order_view(request: Request, session: RmsSession, order: RakutenOrder, *, status_code: int = 200,
                   flashes: list[tuple[str, str]] | None = None, shipping_error: str | None = None) -> HTMLResponse:
        return render(
            request, "order.html", status_code, session=session, order=order, flashes=flashes or [],
            status=order.rms_status(state.world.now()), carriers=RMS_CARRIERS, shipping_error=shipping_error,
            can_confirm=order.confirmed_at is None and order.boss_state is not BossState.CANCELLED,
        )

    # --- login (sandbox/rms/login.py) ------------------------------------------------------
    @app.get("/", response_model=None)
    async def home() -> RedirectResponse:
        return RedirectResponse("/rms/order", status_code=303)

    def stage_one(request: Request, next_path: str, *, user: str = "", error: str | None = None,
                  status_code: int = 200) -> HTMLResponse:
        token = secrets.token_urlsafe(24)
        response = render(request, "login.html", status_code, next=next_path, csrf=token, error=error, user=user)
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="lax")
        return response

    def flow_of(request: Request, stage: str) -> LoginFlow | None:
        flow = flows.get(request.cookies.get(FLOW_COOKIE), state.world)
        return flow if flow is not None and flow.stage == stage else None

    def to_stage(path: str, flow: LoginFlow, token: str | None = None) -> RedirectResponse:
        response = RedirectResponse(path, status_code=303)
        if token is not None:
            response.set_cookie(FLOW_COOKIE, token, httponly=True, samesite="lax")
        return response

    def blocked(flow: LoginFlow, kind: str, path: str, token: str | None = None) -> RedirectResponse:
        flow.stage, flow.blocked_by = "blocked", kind
        ledger(state.world).blocked[kind] += 1
        state.world.record("rms", "login_blocked", page=kind, user=flow.user)
        return to_stage(path, flow, token)

    def refused_submission(stage: Stage, user: str) -> bool:
        """Count a refused submission; True when it locked the account."""
        book = ledger(state.world)
        book.refused[stage] += 1
        book.failures_in_a_row += 1
        state.world.record("rms", "login_refused", stage=stage, user=user)
        if book.failures_in_a_row >= book.knobs.lock_after:
            book.knobs.locked = True
            state.world.record("rms", "account_locked", user=user)
        return book.knobs.locked

    def submitted(stage: Stage, user: str) -> None:
        ledger(state.world).submissions[stage] += 1
        state.world.record("rms", "login_submitted", stage=stage, user=user)

    @app.get("/login", response_model=None)
    async def login_form(request: Request, next: str = "/rms/order") -> HTMLResponse:
        return stage_one(request, safe_next(next))

    @app.post("/login", response_model=None)
    async def login(request: Request) -> Response:
        """Stage 1: R-Login ID and パスワード → 次へ."""
        form = await request.form()
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        next_path = safe_next(values.get("next"))
        cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not cookie_token or not same(values.get("csrf_token", ""), cookie_token):
            return forbidden(request, None)
        user = values.get("user", "").strip()
        password = values.get("password", "")
        submitted("rlogin", user)
        book = ledger(state.world)
        flow = LoginFlow(world=state.world, stage="member", next=next_path, user=user)
        if book.knobs.locked:
            return blocked(flow, "locked", "/login/locked", flows.start(flow))
        if not (same(user, demo_user) and same(password, demo_password)):
            if refused_submission("rlogin", user):
                return blocked(flow, "locked", "/login/locked", flows.start(flow))
            return stage_one(request, next_path, user=user, status_code=401,
                             error="R-Login IDまたはパスワードが正しくありません。")
        book.failures_in_a_row = 0
        token = flows.start(flow)
        if book.knobs.password_expired == "rlogin":
            flow.expired_stage = "rlogin"
            return blocked(flow, "password_change", "/login/password-change", token)
        response = to_stage("/login/member", flow, token)
        response.delete_cookie(LOGIN_CSRF_COOKIE)
        return response

    @app.get("/login/member", response_model=None)
    async def member_form(request: Request) -> Response:
        flow = flow_of(request, "member")
        if flow is None:
            return login_redirect("/rms/order")
        return render(request, "login_member.html", csrf=flow.csrf, error=None, user="")

    @app.post("/login/member", response_model=None)
    async def member_login(request: Request) -> Response:
        """Stage 2: 楽天会員 ユーザID and パスワード → ログイン."""
        flow = flow_of(request, "member")
        if flow is None:
            return login_redirect("/rms/order")
        form = await request.form()
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        if not same(values.get("csrf_token", ""), flow.csrf):
            return forbidden(request, None)
        user = values.get("user", "").strip()
        password = values.get("password", "")
        submitted("member", user)
        book = ledger(state.world)
        if book.knobs.locked:
            return blocked(flow, "locked", "/login/locked")
        if not (same(user, member_user) and same(password, member_password)):
            if refused_submission("member", user):
                return blocked(flow, "locked", "/login/locked")
            return render(request, "login_member.html", 401, csrf=flow.csrf, user=user,
                          error="ユーザIDまたはパスワードが正しくありません。")
        book.failures_in_a_row = 0
        if book.knobs.password_expired == "member":
            flow.expired_stage = "member"
            return blocked(flow, "password_change", "/login/password-change")
        if book.knobs.confirmation_code:
            return blocked(flow, "verify", "/login/verify")
        flow.stage, flow.notices = "notice", book.knobs.notices
        return finish(request, flow) if flow.notices == 0 else to_stage("/login/notice", flow)

    def finish(request: Request, flow: LoginFlow) -> Response:
        """The last notice acknowledged: a session, and the page first asked for."""
        flows.end(request.cookies.get(FLOW_COOKIE))
        session_token, _ = sessions.open(flow.user)
        ledger(state.world).full_logins += 1
        state.world.record("rms", "login", user=flow.user)
        response = RedirectResponse(flow.next, status_code=303)
        response.set_cookie(SESSION_COOKIE, session_token, httponly=True, samesite="lax")
        response.delete_cookie(FLOW_COOKIE)
        return response

    @app.get("/login/notice", response_model=None)
    async def notice(request: Request) -> Response:
        flow = flow_of(request, "notice")
        if flow is None:
            return login_redirect("/rms/order")
        title, text = NOTICES[flow.acknowledged % len(NOTICES)]
        button = "確認しました" if flow.acknowledged == 0 else "次へ"
        return render(request, "login_notice.html", csrf=flow.csrf, title=title, text=text, button=button,
                      number=flow.acknowledged + 1, total=flow.notices)

    @app.post("/login/notice", response_model=None)
    async def acknowledge(request: Request) -> Response:
        flow = flow_of(request, "notice")
        if flow is None:
            return login_redirect("/rms/order")
        values = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        if not same(values.get("csrf_token", ""), flow.csrf):
            return forbidden(request, None)
        flow.acknowledged += 1
        state.world.record("rms", "notice_acknowledged", number=flow.acknowledged)
        if flow.acknowledged >= flow.notices:
            return finish(request, flow)
        return to_stage("/login/notice", flow)

    def blocking_page(kind: str, template: str) -> None:
        async def show(request: Request) -> Response:
            flow = flow_of(request, "blocked")
            if flow is None or flow.blocked_by != kind:
                return login_redirect("/rms/order")
            return render(request, template, csrf=flow.csrf, expired_stage=flow.expired_stage, error=None)

        async def post(request: Request) -> Response:
            """Whatever is typed here is counted (a robot must never) and changes nothing."""
            flow = flow_of(request, "blocked")
            ledger(state.world).blocking_page_posts += 1
            state.world.record("rms", "blocking_page_posted", page=kind)
            if flow is None or flow.blocked_by != kind:
                return login_redirect("/rms/order")
            return render(request, template, 400, csrf=flow.csrf, expired_stage=flow.expired_stage,
                          error="（サンドボックス）この画面での操作は受け付けていません。")

        path = {"password_change": "/login/password-change", "verify": "/login/verify",
                "locked": "/login/locked"}[kind]
        app.add_api_route(path, show, methods=["GET"], response_model=None)
        app.add_api_route(path, post, methods=["POST"], response_model=None)

    blocking_page("password_change", "login_password_change.html")
    blocking_page("verify", "login_verify.html")
    blocking_page("locked", "login_locked.html")

    @app.get("/logout", response_model=None)
    async def logout(request: Request) -> RedirectResponse:
        sessions.close(request)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    # --- orders --------------------------------------------------------------------------
    @app.get("/rms/order", response_model=None)
    async def order_list(request: Request, status: str = "") -> Response:
        session = sessions.current(request)
        if session is None:
            return login_redirect(str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""))
        world = state.world
        orders = sorted(world.orders.values(), key=lambda o: o.placed_at, reverse=True)
        rows = [(o, o.rms_status(world.now())) for o in orders]
        counts: dict[str, int] = {}
        for _, s in rows:
            counts[s] = counts.get(s, 0) + 1
        if status:
            rows = [(o, s) for o, s in rows if s == status]
        return render(request, "order_list.html", session=session, rows=rows, counts=counts, status=status)

    @app.get("/rms/order/{order_number}", response_model=None)
    async def order_page(request: Request, order_number: str) -> Response:
        found = opened(request, order_number, request.url.path)
        if isinstance(found, Response):
            return found
        session, order = found
        flashes, session.flashes = session.flashes, []
        return order_view(request, session, order, flashes=flashes)

    @app.post("/rms/order/{order_number}/confirm", response_model=None)
    async def confirm(request: Request, order_number: str) -> Response:
        found = await posted(request, order_number)
        if isinstance(found, Response):
            return found
        session, order, _ = found
        already = order.confirmed_at is not None
        state.world.confirm_order_in_rms(order_number)
        if already:
            session.flashes.append(("error", "この注文はすでに注文確認済みです。"))
        else:
            session.flashes.append(("success", "注文確認を行いました。"))
        return RedirectResponse(f"/rms/order/{order_number}", status_code=303)

    def shipping_values(values: dict[str, str]) -> tuple[str | None, date | None, str | None, list[str]]:
        """The three values of a 発送明細 as sent. A blank value is kept blank — as on the real RMS, it
        overwrites what was there — but a value that is not blank must be well formed."""
        company = values.get("shipping_company", "").strip()
        date_text = values.get("shipping_date", "").strip()
        tracking = values.get("tracking_number", "").strip()
        ship_date = parse_date(date_text) if date_text else None
        errors = []
        if not (company or date_text or tracking):
            errors.append("配送会社・発送日・お荷物伝票番号のいずれかを入力してください。")
        if company and company not in RMS_CARRIERS:
            errors.append("配送会社を一覧から選択してください。")
        if date_text and ship_date is None:
            errors.append("発送日を正しく入力してください（例：2026-11-20）。")
        if tracking and not all(c.isascii() and (c.isalnum() or c == "-") for c in tracking):
            errors.append("お荷物伝票番号は半角英数字とハイフンで入力してください。")
        return company or None, ship_date, tracking or None, errors

    @app.post("/rms/order/{order_number}/shipping", response_model=None)
    async def add_shipping(request: Request, order_number: str) -> Response:
        """発送明細を追加: one more row (one per parcel)."""
        found = await posted(request, order_number)
        if isinstance(found, Response):
            return found
        session, order, values = found
        company, ship_date, tracking, errors = shipping_values(values)
        if errors:
            return order_view(request, session, order, status_code=400, shipping_error=" ".join(errors))
        if len(order.shipping_rows) >= MAX_SHIPPING_ROWS:
            return order_view(request, session, order, status_code=400,
                              shipping_error=f"発送明細は{MAX_SHIPPING_ROWS}件まで登録できます。")
        state.world.add_shipping_row(order_number, company, ship_date, tracking)
        session.flashes.append(("success", "発送明細を追加しました。"))
        return RedirectResponse(f"/rms/order/{order_number}", status_code=303)

    def find_row(order: RakutenOrder, detail_id: str) -> ShippingRow | None:
        return next((r for r in order.shipping_rows if r.detail_id == detail_id), None)

    def edit_view(request: Request, session: RmsSession, order: RakutenOrder, row: ShippingRow,
                  values: dict[str, str] | None = None, error: str | None = None,
                  status_code: int = 200) -> HTMLResponse:
        shown = values if values is not None else {
            "shipping_company": row.company or "", "shipping_date": row.date.isoformat() if row.date else "",
            "tracking_number": row.tracking_number or ""}
        return render(request, "shipping_edit.html", status_code, session=session, order=order, row=row,
                      values=shown, carriers=RMS_CARRIERS, error=error)

    @app.get("/rms/order/{order_number}/shipping/{detail_id}", response_model=None)
    async def shipping_edit(request: Request, order_number: str, detail_id: str) -> Response:
        found = opened(request, order_number, request.url.path)
        if isinstance(found, Response):
            return found
        session, order = found
        row = find_row(order, detail_id)
        if row is None:
            return not_found(request, session, order_number)
        return edit_view(request, session, order, row)

    @app.post("/rms/order/{order_number}/shipping/{detail_id}", response_model=None)
    async def shipping_update(request: Request, order_number: str, detail_id: str) -> Response:
        """The row's three values overwritten with what was sent: a blank overwrites with nothing."""
        found = await posted(request, order_number)
        if isinstance(found, Response):
            return found
        session, order, values = found
        row = find_row(order, detail_id)
        if row is None:
            return not_found(request, session, order_number)
        company, ship_date, tracking, errors = shipping_values(values)
        errors = [e for e in errors if "いずれか" not in e]  # an edit may blank a row: RMS stores it so
        if errors:
            return edit_view(request, session, order, row, values, " ".join(errors), 400)
        state.world.update_shipping_row(order_number, detail_id, company, ship_date, tracking)
        session.flashes.append(("success", "発送明細を更新しました。"))
        return RedirectResponse(f"/rms/order/{order_number}", status_code=303)

    # --- mail ----------------------------------------------------------------------------
    @app.get("/rms/order/{order_number}/mail", response_model=None)
    async def mail_choice(request: Request, order_number: str) -> Response:
        found = opened(request, order_number, request.url.path)
        if isinstance(found, Response):
            return found
        session, order = found
        return render(request, "mail_choose.html", session=session, order=order, templates=RMS_TEMPLATES,
                      error=None)

    @app.get("/rms/order/{order_number}/mail/preview", response_model=None)
    async def mail_preview(request: Request, order_number: str, template: str = "") -> Response:
        found = opened(request, order_number, f"/rms/order/{order_number}/mail")
        if isinstance(found, Response):
            return found
        session, order = found
        if template not in RMS_TEMPLATES:
            return render(request, "mail_choose.html", 400, session=session, order=order,
                          templates=RMS_TEMPLATES, error="送信するメールテンプレートを選択してください。")
        defaults = {
            "order_number": order.order_number,
            "ship_date": (order.shipping_date or state.world.clock.today_jst()).isoformat(),
            "carrier": order.shipping_company or "",
            "tracking_number": order.tracking_number or "",
        }
        fields = {k: defaults[k] for k in MAIL_FIELDS[template]}
        return mail_preview_page(request, session, order, template, fields, None)

    def mail_preview_page(request: Request, session: RmsSession, order: RakutenOrder, template: str,
                          fields: dict[str, str], error: str | None, status_code: int = 200) -> HTMLResponse:
        return render(
            request, "mail_preview.html", status_code, session=session, order=order, template=template,
            template_name=RMS_TEMPLATES[template], fields=fields, labels=FIELD_LABELS, error=error,
            subject=mail_subject(template, fields.get("order_number", "")),
            body=preview_html(template, order, fields),
        )

    @app.post("/rms/order/{order_number}/mail/send", response_model=None)
    async def mail_send(request: Request, order_number: str) -> Response:
        found = await posted(request, order_number)
        if isinstance(found, Response):
            return found
        session, order, values = found
        template = values.get("template", "")
        if template not in RMS_TEMPLATES:
            return render(request, "mail_choose.html", 400, session=session, order=order,
                          templates=RMS_TEMPLATES, error="送信するメールテンプレートを選択してください。")
        fields = {k: values.get(k, "").strip() for k in MAIL_FIELDS[template]}
        missing = [FIELD_LABELS[k] for k, v in fields.items() if not v]
        errors = [f"{'・'.join(missing)}を入力してください。"] if missing else []
        if fields.get("ship_date") and parse_date(fields["ship_date"]) is None:
            errors.append("発送日は YYYY-MM-DD の形式で入力してください。")
        if errors:
            return mail_preview_page(request, session, order, template, fields, " ".join(errors), 400)
        mail = state.world.send_rms_mail(order_number, template, fields)
        session.flashes.append(("success", f"メールを送信しました。（メールID：{mail.mail_id}）"))
        return RedirectResponse(f"/rms/order/{order_number}", status_code=303)

    return app
