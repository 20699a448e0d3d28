"""What a procedure is: how it finds new work (its intake), and named steps over one work item,
each reading the world, deciding, and doing at most one side effect. The runner
(kuroko/runner.py) runs every registered procedure the same way; a procedure module in bots/
declares one::

    procedure = Procedure("rakuten_sim_order", title="Rakuten physical-SIM order", desk=HELPDESK)

    @procedure.intake
    def take_in(ctx: IntakeContext) -> None: ...

    @procedure.step(first=True, then=("close_in_stock", "verify_physical_sim"),
                    needs_person="Find the order in BOSS by hand …")
    def check_boss(ctx: StepContext) -> Outcome: ...

A step returns ``Done`` (go on with ``next_step``, one of its ``then``; or finish, when it is
``final``) or ``NotYet`` (look again at ``until``). It raises a ``BusinessRuleError`` to hand the
item to a person and lets an ``ApplicationError`` escape to be retried by its ``RetryPolicy``.
Every side effect — a step's, the intake's, the hand-over's — goes through one door,
``Effects.do`` (``ctx.act``): audited, skipped in a dry run, counted by the crash hook.

A declaration is checked when the procedure is registered (``Procedure.validate``): a ``then``
naming no step, two steps of one name, no first step or a step without its hand-over text is
refused there, never found in production.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from kuroko.errors import ConfigurationError

if TYPE_CHECKING:
    from kuroko.connections import CheckLine, Connection, Connections
    from kuroko.handover import Desk
    from kuroko.ledger import Claim, Ledger, WorkItem
    from kuroko.settings import Settings

T = TypeVar("T")
_side_effects_done = 0


class RegistrationError(ConfigurationError):
    """A procedure's declaration is wrong (a step that does not exist, a duplicate, a missing text)."""

    code = "registration"


def side_effect_done(settings: Settings, what: str) -> None:
    """Called by ``Effects.do`` right after a side effect and before the ledger records it.

    Crash-safety test hook: with ``KUROKO_CRASH_AFTER_ACTIONS=N`` the process kills itself with
    SIGKILL (no cleanup, no ledger write) after its N-th side effect, so a test can prove that the
    next run reconciles instead of repeating. Unset (production) it does nothing."""
    global _side_effects_done
    limit = settings.crash_after_actions
    if limit is None:
        return
    _side_effects_done += 1
    if _side_effects_done >= limit:
        sys.stderr.write(f"KUROKO_CRASH_AFTER_ACTIONS: SIGKILL after side effect {_side_effects_done}: {what}\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


# --- outcomes ------------------------------------------------------------------------------------
@dataclass
class Done:
    next_step: str | None
    """None: the item is complete (only from a step declared ``final``)."""
    detail: str = ""
    external_ref: str | None = None
    found: bool = False
    """The side effect was found already done in the system of record (reconciled, not repeated)."""
    path: str | None = None
    """Which way the item goes, in the procedure's words, once a step learns it."""


@dataclass
class NotYet:
    until: datetime
    reason: str


Outcome = Done | NotYet


# --- retries -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """How a step that failed with an application error is tried again. Fields left None take
    the engine's settings (KUROKO_MAX_ATTEMPTS, KUROKO_RETRY_BASE_SECONDS, KUROKO_RETRY_MAX_SECONDS).

    The delay before attempt n+1 is ``initial * factor**(n-1)``, at most ``maximum``; a delay the
    error itself carries (``retry_after``, e.g. from a Retry-After header) wins over the formula."""

    initial: timedelta | None = None
    factor: float = 2.0
    maximum: timedelta | None = None
    attempts: int | None = None
    """Attempts in all, the first included; after the last one the item goes to a person."""
    never_retry: tuple[type[BaseException], ...] = ()
    """Errors handed to a person at the first failure (retrying cannot help)."""

    def max_attempts(self, settings: Settings) -> int:
        return self.attempts if self.attempts is not None else settings.max_attempts

    def delay(self, attempt: int, error: BaseException, settings: Settings) -> timedelta:
        hinted = getattr(error, "retry_after", None)
        if isinstance(hinted, int | float) and hinted > 0:
            return timedelta(seconds=float(hinted))
        initial = self.initial if self.initial is not None else timedelta(seconds=settings.retry_base_seconds)
        maximum = self.maximum if self.maximum is not None else timedelta(seconds=settings.retry_max_seconds)
        return min(initial * self.factor ** max(attempt - 1, 0), maximum)

    def retries(self, error: BaseException) -> bool:
        return not isinstance(error, self.never_retry)


# --- the one door for side effects ---------------------------------------------------------------
class Effects:
    """Every change to the outside world goes through ``do``: audited, skipped (and said) in a dry
    run, and counted by the crash hook. One per step run, intake or hand-over."""

    def __init__(self, ledger: Ledger, settings: Settings, now: datetime, *, dry_run: bool = False) -> None:
        self.ledger = ledger
        self.settings = settings
        self.now = now
        self.dry_run = dry_run
        self.actions: list[str] = []

    @property
    def actor(self) -> str:
        return "robot (dry run)" if self.dry_run else "robot"

    def do(self, system: str, action: str, fn: Callable[[], T], *, item_id: int | None, what: str = "",
           **detail: Any) -> T | None:
        """Do one side effect on ``system`` (or, in a dry run, only say it would be done).
        ``what`` names the item, and ``detail`` the effect, on the crash hook's line (never a secret):
        two different effects of one item must read differently there."""
        if self.dry_run:
            self.actions.append(f"would {action} on {system}" + (f" {detail}" if detail else ""))
            self.ledger.audit(item_id=item_id, at=self.now, actor=self.actor, system=system, action=action,
                              detail={"dry_run": True, **detail})
            return None
        result = fn()
        said = ", ".join(f"{k}={v}" for k, v in detail.items() if k != "reason")
        side_effect_done(self.settings, f"{system} {action}" + (f" for {what}" if what else "")
                         + (f" [{said}]" if said else ""))
        self.actions.append(f"{action} on {system}")
        self.ledger.audit(item_id=item_id, at=self.now, actor=self.actor, system=system, action=action,
                          detail=detail or None)
        return result


# --- contexts -------------------------------------------------------------------------------------
@dataclass
class StepContext:
    item: WorkItem
    facts: dict[str, Any]
    """What earlier steps learned; saved with the step's outcome."""
    now: datetime
    settings: Settings
    connections: Connections
    ledger: Ledger
    effects: Effects
    external_ref: str | None = None

    @property
    def key(self) -> str:
        return self.item.key

    @property
    def dry_run(self) -> bool:
        return self.effects.dry_run

    @property
    def actions(self) -> list[str]:
        return self.effects.actions

    @property
    def ticket_id(self) -> int:
        if self.item.ticket_id is None:
            raise RuntimeError(f"{self.item.procedure} {self.key} has no ticket")
        return self.item.ticket_id

    def use(self, connection: Connection[T]) -> T:
        """The run's connection (opened on first use, shared by every item of the run)."""
        return self.connections.use(connection)

    def act(self, system: str, action: str, do: Callable[[], T], **detail: Any) -> T | None:
        """Do one side effect for this item (see ``Effects.do``)."""
        return self.effects.do(system, action, do, item_id=self.item.id, what=self.key, **detail)


@dataclass
class IntakeContext:
    """What a procedure's intake may use: the run's connections, the ledger, and the same door for
    its side effects (merges, hand-over notes) as the steps."""

    procedure: Procedure
    now: datetime
    settings: Settings
    connections: Connections
    ledger: Ledger
    effects: Effects
    taken_in: list[str] = field(default_factory=list)
    """One line per thing done, for the pass report."""
    failed: list[str] = field(default_factory=list)
    """What could not be taken in this time (tried again at the next pass)."""

    @property
    def dry_run(self) -> bool:
        return self.effects.dry_run

    def use(self, connection: Connection[T]) -> T:
        return self.connections.use(connection)

    def act(self, system: str, action: str, do: Callable[[], T], *, item: WorkItem | None = None,
            **detail: Any) -> T | None:
        return self.effects.do(system, action, do, item_id=item.id if item else None,
                               what=item.key if item else "", **detail)

    def take_in(self, key: str, *, ticket_id: int | None = None, facts: dict[str, Any] | None = None,
                step: str | None = None, held: tuple[str, str] | None = None) -> WorkItem | None:
        """A new work item of this procedure, due now (or held with (code, reason)). None when the
        ledger already has it — another robot may have taken it in a moment ago: it is theirs."""
        from kuroko.ledger import ItemExists, ItemState

        try:
            item = self.ledger.add_item(
                procedure=self.procedure.name, key=key, ticket_id=ticket_id,
                step=step or self.procedure.first_step, due=self.now, now=self.now, facts=facts,
                state=ItemState.HELD if held else ItemState.ACTIVE,
                hold_code=held[0] if held else None, hold_reason=held[1] if held else None)
        except ItemExists:
            return None
        self.ledger.audit(item_id=item.id, at=self.now, actor=self.effects.actor, system="kuroko",
                          action="taken_in", detail={"ticket": ticket_id} if ticket_id else None)
        return item


@dataclass
class DeskContext:
    """What a person's action on an item may use — a procedure's command (``kuroko ship …``), run
    from the CLI or the console through this one code path. Errors are ``KurokoError``s whose
    message says what to do; the return value is the sentence shown to the person."""

    ledger: Ledger
    settings: Settings
    now: datetime
    by: str
    """Who acts, for the audit trail ("person (kuroko ship)", "alice (console)")."""

    def item(self, key: str, procedure: str) -> WorkItem:
        from kuroko.errors import KurokoError

        found = self.ledger.find_item(key, procedure)
        if found is None:
            raise KurokoError(f"the ledger has no {procedure} item {key!r}. `kuroko status` lists what it knows.")
        return found


# --- the declaration ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CommandHints:
    fits: Callable[[WorkItem], bool] | None = None
    choices: dict[str, Callable[[], list[str]]] = field(default_factory=dict)
    keyed: bool = True
    """The command's first parameter is the item's key (the console fills it in); False: the console
    asks for it like the others (e.g. `kuroko claim CLAIM`, whose first parameter is a claim's number)."""
    item_choices: Callable[[Ledger, WorkItem], dict[str, list[str]]] | None = None
    """Choices that depend on the item (e.g. its claims not filed yet): the console offers only these,
    refuses any other value, and does not offer the command when a required parameter has none."""


Step = Callable[[StepContext], Outcome]


@dataclass(frozen=True)
class StepSpec:
    name: str
    run: Step
    then: tuple[str, ...]
    """The steps ``Done`` may name next."""
    final: bool
    """``Done(None)`` (the item is complete) is allowed."""
    needs_person: str
    """What a person must decide when this step hands the item over (for the note)."""
    retry: RetryPolicy | None


class Procedure:
    """A procedure: its name, intake, steps, hand-over texts and per-pass reads."""

    def __init__(self, name: str, *, title: str, item_label: str, desk: Connection[Desk] | None = None,
                 retry: RetryPolicy | None = None) -> None:
        self.name = name
        self.title = title
        """Shown to people (status, report)."""
        self.item_label = item_label
        """What an item is, in the desk's words: "Rakuten order", "MCF parcel" …"""
        self.desk = desk
        """Where hand-over notes go (the helpdesk connection)."""
        self.retry = retry or RetryPolicy()
        self.steps: dict[str, StepSpec] = {}
        self.first_step = ""
        self.take_in: Callable[[IntakeContext], None] | None = None
        self.prepare_pass: Callable[[Connections, list[WorkItem]], None] | None = None
        """Reads shared by all due items, done once at the start of a pass (e.g. the BOSS list)."""
        self.forget_on_release: tuple[str, ...] = ()
        """Facts dropped when a person releases a held item (e.g. how long something was waited for)."""
        self.commands: list[Callable[..., str]] = []
        """A person's actions this procedure brings (e.g. `ship`): functions ``(DeskContext, …) -> str``
        whose other parameters are typer-annotated; the CLI adds each as a `kuroko` command."""
        self.command_hints: dict[str, CommandHints] = {}
        """For the console: which items each command fits, and the choices of its parameters."""
        self.checks: list[Callable[[Connections], list[CheckLine]]] = []
        self.claim_waits: Callable[[Claim], tuple[str, datetime | None]] | None = None
        """What a claim waits for and until when (``@procedure.waits``, the procedure that follows
        claims): `kuroko claims` and the console's Claims page say it in the same words."""
        self.summaries: list[Callable[[Ledger, datetime], list[str]]] = []
        """Lines of the procedure's own for `kuroko status` and the report (e.g. open claims and money
        claimed vs paid): read-only, from the ledger, at the given time."""
        """The procedure's own preflight checks for `kuroko check` (read-only: e.g. a user it @mentions)."""
        self._problems: list[str] = []

    def step(self, *, then: tuple[str, ...] | str = (), final: bool = False, first: bool = False,
             needs_person: str = "", retry: RetryPolicy | None = None,
             name: str | None = None) -> Callable[[Step], Step]:
        def register(fn: Step) -> Step:
            step_name = name or fn.__name__
            if step_name in self.steps:
                self._problems.append(f"two steps are named {step_name!r}")
            self.steps[step_name] = StepSpec(step_name, fn, (then,) if isinstance(then, str) else tuple(then),
                                             final, needs_person.strip(), retry)
            if first:
                if self.first_step:
                    self._problems.append(f"two first steps: {self.first_step!r} and {step_name!r}")
                self.first_step = step_name
            return fn

        return register

    def intake(self, fn: Callable[[IntakeContext], None]) -> Callable[[IntakeContext], None]:
        self.take_in = fn
        return fn

    def per_pass(self, fn: Callable[[Connections, list[WorkItem]], None]) -> Callable[[Connections, list[WorkItem]],
                                                                                        None]:
        self.prepare_pass = fn
        return fn

    def preflight(self, fn: Callable[[Connections], list[CheckLine]]) -> Callable[[Connections], list[CheckLine]]:
        """A read-only check of what this procedure needs, run by `kuroko check`."""
        self.checks.append(fn)
        return fn

    def summary(self, fn: Callable[[Ledger, datetime], list[str]]) -> Callable[[Ledger, datetime], list[str]]:
        """Lines this procedure adds to `kuroko status` and the report (read-only)."""
        self.summaries.append(fn)
        return fn

    def waits(self, fn: Callable[[Claim], tuple[str, datetime | None]]
              ) -> Callable[[Claim], tuple[str, datetime | None]]:
        """What a claim waits for, and until when (one code path for the CLI and the console)."""
        self.claim_waits = fn
        return fn

    def command(self, fn: Callable[..., str] | None = None, *, fits: Callable[[WorkItem], bool] | None = None,
                choices: dict[str, Callable[[], list[str]]] | None = None, keyed: bool = True,
                item_choices: Callable[[Ledger, WorkItem], dict[str, list[str]]] | None = None) -> Any:
        """Register a person's action: ``@procedure.command`` or ``@procedure.command(fits=…, choices=…)``.

        ``fits(item)``: the items the action is for (the console offers it there, held or waiting);
        without it the console never offers it. ``choices``: a parameter's allowed values (the
        console shows a list); ``item_choices(ledger, item)``: those that depend on the item.
        ``keyed=False``: the first parameter is not the item's key (the console asks for it too)."""

        def register(command_fn: Callable[..., str]) -> Callable[..., str]:
            self.commands.append(command_fn)
            self.command_hints[command_fn.__name__] = CommandHints(fits=fits, choices=dict(choices or {}), keyed=keyed,
                                                                   item_choices=item_choices)
            return command_fn

        return register(fn) if fn is not None else register

    def policy(self, step: str) -> RetryPolicy:
        spec = self.steps.get(step)
        return spec.retry if spec is not None and spec.retry is not None else self.retry

    def validate(self) -> None:
        """Refuse a wrong declaration, saying every problem at once."""
        problems = list(self._problems)
        if not self.steps:
            problems.append("it has no steps")
        if not self.first_step:
            problems.append("no step is marked first=True")
        for spec in self.steps.values():
            for target in spec.then:
                if target not in self.steps:
                    problems.append(f"step {spec.name!r} goes on to {target!r}, which is not a step")
            if not spec.then and not spec.final:
                problems.append(f"step {spec.name!r} neither goes on (then=…) nor is final")
            if not spec.needs_person:
                problems.append(f"step {spec.name!r} has no needs_person text (what a person must decide "
                                "when it hands the item over)")
        if problems:
            raise RegistrationError(f"procedure {self.name!r} cannot be registered: " + "; ".join(problems))
