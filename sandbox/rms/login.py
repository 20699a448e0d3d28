"""The sandbox RMS's sign-in, as the real one: two stages, notices, and the pages that block.

1. ``/login``           R-Login: R-Login ID + パスワード → 「次へ」
2. ``/login/member``    楽天会員ログイン: ユーザID + パスワード → 「ログイン」
3. ``/login/notice``    one or more お知らせ, each acknowledged (「確認しました」, then 「次へ」)
   → the page asked for (``next``), with a session.

Pages that stop a sign-in until a person acts (admin knobs, ``POST /admin/rms/login``):

- ``/login/password-change``  パスワード変更 — the R-Login (after stage 1) or 楽天会員 (after stage 2)
  password has expired
- ``/login/verify``           認証コードの入力 — a confirmation code for a new machine (after stage 2)
- ``/login/locked``           アカウントロック — after ``lock_after`` refused submissions in a row, or at
  once with ``{"locked": true}``; every later submission lands here, right or wrong

Every submission of credentials is counted per stage, and every full login (the session opened
after the last notice): ``GET /admin/rms/logins``. The state lives beside the world it belongs to,
so a reset of the world starts it afresh.
"""

from __future__ import annotations

import secrets
import weakref
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from sandbox.world import World

STAGES = ("rlogin", "member")
Stage = Literal["rlogin", "member"]

NOTICES = [
    ("【重要】R-Loginのセキュリティ強化について",
     "不正ログイン対策として、R-Loginのパスワードの有効期限を90日に変更しました。期限が近づいたパスワードは早めに変更してください。"),
    ("年末年始の配送に関するお知らせ",
     "12月29日から1月3日までは、一部の配送会社で集荷・配達に遅れが生じる見込みです。発送日の設定にご注意ください。"),
    ("RMSメンテナンスのお知らせ",
     "12月10日（木）2:00〜5:00の間、受注・問合せ・決済管理がご利用いただけません。"),
]
"""The notices shown after stage 2, in turn (repeated when more are asked for)."""


class LoginKnobs(BaseModel):
    """``POST /admin/rms/login`` sets any of these (the others keep their value)."""

    notices: int = Field(1, ge=0, le=20, description="お知らせ pages to acknowledge after stage 2")
    password_expired: Stage | None = Field(
        None, description="'rlogin' or 'member': that stage's password has expired (パスワード変更 page)")
    confirmation_code: bool = Field(False, description="a 認証コード page after stage 2")
    lock_after: int = Field(5, ge=1, description="refused submissions in a row that lock the account")
    locked: bool = Field(False, description="true: locked now; false: unlocked (and the failures forgotten)")


@dataclass
class LoginLedger:
    knobs: LoginKnobs = field(default_factory=lambda: LoginKnobs.model_validate({}))
    submissions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    """Every POST of credentials, per stage, right or wrong."""
    refused: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    failures_in_a_row: int = 0
    full_logins: int = 0
    blocked: dict[str, int] = field(default_factory=lambda: {"password_change": 0, "verify": 0, "locked": 0})
    """How often each blocking page was shown."""
    blocking_page_posts: int = 0
    """Anything typed into a blocking page and sent (a robot must never)."""

    def counts(self) -> dict[str, Any]:
        data = asdict(self)
        data["knobs"] = self.knobs.model_dump()
        return data


_LEDGERS: weakref.WeakKeyDictionary[World, LoginLedger] = weakref.WeakKeyDictionary()


def ledger(world: World) -> LoginLedger:
    found = _LEDGERS.get(world)
    if found is None:
        found = _LEDGERS[world] = LoginLedger()
    return found


@dataclass
class LoginFlow:
    """A sign-in under way (between stage 1 and the session), keyed by its own cookie."""

    world: World
    stage: Literal["member", "notice", "blocked"]
    next: str
    user: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    notices: int = 0
    acknowledged: int = 0
    blocked_by: str | None = None
    """password_change | verify | locked, when the flow stopped on a blocking page."""
    expired_stage: Stage | None = None


class LoginFlows:
    def __init__(self) -> None:
        self.by_token: dict[str, LoginFlow] = {}

    def start(self, flow: LoginFlow) -> str:
        token = secrets.token_urlsafe(24)
        self.by_token[token] = flow
        return token

    def get(self, token: str | None, world: World) -> LoginFlow | None:
        flow = self.by_token.get(token or "")
        if flow is None or flow.world is not world:
            return None
        return flow

    def end(self, token: str | None) -> None:
        self.by_token.pop(token or "", None)


class KnobUpdate(BaseModel):
    """The knobs given; the others keep their value. ``"password_expired": null`` clears that knob."""

    notices: int | None = Field(None, ge=0, le=20)
    password_expired: Stage | None = None
    confirmation_code: bool | None = None
    lock_after: int | None = Field(None, ge=1)
    locked: bool | None = None


def admin_routes(router: APIRouter, world: Any) -> None:
    """``world`` is a callable giving the current World (the admin API swaps it on reset)."""

    @router.get("/admin/rms/login")
    async def login_knobs() -> dict[str, Any]:
        return ledger(world()).knobs.model_dump()

    @router.post("/admin/rms/login")
    async def set_login_knobs(body: KnobUpdate) -> dict[str, Any]:
        book = ledger(world())
        given = body.model_dump(include=body.model_fields_set)
        if "notices" in given and given["notices"] is None:
            raise HTTPException(400, "notices must be a number")
        updated = book.knobs.model_copy(update={k: v for k, v in given.items()
                                                if v is not None or k == "password_expired"})
        book.knobs = LoginKnobs.model_validate(updated.model_dump())
        if given.get("locked") is False:
            book.failures_in_a_row = 0
        return book.knobs.model_dump()

    @router.get("/admin/rms/logins")
    async def logins() -> dict[str, Any]:
        return ledger(world()).counts()
