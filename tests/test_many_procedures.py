"""The order desk runs any number of procedures the same way: a toy procedure registered next to
procedure A (by KUROKO_EXTRA_PROCEDURES, no change to the engine) is run, shown, reported,
scheduled and replayed by the real `kuroko` command; `--procedure` runs one. Hand-overs of items
with no ticket of their own, or whose ticket Zendesk closed, go on a ticket the robot opens."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, Sandbox
from robot import internal_notes, make_robot, primary_ticket, tickets
from toy_procedure import inbox, outbox

from kuroko.migrations import head
from services.helpdesk import HELPDESK

DATA_SIM = "SIM-DATA-30D-20GB"
ESIM = "ESIM-DATA-30D-20GB"


@pytest.fixture
def toy_env(settings_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KUROKO_EXTRA_PROCEDURES", "toy_procedure:procedure")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]))
    from kuroko.settings import reload_settings

    reload_settings()
    settings_env.mkdir(parents=True, exist_ok=True)
    return settings_env


def kuroko(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kuroko.ops.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "COLUMNS": "300"}, timeout=timeout)


def robot_agent(sandbox: Sandbox) -> int:
    users = sandbox.state()["zendesk"]["users"]
    return next(u["id"] for u in users if u["email"] == os.environ["KUROKO_ZENDESK_EMAIL"])


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_second_procedure_runs_beside_procedure_a_in_every_command(sandbox: Sandbox, toy_env: Path, backend: str,
                                                                     request: pytest.FixtureRequest,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command, on the default SQLite ledger and on PostgreSQL (KUROKO_LEDGER_URL)."""
    if backend == "postgresql":
        monkeypatch.setenv("KUROKO_LEDGER_URL", request.getfixturevalue("pg_url"))
    number = sandbox.place_order([DATA_SIM])["order_number"]
    inbox(toy_env).write_text("alice\nbad-bob\n", encoding="utf-8")

    only_toy = kuroko("run", "--once", "--procedure", "toy_greeting")
    assert only_toy.returncode == 0, only_toy.stderr
    status = kuroko("status")
    assert "toy_greeting" in status.stdout and "rakuten_sim_order" not in status.stdout, "--procedure ran one"
    assert outbox(toy_env).read_text(encoding="utf-8").splitlines() == ["hello alice"]

    both = kuroko("run", "--once")
    assert both.returncode == 0, both.stderr
    status = kuroko("status")
    assert "toy_greeting" in status.stdout and "rakuten_sim_order" in status.stdout
    assert "bad-bob" in status.stdout and "is not a name the toy can greet" in status.stdout

    shown = kuroko("show", "alice")
    assert shown.returncode == 0 and "toy_greeting" in shown.stdout and "greet" in shown.stdout
    shown = kuroko("show", number)
    assert shown.returncode == 0 and "check_boss" in shown.stdout
    released = kuroko("release", "bad-bob")
    assert released.returncode == 0 and "Released bad-bob" in released.stdout, released.stderr
    assert f"ledger at {head()}" in kuroko("db", "current").stdout

    replayed = kuroko("replay", "alice")
    assert replayed.returncode == 0, replayed.stderr
    assert outbox(toy_env).read_text(encoding="utf-8").splitlines() == ["hello alice"], "reconciled, not repeated"

    report = kuroko("report")
    assert report.returncode == 0, report.stderr
    html = (toy_env / "report.html").read_text(encoding="utf-8")
    assert "Toy greeting" in html and "Rakuten physical-SIM order" in html and "bad-bob" in html

    schedule = toy_env / "schedule.toml"
    schedule.write_text('timezone = "Asia/Tokyo"\n'
                        '[[jobs]]\nid = "toy"\nprocedure = "toy_greeting"\ntrigger = "interval"\nhours = 1\n'
                        '[[jobs]]\nid = "rakuten"\nprocedure = "rakuten_sim_order"\ntrigger = "interval"\nhours = 1\n',
                        encoding="utf-8")
    sandbox.advance(days=1, minutes=31)  # the toy says goodbye the next day; the Rakuten order is due
    proc = subprocess.Popen([sys.executable, "-m", "kuroko.ops.cli", "schedule", "--file", str(schedule)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            said = outbox(toy_env).read_text(encoding="utf-8")
            if "goodbye alice" in said and sandbox.order(number)["mails"]:
                break
            time.sleep(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
    assert "goodbye alice" in outbox(toy_env).read_text(encoding="utf-8"), output[-3000:]
    assert sandbox.order(number)["mails"], "the Rakuten job ran too: サンクスメール sent"


def test_an_item_without_a_ticket_is_handed_over_on_one_robot_ticket(sandbox: Sandbox, toy_env: Path) -> None:
    inbox(toy_env).write_text("bad-carol\n", encoding="utf-8")
    with make_robot(sandbox) as robot:
        robot.run_pass()
        item = robot.ledger.find_item("bad-carol", "toy_greeting")
        assert item is not None and item.state == "held" and item.ticket_id is None
        opened = [t for t in tickets(sandbox) if t["id"] == item.handover_ticket_id]
        assert len(opened) == 1
        ticket = opened[0]
        assert ticket["requester_id"] == robot_agent(sandbox), "the robot's own agent asks, not a customer"
        assert ticket["comments"] and not any(c["public"] for c in ticket["comments"]), "no mail to anyone outside"
        assert robot.settings.hold_tag in ticket["tags"] and ticket["status"] == "open"
        assert "Greet this one by hand." in ticket["comments"][0]["body"]
        created = [e for e in sandbox.audit("zendesk", "ticket_created") if e["ticket_id"] == ticket["id"]]
        assert created[0]["requester_role"] == "agent" and created[0]["first_comment_public"] is False

        robot.runner.release(item, sandbox.now(), by="test", remove_tag=True)
        robot.run_pass()  # the toy still refuses: handed over again
        again = robot.ledger.find_item("bad-carol", "toy_greeting")
        assert again is not None and again.state == "held" and again.handover_ticket_id == ticket["id"]
        robot_tickets = [t for t in tickets(sandbox) if t["requester_id"] == robot_agent(sandbox)]
        assert len(robot_tickets) == 1, "the second hand-over reused the ticket"
        assert len(internal_notes(robot_tickets[0])) == 2


def test_an_order_whose_ticket_is_closed_is_handed_over_on_a_follow_up(sandbox: Sandbox, toy_env: Path) -> None:
    number = sandbox.place_order([ESIM])["order_number"]
    sandbox.advance(minutes=31)
    with make_robot(sandbox) as robot:
        robot.run_pass()
        order = robot.order(number)
        assert order.state == "held" and order.hold_code == "not_physical_sim"
        first = primary_ticket(sandbox, number)
        robot.connections.use(HELPDESK).set_status(first["id"], "solved")  # a person solved it …
        sandbox.advance(days=5)  # … and Zendesk closed it
        assert next(t for t in tickets(sandbox) if t["id"] == first["id"])["status"] == "closed"

        robot.runner.release(robot.order(number), sandbox.now(), by="test", remove_tag=True)
        robot.run_pass()
        order = robot.order(number)
        assert order.state == "held" and order.handover_ticket_id not in (None, first["id"])
        follow_up = next(t for t in tickets(sandbox) if t["id"] == order.handover_ticket_id)
        assert follow_up["followup_source_id"] == first["id"]
        assert follow_up["requester_id"] == robot_agent(sandbox)
        assert not any(c["public"] for c in follow_up["comments"])
        assert "Kuroko needs a person for Rakuten order" in follow_up["comments"][0]["body"]

        robot.runner.release(robot.order(number), sandbox.now(), by="test", remove_tag=True)
        robot.run_pass()
        assert robot.order(number).handover_ticket_id == follow_up["id"], "reused, not a third ticket"
