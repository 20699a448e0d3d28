"""The desk console's settings (``KUROKO_CONSOLE_*``), and the helpdesk address it links to."""

from __future__ import annotations

from pydantic import SecretStr

from kuroko.settings import KurokoSettings, load


class ConsoleSettings(KurokoSettings):
    console_allow_remote: bool = False
    """`kuroko console --host` anything but 127.0.0.1 is refused unless this is true."""
    console_secret_key: SecretStr | None = None
    """Signs the session cookies. Unset: a random key kept in ``{data_dir}/console.key`` (mode 0600)."""
    console_max_failed_logins: int = 5
    """Wrong passwords in a row before a login is locked."""
    console_lock_minutes: int = 15
    """How long a locked login stays locked."""
    console_session_hours: int = 12
    """How long a session lasts after logging in."""
    console_refresh_seconds: float = 3.0
    """How often Today and Waiting fetch their contents again."""
    console_schedule: str = ""
    """The schedule TOML whose jobs Today shows (default: schedules/default.toml)."""
    zendesk_url: str = "http://127.0.0.1:8103"
    """KUROKO_ZENDESK_URL: tickets link to ``{url}/agent/tickets/N``."""


def console_settings() -> ConsoleSettings:
    return load(ConsoleSettings)
