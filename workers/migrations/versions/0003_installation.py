"""The installation record: which installation (prefix, shards, scale) this database belongs to.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "installation",
        sa.Column("singleton", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=128), nullable=False),
        sa.Column("shards", sa.Integer(), nullable=False),
        sa.Column("max_shards", sa.Integer(), nullable=False),
        sa.Column("rating_scale", sa.String(length=64), nullable=False),
        sa.Column("wire", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("singleton = 1", name=op.f("ck_installation_one_installation")),
        sa.PrimaryKeyConstraint("singleton", name=op.f("pk_installation")),
    )


def downgrade() -> None:
    op.drop_table("installation")
