"""Kuroko's configuration: the engine's settings model and the base of every other one (a site's,
a service's, a procedure's), all read from ``KUROKO_*`` environment variables and ``.env``.

Secrets are ``SecretStr``: they print as ``**********`` and reach a client only through
``get_secret_value()`` at the point of use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class KurokoSettings(BaseSettings):
    """Base of every settings model: the engine's (``Settings``) and each site's, service's and
    procedure's own, all read from ``KUROKO_*`` variables and ``.env``. Every subclass is
    remembered, so that ``secret_values()`` can redact the secrets of all of them."""

    model_config = SettingsConfigDict(
        env_prefix="KUROKO_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    def own_secrets(self) -> list[str]:
        """The non-empty secrets of this settings object."""
        values = (getattr(self, name) for name in type(self).model_fields)
        return [v.get_secret_value() for v in values if isinstance(v, SecretStr) and v.get_secret_value()]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        _models.append(cls)
        _generation[0] += 1


_models: list[type[KurokoSettings]] = []
_loaded: dict[type[KurokoSettings], KurokoSettings] = {}
_generation = [0]
S = TypeVar("S", bound=KurokoSettings)


def load(model: type[S]) -> S:
    """The settings of ``model``, read once per process (``reload_settings()`` reads them again)."""
    if model not in _loaded:
        _loaded[model] = model()
        _generation[0] += 1
    return _loaded[model]  # type: ignore[return-value]


def generation() -> int:
    """Changes whenever a settings model is defined, read or forgotten (logs re-read secrets then)."""
    return _generation[0]


def reload_settings() -> None:
    """Forget every settings model read so far (tests change the environment between robots)."""
    _loaded.clear()
    _generation[0] += 1


def secret_values() -> list[str]:
    """Every configured secret of every settings model known to this process, for redaction."""
    return [secret for model in _models for secret in load(model).own_secrets()]


class Settings(KurokoSettings):
    """The engine's own settings. Each site, service and procedure keeps its own beside it
    (``pages/boss/settings.py``, ``services/helpdesk.py`` ``ZendeskSettings`` …)."""

    clock_url: str | None = "http://127.0.0.1:8100/admin/clock"
    """Where the shared clock is read. Unset (empty) means the machine's own clock."""

    # --- the browser -------------------------------------------------------------------------
    browser_path: Path = Path("/usr/bin/chromium")
    headless_shell_path: Path = Path("/usr/lib/chromium/chromium-headless-shell")
    """Debian's chromium-headless-shell: the same engine without the browser's own UI, used for
    headless runs (about half the memory of a headless full Chromium). Absent: browser_path."""
    headless: bool = True
    page_loads_per_page: int = 300
    """A site's page is replaced by a fresh one (same context: same login) between two work items once
    it has loaded this many documents: Playwright keeps every request of a page's life on both sides
    of its driver until the page closes, which grew the robot by about 13 KiB per page load."""
    page_loads_per_browser: int = 500
    """Between two work items, once the browser has loaded this many documents, it is closed and
    started afresh with its driver (the sites' contexts come back from their saved logins): over a
    long pass Playwright's driver and Chromium's browser and utility processes keep growing even
    with fresh pages. 500 is about a 40-order pass; a restart costs 1–2 s and no RMS login. A
    scheduled pass (`kuroko run`) starts its own browser anyway."""
    trace: Literal["off", "retain-on-failure", "on"] = "off"
    """Playwright traces: none (a failed step keeps its screenshot, the page's HTML and the pages the
    item loaded — what a person needs, at no cost to the steps that succeed), kept for a failed step
    (``retain-on-failure``: every item is traced, which makes browser steps up to a quarter slower), or
    kept for every item (``on``). ``--trace`` on a command overrides it."""
    slow_mo_ms: int = 0
    navigation_timeout_ms: int = 15_000
    element_timeout_ms: int = 5_000
    """How long an element of a loaded back-office page may take to appear; after that the page
    counts as changed (PageChanged: screenshot, trace, a person)."""

    # --- where things are kept ---------------------------------------------------------------
    data_dir: Path = Path("data")
    ledger_url: str | None = None
    """Any SQLAlchemy URL; default is a SQLite file in the data directory."""
    timezone: str = "Asia/Tokyo"

    # --- handing over, retrying ----------------------------------------------------------------
    hold_tag: str = "kuroko_hold"
    """The ticket tag that holds a work item for a person; removing it releases the item."""
    max_attempts: int = 4
    """Default attempts of a step that fails with an application error (a step's RetryPolicy may say otherwise)."""
    retry_base_seconds: float = 60.0
    """Default first retry interval; it doubles each attempt up to ``retry_max_seconds``."""
    retry_max_seconds: float = 3600.0
    max_consecutive_errors: int = 5
    """A pass stops after this many application errors in a row instead of hammering a broken site."""

    # --- several robots ------------------------------------------------------------------------
    lease_seconds: float = 600.0
    """How long a robot holds an item it claimed; renewed between steps."""
    heartbeat_seconds: float = 15.0
    """How often a robot says it is alive while it runs a pass."""
    heartbeat_timeout_seconds: float = 90.0
    """A robot whose heartbeat is older than this (and whose lease ran out) is dead: its items are
    taken over. A dead process on the same machine is seen at once."""

    # --- procedures ----------------------------------------------------------------------------
    extra_procedures: str = ""
    """Procedures to run besides the installed ones (entry points): ``module:attribute``, comma-separated."""

    # --- testing only ------------------------------------------------------------------------
    crash_after_actions: int | None = None
    """Crash-safety test hook (tests/test_crash_safety.py): the process SIGKILLs itself right after
    its N-th side effect, before the ledger records it. Never set in production."""

    def ledger_database_url(self) -> str:
        if self.ledger_url:
            return self.ledger_url
        return f"sqlite:///{(self.data_dir / 'ledger.sqlite').resolve()}"

    def dry_run_ledger_path(self) -> Path:
        """The dry runs' own ledger (``kuroko run/schedule/report --dry-run``), kept across passes."""
        return self.data_dir / "dry-run" / "ledger.sqlite"


def get_settings() -> Settings:
    return load(Settings)
