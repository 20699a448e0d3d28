"""What every たまご page object shares: waiting for elements, submitting a form and waiting for the
page it leads to, logging in again when たまご dropped the session, reading shown values.

An action whose form post bounced to the login page changed nothing (たまご checks the session
first): the page object logs in and does it once more; a second bounce is a SessionExpired.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from playwright.sync_api import Locator, Response
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from kuroko.errors import PageChanged, SessionExpired, SiteUnavailable, UnknownValue
from pages.tamago.site import TamagoSite

JST = ZoneInfo("Asia/Tokyo")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
EMPTY = "－"
"""What たまご shows for a value that is not there."""

T = TypeVar("T")


class LoggedOut(Exception):
    """たまご answered with its login page: the action did not happen."""


class TamagoPage:
    def __init__(self, site: TamagoSite, *, element_timeout_ms: int = 5_000) -> None:
        self.site = site
        self.element_timeout_ms = element_timeout_ms
        """How long an element of a loaded page may take to show (KUROKO_ELEMENT_TIMEOUT_MS)."""

    # --- elements ------------------------------------------------------------------------------
    def _visible(self, name: str, **values: str) -> Locator:
        return self.site.expect_visible(name, timeout_ms=self.element_timeout_ms, **values)

    def _within(self, root: Locator, name: str) -> Locator:
        """An element inside ``root`` (e.g. one of two 要対応設定 forms), once visible."""
        locator = self.site.selectors.locate(root, name).first
        try:
            locator.wait_for(state="visible", timeout=self.element_timeout_ms)
        except PlaywrightTimeout as exc:
            raise self._missing(name) from exc
        return locator

    def _missing(self, name: str) -> PageChanged:
        return PageChanged(
            f"tamago: '{name}' did not appear on {self.site.page.url.split('?')[0]} within "
            f"{self.element_timeout_ms} ms; the page may have changed (selectors/tamago.yaml)"
        )

    # --- acting --------------------------------------------------------------------------------
    def _act(self, attempt: Callable[[], T]) -> T:
        """Run one action; if たまご had dropped the session (so did nothing), log in and run it again."""
        try:
            return attempt()
        except LoggedOut:
            self.site.login()
        try:
            return attempt()
        except LoggedOut as exc:
            raise SessionExpired(
                "tamago: たまご sent the robot to its login page again right after logging in; nothing was "
                "changed. Check the KUROKO_TAMAGO_USER / KUROKO_TAMAGO_PASSWORD settings"
            ) from exc

    def _submit(self, name: str, button: Locator | None = None) -> None:
        """Click a button or link that loads a new page, and wait for it."""
        page = self.site.page
        target = button if button is not None else self._visible(name).first
        try:
            with page.expect_navigation(wait_until="domcontentloaded") as navigation:
                target.click()
        except PlaywrightTimeout as exc:
            raise PageChanged(f"tamago: clicking '{name}' on {page.url.split('?')[0]} led to no new page") from exc
        response: Response | None = navigation.value
        if response is not None and (response.status >= 500 or response.status == 429):
            raise SiteUnavailable(f"tamago: '{name}' was answered with HTTP {response.status}")
        if self.site.is_login_page():
            raise LoggedOut(name)
        self._landed()

    def _landed(self) -> None:
        """Called on the page a click led to (a page object checks here that its subject still exists)."""

    def _expect_result(self, success: str, error: str, action: str, subject: str) -> None:
        """たまご's success message, or its error message as a clear error."""
        refused = self.site.el(error)
        if refused.count():
            message = " ".join(t.strip() for t in refused.all_inner_texts())
            raise UnknownValue(f"tamago: たまご refused {action} on {subject}: {message}")
        self._visible(success)

    # --- reading values ------------------------------------------------------------------------
    def _one(self, name: str, texts: list[str]) -> str:
        if not texts:
            raise self._missing(name)
        return texts[0]

    @staticmethod
    def _optional(texts: list[str]) -> str | None:
        """A value that may be absent, or shown as 「－」."""
        if not texts or texts[0] in ("", EMPTY):
            return None
        return texts[0]

    @staticmethod
    def _int(text: str, name: str) -> int:
        digits = re.sub(r"[,円\s]", "", text)
        if not digits.isdigit():
            raise PageChanged(f"tamago: '{name}' shows {text!r}, not a number")
        return int(digits)

    @staticmethod
    def _date(text: str, name: str) -> date:
        try:
            return date.fromisoformat(text.strip())
        except ValueError:
            raise PageChanged(f"tamago: '{name}' shows {text!r}, not a date like 2026-11-20") from None

    @staticmethod
    def _time(text: str, name: str) -> datetime:
        try:
            return datetime.strptime(text.strip(), TIME_FORMAT).replace(tzinfo=JST)
        except ValueError:
            raise PageChanged(f"tamago: '{name}' shows {text!r}, not a time like 2026-11-20 09:00:00") from None
