"""store closures: every period a store was closed, so a sale stamped inside one is a conflict after a reopening too

Revision ID: 0059
Revises: 0058
Create Date: 2026-11-29 17:40:00

stores.deactivated_at held only the current closure and was cleared when the store reopened, so a queued offline sale
stamped while it was closed was then accepted. store_closures keeps each closed period (closed_at, reopened_at); a
store closed now becomes one open closure from its deactivated_at, which goes. A downgrade keeps the open closures'
moments only.
"""
import sqlalchemy as sa
from alembic import op

revision = '0059'
down_revision = '0058'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "store_closures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_by", sa.Integer(), nullable=True),
        sa.Column("reopened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reopened_by", sa.Integer(), nullable=True),
        sa.CheckConstraint("reopened_at IS NULL OR reopened_at >= closed_at",
                           name=op.f("ck_store_closures_reopened_at")),
        sa.ForeignKeyConstraint(["closed_by"], ["users.id"], name=op.f("fk_store_closures_closed_by_users")),
        sa.ForeignKeyConstraint(["reopened_by"], ["users.id"], name=op.f("fk_store_closures_reopened_by_users")),
        sa.ForeignKeyConstraint(["store_id"], ["stores.id"], name=op.f("fk_store_closures_store_id_stores")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_store_closures")),
    )
    op.create_index(op.f("ix_store_closures_store_id"), "store_closures", ["store_id"])
    op.create_index("uq_store_closures_open", "store_closures", ["store_id"], unique=True,
                    postgresql_where=sa.text("reopened_at IS NULL"), sqlite_where=sa.text("reopened_at IS NULL"))
    op.execute("INSERT INTO store_closures (store_id, closed_at) SELECT id, deactivated_at FROM stores "
               "WHERE active = false AND deactivated_at IS NOT NULL")
    with op.batch_alter_table("stores") as batch:
        batch.drop_column("deactivated_at")


def downgrade():
    with op.batch_alter_table("stores") as batch:
        batch.add_column(sa.Column("deactivated_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE stores SET deactivated_at = (SELECT closed_at FROM store_closures WHERE store_closures.store_id "
               "= stores.id AND store_closures.reopened_at IS NULL)")
    op.drop_table("store_closures")
