"""Records (service clients, access keys) and the audit trail.

Revision ID: oauth_vault_0002
Revises: oauth_vault_0001
Create Date: 2025-02-01

Write the schema out in full (never import oauth_vault_mw.storage.sql: a revision is frozen).

A schema made by ``metadata.create_all`` is adopted by stamping ``oauth_vault_0001`` (see
``migrations.BASELINE``); made by a library that has these tables already, it has them too,
so a table that exists is left as it is.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "oauth_vault_0002"
down_revision = "oauth_vault_0001"
branch_labels = None
depends_on = None


def _missing(table: str) -> bool:
    if op.get_context().as_sql:  # offline (--sql): no database to look at
        return True
    return not sa.inspect(op.get_bind()).has_table(table)


def upgrade() -> None:
    if _missing("oauth_vault_records"):
        op.create_table(
            "oauth_vault_records",
            sa.Column("kind", sa.String(32), nullable=False),
            sa.Column("name", sa.String(128), nullable=False),
            sa.Column("data", sa.LargeBinary, nullable=False),
            sa.Column("updated_at", sa.Float, nullable=False),
            sa.PrimaryKeyConstraint("kind", "name"),
        )
    if _missing("oauth_vault_events"):
        op.create_table(
            "oauth_vault_events",
            # BIGSERIAL on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is the rowid
            sa.Column(
                "id",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                autoincrement=True,
                nullable=False,
            ),
            sa.Column("at", sa.Float, nullable=False),
            sa.Column("data", sa.LargeBinary, nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_oauth_vault_events_at", "oauth_vault_events", ["at"])


def downgrade() -> None:
    op.drop_table("oauth_vault_events")
    op.drop_table("oauth_vault_records")
