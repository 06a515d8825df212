"""Dashboard log-in sessions, kept server-side (the cookie holds only a signed session id).

Revision ID: 0004_web_sessions
Revises: 0003_kernel_spark_ui
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_web_sessions"
down_revision = "0003_kernel_spark_ui"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_web_sessions_expires_at", "web_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_web_sessions_expires_at", "web_sessions")
    op.drop_table("web_sessions")
