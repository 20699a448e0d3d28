"""Claims: the lost and damaged MCF parcels the after-sales procedure prepared for a person to file
in Seller Central (kind, item, MCF order, package, status, text, Amazon's case id); one per kind
and parcel.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "claims",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("item_id", sa.Integer(), sa.ForeignKey("work_items.id"), nullable=False),
        sa.Column("mcf_order_id", sa.String(64), nullable=False),
        sa.Column("package_number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("case_id", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("kind", "mcf_order_id", "package_number"),
    )
    op.create_index("ix_claims_item_id", "claims", ["item_id"])
    op.create_index("ix_claims_mcf_order_id", "claims", ["mcf_order_id"])


def downgrade() -> None:
    op.drop_index("ix_claims_mcf_order_id", "claims")
    op.drop_index("ix_claims_item_id", "claims")
    op.drop_table("claims")
