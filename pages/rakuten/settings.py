"""Where Rakuten RMS is and how the robot signs in (two stages: R-Login, then a 楽天会員 login)."""

from __future__ import annotations

from pydantic import SecretStr

from kuroko.settings import KurokoSettings


class RmsSettings(KurokoSettings):
    rms_url: str = "http://127.0.0.1:8102"
    rms_user: str = "rms-demo"
    """The R-Login ID (stage 1)."""
    rms_password: SecretStr = SecretStr("rms-demo-password")
    """The R-Login password (stage 1)."""
    rms_member_user: str = "rakuten-member-demo"
    """The 楽天会員 user ID of the person the robot signs in as (stage 2)."""
    rms_member_password: SecretStr = SecretStr("rakuten-member-demo-password")
    """That 楽天会員's password (stage 2)."""
    rms_order_path: str = "/rms/order/{order_number}"
    """Where RMS shows an order, for tickets whose Purchase History link is missing."""
