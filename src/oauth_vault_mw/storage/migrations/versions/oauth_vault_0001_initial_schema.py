"""The first schema: credentials, identities, login states, sessions, meta.

Revision ID: oauth_vault_0001
Revises:
Create Date: 2025-01-01

The same tables and indexes as ``metadata.create_all`` made before migrations existed, so such
a database is adopted by stamping this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "oauth_vault_0001"
down_revision = None
branch_labels = ("oauth_vault",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_vault_credentials",
        sa.Column("connection_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=True),
        sa.Column("scope", sa.Text, nullable=True),
        sa.Column("sealed", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.PrimaryKeyConstraint("connection_id", "user_id", "account"),
    )
    op.create_index("ix_oauth_vault_credentials_user", "oauth_vault_credentials", ["user_id"])
    op.create_index(
        "ix_oauth_vault_credentials_expires", "oauth_vault_credentials", ["status", "expires_at"]
    )
    op.create_table(
        "oauth_vault_identities",
        sa.Column("connection_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("connection_id", "subject"),
    )
    op.create_index("ix_oauth_vault_identities_user_id", "oauth_vault_identities", ["user_id"])
    op.create_table(
        "oauth_vault_login_states",
        sa.Column("state_hash", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("state_hash"),
    )
    op.create_index(
        "ix_oauth_vault_login_states_expires_at", "oauth_vault_login_states", ["expires_at"]
    )
    op.create_table(
        "oauth_vault_sessions",
        sa.Column("session_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("session_hash"),
    )
    op.create_index("ix_oauth_vault_sessions_user_id", "oauth_vault_sessions", ["user_id"])
    op.create_table(
        "oauth_vault_meta",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    for table in ("meta", "sessions", "login_states", "identities", "credentials"):
        op.drop_table(f"oauth_vault_{table}")
