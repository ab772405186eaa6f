"""SQLite: event times in the counter tables as epoch milliseconds (integers), not 26 bytes of text.

`reads_hourly.hour`, `votes.voted_at` and article_stats' first and last event
times. SQLite cannot change a column's type, so each table is made again under a
new name, filled from the old one with its times converted, and takes the old
name; its indexes are made again. PostgreSQL keeps TIMESTAMP: nothing to do.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ID = sa.String(length=128)
RATING = sa.Float(precision=53)
# julianday() of the Unix epoch; SQLite parses the stored text to the millisecond.
UNIX_EPOCH_JULIAN_DAY = 2440587.5


def _tables(time_type) -> dict:
    """Each table's columns (times as `time_type`), time columns and secondary indexes."""
    return {
        "article_stats": (
            [sa.Column("article_id", ID, nullable=False),
             sa.Column("reads", sa.BigInteger(), nullable=False),
             sa.Column("votes", sa.BigInteger(), nullable=False),
             sa.Column("rating_sum", RATING, nullable=False),
             sa.Column("first_event_at", time_type(), nullable=True),
             sa.Column("last_read_at", time_type(), nullable=True),
             sa.Column("last_vote_at", time_type(), nullable=True),
             sa.PrimaryKeyConstraint("article_id", name=op.f("pk_article_stats"))],
            ("first_event_at", "last_read_at", "last_vote_at"), []),
        "reads_hourly": (
            [sa.Column("article_id", ID, nullable=False),
             sa.Column("hour", time_type(), nullable=False),
             sa.Column("reads", sa.BigInteger(), nullable=False),
             sa.PrimaryKeyConstraint("article_id", "hour", name=op.f("pk_reads_hourly"))],
            ("hour",), [("ix_reads_hourly_hour_article_id_reads", ["hour", "article_id", "reads"])]),
        "votes": (
            [sa.Column("article_id", ID, nullable=False),
             sa.Column("voter_id", ID, nullable=False),
             sa.Column("rating", RATING, nullable=False),
             sa.Column("voted_at", time_type(), nullable=False),
             sa.PrimaryKeyConstraint("article_id", "voter_id", name=op.f("pk_votes"))],
            ("voted_at",), [("ix_votes_voted_at_article_id_rating", ["voted_at", "article_id", "rating"]),
                            ("ix_votes_article_id_voted_at_rating", ["article_id", "voted_at", "rating"])]),
    }


def _remake(time_type, convert) -> None:
    for name, (columns, times, indexes) in _tables(time_type).items():
        new = f"_new_{name}"
        op.create_table(new, *columns, sqlite_with_rowid=False)
        names = [c.name for c in columns if isinstance(c, sa.Column)]
        values = [convert(c) if c in times else c for c in names]
        op.execute(f"INSERT INTO {new} ({', '.join(names)}) SELECT {', '.join(values)} FROM {name}")
        op.drop_table(name)
        op.rename_table(new, name)
        for index, on in indexes:
            op.create_index(op.f(index), name, on)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _remake(sa.BigInteger,
            lambda c: f"CAST(round((julianday({c}) - {UNIX_EPOCH_JULIAN_DAY}) * 86400000) AS INTEGER)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # Back to SQLAlchemy's text form, `YYYY-MM-DD HH:MM:SS.ffffff`.
    _remake(sa.DateTime, lambda c: f"strftime('%Y-%m-%d %H:%M:%f', {c} / 1000.0, 'unixepoch') || '000'")
