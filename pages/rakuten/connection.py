"""Rakuten RMS as one connection of a run: the site signed in once, the order page object, and
the order page last read (reused by the next step on the same order instead of loading it again)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from kuroko.connections import Connection, Connections
from kuroko.errors import UnsafeLink
from kuroko.settings import load
from pages.rakuten.settings import RmsSettings

if TYPE_CHECKING:
    from pages.rakuten.order_page import RmsOrderPage, RmsOrderView
    from pages.rakuten.site import RmsSite

SITE = "rakuten"


class RakutenRms:
    def __init__(self, connections: Connections) -> None:
        self._connections = connections
        self.settings = load(RmsSettings)
        self._site: RmsSite | None = None
        self._page: RmsOrderPage | None = None
        self._view: RmsOrderView | None = None

    def site(self) -> RmsSite:
        from pages.rakuten.site import RmsSite

        browser = self._connections.browser
        browser.last_site = SITE
        if self._site is None:
            self._site = RmsSite(browser.page(SITE), self.settings.rms_url, self.settings.rms_user,
                                 self.settings.rms_password.get_secret_value(),
                                 on_login=lambda: browser.save_login(SITE))
        return self._site

    @property
    def page(self) -> RmsOrderPage:
        site = self.site()
        if self._page is None:
            from pages.rakuten.order_page import RmsOrderPage

            self._page = RmsOrderPage(site, element_timeout_ms=self._connections.settings.element_timeout_ms)
        return self._page

    def order_url(self, order_number: str) -> str:
        return self.settings.rms_url.rstrip("/") + self.settings.rms_order_path.format(order_number=order_number)

    def order(self, url: str, order_number: str, *, fresh: bool = False) -> RmsOrderView:
        """The RMS order page for ``order_number``: reuses the page already read on it, else opens
        ``url`` (after checking it points at the configured RMS)."""
        check_link(url, self.settings.rms_url)
        cached = self._view
        if not fresh and cached is not None and cached.order_number == order_number:
            self.site()
            return cached
        view = self.page.open(url)
        self._view = view
        return view

    def remember(self, view: RmsOrderView | None) -> None:
        self._view = view

    def new_pass(self) -> None:
        self._view = None

    def reset(self) -> None:
        self._site = None
        self._page = None
        self._view = None


def check_link(url: str, allowed_base: str) -> None:
    """Never follow a link outside the configured host."""
    target, allowed = urlsplit(url), urlsplit(allowed_base)
    if (target.scheme, target.netloc) != (allowed.scheme, allowed.netloc):
        raise UnsafeLink(
            f"the link {target.scheme}://{target.netloc}{target.path} is not on the configured RMS "
            f"({allowed.scheme}://{allowed.netloc}); it was not opened"
        )


RMS = Connection("rms", RakutenRms, sites=(SITE,))
