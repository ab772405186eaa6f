"""The baseline readrate replaces: one RQ job per event, each upserting its own article row.

This is what a user would otherwise write: a page enqueues `count_event(...)` for
every read and vote, and an RQ worker runs each as its own transaction,
`INSERT … ON CONFLICT DO UPDATE SET reads = reads + 1`. It does less than
readrate does — no hourly or daily buckets, no vote table, a re-vote simply
adds again — so every ratio against it flatters the baseline, not readrate.
It uses readrate's own engine settings (SQLite in WAL with synchronous=FULL,
BEGIN IMMEDIATE), so both designs commit with the same durability.

`python -m bench.naive REDIS_URL QUEUE NAME` runs a plain RQ SimpleWorker on
the queue until SIGTERM (the lag scenario's baseline worker).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from redis import Redis
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy import Engine, text

from readrate.events.model import Event, Vote
from readrate.workers.db import make_engine, writing

TABLE = "naive_article_hits"
JOB = "bench.naive.count_event"
# Job hashes stay long enough for the lag scenario to read each job's end time.
RESULT_TTL_S = 3600

_CREATE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    article_id VARCHAR(128) PRIMARY KEY,
    reads BIGINT NOT NULL DEFAULT 0,
    votes BIGINT NOT NULL DEFAULT 0,
    rating_sum DOUBLE PRECISION NOT NULL DEFAULT 0
)"""
_UPSERT = text(f"""
INSERT INTO {TABLE} (article_id, reads, votes, rating_sum) VALUES (:article_id, :reads, :votes, :rating)
ON CONFLICT (article_id) DO UPDATE SET
    reads = {TABLE}.reads + excluded.reads,
    votes = {TABLE}.votes + excluded.votes,
    rating_sum = {TABLE}.rating_sum + excluded.rating_sum""")


# One engine per database per worker process (a pool reused by every job): the fairest naive design, not the
# worst one. A job function has nowhere else to keep it between jobs.
_engines: dict[str, Engine] = {}


def _engine(database_url: str) -> Engine:
    engine = _engines.get(database_url)
    if engine is None:
        engine = _engines[database_url] = make_engine(database_url, create=True)
    return engine


def dispose_engines() -> None:
    while _engines:
        _engines.popitem()[1].dispose()


def count_event(database_url: str, kind: str, article_id: str, rating: float | None = None) -> None:
    """RQ job: count one read or vote in its own transaction."""
    is_vote = kind == "vote"
    with writing(_engine(database_url).connect()) as conn, conn.begin():
        conn.execute(_UPSERT, {"article_id": article_id, "reads": 0 if is_vote else 1,
                               "votes": 1 if is_vote else 0, "rating": float(rating) if is_vote else 0.0})


def create_table(engine: Engine) -> None:
    with writing(engine.connect()) as conn, conn.begin():
        conn.execute(text(_CREATE))


def totals(engine: Engine) -> dict[str, float]:
    with engine.connect() as conn:
        reads, votes = conn.execute(
            text(f"SELECT COALESCE(SUM(reads), 0), COALESCE(SUM(votes), 0) FROM {TABLE}")).one()
    return {"reads": int(reads), "votes": int(votes)}


def queue(redis: Redis, name: str) -> Queue:
    return Queue(name, connection=redis, serializer=JSONSerializer)


def job_data(database_url: str, event: Event, job_id: str):
    args = [database_url, "vote", event.article_id, event.rating] if isinstance(event, Vote) else \
        [database_url, "read", event.article_id]
    return Queue.prepare_data(JOB, args=args, job_id=job_id, result_ttl=RESULT_TTL_S)


def enqueue(q: Queue, database_url: str, events: Iterable[Event], id_prefix: str, start: int = 0,
            chunk: int = 1000) -> list[str]:
    """Enqueue one job per event (pipelined, `chunk` jobs per round trip); returns the job ids."""
    ids: list[str] = []
    batch = []
    for i, event in enumerate(events, start=start):
        job_id = f"{id_prefix}-{i}"
        batch.append(job_data(database_url, event, job_id))
        ids.append(job_id)
        if len(batch) >= chunk:
            _flush(q, batch)
            batch = []
    if batch:
        _flush(q, batch)
    return ids


def _flush(q: Queue, batch: list) -> None:
    with q.connection.pipeline() as pipe:
        q.enqueue_many(batch, pipeline=pipe)
        pipe.execute()


def worker(redis: Redis, queue_name: str, name: str) -> SimpleWorker:
    """A plain RQ SimpleWorker (no fork per job, the faster kind) on the naive queue."""
    return SimpleWorker([queue(redis, queue_name)], connection=redis, name=name, serializer=JSONSerializer)


def main(argv: list[str]) -> None:
    redis_url, queue_name, name = argv
    redis = Redis.from_url(redis_url)
    worker(redis, queue_name, name).work(logging_level="WARNING")


if __name__ == "__main__":
    main(sys.argv[1:])
