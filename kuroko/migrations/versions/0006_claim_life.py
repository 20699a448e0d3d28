"""The claim's life (issue 12): amounts claimed and paid with their currency, when it became
eligible and must be filed by, when it was filed, Amazon's last word, the nudges, what Amazon asked
for and by when, why it was closed, and its history (every reply attached, every reimbursement row
read: a repeat finds it there and does nothing twice).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TIMES = ("status_since", "eligible_at", "file_by", "filed_at", "last_amazon_at", "next_nudge_at",
         "more_info_asked_at", "more_info_by", "paid_at")


def upgrade() -> None:
    with op.batch_alter_table("claims") as batch:
        batch.add_column(sa.Column("currency", sa.String(8), nullable=True))
        batch.add_column(sa.Column("amount_claimed", sa.Numeric(14, 2), nullable=True))
        batch.add_column(sa.Column("amount_paid", sa.Numeric(14, 2), nullable=True))
        for name in TIMES:
            batch.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("nudges", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("more_info_text", sa.Text(), nullable=True))
        batch.add_column(sa.Column("closed_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("history", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=True))
    op.create_index("ix_claims_case_id", "claims", ["case_id"])
    op.create_index("ix_claims_status", "claims", ["status"])


def downgrade() -> None:
    op.drop_index("ix_claims_status", "claims")
    op.drop_index("ix_claims_case_id", "claims")
    with op.batch_alter_table("claims") as batch:
        for name in ("history", "closed_reason", "more_info_text", "nudges", *reversed(TIMES), "amount_paid",
                     "amount_claimed", "currency"):
            batch.drop_column(name)
