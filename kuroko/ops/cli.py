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
from typing import Annotated, Any, NoReturn
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from kuroko.clock import clock_from_url
from kuroko.errors import ConfigurationError, KurokoError
from kuroko.ledger import ItemState, Ledger, WorkItem, wall_now
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


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


def open_ledger(settings: Settings, *, upgrade: bool = True, dry_run: bool = False) -> Ledger:
    """The real ledger — an older one is upgraded by the commands that write (``upgrade``) and
    refused with the command to run by those that only look (status, show, report) — or the dry
    runs' own (seeded from the real one the first time)."""
    try:
        if dry_run:
            return Ledger.for_dry_run(settings.ledger_database_url(), settings.dry_run_ledger_path())
        return Ledger(settings.ledger_database_url(), upgrade=upgrade)
    except ConfigurationError as exc:
        fail(exc.message)


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


def make_runner(settings: Settings, *, procedures: list[str] | None = None, dry_run: bool = False,
                headed: bool = False, slow_mo: int = 0, trace: str | None = None, listener: Any = None,
                pause_on_error: bool = False, persistent_dry_run: bool = False) -> Any:
    from kuroko.connections import Connections
    from kuroko.logs import setup_logging
    from kuroko.runner import Runner

    chosen = load_procedures_or_fail(procedures)
    setup_logging(settings, console=listener is None)
    ledger = open_ledger(settings, dry_run=dry_run and persistent_dry_run)
    trace = trace or settings.trace
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


def configuration_stop(exc: ConfigurationError) -> NoReturn:
    """A setting is wrong: say which, exit non-zero (nothing is handed to a person for it)."""
    fail(f"configuration: {exc.message}")


@app.command()
def run(once: Annotated[bool, typer.Option("--once", help="One pass over the due items, then exit.")] = False,
        procedure: ProceduresOpt = None, dry_run: PersistentDryRunOpt = False, headed: HeadedOpt = False,
        slow_mo: SlowMoOpt = 0, pause_on_error: PauseOpt = False,
        interval: Annotated[float, typer.Option(help="Seconds between passes (without --once).")] = 60,
        trace: Annotated[str | None, typer.Option(
            help="off | retain-on-failure | on (default: KUROKO_TRACE, off)")] = None) -> None:
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
    ledger = open_ledger(settings, upgrade=False)
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
    now = wall_now()
    if waiting:
        t = Table(title="Waiting")
        for col in ("procedure", "item", "next step", "due (JST)", "path", "robot"):
            t.add_column(col)
        for i in waiting:
            held_by = i.lease_owner if i.lease_owner and i.lease_until and i.lease_until > now else "-"
            t.add_row(i.procedure, i.key, i.step, local(settings, i.next_due_at), i.path or "-", held_by)
        console.print(t)
    holding: dict[str, list[str]] = {}
    for i in items:
        if i.lease_owner and i.lease_until and i.lease_until > now:
            holding.setdefault(i.lease_owner, []).append(i.key)
    robots = [w for w in ledger.workers() if w.id in holding or (
        w.stopped_at is None and (now - w.heartbeat_at).total_seconds() < 3600)]
    if robots:
        t = Table(title="Robots at work")
        for col in ("robot", "heartbeat", "working on"):
            t.add_column(col)
        for w in robots:
            age = (now - w.heartbeat_at).total_seconds()
            beat = f"{age:.0f} s ago" + (" (stopped beating)" if age > settings.heartbeat_timeout_seconds else "")
            t.add_row(w.id, beat, ", ".join(holding.get(w.id, [])) or "-")
        console.print(t)
    procedure_summaries(settings, ledger, procedure)


def procedure_summaries(settings: Settings, ledger: Ledger, only: list[str] | None) -> None:
    """Each procedure's own status lines (``Procedure.summary``), at the robot's clock."""
    from kuroko.ops.report import summaries
    from kuroko.registry import load_procedures

    try:
        procedures = {n: p for n, p in load_procedures().items() if not only or n in only}
        at = clock_from_url(settings.clock_url).now()
    except Exception:  # the counts above stand on their own
        return
    for summary in summaries(procedures, ledger, at):
        console.print(f"[bold]{summary.title}[/]")
        for line in summary.lines:
            console.print(line, soft_wrap=True, highlight=False, markup=False)


@app.command()
def show(item_ref: Annotated[str, typer.Argument(metavar="ITEM", help="The item's key (e.g. the order number) "
                                                                     "or #ID.")],
         procedure: ProcedureOpt = None) -> None:
    """One work item: its state, every step outcome and the audit trail."""
    settings = get_settings()
    ledger = open_ledger(settings, upgrade=False)
    item = find_item_or_fail(ledger, item_ref, procedure)
    tickets = f"ticket #{item.ticket_id}" + (f" (hand-over ticket #{item.handover_ticket_id})"
                                              if item.handover_ticket_id else "")
    console.print(f"[bold]{item.key}[/]  {item.procedure} #{item.id}  {tickets}  state {item.state}  "
                  f"step {item.step}  path {item.path or '-'}")
    if item.hold_reason:
        console.print(f"[yellow]held:[/] {item.hold_reason}")
    if item.lease_owner and item.lease_until and item.lease_until > wall_now():
        console.print(f"being worked by robot {item.lease_owner} (lease until {local(settings, item.lease_until)})")
    steps = Table(title="Steps")
    for col in ("step", "status", "attempt", "ref", "detail / error", "robot"):
        steps.add_column(col, overflow="fold")
    evidence: list[str] = []
    for s in ledger.steps(item.id):
        steps.add_row(s.name, s.status, str(s.attempt), s.external_ref or "", s.error_message or s.detail or "",
                      s.worker_id or "-")
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
           lang: Annotated[str, typer.Option(help="ja or en.")] = "ja",
           dry_run: Annotated[bool, typer.Option("--dry-run", help="Report the dry runs' ledger instead: what "
                                                                  "Kuroko would have done, item by item.")] = False,
           ) -> None:
    """Write one self-contained HTML report of every work item, by procedure, with audit trails and evidence."""
    from kuroko.ops.report import dry_run_lines, write_report

    settings = get_settings()
    titles = {p.name: p.title for p in load_procedures_or_fail()}
    if lang not in ("ja", "en"):
        fail(f"--lang {lang!r}: use ja or en")
    if not dry_run:
        path = write_report(settings, open_ledger(settings, upgrade=False),
                            output or settings.data_dir / "report.html", titles=titles, lang=lang)
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
                        title="Kuroko dry run: what would have been done", titles=titles, lang=lang)
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


@app.command("console")
def console_command(host: Annotated[str, typer.Option(help="Address to bind; anything but 127.0.0.1 needs "
                                                           "KUROKO_CONSOLE_ALLOW_REMOTE=true.")] = "127.0.0.1",
                    port: Annotated[int, typer.Option(help="Port.")] = 8200) -> None:
    """Serve the desk console (Today, Waiting for a person, items, search) from this ledger."""
    from kuroko.ops.console.app import serve

    settings = get_settings()
    load_procedures_or_fail()
    console.print(f"Kuroko desk console on http://{host}:{port}/ (Ctrl+C stops it)")
    try:
        serve(host, port, settings)
    except ConfigurationError as exc:
        fail(f"configuration: {exc.message}")


users_app = typer.Typer(no_args_is_help=True, help="The desk console's users: viewers read, operators act.")
app.add_typer(users_app, name="users")


def read_password(confirm: bool = True) -> str:
    """The password: prompted (hidden, twice) on a terminal; one line of standard input otherwise."""
    if sys.stdin.isatty():
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=confirm))
    return sys.stdin.readline().rstrip("\n")


@users_app.command("add")
def users_add(name: Annotated[str, typer.Argument(help="The login name.")],
              role: Annotated[str, typer.Option(help="viewer (reads) or operator (acts).")] = "viewer") -> None:
    """Add a console user; the password is asked for (or read from standard input)."""
    from kuroko.ops.console.users import add_user

    password = read_password()
    try:
        add_user(open_ledger(get_settings()), name, role, password)
    except KurokoError as exc:
        fail(exc.message)
    console.print(f"User {name} added ({role}).")


@users_app.command("remove")
def users_remove(name: Annotated[str, typer.Argument(help="The login name.")]) -> None:
    """Remove a console user (their session ends at their next request)."""
    from kuroko.ops.console.users import remove_user

    try:
        remove_user(open_ledger(get_settings()), name)
    except KurokoError as exc:
        fail(exc.message)
    console.print(f"User {name} removed.")


@users_app.command("list")
def users_list() -> None:
    """Every console user with their role and whether their login is locked."""
    from kuroko.ledger import wall_now
    from kuroko.ops.console.users import list_users

    settings = get_settings()
    t = Table(title="Console users")
    for col in ("name", "role", "locked until"):
        t.add_column(col)
    for user in list_users(open_ledger(settings)):
        locked = user.locked_until if user.locked_until and user.locked_until > wall_now() else None
        t.add_row(user.name, user.role, local(settings, locked) if locked else "-")
    console.print(t)


db_app = typer.Typer(no_args_is_help=True, help="The ledger's schema (Alembic): where it stands, upgrade, downgrade.")
app.add_typer(db_app, name="db")


def _db_engine(settings: Settings) -> Any:
    from sqlalchemy import create_engine

    url = settings.ledger_database_url()
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return create_engine(url)


@db_app.command("current")
def db_current() -> None:
    """The ledger's schema revision and the newest this Kuroko knows."""
    from kuroko import migrations

    engine = _db_engine(get_settings())
    with engine.connect() as connection:
        at, legacy = migrations.current(connection)
    note = " (made before migrations; recognised by its tables)" if legacy else ""
    console.print(f"ledger at {at or 'nothing (empty)'}{note}; newest {migrations.head()}")


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Upgrade the ledger's schema (every row kept); robots upgrade on start too."""
    from kuroko import migrations

    before, after = migrations.upgrade(_db_engine(get_settings()), revision)
    console.print(f"ledger upgraded from {before or 'nothing'} to {after}" if before != after
                  else f"ledger already at {after}")


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="Target revision (e.g. 0002, or base).")]) -> None:
    """Take the ledger's schema back to an older revision (for going back to an older Kuroko)."""
    from kuroko import migrations

    before, after = migrations.downgrade(_db_engine(get_settings()), revision)
    console.print(f"ledger downgraded from {before} to {after or 'nothing'}")


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
        err.print(f"[bold red]configuration:[/] {exc.message}", soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
