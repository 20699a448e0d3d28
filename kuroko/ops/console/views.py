"""What the console's pages and the static report show, read from the ledger (reads only: short
read transactions that never block the robot's writes).

Each function returns plain data for the templates (``templates/``): the console renders it live,
``kuroko report`` freezes the same pages into one file."""

from __future__ import annotations

import inspect
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select

from kuroko.ledger import (
    CLOSED_CLAIM_STATUSES,
    AuditEvent,
    Claim,
    ItemState,
    Ledger,
    StepRecord,
    StepStatus,
    TicketRecord,
    WorkItem,
    list_claims,
)
from kuroko.ledger import money as ledger_money
from kuroko.procedure import CommandHints, Procedure

SYSTEM_NAMES = {"zendesk": "Zendesk", "boss": "BOSS", "rms": "RMS", "amazon": "Amazon", "spapi": "Amazon",
                "tamago": "たまご", "bcart": "Bカート", "kuroko": "Kuroko"}
CHART_SERIES = (("taken_in", "taken_in"), ("completed", "completed"), ("handed_over", "handed_over"))
"""(audit action, label key) for the chart of work per hour."""
TRACKING_FACTS = ("tracking_number", "tracking")


# --- one item --------------------------------------------------------------------------------------
@dataclass
class Evidence:
    step_id: int
    index: int
    path: str
    name: str
    kind: str
    """screenshot | trace | file"""
    exists: bool


@dataclass
class CommandForm:
    name: str
    title: str
    doc: str
    key_param: str
    fields: list[dict[str, Any]]


@dataclass
class ItemView:
    item: WorkItem
    title: str
    label: str
    steps: list[StepRecord]
    audit: list[AuditEvent]
    done_steps: list[str]
    needed: str
    evidence: list[Evidence]
    ticket_id: int | None
    facts: str
    commands: list[CommandForm] = field(default_factory=list)

    @property
    def screenshots(self) -> list[Evidence]:
        return [e for e in self.evidence if e.kind == "screenshot" and e.exists]

    @property
    def traces(self) -> list[Evidence]:
        return [e for e in self.evidence if e.kind == "trace"]

    @property
    def files(self) -> list[Evidence]:
        """The failed page's HTML and the list of pages the item loaded."""
        return [e for e in self.evidence if e.kind == "file" and e.exists]


def _evidence(steps: list[StepRecord]) -> list[Evidence]:
    found = []
    for step in steps:
        for index, raw in enumerate(step.evidence or []):
            path = Path(raw)
            kind = "screenshot" if path.suffix == ".png" else "trace" if path.suffix == ".zip" else "file"
            found.append(Evidence(step.id, index, raw, path.name, kind, path.exists()))
    return found


def command_params(fn: Any, hints: CommandHints) -> list[inspect.Parameter]:
    """The parameters a person gives in the console: all but the desk, and but the item's key when
    the command's first parameter is it (``CommandHints.keyed``)."""
    params = list(inspect.signature(fn, eval_str=True).parameters.values())[1:]
    return params[1:] if hints.keyed else params


def form_value(param: inspect.Parameter, text: str) -> Any:
    """A form's text as the command's parameter wants it (a number for an ``int``, as typer reads the
    CLI's); ``ValueError`` when it is not one."""
    annotation = param.annotation
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return int(text) if annotation is int else text


def _command_forms(ledger: Ledger, procedure: Procedure | None, item: WorkItem) -> list[CommandForm]:
    """The procedure's commands that fit this item, as forms (their parameters from the signature;
    the first parameter after the desk is the item's key unless the command says otherwise)."""
    if procedure is None:
        return []
    forms = []
    for fn in procedure.commands:
        hints = procedure.command_hints.get(fn.__name__)
        if hints is None or hints.fits is None or not hints.fits(item):
            continue
        params = list(inspect.signature(fn, eval_str=True).parameters.values())[1:]
        if not params:
            continue
        per_item = hints.item_choices(ledger, item) if hints.item_choices else {}
        fields = []
        for param in command_params(fn, hints):
            help_text = ""
            for meta in getattr(param.annotation, "__metadata__", ()):
                help_text = getattr(meta, "help", None) or help_text
            choices = hints.choices.get(param.name)
            listed = per_item.get(param.name, choices() if choices else None)
            fields.append({"name": param.name, "help": help_text, "choices": listed,
                           "required": param.default is inspect.Parameter.empty,
                           "default": param.default if isinstance(param.default, str) else ""})
            # (the default as a placeholder, never a value: a filled field holds the live refresh)
        if any(f["required"] and f["choices"] == [] for f in fields):
            continue  # nothing to choose now (e.g. every claim of the item already filed)
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        forms.append(CommandForm(fn.__name__, fn.__name__, doc, params[0].name, fields))
    return forms


def item_view(ledger: Ledger, procedures: dict[str, Procedure], item: WorkItem) -> ItemView:
    procedure = procedures.get(item.procedure)
    steps = ledger.steps(item.id)
    done = [s.name for s in steps if s.status in (StepStatus.DONE.value, StepStatus.FOUND_DONE.value)]
    spec = procedure.steps.get(item.step) if procedure else None
    needed = spec.needs_person if spec is not None else ""
    commands = _command_forms(ledger, procedure, item)
    if item.state != ItemState.HELD.value and commands:
        needed = "; ".join(c.doc for c in commands)
    facts = {k: v for k, v in item.facts.items() if k != "hold_note_pending"}
    return ItemView(
        item=item, title=procedure.title if procedure else item.procedure,
        label=procedure.item_label if procedure else item.procedure, steps=steps,
        audit=ledger.audit_trail(item.id), done_steps=list(dict.fromkeys(done)), needed=needed,
        evidence=_evidence(steps), ticket_id=item.handover_ticket_id or item.ticket_id,
        facts=json.dumps(facts, ensure_ascii=False, indent=2, default=str, sort_keys=True), commands=commands)


def waiting_items(ledger: Ledger, procedures: dict[str, Procedure]) -> list[ItemView]:
    """Every held item, and every item waiting for an action a procedure's command fits (e.g. an
    office shipment waiting for its tracking number); oldest first."""
    views = [item_view(ledger, procedures, i) for i in ledger.items(ItemState.HELD)]
    for item in ledger.items(ItemState.ACTIVE):
        procedure = procedures.get(item.procedure)
        if procedure is None:
            continue
        if any(h.fits is not None and h.fits(item) for h in procedure.command_hints.values()):
            views.append(item_view(ledger, procedures, item))
    return sorted(views, key=lambda v: (v.item.updated_at, v.item.id))


# --- today -----------------------------------------------------------------------------------------
@dataclass
class CountRow:
    procedure: str
    title: str
    counts: dict[str, int]
    total: int


@dataclass
class Chart:
    day: str
    hours: list[dict[str, int]]
    """24 rows: {series: count} for each hour of the day (local time)."""

    @property
    def maximum(self) -> int:
        return max([1, *(v for row in self.hours for v in row.values())])


@dataclass
class PassRow:
    started: datetime | None
    procedures: list[str]
    seconds: float
    items_run: int
    outcomes: dict[str, int]
    errors: list[str]


@dataclass
class JobRow:
    id: str
    procedures: list[str]
    trigger: str
    last: datetime | None
    next: datetime | None


@dataclass
class Today:
    now: datetime
    counts: list[CountRow]
    chart: Chart
    passes: list[PassRow]
    jobs: list[JobRow]
    schedule_problem: str | None
    held: int


def counts(ledger: Ledger, procedures: dict[str, Procedure]) -> list[CountRow]:
    with ledger.session() as s:
        rows = s.execute(select(WorkItem.procedure, WorkItem.state, func.count()).group_by(WorkItem.procedure,
                                                                                           WorkItem.state)).all()
    by: dict[str, Counter[str]] = {}
    for name, state, n in rows:
        by.setdefault(name, Counter())[state] += n
    names = list(dict.fromkeys([*procedures, *sorted(by)]))
    return [CountRow(name, procedures[name].title if name in procedures else name,
                     {s.value: by.get(name, Counter())[s.value] for s in ItemState},
                     sum(by.get(name, Counter()).values())) for name in names]


def chart(ledger: Ledger, now: datetime, timezone: str) -> Chart:
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + timedelta(days=1)
    hours: list[dict[str, int]] = [{key: 0 for _, key in CHART_SERIES} for _ in range(24)]
    actions = {action: key for action, key in CHART_SERIES}
    with ledger.session() as s:
        events = s.execute(select(AuditEvent.action, AuditEvent.at).where(
            AuditEvent.action.in_(list(actions)), AuditEvent.at >= start, AuditEvent.at < end)).all()
    for action, at in events:
        hours[at.astimezone(zone).hour][actions[action]] += 1
    return Chart(start.strftime("%Y-%m-%d"), hours)


def passes(ledger: Ledger, limit: int = 10) -> list[PassRow]:
    with ledger.session() as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "pass_finished")
                                .order_by(AuditEvent.id.desc()).limit(limit)))
    rows = []
    for event in events:
        try:
            data = json.loads(event.detail or "{}")
        except ValueError:
            data = {}
        started = _parse(data.get("started")) or event.at
        outcomes = {str(k): int(v) for k, v in (data.get("outcomes") or {}).items()}
        errors = [str(data[k]) for k in ("intake_error", "stopped_early") if data.get(k)]
        if outcomes.get("retry"):
            errors.append(f"{outcomes['retry']} step(s) failed and will be retried")
        rows.append(PassRow(started, list(data.get("procedures") or []), float(data.get("seconds") or 0),
                            int(data.get("items_run") or 0), outcomes, errors))
    return rows


def _parse(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


def jobs(ledger: Ledger, procedures: dict[str, Procedure], schedule: Path, wall: datetime
         ) -> tuple[list[JobRow], str | None]:
    """Each job of the schedule file: when a pass over its procedures last finished, and when its
    trigger (APScheduler's own trigger objects, from the TOML) fires next."""
    from apscheduler.triggers.interval import IntervalTrigger

    from kuroko.errors import ConfigurationError
    from kuroko.ops.schedule import job_procedures, load_jobs, make_trigger

    try:
        timezone, defined = load_jobs(schedule, procedures)
    except ConfigurationError as exc:
        return [], exc.message
    recent = passes(ledger, limit=200)
    rows: list[JobRow] = []
    for job in defined:
        names = job_procedures(job)
        last = next((p.started for p in recent if set(names) <= set(p.procedures)), None)
        try:
            trigger = make_trigger(job, timezone)
        except ConfigurationError as exc:
            return rows, exc.message
        if isinstance(trigger, IntervalTrigger) and last is not None:
            trigger = IntervalTrigger(timezone=timezone, start_date=last,
                                      **{k: job[k] for k in ("weeks", "days", "hours", "minutes", "seconds")
                                         if k in job})
            upcoming = trigger.get_next_fire_time(None, wall)
        elif isinstance(trigger, IntervalTrigger):
            upcoming = wall  # a job's first run starts at once (wait_first aside)
        else:
            upcoming = trigger.get_next_fire_time(None, wall)
        described = ", ".join(f"{k}={job[k]}" for k in job if k not in ("id", "procedure", "procedures", "trigger",
                                                                        "coalesce", "max_instances",
                                                                        "misfire_grace_time", "wait_first"))
        rows.append(JobRow(str(job["id"]), names, f"{job['trigger']} ({described})", last, upcoming))
    return rows, None


def today(ledger: Ledger, procedures: dict[str, Procedure], now: datetime, wall: datetime, timezone: str,
          schedule: Path) -> Today:
    job_rows, problem = jobs(ledger, procedures, schedule, wall)
    count_rows = counts(ledger, procedures)
    return Today(now=now, counts=count_rows, chart=chart(ledger, now, timezone), passes=passes(ledger),
                 jobs=job_rows, schedule_problem=problem,
                 held=sum(r.counts.get(ItemState.HELD.value, 0) for r in count_rows))


# --- search ----------------------------------------------------------------------------------------
def search(ledger: Ledger, query: str, limit: int = 50) -> list[WorkItem]:
    """Items by order number (the key, or its beginning), ticket number (its own, its hand-over
    ticket or one merged into it) or tracking number (in its facts)."""
    q = query.strip()
    if not q:
        return []
    conditions: list[Any] = [WorkItem.key == q, WorkItem.key.like(q.replace("%", "").replace("_", "") + "%")]
    conditions += [WorkItem.facts[k].as_string() == q for k in TRACKING_FACTS]
    number = q.lstrip("#")
    with ledger.session() as s:
        if number.isdigit():
            ticket = int(number)
            conditions += [WorkItem.ticket_id == ticket, WorkItem.handover_ticket_id == ticket,
                           WorkItem.id.in_(select(TicketRecord.item_id).where(TicketRecord.ticket_id == ticket))]
        return list(s.scalars(select(WorkItem).where(or_(*conditions)).order_by(WorkItem.id).limit(limit)))


# --- claims ----------------------------------------------------------------------------------------
@dataclass
class ClaimRow:
    claim: Claim
    item_key: str
    waits_for: str
    until: datetime | None

    @property
    def open(self) -> bool:
        return self.claim.status not in CLOSED_CLAIM_STATUSES


@dataclass
class ClaimTotal:
    currency: str
    claimed: Decimal
    paid: Decimal


@dataclass
class Claims:
    rows: list[ClaimRow]
    """The open claims (every claim with ``every``), oldest first."""
    every: bool
    open_count: int
    count: int
    totals: list[ClaimTotal]
    """Money claimed and paid per currency, over every claim."""


def claims(ledger: Ledger, procedures: dict[str, Procedure], *, every: bool = False) -> Claims:
    """The claims, each with what it waits for and until when in the words of the procedure that
    follows claims (its ``@procedure.waits``: the same function as `kuroko claims`)."""
    explain = next((p.claim_waits for p in procedures.values() if p.claim_waits is not None), None)
    found = list_claims(ledger)
    keys: dict[int, str] = {}
    if found:
        with ledger.session() as s:
            keys = {i: k for i, k in s.execute(select(WorkItem.id, WorkItem.key).where(
                WorkItem.id.in_({c.item_id for c in found})))}
    rows = []
    totals: dict[str, ClaimTotal] = {}
    for claim in found:
        cur = claim.currency or "JPY"
        total = totals.setdefault(cur, ClaimTotal(cur, Decimal(0), Decimal(0)))
        total.claimed += claim.amount_claimed or 0
        total.paid += claim.amount_paid or 0
        waiting, until = explain(claim) if explain is not None else ("-", None)
        row = ClaimRow(claim, keys.get(claim.item_id, str(claim.item_id)), waiting, until)
        if every or row.open:
            rows.append(row)
    return Claims(rows, every, sum(1 for c in found if c.status not in CLOSED_CLAIM_STATUSES), len(found),
                  [totals[c] for c in sorted(totals)])


def money(amount: Decimal | None, currency: str | None) -> str:
    """As `kuroko claims` writes it (kuroko.ledger.money); an amount not known yet is a dash."""
    return ledger_money(amount, currency, missing="-")
