"""``kuroko check``: a read-only preflight of every configured system, one line each with what was
found or what to fix; the exit code is non-zero when something needs fixing. ``kuroko schedule``
runs it at start and refuses to start on a failure.

The engine knows no system by name: each connection declared in this process (the registered
procedures import theirs; ``kuroko.connections.REGISTRY``) may have a ``check(order)`` where it
lives (pages/*/connection.py, services/*), and each procedure may add its own (``@procedure.preflight``).
Here are only the engine's own: the clock source and the ledger.

Read-only means: signing in (filling the login forms, acknowledging notices) and reading pages and
APIs — never a click on a button, or a request, that changes anything. The browser runs on a
throwaway data directory, so the check always signs in with the configured credentials and never
touches the robot's saved logins, evidence or ledger.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from kuroko.clock import clock_from_url
from kuroko.connections import REGISTRY, CheckLine, Connections, checked
from kuroko.procedure import Procedure
from kuroko.settings import Settings


def check_clock(settings: Settings) -> CheckLine:
    def look() -> str:
        now = clock_from_url(settings.clock_url).now()
        source = f"the clock at {settings.clock_url}" if settings.clock_url else "the machine's clock"
        drift = abs((now - datetime.now(UTC)).total_seconds())
        note = f" ({drift / 3600:.1f} h from the machine's clock: a sandbox clock?)" if drift > 300 else ""
        return f"{source}: {now.astimezone().isoformat(timespec='seconds')}{note}"

    return checked("kuroko", "clock", look)


def check_ledger(settings: Settings) -> CheckLine:
    """Reachable and readable; a SQLite ledger that does not exist yet is fine (created at the
    first run) and is not created here."""
    url = settings.ledger_database_url()

    def look() -> str:
        from sqlalchemy import create_engine, inspect

        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            if not path.exists():
                if not path.parent.exists():
                    return f"no ledger yet; it will be created at {path} (the data directory is created then)"
                return f"no ledger yet; it will be created at {path}"
            url_ro = f"sqlite:///file:{path}?mode=ro&uri=true"
        else:
            url_ro = url
        engine = create_engine(url_ro)
        try:
            with engine.connect():
                tables = set(inspect(engine).get_table_names())
        finally:
            engine.dispose()
        missing = {"work_items", "steps", "audit", "tickets"} - tables
        if missing:
            return f"{_safe(url)} reachable; tables {', '.join(sorted(missing))} will be created at the first run"
        return f"{_safe(url)} reachable, tables present"

    return checked("kuroko", "ledger", look)


def _safe(url: str) -> str:
    """A database URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "the ledger"


def run_checks(settings: Settings, procedures: Iterable[Procedure], *, order: str | None = None,
               headless: bool | None = None) -> list[CheckLine]:
    """Every check, in order: the engine's, each connection's, each procedure's."""
    procedures = list(procedures)
    lines = [check_clock(settings), check_ledger(settings)]
    with tempfile.TemporaryDirectory(prefix="kuroko-check-") as scratch:
        scratch_settings = settings.model_copy(update={"data_dir": Path(scratch)})
        connections = Connections(scratch_settings, headless=headless, tracing=False)
        try:
            for connection in list(REGISTRY.values()):
                lines += _connection_lines(connections, connection, order)
            for procedure in procedures:
                for fn in procedure.checks:
                    try:
                        lines += fn(connections)
                    except Exception as exc:
                        lines.append(CheckLine(procedure.name, fn.__name__, False, getattr(exc, "message", str(exc))))
        finally:
            connections.close()
    return lines


def _connection_lines(connections: Connections, connection: Any, order: str | None) -> list[CheckLine]:
    try:
        opened = connections.use(connection)
    except Exception as exc:  # a setting the connection cannot start with
        return [CheckLine(connection.name, "settings", False, getattr(exc, "message", str(exc)))]
    check = getattr(opened, "check", None)
    if not callable(check):
        return [CheckLine(connection.name, "check", True, "has no check of its own (not checked)")]
    try:
        found: list[CheckLine] = check(order=order)
        return found
    except Exception as exc:
        return [CheckLine(connection.name, "check", False, getattr(exc, "message", None) or f"{type(exc).__name__}: "
                          f"{exc}")]


def print_results(console: Console, lines: list[CheckLine]) -> bool:
    """One line per check; True when nothing needs fixing."""
    for line in lines:
        mark = "[green]OK  [/]" if line.ok else "[bold red]FIX [/]"
        console.print(f"{mark} {line.system}: {line.what} — ", end="")
        console.print(line.found, markup=False, highlight=False, soft_wrap=True)
    failed = [line for line in lines if not line.ok]
    if failed:
        console.print(f"[bold red]{len(failed)} of {len(lines)} checks need fixing.[/]")
    else:
        console.print(f"[green]All {len(lines)} checks OK.[/]")
    return not failed
