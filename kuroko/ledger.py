"""The ledger: what the robot knows and did, in SQLAlchemy (SQLite by default, any URL by setting).

- ``orders``: one row per order per procedure — ticket, state, the next step and when it is due,
  why it is held, and the facts gathered so far (``facts``, JSON).
- ``tickets``: every Zendesk ticket the robot has taken in, and what it was to the robot.
- ``steps``: one row per step outcome (status, attempt, external reference, error, evidence).
- ``audit``: append-only; every action taken (or, in a dry run, that would have been taken) on
  every system.

Orders are claimed with a lease (owner + expiry, wall-clock time) through a conditional UPDATE,
so two robots on one ledger never work the same order at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class OrderState(StrEnum):
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


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("procedure", "order_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    procedure: Mapped[str] = mapped_column(String(64))
    order_number: Mapped[str] = mapped_column(String(64), index=True)
    ticket_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default=OrderState.ACTIVE.value, index=True)
    step: Mapped[str] = mapped_column(String(64))
    next_due_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    """Failed attempts of the current step (application errors)."""
    hold_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hold_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    path: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """in_stock / mcf / office, once known."""
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TicketRecord(Base):
    __tablename__ = "tickets"

    ticket_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), nullable=True)
    role: Mapped[str] = mapped_column(String(16))
    """primary (the order's ticket) / merged (merged into it) / unreadable."""
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StepRecord(Base):
    __tablename__ = "steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
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
    evidence: Mapped[list[str]] = mapped_column(JSON, default=list)


class AuditEvent(Base):
    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), nullable=True, index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(32))
    """robot / person / robot (dry run)."""
    system: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def wall_now() -> datetime:
    return datetime.now(UTC)


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

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.engine: Engine = create_engine(url)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()

    def copy_to_memory(self) -> Ledger:
        """A throwaway copy (for dry runs): the same rows, nothing written back."""
        from sqlalchemy.pool import StaticPool

        copy = Ledger.__new__(Ledger)
        copy.url = "sqlite://"
        copy.engine = create_engine("sqlite://", poolclass=StaticPool,
                                    connect_args={"check_same_thread": False})
        Base.metadata.create_all(copy.engine)
        copy._sessions = sessionmaker(copy.engine, expire_on_commit=False)
        with self.engine.connect() as source, copy.engine.begin() as target:
            for table in Base.metadata.sorted_tables:
                rows = [dict(r._mapping) for r in source.execute(table.select())]
                if rows:
                    target.execute(table.insert(), rows)
        return copy

    # --- orders ----------------------------------------------------------------------------
    def add_order(self, *, procedure: str, order_number: str, ticket_id: int | None, step: str,
                  due: datetime, now: datetime, facts: dict[str, Any] | None = None,
                  state: OrderState = OrderState.ACTIVE) -> Order:
        with self.session() as s:
            order = Order(procedure=procedure, order_number=order_number, ticket_id=ticket_id,
                          state=state.value, step=step, next_due_at=due, facts=facts or {},
                          created_at=now, updated_at=now)
            s.add(order)
            s.flush()
            return order

    def get_order(self, order_id: int) -> Order:
        with self.session() as s:
            order = s.get(Order, order_id)
            if order is None:
                raise KeyError(order_id)
            return order

    def find_order(self, order_number: str, procedure: str | None = None) -> Order | None:
        with self.session() as s:
            query = select(Order).where(Order.order_number == order_number)
            if procedure:
                query = query.where(Order.procedure == procedure)
            return s.scalars(query).first()

    def orders(self, state: OrderState | None = None) -> list[Order]:
        with self.session() as s:
            query = select(Order).order_by(Order.id)
            if state is not None:
                query = query.where(Order.state == state.value)
            return list(s.scalars(query))

    def due_orders(self, now: datetime, procedure: str | None = None) -> list[Order]:
        with self.session() as s:
            query = (
                select(Order)
                .where(Order.state == OrderState.ACTIVE.value, Order.next_due_at <= now)
                .order_by(Order.next_due_at, Order.id)
            )
            if procedure:
                query = query.where(Order.procedure == procedure)
            return list(s.scalars(query))

    def update_order(self, order_id: int, now: datetime, **values: Any) -> Order:
        with self.session() as s:
            order = s.get(Order, order_id)
            if order is None:
                raise KeyError(order_id)
            for key, value in values.items():
                if key == "facts":
                    value = {**order.facts, **value}
                setattr(order, key, value)
            order.updated_at = now
            return order

    def replace_facts(self, order_id: int, facts: dict[str, Any]) -> None:
        with self.session() as s:
            order = s.get(Order, order_id)
            if order is None:
                raise KeyError(order_id)
            order.facts = dict(facts)

    def record_outcome(self, order_id: int, now: datetime, *, step_record: dict[str, Any], facts: dict[str, Any],
                       **order_values: Any) -> None:
        """A step's outcome and the order's new state in one transaction: both or neither."""
        with self.session() as s:
            order = s.get(Order, order_id)
            if order is None:
                raise KeyError(order_id)
            s.add(StepRecord(order_id=order_id, **step_record))
            order.facts = dict(facts)
            for key, value in order_values.items():
                setattr(order, key, value)
            order.updated_at = now

    # --- leases ------------------------------------------------------------------------------
    def claim(self, order_id: int, owner: str, seconds: float = 600) -> bool:
        """Take the order for ``seconds`` unless another live worker holds an unexpired lease.

        A lease left by a worker on this machine whose process is gone (killed, crashed) is taken
        over at once instead of blocking the order until it expires."""
        now = wall_now()
        with self.session() as s:
            holder = s.scalar(select(Order.lease_owner).where(Order.id == order_id))
            stale = holder is not None and holder != owner and not worker_alive(holder)
            condition = or_(Order.lease_owner.is_(None), Order.lease_owner == owner, Order.lease_until < now)
            if stale:
                condition = or_(condition, Order.lease_owner == holder)
            result = s.execute(
                update(Order).where(Order.id == order_id, condition)
                .values(lease_owner=owner, lease_until=now + timedelta(seconds=seconds))
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def release_lease(self, order_id: int, owner: str) -> None:
        with self.session() as s:
            s.execute(update(Order).where(Order.id == order_id, Order.lease_owner == owner)
                      .values(lease_owner=None, lease_until=None))

    # --- tickets ---------------------------------------------------------------------------
    def known_ticket_ids(self) -> set[int]:
        with self.session() as s:
            return set(s.scalars(select(TicketRecord.ticket_id)))

    def add_ticket(self, ticket_id: int, order_id: int | None, role: str, now: datetime) -> None:
        with self.session() as s:
            if s.get(TicketRecord, ticket_id) is None:
                s.add(TicketRecord(ticket_id=ticket_id, order_id=order_id, role=role, seen_at=now))

    def tickets_of(self, order_id: int) -> list[TicketRecord]:
        with self.session() as s:
            return list(s.scalars(select(TicketRecord).where(TicketRecord.order_id == order_id)))

    # --- steps and audit -------------------------------------------------------------------
    def add_step(self, **values: Any) -> StepRecord:
        with self.session() as s:
            record = StepRecord(**values)
            s.add(record)
            s.flush()
            return record

    def steps(self, order_id: int) -> list[StepRecord]:
        with self.session() as s:
            return list(s.scalars(select(StepRecord).where(StepRecord.order_id == order_id)
                                  .order_by(StepRecord.id)))

    def audit(self, *, order_id: int | None, at: datetime, actor: str, system: str, action: str,
              detail: dict[str, Any] | str | None = None) -> None:
        text = detail if isinstance(detail, str) or detail is None else json.dumps(detail, ensure_ascii=False,
                                                                                  default=str)
        with self.session() as s:
            s.add(AuditEvent(order_id=order_id, at=at, actor=actor, system=system, action=action, detail=text))

    def audit_trail(self, order_id: int | None = None) -> list[AuditEvent]:
        with self.session() as s:
            query = select(AuditEvent).order_by(AuditEvent.id)
            if order_id is not None:
                query = query.where(AuditEvent.order_id == order_id)
            return list(s.scalars(query))

    def count_by_state(self) -> dict[str, int]:
        with self.session() as s:
            rows = s.execute(select(Order.state, func.count()).group_by(Order.state))
            return {state: count for state, count in rows}
