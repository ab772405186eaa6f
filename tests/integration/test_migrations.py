"""Alembic migrations on fresh SQLite and PostgreSQL databases build exactly workers/schema.py."""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from helpers import READRATE, env_for
from sqlalchemy import insert, inspect, select

from readrate.events.errors import DatabaseUnavailable
from readrate.reports.localredis import free_port
from readrate.workers.db import _alembic_config, current_revision, head_revision, make_engine, upgrade
from readrate.workers.schema import article_stats, metadata, reads_hourly, votes

TABLES = {
    "article_stats", "reads_hourly", "reads_daily", "votes_daily", "votes", "articles", "stream_offsets",
    "rejected_events",
}


@pytest.fixture
def fresh(database_url):
    engine = make_engine(database_url, create=True)
    yield engine
    engine.dispose()


def differences(engine) -> list:
    with engine.connect() as conn:
        opts = {"compare_type": True, "compare_server_default": True}
        context = MigrationContext.configure(conn, opts=opts)
        return compare_metadata(context, metadata)


def test_a_fresh_database_has_no_revision(fresh):
    assert current_revision(fresh) is None


def test_upgrade_creates_every_table_of_the_design_and_stamps_the_head_revision(fresh):
    revision = upgrade(fresh)

    assert revision == head_revision()
    assert current_revision(fresh) == head_revision()
    assert TABLES <= set(inspect(fresh).get_table_names())


def test_the_migrated_database_matches_the_schema_module_exactly(fresh):
    upgrade(fresh)

    assert differences(fresh) == []


def test_the_migrated_tables_have_the_primary_keys_the_design_names(fresh):
    upgrade(fresh)
    inspector = inspect(fresh)

    def pk(table: str) -> list[str]:
        return inspector.get_pk_constraint(table)["constrained_columns"]

    assert pk("article_stats") == ["article_id"]
    assert pk("reads_hourly") == ["article_id", "hour"]
    assert pk("reads_daily") == ["article_id", "day"]
    assert pk("votes_daily") == ["article_id", "day"]
    assert pk("votes") == ["article_id", "voter_id"]
    assert pk("stream_offsets") == ["shard"]


def test_upgrading_twice_changes_nothing_and_keeps_the_data(fresh):
    upgrade(fresh)
    with fresh.begin() as conn:
        conn.execute(insert(article_stats), [{"article_id": "a", "reads": 3, "votes": 1, "rating_sum": 4.0,
                                              "first_event_at": datetime(2025, 1, 1)}])

    assert upgrade(fresh) == head_revision()

    assert differences(fresh) == []
    with fresh.connect() as conn:
        assert conn.execute(select(article_stats.c.article_id, article_stats.c.reads)).all() == [("a", 3)]


# Revision 0004's event-time columns: SQLAlchemy's DateTime (text on SQLite, TIMESTAMP on PostgreSQL).
OLD = sa.MetaData()
OLD_TABLES = [
    sa.Table("article_stats", OLD, sa.Column("article_id", sa.String), sa.Column("reads", sa.Integer),
             sa.Column("votes", sa.Integer), sa.Column("rating_sum", sa.Float),
             *(sa.Column(name, sa.DateTime) for name in ("first_event_at", "last_read_at", "last_vote_at"))),
    sa.Table("reads_hourly", OLD, sa.Column("article_id", sa.String), sa.Column("hour", sa.DateTime),
             sa.Column("reads", sa.Integer)),
    sa.Table("votes", OLD, sa.Column("article_id", sa.String), sa.Column("voter_id", sa.String),
             sa.Column("rating", sa.Float), sa.Column("voted_at", sa.DateTime)),
]
ROWS = {
    "article_stats": [{"article_id": "a", "reads": 3, "votes": 1, "rating_sum": 4.5,
                       "first_event_at": datetime(2025, 1, 1, 9, 30, 0, 125000),
                       "last_read_at": datetime(2025, 1, 2, 23, 59, 59, 999000), "last_vote_at": None}],
    "reads_hourly": [{"article_id": "a", "hour": datetime(2025, 1, 1, 9), "reads": 2},
                     {"article_id": "a", "hour": datetime(2025, 1, 2, 23), "reads": 1}],
    "votes": [{"article_id": "a", "voter_id": "v", "rating": 4.5,
               "voted_at": datetime(2024, 12, 31, 0, 0, 0, 1000)}],
}


def _read(conn, tables) -> dict:
    return {t.name: [dict(row._mapping) for row in conn.execute(select(t).order_by(*t.c))] for t in tables}


def test_0005_keeps_every_event_time_exactly_and_stores_them_as_integers_on_sqlite(fresh):
    upgrade(fresh, "0004")
    with fresh.begin() as conn:
        for table in OLD_TABLES:
            conn.execute(insert(table), ROWS[table.name])

    upgrade(fresh)

    assert differences(fresh) == []
    with fresh.connect() as conn:
        assert _read(conn, [article_stats, reads_hourly, votes]) == ROWS
        # window queries bind datetimes, compared with the stored times
        since = datetime(2025, 1, 2)
        assert conn.scalar(select(reads_hourly.c.reads).where(reads_hourly.c.hour >= since)) == 1
        if fresh.dialect.name == "sqlite":
            assert conn.exec_driver_sql("SELECT voted_at, typeof(voted_at) FROM votes").all() == \
                [(1735603200001, "integer")]
            assert conn.exec_driver_sql("SELECT first_event_at FROM article_stats").scalar() == 1735723800125


def test_0005_downgrades_to_the_same_times_as_revision_0004_stored_them(fresh):
    upgrade(fresh)
    with fresh.begin() as conn:
        for table in (article_stats, reads_hourly, votes):
            conn.execute(insert(table), ROWS[table.name])

    with fresh.connect() as conn:
        command.downgrade(_alembic_config(conn), "0004")
        conn.commit()

    assert current_revision(fresh) == "0004"
    with fresh.connect() as conn:
        assert _read(conn, OLD_TABLES) == ROWS
        if fresh.dialect.name == "sqlite":
            assert conn.exec_driver_sql("SELECT voted_at FROM votes").scalar() == "2024-12-31 00:00:00.001000"


def test_several_processes_upgrading_a_fresh_database_at_once_all_succeed(settings, fresh):
    # Real processes: workers starting together each run `upgrade` on start.
    processes = [
        subprocess.Popen([*READRATE, "db", "upgrade"], env=env_for(settings), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outcomes = [(p.wait(timeout=180), p.stderr.read()) for p in processes]
    for process in processes:
        process.stdout.close()
        process.stderr.close()

    assert [code for code, _ in outcomes] == [0, 0, 0], outcomes
    assert current_revision(fresh) == head_revision()
    assert differences(fresh) == []


def test_upgrading_an_unreachable_database_raises_database_unavailable_naming_it():
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")

    with pytest.raises(DatabaseUnavailable) as caught:
        upgrade(engine)

    assert "127.0.0.1" in str(caught.value)
    engine.dispose()


def test_the_sqlite_database_runs_in_wal_mode_after_upgrade(sqlite_url):
    engine = make_engine(sqlite_url, create=True)
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_a_sqlite_database_in_a_directory_that_does_not_exist_yet_is_created(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'new' / 'dir' / 'readrate.db'}", create=True)

    assert upgrade(engine) == head_revision()
    assert (tmp_path / "new" / "dir" / "readrate.db").exists()
    engine.dispose()


def test_event_times_compare_with_bound_times_between_milliseconds_as_the_exact_times_do(fresh):
    upgrade(fresh)
    at = datetime(2025, 3, 1, 12, 0, 0, 7000)  # votes are stored to the millisecond
    with fresh.begin() as conn:
        conn.execute(insert(votes), [{"article_id": "a", "voter_id": "v", "rating": 3.0, "voted_at": at}])

    def voters(*conditions) -> list[str]:
        with fresh.connect() as conn:
            return list(conn.scalars(select(votes.c.voter_id).where(*conditions)))

    half_after, half_before = at + timedelta(microseconds=500), at - timedelta(microseconds=500)
    assert voters(votes.c.voted_at < half_after) == ["v"]
    assert voters(votes.c.voted_at >= half_after) == []
    assert voters(votes.c.voted_at >= half_before) == ["v"]
    assert voters(votes.c.voted_at < half_before) == []
    next_ms = at + timedelta(milliseconds=1)
    assert voters(votes.c.voted_at == at, votes.c.voted_at >= at, votes.c.voted_at < next_ms) == ["v"]
