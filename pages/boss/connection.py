"""BOSS as one connection of a run: the site signed in once, its order list read at most once per
pass, the order detail page object."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kuroko.connections import CheckLine, Connection, Connections, checked
from kuroko.settings import load
from pages.boss.settings import BossSettings

if TYPE_CHECKING:
    from pages.boss.order_detail import BossOrderDetail
    from pages.boss.order_list import BossListing
    from pages.boss.site import BossSite

SITE = "boss"


class BossBackOffice:
    def __init__(self, connections: Connections) -> None:
        self._connections = connections
        self.settings = load(BossSettings)
        self._site: BossSite | None = None
        self._listing: BossListing | None = None
        self._detail: BossOrderDetail | None = None
        self.list_reads = 0

    def site(self) -> BossSite:
        from pages.boss.site import BossSite

        browser = self._connections.browser
        browser.last_site = SITE
        if self._site is None:
            self._site = BossSite(browser.page(SITE), self.settings.boss_url, self.settings.boss_user,
                                  self.settings.boss_password.get_secret_value(),
                                  on_login=lambda: browser.save_login(SITE))
        return self._site

    def listing(self) -> BossListing:
        """The BOSS order list, read at most once per pass."""
        if self._listing is None:
            from pages.boss.order_list import BossOrderList

            timeout = self._connections.settings.element_timeout_ms
            self._listing = BossOrderList(self.site(), timeout_ms=timeout).read()
            self.list_reads += 1
        return self._listing

    @property
    def detail(self) -> BossOrderDetail:
        site = self.site()
        if self._detail is None:
            from pages.boss.order_detail import BossOrderDetail

            self._detail = BossOrderDetail(site, timeout_ms=self._connections.settings.element_timeout_ms)
        return self._detail

    def new_pass(self) -> None:
        self._listing = None

    def reset(self) -> None:
        """After an application error the browser context is new: so are the page objects."""
        self._site = None
        self._detail = None

    def metrics(self) -> dict[str, int]:
        return {"boss_list_reads": self.list_reads}

    def check(self, order: str | None = None) -> list[CheckLine]:
        """`kuroko check`: sign in, the Order List recognised and read, its selectors (and, with
        ``order``, the Order Detail's) resolve. Nothing is clicked: the detail page is only read."""
        from kuroko.errors import PageChanged

        site = self.site()
        lines = [checked(SITE, "login", lambda: self._signed_in(site))]
        if not lines[0].ok:
            return lines

        def order_list() -> str:
            self._listing = None
            listing = self.listing()
            keys = site.check_keys("order_list", optional=() if listing.orders else ("row",))
            if not keys.ok:
                raise PageChanged(keys.describe())
            return f"Order List recognised, {len(listing.orders)} orders listed; {keys.describe()}"

        lines.append(checked(SITE, "order list", order_list))

        def order_detail() -> str:
            if order is None:
                return "not checked: give --order NUMBER (an order BOSS lists) to check the Order Detail page"
            view = self.detail.open(order)
            keys = site.check_keys("order_detail", optional=("delete_button",))
            if not keys.ok:
                raise PageChanged(keys.describe())
            return f"order {order} read ({view.state}); {keys.describe()} (nothing clicked)"

        lines.append(checked(SITE, "order detail", order_detail))
        lines.append(CheckLine(SITE, "not checked", True, "login.error (shown only on a refused login), "
                                                          "not_found (shown only for an unknown order)"))
        return lines

    def _signed_in(self, site: BossSite) -> str:
        site.goto("/orders")
        site.expect_visible("order_list.heading")
        return f"signed in as {site.user}"


BOSS = Connection("boss", BossBackOffice, sites=(SITE,))
