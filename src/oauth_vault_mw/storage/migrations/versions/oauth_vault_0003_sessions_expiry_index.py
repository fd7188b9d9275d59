"""An index on the sessions' expiry, for the batched purge of expired sessions.

Revision ID: oauth_vault_0003
Revises: oauth_vault_0002
Create Date: 2026-12-04

Write the schema out in full (never import oauth_vault_mw.storage.sql: a revision is frozen).
Login states have had theirs since 0001.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "oauth_vault_0003"
down_revision = "oauth_vault_0002"
branch_labels = None
depends_on = None

_INDEX = "ix_oauth_vault_sessions_expires_at"


def _missing() -> bool:
    if op.get_context().as_sql:  # offline (--sql): no database to look at
        return True
    indexes = sa.inspect(op.get_bind()).get_indexes("oauth_vault_sessions")
    return all(index["name"] != _INDEX for index in indexes)


def upgrade() -> None:
    if _missing():
        op.create_index(_INDEX, "oauth_vault_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index(_INDEX, table_name="oauth_vault_sessions")
