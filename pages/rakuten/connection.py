"""Rakuten RMS as one connection of a run: the site signed in once, the order page object, and
the order page last read (reused by the next step on the same order instead of loading it again)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from kuroko.connections import CheckLine, Connection, Connections, checked
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

    def check(self, order: str | None = None) -> list[CheckLine]:
        """`kuroko check`: both sign-in stages and the notices, the landing page (受注一覧) recognised,
        and with ``order`` the order page read and its selectors resolved. Nothing is clicked but
        the sign-in buttons; no form of an order is opened."""
        from kuroko.errors import PageChanged

        site = self.site()

        def signed_in() -> str:
            site.goto("/rms/order")
            site.expect_visible("order_list.heading")
            return (f"signed in through R-Login ({site.user}) and the 楽天会員 login ({site.member_user}), "
                    "notices acknowledged")

        lines = [checked(SITE, "login", signed_in)]
        if not lines[0].ok:
            return lines

        def landing() -> str:
            keys = site.check_keys("order_list")
            if not keys.ok:
                raise PageChanged(keys.describe())
            return f"landing page 受注一覧 recognised; {keys.describe()}"

        lines.append(checked(SITE, "landing page", landing))

        def order_page() -> str:
            if order is None:
                return "not checked: give --order NUMBER (an RMS order) to check the order page's selectors"
            view = self.page.open(self.order_url(order))
            optional = {"error", "confirmed_message", "mail_sent_message", "shipping_added_message",
                        "shipping_updated_message"}
            if view.status != "注文確認待ち":
                optional.add("confirm_button")
            if not view.mails:
                optional |= {"mail_row", "mail_sent_at", "mail_template", "mail_subject", "mail_id"}
            if not view.shipping_rows:
                optional |= {"shipping_row", "shipping_detail_id", "shipping_row_company", "shipping_row_date",
                             "shipping_row_tracking", "shipping_edit_link"}
            keys = site.check_keys("order", optional=optional)
            if not keys.ok:
                raise PageChanged(keys.describe())
            return f"order {order} read ({view.status}); {keys.describe()} (nothing clicked)"

        lines.append(checked(SITE, "order page", order_page))
        lines.append(CheckLine(SITE, "not checked", True,
                               "mail_template, mail_preview, shipping_edit (reached only on the way to a change), "
                               "password_change, verify, locked (shown only when a person must act), not_found"))
        return lines


def check_link(url: str, allowed_base: str) -> None:
    """Never follow a link outside the configured host."""
    target, allowed = urlsplit(url), urlsplit(allowed_base)
    if (target.scheme, target.netloc) != (allowed.scheme, allowed.netloc):
        raise UnsafeLink(
            f"the link {target.scheme}://{target.netloc}{target.path} is not on the configured RMS "
            f"({allowed.scheme}://{allowed.netloc}); it was not opened"
        )


RMS = Connection("rms", RakutenRms, sites=(SITE,))
