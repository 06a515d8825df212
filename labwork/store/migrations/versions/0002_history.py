"""Run history: runs, entries, logged values, artifacts.

Revision ID: 0002_history
Revises: 0001_foundation
"""
import sqlalchemy as sa
from alembic import op

revision = "0002_history"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "history_runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("project", sa.String(200), index=True),
        sa.Column("project_dir", sa.String(1000), index=True),
        sa.Column("notebook", sa.String(1000), index=True),
        sa.Column("runconfig", sa.String(200)),
        sa.Column("kernel_id", sa.String(100)),
        sa.Column("host", sa.String(200)),
        sa.Column("pid", sa.Integer),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("history", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("last_seen", sa.DateTime(timezone=True)),
        sa.Column("entry_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("info", sa.JSON, nullable=False),
    )
    op.create_table(
        "history_entries",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("history_runs.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("execution_count", sa.Integer),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("duration_ms", sa.Float),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("error_name", sa.String(200)),
        sa.Column("error_value", sa.Text),
        sa.Column("traceback", sa.Text),
    )
    op.create_table(
        "history_values",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("history_runs.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("entry_id", sa.String(100), index=True),
        sa.Column("name", sa.String(200), nullable=False, index=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("value", sa.JSON),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "history_artifacts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("history_runs.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("entry_id", sa.String(100)),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("history_artifacts")
    op.drop_table("history_values")
    op.drop_table("history_entries")
    op.drop_table("history_runs")
