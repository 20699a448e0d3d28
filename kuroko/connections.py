"""The run's connections to the outside world, by name, opened on first use and shared by every
work item of the run — the engine knows none of them by name.

A site or service declares its connection once, where it lives::

    BOSS = Connection("boss", open_boss, sites=("boss",))       # pages/boss/connection.py
    HELPDESK = Connection("helpdesk", lambda c: ZendeskHelpdesk())  # services/helpdesk.py

and a step asks for it: ``ctx.use(BOSS).listing()``. A connection object may have any of
``new_pass()`` (forget what was read in the last pass), ``reset()`` (after an application error),
``metrics() -> dict[str, int]`` (for the benchmark), ``close()``, ``check(order)`` (for `kuroko check`,
read-only: see ``CheckLine``).

The browser (kuroko/browser.py) is one of the run's resources: a connection that works a site
opens it with ``connections.browser.page(site)``; screenshots, traces and context resets after a
failure are done here for every site in use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from kuroko.browser import Browser, safe_name
from kuroko.settings import Settings

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

@dataclass(frozen=True)
class CheckLine:
    """One line of ``kuroko check``: what was looked at on which system, and what was found or what
    to fix. A connection object may have ``check(order: str | None) -> list[CheckLine]``: read-only
    (signing in and acknowledging notices allowed; never a click or a request that changes
    anything)."""

    system: str
    what: str
    ok: bool
    found: str


def checked(system: str, what: str, look: Callable[[], str]) -> CheckLine:
    """One check line: ``look()`` returns what it found; any error it raises is what to fix."""
    try:
        return CheckLine(system, what, True, look())
    except Exception as exc:
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        return CheckLine(system, what, False, str(message))


REGISTRY: dict[str, Connection[Any]] = {}
"""Every connection declared in this process, by name (for `kuroko check` and the docs)."""


@dataclass(frozen=True, eq=False)
class Connection(Generic[T_co]):
    name: str
    open: Callable[[Connections], T_co]
    sites: tuple[str, ...] = field(default=())
    """Browser sites (contexts) this connection works in."""

    def __post_init__(self) -> None:
        known = REGISTRY.get(self.name)
        if known is not None and known.open.__qualname__ != self.open.__qualname__:
            raise ValueError(f"two different connections are named {self.name!r}")
        REGISTRY[self.name] = self


class Connections:
    """The connections of one run (``kuroko run``, a scheduled pass, a test's robot)."""

    def __init__(self, settings: Settings, *, headless: bool | None = None, slow_mo_ms: int | None = None,
                 tracing: bool | None = None, given: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self._headless = headless
        self._slow_mo_ms = slow_mo_ms
        self._tracing = settings.trace != "off" if tracing is None else tracing
        """Record Playwright traces (needed to keep one on failure; off by default, see Settings.trace)."""
        self._open: dict[str, Any] = dict(given or {})
        """Opened connections by name; ``given`` puts in ready-made ones (tests)."""
        self._browser: Browser | None = None

    def use(self, connection: Connection[T]) -> T:
        if connection.name not in self._open:
            self._open[connection.name] = connection.open(self)
        return self._open[connection.name]

    def opened(self, name: str) -> Any | None:
        return self._open.get(name)

    # --- the browser -----------------------------------------------------------------------------
    @property
    def browser(self) -> Browser:
        if self._browser is None:
            browser = Browser(self.settings, headless=self._headless, slow_mo_ms=self._slow_mo_ms,
                              tracing=self._tracing)
            browser.start()
            self._browser = browser
        return self._browser

    @property
    def browser_started(self) -> bool:
        return self._browser is not None

    def page_loads(self, site: str) -> int:
        return self._browser.page_loads[site] if self._browser else 0

    # --- passes, failures, evidence ----------------------------------------------------------------
    def _each(self, method: str) -> None:
        for conn in list(self._open.values()):
            fn = getattr(conn, method, None)
            if callable(fn):
                fn()

    def new_pass(self) -> None:
        """Forget what was read in the previous pass."""
        self._each("new_pass")

    def reset_after_error(self) -> None:
        """After an application error: connections drop what they hold, fresh browser contexts
        (from the saved logins)."""
        self._each("reset")
        if self._browser is not None:
            for site in list(self._browser.sites()):
                self._browser.reset(site)

    def metrics(self) -> dict[str, int]:
        """Counters for the benchmark: page loads per site, requests per API connection."""
        out: dict[str, int] = {}
        if self._browser is not None:
            for site, n in self._browser.page_loads.items():
                out[f"{site}_page_loads"] = n
        for conn in self._open.values():
            fn = getattr(conn, "metrics", None)
            if callable(fn):
                out.update(fn())
        return out

    def capture(self, directory: Path, stem: str, *, keep_trace: bool, screenshot: bool = True) -> list[str]:
        """The evidence of a failed step, named by item and step only: a screenshot and the HTML of the
        page in hand, the list of pages the item loaded, and (``keep_trace``) the site traces."""
        if self._browser is None:
            return []
        paths: list[str] = []
        site = self._browser.last_site
        if site is not None and screenshot:
            shot = self._browser.screenshot(site, directory / f"{safe_name(stem)}-{site}.png")
            html = self._browser.save_html(site, directory / f"{safe_name(stem)}-{site}.html")
            paths += [str(p) for p in (shot, html) if p]
        visited = self._browser.save_pages_visited(directory / f"{safe_name(stem)}-pages.txt")
        if visited:
            paths.append(str(visited))
        if keep_trace:
            for name in self._browser.sites():
                trace = self._browser.save_trace(name, directory / f"{safe_name(stem)}-{name}-trace.zip")
                if trace:
                    paths.append(str(trace))
        return paths

    def pause(self, why: str) -> None:
        """Open the Playwright inspector on the page in hand; the run goes on when it is resumed."""
        if self._browser is None or self._browser.last_site is None:
            return
        from loguru import logger

        logger.warning("paused for a person (Playwright inspector): {}", why)
        self._browser.page(self._browser.last_site).pause()

    def begin_item(self) -> None:
        """Between two items: a fresh browser once it loaded many documents, a fresh page for a site
        whose page loaded many (the connections working those sites drop their page objects), each
        page's garbage freed, a fresh trace chunk and page list (earlier actions are discarded)."""
        if self._browser is not None:
            recycled = set(self._browser.restart_if_worn()) | set(self._browser.recycle_pages())
            for name, opened in self._open.items():
                declared = REGISTRY.get(name)
                reset = getattr(opened, "reset", None)
                if declared is not None and recycled & set(declared.sites) and callable(reset):
                    reset()
            self._browser.pages_visited.clear()
            self._browser.collect_garbage()
            for name in self._browser.sites():
                self._browser.discard_trace(name)

    def close(self) -> None:
        self._each("close")
        self._open.clear()
        if self._browser is not None:
            self._browser.close()
            self._browser = None
