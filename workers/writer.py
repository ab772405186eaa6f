"""Applies one Batch to the database in one transaction, guarded by the offset compare-and-set.

Step 4 of "Aggregation, exactly once" in DESIGN.md. The offset moves first
(`UPDATE … WHERE last_id = :old`): zero rows means another drain already applied
these entries, so nothing else is written. Then one upsert statement per table,
rows sorted by key (two transactions never take row locks in opposite orders),
and the dead letters — all or nothing.

The statements are built with SQLAlchemy Core and compiled once per dialect, then
executed at driver level with plain rows: SQLAlchemy's per-row bind processing
cost as much as SQLite's own work. On PostgreSQL each upsert is one
`INSERT … SELECT FROM json_populate_recordset(…)`, one statement and one round trip
per table. The figures behind both choices are in bench/RESULTS.md ("Design
measurements").
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Engine,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from readrate.events.clock import MS_PER_DAY, MS_PER_HOUR, datetime_to_ms, day_date, utc_now
from readrate.events.streamids import START_ID

from .aggregate import Batch
from .archive import check_required
from .db import writing
from .moderation import apply_operation
from .schema import (
    archive_baseline,
    archive_files,
    archive_state,
    article_stats,
    reads_daily,
    reads_hourly,
    rejected_events,
    stream_offsets,
    votes,
    votes_daily,
)
from .votes import VotePlan, plan_votes

# Pairs per lookup of stored votes: keeps bound parameters well under SQLite's limit.
VOTE_LOOKUP_CHUNK = 2000


class OffsetMoved(Exception):
    """Raised inside the transaction when the offset CAS matched no row (another drain got there first)."""


def _earliest(column, new):
    return case((or_(column.is_(None), new < column), new), else_=column)


def _latest(column, new):
    return case((or_(column.is_(None), new > column), new), else_=column)


class Statements:
    """The batch statements of one dialect, compiled once, with its value converters.

    Event times (schema.EventTime) go in as epoch milliseconds on SQLite and as text
    `YYYY-MM-DD HH:MM:SS.ffffff` on PostgreSQL, which parses it; days as `YYYY-MM-DD`, what
    SQLAlchemy stores in SQLite (tests hold them equal).
    """

    def __init__(self, dialect_name: str) -> None:
        module = postgresql if dialect_name == "postgresql" else sqlite
        self.postgresql = module is postgresql
        # Named parameters on SQLite, so rows are the same dicts on both.
        self.dialect = postgresql.psycopg.dialect() if self.postgresql else sqlite.dialect(paramstyle="named")
        # dialect_impl: the generic types have no SQLite processor, and sqlite3's own adapter drops the
        # ".000000" SQLAlchemy writes in queries, so stored times would not compare as text with bound ones.
        self.datetime = DateTime().dialect_impl(self.dialect).bind_processor(self.dialect) or (lambda v: v)
        # epoch ms -> an event time as stored (EventTime: the integer itself on SQLite)
        self.event_time = time_text if self.postgresql else int

        def upsert(table, keys, set_):
            stmt = module.insert(table)
            if self.postgresql:
                # All rows travel as one JSON document, typed by the table's own row type: one
                # statement, one parameter. psycopg dumps a JSON string in C but array
                # parameters element by element in Python.
                columns = [c.name for c in table.c]
                rows = func.json_populate_recordset(literal_column(f"NULL::{table.name}"),
                                                    cast(bindparam("rows"), JSON)).table_valued(*columns)
                stmt = stmt.from_select(columns, select(*[rows.c[n] for n in columns]))
            return self._sql(stmt.on_conflict_do_update(index_elements=keys, set_=set_(table.c, stmt.excluded)))

        def add(*names):
            return lambda t, new: {n: t[n] + new[n] for n in names}

        self.move_offset = self._sql(
            update(stream_offsets)
            .where(and_(stream_offsets.c.shard == bindparam("shard"), stream_offsets.c.last_id == bindparam("old_id")))
            .values(last_id=bindparam("new_id"), updated_at=bindparam("at"))
        )
        self.article_stats = upsert(article_stats, ["article_id"], lambda t, new: {
            **add("reads", "votes", "rating_sum")(t, new),
            "first_event_at": _earliest(t.first_event_at, new.first_event_at),
            "last_read_at": _latest(t.last_read_at, new.last_read_at),
            "last_vote_at": _latest(t.last_vote_at, new.last_vote_at),
        })
        self.reads_hourly = upsert(reads_hourly, ["article_id", "hour"], add("reads"))
        self.reads_daily = upsert(reads_daily, ["article_id", "day"], add("reads"))
        self.votes_daily = upsert(votes_daily, ["article_id", "day"], add("votes", "rating_sum"))
        self.votes = upsert(votes, ["article_id", "voter_id"],
                            lambda t, new: {"rating": new.rating, "voted_at": new.voted_at})
        self.rejected = self._sql(insert(rejected_events).values(
            shard=bindparam("shard"), stream_id=bindparam("stream_id"), payload=bindparam("payload"),
            reason=bindparam("reason"), received_at=bindparam("received_at")))

    def _sql(self, stmt) -> str:
        return str(stmt.compile(dialect=self.dialect))

    def upsert(self, conn: Connection, statement: str, rows: list[dict]) -> None:
        """Run one compiled upsert for all `rows` (which must have distinct keys)."""
        if not rows:
            return
        if self.postgresql:
            conn.exec_driver_sql(statement, {"rows": json.dumps(rows)})
        else:
            conn.exec_driver_sql(statement, rows)

    def stored_votes(self, keys: list[tuple[str, str]]) -> tuple[str, object]:
        """A query for the stored votes of these (article, voter) pairs, and its parameters."""
        if self.postgresql:
            # PostgreSQL plans a join far better than a long row-value IN list.
            return (
                "SELECT v.article_id, v.voter_id, v.rating, v.voted_at FROM votes AS v"
                " JOIN json_to_recordset(%s::json) AS k(a varchar, v varchar)"
                " ON v.article_id = k.a AND v.voter_id = k.v",
                (json.dumps([{"a": a, "v": v} for a, v in keys]),),
            )
        pairs = ", ".join(["(?, ?)"] * len(keys))
        return (
            f"SELECT article_id, voter_id, rating, voted_at FROM votes WHERE (article_id, voter_id) IN ({pairs})",
            tuple(value for pair in keys for value in pair),
        )


_DAY_TEXT: dict[int, str] = {}
_MINUTE_TEXT = [f"{m // 60:02d}:{m % 60:02d}:" for m in range(24 * 60)]


def day_text(day: int) -> str:
    """Epoch day `day` as SQLAlchemy stores a Date in SQLite: `YYYY-MM-DD`."""
    return day_date(day).isoformat()


def time_text(at_ms: int) -> str:
    """Epoch milliseconds as `YYYY-MM-DD HH:MM:SS.ffffff` (SQLAlchemy's DateTime text on SQLite): how event
    times travel to PostgreSQL in the JSON rows."""
    day, rest = divmod(at_ms, MS_PER_DAY)
    prefix = _DAY_TEXT.get(day)
    if prefix is None:
        if len(_DAY_TEXT) > 10_000:
            _DAY_TEXT.clear()
        prefix = _DAY_TEXT[day] = day_date(day).strftime("%Y-%m-%d ")
    minute, rest = divmod(rest, 60_000)
    seconds, ms = divmod(rest, 1000)
    return f"{prefix}{_MINUTE_TEXT[minute]}{seconds:02d}.{ms:03d}000"


@cache
def statements(dialect_name: str) -> Statements:
    return Statements(dialect_name)


def ensure_offsets(engine: Engine, shards: int) -> None:
    """Create the offset row of every shard that has none (offset 0-0: nothing applied)."""
    with writing(engine.connect()) as conn, conn.begin():
        have = set(conn.scalars(select(stream_offsets.c.shard)))
        missing = [{"shard": s, "last_id": START_ID, "updated_at": utc_now()} for s in range(shards) if s not in have]
        if missing:
            module = postgresql if conn.dialect.name == "postgresql" else sqlite
            conn.execute(module.insert(stream_offsets).on_conflict_do_nothing(index_elements=["shard"]), missing)


def read_offset(conn: Connection, shard: int) -> str | None:
    """The last stream id applied for `shard` (START_ID: none yet); None when the shard has no offset row."""
    return conn.scalar(select(stream_offsets.c.last_id).where(stream_offsets.c.shard == shard))


def apply_batch(conn: Connection, shard: int, old_id: str, batch: Batch, *, received_at: datetime,
                archive_root: str | None = None) -> bool:
    """Apply `batch` read from `shard` after `old_id` in one transaction; False if the offset had moved.

    `conn` must not be in a transaction; on SQLite it should be `writing()`. With `archive_root`
    (READRATE_ARCHIVE) the same transaction records the batch's archive files, `batch.archived()`,
    last: another thread may still be writing them while the counters move.
    """
    try:
        with conn.begin():
            _apply(conn, statements(conn.dialect.name), shard, old_id, batch, received_at, archive_root)
    except OffsetMoved:
        return False
    return True


def _start_archive(conn: Connection, root: str, received_at: datetime) -> None:
    """The first archiving transaction records the archive's start and the baseline."""
    if conn.scalar(select(archive_state.c.singleton)) is None:
        module = postgresql if conn.dialect.name == "postgresql" else sqlite
        started = conn.execute(module.insert(archive_state).on_conflict_do_nothing(),
                               {"singleton": 1, "started_at": received_at, "root": root}).rowcount
        if started:  # the counters as they stand before the first archived batch: "before the archive"
            columns = ["article_id", "reads", "votes", "rating_sum"]
            conn.execute(insert(archive_baseline).from_select(
                columns, select(*(article_stats.c[name] for name in columns))))


def _record_archive(conn: Connection, batch: Batch, received_at: datetime) -> None:
    """Name the batch's files (waiting for them to be written): part of the archive once this commits."""
    files = batch.archived()
    if files:
        conn.execute(insert(archive_files), [{**f.row(), "committed_at": received_at} for f in files])


def _apply(conn: Connection, sql: Statements, shard: int, old_id: str, batch: Batch, received_at: datetime,
           archive_root: str | None = None) -> None:
    at = sql.datetime(received_at)
    if batch.operation is not None and sql.postgresql:
        # An operator action may touch counters other shards' batches change (an unvote spans every
        # article): it waits for the batches in flight and holds new ones off, as a rebuild does, so what it
        # removes and the offsets it stores agree. (SQLite's write lock serializes every batch anyway.)
        conn.exec_driver_sql("LOCK TABLE stream_offsets IN EXCLUSIVE MODE")
    moved = conn.exec_driver_sql(sql.move_offset, {"shard": shard, "old_id": old_id, "new_id": batch.last_id,
                                                    "at": at}).rowcount
    if moved != 1:
        raise OffsetMoved(shard)
    if archive_root is not None:  # before the counters move: the baseline must not include this batch
        _start_archive(conn, archive_root, received_at)
    else:
        check_required(conn)
    if batch.operation is not None:  # an operator action is a batch of its own
        refused = apply_operation(conn, batch.operation)
        if refused is not None:
            conn.exec_driver_sql(sql.rejected, [{"shard": shard, "stream_id": batch.last_id, "reason": refused,
                                                 "payload": json.dumps(batch.operation.fields(), sort_keys=True),
                                                 "received_at": at}])
    else:
        _apply_counts(conn, sql, shard, batch, at)
    if archive_root is not None:
        _record_archive(conn, batch, received_at)


def _apply_counts(conn: Connection, sql: Statements, shard: int, batch: Batch, at) -> None:
    """The batch's reads, votes and dead letters."""
    plan = plan_votes(batch.votes.values(), _stored_votes(conn, sql, list(batch.votes)))
    sql.upsert(conn, sql.article_stats, _article_rows(batch, plan, sql.event_time))
    sql.upsert(conn, sql.reads_hourly, _hourly_rows(batch, sql.event_time))
    sql.upsert(conn, sql.reads_daily, _daily_rows(batch))
    sql.upsert(conn, sql.votes_daily, [
        {"article_id": a, "day": day_text(d), "votes": n, "rating_sum": s}
        for (a, d), (n, s) in sorted(plan.daily.items())
    ])
    emptied = [{"a": a, "d": day_date(d)} for (a, d), (n, _) in sorted(plan.daily.items()) if n < 0]
    if emptied:  # a re-vote moved the day's last vote away: no bucket, as a rebuild from the archive has none
        conn.execute(delete(votes_daily).where(and_(votes_daily.c.article_id == bindparam("a"),
                                                    votes_daily.c.day == bindparam("d"), votes_daily.c.votes == 0)),
                     emptied)
    sql.upsert(conn, sql.votes, [
        {"article_id": v.article_id, "voter_id": v.voter, "rating": v.rating,
         "voted_at": sql.event_time(v.at_ms)}
        for v in sorted(plan.upserts, key=lambda v: (v.article_id, v.voter))
    ])
    if batch.rejected:
        conn.exec_driver_sql(sql.rejected, [
            {"shard": shard, "stream_id": r.stream_id, "payload": r.payload, "reason": r.reason, "received_at": at}
            for r in batch.rejected
        ])


def _stored_votes(conn: Connection, sql: Statements, keys: list[tuple[str, str]]) -> dict:
    """(rating, at_ms) of the votes already stored for these (article, voter) pairs."""
    stored: dict[tuple[str, str], tuple[float, int]] = {}
    for start in range(0, len(keys), VOTE_LOOKUP_CHUNK):
        query, params = sql.stored_votes(keys[start:start + VOTE_LOOKUP_CHUNK])
        for article_id, voter_id, rating, voted_at in conn.exec_driver_sql(query, params).all():
            # PostgreSQL hands back a datetime, SQLite the stored epoch milliseconds
            at_ms = datetime_to_ms(voted_at) if sql.postgresql else voted_at
            stored[(article_id, voter_id)] = (rating, at_ms)
    return stored


def _article_rows(batch: Batch, plan: VotePlan, event_time) -> list[dict]:
    def at(ms: int | None):
        return None if ms is None else event_time(ms)

    rows = []
    for article_id in sorted(batch.articles.keys() | plan.articles.keys()):
        reads = batch.articles.get(article_id)
        voted = plan.articles.get(article_id)
        rows.append({
            "article_id": article_id,
            "reads": reads.reads if reads else 0,
            "votes": voted.votes if voted else 0,
            "rating_sum": voted.rating_sum if voted else 0.0,
            "first_event_at": at(reads.first_at_ms) if reads else None,
            "last_read_at": at(reads.last_read_at_ms) if reads else None,
            "last_vote_at": at(voted.last_vote_at_ms) if voted else None,
        })
    return rows


def _hourly_rows(batch: Batch, event_time) -> list[dict]:
    hours = {hour: event_time(hour * MS_PER_HOUR) for _, hour in batch.hourly}
    return [{"article_id": a, "hour": hours[h], "reads": n} for (a, h), n in sorted(batch.hourly.items())]


def _daily_rows(batch: Batch) -> list[dict]:
    days = {day: day_text(day) for _, day in batch.daily}
    return [{"article_id": a, "day": days[d], "reads": n} for (a, d), n in sorted(batch.daily.items())]
