"""catalog read-path indexes: product search by name, pinyin and initials (trigram GIN on PostgreSQL)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26 14:10:00

"""
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

SEARCH_COLUMNS = ["name", "name_pinyin", "name_initials"]


def upgrade():
    # `q` is LIKE '%q%' on the three columns: on PostgreSQL a trigram GIN index answers it without a
    # scan of every product; SQLite gets a plain index of the same name (the schema matches the models).
    # fastupdate off: products change rarely, and a pending list left by a bulk import would make the
    # planner scan the table instead until the next vacuum.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_index("ix_products_name_search", "products", SEARCH_COLUMNS, unique=False, postgresql_using="gin",
                    postgresql_ops={column: "gin_trgm_ops" for column in SEARCH_COLUMNS},
                    postgresql_with={"fastupdate": "off"})


def downgrade():
    op.drop_index("ix_products_name_search", table_name="products")
