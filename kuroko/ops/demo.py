"""``kuroko demo``: start the sandbox, seed a realistic day, run the robot through it with the
clock moving (30 minutes, the next day, tracking), print what happened — checked against what the
sandbox itself says — and write the HTML report."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from kuroko.ledger import Ledger
from kuroko.settings import Settings
from sandbox.process import SandboxAdmin, SandboxProcess

TIMELINE: list[tuple[str, dict[str, float]]] = [
    ("12:00, the morning's orders are in", {}),
    ("31 minutes later: no RSL stock means MCF", {"minutes": 31}),
    ("2 hours later: orders BOSS never listed go to a person", {"hours": 2}),
    ("next morning: Amazon has shipped", {"hours": 20}),
    ("a day later: RMS shows shipments complete", {"days": 1}),
    ("another day: the rest", {"days": 1}),
]
AFTERSALES_TIMELINE: list[tuple[str, dict[str, float]]] = [
    ("three days on: parcels delivered, late or damaged", {"days": 3}),
    ("six days later: parcels never delivered (EDD + 7 days) become lost claims", {"days": 6}),
]
"""After the orders: the after-sales procedure follows every MCF parcel to its delivery."""
AFTERSALES_PLANS: list[dict[str, Any]] = [{"fate": "late"}, {"fate": "lost"}, {"fate": "damaged"},
                                          {"fate": "late", "deliver_after_days": 2}]
"""What Amazon does with the day's first Rakuten MCF orders (the others are delivered on time)."""
AFTERSALES_PLANS_AT = 1
"""The TIMELINE moment (31 minutes later) whose pass creates the Rakuten MCF orders: the plans are
queued then, after the Bカート orders' MCF orders of the first pass."""
AFTERSALES_OUTCOMES = ("delivered", "late", "lost", "damaged")


@dataclass
class DemoResult:
    robot: dict[str, int]
    sandbox: dict[str, int]
    report: Path
    ledger_url: str
    aftersales_robot: dict[str, int] | None = None
    aftersales_sandbox: dict[str, int] | None = None

    @property
    def consistent(self) -> bool:
        return self.robot == self.sandbox and self.aftersales_robot == self.aftersales_sandbox


def aftersales_robot_counts(ledger: Ledger) -> dict[str, int]:
    """The after-sales outcomes the robot recorded (one per MCF order) and the claims it prepared."""
    from kuroko.ledger import list_claims

    items = [i for i in ledger.items(procedure="mcf_aftercare") if i.state == "done"]
    outcomes = Counter(i.path for i in items)
    claims = Counter(c.kind for c in list_claims(ledger))
    return {**{f"MCF orders {o}": outcomes[o] for o in AFTERSALES_OUTCOMES},
            "lost claims": claims["lost"], "damaged claims": claims["damaged"]}


def aftersales_sandbox_counts(admin: SandboxAdmin) -> dict[str, int]:
    """What Amazon's side says happened to the same parcels (each order's fate and its tracking)."""
    fates: Counter[str] = Counter()
    for order in admin.get("/admin/amazon/fulfillment-orders"):
        if not str(order.get("seller_fulfillment_order_id", "")).startswith("RKT-"):
            continue  # the after-sales procedure follows Rakuten orders' parcels (Bカート's: not yet)
        packages = order["packages"]
        if not packages:
            continue
        fate = order["fate"]
        if fate == "late" and all(p["tracking_status"] == "DELIVERED" for p in packages):
            fates["late"] += 1
        elif fate in ("delivered", "damaged") and all(p["tracking_status"] == "DELIVERED" for p in packages):
            fates[fate] += 1
        elif fate == "lost":
            fates["lost"] += 1
    return {**{f"MCF orders {o}": fates[o] for o in AFTERSALES_OUTCOMES},
            "lost claims": fates["lost"], "damaged claims": fates["damaged"]}


def robot_counts(ledger: Ledger) -> dict[str, int]:
    """What the robot's own ledger says it did."""
    trail = [e for e in ledger.audit_trail() if e.actor == "robot"]
    actions = Counter(e.action for e in trail)
    return {
        # A completion note leaves the ticket open when another item's hand-over is on it.
        "tickets solved": sum(e.action in ("note_in_stock", "note_completed")
                              and json.loads(e.detail or "{}").get("status") == "solved" for e in trail),
        "MCF orders created": actions["create_mcf_order"],
        "サンクスメール sent": actions["send_thank_you_mail"],
        "発送メール sent": actions["send_shipping_mail"],
        "BOSS deletions": actions["order_deletion"],
        "BOSS cancellations": 0,
        "Bカート mails sent": actions["send_mail"],
        "Bカート shipping results": actions["update_logistics"],
        "たまご orders released": len({e.item_id for e in ledger.audit_trail()
                                     if e.actor == "robot" and e.action.startswith("release_flag_")}),
        "たまご orders corrected": sum(actions[a] for a in ("apply_member_discount", "correct_island_order",
                                                         "move_ship_date")),
    }


def sandbox_counts(admin: SandboxAdmin) -> dict[str, int]:
    """What the four systems say happened."""
    summary = admin.summary()
    mails = summary["mails_by_template"]
    return {
        "tickets solved": summary["tickets_by_status"].get("solved", 0),
        "MCF orders created": summary["mcf_orders"],
        "サンクスメール sent": mails.get("サンクスメール", 0),
        "発送メール sent": mails.get("発送メール JM", 0) + mails.get("発送メール JS", 0),
        "BOSS deletions": summary["boss_deletions"],
        "BOSS cancellations": summary["boss_cancellations"],
        "Bカート mails sent": len(admin.get("/admin/bcart/mails")),
        "Bカート shipping results": len({c["id"] for c in admin.get("/admin/bcart/history")
                                        if (c["target"], c["field"], c["via"]) == ("logistics", "status", "api")}),
        "たまご orders released": summary["tamago_released"],
        "たまご orders corrected": summary["tamago_corrected"],
    }


def play_office_staff(ledger: Ledger, admin: SandboxAdmin, console: Console) -> None:
    """The demo plays the office: office shipments get a carrier and tracking number, through the
    same code path as `kuroko ship`."""
    from bots.rakuten_sim_order import NAME, ship
    from kuroko.procedure import DeskContext
    from kuroko.settings import get_settings

    desk = DeskContext(ledger=ledger, settings=get_settings(), now=admin.now(), by="person (demo office staff)")
    for n, item in enumerate(i for i in ledger.items(procedure=NAME) if i.facts.get("shipment") == "office"
                             and not i.facts.get("tracking_number") and i.state == "active"):
        tracking = f"4471-2033-{5100 + n:04d}"
        ship(desk, item.key, carrier="日本郵便", tracking=tracking)
        console.print(f"  [dim](the demo plays the office: kuroko ship {item.key} --carrier 日本郵便 "
                      f"--tracking {tracking})[/]")


BCART_ORDERS: list[tuple[str, str, list[dict[str, Any]]]] = [
    ("paid by invoice", "後払い（Paid）", [{"items": [{"product_no": "BC-SIM30-20G", "quantity": 2}]}]),
    ("bank transfer", "銀行振込", [{"items": [{"product_no": "BC-SIM90-50G", "quantity": 1}]}]),
    ("out of stock", "後払い（Paid）", [{"items": [{"product_no": "BC-VOICE30", "quantity": 1}]}]),
    ("two destinations", "請求書払い", [
        {"items": [{"product_no": "BC-SIM30-20G", "quantity": 1}]},
        {"comp_name": "株式会社トラベルモバイル 大阪支店", "name": "佐藤 花子", "zip": "530-0001", "pref": "大阪府",
         "address1": "大阪市北区", "address2": "梅田3-1-1", "items": [{"product_no": "BC-SIM90-50G", "quantity": 1}]},
    ]),
]
"""The B-cart day: one wholesale order of each kind the Bカート procedure meets (as the sandbox's
``bcart`` scenario places them)."""
BCART_PEOPLE_ACT_AT = 3
"""The TIMELINE moment (next morning) at which the shop's people act on B-cart: the bank transfer
has arrived (決済確認日), and the out-of-stock order is cancelled (FBA gets no stock of it today)."""


TAMAGO_ORDERS: list[tuple[str, dict[str, Any]]] = [
    ("blacklist candidate, no blacklisted match", {"reason": "blacklist_candidate", "blacklisted_match": False}),
    ("blacklist candidate, a blacklisted match", {"reason": "blacklist_candidate", "blacklisted_match": True}),
    ("subscription discount candidate", {"reason": "discount_candidate"}),
    ("subscription discount candidate, overdue", {"reason": "discount_candidate", "subscription": True,
                                                  "ship_in_days": -2}),
    ("remote island", {"reason": "remote_island"}),
    ("NP credit NG (pattern 1)", {"reason": "np_ng_1"}),
    ("たまご payment failed", {"reason": "payment_failed", "cycle": 3}),
    ("flagged by hand", {"reason": "manual", "comment": "在庫確認のため出荷保留"}),
]
"""たまごリピート's 要対応 queue on the demo day: one order per kind of case the procedure meets."""


def place_tamago_orders(admin: SandboxAdmin, console: Console) -> dict[str, str]:
    placed = {kind: str(admin.tamago_order(**body)["order_id"]) for kind, body in TAMAGO_ORDERS}
    console.print("たまご: " + ", ".join(f"{kind} ({oid})" for kind, oid in placed.items()))
    return placed


def print_tamago_day(console: Console, admin: SandboxAdmin, ledger: Ledger, placed: dict[str, str]) -> None:
    table = Table(title="The たまご day (what たまご shows)")
    for col in ("order", "case", "たまご status", "要対応", "Kuroko"):
        table.add_column(col, overflow="fold")
    for kind, oid in placed.items():
        order = admin.tamago(oid)
        item = ledger.find_item(oid, "tamago_attention")
        said = "-" if item is None else ("released" if item.state == "done" else
                                         f"waiting for a person: {item.hold_reason}" if item.state == "held" else
                                         f"at {item.step}")
        table.add_row(oid, kind, order["status"], "yes" if order["flagged"] else "no", said)
    console.print(table)


def place_bcart_orders(admin: SandboxAdmin, console: Console) -> dict[str, int]:
    placed = {}
    for kind, payment, destinations in BCART_ORDERS:
        placed[kind] = admin.bcart_order(payment, destinations=destinations)["id"]
    console.print("B-cart: " + ", ".join(f"{kind} (受注ID {oid})" for kind, oid in placed.items()))
    return placed


def play_bcart_people(admin: SandboxAdmin, placed: dict[str, int], console: Console) -> None:
    admin.bcart_payment_seen(placed["bank transfer"])
    admin.post(f"/admin/bcart/orders/{placed['out of stock']}/status", {"status": "キャンセル"})
    console.print(f"  [dim](the demo plays the shop: 決済確認日 entered for B-cart order {placed['bank transfer']}; "
                  f"order {placed['out of stock']} cancelled while out of stock)[/]")


def print_bcart_day(console: Console, admin: SandboxAdmin, placed: dict[str, int]) -> None:
    table = Table(title="The B-cart day (what B-cart and Amazon show)")
    for col in ("order", "対応状況", "mails sent", "MCF orders", "送り状番号 / 発送日"):
        table.add_column(col)
    mcf = {o["seller_fulfillment_order_id"] for o in admin.state()["amazon"]["fulfillment_orders"]}
    for kind, oid in placed.items():
        order = admin.bcart_state(oid)
        shipped = "; ".join(f"{lg['delivery_code'] or '-'} / {lg['shipment_date'] or '-'}" for lg in order["logistics"])
        table.add_row(f"{oid} {kind}", order["status_label"], ", ".join(m["template"] for m in order["mails"]) or "-",
                      ", ".join(f"BC-{lg['id']}" for lg in order["logistics"] if f"BC-{lg['id']}" in mcf) or "-",
                      shipped)
    console.print(table)


def run_demo(console: Console, *, orders: int = 50, seed: int = 20261120, data_dir: Path = Path("data/demo"),
             headed: bool = False) -> DemoResult:
    from kuroko.clock import clock_from_url
    from kuroko.connections import Connections
    from kuroko.logs import setup_logging
    from kuroko.ops.progress import PassProgress
    from kuroko.ops.report import write_report
    from kuroko.runner import Runner
    from kuroko.settings import reload_settings

    if data_dir.exists():
        shutil.rmtree(data_dir)
    console.print(f"[bold]Kuroko demo[/]: a seeded day of {orders} Rakuten orders (seed {seed}), four B-cart "
                  f"orders and {len(TAMAGO_ORDERS)} flagged たまご orders in the sandbox.")
    with SandboxProcess(scenario="day", seed=seed, orders=orders) as admin:
        saved = {k: os.environ.get(k) for k in admin.robot_env()}
        os.environ.update(admin.robot_env())
        reload_settings()
        try:
            settings = Settings(data_dir=data_dir, headless=not headed)
            setup_logging(settings, console=False)
            ledger = Ledger(settings.ledger_database_url())
            console.print(f"Sandbox up: BOSS {admin.urls['boss']}/orders · RMS {admin.urls['rms']} · "
                          f"Zendesk {admin.urls['zendesk']} · SP-API {admin.urls['spapi']}")
            connections = Connections(settings, headless=not headed)
            placed = place_bcart_orders(admin, console)
            flagged = place_tamago_orders(admin, console)
            try:
                with PassProgress(console) as progress:
                    runner = Runner(settings, ledger, connections, clock_from_url(settings.clock_url),
                                    listener=progress.listener)
                    counts: tuple[dict[str, int], dict[str, int]] | None = None
                    for moment, (label, delta) in enumerate([*TIMELINE, *AFTERSALES_TIMELINE]):
                        if counts is None and label == AFTERSALES_TIMELINE[0][0]:
                            # The order desk's day, checked before the after-sales notes reopen tickets.
                            counts = robot_counts(ledger), sandbox_counts(admin)
                        if delta:
                            admin.advance(**delta)
                        if moment == AFTERSALES_PLANS_AT:
                            for plan in AFTERSALES_PLANS:
                                admin.post("/admin/amazon/plans/next", plan)
                        play_office_staff(ledger, admin, console)
                        if moment == BCART_PEOPLE_ACT_AT:
                            play_bcart_people(admin, placed, console)
                        report = runner.run_pass()
                        progress.finish()
                        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items())) or "nothing due"
                        console.print(f"[cyan]{label}[/]: {report.items_run} items worked ({outcomes})")
            finally:
                connections.close()
            assert counts is not None
            result = DemoResult(counts[0], counts[1],
                                write_report(settings, ledger, data_dir / "report.html", title="Kuroko demo"),
                                settings.ledger_database_url(), aftersales_robot_counts(ledger),
                                aftersales_sandbox_counts(admin))
            print_bcart_day(console, admin, placed)
            print_tamago_day(console, admin, ledger, flagged)
            print_summary(console, ledger, result)
            ledger.close()
            return result
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def print_summary(console: Console, ledger: Ledger, result: DemoResult) -> None:
    orders = ledger.items()
    outcome = Table(title="Work items")
    for col in ("procedure", "outcome", "path", "items"):
        outcome.add_column(col)
    for (procedure, state, path), n in sorted(Counter((o.procedure, o.state, o.path or "-") for o in orders).items()):
        outcome.add_row(procedure, {"done": "complete", "held": "held for a person", "active": "waiting"}[state], path,
                        str(n))
    console.print(outcome)
    reasons = Counter(o.hold_code for o in orders if o.state == "held")
    if reasons:
        held = Table(title="Why orders were handed to a person")
        held.add_column("reason")
        held.add_column("orders")
        for code, n in reasons.most_common():
            held.add_row(str(code), str(n))
        console.print(held)
    check = Table(title="What the robot says it did vs. what the sandbox saw")
    for col in ("", "robot's ledger", "sandbox", ""):
        check.add_column(col)
    for key, mine in result.robot.items():
        theirs = result.sandbox[key]
        check.add_row(key, str(mine), str(theirs), "[green]✓[/]" if mine == theirs else "[red]✗[/]")
    console.print(check)
    if result.aftersales_robot is not None and result.aftersales_sandbox is not None:
        after = Table(title="After the parcel left (MCF after-sales): the robot's ledger vs. Amazon's parcels")
        for col in ("", "robot's ledger", "sandbox", ""):
            after.add_column(col)
        for key, mine in result.aftersales_robot.items():
            theirs = result.aftersales_sandbox.get(key, 0)
            after.add_row(key, str(mine), str(theirs), "[green]✓[/]" if mine == theirs else "[red]✗[/]")
        console.print(after)
    console.print(f"Report: [bold]{result.report.resolve()}[/]  (open it in a browser)")
    console.print(f"Ledger: {result.ledger_url}  — try `KUROKO_DATA_DIR={result.report.parent} kuroko status`")


def summary_dict(result: DemoResult) -> dict[str, Any]:
    return {"robot": result.robot, "sandbox": result.sandbox, "aftersales_robot": result.aftersales_robot,
            "aftersales_sandbox": result.aftersales_sandbox, "report": str(result.report)}
