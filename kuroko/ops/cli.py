"""The ``kuroko`` command. It finds the procedures through their registration (kuroko/registry.py):
``run``, ``status``, ``show``, ``release``, ``replay``, ``report`` and ``schedule`` work the same for
every one, and each procedure may add commands of its own (procedure A's ``ship``)."""

from __future__ import annotations

import inspect
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from kuroko.clock import clock_from_url
from kuroko.errors import ConfigurationError, KurokoError
from kuroko.ledger import ItemState, Ledger, WorkItem
from kuroko.settings import Settings, get_settings

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Kuroko, the order-desk robot: runs the order desk's procedures (Rakuten orders through "
                       "BOSS, RMS, Zendesk and Amazon MCF, and whatever else is registered).")
console = Console()
err = Console(stderr=True)

HeadedOpt = Annotated[bool, typer.Option("--headed", help="Show the browser window.")]
SlowMoOpt = Annotated[int, typer.Option("--slow-mo", metavar="MS", help="Slow every browser action by MS ms.")]
PauseOpt = Annotated[bool, typer.Option("--pause-on-error", help="Open the Playwright inspector at a failing "
                                                                  "step (use with --headed).")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Walk the steps, touch nothing, print what would "
                                                          "have been done.")]
PersistentDryRunOpt = Annotated[bool, typer.Option(
    "--dry-run", help="Walk the steps, touch nothing, print what would have been done; the dry runs keep a "
                      "ledger of their own ($KUROKO_DATA_DIR/dry-run/) so waits carry over from pass to pass.")]
ProcedureOpt = Annotated[str | None, typer.Option("--procedure", "-p", help="The procedure the item belongs to "
                                                                           "(when a key names items of several).")]
ProceduresOpt = Annotated[list[str] | None, typer.Option("--procedure", "-p", help="Only this procedure (repeat for "
                                                                                  "several); default: all.")]


def fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def open_ledger(settings: Settings, *, dry_run: bool = False) -> Ledger:
    """The real ledger, or the dry runs' own (seeded from the real one the first time)."""
    if dry_run:
        return Ledger.for_dry_run(settings.ledger_database_url(), settings.dry_run_ledger_path())
    return Ledger(settings.ledger_database_url())


def local(settings: Settings, moment: datetime | None) -> str:
    return moment.astimezone(ZoneInfo(settings.timezone)).strftime("%Y-%m-%d %H:%M") if moment else "-"


def find_item_or_fail(ledger: Ledger, ref: str, procedure: str | None = None) -> WorkItem:
    """An item by its key (with ``--procedure`` when several procedures have that key) or by its
    ledger id written ``#N``."""
    if ref.startswith("#") and ref[1:].isdigit():
        try:
            return ledger.get_item(int(ref[1:]))
        except KeyError:
            fail(f"the ledger has no item {ref}.")
    found = ledger.find_items(ref, procedure)
    if not found:
        where = f" in {procedure}" if procedure else ""
        fail(f"the ledger has no item {ref!r}{where}. `kuroko status` lists the items it knows.")
    if len(found) > 1:
        options = ", ".join(f"{i.procedure} (#{i.id})" for i in found)
        fail(f"{ref} names items of several procedures: {options}. Add --procedure NAME, or give the item as #ID.")
    return found[0]


def load_procedures_or_fail(names: list[str] | None = None) -> list[Any]:
    from kuroko.registry import load_procedures, select

    try:
        return select(load_procedures(), names)
    except ConfigurationError as exc:
        fail(exc.message)
        raise AssertionError from exc


def make_runner(settings: Settings, *, procedures: list[str] | None = None, dry_run: bool = False,
                headed: bool = False, slow_mo: int = 0, trace: str = "retain-on-failure", listener: Any = None,
                pause_on_error: bool = False, persistent_dry_run: bool = False) -> Any:
    from kuroko.connections import Connections
    from kuroko.logs import setup_logging
    from kuroko.runner import Runner

    chosen = load_procedures_or_fail(procedures)
    setup_logging(settings, console=listener is None)
    ledger = open_ledger(settings, dry_run=dry_run and persistent_dry_run)
    if trace not in ("retain-on-failure", "on", "off"):
        fail(f"--trace {trace!r}: use retain-on-failure, on or off")
    if pause_on_error and not headed:
        fail("--pause-on-error needs --headed: the inspector opens on the visible browser")
    connections = Connections(settings, headless=False if headed else None, slow_mo_ms=slow_mo or None,
                              tracing=trace != "off")
    return Runner(settings, ledger, connections, clock_from_url(settings.clock_url), procedures=chosen,
                  dry_run=dry_run, trace=trace, listener=listener, pause_on_error=pause_on_error)


def print_report(report: Any, *, dry_run: bool) -> None:
    for line in report.intake:
        console.print(f"  intake: {line}")
    if report.intake_error:
        console.print(f"[yellow]New work not taken in:[/] {report.intake_error}")
    if dry_run:
        console.print("[bold]Dry run — nothing was changed. What would have been done:[/]")
        for action in report.actions or ["nothing"]:
            console.print(f"  {action}")
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items())) or "nothing was due"
    counted = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(report.counters.items()))
    console.print(f"Pass at {report.started_at:%Y-%m-%d %H:%M} UTC: {report.items_run} items run ({outcomes})"
                  + (f"; {counted}" if counted else ""))
    if report.stopped_early:
        console.print(f"[yellow]Stopped early:[/] {report.stopped_early}")


def configuration_stop(exc: ConfigurationError) -> None:
    """A setting is wrong: say which, exit non-zero; nothing was handed to a person for it."""
    fail(f"configuration: {exc.message}\nNothing was handed to a person for this; fix the setting and run again.")


@app.command()
def run(once: Annotated[bool, typer.Option("--once", help="One pass over the due items, then exit.")] = False,
        procedure: ProceduresOpt = None, dry_run: PersistentDryRunOpt = False, headed: HeadedOpt = False,
        slow_mo: SlowMoOpt = 0, pause_on_error: PauseOpt = False,
        interval: Annotated[float, typer.Option(help="Seconds between passes (without --once).")] = 60,
        trace: Annotated[str, typer.Option(help="retain-on-failure | on | off")] = "retain-on-failure") -> None:
    """Take in new work and run every due item of every procedure (once, or polling until Ctrl+C)."""
    from kuroko.ops.progress import PassProgress

    settings = get_settings()
    with PassProgress(console) as progress:
        runner = make_runner(settings, procedures=procedure, dry_run=dry_run, headed=headed, slow_mo=slow_mo,
                             trace=trace, listener=progress.listener, pause_on_error=pause_on_error,
                             persistent_dry_run=True)

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
        except ConfigurationError as exc:
            progress.finish()
            configuration_stop(exc)
        except KurokoError as exc:
            fail(exc.message)
        finally:
            runner.connections.close()


@app.command()
def status(procedure: ProceduresOpt = None) -> None:
    """Every work item the robot knows, by procedure: counts by state and path, held items with their
    reasons, waiting items with their next step."""
    settings = get_settings()
    ledger = open_ledger(settings)
    items = [i for i in ledger.items() if not procedure or i.procedure in procedure]
    if not items:
        console.print("The ledger is empty: nothing has been taken in yet (`kuroko run --once`).")
        return
    counts = Counter((i.procedure, i.state, i.path or "-") for i in items)
    table = Table(title=f"{len(items)} work items")
    for col in ("procedure", "state", "path", "items"):
        table.add_column(col)
    for (proc, state, path), n in sorted(counts.items()):
        table.add_row(proc, state, path, str(n))
    console.print(table)
    held = [i for i in items if i.state == ItemState.HELD.value]
    if held:
        t = Table(title="Held for a person")
        for col in ("procedure", "item", "ticket", "step", "reason"):
            t.add_column(col, overflow="fold")
        for i in held:
            t.add_row(i.procedure, i.key, str(i.handover_ticket_id or i.ticket_id or "-"), i.step, i.hold_reason or "-")
        console.print(t)
    waiting = [i for i in items if i.state == ItemState.ACTIVE.value]
    if waiting:
        t = Table(title="Waiting")
        for col in ("procedure", "item", "next step", "due (JST)", "path"):
            t.add_column(col)
        for i in waiting:
            t.add_row(i.procedure, i.key, i.step, local(settings, i.next_due_at), i.path or "-")
        console.print(t)


@app.command()
def show(item_ref: Annotated[str, typer.Argument(metavar="ITEM", help="The item's key (e.g. the order number) "
                                                                     "or #ID.")],
         procedure: ProcedureOpt = None) -> None:
    """One work item: its state, every step outcome and the audit trail."""
    settings = get_settings()
    ledger = open_ledger(settings)
    item = find_item_or_fail(ledger, item_ref, procedure)
    tickets = f"ticket #{item.ticket_id}" + (f" (hand-over ticket #{item.handover_ticket_id})"
                                              if item.handover_ticket_id else "")
    console.print(f"[bold]{item.key}[/]  {item.procedure} #{item.id}  {tickets}  state {item.state}  "
                  f"step {item.step}  path {item.path or '-'}")
    if item.hold_reason:
        console.print(f"[yellow]held:[/] {item.hold_reason}")
    steps = Table(title="Steps")
    for col in ("step", "status", "attempt", "ref", "detail / error"):
        steps.add_column(col, overflow="fold")
    evidence: list[str] = []
    for s in ledger.steps(item.id):
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
    for e in ledger.audit_trail(item.id):
        audit.add_row(local(settings, e.at), e.actor, e.system, e.action, e.detail or "")
    console.print(audit)


@app.command()
def release(item_ref: Annotated[str, typer.Argument(metavar="ITEM", help="The item's key or #ID.")],
            procedure: ProcedureOpt = None) -> None:
    """Let a held item go on from the step where it stopped (also removes the hold tag)."""
    from kuroko.connections import Connections
    from kuroko.logs import setup_logging
    from kuroko.runner import Runner

    settings = get_settings()
    setup_logging(settings, console=False)
    ledger = open_ledger(settings)
    item = find_item_or_fail(ledger, item_ref, procedure)
    if item.state != ItemState.HELD.value:
        fail(f"{item.key} ({item.procedure}) is not held (it is {item.state}).")
    connections = Connections(settings)
    runner = Runner(settings, ledger, connections, clock_from_url(settings.clock_url),
                    procedures=load_procedures_or_fail())
    try:
        runner.release(item, runner.clock.now(), by="person (kuroko release)", remove_tag=True)
    except ConfigurationError as exc:
        configuration_stop(exc)
    finally:
        connections.close()
    console.print(f"Released {item.key}: it goes on from '{item.step}' at the next pass.")


@app.command()
def sandbox(base_port: Annotated[int, typer.Option(help="Admin API port; the systems follow.")] = 8100,
            scenario: Annotated[str | None, typer.Option(help="Seed a day of orders: 'day'.")] = None,
            seed: int = 1, orders: Annotated[int | None, typer.Option(help="How many orders.")] = None) -> None:
    """Serve the sandbox of every system in the foreground."""
    from sandbox.server import run as run_sandbox

    run_sandbox(base_port=base_port, scenario=scenario, seed=seed, orders=orders)


@app.command()
def replay(item_ref: Annotated[str, typer.Argument(metavar="ITEM", help="The item's key or #ID.")],
           procedure: ProcedureOpt = None,
           from_step: Annotated[str | None, typer.Option("--from", help="Start at this step (default: first).")] = None,
           dry_run: DryRunOpt = False, headed: HeadedOpt = False, slow_mo: SlowMoOpt = 0,
           pause_on_error: PauseOpt = False,
           trace: Annotated[str, typer.Option(help="retain-on-failure | on | off")] = "on") -> None:
    """Re-run one item's procedure now, reconciling as always (a finished item stays unchanged)."""
    settings = get_settings()
    runner = make_runner(settings, dry_run=dry_run, headed=headed, slow_mo=slow_mo, trace=trace,
                         pause_on_error=pause_on_error)
    item = find_item_or_fail(runner.ledger, item_ref, procedure)
    try:
        result, actions = runner.replay(item.id, from_step=from_step)
    except ConfigurationError as exc:
        configuration_stop(exc)
    except KurokoError as exc:
        fail(exc.message)
    finally:
        runner.connections.close()
    verb = "would do" if dry_run else "did"
    console.print(f"Replayed {item.key} ({item.procedure}): now {result}. It {verb}: "
                  f"{', '.join(actions) or 'nothing new'}")


@app.command()
def report(output: Annotated[Path | None, typer.Option("--output", "-o", help="Where to write the HTML.")] = None,
           dry_run: Annotated[bool, typer.Option("--dry-run", help="Report the dry runs' ledger instead: what "
                                                                  "Kuroko would have done, item by item.")] = False,
           ) -> None:
    """Write one self-contained HTML report of every work item, by procedure, with audit trails and evidence."""
    from kuroko.ops.report import dry_run_lines, write_report

    settings = get_settings()
    titles = {p.name: p.title for p in load_procedures_or_fail()}
    if not dry_run:
        path = write_report(settings, open_ledger(settings), output or settings.data_dir / "report.html",
                            titles=titles)
        console.print(f"Report written: {path.resolve()}")
        return
    if not settings.dry_run_ledger_path().exists():
        fail(f"no dry run yet ({settings.dry_run_ledger_path()} does not exist): run `kuroko run --dry-run` or "
             "`kuroko schedule --dry-run` first")
    ledger = open_ledger(settings, dry_run=True)
    console.print("[bold]Dry run: what Kuroko would have done, item by item[/] (nothing was changed anywhere):")
    for line in dry_run_lines(settings, ledger, titles=titles):
        console.print(line, soft_wrap=True, highlight=False, markup=False)
    path = write_report(settings, ledger, output or settings.dry_run_ledger_path().parent / "report.html",
                        title="Kuroko dry run: what would have been done", titles=titles)
    console.print(f"Report written: {path.resolve()}")


@app.command()
def check(order: Annotated[str | None, typer.Option("--order", metavar="NUMBER",
                                                    help="A known order: its pages are opened (read only) so their "
                                                         "selectors are checked too.")] = None,
          procedure: ProceduresOpt = None, headed: HeadedOpt = False) -> None:
    """A read-only preflight of every configured system: one line each, what was found or what to fix.
    Signs in (login forms, notices) and reads; never clicks anything that changes something. Exits
    non-zero when something needs fixing."""
    from kuroko.logs import setup_logging
    from kuroko.ops.check import print_results, run_checks

    settings = get_settings()
    chosen = load_procedures_or_fail(procedure)
    setup_logging(settings, console=False)
    if not print_results(console, run_checks(settings, chosen, order=order, headless=False if headed else None)):
        raise typer.Exit(1)


@app.command()
def schedule(file: Annotated[Path | None, typer.Option("--file", help="Schedule TOML.")] = None,
             dry_run: PersistentDryRunOpt = False,
             no_check: Annotated[bool, typer.Option("--no-check", help="Start without `kuroko check` first.")] = False,
             ) -> None:
    """Run unattended: APScheduler runs the jobs in schedules/default.toml until SIGINT/SIGTERM. It runs
    `kuroko check` first and refuses to start on a failure. A wrong setting stops every job and exits
    non-zero (whatever supervises the robot restarts it after the fix)."""
    from kuroko.logs import setup_logging
    from kuroko.ops.schedule import DEFAULT_SCHEDULE, run_schedule

    settings = get_settings()
    procedures = {p.name: p for p in load_procedures_or_fail()}

    def preflight() -> str | None:
        """`kuroko check` (once this scheduler holds the lock): what needs fixing, or None."""
        from rich.markup import escape

        from kuroko.ops.check import print_results, run_checks

        console.print("kuroko check before starting:")
        lines = run_checks(settings, list(procedures.values()))
        if print_results(console, lines):
            return None
        failed = "\n".join(escape(f"  {line.system}: {line.what} — {line.found}") for line in lines if not line.ok)
        return f"kuroko check found something to fix; the scheduler did not start:\n{failed}"

    setup_logging(settings)
    try:
        run_schedule(file or DEFAULT_SCHEDULE, settings, procedures, dry_run=dry_run,
                     preflight=None if no_check else preflight)
    except ConfigurationError as exc:
        configuration_stop(exc)


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


def procedure_command(fn: Callable[..., str], by: str) -> Callable[..., None]:
    """A procedure's action ``fn(desk: DeskContext, …) -> str`` as a `kuroko` command: the same code
    path as the console's button."""
    from kuroko.procedure import DeskContext

    signature = inspect.signature(fn, eval_str=True)
    params = list(signature.parameters.values())[1:]

    def command(**kwargs: Any) -> None:
        settings = get_settings()
        desk = DeskContext(ledger=open_ledger(settings), settings=settings,
                           now=clock_from_url(settings.clock_url).now(), by=by)
        try:
            console.print(fn(desk, **kwargs))
        except KurokoError as exc:
            fail(exc.message)

    command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__name__ = fn.__name__
    command.__doc__ = fn.__doc__
    return command


def add_procedure_commands() -> None:
    from kuroko.registry import load_procedures

    known = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    for procedure in load_procedures().values():
        for fn in procedure.commands:
            if fn.__name__ in known:
                raise ConfigurationError(f"procedure {procedure.name} brings a command {fn.__name__!r} that "
                                         "already exists")
            app.command(name=fn.__name__)(procedure_command(fn, by=f"person (kuroko {fn.__name__})"))
            known.add(fn.__name__)


def main() -> None:
    try:
        add_procedure_commands()
        app()
    except ConfigurationError as exc:
        err.print(f"[bold red]configuration:[/] {exc.message}")
        sys.exit(2)


if __name__ == "__main__":
    main()
