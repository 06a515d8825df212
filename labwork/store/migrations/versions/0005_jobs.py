"""Jobs and their runs.

Revision ID: 0005_jobs
Revises: 0004_web_sessions
"""
import sqlalchemy as sa
from alembic import op

revision = "0005_jobs"
down_revision = "0004_web_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("notebook", sa.String(1000), nullable=False),
        sa.Column("runconfig", sa.String(200), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("schedule", sa.String(200)),
        sa.Column("timezone", sa.String(100), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("missed", sa.String(20), nullable=False),
        sa.Column("timeout_s", sa.Float),
        sa.Column("retries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("retry_delay_s", sa.Float, nullable=False),
        sa.Column("max_concurrent", sa.Integer, nullable=False, server_default="1"),
        sa.Column("webhook_url", sa.String(2000)),
        sa.Column("notify_success", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("next_fire_at", sa.DateTime(timezone=True), index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("project_id", "name", name="uq_jobs_project_name"),
    )
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True)),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("reason", sa.Text),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("runconfig", sa.String(200), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("notebook_hash", sa.String(64)),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="1"),
        sa.Column("retry_of", sa.Integer),
        sa.Column("kernel_id", sa.String(100)),
        sa.Column("history_run", sa.String(64)),
        sa.Column("exit_code", sa.Integer),
        sa.Column("pid", sa.Integer),
        sa.Column("output_path", sa.String(1000)),
        sa.Column("log_path", sa.String(1000)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("not_before", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("job_id", "scheduled_for", name="uq_job_runs_fire_time"),
    )


def downgrade() -> None:
    op.drop_table("job_runs")
    op.drop_table("jobs")
