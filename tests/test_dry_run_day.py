"""A first day in dry run (issue 17, acceptance 4): `kuroko schedule --dry-run` through a seeded day
with the clock moved keeps a ledger of its own ($KUROKO_DATA_DIR/dry-run/ledger.sqlite, seeded from
the real one), so the 30-minute rule and the waits carry over from pass to pass; the sandbox's audit
shows no side effect, the real ledger is untouched, and `kuroko report --dry-run` lists what would
have been done per item — the MCF creation once, and the next day's tracking checks."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import ROOT, Sandbox
from robot import mcf_orders, side_effects

from kuroko.ledger import Ledger

JST = ZoneInfo("Asia/Tokyo")


def dump(path: Path) -> list[str]:
    """The ledger's content, row by row (the file's bytes may move with SQLite's WAL)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(connection.iterdump())
    finally:
        connection.close()


def blocks(report: str) -> dict[str, list[str]]:
    """`kuroko report --dry-run`: item key → its indented lines."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in report.splitlines():
        if line.startswith("    ") and current is not None:
            current.append(line)
        elif " (" in line and not line.startswith(" "):
            current = out.setdefault(line.split(" (")[0], [])
    return out


def passes_done(data: Path) -> int:
    log = data / "logs" / "kuroko.jsonl"
    if not log.exists():
        return 0
    return sum(1 for line in log.read_text(encoding="utf-8").splitlines()
               if "dry-run pass of" in json.loads(line)["record"]["message"])


def wait_for_passes(data: Path, proc: subprocess.Popen[str], count: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while passes_done(data) < count:
        assert proc.poll() is None, f"kuroko schedule --dry-run exited ({proc.returncode})"
        assert time.monotonic() < deadline, f"no {count} dry-run passes within {timeout} s"
        time.sleep(0.5)


@pytest.mark.timeout(1500)
def test_a_seeded_day_under_schedule_dry_run_changes_nothing(sandbox: Sandbox, settings_env: Path,
                                                             tmp_path: Path) -> None:
    data = settings_env
    sandbox.reset(seed=11, scenario="day", orders=8)
    env = {**os.environ, "COLUMNS": "300"}

    # For real first, once: the real ledger the dry run is seeded from (orders taken in; in-stock ones closed).
    real = subprocess.run([sys.executable, "-m", "kuroko.ops.cli", "run", "--once"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert real.returncode == 0, real.stdout[-2000:] + real.stderr[-2000:]
    real_ledger = data / "ledger.sqlite"
    real_rows = dump(real_ledger)
    baseline_effects = len(side_effects(sandbox))
    baseline_mcf = {o["seller_fulfillment_order_id"] for o in mcf_orders(sandbox)}
    day0 = sandbox.now().astimezone(JST).date()

    schedule = tmp_path / "schedule.toml"
    schedule.write_text('timezone = "Asia/Tokyo"\n[[jobs]]\nid = "orders"\nprocedure = "rakuten_sim_order"\n'
                        'trigger = "interval"\nseconds = 2\n', encoding="utf-8")
    out = (tmp_path / "schedule.out").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "kuroko.ops.cli", "schedule", "--dry-run", "--file",
                             str(schedule)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_passes(data, proc, 1)
        for delta in ({"minutes": 31}, {"hours": 2}, {"hours": 20}, {"days": 1}):
            sandbox.advance(**delta)
            # the pass in flight may have read the clock before it moved: wait for the one after it
            wait_for_passes(data, proc, passes_done(data) + 2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        out.close()
    log = (tmp_path / "schedule.out").read_text()
    assert proc.returncode == 0, log[-3000:]
    assert "All" in log and "checks OK" in log, "the scheduler ran kuroko check first"

    assert side_effects(sandbox)[baseline_effects:] == [], "a dry run changes nothing in BOSS, RMS or Zendesk"
    assert {o["seller_fulfillment_order_id"] for o in mcf_orders(sandbox)} == baseline_mcf, "no MCF order created"
    assert dump(real_ledger) == real_rows, "the real ledger is untouched"

    dry = Ledger(f"sqlite:///{data / 'dry-run' / 'ledger.sqlite'}")
    try:
        would = [e for e in dry.audit_trail() if e.actor == "robot (dry run)"]
        items = {i.id: i for i in dry.items()}
    finally:
        dry.close()
    merges = [(e.item_id, e.detail) for e in would if e.action == "merge_tickets"]
    assert len(merges) == len(set(merges)), "a later mail would be merged once, not at every pass"
    created = [e.item_id for e in would if e.action == "create_mcf_order"]
    assert created, "some order of the day would have gone to MCF"
    assert len(created) == len(set(created)), "each MCF order would have been created once, not at every pass"
    for item_id in created:
        tracking = [e for e in would if e.item_id == item_id and e.action.startswith("step wait_for_tracking")]
        assert any(e.at.astimezone(JST).date() > day0 for e in tracking), \
            f"{items[item_id].key}: the tracking wait carried over to the next day"

    report = subprocess.run([sys.executable, "-m", "kuroko.ops.cli", "report", "--dry-run"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    per_item = blocks(report.stdout)
    for item_id in created:
        lines = per_item[items[item_id].key]
        assert any("would create_mcf_order on amazon" in line for line in lines), lines
        assert any("wait_for_tracking: not_yet" in line and (day0.isoformat() not in line) for line in lines), \
            "the report shows the tracking checks of the next days"
    assert (data / "dry-run" / "report.html").exists()
    assert dump(real_ledger) == real_rows
