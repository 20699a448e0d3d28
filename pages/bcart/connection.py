"""Bカート's admin screens as one connection of a run: the site signed in once, the page objects
for what only the screens do (template mails, 帳票, 出荷実績インポート), built on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kuroko.connections import CheckLine, Connection, Connections
from kuroko.settings import load
from services.bcart_api import BcartSettings

if TYPE_CHECKING:
    from pages.bcart.order_list import BcartOrderList
    from pages.bcart.order_page import BcartOrderPage
    from pages.bcart.shipping_import import BcartShippingImport
    from pages.bcart.site import BcartSite

SITE = "bcart"


class BcartScreens:
    def __init__(self, connections: Connections) -> None:
        self._connections = connections
        self.settings = load(BcartSettings)
        self._site: BcartSite | None = None
        self._orders: BcartOrderList | None = None
        self._order_page: BcartOrderPage | None = None
        self._shipping_import: BcartShippingImport | None = None

    def site(self) -> BcartSite:
        from pages.bcart.site import BcartSite

        browser = self._connections.browser
        browser.last_site = SITE
        if self._site is None:
            self._site = BcartSite(browser.page(SITE), self.settings.bcart_url, self.settings.bcart_user,
                                   self.settings.bcart_password.get_secret_value(),
                                   on_login=lambda: browser.save_login(SITE))
        return self._site

    @property
    def orders(self) -> BcartOrderList:
        """受注一覧 (the template mails)."""
        site = self.site()
        if self._orders is None:
            from pages.bcart.order_list import BcartOrderList

            self._orders = BcartOrderList(site)
        return self._orders

    @property
    def order_page(self) -> BcartOrderPage:
        """受注詳細 (the 帳票)."""
        site = self.site()
        if self._order_page is None:
            from pages.bcart.order_page import BcartOrderPage

            self._order_page = BcartOrderPage(site)
        return self._order_page

    @property
    def shipping_import(self) -> BcartShippingImport:
        """出荷実績インポート."""
        site = self.site()
        if self._shipping_import is None:
            from pages.bcart.shipping_import import BcartShippingImport

            self._shipping_import = BcartShippingImport(site)
        return self._shipping_import

    def check(self, order: str | None = None) -> list[CheckLine]:
        """`kuroko check`: sign in, 受注一覧 recognised and its selectors resolve; with ``order`` (a
        受注ID) its 受注詳細 is read. Nothing is clicked: no mail, no status."""
        from kuroko.connections import checked
        from kuroko.errors import PageChanged

        def order_list() -> str:
            site = self.site()
            site.goto("/order")
            site.visible("order_list.heading")
            keys = site.check_keys("order_list", optional=("row", "row_id", "row_code", "row_status",
                                                           "mail_sent_message", "error"))
            if not keys.ok:
                raise PageChanged(keys.describe())
            return f"signed in as {site.user}; 受注一覧 recognised; {keys.describe()}"

        lines = [checked(SITE, "order list", order_list)]

        def order_detail() -> str:
            if order is None or not order.isdigit():
                return "not checked: give --order ID (a Bカート 受注ID) to read its 受注詳細"
            view = self.order_page.open(int(order))
            return f"order {order} read ({view.status_label}; nothing clicked)"

        if lines[0].ok:
            lines.append(checked(SITE, "order page", order_detail))
        return lines

    def reset(self) -> None:
        """After an application error the browser context is new: so are the page objects."""
        self._site = None
        self._orders = None
        self._order_page = None
        self._shipping_import = None


BCART = Connection("bcart", BcartScreens, sites=(SITE,))
