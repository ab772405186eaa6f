"""Applies one Batch to the database in one transaction, guarded by the offset compare-and-set.

Step 4 of "Aggregation, exactly once" in DESIGN.md. The offset moves first
(`UPDATE … WHERE last_id = :old`): zero rows means another drain already applied
these entries, so nothing else is written. Then one upsert statement per table,
rows sorted by key, and the dead letters — all or nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Engine, and_, case, insert, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from .aggregate import Batch
from .db import writing
from .schema import article_stats, reads_daily, reads_hourly, rejected_events, stream_offsets, votes, votes_daily
from .timeconv import datetime_to_ms, day_date, hour_start, ms_to_datetime, utc_now
from .votes import plan_votes

START_ID = "0-0"
# Pairs per SELECT of stored votes: keeps bound parameters well under SQLite's limit.
VOTE_LOOKUP_CHUNK = 1000


class OffsetMoved(Exception):
    """Raised inside the transaction when the offset CAS matched no row (another drain got there first)."""


def _upsert(conn: Connection, table):
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    return stmt, stmt.excluded


def _add(table, excluded, *names: str) -> dict:
    return {name: table.c[name] + excluded[name] for name in names}


def _earliest(column, new):
    return case((or_(column.is_(None), new < column), new), else_=column)


def _latest(column, new):
    return case((or_(column.is_(None), new > column), new), else_=column)


def ensure_offsets(engine: Engine, shards: int) -> None:
    """Create the offset row of every shard that has none (offset 0-0: nothing applied)."""
    with writing(engine.connect()) as conn, conn.begin():
        have = set(conn.scalars(select(stream_offsets.c.shard)))
        missing = [
            {"shard": s, "last_id": START_ID, "updated_at": utc_now()} for s in range(shards) if s not in have
        ]
        if missing:
            stmt, _ = _upsert(conn, stream_offsets)
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["shard"]), missing)


def read_offset(conn: Connection, shard: int) -> str:
    """The last stream id applied for `shard`."""
    return conn.scalar(select(stream_offsets.c.last_id).where(stream_offsets.c.shard == shard)) or START_ID


def apply_batch(conn: Connection, shard: int, old_id: str, batch: Batch, *, received_at: datetime) -> bool:
    """Apply `batch` read from `shard` after `old_id` in one transaction; False if the offset had moved.

    `conn` must not be in a transaction; on SQLite it should be `writing()`.
    """
    try:
        with conn.begin():
            _apply(conn, shard, old_id, batch, received_at)
    except OffsetMoved:
        return False
    return True


def _apply(conn: Connection, shard: int, old_id: str, batch: Batch, received_at: datetime) -> None:
    moved = conn.execute(
        update(stream_offsets)
        .where(and_(stream_offsets.c.shard == shard, stream_offsets.c.last_id == old_id))
        .values(last_id=batch.last_id, updated_at=received_at)
    ).rowcount
    if moved != 1:
        raise OffsetMoved(shard)

    plan = plan_votes(batch.votes.values(), _stored_votes(conn, list(batch.votes)))
    _write_article_stats(conn, batch, plan)
    _write_buckets(conn, batch, plan)
    if plan.upserts:
        stmt, new = _upsert(conn, votes)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["article_id", "voter_id"], set_={"rating": new.rating, "voted_at": new.voted_at}
            ),
            [
                {"article_id": v.article_id, "voter_id": v.voter, "rating": v.rating, "voted_at": ms_to_datetime(v.at_ms)}
                for v in sorted(plan.upserts, key=lambda v: (v.article_id, v.voter))
            ],
        )
    if batch.rejected:
        conn.execute(
            insert(rejected_events),
            [
                {"shard": shard, "stream_id": r.stream_id, "payload": r.payload, "reason": r.reason,
                 "received_at": received_at}
                for r in batch.rejected
            ],
        )


def _stored_votes(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[float, int]]:
    stored: dict[tuple[str, str], tuple[float, int]] = {}
    for start in range(0, len(keys), VOTE_LOOKUP_CHUNK):
        chunk = keys[start:start + VOTE_LOOKUP_CHUNK]
        rows = conn.execute(
            select(votes.c.article_id, votes.c.voter_id, votes.c.rating, votes.c.voted_at).where(
                tuple_(votes.c.article_id, votes.c.voter_id).in_(chunk)
            )
        )
        for article_id, voter_id, rating, voted_at in rows:
            stored[(article_id, voter_id)] = (rating, datetime_to_ms(voted_at))
    return stored


def _write_article_stats(conn: Connection, batch: Batch, plan) -> None:
    rows = []
    for article_id in sorted(batch.articles.keys() | plan.articles.keys()):
        reads = batch.articles.get(article_id)
        voted = plan.articles.get(article_id)
        rows.append({
            "article_id": article_id,
            "reads": reads.reads if reads else 0,
            "votes": voted.votes if voted else 0,
            "rating_sum": voted.rating_sum if voted else 0.0,
            "first_event_at": ms_to_datetime(reads.first_at_ms) if reads else None,
            "last_read_at": ms_to_datetime(reads.last_read_at_ms) if reads and reads.last_read_at_ms is not None else None,
            "last_vote_at": ms_to_datetime(voted.last_vote_at_ms) if voted else None,
        })
    if not rows:
        return
    stmt, new = _upsert(conn, article_stats)
    t = article_stats.c
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["article_id"],
            set_={
                **_add(article_stats, new, "reads", "votes", "rating_sum"),
                "first_event_at": _earliest(t.first_event_at, new.first_event_at),
                "last_read_at": _latest(t.last_read_at, new.last_read_at),
                "last_vote_at": _latest(t.last_vote_at, new.last_vote_at),
            },
        ),
        rows,
    )


def _write_buckets(conn: Connection, batch: Batch, plan) -> None:
    if batch.hourly:
        stmt, new = _upsert(conn, reads_hourly)
        conn.execute(
            stmt.on_conflict_do_update(index_elements=["article_id", "hour"], set_=_add(reads_hourly, new, "reads")),
            [{"article_id": a, "hour": hour_start(h), "reads": n} for (a, h), n in sorted(batch.hourly.items())],
        )
    if batch.daily:
        stmt, new = _upsert(conn, reads_daily)
        conn.execute(
            stmt.on_conflict_do_update(index_elements=["article_id", "day"], set_=_add(reads_daily, new, "reads")),
            [{"article_id": a, "day": day_date(d), "reads": n} for (a, d), n in sorted(batch.daily.items())],
        )
    if plan.daily:
        stmt, new = _upsert(conn, votes_daily)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["article_id", "day"], set_=_add(votes_daily, new, "votes", "rating_sum")
            ),
            [
                {"article_id": a, "day": day_date(d), "votes": n, "rating_sum": s}
                for (a, d), (n, s) in sorted(plan.daily.items())
            ],
        )
