"""The ledger survives upgrades: Alembic owns its schema (kuroko/migrations). The ledger a seeded
day left with commit 1b91619 (tests/fixtures/ledger-1b91619.sqlite, made by that commit's own
`kuroko demo`) is upgraded to the newest revision with every row still there — on SQLite, and on
PostgreSQL after loading the same rows at revision 0001; a downgrade/upgrade round trip on a copy
keeps them; the models and the migrations agree on both backends."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from conftest import ROOT
from sqlalchemy import create_engine, text

from kuroko import migrations
from kuroko.ledger import Base, Ledger
from kuroko.migrations import LedgerOutOfDate

FIXTURE = ROOT / "tests" / "fixtures" / "ledger-1b91619.sqlite"
OLD_TABLES = ("orders", "tickets", "steps", "audit")
NEW_NAMES = {"orders": "work_items"}
RENAMED = {"order_number": "key", "order_id": "item_id"}


def old_rows() -> dict[str, list[dict[str, Any]]]:
    with sqlite3.connect(FIXTURE) as db:
        db.row_factory = sqlite3.Row
        return {t: [dict(r) for r in db.execute(f"SELECT * FROM {t} ORDER BY 1")] for t in OLD_TABLES}


def rows_now(url: str) -> dict[str, list[dict[str, Any]]]:
    engine = create_engine(url)
    with engine.connect() as db:
        found = {t: [dict(r._mapping) for r in db.execute(text(f"SELECT * FROM {NEW_NAMES.get(t, t)} ORDER BY 1"))]
                 for t in OLD_TABLES}
    engine.dispose()
    return found


def same(old: Any, new: Any) -> bool:
    """A value as 1b91619 stored it (SQLite text) and as it reads now (either backend)."""
    if isinstance(new, datetime):
        moment = datetime.fromisoformat(str(old))
        return new.astimezone(UTC).replace(tzinfo=None) == moment.replace(tzinfo=None)
    if isinstance(new, dict | list):
        return bool(json.loads(old) == new)
    if isinstance(new, str) and new.startswith(("{", "[")) and isinstance(old, str):
        return bool(json.loads(old) == json.loads(new))
    return bool(old == new)


def assert_every_row_kept(url: str) -> None:
    before, after = old_rows(), rows_now(url)
    assert len(before["orders"]) >= 10 and before["steps"] and before["audit"] and before["tickets"]
    for table in OLD_TABLES:
        assert len(after[table]) == len(before[table]), (
            f"{table}: {len(before[table])} rows before, {len(after[table])} after")
        for old, new in zip(before[table], after[table], strict=True):
            for column, value in old.items():
                assert same(value, new[RENAMED.get(column, column)]), (table, column, value, new)


def agree(url: str) -> list[Any]:
    engine = create_engine(url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    return list(diff)


def revision(url: str) -> str | None:
    engine = create_engine(url)
    with engine.connect() as connection:
        at, _ = migrations.current(connection)
    engine.dispose()
    return at


@pytest.fixture
def old_ledger(tmp_path: Path) -> str:
    """A copy of the checked-in 1b91619 ledger; its URL."""
    copy = tmp_path / "ledger.sqlite"
    shutil.copy(FIXTURE, copy)
    return f"sqlite:///{copy}"


def load_old_rows_into(url: str) -> None:
    """The 1b91619 rows in a PostgreSQL database at revision 0001 (that commit's schema)."""
    engine = create_engine(url)
    migrations.upgrade(engine, "0001")
    with engine.begin() as db:
        for table, rows in old_rows().items():
            for row in rows:
                db.execute(text(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join(':' + c for c in row)})"),
                           row)
        for table in ("orders", "steps", "audit"):
            db.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
    engine.dispose()


def test_the_ledger_of_commit_1b91619_is_upgraded_with_every_row_kept(old_ledger: str) -> None:
    assert revision(old_ledger) == "0001", "made before migrations: recognised by its tables"
    ledger = Ledger(old_ledger)
    assert revision(old_ledger) == migrations.head()
    assert_every_row_kept(old_ledger)
    assert agree(old_ledger) == []
    items = ledger.items()
    assert {i.state for i in items} <= {"done", "held", "active"} and all(i.next_due_at.tzinfo for i in items)
    held = [i for i in items if i.state == "held"]
    assert held and all(i.hold_reason for i in held)
    now = datetime.now(UTC)
    ledger.add_item(procedure="rakuten_sim_order", key="new-after-upgrade", ticket_id=None, step="check_boss",
                    due=now, now=now)
    assert ledger.claim_next(["rakuten_sim_order"], "robot", now) is not None, "the upgraded ledger is worked"
    ledger.close()


def test_the_same_rows_on_postgresql_are_upgraded_to_timestamptz_and_jsonb(pg_url: str) -> None:
    load_old_rows_into(pg_url)
    ledger = Ledger(pg_url)
    assert revision(pg_url) == migrations.head()
    assert_every_row_kept(pg_url)
    assert agree(pg_url) == []
    now = datetime.now(UTC)
    item = ledger.add_item(procedure="rakuten_sim_order", key="new-after-upgrade", ticket_id=None,
                           step="check_boss", due=now, now=now)
    assert item.id > max(i.id for i in ledger.items() if i.key != "new-after-upgrade")
    ledger.close()


def test_a_downgrade_upgrade_round_trip_on_a_copy_keeps_every_row(old_ledger: str, pg_url: str) -> None:
    load_old_rows_into(pg_url)
    for url in (old_ledger, pg_url):
        engine = create_engine(url)
        assert migrations.upgrade(engine) == ("0001", migrations.head())
        assert migrations.downgrade(engine, "0001") == (migrations.head(), "0001")
        with engine.connect() as db:
            assert db.execute(text("SELECT count(*) FROM orders")).scalar() == len(old_rows()["orders"])
        assert migrations.upgrade(engine) == ("0001", migrations.head())
        engine.dispose()
        assert_every_row_kept(url)
        assert agree(url) == []


def test_the_models_and_the_migrations_agree(ledger_url: str) -> None:
    Ledger(ledger_url).close()
    assert revision(ledger_url) == migrations.head()
    assert agree(ledger_url) == [], "a model changed without a migration (or the other way round)"


def test_commands_that_only_look_refuse_an_old_ledger_and_say_what_to_run(old_ledger: str) -> None:
    with pytest.raises(LedgerOutOfDate, match="kuroko db upgrade"):
        Ledger(old_ledger, upgrade=False)
    assert revision(old_ledger) == "0001", "looking changed nothing"


def test_a_ledger_from_a_newer_kuroko_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    Ledger(url).close()
    engine = create_engine(url)
    with engine.begin() as db:
        db.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(LedgerOutOfDate, match="newer Kuroko"):
        Ledger(url)


def test_kuroko_db_commands(old_ledger: str) -> None:
    env = {**os.environ, "KUROKO_LEDGER_URL": old_ledger, "COLUMNS": "200"}

    def kuroko(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kuroko.ops.cli", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)

    assert "ledger at 0001 (made before migrations" in kuroko("db", "current").stdout
    refused = kuroko("status")
    assert refused.returncode != 0 and "kuroko db upgrade" in refused.stderr
    assert f"upgraded from 0001 to {migrations.head()}" in kuroko("db", "upgrade").stdout
    assert kuroko("status").returncode == 0
    assert "downgraded" in kuroko("db", "downgrade", "0002").stdout
    assert "ledger at 0002" in kuroko("db", "current").stdout
