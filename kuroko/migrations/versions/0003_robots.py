"""Several robots: a workers table with a heartbeat, the robot that ran each step, and on
PostgreSQL times stored with their zone (timestamptz, from the UTC they were written in) and facts
as JSONB. SQLite keeps UTC times without a zone and JSON text, as before.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TIMES = {
    "work_items": ("next_due_at", "lease_until", "created_at", "updated_at"),
    "tickets": ("seen_at",),
    "steps": ("started_at", "finished_at"),
    "audit": ("at",),
}
DOCUMENTS = {"work_items": "facts", "steps": "evidence"}


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_workers_heartbeat_at", "workers", ["heartbeat_at"])
    with op.batch_alter_table("steps") as batch:
        batch.add_column(sa.Column("worker_id", sa.String(128), nullable=True))
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in TIMES.items():
        for column in columns:
            op.alter_column(table, column, type_=sa.DateTime(timezone=True),
                            postgresql_using=f"{column} AT TIME ZONE 'UTC'")
    for table, column in DOCUMENTS.items():
        op.alter_column(table, column, type_=JSONB(), postgresql_using=f"{column}::jsonb")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column in DOCUMENTS.items():
            op.alter_column(table, column, type_=sa.JSON(), postgresql_using=f"{column}::json")
        for table, columns in TIMES.items():
            for column in columns:
                op.alter_column(table, column, type_=sa.DateTime(),
                                postgresql_using=f"{column} AT TIME ZONE 'UTC'")
    with op.batch_alter_table("steps") as batch:
        batch.drop_column("worker_id")
    op.drop_index("ix_workers_heartbeat_at", "workers")
    op.drop_table("workers")
