"""Builds Playwright locators from selectors/*.yaml, and logs in to a site when it asks.

A selectors file is screens → keys → one locator spec, role/label/text first, CSS last::

    order_detail:
      delete_button: {role: button, name: Order Deletion, exact: true}
      status: {testid: order-status}
      row: {css: "tr[data-order='{order_number}']"}

Spec values may hold ``{placeholders}`` filled from keyword arguments. Page objects ask for
``"screen.key"``; every key asked for is remembered so a test can check the files cover them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml
from playwright.sync_api import Locator, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from kuroko.errors import LoginRefused, PageChanged, SessionExpired, SiteUnavailable

SELECTORS_DIR = Path(__file__).resolve().parent.parent / "selectors"

_LOCATOR_KINDS = ("role", "label", "text", "placeholder", "testid", "css")

# Reads, in one round trip, the text of every element carrying one of the given test ids, and per
# row of a table the text of the cells inside it carrying the given test ids.
_READ_TEST_IDS = """
({attribute, fields, tables}) => {
  const all = (scope, id) => Array.from(scope.querySelectorAll(`[${attribute}="${CSS.escape(id)}"]`));
  const text = (element) => element.innerText.trim();
  const out = {fields: {}, tables: {}};
  for (const [key, id] of Object.entries(fields)) out.fields[key] = all(document, id).map(text);
  for (const [key, table] of Object.entries(tables)) {
    out.tables[key] = all(document, table.row).map((row) => Object.fromEntries(
      Object.entries(table.cells).map(([cell, id]) => [cell, all(row, id).map(text)])));
  }
  return out;
}
"""


@dataclass
class Selectors:
    site: str
    specs: dict[str, dict[str, dict[str, Any]]]
    used: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, site: str, directory: Path = SELECTORS_DIR) -> Selectors:
        path = directory / f"{site}.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return cls(site, data)

    def test_id(self, name: str) -> str:
        """The test id a key names; for keys read inside the page's own script (one round trip)."""
        spec = self.spec(name)
        self.used.add(name)
        if "testid" not in spec:
            raise PageChanged(f"selectors/{self.site}.yaml '{name}' must be a testid (it is read inside a script)")
        return str(spec["testid"])

    def keys(self) -> list[str]:
        return [f"{screen}.{key}" for screen, keys in self.specs.items() for key in keys]

    def spec(self, name: str) -> dict[str, Any]:
        screen, _, key = name.partition(".")
        try:
            return self.specs[screen][key]
        except KeyError:
            raise PageChanged(
                f"selectors/{self.site}.yaml has no '{name}'. Add it (see pages/base.py for the format)."
            ) from None

    def locate(self, root: Page | Locator, name: str, **values: str) -> Locator:
        self.used.add(name)
        spec = {k: (v.format(**values) if isinstance(v, str) else v) for k, v in self.spec(name).items()}
        kind = next((k for k in _LOCATOR_KINDS if k in spec), None)
        exact = bool(spec["exact"]) if "exact" in spec else None
        if kind == "role":
            role: Any = spec["role"]  # an ARIA role name from the YAML; Playwright checks it
            locator = root.get_by_role(role, name=spec.get("name"), exact=exact)
        elif kind == "label":
            locator = root.get_by_label(spec["label"], exact=exact)
        elif kind == "text":
            locator = root.get_by_text(spec["text"], exact=exact)
        elif kind == "placeholder":
            locator = root.get_by_placeholder(spec["placeholder"], exact=exact)
        elif kind == "testid":
            locator = root.get_by_test_id(spec["testid"])
        elif kind == "css":
            locator = root.locator(spec["css"])
        else:
            raise PageChanged(f"selectors/{self.site}.yaml '{name}' names no locator kind ({_LOCATOR_KINDS})")
        if "has_text" in spec:
            locator = locator.filter(has_text=spec["has_text"])
        if "nth" in spec:
            locator = locator.nth(int(spec["nth"]))
        return locator


@dataclass
class ScreenCheck:
    """Which keys of one screen resolve on the page in hand (``Site.check_keys``)."""

    site: str
    screen: str
    where: str
    resolved: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing

    def describe(self) -> str:
        if self.missing:
            return (f"{', '.join(self.missing)} not found on {self.where}: the page has changed (a renamed button or "
                    f"label?); update selectors/{self.site}.yaml")
        text = f"{len(self.resolved)} keys of '{self.screen}' resolve on {self.where}"
        if self.not_checked:
            text += f"; not checked (not on this page now): {', '.join(self.not_checked)}"
        return text


class Site:
    """One back office in one browser context: knows its URL, its login screen and credentials,
    and logs in again whenever the site sends the robot to its login page."""

    name: ClassVar[str]
    """The selectors file's name: selectors/{name}.yaml."""
    setting: ClassVar[str]
    """The settings' prefix for this site's URL and credentials (KUROKO_{SETTING}_USER …)."""
    login_path: ClassVar[str] = "/login"

    def __init__(self, page: Page, base_url: str, user: str, password: str,
                 selectors: Selectors | None = None, on_login: Any = None) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.user = user
        self._password = password
        self.selectors = selectors or Selectors.load(self.name)
        self._on_login = on_login
        """Called after a fresh login (the browser saves the session then)."""

    def el(self, name: str, **values: str) -> Locator:
        return self.selectors.locate(self.page, name, **values)

    def read_test_ids(self, fields: dict[str, str], tables: dict[str, tuple[str, dict[str, str]]] | None = None,
                      ) -> tuple[dict[str, list[str]], dict[str, list[dict[str, list[str]]]]]:
        """The texts of several elements in one round trip to the browser (a page object reading a
        whole page field by field makes dozens, which tracing makes costly).

        ``fields`` maps a result key to a selector key; ``tables`` maps a result key to (row key,
        {cell: selector key}). Every selector key must be a testid. Each field gives the texts of
        all its matches (usually one), each table one dict per row, cell → texts."""
        arg = {
            "attribute": "data-testid",
            "fields": {key: self.selectors.test_id(name) for key, name in fields.items()},
            "tables": {key: {"row": self.selectors.test_id(row),
                             "cells": {cell: self.selectors.test_id(name) for cell, name in cells.items()}}
                       for key, (row, cells) in (tables or {}).items()},
        }
        found: dict[str, Any] = self.page.evaluate(_READ_TEST_IDS, arg)
        return found["fields"], found["tables"]

    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.base_url}{path}"

    def is_login_page(self) -> bool:
        return self.page.url.split("?")[0].endswith(self.login_path)

    def goto(self, path: str) -> None:
        """Open ``path``, logging in first if the site asks; errors say which site and page."""
        target = self.url(path)
        for attempt in range(2):
            try:
                response = self.page.goto(target, wait_until="domcontentloaded")
            except PlaywrightTimeout as exc:
                raise SiteUnavailable(f"{self.name}: {path} did not load in time") from exc
            except Exception as exc:  # playwright.Error: connection refused, aborted, …
                raise SiteUnavailable(f"{self.name}: {path} could not be opened: {exc}") from exc
            if response is not None and (response.status >= 500 or response.status == 429):
                raise SiteUnavailable(f"{self.name}: {path} answered HTTP {response.status}")
            if not self.is_login_page():
                return
            if attempt == 1:
                raise SessionExpired(f"{self.name}: still on the login page after logging in; check the "
                                     f"KUROKO_{self.setting.upper()}_USER / _PASSWORD settings")
            self.login()
            if self.page.url == target:  # the login went on to the page asked for (``?next=``): loaded
                return
        raise AssertionError("unreachable")

    def login(self) -> None:
        """Fill the login form of this site (subclasses name the fields in their selectors). A refused
        login is a ``LoginRefused`` (a ConfigurationError): the run stops, nothing is tried again."""
        self.el("login.user").fill(self.user)
        self.el("login.password").fill(self._password)
        self.el("login.submit").click()
        self.page.wait_for_load_state("domcontentloaded")
        if self.is_login_page():
            raise LoginRefused(f"{self.name}: login refused; check the KUROKO_{self.setting.upper()}_USER "
                                 f"and KUROKO_{self.setting.upper()}_PASSWORD settings")
        if self._on_login is not None:
            self._on_login()

    def check_keys(self, screen: str, *, optional: Iterable[str] = ()) -> ScreenCheck:
        """Read-only: which keys of ``screen`` (selectors/{name}.yaml) match something on the page in
        hand. Keys in ``optional`` (shown only in some states: messages, alerts, rows) are reported as
        not checked when absent; keys with ``{placeholders}`` are not checked. Nothing is clicked."""
        maybe = set(optional)
        where = self.page.url.split("?")[0].removeprefix(self.base_url) or "/"
        result = ScreenCheck(self.name, screen, where)
        for key in self.selectors.specs.get(screen) or {}:
            name = f"{screen}.{key}"
            if any("{" in str(v) for v in self.selectors.spec(name).values()):
                result.not_checked.append(key)
                continue
            try:
                found = self.el(name).count() > 0
            except Exception:  # a spec Playwright cannot use counts as not found
                found = False
            if found:
                result.resolved.append(key)
            elif key in maybe:
                result.not_checked.append(key)
            else:
                result.missing.append(f"{name}")
        return result

    def expect_visible(self, name: str, timeout_ms: int = 10_000, **values: str) -> Locator:
        """The element, once visible; a clear PageChanged when it never appears."""
        locator = self.el(name, **values)
        try:
            locator.first.wait_for(state="visible", timeout=timeout_ms)
        except PlaywrightTimeout as exc:
            raise PageChanged(
                f"{self.name}: '{name}' did not appear on {self.page.url.split('?')[0]} within "
                f"{timeout_ms} ms; the page may have changed (selectors/{self.name}.yaml)"
            ) from exc
        return locator
