"""Bカート's admin screens as one site: URL, login form, selectors (selectors/bcart.yaml), and the
shared way of submitting a form and noticing that B-cart dropped the session."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from playwright.sync_api import Locator
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from kuroko.errors import PageChanged, SessionExpired, SiteUnavailable
from pages.base import Site

T = TypeVar("T")


class LoggedOut(Exception):
    """B-cart answered an action with its login page: the action did not happen."""


class BcartSite(Site):
    """``BcartSite(browser.page("bcart"), s.bcart_url, s.bcart_user, s.bcart_password.get_secret_value(),
    on_login=lambda: browser.save_login("bcart"))`` with ``s = load(BcartSettings)``."""

    name = "bcart"
    setting = "bcart"
    login_path = "/login"
    element_timeout_ms = 5_000

    def visible(self, name: str, **values: str) -> Locator:
        return self.expect_visible(name, timeout_ms=self.element_timeout_ms, **values)

    def submit(self, name: str) -> None:
        """Click a button that submits a form and wait for the page it leads to."""
        page = self.page
        button = self.visible(name).first
        try:
            with page.expect_navigation(wait_until="domcontentloaded") as navigation:
                button.click()
        except PlaywrightTimeout as exc:
            raise PageChanged(f"bcart: clicking '{name}' on {page.url.split('?')[0]} led to no new page") from exc
        response = navigation.value
        if response is not None and (response.status >= 500 or response.status == 429):
            raise SiteUnavailable(f"bcart: '{name}' was answered with HTTP {response.status}")
        if self.is_login_page():
            raise LoggedOut(name)

    def act(self, attempt: Callable[[], T], what: str) -> T:
        """Run one action; if B-cart had dropped the session (so did nothing), log in and run it again."""
        try:
            return attempt()
        except LoggedOut:
            self.login()
        try:
            return attempt()
        except LoggedOut as exc:
            raise SessionExpired(f"bcart: B-cart sent the robot to its login page again during {what}, right "
                                 "after logging in; nothing was changed. Check KUROKO_BCART_USER / "
                                 "KUROKO_BCART_PASSWORD") from exc

    def texts(self, name: str) -> list[str]:
        return [t.strip() for t in self.el(name).all_inner_texts()]

    def alert_text(self, name: str) -> str:
        return " ".join(self.texts(name))
