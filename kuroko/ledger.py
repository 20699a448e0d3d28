"""The ledger: what the robot knows and did, in SQLAlchemy (SQLite by default, any URL by setting).

- ``work_items``: one row per work item, keyed by (procedure, key) — a Rakuten order number, an MCF
  order id, a たまご order… — with its ticket, state, the next step and when it is due, why it is
  held, the ticket the robot opened to hand it over, and the facts gathered so far (``facts``, JSON).
- ``tickets``: every helpdesk ticket the robot has taken in, and what it was to the robot.
- ``steps``: one row per step outcome (status, attempt, external reference, error, evidence).
- ``audit``: append-only; every action taken (or, in a dry run, that would have been taken) on
  every system.

- ``workers``: every robot that has worked the ledger, with its heartbeat.

Several robots share one ledger (PostgreSQL for real, SQLite on one machine): each claims its next
due item in one statement (``claim_next``, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL) with a lease
(owner + expiry, wall-clock time) it renews between steps, so two robots never work the same item at
once; a dead robot's items are taken over (see ``claim_next``). The schema belongs to Alembic
(``kuroko/migrations``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    and_,
    create_engine,
    event,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend: ``timestamptz`` on
    PostgreSQL; on SQLite (which has no zones) the UTC time without its zone."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONDocument = JSON().with_variant(JSONB(), "postgresql")
"""Facts and evidence: JSONB on PostgreSQL, JSON text elsewhere."""


class ItemState(StrEnum):
    ACTIVE = "active"
    """Has a next step; runs when due."""
    HELD = "held"
    """Handed to a person; nothing happens until released."""
    DONE = "done"


class StepStatus(StrEnum):
    DONE = "done"
    FOUND_DONE = "found_done"
    """Reconciled: the system of record showed the side effect had already happened."""
    NOT_YET = "not_yet"
    HELD = "held"
    ERROR = "error"
    WOULD = "would"
    """Dry run: what the step would have done."""


class ItemExists(Exception):
    """The ledger already has a work item with this (procedure, key)."""


class Base(DeclarativeBase):
    pass


class WorkItem(Base):
    __tablename__ = "work_items"
    __table_args__ = (UniqueConstraint("procedure", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    procedure: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(64), index=True)
    """What the procedure calls the item: an order number, an MCF order id, a claim id …"""
    ticket_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The item's own helpdesk ticket, if it came with one."""
    handover_ticket_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The ticket the robot opened to hand this item to a person (it had no ticket of its own, or
    the helpdesk had closed it); reused for every later hand-over of the item."""
    state: Mapped[str] = mapped_column(String(16), default=ItemState.ACTIVE.value, index=True)
    step: Mapped[str] = mapped_column(String(64))
    next_due_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    """Failed attempts of the current step (application errors)."""
    hold_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hold_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    path: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """Which way the item went, in the procedure's words (e.g. in_stock / mcf / office), once known."""
    facts: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TicketRecord(Base):
    __tablename__ = "tickets"

    ticket_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("work_items.id"), nullable=True)
    role: Mapped[str] = mapped_column(String(16))
    """primary (the item's ticket) / merged (merged into it) / unreadable / late / handover."""
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StepRecord(Base):
    __tablename__ = "steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("work_items.id"), index=True)
    run_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    external_ref: Mapped[str | None] = mapped_column(String(256), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    worker_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """The robot that ran the step (``host:pid:nonce``)."""
    evidence: Mapped[list[str]] = mapped_column(JSONDocument, default=list)


class AuditEvent(Base):
    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("work_items.id"), nullable=True, index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(32))
    """robot / person / robot (dry run)."""
    system: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)


class Worker(Base):
    """One row per robot process that has worked this ledger; ``heartbeat_at`` is renewed while it
    runs a pass. A robot on another machine is known dead when its heartbeat stops."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    """``host:pid:nonce``, as in ``work_items.lease_owner``."""
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _due_at(now: datetime) -> Any:
    """An active item whose time has come: what a pass runs."""
    return and_(WorkItem.state == ItemState.ACTIVE.value, WorkItem.next_due_at <= now)


def wall_now() -> datetime:
    return datetime.now(UTC)


def worker_pid(worker_id: str) -> int | None:
    """The process id in a worker id (``host:pid:nonce``), if it has one."""
    parts = worker_id.split(":")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def worker_alive(worker_id: str) -> bool:
    """Worker ids are ``host:pid:nonce``. A worker on another host is assumed alive (its lease
    expires by time); on this host, alive means its process still exists."""
    import os
    import socket

    parts = worker_id.split(":")
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return True
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Ledger:
    """All reads and writes of the ledger go through here; each method is one transaction."""

    dry_run: bool = False
    """A dry run's ledger (a copy): a dry run writes here and never in the real one."""

    def __init__(self, url: str, *, upgrade: bool = True) -> None:
        """Open the ledger at ``url``. An empty database gets the newest schema; an older ledger
        is upgraded (``upgrade``, the commands that write) or refused with the command to run."""
        from kuroko.migrations import prepare

        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.engine: Engine = create_engine(url)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        prepare(self.engine, upgrade_old=upgrade, where=self.engine.url.render_as_string(hide_password=True))
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()

    def copy_to_memory(self) -> Ledger:
        """A throwaway copy (for a one-off dry run, e.g. ``kuroko replay --dry-run``): the same rows,
        nothing written back."""
        from sqlalchemy.pool import StaticPool

        copy = Ledger.__new__(Ledger)
        copy.url = "sqlite://"
        copy.engine = create_engine("sqlite://", poolclass=StaticPool,
                                    connect_args={"check_same_thread": False})
        Base.metadata.create_all(copy.engine)
        copy._sessions = sessionmaker(copy.engine, expire_on_commit=False)
        copy.dry_run = True
        self._copy_rows(copy.engine)
        return copy

    def _copy_rows(self, engine: Engine) -> None:
        with self.engine.connect() as source, engine.begin() as target:
            for table in Base.metadata.sorted_tables:
                rows = [dict(r._mapping) for r in source.execute(table.select())]
                if table.name == WorkItem.__tablename__:
                    rows = [{**r, "lease_owner": None, "lease_until": None} for r in rows]
                if rows:
                    target.execute(table.insert(), rows)

    @classmethod
    def for_dry_run(cls, real_url: str, path: Path) -> Ledger:
        """The dry run's own ledger, a SQLite file kept across passes (``kuroko run --dry-run``,
        ``kuroko schedule --dry-run``), so waits carry over as they would for real. Seeded from the
        real ledger the first time (when there is one); the real ledger is only ever read, once."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            seeding = path.with_name(path.name + ".seeding")
            seeding.unlink(missing_ok=True)
            fresh = cls(f"sqlite:///{seeding.resolve()}")
            real_file = Path(real_url.removeprefix("sqlite:///")) if real_url.startswith("sqlite:///") else None
            if real_file is None or real_file.exists():
                real = cls(real_url, upgrade=False)
                try:
                    real._copy_rows(fresh.engine)
                finally:
                    real.close()
            fresh.close()
            for suffix in ("-wal", "-shm"):
                seeding.with_name(seeding.name + suffix).unlink(missing_ok=True)
            seeding.replace(path)
        ledger = cls(f"sqlite:///{path.resolve()}")
        ledger.dry_run = True
        return ledger

    # --- work items ------------------------------------------------------------------------
    def add_item(self, *, procedure: str, key: str, ticket_id: int | None, step: str, due: datetime,
                 now: datetime, facts: dict[str, Any] | None = None, state: ItemState = ItemState.ACTIVE,
                 hold_code: str | None = None, hold_reason: str | None = None) -> WorkItem:
        """A new work item. Raises ``ItemExists`` when (procedure, key) is already in the ledger —
        also when another robot took it in a moment ago (the unique key decides)."""
        try:
            with self.session() as s:
                item = WorkItem(procedure=procedure, key=key, ticket_id=ticket_id, state=state.value, step=step,
                                next_due_at=due, facts=facts or {}, created_at=now, updated_at=now,
                                hold_code=hold_code, hold_reason=hold_reason)
                s.add(item)
                s.flush()
                return item
        except IntegrityError as exc:
            raise ItemExists(f"{procedure} {key} is already in the ledger") from exc

    def get_item(self, item_id: int) -> WorkItem:
        with self.session() as s:
            item = s.get(WorkItem, item_id)
            if item is None:
                raise KeyError(item_id)
            return item

    def find_items(self, key: str, procedure: str | None = None) -> list[WorkItem]:
        with self.session() as s:
            query = select(WorkItem).where(WorkItem.key == key).order_by(WorkItem.id)
            if procedure:
                query = query.where(WorkItem.procedure == procedure)
            return list(s.scalars(query))

    def find_item(self, key: str, procedure: str | None = None) -> WorkItem | None:
        found = self.find_items(key, procedure)
        return found[0] if found else None

    def items(self, state: ItemState | None = None, procedure: str | None = None) -> list[WorkItem]:
        with self.session() as s:
            query = select(WorkItem).order_by(WorkItem.id)
            if state is not None:
                query = query.where(WorkItem.state == state.value)
            if procedure is not None:
                query = query.where(WorkItem.procedure == procedure)
            return list(s.scalars(query))

    def due_items(self, now: datetime, procedures: list[str] | None = None) -> list[WorkItem]:
        with self.session() as s:
            query = (
                select(WorkItem)
                .where(_due_at(now))
                .order_by(WorkItem.next_due_at, WorkItem.id)
            )
            if procedures is not None:
                query = query.where(WorkItem.procedure.in_(procedures))
            return list(s.scalars(query))

    def is_due(self, item_id: int, now: datetime) -> bool:
        """Whether the item is active and due at ``now`` (after a run: to be tried again this pass)."""
        with self.session() as s:
            return s.scalar(select(WorkItem.id).where(WorkItem.id == item_id, _due_at(now))) is not None

    def update_item(self, item_id: int, now: datetime, **values: Any) -> WorkItem:
        with self.session() as s:
            item = s.get(WorkItem, item_id)
            if item is None:
                raise KeyError(item_id)
            for key, value in values.items():
                if key == "facts":
                    value = {k: v for k, v in {**item.facts, **value}.items() if v is not None}
                setattr(item, key, value)
            item.updated_at = now
            return item

    def replace_facts(self, item_id: int, facts: dict[str, Any]) -> None:
        with self.session() as s:
            item = s.get(WorkItem, item_id)
            if item is None:
                raise KeyError(item_id)
            item.facts = dict(facts)

    def record_outcome(self, item_id: int, now: datetime, *, step_record: dict[str, Any], facts: dict[str, Any],
                       **item_values: Any) -> None:
        """A step's outcome and the item's new state in one transaction: both or neither."""
        with self.session() as s:
            item = s.get(WorkItem, item_id)
            if item is None:
                raise KeyError(item_id)
            s.add(StepRecord(item_id=item_id, **step_record))
            item.facts = dict(facts)
            for key, value in item_values.items():
                setattr(item, key, value)
            item.updated_at = now

    # --- leases, robots ----------------------------------------------------------------------
    def _dead_holders(self, s: Session) -> list[str]:
        """Holders of unexpired leases that are dead robots on this machine (process gone)."""
        holders = s.scalars(select(WorkItem.lease_owner).distinct()
                            .where(WorkItem.lease_owner.is_not(None), WorkItem.lease_until >= wall_now()))
        return [h for h in holders if h and not worker_alive(h)]

    def _free(self, owner: str | None, dead: list[str], heartbeat_timeout: float) -> Any:
        """The lease condition: nobody holds it, or the holder is ``owner`` (this robot, when it
        may take an item again), or its lease ran out and its heartbeat stopped (a robot
        anywhere), or it is a dead process on this machine."""
        now = wall_now()
        beating = (select(Worker.id).where(Worker.id == WorkItem.lease_owner, Worker.stopped_at.is_(None),
                                           Worker.heartbeat_at >= now - timedelta(seconds=heartbeat_timeout))
                   .exists())
        condition = or_(WorkItem.lease_owner.is_(None), and_(WorkItem.lease_until < now, ~beating))
        if owner is not None:
            condition = or_(condition, WorkItem.lease_owner == owner)
        return or_(condition, WorkItem.lease_owner.in_(dead)) if dead else condition

    def claim(self, item_id: int, owner: str, seconds: float = 600, heartbeat_timeout: float = 90) -> bool:
        """Take the item for ``seconds`` unless another live robot holds it (see ``claim_next``)."""
        with self.session() as s:
            result = s.execute(
                update(WorkItem).where(WorkItem.id == item_id, self._free(owner, self._dead_holders(s),
                                                                          heartbeat_timeout))
                .values(lease_owner=owner, lease_until=wall_now() + timedelta(seconds=seconds))
                .execution_options(synchronize_session=False)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def claim_next(self, procedures: list[str], owner: str, now: datetime, *, lease_seconds: float = 600,
                   heartbeat_timeout: float = 90, skip: Iterable[int] = ()) -> WorkItem | None:
        """Take the next due item of ``procedures`` in one statement, or None when none is free.

        ``UPDATE work_items SET lease_owner, lease_until WHERE id = (SELECT id … ORDER BY
        next_due_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id``: on PostgreSQL robots
        never wait on each other's rows nor take the same one; on SQLite the write lock makes the
        statement atomic and the lease condition is the guard. A lease whose holder is alive is
        never taken; one whose holder is dead is (at once for a dead process on this machine, after
        the lease and the heartbeat ran out for a robot elsewhere). ``skip``: ids this robot
        already ran in this pass and that are still due (keep it short: each length is a new
        statement, cached per connection by the database driver)."""
        with self.session() as s:
            candidate = (
                select(WorkItem.id)
                .where(_due_at(now), WorkItem.procedure.in_(procedures),
                       self._free(None, self._dead_holders(s), heartbeat_timeout))
                .order_by(WorkItem.next_due_at, WorkItem.id)
                .limit(1)
            )
            skipped = list(skip)
            if skipped:
                candidate = candidate.where(WorkItem.id.not_in(skipped))
            if self.is_postgres:
                candidate = candidate.with_for_update(skip_locked=True)
            claimed = s.execute(
                update(WorkItem).where(WorkItem.id == candidate.scalar_subquery())
                .values(lease_owner=owner, lease_until=wall_now() + timedelta(seconds=lease_seconds))
                .returning(WorkItem.id)
                .execution_options(synchronize_session=False)
            ).scalar_one_or_none()
            return None if claimed is None else s.get(WorkItem, claimed)

    def renew_lease(self, item_id: int, owner: str, seconds: float = 600) -> bool:
        """Extend this robot's lease (between steps). False when it no longer holds it."""
        with self.session() as s:
            result = s.execute(update(WorkItem).where(WorkItem.id == item_id, WorkItem.lease_owner == owner)
                               .values(lease_until=wall_now() + timedelta(seconds=seconds))
                               .execution_options(synchronize_session=False))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def release_lease(self, item_id: int, owner: str) -> None:
        with self.session() as s:
            s.execute(update(WorkItem).where(WorkItem.id == item_id, WorkItem.lease_owner == owner)
                      .values(lease_owner=None, lease_until=None)
                      .execution_options(synchronize_session=False))

    def heartbeat(self, worker_id: str, *, stopped: bool = False) -> None:
        """Say this robot is alive (registering it the first time); ``stopped`` when it ends cleanly."""
        now = wall_now()
        parts = worker_id.split(":")
        with self.session() as s:
            worker = s.get(Worker, worker_id)
            if worker is None:
                worker = Worker(id=worker_id, host=parts[0], pid=worker_pid(worker_id) or 0, started_at=now,
                                heartbeat_at=now)
                s.add(worker)
            worker.heartbeat_at = now
            worker.stopped_at = now if stopped else None

    def workers(self) -> list[Worker]:
        with self.session() as s:
            return list(s.scalars(select(Worker).order_by(Worker.started_at)))

    @contextmanager
    def intake_lock(self, procedure: str) -> Iterator[bool]:
        """Whether this robot may run ``procedure``'s intake now: one robot at a time takes in
        (and merges) new work for a procedure. PostgreSQL: a session advisory lock
        (``pg_try_advisory_lock(hashtext('intake:'||procedure))``) held on its own connection for
        the intake; a SQLite file: a non-blocking file lock beside it. A robot that does not get it
        skips that intake this pass (the other robot is doing it)."""
        if self.is_postgres:
            with self.engine.connect() as connection:
                got = bool(connection.execute(text("SELECT pg_try_advisory_lock(hashtext(:k))"),
                                              {"k": f"intake:{procedure}"}).scalar())
                connection.commit()
                try:
                    yield got
                finally:
                    if got:
                        connection.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"),
                                           {"k": f"intake:{procedure}"})
                        connection.commit()
            return
        database = self.engine.url.database
        if self.engine.dialect.name != "sqlite" or not database or database == ":memory:":
            yield True
            return
        with Path(f"{database}.intake-{procedure}.lock").open("w") as lock_file:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    # --- tickets ---------------------------------------------------------------------------
    def known_ticket_ids(self) -> set[int]:
        with self.session() as s:
            return set(s.scalars(select(TicketRecord.ticket_id)))

    def add_ticket(self, ticket_id: int, item_id: int | None, role: str, now: datetime) -> None:
        """Remember a ticket (once; another robot recording it at the same moment is no error)."""
        with contextlib.suppress(IntegrityError), self.session() as s:
            if s.get(TicketRecord, ticket_id) is None:
                s.add(TicketRecord(ticket_id=ticket_id, item_id=item_id, role=role, seen_at=now))

    def tickets_of(self, item_id: int) -> list[TicketRecord]:
        with self.session() as s:
            return list(s.scalars(select(TicketRecord).where(TicketRecord.item_id == item_id)))

    # --- steps and audit -------------------------------------------------------------------
    def add_step(self, **values: Any) -> StepRecord:
        with self.session() as s:
            record = StepRecord(**values)
            s.add(record)
            s.flush()
            return record

    def steps_by_worker(self) -> dict[str, list[int]]:
        """Which robot ran which steps: worker id → the item id of each step it ran (steps run before
        robots were told apart are left out)."""
        with self.session() as s:
            found: dict[str, list[int]] = {}
            for worker, item_id in s.execute(select(StepRecord.worker_id, StepRecord.item_id)
                                              .where(StepRecord.worker_id.is_not(None)).order_by(StepRecord.id)):
                found.setdefault(str(worker), []).append(item_id)
            return found

    def steps(self, item_id: int) -> list[StepRecord]:
        with self.session() as s:
            return list(s.scalars(select(StepRecord).where(StepRecord.item_id == item_id)
                                  .order_by(StepRecord.id)))

    def audit(self, *, item_id: int | None, at: datetime, actor: str, system: str, action: str,
              detail: dict[str, Any] | str | None = None) -> None:
        text = detail if isinstance(detail, str) or detail is None else json.dumps(detail, ensure_ascii=False,
                                                                                  default=str)
        with self.session() as s:
            s.add(AuditEvent(item_id=item_id, at=at, actor=actor, system=system, action=action, detail=text))

    def audit_trail(self, item_id: int | None = None) -> list[AuditEvent]:
        with self.session() as s:
            query = select(AuditEvent).order_by(AuditEvent.id)
            if item_id is not None:
                query = query.where(AuditEvent.item_id == item_id)
            return list(s.scalars(query))

    def last_audit_at(self, action: str) -> datetime | None:
        """When the newest audit row with ``action`` and no item was written (a procedure's own
        marker, e.g. when it last listed a system of record); None when this ledger has none."""
        with self.session() as s:
            return s.scalars(select(AuditEvent.at).where(AuditEvent.item_id.is_(None), AuditEvent.action == action)
                             .order_by(AuditEvent.id.desc()).limit(1)).first()

    def count_by_state(self) -> dict[str, int]:
        with self.session() as s:
            rows = s.execute(select(WorkItem.state, func.count()).group_by(WorkItem.state))
            return {state: count for state, count in rows}


# --- the desk console's users (kuroko/ops/console) ------------------------------------------------
class DeskUser(Base):
    """A person who may log in to the desk console: a viewer reads, an operator also acts."""

    __tablename__ = "desk_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    """viewer | operator"""
    password_hash: Mapped[str] = mapped_column(String(256))
    """argon2 (pwdlib); never the password."""
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


# --- claims (MCF lost / damaged parcels; the claims issue follows them) --------------------------
# Self-contained at the end of the module: the model, then the few functions that read and write it.
class ClaimKind(StrEnum):
    LOST = "lost"
    DAMAGED = "damaged"


class ClaimStatus(StrEnum):
    NEW = "New"
    FILED = "Filed"
    WAITING = "Waiting"
    MORE_INFO = "MoreInfo"
    STALLED = "Stalled"
    REIMBURSED = "Reimbursed"
    REJECTED = "Rejected"
    CLOSED = "Closed"


OPEN_CLAIM_STATUSES = frozenset({ClaimStatus.FILED, ClaimStatus.WAITING, ClaimStatus.MORE_INFO, ClaimStatus.STALLED})
"""Filed and not settled: Amazon's replies are attached."""
CLOSED_CLAIM_STATUSES = frozenset({ClaimStatus.REIMBURSED, ClaimStatus.REJECTED, ClaimStatus.CLOSED})


class Claim(Base):
    """A reimbursement claim the robot prepared for a person to file in Seller Central (no API files
    one). One per (kind, MCF order, package): opening it again finds the first one."""

    __tablename__ = "claims"
    __table_args__ = (UniqueConstraint("kind", "mcf_order_id", "package_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    """lost / damaged."""
    item_id: Mapped[int] = mapped_column(ForeignKey("work_items.id"), index=True)
    mcf_order_id: Mapped[str] = mapped_column(String(64), index=True)
    package_number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32), default="New", index=True)
    """A ``ClaimStatus``: New (prepared, not filed yet) → Filed (Amazon's case id known) → Waiting
    (Amazon answered, nothing settled) / MoreInfo (Amazon asks for more) / Stalled (no answer after
    every nudge) → Reimbursed / Rejected / Closed."""
    text: Mapped[str] = mapped_column(Text)
    """What a person pastes into Seller Central."""
    case_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    currency: Mapped[str | None] = mapped_column(String(8), nullable=True)
    """ISO code of both amounts (JPY, USD …)."""
    amount_claimed: Mapped[Decimal | None] = mapped_column(Numeric(14, 2), nullable=True)
    amount_paid: Mapped[Decimal | None] = mapped_column(Numeric(14, 2), nullable=True)
    status_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    eligible_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    """When the claim could first be filed (None: when it was prepared)."""
    file_by: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    """The end of the filing window."""
    filed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_amazon_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    """Amazon's last word on the case (a reply attached)."""
    next_nudge_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    more_info_asked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    more_info_by: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    nudges: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """How many times a person was asked to nudge the case."""
    more_info_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    """What Amazon asked for, in its words."""
    closed_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    history: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONDocument, nullable=True)
    """Every reply attached and reimbursement row read, once each ({"kind", "ref", "at", …})."""


def money(amount: Decimal | None, currency: str | None, *, missing: str = "?") -> str:
    """A claim's money as the desk reads it: ¥1,980 (yen without decimals), USD 12.50 otherwise."""
    if amount is None:
        return missing
    if currency in (None, "JPY"):
        return f"¥{amount:,.0f}"
    return f"{currency} {amount:,.2f}"


def open_claim(ledger: Ledger, *, kind: str, item_id: int, mcf_order_id: str, package_number: int, text: str,
               now: datetime) -> tuple[Claim, bool]:
    """The claim for this parcel and kind: created now (True), or the one already there (False)."""
    found = find_claim(ledger, kind=kind, mcf_order_id=mcf_order_id, package_number=package_number)
    if found is not None:
        return found, False
    try:
        with ledger.session() as s:
            claim = Claim(kind=kind, item_id=item_id, mcf_order_id=mcf_order_id, package_number=package_number,
                          status="New", text=text, created_at=now, status_since=now, eligible_at=now, nudges=0)
            s.add(claim)
            s.flush()
            return claim, True
    except IntegrityError:  # another robot opened it a moment ago
        again = find_claim(ledger, kind=kind, mcf_order_id=mcf_order_id, package_number=package_number)
        assert again is not None
        return again, False


def find_claim(ledger: Ledger, *, kind: str, mcf_order_id: str, package_number: int) -> Claim | None:
    with ledger.session() as s:
        return s.scalar(select(Claim).where(Claim.kind == kind, Claim.mcf_order_id == mcf_order_id,
                                            Claim.package_number == package_number))


def get_claim(ledger: Ledger, claim_id: int) -> Claim | None:
    with ledger.session() as s:
        return s.get(Claim, claim_id)


def list_claims(ledger: Ledger, *, item_id: int | None = None, mcf_order_id: str | None = None) -> list[Claim]:
    with ledger.session() as s:
        query = select(Claim).order_by(Claim.id)
        if item_id is not None:
            query = query.where(Claim.item_id == item_id)
        if mcf_order_id is not None:
            query = query.where(Claim.mcf_order_id == mcf_order_id)
        return list(s.scalars(query))


def record_claim_case(ledger: Ledger, claim_id: int, case_id: str, now: datetime | None = None) -> Claim:
    """A person filed the claim in Seller Central (or Amazon's acknowledgement named it): Amazon's
    case id, status Filed (a claim already further on keeps its status)."""
    with ledger.session() as s:
        claim = s.get(Claim, claim_id)
        if claim is None:
            raise KeyError(claim_id)
        claim.case_id = case_id
        if claim.status == ClaimStatus.NEW:
            claim.status = ClaimStatus.FILED.value
            claim.filed_at = claim.status_since = now
        s.flush()
        return claim


def update_claim(ledger: Ledger, claim_id: int, *, history: dict[str, Any] | None = None,
                 **changes: Any) -> Claim:
    """Change a claim's columns (and add one entry to its history) in one transaction."""
    with ledger.session() as s:
        claim = s.get(Claim, claim_id, with_for_update=True)
        if claim is None:
            raise KeyError(claim_id)
        for name, value in changes.items():
            if not hasattr(Claim, name):
                raise AttributeError(f"a claim has no {name!r}")
            setattr(claim, name, value)
        if history is not None:
            claim.history = [*(claim.history or []), history]
        s.flush()
        return claim


def find_claim_by_case(ledger: Ledger, case_id: str) -> Claim | None:
    with ledger.session() as s:
        return s.scalar(select(Claim).where(Claim.case_id == case_id).order_by(Claim.id))
