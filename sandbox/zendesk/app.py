"""The sandbox's Zendesk Support API: the subset unmodified zenpy uses, over ZendeskStore.

Point zenpy here with ``ZENPY_FORCE_NETLOC=127.0.0.1:PORT`` and ``ZENPY_FORCE_SCHEME=http`` (zenpy
reads both on every request) and ``Zenpy(subdomain="kuroko", email=..., token=...)``.

Served, each with and without ``.json``: tickets (list, create, show, show_many, update), ticket
comments and audits, tags (set/add/remove), merge and job statuses, search and search count, users
(me, show, list, show_many, search). Auth is HTTP Basic ``email/token:TOKEN``; every response carries
``X-Rate-Limit`` and ``X-Rate-Limit-Remaining``; beyond the quota (a sliding window in real time,
admin knob) the answer is 429 with ``Retry-After``. Lists page with ``page``/``per_page`` (absolute
``next_page``) or, when ``page[size]`` is given, with cursors (``meta``/``links.next``), as Zendesk
does. Response shapes follow the Zendesk OpenAPI subset in tests/refs/zendesk/.

Admin knobs: ``GET/POST /admin/zendesk/settings`` (quota, window, page size, merge job polls,
auto-close), ``POST /admin/zendesk/users`` (another agent or end user).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandbox.faults import install_faults
from sandbox.zendesk.store import (
    SUPPORT_ADDRESS,
    Audit,
    Comment,
    JobStatus,
    Ticket,
    User,
    ZendeskError,
    ZendeskStore,
    iso,
)

if TYPE_CHECKING:
    from sandbox.server import SandboxState

API = "/api/v2"
Handler = Callable[..., Awaitable[Any]]


# --- JSON shapes ----------------------------------------------------------------------------------
def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def via_json(channel: str, sender: tuple[str, str] | None = None, recipient: str | None = None) -> dict[str, Any]:
    if channel == "email" and sender is not None:
        return {"channel": "email", "source": {
            "from": {"address": sender[1], "name": sender[0]},
            "to": {"address": recipient or SUPPORT_ADDRESS[1], "name": SUPPORT_ADDRESS[0]},
            "rel": None,
        }}
    return {"channel": channel, "source": {"from": {}, "to": {}, "rel": None}}


def ticket_json(ticket: Ticket, base: str) -> dict[str, Any]:
    return {
        "url": f"{base}{API}/tickets/{ticket.id}.json",
        "id": ticket.id,
        "external_id": ticket.external_id,
        "via": via_json(ticket.channel, ticket.sender, ticket.recipient) if ticket.followup_source_id is None else {
            "channel": "api", "source": {"from": {"ticket_id": ticket.followup_source_id}, "to": {},
                                         "rel": "follow_up"}},
        "created_at": iso(ticket.created_at),
        "updated_at": iso(ticket.updated_at),
        "generated_timestamp": int(ticket.updated_at.timestamp()) if ticket.updated_at else 0,
        "type": ticket.type,
        "subject": ticket.subject,
        "raw_subject": ticket.subject,
        "description": ticket.description,
        "priority": ticket.priority,
        "status": ticket.status,
        "requester_id": ticket.requester_id,
        "submitter_id": ticket.submitter_id,
        "assignee_id": ticket.assignee_id,
        "organization_id": None,
        "group_id": None,
        "collaborator_ids": list(ticket.collaborator_ids),
        "follower_ids": list(ticket.collaborator_ids),
        "email_cc_ids": [],
        "problem_id": None,
        "has_incidents": False,
        "is_public": any(c.public for c in ticket.comments),
        "due_at": None,
        "tags": list(ticket.tags),
        "custom_fields": [],
        "fields": [],
        "sharing_agreement_ids": [],
        "followup_ids": list(ticket.followup_ids),
        "ticket_form_id": None,
        "brand_id": None,
        "allow_channelback": False,
        "allow_attachments": True,
        "from_messaging_channel": False,
    } | ({"recipient": ticket.recipient or SUPPORT_ADDRESS[1]} if ticket.channel == "email" else {})


def comment_json(comment: Comment, ticket: Ticket) -> dict[str, Any]:
    sender = ticket.sender if comment.channel == "email" else None
    return {
        "id": comment.id,
        "type": "Comment",
        "author_id": comment.author_id,
        "body": comment.body,
        "html_body": "<div class=\"zd-comment\">" + "<br>".join(_escape(comment.body).splitlines()) + "</div>",
        "plain_body": comment.body,
        "public": comment.public,
        "attachments": [],
        "audit_id": comment.audit_id,
        "via": via_json(comment.channel, sender),
        "created_at": iso(comment.created_at),
        "metadata": {"system": {}, "custom": {}},
    }


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def audit_json(audit: Audit) -> dict[str, Any]:
    events = []
    for event in audit.events:
        out = dict(event)
        if out["type"] == "Comment":
            out.update({"html_body": _escape(out["body"]), "plain_body": out["body"], "attachments": []})
        events.append(out)
    return {
        "id": audit.id,
        "ticket_id": audit.ticket_id,
        "created_at": iso(audit.created_at),
        "author_id": audit.author_id,
        "metadata": {"system": {}, "custom": {}},
        "via": via_json(audit.channel),
        "events": events,
    }


def user_json(user: User, base: str) -> dict[str, Any]:
    agent = user.role != "end-user"
    return {
        "id": user.id,
        "url": f"{base}{API}/users/{user.id}.json",
        "name": user.name,
        "email": user.email,
        "created_at": iso(user.created_at),
        "updated_at": iso(user.created_at),
        "time_zone": "Osaka",
        "iana_time_zone": "Asia/Tokyo",
        "phone": None,
        "shared_phone_number": None,
        "photo": None,
        "locale_id": 67,
        "locale": "ja",
        "organization_id": None,
        "role": user.role,
        "verified": True,
        "external_id": None,
        "tags": [],
        "alias": "",
        "active": user.active,
        "shared": False,
        "shared_agent": False,
        "last_login_at": iso(user.created_at),
        "two_factor_auth_enabled": None,
        "signature": "",
        "details": "",
        "notes": "",
        "role_type": None,
        "custom_role_id": None,
        "moderator": agent,
        "ticket_restriction": None if agent else "requested",
        "only_private_comments": False,
        "restricted_agent": False,
        "suspended": False,
        "report_csv": agent,
        "user_fields": {},
    } | ({"default_group_id": 360_000_000_001} if agent else {})


def job_json(job: JobStatus, base: str) -> dict[str, Any]:
    status = job.status
    done = status in ("completed", "failed")
    return {
        "id": job.id,
        "url": f"{base}{API}/job_statuses/{job.id}.json",
        "job_type": job.job_type,
        "total": job.total,
        "progress": job.total if done else (0 if status == "working" else None),
        "status": status,
        "message": job.message if done else None,
        "results": job.results if done else None,
    }


# --- paging ---------------------------------------------------------------------------------------
def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ZendeskError(400, "InvalidPaginationParameter", f"{name} must be a whole number") from None


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def _offset(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return int(json.loads(base64.urlsafe_b64decode(padded))["o"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise ZendeskError(400, "InvalidPaginationParameter", "page[after]/page[before]: unknown cursor") from None


def paginate(request: Request, store: ZendeskStore, items: list[Any], key: str,
             render: Callable[[Any], dict[str, Any]], *, limit: int | None = None) -> dict[str, Any]:
    """A page of ``items`` as Zendesk answers: cursor pagination when ``page[size]`` (or a cursor)
    is asked for, offset pagination (``page``, ``per_page``) otherwise. Links are absolute."""
    biggest = store.settings.max_page_size
    params = request.query_params
    if any(k.startswith("page[") for k in params):
        size = min(max(_int_param(request, "page[size]", 100), 1), biggest)
        if params.get("page[before]"):
            end = _offset(params["page[before]"])
            start = max(0, end - size)
        else:
            start = _offset(params["page[after]"]) if params.get("page[after]") else 0
        chunk = items[start:start + size]
        end = start + len(chunk)
        has_more = end < len(items)
        clean = request.url.remove_query_params(["page[after]", "page[before]"])
        return {
            key: [render(x) for x in chunk],
            "meta": {"has_more": has_more, "after_cursor": _cursor(end) if chunk else None,
                     "before_cursor": _cursor(start) if chunk else None},
            "links": {
                "prev": str(clean.include_query_params(**{"page[before]": _cursor(start)})) if start > 0 else None,
                "next": str(clean.include_query_params(**{"page[after]": _cursor(end)})) if has_more else None,
            },
        }
    per_page = min(max(_int_param(request, "per_page", 100), 1), biggest)
    page = max(_int_param(request, "page", 1), 1)
    if limit is not None and page * per_page > limit:
        raise ZendeskError(422, "invalid", f"Search results are limited to {limit}; narrow the query")
    start = (page - 1) * per_page
    chunk = items[start:start + per_page]
    more = start + per_page < len(items) and (limit is None or (page + 1) * per_page <= limit)
    return {
        key: [render(x) for x in chunk],
        "next_page": str(request.url.include_query_params(page=page + 1, per_page=per_page)) if more else None,
        "previous_page": str(request.url.include_query_params(page=page - 1, per_page=per_page))
        if page > 1 else None,
        "count": len(items),
    }


# --- the app --------------------------------------------------------------------------------------
def _credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        login, _, secret = base64.b64decode(encoded).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not login.endswith("/token"):
        return None
    return login.removesuffix("/token"), secret


def rate_headers(store: ZendeskStore, remaining: int | None = None) -> dict[str, str]:
    s = store.settings
    left = store.limiter.remaining(s.rate_limit, s.rate_window_seconds) if remaining is None else remaining
    return {"X-Rate-Limit": str(s.rate_limit), "X-Rate-Limit-Remaining": str(left)}


def too_many(store: ZendeskStore, retry_after: int, why: str) -> JSONResponse:
    return JSONResponse(
        {"error": "APIRateLimitExceeded", "description": why},
        status_code=429, headers={"Retry-After": str(retry_after), **rate_headers(store, 0)},
    )


async def read_json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise ZendeskError(400, "InvalidJSON", "The request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ZendeskError(400, "InvalidJSON", "The request body must be a JSON object")
    return data


def _ids(request: Request) -> list[int]:
    raw = request.query_params.get("ids", "")
    try:
        return [int(i) for i in raw.split(",") if i.strip()]
    except ValueError:
        raise ZendeskError(400, "BadRequest", "ids: a comma-separated list of ids") from None


def create_app(state: SandboxState) -> FastAPI:
    app = FastAPI(title="Zendesk Support API (Kuroko sandbox)")

    def store() -> ZendeskStore:
        return state.world.zendesk

    def me(request: Request) -> User:
        creds = _credentials(request)
        user = store().authenticate(*creds) if creds else None
        if user is None:
            raise ZendeskError(401, "Couldn't authenticate you")
        return user

    def route(methods: list[str], path: str, status_code: int = 200) -> Callable[[Handler], Handler]:
        """Serve ``path`` and ``path.json`` alike, as Zendesk does."""

        def register(handler: Handler) -> Handler:
            for p in (API + path, API + path + ".json"):
                app.add_api_route(p, handler, methods=methods, status_code=status_code, include_in_schema=False)
            return handler

        return register

    @app.exception_handler(ZendeskError)
    async def zendesk_error(request: Request, exc: ZendeskError) -> Response:
        headers = {"WWW-Authenticate": 'Basic realm="Web Password"'} if exc.status == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return JSONResponse({"error": "InvalidEndpoint", "description": "Not found"}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return JSONResponse({"error": "BadRequest", "description": str(exc.errors()[:3])}, status_code=400)

    @app.middleware("http")
    async def gate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """The account's quota, then the API token; rate headers on every answer."""
        zd = store()
        if not request.url.path.startswith("/api/"):
            other = await call_next(request)
            other.headers.update(rate_headers(zd))
            return other
        s = zd.settings
        allowed, remaining, retry = zd.limiter.hit(s.rate_limit, s.rate_window_seconds)
        if not allowed:
            return too_many(zd, retry, f"More than {s.rate_limit} API requests in {s.rate_window_seconds:g} s; "
                                       f"retry after {retry} s")
        creds = _credentials(request)
        if creds is None or zd.authenticate(*creds) is None:
            response: Response = JSONResponse({"error": "Couldn't authenticate you"}, status_code=401,
                                              headers={"WWW-Authenticate": 'Basic realm="Web Password"'})
        else:
            zd.run_automations()
            response = await call_next(request)
        response.headers.update(rate_headers(zd, remaining))
        return response

    def fault_429(request: Request) -> Response:
        return too_many(store(), 1, "Too many requests (sandbox fault knob burst_429)")

    def fault_5xx(request: Request) -> Response:
        return JSONResponse({"error": "InternalError", "description": "Internal Server Error (sandbox fault knob)"},
                            status_code=500, headers=rate_headers(store()))

    install_faults(app, state, "zendesk", too_many=fault_429, server_error=fault_5xx)

    # --- tickets ----------------------------------------------------------------------------------
    @route(["GET"], "/tickets")
    async def list_tickets(request: Request) -> dict[str, Any]:
        me(request)
        base = base_url(request)
        tickets = sorted(store().tickets.values(), key=lambda t: t.id)
        external_id = request.query_params.get("external_id")
        if external_id is not None:
            tickets = [t for t in tickets if t.external_id == external_id]
        return paginate(request, store(), tickets, "tickets", lambda t: ticket_json(t, base))

    @route(["POST"], "/tickets", status_code=201)
    async def create_ticket(request: Request, response: Response) -> dict[str, Any]:
        data = (await read_json(request)).get("ticket")
        if not isinstance(data, dict):
            raise ZendeskError(400, "InvalidJSON", 'Give the ticket as {"ticket": {...}}')
        ticket, audit = store().create_ticket(data, me(request))
        base = base_url(request)
        response.headers["Location"] = f"{base}{API}/tickets/{ticket.id}.json"
        return {"ticket": ticket_json(ticket, base), "audit": audit_json(audit)}

    @route(["GET"], "/tickets/show_many")
    async def show_many_tickets(request: Request) -> dict[str, Any]:
        me(request)
        base = base_url(request)
        found = [store().tickets[i] for i in _ids(request) if i in store().tickets]
        return {"tickets": [ticket_json(t, base) for t in found], "next_page": None, "previous_page": None,
                "count": len(found)}

    @route(["GET"], "/tickets/{ticket_id:int}")
    async def show_ticket(request: Request, ticket_id: int) -> dict[str, Any]:
        me(request)
        return {"ticket": ticket_json(store().get_ticket(ticket_id), base_url(request))}

    @route(["PUT"], "/tickets/{ticket_id:int}")
    async def update_ticket(request: Request, ticket_id: int) -> dict[str, Any]:
        data = (await read_json(request)).get("ticket")
        if not isinstance(data, dict):
            raise ZendeskError(400, "InvalidJSON", 'Give the changes as {"ticket": {...}}')
        ticket = store().get_ticket(ticket_id)
        audit = store().update_ticket(ticket, data, me(request))
        return {"ticket": ticket_json(ticket, base_url(request)), "audit": audit_json(audit)}

    @route(["GET"], "/tickets/{ticket_id:int}/comments")
    async def list_comments(request: Request, ticket_id: int) -> dict[str, Any]:
        me(request)
        ticket = store().get_ticket(ticket_id)
        comments = list(ticket.comments)
        if request.query_params.get("sort_order") == "desc" or request.query_params.get("sort") == "-created_at":
            comments.reverse()
        return paginate(request, store(), comments, "comments", lambda c: comment_json(c, ticket))

    @route(["GET"], "/tickets/{ticket_id:int}/audits")
    async def list_audits(request: Request, ticket_id: int) -> dict[str, Any]:
        me(request)
        ticket = store().get_ticket(ticket_id)
        return paginate(request, store(), list(ticket.audits), "audits", audit_json)

    @route(["GET"], "/tickets/{ticket_id:int}/tags")
    async def show_tags(request: Request, ticket_id: int) -> dict[str, Any]:
        me(request)
        return {"tags": list(store().get_ticket(ticket_id).tags)}

    async def change_tags(request: Request, ticket_id: int, how: str) -> dict[str, Any]:
        ticket = store().get_ticket(ticket_id)
        tags = (await read_json(request)).get("tags")
        if tags is None:
            raise ZendeskError(400, "BadRequest", 'Give the tags as {"tags": [...]}')
        return {"tags": store().change_tags(ticket, tags, how, me(request))}

    @route(["POST"], "/tickets/{ticket_id:int}/tags")
    async def set_tags(request: Request, ticket_id: int) -> dict[str, Any]:
        return await change_tags(request, ticket_id, "set")

    @route(["PUT"], "/tickets/{ticket_id:int}/tags")
    async def add_tags(request: Request, ticket_id: int) -> dict[str, Any]:
        return await change_tags(request, ticket_id, "add")

    @route(["DELETE"], "/tickets/{ticket_id:int}/tags")
    async def remove_tags(request: Request, ticket_id: int) -> Response:
        await change_tags(request, ticket_id, "remove")
        return Response(status_code=204)

    @route(["POST"], "/tickets/{ticket_id:int}/merge")
    async def merge(request: Request, ticket_id: int) -> dict[str, Any]:
        job = store().merge(ticket_id, await read_json(request), me(request))
        return {"job_status": job_json(job, base_url(request))}

    # --- job statuses -----------------------------------------------------------------------------
    @route(["GET"], "/job_statuses/{job_id}")
    async def show_job(request: Request, job_id: str) -> dict[str, Any]:
        me(request)
        return {"job_status": job_json(store().poll_job(job_id.removesuffix(".json")), base_url(request))}

    @route(["GET"], "/job_statuses")
    async def list_jobs(request: Request) -> dict[str, Any]:
        me(request)
        base = base_url(request)
        jobs = sorted(store().jobs.values(), key=lambda j: j.created_at or 0, reverse=True)
        return paginate(request, store(), jobs, "job_statuses", lambda j: job_json(j, base))

    # --- search -----------------------------------------------------------------------------------
    def _search(request: Request) -> list[Any]:
        query = request.query_params.get("query")
        if not query:
            raise ZendeskError(400, "InvalidSearch", "query: give a search query")
        return store().search(query, sort_by=request.query_params.get("sort_by"),
                              sort_order=request.query_params.get("sort_order"))

    @route(["GET"], "/search")
    async def search(request: Request) -> dict[str, Any]:
        me(request)
        base = base_url(request)

        def render(obj: Any) -> dict[str, Any]:
            if isinstance(obj, Ticket):
                return ticket_json(obj, base) | {"result_type": "ticket"}
            return user_json(obj, base) | {"result_type": "user"}

        return paginate(request, store(), _search(request), "results", render, limit=1000) | {"facets": None}

    @route(["GET"], "/search/count")
    async def search_count(request: Request) -> dict[str, Any]:
        me(request)
        return {"count": len(_search(request))}

    # --- users ------------------------------------------------------------------------------------
    @route(["GET"], "/users/me")
    async def users_me(request: Request) -> dict[str, Any]:
        user = me(request)
        return {"user": user_json(user, base_url(request)) | {"authenticity_token": f"sandbox-{user.id}"}}

    @route(["GET"], "/users/search")
    async def search_users(request: Request) -> dict[str, Any]:
        me(request)
        query = request.query_params.get("query")
        if not query:
            raise ZendeskError(400, "BadRequest", "query: give a name or an e-mail address")
        base = base_url(request)
        return paginate(request, store(), store().search_users(query), "users", lambda u: user_json(u, base))

    @route(["GET"], "/users/show_many")
    async def show_many_users(request: Request) -> dict[str, Any]:
        me(request)
        base = base_url(request)
        found = [store().users[i] for i in _ids(request) if i in store().users]
        return {"users": [user_json(u, base) for u in found], "next_page": None, "previous_page": None,
                "count": len(found)}

    @route(["GET"], "/users/{user_id:int}")
    async def show_user(request: Request, user_id: int) -> dict[str, Any]:
        me(request)
        return {"user": user_json(store().get_user(user_id), base_url(request))}

    @route(["GET"], "/users")
    async def list_users(request: Request) -> dict[str, Any]:
        me(request)
        base = base_url(request)
        return paginate(request, store(), list(store().users.values()), "users", lambda u: user_json(u, base))

    return app


# --- admin knobs ------------------------------------------------------------------------------------
class SettingsChange(BaseModel):
    rate_limit: int | None = None
    rate_window_seconds: float | None = None
    max_page_size: int | None = None
    merge_working_polls: int | None = None
    close_solved_after_days: float | None = None
    never_close_solved: bool = False


class NewUser(BaseModel):
    name: str
    email: str
    role: str = "agent"


def admin_router(state: SandboxState) -> APIRouter:
    router = APIRouter(prefix="/admin/zendesk")

    @router.get("/settings")
    async def settings() -> dict[str, Any]:
        return vars(state.world.zendesk.settings).copy()

    @router.post("/settings")
    async def change_settings(body: SettingsChange) -> dict[str, Any]:
        """Change the Zendesk knobs; a reset brings the defaults back."""
        current = state.world.zendesk.settings
        for name, value in body.model_dump(exclude={"never_close_solved"}, exclude_none=True).items():
            if name in ("rate_limit", "max_page_size") and value < 1:
                raise HTTPException(400, f"{name} must be at least 1")
            setattr(current, name, value)
        if body.never_close_solved:
            current.close_solved_after_days = None
        return vars(current).copy()

    @router.post("/users")
    async def add_user(body: NewUser) -> dict[str, Any]:
        """Another agent (e.g. a Japan-office colleague to @mention) or end user."""
        zd = state.world.zendesk
        if body.role not in ("agent", "admin", "end-user"):
            raise HTTPException(400, "role: agent, admin or end-user")
        user = zd.user_by_email(body.email) or zd.add_user(body.name, body.email, role=body.role)
        return {"id": user.id, "name": user.name, "email": user.email, "role": user.role}

    return router
