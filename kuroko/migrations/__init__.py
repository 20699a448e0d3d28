"""The ledger's schema belongs to Alembic (``kuroko/migrations/versions``): a new ledger is made by
upgrading an empty database to the newest revision, an older one is upgraded in place, rows kept.

- ``0001`` the ledger of commit 1b91619 (``orders``, ``tickets``, ``steps``, ``audit``);
- ``0002`` work items keyed (procedure, key), the robot's own hand-over ticket;
- ``0003`` several robots: ``workers`` with a heartbeat, ``steps.worker_id``, times with their
  zone and facts as JSONB on PostgreSQL.

Ledgers made before Alembic (by ``create_all``, no ``alembic_version`` table) are recognised by
their tables and stamped with the revision they match before being upgraded.

Two robots starting at once upgrade once: the upgrade runs under an advisory lock on PostgreSQL
and a file lock beside a SQLite file. The configuration is built here — there is no alembic.ini.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from loguru import logger
from sqlalchemy import Connection, Engine, inspect, text

from kuroko.errors import ConfigurationError

HERE = Path(__file__).resolve().parent
LOCK_KEY = "kuroko:migrations"


class LedgerOutOfDate(ConfigurationError):
    """The ledger's schema is not the one this Kuroko writes (behind it, or newer)."""

    code = "ledger_out_of_date"


def config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    found = ScriptDirectory.from_config(config()).get_current_head()
    assert found is not None
    return found


def known_revisions() -> set[str]:
    return {s.revision for s in ScriptDirectory.from_config(config()).walk_revisions()}


def current(connection: Connection) -> tuple[str | None, bool]:
    """The ledger's revision, and whether it was recognised from its tables (made before Alembic,
    not stamped yet). ``(None, False)`` is an empty database."""
    stamped = MigrationContext.configure(connection).get_current_revision()
    if stamped is not None:
        return stamped, False
    tables = set(inspect(connection).get_table_names())
    if "work_items" in tables:
        return "0002", True
    if "orders" in tables:
        return "0001", True
    return None, False


@contextlib.contextmanager
def _exclusive(engine: Engine) -> Iterator[Connection]:
    """A connection holding the ledger's migration lock (advisory on PostgreSQL, a file beside a
    SQLite file; nothing for an in-memory database)."""
    lock_file = None
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        lock_file = Path(database + ".migrate.lock").open("w")  # noqa: SIM115 (closed below)
        fcntl.flock(lock_file, fcntl.LOCK_EX)
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_lock(hashtext(:k))"), {"k": LOCK_KEY})
                connection.commit()
            try:
                yield connection
            finally:
                if engine.dialect.name == "postgresql":
                    connection.rollback()
                    connection.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": LOCK_KEY})
                    connection.commit()
    finally:
        if lock_file is not None:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
            lock_file.close()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Upgrade the ledger to ``revision``; returns (from, to)."""
    with _exclusive(engine) as connection:
        before, legacy = current(connection)
        connection.rollback()
        with connection.begin():
            if legacy:
                command.stamp(config(connection), before)  # type: ignore[arg-type]
            command.upgrade(config(connection), revision)
        after, _ = current(connection)
    assert after is not None
    return before, after


def downgrade(engine: Engine, revision: str) -> tuple[str | None, str | None]:
    with _exclusive(engine) as connection:
        before, legacy = current(connection)
        connection.rollback()
        with connection.begin():
            if legacy:
                command.stamp(config(connection), before)  # type: ignore[arg-type]
            command.downgrade(config(connection), revision)
        after, _ = current(connection)
    return before, after


def prepare(engine: Engine, *, upgrade_old: bool, where: str) -> None:
    """Make the ledger's schema the newest before it is used. An empty database is created at the
    newest revision. An older ledger is upgraded when ``upgrade_old`` (the commands that write),
    and refused with the command to run otherwise (the commands that only look). A ledger newer
    than this Kuroko is always refused."""
    newest = head()
    with engine.connect() as connection:
        at, _legacy = current(connection)
    if at == newest:
        return
    if at is not None and at not in known_revisions():
        raise LedgerOutOfDate(f"the ledger {where} is at schema revision {at}, which this Kuroko does not know "
                              f"(it knows up to {newest}): a newer Kuroko wrote it. Update Kuroko on this machine.")
    if at is not None and not upgrade_old:
        raise LedgerOutOfDate(f"the ledger {where} is at schema revision {at}, behind this Kuroko ({newest}). "
                              "Run `kuroko db upgrade` (or any `kuroko run`), then try again.")
    before, after = upgrade(engine)
    if before is None:
        logger.debug("new ledger {} created at schema revision {}", where, after)
    elif before != after:
        logger.warning("ledger {} upgraded from schema revision {} to {}", where, before, after)
