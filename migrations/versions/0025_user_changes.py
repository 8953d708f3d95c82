"""user changes: an append-only audit of who created, disabled, enabled, re-passworded or re-scoped which user, when

Revision ID: 0025
Revises: 0024
Create Date: 2026-11-27 15:20:00

Creating a user, disabling or enabling one, an admin's password reset, the command line's `create-user` and
`reset-password`, and a user's own password change left no trace of who did it when; a role or scope could not be
changed at all. Each is now a row here (never a password or its hash), and PostgreSQL refuses to change or delete one.
"""
import sqlalchemy as sa
from alembic import op

from shop.db import UTCDateTime

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None

ACTIONS = "'created', 'disabled', 'enabled', 'password_reset', 'password_changed', 'role_changed', 'scope_changed'"
PG_TRIGGERS = (
    """CREATE FUNCTION user_changes_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'user changes are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
    END $$""",
    """CREATE TRIGGER user_changes_append_only BEFORE UPDATE OR DELETE ON user_changes
    FOR EACH ROW EXECUTE FUNCTION user_changes_refuse_change()""",
)


def upgrade():
    op.create_table(
        "user_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("old_role", sa.String(length=16), nullable=True),
        sa.Column("new_role", sa.String(length=16), nullable=True),
        sa.Column("old_store_id", sa.Integer(), nullable=True),
        sa.Column("new_store_id", sa.Integer(), nullable=True),
        sa.Column("old_supplier_id", sa.Integer(), nullable=True),
        sa.Column("new_supplier_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(f"action IN ({ACTIONS})", name=op.f("ck_user_changes_action")),
        sa.ForeignKeyConstraint(["actor_id"], ["users.id"], name=op.f("fk_user_changes_actor_id_users")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_user_changes_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_changes")),
    )
    with op.batch_alter_table("user_changes") as batch:
        batch.create_index(batch.f("ix_user_changes_actor_id"), ["actor_id"], unique=False)
        batch.create_index(batch.f("ix_user_changes_user_id"), ["user_id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        for statement in PG_TRIGGERS:
            op.execute(statement)


def downgrade():
    op.drop_table("user_changes")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION user_changes_refuse_change()")
