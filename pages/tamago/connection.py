"""たまごリピート as one connection of a run: the admin signed in once, its 要対応 search read at most
once per pass, the order page and 顧客検索 page objects."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kuroko.connections import CheckLine, Connection, Connections, checked
from kuroko.errors import PageChanged
from kuroko.settings import load
from pages.tamago.settings import TamagoSettings

if TYPE_CHECKING:
    from pages.tamago.customer_search import TamagoCustomerSearch
    from pages.tamago.models import FlaggedOrder, TamagoOrderView
    from pages.tamago.order_page import TamagoOrderPage
    from pages.tamago.order_search import TamagoOrderSearch
    from pages.tamago.site import TamagoSite

SITE = "tamago"


class TamagoAdmin:
    def __init__(self, connections: Connections) -> None:
        self._connections = connections
        self.settings = load(TamagoSettings)
        self._site: TamagoSite | None = None
        self._search: TamagoOrderSearch | None = None
        self._order: TamagoOrderPage | None = None
        self._customers: TamagoCustomerSearch | None = None
        self._flagged: list[FlaggedOrder] | None = None
        self._view: TamagoOrderView | None = None
        self.search_reads = 0

    @property
    def _timeout(self) -> int:
        return self._connections.settings.element_timeout_ms

    def site(self) -> TamagoSite:
        from pages.tamago.site import TamagoSite

        browser = self._connections.browser
        browser.last_site = SITE
        if self._site is None:
            self._site = TamagoSite.from_settings(browser.page(SITE), self.settings,
                                                  on_login=lambda: browser.save_login(SITE))
        return self._site

    def flagged(self) -> list[FlaggedOrder]:
        """注文検索 「要対応のみ」, every page, read at most once per pass."""
        if self._flagged is None:
            from pages.tamago.order_search import TamagoOrderSearch

            site = self.site()
            if self._search is None:
                self._search = TamagoOrderSearch(site, element_timeout_ms=self._timeout)
            self._flagged = self._search.flagged()
            self.search_reads += 1
        return self._flagged

    @property
    def order(self) -> TamagoOrderPage:
        """注文詳細 (open, release, update_flag, correct)."""
        site = self.site()
        if self._order is None:
            from pages.tamago.order_page import TamagoOrderPage

            self._order = TamagoOrderPage(site, element_timeout_ms=self._timeout)
        return self._order

    def view(self, order_id: str, *, fresh: bool = False) -> TamagoOrderView:
        """注文詳細 of ``order_id``: the page read last when it is this order's (the next step of the
        same item), else opened now (OrderVanished when たまご no longer has it)."""
        cached = self._view
        if not fresh and cached is not None and cached.order_id == order_id:
            self.site()
            return cached
        self._view = None
        view = self.order.open(order_id)
        self._view = view
        return view

    def remember(self, view: TamagoOrderView | None) -> None:
        """The order page as an action left it (None: forget it)."""
        self._view = view

    @property
    def customers(self) -> TamagoCustomerSearch:
        """顧客検索."""
        site = self.site()
        if self._customers is None:
            from pages.tamago.customer_search import TamagoCustomerSearch

            self._customers = TamagoCustomerSearch(site, element_timeout_ms=self._timeout)
        return self._customers

    def check(self, order: str | None = None) -> list[CheckLine]:
        return check_admin(self, order)

    def new_pass(self) -> None:
        self._flagged = None
        self._view = None

    def reset(self) -> None:
        """After an application error the browser context is new: so are the page objects."""
        self._site = None
        self._search = None
        self._order = None
        self._customers = None
        self._flagged = None
        self._view = None

    def metrics(self) -> dict[str, int]:
        return {"tamago_search_reads": self.search_reads}


SEARCH_ROWS = ("next_page", "row", "row_order_id", "row_placed_at", "row_customer", "row_payment", "row_status",
               "row_flagged", "row_reason", "row_ship_date", "row_subscription")
"""注文検索 keys shown only with results, or only when there is a next page."""


def check_admin(admin: TamagoAdmin, order: str | None = None) -> list[CheckLine]:
    """`kuroko check`: sign in, 注文検索 「要対応のみ」 recognised and read (every page), its selectors
    resolve; with ``order`` (a たまご order id) its 注文詳細 is read too. Nothing is clicked but the
    search itself (a read)."""

    def search() -> str:
        admin.new_pass()
        flagged = admin.flagged()
        keys = admin.site().check_keys("search", optional=SEARCH_ROWS)
        if not keys.ok:
            raise PageChanged(keys.describe())
        return f"signed in; 注文検索 recognised, {len(flagged)} orders flagged 要対応; {keys.describe()}"

    lines = [checked(SITE, "要対応 search", search)]

    def detail() -> str:
        if order is None or not order.isdigit():  # --order names another system's order (a Rakuten number)
            return "not checked: give --order ID (a たまご order id, digits) to read its 注文詳細"
        view = admin.view(order, fresh=True)
        return f"order {view.order_id} read ({view.status}, 要対応 {'yes' if view.flagged else 'no'}; nothing clicked)"

    if lines[0].ok:
        lines.append(checked(SITE, "order page", detail))
    return lines


TAMAGO = Connection("tamago", TamagoAdmin, sites=(SITE,))
