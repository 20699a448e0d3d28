"""``kuroko report``: one self-contained HTML file of what the robot did — work items by procedure
and outcome, each item's audit trail, held items with their reasons, failure screenshots inline,
links to traces."""

from __future__ import annotations

import base64
import html
from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from kuroko.ledger import ItemState, Ledger, WorkItem
from kuroko.logs import redact
from kuroko.settings import Settings

STYLE = """
body{font-family:"Noto Sans CJK JP","Noto Sans",sans-serif;margin:2rem;color:#222;max-width:1200px}
h1{font-size:1.5rem} h2{margin-top:2rem;border-bottom:2px solid #333}
table{border-collapse:collapse;width:100%;margin:.5rem 0} td,th{border:1px solid #ccc;padding:.3rem .5rem;
text-align:left;vertical-align:top;font-size:.9rem} th{background:#f3f3f3}
.held{background:#fff4e5} .done{background:#eef9ee} .active{background:#eef3ff}
details{margin:.4rem 0;border:1px solid #ddd;padding:.3rem .6rem;border-radius:4px}
summary{cursor:pointer;font-weight:600} img{max-width:100%;border:1px solid #999;margin:.3rem 0}
.tag{display:inline-block;padding:0 .4rem;border-radius:3px;background:#eee;margin-right:.3rem}
"""


def _esc(text: object) -> str:
    return html.escape(redact(str(text)) if text is not None else "")


def _when(settings: Settings, moment: datetime | None) -> str:
    return moment.astimezone(ZoneInfo(settings.timezone)).strftime("%Y-%m-%d %H:%M") if moment else "-"


def _evidence_html(paths: list[str], out_dir: Path) -> str:
    parts = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            parts.append(f"<div>missing: {_esc(path.name)}</div>")
        elif path.suffix == ".png":
            data = base64.b64encode(path.read_bytes()).decode()
            parts.append(f'<div>{_esc(path.name)}<br>'
                         f'<img alt="{_esc(path.name)}" src="data:image/png;base64,{data}"></div>')
        else:
            try:
                href = path.resolve().relative_to(out_dir.resolve())
            except ValueError:
                href = path.resolve()
            parts.append(f'<div>trace: <a href="{_esc(href)}">{_esc(path.name)}</a> '
                         f'(open with <code>playwright show-trace</code>)</div>')
    return "".join(parts)


def item_section(settings: Settings, ledger: Ledger, order: WorkItem, out_dir: Path) -> str:
    rows = []
    evidence: list[str] = []
    for step in ledger.steps(order.id):
        evidence += step.evidence or []
        rows.append(
            f"<tr><td>{_esc(step.name)}</td><td>{_esc(step.status)}</td><td>{step.attempt}</td>"
            f"<td>{_esc(step.external_ref or '')}</td><td>{_esc(step.error_message or step.detail or '')}</td></tr>"
        )
    audit = "".join(
        f"<tr><td>{_when(settings, e.at)}</td><td>{_esc(e.actor)}</td><td>{_esc(e.system)}</td>"
        f"<td>{_esc(e.action)}</td><td>{_esc(e.detail or '')}</td></tr>"
        for e in ledger.audit_trail(order.id)
    )
    hold = f"<p><b>Held:</b> {_esc(order.hold_reason)}</p>" if order.hold_reason else ""
    return (
        f'<details class="{order.state}" id="item-{order.id}"><summary>{_esc(order.key)} — '
        f'{_esc(order.state)} · {_esc(order.path or "-")} · ticket #{order.handover_ticket_id or order.ticket_id} · '
        f'next: {_esc(order.step)}'
        f"</summary>{hold}"
        "<table><tr><th>step</th><th>status</th><th>attempt</th><th>reference</th><th>detail / error</th></tr>"
        f"{''.join(rows)}</table>"
        "<table><tr><th>when (JST)</th><th>who</th><th>system</th><th>action</th><th>detail</th></tr>"
        f"{audit}</table>{_evidence_html(evidence, out_dir)}</details>"
    )


def write_report(settings: Settings, ledger: Ledger, path: Path, *, title: str = "Kuroko report",
                 titles: dict[str, str] | None = None) -> Path:
    """``titles``: each procedure's name for people (procedure → title)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    titles = titles or {}
    items = ledger.items()
    by_outcome = Counter((i.procedure, i.state, i.path or "-") for i in items)
    summary = "".join(f"<tr><td>{_esc(titles.get(proc, proc))}</td><td>{_esc(s)}</td><td>{_esc(p)}</td>"
                      f"<td>{n}</td></tr>" for (proc, s, p), n in sorted(by_outcome.items()))
    held = [i for i in items if i.state == ItemState.HELD.value]
    held_rows = "".join(
        f'<tr><td>{_esc(titles.get(i.procedure, i.procedure))}</td><td><a href="#item-{i.id}">{_esc(i.key)}</a></td>'
        f"<td>{i.handover_ticket_id or i.ticket_id}</td><td>{_esc(i.step)}</td><td>{_esc(i.hold_code)}</td>"
        f"<td>{_esc(i.hold_reason)}</td></tr>"
        for i in held
    )
    sections = []
    for procedure in sorted({i.procedure for i in items}):
        sections.append(f"<h2>{_esc(titles.get(procedure, procedure))} <small>({_esc(procedure)})</small></h2>")
        for state in (ItemState.HELD.value, ItemState.ACTIVE.value, ItemState.DONE.value):
            group = [i for i in items if i.state == state and i.procedure == procedure]
            if group:
                sections.append(f"<h3>{state} ({len(group)})</h3>"
                                + "".join(item_section(settings, ledger, i, path.parent) for i in group))
    document = (
        f'<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{_esc(title)}</h1>"
        f"<p>{len(items)} work items · written {datetime.now(ZoneInfo(settings.timezone)):%Y-%m-%d %H:%M} JST</p>"
        "<h2>Work items by procedure and outcome</h2><table><tr><th>procedure</th><th>state</th><th>path</th>"
        f"<th>items</th></tr>{summary}</table>"
        "<h2>Held for a person</h2>"
        + ("<table><tr><th>procedure</th><th>item</th><th>ticket</th><th>step</th><th>code</th><th>reason</th></tr>"
           f"{held_rows}</table>" if held else "<p>None.</p>")
        + "".join(sections) + "</body></html>"
    )
    path.write_text(document, encoding="utf-8")
    return path


DRY_RUN_ACTOR = "robot (dry run)"


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
