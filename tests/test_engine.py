"""The engine on its own: a toy procedure, fakes of the service Protocols, a ledger in a temporary
file, a clock moved by hand — no browser, no sandbox. What every procedure gets from the engine is
proved here once: done, not yet, held, retried by the step's policy, Retry-After honoured, the pass
stopped after N errors, a wrong declaration refused, and the defects found in review."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeClock, FakeDesk

from kuroko.connections import Connection, Connections
from kuroko.errors import ApplicationError, BusinessRuleError, ConfigurationError, SiteUnavailable
from kuroko.handover import Desk
from kuroko.ledger import ItemState, Ledger
from kuroko.procedure import (
    Done,
    IntakeContext,
    NotYet,
    Outcome,
    Procedure,
    RegistrationError,
    RetryPolicy,
    StepContext,
)
from kuroko.runner import Runner
from kuroko.settings import Settings

DESK: Connection[Desk] = Connection("toy_desk", lambda connections: FakeDesk())
SYSTEM = "toy"


class World:
    """The toy's outside world: what it was asked to do, and faults to throw."""

    def __init__(self) -> None:
        self.done: list[str] = []
        self.inbox: list[str] = []
        self.failures: list[BaseException] = []

    def do(self, what: str) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.done.append(what)


def toy(world: World, *, policy: RetryPolicy | None = None, next_step: str = "finish",
        first_then: tuple[str, ...] = ("finish",)) -> Procedure:
    """take in → work (one side effect; waits for 'later' keys; hands over 'bad' keys) → finish."""
    procedure = Procedure("toy", title="Toy", item_label="toy item", desk=DESK)

    @procedure.intake
    def take_in(ctx: IntakeContext) -> None:
        for key in world.inbox:
            ctx.take_in(key)

    @procedure.step(first=True, then=first_then, needs_person="Do the toy's work by hand.", retry=policy)
    def work(ctx: StepContext) -> Outcome:
        if ctx.key.startswith("bad"):
            raise BusinessRuleError(f"{ctx.key} is not something the toy does", code="toy_refused")
        if ctx.key.startswith("later") and not ctx.facts.get("waited"):
            ctx.facts["waited"] = True
            return NotYet(ctx.now + timedelta(hours=2), "not before two hours")
        ctx.act(SYSTEM, "work", lambda: world.do(f"work {ctx.key}"))
        return Done(next_step, detail="worked")

    @procedure.step(final=True, needs_person="Finish by hand.")
    def finish(ctx: StepContext) -> Outcome:
        return Done(None, detail="finished")

    procedure.validate()
    return procedure


class Desk_:
    """The engine under test, with its fakes."""

    def __init__(self, tmp_path: Path, procedure: Procedure, ledger_url: str | None = None, **settings: Any) -> None:
        self.settings = Settings(_env_file=None, data_dir=tmp_path, clock_url=None,  # type: ignore[call-arg]
                                 max_attempts=3, retry_base_seconds=60, max_consecutive_errors=3, **settings)
        self.ledger = Ledger(ledger_url or f"sqlite:///{tmp_path / 'ledger.sqlite'}")
        self.clock = FakeClock()
        self.desk = FakeDesk()
        self.connections = Connections(self.settings, given={"toy_desk": self.desk})
        self.procedure = procedure
        self.runner = Runner(self.settings, self.ledger, self.connections, self.clock, procedures=[procedure])

    def item(self, key: str) -> Any:
        found = self.ledger.find_item(key, self.procedure.name)
        assert found is not None, f"no item {key}"
        return found


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def make(tmp_path: Path, world: World, ledger_url: str) -> Iterator[Callable[..., Desk_]]:
    """The engine on a fresh ledger — each test runs on SQLite and on PostgreSQL."""
    made: list[Desk_] = []

    def build(procedure: Procedure | None = None, **settings: Any) -> Desk_:
        engine = Desk_(tmp_path, procedure or toy(world), ledger_url, **settings)
        made.append(engine)
        return engine

    yield build
    for engine in made:
        engine.ledger.close()


# --- outcomes -------------------------------------------------------------------------------------
def test_an_item_still_due_after_its_run_waits_for_the_next_pass(make: Callable[..., Desk_]) -> None:
    """A step may say "not yet" with the pass's own time (e.g. a wait of zero): the pass runs every
    other item once and ends, instead of taking that item again and again."""
    procedure = Procedure("toy", title="Toy", item_label="toy item", desk=DESK)
    runs: list[str] = []

    @procedure.intake
    def take_in(ctx: IntakeContext) -> None:
        for key in ("a1", "again1", "a2", "a3"):
            ctx.take_in(key)

    @procedure.step(first=True, final=True, needs_person="Do it by hand.")
    def work(ctx: StepContext) -> Outcome:
        runs.append(ctx.key)
        if ctx.key.startswith("again"):
            return NotYet(ctx.now, "asks again at once")
        return Done(None, detail="worked")

    procedure.validate()
    engine = make(procedure)
    report = engine.runner.run_pass()
    assert sorted(runs) == ["a1", "a2", "a3", "again1"] and report.items_run == 4
    assert engine.item("again1").state == "active"
    engine.runner.run_pass()
    assert sorted(runs) == ["a1", "a2", "a3", "again1", "again1"], "the next pass takes it again, once"


def test_done_runs_the_steps_to_the_end_with_one_audited_side_effect(make: Callable[..., Desk_],
                                                                      world: World) -> None:
    engine = make()
    world.inbox = ["a1"]
    report = engine.runner.run_pass()
    assert report.outcomes["done"] == 1
    assert engine.item("a1").state == "done"
    assert world.done == ["work a1"]
    audit = [(e.system, e.action) for e in engine.ledger.audit_trail(engine.item("a1").id)]
    assert ("kuroko", "taken_in") in audit and (SYSTEM, "work") in audit
    engine.runner.run_pass()
    assert world.done == ["work a1"], "a second pass takes nothing in twice and does nothing again"


def test_not_yet_sleeps_until_the_time_given(make: Callable[..., Desk_], world: World) -> None:
    engine = make()
    world.inbox = ["later1"]
    engine.runner.run_pass()
    assert engine.item("later1").state == "active" and world.done == []
    engine.clock.advance(hours=1)
    engine.runner.run_pass()
    assert world.done == [], "not due yet"
    engine.clock.advance(hours=1, seconds=1)
    engine.runner.run_pass()
    assert world.done == ["work later1"] and engine.item("later1").state == "done"


def test_a_business_rule_hands_the_item_to_a_person_on_a_ticket_the_robot_opens(make: Callable[..., Desk_],
                                                                                 world: World) -> None:
    engine = make()
    world.inbox = ["bad1"]
    engine.runner.run_pass()
    item = engine.item("bad1")
    assert item.state == "held" and item.hold_code == "toy_refused"
    assert item.ticket_id is None and item.handover_ticket_id is not None
    ticket = engine.desk.ticket(item.handover_ticket_id)
    assert ticket.requester == "robot" and not any(c.public for c in ticket.comments)
    assert "Do the toy's work by hand." in ticket.comments[0].body and "kuroko_hold" in ticket.tags
    engine.runner.run_pass()
    assert engine.desk.count("open") == 1, "held: nothing more happens"

    engine.runner.release(engine.item("bad1"), engine.clock.now(), by="test", remove_tag=True)
    engine.runner.run_pass()
    assert engine.item("bad1").state == "held"
    assert engine.desk.count("open") == 1, "the second hand-over reuses the robot's ticket"
    assert len(engine.desk.ticket(item.handover_ticket_id).comments) == 2


def test_an_item_whose_ticket_is_closed_is_handed_over_on_a_follow_up(make: Callable[..., Desk_],
                                                                       world: World) -> None:
    engine = make()
    closed = engine.desk.new_ticket(status="closed")
    engine.ledger.add_item(procedure="toy", key="bad2", ticket_id=closed, step="work",
                           due=engine.clock.now(), now=engine.clock.now())
    engine.runner.run_pass()
    item = engine.item("bad2")
    assert item.handover_ticket_id not in (None, closed)
    assert engine.desk.ticket(item.handover_ticket_id).follow_up_of == closed
    assert engine.desk.ticket(closed).comments == [], "nothing was written to the closed ticket"


def test_a_ticket_opened_before_a_crash_is_found_again_not_opened_twice(make: Callable[..., Desk_],
                                                                        world: World) -> None:
    engine = make()
    world.inbox = ["bad3"]
    engine.runner.run_pass()
    item = engine.item("bad3")
    engine.ledger.update_item(item.id, engine.clock.now(), handover_ticket_id=None)  # the record was lost
    engine.runner.release(engine.item("bad3"), engine.clock.now(), by="test", remove_tag=False)
    engine.runner.run_pass()
    assert engine.desk.count("open") == 1
    assert engine.item("bad3").handover_ticket_id == item.handover_ticket_id


# --- retries --------------------------------------------------------------------------------------
def test_an_application_error_is_retried_by_the_steps_policy_then_handed_over(make: Callable[..., Desk_],
                                                                              world: World) -> None:
    policy = RetryPolicy(initial=timedelta(minutes=5), factor=3, maximum=timedelta(minutes=20), attempts=4)
    engine = make(toy(world, policy=policy))
    world.inbox = ["a2"]
    world.failures = [SiteUnavailable("down")] * 4
    engine.runner.run_pass()
    item = engine.item("a2")
    assert item.attempt == 1 and item.next_due_at - engine.clock.now() == timedelta(minutes=5)
    engine.clock.advance(minutes=5)
    engine.runner.run_pass()
    assert engine.item("a2").next_due_at - engine.clock.now() == timedelta(minutes=15), "5 × 3"
    engine.clock.advance(minutes=15)
    engine.runner.run_pass()
    assert engine.item("a2").next_due_at - engine.clock.now() == timedelta(minutes=20), "45 min capped at 20"
    engine.clock.advance(minutes=20)
    engine.runner.run_pass()
    item = engine.item("a2")
    assert item.state == "held" and "failed 4 times" in (item.hold_reason or ""), "the 4th attempt was the last"
    assert world.done == []


def test_an_error_the_policy_never_retries_goes_to_a_person_at_once(make: Callable[..., Desk_],
                                                                    world: World) -> None:
    engine = make(toy(world, policy=RetryPolicy(never_retry=(SiteUnavailable,))))
    world.inbox = ["a3"]
    world.failures = [SiteUnavailable("down for good")]
    engine.runner.run_pass()
    assert engine.item("a3").state == "held"


def test_a_retry_after_carried_by_the_error_wins_over_the_formula(make: Callable[..., Desk_],
                                                                  world: World) -> None:
    """Defect: SpApiError.retry_after was never read; every retry waited the formula's 60 s."""
    from services.fulfillment import SpApiError

    engine = make()
    world.inbox = ["a4", "a5"]
    world.failures = [SpApiError("quota", code="QuotaExceeded", operation="getFulfillmentOrder", status=429,
                                 retry_after=7.0)]
    hinted = ApplicationError("busy")
    hinted.retry_after = 300
    world.failures.append(hinted)
    engine.runner.run_pass()
    assert engine.item("a4").next_due_at - engine.clock.now() == timedelta(seconds=7)
    assert engine.item("a5").next_due_at - engine.clock.now() == timedelta(seconds=300)


def test_the_pass_stops_after_n_application_errors_in_a_row(make: Callable[..., Desk_], world: World) -> None:
    engine = make()
    world.inbox = [f"a{n}" for n in range(10, 16)]
    world.failures = [SiteUnavailable("down")] * 10
    report = engine.runner.run_pass()
    assert report.items_run == 3 and report.stopped_early and "in a row" in report.stopped_early


# --- declarations ---------------------------------------------------------------------------------
def bare(name: str = "broken") -> Procedure:
    return Procedure(name, title="Broken", item_label="thing")


def step_fn(ctx: StepContext) -> Outcome:
    return Done(None)


@pytest.mark.parametrize(("declare", "complaint"), [
    (lambda p: p.step(first=True, then="nowhere", needs_person="x")(step_fn), "'nowhere', which is not a step"),
    (lambda p: (p.step(first=True, final=True, needs_person="x")(step_fn),
                p.step(final=True, needs_person="x", name="step_fn")(step_fn)), "two steps are named 'step_fn'"),
    (lambda p: p.step(first=True, final=True)(step_fn), "has no needs_person text"),
    (lambda p: p.step(final=True, needs_person="x")(step_fn), "no step is marked first=True"),
    (lambda p: p.step(first=True, needs_person="x")(step_fn), "neither goes on"),
])
def test_registration_refuses_a_wrong_declaration(declare: Callable[[Procedure], object], complaint: str) -> None:
    procedure = bare()
    declare(procedure)
    with pytest.raises(RegistrationError, match=complaint):
        procedure.validate()


def test_extra_procedures_are_registered_by_import_path_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from kuroko.registry import load_procedures
    from kuroko.settings import reload_settings

    monkeypatch.setenv("KUROKO_EXTRA_PROCEDURES", "toy_procedure:procedure")
    reload_settings()
    try:
        assert {"rakuten_sim_order", "toy_greeting"} <= set(load_procedures())
        monkeypatch.setenv("KUROKO_EXTRA_PROCEDURES", "fakes:FakeDesk")
        reload_settings()
        with pytest.raises(RegistrationError, match="not a kuroko Procedure"):
            load_procedures()
    finally:
        monkeypatch.delenv("KUROKO_EXTRA_PROCEDURES")
        reload_settings()


# --- the defects found in review ------------------------------------------------------------------
def test_a_done_naming_no_declared_step_is_held_not_saved(make: Callable[..., Desk_], world: World) -> None:
    """Defect: the step was looked up outside the try; a Done naming a step that does not exist was
    saved, and every later pass died with KeyError on that item."""
    engine = make(toy(world, next_step="finsh"))
    world.inbox = ["a6", "a7"]
    report = engine.runner.run_pass()
    item = engine.item("a6")
    assert item.state == "held" and item.hold_code == "bad_transition" and item.step == "work"
    assert report.outcomes["held"] == 2, "the pass went on to the next item"
    engine.runner.run_pass()  # and no later pass dies on it


def test_an_item_at_a_step_that_no_longer_exists_is_held_and_the_pass_goes_on(make: Callable[..., Desk_],
                                                                              world: World) -> None:
    engine = make()
    now = engine.clock.now()
    engine.ledger.add_item(procedure="toy", key="old", ticket_id=None, step="renamed_step", due=now, now=now)
    world.inbox = ["a8"]
    report = engine.runner.run_pass()
    assert engine.item("old").state == "held" and engine.item("old").hold_code == "unknown_step"
    assert engine.item("a8").state == "done" and report.items_run == 2


def test_a_configuration_error_in_a_step_stops_the_pass_and_holds_nothing(make: Callable[..., Desk_],
                                                                          world: World) -> None:
    """Defect: a ConfigurationError raised in a step (Chromium missing, a bad setting) was retried and
    ended as hold notes; it must stop the run and say which setting."""
    engine = make()
    world.inbox = ["a9", "a10"]
    world.failures = [ConfigurationError("No Chromium at /nowhere; set KUROKO_BROWSER_PATH")]
    with pytest.raises(ConfigurationError, match="KUROKO_BROWSER_PATH"):
        engine.runner.run_pass()
    for key in ("a9", "a10"):
        item = engine.item(key)
        assert item.state == "active" and item.attempt == 0 and item.hold_code is None
    assert engine.desk.calls == [], "no note about a robot setting in the helpdesk"
    assert engine.item("a9").lease_owner is None, "the lease is given back"


def test_intake_racing_another_robot_for_the_same_work_does_not_kill_the_pass(tmp_path: Path, world: World,
                                                                                ledger_url: str) -> None:
    """Defect: two processes taking in the same ticket hit the unique key with an IntegrityError the
    pass did not catch. Now the item is simply the other robot's."""
    procedure = Procedure("toy", title="Toy", item_label="toy item", desk=DESK)
    other = Ledger(ledger_url)

    @procedure.intake
    def take_in(ctx: IntakeContext) -> None:
        for key in ("r1", "r2"):
            if ctx.ledger.find_item(key, "toy") is None:  # looks free …
                if key == "r1":  # … but the other robot takes it in at this very moment
                    other.add_item(procedure="toy", key=key, ticket_id=None, step="finish", due=ctx.now,
                                   now=ctx.now)
                if ctx.take_in(key) is not None:
                    ctx.taken_in.append(key)

    procedure.step(first=True, final=True, needs_person="x", name="finish")(step_fn)
    procedure.validate()
    engine = Desk_(tmp_path, procedure, ledger_url)
    report = engine.runner.run_pass()
    assert report.intake == ["r2"] and report.intake_error is None
    assert {i.key: i.state for i in engine.ledger.items()} == {"r1": "done", "r2": "done"}
    other.close()
    engine.ledger.close()


def test_every_side_effect_of_a_dry_run_is_said_not_done(make: Callable[..., Desk_], world: World,
                                                         tmp_path: Path) -> None:
    engine = make()
    world.inbox = ["a11", "bad4"]
    dry = Runner(engine.settings, engine.ledger, engine.connections, engine.clock, procedures=[engine.procedure],
                 dry_run=True)
    report = dry.run_pass()
    assert world.done == [] and engine.desk.calls == []
    assert any("would work on toy" in a for a in report.actions)
    assert any("would open_handover_ticket" in a for a in report.actions)
    assert engine.ledger.items() == [], "the real ledger is untouched"
    assert ItemState.DONE.value in {i.state for i in dry.ledger.items()}
