"""Playwright lifecycle: Debian's Chromium by path, one context per site, saved logins, tracing.

Saved logins are Playwright storage-state files under ``{data_dir}/sessions`` with mode 0600;
they are reused on the next start and rewritten after every fresh login (so an expired session
is refreshed by the site's own re-login, see pages/base.py).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from playwright.sync_api import Browser as PwBrowser
from playwright.sync_api import BrowserContext, CDPSession, Page, Playwright, Request, sync_playwright

from kuroko.errors import ConfigurationError
from kuroko.logs import redact
from kuroko.settings import Settings

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def safe_name(text: str) -> str:
    """A file-name-safe form of an order number or step name (never a secret: callers pass ids)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80]


@contextlib.contextmanager
def _small_driver_heap() -> Iterator[None]:
    """Playwright's driver (node) is started with a 1 MiB young generation: it allocates a message's
    worth of objects per call and V8 otherwise lets the garbage pile up (measured: 177 MiB after
    2,000 page loads, 123 MiB with this; it peaked at 370 MiB on the 1,000-order day without it). A
    NODE_OPTIONS already set is kept and added to."""
    before = os.environ.get("NODE_OPTIONS")
    if "--max-semi-space-size" not in (before or ""):
        os.environ["NODE_OPTIONS"] = f"{before or ''} --max-semi-space-size=1".strip()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("NODE_OPTIONS", None)
        else:
            os.environ["NODE_OPTIONS"] = before


class Browser:
    """``with Browser(settings) as browser: page = browser.page("boss")``."""

    def __init__(self, settings: Settings, *, headless: bool | None = None, slow_mo_ms: int | None = None,
                 tracing: bool = True) -> None:
        self.settings = settings
        self.headless = settings.headless if headless is None else headless
        self.slow_mo_ms = settings.slow_mo_ms if slow_mo_ms is None else slow_mo_ms
        self.tracing = tracing
        self.sessions_dir = settings.data_dir / "sessions"
        self._playwright: Playwright | None = None
        self._browser: PwBrowser | None = None
        self._contexts: dict[str, BrowserContext] = {}
        self._pages: dict[str, Page] = {}
        self.page_loads: Counter[str] = Counter()
        """Documents loaded (navigations and form posts) per site, for the benchmark."""
        self.pages_visited: list[str] = []
        """Every document the current item loaded (time, site, method, URL): part of a failure's evidence."""
        self._sessions: dict[str, CDPSession] = {}
        self._loads_when_tidied: Counter[str] = Counter()
        self._loads_when_opened: Counter[str] = Counter()
        self._loads_when_started = 0
        self.last_site: str | None = None
        """The site whose page was asked for last (the one to photograph when a step fails)."""

    # --- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Browser:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def executable(self) -> Path:
        """The headless shell for headless runs when it is installed; the full Chromium otherwise
        (a visible browser needs it)."""
        shell = Path(self.settings.headless_shell_path)
        if self.headless and shell.exists():
            return shell
        return Path(self.settings.browser_path)

    def start(self) -> None:
        path = self.executable()
        if not path.exists():
            raise ConfigurationError(
                f"No Chromium at {path}. Install Debian's chromium and chromium-headless-shell (`make install` "
                "does) or set KUROKO_BROWSER_PATH to a Chromium executable (headless runs use "
                "KUROKO_HEADLESS_SHELL_PATH instead when it exists)."
            )
        with _small_driver_heap():
            self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(
            executable_path=str(path), headless=self.headless, slow_mo=self.slow_mo_ms or None,
            args=CHROMIUM_FLAGS,
        )
        self._loads_when_started = sum(self.page_loads.values())

    def close(self) -> None:
        for site in list(self._contexts):
            self.reset(site)
        if self._browser is not None:
            self._browser.close()
            self._browser = None
        if self._playwright is not None:
            self._playwright.stop()
            self._playwright = None

    # --- contexts and pages ----------------------------------------------------------------
    def storage_state_path(self, site: str) -> Path:
        return self.sessions_dir / f"{safe_name(site)}.json"

    def context(self, site: str) -> BrowserContext:
        if site not in self._contexts:
            if self._browser is None:
                raise RuntimeError("Browser.start() first")
            state = self.storage_state_path(site)
            options: dict[str, Any] = {"locale": "ja-JP", "timezone_id": self.settings.timezone,
                                       "viewport": {"width": 1280, "height": 900}}
            if state.exists():
                options["storage_state"] = str(state)
            context = self._browser.new_context(**options)
            context.set_default_timeout(self.settings.navigation_timeout_ms)
            def count(request: Request, site: str = site) -> None:
                self._count_document(site, request)

            context.on("request", count)
            if self.tracing:
                # Asked for (KUROKO_TRACE, --trace): DOM snapshots of every action, no filmstrip —
                # the screencast behind a trace's screenshots costs Chromium and the driver time and
                # memory on every page, and a failure gets a real screenshot of its own.
                context.tracing.start(screenshots=False, snapshots=True, sources=False)
            self._contexts[site] = context
        return self._contexts[site]

    def _count_document(self, site: str, request: Request) -> None:
        if request.resource_type == "document":
            self.page_loads[site] += 1
            self.pages_visited.append(f"{datetime.now():%H:%M:%S.%f}"[:-3] + f" {site} {request.method} {request.url}")

    def sites(self) -> list[str]:
        """The sites with a browser context open now."""
        return list(self._contexts)

    def page(self, site: str) -> Page:
        self.last_site = site
        page = self._pages.get(site)
        if page is None or page.is_closed():
            page = self.context(site).new_page()
            self._pages[site] = page
            self._loads_when_opened[site] = self.page_loads[site]
        return page

    def recycle_pages(self) -> list[str]:
        """Close each site's page that has loaded ``page_loads_per_page`` documents (the next
        ``page(site)`` opens a fresh one in the same context); returns those sites. Call it between
        work items only: whoever holds the old page must drop it (Connections.begin_item does)."""
        recycled = []
        for site, page in list(self._pages.items()):
            if self.page_loads[site] - self._loads_when_opened[site] < self.settings.page_loads_per_page:
                continue
            del self._pages[site]
            self._sessions.pop(site, None)
            with contextlib.suppress(Exception):
                page.close()
            recycled.append(site)
        return recycled

    def restart_if_worn(self) -> list[str]:
        """Close the browser and its driver and start them again once they have loaded
        ``page_loads_per_browser`` documents; returns the sites whose contexts went (each comes back
        from its saved login on next use). Between work items only, as ``recycle_pages``."""
        if self._browser is None or sum(self.page_loads.values()) - self._loads_when_started < \
                self.settings.page_loads_per_browser:
            return []
        sites = list(self._contexts)
        self.close()
        self.start()
        return sites

    def collect_garbage(self) -> None:
        """Have each page that loaded something since the last call free its garbage now.

        A site's page lives for the whole run and loads hundreds of documents; Chromium collects
        the old ones' JavaScript only when it feels short of memory, so a page's renderer grew to
        hundreds of MiB over a day (live heap: about 2 MiB). A full collection between work items
        costs a few milliseconds and keeps the renderers flat."""
        for site, page in list(self._pages.items()):
            if self.page_loads[site] == self._loads_when_tidied[site] or page.is_closed():
                continue
            self._loads_when_tidied[site] = self.page_loads[site]
            try:
                session = self._sessions.get(site)
                if session is None:
                    session = self._sessions[site] = self.context(site).new_cdp_session(page)
                session.send("HeapProfiler.collectGarbage")
            except Exception:  # a page being closed or navigated away; the next item tries again
                self._sessions.pop(site, None)

    def save_login(self, site: str) -> None:
        """Keep the site's cookies for the next run, readable by this user only."""
        self.sessions_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.sessions_dir, 0o700)
        path = self.storage_state_path(site)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        self.context(site).storage_state(path=str(tmp))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)

    def forget_login(self, site: str) -> None:
        self.storage_state_path(site).unlink(missing_ok=True)

    # --- evidence --------------------------------------------------------------------------
    def screenshot(self, site: str, path: Path) -> Path | None:
        page = self._pages.get(site)
        if page is None or page.is_closed():
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            page.screenshot(path=str(path), full_page=True)
        except Exception:
            return None
        return path

    def save_html(self, site: str, path: Path) -> Path | None:
        """The page's DOM as it is now (what a trace's snapshot would show; typed values are not in it)."""
        page = self._pages.get(site)
        if page is None or page.is_closed():
            return None
        try:
            html = page.content()
        except Exception:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(redact(html), encoding="utf-8")
        return path

    def save_pages_visited(self, path: Path) -> Path | None:
        if not self.pages_visited:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(redact("\n".join(self.pages_visited)) + "\n", encoding="utf-8")
        return path

    def save_trace(self, site: str, path: Path) -> Path | None:
        """Write the site's trace since the last chunk began, and begin a new chunk (tracing runs
        for the context's whole life; a chunk per order keeps each trace to that order)."""
        context = self._contexts.get(site)
        if context is None or not self.tracing:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        context.tracing.stop_chunk(path=str(path))
        context.tracing.start_chunk()
        return path

    def discard_trace(self, site: str) -> None:
        context = self._contexts.get(site)
        if context is not None and self.tracing:
            context.tracing.stop_chunk()
            context.tracing.start_chunk()

    def reset(self, site: str) -> None:
        """Throw the site's context away (after an application error); the next use starts fresh
        from the saved login."""
        context = self._contexts.pop(site, None)
        self._pages.pop(site, None)
        self._sessions.pop(site, None)
        if context is not None:
            if self.tracing:
                with contextlib.suppress(Exception):
                    context.tracing.stop()
            context.close()
