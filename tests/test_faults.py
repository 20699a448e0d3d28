"""Faults: each one either succeeds after retries within the configured limits or is handed to a
person with evidence — never a silent skip, never an endless loop.

Small limits keep the tests fast: two attempts per step, a 60 s backoff base (virtual time: the
clock is moved between passes), two application errors in a row stop a pass, 4 s navigations.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import Sandbox
from robot import Robot, internal_notes, mcf_orders, primary_ticket, side_effects, tickets_of

from bots import mcf_aftercare
from bots import rakuten_sim_order as order_a
from kuroko.clock import clock_from_url
from kuroko.connections import Connections
from kuroko.ledger import Ledger, StepRecord
from kuroko.logs import setup_logging
from kuroko.runner import Runner
from kuroko.settings import get_settings, reload_settings
from services.fulfillment import FULFILLMENT, AmazonSettings
from services.helpdesk import ZendeskHelpdesk

DATA_SIM = "SIM-DATA-30D-20GB"
BACKOFF = {"seconds": 61}
"""A little more than KUROKO_RETRY_BASE_SECONDS: the first retry is due."""


@pytest.fixture
def limits(settings_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KUROKO_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("KUROKO_RETRY_BASE_SECONDS", "60")
    monkeypatch.setenv("KUROKO_MAX_CONSECUTIVE_ERRORS", "2")
    monkeypatch.setenv("KUROKO_NAVIGATION_TIMEOUT_MS", "4000")
    monkeypatch.setenv("KUROKO_ELEMENT_TIMEOUT_MS", "1500")
    reload_settings()
    return settings_env


@contextmanager
def robot_on(sandbox: Sandbox, *, zendesk_wait_seconds: int = 90, only_procedure_a: bool = False) -> Iterator[Robot]:
    """The robot as `kuroko run` builds it; ``zendesk_wait_seconds`` is how long one Zendesk call may
    wait out 429s (zenpy's rate-limit budget) before the runner's backoff takes over;
    ``only_procedure_a``: `kuroko run --procedure rakuten_sim_order` (a test counting Zendesk calls)."""
    reload_settings()
    settings = get_settings()
    ledger = Ledger(settings.ledger_database_url())
    connections = Connections(settings, given={
        "helpdesk": ZendeskHelpdesk(rate_limit_wait_seconds=zendesk_wait_seconds)})
    extra: dict[str, Any] = {"procedures": [order_a.procedure]} if only_procedure_a else {}
    runner = Runner(settings, ledger, connections, clock_from_url(settings.clock_url), **extra)
    try:
        yield Robot(settings, ledger, connections, runner, sandbox)
    finally:
        connections.close()
        ledger.close()


@pytest.fixture
def robot(sandbox: Sandbox, limits: Path) -> Iterator[Robot]:
    with robot_on(sandbox) as robot:
        yield robot


# --- small questions -------------------------------------------------------------------------
def steps(robot: Robot, number: str) -> list[StepRecord]:
    return robot.ledger.steps(robot.order(number).id)


def errors(robot: Robot, number: str) -> list[StepRecord]:
    return [s for s in steps(robot, number) if s.status == "error"]


def requests_to(sandbox: Sandbox, system: str) -> int:
    return int(sandbox.summary()["request_counts"][system])


def hold_notes(sandbox: Sandbox, number: str) -> list[str]:
    return [n for n in internal_notes(primary_ticket(sandbox, number)) if "Kuroko needs a person" in n]


def assert_held_with_evidence(robot: Robot, sandbox: Sandbox, number: str, *, code: str, screenshots: bool,
                              says: str) -> str:
    """Held, the ledger keeps the error of every attempt (with evidence files), and the ticket has
    exactly one hold note and the hold tag. Returns the note."""
    order = robot.order(number)
    assert order.state == "held", f"{number} is {order.state}, not held"
    assert order.hold_code == code, order.hold_reason
    rows = steps(robot, number)
    failed = [s for s in rows if s.status in ("error", "held") and s.error_message]
    assert [s.attempt for s in failed] == list(range(1, robot.settings.max_attempts + 1)), \
        "every attempt up to KUROKO_MAX_ATTEMPTS is recorded, then no more"
    if screenshots:
        for row in failed:
            paths = [Path(p) for p in row.evidence]
            assert any(p.suffix == ".png" for p in paths), f"attempt {row.attempt} kept no screenshot"
            assert any(p.name.endswith("-pages.txt") for p in paths), f"attempt {row.attempt} kept no page list"
            assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    ticket = primary_ticket(sandbox, number)
    notes = hold_notes(sandbox, number)
    assert len(notes) == 1, notes
    assert ticket["status"] == "open" and robot.settings.hold_tag in ticket["tags"]
    assert says in notes[0], notes[0]
    assert f"failed {robot.settings.max_attempts} times" in notes[0]
    return notes[0]


def no_stock_order(sandbox: Sandbox) -> str:
    """An order RSL has no stock for, due for the RMS/MCF path now."""
    number = sandbox.place_order([DATA_SIM])["order_number"]
    sandbox.advance(minutes=31)
    return number


def in_stock_orders(sandbox: Sandbox, count: int) -> list[str]:
    """Orders RSL ships (BOSS 'Shipping in Progress' after 30 minutes), due now."""
    sandbox.set_stock(rsl={DATA_SIM: count})
    numbers = [sandbox.place_order([DATA_SIM])["order_number"] for _ in range(count)]
    sandbox.advance(minutes=31)
    return numbers


# --- Zendesk -----------------------------------------------------------------------------------
def test_zendesk_429_with_retry_after_is_waited_out(robot: Robot, sandbox: Sandbox) -> None:
    (number,) = in_stock_orders(sandbox, 1)
    log_file = setup_logging(robot.settings, console=False)
    sandbox.fault("zendesk", burst_429=3)  # each with Retry-After: 1
    started = time.monotonic()
    robot.run_pass()
    assert time.monotonic() - started >= 3, "Retry-After was honoured (1 s, three times)"
    assert sandbox.summary()["responses_429"]["zendesk"] == 3
    waits = [json.loads(line)["record"] for line in log_file.read_text().splitlines()
             if "retry-after period" in line]
    assert len(waits) == 3 and all(w["level"]["name"] == "WARNING" for w in waits), \
        "zenpy's waits are in Kuroko's own log"
    ticket = primary_ticket(sandbox, number)
    assert ticket["status"] == "solved"
    assert [n.splitlines()[0] for n in internal_notes(ticket)] == ["Boss in progress"]
    assert errors(robot, number) == [], "waited out inside the call: no failed step"


def test_zendesk_429_beyond_the_wait_budget_is_retried_by_the_runner(
        sandbox: Sandbox, limits: Path) -> None:
    sandbox.set_stock(rsl={DATA_SIM: 1})
    number = sandbox.place_order([DATA_SIM])["order_number"]
    with robot_on(sandbox, zendesk_wait_seconds=2, only_procedure_a=True) as robot:
        robot.run_pass()  # taken in; BOSS: Confirmation to be for less than 30 minutes
        sandbox.advance(minutes=31)  # RSL confirms: Shipping in Progress, a second mail arrives
        sandbox.fault("zendesk", burst_429=6)
        report = robot.run_pass()
        assert report.intake_error and "429" in report.intake_error, "said, not swallowed"
        assert sandbox.summary()["responses_429"]["zendesk"] == 4, "two calls, each gave up after 2 s"
        assert report.outcomes["retry"] == 1, "the known order still went on, up to its Zendesk write"
        order = robot.order(number)
        assert order.state == "active" and order.step == "close_in_stock"
        (failed,) = errors(robot, number)
        assert failed.error_code == "429"
        assert order.next_due_at == sandbox.now() + timedelta(seconds=60), "retried after the backoff"
        assert [n for n in internal_notes(primary_ticket(sandbox, number))] == []

        sandbox.clear_faults()
        sandbox.advance(**BACKOFF)
        report = robot.run_pass()
        assert report.intake_error is None
    ticket = primary_ticket(sandbox, number)
    assert ticket["status"] == "solved"
    assert len(internal_notes(ticket)) == 1
    later = [t for t in tickets_of(sandbox, number) if t["id"] != ticket["id"]]
    assert [t["status"] for t in later] == ["closed"], "the second mail was merged once Zendesk answered"


def test_zendesk_5xx_on_a_step_is_retried_after_the_backoff_and_written_once(
        robot: Robot, sandbox: Sandbox) -> None:
    (number,) = in_stock_orders(sandbox, 1)
    sandbox.fault("zendesk", error_rate=1.0, error_paths=["/comments"])  # reading the ticket's notes fails
    robot.run_pass()
    order = robot.order(number)
    assert order.state == "active" and order.step == "close_in_stock" and order.attempt == 1
    (failed,) = errors(robot, number)
    assert failed.error_code == "500"
    assert order.next_due_at == sandbox.now() + timedelta(seconds=60), "retried after KUROKO_RETRY_BASE_SECONDS"

    sandbox.clear_faults()
    robot.run_pass()  # the clock has not moved: the backoff is not over, nothing happens
    assert robot.order(number).attempt == 1 and primary_ticket(sandbox, number)["status"] != "solved"

    sandbox.advance(**BACKOFF)
    robot.run_pass()
    ticket = primary_ticket(sandbox, number)
    assert ticket["status"] == "solved"
    assert len(internal_notes(ticket)) == 1
    assert robot.order(number).state == "done"


def test_zendesk_down_for_good_hands_over_and_the_note_is_written_when_it_is_back(
        robot: Robot, sandbox: Sandbox) -> None:
    (number,) = in_stock_orders(sandbox, 1)
    sandbox.fault("zendesk", error_rate=1.0, error_paths=["/comments"])
    robot.run_pass()
    sandbox.advance(**BACKOFF)
    robot.run_pass()
    order = robot.order(number)
    assert order.state == "held", "after KUROKO_MAX_ATTEMPTS the order waits for a person, not for ever"
    assert internal_notes(primary_ticket(sandbox, number)) == [], "Zendesk is still failing"
    sandbox.advance(hours=1)
    robot.run_pass()
    assert robot.order(number).state == "held"

    sandbox.clear_faults()
    robot.run_pass()
    note = assert_held_with_evidence(robot, sandbox, number, code="500", screenshots=False,
                                     says="Zendesk refused")
    assert "kuroko release" in note
    robot.run_pass()
    assert len(hold_notes(sandbox, number)) == 1, "the hold note is written once"


# --- Amazon SP-API ---------------------------------------------------------------------------------
def thank_you_mails(sandbox: Sandbox, number: str) -> int:
    return sum(m["template"] == "サンクスメール" for m in sandbox.order(number)["mails"])


@pytest.mark.parametrize(("knobs", "code"), [
    ({"burst_429": 1}, "QuotaExceeded"),
    ({"error_rate": 1.0, "error_paths": ["/fba/outbound/"]}, "InternalFailure"),
], ids=["429-quota", "5xx"])
def test_spapi_throttling_and_5xx_are_retried_and_ship_once(robot: Robot, sandbox: Sandbox,
                                                            knobs: dict[str, Any], code: str) -> None:
    number = no_stock_order(sandbox)
    assert robot.connections.use(FULFILLMENT).get_order("RKT-000000-00000000-0000000000") is None  # holds a token now
    # A new ledger lists Amazon's MCF orders at its first pass (the after-sales rebuild): this one did
    # so today already, so the fault meets the order's own calls.
    robot.ledger.audit(item_id=None, at=sandbox.now(), actor="robot", system="amazon", action=mcf_aftercare.LISTED)
    sandbox.fault("spapi", **knobs)
    robot.run_pass()
    order = robot.order(number)
    assert order.state == "active" and order.step == "create_mcf_order" and order.attempt == 1
    (failed,) = errors(robot, number)
    assert failed.error_code == code, failed.error_message
    assert mcf_orders(sandbox) == []
    assert thank_you_mails(sandbox, number) == 1

    sandbox.clear_faults()
    sandbox.advance(**BACKOFF)
    robot.run_pass()
    assert len(mcf_orders(sandbox)) == 1
    world = sandbox.order(number)
    assert world["boss_state"] == "Deleted" and world["confirm_clicks"] == 1
    assert thank_you_mails(sandbox, number) == 1
    assert robot.order(number).step == "wait_for_tracking"


def test_spapi_refused_token_is_handed_over_then_ships_once_after_release(robot: Robot, sandbox: Sandbox) -> None:
    number = no_stock_order(sandbox)
    sandbox.fault("spapi", refuse_token=True)  # the seller revoked the app
    robot.run_pass()
    sandbox.advance(**BACKOFF)
    robot.run_pass()
    note = assert_held_with_evidence(robot, sandbox, number, code="invalid_grant", screenshots=False,
                                     says="Login with Amazon refused")
    assert "KUROKO_SPAPI_REFRESH_TOKEN" in note
    amazon = AmazonSettings()
    assert amazon.spapi_refresh_token.get_secret_value() not in note
    assert amazon.lwa_client_secret.get_secret_value() not in note
    assert mcf_orders(sandbox) == []
    assert sandbox.order(number)["boss_state"] == "Confirmation to be", "not deleted in BOSS before MCF exists"
    sandbox.advance(hours=6)
    robot.run_pass()
    assert robot.order(number).state == "held" and len(hold_notes(sandbox, number)) == 1

    sandbox.clear_faults()  # a person re-authorised the app …
    released = robot.cli("release", number)  # … and lets the robot go on
    assert released.returncode == 0, released.stderr
    robot.run_pass()
    assert len(mcf_orders(sandbox)) == 1
    assert sandbox.order(number)["boss_state"] == "Deleted"
    assert thank_you_mails(sandbox, number) == 1 and sandbox.order(number)["confirm_clicks"] == 1


# --- BOSS and RMS -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("system", "site", "step"), [("boss", "boss", "check_boss"),
                                                      ("rms", "rakuten", "verify_physical_sim")])
def test_slow_pages_beyond_the_timeout_are_retried_and_slow_within_it_succeed(
        robot: Robot, sandbox: Sandbox, system: str, site: str, step: str) -> None:
    number = no_stock_order(sandbox)
    sandbox.fault(system, latency_ms=6000)  # KUROKO_NAVIGATION_TIMEOUT_MS is 4000
    robot.run_pass()
    order = robot.order(number)
    assert order.state == "active" and order.step == step and order.attempt == 1
    (failed,) = errors(robot, number)
    assert failed.error_type == "SiteUnavailable" and "did not load in time" in (failed.error_message or "")
    # A page still loading cannot be photographed; the list of pages the order loaded shows which one it was.
    listed = [Path(p) for p in failed.evidence if p.endswith("-pages.txt")]
    assert listed and f" {site} GET " in listed[0].read_text(encoding="utf-8"), failed.evidence
    assert side_effects(sandbox) == []

    sandbox.fault(system, latency_ms=500)  # slow, but within the timeout
    sandbox.advance(**BACKOFF)
    robot.run_pass()
    world = sandbox.order(number)
    assert world["boss_state"] == "Deleted" and world["confirm_clicks"] == 1
    assert [m["template"] for m in world["mails"]] == ["サンクスメール"] and len(mcf_orders(sandbox)) == 1


def test_boss_answering_500_for_everything_stops_the_pass_after_max_consecutive_errors(
        robot: Robot, sandbox: Sandbox) -> None:
    numbers = in_stock_orders(sandbox, 4)
    sandbox.fault("boss", error_rate=1.0)
    before = requests_to(sandbox, "boss")
    report = robot.run_pass()
    boss_requests = requests_to(sandbox, "boss") - before
    limit = robot.settings.max_consecutive_errors
    assert report.items_run == limit, "the pass stopped instead of trying every order"
    assert report.stopped_early and "in a row" in report.stopped_early
    # One read of the list for the pass, then one per order tried, each answered 500 at once: three
    # pages, each with Chromium's favicon request (trying all four orders would have been ten).
    assert robot.connections.page_loads("boss") == 1 + limit
    assert boss_requests <= 2 * (1 + limit), f"BOSS got {boss_requests} requests"
    tried = [n for n in numbers if robot.order(n).attempt == 1]
    untried = [n for n in numbers if robot.order(n).attempt == 0]
    assert len(tried) == limit and len(untried) == len(numbers) - limit
    assert all(robot.order(n).state == "active" for n in numbers), "nobody skipped, nobody held yet"
    assert side_effects(sandbox) == []

    sandbox.clear_faults()
    sandbox.advance(**BACKOFF)
    report = robot.run_pass()
    assert report.stopped_early is None
    assert all(robot.order(n).state == "done" for n in numbers)
    assert all(primary_ticket(sandbox, n)["status"] == "solved" for n in numbers)


def test_rms_500_while_sending_the_thank_you_mail_sends_it_once_after_the_backoff(
        robot: Robot, sandbox: Sandbox) -> None:
    number = no_stock_order(sandbox)
    sandbox.fault("rms", error_rate=1.0, error_paths=["/mail"])  # the template pages answer 500
    robot.run_pass()
    order = robot.order(number)
    assert order.step == "send_thank_you" and order.attempt == 1
    (failed,) = errors(robot, number)
    assert failed.error_type == "SiteUnavailable" and "500" in (failed.error_message or "")
    assert any(p.endswith("-rakuten.png") for p in failed.evidence), "a screenshot of the 500 page"
    assert sandbox.order(number)["mails"] == [] and sandbox.order(number)["confirm_clicks"] == 1

    sandbox.clear_faults()
    sandbox.advance(**BACKOFF)
    robot.run_pass()
    world = sandbox.order(number)
    assert [m["template"] for m in world["mails"]] == ["サンクスメール"], "sent once, after the backoff"
    assert world["confirm_clicks"] == 1 and len(mcf_orders(sandbox)) == 1


def test_expired_sessions_log_in_again_without_an_error(robot: Robot, sandbox: Sandbox) -> None:
    first = no_stock_order(sandbox)
    robot.run_pass()
    assert sandbox.order(first)["boss_state"] == "Deleted"
    logins = {site: len(sandbox.audit(site, "login")) for site in ("boss", "rms")}
    assert logins == {"boss": 1, "rms": 1}

    second = no_stock_order(sandbox)
    sandbox.fault("boss", expire_sessions=True)
    sandbox.fault("rms", expire_sessions=True)
    robot.run_pass()
    assert {site: len(sandbox.audit(site, "login")) for site in ("boss", "rms")} == {"boss": 2, "rms": 2}
    assert errors(robot, second) == []
    world = sandbox.order(second)
    assert world["boss_state"] == "Deleted" and world["confirm_clicks"] == 1
    assert [m["template"] for m in world["mails"]] == ["サンクスメール"]
    assert len(mcf_orders(sandbox)) == 2


@pytest.mark.parametrize(("system", "element", "step"), [
    ("rms", "confirm_button", "confirm_order"),
    ("boss", "order_deletion", "delete_in_boss"),
])
def test_an_element_that_never_appears_is_handed_over_with_evidence_and_nothing_clicked(
        robot: Robot, sandbox: Sandbox, system: str, element: str, step: str) -> None:
    number = no_stock_order(sandbox)
    sandbox.fault(system, hide_elements=[element])
    robot.run_pass()
    sandbox.advance(**BACKOFF)
    robot.run_pass()
    note = assert_held_with_evidence(robot, sandbox, number, code="page_changed", screenshots=True,
                                     says="selectors/")
    assert robot.order(number).step == step
    assert f"kuroko release {number}" in note
    if system == "boss":
        assert "within 1500 ms" in note, "waited as long as KUROKO_ELEMENT_TIMEOUT_MS says"
    world = sandbox.order(number)
    assert world["boss_state"] != "Cancelled" and "Cancelled" not in world["boss_history"]
    if system == "rms":
        assert world["confirm_clicks"] == 0 and world["mails"] == [] and mcf_orders(sandbox) == []
        assert world["boss_state"] == "Confirmation to be"
    else:
        assert world["boss_state"] == "Confirmation to be" and len(mcf_orders(sandbox)) == 1

    sandbox.clear_faults()  # the selector was fixed …
    assert robot.cli("release", number).returncode == 0  # … and a person lets the robot go on
    robot.run_pass()
    world = sandbox.order(number)
    assert world["boss_state"] == "Deleted" and world["boss_history"].count("Deleted") == 1
    assert world["confirm_clicks"] == 1 and len(mcf_orders(sandbox)) == 1
    assert [m["template"] for m in world["mails"]] == ["サンクスメール"]
    assert robot.order(number).step == "wait_for_tracking"
