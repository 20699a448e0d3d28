"""たまごリピート's own settings: where its admin is and the robot's login (``KUROKO_TAMAGO_*``)."""

from __future__ import annotations

from pydantic import SecretStr

from kuroko.settings import KurokoSettings


class TamagoSettings(KurokoSettings):
    tamago_url: str = "http://127.0.0.1:8105"
    """The たまご admin's origin (the sandbox's default port)."""
    tamago_user: str = "tamago-demo"
    tamago_password: SecretStr = SecretStr("tamago-demo-password")
