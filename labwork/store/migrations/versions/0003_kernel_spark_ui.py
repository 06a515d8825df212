"""Kernel launches remember the Spark UI of a PySpark-in-kernel driver.

Revision ID: 0003_kernel_spark_ui
Revises: 0002_history
"""
import sqlalchemy as sa
from alembic import op

revision = "0003_kernel_spark_ui"
down_revision = "0002_history"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kernel_launches") as batch:
        batch.add_column(sa.Column("spark_ui_url", sa.String(500), nullable=True))
        batch.create_index("ix_kernel_launches_kernel_id", ["kernel_id"])


def downgrade() -> None:
    with op.batch_alter_table("kernel_launches") as batch:
        batch.drop_index("ix_kernel_launches_kernel_id")
        batch.drop_column("spark_ui_url")
