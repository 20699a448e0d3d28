"""What a procedure is: named steps over one order, each reading the world, deciding, and doing
at most one side effect. The runner (kuroko/runner.py) runs them; a procedure module
(bots/rakuten_sim_order.py) defines them.

A step returns ``Done`` (go on with ``next_step``, or finish when it is None) or ``NotYet`` (look
again at ``until``). It raises a ``BusinessRuleError`` to hand the order to a person and lets an
``ApplicationError`` escape to be retried. Side effects go through ``StepContext.act`` so that a
dry run does none of them and every one is audited.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from kuroko.ledger import Ledger, Order
    from kuroko.settings import Settings
    from kuroko.systems import Systems

T = TypeVar("T")
_side_effects_done = 0


def side_effect_done(settings: Settings, what: str) -> None:
    """Call right after a side effect and before the ledger records it.

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


@dataclass
class Done:
    next_step: str | None
    """None: the order is complete."""
    detail: str = ""
    external_ref: str | None = None
    found: bool = False
    """The side effect was found already done in the system of record (reconciled, not repeated)."""
    path: str | None = None
    """Which way the order goes (in_stock / mcf / office), once a step learns it."""


@dataclass
class NotYet:
    until: datetime
    reason: str


Outcome = Done | NotYet


@dataclass
class StepContext:
    order: Order
    facts: dict[str, Any]
    """What earlier steps learned; saved with the step's outcome."""
    now: datetime
    settings: Settings
    systems: Systems
    ledger: Ledger
    dry_run: bool = False
    actions: list[str] = field(default_factory=list)
    external_ref: str | None = None

    @property
    def order_number(self) -> str:
        return self.order.order_number

    @property
    def ticket_id(self) -> int:
        if self.order.ticket_id is None:
            raise RuntimeError(f"order {self.order_number} has no ticket")
        return self.order.ticket_id

    def act(self, system: str, action: str, do: Callable[[], T], **detail: Any) -> T | None:
        """Do one side effect on ``system`` (or, in a dry run, only say it would be done)."""
        actor = "robot (dry run)" if self.dry_run else "robot"
        if self.dry_run:
            self.actions.append(f"would {action} on {system}" + (f" {detail}" if detail else ""))
            self.ledger.audit(order_id=self.order.id, at=self.now, actor=actor, system=system,
                              action=action, detail={"dry_run": True, **detail})
            return None
        result = do()
        side_effect_done(self.settings, f"{system} {action} for {self.order_number}")
        self.actions.append(f"{action} on {system}")
        self.ledger.audit(order_id=self.order.id, at=self.now, actor=actor, system=system, action=action,
                          detail=detail or None)
        return result


Step = Callable[[StepContext], Outcome]


@dataclass
class Procedure:
    name: str
    first_step: str
    steps: dict[str, Step]
    needs_person: dict[str, str] = field(default_factory=dict)
    """Per step: what a person must decide when the step is handed over (for the note)."""
    prepare_pass: Callable[[Systems, list[Order]], None] | None = None
    """Reads shared by all due orders, done once at the start of a pass."""
