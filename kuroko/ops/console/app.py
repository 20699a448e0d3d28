"""The desk console: a FastAPI app of server-rendered pages over the ledger.

- Sessions: a cookie signed with itsdangerous (HttpOnly, SameSite=Strict), holding the user's name
  and the session's CSRF token; the user's role is read from ``desk_users`` at every request, so a
  removed user is out at once.
- CSRF: every form carries the session's token; a POST without it (or with another) is refused 403.
- Roles: a viewer reads; only an operator's POST acts (the buttons are not drawn for a viewer, and
  a forged POST is refused 403).
- Actions go through the CLI's own code paths: ``Runner.release`` and each procedure's commands
  (``DeskContext``), audited as ``"{user} (console)"``.
- Reads only while the robot writes: each read is one short transaction; a write happens only for
  a login or a person's action.
"""

from __future__ import annotations

import hmac
import inspect
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from kuroko.clock import clock_from_url
from kuroko.errors import ConfigurationError, KurokoError
from kuroko.ledger import ItemState, Ledger, StepRecord, WorkItem, wall_now
from kuroko.logs import redact
from kuroko.ops.console import users as user_store
from kuroko.ops.console import views
from kuroko.ops.console.i18n import LANGUAGES, pick_language, translator
from kuroko.ops.console.render import Page, render
from kuroko.ops.console.settings import ConsoleSettings, console_settings
from kuroko.procedure import DeskContext, Procedure
from kuroko.settings import Settings, get_settings

SESSION_COOKIE = "kuroko_session"
LANG_COOKIE = "kuroko_lang"


def secret_key(settings: Settings, console: ConsoleSettings) -> str:
    if console.console_secret_key is not None and console.console_secret_key.get_secret_value():
        return console.console_secret_key.get_secret_value()
    path = settings.data_dir / "console.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48), encoding="utf-8")
    path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


@dataclass
class Session:
    user: str | None
    csrf: str
    flash: str | None = None
    flash_error: bool = False
    changed: bool = False


class Console:
    """Everything the routes share: settings, the ledger, the procedures, the cookie signer."""

    def __init__(self, settings: Settings, ledger: Ledger, procedures: dict[str, Procedure], *,
                 schedule: Path | None = None) -> None:
        from kuroko.ops.schedule import DEFAULT_SCHEDULE

        self.settings = settings
        self.console = console_settings()
        self.ledger = ledger
        self.procedures = procedures
        self.schedule = schedule or (Path(self.console.console_schedule) if self.console.console_schedule
                                     else DEFAULT_SCHEDULE)
        self.signer = URLSafeTimedSerializer(secret_key(settings, self.console), salt="kuroko-console-session")
        self.clock = clock_from_url(settings.clock_url)

    def now(self) -> datetime:
        """The robot's clock (the sandbox's in tests); the machine's when it cannot be read."""
        try:
            return self.clock.now()
        except Exception:
            return wall_now()

    # --- sessions ------------------------------------------------------------------------------
    def load_session(self, request: Request) -> Session:
        raw = request.cookies.get(SESSION_COOKIE)
        if raw:
            try:
                data = self.signer.loads(raw, max_age=self.console.console_session_hours * 3600)
                return Session(user=data.get("u"), csrf=str(data["c"]), flash=data.get("f"),
                               flash_error=bool(data.get("e")))
            except (BadSignature, KeyError, TypeError, AttributeError):
                pass
        return Session(user=None, csrf=secrets.token_urlsafe(24), changed=True)

    def save_session(self, response: Response, session: Session) -> None:
        value = self.signer.dumps({"u": session.user, "c": session.csrf, "f": session.flash,
                                   "e": session.flash_error})
        response.set_cookie(SESSION_COOKIE, value, httponly=True, samesite="strict", path="/",
                            max_age=self.console.console_session_hours * 3600)


def create_app(settings: Settings | None = None, ledger: Ledger | None = None,
               procedures: dict[str, Procedure] | None = None, *, schedule: Path | None = None) -> FastAPI:
    from kuroko.registry import load_procedures

    settings = settings or get_settings()
    ledger = ledger or Ledger(settings.ledger_database_url())
    procedures = procedures if procedures is not None else load_procedures()
    console = Console(settings, ledger, procedures, schedule=schedule)
    app = FastAPI(title="Kuroko desk console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = console

    @app.middleware("http")
    async def sessions_and_headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        session = console.load_session(request)
        request.state.session = session
        request.state.nonce = secrets.token_urlsafe(12)
        response: Response = await call_next(request)
        if session.changed:
            console.save_session(response, session)
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            f"script-src 'nonce-{request.state.nonce}'; frame-ancestors 'none'; form-action 'self'")
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-store"
        return response

    # --- helpers -----------------------------------------------------------------------------
    def session_of(request: Request) -> Session:
        return request.state.session

    def page(request: Request, user: user_store.User | None, **extra: Any) -> Page:
        session = session_of(request)
        flash, flash_error = session.flash, session.flash_error
        if flash:
            session.flash, session.flash_error, session.changed = None, False, True
        return Page(lang=pick_language(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language")),
                    timezone=settings.timezone, zendesk_url=console.console.zendesk_url, user=user,
                    csrf=session.csrf, path=request.url.path, flash=flash, flash_error=flash_error,
                    refresh_ms=int(console.console.console_refresh_seconds * 1000), nonce=request.state.nonce,
                    extra=extra)

    def current_user(request: Request) -> user_store.User | None:
        name = session_of(request).user
        return user_store.get_user(ledger, name) if name else None

    class LoginNeeded(Exception):
        pass

    def require_user(request: Request) -> user_store.User:
        user = current_user(request)
        if user is None:
            raise LoginNeeded
        return user

    @app.exception_handler(LoginNeeded)
    async def to_login(request: Request, _exc: LoginNeeded) -> Response:
        if request.url.path.startswith("/fragments/") or request.method != "GET":
            return Response("login needed", status_code=401)
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)

    async def checked_form(request: Request) -> dict[str, str]:
        """The form, once its CSRF token matches the session's (403 otherwise)."""
        form = {k: str(v) for k, v in (await request.form()).items()}
        sent = form.pop("csrf", "")
        if not sent or not hmac.compare_digest(sent, session_of(request).csrf):
            t = translator(pick_language(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language")))
            raise HTTPException(status_code=403, detail=t("csrf"))
        return form

    def require_operator(request: Request) -> user_store.User:
        user = require_user(request)
        if not user.can_act:
            t = translator(pick_language(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language")))
            raise HTTPException(status_code=403, detail=t("forbidden"))
        return user

    def html(content: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(content, status_code=status)

    def get_item(item_id: int) -> WorkItem:
        try:
            return ledger.get_item(item_id)
        except KeyError:
            raise HTTPException(status_code=404, detail="no such item") from None

    def today_data() -> views.Today:
        return views.today(ledger, procedures, console.now(), wall_now(), settings.timezone, console.schedule)

    def back(request: Request, message: str, *, error: bool = False, to: str = "/waiting") -> Response:
        session = session_of(request)
        session.flash, session.flash_error, session.changed = redact(message), error, True
        return RedirectResponse(to, status_code=303)

    # --- login ---------------------------------------------------------------------------------
    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/") -> Response:
        return html(render("login.html", page(request, None), next=_safe_next(next)))

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await checked_form(request)
        p = page(request, None)
        result = user_store.authenticate(ledger, form.get("name", "").strip(), form.get("password", ""),
                                         max_failed=console.console.console_max_failed_logins,
                                         lock_minutes=console.console.console_lock_minutes)
        if result.user is None:
            p.flash_error = True
            p.flash = (p.t("login.locked", until=p.when(result.locked_until)) if result.locked_until
                       else p.t("login.wrong"))
            return html(render("login.html", p, next=_safe_next(form.get("next", "/"))), status=401)
        session = session_of(request)
        session.user, session.csrf, session.changed = result.user.name, secrets.token_urlsafe(24), True
        return RedirectResponse(_safe_next(form.get("next", "/")), status_code=303)

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        await checked_form(request)
        session = session_of(request)
        session.user, session.csrf, session.changed = None, secrets.token_urlsafe(24), True
        return RedirectResponse("/login", status_code=303)

    @app.get("/lang/{code}")
    def language(code: str, next: str = "/") -> Response:
        response = RedirectResponse(_safe_next(next), status_code=303)
        if code in LANGUAGES:
            response.set_cookie(LANG_COOKIE, code, httponly=True, samesite="strict", path="/",
                                max_age=365 * 86400)
        return response

    # --- pages ---------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    def today_page(request: Request) -> Response:
        user = require_user(request)
        return html(render("today.html", page(request, user), today=today_data()))

    @app.get("/fragments/today", response_class=HTMLResponse)
    def today_fragment(request: Request) -> Response:
        user = require_user(request)
        return html(render("_today.html", page(request, user), today=today_data()))

    @app.get("/waiting", response_class=HTMLResponse)
    def waiting_page(request: Request) -> Response:
        user = require_user(request)
        return html(render("waiting.html", page(request, user), views=views.waiting_items(ledger, procedures)))

    @app.get("/fragments/waiting", response_class=HTMLResponse)
    def waiting_fragment(request: Request) -> Response:
        user = require_user(request)
        return html(render("_waiting.html", page(request, user), views=views.waiting_items(ledger, procedures)))

    @app.get("/items/{item_id}", response_class=HTMLResponse)
    def item_page(request: Request, item_id: int) -> Response:
        user = require_user(request)
        view = views.item_view(ledger, procedures, get_item(item_id))
        return html(render("item.html", page(request, user), view=view))

    @app.get("/claims", response_class=HTMLResponse)
    def claims_page(request: Request, all: bool = False) -> Response:
        user = require_user(request)
        return html(render("claims.html", page(request, user), claims=views.claims(ledger, procedures, every=all)))

    @app.get("/search", response_class=HTMLResponse)
    def search_page(request: Request, q: str = "") -> Response:
        user = require_user(request)
        results = views.search(ledger, q)
        if len(results) == 1 and q.strip():
            return RedirectResponse(f"/items/{results[0].id}", status_code=303)
        return html(render("search.html", page(request, user, q=q), q=q, results=results,
                           titles={n: p.title for n, p in procedures.items()}))

    @app.get("/evidence/{step_id}/{index}")
    def evidence(request: Request, step_id: int, index: int) -> Response:
        require_user(request)
        with ledger.session() as s:
            step = s.get(StepRecord, step_id)
            paths = list(step.evidence or []) if step is not None else []
        if not 0 <= index < len(paths) or not Path(paths[index]).is_file():
            raise HTTPException(status_code=404, detail="no such evidence")
        path = Path(paths[index])
        if path.suffix == ".png":
            return FileResponse(path, media_type="image/png")
        if path.suffix == ".zip":
            return FileResponse(path, media_type="application/zip", filename=path.name)
        # A failed page's HTML or the pages list: a download as plain text, never rendered here.
        return FileResponse(path, media_type="text/plain; charset=utf-8", filename=path.name)

    # --- actions -------------------------------------------------------------------------------
    @app.post("/items/{item_id}/release")
    async def release(request: Request, item_id: int) -> Response:
        await checked_form(request)
        user = require_operator(request)
        item = get_item(item_id)
        t = page(request, user).t
        if item.state != ItemState.HELD.value:
            return back(request, f"{item.key}: not held ({item.state})", error=True)
        from starlette.concurrency import run_in_threadpool

        try:
            await run_in_threadpool(_release, settings, ledger, procedures, item, console.now(),
                                    f"{user.name} (console)")
        except (KurokoError, ConfigurationError) as exc:
            return back(request, exc.message, error=True)
        return back(request, t("released", key=item.key, step=item.step))

    @app.post("/items/{item_id}/commands/{name}")
    async def command(request: Request, item_id: int, name: str) -> Response:
        form = await checked_form(request)
        user = require_operator(request)
        item = get_item(item_id)
        procedure = procedures.get(item.procedure)
        fn = next((f for f in procedure.commands if f.__name__ == name), None) if procedure else None
        hints = procedure.command_hints.get(name) if procedure else None
        if fn is None or hints is None or hints.fits is None or not hints.fits(item):
            return back(request, f"{item.key}: '{name}' does not apply to this item", error=True)
        params = list(inspect.signature(fn, eval_str=True).parameters.values())[1:]
        kwargs: dict[str, Any] = {params[0].name: item.key} if hints.keyed else {}
        per_item = hints.item_choices(ledger, item) if hints.item_choices else {}
        for param in views.command_params(fn, hints):
            value = form.get(param.name, "").strip()
            if not value and param.default is inspect.Parameter.empty:
                return back(request, f"{param.name}: required", error=True)
            if value and param.name in per_item and value not in per_item[param.name]:
                return back(request, f"{item.key}: {param.name} {value!r} is not one of this item's "
                                     f"({', '.join(per_item[param.name]) or '-'})", error=True)
            if value:
                try:
                    kwargs[param.name] = views.form_value(param, value)
                except ValueError:
                    return back(request, f"{param.name}: {value!r} is not a number", error=True)
        desk = DeskContext(ledger=ledger, settings=settings, now=console.now(), by=f"{user.name} (console)")
        from starlette.concurrency import run_in_threadpool

        try:
            said = await run_in_threadpool(fn, desk, **kwargs)
        except KurokoError as exc:
            return back(request, exc.message, error=True)
        return back(request, str(said))

    return app


def _release(settings: Settings, ledger: Ledger, procedures: dict[str, Procedure], item: WorkItem, now: datetime,
             by: str) -> None:
    """What `kuroko release` does: ``Runner.release`` (the hold tag removed on the ticket too)."""
    from kuroko.connections import Connections
    from kuroko.runner import Runner

    connections = Connections(settings)
    try:
        runner = Runner(settings, ledger, connections, clock_from_url(settings.clock_url),
                        procedures=list(procedures.values()))
        runner.release(item, now, by=by, remove_tag=True)
    finally:
        connections.close()


def _safe_next(target: str) -> str:
    """Only a path of this console (never another site) after login or a language switch."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def serve(host: str, port: int, settings: Settings | None = None) -> None:
    import uvicorn

    settings = settings or get_settings()
    if host != "127.0.0.1" and not console_settings().console_allow_remote:
        raise ConfigurationError(f"the console binds only to 127.0.0.1 unless KUROKO_CONSOLE_ALLOW_REMOTE=true "
                                 f"(asked for {host!r})")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", proxy_headers=False)
