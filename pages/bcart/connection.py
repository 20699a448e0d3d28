"""Bカート's admin screens as one connection of a run: the site signed in once, the page objects
for what only the screens do (template mails, 帳票, 出荷実績インポート), built on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kuroko.connections import Connection, Connections
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

    def reset(self) -> None:
        """After an application error the browser context is new: so are the page objects."""
        self._site = None
        self._orders = None
        self._order_page = None
        self._shipping_import = None


BCART = Connection("bcart", BcartScreens, sites=(SITE,))
