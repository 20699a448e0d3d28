"""BOSS, the company's own back office, as one browser site."""

from __future__ import annotations

from playwright.sync_api import TimeoutError as PlaywrightTimeout

from kuroko.errors import LoginRefused
from pages.base import Site


class BossSite(Site):
    name = "boss"
    setting = "boss"

    def login(self) -> None:
        """Log in; a refused login says what the page said (never the password)."""
        try:
            super().login()
        except LoginRefused as exc:
            said = self.page_message()
            if not said:
                raise
            raise LoginRefused(
                f"boss: login refused, the page says {said!r}; check the KUROKO_BOSS_USER and "
                "KUROKO_BOSS_PASSWORD settings"
            ) from exc

    def page_message(self) -> str | None:
        """The alert the login page shows, if any."""
        alert = self.el("login.error")
        try:
            if alert.count() == 0:
                return None
            return alert.first.inner_text(timeout=2_000).strip() or None
        except PlaywrightTimeout:
            return None
