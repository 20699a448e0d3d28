"""The ``kuroko`` command."""

from __future__ import annotations

import signal
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from kuroko.clock import clock_from_url
from kuroko.errors import ConfigurationError, KurokoError
from kuroko.ledger import Ledger, Order, OrderState
from kuroko.settings import Settings, get_settings

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Kuroko, the order-desk robot: Rakuten physical-SIM orders through BOSS, RMS, Zendesk "
                       "and Amazon MCF.")
console = Console()
err = Console(stderr=True)

HeadedOpt = Annotated[bool, typer.Option("--headed", help="Show the browser window.")]
SlowMoOpt = Annotated[int, typer.Option("--slow-mo", metavar="MS", help="Slow every browser action by MS ms.")]
PauseOpt = Annotated[bool, typer.Option("--pause-on-error", help="Open the Playwright inspector at a failing "
                                                                  "step (use with --headed).")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Walk the steps, touch nothing, print what would "
                                                          "have been done.")]


def fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(2)


def open_ledger(settings: Settings) -> Ledger:
    return Ledger(settings.ledger_database_url())


def local(settings: Settings, moment: datetime | None) -> str:
    return moment.astimezone(ZoneInfo(settings.timezone)).strftime("%Y-%m-%d %H:%M") if moment else "-"


def find_order_or_fail(ledger: Ledger, order_number: str) -> Order:
    order = ledger.find_order(order_number)
    if order is None:
        fail(f"the ledger has no order {order_number!r}. `kuroko status` lists the orders it knows.")
        raise AssertionError
    return order


def make_runner(settings: Settings, *, dry_run: bool = False, headed: bool = False, slow_mo: int = 0,
                trace: str = "retain-on-failure", listener: Any = None, pause_on_error: bool = False) -> Any:
    from kuroko.logs import setup_logging
    from kuroko.runner import Runner
    from kuroko.systems import Systems

    setup_logging(settings, console=listener is None)
    ledger = open_ledger(settings)
    if trace not in ("retain-on-failure", "on", "off"):
        fail(f"--trace {trace!r}: use retain-on-failure, on or off")
    systems = Systems(settings, headless=False if headed else None, slow_mo_ms=slow_mo or None,
                      tracing=trace != "off")
    if pause_on_error and not headed:
        fail("--pause-on-error needs --headed: the inspector opens on the visible browser")
    return Runner(settings, ledger, systems, clock_from_url(settings.clock_url), dry_run=dry_run, trace=trace,
                  listener=listener, pause_on_error=pause_on_error)


def print_report(report: Any, *, dry_run: bool) -> None:
    for line in report.intake:
        console.print(f"  intake: {line}")
    if report.intake_error:
        console.print(f"[yellow]New tickets not taken in:[/] {report.intake_error}")
    if dry_run:
        console.print("[bold]Dry run — nothing was changed. What would have been done:[/]")
        for action in report.actions or ["nothing"]:
            console.print(f"  {action}")
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items())) or "no order was due"
    console.print(f"Pass at {report.started_at:%Y-%m-%d %H:%M} UTC: {report.orders_run} orders run ({outcomes}); "
                  f"BOSS list read {report.boss_list_reads}×")
    if report.stopped_early:
        console.print(f"[yellow]Stopped early:[/] {report.stopped_early}")


@app.command()
def run(once: Annotated[bool, typer.Option("--once", help="One pass over the due orders, then exit.")] = False,
        dry_run: DryRunOpt = False, headed: HeadedOpt = False, slow_mo: SlowMoOpt = 0,
        pause_on_error: PauseOpt = False,
        interval: Annotated[float, typer.Option(help="Seconds between passes (without --once).")] = 60,
        trace: Annotated[str, typer.Option(help="retain-on-failure | on | off")] = "retain-on-failure") -> None:
    """Process every due order (once, or polling until Ctrl+C)."""
    from kuroko.ops.progress import PassProgress

    settings = get_settings()
    with PassProgress(console) as progress:
        runner = make_runner(settings, dry_run=dry_run, headed=headed, slow_mo=slow_mo, trace=trace,
                             listener=progress.listener, pause_on_error=pause_on_error)

        def stop(signum: int, _frame: Any) -> None:
            runner.stop_requested = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            while True:
                report = runner.run_pass()
                progress.finish()
                print_report(report, dry_run=dry_run)
                if once or dry_run or runner.stop_requested:
                    break
                deadline = time.monotonic() + interval
                while time.monotonic() < deadline and not runner.stop_requested:
                    time.sleep(0.2)
                if runner.stop_requested:
                    break
        except KurokoError as exc:
            fail(exc.message)
        finally:
            runner.systems.close()


@app.command()
def status() -> None:
    """Every order the robot knows: counts by state and path, held orders with their reasons."""
    settings = get_settings()
    ledger = open_ledger(settings)
    orders = ledger.orders()
    if not orders:
        console.print("The ledger is empty: no order has been taken in yet (`kuroko run --once`).")
        return
    counts = Counter((o.state, o.path or "-") for o in orders)
    table = Table(title=f"{len(orders)} orders")
    for col in ("state", "path", "orders"):
        table.add_column(col)
    for (state, path), n in sorted(counts.items()):
        table.add_row(state, path, str(n))
    console.print(table)
    held = [o for o in orders if o.state == OrderState.HELD.value]
    if held:
        t = Table(title="Held for a person")
        for col in ("order", "ticket", "step", "reason"):
            t.add_column(col, overflow="fold")
        for o in held:
            t.add_row(o.order_number, str(o.ticket_id or "-"), o.step, o.hold_reason or "-")
        console.print(t)
    waiting = [o for o in orders if o.state == OrderState.ACTIVE.value]
    if waiting:
        t = Table(title="Waiting")
        for col in ("order", "next step", "due (JST)", "path"):
            t.add_column(col)
        for o in waiting:
            t.add_row(o.order_number, o.step, local(settings, o.next_due_at), o.path or "-")
        console.print(t)


@app.command()
def show(order_number: str) -> None:
    """One order: its state, every step outcome and the audit trail."""
    settings = get_settings()
    ledger = open_ledger(settings)
    order = find_order_or_fail(ledger, order_number)
    console.print(f"[bold]{order.order_number}[/]  ticket #{order.ticket_id}  state {order.state}  "
                  f"step {order.step}  path {order.path or '-'}")
    if order.hold_reason:
        console.print(f"[yellow]held:[/] {order.hold_reason}")
    steps = Table(title="Steps")
    for col in ("step", "status", "attempt", "ref", "detail / error"):
        steps.add_column(col, overflow="fold")
    evidence: list[str] = []
    for s in ledger.steps(order.id):
        steps.add_row(s.name, s.status, str(s.attempt), s.external_ref or "", s.error_message or s.detail or "")
        evidence += [f"{s.name} (attempt {s.attempt}): {path}" for path in s.evidence or []]
    console.print(steps)
    if evidence:
        console.print("[bold]Evidence[/] (screenshots; traces open with `playwright show-trace FILE`):")
        for line in evidence:
            console.print("  " + line, soft_wrap=True, highlight=False)
    audit = Table(title="Audit trail")
    for col in ("when (JST)", "who", "system", "action", "detail"):
        audit.add_column(col, overflow="fold")
    for e in ledger.audit_trail(order.id):
        audit.add_row(local(settings, e.at), e.actor, e.system, e.action, e.detail or "")
    console.print(audit)


@app.command()
def release(order_number: str) -> None:
    """Let a held order go on from the step where it stopped (also removes the hold tag)."""
    from kuroko.runner import Runner
    from kuroko.systems import Systems

    settings = get_settings()
    ledger = open_ledger(settings)
    order = find_order_or_fail(ledger, order_number)
    if order.state != OrderState.HELD.value:
        fail(f"order {order_number} is not held (it is {order.state}).")
    runner = Runner(settings, ledger, Systems(settings), clock_from_url(settings.clock_url))
    runner.release(order, runner.clock.now(), by="person (kuroko release)", remove_tag=True)
    console.print(f"Released {order_number}: it goes on from '{order.step}' at the next pass.")


@app.command()
def ship(order_number: str,
         carrier: Annotated[str, typer.Option(help="RMS shipping company (e.g. 日本郵便) or carrier code.")],
         tracking: Annotated[str, typer.Option(help="The parcel's tracking number.")]) -> None:
    """Give an office shipment its carrier and tracking number; the robot then sends the shipping mail."""
    from bots.rakuten_sim_order import rules as order_rules
    from services.rakuten_mail import normalize_tracking_number

    rules = order_rules()
    settings = get_settings()
    ledger = open_ledger(settings)
    order = find_order_or_fail(ledger, order_number)
    if order.facts.get("shipment") != "office":
        fail(f"order {order_number} is not an office shipment (Amazon ships it).")
    rms_carrier = rules.carrier_map.get(carrier, carrier)
    if rms_carrier not in set(rules.carrier_map.values()):
        fail(f"unknown carrier {carrier!r}; use one of: {', '.join(sorted(set(rules.carrier_map.values())))}")
    try:
        number = normalize_tracking_number(tracking)
    except KurokoError as exc:
        fail(exc.message)
    now = clock_from_url(settings.clock_url).now()
    ledger.update_order(order.id, now, next_due_at=now,
                        facts={"carrier": rms_carrier, "tracking_number": number,
                               "ship_date": local(settings, now)[:10]})
    ledger.audit(order_id=order.id, at=now, actor="person (kuroko ship)", system="kuroko", action="office_shipped",
                 detail={"carrier": rms_carrier, "tracking": number})
    console.print(f"Recorded: {order_number} shipped by {rms_carrier}, tracking {number}. "
                  "The shipping mail goes out at the next pass.")


@app.command()
def sandbox(base_port: Annotated[int, typer.Option(help="Admin API port; BOSS, RMS, Zendesk, SP-API follow.")] = 8100,
            scenario: Annotated[str | None, typer.Option(help="Seed a day of orders: 'day'.")] = None,
            seed: int = 1, orders: Annotated[int | None, typer.Option(help="How many orders.")] = None) -> None:
    """Serve the sandbox of BOSS, RMS, Zendesk and SP-API in the foreground."""
    from sandbox.server import run as run_sandbox

    run_sandbox(base_port=base_port, scenario=scenario, seed=seed, orders=orders)


@app.command()
def replay(order_number: str,
           from_step: Annotated[str | None, typer.Option("--from", help="Start at this step (default: first).")] = None,
           dry_run: DryRunOpt = False, headed: HeadedOpt = False, slow_mo: SlowMoOpt = 0,
           pause_on_error: PauseOpt = False,
           trace: Annotated[str, typer.Option(help="retain-on-failure | on | off")] = "on") -> None:
    """Re-run one order's procedure now, reconciling as always (a finished order stays unchanged)."""
    settings = get_settings()
    runner = make_runner(settings, dry_run=dry_run, headed=headed, slow_mo=slow_mo, trace=trace,
                         pause_on_error=pause_on_error)
    order = find_order_or_fail(runner.ledger, order_number)
    try:
        result, actions = runner.replay(order.id, from_step=from_step)
    except KurokoError as exc:
        fail(exc.message)
    finally:
        runner.systems.close()
    verb = "would do" if dry_run else "did"
    console.print(f"Replayed {order_number}: now {result}. It {verb}: {', '.join(actions) or 'nothing new'}")


@app.command()
def report(output: Annotated[Path | None, typer.Option("--output", "-o", help="Where to write the HTML.")] = None
           ) -> None:
    """Write one self-contained HTML report of every order, its audit trail and evidence."""
    from kuroko.ops.report import write_report

    settings = get_settings()
    path = write_report(settings, open_ledger(settings), output or settings.data_dir / "report.html")
    console.print(f"Report written: {path.resolve()}")


@app.command()
def schedule(file: Annotated[Path | None, typer.Option("--file", help="Schedule TOML.")] = None) -> None:
    """Run unattended: APScheduler runs the jobs in schedules/default.toml until SIGINT/SIGTERM."""
    from kuroko.logs import setup_logging
    from kuroko.ops.schedule import DEFAULT_SCHEDULE, run_schedule
    from kuroko.runner import Runner
    from kuroko.systems import Systems

    settings = get_settings()
    setup_logging(settings)
    ledger = open_ledger(settings)
    clock = clock_from_url(settings.clock_url)
    current: list[Any] = []
    stopping: list[bool] = []

    def run_bot(bot: str) -> None:
        if stopping:
            return
        systems = Systems(settings)
        runner = Runner(settings, ledger, systems, clock)
        current[:] = [runner]
        try:
            report = runner.run_pass()
            from loguru import logger

            logger.info("pass done: {} orders run ({})", report.orders_run, dict(report.outcomes))
        except Exception as exc:
            from loguru import logger

            logger.exception("the pass failed: {}", exc)
        finally:
            systems.close()
            current.clear()

    def on_stop() -> None:
        stopping.append(True)
        for runner in current:
            runner.stop_requested = True

    try:
        run_schedule(file or DEFAULT_SCHEDULE, run_bot, on_stop, settings.data_dir)
    except ConfigurationError as exc:
        fail(exc.message)


@app.command()
def demo(orders: Annotated[int, typer.Option(help="How many orders the seeded day has.")] = 50,
         seed: int = 20261120, headed: HeadedOpt = False,
         data_dir: Annotated[Path, typer.Option(help="Where the demo's ledger and report go.")] = Path("data/demo"),
         ) -> None:
    """Start the sandbox, seed a day, run the robot through it with the clock moving, show the outcome."""
    from kuroko.ops.demo import run_demo

    result = run_demo(console, orders=orders, seed=seed, data_dir=data_dir, headed=headed)
    if not result.consistent:
        err.print("[bold red]The robot's ledger and the sandbox disagree (see the table above).[/]")
        raise typer.Exit(1)


def main() -> None:
    try:
        app()
    except ConfigurationError as exc:
        err.print(f"[bold red]configuration:[/] {exc.message}")
        sys.exit(2)


if __name__ == "__main__":
    main()
