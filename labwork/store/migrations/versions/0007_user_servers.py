"""A server per user and project; run history records who ran it.

`servers.user_id` is whose server a row is (the `/user/<name>/<project>/` it is proxied at);
`history_runs.user` the name of the user whose kernel or Spark session made the run (a name, so
a run keeps saying who made it after the user is removed); `kernel_launches.spark_ui_proxy` the
path a PySpark kernel's Spark UI is proxied at (/spark/kernel-<id>). Rows from before users were the
single token's, so they become `admin`'s when 0006 made that user.

Revision ID: 0007_user_servers
Revises: 0006_users
"""
import sqlalchemy as sa
from alembic import op

revision = "0007_user_servers"
down_revision = "0006_users"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("servers") as batch:
        batch.add_column(sa.Column("user_id", sa.Integer, nullable=True))
        batch.create_index("ix_servers_user_id", ["user_id"])
    with op.batch_alter_table("history_runs") as batch:
        batch.add_column(sa.Column("user", sa.String(64), nullable=True))
        batch.create_index("ix_history_runs_user", ["user"])
    with op.batch_alter_table("kernel_launches") as batch:
        batch.add_column(sa.Column("spark_ui_proxy", sa.String(200), nullable=True))
    conn = op.get_bind()
    admin = conn.execute(sa.text("SELECT id, name FROM users WHERE admin = :t ORDER BY id LIMIT 1"),
                         {"t": True}).first()
    if admin is not None:
        conn.execute(sa.text("UPDATE servers SET user_id = :u WHERE user_id IS NULL"), {"u": admin[0]})
        conn.execute(sa.text("UPDATE history_runs SET \"user\" = :n WHERE \"user\" IS NULL"), {"n": admin[1]})


def downgrade() -> None:
    with op.batch_alter_table("kernel_launches") as batch:
        batch.drop_column("spark_ui_proxy")
    with op.batch_alter_table("history_runs") as batch:
        batch.drop_index("ix_history_runs_user")
        batch.drop_column("user")
    with op.batch_alter_table("servers") as batch:
        batch.drop_index("ix_servers_user_id")
        batch.drop_column("user_id")
