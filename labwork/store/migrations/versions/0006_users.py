"""Users, personal API tokens (hashes only), project membership; log-in sessions carry their user.

An installation from before users keeps working: when the store already holds projects, the
upgrade makes the user `admin` (an administrator without a password; LABWORK_HOME/token
authenticates as it) and makes it the owner of every project. Servers, runs and jobs keep their
rows untouched (they hang off projects). An empty store gets its admin at the first start
(`labwork.auth.bootstrap`), which says how to log in.

Revision ID: 0006_users
Revises: 0005_jobs
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0006_users"
down_revision = "0005_jobs"
branch_labels = None
depends_on = None

ADMIN = "admin"


def upgrade() -> None:
    users = op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(200)),
        sa.Column("admin", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
    )
    members = op.create_table(
        "project_members",
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  primary_key=True, index=True),
        sa.Column("role", sa.String(10), nullable=False),
    )
    with op.batch_alter_table("web_sessions") as batch:
        batch.add_column(sa.Column("user_id", sa.Integer, nullable=True))
    # Sessions from before users belonged to the token's holder; they end (log in again).
    op.execute(sa.text("DELETE FROM web_sessions"))

    conn = op.get_bind()
    projects = [row[0] for row in conn.execute(sa.text("SELECT id FROM projects"))]
    if projects:
        op.bulk_insert(users, [{"id": 1, "name": ADMIN, "password_hash": None, "admin": True,
                                "created_at": datetime.now(UTC)}])
        op.bulk_insert(members, [{"project_id": pid, "user_id": 1, "role": "owner"} for pid in projects])
        if conn.dialect.name == "postgresql":  # the explicit id leaves the sequence behind
            op.execute(sa.text("SELECT setval(pg_get_serial_sequence('users', 'id'), 1)"))


def downgrade() -> None:
    with op.batch_alter_table("web_sessions") as batch:
        batch.drop_column("user_id")
    op.drop_table("project_members")
    op.drop_table("api_tokens")
    op.drop_table("users")
