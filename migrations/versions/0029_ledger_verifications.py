"""ledger verifications: a full verification requested through the API, its progress and its result

Revision ID: 0029
Revises: 0028
Create Date: 2026-11-27 15:20:00

A verification of a year's ledger takes longer than a request should: it is queued, run by a task, and polled.
"""
import sqlalchemy as sa
from alembic import op

revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "ledger_verifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress_done", sa.Integer(), nullable=False),
        sa.Column("progress_total", sa.Integer(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=True),
        sa.Column("transactions", sa.Integer(), nullable=True),
        sa.Column("balanced", sa.Boolean(), nullable=True),
        sa.Column("chain_intact", sa.Boolean(), nullable=True),
        sa.Column("first_bad_id", sa.Integer(), nullable=True),
        sa.Column("failure_reason", sa.String(length=200), nullable=True),
        sa.Column("requested_by", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')",
                           name=op.f("ck_ledger_verifications_status")),
        sa.CheckConstraint("progress_done >= 0 AND progress_total >= 0", name=op.f("ck_ledger_verifications_counts")),
        sa.ForeignKeyConstraint(["requested_by"], ["users.id"],
                                name=op.f("fk_ledger_verifications_requested_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_verifications")),
    )


def downgrade():
    op.drop_table("ledger_verifications")
