"""The SQL schema readrate aggregates into (SQLAlchemy Core; Alembic migrations mirror it).

Times are UTC, naive `datetime`s in Python, so SQLite and PostgreSQL compare them
the same way; buckets are by event time, not arrival time. The times of events in
the counter tables (`EVENT_TIME`) are stored as epoch milliseconds on SQLite.
"""

from datetime import timedelta

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

from readrate.events.clock import EPOCH, ms_to_datetime, naive_utc

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

ID = String(128)
# Tables keyed by text are stored WITHOUT ROWID on SQLite (sqlite_with_rowid=False): the primary key is
# then the table's own b-tree rather than one more index beside it, so each upsert writes one b-tree less.
COUNT = BigInteger
# 53-bit mantissa: sums of half stars are exact up to 2**52 votes.
RATING = Float(precision=53)
MILLISECOND = timedelta(milliseconds=1)


class EventTime(TypeDecorator):
    """An event's time (a naive UTC datetime in Python): TIMESTAMP on PostgreSQL, epoch milliseconds as an
    integer on SQLite. SQLite's own form of a time is 26 bytes of text: as integers the votes and hourly
    tables, with their indexes, take a third less room, and a rebuild writes and sorts that much less
    (bench/design_measurements.md). Queries bind and read datetimes on both databases as before; a bound
    time between two milliseconds goes up to the next one, so `>=` and `<` select what they would with the
    exact time (the stored times are whole milliseconds)."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect):
        return dialect.type_descriptor(BigInteger() if dialect.name == "sqlite" else DateTime())

    def process_bind_param(self, value, dialect):
        if value is None or dialect.name != "sqlite":
            return value
        return -((EPOCH - naive_utc(value)) // MILLISECOND)  # epoch milliseconds, rounded up

    def process_result_value(self, value, dialect):
        if value is None or dialect.name != "sqlite":
            return value
        return ms_to_datetime(value)


EVENT_TIME = EventTime()

article_stats = Table(
    "article_stats",
    metadata,
    Column("article_id", ID, primary_key=True),
    Column("reads", COUNT, nullable=False, default=0),
    Column("votes", COUNT, nullable=False, default=0),
    Column("rating_sum", RATING, nullable=False, default=0),
    Column("first_event_at", EVENT_TIME, nullable=True),
    Column("last_read_at", EVENT_TIME, nullable=True),
    Column("last_vote_at", EVENT_TIME, nullable=True),
    sqlite_with_rowid=False,
)

reads_hourly = Table(
    "reads_hourly",
    metadata,
    Column("article_id", ID, primary_key=True),
    Column("hour", EVENT_TIME, primary_key=True),
    Column("reads", COUNT, nullable=False),
    # Window reports scan by time first; covering so SQLite never visits the table.
    Index(None, "hour", "article_id", "reads"),
    sqlite_with_rowid=False,
)

reads_daily = Table(
    "reads_daily",
    metadata,
    Column("article_id", ID, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("reads", COUNT, nullable=False),
    Index(None, "day", "article_id", "reads"),
    sqlite_with_rowid=False,
)

votes_daily = Table(
    "votes_daily",
    metadata,
    Column("article_id", ID, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("votes", COUNT, nullable=False),
    Column("rating_sum", RATING, nullable=False),
    Index(None, "day", "article_id", "votes", "rating_sum"),
    sqlite_with_rowid=False,
)

votes = Table(
    "votes",
    metadata,
    Column("article_id", ID, primary_key=True),
    Column("voter_id", ID, primary_key=True),
    Column("rating", RATING, nullable=False),
    Column("voted_at", EVENT_TIME, nullable=False),
    Index(None, "voted_at", "article_id", "rating"),
    # One article's votes in a window (report article, a top list's few rows): covering, so the
    # rows are never visited; the primary key alone would read every vote of a popular article.
    Index(None, "article_id", "voted_at", "rating"),
    sqlite_with_rowid=False,
)

articles = Table(
    "articles",
    metadata,
    Column("article_id", ID, primary_key=True),
    Column("title", Text, nullable=True),
    Column("url", Text, nullable=True),
    sqlite_with_rowid=False,
)

stream_offsets = Table(
    "stream_offsets",
    metadata,
    Column("shard", Integer, primary_key=True, autoincrement=False),
    Column("last_id", String(64), nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

# One row: the installation this database belongs to (DESIGN.md, "The installation"). The primary key
# is always 1, so a second installation cannot add a row of its own beside the first.
installation = Table(
    "installation",
    metadata,
    Column("singleton", Integer, primary_key=True, autoincrement=False),
    Column("id", String(64), nullable=False),
    Column("prefix", String(128), nullable=False),
    Column("shards", Integer, nullable=False),
    Column("max_shards", Integer, nullable=False),
    Column("rating_scale", String(64), nullable=False),
    Column("wire", Integer, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    CheckConstraint("singleton = 1", name="one_installation"),
)

rejected_events = Table(
    "rejected_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("shard", Integer, nullable=False),
    Column("stream_id", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("received_at", DateTime, nullable=False),
    Index(None, "received_at"),
)

# The archive (DESIGN.md, "Archive"): the Parquet files committed batches wrote, by path under READRATE_ARCHIVE.
# A file is part of the archive only once the batch transaction that names it here has committed.
archive_files = Table(
    "archive_files",
    metadata,
    Column("path", String(255), primary_key=True),
    Column("day", Date, nullable=False),
    Column("shard", Integer, nullable=False),
    Column("events", BigInteger, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("first_id", String(64), nullable=False),
    Column("last_id", String(64), nullable=False),
    Column("committed_at", DateTime, nullable=False),
    Index(None, "day"),
)

# One row once archiving has started: when, and (archive_baseline) the counters as they stood then.
archive_state = Table(
    "archive_state",
    metadata,
    Column("singleton", Integer, primary_key=True, autoincrement=False),
    Column("started_at", DateTime, nullable=False),
    Column("root", Text, nullable=False),
    CheckConstraint("singleton = 1", name="one_archive"),
)

archive_baseline = Table(
    "archive_baseline",
    metadata,
    Column("article_id", ID, primary_key=True),
    Column("reads", COUNT, nullable=False),
    Column("votes", COUNT, nullable=False),
    Column("rating_sum", RATING, nullable=False),
    sqlite_with_rowid=False,
)

# Operator actions on counters (DESIGN.md "Aggregation, exactly once"): who did what, when, why, and its effect.
# Moderation actions travel through the article's shard stream and are applied by the drain; `rebuild`
# records the counting rules it applied to the past, which audits apply too.
operations = Table(
    "operations",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("created_at", DateTime, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(32), nullable=False),
    Column("article_id", ID, nullable=True),
    Column("voter_id", ID, nullable=True),
    Column("reason", Text, nullable=False),
    Column("params", Text, nullable=False),
    Column("effect", Text, nullable=True),
    Column("applied_at", DateTime, nullable=True),
    Column("undone_by", BigInteger, nullable=True),
    Index(None, "created_at"),
)
