"""Rakuten RMS as one site: its URL, its R-Login form, its selectors (selectors/rakuten.yaml)."""

from __future__ import annotations

from pages.base import Site


class RmsSite(Site):
    """``RmsSite(browser.page("rms"), settings.rms_url, settings.rms_user,
    settings.rms_password.get_secret_value(), on_login=lambda: browser.save_login("rms"))``."""

    name = "rakuten"
    setting = "rms"
    login_path = "/login"
