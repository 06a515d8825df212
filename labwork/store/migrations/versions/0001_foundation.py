"""Foundation: projects, servers, kernel launches.

Revision ID: 0001_foundation
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001_foundation"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("path", sa.String(1000), nullable=False, unique=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "servers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("state", sa.String(20), nullable=False, index=True),
        sa.Column("ui", sa.String(10), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("port", sa.Integer),
        sa.Column("url", sa.String(500)),
        sa.Column("token", sa.String(200)),
        sa.Column("pid", sa.Integer),
        sa.Column("log_path", sa.String(1000), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True)),
        sa.Column("stopped_at", sa.DateTime(timezone=True)),
        sa.Column("stop_reason", sa.Text),
    )
    op.create_table(
        "kernel_launches",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("server_id", sa.Integer, sa.ForeignKey("servers.id", ondelete="SET NULL")),
        sa.Column("kernel_id", sa.String(100)),
        sa.Column("notebook", sa.String(1000), index=True),
        sa.Column("runconfig", sa.String(200), nullable=False),
        sa.Column("server_config", sa.JSON, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("kernel_launches")
    op.drop_table("servers")
    op.drop_table("projects")
