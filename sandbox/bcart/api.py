"""The sandbox Bカート REST API, ``/api/v1`` on the wing's port (as ``https://api.bcart.jp/api/v1``).

Auth: ``Authorization: Bearer <token>`` (the wing's personal access token, ``DEMO_API_TOKEN``);
a missing or wrong token, or fault knob ``refuse_token``, is a 401.

Rate limit: ``rate_limit`` requests (300) per ``rate_window_seconds`` (300); the next request starts
a lock of ``lock_seconds`` (300) during which every request gets 429 with ``Retry-After``. The
window runs on the sandbox's virtual clock (tests move it) unless ``rate_clock`` is "real"
(``POST /admin/bcart/settings``). Fault knob ``burst_429`` answers the next N requests 429 with
``Retry-After: 1``.

Endpoints (JSON shapes follow the notes §1.4):

- ``GET /api/v1/orders``: ``{"orders": [...], "meta": {"total", "limit", "offset"}}``, oldest
  first; filters ``id``, ``code``, ``status`` (API value: 新規注文, カスタムN, 完了),
  ``ordered_at__gte`` / ``ordered_at__lte`` (``yyyy-mm-dd[ HH:MM:SS]`` JST), ``limit`` (≤ 100,
  default 20), ``offset``; ``complete=1`` embeds ``order_products`` and ``logistics``.
- ``GET /api/v1/orders/{id}``: ``{"order": {...}}`` with ``order_products`` and ``logistics``.
- ``PATCH /api/v1/orders/{id}``: ``{"status": "カスタム1"}`` and/or ``{"admin_message": "..."}``.
- ``GET /api/v1/logistics/{id}``: ``{"logistic": {...}}``.
- ``PATCH /api/v1/logistics/{id}``: any of ``delivery_code``, ``shipment_date`` (yyyy-mm-dd),
  ``status`` (未発送 / 発送指示 / 発送済), ``shipment_code``, ``memo``. A key sent empty or null
  BLANKS the stored value.
- ``GET /api/v1/order_statuses``: ``{"order_statuses": [{"status", "label", "custom"}, ...]}``.

Errors: ``{"error": "...", "message": "..."}`` with 400 / 401 / 404 / 429.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from sandbox.bcart.store import BcartError, BcartStore
from sandbox.world import JST

if TYPE_CHECKING:
    from sandbox.server import SandboxState

API = "/api/v1"
DEMO_API_TOKEN = "bcart-demo-personal-access-token"
"""The sandbox's one personal access token (handed to the robot as KUROKO_BCART_API_TOKEN)."""


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def too_many(retry_after: int, why: str) -> JSONResponse:
    return error(429, "TooManyRequests", why, {"Retry-After": str(retry_after)})


def _moment(text: str, end: bool) -> datetime | None:
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            moment = datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
        if fmt == "%Y-%m-%d" and end:
            moment = moment.replace(hour=23, minute=59, second=59)
        return moment.replace(tzinfo=JST)
    return None


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise BcartError(400, "リクエストボディがJSONではありません。") from None
    if not isinstance(data, dict):
        raise BcartError(400, "リクエストボディはJSONオブジェクトで指定してください。")
    return data


def _int(value: str, name: str) -> int:
    if not value.isdigit():
        raise BcartError(400, f"{name}: 整数で指定してください。")
    return int(value)


def install_api(app: FastAPI, state: SandboxState) -> None:
    def store() -> BcartStore:
        return state.world.bcart

    @app.exception_handler(BcartError)
    async def bcart_error(request: Request, exc: BcartError) -> Response:
        code = {400: "BadRequest", 401: "Unauthorized", 404: "NotFound"}.get(exc.status, "Error")
        return error(exc.status, code, exc.message)

    @app.middleware("http")
    async def gate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """The shop's quota, then the token, for every /api/ request."""
        if not request.url.path.startswith("/api/"):
            return await call_next(request)
        bc = store()
        allowed, remaining, retry = bc.limiter.hit(bc.limiter_now(), bc.settings)
        if not allowed:
            return too_many(retry, f"APIの利用制限（{bc.settings.rate_limit}回/{bc.settings.rate_window_seconds:g}秒）"
                                   f"を超えました。{retry}秒後に再度お試しください。")
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        refused = state.world.faults["bcart"].refuse_token
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), DEMO_API_TOKEN.encode()) \
                or refused:
            return error(401, "Unauthorized", "アクセストークンが無効です。",
                         {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        body = (await request.body()).decode("utf-8", "replace") if request.method in ("PATCH", "POST", "PUT") else ""
        bc.api_requests.append({"at": bc.now().isoformat(), "method": request.method, "path": request.url.path,
                                "query": request.url.query, "body": body})
        response = await call_next(request)
        response.headers["X-RateLimit-Limit"] = str(bc.settings.rate_limit)
        response.headers["X-RateLimit-Remaining"] = str(remaining)
        return response

    @app.get(API + "/orders")
    async def list_orders(request: Request) -> dict[str, Any]:
        bc = store()
        q = request.query_params
        limit = _int(q.get("limit", "20"), "limit")
        offset = _int(q.get("offset", "0"), "offset")
        if not 1 <= limit <= bc.settings.page_limit_max:
            raise BcartError(400, f"limit: 1〜{bc.settings.page_limit_max}で指定してください。")
        orders = sorted(bc.orders.values(), key=lambda o: o.id)
        if q.get("id"):
            orders = [o for o in orders if o.id == _int(q["id"], "id")]
        if q.get("code"):
            orders = [o for o in orders if o.code == q["code"].strip()]
        if q.get("status"):
            wanted = q["status"].strip()
            if wanted not in bc.status_values():
                raise BcartError(400, f"status: {wanted!r} は存在しません。"
                                      f"使用できる値: {', '.join(bc.status_values())}")
            orders = [o for o in orders if o.status == wanted]
        for key, end in (("ordered_at__gte", False), ("ordered_at__lte", True)):
            if q.get(key):
                moment = _moment(q[key], end)
                if moment is None:
                    raise BcartError(400, f"{key}: yyyy-mm-dd または yyyy-mm-dd HH:MM:SS で指定してください。")
                orders = [o for o in orders if (o.ordered_at >= moment if not end else o.ordered_at <= moment)]
        complete = q.get("complete") == "1"
        page = orders[offset:offset + limit]
        return {"orders": [bc.order_json(o, complete) for o in page],
                "meta": {"total": len(orders), "limit": limit, "offset": offset}}

    @app.get(API + "/orders/{order_id}")
    async def show_order(order_id: int) -> dict[str, Any]:
        bc = store()
        return {"order": bc.order_json(bc.get_order(order_id), complete=True)}

    @app.patch(API + "/orders/{order_id}")
    async def update_order(order_id: int, request: Request) -> dict[str, Any]:
        bc = store()
        data = await _body(request)
        order = bc.get_order(order_id)
        unknown = sorted(set(data) - {"status", "admin_message"})
        if unknown:
            raise BcartError(400, f"{', '.join(unknown)} は更新できない項目です。")
        if "status" in data:
            bc.set_order_status(order.id, str(data["status"] or ""), via="api")
        if "admin_message" in data:
            bc.set_admin_message(order.id, str(data["admin_message"] or ""), via="api")
        return {"order": bc.order_json(order, complete=True)}

    @app.get(API + "/logistics/{logistics_id}")
    async def show_logistics(logistics_id: int) -> dict[str, Any]:
        bc = store()
        return {"logistic": bc.logistics_json(bc.get_logistics(logistics_id))}

    @app.patch(API + "/logistics/{logistics_id}")
    async def update_logistics(logistics_id: int, request: Request) -> dict[str, Any]:
        bc = store()
        data = await _body(request)
        return {"logistic": bc.logistics_json(bc.update_logistics(logistics_id, data, via="api"))}

    @app.get(API + "/order_statuses")
    async def order_statuses() -> dict[str, Any]:
        bc = store()
        return {"order_statuses": [{"status": v, "label": bc.label(v), "custom": v.startswith("カスタム")}
                                   for v in bc.status_values()]}
