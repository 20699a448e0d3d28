"""``kuroko schedule``: APScheduler 3.x running the jobs in schedules/*.toml, unattended.

One scheduler per ledger: a lock file in the data directory makes a second ``kuroko schedule``
refuse to start (and leases keep any other robot off the orders this one holds). SIGINT/SIGTERM
finish the step in hand, then stop.
"""

from __future__ import annotations

import fcntl
import os
import signal
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from loguru import logger

from kuroko.errors import ConfigurationError

DEFAULT_SCHEDULE = Path(__file__).resolve().parents[2] / "schedules" / "default.toml"
INTERVAL_KEYS = ("weeks", "days", "hours", "minutes", "seconds")
CRON_KEYS = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")
BOTS = ("rakuten_sim_order",)


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


def load_jobs(path: Path) -> tuple[str, list[dict[str, Any]]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"no schedule file at {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid TOML: {exc}") from None
    jobs = data.get("jobs") or []
    if not jobs:
        raise ConfigurationError(f"{path} defines no [[jobs]]")
    for job in jobs:
        for key in ("id", "bot", "trigger"):
            if key not in job:
                raise ConfigurationError(f"{path}: a job has no {key!r}")
        if job["bot"] not in BOTS:
            raise ConfigurationError(f"{path}: job {job['id']!r} names bot {job['bot']!r}; known: {', '.join(BOTS)}")
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


def build_scheduler(path: Path, run_bot: Callable[[str], None]) -> BlockingScheduler:
    timezone, jobs = load_jobs(path)
    scheduler = BlockingScheduler(timezone=timezone)
    for job in jobs:
        scheduler.add_job(
            run_bot, make_trigger(job, timezone), args=[job["bot"]], id=job["id"], name=job["id"],
            coalesce=bool(job.get("coalesce", True)), max_instances=int(job.get("max_instances", 1)),
            misfire_grace_time=int(job.get("misfire_grace_time", 300)), replace_existing=True,
            next_run_time=None if job.get("wait_first") else _now(timezone),
        )
        logger.info("job {} ({}) scheduled: {}", job["id"], job["bot"], job["trigger"])
    return scheduler


def _now(timezone: str) -> Any:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(timezone))


def run_schedule(path: Path, run_bot: Callable[[str], None], on_stop: Callable[[], None], data_dir: Path) -> None:
    """Block until SIGINT/SIGTERM; ``on_stop`` asks the pass in hand to finish its step and stop."""
    lock = ScheduleLock(data_dir)
    lock.acquire()
    scheduler = build_scheduler(path, run_bot)

    def stop(signum: int, _frame: Any) -> None:
        logger.info("signal {}: finishing the step in hand, then stopping", signum)
        on_stop()
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        scheduler.start()
    finally:
        lock.release()
