"""Fault injection shared by the four sandbox apps: latency, 5xx, 429 bursts, request counts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

if TYPE_CHECKING:
    from sandbox.server import SandboxState

TooManyRequests = Callable[[Request], Response]


def _default_429(request: Request) -> Response:
    return PlainTextResponse("Too Many Requests", status_code=429, headers={"Retry-After": "1"})


def _default_500(request: Request) -> Response:
    if request.url.path.startswith("/api") or "json" in request.headers.get("accept", ""):
        return JSONResponse({"error": "InternalServerError", "description": "sandbox fault"}, status_code=500)
    return PlainTextResponse("500 Internal Server Error (sandbox fault)", status_code=500)


def install_faults(
    app: FastAPI,
    state: SandboxState,
    system: str,
    *,
    too_many: TooManyRequests = _default_429,
    server_error: Callable[[Request], Response] = _default_500,
) -> None:
    """Count every request to ``system`` and apply its fault knobs before the app sees it."""

    @app.middleware("http")
    async def faults(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path.startswith("/static"):
            return await call_next(request)
        world = state.world
        world.request_counts[system] += 1
        knobs = world.faults[system]
        if knobs.latency_ms:
            await asyncio.sleep(knobs.latency_ms / 1000)
        if knobs.burst_429 > 0:
            knobs.burst_429 -= 1
            world.responses_429[system] += 1
            return too_many(request)
        if knobs.error_rate > 0 and (
            not knobs.error_paths or any(p in request.url.path for p in knobs.error_paths)
        ) and world.fault_rng.random() < knobs.error_rate:
            return server_error(request)
        response = await call_next(request)
        if response.status_code == 429:  # the system's own quota said no
            world.responses_429[system] += 1
        return response
