"""The templates, and what they need, for both the live console and the frozen report.

Every value a template prints passes through ``kuroko.logs.redact`` (Jinja's ``finalize``): no
configured secret reaches a page, whatever a ticket, a fact or an error message holds."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from kuroko.logs import redact
from kuroko.ops.console.chart import render_chart
from kuroko.ops.console.i18n import translator
from kuroko.ops.console.views import SYSTEM_NAMES, Evidence, money


def _finalize(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, Markup):
        return Markup(redact(str(value)))
    if isinstance(value, int | float):
        return value
    return redact(str(value))


def make_environment() -> Environment:
    env = Environment(loader=PackageLoader("kuroko.ops.console", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True), finalize=_finalize,
                      trim_blocks=True, lstrip_blocks=True)
    env.globals["system_name"] = lambda s: SYSTEM_NAMES.get(s, s)
    env.globals["render_chart"] = render_chart
    env.globals["money"] = money
    return env


ENVIRONMENT = make_environment()


@dataclass
class Page:
    """What every template is given: the language, the times, links, and the mode (live or report)."""

    lang: str
    timezone: str
    zendesk_url: str
    static: bool = False
    """True for the report: no forms, no scripts, evidence inline, links within the file."""
    user: Any = None
    csrf: str = ""
    path: str = "/"
    flash: str | None = None
    flash_error: bool = False
    refresh_ms: int = 3000
    nonce: str = ""
    out_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def t(self) -> Callable[..., str]:
        return translator(self.lang)

    @property
    def tz_label(self) -> str:
        return "JST" if self.timezone == "Asia/Tokyo" else self.timezone

    def when(self, moment: datetime | None, seconds: bool = False) -> str:
        if moment is None:
            return "-"
        return moment.astimezone(ZoneInfo(self.timezone)).strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else ""))

    def item_href(self, item_id: int) -> str:
        return f"#item-{item_id}" if self.static else f"/items/{item_id}"

    def ticket_href(self, ticket_id: int) -> str:
        return f"{self.zendesk_url.rstrip('/')}/agent/tickets/{ticket_id}"

    def evidence_src(self, evidence: Evidence) -> str:
        if not self.static:
            return f"/evidence/{evidence.step_id}/{evidence.index}"
        path = Path(evidence.path)
        if evidence.kind == "screenshot":
            return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
        if self.out_dir is not None:
            try:
                return str(path.resolve().relative_to(self.out_dir.resolve()))
            except ValueError:
                pass
        return path.resolve().as_uri()


def render(template: str, page: Page, **data: Any) -> str:
    return ENVIRONMENT.get_template(template).render(page=page, t=page.t, **data)
