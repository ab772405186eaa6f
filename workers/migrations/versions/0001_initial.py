"""Initial schema: counters, buckets, votes, articles, stream offsets, dead letters.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(length=128)
# SQLite stores the text-keyed tables WITHOUT ROWID: the primary key is the table's b-tree (one index less
# to write per upsert). Set here before any release, so no database needs to be rebuilt.
RATING = sa.Float(precision=53)


def upgrade() -> None:
    op.create_table(
        "article_stats",
        sa.Column("article_id", ID, nullable=False),
        sa.Column("reads", sa.BigInteger(), nullable=False),
        sa.Column("votes", sa.BigInteger(), nullable=False),
        sa.Column("rating_sum", RATING, nullable=False),
        sa.Column("first_event_at", sa.DateTime(), nullable=True),
        sa.Column("last_read_at", sa.DateTime(), nullable=True),
        sa.Column("last_vote_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("article_id", name=op.f("pk_article_stats")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "articles",
        sa.Column("article_id", ID, nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("article_id", name=op.f("pk_articles")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "reads_daily",
        sa.Column("article_id", ID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("reads", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("article_id", "day", name=op.f("pk_reads_daily")),
        sqlite_with_rowid=False,
    )
    op.create_index(op.f("ix_reads_daily_day_article_id_reads"), "reads_daily", ["day", "article_id", "reads"])
    op.create_table(
        "reads_hourly",
        sa.Column("article_id", ID, nullable=False),
        sa.Column("hour", sa.DateTime(), nullable=False),
        sa.Column("reads", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("article_id", "hour", name=op.f("pk_reads_hourly")),
        sqlite_with_rowid=False,
    )
    op.create_index(op.f("ix_reads_hourly_hour_article_id_reads"), "reads_hourly", ["hour", "article_id", "reads"])
    op.create_table(
        "rejected_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("stream_id", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejected_events")),
    )
    op.create_index(op.f("ix_rejected_events_received_at"), "rejected_events", ["received_at"])
    op.create_table(
        "stream_offsets",
        sa.Column("shard", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_id", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("shard", name=op.f("pk_stream_offsets")),
    )
    op.create_table(
        "votes",
        sa.Column("article_id", ID, nullable=False),
        sa.Column("voter_id", ID, nullable=False),
        sa.Column("rating", RATING, nullable=False),
        sa.Column("voted_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("article_id", "voter_id", name=op.f("pk_votes")),
        sqlite_with_rowid=False,
    )
    op.create_index(op.f("ix_votes_voted_at_article_id_rating"), "votes", ["voted_at", "article_id", "rating"])
    op.create_table(
        "votes_daily",
        sa.Column("article_id", ID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("votes", sa.BigInteger(), nullable=False),
        sa.Column("rating_sum", RATING, nullable=False),
        sa.PrimaryKeyConstraint("article_id", "day", name=op.f("pk_votes_daily")),
        sqlite_with_rowid=False,
    )
    op.create_index(
        op.f("ix_votes_daily_day_article_id_votes_rating_sum"),
        "votes_daily",
        ["day", "article_id", "votes", "rating_sum"],
    )


def downgrade() -> None:
    for table in (
        "votes_daily", "votes", "stream_offsets", "rejected_events",
        "reads_hourly", "reads_daily", "articles", "article_stats",
    ):
        op.drop_table(table)
