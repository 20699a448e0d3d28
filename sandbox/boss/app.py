"""BOSS, the company's own back office, as a server-rendered web app (English UI, the manual's labels).

Screens:
- ``/login`` — user ID and password (the sandbox's own demo login); ``?next=`` brings the user back.
- ``/orders`` — every order BOSS lists, on ONE long page, under a section heading per state
  (New Order, Confirmation to be, Shipping in Progress, Shipped, then Deleted and Cancelled at the
  bottom so they stay distinguishable). Staff find an order with Ctrl+F.
- ``/orders/{order_number}`` — state, state history, buyer, items, and two POST forms behind their
  own ``confirm()`` dialogs: ``Order Deletion`` (the one to use) and ``Order Cancellation`` (never,
  for the robot). Both disappear once the order is Deleted or Cancelled. An order BOSS does not list
  is a 404 page.

Every POST form carries a hidden CSRF token checked against the session. A missing or expired
session (idle longer than ``SESSION_IDLE``, in sandbox time) sends the browser to
``/login?next=<path>``.

Fault knobs (``world.faults["boss"]``): ``expire_sessions`` drops every session at the next request;
``hide_elements`` leaves out these named elements, to simulate a page that changed:

- ``state_headings`` — the order list's section headings (the state names)
- ``order_table`` — the order list's tables (rows and column headers)
- ``order_number`` — the order number field on the detail page
- ``order_state`` — the state field on the detail page
- ``order_deletion`` — the ``Order Deletion`` button
- ``order_cancellation`` — the ``Order Cancellation`` button
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import FastAPI, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandbox.faults import install_faults
from sandbox.world import JST, BossState, RakutenOrder, World

if TYPE_CHECKING:
    from sandbox.server import SandboxState

HERE = Path(__file__).resolve().parent.parent
templates = Jinja2Templates(directory=str(HERE / "templates"))

SESSION_COOKIE = "boss_session"
LOGIN_CSRF_COOKIE = "boss_login_csrf"
SESSION_IDLE = timedelta(hours=12)
"""A session unused this long (sandbox time) is over: the next page is the login page."""

SECTION_ORDER = [
    BossState.NEW,
    BossState.CONFIRMATION_TO_BE,
    BossState.SHIPPING_IN_PROGRESS,
    BossState.SHIPPED,
    BossState.DELETED,
    BossState.CANCELLED,
]
ACTIONABLE = {BossState.NEW, BossState.CONFIRMATION_TO_BE, BossState.SHIPPING_IN_PROGRESS}
"""States in which an order still offers Order Deletion and Order Cancellation."""

DELETION_CONFIRM = (
    "Order Deletion\n\nDelete order {order_number} from BOSS?\n"
    "It leaves the RSL shipping queue and will not be shipped from the warehouse. "
    "The buyer's Rakuten order stays as it is."
)
CANCELLATION_CONFIRM = (
    "Order Cancellation\n\nCancel order {order_number}?\n"
    "The order is cancelled at Rakuten and the buyer is refunded. This cannot be undone."
)


DEMO_USER = "boss-demo"
DEMO_PASSWORD = "boss-demo-password"
"""The one login this BOSS accepts (the sandbox's own; `SandboxAdmin.robot_env()` hands it to the robot)."""


def _valid_credentials() -> tuple[str, str]:
    return DEMO_USER, DEMO_PASSWORD


@dataclass
class Session:
    user: str
    csrf: str
    last_seen: datetime
    flash: str | None = None


def same(given: str, expected: str) -> bool:
    """Constant-time comparison that also copes with non-ASCII input."""
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def jst(moment: datetime | None) -> str:
    return moment.astimezone(JST).strftime("%Y/%m/%d %H:%M:%S") if moment else ""


def slug(state: str) -> str:
    return state.lower().replace(" ", "-")


def safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no '//host')."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/orders"


def _listed(world: World, order_number: str) -> RakutenOrder | None:
    order = world.orders.get(order_number)
    return order if order is not None and order.boss_listed else None


def _html_page(title: str, message: str, status: int) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title} - BOSS</title>"
        f"<link rel='stylesheet' href='/static/boss.css'></head><body class='bare'><main class='error-page'>"
        f"<h1>{title}</h1><p>{message}</p></main></body></html>",
        status_code=status,
        headers={"Retry-After": "1"} if status in (429, 503) else None,
    )


def create_app(state: SandboxState) -> FastAPI:
    app = FastAPI(title="BOSS (sandbox)", docs_url=None, redoc_url=None, openapi_url=None)
    install_faults(
        app, state, "boss",
        too_many=lambda request: _html_page("Too Many Requests", "BOSS is busy. Try again shortly.", 429),
        server_error=lambda request: _html_page(
            "500 Internal Server Error", "BOSS could not complete the request.", 500),
    )
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    sessions: dict[str, Session] = {}
    valid_user, valid_password = _valid_credentials()

    def world() -> World:
        return state.world

    def hidden() -> set[str]:
        return set(world().faults["boss"].hide_elements)

    @app.middleware("http")
    async def expire_sessions(request: Request, call_next: Any) -> Response:
        knobs = world().faults["boss"]
        if knobs.expire_sessions and not request.url.path.startswith("/static"):
            sessions.clear()
            knobs.expire_sessions = False
        response: Response = await call_next(request)
        return response

    def current(request: Request) -> Session | None:
        token = request.cookies.get(SESSION_COOKIE, "")
        session = sessions.get(token)
        if session is None:
            return None
        now = world().now()
        if now - session.last_seen > SESSION_IDLE:
            del sessions[token]
            return None
        session.last_seen = max(now, session.last_seen)
        return session

    def to_login(path: str) -> RedirectResponse:
        return RedirectResponse(f"/login?next={quote(path, safe='/')}", status_code=303)

    def render(request: Request, name: str, session: Session | None, status: int = 200,
               **context: Any) -> HTMLResponse:
        flash = None
        if session is not None:
            flash, session.flash = session.flash, None
        return templates.TemplateResponse(
            request, f"boss/{name}",
            {"session": session, "flash": flash, "hidden": hidden(), "now": jst(world().now()),
             **context},
            status_code=status,
        )

    def error(request: Request, session: Session | None, status: int, title: str,
              message: str) -> HTMLResponse:
        return render(request, "error.html", session, status=status, title=title, message=message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        title = "Page not found" if exc.status_code == 404 else f"Error {exc.status_code}"
        return error(request, current(request), exc.status_code, title,
                     "The page you asked for does not exist in BOSS.")

    # --- login -----------------------------------------------------------------------------
    def login_page(request: Request, next_path: str, message: str | None, status: int,
                   user_id: str = "") -> HTMLResponse:
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
        response = render(request, "login.html", None, status=status, next=safe_next(next_path),
                          csrf_token=token, message=message, user_id=user_id)
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="lax")
        return response

    @app.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request, next: str = "/orders") -> Response:
        if current(request) is not None:
            return RedirectResponse(safe_next(next), status_code=303)
        return login_page(request, next, None, 200)

    @app.post("/login", response_class=HTMLResponse)
    async def login(request: Request, user_id: str = Form(""), password: str = Form(""),
                    csrf_token: str = Form(""), next: str = Form("/orders")) -> Response:
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not same(csrf_token, expected):
            return login_page(request, next, "Your login form expired. Please log in again.", 400)
        if not (same(user_id, valid_user) and same(password, valid_password)):
            world().record("boss", "login_failed", user=user_id)
            return login_page(request, next, "The user ID or password is incorrect.", 401, user_id)
        token = secrets.token_urlsafe(32)
        sessions[token] = Session(user=user_id, csrf=secrets.token_urlsafe(24), last_seen=world().now())
        world().record("boss", "login", user=user_id)
        response = RedirectResponse(safe_next(next), status_code=303)
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax")
        return response

    @app.post("/logout")
    async def logout(request: Request, csrf_token: str = Form("")) -> Response:
        session = current(request)
        if session is not None and same(csrf_token, session.csrf):
            sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    # --- screens ---------------------------------------------------------------------------
    @app.get("/")
    async def home(request: Request) -> Response:
        return RedirectResponse("/orders", status_code=303)

    @app.get("/orders", response_class=HTMLResponse)
    async def order_list(request: Request) -> Response:
        session = current(request)
        if session is None:
            return to_login("/orders")
        listed = sorted((o for o in world().orders.values() if o.boss_listed),
                        key=lambda o: (o.placed_at, o.order_number))
        sections = []
        for section_state in SECTION_ORDER:
            rows = [
                {
                    "order_number": o.order_number,
                    "placed_at": jst(o.placed_at),
                    "placed_iso": o.placed_at.astimezone(JST).isoformat(),
                    "buyer": o.buyer.name,
                    "lines": [f"{i.name} × {i.quantity}" for i in o.items],
                    "total": f"¥{o.total_yen:,}",
                }
                for o in listed
                if o.boss_state is section_state
            ]
            sections.append({"state": section_state.value, "slug": slug(section_state.value), "rows": rows})
        return render(request, "orders.html", session, sections=sections, total=len(listed))

    @app.get("/orders/{order_number}", response_class=HTMLResponse)
    async def order_detail(request: Request, order_number: str) -> Response:
        session = current(request)
        if session is None:
            return to_login(f"/orders/{order_number}")
        order = _listed(world(), order_number)
        if order is None:
            return error(request, session, 404, "Order not found",
                         f"BOSS has no order {order_number}. Check the number, or look on the Order List.")
        return render(
            request, "order_detail.html", session,
            order=order,
            placed_at=jst(order.placed_at),
            state_slug=slug(order.boss_state.value),
            history=[(jst(at), name) for at, name in order.boss_history],
            actionable=order.boss_state in ACTIONABLE,
            deletion_confirm=DELETION_CONFIRM.format(order_number=order.order_number),
            cancellation_confirm=CANCELLATION_CONFIRM.format(order_number=order.order_number),
        )

    async def order_action(request: Request, order_number: str, csrf_token: str, action: str) -> Response:
        session = current(request)
        if session is None:
            return to_login(f"/orders/{order_number}")
        if not same(csrf_token, session.csrf):
            return error(request, session, 403, "Request refused",
                         "This form has expired (security token missing or wrong). "
                         "Open the order again and repeat the action.")
        order = _listed(world(), order_number)
        if order is None:
            return error(request, session, 404, "Order not found", f"BOSS has no order {order_number}.")
        if order.boss_state not in ACTIONABLE:
            label = "Order Deletion" if action == "delete" else "Order Cancellation"
            return error(request, session, 409, f"{label} not possible",
                         f"Order {order_number} is {order.boss_state.value}; nothing was changed.")
        if action == "delete":
            world().delete_in_boss(order_number)
            session.flash = f"Order {order_number} was deleted from BOSS."
        else:
            world().cancel_in_boss(order_number)
            session.flash = f"Order {order_number} was cancelled."
        return RedirectResponse(f"/orders/{quote(order_number)}", status_code=303)

    @app.post("/orders/{order_number}/delete")
    async def delete_order(request: Request, order_number: str, csrf_token: str = Form("")) -> Response:
        return await order_action(request, order_number, csrf_token, "delete")

    @app.post("/orders/{order_number}/cancel")
    async def cancel_order(request: Request, order_number: str, csrf_token: str = Form("")) -> Response:
        return await order_action(request, order_number, csrf_token, "cancel")

    return app
