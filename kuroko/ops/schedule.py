"""``kuroko schedule``: APScheduler 3.x running the jobs in schedules/*.toml, unattended — a job
per procedure (or several procedures in one job), each with its own trigger.

One scheduler per ledger: a lock file in the data directory makes a second ``kuroko schedule``
refuse to start (and leases keep any other robot off the items this one holds). SIGINT/SIGTERM
finish the step in hand, then stop. A ``ConfigurationError`` in any job (a missing Chromium, a
wrong setting) stops every job and the scheduler, which then exits non-zero naming the setting:
whatever supervises it restarts it once the setting is fixed.
"""

from __future__ import annotations

import fcntl
import os
import signal
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from loguru import logger

from kuroko.errors import ConfigurationError
from kuroko.procedure import Procedure
from kuroko.settings import Settings

DEFAULT_SCHEDULE = Path(__file__).resolve().parents[2] / "schedules" / "default.toml"
INTERVAL_KEYS = ("weeks", "days", "hours", "minutes", "seconds")
CRON_KEYS = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")


class ScheduleLock:
    """An exclusive lock on ``{data_dir}/schedule.lock`` for as long as the scheduler lives."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "schedule.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held for the scheduler's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise ConfigurationError(
                f"another `kuroko schedule` ({holder}) already runs on this ledger ({self.path}); stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def job_procedures(job: dict[str, Any]) -> list[str]:
    named = job.get("procedures", job.get("procedure"))
    return [named] if isinstance(named, str) else list(named or [])


def load_jobs(path: Path, known: Iterable[str]) -> tuple[str, list[dict[str, Any]]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"no schedule file at {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid TOML: {exc}") from None
    jobs = data.get("jobs") or []
    if not jobs:
        raise ConfigurationError(f"{path} defines no [[jobs]]")
    known = list(known)
    for job in jobs:
        for key in ("id", "trigger"):
            if key not in job:
                raise ConfigurationError(f"{path}: a job has no {key!r}")
        names = job_procedures(job)
        if not names:
            raise ConfigurationError(f"{path}: job {job['id']!r} names no procedure (procedure = \"…\")")
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigurationError(f"{path}: job {job['id']!r} names procedure(s) {', '.join(unknown)}; "
                                     f"registered: {', '.join(known)}")
    return str(data.get("timezone", "Asia/Tokyo")), jobs


def make_trigger(job: dict[str, Any], timezone: str) -> IntervalTrigger | CronTrigger:
    if job["trigger"] == "interval":
        kwargs = {k: job[k] for k in INTERVAL_KEYS if k in job}
        if not kwargs:
            raise ConfigurationError(f"job {job['id']!r}: an interval trigger needs one of {INTERVAL_KEYS}")
        return IntervalTrigger(timezone=timezone, **kwargs)
    if job["trigger"] == "cron":
        return CronTrigger(timezone=timezone, **{k: job[k] for k in CRON_KEYS if k in job})
    raise ConfigurationError(f"job {job['id']!r}: trigger must be 'interval' or 'cron', not {job['trigger']!r}")


def build_scheduler(path: Path, run_job: Callable[[list[str]], None], known: Iterable[str]) -> BlockingScheduler:
    timezone, jobs = load_jobs(path, known)
    scheduler = BlockingScheduler(timezone=timezone)
    for job in jobs:
        scheduler.add_job(
            run_job, make_trigger(job, timezone), args=[job_procedures(job)], id=job["id"], name=job["id"],
            coalesce=bool(job.get("coalesce", True)), max_instances=int(job.get("max_instances", 1)),
            misfire_grace_time=int(job.get("misfire_grace_time", 300)), replace_existing=True,
            next_run_time=None if job.get("wait_first") else _now(timezone),
        )
        logger.info("job {} ({}) scheduled: {}", job["id"], ", ".join(job_procedures(job)), job["trigger"])
    return scheduler


def _now(timezone: str) -> Any:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(timezone))


def run_schedule(path: Path, settings: Settings, procedures: dict[str, Procedure], *, dry_run: bool = False,
                 preflight: Callable[[], str | None] | None = None) -> None:
    """Block until SIGINT/SIGTERM (or a configuration error in a job, raised here). With ``dry_run``
    every pass is a dry run on the dry runs' own ledger (kept across passes); the real one is not
    written."""
    from kuroko.clock import clock_from_url
    from kuroko.connections import Connections
    from kuroko.ledger import Ledger
    from kuroko.runner import Runner

    lock = ScheduleLock(settings.dry_run_ledger_path().parent if dry_run else settings.data_dir)
    lock.acquire()
    if preflight is not None:  # `kuroko check`: a failure is a configuration error, the scheduler does not start
        load_jobs(path, procedures)
        problem = preflight()
        if problem is not None:
            lock.release()
            raise ConfigurationError(problem)
    ledger = (Ledger.for_dry_run(settings.ledger_database_url(), settings.dry_run_ledger_path()) if dry_run
              else Ledger(settings.ledger_database_url()))
    clock = clock_from_url(settings.clock_url)
    current: list[Runner] = []
    stopping: list[bool] = []
    fatal: list[ConfigurationError] = []
    scheduler: BlockingScheduler | None = None

    def run_job(names: list[str]) -> None:
        if stopping:
            return
        # Connections per pass: zenpy reads its sandbox switches from the process environment, so
        # a helpdesk client is never shared between the scheduler's threads.
        connections = Connections(settings)
        runner = Runner(settings, ledger, connections, clock, procedures=[procedures[n] for n in names],
                        dry_run=dry_run)
        current[:] = [runner]
        try:
            report = runner.run_pass()
            logger.info("{}pass of {} done: {} items run ({})", "dry-run " if dry_run else "", ", ".join(names),
                        report.items_run, dict(report.outcomes))
            for action in report.actions if dry_run else []:
                logger.info("dry run: {}", action)
        except ConfigurationError as exc:
            logger.error("configuration: {} — stopping every job", exc.message)
            fatal.append(exc)
            stop_all()
        except Exception as exc:
            logger.exception("the pass failed: {}", exc)
        finally:
            connections.close()
            current.clear()

    def stop_all() -> None:
        stopping.append(True)
        for runner in current:
            runner.stop_requested = True
        if scheduler is not None:
            scheduler.shutdown(wait=False)

    def on_signal(signum: int, _frame: Any) -> None:
        logger.info("signal {}: finishing the step in hand, then stopping", signum)
        stop_all()

    try:
        scheduler = build_scheduler(path, run_job, procedures)
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        scheduler.start()
    finally:
        ledger.close()
        lock.release()
    if fatal:
        raise fatal[0]
