"""The sandbox's admin API (HTTP + JSON): what a buyer, the warehouse, Amazon and time do, and a
window on every system's state. Documented in README.md, 'Sandbox admin API'."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from sandbox.world import JST, FaultSettings, World

if TYPE_CHECKING:
    from sandbox.server import SandboxState


class Advance(BaseModel):
    days: float = 0
    hours: float = 0
    minutes: float = 0
    seconds: float = 0


class PlaceOrder(BaseModel):
    skus: dict[str, int] | list[str]
    remote: bool | None = Field(None, description="true: a buyer in Okinawa/Hokkaido (slow MCF delivery)")
    boss_listed: bool = Field(True, description="false: BOSS never lists this order")


class IncomingMail(BaseModel):
    subject: str
    body: str
    sender_name: str = "楽天市場"
    sender_email: str = "order@rakuten.co.jp"
    recipient: str | None = None
    """The address it was sent to (e.g. the claims address); None: the desk's support address."""
    forwarded_by_name: str | None = None
    forwarded_by_email: str | None = None
    """An agent forwarded it (Zendesk agent forwarding): the sender is the original one."""


class BuyerQuestion(BaseModel):
    kind: str = Field("where", description="where | where_fullwidth | where_no_number | unknown_order | "
                                           "not_delivery | broken | reply_to_order_mail | not_a_buyer")
    order_number: str | None = None


class Stock(BaseModel):
    rsl: dict[str, int] = Field(default_factory=dict)
    fba: dict[str, int] = Field(default_factory=dict)


class Faults(BaseModel):
    system: str
    latency_ms: int = 0
    error_rate: float = 0.0
    burst_429: int = 0
    expire_sessions: bool = False
    refuse_token: bool = False
    hide_elements: list[str] = Field(default_factory=list)
    error_paths: list[str] = Field(default_factory=list)
    rename_labels: dict[str, str] = Field(default_factory=dict)


class Reset(BaseModel):
    seed: int = 1
    scenario: str | None = None
    orders: int | None = None
    start: datetime | None = None


def summary(world: World) -> dict[str, Any]:
    """What happened, counted per system: what the demo's table is checked against."""
    actions = Counter((e["system"], e["action"]) for e in world.audit)
    mails = Counter(m.template for o in world.orders.values() for m in o.mails)
    tickets = Counter(t.status for t in world.zendesk.tickets.values())
    return {
        "now": world.now().isoformat(),
        "orders": len(world.orders),
        "tickets_by_status": dict(tickets),
        "mails_by_template": dict(mails),
        "rms_confirmations": actions[("rms", "confirm_order")],
        "boss_deletions": actions[("boss", "order_deleted")],
        "boss_cancellations": actions[("boss", "order_cancelled")],
        "mcf_orders": len(world.amazon.snapshot().get("fulfillment_orders", [])),
        "tamago_flagged": len(world.tamago.flagged_orders()),
        "tamago_released": actions[("tamago", "order_released")],
        "tamago_corrected": actions[("tamago", "order_corrected")],
        "bcart_orders": len(world.bcart.orders),
        "bcart_mails_by_template": dict(Counter(m.template for m in world.bcart.mails)),
        "request_counts": dict(world.request_counts),
        "responses_429": dict(world.responses_429),
    }


def create_app(state: SandboxState) -> FastAPI:
    app = FastAPI(title="Kuroko sandbox admin API")

    def w() -> World:
        return state.world

    @app.get("/admin/clock")
    async def clock() -> dict[str, str]:
        now = w().now()
        return {"now": now.isoformat(), "now_jst": now.astimezone(JST).isoformat()}

    @app.post("/admin/clock/advance")
    async def advance(body: Advance) -> dict[str, str]:
        delta = timedelta(days=body.days, hours=body.hours, minutes=body.minutes, seconds=body.seconds)
        try:
            w().advance(delta)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc
        return await clock()

    @app.post("/admin/orders")
    async def place_order(body: PlaceOrder) -> dict[str, Any]:
        try:
            order = w().place_order(body.skus, remote=body.remote, boss_listed=body.boss_listed)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc
        return w().order_state(order)

    @app.get("/admin/orders")
    async def orders() -> list[dict[str, Any]]:
        return [w().order_state(o) for o in w().orders.values()]

    @app.get("/admin/orders/{order_number}")
    async def order(order_number: str) -> dict[str, Any]:
        found = w().orders.get(order_number)
        if found is None:
            raise HTTPException(404, f"no order {order_number}")
        return w().order_state(found)

    @app.post("/admin/mail")
    async def mail(body: IncomingMail) -> dict[str, Any]:
        forwarder = ((body.forwarded_by_name or body.forwarded_by_email, body.forwarded_by_email)
                     if body.forwarded_by_email else None)
        ticket = w().zendesk.receive_mail(subject=body.subject, body=body.body,
                                          sender=(body.sender_name, body.sender_email), recipient=body.recipient,
                                          forwarded_by=forwarder)
        return {"ticket_id": ticket.id}

    @app.post("/admin/zendesk/questions")
    async def question(body: BuyerQuestion) -> dict[str, Any]:
        """A buyer's mail to the shop (sandbox/zendesk/questions.py), from the order's masked address."""
        from sandbox.zendesk.questions import ask

        try:
            ticket = ask(w(), body.kind, body.order_number)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc
        return {"ticket_id": ticket.id, "subject": ticket.subject, "sender": ticket.sender}

    @app.post("/admin/stock")
    async def stock(body: Stock) -> dict[str, Any]:
        w().rsl_stock.update(body.rsl)
        w().amazon.fba_stock.update(body.fba)
        return {"rsl": w().rsl_stock, "fba": w().amazon.fba_stock}

    @app.post("/admin/faults")
    async def faults(body: Faults) -> dict[str, Any]:
        if body.system not in w().faults:
            raise HTTPException(400, f"unknown system {body.system!r}; one of {sorted(w().faults)}")
        w().faults[body.system] = FaultSettings(**body.model_dump(exclude={"system"}))
        return {"system": body.system, **body.model_dump(exclude={"system"})}

    @app.delete("/admin/faults")
    async def clear_faults() -> dict[str, str]:
        for name in w().faults:
            w().faults[name] = FaultSettings()
        return {"faults": "cleared"}

    @app.get("/admin/state")
    async def world_state() -> dict[str, Any]:
        return {
            "summary": summary(w()),
            "orders": [w().order_state(o) for o in w().orders.values()],
            "rsl_stock": w().rsl_stock,
            "zendesk": w().zendesk.snapshot(),
            "amazon": w().amazon.snapshot(),
            "tamago": w().tamago.snapshot(),
            "bcart": w().bcart.snapshot(),
        }

    @app.get("/admin/summary")
    async def world_summary() -> dict[str, Any]:
        return summary(w())

    @app.get("/admin/audit")
    async def audit(system: str | None = None, action: str | None = None) -> list[dict[str, Any]]:
        return [
            e for e in w().audit
            if (system is None or e["system"] == system) and (action is None or e["action"] == action)
        ]

    @app.post("/admin/reset")
    async def reset(body: Reset) -> dict[str, Any]:
        from sandbox.scenarios import apply_scenario
        from sandbox.world import DEFAULT_START

        urls = w().urls
        state.world = World(seed=body.seed, start=body.start or DEFAULT_START)
        state.world.urls = urls
        placed: list[str] = []
        if body.scenario:
            try:
                placed = apply_scenario(state.world, body.scenario, seed=body.seed, orders=body.orders)
            except ValueError as exc:
                raise HTTPException(400, str(exc)) from exc
        return {"now": state.world.now().isoformat(), "scenario": body.scenario, "orders": placed}

    # Each system may add its own admin knobs under /admin/<system>/… (an `admin_router(state)`).
    from sandbox.server import wing_modules

    for module in wing_modules().values():
        router = getattr(module, "admin_router", None)
        if router is not None:
            app.include_router(router(state))
    return app
