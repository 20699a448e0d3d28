"""Rakuten RMS as one site: its URL, its two-stage sign-in, its selectors (selectors/rakuten.yaml).

RMS signs in in two stages — R-Login ID and パスワード, 「次へ」; then the 楽天会員 ユーザID and
パスワード, 「ログイン」 — and then shows お知らせ pages to acknowledge before the menu. ``login()``
goes through all of it, submitting each pair of credentials once.

Some pages only a person can pass: パスワード変更 (a password expired), 認証コードの入力 (a code for
a new machine), アカウントロック (too many failures). On any of them ``login()`` stops at once with
a ``LoginBlocked`` that says what the person must do: nothing is typed there, and nothing is tried
again (a retry could lock the account).
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from kuroko.errors import LoginBlocked, LoginRefused, PageChanged, SiteUnavailable
from pages.base import Selectors, Site

MAX_NOTICES = 10
"""More お知らせ than this in a row is a page that changed, not a sign-in."""

Screen = Literal["login", "member_login", "notice", "password_change", "verify", "locked", "other"]
SCREENS: tuple[Screen, ...] = ("login", "member_login", "notice", "password_change", "verify", "locked")
"""The sign-in screens, each recognised by its ``<screen>.heading`` selector."""

WHAT_TO_DO = {
    ("password_change", "rlogin"): (
        "RMS asks for a new R-Login password (パスワード変更 right after R-Login): sign in to RMS by hand, "
        "change it, then set KUROKO_RMS_PASSWORD to the new password"),
    ("password_change", "member"): (
        "RMS asks for a new 楽天会員 password (パスワード変更 right after the 楽天会員 login): sign in to RMS by "
        "hand, change it, then set KUROKO_RMS_MEMBER_PASSWORD to the new password"),
    ("verify", "member"): (
        "RMS asks for a confirmation code (認証コードの入力), mailed to the account's registered address: sign "
        "in to RMS by hand on the robot's machine and enter the code, then start the robot again"),
    ("locked", "rlogin"): (
        "RMS has locked the account (アカウントロック): have the 店舗運営責任者 unlock it in RMS (R-Login 管理), "
        "check KUROKO_RMS_USER / KUROKO_RMS_PASSWORD and KUROKO_RMS_MEMBER_USER / KUROKO_RMS_MEMBER_PASSWORD, "
        "then start the robot again"),
}
WHAT_TO_DO[("verify", "rlogin")] = WHAT_TO_DO[("verify", "member")]
WHAT_TO_DO[("locked", "member")] = WHAT_TO_DO[("locked", "rlogin")]


class RmsSite(Site):
    """``RmsSite(browser.page("rakuten"), settings.rms_url, settings.rms_user,
    settings.rms_password.get_secret_value(), on_login=lambda: browser.save_login("rakuten"),
    member_user=settings.rms_member_user, member_password=settings.rms_member_password.get_secret_value())``.

    Without ``member_user``/``member_password`` the 楽天会員 login comes from ``RmsSettings``
    (KUROKO_RMS_MEMBER_USER / KUROKO_RMS_MEMBER_PASSWORD)."""

    name = "rakuten"
    setting = "rms"
    login_path = "/login"

    def __init__(self, page: Page, base_url: str, user: str, password: str,
                 selectors: Selectors | None = None, on_login: Any = None, *,
                 member_user: str | None = None, member_password: str | None = None) -> None:
        super().__init__(page, base_url, user, password, selectors, on_login)
        if member_user is None or member_password is None:
            from kuroko.settings import load
            from pages.rakuten.settings import RmsSettings

            configured = load(RmsSettings)
            member_user = configured.rms_member_user if member_user is None else member_user
            if member_password is None:
                member_password = configured.rms_member_password.get_secret_value()
        self.member_user = member_user
        self._member_password = member_password

    def is_login_page(self) -> bool:
        """Any page of the sign-in: both stages, the notices and the blocking pages."""
        path = urlsplit(self.page.url).path
        return path == self.login_path or path.startswith(self.login_path + "/")

    def login(self) -> None:
        """Both stages and the notices; each pair of credentials submitted once."""
        if self.screen() != "login":
            self._open_login()
        self.expect_visible("login.user").first.fill(self.user)
        self.expect_visible("login.password").first.fill(self._password)
        self._submit("login.submit")
        screen = self.screen()
        if screen == "login":
            raise LoginRefused(f"{self.name}: R-Login refused the login{self._alert('login.error')}; check the "
                                 "KUROKO_RMS_USER and KUROKO_RMS_PASSWORD settings")
        self._stop_if_blocked(screen, "rlogin")
        if screen != "member_login":
            raise self._unexpected("the 楽天会員 login (stage 2) after R-Login")

        self.expect_visible("member_login.user").first.fill(self.member_user)
        self.expect_visible("member_login.password").first.fill(self._member_password)
        self._submit("member_login.submit")
        screen = self.screen()
        if screen == "member_login":
            raise LoginRefused(f"{self.name}: the 楽天会員 login was refused{self._alert('member_login.error')}; "
                                 "check the KUROKO_RMS_MEMBER_USER and KUROKO_RMS_MEMBER_PASSWORD settings")
        self._stop_if_blocked(screen, "member")

        for _ in range(MAX_NOTICES):
            if screen != "notice":
                break
            acknowledge = self.el("notice.acknowledge")
            self._submit("notice.acknowledge" if acknowledge.count() else "notice.next")
            screen = self.screen()
        else:
            raise PageChanged(f"{self.name}: more than {MAX_NOTICES} お知らせ pages after signing in; the sign-in "
                              "may have changed (selectors/rakuten.yaml)")
        self._stop_if_blocked(screen, "member")
        if self.is_login_page():
            raise self._unexpected("the RMS menu after the お知らせ")
        if self._on_login is not None:
            self._on_login()

    def screen(self) -> Screen:
        """Which sign-in screen the page shows ("other" for any page outside the sign-in)."""
        if not self.is_login_page():
            return "other"
        for screen in SCREENS:
            if self.el(f"{screen}.heading").count():
                return screen
        return "other"

    # --- machinery ---------------------------------------------------------------------------
    def _open_login(self) -> None:
        try:
            response = self.page.goto(self.url(self.login_path), wait_until="domcontentloaded")
        except PlaywrightTimeout as exc:
            raise SiteUnavailable(f"{self.name}: {self.login_path} did not load in time") from exc
        except Exception as exc:  # playwright.Error: connection refused, aborted, …
            raise SiteUnavailable(f"{self.name}: {self.login_path} could not be opened: {exc}") from exc
        if response is not None and (response.status >= 500 or response.status == 429):
            raise SiteUnavailable(f"{self.name}: {self.login_path} answered HTTP {response.status}")

    def _submit(self, name: str) -> None:
        """Click a sign-in button once and wait for the page it leads to."""
        button = self.expect_visible(name).first
        try:
            with self.page.expect_navigation(wait_until="domcontentloaded") as navigation:
                button.click()
        except PlaywrightTimeout as exc:
            raise PageChanged(f"{self.name}: clicking '{name}' on {self.page.url.split('?')[0]} led to no new "
                              "page") from exc
        response = navigation.value
        if response is not None and (response.status >= 500 or response.status == 429):
            raise SiteUnavailable(f"{self.name}: '{name}' was answered with HTTP {response.status}")

    def _stop_if_blocked(self, screen: Screen, stage: Literal["rlogin", "member"]) -> None:
        what = WHAT_TO_DO.get((screen, stage))
        if what is not None:
            raise LoginBlocked(f"{self.name}: {what}. The robot submitted the credentials once, typed nothing on "
                               "that page, and will not try again by itself.")

    def _alert(self, name: str) -> str:
        alert = self.el(name)
        texts = [t.strip() for t in alert.all_inner_texts()] if alert.count() else []
        return f" ({' '.join(texts)})" if texts else ""

    def _unexpected(self, expected: str) -> PageChanged:
        return PageChanged(f"{self.name}: expected {expected}, but RMS shows {self.page.url.split('?')[0]}; the "
                           "sign-in may have changed (selectors/rakuten.yaml)")
