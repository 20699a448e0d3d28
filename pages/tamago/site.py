"""たまごリピート's admin as one site: its URL, its login form, its selectors (selectors/tamago.yaml)."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

from pages.base import Site
from pages.tamago.settings import TamagoSettings


class TamagoSite(Site):
    """``TamagoSite.from_settings(browser.page("tamago"), load(TamagoSettings),
    on_login=lambda: browser.save_login("tamago"))``."""

    name = "tamago"
    setting = "tamago"
    login_path = "/login"

    @classmethod
    def from_settings(cls, page: Page, settings: TamagoSettings, on_login: Any = None) -> TamagoSite:
        return cls(page, settings.tamago_url, settings.tamago_user, settings.tamago_password.get_secret_value(),
                   on_login=on_login)
