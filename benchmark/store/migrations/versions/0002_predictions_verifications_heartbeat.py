"""Schema 2: per-sample predictions, reproduction records, and the runs' heartbeat.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    tables = set(sa.inspect(op.get_bind()).get_table_names())
    if "predictions" not in tables:
        op.create_table(
            "predictions",
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"),
                      nullable=False, index=True),
            sa.Column("after_session", sa.Integer(), nullable=False),
            sa.Column("eval_set", sa.String(200), nullable=False),
            sa.Column("predicted", sa.JSON(), nullable=False),
            sa.Column("labels", sa.JSON(), nullable=False),
            sa.UniqueConstraint("run_id", "after_session", "eval_set",
                                name="uq_predictions_key"))
    if "verifications" not in tables:
        op.create_table(
            "verifications",
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"),
                      nullable=False, index=True),
            sa.Column("reproduction_id", sa.String(32), nullable=True),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("verifier", sa.String(255), nullable=False),
            sa.Column("host", sa.String(255), nullable=False),
            sa.Column("max_difference", sa.Float(), nullable=False),
            sa.Column("tolerance", sa.Float(), nullable=False),
            sa.Column("within_tolerance", sa.Boolean(), nullable=False),
            sa.Column("independent", sa.Boolean(), nullable=False))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(), nullable=True))
