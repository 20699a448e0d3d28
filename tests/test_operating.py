"""Operating the robot: the unattended schedule survives SIGTERM, a headed replay under Xvfb does
the same work as headless, failures leave evidence that `show` and `report` point to, and no
secret leaks into logs, evidence names or the report."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from conftest import ROOT, Sandbox
from robot import internal_notes, make_robot, mcf_orders, primary_ticket, side_effects

from kuroko.ledger import Ledger
from kuroko.registry import load_procedures
from kuroko.settings import get_settings, secret_values

DATA_SIM = "SIM-DATA-30D-20GB"
ESIM = "ESIM-DATA-7D-5GB"


def kuroko(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kuroko.ops.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env=os.environ.copy(), timeout=timeout)


def wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_schedule_stops_cleanly_on_sigterm_and_resumes_without_repeating(
        sandbox: Sandbox, settings_env: Path, tmp_path: Path) -> None:
    sandbox.set_stock(rsl={DATA_SIM: 2})
    in_stock = [sandbox.place_order([DATA_SIM])["order_number"] for _ in range(2)]
    no_stock = [sandbox.place_order([DATA_SIM])["order_number"] for _ in range(4)]
    esim = sandbox.place_order([ESIM])["order_number"]
    sandbox.advance(minutes=31)
    schedule = tmp_path / "fast.toml"
    schedule.write_text('timezone = "Asia/Tokyo"\n[[jobs]]\nid = "test"\nprocedure = "rakuten_sim_order"\n'
                        'trigger = "interval"\nseconds = 1\ncoalesce = true\nmax_instances = 1\n')
    ledger = Ledger(get_settings().ledger_database_url())

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "kuroko.ops.cli", "schedule", "--file", str(schedule)], cwd=ROOT,
                                env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    first = start()
    wait_for(lambda: sum(1 for e in side_effects(sandbox) if e["system"] == "rms") >= 2, 120, "RMS work to start")
    first.send_signal(signal.SIGTERM)
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 0, out
    assert "finishing the step in hand" in out

    second = start()
    try:
        wait_for(lambda: all(sandbox.order(n)["boss_state"] == "Deleted" for n in no_stock)
                 and ledger.find_item(esim) is not None and ledger.find_item(esim).state == "held", 240,
                 "every order to reach its resting state")
        # A second scheduler on the same ledger refuses to start.
        third = kuroko("schedule", "--file", str(schedule), timeout=60)
        said = " ".join((third.stderr + third.stdout).split())  # the console wraps long lines
        assert third.returncode != 0 and "already runs on this ledger" in said
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=120)

    for number in no_stock:
        world = sandbox.order(number)
        assert world["confirm_clicks"] == 1
        assert [m["template"] for m in world["mails"]] == ["サンクスメール"]
        notes = internal_notes(primary_ticket(sandbox, number))
        assert sum("FBA information" in n for n in notes) == 1
    assert len(mcf_orders(sandbox)) == len(no_stock)
    for number in in_stock:
        assert primary_ticket(sandbox, number)["status"] == "solved"
        assert len(internal_notes(primary_ticket(sandbox, number))) == 1
    assert sandbox.order(esim)["confirm_clicks"] == 0
    assert Counter(e["action"] for e in side_effects(sandbox))["order_cancelled"] == 0


def _work_done(sandbox: Sandbox, number: str) -> list[tuple[str, str]]:
    return [(e["system"], e["action"]) for e in side_effects(sandbox) if e.get("order_number") == number]


def test_headed_replay_under_xvfb_does_the_same_work_as_headless(sandbox: Sandbox, settings_env: Path) -> None:
    assert shutil.which("xvfb-run"), "xvfb-run is missing: `make install` installs Debian's xvfb"
    headless = sandbox.place_order([DATA_SIM])["order_number"]
    headed = sandbox.place_order([DATA_SIM])["order_number"]
    with make_robot(sandbox) as robot:
        robot.run_pass()  # both taken in; < 30 minutes: nothing done yet
    sandbox.advance(minutes=31)

    plain = kuroko("replay", headless)
    assert plain.returncode == 0, plain.stderr
    shown = subprocess.run(["xvfb-run", "-a", sys.executable, "-m", "kuroko.ops.cli", "replay", headed, "--headed",
                            "--slow-mo", "40"], cwd=ROOT, capture_output=True, text=True, env=os.environ.copy(),
                           timeout=600)
    assert shown.returncode == 0, shown.stderr

    assert _work_done(sandbox, headed) == _work_done(sandbox, headless)
    assert sandbox.order(headed)["boss_state"] == sandbox.order(headless)["boss_state"] == "Deleted"
    ledger = Ledger(get_settings().ledger_database_url())
    steps = [[(s.name, s.status) for s in ledger.steps(ledger.find_item(n).id)] for n in (headless, headed)]
    assert steps[0] == steps[1]

    again = kuroko("replay", headless)  # a replay of work already done changes nothing
    assert again.returncode == 0, again.stderr
    assert _work_done(sandbox, headless) == _work_done(sandbox, headed)


def test_a_failing_step_leaves_trace_and_screenshot_in_show_and_report(sandbox: Sandbox, settings_env: Path) -> None:
    number = sandbox.place_order([DATA_SIM])["order_number"]
    sandbox.advance(minutes=31)
    sandbox.fault("rms", hide_elements=["confirm_button"])
    result = kuroko("run", "--once", "--trace", "retain-on-failure")
    assert result.returncode == 0, result.stderr
    evidence = sorted(p for p in (settings_env / "evidence").rglob("*") if p.is_file())
    assert any(p.suffix == ".png" for p in evidence), evidence
    assert any(p.name.endswith("trace.zip") for p in evidence), evidence

    shown = kuroko("show", number)
    assert shown.returncode == 0, shown.stderr
    for path in evidence:
        assert str(path) in shown.stdout

    written = kuroko("report")
    assert written.returncode == 0, written.stderr
    html = (settings_env / "report.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in html
    assert "trace.zip" in html
    assert "confirm_button" in html or "注文確認" in html or "did not appear" in html


def test_trace_off_records_no_trace_but_keeps_screenshot_page_and_pages_loaded(sandbox: Sandbox,
                                                                             settings_env: Path) -> None:
    """Without a trace a person still sees the failed step: its screenshot, the page's HTML as it was,
    and every page the order loaded, in order."""
    number = sandbox.place_order([DATA_SIM])["order_number"]
    sandbox.advance(minutes=31)
    sandbox.fault("rms", hide_elements=["confirm_button"])
    result = kuroko("run", "--once", "--trace", "off")
    assert result.returncode == 0, result.stderr
    files = [p for p in (settings_env / "evidence").rglob("*") if p.is_file()]
    evidence = sorted(p.name for p in files)
    assert any(name.endswith(".png") for name in evidence), evidence
    assert not any(name.endswith(".zip") for name in evidence), "no trace was recorded"
    page = next(p for p in files if p.name.endswith("-rakuten.html"))
    assert "受注詳細" in page.read_text(encoding="utf-8") and number in page.read_text(encoding="utf-8")
    loaded = next(p for p in files if p.name.endswith("-pages.txt")).read_text(encoding="utf-8").splitlines()
    assert any("rakuten GET " in line and line.endswith(f"/rms/order/{number}") for line in loaded), loaded
    shown = kuroko("show", number)
    assert page.name in shown.stdout
    refused = kuroko("run", "--once", "--trace", "sometimes")
    assert refused.returncode != 0 and "use retain-on-failure, on or off" in refused.stdout + refused.stderr


def test_no_secret_in_logs_evidence_names_or_report(sandbox: Sandbox, settings_env: Path) -> None:
    sandbox.place_order([DATA_SIM])
    sandbox.place_order([ESIM])
    sandbox.advance(minutes=31)
    sandbox.fault("boss", expire_sessions=True)
    assert kuroko("run", "--once").returncode == 0
    sandbox.fault("rms", hide_elements=["confirm_button"])
    sandbox.place_order([DATA_SIM])
    sandbox.advance(minutes=31)
    assert kuroko("run", "--once").returncode == 0
    assert kuroko("report").returncode == 0

    load_procedures()  # every procedure's settings models (and so their secrets) are known here too
    secrets = secret_values()
    assert len(secrets) >= 5
    texts = []
    for path in settings_env.rglob("*"):
        texts.append(str(path))  # every file name, traces and screenshots included
        if path.is_file() and path.suffix in (".jsonl", ".html", ".log", ".txt"):
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
    blob = "\n".join(texts)
    assert "kuroko.jsonl" in blob and "report.html" in blob
    for secret in secrets:
        assert secret not in blob
