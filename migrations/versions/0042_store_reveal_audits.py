"""ledger: a store bank file's reveal is audited per store

Revision ID: 0042
Revises: 0041
Create Date: 2026-11-28 22:10:00

Downloading a store batch's bank file showed every store's full account number, but a reveal audit row named only a
household or a supplier, so the download left no row naming the stores whose accounts were revealed. A row now names
exactly one household, supplier or store.
"""
import sqlalchemy as sa
from alembic import op

revision = '0042'
down_revision = '0041'
branch_labels = None
depends_on = None

ONE_OF_THREE = ("(CASE WHEN household_id IS NULL THEN 0 ELSE 1 END + CASE WHEN supplier_id IS NULL THEN 0 ELSE 1 END"
                " + CASE WHEN store_id IS NULL THEN 0 ELSE 1 END) = 1")


def upgrade():
    with op.batch_alter_table("reveal_audits") as batch:
        batch.add_column(sa.Column("store_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_reveal_audits_store_id_stores"), "stores", ["store_id"], ["id"])
        batch.create_index(op.f("ix_reveal_audits_store_id"), ["store_id"])
        batch.drop_constraint(op.f("ck_reveal_audits_one_subject"), type_="check")
        batch.create_check_constraint(op.f("ck_reveal_audits_one_subject"), ONE_OF_THREE)


def downgrade():
    with op.batch_alter_table("reveal_audits") as batch:  # refused while a row names a store (the audit is kept)
        batch.drop_constraint(op.f("ck_reveal_audits_one_subject"), type_="check")
        batch.drop_index(op.f("ix_reveal_audits_store_id"))
        batch.drop_constraint(op.f("fk_reveal_audits_store_id_stores"), type_="foreignkey")
        batch.drop_column("store_id")
        batch.create_check_constraint(op.f("ck_reveal_audits_one_subject"),
                                      "(household_id IS NULL) != (supplier_id IS NULL)")
