"""The robot's connections to the four systems, opened lazily and shared by every order in a run.

BOSS's order list is read once per pass (``boss_listing``), not once per order.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from kuroko.browser import Browser, safe_name
from kuroko.errors import UnsafeLink
from kuroko.settings import Settings, load

if TYPE_CHECKING:
    from pages.boss.order_detail import BossOrderDetail
    from pages.boss.order_list import BossListing
    from pages.boss.site import BossSite
    from pages.rakuten.order_page import RmsOrderPage, RmsOrderView
    from pages.rakuten.site import RmsSite
    from services.fulfillment import Fulfillment
    from services.helpdesk import Helpdesk

SITES = ("boss", "rakuten")


class Systems:
    def __init__(self, settings: Settings, *, headless: bool | None = None, slow_mo_ms: int | None = None,
                 helpdesk: Helpdesk | None = None, fulfillment: Fulfillment | None = None,
                 tracing: bool = True) -> None:
        self.settings = settings
        self._tracing = tracing
        """Record Playwright traces (needed to keep one on failure; ``--trace off`` saves its cost)."""
        self._headless = headless
        self._slow_mo_ms = slow_mo_ms
        self._helpdesk = helpdesk
        self._fulfillment = fulfillment
        self._browser: Browser | None = None
        self._boss_listing: BossListing | None = None
        self._boss_detail: BossOrderDetail | None = None
        self._rms_page: RmsOrderPage | None = None
        self._rms_view: RmsOrderView | None = None
        self.boss_list_reads = 0
        self.last_site: str | None = None
        """The site the current step touched last (for screenshots on failure)."""

    # --- APIs ------------------------------------------------------------------------------
    @property
    def helpdesk(self) -> Helpdesk:
        if self._helpdesk is None:
            from services.helpdesk import ZendeskHelpdesk

            self._helpdesk = ZendeskHelpdesk()
        return self._helpdesk

    @property
    def fulfillment(self) -> Fulfillment:
        if self._fulfillment is None:
            from services.fulfillment import AmazonFulfillment

            self._fulfillment = AmazonFulfillment()
        return self._fulfillment

    # --- the browser -----------------------------------------------------------------------
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

    def _boss_site(self) -> BossSite:
        from pages.boss.site import BossSite

        self.last_site = "boss"
        from pages.boss.settings import BossSettings

        boss = load(BossSettings)
        return BossSite(self.browser.page("boss"), boss.boss_url, boss.boss_user,
                        boss.boss_password.get_secret_value(),
                        on_login=lambda: self.browser.save_login("boss"))

    def _rms_site(self) -> RmsSite:
        from pages.rakuten.site import RmsSite

        self.last_site = "rakuten"
        from pages.rakuten.settings import RmsSettings

        rms = load(RmsSettings)
        return RmsSite(self.browser.page("rakuten"), rms.rms_url, rms.rms_user, rms.rms_password.get_secret_value(),
                       on_login=lambda: self.browser.save_login("rakuten"))

    def boss_listing(self) -> BossListing:
        """The BOSS order list, read at most once per pass."""
        if self._boss_listing is None:
            from pages.boss.order_list import BossOrderList

            self._boss_listing = BossOrderList(self._boss_site(), timeout_ms=self.settings.element_timeout_ms).read()
            self.boss_list_reads += 1
        return self._boss_listing

    @property
    def boss_detail(self) -> BossOrderDetail:
        self.last_site = "boss"
        if self._boss_detail is None:
            from pages.boss.order_detail import BossOrderDetail

            self._boss_detail = BossOrderDetail(self._boss_site(), timeout_ms=self.settings.element_timeout_ms)
        return self._boss_detail

    @property
    def rms(self) -> RmsOrderPage:
        self.last_site = "rakuten"
        if self._rms_page is None:
            from pages.rakuten.order_page import RmsOrderPage

            self._rms_page = RmsOrderPage(self._rms_site(), element_timeout_ms=self.settings.element_timeout_ms)
        return self._rms_page

    def rms_order(self, url: str, order_number: str, *, fresh: bool = False) -> RmsOrderView:
        """The RMS order page for ``order_number``: reuses the page already open on it, else opens
        ``url`` (after checking it points at the configured RMS)."""
        from pages.rakuten.settings import RmsSettings

        self.check_link(url, load(RmsSettings).rms_url)
        cached = self._rms_view
        if not fresh and cached is not None and cached.order_number == order_number:
            return cached
        view = self.rms.open(url)
        self._rms_view = view
        return view

    def remember_rms(self, view: RmsOrderView | None) -> None:
        self._rms_view = view

    @staticmethod
    def check_link(url: str, allowed_base: str) -> None:
        """Never follow a link outside the configured host."""
        target, allowed = urlsplit(url), urlsplit(allowed_base)
        if (target.scheme, target.netloc) != (allowed.scheme, allowed.netloc):
            raise UnsafeLink(
                f"the link {target.scheme}://{target.netloc}{target.path} is not on the configured RMS "
                f"({allowed.scheme}://{allowed.netloc}); it was not opened"
            )

    # --- passes, failures, evidence -------------------------------------------------------
    def new_pass(self) -> None:
        """Forget what was read in the previous pass."""
        self._boss_listing = None
        self._rms_view = None

    def reset_sites(self) -> None:
        """After an application error: fresh browser contexts (from the saved logins)."""
        self._rms_view = None
        self._boss_detail = None
        self._rms_page = None
        if self._browser is not None:
            for site in SITES:
                self._browser.reset(site)

    def capture(self, directory: Path, stem: str, *, keep_trace: bool, screenshot: bool = True) -> list[str]:
        """Screenshot of the page in hand and the site traces, named by order and step only."""
        if self._browser is None:
            return []
        paths: list[str] = []
        site = self.last_site
        if site is not None and screenshot:
            shot = self._browser.screenshot(site, directory / f"{safe_name(stem)}-{site}.png")
            if shot:
                paths.append(str(shot))
        for name in SITES:
            if keep_trace:
                trace = self._browser.save_trace(name, directory / f"{safe_name(stem)}-{name}-trace.zip")
                if trace:
                    paths.append(str(trace))
        return paths

    def pause(self, why: str) -> None:
        """Open the Playwright inspector on the page in hand; the run goes on when it is resumed."""
        if self._browser is None or self.last_site is None:
            return
        from loguru import logger

        logger.warning("paused for a person (Playwright inspector): {}", why)
        self._browser.page(self.last_site).pause()

    def begin_order(self) -> None:
        """Start a fresh trace chunk for the next order (earlier actions are discarded)."""
        if self._browser is not None:
            for name in SITES:
                self._browser.discard_trace(name)

    def close(self) -> None:
        if self._browser is not None:
            self._browser.close()
            self._browser = None
