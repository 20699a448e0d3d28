"""Where BOSS is and how the robot signs in."""

from __future__ import annotations

from pydantic import SecretStr

from kuroko.settings import KurokoSettings


class BossSettings(KurokoSettings):
    boss_url: str = "http://127.0.0.1:8101"
    boss_user: str = "boss-demo"
    boss_password: SecretStr = SecretStr("boss-demo-password")
