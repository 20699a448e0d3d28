"""Where Rakuten RMS is and how the robot signs in."""

from __future__ import annotations

from pydantic import SecretStr

from kuroko.settings import KurokoSettings


class RmsSettings(KurokoSettings):
    rms_url: str = "http://127.0.0.1:8102"
    rms_user: str = "rms-demo"
    """The R-Login ID."""
    rms_password: SecretStr = SecretStr("rms-demo-password")
    rms_order_path: str = "/rms/order/{order_number}"
    """Where RMS shows an order, for tickets whose Purchase History link is missing."""
