"""The per-order loop, and the only place that retries.

A pass: release held orders whose hold tag a person removed → take in new tickets → for every due
order (claimed with a lease) run its next step, record the outcome, and go on while steps finish:

- ``Done``            → next step (or the order is complete);
- ``NotYet(until)``   → the order sleeps until then;
- business rule       → handed to a person (internal note, tag, ticket Open), held;
- application error   → screenshot and trace kept, browser contexts reset, retried with
                        exponential backoff; after ``max_attempts`` handed to a person.

After ``max_consecutive_errors`` application errors in a row the pass stops instead of
hammering a broken site.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from loguru import logger

from bots.rakuten_sim_order import PROCEDURE, Intake, intake, marker
from kuroko.clock import Clock
from kuroko.errors import ApplicationError, BusinessRuleError, KurokoError
from kuroko.ledger import Ledger, Order, OrderState, StepStatus, wall_now
from kuroko.logs import redact
from kuroko.procedure import Done, NotYet, Procedure, StepContext, side_effect_done
from kuroko.settings import Settings
from kuroko.systems import Systems

MAX_STEPS_PER_ORDER = 20
Listener = Callable[[str, dict[str, Any]], None]


@dataclass
class PassReport:
    started_at: datetime
    intake: list[str] = field(default_factory=list)
    intake_error: str | None = None
    """Why new tickets could not be taken in this pass (they are looked for again at the next)."""
    orders_run: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    actions: list[str] = field(default_factory=list)
    stopped_early: str | None = None
    boss_list_reads: int = 0


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Runner:
    def __init__(self, settings: Settings, ledger: Ledger, systems: Systems, clock: Clock, *,
                 procedure: Procedure = PROCEDURE, dry_run: bool = False, trace: str = "retain-on-failure",
                 worker_id: str | None = None, listener: Listener | None = None,
                 pause_on_error: bool = False) -> None:
        self.settings = settings
        self.ledger = ledger.copy_to_memory() if dry_run else ledger
        """A dry run works on a throwaway copy: the real ledger is never written."""
        self.systems = systems
        self.clock = clock
        self.procedure = procedure
        self.dry_run = dry_run
        self.trace = trace
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

    # --- a pass ----------------------------------------------------------------------------
    def run_pass(self) -> PassReport:
        now = self.clock.now()
        report = PassReport(started_at=now)
        self.systems.new_pass()
        reads_before = self.systems.boss_list_reads
        self.consecutive_errors = 0
        self.release_untagged(now)
        try:
            taken_in = intake(self.ledger, self.systems, self.settings, now, dry_run=self.dry_run)
        except ApplicationError as exc:  # Zendesk down or throttled: the orders already known still go on
            taken_in = Intake(failed=[exc.message])
        report.intake = taken_in.done
        if taken_in.failed:
            self.consecutive_errors += 1
            report.intake_error = redact("; ".join(taken_in.failed))
            logger.error("taking in new tickets failed (tried again at the next pass): {}", report.intake_error)
        due = self.ledger.due_orders(now, self.procedure.name)
        if due and self.procedure.prepare_pass is not None:
            try:
                self.procedure.prepare_pass(self.systems, due)
            except Exception as exc:  # each order's step meets the same failure and handles it
                logger.warning("preparing the pass failed: {}", redact(str(exc)))
        self.emit("pass_started", due=len(due), intake=len(report.intake))
        for index, order in enumerate(due, 1):
            if self.stop_requested:
                report.stopped_early = "stop requested"
                break
            if self.consecutive_errors >= self.settings.max_consecutive_errors:
                report.stopped_early = (f"{self.consecutive_errors} application errors in a row; stopped this pass "
                                        "instead of hammering a broken site")
                logger.error(report.stopped_early)
                break
            if not self.dry_run and not self.ledger.claim(order.id, self.worker_id):
                continue  # another worker has it
            try:
                outcome, actions = self.run_order(order.id, now)
            finally:
                if not self.dry_run:
                    self.ledger.release_lease(order.id, self.worker_id)
            report.orders_run += 1
            report.outcomes[outcome] += 1
            report.actions += [f"{order.order_number}: {a}" for a in actions]
            self.emit("order_done", index=index, total=len(due), order=order.order_number, outcome=outcome)
        report.boss_list_reads = self.systems.boss_list_reads - reads_before
        self.emit("pass_finished", report=report)
        return report

    def replay(self, order_id: int, *, from_step: str | None = None) -> tuple[str, list[str]]:
        """Run one order now from ``from_step`` (default: the first step), whatever its state."""
        self.systems.new_pass()
        now = self.clock.now()
        if not self.dry_run and not self.ledger.claim(order_id, self.worker_id):
            raise KurokoError("another robot is working on this order right now; try again in a few minutes")
        try:
            return self.run_order(order_id, now, from_step=from_step or self.procedure.first_step)
        finally:
            if not self.dry_run:
                self.ledger.release_lease(order_id, self.worker_id)

    # --- one order -------------------------------------------------------------------------
    def run_order(self, order_id: int, now: datetime, *, from_step: str | None = None) -> tuple[str, list[str]]:
        """Run the order's due steps until it waits, is held, completes or fails. Returns the
        order's state afterwards (done / waiting / held / retry) and the actions taken."""
        order = self.ledger.get_order(order_id)
        log = logger.bind(order=order.order_number)
        if from_step is not None:
            if from_step not in self.procedure.steps:
                raise KurokoError(f"no step {from_step!r}; steps are: {', '.join(self.procedure.steps)}")
            order = self.ledger.update_order(order.id, now, step=from_step, next_due_at=now,
                                             state=OrderState.ACTIVE.value)
        self.systems.begin_order()
        metrics_before = self._metrics()
        started = time.perf_counter()
        actions: list[str] = []
        result = "waiting"
        for _ in range(MAX_STEPS_PER_ORDER):
            order = self.ledger.get_order(order_id)
            if order.state != OrderState.ACTIVE.value:
                result = order.state
                break
            if order.next_due_at > now:
                result = "waiting"
                break
            if self.stop_requested:
                break
            result = self._run_step(order, now, actions, log)
            if result != "continue":
                break
        self._add_metrics(order_id, now, metrics_before, time.perf_counter() - started)
        if self.trace == "on" and not self.dry_run:
            order = self.ledger.get_order(order_id)
            traces = self.systems.capture(self.settings.data_dir / "evidence" / order.order_number,
                                          f"{self.run_id}-run", keep_trace=True, screenshot=False)
            if traces:
                self.ledger.audit(order_id=order_id, at=now, actor="robot", system="kuroko", action="trace_saved",
                                  detail={"paths": traces})
        return result, actions

    def _run_step(self, order: Order, now: datetime, actions: list[str], log: Any) -> str:
        step_name = order.step
        step = self.procedure.steps[step_name]
        ctx = StepContext(order=order, facts=dict(order.facts), now=now, settings=self.settings,
                          systems=self.systems, ledger=self.ledger, dry_run=self.dry_run)
        started = wall_now()
        log.debug("step {} (attempt {})", step_name, order.attempt + 1)
        try:
            outcome = step(ctx)
        except BusinessRuleError as exc:
            self.hand_to_person(order, ctx, exc, started)
            actions += ctx.actions
            return "held"
        except Exception as exc:  # every other failure is an application error: evidence, retry, then a person
            result = self._application_error(order, ctx, exc, started)
            actions += ctx.actions
            return result
        actions += ctx.actions
        self.consecutive_errors = 0
        if isinstance(outcome, NotYet):
            self._record(order, ctx, started, StepStatus.NOT_YET, detail=outcome.reason,
                         next_due_at=outcome.until)
            log.info("{}: not yet ({}); next look {}", step_name, outcome.reason, outcome.until.isoformat())
            return "waiting"
        assert isinstance(outcome, Done)
        status = StepStatus.FOUND_DONE if outcome.found else (
            StepStatus.WOULD if self.dry_run and ctx.actions else StepStatus.DONE)
        values: dict[str, Any] = {"attempt": 0, "next_due_at": now}
        if outcome.path:
            values["path"] = outcome.path if outcome.path != "no_stock" else order.path
        if outcome.next_step is None:
            values["state"] = OrderState.DONE.value
        else:
            values["step"] = outcome.next_step
        self._record(order, ctx, started, status, detail=outcome.detail,
                     external_ref=outcome.external_ref or ctx.external_ref, **values)
        log.info("{}: {}{}", step_name, "found already done: " if outcome.found else "", outcome.detail)
        return "done" if outcome.next_step is None else "continue"

    def _record(self, order: Order, ctx: StepContext, started: datetime, status: StepStatus, *,
                detail: str = "", external_ref: str | None = None, error: BaseException | None = None,
                evidence: list[str] | None = None, **order_values: Any) -> None:
        """The step's outcome and the order's new state, written together."""
        self.ledger.record_outcome(
            order.id, ctx.now,
            step_record={
                "run_id": self.run_id, "name": order.step, "status": status.value, "attempt": order.attempt + 1,
                "external_ref": external_ref, "detail": redact(detail) if detail else None,
                "error_type": type(error).__name__ if error else None,
                "error_code": getattr(error, "code", None) if error else None,
                "error_message": redact(str(error))[:2000] if error else None,
                "started_at": started, "finished_at": wall_now(), "evidence": evidence or [],
            },
            facts=ctx.facts, **order_values,
        )

    # --- failures --------------------------------------------------------------------------
    def _application_error(self, order: Order, ctx: StepContext, exc: Exception, started: datetime) -> str:
        self.consecutive_errors += 1
        attempt = order.attempt + 1
        message = redact(str(exc)) or type(exc).__name__
        log = logger.bind(order=order.order_number)
        evidence = self.systems.capture(
            self.settings.data_dir / "evidence" / order.order_number,
            f"{self.run_id}-{order.step}-attempt{attempt}", keep_trace=self.trace != "off",
        )
        if self.pause_on_error:
            self.systems.pause(f"{order.order_number}: {order.step} failed: {message}")
        self.systems.reset_sites()
        if attempt >= self.settings.max_attempts:
            log.error("{} failed {} times: {}; handing to a person", order.step, attempt, message)
            error = exc if isinstance(exc, KurokoError) else ApplicationError(message)
            self.hand_to_person(order, ctx, error, started, evidence=evidence,
                                prefix=f"{order.step} failed {attempt} times")
            return "held"
        delay = timedelta(seconds=self.settings.retry_base_seconds * 2 ** (attempt - 1))
        log.warning("{} failed (attempt {}/{}): {}; retrying after {}", order.step, attempt,
                    self.settings.max_attempts, message, delay)
        self._record(order, ctx, started, StepStatus.ERROR, error=exc, evidence=evidence, attempt=attempt,
                     next_due_at=ctx.now + delay)
        return "retry"

    def hand_to_person(self, order: Order, ctx: StepContext, error: KurokoError, started: datetime, *,
                       evidence: list[str] | None = None, prefix: str = "") -> None:
        """Internal note (what was found, what was done, what is needed), tag, ticket Open; held."""
        message = redact(error.message if isinstance(error, KurokoError) else str(error))
        found = f"{prefix}: {message}" if prefix else message
        holds = int(ctx.facts.get("holds", 0)) + 1
        ctx.facts["holds"] = holds
        done_steps = [s.name for s in self.ledger.steps(order.id)
                      if s.status in (StepStatus.DONE.value, StepStatus.FOUND_DONE.value)]
        needed = self.procedure.needs_person.get(
            order.step, "Look at the order, put right what is needed, then let Kuroko continue.")
        body = (
            f"Kuroko needs a person for Rakuten order {order.order_number}.\n"
            f"Found: {found}\n"
            f"Done so far: {', '.join(done_steps) if done_steps else 'nothing'}\n"
            f"Needed: {needed}\n"
            f"To let Kuroko continue from '{order.step}': remove the tag {self.settings.hold_tag} from this "
            f"ticket, or run `kuroko release {order.order_number}`."
        )
        if evidence:
            body += "\nEvidence (on the robot's machine): " + ", ".join(Path(p).name for p in evidence)
        ctx.facts["hold_tagged"] = False
        if order.ticket_id is not None:
            ticket_id = order.ticket_id
            tag = marker(order.order_number, f"hold-{holds}")
            try:
                todo = "note" if self.dry_run else self._hold_note_todo(ticket_id, tag)
                if todo is not None:  # a run stopped after writing the note finds it and writes nothing
                    ctx.act("zendesk", "hand_to_person" if todo == "note" else "tag_hold",
                            lambda: self._write_hold_note(ticket_id, body, tag, todo), reason=found)
                ctx.facts["hold_tagged"] = not self.dry_run
            except Exception as exc:  # the note is retried at the next pass; the hold stands
                logger.bind(order=order.order_number).error("could not write the hold note: {}", redact(str(exc)))
                ctx.facts["hold_note_pending"] = body
        self._record(order, ctx, started, StepStatus.HELD, error=error, evidence=evidence,
                     detail=found, state=OrderState.HELD.value, hold_code=error.code, hold_reason=found)
        logger.bind(order=order.order_number).warning("handed to a person: {}", found)

    def _hold_note_todo(self, ticket_id: int, tag: str) -> str | None:
        """What the hand-over still needs on the ticket: the 'note' (with the tag), only the 'tag',
        or nothing (None) when both are there already."""
        helpdesk = self.systems.helpdesk
        if not any(tag in c.body for c in helpdesk.comments(ticket_id)):
            return "note"
        return None if self.settings.hold_tag in helpdesk.ticket(ticket_id).tags else "tag"

    def _write_hold_note(self, ticket_id: int, body: str, tag: str, todo: str) -> None:
        helpdesk = self.systems.helpdesk
        if todo == "note":
            helpdesk.add_internal_note(ticket_id, f"{body}\n\n{tag}", status="open",
                                       add_tags=[self.settings.hold_tag])
        else:
            helpdesk.add_tags(ticket_id, [self.settings.hold_tag])

    # --- release ---------------------------------------------------------------------------
    def release(self, order: Order, now: datetime, *, by: str, remove_tag: bool) -> None:
        facts = dict(order.facts)
        facts.pop("boss_missing_since", None)
        facts.pop("hold_note_pending", None)
        if remove_tag and order.ticket_id is not None and not self.dry_run:
            self.systems.helpdesk.remove_tags(order.ticket_id, [self.settings.hold_tag])
        self.ledger.replace_facts(order.id, facts)
        self.ledger.update_order(order.id, now, state=OrderState.ACTIVE.value, next_due_at=now, attempt=0,
                                 hold_code=None, hold_reason=None)
        self.ledger.audit(order_id=order.id, at=now, actor=by, system="kuroko", action="released",
                          detail={"step": order.step})

    def release_untagged(self, now: datetime) -> None:
        """Held orders whose ticket lost the hold tag (a person removed it) go on; hold notes that
        could not be written before are written now."""
        for order in self.ledger.orders(OrderState.HELD):
            if order.procedure != self.procedure.name or order.ticket_id is None or self.dry_run:
                continue
            try:
                pending = order.facts.get("hold_note_pending")
                if pending:
                    tag = marker(order.order_number, f"hold-{order.facts.get('holds', 1)}")
                    todo = self._hold_note_todo(order.ticket_id, tag)
                    if todo is not None:
                        self._write_hold_note(order.ticket_id, str(pending), tag, todo)
                        side_effect_done(self.settings, f"zendesk hand_to_person for {order.order_number} (late note)")
                    self.ledger.update_order(order.id, now, facts={"hold_note_pending": None, "hold_tagged": True})
                    continue
                if not order.facts.get("hold_tagged"):
                    continue
                ticket = self.systems.helpdesk.ticket(order.ticket_id)
                if self.settings.hold_tag not in ticket.tags and ticket.status not in ("solved", "closed"):
                    self.release(order, now, by="person (tag removed in Zendesk)", remove_tag=False)
                    logger.bind(order=order.order_number).info("released: the hold tag was removed in Zendesk")
            except Exception as exc:
                logger.bind(order=order.order_number).warning("could not check the hold: {}", redact(str(exc)))

    # --- measuring -------------------------------------------------------------------------
    def _metrics(self) -> dict[str, int]:
        s = self.systems
        return {
            "boss_page_loads": s.page_loads("boss"),
            "rms_page_loads": s.page_loads("rakuten"),
            "zendesk_requests": s.helpdesk.request_count() if s._helpdesk is not None else 0,
            "spapi_requests": s.fulfillment.request_count() if s._fulfillment is not None else 0,
        }

    def _add_metrics(self, order_id: int, now: datetime, before: dict[str, int], seconds: float) -> None:
        if self.dry_run:
            return
        after = self._metrics()
        order = self.ledger.get_order(order_id)
        metrics = dict(order.facts.get("metrics", {}))
        for key, value in after.items():
            metrics[key] = metrics.get(key, 0) + value - before.get(key, 0)
        metrics["seconds"] = round(metrics.get("seconds", 0.0) + seconds, 3)
        self.ledger.update_order(order_id, order.updated_at, facts={"metrics": metrics})
