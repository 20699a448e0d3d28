"""The browser as the robot runs it (kuroko/browser.py): which Chromium a run starts, and a site's
page replaced between items after many page loads so that memory stays flat over a long day.

Not in test_boss.py: its module keeps a browser of its own open, and Playwright's sync API allows
one per thread."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Sandbox


def test_headless_runs_use_the_headless_shell_and_a_visible_browser_the_full_chromium(tmp_path: Path) -> None:
    from kuroko.browser import Browser
    from kuroko.settings import Settings

    shell = tmp_path / "chromium-headless-shell"
    shell.touch()
    settings = Settings(data_dir=tmp_path, headless_shell_path=shell)
    assert Browser(settings, headless=True).executable() == shell
    assert Browser(settings, headless=False).executable() == settings.browser_path
    without = Settings(data_dir=tmp_path, headless_shell_path=tmp_path / "not-installed")
    assert Browser(without, headless=True).executable() == without.browser_path


def test_a_page_that_loaded_many_documents_is_replaced_between_items_and_boss_still_works(
        sandbox: Sandbox, settings_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory stays flat over a long day: a site's page is swapped for a fresh one (same login)
    between two items once it loaded KUROKO_PAGE_LOADS_PER_PAGE documents."""
    signed_in = boss_signed_in_with_an_order(sandbox, monkeypatch, "KUROKO_PAGE_LOADS_PER_PAGE")
    with signed_in as (connections, boss, number):
        first = connections.browser.page("boss")
        connections.begin_item()
        assert first.is_closed(), "the page that loaded four documents was replaced"
        loads = connections.page_loads("boss")
        view = boss.detail.open(number)
        assert view.order_number == number and connections.page_loads("boss") == loads + 1, "no second login"
        fresh = connections.browser.page("boss")
        assert fresh is not first
        connections.begin_item()
        assert not fresh.is_closed(), "a page with fewer loads is kept"


def test_a_browser_that_loaded_many_documents_is_started_afresh_between_items_with_its_logins(
        sandbox: Sandbox, settings_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over a long pass the driver and Chromium's own processes grow even with fresh pages: after
    KUROKO_PAGE_LOADS_PER_BROWSER documents the browser and its driver are started again between two
    items, and the sites come back signed in from their saved logins."""
    signed_in = boss_signed_in_with_an_order(sandbox, monkeypatch, "KUROKO_PAGE_LOADS_PER_BROWSER")
    with signed_in as (connections, boss, number):
        worn = connections.browser._browser
        assert worn is not None and worn.is_connected()
        connections.begin_item()
        assert not worn.is_connected(), "the browser that loaded four documents was closed"
        loads = connections.page_loads("boss")
        view = boss.detail.open(number)
        assert view.order_number == number
        assert connections.page_loads("boss") == loads + 1, "signed in from the saved login: no second login"
        fresh = connections.browser._browser
        assert fresh is not None and fresh is not worn and fresh.is_connected()
        connections.begin_item()
        assert fresh.is_connected(), "a browser that loaded fewer documents since its start is kept"


@contextlib.contextmanager
def boss_signed_in_with_an_order(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch,
                                 limit: str) -> Iterator[tuple[Any, Any, str]]:
    """Connections whose ``limit`` setting is 4 page loads, BOSS signed in and its list read (four
    loads or more) with a new order on it: (connections, BOSS, the order number)."""
    from kuroko.connections import Connections
    from kuroko.settings import get_settings, reload_settings
    from pages.boss.connection import BOSS

    monkeypatch.setenv(limit, "4")
    reload_settings()
    number = sandbox.place_order(["SIM-DATA-30D-20GB"])["order_number"]
    connections = Connections(get_settings())
    try:
        boss = connections.use(BOSS)
        assert number in boss.listing().orders
        yield connections, boss, number
    finally:
        connections.close()
