"""One engine, many procedures (commit cdd8478): orders → work_items keyed (procedure, key), the
other tables' order_id → item_id, and the robot's own hand-over ticket. Every row is kept.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

CHILDREN = ("tickets", "steps", "audit")
INDEXED_CHILDREN = ("steps", "audit")


def upgrade() -> None:
    op.rename_table("orders", "work_items")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER SEQUENCE IF EXISTS orders_id_seq RENAME TO work_items_id_seq")
        op.execute("ALTER INDEX IF EXISTS orders_pkey RENAME TO work_items_pkey")
    with op.batch_alter_table("work_items") as batch:
        batch.drop_index("ix_orders_order_number")
        batch.drop_index("ix_orders_state")
        batch.drop_index("ix_orders_next_due_at")
        batch.alter_column("order_number", new_column_name="key", existing_type=sa.String(64),
                           existing_nullable=False)
        batch.add_column(sa.Column("handover_ticket_id", sa.Integer(), nullable=True))
    op.create_index("ix_work_items_key", "work_items", ["key"])
    op.create_index("ix_work_items_state", "work_items", ["state"])
    op.create_index("ix_work_items_next_due_at", "work_items", ["next_due_at"])
    for table in CHILDREN:
        with op.batch_alter_table(table) as batch:
            if table in INDEXED_CHILDREN:
                batch.drop_index(f"ix_{table}_order_id")
            batch.alter_column("order_id", new_column_name="item_id", existing_type=sa.Integer())
        if table in INDEXED_CHILDREN:
            op.create_index(f"ix_{table}_item_id", table, ["item_id"])


def downgrade() -> None:
    for table in CHILDREN:
        with op.batch_alter_table(table) as batch:
            if table in INDEXED_CHILDREN:
                batch.drop_index(f"ix_{table}_item_id")
            batch.alter_column("item_id", new_column_name="order_id", existing_type=sa.Integer())
        if table in INDEXED_CHILDREN:
            op.create_index(f"ix_{table}_order_id", table, ["order_id"])
    with op.batch_alter_table("work_items") as batch:
        batch.drop_index("ix_work_items_key")
        batch.drop_index("ix_work_items_state")
        batch.drop_index("ix_work_items_next_due_at")
        batch.drop_column("handover_ticket_id")
        batch.alter_column("key", new_column_name="order_number", existing_type=sa.String(64),
                           existing_nullable=False)
    op.create_index("ix_orders_order_number", "work_items", ["order_number"])
    op.create_index("ix_orders_state", "work_items", ["state"])
    op.create_index("ix_orders_next_due_at", "work_items", ["next_due_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER SEQUENCE IF EXISTS work_items_id_seq RENAME TO orders_id_seq")
        op.execute("ALTER INDEX IF EXISTS work_items_pkey RENAME TO orders_pkey")
    op.rename_table("work_items", "orders")
