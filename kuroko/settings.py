"""Kuroko's configuration: one model, read from ``KUROKO_*`` environment variables and ``.env``.

Secrets are ``SecretStr``: they print as ``**********`` and reach a client only through
``get_secret_value()`` at the point of use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class KurokoSettings(BaseSettings):
    """Base of every settings model: the engine's (``Settings``) and each site's, service's and
    procedure's own, all read from ``KUROKO_*`` variables and ``.env``. Every subclass is
    remembered, so that ``secret_values()`` can redact the secrets of all of them."""

    model_config = SettingsConfigDict(
        env_prefix="KUROKO_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        _models.append(cls)


_models: list[type[KurokoSettings]] = []
_loaded: dict[type[KurokoSettings], KurokoSettings] = {}
S = TypeVar("S", bound=KurokoSettings)


def load(model: type[S]) -> S:
    """The settings of ``model``, read once per process (``reload_settings()`` reads them again)."""
    if model not in _loaded:
        _loaded[model] = model()
    return _loaded[model]  # type: ignore[return-value]


def reload_settings() -> None:
    """Forget every settings model read so far (tests change the environment between robots)."""
    _loaded.clear()


def secret_values() -> list[str]:
    """Every configured secret of every settings model known to this process, for redaction."""
    values: list[str] = []
    for model in _models:
        settings = load(model)
        for name in model.model_fields:
            value = getattr(settings, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                values.append(value.get_secret_value())
    return values


class Settings(KurokoSettings):
    """The engine's own settings."""

    # --- where the systems are -------------------------------------------------------------
    boss_url: str = "http://127.0.0.1:8101"
    rms_url: str = "http://127.0.0.1:8102"
    zendesk_url: str = "http://127.0.0.1:8103"
    spapi_url: str = "http://127.0.0.1:8104"
    lwa_url: str = "http://127.0.0.1:8104"
    """Login with Amazon token endpoint's origin (the sandbox serves it beside SP-API)."""
    clock_url: str | None = "http://127.0.0.1:8100/admin/clock"
    """Where the shared clock is read. Unset (empty) means the machine's own clock."""

    # --- credentials -------------------------------------------------------------------------
    boss_user: str = "boss-demo"
    boss_password: SecretStr = SecretStr("boss-demo-password")
    rms_user: str = "rms-demo"
    rms_password: SecretStr = SecretStr("rms-demo-password")
    zendesk_email: str = "robot@kuroko.example"
    zendesk_token: SecretStr = SecretStr("zendesk-demo-token")
    lwa_client_id: str = "amzn1.application-oa2-client.kuroko-demo"
    lwa_client_secret: SecretStr = SecretStr("lwa-demo-client-secret")
    spapi_refresh_token: SecretStr = SecretStr("Atzr|kuroko-demo-refresh-token")
    marketplace_id: str = "A1VC38T7YXB528"
    """Amazon.co.jp."""

    # --- the browser -------------------------------------------------------------------------
    browser_path: Path = Path("/usr/bin/chromium")
    headless: bool = True
    slow_mo_ms: int = 0
    navigation_timeout_ms: int = 15_000
    element_timeout_ms: int = 5_000
    """How long an element of a loaded BOSS or RMS page may take to appear; after that the page
    counts as changed (PageChanged: screenshot, trace, a person)."""

    # --- where things are kept ---------------------------------------------------------------
    data_dir: Path = Path("data")
    ledger_url: str | None = None
    """Any SQLAlchemy URL; default is a SQLite file in the data directory."""
    timezone: str = "Asia/Tokyo"

    # --- business rules ----------------------------------------------------------------------
    confirmation_wait_minutes: int = 30
    """How long an order may sit in `Confirmation to be` before it means 'no RSL stock'."""
    boss_missing_wait_minutes: int = 120
    """How long an order may be missing from the BOSS list before a person is asked."""
    slow_delivery_days: int = 2
    """MCF deliveries promised later than this many days @mention the Japan-office staff member."""
    japan_office_staff: str = "Japan Office"
    """Name of the Zendesk user @mentioned on slow deliveries."""
    hold_tag: str = "kuroko_hold"
    shipping_mail_rule: str = "JM"
    """`JM`, `JS`, or `by-carrier` (Japan Post carriers get JM, the others JS)."""
    carrier_map: dict[str, str] = Field(
        default_factory=lambda: {
            "JAPAN_POST": "日本郵便",
            "YAMATO": "ヤマト運輸",
            "SAGAWA": "佐川急便",
            "AMZL_JP": "その他",
        }
    )
    """Amazon carrier code → RMS shipping company (RMS offers a fixed list)."""
    mcf_shipping_speed: str = "Standard"
    rms_order_path: str = "/rms/order/{order_number}"
    """Where RMS shows an order, for tickets whose Purchase History link is missing."""
    esim_markers: list[str] = Field(default_factory=lambda: ["eSIM", "ESIM-"])
    """An item whose name or SKU contains one of these is an eSIM."""
    physical_sim_markers: list[str] = Field(default_factory=lambda: ["物理SIM", "SIM-"])
    """An item is a physical SIM only when it matches one of these and no eSIM marker."""
    tracking_check_hours: int = 2
    completion_wait_days: int = 3
    """Days after the shipping fields were set before a not-complete RMS order goes to a person."""
    max_attempts: int = 4
    retry_base_seconds: float = 60.0
    max_consecutive_errors: int = 5

    # --- testing only ------------------------------------------------------------------------
    crash_after_actions: int | None = None
    """Crash-safety test hook (tests/test_crash_safety.py): the process SIGKILLs itself right after
    its N-th side effect, before the ledger records it. Never set in production."""

    def ledger_database_url(self) -> str:
        if self.ledger_url:
            return self.ledger_url
        return f"sqlite:///{(self.data_dir / 'ledger.sqlite').resolve()}"

    def secret_values(self) -> list[str]:
        """Every configured secret, for redaction."""
        values = [
            v.get_secret_value()
            for v in (
                self.boss_password,
                self.rms_password,
                self.zendesk_token,
                self.lwa_client_secret,
                self.spapi_refresh_token,
            )
        ]
        return [v for v in values if v]


def get_settings() -> Settings:
    return load(Settings)
