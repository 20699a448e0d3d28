"""A toy procedure registered next to procedure A (``KUROKO_EXTRA_PROCEDURES=toy_procedure:procedure``)
to show the engine runs any procedure the same way. Its "system" is two files in the data directory:
an inbox (one key per line: the work to take in) and an outbox (every greeting sent). Items have
no ticket of their own: a key starting with ``bad`` is handed to a person on a ticket the robot opens.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from kuroko.errors import BusinessRuleError
from kuroko.procedure import Done, IntakeContext, NotYet, Outcome, Procedure, StepContext
from services.helpdesk import HELPDESK

procedure = Procedure("toy_greeting", title="Toy greeting", item_label="toy greeting", desk=HELPDESK)


def inbox(data_dir: Path) -> Path:
    return data_dir / "toy-inbox.txt"


def outbox(data_dir: Path) -> Path:
    return data_dir / "toy-outbox.txt"


def send(data_dir: Path, line: str) -> None:
    with outbox(data_dir).open("a", encoding="utf-8") as f:
        f.write(line + "\n")


@procedure.intake
def take_in(ctx: IntakeContext) -> None:
    path = inbox(ctx.settings.data_dir)
    keys = [k.strip() for k in path.read_text(encoding="utf-8").splitlines() if k.strip()] if path.exists() else []
    for key in keys:
        if ctx.take_in(key, facts={"taken_in_at": ctx.now.isoformat()}) is not None:
            ctx.taken_in.append(f"{key}: taken in")


@procedure.step(first=True, then="say_goodbye", needs_person="Greet this one by hand.")
def greet(ctx: StepContext) -> Outcome:
    if ctx.key.startswith("bad"):
        raise BusinessRuleError(f"{ctx.key} is not a name the toy can greet", code="toy_refused")
    sent = outbox(ctx.settings.data_dir)
    if sent.exists() and f"hello {ctx.key}" in sent.read_text(encoding="utf-8").splitlines():
        return Done("say_goodbye", detail="already greeted", found=True)
    ctx.act("toy", "greet", lambda: send(ctx.settings.data_dir, f"hello {ctx.key}"))
    return Done("say_goodbye", detail="greeted")


@procedure.step(final=True, needs_person="Say goodbye by hand.")
def say_goodbye(ctx: StepContext) -> Outcome:
    due = datetime.fromisoformat(ctx.facts["taken_in_at"]) + timedelta(days=1)
    if ctx.now < due:
        return NotYet(due, "goodbyes are said the next day")
    ctx.act("toy", "goodbye", lambda: send(ctx.settings.data_dir, f"goodbye {ctx.key}"))
    return Done(None, detail="said goodbye")
