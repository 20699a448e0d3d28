"""The loop over work items, and the only place that retries. It knows no procedure: it runs the
ones it is given (every registered one by default) the same way.

A pass: for each procedure (one robot at a time: ``Ledger.intake_lock``) release held items whose
hold tag a person removed and take in its new work → the per-pass reads → claim the next due item
(``Ledger.claim_next``: one statement, a lease renewed between steps), run its next step, record
the outcome, go on while steps finish, give it back, claim the next, until none is free:

- ``Done``            → the next step (one the step declared), or the item is complete;
- ``NotYet(until)``   → the item sleeps until then;
- business rule       → handed to a person (internal note, tag, ticket Open — on a ticket the robot
                        opens when the item has none it can use), held until released;
- application error   → screenshot, page HTML and pages loaded kept (a trace too when KUROKO_TRACE
                        asks), browser contexts reset, retried by the step's RetryPolicy (a
                        Retry-After the error carries wins); after the last attempt
                        handed to a person;
- configuration error → the pass stops and the error goes up to the command, which says which
                        setting to fix; no item is held for it.

After ``max_consecutive_errors`` application errors in a row the pass stops instead of
hammering a broken site.
"""

from __future__ import annotations

import contextlib
import gc
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loguru import logger

from kuroko.clock import Clock
from kuroko.connections import Connections
from kuroko.errors import ApplicationError, BusinessRuleError, ConfigurationError, KurokoError
from kuroko.handover import HandOver, marker
from kuroko.ledger import ItemState, Ledger, StepStatus, WorkItem, wall_now
from kuroko.logs import redact
from kuroko.procedure import Done, Effects, IntakeContext, NotYet, Procedure, StepContext
from kuroko.settings import Settings

MAX_STEPS_PER_ITEM = 20
Listener = Callable[[str, dict[str, Any]], None]


class UnknownStep(BusinessRuleError):
    """The item stands at a step its procedure does not have (renamed or removed since)."""

    code = "unknown_step"


class BadTransition(BusinessRuleError):
    """A step said to go on to a step it did not declare (a defect in the procedure)."""

    code = "bad_transition"


@contextlib.contextmanager
def garbage_collected_after_each_item() -> Iterator[None]:
    """Collect Python's cyclic garbage at the start of a pass, then freeze what is alive (the
    collection after each item then scans only what this pass made: a few ms, not 70).

    Playwright's objects and each item's step objects form cycles. Python runs a full collection
    only once the garbage reaches a quarter of everything long-lived — about 20 MiB on a 300-order
    day — and its allocator keeps the high-water mark, pinned by the few objects that outlive their
    neighbours: the longer the pass, the higher. Unfrozen at the end: what was alive at the start
    and died since is collected by the next pass."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@dataclass
class PassReport:
    started_at: datetime
    intake: list[str] = field(default_factory=list)
    intake_error: str | None = None
    """Why new work could not be taken in this pass (it is looked for again at the next)."""
    items_run: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    actions: list[str] = field(default_factory=list)
    stopped_early: str | None = None
    counters: dict[str, int] = field(default_factory=dict)
    """What the connections counted during the pass (page loads, requests, list reads)."""


class Heartbeat:
    """While a pass runs, a background thread renews the robot's row in ``workers`` every
    ``seconds``; a clean end marks it stopped. A robot that dies stops beating."""

    def __init__(self, ledger: Ledger, worker_id: str, seconds: float) -> None:
        self.ledger = ledger
        self.worker_id = worker_id
        self.seconds = seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="kuroko-heartbeat", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                self.ledger.heartbeat(self.worker_id)
            except Exception as exc:  # a missed beat is no reason to stop the pass
                logger.warning("heartbeat not written: {}", redact(str(exc)))

    def __enter__(self) -> Heartbeat:
        self.ledger.heartbeat(self.worker_id)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        with contextlib.suppress(Exception):
            self.ledger.heartbeat(self.worker_id, stopped=True)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def release_command(item: WorkItem, ambiguous: bool = False) -> str:
    return f"kuroko release {item.key}" + (f" --procedure {item.procedure}" if ambiguous else "")


class Runner:
    def __init__(self, settings: Settings, ledger: Ledger, connections: Connections, clock: Clock, *,
                 procedures: Iterable[Procedure] | None = None, dry_run: bool = False,
                 trace: str | None = None, worker_id: str | None = None, listener: Listener | None = None,
                 pause_on_error: bool = False) -> None:
        if procedures is None:
            from kuroko.registry import load_procedures

            procedures = load_procedures().values()
        self.procedures: dict[str, Procedure] = {p.name: p for p in procedures}
        self.settings = settings
        if ledger.dry_run and not dry_run:
            raise ConfigurationError("a dry run's ledger was given to a real run; real runs use the real ledger")
        self.ledger = ledger.copy_to_memory() if dry_run and not ledger.dry_run else ledger
        """A dry run works on a dry-run ledger (``Ledger.for_dry_run``, kept across passes) or else on
        a throwaway copy: the real ledger is never written."""
        self.connections = connections
        self.clock = clock
        self.dry_run = dry_run
        self.trace = trace or settings.trace
        """off | retain-on-failure | on (None: the KUROKO_TRACE setting)."""
        self.worker_id = worker_id or default_worker_id()
        self.listener = listener
        self.pause_on_error = pause_on_error
        """Open the Playwright inspector on the failing page (supervised, headed runs)."""
        self.run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:4]
        self.consecutive_errors = 0
        self.stop_requested = False
        """Set from a signal handler: finish the step in hand, then stop."""

    def emit(self, event: str, **data: Any) -> None:
        if self.listener is not None:
            self.listener(event, data)

    def procedure_of(self, item: WorkItem) -> Procedure:
        procedure = self.procedures.get(item.procedure)
        if procedure is None:
            raise ConfigurationError(f"{item.procedure} {item.key}: no procedure {item.procedure!r} is registered "
                                     f"here (registered: {', '.join(self.procedures)})")
        return procedure

    def effects(self, now: datetime) -> Effects:
        return Effects(self.ledger, self.settings, now, dry_run=self.dry_run)

    # --- a pass ----------------------------------------------------------------------------
    def run_pass(self) -> PassReport:
        """One pass, with this robot's heartbeat renewed in the background while it runs."""
        with garbage_collected_after_each_item():
            if self.dry_run:
                return self._run_pass()
            with Heartbeat(self.ledger, self.worker_id, self.settings.heartbeat_seconds):
                return self._run_pass()

    def _next_item(self, now: datetime, names: list[str], ran: list[int], again: list[int]) -> WorkItem | None:
        """Claim the next due item (one statement; see ``Ledger.claim_next``) other than ``again``,
        those this robot ran in this pass that are still due. A dry run claims nothing: it walks its
        throwaway copy in the same order."""
        if self.dry_run:
            return next((i for i in self.ledger.due_items(now, names) if i.id not in ran), None)
        for _ in range(2):  # a row another robot took just now can hide the next one from this snapshot
            item = self.ledger.claim_next(names, self.worker_id, now, lease_seconds=self.settings.lease_seconds,
                                          heartbeat_timeout=self.settings.heartbeat_timeout_seconds, skip=again)
            if item is not None:
                return item
        return None

    def _run_pass(self) -> PassReport:
        now = self.clock.now()
        report = PassReport(started_at=now)
        wall_started = wall_now()
        self.connections.new_pass()
        counters_before = self.connections.metrics()
        self.consecutive_errors = 0
        names = list(self.procedures)
        failures: list[str] = []
        for procedure in self.procedures.values():
            failures += self._intake(procedure, now, report)
        if failures:
            self.consecutive_errors += 1
            report.intake_error = redact("; ".join(failures))
            logger.error("taking in new work failed (tried again at the next pass): {}", report.intake_error)
        due = self.ledger.due_items(now, names)
        """Read, not claimed: the per-pass reads (the BOSS list) and the progress total."""
        for procedure in self.procedures.values():
            mine = [item for item in due if item.procedure == procedure.name]
            if mine and procedure.prepare_pass is not None:
                try:
                    procedure.prepare_pass(self.connections, mine)
                except ConfigurationError:
                    raise
                except Exception as exc:  # each item's step meets the same failure and handles it
                    logger.warning("{}: preparing the pass failed: {}", procedure.name, redact(str(exc)))
        self.emit("pass_started", due=len(due), intake=len(report.intake))
        ran: list[int] = []
        # Ran in this pass and still due: not claimed again. Only these, not every id that ran: a
        # statement with a thousand ids, a new one for each length, held the ledger's memory up.
        again: list[int] = []
        while True:
            if self.stop_requested:
                report.stopped_early = "stop requested"
                break
            if self.consecutive_errors >= self.settings.max_consecutive_errors:
                report.stopped_early = (f"{self.consecutive_errors} application errors in a row; stopped this pass "
                                        "instead of hammering a broken site")
                logger.error(report.stopped_early)
                break
            item = self._next_item(now, names, ran, again)
            if item is None:
                break  # nothing due is free: done, or the other robots have the rest
            ran.append(item.id)
            try:
                outcome, actions = self.run_item(item.id, now)
            finally:
                if not self.dry_run:
                    self.ledger.release_lease(item.id, self.worker_id)
            if not self.dry_run and self.ledger.is_due(item.id, now):
                again.append(item.id)
            report.items_run += 1
            gc.collect()
            report.outcomes[outcome] += 1
            report.actions += [f"{item.key}: {a}" for a in actions]
            self.emit("item_done", index=len(ran), total=max(len(due), len(ran)), item=item.key,
                      procedure=item.procedure, outcome=outcome)
        after = self.connections.metrics()
        report.counters = {k: v - counters_before.get(k, 0) for k, v in after.items() if v - counters_before.get(k, 0)}
        self.emit("pass_finished", report=report)
        self._record_pass(report, now, wall_started)
        return report

    def _record_pass(self, report: PassReport, now: datetime, wall_started: datetime) -> None:
        """One audit row per pass (action ``pass_finished``, no item): which procedures, when (wall
        clock), how long, what came of it — what the console's Today page lists."""
        if self.dry_run:
            return
        finished = wall_now()
        self.ledger.audit(item_id=None, at=now, actor="robot", system="kuroko", action="pass_finished", detail={
            "procedures": list(self.procedures), "run_id": self.run_id, "worker": self.worker_id,
            "started": wall_started.isoformat(), "finished": finished.isoformat(),
            "seconds": round((finished - wall_started).total_seconds(), 3), "items_run": report.items_run,
            "outcomes": dict(report.outcomes), "taken_in": len(report.intake), "intake_error": report.intake_error,
            "stopped_early": report.stopped_early})

    def _intake(self, procedure: Procedure, now: datetime, report: PassReport) -> list[str]:
        """Held items a person released in the helpdesk, then the procedure's intake, its side
        effects through the same door as the steps'. One robot at a time does this per procedure
        (``Ledger.intake_lock``); another skips it this pass. Returns what failed (the rest of
        the pass goes on)."""
        ctx = IntakeContext(procedure=procedure, now=now, settings=self.settings, connections=self.connections,
                            ledger=self.ledger, effects=self.effects(now))
        failed: list[str] = []
        with self.ledger.intake_lock(procedure.name) as mine:
            if not mine:
                logger.info("{}: another robot is taking in new work right now; this one skips it this pass",
                            procedure.name)
            else:
                self.release_untagged(procedure, now)
                if procedure.take_in is not None:
                    self._take_in(procedure, ctx, failed)
        if not mine:
            self._wait_for_other_intake(procedure.name)
            return []
        report.intake += ctx.taken_in
        report.actions += [f"intake: {a}" for a in ctx.effects.actions]
        return failed + ctx.failed

    def _take_in(self, procedure: Procedure, ctx: IntakeContext, failed: list[str]) -> None:
        assert procedure.take_in is not None
        try:
            procedure.take_in(ctx)
        except ConfigurationError:
            raise
        except Exception as exc:  # the helpdesk down or throttled: the items already known still go on
            message = exc.message if isinstance(exc, KurokoError) else f"{type(exc).__name__}: {exc}"
            failed.append(f"{procedure.name}: {message}")

    def _wait_for_other_intake(self, name: str, timeout: float = 120.0) -> None:
        """Wait (bounded) until the robot taking in ``name``'s new work is done, so that what it
        took in can be claimed by this robot too."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stop_requested:
            with self.ledger.intake_lock(name) as free:
                if free:
                    return
            time.sleep(0.2)

    def replay(self, item_id: int, *, from_step: str | None = None) -> tuple[str, list[str]]:
        """Run one item now from ``from_step`` (default: the first step), whatever its state."""
        self.connections.new_pass()
        now = self.clock.now()
        item = self.ledger.get_item(item_id)
        procedure = self.procedure_of(item)
        if not self.dry_run and not self.ledger.claim(item_id, self.worker_id, self.settings.lease_seconds,
                                                      self.settings.heartbeat_timeout_seconds):
            raise KurokoError("another robot is working on this item right now; try again in a few minutes")
        try:
            return self.run_item(item_id, now, from_step=from_step or procedure.first_step)
        finally:
            if not self.dry_run:
                self.ledger.release_lease(item_id, self.worker_id)

    # --- one item --------------------------------------------------------------------------
    def run_item(self, item_id: int, now: datetime, *, from_step: str | None = None) -> tuple[str, list[str]]:
        """Run the item's due steps until it waits, is held, completes or fails. Returns the
        item's state afterwards (done / waiting / held / retry) and the actions taken."""
        item = self.ledger.get_item(item_id)
        procedure = self.procedure_of(item)
        log = logger.bind(order=item.key)
        if from_step is not None:
            if from_step not in procedure.steps:
                raise KurokoError(f"no step {from_step!r} in {procedure.name}; steps are: {', '.join(procedure.steps)}")
            item = self.ledger.update_item(item.id, now, step=from_step, next_due_at=now,
                                           state=ItemState.ACTIVE.value)
        self.connections.begin_item()
        metrics_before = self.connections.metrics()
        started = time.perf_counter()
        actions: list[str] = []
        result = "waiting"
        for _ in range(MAX_STEPS_PER_ITEM):
            item = self.ledger.get_item(item_id)
            if item.state != ItemState.ACTIVE.value:
                result = item.state
                break
            if item.next_due_at > now:
                result = "waiting"
                break
            if self.stop_requested:
                break
            if not self.dry_run and not self.ledger.renew_lease(item_id, self.worker_id, self.settings.lease_seconds):
                log.error("the lease on {} was lost (another robot took it over); this robot stops working it",
                          item.key)
                result = "lost"
                break
            result = self._run_step(procedure, item, now, actions, log)
            if result != "continue":
                break
        self._add_metrics(item_id, metrics_before, time.perf_counter() - started)
        if self.trace == "on" and not self.dry_run:
            item = self.ledger.get_item(item_id)
            traces = self.connections.capture(self.evidence_dir(item), f"{self.run_id}-run", keep_trace=True,
                                              screenshot=False)
            if traces:
                self.ledger.audit(item_id=item_id, at=now, actor="robot", system="kuroko", action="trace_saved",
                                  detail={"paths": traces})
        return result, actions

    def evidence_dir(self, item: WorkItem) -> Path:
        from kuroko.browser import safe_name

        return self.settings.data_dir / "evidence" / safe_name(item.key)

    def _run_step(self, procedure: Procedure, item: WorkItem, now: datetime, actions: list[str], log: Any) -> str:
        step_name = item.step
        ctx = StepContext(item=item, facts=dict(item.facts), now=now, settings=self.settings,
                          connections=self.connections, ledger=self.ledger, effects=self.effects(now))
        started = wall_now()
        log.debug("{} {} (attempt {})", procedure.name, step_name, item.attempt + 1)
        try:
            spec = procedure.steps.get(step_name)
            if spec is None:
                raise UnknownStep(f"{procedure.name} has no step {step_name!r} (renamed or removed?); steps are: "
                                  f"{', '.join(procedure.steps)}")
            outcome = spec.run(ctx)
            if isinstance(outcome, Done):
                if outcome.next_step is None and not spec.final:
                    raise BadTransition(f"step {step_name!r} said the item is complete, but it is not a final step; "
                                        "the item stays at this step (a defect in the procedure: report it)")
                if outcome.next_step is not None and outcome.next_step not in spec.then:
                    raise BadTransition(f"step {step_name!r} said to go on to {outcome.next_step!r}, which it does "
                                        f"not declare (then={spec.then}); the item stays at {step_name!r} (a defect "
                                        "in the procedure: report it)")
        except ConfigurationError:
            actions += ctx.actions
            raise
        except BusinessRuleError as exc:
            self.hand_to_person(procedure, item, ctx, exc, started)
            actions += ctx.actions
            return "held"
        except Exception as exc:  # every other failure is an application error: evidence, retry, then a person
            result = self._application_error(procedure, item, ctx, exc, started)
            actions += ctx.actions
            return result
        actions += ctx.actions
        self.consecutive_errors = 0
        if isinstance(outcome, NotYet):
            self._record(item, ctx, started, StepStatus.NOT_YET, detail=outcome.reason, next_due_at=outcome.until)
            log.info("{}: not yet ({}); next look {}", step_name, outcome.reason, outcome.until.isoformat())
            return "waiting"
        status = StepStatus.FOUND_DONE if outcome.found else (
            StepStatus.WOULD if self.dry_run and ctx.actions else StepStatus.DONE)
        values: dict[str, Any] = {"attempt": 0, "next_due_at": now}
        if outcome.path:
            values["path"] = outcome.path
        if outcome.next_step is None:
            values["state"] = ItemState.DONE.value
        else:
            values["step"] = outcome.next_step
        self._record(item, ctx, started, status, detail=outcome.detail,
                     external_ref=outcome.external_ref or ctx.external_ref, **values)
        if outcome.next_step is None and not self.dry_run:
            self.ledger.audit(item_id=item.id, at=now, actor="robot", system="kuroko", action="completed",
                              detail={"step": step_name})
        log.info("{}: {}{}", step_name, "found already done: " if outcome.found else "", outcome.detail)
        return "done" if outcome.next_step is None else "continue"

    def _record(self, item: WorkItem, ctx: StepContext, started: datetime, status: StepStatus, *,
                detail: str = "", external_ref: str | None = None, error: BaseException | None = None,
                evidence: list[str] | None = None, **item_values: Any) -> None:
        """The step's outcome and the item's new state, written together."""
        self.ledger.record_outcome(
            item.id, ctx.now,
            step_record={
                "run_id": self.run_id, "name": item.step, "status": status.value, "attempt": item.attempt + 1,
                "external_ref": external_ref, "detail": redact(detail) if detail else None,
                "error_type": type(error).__name__ if error else None,
                "error_code": getattr(error, "code", None) if error else None,
                "error_message": redact(str(error))[:2000] if error else None,
                "started_at": started, "finished_at": wall_now(), "evidence": evidence or [],
                "worker_id": None if self.dry_run else self.worker_id,
            },
            facts=ctx.facts, **item_values,
        )
        if self.dry_run:  # the dry run's account, step by step on the robot's clock (`kuroko report --dry-run`)
            said = redact(str(error))[:500] if error else (redact(detail) if detail else "")
            self.ledger.audit(item_id=item.id, at=ctx.now, actor=ctx.effects.actor, system="kuroko",
                              action=f"step {item.step}: {status.value}", detail=said or None)

    # --- failures --------------------------------------------------------------------------
    def _application_error(self, procedure: Procedure, item: WorkItem, ctx: StepContext, exc: Exception,
                           started: datetime) -> str:
        self.consecutive_errors += 1
        attempt = item.attempt + 1
        policy = procedure.policy(item.step)
        message = redact(str(exc)) or type(exc).__name__
        log = logger.bind(order=item.key)
        evidence = self.connections.capture(self.evidence_dir(item), f"{self.run_id}-{item.step}-attempt{attempt}",
                                            keep_trace=self.trace != "off")
        if self.pause_on_error:
            self.connections.pause(f"{item.key}: {item.step} failed: {message}")
        self.connections.reset_after_error()
        limit = policy.max_attempts(self.settings)
        if attempt >= limit or not policy.retries(exc):
            log.error("{} failed {} time(s): {}; handing to a person", item.step, attempt, message)
            error = exc if isinstance(exc, KurokoError) else ApplicationError(message)
            self.hand_to_person(procedure, item, ctx, error, started, evidence=evidence,
                                prefix=f"{item.step} failed {attempt} time{'s' if attempt > 1 else ''}")
            return "held"
        delay = policy.delay(attempt, exc, self.settings)
        log.warning("{} failed (attempt {}/{}): {}; retrying after {}", item.step, attempt, limit, message, delay)
        self._record(item, ctx, started, StepStatus.ERROR, error=exc, evidence=evidence, attempt=attempt,
                     next_due_at=ctx.now + delay)
        return "retry"

    def handover(self, procedure: Procedure, effects: Effects) -> HandOver | None:
        if procedure.desk is None:
            return None
        return HandOver(self.connections.use(procedure.desk), self.ledger, effects, hold_tag=self.settings.hold_tag,
                        title=procedure.item_label)

    def hold_note(self, procedure: Procedure, item: WorkItem, found: str, *, evidence: list[str] | None = None
                  ) -> str:
        done_steps = [s.name for s in self.ledger.steps(item.id)
                      if s.status in (StepStatus.DONE.value, StepStatus.FOUND_DONE.value)]
        spec = procedure.steps.get(item.step)
        needed = spec.needs_person if spec is not None else (
            "Look at the item, put right what is needed, then let Kuroko continue.")
        ambiguous = len(self.ledger.find_items(item.key)) > 1
        body = (
            f"Kuroko needs a person for {procedure.item_label} {item.key}.\n"
            f"Found: {found}\n"
            f"Done so far: {', '.join(done_steps) if done_steps else 'nothing'}\n"
            f"Needed: {needed}\n"
            f"To let Kuroko continue from '{item.step}': remove the tag {self.settings.hold_tag} from this "
            f"ticket, or run `{release_command(item, ambiguous)}`."
        )
        if evidence:
            body += "\nEvidence (on the robot's machine): " + ", ".join(Path(p).name for p in evidence)
        return body

    def hand_to_person(self, procedure: Procedure, item: WorkItem, ctx: StepContext, error: KurokoError,
                       started: datetime, *, evidence: list[str] | None = None, prefix: str = "") -> None:
        """Internal note (what was found, what was done, what is needed), tag, ticket Open; held."""
        message = redact(error.message if isinstance(error, KurokoError) else str(error))
        found = f"{prefix}: {message}" if prefix else message
        holds = int(ctx.facts.get("holds", 0)) + 1
        ctx.facts["holds"] = holds
        ctx.facts["hold_tagged"] = False
        body = self.hold_note(procedure, item, found, evidence=evidence)
        handover = self.handover(procedure, ctx.effects)
        if handover is not None:
            try:
                handover.note(item, ctx.now, body, marker(item.key, f"hold-{holds}"), reason=found)
                ctx.facts["hold_tagged"] = not self.dry_run
            except ConfigurationError:
                raise
            except Exception as exc:  # the note is retried at the next pass; the hold stands
                logger.bind(order=item.key).error("could not write the hold note: {}", redact(str(exc)))
                ctx.facts["hold_note_pending"] = body
        self._record(item, ctx, started, StepStatus.HELD, error=error, evidence=evidence,
                     detail=found, state=ItemState.HELD.value, hold_code=error.code, hold_reason=found)
        if not self.dry_run:
            self.ledger.audit(item_id=item.id, at=ctx.now, actor="robot", system="kuroko", action="handed_over",
                              detail={"step": item.step, "code": error.code})
        logger.bind(order=item.key).warning("handed to a person: {}", found)

    # --- release ---------------------------------------------------------------------------
    def release(self, item: WorkItem, now: datetime, *, by: str, remove_tag: bool) -> None:
        procedure = self.procedure_of(item)
        facts = {k: v for k, v in item.facts.items()
                 if k not in ("hold_note_pending", *procedure.forget_on_release)}
        ticket_id = item.handover_ticket_id or item.ticket_id
        if remove_tag and ticket_id is not None and procedure.desk is not None:
            desk = self.connections.use(procedure.desk)
            ticket = desk.ticket(ticket_id)
            if ticket.status != "closed" and self.settings.hold_tag in ticket.tags:  # a closed one takes no change
                self.effects(now).do("zendesk", "remove_hold_tag",
                                     lambda: desk.remove_tags(ticket_id, [self.settings.hold_tag]),
                                     item_id=item.id, what=item.key, ticket=ticket_id)
        self.ledger.replace_facts(item.id, facts)
        self.ledger.update_item(item.id, now, state=ItemState.ACTIVE.value, next_due_at=now, attempt=0,
                                hold_code=None, hold_reason=None)
        self.ledger.audit(item_id=item.id, at=now, actor=by, system="kuroko", action="released",
                          detail={"step": item.step})

    def release_untagged(self, procedure: Procedure, now: datetime) -> None:
        """Held items whose ticket lost the hold tag (a person removed it) go on; hold notes that
        could not be written before are written now."""
        if self.dry_run or procedure.desk is None:
            return
        for item in self.ledger.items(ItemState.HELD, procedure.name):
            try:
                pending = item.facts.get("hold_note_pending")
                if pending:
                    handover = self.handover(procedure, self.effects(now))
                    assert handover is not None
                    handover.note(item, now, str(pending), marker(item.key, f"hold-{item.facts.get('holds', 1)}"),
                                  reason="late hold note")
                    self.ledger.update_item(item.id, now, facts={"hold_note_pending": None, "hold_tagged": True})
                    continue
                ticket_id = item.handover_ticket_id or item.ticket_id
                if not item.facts.get("hold_tagged") or ticket_id is None:
                    continue
                ticket = self.connections.use(procedure.desk).ticket(ticket_id)
                if self.settings.hold_tag not in ticket.tags and ticket.status not in ("solved", "closed"):
                    self.release(item, now, by="person (tag removed in Zendesk)", remove_tag=False)
                    logger.bind(order=item.key).info("released: the hold tag was removed in Zendesk")
            except ConfigurationError:
                raise
            except Exception as exc:
                logger.bind(order=item.key).warning("could not check the hold: {}", redact(str(exc)))

    # --- measuring -------------------------------------------------------------------------
    def _add_metrics(self, item_id: int, before: dict[str, int], seconds: float) -> None:
        if self.dry_run:
            return
        after = self.connections.metrics()
        item = self.ledger.get_item(item_id)
        metrics = dict(item.facts.get("metrics", {}))
        for key, value in after.items():
            if value - before.get(key, 0):
                metrics[key] = metrics.get(key, 0) + value - before.get(key, 0)
        metrics["seconds"] = round(metrics.get("seconds", 0.0) + seconds, 3)
        self.ledger.update_item(item_id, item.updated_at, facts={"metrics": metrics})
