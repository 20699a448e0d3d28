"""``kuroko report``: the desk console's pages frozen for one moment, in one self-contained HTML
file — Today (counts, the chart of work per hour, schedules, passes), Waiting for a person, and
every work item (timeline, steps, facts, evidence) — rendered from the console's own templates.
The chart is inline SVG; screenshots are data: URIs; traces are linked with the command that
opens them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from kuroko.ledger import ItemState, Ledger, wall_now
from kuroko.logs import redact
from kuroko.settings import Settings


@dataclass
class Summary:
    procedure: str
    title: str
    lines: list[str]


def summaries(procedures: dict, ledger: Ledger, now: datetime) -> list[Summary]:
    """Each procedure's own lines (``Procedure.summary``), e.g. open claims and money claimed vs paid.
    A procedure whose lines cannot be read says so instead of stopping the report."""
    found = []
    for name, procedure in sorted(procedures.items()):
        lines: list[str] = []
        for fn in getattr(procedure, "summaries", []):
            try:
                lines += fn(ledger, now)
            except Exception as exc:
                lines.append(f"(could not be read: {redact(str(exc))})")
        if lines:
            found.append(Summary(name, procedure.title, lines))
    return found


@dataclass
class Group:
    procedure: str
    title: str
    state: str
    views: list


def write_report(settings: Settings, ledger: Ledger, path: Path, *, title: str = "Kuroko report",
                 titles: dict[str, str] | None = None, lang: str = "ja", schedule: Path | None = None) -> Path:
    """``titles``: each procedure's name for people (procedure → title)."""
    from kuroko.clock import clock_from_url
    from kuroko.ops.console import views
    from kuroko.ops.console.render import Page, render
    from kuroko.ops.console.settings import console_settings
    from kuroko.ops.schedule import DEFAULT_SCHEDULE
    from kuroko.registry import load_procedures

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        procedures = load_procedures()
    except Exception:  # a report is still written with the procedures' names only
        procedures = {}
    titles = {**{n: p.title for n, p in procedures.items()}, **(titles or {})}
    try:
        now = clock_from_url(settings.clock_url).now()
    except Exception:
        now = wall_now()
    page = Page(lang=lang, timezone=settings.timezone, zendesk_url=console_settings().zendesk_url, static=True,
                out_dir=path.parent)
    today = views.today(ledger, procedures, now, wall_now(), settings.timezone, schedule or DEFAULT_SCHEDULE)
    for row in today.counts:
        row.title = titles.get(row.procedure, row.title)
    items = ledger.items()
    groups = []
    for procedure in sorted({i.procedure for i in items}):
        for state in (ItemState.HELD.value, ItemState.ACTIVE.value, ItemState.DONE.value):
            chosen = [views.item_view(ledger, procedures, i) for i in items
                      if i.procedure == procedure and i.state == state]
            for view in chosen:
                view.title = titles.get(procedure, view.title)
            if chosen:
                groups.append(Group(procedure, titles.get(procedure, procedure), state, chosen))
    if title == "Kuroko report":  # the default title, in the report's language
        title = page.t("report")
    document = render("report.html", page, title=title, today=today,
                      views=views.waiting_items(ledger, procedures), groups=groups, total=len(items),
                      written=wall_now(), summaries=summaries(procedures, ledger, now))
    path.write_text(document, encoding="utf-8")
    return path


DRY_RUN_ACTOR = "robot (dry run)"


def _when(settings: Settings, moment: datetime | None) -> str:
    return moment.astimezone(ZoneInfo(settings.timezone)).strftime("%Y-%m-%d %H:%M") if moment else "-"


def dry_run_lines(settings: Settings, ledger: Ledger, *, titles: dict[str, str] | None = None) -> list[str]:
    """What the dry runs would have done, item by item (the audit rows written by ``Effects.do`` in a
    dry run), with each item's state and next step in the dry-run ledger."""
    titles = titles or {}
    by_item: dict[int | None, list[str]] = {}
    for event in ledger.audit_trail():
        if event.actor != DRY_RUN_ACTOR:
            continue
        detail = redact(event.detail or "")
        what = (event.action.removeprefix("step ") if event.action.startswith("step ")
                else f"would {event.action} on {event.system}")
        by_item.setdefault(event.item_id, []).append(f"    {_when(settings, event.at)}  {what}  {detail}".rstrip())
    lines: list[str] = []
    for item in ledger.items():
        actions = by_item.pop(item.id, [])
        where = {"done": "done", "held": f"held: {item.hold_reason}"}.get(
            item.state, f"next: {item.step} at {_when(settings, item.next_due_at)}")
        lines.append(f"{item.key} ({titles.get(item.procedure, item.procedure)}) — {where}")
        lines += actions or ["    nothing to do"]
    for actions in by_item.values():  # actions not tied to one item (intake)
        lines.append("(intake)")
        lines += actions
    return lines
