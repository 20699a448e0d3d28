"""The console's users (``desk_users`` in the ledger): names, roles, argon2 password hashes
(pwdlib), failed attempts and locks. Each function is one short transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pwdlib import PasswordHash
from sqlalchemy import select

from kuroko.errors import KurokoError
from kuroko.ledger import DeskUser, Ledger, wall_now

ROLES = ("viewer", "operator")
_hasher = PasswordHash.recommended()
_DUMMY_HASH = _hasher.hash("kuroko-no-such-user")


@dataclass(frozen=True)
class User:
    name: str
    role: str
    failed_attempts: int = 0
    locked_until: datetime | None = None

    @property
    def can_act(self) -> bool:
        return self.role == "operator"


def _user(row: DeskUser) -> User:
    return User(row.name, row.role, row.failed_attempts, row.locked_until)


def add_user(ledger: Ledger, name: str, role: str, password: str) -> User:
    name = name.strip()
    if not name or len(name) > 64 or any(c.isspace() for c in name):
        raise KurokoError("a user name is one word of at most 64 characters")
    if role not in ROLES:
        raise KurokoError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if len(password) < 8:
        raise KurokoError("the password must be at least 8 characters long")
    with ledger.session() as s:
        if s.scalar(select(DeskUser).where(DeskUser.name == name)) is not None:
            raise KurokoError(f"user {name!r} already exists (`kuroko users remove {name}` first)")
        row = DeskUser(name=name, role=role, password_hash=_hasher.hash(password), failed_attempts=0,
                       created_at=wall_now())
        s.add(row)
        return _user(row)


def remove_user(ledger: Ledger, name: str) -> None:
    with ledger.session() as s:
        row = s.scalar(select(DeskUser).where(DeskUser.name == name))
        if row is None:
            raise KurokoError(f"no user {name!r}")
        s.delete(row)


def list_users(ledger: Ledger) -> list[User]:
    with ledger.session() as s:
        return [_user(r) for r in s.scalars(select(DeskUser).order_by(DeskUser.name))]


def get_user(ledger: Ledger, name: str) -> User | None:
    with ledger.session() as s:
        row = s.scalar(select(DeskUser).where(DeskUser.name == name))
        return _user(row) if row is not None else None


@dataclass(frozen=True)
class LoginResult:
    user: User | None
    locked_until: datetime | None = None


def authenticate(ledger: Ledger, name: str, password: str, *, max_failed: int, lock_minutes: int,
                 now: datetime | None = None) -> LoginResult:
    """The user when the password is right and the login not locked. Every wrong password counts;
    ``max_failed`` in a row lock the login for ``lock_minutes`` (a right password then is refused
    too, until the lock ends)."""
    now = now or wall_now()
    with ledger.session() as s:
        row = s.scalar(select(DeskUser).where(DeskUser.name == name))
        if row is None:
            _hasher.verify(password, _DUMMY_HASH)  # the same time for a name that does not exist
            return LoginResult(None)
        if row.locked_until is not None and row.locked_until > now:
            return LoginResult(None, locked_until=row.locked_until)
        if _hasher.verify(password, row.password_hash):
            row.failed_attempts = 0
            row.locked_until = None
            return LoginResult(_user(row))
        row.failed_attempts = (row.failed_attempts or 0) + 1
        if row.failed_attempts >= max_failed:
            row.locked_until = now + timedelta(minutes=lock_minutes)
            row.failed_attempts = 0
            return LoginResult(None, locked_until=row.locked_until)
        return LoginResult(None)
