"""Several robots on one PostgreSQL ledger (acceptance of issue 15): three `kuroko run --once`
processes started together at every moment of a seeded day (the crash harness's Day, its timeline
and its verdict — tests/test_crash_safety.py) work the day between them: every order done or held
exactly once, the sandbox's own audit shows no side effect twice, and each robot did some. Then the
same with one robot SIGKILLed while it holds an order: the others finish it, nothing twice."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import ROOT, Sandbox
from test_crash_safety import RUN_TIMEOUT, Day, Run, kuroko_status, nothing_twice_nothing_lost

from kuroko.ledger import Ledger, worker_pid
from kuroko.settings import Settings

ROBOTS = 3


@dataclass
class Robots(Day):
    """The Day, on a PostgreSQL ledger, worked by ``ROBOTS`` processes at once (each its own data
    directory: logs, saved logins, evidence)."""

    ledger_url: str = ""
    pids: dict[int, int] = field(default_factory=dict)
    """Process id → robot number (1…ROBOTS), for every robot process started."""
    killed: list[int] = field(default_factory=list)
    held_when_killed: dict[str, int] = field(default_factory=dict)
    """Order number → the killed robot's pid, for each order a robot held when it was killed."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.env["KUROKO_LEDGER_URL"] = self.ledger_url
        self.settings = Settings(data_dir=self.data_dir, clock_url=self.sandbox.robot_env()["KUROKO_CLOCK_URL"],
                                 ledger_url=self.ledger_url)

    def together(self, kill_one: bool = False) -> None:
        """``ROBOTS`` runs started at the same moment; with ``kill_one``, robot 1 is SIGKILLed as
        soon as it holds an order (mid-step), and the others go on."""
        procs: list[tuple[int, subprocess.Popen[bytes], Path]] = []
        for n in range(1, ROBOTS + 1):
            env = {**self.env, "KUROKO_DATA_DIR": str(self.data_dir / f"robot{n}")}
            log = self.workdir / "runs" / f"{len(self.runs) + n:04d}-robot{n}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen([sys.executable, "-m", "kuroko.ops.cli", "run", "--once"], cwd=ROOT,
                                        env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            self.pids[proc.pid] = n
            procs.append((n, proc, log))
        if kill_one:
            self._kill_when_holding(procs[0][1])
        deadline = time.monotonic() + RUN_TIMEOUT
        for n, proc, log in procs:
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise AssertionError(f"robot {n} took more than {RUN_TIMEOUT} s; see {log}") from None
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            killed = proc.pid in self.killed
            assert proc.returncode == 0 or killed, (
                f"robot {n} failed ({proc.returncode}) at {self.moment}:\n{log.read_text()[-3000:]}")
            self.runs.append(Run("killed" if killed else "clean", proc.returncode, log,
                                 f"robot {n} SIGKILLed holding an order" if killed else None))

    def _kill_when_holding(self, proc: subprocess.Popen[bytes]) -> None:
        ledger = Ledger(self.ledger_url)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                if any(i.lease_owner and f":{proc.pid}:" in i.lease_owner for i in ledger.items()):
                    time.sleep(1.0)  # into its step: a page load, a click
                    os.killpg(proc.pid, signal.SIGKILL)
                    self.killed.append(proc.pid)
                    for item in ledger.items():
                        if item.lease_owner and f":{proc.pid}:" in item.lease_owner:
                            self.held_when_killed[item.key] = proc.pid
                    return
                time.sleep(0.1)
        finally:
            ledger.close()

    def steps_by_robot(self) -> Counter[int]:
        ledger = Ledger(self.ledger_url)
        try:
            done = Counter[int]()
            for worker, item_ids in ledger.steps_by_worker().items():
                done[self.pids.get(worker_pid(worker) or -1, 0)] += len(item_ids)
            return done
        finally:
            ledger.close()


def assert_shared_day_is_right(day: Robots) -> None:
    status = kuroko_status(day)
    problems = nothing_twice_nothing_lost(day)
    assert not problems, "\n".join(problems)
    assert "Waiting" not in status, status
    ledger = Ledger(day.ledger_url)
    try:
        assert all(i.lease_owner is None for i in ledger.items()), "no lease left behind by a clean run"
    finally:
        ledger.close()


@pytest.mark.timeout(1800)
def test_three_robots_on_one_postgresql_ledger_share_a_seeded_day(sandbox: Sandbox, tmp_path: Path,
                                                                   pg_url: str) -> None:
    sandbox.reset(seed=20261124, scenario="day", orders=10)
    day = Robots(sandbox, tmp_path, ledger_url=pg_url)
    started = time.monotonic()
    day.work(day.together)
    assert_shared_day_is_right(day)
    by_robot = day.steps_by_robot()
    print(f"\nthree robots, 10 orders: {time.monotonic() - started:.0f} s, "
          f"{len(day.runs)} runs, steps by robot {dict(sorted(by_robot.items()))}")
    for n in range(1, ROBOTS + 1):
        assert by_robot[n] > 0, f"robot {n} did nothing: {dict(by_robot)}"


@pytest.mark.timeout(1800)
def test_a_robot_killed_mid_day_leaves_its_orders_to_the_others_nothing_twice(sandbox: Sandbox, tmp_path: Path,
                                                                              pg_url: str) -> None:
    sandbox.reset(seed=20261124, scenario="day", orders=10)
    day = Robots(sandbox, tmp_path, ledger_url=pg_url)
    moments = iter(range(100))
    started = time.monotonic()
    day.work(lambda: day.together(kill_one=next(moments) in (0, 1)))
    assert day.killed and day.held_when_killed, "robot 1 was never caught holding an order"
    assert_shared_day_is_right(day)
    ledger = Ledger(day.ledger_url)
    try:
        for key, pid in day.held_when_killed.items():
            item = ledger.find_item(key)
            assert item is not None and item.state in ("done", "held")
            others = {s.worker_id for s in ledger.steps(item.id) if s.worker_id and f":{pid}:" not in s.worker_id}
            assert others, f"{key}: no other robot worked it after robot {pid} was killed"
    finally:
        ledger.close()
    print(f"\nthree robots, one killed at {len(day.killed)} moments holding {sorted(day.held_when_killed)}: "
          f"{time.monotonic() - started:.0f} s, {len(day.runs)} runs, all finished by the others, nothing twice")
