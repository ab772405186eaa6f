"""The archive's bookkeeping (committed Parquet files, when archiving started, the counters it started from)
and the operations table (operator actions on counters: moderation, rebuilds with counting rules).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "archive_files",
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("first_id", sa.String(length=64), nullable=False),
        sa.Column("last_id", sa.String(length=64), nullable=False),
        sa.Column("committed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("path", name=op.f("pk_archive_files")),
    )
    op.create_index(op.f("ix_archive_files_day"), "archive_files", ["day"])
    op.create_table(
        "archive_state",
        sa.Column("singleton", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("root", sa.Text(), nullable=False),
        sa.CheckConstraint("singleton = 1", name=op.f("ck_archive_state_one_archive")),
        sa.PrimaryKeyConstraint("singleton", name=op.f("pk_archive_state")),
    )
    op.create_table(
        "archive_baseline",
        sa.Column("article_id", sa.String(length=128), nullable=False),
        sa.Column("reads", sa.BigInteger(), nullable=False),
        sa.Column("votes", sa.BigInteger(), nullable=False),
        sa.Column("rating_sum", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("article_id", name=op.f("pk_archive_baseline")),
        sqlite_with_rowid=False,
    )


    op.create_table(
        "operations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("article_id", sa.String(length=128), nullable=True),
        sa.Column("voter_id", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("effect", sa.Text(), nullable=True),
        sa.Column("applied_at", sa.DateTime(), nullable=True),
        sa.Column("undone_by", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operations")),
    )
    op.create_index(op.f("ix_operations_created_at"), "operations", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_operations_created_at"), table_name="operations")
    op.drop_table("operations")
    op.drop_table("archive_baseline")
    op.drop_table("archive_state")
    op.drop_index(op.f("ix_archive_files_day"), table_name="archive_files")
    op.drop_table("archive_files")
